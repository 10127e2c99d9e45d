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
 *
 * For inference, where y itself is not kept for a backward pass,
 * ddpm_groupnorm_silu_forward writes SiLU(y) in the same pass.
 *
 * Both directions run on the layers' thread team: forward split over
 * (sample, group) pairs, backward over groups (a channel's dγ, dβ sum over
 * samples inside one part, so the result does not depend on threads).
 */
#include <math.h>
#include <string.h>

#include "layers.h"

/* Work per part of the thread team, in (sample, group) pairs or groups. */
#define GRAIN 1

/* Σx and Σ(x − μ)² (μ = Σx/n, two passes) in double over n floats, in 8
 * interleaved partial sums so that gcc vectorises them (a single double
 * accumulator is a serial chain it may not reorder). */
static void
sum_and_sq (const float *x, gsize n, double *sum, double *sq)
{
  double mu;
  double s[8] = { 0 }, q[8] = { 0 };
  gsize i = 0;

  for (; i + 8 <= n; i += 8)
    for (int k = 0; k < 8; k++)
      s[k] += x[i + k];
  double total = 0;
  for (int k = 0; k < 8; k++)
    total += s[k];
  for (; i < n; i++)
    total += x[i];
  *sum = total;
  mu = total / n;
  for (i = 0; i + 8 <= n; i += 8)
    for (int k = 0; k < 8; k++)
      {
        double d = x[i + k] - mu;
        q[k] += d * d;
      }
  total = 0;
  for (int k = 0; k < 8; k++)
    total += q[k];
  for (; i < n; i++)
    total += (x[i] - mu) * (x[i] - mu);
  *sq = total;
}

typedef struct
{
  float       *out, *mean, *rstd, *dinp, *dgamma, *dbeta;
  const float *inp, *gamma, *beta, *dout, *cmean, *crstd;
  const float *norm;      /* silu backward: y, the SiLU's input */
  int          B, C, HW, G;
  float        eps;
  gboolean     silu;      /* forward: write SiLU(y) instead of y */
  int          W;         /* forward: > 0 writes the planes padded to
                           * (H + 2, W + 2) with zero borders */
  float       *keep;      /* padded SiLU forward: y itself, unpadded */
} GroupNormJob;

/* y = (x − μ)·a + shift, or its SiLU, over n values (see forward_range
 * for the μ split); with SiLU, keep (if not NULL) gets y before it. */
static inline void
normalise_row (float *restrict y, float *restrict keep, const float *restrict x, int n,
               float mu_hi, float mu_lo, float a, float shift, gboolean silu)
{
  if (silu && keep != NULL)
    for (int i = 0; i < n; i++)
      {
        const float v = ((x[i] - mu_hi) - mu_lo) * a + shift;
        keep[i] = v;
        y[i] = v / (1.0f + ddpm_fast_expf (-v));
      }
  else if (silu)
    for (int i = 0; i < n; i++)
      {
        const float v = ((x[i] - mu_hi) - mu_lo) * a + shift;
        y[i] = v / (1.0f + ddpm_fast_expf (-v));
      }
  else
    for (int i = 0; i < n; i++)
      y[i] = ((x[i] - mu_hi) - mu_lo) * a + shift;
}

/* One channel's H rows of W into a zero-bordered (H + 2, W + 2) plane, the
 * layout the direct 3×3 convolution reads, so that it needs no copy. */
static void
normalise_padded (float *restrict plane, float *restrict keep, const float *restrict x, int H,
                  int W, float mu_hi, float mu_lo, float a, float shift, gboolean silu)
{
  ddpm_zero_border (plane, H, W);
  for (int y = 0; y < H; y++)
    normalise_row (plane + (gsize) (y + 1) * (W + 2) + 1,
                   keep != NULL ? keep + (gsize) y * W : NULL, x + (gsize) y * W, W, mu_hi,
                   mu_lo, a, shift, silu);
}

