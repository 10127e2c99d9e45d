/* renoise.c: `ddpm renoise`: noise an image to t0 = strength·T and denoise
 * it back (SDEdit), optionally only inside a mask.
 *
 *   ddpm renoise --model M --strength S --steps N --seed S [--sampler …]
 *                [--mask MASK.png] [--threads N] IN.png OUT.png
 */
#include <math.h>
#include <stdio.h>

#include "ddpm.h"
#include "cli.h"

/* The mask as one (H, W) plane in [0, 1]: a gray image's values, an RGB
 * image's luma. */
static float *
load_mask (const char *path, int width, int height, GError **error)
{
  DdpmImage *image = ddpm_image_load (path, error);
  float *mask = NULL;

  if (image == NULL)
    return NULL;
  if (image->width != width || image->height != height)
    g_set_error (error, DDPM_ERROR, DDPM_ERROR_INVALID_ARGUMENT,
                 "The mask %s is %d×%d but the image is %d×%d",
                 path, image->width, image->height, width, height);
  else
    {
      DdpmImage *gray = image->channels == 1 ? image
                        : ddpm_image_convert_channels (image, 1);
      mask = g_memdup2 (gray->pixels, sizeof (float) * width * height);
      if (gray != image)
        ddpm_image_free (gray);
    }
  ddpm_image_free (image);
  return mask;
}

int
cli_renoise (int argc, char **argv)
{
  CliSampleOptions options = { 0 };
  double strength = 0.5;
  char *mask_path = NULL;
  int bit_depth = 8;
  const GOptionEntry entries[] = {
    { "strength", 0, 0, G_OPTION_ARG_DOUBLE, &strength,
      "how far to noise, 0..1: t0 = strength·T (default 0.5)", "S" },
    { "mask", 0, 0, G_OPTION_ARG_FILENAME, &mask_path,
      "only change where this gray image is white (same size as IN)", "MASK.png" },
    { "bit-depth", 0, 0, G_OPTION_ARG_INT, &bit_depth, "8 (default) or 16", "B" },
    { NULL }
  };
  GOptionContext *context = g_option_context_new ("IN.png OUT.png - noise an image "
                                                  "partway and denoise it back");
  DdpmSampleParams params;
  DdpmModel *model = NULL;
  DdpmImage *image = NULL;
  float *mask = NULL;
  GError *error = NULL;
  CliProgress progress;
  int status = CLI_EXIT_USAGE, t0, n_steps;

  cli_sample_options_add (context, &options);
  g_option_context_add_main_entries (context, entries, NULL);
  if (!cli_parse (context, "renoise", &argc, &argv))
    goto out;
  if (!cli_check_in_out ("renoise", argc, argv, bit_depth))
    goto out;
  if (!cli_sample_options_resolve (&options, &params, &error))
    goto out;
  params.strength = strength;

  status = CLI_EXIT_FAILURE;
  if (!(model = cli_load_model (options.model, &error))
      || !ddpm_img2img_plan (ddpm_model_get_schedule (model), strength,
                             params.steps, &t0, &n_steps, &error))
    {
      /* a bad strength is the user's argument, not a failure of the work */
      if (error && error->code == DDPM_ERROR_INVALID_ARGUMENT && model)
        status = CLI_EXIT_USAGE;
      goto out;
    }
  if (!(image = ddpm_image_load (argv[1], &error)))
    goto out;
  if (mask_path && !(mask = load_mask (mask_path, image->width, image->height, &error)))
    goto out;

  fprintf (stderr, "renoise %s: %d×%d, noise to t = %d of %d, then %d step%s (%s, seed %"
           G_GINT64_FORMAT ")\n", argv[1], image->width, image->height, t0,
           ddpm_model_get_schedule (model)->T, n_steps, n_steps == 1 ? "" : "s",
           ddpm_sampler_kind_name (params.sampler), (gint64) params.seed);
  cli_progress_init (&progress, "step");
  cli_catch_interrupt ();
  params.progress = cli_progress_report;
  params.progress_data = &progress;
  if (!cli_run_img2img (model, image, mask, &params, &error)
      || !ddpm_image_save_png (image, argv[2], bit_depth, &error))
    goto out;
  printf ("%s\n", argv[2]);
  status = CLI_EXIT_OK;

out:
  if (error)
    {
      cli_fail ("renoise", status, "%s", error->message);
      g_error_free (error);
    }
  g_free (mask);
  if (image)
    ddpm_image_free (image);
  if (model)
    ddpm_model_free (model);
  cli_sample_options_clear (&options);
  g_free (mask_path);
  g_option_context_free (context);
  return status;
}
