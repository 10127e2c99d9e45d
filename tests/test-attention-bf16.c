/* test-attention-bf16.c: the bf16 inference forward of self-attention
 * (engine/layers/attention-bf16.c), which ddpm_attention_forward runs
 * when the calling thread's precision is bf16.
 *
 * THE BOUNDS
 *
 * The kernel rounds q, k, v and the softmax's unnormalised exponentials
 * e_ij ∈ (0, 1] to bf16 (relative error ≤ u = 2⁻⁹ each) and sums in fp32.
 * Against attention computed in double on the ROUNDED q, k and v (the
 * oracle below) only e's rounding and the fp32 sums remain: each weight
 * P_ij = e_ij/Σe moves by a relative u at most, so an output
 * o_ci = Σ_j P_ij v_cj moves by at most u·Σ_j P_ij |v_cj| ≤ u·max|v| plus
 * the fp32 sums (N·2⁻²⁴ relative, and the scores' fp32 sums over C, a
 * shift of ≤ C·2⁻²⁴·Σ|q k|/√C in the exponent).  The test allows 2u·max|v|
 * + 1e-5: a kernel that pairs the wrong keys, channels or queries is off
 * by O(max|v|).  Against the fp32 forward on the unrounded inputs the
 * rounding of q, k, v adds up: the relative RMS difference is checked to
 * stay below 1 %.
 *
 * Tests that need AVX512_BF16 skip on CPUs without it.
 */
#include <math.h>
#include <string.h>

#include "ddpm.h"
#include "layers/layers.h"

static float *
random_tensor (gsize n, double scale, guint64 stream)
{
  float *x = g_new (float, n);

  ddpm_rng_normal_fill (x, n, 11, stream, 0);
  for (gsize i = 0; i < n; i++)
    x[i] = (float) (x[i] * scale);
  return x;
}

static double
rounded (float x)
{
  return ddpm_bf16_to_float (ddpm_float_to_bf16 (x));
}

/* softmax(q̃ᵀk̃/√C) ṽ in double, q̃ k̃ ṽ the bf16-rounded inputs. */
static void
oracle (double *out, const float *q, const float *k, const float *v, int B, int C, int N)
{
  double *s = g_new (double, N);

  for (int b = 0; b < B; b++)
    {
      const gsize off = (gsize) b * C * N;

      for (int i = 0; i < N; i++)
        {
          double m = -INFINITY, sum = 0;

          for (int j = 0; j < N; j++)
            {
              double d = 0;
              for (int c = 0; c < C; c++)
                d += rounded (q[off + (gsize) c * N + i]) * rounded (k[off + (gsize) c * N + j]);
              s[j] = d / sqrt ((double) C);
              m = MAX (m, s[j]);
            }
          for (int j = 0; j < N; j++)
            {
              s[j] = exp (s[j] - m);
              sum += s[j];
            }
          for (int c = 0; c < C; c++)
            {
              double o = 0;
              for (int j = 0; j < N; j++)
                o += s[j] * rounded (v[off + (gsize) c * N + j]);
              out[off + (gsize) c * N + i] = o / sum;
            }
        }
    }
  g_free (s);
}

static float *
forward (DdpmPrecision precision, const float *q, const float *k, const float *v, int B,
         int C, int N)
{
  const gsize n = (gsize) B * C * N;
  float *out = g_new (float, n), *probs = g_new (float, (gsize) B * N * N);
  const DdpmPrecision old = ddpm_layers_set_precision (precision);

  ddpm_attention_forward (out, probs, q, k, v, B, C, N);
  ddpm_layers_set_precision (old);
  g_free (probs);
  return out;
}

/* Shapes: N not a multiple of 16 or of 2 (a 5×5 and a 3×3 image), C odd
 * and not a multiple of 16, several blocks of 32 queries, a batch, ADM's
 * per-head 64 channels at 8² positions, and scores large enough that the
 * softmax is peaked. */
