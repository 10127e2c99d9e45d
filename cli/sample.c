/* sample.c: `ddpm sample`: generate a new image from pure noise.
 *
 *   ddpm sample --model M --size WxH --steps N --seed S [--sampler ddim|ddpm]
 *               [--eta E] [--threads N] --out OUT.png
 */
#include <stdio.h>

#include "ddpm.h"
#include "cli.h"

static gboolean
parse_size (const char *text, int *width, int *height, GError **error)
{
  char *end;
  gint64 w = g_ascii_strtoll (text, &end, 10), h = -1;

  if (*end == 'x' || *end == 'X')
    h = g_ascii_strtoll (end + 1, &end, 10);
  if (*end != '\0' || w < 1 || h < 1 || w > DDPM_IMAGE_MAX_SIDE || h > DDPM_IMAGE_MAX_SIDE)
    {
      g_set_error (error, DDPM_ERROR, DDPM_ERROR_INVALID_ARGUMENT,
                   "--size must be WIDTHxHEIGHT with each side 1..%d, e.g. 64x64; "
                   "got “%s”", DDPM_IMAGE_MAX_SIDE, text);
      return FALSE;
    }
  *width = (int) w;
  *height = (int) h;
  return TRUE;
}

int
cli_sample (int argc, char **argv)
{
  CliSampleOptions options = { 0 };
  char *size = NULL, *out_path = NULL;
  const GOptionEntry entries[] = {
    { "size", 0, 0, G_OPTION_ARG_STRING, &size,
      "WIDTHxHEIGHT (default: the model's training size)", "WxH" },
    { "out", 'o', 0, G_OPTION_ARG_FILENAME, &out_path, "the PNG to write", "OUT.png" },
    { NULL }
  };
  GOptionContext *context = g_option_context_new ("- generate an image from noise");
  DdpmSampleParams params;
  DdpmModel *model = NULL;
  DdpmImage *image = NULL;
  GError *error = NULL;
  CliProgress progress;
  int status = CLI_EXIT_USAGE, width = 0, height = 0;

  cli_sample_options_add (context, &options);
  g_option_context_add_main_entries (context, entries, NULL);
  if (!cli_parse (context, "sample", &argc, &argv))
    goto out;
  if (argc > 1)
    {
      cli_fail ("sample", CLI_EXIT_USAGE, "unexpected argument “%s”", argv[1]);
      goto out;
    }
  if (out_path == NULL)
    {
      cli_fail ("sample", CLI_EXIT_USAGE, "--out OUT.png is required");
      goto out;
    }
  if (!cli_check_png_out ("sample", out_path))
    goto out;
  if ((size && !parse_size (size, &width, &height, &error))
      || !cli_sample_options_resolve (&options, &params, &error))
    goto out;
  params.strength = 1.0;

  status = CLI_EXIT_FAILURE;
  if (!(model = cli_load_model (options.model, &error)))
    goto out;
  const DdpmUNetConfig *config = ddpm_model_get_config (model);
  if (size == NULL)
    width = height = config->image_size;
  if (!(image = ddpm_image_try_new (width, height, config->in_channels, FALSE, &error)))
    goto out;

  fprintf (stderr, "sample: %d×%d, %d step%s (%s, seed %" G_GINT64_FORMAT ")\n",
           width, height, params.steps, params.steps == 1 ? "" : "s",
           ddpm_sampler_kind_name (params.sampler), (gint64) params.seed);
  cli_progress_init (&progress, "step");
  cli_catch_interrupt ();
  params.progress = cli_progress_report;
  params.progress_data = &progress;
  if (!cli_run_img2img (model, image, NULL, &params, &error)
      || !ddpm_image_save_png (image, out_path, 8, &error))
    goto out;
  printf ("%s\n", out_path);
  status = CLI_EXIT_OK;

out:
  if (error)
    {
      cli_fail ("sample", status, "%s", error->message);
      g_error_free (error);
    }
  if (image)
    ddpm_image_free (image);
  if (model)
    ddpm_model_free (model);
  cli_sample_options_clear (&options);
  g_free (size);
  g_free (out_path);
  g_option_context_free (context);
  return status;
}