static void
forward_range (gsize begin, gsize end, gpointer data)
{
  const GroupNormJob *j = data;
  const int C = j->C, HW = j->HW, G = j->G, Cg = C / G;
  const gsize n = (gsize) Cg * HW;

  for (gsize bg = begin; bg < end; bg++)
    {
      const int b = (int) (bg / G), g = (int) (bg % G);
      const gsize base = ((gsize) b * C + (gsize) g * Cg) * HW;
      const float *x = j->inp + base;
      double sum, sq;

      sum_and_sq (x, n, &sum, &sq);
      const double mu = sum / n;
      const double r = 1.0 / sqrt (sq / n + j->eps);

      j->mean[bg] = (float) mu;
      j->rstd[bg] = (float) r;
      /* x − μ in float, with μ split as μ_hi + μ_lo: when |μ| ≫ σ, x and
       * μ_hi are within a factor 2 and x − μ_hi is exact (Sterbenz), so
       * nothing cancels; a plain x − (float) μ would lose μ's rounding,
       * |μ|·2⁻²⁴, against σ */
      const float mu_hi = (float) mu, mu_lo = (float) (mu - mu_hi);
      for (int c = 0; c < Cg; c++)
        {
          const int ch = g * Cg + c;
          const float a = (float) (j->gamma[ch] * r), shift = j->beta[ch];
          const float *xc = x + (gsize) c * HW;

          if (j->W > 0)
            {
              const int H = HW / j->W;
              normalise_padded (j->out + ((gsize) b * C + ch) * (H + 2) * (j->W + 2),
                                j->keep != NULL ? j->keep + base + (gsize) c * HW : NULL, xc,
                                H, j->W, mu_hi, mu_lo, a, shift, j->silu);
            }
          else
            normalise_row (j->out + base + (gsize) c * HW, NULL, xc, HW, mu_hi, mu_lo, a,
                           shift, j->silu);
        }
    }
}

static void
forward (float *out, float *keep, float *mean, float *rstd, const float *inp,
         const float *gamma, const float *beta, int B, int C, int HW, int G, float eps,
         gboolean silu, int W)
{
  g_return_if_fail (out != NULL && mean != NULL && rstd != NULL && inp != NULL);
  g_return_if_fail (gamma != NULL && beta != NULL);
  g_return_if_fail (B > 0 && C > 0 && HW > 0 && G > 0 && C % G == 0 && eps >= 0);

  GroupNormJob j = { 0 };
  j.out = out;
  j.mean = mean;
  j.rstd = rstd;
  j.inp = inp;
  j.gamma = gamma;
  j.beta = beta;
  j.B = B;
  j.C = C;
  j.HW = HW;
  j.G = G;
  j.eps = eps;
  j.silu = silu;
  j.W = W;
  j.keep = keep;
  /* a part is worth a thread only above ~16K elements */
  ddpm_parallel_for ((gsize) B * G, MAX (GRAIN, 16384 / ((gsize) C / G * HW)),
                     forward_range, &j);
}

void
ddpm_groupnorm_forward (float       *out,
                        float       *mean,
                        float       *rstd,
                        const float *inp,
                        const float *gamma,
                        const float *beta,
                        int B, int C, int HW, int G, float eps)
{
  forward (out, NULL, mean, rstd, inp, gamma, beta, B, C, HW, G, eps, FALSE, 0);
}

void
ddpm_groupnorm_silu_forward (float       *out,
                             float       *mean,
                             float       *rstd,
                             const float *inp,
                             const float *gamma,
                             const float *beta,
                             int B, int C, int HW, int G, float eps)
{
  forward (out, NULL, mean, rstd, inp, gamma, beta, B, C, HW, G, eps, TRUE, 0);
}

void
ddpm_groupnorm_silu_forward_padded (float       *out,
                                    float       *norm,
                                    float       *mean,
                                    float       *rstd,
                                    const float *inp,
                                    const float *gamma,
                                    const float *beta,
                                    int B, int C, int H, int W, int G, float eps)
{
  g_return_if_fail (H > 0 && W > 0);
  forward (out, norm, mean, rstd, inp, gamma, beta, B, C, H * W, G, eps, TRUE, W);
}

/* Σdy and Σdy·x̂ over one channel's HW values, 8 partial sums (see
 * sum_and_sq). */
static void
channel_sums (const float *dy, const float *x, int HW, double mu, double r,
              double *sum_dy, double *sum_dyx)
{
  double s[8] = { 0 }, q[8] = { 0 };
  int i = 0;

  for (; i + 8 <= HW; i += 8)
    for (int k = 0; k < 8; k++)
      {
        double xh = (x[i + k] - mu) * r;
        s[k] += dy[i + k];
        q[k] += dy[i + k] * xh;
      }
  double a = 0, b = 0;
  for (int k = 0; k < 8; k++)
    {
      a += s[k];
      b += q[k];
    }
  for (; i < HW; i++)
    {
      double xh = (x[i] - mu) * r;
      a += dy[i];
      b += dy[i] * xh;
    }
  *sum_dy = a;
  *sum_dyx = b;
}

