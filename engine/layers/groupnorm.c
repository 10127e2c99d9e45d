/* groupnorm.c: Group Normalization (Wu & He 2018), forward and backward.
 *
 * Per sample b and group g of C/G consecutive channels, over the
 * n = (C/G)·HW values x of that group:
 *
 *   μ = Σx/n,  σ² = Σ(x − μ)²/n (biased, as PyTorch),  r = 1/√(σ² + eps)
 *   x̂ = (x − μ)·r,  y = γ_c·x̂ + β_c                          (Wu & He, eqs. 1–3)
 *
 * Statistics are taken in two passes in double: a one-pass float Σx² − (Σx)²
 * cancels catastrophically once the mean is large against the spread, and a
 * float running sum over a 64×64 group loses the low digits.
 *
 * Backward, with g = γ_c·dy (the gradient reaching x̂):
 *
 *   dγ_c += Σ dy·x̂,  dβ_c += Σ dy,
 *   dx    = r·(g − mean(g) − x̂·mean(g·x̂))         (means over the group)
 *
 * which is the chain rule through μ and r written out (the standard
 * batch-norm backward, Ioffe & Szegedy 2015, §3, applied per group).
 */
#include <math.h>

#include "layers.h"

void
ddpm_groupnorm_forward (float       *out,
                        float       *mean,
                        float       *rstd,
                        const float *inp,
                        const float *gamma,
                        const float *beta,
                        int B, int C, int HW, int G, float eps)
{
  g_return_if_fail (out != NULL && mean != NULL && rstd != NULL && inp != NULL);
  g_return_if_fail (gamma != NULL && beta != NULL);
  g_return_if_fail (B > 0 && C > 0 && HW > 0 && G > 0 && C % G == 0 && eps >= 0);

  const int Cg = C / G;
  const gsize n = (gsize) Cg * HW;

  for (int b = 0; b < B; b++)
    for (int g = 0; g < G; g++)
      {
        const gsize base = ((gsize) b * C + (gsize) g * Cg) * HW;
        const float *x = inp + base;
        double sum = 0, sq = 0;

        for (gsize i = 0; i < n; i++)
          sum += x[i];
        const double mu = sum / n;
        for (gsize i = 0; i < n; i++)
          {
            double d = x[i] - mu;
            sq += d * d;
          }
        const double r = 1.0 / sqrt (sq / n + eps);

        mean[b * G + g] = (float) mu;
        rstd[b * G + g] = (float) r;
        for (int c = 0; c < Cg; c++)
          {
            const int ch = g * Cg + c;
            /* x − μ in double: in float it would cancel when |μ| ≫ σ */
            const double a = gamma[ch] * r, shift = beta[ch];
            const float *xc = x + (gsize) c * HW;
            float *yc = out + base + (gsize) c * HW;

            for (int i = 0; i < HW; i++)
              yc[i] = (float) ((xc[i] - mu) * a + shift);
          }
      }
}

void
ddpm_groupnorm_backward (float       *dinp,
                         float       *dgamma,
                         float       *dbeta,
                         const float *dout,
                         const float *inp,
                         const float *mean,
                         const float *rstd,
                         const float *gamma,
                         int B, int C, int HW, int G)
{
  g_return_if_fail (dout != NULL && inp != NULL && mean != NULL && rstd != NULL);
  g_return_if_fail (gamma != NULL);
  g_return_if_fail (B > 0 && C > 0 && HW > 0 && G > 0 && C % G == 0);

  const int Cg = C / G;
  const gsize n = (gsize) Cg * HW;

  for (int b = 0; b < B; b++)
    for (int g = 0; g < G; g++)
      {
        const gsize base = ((gsize) b * C + (gsize) g * Cg) * HW;
        const double mu = mean[b * G + g], r = rstd[b * G + g];
        double sum_g = 0, sum_gx = 0;

        for (int c = 0; c < Cg; c++)
          {
            const int ch = g * Cg + c;
            const float *xc = inp + base + (gsize) c * HW;
            const float *dyc = dout + base + (gsize) c * HW;
            double sum_dy = 0, sum_dyx = 0;

            for (int i = 0; i < HW; i++)
              {
                double xh = (xc[i] - mu) * r;
                sum_dy += dyc[i];
                sum_dyx += dyc[i] * xh;
              }
            if (dgamma != NULL)
              dgamma[ch] += (float) sum_dyx;
            if (dbeta != NULL)
              dbeta[ch] += (float) sum_dy;
            sum_g += gamma[ch] * sum_dy;
            sum_gx += gamma[ch] * sum_dyx;
          }
        if (dinp == NULL)
          continue;

        const double mean_g = sum_g / n, mean_gx = sum_gx / n;
        for (int c = 0; c < Cg; c++)
          {
            const int ch = g * Cg + c;
            const float *xc = inp + base + (gsize) c * HW;
            const float *dyc = dout + base + (gsize) c * HW;
            float *dxc = dinp + base + (gsize) c * HW;

            for (int i = 0; i < HW; i++)
              {
                double xh = (xc[i] - mu) * r;
                dxc[i] += (float) (r * (gamma[ch] * dyc[i] - mean_g - xh * mean_gx));
              }
          }
      }
}
