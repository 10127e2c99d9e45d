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
 * ddpm_groupnorm_silu_forward_pairs writes it as a bf16 conv's input
 * pairs, optionally reading the channels from two tensors (the up path's
 * x and skip) instead of their concatenated copy.  Its pass is bounded by
 * the SiLU's division (vdivps, most of its samples in a profile), not by
 * memory: the formula stays as it is, so that its bits are the fp32
 * path's.
 *
 * Both directions run on the layers' thread team: forward split over
 * (sample, group) pairs, backward over groups (a channel's dγ, dβ sum over
 * samples inside one part, so the result does not depend on threads).
 */
#include <math.h>
#include <string.h>

#include <immintrin.h>

#include "layers.h"

/* Work per part of the thread team, in (sample, group) pairs or groups. */
#define GRAIN 1

/* Σx and Σ(x − μ)² over n floats in one pass, in double: the sums of
 * d = x − K and d² about a shift K = x[0], then Σ(x − μ)² = Σd² − (Σd)²/n
 * (the shifted-data form of the variance: its cancellation grows with
 * ((μ − K)/σ)², harmless in double for any K among the data; Chan, Golub &
 * LeVeque 1983).  16 interleaved partial sums so that gcc vectorises them
 * (a single accumulator is a serial chain it may not reorder).  One pass
 * instead of two: the statistics were a third of GroupNorm's time in a
 * renoise. */
static void
sum_and_sq_portable (const float *x, gsize n, double K, double *ts, double *tq)
{
  double s[16] = { 0 }, q[16] = { 0 };
  gsize i = 0;

  for (; i + 16 <= n; i += 16)
    for (int k = 0; k < 16; k++)
      {
        const double d = (double) x[i + k] - K;
        s[k] += d;
        q[k] += d * d;
      }
  for (int k = 0; k < 16; k++)
    {
      *ts += s[k];
      *tq += q[k];
    }
  for (; i < n; i++)
    {
      const double d = (double) x[i] - K;
      *ts += d;
      *tq += d * d;
    }
}

/* The same with AVX-512 (gcc's vectorisation of the loop above mixed in
 * scalar conversions): 32 values an iteration in four independent chains
 * of 8 doubles each for Σd and Σd². */
static __attribute__ ((target ("avx512f,avx512dq"))) void
sum_and_sq_avx512 (const float *x, gsize n, double K, double *ts, double *tq)
{
  const __m512d k = _mm512_set1_pd (K);
  __m512d s[4], q[4];
  gsize i = 0;

  for (int c = 0; c < 4; c++)
    s[c] = q[c] = _mm512_setzero_pd ();
  for (; i + 32 <= n; i += 32)
    for (int h = 0; h < 2; h++)
      {
        const __m512 v = _mm512_loadu_ps (x + i + 16 * h);
        const __m512d lo = _mm512_sub_pd (_mm512_cvtps_pd (_mm512_castps512_ps256 (v)), k);
        const __m512d hi = _mm512_sub_pd (_mm512_cvtps_pd (_mm512_extractf32x8_ps (v, 1)), k);

        s[2 * h] = _mm512_add_pd (s[2 * h], lo);
        q[2 * h] = _mm512_fmadd_pd (lo, lo, q[2 * h]);
        s[2 * h + 1] = _mm512_add_pd (s[2 * h + 1], hi);
        q[2 * h + 1] = _mm512_fmadd_pd (hi, hi, q[2 * h + 1]);
      }
  *ts = _mm512_reduce_add_pd (_mm512_add_pd (_mm512_add_pd (s[0], s[1]),
                                             _mm512_add_pd (s[2], s[3])));
  *tq = _mm512_reduce_add_pd (_mm512_add_pd (_mm512_add_pd (q[0], q[1]),
                                             _mm512_add_pd (q[2], q[3])));
  for (; i < n; i++)
    {
      const double d = (double) x[i] - K;
      *ts += d;
      *tq += d * d;
    }
}

