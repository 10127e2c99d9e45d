/* test-denoise.c: ddpm_denoise and its parts (denoise.c): σ → t against
 * a brute-force search of the table, Donoho's noise estimator on
 * synthetic images with known noise, and denoising Gaussian data with the
 * analytic optimal ε, whose expected error is known in closed form.
 *
 * Gaussian data x0 ~ N(μ, s²) per pixel, observed as y = x0 + 2σ·n on the
 * [−1, 1] scale: the Bayes optimum E[x0|y] has mean squared error
 * s²·4σ²/(s² + 4σ²) against the noisy 4σ².  With ε*(x_t) linear in x_t
 * every sampler step is affine, x' = a·x + b + σ_i·z, so the whole run is
 * x̂ = A·y + B + w with w ~ N(0, V) (A includes the start's √ᾱ_t), and
 * its expected squared error is (A − 1)²s² + ((A − 1)μ + B)² + A²·4σ² + V,
 * computed here by a double recursion independent of the sampler code.
 * One DDIM step from t is Tweedie's formula, exactly the Bayes optimum;
 * many steps follow the probability-flow ODE, a transport that costs a
 * little more (2s²(1 − s/√(s² + 4σ²)) in the limit).
 */
#include <math.h>
#include <string.h>

#include "ddpm.h"
#include "analytic-denoisers.h"

/* ---------------------------------------------------------- σ → t */

/* The t in 1..T nearest to 2σ in ratio, by scanning every level. */
static int
naive_sigma_to_t (const DdpmSchedule *s, double sigma)
{
  int best = 1;

  for (int t = 2; t <= s->T; t++)
    if (fabs (log (s->sqrt_recipm1_alpha_bar[t] / (2 * sigma)))
        < fabs (log (s->sqrt_recipm1_alpha_bar[best] / (2 * sigma))))
      best = t;
  return best;
}

static void
test_sigma_to_t (void)
{
  for (int kind = 0; kind < DDPM_SCHEDULE_COUNT; kind++)
    {
      GError *error = NULL;
      DdpmSchedule *s = ddpm_schedule_new (kind, 1000, &error);
      const double *level = s->sqrt_recipm1_alpha_bar;

      g_assert_no_error (error);
      /* Exactly on a level: that t. */
      for (int t = 1; t <= s->T; t += 37)
        g_assert_cmpint (ddpm_denoise_sigma_to_t (s, level[t] / 2, NULL), ==, t);
      g_assert_cmpint (ddpm_denoise_sigma_to_t (s, level[s->T] / 2, NULL), ==, s->T);
      /* Log-uniform σ from far below t = 1 to the top: the scan agrees. */
      DdpmRng rng;
      ddpm_rng_init (&rng, 7, kind);
      for (int k = 0; k < 2000; k++)
        {
          double lo = log (level[1] / 20), hi = log (level[s->T] / 2);
          double sigma = exp (lo + (hi - lo) * ddpm_rng_next_uniform (&rng));

          g_assert_cmpint (ddpm_denoise_sigma_to_t (s, sigma, NULL), ==,
                           naive_sigma_to_t (s, sigma));
        }
      /* Just above the top level, and not positive: errors. */
      const double bad[] = { level[s->T] / 2 * 1.0001, 0.0, -0.1, NAN, INFINITY };
      for (gsize k = 0; k < G_N_ELEMENTS (bad); k++)
        {
          g_assert_cmpint (ddpm_denoise_sigma_to_t (s, bad[k], &error), ==, 0);
          g_assert_error (error, DDPM_ERROR, DDPM_ERROR_INVALID_ARGUMENT);
          g_clear_error (&error);
        }
      ddpm_schedule_free (s);
    }

  /* The linear schedule at the usual levels (reported, and pinned by the
   * oracle above): each t's level is within half a step of 2σ. */
  DdpmSchedule *s = ddpm_schedule_new (DDPM_SCHEDULE_LINEAR, 1000, NULL);
  const double levels[] = { 10, 25, 50 };
  for (gsize k = 0; k < G_N_ELEMENTS (levels); k++)
    {
      double sigma = levels[k] / 255;
      int t = ddpm_denoise_sigma_to_t (s, sigma, NULL);

      g_test_message ("linear T = 1000: σ = %g/255 → t = %d (level/2σ = %.4f)",
                      levels[k], t, s->sqrt_recipm1_alpha_bar[t] / (2 * sigma));
      g_assert_cmpfloat (s->sqrt_recipm1_alpha_bar[t - 1], <, 2 * sigma);
      g_assert_cmpfloat (s->sqrt_recipm1_alpha_bar[t + 1], >, 2 * sigma);
    }
  ddpm_schedule_free (s);
}

