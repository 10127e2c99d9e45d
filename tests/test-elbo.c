/* test-elbo.c: the negative ELBO in bits/dim against a hand computation
 * (with an oracle denoiser that knows x_0, every diffusion KL term is zero
 * and only the prior and decoder terms remain, both in closed form), and
 * the stratified estimate of the middle sum against the full sum. */
#include <math.h>

#include "ddpm.h"

typedef struct
{
  const DdpmSchedule *schedule;
  const float        *x0;
} Oracle;

/* The true ε of x_t given the x_0 it came from. */
static gboolean
oracle_denoise (float *eps, const float *x, int B, int C, int H, int W, int t,
                gpointer user_data, GError **error)
{
  Oracle *o = user_data;

  ddpm_predict_eps_from_x0 (eps, x, o->x0, (gsize) B * C * H * W, o->schedule, t);
  return TRUE;
}

/* The optimal ε-predictor for data N(0, s²) per element (s = 0.5). */
static gboolean
gaussian_denoise (float *eps, const float *x, int B, int C, int H, int W, int t,
                  gpointer user_data, GError **error)
{
  const DdpmSchedule *s = user_data;
  const double ab = s->alpha_bar[t], s2 = 0.25;
  const double k = sqrt (1 - ab) / (ab * s2 + 1 - ab);

  for (gsize i = 0; i < (gsize) B * C * H * W; i++)
    eps[i] = (float) (k * x[i]);
  return TRUE;
}

static float *
grid_images (gsize n, guint64 seed)
{
  float *x0 = g_new (float, n);

  for (gsize i = 0; i < n; i++)
    {
      int k = (int) (ddpm_rng_uniform (seed, 0, i) * 256);
      /* every fourth pixel at an extreme bin: the decoder's edge case */
      if (i % 4 == 0)
        k = (i % 8 == 0) ? 0 : 255;
      x0[i] = -1.0f + 2.0f * k / 255.0f;
    }
  return x0;
}

static void
test_oracle_closed_form (void)
{
  DdpmSchedule *s = ddpm_schedule_new (DDPM_SCHEDULE_LINEAR, 1000, NULL);
  const int B = 2, C = 3, H = 4, W = 5;
  const gsize n = (gsize) B * C * H * W;
  float *x0 = grid_images (n, 1);
  Oracle oracle = { s, x0 };
  DdpmDenoiser den = { oracle_denoise, &oracle, 3, 0, 0, NULL };
  DdpmElbo elbo;
  GError *error = NULL;

  g_assert_true (ddpm_elbo_bpd (&elbo, x0, B, C, H, W, s, &den, 0, 7, NULL, NULL, &error));
  g_assert_no_error (error);

  /* prior: KL(N(√ᾱ_T x, 1−ᾱ_T) ‖ N(0, 1)) = ½(−1 − ln(1−ᾱ) + (1−ᾱ) + ᾱx²) */
  double ab = s->alpha_bar[1000], prior = 0, decoder = 0;
  /* decoder: N(x_0, β̃_2) on x_0's own bin of half-width 1/255 */
  double sigma = sqrt ((1 - s->alpha_bar[1]) / (1 - s->alpha_bar[2]) * s->beta[2]);
  for (gsize i = 0; i < n; i++)
    {
      prior += 0.5 * (-1 - log (1 - ab) + (1 - ab) + ab * x0[i] * x0[i]);
      double half = 1.0 / 255 / (sigma * G_SQRT2);
      double p = (fabs (x0[i]) > 0.999) ? 0.5 * (1 + erf (half)) : erf (half);
      decoder += -log (p);
    }
  double per = (double) (n / B) * G_LN2 * B;
  g_test_message ("bpd %.6f = prior %.6f + vb %.3g + decoder %.6f",
                  elbo.total_bpd, elbo.prior_bpd, elbo.vb_bpd, elbo.decoder_bpd);
  g_assert_cmpfloat (fabs (elbo.prior_bpd - prior / per), <, 1e-9);
  g_assert_cmpfloat (fabs (elbo.decoder_bpd - decoder / per), <, 1e-4 * decoder / per);
  g_assert_cmpfloat (elbo.vb_bpd, >=, 0.0);
  g_assert_cmpfloat (elbo.vb_bpd, <, 1e-5);
  g_assert_cmpint (elbo.n_terms, ==, 1001);
  g_free (x0);
  ddpm_schedule_free (s);
}