static void
sum_and_sq (const float *x, gsize n, double *sum, double *sq)
{
  const double K = n > 0 ? x[0] : 0.0;
  double ts = 0, tq = 0;

  if (ddpm_layers_have_avx512 ())
    sum_and_sq_avx512 (x, n, K, &ts, &tq);
  else
    sum_and_sq_portable (x, n, K, &ts, &tq);
  *sum = K * (double) n + ts;
  *sq = MAX (0.0, tq - ts * ts / (double) n);
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

/* ------------------------------------------- bf16 pairs (inference) */

typedef struct
{
  guint32     *pairs;
  float       *mean, *rstd;
  double      *mu, *r;     /* (B, G) in double: the fp32 path's own values */
  const float *inp, *inp2, *gamma, *beta;
  int          C1;         /* channels [0, C1) from inp (B, C1, H, W), the rest
                            * from inp2 (B, C − C1, H, W) */
  int          B, C, H, W, G, P;
  float        eps;
} PairsJob;

/* Channel c of image b of the (virtual) concatenation. */
static inline const float *
pairs_channel (const PairsJob *j, int b, int c)
{
  const gsize HW = (gsize) j->H * j->W;

  if (c < j->C1)
    return j->inp + ((gsize) b * j->C1 + c) * HW;
  return j->inp2 + ((gsize) b * (j->C - j->C1) + (c - j->C1)) * HW;
}

/* The statistics of groups [begin, end), as forward_range computes them.
 * A group that straddles the two inputs is copied together first, so that
 * sum_and_sq sees the same n values in the same order (the same bits as
 * on the concatenation); the rest are read in place. */
static void
pairs_stats_range (gsize begin, gsize end, gpointer data)
{
  const PairsJob *j = data;
  const int Cg = j->C / j->G;
  const gsize HW = (gsize) j->H * j->W, n = Cg * HW;
  float *joined = NULL;

  for (gsize bg = begin; bg < end; bg++)
    {
      const int b = (int) (bg / j->G), g = (int) (bg % j->G), c0 = g * Cg;
      const float *x = pairs_channel (j, b, c0);
      double sum, sq;

      if (c0 < j->C1 && c0 + Cg > j->C1)
        {
          if (joined == NULL)
            joined = g_new (float, n);
          for (int c = 0; c < Cg; c++)
            memcpy (joined + c * HW, pairs_channel (j, b, c0 + c), sizeof (float) * HW);
          x = joined;
        }
      sum_and_sq (x, n, &sum, &sq);
      j->mu[bg] = sum / n;
      j->r[bg] = 1.0 / sqrt (sq / n + j->eps);
      j->mean[bg] = (float) j->mu[bg];
      j->rstd[bg] = (float) j->r[bg];
    }
  g_free (joined);
}

/* Items (image, channel pair): each row of the two channels through
 * normalise_row (the same arithmetic as the fp32 path) into a row buffer,
 * then rounded and paired into the zero-bordered pair plane. */
static void
pairs_range (gsize begin, gsize end, gpointer data)
{
  const PairsJob *j = data;
  const int Cg = j->C / j->G, H = j->H, W = j->W, Wp = W + 2;
  const gsize plane = (gsize) (H + 2) * Wp;
  float *rows = g_new (float, 2 * (gsize) W);

  for (gsize item = begin; item < end; item++)
    {
      const int b = (int) (item / j->P), p = (int) (item % j->P);
      const gboolean has_hi = 2 * p + 1 < j->C;
      guint32 *dst = j->pairs + item * plane;
      float mu_hi[2], mu_lo[2], a[2], shift[2];
      const float *x[2];

      for (int k = 0; k < 1 + has_hi; k++)
        {
          const int ch = 2 * p + k, bg = b * j->G + ch / Cg;

          mu_hi[k] = (float) j->mu[bg];
          mu_lo[k] = (float) (j->mu[bg] - mu_hi[k]);
          a[k] = (float) (j->gamma[ch] * j->r[bg]);
          shift[k] = j->beta[ch];
          x[k] = pairs_channel (j, b, ch);
        }
      memset (dst, 0, sizeof (guint32) * Wp);
      memset (dst + (gsize) (H + 1) * Wp, 0, sizeof (guint32) * Wp);
      for (int y = 0; y < H; y++)
        {
          guint32 *row = dst + (gsize) (y + 1) * Wp;

          for (int k = 0; k < 1 + has_hi; k++)
            normalise_row (rows + k * W, NULL, x[k] + (gsize) y * W, W, mu_hi[k], mu_lo[k],
                           a[k], shift[k], TRUE);
          row[0] = row[Wp - 1] = 0;
          ddpm_bf16_pair_rows (row + 1, rows, has_hi ? rows + W : NULL, W);
        }
    }
  g_free (rows);
}

void
ddpm_groupnorm_silu_forward_pairs (guint32     *pairs,
                                   float       *mean,
                                   float       *rstd,
                                   const float *inp,
                                   const float *gamma,
                                   const float *beta,
                                   int B, int C, int H, int W, int G, float eps)
{
  ddpm_groupnorm_silu_forward_pairs_cat (pairs, mean, rstd, inp, C, NULL, gamma, beta, B, C, H,
                                         W, G, eps);
}

void
ddpm_groupnorm_silu_forward_pairs_cat (guint32     *pairs,
                                       float       *mean,
                                       float       *rstd,
                                       const float *inp,
                                       int          C1,
                                       const float *inp2,
                                       const float *gamma,
                                       const float *beta,
                                       int B, int C, int H, int W, int G, float eps)
{
  g_return_if_fail (pairs != NULL && mean != NULL && rstd != NULL && inp != NULL);
  g_return_if_fail (gamma != NULL && beta != NULL);
  g_return_if_fail (B > 0 && C > 0 && H > 0 && W > 0 && G > 0 && C % G == 0 && eps >= 0);
  g_return_if_fail (C1 > 0 && C1 <= C && (C1 == C || inp2 != NULL));

  const int P = (C + 1) / 2;
  double *stats = g_new (double, 2 * (gsize) B * G);
  PairsJob j = { pairs, mean, rstd, stats, stats + (gsize) B * G, inp, inp2, gamma, beta, C1,
                 B, C, H, W, G, P, eps };
  const gsize per_group = (gsize) C / G * H * W, per_pair = 2 * (gsize) H * W;

  ddpm_parallel_for ((gsize) B * G, MAX (GRAIN, 16384 / per_group), pairs_stats_range, &j);
  ddpm_parallel_for ((gsize) B * P, MAX (1, 16384 / per_pair), pairs_range, &j);
  g_free (stats);
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
