/* sampling.c: what `ddpm renoise`, `sample` and `denoise` share: the sampler
 * options, loading the model, and running img2img on a DdpmImage (channel
 * conversion to the model's, [0, 1] ⇄ [−1, 1], alpha kept aside). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "ddpm.h"
#include "cli.h"

/* --class: the label a class-conditional model generates (−1: none;
 * CLASS_UNSET: not given).  One per process, like the command it belongs
 * to; cli_run_img2img and cli_run_denoise give it to the model, whose
 * check refuses a label below −1, one beyond the model's classes and any
 * label for an unconditional model (an error, not a warning: the user
 * asked for something the model cannot do). */
#define CLASS_UNSET G_MININT
static int class_label = CLASS_UNSET;

void
cli_sample_options_add (GOptionContext *context, CliSampleOptions *o)
{
  DdpmSampleParams *p = &o->params;
  const GOptionEntry entries[] = {
    { "model", 'm', 0, G_OPTION_ARG_FILENAME, &o->model,
      "model file (default: the installed default model)", "FILE" },
    { "steps", 'n', 0, G_OPTION_ARG_INT, &p->steps,
      "denoising steps actually run (default 20)", "N" },
    /* GOption writes a gint64 into the guint64: a negative seed wraps, as
     * it always did. */
    { "seed", 's', 0, G_OPTION_ARG_INT64, &p->seed, "random seed (default 0)", "S" },
    { "sampler", 0, 0, G_OPTION_ARG_STRING, &o->sampler,
      "ddim (default), ddpm or dpm++2m (DPM-Solver++, for 10-20 steps)", "NAME" },
    { "eta", 0, 0, G_OPTION_ARG_DOUBLE, &p->eta,
      "DDIM noise η in [0, 1] (default 0: deterministic)", "E" },
    { "variance", 0, 0, G_OPTION_ARG_STRING, &o->variance,
      "DDPM sampler variance: posterior (β̃, default) or beta", "NAME" },
    { "spacing", 0, 0, G_OPTION_ARG_STRING, &o->spacing,
      "timestep spacing: trailing (default), leading, linspace or karras", "NAME" },
    { "no-clip", 0, G_OPTION_FLAG_REVERSE, G_OPTION_ARG_NONE, &p->clip_x0,
      "do not clip the predicted x0 to [-1, 1]", NULL },
    { "threads", 't', 0, G_OPTION_ARG_INT, &p->threads,
      "threads (default: all cores)", "N" },
    { "precision", 0, 0, G_OPTION_ARG_STRING, &o->precision,
      "network arithmetic: bf16 (about twice as fast; default where the CPU has "
      "AVX512_BF16), fp32, or auto", "NAME" },
    { "class", 0, 0, G_OPTION_ARG_INT, &class_label,
      "class label of a class-conditional model (e.g. an ImageNet class 0–999; "
      "-1: none)", "N" },
    { "tile-overlap", 0, 0, G_OPTION_ARG_INT, &p->tile_overlap,
      "pixels shared by neighbouring tiles of a large image (default: an eighth "
      "of the model's tile, at least 8); smaller is faster, larger hides seams "
      "better", "PX" },
    { NULL }
  };

  ddpm_sample_params_init (p);
  /* GOption copies the entries; their arg_data point into `o`. */
  g_option_context_add_main_entries (context, entries, NULL);
}

void
cli_sample_options_clear (CliSampleOptions *o)
{
  g_free (o->model);
  g_free (o->sampler);
  g_free (o->variance);
  g_free (o->spacing);
  g_free (o->precision);
}

gboolean
cli_sample_options_resolve (const CliSampleOptions *o,
                            DdpmSampleParams       *params,
                            GError                **error)
{
  DdpmSampleParams defaults;

  ddpm_sample_params_init (&defaults);
  *params = o->params;
  /* steps, η, threads: the engine's one check, which every front end
   * shares (its messages name the setting and the value). */
  if (!ddpm_sample_params_validate (params, error))
    return FALSE;
  /* The engine's default overlap is itself negative, and typing it in
   * means the default. */
  if (params->tile_overlap < 0 && params->tile_overlap != defaults.tile_overlap)
    {
      g_set_error (error, DDPM_ERROR, DDPM_ERROR_INVALID_ARGUMENT,
                   "--tile-overlap must be 0 or more pixels, not %d", params->tile_overlap);
      return FALSE;
    }
  if ((o->sampler && !ddpm_sampler_kind_from_string (o->sampler, &params->sampler, error))
      || (o->variance && !ddpm_variance_from_string (o->variance, &params->variance, error))
      || (o->spacing && !ddpm_spacing_from_string (o->spacing, &params->spacing, error))
      || (o->precision
          && !ddpm_precision_from_string (o->precision, &params->precision, error)))
    return FALSE;
  return TRUE;
}