/* A part's dγ and dβ, summed over the samples in double and added to the
 * shared arrays once at the end: added per sample, neighbouring channels
 * of the two threads' parts shared cache lines, and the lines went back
 * and forth at every sample (the backward was slower on two threads than
 * on one at 16×16). */
typedef struct
{
  double *dgamma, *dbeta;
  int     n;
} ParamSums;

static ParamSums
param_sums_new (gsize begin, gsize end, int Cg)
{
  ParamSums ps;

  ps.n = (int) (end - begin) * Cg;
  ps.dgamma = g_new0 (double, 2 * ps.n);
  ps.dbeta = ps.dgamma + ps.n;
  return ps;
}

static void
param_sums_finish (ParamSums *ps, float *dgamma, float *dbeta, int c0)
{
  for (int c = 0; c < ps->n; c++)
    {
      if (dgamma != NULL)
        dgamma[c0 + c] += (float) ps->dgamma[c];
      if (dbeta != NULL)
        dbeta[c0 + c] += (float) ps->dbeta[c];
    }
  g_free (ps->dgamma);
}

/* Groups [begin, end), every sample in order (the channel sums of dγ, dβ
 * add up over samples, so samples stay in one part). */
static void
backward_range (gsize begin, gsize end, gpointer data)
{
  const GroupNormJob *j = data;
  const int C = j->C, HW = j->HW, G = j->G, Cg = C / G, c0 = (int) begin * Cg;
  const gsize n = (gsize) Cg * HW;
  ParamSums ps = param_sums_new (begin, end, Cg);

  for (int b = 0; b < j->B; b++)
    for (int g = (int) begin; g < (int) end; g++)
      {
        const gsize base = ((gsize) b * C + (gsize) g * Cg) * HW;
        const double mu = j->cmean[b * G + g], r = j->crstd[b * G + g];
        double sum_g = 0, sum_gx = 0;

        for (int c = 0; c < Cg; c++)
          {
            const int ch = g * Cg + c;
            double sum_dy, sum_dyx;

            channel_sums (j->dout + base + (gsize) c * HW, j->inp + base + (gsize) c * HW,
                          HW, mu, r, &sum_dy, &sum_dyx);
            ps.dgamma[ch - c0] += sum_dyx;
            ps.dbeta[ch - c0] += sum_dy;
            sum_g += j->gamma[ch] * sum_dy;
            sum_gx += j->gamma[ch] * sum_dyx;
          }
        if (j->dinp == NULL)
          continue;

        const double mean_g = sum_g / n, mean_gx = sum_gx / n;
        for (int c = 0; c < Cg; c++)
          {
            const int ch = g * Cg + c;
            const double gam = j->gamma[ch];
            const float *restrict xc = j->inp + base + (gsize) c * HW;
            const float *restrict dyc = j->dout + base + (gsize) c * HW;
            float *restrict dxc = j->dinp + base + (gsize) c * HW;

            for (int i = 0; i < HW; i++)
              {
                double xh = (xc[i] - mu) * r;
                dxc[i] += (float) (r * (gam * dyc[i] - mean_g - xh * mean_gx));
              }
          }
      }
  param_sums_finish (&ps, j->dgamma, j->dbeta, c0);
}

/* Both backward passes: the job, split over groups (see the ranges). */
static void
backward (DdpmRangeFunc range, float *dinp, float *dgamma, float *dbeta, const float *dout,
          const float *norm, const float *inp, const float *mean, const float *rstd,
          const float *gamma, int B, int C, int HW, int G)
{
  GroupNormJob j = {
    .dinp = dinp, .dgamma = dgamma, .dbeta = dbeta, .dout = dout, .norm = norm, .inp = inp,
    .cmean = mean, .crstd = rstd, .gamma = gamma, .B = B, .C = C, .HW = HW, .G = G,
  };

  ddpm_parallel_for ((gsize) G, MAX (GRAIN, 16384 / ((gsize) B * C / G * HW)), range, &j);
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

  backward (backward_range, dinp, dgamma, dbeta, dout, NULL, inp, mean, rstd, gamma,
            B, C, HW, G);
}

/* ---------------------------------------- SiLU (GroupNorm (x)), backward */

/* One channel of the fused backward: dy = da·SiLU'(y) into dy (L1
 * scratch), and Σdy, Σdy·x̂ — per element in float, 16 partial sums per
 * channel (at most 256 terms each at 64×64), the channels totalled in
 * double.  x̂ = (x − μ)·r with the saved (float) μ, as backward_range. */
