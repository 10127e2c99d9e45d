/* denoise.c: plug-in-ddpm-denoise, removing white Gaussian noise from the
 * layer (or selection) with the diffusion model (issue #7).
 *
 * A photo y = x + σ·n is, scaled by √ᾱ_t, the model's diffusion state at
 * the t whose noise level √(1/ᾱ_t − 1) is 2σ (engine/denoise.c explains
 * why); the engine's ddpm_denoise starts the reverse chain there without
 * adding noise.  This file adds what GIMP needs around it: the PDB
 * arguments and run modes, σ estimated from the layer when the user gives
 * none (ddpm_estimate_noise_sigma), and the translated errors.  Pixels,
 * selection, context, shadow buffer, undo, progress and preview are the
 * renoise procedure's, through plugin_render_job (plugin.c).
 *
 * σ is on the [0, 1] pixel scale in the PDB and in the values (as the
 * `ddpm denoise --sigma` of the command line); the dialog shows it in the
 * 0–255 levels GIMP users think in.  σ <= 0 means "estimate it".
 */
#include "config.h"

#include <math.h>
#include <string.h>

#include "ddpm.h"
#include "pixels.h"
#include "plugin.h"
#include "ui.h"

static const PluginDenoiseValues denoise_defaults =
{
  "",                /* model: the default one */
  0.0,               /* sigma: estimate it */
  5,                 /* steps: the models/README measurements use 5 */
  0,                 /* seed */
  TRUE,              /* random_seed */
  DDPM_SAMPLER_DDIM, /* sampler: deterministic, the better PSNR */
};

