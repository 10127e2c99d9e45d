/* render.c: the render job, one run of the model over a layer's region,
 * shared by every procedure that renders (renoise, generate, denoise) and
 * by the dialogs' previews.  The front end does the pixel I/O (GIMP 2.10:
 * plugin/gimp2/render.c); this file decides everything else: the model,
 * the plan, the context around a selection, the sampler's parameters, the
 * engine call, progress, and what the pixels become.
 *
 * HOW A RENDER WORKS
 *
 * The target is the selection's bounds on the layer (or the preview's
 * visible rectangle).  With a selection, the engine is given a margin of
 * context around it, with mask 0 there, so that what it generates agrees
 * with the surroundings: at every step the unselected pixels are held at
 * the forward-noised original.  The engine returns
 *     final = m·generated + (1 − m)·original,
 * but GIMP applies the selection itself when the shadow buffer is merged
 * (and the drawable preview does the same when drawing), so we hand GIMP
 *     generated = (final − (1 − m)·original) / m        (m > 0)
 * and a feathered edge is blended once, not twice.  Pixels outside the
 * selection are never written: the merge leaves them bit for bit.
 * Strength 0 (or a denoise that finds no noise) is no work at all
 * (n_steps 0), so the layer stays bit for bit too.
 */
#include "core-private.h"

#include <string.h>

void
plugin_render_job_init_renoise (PluginRenderJob           *job,
                                const PluginRenoiseValues *vals,
                                gboolean                   generate)
{
  g_return_if_fail (job != NULL && vals != NULL);

  memset (job, 0, sizeof *job);
  job->kind = generate ? PLUGIN_RENDER_GENERATE : PLUGIN_RENDER_RENOISE;
  job->model = vals->model;
  job->sampler = vals->sampler;
  job->precision = vals->precision;
  job->steps = vals->steps;
  job->seed = vals->seed;
  job->strength = generate ? 1.0 : vals->strength;
  job->keep_chroma = !generate;
  job->progress_title = generate ? _("Generating") : _("Renoising");
}

void
plugin_render_job_init_denoise (PluginRenderJob           *job,
                                const PluginDenoiseValues *vals,
                                gdouble                    sigma)
{
  g_return_if_fail (job != NULL && vals != NULL);

  memset (job, 0, sizeof *job);
  job->kind = PLUGIN_RENDER_DENOISE;
  job->model = vals->model;
  job->sampler = vals->sampler;
  job->precision = vals->precision;
  job->steps = vals->steps;
  job->seed = vals->seed;
  job->sigma = sigma;
  job->keep_chroma = TRUE;
  job->progress_title = _("Denoising");
}

gboolean
plugin_render_job_check (const PluginRenderJob *job,
                         GError               **error)
{
  g_return_val_if_fail (job != NULL, FALSE);

  if (job->sampler < 0 || job->sampler >= DDPM_SAMPLER_COUNT)
    {
      g_set_error (error, DDPM_ERROR, DDPM_ERROR_INVALID_ARGUMENT,
                   _("Unknown sampler %d: use 0 (DDPM), 1 (DDIM) or 2 (DPM-Solver++)."),
                   job->sampler);
      return FALSE;
    }
  return TRUE;
}

