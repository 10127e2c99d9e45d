/* denoise.c: removing white Gaussian noise from a photo with the diffusion
 * model, and estimating how much noise a photo carries.
 *
 * HOW IT WORKS
 *
 * A photo y = x + σ·n (n ~ N(0, I), pixels on the [0, 1] scale) is, on the
 * model's [−1, 1] scale, y' = x' + 2σ·n.  Scaled by √ᾱ_t it reads
 *   √ᾱ_t·y' = √ᾱ_t·x' + √ᾱ_t·2σ·n,
 * which is exactly a diffusion state x_t (Ho et al. 2020, eq. 4) when
 * √ᾱ_t·2σ = √(1 − ᾱ_t), i.e. √(1/ᾱ_t − 1) = 2σ.  So the photo needs no
 * fresh noise: pick that t, start from x_t = √ᾱ_t·y' and run the reverse
 * chain to 0 (img2img with t_start = t and add_noise = FALSE).  This is
 * the observation behind SDEdit's "noisy input" case (Meng et al. 2021,
 * §3) and DDRM's denoising special case (Kawar et al. 2022, §4.3).
 *
 * t is an integer, so the match is only as fine as the schedule: we take
 * the t whose noise level √(1/ᾱ_t − 1) is nearest to 2σ in ratio (in log
 * scale), since a relative error in σ is what changes the result; for the
 * linear T = 1000 schedule neighbouring levels differ by under 1% above
 * σ = 10/255, so the residual mismatch is negligible.
 *
 * σ is estimated (when the user does not know it) with Donoho's robust
 * estimator: the median absolute finest-scale diagonal wavelet coefficient
 * over 0.6745 (Donoho & Johnstone 1994, "Ideal spatial adaptation by
 * wavelet shrinkage", Biometrika 81(3), §4.2; Donoho 1995, IEEE Trans.
 * Inf. Theory 41(3)).  With the orthonormal Haar wavelet the HH
 * coefficient of a 2×2 block (a b; c d) is (a − b − c + d)/2: for white
 * noise of standard deviation σ it is N(0, σ²), and on smooth image
 * content it is near zero (exactly zero on any linear ramp), so the few
 * large coefficients at edges and texture move the median little.
 * 0.6745 is the median of |N(0, 1)| (Φ⁻¹(3/4)).
 */
#include <math.h>
#include <string.h>

#include "intl.h"

#include "ddpm.h"

int
ddpm_denoise_sigma_to_t (const DdpmSchedule *schedule,
                         double              sigma,
                         GError            **error)
{
  g_return_val_if_fail (schedule != NULL, 0);
  g_return_val_if_fail (error == NULL || *error == NULL, 0);

  const int T = schedule->T;
  const double *level = schedule->sqrt_recipm1_alpha_bar;

  if (!(sigma > 0.0) || !isfinite (sigma))
    {
      g_set_error (error, DDPM_ERROR, DDPM_ERROR_INVALID_ARGUMENT,
                   _("The noise level σ must be a positive number on the 0–1 "
                     "pixel scale (25/255 ≈ 0.098 for noise of 25 levels), "
                     "not %g."), sigma);
      return 0;
    }
  /* The [−1, 1] scale doubles the noise. */
  const double target = 2.0 * sigma;
  if (target > level[T])
    {
      g_set_error (error, DDPM_ERROR, DDPM_ERROR_INVALID_ARGUMENT,
                   _("The noise level %.1f (of 255) is more than this model "
                     "can remove (at most %.1f)."),
                   sigma * 255.0, level[T] / 2.0 * 255.0);
      return 0;
    }

  /* level[] increases with t: find the first t with level ≥ target, then
   * take it or its predecessor, whichever is nearer in ratio. */
  int lo = 1, hi = T;
  while (lo < hi)
    {
      int mid = lo + (hi - lo) / 2;
      if (level[mid] >= target)
        hi = mid;
      else
        lo = mid + 1;
    }
  int t = lo;
  if (t > 1 && log (level[t] / target) > log (target / level[t - 1]))
    t--;
  return t;
}