/* ---------------------------------------------------- the estimator */

static double
estimate (const float *image, int C, int H, int W)
{
  GError *error = NULL;
  double sigma = -1;

  g_assert_true (ddpm_estimate_noise_sigma (image, C, H, W, &sigma, &error));
  g_assert_no_error (error);
  return sigma;
}

static gint
compare_doubles (gconstpointer a, gconstpointer b)
{
  double x = *(const double *) a, y = *(const double *) b;

  return (x > y) - (x < y);
}

/* The median of |HH|/0.6745 on tiny images by hand, and on small random
 * ones against sorting. */
static void
test_estimate_small (void)
{
  const float one[4] = { 0.9f, 0.1f, 0.3f, 0.5f };   /* HH = (0.9−0.1−0.3+0.5)/2 */
  g_assert_cmpfloat_with_epsilon (estimate (one, 1, 2, 2), 0.5 / 0.6744897501960817, 1e-6);

  /* 2×5: two blocks (the odd column unused), |HH| = 0.1 and 0.3 → 0.2 */
  const float two[10] = { 0.2f, 0.0f, 0.6f, 0.0f, 9.0f,
                          0.0f, 0.0f, 0.0f, 0.0f, -9.0f };
  g_assert_cmpfloat_with_epsilon (estimate (two, 1, 2, 5), 0.2 / 0.6744897501960817, 1e-6);

  /* A linear ramp has no diagonal detail at all. */
  float ramp[3 * 6 * 8];
  for (int i = 0; i < 3 * 6 * 8; i++)
    ramp[i] = 0.01f * (i % 8) + 0.02f * ((i / 8) % 6) + 0.1f * (i / 48);
  g_assert_cmpfloat (estimate (ramp, 3, 6, 8), <, 1e-6);

  /* Against a sorted median, for odd and even block counts, with ties
   * (values on an 8-bit grid) and without. */
  const struct { int C, H, W; gboolean quantise; } sizes[] = {
    { 1, 10, 14, FALSE }, { 3, 7, 9, FALSE }, { 1, 30, 22, TRUE }, { 2, 17, 13, TRUE },
  };
  for (gsize k = 0; k < G_N_ELEMENTS (sizes); k++)
    {
      const int C = sizes[k].C, H = sizes[k].H, W = sizes[k].W;
      float *img = g_new (float, C * H * W);
      GArray *hh = g_array_new (FALSE, FALSE, sizeof (double));

      ddpm_rng_normal_fill (img, C * H * W, 5, k, 0);
      if (sizes[k].quantise)
        for (int i = 0; i < C * H * W; i++)
          img[i] = roundf (img[i] * 3) / 255;
      for (int c = 0; c < C; c++)
        for (int y = 0; y + 1 < H; y += 2)
          for (int x = 0; x + 1 < W; x += 2)
            {
              const float *p = img + (c * H + y) * W + x;
              double v = fabs (((double) p[0] - p[1] - p[W] + p[W + 1]) / 2);
              g_array_append_val (hh, v);
            }
      g_array_sort (hh, compare_doubles);
      guint m = hh->len;
      double median = m % 2 ? g_array_index (hh, double, m / 2)
                      : (g_array_index (hh, double, m / 2 - 1) + g_array_index (hh, double, m / 2)) / 2;
      g_assert_cmpfloat_with_epsilon (estimate (img, C, H, W), median / 0.6744897501960817,
                                      1e-6 * (1 + median));
      g_array_free (hh, TRUE);
      g_free (img);
    }

  GError *error = NULL;
  double sigma;
  g_assert_false (ddpm_estimate_noise_sigma (one, 1, 1, 4, &sigma, &error));
  g_assert_error (error, DDPM_ERROR, DDPM_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);
}

/* A smooth RGB picture (gradients, a blurred disc, slow waves) plus
 * N(0, σ²) noise: the estimate within 10% of σ from 5/255 to 50/255, and
 * the clean picture's own estimate far below the smallest σ. */