gboolean
plugin_denoise_estimate (gint32   drawable_id,
                         gdouble *sigma,
                         GError **error)
{
  GeglRectangle target;
  PluginPixels *pixels;
  float *tensor;
  double s = 0.0;
  gboolean ok;

  g_return_val_if_fail (sigma != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  *sigma = 0.0;
  if (!plugin_render_target (drawable_id, NULL, &target)
      || target.width < 2 || target.height < 2)
    return TRUE;  /* no pixels (or too few) to find noise in */

  pixels = plugin_pixels_read (drawable_id, &target, error);
  if (pixels == NULL)
    return FALSE;
  /* The layer's own channels, so that σ is what the user sees in it
   * (the tensor is on [−1, 1]: twice the pixel scale). */
  tensor = plugin_pixels_to_tensor (pixels, pixels->n_color);
  if (tensor == NULL)
    {
      g_set_error (error, DDPM_ERROR, DDPM_ERROR_NO_MEMORY,
                   _("Not enough memory for a %d × %d region: select a "
                     "smaller part of the layer."),
                   target.width, target.height);
      plugin_pixels_free (pixels);
      return FALSE;
    }
  ok = ddpm_estimate_noise_sigma (tensor, pixels->n_color, target.height,
                                  target.width, &s, error);
  g_free (tensor);
  plugin_pixels_free (pixels);
  if (ok)
    *sigma = s / 2.0;
  return ok;
}

/* The job's data: σ on the [0, 1] scale, already estimated if it had to
 * be; 0 means no noise was found. */
static gboolean
denoise_plan (const DdpmSchedule *schedule,
              gint                steps,
              gpointer            data,
              int                *n_steps,
              GError            **error)
{
  double sigma = *(const double *) data;
  double highest = schedule->sqrt_recipm1_alpha_bar[schedule->T] / 2.0;

  if (steps < 1)
    {
      g_set_error (error, DDPM_ERROR, DDPM_ERROR_INVALID_ARGUMENT,
                   _("The number of steps must be at least 1, not %d."), steps);
      return FALSE;
    }
  if (sigma <= 0.0)
    {
      *n_steps = 0;  /* nothing to remove */
      return TRUE;
    }
  if (sigma > highest)
    {
      g_set_error (error, DDPM_ERROR, DDPM_ERROR_INVALID_ARGUMENT,
                   _("The noise level %.1f (of 255) is more than this model "
                     "can remove (at most %.1f)."),
                   sigma * 255.0, highest * 255.0);
      return FALSE;
    }
  *n_steps = MIN (steps, ddpm_denoise_sigma_to_t (schedule, sigma, error));
  return *n_steps > 0;
}

static gboolean
denoise_run (float                  *image,
             const float            *mask,
             int                     C,
             int                     H,
             int                     W,
             const DdpmSchedule     *schedule,
             const DdpmDenoiser     *denoiser,
             const DdpmSampleParams *params,
             gpointer                data,
             GError                **error)
{
  return ddpm_denoise (image, mask, C, H, W, schedule, denoiser,
                       *(const double *) data, params, error);
}

gboolean
plugin_denoise_render (gint32                     drawable_id,
                       const PluginDenoiseValues *vals,
                       GimpPreview               *preview,
                       GError                   **error)
{
  PluginRenderJob job = { 0 };
  double sigma;

  g_return_val_if_fail (vals != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  sigma = vals->sigma;
  /* Estimated over the whole target, also for a preview, so that the
   * preview shows what OK will do.  (The dialog passes its estimate.) */
  if (!(sigma > 0.0) && !plugin_denoise_estimate (drawable_id, &sigma, error))
    return FALSE;

  job.model = vals->model;
  job.sampler = vals->sampler;
  job.steps = vals->steps;
  job.seed = vals->seed;
  job.keep_chroma = TRUE;
  job.progress_title = _("Denoising");
  job.plan = denoise_plan;
  job.run = denoise_run;
  job.data = &sigma;
  return plugin_render_job (drawable_id, &job, preview, error);
}

GimpPDBStatusType
plugin_denoise_run (GimpRunMode      run_mode,
                    gint             nparams,
                    const GimpParam *param,
                    GError         **error)
{
  gint32 drawable_id = param[2].data.d_drawable;
  PluginDenoiseValues vals = denoise_defaults;

  gimp_get_data (DENOISE_PROC, &vals);

  switch (run_mode)
    {
    case GIMP_RUN_INTERACTIVE:
      if (!ui_denoise_dialog (drawable_id, &vals))
        return GIMP_PDB_CANCEL;
      break;

    case GIMP_RUN_NONINTERACTIVE:
      if (nparams != 8)
        {
          g_set_error (error, DDPM_ERROR, DDPM_ERROR_INVALID_ARGUMENT,
                       _("%s takes %d arguments, not %d."),
                       DENOISE_PROC, 8, nparams);
          return GIMP_PDB_CALLING_ERROR;
        }
      if (!plugin_copy_string (vals.model, sizeof vals.model,
                               param[3].data.d_string, "model", error))
        return GIMP_PDB_CALLING_ERROR;
      vals.sigma = param[4].data.d_float;
      vals.steps = param[5].data.d_int32;
      vals.seed = (guint32) param[6].data.d_int32;
      vals.random_seed = FALSE;
      vals.sampler = param[7].data.d_int32;
      if (isnan (vals.sigma) || vals.sigma > 1.0)
        {
          g_set_error (error, DDPM_ERROR, DDPM_ERROR_INVALID_ARGUMENT,
                       _("The noise level must be at most 1 on the 0–1 pixel "
                         "scale (25/255 ≈ 0.098 for noise of 25 levels), or 0 "
                         "to estimate it, not %g."), vals.sigma);
          return GIMP_PDB_CALLING_ERROR;
        }
      if (vals.sigma < 0.0)
        vals.sigma = 0.0;
      if (vals.steps < 1)
        {
          g_set_error (error, DDPM_ERROR, DDPM_ERROR_INVALID_ARGUMENT,
                       _("The number of steps must be at least 1, not %d."),
                       vals.steps);
          return GIMP_PDB_CALLING_ERROR;
        }
      break;

    case GIMP_RUN_WITH_LAST_VALS:
      if (vals.random_seed)
        vals.seed = g_random_int ();
      break;
    }

  if (!plugin_denoise_render (drawable_id, &vals, NULL, error))
    return GIMP_PDB_EXECUTION_ERROR;

  gimp_set_data (DENOISE_PROC, &vals, sizeof vals);
  if (run_mode != GIMP_RUN_NONINTERACTIVE)
    gimp_displays_flush ();
  return GIMP_PDB_SUCCESS;
}