gboolean
plugin_render_job_plan (const PluginRenderJob *job,
                        PluginRenderPlan      *plan,
                        GError               **error)
{
  int t;
  gboolean ok;

  g_return_val_if_fail (job != NULL && plan != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  memset (plan, 0, sizeof *plan);
  plan->model = plugin_model_get (job->model, error);
  if (plan->model == NULL)
    return FALSE;
  plan->schedule = ddpm_model_get_schedule (plan->model);

  if (job->kind == PLUGIN_RENDER_DENOISE)
    ok = plugin_denoise_plan (plan->schedule, job->sigma, job->steps,
                              &t, &plan->n_steps, error);
  else
    ok = ddpm_img2img_plan (plan->schedule, job->strength, job->steps,
                            &t, &plan->n_steps, error);
  if (!ok)
    return FALSE;

  if (plan->n_steps > 0)
    {
      ddpm_model_get_denoiser (plan->model, 0, &plan->denoiser);
      plan->channels = plan->denoiser.channels;
      /* Half a tile of context: what the model sees around a pixel. */
      plan->margin = plan->denoiser.tile_size > 0
                     ? plan->denoiser.tile_size / 2 : 16;
    }
  return TRUE;
}

gboolean
plugin_render_context (const PluginRenderPlan *plan,
                       const PluginRect       *target,
                       gint                    width,
                       gint                    height,
                       gboolean                has_selection,
                       PluginRect             *context,
                       GError                **error)
{
  gint x0, y0, x1, y1;

  g_return_val_if_fail (plan != NULL && target != NULL && context != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  *context = *target;
  if (has_selection)
    {
      /* in 64 bits: a target near G_MAXINT plus the margin must not wrap */
      x0 = (gint) MAX ((gint64) target->x - plan->margin, 0);
      y0 = (gint) MAX ((gint64) target->y - plan->margin, 0);
      x1 = (gint) MIN ((gint64) target->x + target->width + plan->margin, width);
      y1 = (gint) MIN ((gint64) target->y + target->height + plan->margin, height);
      *context = (PluginRect) { x0, y0, MAX (x1 - x0, 0), MAX (y1 - y0, 0) };
    }

  return plugin_region_check (context->width, context->height, plan->channels, error);
}

gboolean
plugin_region_check (gint     width,
                     gint     height,
                     gint     channels,
                     GError **error)
{
  /* the layer's pixels are read as colour planes with alpha beside them */
  return ddpm_limits_check_image (width, height, MAX (channels, 1), TRUE,
                                  _("The area to work on"), error);
}

/* The engine composited final = m·generated + (1 − m)·original; give back
 * generated, for a merge that applies m itself (see the top). */
static void
unmix_selection (float       *planes,
                 const float *original,
                 const float *mask,
                 gint         channels,
                 gsize        n)
{
  for (int c = 0; c < channels; c++)
    for (gsize i = 0; i < n; i++)
      {
        float m = mask[i];
        gsize k = c * n + i;

        planes[k] = m > 0.0f ? (planes[k] - (1.0f - m) * original[k]) / m
                             : original[k];
      }
}

gboolean
plugin_render_job_run (const PluginRenderJob  *job,
                       const PluginRenderPlan *plan,
                       float                  *planes,
                       const float            *original,
                       const float            *mask,
                       gint                    height,
                       gint                    width,
                       PluginProgressFunc      progress,
                       gpointer                progress_data,
                       GError                **error)
{
  DdpmSampleParams params;
  PluginProgress state;
  gint C;
  gboolean ok;

  g_return_val_if_fail (job != NULL && plan != NULL, FALSE);
  g_return_val_if_fail (plan->n_steps > 0, FALSE);
  g_return_val_if_fail (planes != NULL && original != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  C = plan->channels;
  ddpm_sample_params_init (&params);
  params.sampler = job->sampler;
  params.precision = (DdpmPrecision) job->precision;
  params.steps = job->steps;
  params.seed = job->seed;
  if (progress != NULL)
    {
      params.progress = plugin_progress_engine;
      params.progress_data = &state;
      plugin_progress_begin (&state, progress, progress_data, FALSE,
                             job->progress_title);
    }

  if (job->kind == PLUGIN_RENDER_DENOISE)
    ok = ddpm_denoise (planes, mask, C, height, width, plan->schedule,
                       &plan->denoiser, job->sigma, &params, error);
  else
    {
      params.strength = job->strength;
      ok = ddpm_img2img (planes, mask, C, height, width, plan->schedule,
                         &plan->denoiser, &params, error);
    }
  if (!ok)
    return FALSE;

  if (mask != NULL)
    unmix_selection (planes, original, mask, C, (gsize) height * width);
  return TRUE;
}

gboolean
plugin_estimate_noise (const float *planes,
                       gint         channels,
                       gint         height,
                       gint         width,
                       gdouble     *sigma,
                       GError     **error)
{
  double s = 0.0;

  g_return_val_if_fail (sigma != NULL, FALSE);

  *sigma = 0.0;
  if (width < 2 || height < 2)
    return TRUE;  /* too few pixels to find noise in */
  if (!ddpm_estimate_noise_sigma (planes, channels, height, width, &s, error))
    return FALSE;
  /* The planes are on [−1, 1]: twice the pixel scale. */
  *sigma = s / 2.0;
  return TRUE;
}
