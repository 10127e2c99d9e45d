/* spacing-karras.c: the Karras timestep spacing (Karras et al. 2022,
 * "Elucidating the Design Space of Diffusion-Based Generative Models",
 * eq. 5) on a discrete schedule.
 *
 * Karras et al. parametrise the noise by σ = √((1−ᾱ)/ᾱ) (the noise of
 * x/√ᾱ) and take N levels evenly spaced in σ^(1/ρ), ρ = 7, from σ_max to
 * σ_min:
 *
 *   σ_i = (σ_max^(1/ρ) + i/(N−1)·(σ_min^(1/ρ) − σ_max^(1/ρ)))^ρ,
 *
 * which puts more steps at low noise than trailing spacing does.  Here
 * σ_max = σ(t_max) (the top of the chain, so img2img starts where its
 * strength says) and σ_min = σ(1), the least noise the model was trained
 * at.
 *
 * Each σ_i is mapped to the base timestep whose σ is NEAREST in log σ
 * (the levels are geometric-like, so distance in log σ is the natural
 * one).  Not interpolated: the denoisers are evaluated at integer
 * timesteps (the trained embeddings), and the respaced chain takes the
 * base ᾱ at the kept timesteps, so with a rounded timestep the model, the
 * chain's ᾱ' and the solver's λ all describe the same noise level; an
 * interpolated fractional t would give the solver a σ the model was
 * never told.  The cost is that the levels deviate slightly from eq. 5
 * (by at most half a timestep's change in log σ).
 *
 * Near σ_min several σ_i can round to the same timestep when N is large
 * against t_max (eq. 5 spaces the low end more densely than one timestep).
 * The levels are then made strictly increasing with the fewest changes
 * that keep them in 1..t_max: up from the bottom (each at least one above
 * the one below), then down from the top (each at least one below the one
 * above, the top pinned at t_max); for N = t_max that is every timestep.
 */
#include <math.h>

#include "ddpm.h"
#include "intl.h"

#define KARRAS_RHO 7.0

/* The t in [1, t_max] whose σ(t) = sqrt_recipm1_alpha_bar[t] is nearest to
 * `sigma` in log σ; σ(t) increases with t. */
static int
nearest_timestep (const DdpmSchedule *base,
                  int                 t_max,
                  double              sigma)
{
  const double *lvl = base->sqrt_recipm1_alpha_bar;
  int lo = 1, hi = t_max;

  /* the last t with σ(t) ≤ sigma (or 1) */
  while (lo < hi)
    {
      int mid = lo + (hi - lo + 1) / 2;

      if (lvl[mid] <= sigma)
        lo = mid;
      else
        hi = mid - 1;
    }
  if (lo < t_max
      && fabs (log (lvl[lo + 1] / sigma)) < fabs (log (lvl[lo] / sigma)))
    return lo + 1;
  return lo;
}

gboolean
ddpm_spacing_karras_timesteps (int                *out,
                               const DdpmSchedule *base,
                               int                 t_max,
                               int                 n_steps,
                               GError            **error)
{
  g_return_val_if_fail (out != NULL && base != NULL, FALSE);

  if (t_max < 1 || t_max > base->T)
    {
      g_set_error (error, DDPM_ERROR, DDPM_ERROR_INVALID_ARGUMENT,
                   _("The starting timestep must be between 1 and %d, not %d."),
                   base->T, t_max);
      return FALSE;
    }
  if (n_steps < 1 || n_steps > t_max)
    {
      g_set_error (error, DDPM_ERROR, DDPM_ERROR_INVALID_ARGUMENT,
                   _("Cannot run %d steps between t = 1 and t = %d: choose "
                     "between 1 and %d steps."), n_steps, t_max, t_max);
      return FALSE;
    }

  const double root_max = pow (base->sqrt_recipm1_alpha_bar[t_max], 1.0 / KARRAS_RHO);
  const double root_min = pow (base->sqrt_recipm1_alpha_bar[1], 1.0 / KARRAS_RHO);

  out[0] = 0;
  /* out[n_steps − i] is level i of eq. 5 (i = 0 at the top) */
  for (int i = 0; i < n_steps; i++)
    {
      double frac = n_steps == 1 ? 0.0 : (double) i / (n_steps - 1);
      double sigma = pow (root_max + frac * (root_min - root_max), KARRAS_RHO);

      out[n_steps - i] = nearest_timestep (base, t_max, sigma);
    }

  /* strictly increasing within 1..t_max (see the top of the file) */
  for (int k = 1; k <= n_steps; k++)
    out[k] = MAX (out[k], out[k - 1] + 1);
  out[n_steps] = t_max;
  for (int k = n_steps - 1; k >= 1; k--)
    out[k] = MIN (out[k], out[k + 1] - 1);
  for (int k = 1; k <= n_steps; k++)
    g_assert (out[k] > out[k - 1] && out[k] <= t_max);
  return TRUE;
}