/* K stratified timesteps estimate the middle sum without bias: over many
 * seeds, the mean difference from the full sum (same noise per t) is zero
 * within 4 standard errors; K = T − 1 is the full sum exactly. */
static void
test_stratified_unbiased (void)
{
  DdpmSchedule *s = ddpm_schedule_new (DDPM_SCHEDULE_LINEAR, 200, NULL);
  const int B = 4, C = 1, H = 4, W = 4;
  const gsize n = (gsize) B * C * H * W;
  float *x0 = grid_images (n, 2);
  DdpmDenoiser den = { gaussian_denoise, s, 1, 0, 0, NULL };
  const int seeds = 200;
  double sum = 0, sum2 = 0;

  for (int seed = 0; seed < seeds; seed++)
    {
      DdpmElbo full, est, all;
      g_assert_true (ddpm_elbo_bpd (&full, x0, B, C, H, W, s, &den, 0, seed, NULL, NULL, NULL));
      g_assert_true (ddpm_elbo_bpd (&est, x0, B, C, H, W, s, &den, 10, seed, NULL, NULL, NULL));
      g_assert_cmpint (est.n_terms, ==, 12);
      if (seed == 0)
        {
          g_assert_true (ddpm_elbo_bpd (&all, x0, B, C, H, W, s, &den, 199, seed, NULL, NULL, NULL));
          g_assert_cmpfloat (all.vb_bpd, ==, full.vb_bpd);
          g_assert_cmpfloat (full.vb_bpd, >, 0.01); /* an imperfect model pays */
          g_test_message ("full diffusion term %.3f bits/dim", full.vb_bpd);
        }
      g_assert_cmpfloat (est.prior_bpd, ==, full.prior_bpd);
      g_assert_cmpfloat (est.decoder_bpd, ==, full.decoder_bpd);
      double d = est.vb_bpd - full.vb_bpd;
      sum += d;
      sum2 += d * d;
    }
  double mean = sum / seeds, sd = sqrt (sum2 / seeds - mean * mean);
  g_test_message ("stratified - full: mean %.3g, sd %.3g", mean, sd);
  g_assert_cmpfloat (sd, >, 0.0);
  g_assert_cmpfloat (fabs (mean), <, 4 * sd / sqrt (seeds));
  g_free (x0);
  ddpm_schedule_free (s);
}

static gboolean
cancel_at_once (const DdpmProgress *p, gpointer data)
{
  return FALSE;
}

static void
test_errors (void)
{
  DdpmSchedule *s = ddpm_schedule_new (DDPM_SCHEDULE_LINEAR, 100, NULL);
  float x0[16] = { 0 };
  DdpmDenoiser den = { gaussian_denoise, s, 3, 0, 0, NULL };
  DdpmElbo elbo;
  GError *error = NULL;

  g_assert_false (ddpm_elbo_bpd (&elbo, x0, 1, 1, 4, 4, s, &den, 0, 0, NULL, NULL, &error));
  g_assert_error (error, DDPM_ERROR, DDPM_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);
  den.channels = 1;
  g_assert_false (ddpm_elbo_bpd (&elbo, x0, 1, 1, 4, 4, s, &den, 0, 0, cancel_at_once, NULL, &error));
  g_assert_error (error, DDPM_ERROR, DDPM_ERROR_CANCELLED);
  g_clear_error (&error);
  ddpm_schedule_free (s);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/engine/elbo/oracle-closed-form", test_oracle_closed_form);
  g_test_add_func ("/engine/elbo/stratified-unbiased", test_stratified_unbiased);
  g_test_add_func ("/engine/elbo/errors", test_errors);
  return g_test_run ();
}