static inline void
silu_grad_sums (float *restrict dy, const float *restrict da, const float *restrict y,
                const float *restrict x, int HW, float mu, float r,
                double *sum_dy, double *sum_dyx)
{
  float s[16] = { 0 }, q[16] = { 0 };
  double a = 0, b = 0;
  int i = 0;

  for (; i + 16 <= HW; i += 16)
    for (int k = 0; k < 16; k++)
      {
        const float v = y[i + k], sig = 1.0f / (1.0f + ddpm_fast_expf (-v));
        const float d = da[i + k] * sig * (1.0f + v * (1.0f - sig));

        dy[i + k] = d;
        s[k] += d;
        q[k] += d * ((x[i + k] - mu) * r);
      }
  for (int k = 0; k < 16; k++)
    {
      a += s[k];
      b += q[k];
    }
  for (; i < HW; i++)
    {
      const float v = y[i], sig = 1.0f / (1.0f + ddpm_fast_expf (-v));
      const float d = da[i] * sig * (1.0f + v * (1.0f - sig));

      dy[i] = d;
      a += d;
      b += d * ((x[i] - mu) * r);
    }
  *sum_dy = a;
  *sum_dyx = b;
}

/* Groups [begin, end), every sample in order, as backward_range; dout is
 * ∂L/∂SiLU(y), turned into ∂L/∂y one group at a time in a scratch the
 * size of a group, which the dx pass then reads from L1. */
static void
silu_backward_range (gsize begin, gsize end, gpointer data)
{
  const GroupNormJob *j = data;
  const int C = j->C, HW = j->HW, G = j->G, Cg = C / G, c0 = (int) begin * Cg;
  const gsize n = (gsize) Cg * HW;
  float *dy = g_new (float, n);
  ParamSums ps = param_sums_new (begin, end, Cg);

  for (int b = 0; b < j->B; b++)
    for (int g = (int) begin; g < (int) end; g++)
      {
        const gsize base = ((gsize) b * C + (gsize) g * Cg) * HW;
        const float mu = j->cmean[b * G + g], r = j->crstd[b * G + g];
        double sum_g = 0, sum_gx = 0;

        for (int c = 0; c < Cg; c++)
          {
            const int ch = g * Cg + c;
            const gsize at = base + (gsize) c * HW;
            double sum_dy, sum_dyx;

            silu_grad_sums (dy + (gsize) c * HW, j->dout + at, j->norm + at, j->inp + at, HW,
                            mu, r, &sum_dy, &sum_dyx);
            ps.dgamma[ch - c0] += sum_dyx;
            ps.dbeta[ch - c0] += sum_dy;
            sum_g += j->gamma[ch] * sum_dy;
            sum_gx += j->gamma[ch] * sum_dyx;
          }

        const float mean_g = (float) (sum_g / n), mean_gx = (float) (sum_gx / n);
        for (int c = 0; c < Cg; c++)
          {
            const float gam = j->gamma[(gsize) g * Cg + c];
            const gsize at = base + (gsize) c * HW;
            const float *restrict xc = j->inp + at, *restrict dyc = dy + (gsize) c * HW;
            float *restrict dxc = j->dinp + at;

            for (int i = 0; i < HW; i++)
              {
                const float xh = (xc[i] - mu) * r;
                dxc[i] += r * (gam * dyc[i] - mean_g - xh * mean_gx);
              }
          }
      }
  param_sums_finish (&ps, j->dgamma, j->dbeta, c0);
  g_free (dy);
}

void
ddpm_groupnorm_silu_backward (float       *dinp,
                              float       *dgamma,
                              float       *dbeta,
                              const float *dout,
                              const float *norm,
                              const float *inp,
                              const float *mean,
                              const float *rstd,
                              const float *gamma,
                              int B, int C, int HW, int G)
{
  g_return_if_fail (dinp != NULL && dgamma != NULL && dbeta != NULL);
  g_return_if_fail (dout != NULL && norm != NULL && inp != NULL);
  g_return_if_fail (mean != NULL && rstd != NULL && gamma != NULL);
  g_return_if_fail (B > 0 && C > 0 && HW > 0 && G > 0 && C % G == 0);

  backward (silu_backward_range, dinp, dgamma, dbeta, dout, norm, inp, mean, rstd, gamma,
            B, C, HW, G);
}
