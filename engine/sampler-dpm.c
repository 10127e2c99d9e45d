/* sampler-dpm.c: DPM-Solver++(2M), the multistep second-order solver of the
 * diffusion probability-flow ODE in data prediction (Lu et al. 2022,
 * "DPM-Solver++: Fast Solver for Guided Sampling of Diffusion Probabilistic
 * Models", Algorithm 2).
 *
 * With α = √ᾱ, σ = √(1−ᾱ) and λ = log(α/σ), the probability-flow ODE
 * written for the data prediction x_θ = (x − σ·ε_θ)/α has the exact
 * solution (their eq. 9)
 *
 *   x_t = (σ_t/σ_s)·x_s + σ_t·∫_{λ_s}^{λ_t} e^λ x_θ(x_λ, λ) dλ.
 *
 * Holding x_θ constant over the step (first order) gives, with
 * h = λ_t − λ_s,
 *
 *   x_t = (σ_t/σ_s)·x_s − α_t·(e^{−h} − 1)·x_θ(x_s),
 *
 * which is DDIM with η = 0 (their §3.2); letting x_θ vary linearly in λ
 * through the previous step's prediction gives the second-order
 * multistep update, with r = h_prev/h:
 *
 *   D = (1 + 1/(2r))·x_θ(x_s) − (1/(2r))·x_θ(x_prev),
 *   x_t = (σ_t/σ_s)·x_s − α_t·(e^{−h} − 1)·D.
 *
 * The solver runs on the respaced chain (ddpm_schedule_respace): its ᾱ'
 * are the base ᾱ at the kept timesteps, and the update depends only on
 * the λ of the endpoints, so it is exact to the chain's spacing.  The
 * first step has no previous prediction and is first order (Algorithm 2,
 * line 2).  The last step goes to ᾱ'_0 = 1, σ = 0, λ = +∞: h is infinite,
 * r = 0, and the second-order correction would be undefined; the first-order
 * step there is x_0 = x_θ(x_{t_1}) exactly (the "lower_order_final" of the
 * reference implementation, which for order 2 lowers exactly that one step,
 * and its denoise_to_zero).  One ε evaluation per step, as DDIM.
 */
#include <math.h>

#include "sampler-private.h"

int
ddpm_sampler_dpm_order (int i,
                        int n_steps)
{
  g_return_val_if_fail (i >= 1 && i <= n_steps, 1);
  return i < n_steps && i > 1 ? 2 : 1;
}

static inline double
clip_unit (double v)
{
  return v < -1.0 ? -1.0 : v > 1.0 ? 1.0 : v;
}

/* λ = log(α/σ) = ½·log(ᾱ/(1−ᾱ)) at chain index i (finite for i ≥ 1). */
static inline double
chain_lambda (const DdpmSchedule *s,
              int                 i)
{
  return log (s->sqrt_alpha_bar[i] / s->sqrt_one_minus_alpha_bar[i]);
}

void
ddpm_sampler_dpm_step (float              *x,
                       float              *x0_prev,
                       const float        *eps,
                       gsize               n,
                       const DdpmSchedule *s,
                       int                 i,
                       int                 order,
                       gboolean            clip_x0)
{
  g_return_if_fail (s != NULL && i >= 1 && i <= s->T && x0_prev != NULL);
  g_return_if_fail (order == 1 || (order == 2 && i > 1 && i < s->T));
  const double a = s->sqrt_recip_alpha_bar[i];
  const double b = s->sqrt_recipm1_alpha_bar[i];

  if (i == 1)
    {
      /* to σ = 0: x_0 = x_θ(x_{t_1}) (the limit h → ∞ of the first-order
       * step: σ_t/σ_s → 0, −α_t·(e^{−h} − 1) → 1) */
      for (gsize k = 0; k < n; k++)
        {
          double x0 = a * x[k] - b * eps[k];

          x[k] = (float) (clip_x0 ? clip_unit (x0) : x0);
        }
      return;
    }

  const double lambda_s = chain_lambda (s, i);
  const double lambda_t = chain_lambda (s, i - 1);
  const double h = lambda_t - lambda_s; /* > 0: the chain's ᾱ' decrease */
  const double ratio = s->sqrt_one_minus_alpha_bar[i - 1]
                       / s->sqrt_one_minus_alpha_bar[i];
  /* −α_t·(e^{−h} − 1) with expm1: h is small for many steps */
  const double coef = -s->sqrt_alpha_bar[i - 1] * expm1 (-h);
  /* 1/(2r) with r = h_prev/h, h_prev the step from i + 1 to i */
  const double half_inv_r = order == 2
    ? 0.5 * h / (lambda_s - chain_lambda (s, i + 1)) : 0.0;

  for (gsize k = 0; k < n; k++)
    {
      double x0 = a * x[k] - b * eps[k];

      if (clip_x0)
        x0 = clip_unit (x0);
      double d = order == 2 ? x0 + half_inv_r * (x0 - x0_prev[k]) : x0;
      x[k] = (float) (ratio * x[k] + coef * d);
      x0_prev[k] = (float) x0;
    }
}