static void
test_estimate_synthetic (void)
{
  const int C = 3, H = 192, W = 256;
  const gsize n = (gsize) C * H * W;
  float *clean = g_new (float, n), *noisy = g_new (float, n), *z = g_new (float, n);

  for (int c = 0; c < C; c++)
    for (int y = 0; y < H; y++)
      for (int x = 0; x < W; x++)
        {
          double r = hypot (x - 128.0, y - 96.0);
          double disc = 0.4 / (1 + exp ((r - 50) / 4.0));
          clean[((gsize) c * H + y) * W + x] =
            (float) (0.15 + 0.1 * c + 0.3 * x / W + disc
                     + 0.08 * sin (x / 9.0 + c) * cos (y / 13.0));
        }
  double clean_sigma = estimate (clean, C, H, W);
  g_test_message ("clean image: σ̂ = %.3f/255", clean_sigma * 255);
  g_assert_cmpfloat (clean_sigma, <, 0.5 / 255);

  ddpm_rng_normal_fill (z, n, 42, 0, 0);
  const double levels[] = { 5, 10, 25, 50 };
  for (gsize k = 0; k < G_N_ELEMENTS (levels); k++)
    {
      double sigma = levels[k] / 255;

      for (gsize i = 0; i < n; i++)
        noisy[i] = (float) (clean[i] + sigma * z[i]);
      double got = estimate (noisy, C, H, W);
      g_test_message ("σ = %g/255: σ̂ = %.3f/255 (%+.2f%%)", levels[k], got * 255,
                      100 * (got / sigma - 1));
      g_assert_cmpfloat (fabs (got / sigma - 1), <, 0.10);
    }
  g_free (clean);
  g_free (noisy);
  g_free (z);
}

/* ------------------------------------------------ Gaussian denoising */

/* The expected squared error of denoising y = x0 + noise_sd·n from base
 * timestep t0 in `steps` steps (trailing spacing, no clipping), by the
 * affine recursion of the header comment. */
static double
expected_mse (const DdpmSchedule *base, const AnalyticGaussian *g, DdpmSamplerKind sampler,
              int t0, int steps, double noise_sd)
{
  DdpmSchedule *chain = ddpm_schedule_respace (base, t0, MIN (steps, t0),
                                               DDPM_SPACING_TRAILING, NULL);
  double A = sqrt (base->alpha_bar[t0]), B = 0, V = 0;

  for (int i = chain->T; i >= 1; i--)
    {
      double ab = chain->alpha_bar[i], ab_prev = chain->alpha_bar[i - 1];
      double k = sqrt (1 - ab) / (ab * g->s * g->s + 1 - ab);
      /* ε = k·x − k·√ᾱ·μ; x̂0 = (x − √(1−ᾱ)·ε)/√ᾱ = p·x + q */
      double p = (1 - sqrt (1 - ab) * k) / sqrt (ab);
      double q = sqrt (1 - ab) * k * g->mu;
      double a, b, var = 0;

      if (sampler == DDPM_SAMPLER_DDIM) /* x' = √ᾱ'·x̂0 + √(1−ᾱ')·ε */
        {
          a = sqrt (ab_prev) * p + sqrt (1 - ab_prev) * k;
          b = sqrt (ab_prev) * q - sqrt (1 - ab_prev) * k * sqrt (ab) * g->mu;
        }
      else /* x' = c0·x̂0 + ct·x + σ·z, σ² = β̃ except at the last step */
        {
          double c0 = sqrt (ab_prev) * (1 - ab / ab_prev) / (1 - ab);
          double ct = sqrt (ab / ab_prev) * (1 - ab_prev) / (1 - ab);
          a = c0 * p + ct;
          b = c0 * q;
          var = i > 1 ? (1 - ab_prev) / (1 - ab) * (1 - ab / ab_prev) : 0;
        }
      A *= a;
      B = a * B + b;
      V = a * a * V + var;
    }
  ddpm_schedule_free (chain);
  double bias = (A - 1) * g->mu + B;
  return (A - 1) * (A - 1) * g->s * g->s + bias * bias
         + A * A * noise_sd * noise_sd + V;
}

