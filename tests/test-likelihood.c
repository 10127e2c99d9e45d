/* test-likelihood.c: the ELBO terms against numerical integration and
 * their defining properties. */
#include <math.h>

#include "ddpm.h"

/* KL(p‖q) = ∫ p log(p/q), integrated numerically (Simpson). */
static double
kl_by_integration (double m1, double lv1, double m2, double lv2)
{
  double s1 = exp (0.5 * lv1), lo = m1 - 14 * s1, hi = m1 + 14 * s1;
  const int m = 40000;
  double h = (hi - lo) / m, sum = 0;

  for (int i = 0; i <= m; i++)
    {
      double x = lo + i * h;
      double lp = -0.5 * (log (2 * G_PI) + lv1 + (x - m1) * (x - m1) / exp (lv1));
      double lq = -0.5 * (log (2 * G_PI) + lv2 + (x - m2) * (x - m2) / exp (lv2));
      double w = (i == 0 || i == m) ? 1 : (i % 2 ? 4 : 2);
      sum += w * exp (lp) * (lp - lq);
    }
  return sum * h / 3;
}

static void
test_normal_kl (void)
{
  DdpmRng rng;

  ddpm_rng_init (&rng, 3, 0);
  for (int i = 0; i < 200; i++)
    {
      double m1 = ddpm_rng_next_normal (&rng), m2 = ddpm_rng_next_normal (&rng);
      double lv1 = 2 * ddpm_rng_next_normal (&rng), lv2 = 2 * ddpm_rng_next_normal (&rng);
      double kl = ddpm_normal_kl (m1, lv1, m2, lv2);

      g_assert_cmpfloat (kl, >, 0.0);
      g_assert_cmpfloat (ddpm_normal_kl (m1, lv1, m1, lv1), ==, 0.0);
      if (i < 20)
        g_assert_cmpfloat (fabs (kl - kl_by_integration (m1, lv1, m2, lv2)), <, 1e-6 * (1 + kl));
    }
  /* zero only at equality: tiny perturbations give tiny positive values */
  g_assert_cmpfloat (ddpm_normal_kl (0, 0, 1e-3, 0), >, 0.0);
  g_assert_cmpfloat (ddpm_normal_kl (0, 0, 0, 1e-3), >, 0.0);
  g_assert_cmpfloat_with_epsilon (ddpm_normal_kl (0, 0, 1e-3, 0), 0.5e-6, 1e-15);
}

/* The 256 bin probabilities sum to 1 for any Gaussian; for a wide Gaussian
 * a middle bin holds ≈ density × bin width; for a narrow one centred on a
 * bin, almost all the mass is in that bin. */
static void
test_discretized_likelihood (void)
{
  const double means[] = { -1.3, -1.0, -0.2, 0.0, 0.51, 1.0, 2.0 };
  const double log_scales[] = { -7.0, -5.0, -3.0, -1.0, 0.0, 1.5 };

  for (gsize i = 0; i < G_N_ELEMENTS (means); i++)
    for (gsize j = 0; j < G_N_ELEMENTS (log_scales); j++)
      {
        double total = 0;
        for (int k = 0; k < 256; k++)
          total += exp (ddpm_discretized_gaussian_log_likelihood (-1 + 2.0 * k / 255,
                                                                 means[i], log_scales[j]));
        g_assert_cmpfloat (fabs (total - 1), <, 1e-9);
      }

  double x = -1 + 2.0 * 100 / 255, sd = 0.5;
  double p = exp (ddpm_discretized_gaussian_log_likelihood (x, 0.1, log (sd)));
  double density = exp (-(x - 0.1) * (x - 0.1) / (2 * sd * sd)) / (sd * sqrt (2 * G_PI));
  g_assert_cmpfloat (fabs (p - density * 2 / 255) / p, <, 1e-4);

  g_assert_cmpfloat (ddpm_discretized_gaussian_log_likelihood (x, x, -9.0), >, -1e-12);
  /* far tail: finite and very negative, not NaN */
  double tail = ddpm_discretized_gaussian_log_likelihood (-1 + 2.0 * 3 / 255, 0.9, -6.0);
  g_assert_true (isfinite (tail));
  g_assert_cmpfloat (tail, <, -100);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/engine/likelihood/normal-kl", test_normal_kl);
  g_test_add_func ("/engine/likelihood/discretized-gaussian", test_discretized_likelihood);
  return g_test_run ();
}
