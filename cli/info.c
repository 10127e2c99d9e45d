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
  if (c->style == DDPM_UNET_STYLE_ADM)
    {
      /* an imported guided-diffusion network: what its flags set */
      printf ("style: adm\n");
      if (c->num_head_channels > 0)
        printf ("num_head_channels: %d\n", c->num_head_channels);
      else
        printf ("num_heads: %d\n", MAX (c->num_heads, 1));
      printf ("scale_shift: %s\n", c->scale_shift ? "yes" : "no");
      printf ("resblock_updown: %s\n", c->resblock_updown ? "yes" : "no");
      printf ("learn_sigma: %s\n", c->learn_sigma ? "yes" : "no");
      printf ("num_classes: %d\n", c->num_classes);
      if (c->rescale_timesteps)
        printf ("rescale_timesteps: yes\n");
    }
  else if (c->num_head_channels > 0)
    /* a diffusers network with attention_head_dim */
    printf ("num_head_channels: %d\n", c->num_head_channels);
  printf ("schedule: %s\n", ddpm_schedule_kind_name (kind));
  printf ("T: %d\n", T);
  printf ("parameters: %" G_GSIZE_FORMAT "\n", ddpm_unet_config_n_params (c));
}

/* `ddpm info --preset NAME`: the configuration `ddpm train --preset NAME`
 * would start from.  Returns the exit status. */
static int
info_preset (const char *preset, int channels, const char *schedule_name, int T)
{
  DdpmTrainParams defaults;
  DdpmUNetConfig config;
  DdpmScheduleKind kind;
  GError *error = NULL;

  if (channels != 1 && channels != 3)
    return cli_fail ("info", CLI_EXIT_USAGE, "--channels must be 1 or 3, not %d", channels);
  if (T < 1)
    return cli_fail ("info", CLI_EXIT_USAGE, "--timesteps must be at least 1, not %d", T);
  ddpm_train_params_init (&defaults);
  kind = defaults.schedule;
  if (!ddpm_unet_config_from_preset (preset, channels, &config, &error)
      || (schedule_name && !ddpm_schedule_kind_from_string (schedule_name, &kind, &error)))
    {
      int status = cli_fail ("info", CLI_EXIT_USAGE, "%s", error->message);

      g_error_free (error);
      return status;
    }
  printf ("preset: %s\n", preset);
  print_config (&config, kind, T);
  return CLI_EXIT_OK;
}

/* `ddpm info MODEL`: what the file holds.  Returns the exit status. */
static int
info_model (const char *path)
{
  GError *error = NULL;
  DdpmModel *model = ddpm_model_load (path, &error);

  if (!model)
    {
      int status = cli_fail ("info", CLI_EXIT_FAILURE, "%s", error->message);

      g_error_free (error);
      return status;
    }

  const DdpmSchedule *s = ddpm_model_get_schedule (model);
  const char *steps = ddpm_model_get_metadata (model, "train_steps");
  const char *loss = ddpm_model_get_metadata (model, "train_loss");
  const char *checkpoint = ddpm_model_get_metadata (model, "checkpoint");

  printf ("model: %s\n", path);
  printf ("format_version: %s\n", ddpm_model_get_metadata (model, "format_version"));
  print_config (ddpm_model_get_config (model), s->kind, s->T);
  if (steps)
    printf ("train_steps: %s\n", steps);
  if (loss)
    printf ("train_loss: %s\n", loss);
  printf ("checkpoint: %s\n", checkpoint && strcmp (checkpoint, "true") == 0 ? "yes" : "no");
  ddpm_model_free (model);
  return CLI_EXIT_OK;
}

int
cli_info (int argc, char **argv)
{
  DdpmTrainParams defaults;
  char *preset = NULL, *schedule_name = NULL;
  int channels, T;
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
  int status = CLI_EXIT_USAGE;

  /* A preset as `ddpm train` makes it by default. */
  ddpm_train_params_init (&defaults);
  channels = defaults.config.in_channels;
  T = defaults.T;

  g_option_context_add_main_entries (context, entries, NULL);
  if (!cli_parse (context, "info", &argc, &argv))
    goto out;
  if (preset && argc > 1)
    cli_fail ("info", CLI_EXIT_USAGE, "give a model file or --preset, not both");
  else if (preset)
    status = info_preset (preset, channels, schedule_name, T);
  else if (argc != 2)
    cli_fail ("info", CLI_EXIT_USAGE, argc < 2 ? "give a model file or --preset NAME"
                                               : "unexpected argument “%s”", argv[2]);
  else
    status = info_model (argv[1]);

out:
  g_option_context_free (context);
  g_free (preset);
  g_free (schedule_name);
  return status;
}