static void
test_gaussian (void)
{
  const int C = 3, H = 64, W = 64;
  const gsize n = (gsize) C * H * W;
  DdpmSchedule *base = ddpm_schedule_new (DDPM_SCHEDULE_LINEAR, 1000, NULL);
  AnalyticGaussian g = { base, 0.2, 0.1 };
  DdpmDenoiser d = { analytic_gaussian_denoise, &g, C, 0, 0, NULL };
  float *x0 = g_new (float, n), *y = g_new (float, n), *out = g_new (float, n);
  float *z = g_new (float, n);
  const double levels[] = { 10, 25, 50 };
  const struct { DdpmSamplerKind sampler; int steps; } runs[] = {
    { DDPM_SAMPLER_DDIM, 1 }, { DDPM_SAMPLER_DDIM, 20 },
    { DDPM_SAMPLER_DDIM, 1000 }, { DDPM_SAMPLER_DDPM, 20 },
  };

  ddpm_rng_normal_fill (z, n, 1, 0, 0);
  for (gsize i = 0; i < n; i++)
    x0[i] = (float) (g.mu + g.s * z[i]);
  ddpm_rng_normal_fill (z, n, 1, 1, 0);

  for (gsize l = 0; l < G_N_ELEMENTS (levels); l++)
    {
      /* σ exactly on the level of its t, so the state is exactly x_t. */
      int t0 = ddpm_denoise_sigma_to_t (base, levels[l] / 255, NULL);
      double sigma = base->sqrt_recipm1_alpha_bar[t0] / 2, v = 4 * sigma * sigma;
      double bayes = g.s * g.s * v / (g.s * g.s + v);
      double ode = 2 * g.s * g.s * (1 - g.s / sqrt (g.s * g.s + v));
      double noisy_mse = 0;

      for (gsize i = 0; i < n; i++)
        {
          y[i] = (float) (x0[i] + 2 * sigma * z[i]);
          noisy_mse += (y[i] - x0[i]) * (double) (y[i] - x0[i]) / n;
        }
      g_assert_cmpfloat (fabs (noisy_mse / v - 1), <, 0.05);
      /* One DDIM step is Tweedie's formula: the Bayes optimum. */
      g_assert_cmpfloat_with_epsilon (expected_mse (base, &g, DDPM_SAMPLER_DDIM, t0, 1, 2 * sigma)
                                      / bayes, 1.0, 1e-9);

      for (gsize r = 0; r < G_N_ELEMENTS (runs); r++)
        {
          DdpmSampleParams params;
          GError *error = NULL;
          double mse = 0;

          ddpm_sample_params_init (&params);
          params.sampler = runs[r].sampler;
          params.steps = runs[r].steps;
          params.clip_x0 = FALSE;
          params.seed = 3;
          params.threads = 1;
          memcpy (out, y, n * sizeof (float));
          g_assert_true (ddpm_denoise (out, NULL, C, H, W, base, &d, levels[l] / 255,
                                       &params, &error));
          g_assert_no_error (error);
          for (gsize i = 0; i < n; i++)
            mse += (out[i] - x0[i]) * (double) (out[i] - x0[i]) / n;

          double expect = expected_mse (base, &g, runs[r].sampler, t0, runs[r].steps,
                                        2 * sigma);
          g_test_message ("σ = %g/255 (t = %d), %s %d steps: MSE %.3g, expected %.3g; "
                          "noisy %.3g, Bayes %.3g (ratio %.3f), ODE limit %.3g",
                          levels[l], t0, ddpm_sampler_kind_name (runs[r].sampler),
                          runs[r].steps, mse, expect, noisy_mse, bayes, mse / bayes, ode);
          g_assert_cmpfloat (fabs (mse / expect - 1), <, 0.05);
          /* DDIM: between the optimum and the ODE's limit, well below the
           * noise.  The DDPM sampler draws a posterior sample instead, with
           * up to twice the optimum's error: only the oracle binds it. */
          if (runs[r].sampler == DDPM_SAMPLER_DDIM)
            {
              g_assert_cmpfloat (mse, >, 0.95 * bayes);
              g_assert_cmpfloat (mse, <, 1.05 * ode);
              g_assert_cmpfloat (mse, <, 0.75 * noisy_mse);
            }
        }
    }
  g_free (x0);
  g_free (y);
  g_free (out);
  g_free (z);
  ddpm_schedule_free (base);
}

/* No fresh noise: deterministic DDIM ignores the seed; with add_noise the
 * seed matters.  t_start = t with add_noise is img2img at strength t/T. */
