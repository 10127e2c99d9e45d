/* plan.c: what a run will do, in the model's own terms, before it runs:
 * the timestep it starts from and the steps it takes.  The render job
 * plans with these functions, and the dialogs' plan line says the same in
 * words ("Noise to t = 400 of 1000, then 20 denoising steps"), so it
 * changes with the chosen model's schedule, and it is where a plan that
 * cannot run explains why (OK is then insensitive).
 *
 * Renoise and generate: SDEdit to t0 = round(strength·T) (Meng et al.
 * 2021; ddpm_img2img_plan).  Denoise: the t whose noise level
 * √(1/ᾱ_t − 1) is 2σ (ddpm_denoise_sigma_to_t; engine/denoise.c).  Either
 * way at most t distinct steps remain below the start.
 */
#include "core-private.h"

gboolean
plugin_denoise_plan (const DdpmSchedule *schedule,
                     gdouble             sigma,
                     gint                steps,
                     gint               *t,
                     gint               *n_steps,
                     GError            **error)
{
  double highest;

  g_return_val_if_fail (schedule != NULL, FALSE);

  /* The highest σ the schedule reaches, on the [0, 1] scale. */
  highest = schedule->sqrt_recipm1_alpha_bar[schedule->T] / 2.0;
  *t = *n_steps = 0;
  if (!plugin_check_sampling (0.0, steps, DDPM_SAMPLER_DDIM,
                              DDPM_PRECISION_AUTO, error))
    return FALSE;
  if (sigma <= 0.0)
    return TRUE;  /* nothing to remove */
  if (sigma > highest)
    {
      g_set_error (error, DDPM_ERROR, DDPM_ERROR_INVALID_ARGUMENT,
                   _("The noise level %.1f (of 255) is more than this model "
                     "can remove (at most %.1f)."),
                   sigma * 255.0, highest * 255.0);
      return FALSE;
    }
  *t = ddpm_denoise_sigma_to_t (schedule, sigma, error);
  *n_steps = MIN (steps, *t);
  return *t > 0;
}

gchar *
plugin_renoise_plan_text (const DdpmSchedule *schedule,
                          gboolean            generate,
                          gdouble             strength,
                          gint                steps,
                          GError            **error)
{
  int t0, n_steps;

  g_return_val_if_fail (schedule != NULL, NULL);

  if (!ddpm_img2img_plan (schedule, generate ? 1.0 : strength, steps,
                          &t0, &n_steps, error))
    return NULL;

  if (generate)
    /* TRANSLATORS: t is the diffusion timestep, the first %d the start,
     * the second the schedule's length, the third the number of steps. */
    return g_strdup_printf (g_dngettext (GETTEXT_PACKAGE,
                                         "Start from pure noise at t = %d of %d, "
                                         "then %d denoising step",
                                         "Start from pure noise at t = %d of %d, "
                                         "then %d denoising steps",
                                         n_steps),
                            t0, schedule->T, n_steps);
  if (t0 == 0)
    return g_strdup (_("Strength 0: the layer stays unchanged"));

  /* TRANSLATORS: t is the diffusion timestep: the layer is noised to step
   * t0 of T, then denoised back in n steps. */
  return g_strdup_printf (g_dngettext (GETTEXT_PACKAGE,
                                       "Noise to t = %d of %d, "
                                       "then %d denoising step",
                                       "Noise to t = %d of %d, "
                                       "then %d denoising steps",
                                       n_steps),
                          t0, schedule->T, n_steps);
}

gchar *
plugin_denoise_plan_text (const DdpmSchedule *schedule,
                          gdouble             sigma,
                          gboolean            estimating,
                          const gchar        *estimate_error,
                          gint                steps,
                          gboolean           *is_error)
{
  GError *error = NULL;
  gchar  *text;
  gint    t, n_steps;

  g_return_val_if_fail (schedule != NULL, NULL);

  *is_error = TRUE;
  if (estimating && estimate_error)
    return g_strdup_printf (_("Cannot estimate the noise: %s"), estimate_error);

  if (sigma <= 0.0)
    {
      if (!estimating)
        return g_strdup (_("Set a noise level above 0, or estimate it from "
                           "the layer."));
      *is_error = FALSE;
      return g_strdup (_("No noise found in the layer: it stays unchanged"));
    }

  if (!plugin_denoise_plan (schedule, sigma, steps, &t, &n_steps, &error))
    {
      text = g_strdup (error->message);
      g_error_free (error);
      return text;
    }

  *is_error = FALSE;
  /* TRANSLATORS: t is the diffusion timestep at which the noisy layer
   * enters the model's reverse process: the first %d is that t, the
   * second the schedule's length, the third the number of steps. */
  return g_strdup_printf (g_dngettext (GETTEXT_PACKAGE,
                                       "Start at t = %d of %d, "
                                       "then %d denoising step",
                                       "Start at t = %d of %d, "
                                       "then %d denoising steps",
                                       n_steps),
                          t, schedule->T, n_steps);
}