/* Wirth's selection (Algorithms + Data Structures = Programs, 1976, §2.3.4):
 * the k-th smallest of v[0..n), with v reordered so that v[i] ≤ v[k] for
 * every i < k.  Scans stop on keys equal to the pivot, so the many equal
 * values of an 8-bit image do not make it quadratic. */
static float
select_kth (float *v, gssize n, gssize k)
{
  gssize left = 0, right = n - 1;

  while (left < right)
    {
      const float pivot = v[k];
      gssize i = left, j = right;

      do
        {
          while (v[i] < pivot)
            i++;
          while (pivot < v[j])
            j--;
          if (i <= j)
            {
              float tmp = v[i];
              v[i] = v[j];
              v[j] = tmp;
              i++;
              j--;
            }
        }
      while (i <= j);
      if (j < k)
        left = i;
      if (k < i)
        right = j;
    }
  return v[k];
}

/* Donoho & Johnstone 1994, §4.2: σ̂ = median(|HH|)/0.6745 over the finest
 * Haar diagonal coefficients; see the essay at the top of this file. */
gboolean
ddpm_estimate_noise_sigma (const float *image,
                           int          C,
                           int          H,
                           int          W,
                           double      *sigma,
                           GError     **error)
{
  g_return_val_if_fail (image != NULL, FALSE);
  g_return_val_if_fail (sigma != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (C < 1 || H < 2 || W < 2)
    {
      g_set_error (error, DDPM_ERROR, DDPM_ERROR_INVALID_ARGUMENT,
                   _("Estimating the noise needs an image of at least 2×2 pixels, "
                     "not %d×%d"), W, H);
      return FALSE;
    }

  const int bh = H / 2, bw = W / 2; /* an odd last row or column is unused */
  const gsize n = (gsize) C * bh * bw;
  float *hh = g_try_new (float, n);
  if (hh == NULL)
    {
      ddpm_set_error_no_memory (error, n * sizeof (float),
                                /* TRANSLATORS: completes "Not enough memory
                                 * for %s": width × height in pixels. */
                                _("estimating the noise of a %d × %d image"), W, H);
      return FALSE;
    }

  gsize k = 0;
  for (int c = 0; c < C; c++)
    for (int y = 0; y < bh; y++)
      {
        const float *r0 = image + ((gsize) c * H + 2 * y) * W;
        const float *r1 = r0 + W;

        for (int x = 0; x < bw; x++)
          hh[k++] = 0.5f * fabsf (r0[2 * x] - r0[2 * x + 1] - r1[2 * x] + r1[2 * x + 1]);
      }

  /* The median; for an even count the mean of the two middle values. */
  double median = select_kth (hh, (gssize) n, (gssize) (n / 2));
  if (n % 2 == 0)
    {
      float below = hh[0];
      for (gsize i = 1; i < n / 2; i++) /* after selection: all ≤ hh[n/2] */
        below = MAX (below, hh[i]);
      median = 0.5 * (median + below);
    }
  g_free (hh);

  *sigma = median / 0.6744897501960817; /* Φ⁻¹(3/4) */
  return TRUE;
}

gboolean
ddpm_denoise (float                  *image,
              const float            *mask,
              int                     C,
              int                     H,
              int                     W,
              const DdpmSchedule     *schedule,
              const DdpmDenoiser     *denoiser,
              double                  sigma,
              const DdpmSampleParams *params,
              GError                **error)
{
  g_return_val_if_fail (image != NULL, FALSE);
  g_return_val_if_fail (schedule != NULL, FALSE);
  g_return_val_if_fail (params != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  int t = ddpm_denoise_sigma_to_t (schedule, sigma, error);
  if (t == 0)
    return FALSE;

  DdpmSampleParams p = *params;
  p.t_start = t;
  p.add_noise = FALSE;
  return ddpm_img2img (image, mask, C, H, W, schedule, denoiser, &p, error);
}