DdpmModel *
cli_load_model (const char *path, GError **error)
{
  char *default_path = NULL;
  DdpmModel *model;

  if (path == NULL || *path == '\0')
    path = default_path = ddpm_model_default_path ();
  model = ddpm_model_load (path, error);
  if (model == NULL && default_path != NULL)
    g_prefix_error (error, "No model given (--model) and the default model "
                    "could not be loaded: ");
  /* --class checked against the model at once, before any image is read
   * or output written */
  if (model != NULL && class_label != CLASS_UNSET
      && !ddpm_model_set_class (model, class_label, error))
    {
      g_prefix_error (error, "--class: ");
      ddpm_model_free (model);
      model = NULL;
    }
  g_free (default_path);
  return model;
}

/* The image in the model's channels on the [−1, 1] scale: the image itself
 * when the channels agree (converted in place), else a new image.  A gray
 * image through an RGB model (or the reverse) runs in the model's
 * channels and comes back in its own (to_image_space). */
static DdpmImage *
to_model_space (DdpmModel *model, DdpmImage *image)
{
  const DdpmUNetConfig *config = ddpm_model_get_config (model);
  DdpmImage *work = image;

  if (image->channels != config->in_channels)
    work = ddpm_image_convert_channels (image, config->in_channels);

  gsize n = (gsize) work->channels * work->width * work->height;
  for (gsize i = 0; i < n; i++)
    work->pixels[i] = 2.0f * work->pixels[i] - 1.0f;
  return work;
}

/* Back to [0, 1] in the image's own channels; frees work if it is not the
 * image. */
static void
to_image_space (DdpmImage *image, DdpmImage *work)
{
  gsize n = (gsize) work->channels * work->width * work->height;
  for (gsize i = 0; i < n; i++)
    work->pixels[i] = CLAMP (0.5f * (work->pixels[i] + 1.0f), 0.0f, 1.0f);
  if (work != image)
    {
      DdpmImage *back = ddpm_image_convert_channels (work, image->channels);

      memcpy (image->pixels, back->pixels,
              sizeof (float) * image->channels * image->width * image->height);
      ddpm_image_free (back);
      ddpm_image_free (work);
    }
}

gboolean
cli_run_img2img (DdpmModel              *model,
                 DdpmImage              *image,
                 const float            *mask,
                 const DdpmSampleParams *params,
                 GError                **error)
{
  DdpmImage *work;
  DdpmDenoiser denoiser;
  gboolean ok;

  work = to_model_space (model, image);
  ddpm_model_get_denoiser (model, params->threads, &denoiser);
  ok = ddpm_img2img (work->pixels, mask, work->channels, work->height, work->width,
                     ddpm_model_get_schedule (model), &denoiser, params, error);
  to_image_space (image, work);
  return ok;
}

gboolean
cli_run_denoise (DdpmModel              *model,
                 DdpmImage              *image,
                 const float            *mask,
                 double                  sigma,
                 const DdpmSampleParams *params,
                 GError                **error)
{
  DdpmImage *work;
  DdpmDenoiser denoiser;
  gboolean ok;

  work = to_model_space (model, image);
  ddpm_model_get_denoiser (model, params->threads, &denoiser);
  ok = ddpm_denoise (work->pixels, mask, work->channels, work->height, work->width,
                     ddpm_model_get_schedule (model), &denoiser, sigma, params, error);
  to_image_space (image, work);
  return ok;
}

gboolean
cli_check_in_out (const char *command, int argc, char **argv, int bit_depth)
{
  if (argc != 3)
    {
      cli_fail (command, CLI_EXIT_USAGE, "expected an input and an output file, "
                "got %d file argument%s", argc - 1, argc == 2 ? "" : "s");
      return FALSE;
    }
  if (bit_depth != 8 && bit_depth != 16)
    {
      cli_fail (command, CLI_EXIT_USAGE, "--bit-depth must be 8 or 16, not %d", bit_depth);
      return FALSE;
    }
  return cli_check_png_out (command, argv[2]);
}

/* Only PNG is written: an output named .jpg (or anything else) would get
 * PNG bytes under a name that says otherwise, so it is refused before
 * any work.  A name without an extension is taken as it is. */
gboolean
cli_check_png_out (const char *command, const char *path)
{
  char *base = g_path_get_basename (path);
  const char *dot = strrchr (base, '.');
  gboolean ok = dot == NULL || dot == base || g_ascii_strcasecmp (dot, ".png") == 0;

  if (!ok)
    cli_fail (command, CLI_EXIT_USAGE, "%s: cannot write “%s” files, only PNG; "
              "name the output .png", path, dot + 1);
  g_free (base);
  return ok;
}
