/* test-sampler.c: the DDPM and DDIM samplers, step by step and end to end
 * with analytic denoisers whose optimum is known in closed form.
 *
 * Gaussian data x0 ~ N(μ, s²): q(x_t) = N(√ᾱ·μ, ᾱs² + 1 − ᾱ) and the
 * optimal ε-predictor is ε* = √(1−ᾱ)·(x_t − √ᾱ·μ)/(ᾱs² + 1 − ᾱ).  Every
 * sampler step is then affine in x, so the exact law of the samples the
 * discrete chain produces is Gaussian with moments that a double recursion
 * gives (written here from ᾱ alone); its distance from (μ, s²) is the
 * discretisation bias, allowed on top of the sampling tolerance.
 *
 * Two points ±a with weights p, 1 − p: E[x0|x_t] = a·tanh(√ᾱ·a·x_t/(1−ᾱ)
 * + ½·log(p/(1−p))).
 *
 * The learned-variance step (Nichol & Dhariwal 2021, eq. 15) against
 * guided-diffusion's own p_mean_variance (fixtures/learned-variance.txt,
 * made by make-learned-variance-fixtures.py), and through img2img: v = −1
 * and v = +1 everywhere are the posterior and β variances.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ddpm.h"
#include "analytic-denoisers.h"
#include "sampler-private.h"

#define IMG_H 64
#define IMG_W 1024
#define N_PIX (IMG_H * IMG_W) /* 65536 independent samples */

