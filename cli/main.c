/* main.c: the `ddpm` command: a thin front end over libddpm.
 *
 *   ddpm COMMAND [OPTIONS…]      ddpm COMMAND --help for each command's options
 */
#include "config.h"

#include <locale.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const CliCommand commands[] = {
  { "schedule", "print a noise schedule and its derived tables", cli_schedule },
  { "train", "train or resume a model on images", cli_train },
  { "info", "describe a model file or a preset", cli_info },
  { "sample", "generate an image from noise", cli_sample },
  { "renoise", "noise an image partway and denoise it back (strength)", cli_renoise },
  { "eval", "negative ELBO of a model on images, in bits/dim", cli_eval },
  { "denoise", "remove Gaussian noise of a given or estimated level", cli_denoise },
  { "denoise-eval", "PSNR of denoising held-out images with added noise", cli_denoise_eval },
  { "import", "import a published model (guided-diffusion .pt, diffusers folder)", cli_import },
  { "forward", "the network's raw output on a .npy batch", cli_forward },
};

static void
print_usage (FILE *out)
{
  fprintf (out, "Usage: ddpm COMMAND [OPTIONS…]\n\n"
                "A diffusion (DDPM) engine: schedules, training and sampling.\n\n"
                "Commands:\n");
  for (gsize i = 0; i < G_N_ELEMENTS (commands); i++)
    fprintf (out, "  %-13s %s\n", commands[i].name, commands[i].summary);
  fprintf (out, "\nRun “ddpm COMMAND --help” for the options of a command.\n"
                "  --help      show this help\n"
                "  --version   show the version\n");
}

int
cli_fail (const char *command, int code, const char *format, ...)
{
  va_list args;
  char *message;

  va_start (args, format);
  message = g_strdup_vprintf (format, args);
  va_end (args);
  fprintf (stderr, "ddpm %s: %s\n", command, message);
  g_free (message);
  return code;
}

gboolean
cli_parse (GOptionContext *context, const char *command, int *argc, char ***argv)
{
  GError *error = NULL;

  if (!g_option_context_parse (context, argc, argv, &error))
    {
      fprintf (stderr, "ddpm %s: %s\nRun “ddpm %s --help” for the options.\n",
               command, error->message, command);
      g_error_free (error);
      return FALSE;
    }
  return TRUE;
}

const char *
cli_format_double (char buf[G_ASCII_DTOSTR_BUF_SIZE], double v)
{
  return g_ascii_formatd (buf, G_ASCII_DTOSTR_BUF_SIZE, "%.10g", v);
}

int
main (int argc, char **argv)
{
  setlocale (LC_ALL, "");

  if (argc < 2)
    {
      print_usage (stderr);
      return CLI_EXIT_USAGE;
    }
  if (strcmp (argv[1], "--help") == 0 || strcmp (argv[1], "-h") == 0
      || strcmp (argv[1], "help") == 0)
    {
      print_usage (stdout);
      return CLI_EXIT_OK;
    }
  if (strcmp (argv[1], "--version") == 0)
    {
      printf ("ddpm %s\n", PACKAGE_VERSION);
      return CLI_EXIT_OK;
    }

  for (gsize i = 0; i < G_N_ELEMENTS (commands); i++)
    if (strcmp (argv[1], commands[i].name) == 0)
      return commands[i].run (argc - 1, argv + 1);

  fprintf (stderr, "ddpm: unknown command “%s”\n\n", argv[1]);
  print_usage (stderr);
  return CLI_EXIT_USAGE;
}
