/* test-rng.c: the counter-based generator: known answers from the Random123
 * distribution (kat_vectors), order independence, and distribution checks
 * whose tolerances follow from the sample size. */
#include <math.h>

#include "ddpm.h"

/* Random123 kat_vectors, "philox4x32 10" lines: counter, key, expected. */
static void
test_philox_known_answers (void)
{
  static const struct { guint32 ctr[4], key[2], expect[4]; } kat[] = {
    { { 0, 0, 0, 0 }, { 0, 0 },
      { 0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8 } },
    { { 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff }, { 0xffffffff, 0xffffffff },
      { 0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd } },
    { { 0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344 }, { 0xa4093822, 0x299f31d0 },
      { 0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1 } },
  };

  for (gsize k = 0; k < G_N_ELEMENTS (kat); k++)
    {
      guint32 out[4];

      ddpm_philox4x32_10 (out, kat[k].ctr, kat[k].key);
      for (int i = 0; i < 4; i++)
        g_assert_cmphex (out[i], ==, kat[k].expect[i]);
    }
}

/* The value of element i must not depend on how it was reached: singly, in
 * a fill from any offset, or through the sequential generator. */
static void
test_order_independence (void)
{
  const gsize n = 1003;
  float *whole = g_new (float, n), *part = g_new (float, n);
  DdpmRng rng;

  ddpm_rng_normal_fill (whole, n, 42, 7, 0);
  for (gsize i = 0; i < n; i++)
    g_assert_cmpfloat (whole[i], ==, ddpm_rng_normal (42, 7, i));
  /* fills starting at unaligned offsets, in reverse order of chunks */
  for (gsize start = n; start > 0;)
    {
      gsize len = MIN (start, (gsize) 37);
      start -= len;
      ddpm_rng_normal_fill (part + start, len, 42, 7, start);
    }
  for (gsize i = 0; i < n; i++)
    g_assert_cmpfloat (whole[i], ==, part[i]);

  ddpm_rng_init (&rng, 42, 7);
  for (gsize i = 0; i < n; i++)
    g_assert_cmpfloat (ddpm_rng_next_normal (&rng), ==, whole[i]);

  double u[10];
  ddpm_rng_uniform_fill (u, 10, 5, 1, 100);
  for (int i = 0; i < 10; i++)
    g_assert_cmpfloat (u[i], ==, ddpm_rng_uniform (5, 1, 100 + i));

  /* a different seed or stream gives different numbers */
  g_assert_cmpfloat (ddpm_rng_normal (42, 7, 3), !=, ddpm_rng_normal (43, 7, 3));
  g_assert_cmpfloat (ddpm_rng_normal (42, 7, 3), !=, ddpm_rng_normal (42, 8, 3));
  g_free (whole);
  g_free (part);
}

/* Mean 1/2 and variance 1/12, each within 5 standard errors; χ² over 64
 * equal bins below the 0.9999 quantile of χ²(63) (≈ 116). */
static void
test_uniform_distribution (void)
{
  const gsize n = 1 << 20;
  const int bins = 64;
  double sum = 0, sum2 = 0;
  guint counts[64] = { 0 };

  for (gsize i = 0; i < n; i++)
    {
      double u = ddpm_rng_uniform (1234, 0, i);
      g_assert_true (u >= 0.0 && u < 1.0);
      sum += u;
      sum2 += u * u;
      counts[(int) (u * bins)]++;
    }
  double mean = sum / n, var = sum2 / n - mean * mean;
  g_assert_cmpfloat (fabs (mean - 0.5), <, 5 * sqrt (1.0 / 12 / n));
  /* Var of the sample variance of U(0,1): (μ4 − σ⁴)/n = (1/80 − 1/144)/n */
  g_assert_cmpfloat (fabs (var - 1.0 / 12), <, 5 * sqrt ((1.0 / 80 - 1.0 / 144) / n));

  double chi2 = 0, expected = (double) n / bins;
  for (int b = 0; b < bins; b++)
    chi2 += (counts[b] - expected) * (counts[b] - expected) / expected;
  g_test_message ("uniform chi2(63) = %.1f", chi2);
  g_assert_cmpfloat (chi2, <, 116.0);
}

/* Standard normal: mean 0, variance 1, kurtosis 3 within sampling error,
 * and χ² against Φ over 40 bins on [−4, 4] plus two tails. */
static void
test_normal_distribution (void)
{
  const gsize n = 1 << 20;
  float *z = g_new (float, n);
  double sum = 0, sum2 = 0, sum4 = 0;
  enum { BINS = 42 };
  guint counts[BINS] = { 0 };

  ddpm_rng_normal_fill (z, n, 99, 3, 0);
  for (gsize i = 0; i < n; i++)
    {
      double v = z[i];
      sum += v;
      sum2 += v * v;
      sum4 += v * v * v * v;
      /* bin 0: (−∞, −4); bins 1..40: width 0.2; bin 41: [4, ∞) */
      int b = v < -4 ? 0 : v >= 4 ? BINS - 1 : 1 + MIN ((int) ((v + 4) / 0.2), BINS - 3);
      counts[b]++;
    }
  double mean = sum / n, var = sum2 / n - mean * mean, kurt = sum4 / n;
  g_assert_cmpfloat (fabs (mean), <, 5 / sqrt (n));
  g_assert_cmpfloat (fabs (var - 1), <, 5 * sqrt (2.0 / n));
  g_assert_cmpfloat (fabs (kurt - 3), <, 5 * sqrt (96.0 / n)); /* Var z⁴ = 105 − 9 */

  double chi2 = 0;
  for (int b = 0; b < BINS; b++)
    {
      double lo = b == 0 ? -INFINITY : -4 + 0.2 * (b - 1);
      double hi = b == BINS - 1 ? INFINITY : -4 + 0.2 * b;
      double p = 0.5 * erfc (-hi / G_SQRT2) - 0.5 * erfc (-lo / G_SQRT2);
      double expected = p * n;
      chi2 += (counts[b] - expected) * (counts[b] - expected) / expected;
    }
  g_test_message ("normal chi2(41) = %.1f", chi2);
  g_assert_cmpfloat (chi2, <, 85.0); /* 0.9999 quantile of χ²(41) ≈ 83 */
  g_free (z);
}

/* next_below: every value reachable, frequencies uniform (χ²). */
static void
test_next_below (void)
{
  DdpmRng rng;
  guint counts[10] = { 0 };
  const int n = 200000;

  ddpm_rng_init (&rng, 7, 0);
  for (int i = 0; i < n; i++)
    {
      guint32 v = ddpm_rng_next_below (&rng, 10);
      g_assert_cmpuint (v, <, 10);
      counts[v]++;
    }
  double chi2 = 0;
  for (int b = 0; b < 10; b++)
    chi2 += (counts[b] - n / 10.0) * (counts[b] - n / 10.0) / (n / 10.0);
  g_assert_cmpfloat (chi2, <, 33.7); /* 0.9999 quantile of χ²(9) */
  g_assert_cmpuint (rng.counter, >=, (guint64) n);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/engine/rng/philox-known-answers", test_philox_known_answers);
  g_test_add_func ("/engine/rng/order-independence", test_order_independence);
  g_test_add_func ("/engine/rng/uniform-distribution", test_uniform_distribution);
  g_test_add_func ("/engine/rng/normal-distribution", test_normal_distribution);
  g_test_add_func ("/engine/rng/next-below", test_next_below);
  return g_test_run ();
}