static void
test_no_added_noise (void)
{
  const int C = 1, H = 16, W = 16;
  const gsize n = (gsize) C * H * W;
  DdpmSchedule *base = ddpm_schedule_new (DDPM_SCHEDULE_LINEAR, 1000, NULL);
  AnalyticGaussian g = { base, 0.0, 0.5 };
  DdpmDenoiser d = { analytic_gaussian_denoise, &g, C, 0, 0, NULL };
  float y[16 * 16], a[16 * 16], b[16 * 16];
  DdpmSampleParams params;

  ddpm_rng_normal_fill (y, n, 9, 0, 0);
  for (gsize i = 0; i < n; i++)
    y[i] *= 0.3f;
  ddpm_sample_params_init (&params);
  g_assert_true (params.add_noise);
  g_assert_cmpint (params.t_start, ==, 0);
  params.steps = 5;

  memcpy (a, y, sizeof y);
  memcpy (b, y, sizeof y);
  params.seed = 1;
  g_assert_true (ddpm_denoise (a, NULL, C, H, W, base, &d, 0.1, &params, NULL));
  params.seed = 2;
  g_assert_true (ddpm_denoise (b, NULL, C, H, W, base, &d, 0.1, &params, NULL));
  g_assert_cmpmem (a, sizeof a, b, sizeof b);

  int t = ddpm_denoise_sigma_to_t (base, 0.1, NULL);
  memcpy (a, y, sizeof y);
  memcpy (b, y, sizeof y);
  params.t_start = t;
  g_assert_true (ddpm_img2img (a, NULL, C, H, W, base, &d, &params, NULL));
  params.t_start = 0;
  params.strength = (double) t / base->T;
  g_assert_true (ddpm_img2img (b, NULL, C, H, W, base, &d, &params, NULL));
  g_assert_cmpmem (a, sizeof a, b, sizeof b);
  params.seed = 1;
  memcpy (b, y, sizeof y);
  g_assert_true (ddpm_img2img (b, NULL, C, H, W, base, &d, &params, NULL));
  gboolean differ = memcmp (a, b, sizeof a) != 0;
  g_assert_true (differ);
  ddpm_schedule_free (base);
}

/* With a mask, the masked-out half is the noisy input bit for bit and the
 * other half is denoised (smoother: lower variance around μ). */
static void
test_mask (void)
{
  const int C = 1, H = 32, W = 32;
  DdpmSchedule *base = ddpm_schedule_new (DDPM_SCHEDULE_LINEAR, 1000, NULL);
  AnalyticGaussian g = { base, 0.0, 0.1 };
  DdpmDenoiser d = { analytic_gaussian_denoise, &g, C, 0, 0, NULL };
  float y[32 * 32], out[32 * 32], mask[32 * 32];
  DdpmSampleParams params;
  double var_in = 0, var_out = 0;

  ddpm_rng_normal_fill (y, H * W, 4, 0, 0);
  for (int i = 0; i < H * W; i++)
    {
      y[i] *= (float) hypot (0.1, 0.2); /* data 0.1 plus noise 2σ = 0.2 */
      mask[i] = i % W < W / 2 ? 0.0f : 1.0f;
    }
  memcpy (out, y, sizeof y);
  ddpm_sample_params_init (&params);
  params.steps = 10;
  g_assert_true (ddpm_denoise (out, mask, C, H, W, base, &d, 0.1, &params, NULL));
  for (int i = 0; i < H * W; i++)
    if (i % W < W / 2)
      g_assert_cmpfloat (out[i], ==, y[i]);
    else
      {
        var_in += y[i] * (double) y[i];
        var_out += out[i] * (double) out[i];
      }
  g_assert_cmpfloat (var_out, <, 0.5 * var_in);
  ddpm_schedule_free (base);
}

static void
test_errors (void)
{
  DdpmSchedule *base = ddpm_schedule_new (DDPM_SCHEDULE_LINEAR, 1000, NULL);
  AnalyticGaussian g = { base, 0.0, 0.5 };
  DdpmDenoiser d = { analytic_gaussian_denoise, &g, 1, 0, 0, NULL };
  float img[16], copy[16];
  DdpmSampleParams params;
  GError *error = NULL;

  for (int i = 0; i < 16; i++)
    img[i] = copy[i] = 0.1f * i - 0.8f;
  ddpm_sample_params_init (&params);
  g_assert_false (ddpm_denoise (img, NULL, 1, 4, 4, base, &d, 0.0, &params, &error));
  g_assert_error (error, DDPM_ERROR, DDPM_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);
  g_assert_false (ddpm_denoise (img, NULL, 1, 4, 4, base, &d, 1000.0, &params, &error));
  g_assert_error (error, DDPM_ERROR, DDPM_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);
  params.t_start = base->T + 1;
  g_assert_false (ddpm_img2img (img, NULL, 1, 4, 4, base, &d, &params, &error));
  g_assert_error (error, DDPM_ERROR, DDPM_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);
  g_assert_cmpmem (img, sizeof img, copy, sizeof copy);
  ddpm_schedule_free (base);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/engine/denoise/sigma-to-t", test_sigma_to_t);
  g_test_add_func ("/engine/denoise/estimate-small", test_estimate_small);
  g_test_add_func ("/engine/denoise/estimate-synthetic", test_estimate_synthetic);
  g_test_add_func ("/engine/denoise/gaussian", test_gaussian);
  g_test_add_func ("/engine/denoise/no-added-noise", test_no_added_noise);
  g_test_add_func ("/engine/denoise/mask", test_mask);
  g_test_add_func ("/engine/denoise/errors", test_errors);
  return g_test_run ();
}
