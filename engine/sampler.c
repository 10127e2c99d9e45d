/* sampler.c: the reverse process, one step at a time.
 *
 * Two samplers here (and DPM-Solver++(2M) in sampler-dpm.c) share the
 * ε-predictor ε_θ(x_t, t):
 *
 *   DDPM ancestral (Ho et al. 2020, Algorithm 2) written through the
 *   predicted x̂0 and the posterior q(x_{t−1}|x_t, x̂0) (eqs. 6–7), which is
 *   the same step as Algorithm 2 when nothing is clipped, and lets x̂0 be
 *   clipped to the data range when something is.
 *
 *   The same DDPM step with the variance a learn_sigma network predicts
 *   (Nichol & Dhariwal 2021, eq. 15): per element, log σ² interpolates
 *   log β and log β̃ of the respaced chain.
 *
 *   DDIM (Song et al. 2021, eq. 12), with η ∈ [0, 1] moving from the
 *   deterministic implicit model (η = 0) to a DDPM-like chain (η = 1).
 *
 * Both run on a respaced chain (Nichol & Dhariwal 2021, §4): the caller
 * passes the respaced schedule and the step index i; the chain's ᾱ' are the
 * base ᾱ at the kept timesteps, so the same formulas serve T = 1000 and
 * 20-step sampling.  The driver (tiles, masks, threads, noise keys) is in
 * img2img.c.  Per-element arithmetic is in double: at t near T,
 * √(1/ᾱ) ≈ 140 and x̂0 = 140·x − 140·ε cancels two digits in float.
 */
#include <math.h>

#include "names.h"
#include "sampler-private.h"

static const char *const sampler_names[DDPM_SAMPLER_COUNT] = {
  [DDPM_SAMPLER_DDPM] = "ddpm",
  [DDPM_SAMPLER_DDIM] = "ddim",
  [DDPM_SAMPLER_DPM_2M] = "dpm++2m",
};

static const char *const variance_names[DDPM_VARIANCE_COUNT] = {
  [DDPM_VARIANCE_POSTERIOR] = "posterior",
  [DDPM_VARIANCE_BETA] = "beta",
};

const char *
ddpm_sampler_kind_name (DdpmSamplerKind kind)
{
  g_return_val_if_fail (kind >= 0 && kind < DDPM_SAMPLER_COUNT, NULL);
  return sampler_names[kind];
}

gboolean
ddpm_sampler_kind_from_string (const char       *name,
                               DdpmSamplerKind  *kind,
                               GError          **error)
{
  int value;

  g_return_val_if_fail (kind != NULL, FALSE);
  if (!ddpm_name_lookup (sampler_names, DDPM_SAMPLER_COUNT, "sampler",
                    name, &value, error))
    return FALSE;
  *kind = (DdpmSamplerKind) value;
  return TRUE;
}

const char *
ddpm_variance_name (DdpmVariance variance)
{
  g_return_val_if_fail (variance >= 0 && variance < DDPM_VARIANCE_COUNT, NULL);
  return variance_names[variance];
}

gboolean
ddpm_variance_from_string (const char    *name,
                           DdpmVariance  *variance,
                           GError       **error)
{
  int value;

  g_return_val_if_fail (variance != NULL, FALSE);
  if (!ddpm_name_lookup (variance_names, DDPM_VARIANCE_COUNT, "sampler variance",
                    name, &value, error))
    return FALSE;
  *variance = (DdpmVariance) value;
  return TRUE;
}

gboolean
ddpm_sampler_step_needs_noise (const DdpmSampleParams *params,
                               int                     i)
{
  if (i <= 1)
    return FALSE;
  if (params->sampler == DDPM_SAMPLER_DDIM)
    return params->eta > 0.0;
  return params->sampler == DDPM_SAMPLER_DDPM;
}

static inline double
clip_unit (double v)
{
  return v < -1.0 ? -1.0 : v > 1.0 ? 1.0 : v;
}

/* Ho et al. 2020, Algorithm 2 via eqs. 6–7 and 15 (x̂0 from ε). */
void
ddpm_sampler_ddpm_step (float              *x,
                        const float        *eps,
                        const float        *noise,
                        gsize               n,
                        const DdpmSchedule *s,
                        int                 i,
                        DdpmVariance        variance,
                        gboolean            clip_x0)
{
  g_return_if_fail (s != NULL && i >= 1 && i <= s->T);
  const double a = s->sqrt_recip_alpha_bar[i];
  const double b = s->sqrt_recipm1_alpha_bar[i];
  const double c0 = s->posterior_mean_coef_x0[i];
  const double ct = s->posterior_mean_coef_xt[i];
  /* no noise at the last step: x_0 is the posterior mean (Algorithm 2, z = 0
   * at t = 1) */
  const double sigma = i > 1 && noise != NULL
    ? sqrt (variance == DDPM_VARIANCE_BETA ? s->beta[i]
                                            : s->posterior_variance[i])
    : 0.0;

  for (gsize k = 0; k < n; k++)
    {
      double xt = x[k];
      double x0 = a * xt - b * eps[k];

      if (clip_x0)
        x0 = clip_unit (x0);
      double mean = c0 * x0 + ct * xt;
      x[k] = (float) (sigma > 0.0 ? mean + sigma * noise[k] : mean);
    }
}

