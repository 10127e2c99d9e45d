/* test-diffusion.c: the forward process and the posterior, checked by
 * sampling (tolerances from the sample size) and by numerical integration
 * of the product of Gaussians, never against the code's own formulas. */
#include <float.h>
#include <math.h>

#include "ddpm.h"

#define N_SAMPLES 200000

static DdpmSchedule *
linear_1000 (void)
{
  return ddpm_schedule_new (DDPM_SCHEDULE_LINEAR, 1000, NULL);
}

static void
moments (const float *x, gsize n, double *mean, double *var)
{
  double s = 0, s2 = 0;

  for (gsize i = 0; i < n; i++)
    s += x[i];
  *mean = s / n;
  for (gsize i = 0; i < n; i++)
    s2 += (x[i] - *mean) * (x[i] - *mean);
  *var = s2 / (n - 1);
}

/* Mean within 5 standard errors √(σ²/n); variance within 5·σ²·√(2/(n−1))
 * (the standard error of a Gaussian sample variance). */
static void
assert_gaussian_moments (const float *x, gsize n, double mu, double var_expected)
{
  double mean, var;

  moments (x, n, &mean, &var);
  g_assert_cmpfloat (fabs (mean - mu), <, 5 * sqrt (var_expected / n));
  g_assert_cmpfloat (fabs (var - var_expected), <, 5 * var_expected * sqrt (2.0 / (n - 1)));
}

/* q(x_t|x_0) = N(√ᾱ_t·x_0, (1−ᾱ_t)·I) (eq. 4), by sampling. */
static void
test_q_sample_moments (void)
{
  DdpmSchedule *s = linear_1000 ();
  float *x0 = g_new (float, N_SAMPLES), *eps = g_new (float, N_SAMPLES);
  float *xt = g_new (float, N_SAMPLES);
  const int ts[] = { 1, 10, 100, 500, 1000 };

  for (gsize j = 0; j < G_N_ELEMENTS (ts); j++)
    {
      int t = ts[j];
      for (gsize i = 0; i < N_SAMPLES; i++)
        x0[i] = -0.8f;
      ddpm_rng_normal_fill (eps, N_SAMPLES, 11, t, 0);
      ddpm_q_sample (xt, x0, eps, N_SAMPLES, s, t);

      long double ab = 1;
      for (int k = 1; k <= t; k++)
        ab *= 1.0L - (1e-4L + (0.02L - 1e-4L) * (k - 1) / 999);
      assert_gaussian_moments (xt, N_SAMPLES, sqrtl (ab) * -0.8, 1 - (double) ab);
    }
  /* t = 0 is the data itself */
  ddpm_q_sample (xt, x0, eps, 16, s, 0);
  for (int i = 0; i < 16; i++)
    g_assert_cmpfloat (xt[i], ==, x0[i]);
  g_free (x0);
  g_free (eps);
  g_free (xt);
  ddpm_schedule_free (s);
}

/* The seeds' reparameterisation argument: t single steps
 * x_t = √α_t·x_{t−1} + √(1−α_t)·z merge into the one-shot closed form.
 * Compare moments and the mass within ±1σ and ±2σ (Φ(1)−Φ(−1) etc.). */
static void
test_chain_matches_closed_form (void)
{
  DdpmSchedule *s = linear_1000 ();
  const int t_end = 300;
  const gsize n = 50000;
  float *x = g_new (float, n), *z = g_new (float, n);

  for (gsize i = 0; i < n; i++)
    x[i] = 0.7f;
  for (int t = 1; t <= t_end; t++)
    {
      float a = (float) sqrt (1 - s->beta[t]), b = (float) sqrt (s->beta[t]);
      ddpm_rng_normal_fill (z, n, 5, 1000 + t, 0);
      for (gsize i = 0; i < n; i++)
        x[i] = a * x[i] + b * z[i];
    }
  double mu = s->sqrt_alpha_bar[t_end] * 0.7, var = 1 - s->alpha_bar[t_end];
  assert_gaussian_moments (x, n, mu, var);

  gsize within1 = 0, within2 = 0;
  for (gsize i = 0; i < n; i++)
    {
      double d = fabs (x[i] - mu) / sqrt (var);
      within1 += d < 1;
      within2 += d < 2;
    }
  double p1 = erf (1 / G_SQRT2), p2 = erf (2 / G_SQRT2);
  g_assert_cmpfloat (fabs ((double) within1 / n - p1), <, 5 * sqrt (p1 * (1 - p1) / n));
  g_assert_cmpfloat (fabs ((double) within2 / n - p2), <, 5 * sqrt (p2 * (1 - p2) / n));
  g_free (x);
  g_free (z);
  ddpm_schedule_free (s);
}

static double
gauss_pdf (double x, double mean, double var)
{
  return exp (-(x - mean) * (x - mean) / (2 * var)) / sqrt (2 * G_PI * var);
}

/* Bayes: q(x_{t−1}|x_t, x_0) = q(x_t|x_{t−1})·q(x_{t−1}|x_0)/q(x_t|x_0).
 * Integrate that density numerically (Simpson, 20 000 intervals) at random
 * (x_0, x_t) and compare its mass (1), mean and variance with the code's
 * posterior. */