static void
test_against_oracle (void)
{
  const struct { int B, C, N; double scale; } cases[] = {
    { 1, 8, 25, 1.0 }, { 2, 3, 9, 1.0 }, { 1, 24, 100, 1.0 }, { 2, 64, 256, 1.0 },
    { 1, 64, 64, 2.0 }, { 1, 32, 144, 3.0 }, { 1, 128, 1024, 0.7 },
  };

  if (!ddpm_cpu_has_avx512_bf16 ())
    {
      g_test_skip ("this CPU has no AVX512_BF16");
      return;
    }
  for (gsize t = 0; t < G_N_ELEMENTS (cases); t++)
    {
      const int B = cases[t].B, C = cases[t].C, N = cases[t].N;
      const gsize n = (gsize) B * C * N;
      float *q = random_tensor (n, cases[t].scale, 3 * t);
      float *k = random_tensor (n, cases[t].scale, 3 * t + 1);
      float *v = random_tensor (n, 1.0, 3 * t + 2);
      double *want = g_new (double, n);
      float *got = forward (DDPM_PRECISION_BF16, q, k, v, B, C, N);
      float *fp32 = forward (DDPM_PRECISION_FP32, q, k, v, B, C, N);
      double vmax = 0, worst = 0, d2 = 0, r2 = 0;

      oracle (want, q, k, v, B, C, N);
      for (gsize i = 0; i < n; i++)
        vmax = MAX (vmax, fabs (v[i]));
      for (gsize i = 0; i < n; i++)
        {
          g_assert_true (isfinite (got[i]));
          worst = MAX (worst, fabs (got[i] - want[i]));
          d2 += (got[i] - (double) fp32[i]) * (got[i] - (double) fp32[i]);
          r2 += (double) fp32[i] * fp32[i];
        }
      g_test_message ("B %d C %d N %d: max |bf16 − oracle on rounded inputs| %.2g "
                      "(bound %.2g); relative RMS vs fp32 %.2g",
                      B, C, N, worst, 2 * vmax / 512 + 1e-5, sqrt (d2 / r2));
      g_assert_cmpfloat (worst, <=, 2 * vmax / 512 + 1e-5);
      g_assert_cmpfloat (sqrt (d2 / r2), <, 0.01);
      g_free (q);
      g_free (k);
      g_free (v);
      g_free (want);
      g_free (got);
      g_free (fp32);
    }
}

/* The same bits for 1 and 2 threads; and without AVX512_BF16 the fp32
 * forward, bit for bit. */
static void
test_threads_and_fallback (void)
{
  const int B = 2, C = 64, N = 400;
  const gsize n = (gsize) B * C * N;
  float *q = random_tensor (n, 1.0, 100), *k = random_tensor (n, 1.0, 101);
  float *v = random_tensor (n, 1.0, 102);
  const int threads = ddpm_parallel_threads ();

  if (!ddpm_cpu_has_avx512_bf16 ())
    {
      g_test_skip ("this CPU has no AVX512_BF16");
      return;
    }
  ddpm_parallel_set_threads (1);
  float *one = forward (DDPM_PRECISION_BF16, q, k, v, B, C, N);
  ddpm_parallel_set_threads (2);
  float *two = forward (DDPM_PRECISION_BF16, q, k, v, B, C, N);
  ddpm_parallel_set_threads (threads);
  g_assert_true (memcmp (one, two, n * sizeof (float)) == 0);

  float *fp32 = forward (DDPM_PRECISION_FP32, q, k, v, B, C, N);
  g_assert_false (memcmp (one, fp32, n * sizeof (float)) == 0);
  ddpm_cpu_set_bf16_disabled (TRUE);
  float *fallback = forward (DDPM_PRECISION_BF16, q, k, v, B, C, N);
  ddpm_cpu_set_bf16_disabled (FALSE);
  g_assert_true (memcmp (fallback, fp32, n * sizeof (float)) == 0);

  g_free (q);
  g_free (k);
  g_free (v);
  g_free (one);
  g_free (two);
  g_free (fp32);
  g_free (fallback);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/engine/attention-bf16/against-oracle", test_against_oracle);
  g_test_add_func ("/engine/attention-bf16/threads-and-fallback", test_threads_and_fallback);
  return g_test_run ();
}
