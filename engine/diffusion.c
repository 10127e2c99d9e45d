/* diffusion.c: the forward process q(x_t|x_0) and the posterior
 * q(x_{t−1}|x_t, x_0) on float tensors (Ho et al. 2020, §2 and §3.2).
 *
 * The coefficients come from the schedule's double tables and are rounded
 * to float once per call; the elementwise work is in float.
 */
#include "ddpm.h"

static gboolean
t_in_range (const DdpmSchedule *s, int t, int lowest)
{
  return s != NULL && t >= lowest && t <= s->T;
}

/* Ho et al. 2020, eq. 4 reparameterised: x_t = √ᾱ_t·x_0 + √(1−ᾱ_t)·ε. */
void
ddpm_q_sample (float              *out,
               const float        *x0,
               const float        *eps,
               gsize               n,
               const DdpmSchedule *schedule,
               int                 t)
{
  g_return_if_fail (t_in_range (schedule, t, 0));
  const float a = (float) schedule->sqrt_alpha_bar[t];
  const float b = (float) schedule->sqrt_one_minus_alpha_bar[t];

  for (gsize i = 0; i < n; i++)
    out[i] = a * x0[i] + b * eps[i];
}

/* Solve eq. 4 for x_0: x_0 = √(1/ᾱ_t)·x_t − √(1/ᾱ_t − 1)·ε (as in the
 * reference code, predict_start_from_noise). */
void
ddpm_predict_x0_from_eps (float              *out,
                          const float        *xt,
                          const float        *eps,
                          gsize               n,
                          const DdpmSchedule *schedule,
                          int                 t)
{
  g_return_if_fail (t_in_range (schedule, t, 0));
  const float a = (float) schedule->sqrt_recip_alpha_bar[t];
  const float b = (float) schedule->sqrt_recipm1_alpha_bar[t];

  for (gsize i = 0; i < n; i++)
    out[i] = a * xt[i] - b * eps[i];
}

/* Solve eq. 4 for ε: ε = (x_t − √ᾱ_t·x_0)/√(1−ᾱ_t). */
void
ddpm_predict_eps_from_x0 (float              *out,
                          const float        *xt,
                          const float        *x0,
                          gsize               n,
                          const DdpmSchedule *schedule,
                          int                 t)
{
  g_return_if_fail (t_in_range (schedule, t, 1));
  const float a = (float) schedule->sqrt_alpha_bar[t];
  const float inv = (float) (1.0 / schedule->sqrt_one_minus_alpha_bar[t]);

  for (gsize i = 0; i < n; i++)
    out[i] = (xt[i] - a * x0[i]) * inv;
}

/* Ho et al. 2020, eqs. 6–7: μ̃_t = coef_x0·x_0 + coef_xt·x_t, var β̃_t. */
void
ddpm_q_posterior (float              *mean,
                  double             *variance,
                  double             *log_variance_clipped,
                  const float        *x0,
                  const float        *xt,
                  gsize               n,
                  const DdpmSchedule *schedule,
                  int                 t)
{
  g_return_if_fail (t_in_range (schedule, t, 1));
  const float c0 = (float) schedule->posterior_mean_coef_x0[t];
  const float ct = (float) schedule->posterior_mean_coef_xt[t];

  if (mean != NULL)
    for (gsize i = 0; i < n; i++)
      mean[i] = c0 * x0[i] + ct * xt[i];
  if (variance != NULL)
    *variance = schedule->posterior_variance[t];
  if (log_variance_clipped != NULL)
    *log_variance_clipped = schedule->posterior_log_variance_clipped[t];
}
