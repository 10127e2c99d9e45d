/* info.c: `ddpm info`: describe a model file (configuration, schedule,
 * parameter count, training info), or a preset before training one.
 *
 *   ddpm info MODEL.safetensors
 *   ddpm info --preset NAME [--channels C]
 */
#include <stdio.h>
#include <string.h>

#include "ddpm.h"
#include "cli.h"

static void
print_list (const char *label, const int *values, int n)
{
  printf ("%s: ", label);
  if (n == 0)
    printf ("none");
  for (int i = 0; i < n; i++)
    printf ("%s%d", i ? "," : "", values[i]);
  printf ("\n");
}

static void
print_config (const DdpmUNetConfig *c, DdpmScheduleKind kind, int T)
{
  char buf[G_ASCII_DTOSTR_BUF_SIZE];

  printf ("in_channels: %d\n", c->in_channels);
  printf ("out_channels: %d\n", c->out_channels);
  printf ("ch: %d\n", c->ch);
  print_list ("ch_mult", c->ch_mult, c->n_levels);
  printf ("num_res_blocks: %d\n", c->num_res_blocks);
  print_list ("attn_resolutions", c->attn_resolutions, c->n_attn);
  printf ("image_size: %d\n", c->image_size);
  printf ("dropout: %s\n", cli_format_double (buf, c->dropout));
  printf ("schedule: %s\n", ddpm_schedule_kind_name (kind));
  printf ("T: %d\n", T);
  printf ("parameters: %" G_GSIZE_FORMAT "\n", ddpm_unet_config_n_params (c));
}

int
cli_info (int argc, char **argv)
{
  char *preset = NULL, *schedule_name = NULL;
  int channels = 3, T = 1000;
  GOptionEntry entries[] = {
    { "preset", 'p', 0, G_OPTION_ARG_STRING, &preset,
      "describe a preset (tiny, small, cifar) instead of a file", "NAME" },
    { "channels", 'c', 0, G_OPTION_ARG_INT, &channels,
      "with --preset: 1 (gray) or 3 (RGB), default 3", "C" },
    { "schedule", 's', 0, G_OPTION_ARG_STRING, &schedule_name,
      "with --preset: the schedule to show (default linear)", "NAME" },
    { "timesteps", 'T', 0, G_OPTION_ARG_INT, &T,
      "with --preset: diffusion steps T (default 1000)", "T" },
    { NULL }
  };
  GOptionContext *context = g_option_context_new ("[MODEL] - describe a model or a preset");
  DdpmModel *model = NULL;
  GError *error = NULL;
  int status = CLI_EXIT_USAGE;

  g_option_context_add_main_entries (context, entries, NULL);
  if (!cli_parse (context, "info", &argc, &argv))
    goto out;

  if (preset)
    {
      DdpmUNetConfig config;
      DdpmScheduleKind kind = DDPM_SCHEDULE_LINEAR;

      if (argc > 1)
        {
          cli_fail ("info", CLI_EXIT_USAGE, "give a model file or --preset, not both");
          goto out;
        }
      if (channels != 1 && channels != 3)
        {
          cli_fail ("info", CLI_EXIT_USAGE, "--channels must be 1 or 3, not %d", channels);
          goto out;
        }
      if (T < 1)
        {
          cli_fail ("info", CLI_EXIT_USAGE, "--timesteps must be at least 1, not %d", T);
          goto out;
        }
      if (!ddpm_unet_config_from_preset (preset, channels, &config, &error)
          || (schedule_name && !ddpm_schedule_kind_from_string (schedule_name, &kind, &error)))
        {
          status = cli_fail ("info", CLI_EXIT_USAGE, "%s", error->message);
          goto out;
        }
      printf ("preset: %s\n", preset);
      print_config (&config, kind, T);
      status = CLI_EXIT_OK;
      goto out;
    }

  if (argc != 2)
    {
      cli_fail ("info", CLI_EXIT_USAGE, argc < 2 ? "give a model file or --preset NAME"
                                                 : "unexpected argument “%s”", argv[2]);
      goto out;
    }
  if (!(model = ddpm_model_load (argv[1], &error)))
    {
      status = cli_fail ("info", CLI_EXIT_FAILURE, "%s", error->message);
      goto out;
    }

  const DdpmSchedule *s = ddpm_model_get_schedule (model);
  const char *steps = ddpm_model_get_metadata (model, "train_steps");
  const char *loss = ddpm_model_get_metadata (model, "train_loss");
  const char *checkpoint = ddpm_model_get_metadata (model, "checkpoint");

  printf ("model: %s\n", argv[1]);
  printf ("format_version: %s\n", ddpm_model_get_metadata (model, "format_version"));
  print_config (ddpm_model_get_config (model), s->kind, s->T);
  if (steps)
    printf ("train_steps: %s\n", steps);
  if (loss)
    printf ("train_loss: %s\n", loss);
  printf ("checkpoint: %s\n", checkpoint && strcmp (checkpoint, "true") == 0 ? "yes" : "no");
  status = CLI_EXIT_OK;

out:
  g_clear_error (&error);
  ddpm_model_free (model);
  g_option_context_free (context);
  g_free (preset);
  g_free (schedule_name);
  return status;
}