/* ᾱ_t of the linear schedule at T = 1000, from β alone (long double). */
static double
linear_alpha_bar (int t)
{
  long double ab = 1;

  for (int k = 1; k <= t; k++)
    ab *= 1.0L - (1e-4L + (0.02L - 1e-4L) * (k - 1) / 999);
  return (double) ab;
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

/* ------------------------------------------------------------------ names */

static void
test_names (void)
{
  GError *error = NULL;
  DdpmSamplerKind kind;
  DdpmVariance variance;

  for (int k = 0; k < DDPM_SAMPLER_COUNT; k++)
    {
      g_assert_true (ddpm_sampler_kind_from_string (ddpm_sampler_kind_name (k),
                                                    &kind, &error));
      g_assert_no_error (error);
      g_assert_cmpint (kind, ==, k);
    }
  for (int k = 0; k < DDPM_VARIANCE_COUNT; k++)
    {
      g_assert_true (ddpm_variance_from_string (ddpm_variance_name (k),
                                                &variance, &error));
      g_assert_no_error (error);
      g_assert_cmpint (variance, ==, k);
    }
  g_assert_true (ddpm_sampler_kind_from_string ("DDIM", &kind, NULL));
  g_assert_cmpint (kind, ==, DDPM_SAMPLER_DDIM);
  g_assert_cmpstr (ddpm_sampler_kind_name (DDPM_SAMPLER_DDPM), ==, "ddpm");
  g_assert_cmpstr (ddpm_variance_name (DDPM_VARIANCE_BETA), ==, "beta");

  g_assert_false (ddpm_sampler_kind_from_string ("euler", &kind, &error));
  g_assert_error (error, DDPM_ERROR, DDPM_ERROR_INVALID_ARGUMENT);
  g_assert_nonnull (strstr (error->message, "ddim"));
  g_clear_error (&error);
  g_assert_false (ddpm_variance_from_string ("large", &variance, &error));
  g_assert_error (error, DDPM_ERROR, DDPM_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);
}

/* ------------------------------------------------------------ single steps */

/* DDIM with η = 0 given the true ε of x_t = √ᾱ·x0 + √(1−ᾱ)·ε lands exactly
 * on √ᾱ_prev·x0 + √(1−ᾱ_prev)·ε (Song et al. 2021, eq. 12 with σ = 0). */
static void
test_ddim_step_true_eps (void)
{
  DdpmSchedule *base = ddpm_schedule_new (DDPM_SCHEDULE_LINEAR, 1000, NULL);
  DdpmSchedule *s = ddpm_schedule_respace (base, 1000, 50, DDPM_SPACING_TRAILING, NULL);
  const gsize n = 4096;
  float *x0 = g_new (float, n), *eps = g_new (float, n), *x = g_new (float, n);

  for (gsize k = 0; k < n; k++)
    x0[k] = (float) (1.8 * ddpm_rng_uniform (3, 0, k) - 0.9);
  ddpm_rng_normal_fill (eps, n, 3, 1, 0);
  for (int i = 1; i <= 50; i += 7)
    for (int clip = 0; clip <= 1; clip++)
      {
        double ab = linear_alpha_bar (20 * i), ab_prev = linear_alpha_bar (20 * (i - 1));

        for (gsize k = 0; k < n; k++)
          x[k] = (float) (sqrt (ab) * x0[k] + sqrt (1 - ab) * eps[k]);
        ddpm_sampler_ddim_step (x, eps, NULL, n, s, i, 0.0, clip);
        for (gsize k = 0; k < n; k++)
          {
            double want = sqrt (ab_prev) * x0[k] + sqrt (1 - ab_prev) * eps[k];
            /* float x_t carries 6e-8 relative error, amplified by 1/√ᾱ_t in x̂0 */
            g_assert_cmpfloat (fabs (x[k] - want), <, 1e-6 * (1 + 1 / sqrt (ab)));
          }
      }
  g_free (x0);
  g_free (eps);
  g_free (x);
  ddpm_schedule_free (s);
  ddpm_schedule_free (base);
}

/* A DDPM step given the true ε samples the posterior q(x_{t'}|x_t, x0) of
 * the respaced chain: mean √ᾱ'·β'/(1−ᾱ)·x0 + √α'·(1−ᾱ')/(1−ᾱ)·x_t with
 * ᾱ' = ᾱ_prev, α' = ᾱ/ᾱ', β' = 1 − α', variance β̃' or β'. */
static void
test_ddpm_step_posterior (void)
{
  DdpmSchedule *base = ddpm_schedule_new (DDPM_SCHEDULE_LINEAR, 1000, NULL);
  DdpmSchedule *s = ddpm_schedule_respace (base, 1000, 50, DDPM_SPACING_TRAILING, NULL);
  const gsize n = 200000;
  float *x = g_new (float, n), *eps = g_new (float, n), *z = g_new (float, n);
  const double x0 = 0.4, e0 = -1.3;
  const int steps[] = { 2, 10, 37, 50 };

  for (gsize j = 0; j < G_N_ELEMENTS (steps); j++)
    for (int v = 0; v < DDPM_VARIANCE_COUNT; v++)
      {
        int i = steps[j];
        double ab = linear_alpha_bar (20 * i), ab_prev = linear_alpha_bar (20 * (i - 1));
        double alpha = ab / ab_prev, beta = 1 - alpha;
        double xt = sqrt (ab) * x0 + sqrt (1 - ab) * e0;
        double mean = sqrt (ab_prev) * beta / (1 - ab) * x0
                      + sqrt (alpha) * (1 - ab_prev) / (1 - ab) * xt;
        double var = v == DDPM_VARIANCE_BETA ? beta : beta * (1 - ab_prev) / (1 - ab);
        double m, sv;

        for (gsize k = 0; k < n; k++)
          {
            x[k] = (float) xt;
            eps[k] = (float) e0;
          }
        ddpm_rng_normal_fill (z, n, 9, (guint64) (i * 2 + v), 0);
        ddpm_sampler_ddpm_step (x, eps, z, n, s, i, v, FALSE);
        moments (x, n, &m, &sv);
        /* float rounding of x_t and ε moves the mean by ~1e-7·(1/√ᾱ) */
        g_assert_cmpfloat (fabs (m - mean), <, 5 * sqrt (var / n) + 1e-5);
        g_assert_cmpfloat (fabs (sv - var), <, 5 * var * sqrt (2.0 / (n - 1)));
      }

  /* last step: no noise, x = x̂0 (coef_xt = 0 since ᾱ_prev = 1) */
  float one = (float) (sqrt (linear_alpha_bar (20)) * x0 + sqrt (1 - linear_alpha_bar (20)) * e0);
  float e = (float) e0;
  ddpm_sampler_ddpm_step (&one, &e, NULL, 1, s, 1, DDPM_VARIANCE_BETA, FALSE);
  g_assert_cmpfloat (fabs (one - x0), <, 1e-5);
  g_free (x);
  g_free (eps);
  g_free (z);
  ddpm_schedule_free (s);
  ddpm_schedule_free (base);
}

/* ------------------------------------------------------- Gaussian data */

typedef struct
{
  const DdpmSchedule *base;
  double mu, s;
  int calls;
} Gaussian;

/* ε*(x_t, t) = √(1−ᾱ)·(x_t − √ᾱ·μ)/(ᾱs² + 1 − ᾱ), per pixel. */
static gboolean
gaussian_denoise (float *eps, const float *x, int B, int C, int H, int W,
                  int t, gpointer user_data, GError **error)
{
  Gaussian *g = user_data;

  g->calls++;
  analytic_gaussian_eps (eps, x, (gsize) B * C * H * W, g->base, t, g->mu, g->s);
  return TRUE;
}

typedef struct
{
  DdpmSamplerKind sampler;
  DdpmVariance variance;
  double eta;
  int steps;
} Config;

/* The exact mean and variance of the samples the chain produces, by the
 * affine recursion x' = a·x + b + σ·z from x_T ~ N(0, 1), trailing
 * spacing over T = 1000. */
static void
exact_chain_moments (const Config *cfg, double mu, double s,
                     double *mean_out, double *var_out)
{
  const int N = cfg->steps;
  double m = 0, v = 1;

  for (int i = N; i >= 1; i--)
    {
      int t = (int) llround ((double) i * 1000 / N);
      int tp = (int) llround ((double) (i - 1) * 1000 / N);
      double ab = linear_alpha_bar (t), abp = linear_alpha_bar (tp);
      double D = ab * s * s + 1 - ab;
      double f[2], sigma;

      for (int x = 0; x <= 1; x++)
        {
          double e = sqrt (1 - ab) * (x - sqrt (ab) * mu) / D;
          double x0 = (x - sqrt (1 - ab) * e) / sqrt (ab);

          if (cfg->sampler == DDPM_SAMPLER_DDPM)
            {
              double beta = 1 - ab / abp;
              f[x] = sqrt (abp) * beta / (1 - ab) * x0
                     + sqrt (ab / abp) * (1 - abp) / (1 - ab) * x;
              sigma = i == 1 ? 0
                      : sqrt (cfg->variance == DDPM_VARIANCE_BETA
                              ? beta : beta * (1 - abp) / (1 - ab));
            }
          else
            {
              sigma = cfg->eta * sqrt ((1 - abp) / (1 - ab)) * sqrt (1 - ab / abp);
              f[x] = sqrt (abp) * x0 + sqrt (1 - abp - sigma * sigma) * e;
            }
        }
      double a = f[1] - f[0], b = f[0];
      m = a * m + b;
      v = a * a * v + sigma * sigma;
    }
  *mean_out = m;
  *var_out = v;
}

static void
run_gaussian (gconstpointer data)
{
  const Config *cfg = data;
  DdpmSchedule *base = ddpm_schedule_new (DDPM_SCHEDULE_LINEAR, 1000, NULL);
  /* μ + 2s > 1: clipping x̂0 would cut the upper tail */
  Gaussian g = { base, 0.3, 0.5, 0 };
  DdpmDenoiser d = { gaussian_denoise, &g, 1, 0, 0, NULL };
  DdpmSampleParams p;
  GError *error = NULL;
  float *img = g_new0 (float, N_PIX);
  double mean, var, exact_mean, exact_var;

  ddpm_sample_params_init (&p);
  p.sampler = cfg->sampler;
  p.variance = cfg->variance;
  p.eta = cfg->eta;
  p.steps = cfg->steps;
  p.clip_x0 = FALSE;
  p.strength = 1.0;
  p.seed = 20260 + cfg->steps;
  p.threads = 1;
  g_assert_true (ddpm_img2img (img, NULL, 1, IMG_H, IMG_W, base, &d, &p, &error));
  g_assert_no_error (error);
  g_assert_cmpint (g.calls, ==, cfg->steps);

  moments (img, N_PIX, &mean, &var);
  exact_chain_moments (cfg, g.mu, g.s, &exact_mean, &exact_var);
  double bias_mean = fabs (exact_mean - g.mu), bias_var = fabs (exact_var - g.s * g.s);
  g_test_message ("%s var %d eta %g steps %d: mean %.5f var %.5f; "
                  "chain %.5f %.5f", ddpm_sampler_kind_name (cfg->sampler),
                  cfg->variance, cfg->eta, cfg->steps, mean, var, exact_mean, exact_var);

  /* The bias allowance is the discrete chain's own, computed exactly.
   * Measured (var of the chain vs s² = 0.25): at 1000 steps −1.5 % (DDPM
   * β̃, DDIM η = 1), +0.3 % (DDPM β), −0.6 % (DDIM η = 0); at 50 steps
   * −21 % (β̃ drops the c0²·Var(x0|x_t) term of the true reverse kernel,
   * which grows with the jump), +4.7 % (β), −11 % (DDIM η = 0: the Euler
   * step of the probability-flow ODE).  x_T = ε rather than q(x_T) costs
   * √ᾱ_T·μ ≈ 0.002 in the mean. */
  g_assert_cmpfloat (bias_mean, <, 0.01);
  g_assert_cmpfloat (bias_var, <, (cfg->steps >= 1000 ? 0.02 : 0.25) * g.s * g.s);
  g_assert_cmpfloat (fabs (mean - g.mu), <, 5 * sqrt (exact_var / N_PIX) + bias_mean);
  g_assert_cmpfloat (fabs (var - g.s * g.s), <,
                     5 * exact_var * sqrt (2.0 / (N_PIX - 1)) + bias_var);
  /* and, without any allowance, the moments of the chain itself */
  g_assert_cmpfloat (fabs (mean - exact_mean), <, 5 * sqrt (exact_var / N_PIX));
  g_assert_cmpfloat (fabs (var - exact_var), <, 5 * exact_var * sqrt (2.0 / (N_PIX - 1)));

  g_free (img);
  ddpm_schedule_free (base);
}

/* Clipping on: the same data leaves [−1, 1] in 8 % of samples, the
 * sampler's output never does (the last step returns the clipped x̂0). */
static void
test_clip_keeps_range (void)
{
  DdpmSchedule *base = ddpm_schedule_new (DDPM_SCHEDULE_LINEAR, 1000, NULL);
  Gaussian g = { base, 0.3, 0.5, 0 };
  DdpmDenoiser d = { gaussian_denoise, &g, 1, 0, 0, NULL };
  const gsize n = 64 * 256;
  float *img = g_new0 (float, n);
  DdpmSampleParams p;

  for (int k = 0; k < DDPM_SAMPLER_COUNT; k++)
    {
      gsize at_one = 0;

      ddpm_sample_params_init (&p);
      p.sampler = k;
      p.steps = 50;
      p.threads = 1;
      memset (img, 0, n * sizeof (float));
      g_assert_true (ddpm_img2img (img, NULL, 1, 64, 256, base, &d, &p, NULL));
      for (gsize i = 0; i < n; i++)
        {
          g_assert_cmpfloat (fabs (img[i]), <=, 1.0f);
          at_one += img[i] == 1.0f;
        }
      /* the tail beyond 1 (8 % of N(0.3, 0.25)) piles up at 1 */
      g_assert_cmpuint (at_one, >, n / 50);
    }
  g_free (img);
  ddpm_schedule_free (base);
}

/* Song et al. 2021, §4.1: DDIM with η = 1 is the DDPM sampler with σ² = β̃.
 * Both draw their step noise from the same keys, so the outputs agree to
 * float rounding, step sizes and clipping included. */
static void
test_ddim_eta1_is_ddpm (void)
{
  DdpmSchedule *base = ddpm_schedule_new (DDPM_SCHEDULE_COSINE, 1000, NULL);
  Gaussian g = { base, 0.3, 0.5, 0 };
  DdpmDenoiser d = { gaussian_denoise, &g, 2, 0, 0, NULL };
  const int H = 32, W = 48;
  const gsize n = 2 * H * W;
  float *a = g_new (float, n), *b = g_new (float, n);
  DdpmSampleParams p;

  for (gsize i = 0; i < n; i++)
    a[i] = b[i] = (float) (2 * ddpm_rng_uniform (8, 0, i) - 1);
  ddpm_sample_params_init (&p);
  p.steps = 37;
  p.strength = 0.85;
  p.seed = 5;
  p.sampler = DDPM_SAMPLER_DDIM;
  p.eta = 1.0;
  g_assert_true (ddpm_img2img (a, NULL, 2, H, W, base, &d, &p, NULL));
  p.sampler = DDPM_SAMPLER_DDPM;
  p.variance = DDPM_VARIANCE_POSTERIOR;
  g_assert_true (ddpm_img2img (b, NULL, 2, H, W, base, &d, &p, NULL));
  for (gsize i = 0; i < n; i++)
    g_assert_cmpfloat (fabs (a[i] - b[i]), <, 1e-5);
  /* and η = 0 is a different (deterministic) sampler */
  p.sampler = DDPM_SAMPLER_DDIM;
  p.eta = 0.0;
  for (gsize i = 0; i < n; i++)
    b[i] = (float) (2 * ddpm_rng_uniform (8, 0, i) - 1);
  g_assert_true (ddpm_img2img (b, NULL, 2, H, W, base, &d, &p, NULL));
  double diff = 0;
  for (gsize i = 0; i < n; i++)
    diff = MAX (diff, fabs (a[i] - b[i]));
  g_assert_cmpfloat (diff, >, 0.1);
  g_free (a);
  g_free (b);
  ddpm_schedule_free (base);
}

/* ------------------------------------------------------------ two points */

typedef struct
{
  const DdpmSchedule *base;
  double a, p;
} TwoPoints;

static gboolean
two_points_denoise (float *eps, const float *x, int B, int C, int H, int W,
                    int t, gpointer user_data, GError **error)
{
  TwoPoints *tp = user_data;
  double ab = tp->base->alpha_bar[t];
  double half_log_odds = 0.5 * log (tp->p / (1 - tp->p));
  gsize n = (gsize) B * C * H * W;

  for (gsize i = 0; i < n; i++)
    {
      double x0 = tp->a * tanh (sqrt (ab) * tp->a * x[i] / (1 - ab) + half_log_odds);
      eps[i] = (float) ((x[i] - sqrt (ab) * x0) / sqrt (1 - ab));
    }
  return TRUE;
}

static void
run_two_points (gconstpointer data)
{
  const Config *cfg = data;
  DdpmSchedule *base = ddpm_schedule_new (DDPM_SCHEDULE_LINEAR, 1000, NULL);
  TwoPoints tp = { base, 0.8, 0.3 };
  DdpmDenoiser d = { two_points_denoise, &tp, 1, 0, 0, NULL };
  DdpmSampleParams p;
  float *img = g_new0 (float, N_PIX);
  gsize positive = 0, near = 0;

  ddpm_sample_params_init (&p);
  p.sampler = cfg->sampler;
  p.variance = cfg->variance;
  p.eta = cfg->eta;
  p.steps = cfg->steps;
  p.clip_x0 = FALSE;
  p.seed = 77;
  p.threads = 1;
  g_assert_true (ddpm_img2img (img, NULL, 1, IMG_H, IMG_W, base, &d, &p, NULL));
  for (gsize i = 0; i < N_PIX; i++)
    {
      positive += img[i] > 0;
      near += fabs (fabs (img[i]) - tp.a) < 0.01;
    }
  double frac = (double) positive / N_PIX;
  g_test_message ("positive %.4f, within 0.01 of ±a %.5f", frac, (double) near / N_PIX);
  /* The last step returns E[x0|x_{t1}] with t1 ≤ 20, where the posterior
   * odds are e^(√ᾱ·a·x/(1−ᾱ)) ≈ e^(80·x): only samples within ~0.03 of 0
   * can miss the points, a mass of order 1e-3. */
  g_assert_cmpfloat ((double) near / N_PIX, >, 0.995);
  /* 5 standard errors of a proportion, plus 0.01 for the discretisation of
   * the mode split at large t (the split is decided early, where 50 jumps
   * of 20 timesteps are coarse) */
  g_assert_cmpfloat (fabs (frac - tp.p), <, 5 * sqrt (tp.p * (1 - tp.p) / N_PIX) + 0.01);
  g_free (img);
  ddpm_schedule_free (base);
}

/* One line "name v1 v2 …" of the fixture into values (n of them). */
static void
read_values (char **line, const char *name, double *values, int n)
{
  char **parts = g_strsplit (g_strstrip (*line), " ", -1);

  g_assert_cmpstr (parts[0], ==, name);
  g_assert_cmpint (g_strv_length (parts), ==, n + 1);
  for (int k = 0; k < n; k++)
    values[k] = g_ascii_strtod (parts[k + 1], NULL);
  g_strfreev (parts);
}

/* The step's mean (noise NULL), its standard deviation (noise 1 minus the
 * mean) and log-variance against guided-diffusion's p_mean_variance with
 * LEARNED_RANGE on the same respaced chain. */
static void
test_ddpm_step_learned (void)
{
  char *path = g_test_build_filename (G_TEST_DIST, "fixtures", "learned-variance.txt", NULL);
  char *text = NULL;
  g_assert_true (g_file_get_contents (path, &text, NULL, NULL));
  char **lines = g_strsplit (text, "\n", -1);
  DdpmSchedule *base = ddpm_schedule_new (DDPM_SCHEDULE_LINEAR, 1000, NULL);
  DdpmSchedule *chain = ddpm_schedule_respace (base, 1000, 10, DDPM_SPACING_TRAILING, NULL);
  double kept[10];
  int n, cases = 0;

  g_assert_nonnull (chain);
  read_values (&lines[0], "timesteps", kept, 10);
  for (int i = 1; i <= 10; i++)
    g_assert_cmpint (chain->timestep[i], ==, (int) kept[i - 1]);
  g_assert_true (sscanf (lines[1], "n %d", &n) == 1 && n > 0 && n <= 16);

  for (int l = 2; lines[l] != NULL && lines[l][0] != '\0'; l += 7)
    {
      int i, clip;
      double x[16], eps[16], v[16], mean[16], var[16], logvar[16];
      float xf[16], ef[16], vf[16], out_mean[16], out_noisy[16], ones[16];

      g_assert_true (sscanf (lines[l], "case %d %d", &i, &clip) == 2);
      read_values (&lines[l + 1], "x", x, n);
      read_values (&lines[l + 2], "eps", eps, n);
      read_values (&lines[l + 3], "v", v, n);
      read_values (&lines[l + 4], "mean", mean, n);
      read_values (&lines[l + 5], "variance", var, n);
      read_values (&lines[l + 6], "log_variance", logvar, n);
      for (int k = 0; k < n; k++)
        {
          xf[k] = (float) x[k];
          ef[k] = (float) eps[k];
          vf[k] = (float) v[k];
          ones[k] = 1.0f;
        }
      memcpy (out_mean, xf, sizeof xf);
      memcpy (out_noisy, xf, sizeof xf);
      ddpm_sampler_ddpm_step_learned (out_mean, ef, vf, NULL, n, chain, i, clip);
      ddpm_sampler_ddpm_step_learned (out_noisy, ef, vf, ones, n, chain, i, clip);
      for (int k = 0; k < n; k++)
        {
          double lv = ddpm_sampler_learned_log_variance (chain, i, vf[k]);

          g_assert_cmpfloat (fabs (lv - logvar[k]), <, 1e-7 * MAX (1.0, fabs (logvar[k])));
          g_assert_cmpfloat (fabs (exp (lv) - var[k]), <, 1e-7 * var[k]);
          /* the schedules agree to ~1e-9 (ᾱ as a ratio here, a cumulative
           * product there); the state is float: 1e-6 relative */
          g_assert_cmpfloat (fabs (out_mean[k] - mean[k]), <, 1e-6 * MAX (1.0, fabs (mean[k])));
          /* σ = √variance added at i > 1, nothing at the last step */
          double sigma = (double) out_noisy[k] - out_mean[k];
          if (i > 1)
            g_assert_cmpfloat (fabs (sigma - sqrt (var[k])), <, 2e-6 * MAX (1.0, fabs (mean[k])));
          else
            g_assert_cmpfloat (sigma, ==, 0.0);
        }
      cases++;
    }
  g_assert_cmpint (cases, ==, 8);
  g_strfreev (lines);
  g_free (text);
  g_free (path);
  ddpm_schedule_free (chain);
  ddpm_schedule_free (base);
}

/* A denoiser with the Gaussian optimum's ε and a constant v. */
typedef struct
{
  Gaussian g;
  float    v;
  int      calls_v;
} LearnedGaussian;

static gboolean
learned_plain (float *eps, const float *x, int B, int C, int H, int W, int t,
               gpointer user_data, GError **error)
{
  LearnedGaussian *lg = user_data;
  return gaussian_denoise (eps, x, B, C, H, W, t, &lg->g, error);
}

static gboolean
learned_with_v (float *eps, float *v, const float *x, int B, int C, int H, int W, int t,
                gpointer user_data, GError **error)
{
  LearnedGaussian *lg = user_data;
  gsize n = (gsize) B * C * H * W;

  lg->calls_v++;
  for (gsize k = 0; k < n; k++)
    v[k] = lg->v;
  return gaussian_denoise (eps, x, B, C, H, W, t, &lg->g, error);
}

/* Through img2img, whole and in tiles: v = −1 is the posterior variance
 * β̃ and v = +1 the β variance of the fixed-variance sampler (to float
 * rounding: exp(½·log σ²) against √σ²); DDIM never asks for v. */
static void
test_img2img_learned (void)
{
  DdpmSchedule *base = ddpm_schedule_new (DDPM_SCHEDULE_LINEAR, 1000, NULL);
  const int H = 24, W = 20;
  const gsize n = (gsize) H * W;
  float *a = g_new (float, n), *b = g_new (float, n);
  DdpmSampleParams p;

  ddpm_sample_params_init (&p);
  p.sampler = DDPM_SAMPLER_DDPM;
  p.steps = 12;
  p.seed = 5;
  p.threads = 1;
  p.clip_x0 = FALSE;
  for (int tile = 0; tile <= 8; tile += 8)
    for (int side = -1; side <= 1; side += 2)
      {
        LearnedGaussian lg = { { base, 0.3, 0.5, 0 }, (float) side, 0 };
        DdpmDenoiser learned = { learned_plain, &lg, 1, tile, 0, learned_with_v };
        DdpmDenoiser fixed = { learned_plain, &lg, 1, tile, 0, NULL };
        double diff = 0;

        memset (a, 0, n * sizeof (float));
        memset (b, 0, n * sizeof (float));
        p.variance = DDPM_VARIANCE_BETA; /* unused with denoise_v */
        g_assert_true (ddpm_img2img (a, NULL, 1, H, W, base, &learned, &p, NULL));
        g_assert_cmpint (lg.calls_v, >, 0);
        p.variance = side < 0 ? DDPM_VARIANCE_POSTERIOR : DDPM_VARIANCE_BETA;
        g_assert_true (ddpm_img2img (b, NULL, 1, H, W, base, &fixed, &p, NULL));
        for (gsize k = 0; k < n; k++)
          diff = MAX (diff, fabs (a[k] - b[k]));
        g_test_message ("tile %d, v = %d: max difference %.3g", tile, side, diff);
        g_assert_cmpfloat (diff, <, 1e-4);

        /* and the other end differs: the variance is really v's */
        p.variance = side < 0 ? DDPM_VARIANCE_BETA : DDPM_VARIANCE_POSTERIOR;
        g_assert_true (ddpm_img2img (b, NULL, 1, H, W, base, &fixed, &p, NULL));
        diff = 0;
        for (gsize k = 0; k < n; k++)
          diff = MAX (diff, fabs (a[k] - b[k]));
        g_assert_cmpfloat (diff, >, 1e-3);

        /* DDIM: ε only */
        DdpmSampleParams q = p;
        q.sampler = DDPM_SAMPLER_DDIM;
        lg.calls_v = 0;
        g_assert_true (ddpm_img2img (a, NULL, 1, H, W, base, &learned, &q, NULL));
        g_assert_cmpint (lg.calls_v, ==, 0);
      }
  g_free (a);
  g_free (b);
  ddpm_schedule_free (base);
}

int
main (int argc, char **argv)
{
  static const Config gaussian_cases[] = {
    { DDPM_SAMPLER_DDPM, DDPM_VARIANCE_POSTERIOR, 0, 1000 },
    { DDPM_SAMPLER_DDPM, DDPM_VARIANCE_BETA, 0, 1000 },
    { DDPM_SAMPLER_DDIM, DDPM_VARIANCE_POSTERIOR, 0, 1000 },
    { DDPM_SAMPLER_DDIM, DDPM_VARIANCE_POSTERIOR, 1, 1000 },
    { DDPM_SAMPLER_DDPM, DDPM_VARIANCE_POSTERIOR, 0, 50 },
    { DDPM_SAMPLER_DDPM, DDPM_VARIANCE_BETA, 0, 50 },
    { DDPM_SAMPLER_DDIM, DDPM_VARIANCE_POSTERIOR, 0, 50 },
    { DDPM_SAMPLER_DDIM, DDPM_VARIANCE_POSTERIOR, 1, 50 },
  };
  static const Config two_point_cases[] = {
    { DDPM_SAMPLER_DDPM, DDPM_VARIANCE_POSTERIOR, 0, 1000 },
    { DDPM_SAMPLER_DDIM, DDPM_VARIANCE_POSTERIOR, 0, 50 },
    { DDPM_SAMPLER_DDPM, DDPM_VARIANCE_POSTERIOR, 0, 50 },
  };

  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/engine/sampler/names", test_names);
  g_test_add_func ("/engine/sampler/ddim-step-true-eps", test_ddim_step_true_eps);
  g_test_add_func ("/engine/sampler/ddpm-step-posterior", test_ddpm_step_posterior);
  g_test_add_func ("/engine/sampler/ddpm-step-learned", test_ddpm_step_learned);
  g_test_add_func ("/engine/sampler/img2img-learned", test_img2img_learned);
  for (gsize k = 0; k < G_N_ELEMENTS (gaussian_cases); k++)
    {
      const Config *c = &gaussian_cases[k];
      char *path = c->sampler == DDPM_SAMPLER_DDPM
        ? g_strdup_printf ("/engine/sampler/gaussian/ddpm-%s-%d",
                           ddpm_variance_name (c->variance), c->steps)
        : g_strdup_printf ("/engine/sampler/gaussian/ddim-eta%g-%d", c->eta, c->steps);
      g_test_add_data_func (path, c, run_gaussian);
      g_free (path);
    }
  g_test_add_func ("/engine/sampler/clip-keeps-range", test_clip_keeps_range);
  g_test_add_func ("/engine/sampler/ddim-eta1-is-ddpm", test_ddim_eta1_is_ddpm);
  for (gsize k = 0; k < G_N_ELEMENTS (two_point_cases); k++)
    {
      const Config *c = &two_point_cases[k];
      char *path = g_strdup_printf ("/engine/sampler/two-points/%s-%d",
                                    ddpm_sampler_kind_name (c->sampler), c->steps);
      g_test_add_data_func (path, c, run_two_points);
      g_free (path);
    }
  return g_test_run ();
}