/* Nichol & Dhariwal 2021, eq. 15, on the respaced chain: β'_i and β̃'_i
 * are the chain's own (improved-diffusion respaces the betas and rebuilds
 * every table from them), and β̃'_1 = 0 is replaced by β̃'_2 (its
 * posterior_log_variance_clipped, which the schedule keeps). */
static inline double
learned_log_variance (double log_beta, double log_posterior, double v)
{
  const double frac = 0.5 * (v + 1.0);

  return frac * log_beta + (1.0 - frac) * log_posterior;
}

double
ddpm_sampler_learned_log_variance (const DdpmSchedule *s,
                                   int                 i,
                                   double              v)
{
  g_return_val_if_fail (s != NULL && i >= 1 && i <= s->T, 0.0);
  return learned_log_variance (s->log_beta[i], s->posterior_log_variance_clipped[i], v);
}

/* Ho et al. 2020, Algorithm 2 via eqs. 6–7, with the variance of Nichol &
 * Dhariwal 2021, eq. 15 (improved-diffusion's p_mean_variance for
 * LEARNED_RANGE, then p_sample). */
void
ddpm_sampler_ddpm_step_learned (float              *x,
                                const float        *eps,
                                const float        *v,
                                const float        *noise,
                                gsize               n,
                                const DdpmSchedule *s,
                                int                 i,
                                gboolean            clip_x0)
{
  g_return_if_fail (s != NULL && i >= 1 && i <= s->T && v != NULL);
  const double a = s->sqrt_recip_alpha_bar[i];
  const double b = s->sqrt_recipm1_alpha_bar[i];
  const double c0 = s->posterior_mean_coef_x0[i];
  const double ct = s->posterior_mean_coef_xt[i];
  /* no noise at the last step (Algorithm 2, z = 0 at t = 1) */
  const gboolean add_noise = i > 1 && noise != NULL;
  const double log_beta = s->log_beta[i];
  const double log_posterior = s->posterior_log_variance_clipped[i];

  for (gsize k = 0; k < n; k++)
    {
      double xt = x[k];
      double x0 = a * xt - b * eps[k];

      if (clip_x0)
        x0 = clip_unit (x0);
      double mean = c0 * x0 + ct * xt;
      if (add_noise)
        mean += exp (0.5 * learned_log_variance (log_beta, log_posterior, v[k])) * noise[k];
      x[k] = (float) mean;
    }
}

/* Song et al. 2021, eq. 12 (σ from eq. 16 scaled by η). */
void
ddpm_sampler_ddim_step (float              *x,
                        const float        *eps,
                        const float        *noise,
                        gsize               n,
                        const DdpmSchedule *s,
                        int                 i,
                        double              eta,
                        gboolean            clip_x0)
{
  g_return_if_fail (s != NULL && i >= 1 && i <= s->T);
  const double ab = s->alpha_bar[i];
  const double ab_prev = s->alpha_bar[i - 1];
  const double a = s->sqrt_recip_alpha_bar[i];
  const double b = s->sqrt_recipm1_alpha_bar[i];
  const double sqrt_ab = s->sqrt_alpha_bar[i];
  const double inv_sqrt_1mab = 1.0 / s->sqrt_one_minus_alpha_bar[i];
  const double sqrt_ab_prev = sqrt (ab_prev);
  /* σ_i(η) = η·√((1−ᾱ_prev)/(1−ᾱ))·√(1−ᾱ/ᾱ_prev); 0 at i = 1 (ᾱ_prev = 1) */
  const double sigma = eta * sqrt ((1.0 - ab_prev) / (1.0 - ab))
                           * sqrt (1.0 - ab / ab_prev);
  /* the "direction pointing to x_t": √(1 − ᾱ_prev − σ²), ≥ 0 since
   * σ² ≤ (1 − ᾱ_prev)(1 − ᾱ/ᾱ_prev) ≤ 1 − ᾱ_prev */
  const double dir = sqrt (MAX (0.0, 1.0 - ab_prev - sigma * sigma));
  const gboolean add_noise = sigma > 0.0 && noise != NULL;

  for (gsize k = 0; k < n; k++)
    {
      double xt = x[k];
      double e = eps[k];
      double x0 = a * xt - b * e;

      if (clip_x0)
        {
          x0 = clip_unit (x0);
          /* ε consistent with the clipped x̂0: (x_t − √ᾱ·x̂0)/√(1−ᾱ) */
          e = (xt - sqrt_ab * x0) * inv_sqrt_1mab;
        }
      double v = sqrt_ab_prev * x0 + dir * e;
      x[k] = (float) (add_noise ? v + sigma * noise[k] : v);
    }
}