static void
test_posterior_by_bayes (void)
{
  DdpmSchedule *s = ddpm_schedule_new (DDPM_SCHEDULE_COSINE, 1000, NULL);
  const int ts[] = { 2, 3, 10, 100, 500, 900, 999 };
  DdpmRng rng;

  ddpm_rng_init (&rng, 2024, 0);
  for (gsize j = 0; j < G_N_ELEMENTS (ts); j++)
    for (int trial = 0; trial < 5; trial++)
      {
        int t = ts[j];
        double beta = s->beta[t], ab = s->alpha_bar[t], ab_prev = s->alpha_bar[t - 1];
        float x0 = (float) (2 * ddpm_rng_next_uniform (&rng) - 1);
        float xt = (float) (sqrt (ab) * x0 + sqrt (1 - ab) * ddpm_rng_next_normal (&rng));
        /* integrate where both factors have mass */
        double lik_c = xt / sqrt (1 - beta), lik_w = sqrt (beta / (1 - beta));
        double pri_c = sqrt (ab_prev) * x0, pri_w = sqrt (1 - ab_prev);
        double w = MIN (lik_w, pri_w), c = lik_w < pri_w ? lik_c : pri_c;
        double lo = c - 12 * w, hi = c + 12 * w;
        const int m = 20000;
        double h = (hi - lo) / m, z = gauss_pdf (xt, sqrt (ab) * x0, 1 - ab);
        double mass = 0, first = 0, second = 0;

        for (int i = 0; i <= m; i++)
          {
            double y = lo + i * h;
            double p = gauss_pdf (xt, sqrt (1 - beta) * y, beta)
                       * gauss_pdf (y, sqrt (ab_prev) * x0, 1 - ab_prev) / z;
            double wgt = (i == 0 || i == m) ? 1 : (i % 2 ? 4 : 2);
            mass += wgt * p;
            first += wgt * p * y;
            second += wgt * p * y * y;
          }
        mass *= h / 3;
        first *= h / 3;
        second *= h / 3;
        double num_mean = first / mass, num_var = second / mass - num_mean * num_mean;

        float mean;
        double var, logvar;
        ddpm_q_posterior (&mean, &var, &logvar, &x0, &xt, 1, s, t);
        g_assert_cmpfloat (fabs (mass - 1), <, 1e-6);
        g_assert_cmpfloat (fabs (mean - num_mean), <, 1e-5 * (1 + fabs (num_mean)));
        g_assert_cmpfloat (fabs (var - num_var), <, 1e-5 * num_var);
        g_assert_cmpfloat_with_epsilon (logvar, log (num_var), 1e-4);
      }

  /* t = 1: x_0 is known, the posterior is a point mass at x_0 */
  float x0 = 0.3f, x1 = 0.5f, mean;
  double var;
  ddpm_q_posterior (&mean, &var, NULL, &x0, &x1, 1, s, 1);
  g_assert_cmpfloat_with_epsilon (mean, x0, 1e-6);
  g_assert_cmpfloat (var, ==, 0.0);
  ddpm_schedule_free (s);
}

/* x_0 → (x_t, ε) → x_0 and back, to float rounding amplified by 1/√ᾱ_t. */
static void
test_x0_eps_round_trip (void)
{
  DdpmSchedule *s = linear_1000 ();
  const gsize n = 4096;
  float *x0 = g_new (float, n), *eps = g_new (float, n), *xt = g_new (float, n);
  float *x0_back = g_new (float, n), *eps_back = g_new (float, n);
  const int ts[] = { 1, 50, 500, 1000 };

  for (gsize i = 0; i < n; i++)
    x0[i] = (float) (2 * ddpm_rng_uniform (1, 0, i) - 1);
  ddpm_rng_normal_fill (eps, n, 1, 1, 0);
  for (gsize j = 0; j < G_N_ELEMENTS (ts); j++)
    {
      int t = ts[j];
      ddpm_q_sample (xt, x0, eps, n, s, t);
      ddpm_predict_x0_from_eps (x0_back, xt, eps, n, s, t);
      ddpm_predict_eps_from_x0 (eps_back, xt, x0, n, s, t);
      double tol_x0 = 4 * FLT_EPSILON * s->sqrt_recip_alpha_bar[t] * 8;
      double tol_eps = 4 * FLT_EPSILON / s->sqrt_one_minus_alpha_bar[t] * 8;
      for (gsize i = 0; i < n; i++)
        {
          g_assert_cmpfloat (fabs (x0_back[i] - x0[i]), <, tol_x0);
          g_assert_cmpfloat (fabs (eps_back[i] - eps[i]), <, tol_eps);
        }
    }
  g_free (x0);
  g_free (eps);
  g_free (xt);
  g_free (x0_back);
  g_free (eps_back);
  ddpm_schedule_free (s);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/engine/diffusion/q-sample-moments", test_q_sample_moments);
  g_test_add_func ("/engine/diffusion/chain-matches-closed-form", test_chain_matches_closed_form);
  g_test_add_func ("/engine/diffusion/posterior-by-bayes", test_posterior_by_bayes);
  g_test_add_func ("/engine/diffusion/x0-eps-round-trip", test_x0_eps_round_trip);
  return g_test_run ();
}
