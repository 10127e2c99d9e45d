/* test-img2img.c: strength (SDEdit), masks, tiles, reproducibility,
 * progress/cancel and errors of ddpm_img2img, with analytic denoisers.
 *
 * The oracles are closed forms: a point-mass data set (x0 = c) has the
 * optimal ε-predictor ε = (x_t − √ᾱ·c)/√(1−ᾱ), so every sampler's last x̂0
 * is c and a masked result must be m·c + (1 − m)·input; a per-pixel
 * denoiser must give the same result tiled or whole.
 */
#include <math.h>
#include <string.h>

#include "ddpm.h"
#include "analytic-denoisers.h"
#include "layers/layers.h"   /* the thread team's size */

static DdpmSchedule *
linear_1000 (void)
{
  return ddpm_schedule_new (DDPM_SCHEDULE_LINEAR, 1000, NULL);
}

/* Smooth test image in [−0.9, 0.9]. */
static float *
make_image (int C, int H, int W, guint64 seed)
{
  float *img = g_new (float, (gsize) C * H * W);

  for (int c = 0; c < C; c++)
    for (int y = 0; y < H; y++)
      for (int x = 0; x < W; x++)
        img[((gsize) c * H + y) * W + x] =
          (float) (0.6 * sin (0.21 * x + 0.5 * c + seed) * cos (0.13 * y)
                   + 0.3 * (2 * ddpm_rng_uniform (seed, 5, ((gsize) c * H + y) * W + x) - 1));
  return img;
}

static double
max_abs_diff (const float *a, const float *b, gsize n)
{
  double m = 0;

  for (gsize i = 0; i < n; i++)
    m = MAX (m, fabs ((double) a[i] - b[i]));
  return m;
}

/* ------------------------------------------------------------ denoisers */

/* Data N(μ, s²) per pixel (see test-sampler.c); s = 0 is the point mass. */
typedef struct
{
  const DdpmSchedule *base;
  double mu, s;
  int calls;
  int fail_at;              /* call number that fails; 0 never */
  int tile_size, max_batch; /* asserted when nonzero */
  int max_batch_seen;
} Analytic;

static gboolean
analytic_denoise (float *eps, const float *x, int B, int C, int H, int W,
                  int t, gpointer user_data, GError **error)
{
  Analytic *a = user_data;

  a->calls++;
  if (a->fail_at != 0 && a->calls == a->fail_at)
    {
      g_set_error (error, G_FILE_ERROR, G_FILE_ERROR_IO, "simulated failure");
      return FALSE;
    }
  if (a->tile_size)
    {
      g_assert_cmpint (H, ==, a->tile_size);
      g_assert_cmpint (W, ==, a->tile_size);
      g_assert_cmpint (B, <=, a->max_batch);
      a->max_batch_seen = MAX (a->max_batch_seen, B);
    }
  g_assert_cmpint (t, >=, 1);
  g_assert_cmpint (t, <=, a->base->T);
  analytic_gaussian_eps (eps, x, (gsize) B * C * H * W, a->base, t, a->mu, a->s);
  return TRUE;
}

/* Not per pixel: the Gaussian optimum applied to the 3×3 mean of x_t
 * (edges replicated inside the given image), so a tile's ε differs from
 * the whole image's within one pixel of the tile's border. */
static gboolean
local_mean_denoise (float *eps, const float *x, int B, int C, int H, int W,
                    int t, gpointer user_data, GError **error)
{
  Analytic *a = user_data;
  double ab = a->base->alpha_bar[t];
  double k = sqrt (1 - ab) / (ab * a->s * a->s + 1 - ab);
  double shift = sqrt (ab) * a->mu;

  for (gsize plane = 0; plane < (gsize) B * C; plane++)
    {
      const float *src = x + plane * H * W;
      float *dst = eps + plane * H * W;

      for (int y = 0; y < H; y++)
        for (int xx = 0; xx < W; xx++)
          {
            double sum = 0;
            for (int dy = -1; dy <= 1; dy++)
              for (int dx = -1; dx <= 1; dx++)
                sum += src[CLAMP (y + dy, 0, H - 1) * W + CLAMP (xx + dx, 0, W - 1)];
            double local = sum / 9;
            /* mostly the pixel itself, partly its neighbourhood */
            dst[y * W + xx] = (float) (k * (0.5 * src[y * W + xx] + 0.5 * local - shift));
          }
    }
  return TRUE;
}

/* ----------------------------------------------------------------- plan */

static void
test_plan (void)
{
  DdpmSchedule *s = linear_1000 ();
  GError *error = NULL;
  int t0, n;

  g_assert_true (ddpm_img2img_plan (s, 0.0, 20, &t0, &n, &error));
  g_assert_cmpint (t0, ==, 0);
  g_assert_cmpint (n, ==, 0);
  g_assert_true (ddpm_img2img_plan (s, 0.4, 20, &t0, &n, &error));
  g_assert_cmpint (t0, ==, 400);
  g_assert_cmpint (n, ==, 20);
  g_assert_true (ddpm_img2img_plan (s, 0.001, 20, &t0, &n, &error));
  g_assert_cmpint (t0, ==, 1);
  g_assert_cmpint (n, ==, 1);
  g_assert_true (ddpm_img2img_plan (s, 0.0125, 20, &t0, &n, &error));
  g_assert_cmpint (t0, ==, 13); /* round(12.5) away from zero */
  g_assert_cmpint (n, ==, 13);
  g_assert_true (ddpm_img2img_plan (s, 1.0, 1000, &t0, &n, &error));
  g_assert_cmpint (t0, ==, 1000);
  g_assert_cmpint (n, ==, 1000);
  g_assert_no_error (error);

  g_assert_false (ddpm_img2img_plan (s, 1.01, 20, &t0, &n, &error));
  g_assert_error (error, DDPM_ERROR, DDPM_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);
  g_assert_false (ddpm_img2img_plan (s, NAN, 20, &t0, &n, &error));
  g_assert_error (error, DDPM_ERROR, DDPM_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);
  g_assert_false (ddpm_img2img_plan (s, 0.5, 0, &t0, &n, &error));
  g_assert_error (error, DDPM_ERROR, DDPM_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);
  ddpm_schedule_free (s);
}

/* ------------------------------------------------------------- strength */

static void
test_strength_zero (void)
{
  DdpmSchedule *s = linear_1000 ();
  Analytic a = { .base = s, .mu = 0.0, .s = 0.5 };
  DdpmDenoiser d = { analytic_denoise, &a, 3, 0, 0, NULL };
  DdpmSampleParams p;
  float *img = make_image (3, 17, 23, 1);
  float *copy = g_memdup2 (img, sizeof (float) * 3 * 17 * 23);

  /* -0.0 and a NaN-free image: bit comparison */
  img[5] = -0.0f;
  copy[5] = -0.0f;
  ddpm_sample_params_init (&p);
  p.strength = 0.0;
  g_assert_true (ddpm_img2img (img, NULL, 3, 17, 23, s, &d, &p, NULL));
  g_assert_cmpmem (img, sizeof (float) * 3 * 17 * 23, copy, sizeof (float) * 3 * 17 * 23);
  g_assert_cmpint (a.calls, ==, 0);
  g_free (img);
  g_free (copy);
  ddpm_schedule_free (s);
}

/* The expected distance from the input grows with strength: averaged over
 * 64×64 pixels, mean |out − in| at 0.2 < 0.5 < 0.8.  The cosine schedule
 * (ᾱ ≈ 0.9, 0.5, 0.1 there) and a unit-variance prior (posterior variance
 * of x0 given x_t0 is 1 − ᾱ_t0: 0.1, 0.5, 0.9) keep the three apart by
 * far more than the ~0.01 standard error of a 4096-pixel mean. */
static void
test_strength_distance (void)
{
  DdpmSchedule *s = ddpm_schedule_new (DDPM_SCHEDULE_COSINE, 1000, NULL);
  Analytic a = { .base = s, .mu = 0.0, .s = 1.0 };
  DdpmDenoiser d = { analytic_denoise, &a, 1, 0, 0, NULL };
  const double strengths[] = { 0.2, 0.5, 0.8 };
  const int H = 64, W = 64;
  float *orig = make_image (1, H, W, 2);
  double prev = 0;

  for (gsize k = 0; k < G_N_ELEMENTS (strengths); k++)
    {
      DdpmSampleParams p;
      float *img = g_memdup2 (orig, sizeof (float) * H * W);
      double dist = 0;

      ddpm_sample_params_init (&p);
      p.strength = strengths[k];
      p.steps = 20;
      p.seed = 4;
      p.threads = 1;
      p.clip_x0 = FALSE;
      a.calls = 0;
      g_assert_true (ddpm_img2img (img, NULL, 1, H, W, s, &d, &p, NULL));
      g_assert_cmpint (a.calls, ==, 20);
      for (int i = 0; i < H * W; i++)
        dist += fabs (img[i] - orig[i]);
      dist /= H * W;
      g_test_message ("strength %.1f: mean |Δ| %.4f", strengths[k], dist);
      g_assert_cmpfloat (dist, >, prev + 0.05);
      prev = dist;
      g_free (img);
    }
  g_free (orig);
  ddpm_schedule_free (s);
}

/* strength 1: generation, the input does not matter (x_T = ε exactly). */
static void
test_strength_one (void)
{
  DdpmSchedule *s = linear_1000 ();
  Analytic a = { .base = s, .mu = 0.1, .s = 0.4 };
  DdpmDenoiser d = { analytic_denoise, &a, 3, 0, 0, NULL };
  const int C = 3, H = 21, W = 19;
  const gsize n = (gsize) C * H * W;
  float *one = make_image (C, H, W, 7), *two = make_image (C, H, W, 8);

  for (int k = 0; k < DDPM_SAMPLER_COUNT; k++)
    {
      DdpmSampleParams p;

      ddpm_sample_params_init (&p);
      p.sampler = k;
      p.eta = 0.5;
      p.steps = 10;
      p.seed = 99;
      g_assert_cmpfloat (max_abs_diff (one, two, n), >, 0.1);
      g_assert_true (ddpm_img2img (one, NULL, C, H, W, s, &d, &p, NULL));
      g_assert_true (ddpm_img2img (two, NULL, C, H, W, s, &d, &p, NULL));
      g_assert_cmpmem (one, n * sizeof (float), two, n * sizeof (float));
      /* a different seed gives a different image */
      p.seed = 100;
      g_assert_true (ddpm_img2img (two, NULL, C, H, W, s, &d, &p, NULL));
      g_assert_cmpfloat (max_abs_diff (one, two, n), >, 0.1);
    }
  g_free (one);
  g_free (two);
  ddpm_schedule_free (s);
}

/* ----------------------------------------------------------------- masks */

/* Point mass at c: the result is m·c + (1 − m)·input, with mask-0 pixels
 * bit for bit the input's and soft values blending linearly. */
static void
test_mask_blend (void)
{
  DdpmSchedule *s = linear_1000 ();
  const double c = 0.25;
  Analytic a = { .base = s, .mu = c, .s = 0.0 };
  const int C = 2, H = 24, W = 30;
  const gsize hw = (gsize) H * W;
  DdpmDenoiser d = { analytic_denoise, &a, C, 0, 0, NULL };
  float *mask = g_new (float, hw);
  float *orig = make_image (C, H, W, 3);

  for (int y = 0; y < H; y++)
    for (int x = 0; x < W; x++)
      mask[y * W + x] = x < 10 ? 0.0f : x < 20 ? 0.5f : x < 25 ? 1.0f
                        : (float) (x - 25) / 5;

  for (int k = 0; k < DDPM_SAMPLER_COUNT; k++)
    for (int strength = 0; strength <= 1; strength++)
      {
        DdpmSampleParams p;
        float *img = g_memdup2 (orig, sizeof (float) * C * hw);

        ddpm_sample_params_init (&p);
        p.sampler = k;
        p.steps = 12;
        p.strength = strength ? 1.0 : 0.6;
        p.seed = 5;
        g_assert_true (ddpm_img2img (img, mask, C, H, W, s, &d, &p, NULL));
        for (gsize i = 0; i < C * hw; i++)
          {
            double m = mask[i % hw];
            if (m == 0)
              g_assert_cmpmem (&img[i], sizeof (float), &orig[i], sizeof (float));
            else
              g_assert_cmpfloat (fabs (img[i] - (m * c + (1 - m) * orig[i])), <, 1e-5);
          }
        g_free (img);
      }
  g_free (mask);
  g_free (orig);
  ddpm_schedule_free (s);
}

/* RePaint: at every denoiser call the known region holds the original
 * forward-noised to that t, so (x_t − √ᾱ·x)/√(1−ᾱ) there is N(0, 1).
 * The point-mass denoiser pulls the generated region towards c = 0.8, far
 * from the input (−0.5), which would show if the known region drifted. */
typedef struct
{
  const DdpmSchedule *base;
  float orig;
  int W_known;
  int calls;
} Watch;

static gboolean
watch_denoise (float *eps, const float *x, int B, int C, int H, int W,
               int t, gpointer user_data, GError **error)
{
  Watch *w = user_data;
  double ab = w->base->alpha_bar[t];
  double sum = 0, sum2 = 0;
  gsize n = 0;

  for (int y = 0; y < H; y++)
    for (int xx = 0; xx < w->W_known; xx++)
      {
        double z = (x[y * W + xx] - sqrt (ab) * w->orig) / sqrt (1 - ab);
        sum += z;
        sum2 += z * z;
        n++;
      }
  double mean = sum / n, var = sum2 / n - mean * mean;
  g_assert_cmpfloat (fabs (mean), <, 5 / sqrt (n));
  g_assert_cmpfloat (fabs (var - 1), <, 5 * sqrt (2.0 / n));
  for (gsize i = 0; i < (gsize) B * C * H * W; i++)
    eps[i] = (float) ((x[i] - sqrt (ab) * 0.8) / sqrt (1 - ab));
  w->calls++;
  return TRUE;
}

static void
test_mask_renoise_each_step (void)
{
  DdpmSchedule *s = linear_1000 ();
  const int H = 64, W = 128;
  Watch w = { s, -0.5f, 64, 0 };
  DdpmDenoiser d = { watch_denoise, &w, 1, 0, 0, NULL };
  float *img = g_new (float, H * W), *mask = g_new (float, H * W);
  DdpmSampleParams p;

  for (int i = 0; i < H * W; i++)
    {
      img[i] = w.orig;
      mask[i] = i % W < w.W_known ? 0.0f : 1.0f;
    }
  ddpm_sample_params_init (&p);
  p.sampler = DDPM_SAMPLER_DDPM;
  p.steps = 25;
  p.strength = 0.9;
  g_assert_true (ddpm_img2img (img, mask, 1, H, W, s, &d, &p, NULL));
  g_assert_cmpint (w.calls, ==, 25);
  for (int i = 0; i < H * W; i++)
    g_assert_cmpfloat (fabs (img[i] - (mask[i] == 0 ? w.orig : 0.8f)), <, 1e-5);
  g_free (img);
  g_free (mask);
  ddpm_schedule_free (s);
}

/* ------------------------------------------------- threads and tiles */

static float *
run_copy (const float *orig, const float *mask, int C, int H, int W,
          const DdpmSchedule *s, const DdpmDenoiser *d, const DdpmSampleParams *p)
{
  float *img = g_memdup2 (orig, sizeof (float) * C * H * W);
  GError *error = NULL;

  g_assert_true (ddpm_img2img (img, mask, C, H, W, s, d, p, &error));
  g_assert_no_error (error);
  return img;
}

/* A denoiser that resizes the engine's thread team, as the model's adapter
 * does (to the count given to ddpm_model_get_denoiser). */
static gboolean
resizing_denoise (float *eps, const float *x, int B, int C, int H, int W,
                  int t, gpointer user_data, GError **error)
{
  ddpm_parallel_set_threads (1);
  return analytic_denoise (eps, x, B, C, H, W, t, user_data, error);
}

/* Same seed → the same bits with 1, 2 and 3 threads, big enough that the
 * work is really split (and tiled, so tile copies are split too), also
 * when the denoiser resizes the thread team; img2img gives the team back
 * at the size it found. */
static void
test_threads (void)
{
  DdpmSchedule *s = linear_1000 ();
  Analytic a = { .base = s, .mu = 0.0, .s = 0.5 };
  const int C = 3, H = 200, W = 190;
  const gsize n = (gsize) C * H * W;
  float *orig = make_image (C, H, W, 11), *mask = g_new (float, H * W);
  DdpmSampleParams p;

  for (int i = 0; i < H * W; i++)
    mask[i] = (float) ((i % W) / (double) (W - 1));
  ddpm_sample_params_init (&p);
  p.sampler = DDPM_SAMPLER_DDPM;
  p.steps = 4;
  p.strength = 0.7;
  p.seed = 31;
  ddpm_parallel_set_threads (5);
  for (int tile = 0; tile <= 48; tile += 48)
    {
      DdpmDenoiser d = { analytic_denoise, &a, C, tile, 0, NULL };
      DdpmDenoiser resizing = { resizing_denoise, &a, C, tile, 0, NULL };

      p.threads = 1;
      float *one = run_copy (orig, mask, C, H, W, s, &d, &p);
      g_assert_cmpint (ddpm_parallel_threads (), ==, 5);
      for (int threads = 2; threads <= 3; threads++)
        {
          p.threads = threads;
          float *more = run_copy (orig, mask, C, H, W, s, &d, &p);
          g_assert_cmpmem (one, n * sizeof (float), more, n * sizeof (float));
          g_free (more);
          more = run_copy (orig, mask, C, H, W, s, &resizing, &p);
          g_assert_cmpmem (one, n * sizeof (float), more, n * sizeof (float));
          g_free (more);
          g_assert_cmpint (ddpm_parallel_threads (), ==, 5);
        }
      g_free (one);
    }
  ddpm_parallel_set_threads (0);
  g_free (orig);
  g_free (mask);
  ddpm_schedule_free (s);
}

/* Per-pixel denoiser: tiled (16, 24, with and without batches, padded when
 * the image is smaller than a tile) equals untiled up to the float rounding
 * of the window average. */
static void
test_tiles_match_untiled (void)
{
  DdpmSchedule *s = linear_1000 ();
  const struct { int H, W, tile, batch, overlap; } cases[] = {
    { 40, 56, 16, 0, -1 }, { 40, 56, 24, 0, -1 }, { 40, 56, 16, 3, 0 },
    { 40, 56, 24, 1, 11 }, { 13, 20, 32, 0, -1 }, { 1, 9, 8, 2, -1 },
    { 70, 5, 16, 0, -1 }, { 16, 16, 16, 0, -1 },
  };

  for (gsize k = 0; k < G_N_ELEMENTS (cases); k++)
    for (int sampler = 0; sampler < DDPM_SAMPLER_COUNT; sampler++)
      {
        const int C = 3, H = cases[k].H, W = cases[k].W;
        const gsize n = (gsize) C * H * W;
        Analytic whole = { .base = s, .mu = 0.1, .s = 0.4 };
        Analytic tiled = { .base = s, .mu = 0.1, .s = 0.4 };
        DdpmDenoiser dw = { analytic_denoise, &whole, C, 0, 0, NULL };
        DdpmDenoiser dt = { analytic_denoise, &tiled, C, cases[k].tile, cases[k].batch, NULL };
        float *orig = make_image (C, H, W, 12);
        DdpmSampleParams p;

        tiled.tile_size = cases[k].tile;
        tiled.max_batch = cases[k].batch ? cases[k].batch : 16;
        ddpm_sample_params_init (&p);
        p.sampler = sampler;
        p.eta = 0.5;
        p.steps = 20;
        p.strength = 0.8;
        p.seed = 8;
        p.tile_overlap = cases[k].overlap;
        float *a = run_copy (orig, NULL, C, H, W, s, &dw, &p);
        float *b = run_copy (orig, NULL, C, H, W, s, &dt, &p);
        g_test_message ("%d×%d tile %d batch %d %s: max |tiled − whole| %.2g",
                        W, H, cases[k].tile, cases[k].batch,
                        ddpm_sampler_kind_name (sampler), max_abs_diff (a, b, n));
        g_assert_cmpfloat (max_abs_diff (a, b, n), <, 1e-5);
        g_assert_cmpfloat (max_abs_diff (a, orig, n), >, 0.05);
        if (cases[k].batch > 1)
          g_assert_cmpint (tiled.max_batch_seen, ==, cases[k].batch);
        g_free (a);
        g_free (b);
        g_free (orig);
      }
  ddpm_schedule_free (s);
}

/* A denoiser that looks at neighbours: the tiles' ε differ from the whole
 * image's one pixel from each tile border, where the window is small, so
 * the blend stays close to the untiled result and shows no seam: the
 * largest step between neighbouring output pixels is no larger across a
 * tile border than elsewhere. */
static void
test_tiles_no_seams (void)
{
  DdpmSchedule *s = linear_1000 ();
  Analytic a = { .base = s, .mu = 0.0, .s = 0.5 };
  const int C = 1, H = 40, W = 56, tile = 16;
  const gsize n = (gsize) C * H * W;
  DdpmDenoiser dw = { local_mean_denoise, &a, C, 0, 0, NULL };
  DdpmDenoiser dt = { local_mean_denoise, &a, C, tile, 0, NULL };
  float *orig = make_image (C, H, W, 13);
  DdpmSampleParams p;

  ddpm_sample_params_init (&p);
  p.steps = 20;
  p.strength = 0.8;
  p.seed = 21;
  float *whole = run_copy (orig, NULL, C, H, W, s, &dw, &p);
  float *tiled = run_copy (orig, NULL, C, H, W, s, &dt, &p);
  double diff = 0, mean_diff = 0;
  for (gsize i = 0; i < n; i++)
    {
      diff = MAX (diff, fabs (whole[i] - tiled[i]));
      mean_diff += fabs (whole[i] - tiled[i]) / n;
    }
  /* Seams would show as a jump between neighbouring columns (rows) that
   * the untiled image does not have: compare the mean jump across every
   * column (row) boundary. */
  double worst_seam = 0, typical_jump = 0;
  for (int x = 0; x + 1 < W; x++)
    {
      double jt = 0, jw = 0;
      for (int y = 0; y < H; y++)
        {
          jt += fabs (tiled[y * W + x + 1] - tiled[y * W + x]) / H;
          jw += fabs (whole[y * W + x + 1] - whole[y * W + x]) / H;
        }
      worst_seam = MAX (worst_seam, fabs (jt - jw));
      typical_jump += jw / (W - 1);
    }
  for (int y = 0; y + 1 < H; y++)
    {
      double jt = 0, jw = 0;
      for (int x = 0; x < W; x++)
        {
          jt += fabs (tiled[(y + 1) * W + x] - tiled[y * W + x]) / W;
          jw += fabs (whole[(y + 1) * W + x] - whole[y * W + x]) / W;
        }
      worst_seam = MAX (worst_seam, fabs (jt - jw));
    }
  g_test_message ("tiled vs whole: max %.5f mean %.6f; worst seam %.5f, "
                  "typical jump %.4f", diff, mean_diff, worst_seam, typical_jump);
  g_assert_cmpfloat (diff, <, 0.1);
  g_assert_cmpfloat (mean_diff, <, 0.002);
  g_assert_cmpfloat (worst_seam, <, 0.01 * typical_jump);
  g_free (whole);
  g_free (tiled);
  g_free (orig);
  ddpm_schedule_free (s);
}

/* ---------------------------------------------- progress, cancel, errors */

typedef struct
{
  int seen;
  int cancel_at;
  int n_steps;
} Progress;

static gboolean
progress_cb (const DdpmProgress *progress, gpointer user_data)
{
  Progress *pr = user_data;

  pr->seen++;
  g_assert_cmpint (progress->step, ==, pr->seen);
  g_assert_cmpint (progress->n_steps, ==, pr->n_steps);
  g_assert_true (isnan (progress->loss));
  g_assert_cmpfloat (progress->elapsed, >=, 0);
  g_assert_cmpfloat (progress->remaining, >=, 0);
  if (progress->step == progress->n_steps)
    g_assert_cmpfloat (progress->remaining, ==, 0);
  return pr->seen != pr->cancel_at;
}

static void
test_progress_and_cancel (void)
{
  DdpmSchedule *s = linear_1000 ();
  Analytic a = { .base = s, .mu = 0.0, .s = 0.5 };
  DdpmDenoiser d = { analytic_denoise, &a, 1, 16, 0, NULL };
  const int H = 20, W = 36;
  float *orig = make_image (1, H, W, 4);
  float *img = g_memdup2 (orig, sizeof (float) * H * W);
  Progress pr = { 0, 0, 7 };
  GError *error = NULL;
  DdpmSampleParams p;

  ddpm_sample_params_init (&p);
  p.steps = 7;
  p.strength = 0.5;
  p.progress = progress_cb;
  p.progress_data = &pr;
  g_assert_true (ddpm_img2img (img, NULL, 1, H, W, s, &d, &p, &error));
  g_assert_no_error (error);
  g_assert_cmpint (pr.seen, ==, 7);

  memcpy (img, orig, sizeof (float) * H * W);
  pr = (Progress) { 0, 3, 7 };
  g_assert_false (ddpm_img2img (img, NULL, 1, H, W, s, &d, &p, &error));
  g_assert_error (error, DDPM_ERROR, DDPM_ERROR_CANCELLED);
  g_clear_error (&error);
  g_assert_cmpint (pr.seen, ==, 3);
  g_assert_cmpmem (img, sizeof (float) * H * W, orig, sizeof (float) * H * W);
  g_free (img);
  g_free (orig);
  ddpm_schedule_free (s);
}

static void
test_denoiser_error (void)
{
  DdpmSchedule *s = linear_1000 ();
  const int H = 20, W = 36;
  float *orig = make_image (1, H, W, 4);
  float *img = g_memdup2 (orig, sizeof (float) * H * W);

  for (int tile = 0; tile <= 16; tile += 16)
    {
      Analytic a = { .base = s, .mu = 0.0, .s = 0.5, .fail_at = 5 };
      DdpmDenoiser d = { analytic_denoise, &a, 1, tile, 0, NULL };
      GError *error = NULL;
      DdpmSampleParams p;

      ddpm_sample_params_init (&p);
      p.steps = 10;
      g_assert_false (ddpm_img2img (img, NULL, 1, H, W, s, &d, &p, &error));
      g_assert_error (error, G_FILE_ERROR, G_FILE_ERROR_IO);
      g_assert_nonnull (strstr (error->message, "simulated failure"));
      g_clear_error (&error);
      g_assert_cmpint (a.calls, ==, 5);
      g_assert_cmpmem (img, sizeof (float) * H * W, orig, sizeof (float) * H * W);
    }
  g_free (img);
  g_free (orig);
  ddpm_schedule_free (s);
}

/* A denoiser that predicts NaN (a damaged model) on its 3rd call: img2img
 * fails naming the cause and leaves the image untouched, rather than
 * returning black pixels with success; whole and tiled. */
static gboolean
nan_denoise (float *eps, const float *x, int B, int C, int H, int W,
             int t, gpointer user_data, GError **error)
{
  Analytic *a = user_data;

  if (!analytic_denoise (eps, x, B, C, H, W, t, user_data, error))
    return FALSE;
  if (a->calls == 3)
    eps[(gsize) B * C * H * W / 2] = a->mu > 0 ? INFINITY : NAN;
  return TRUE;
}

static void
test_nonfinite_eps (void)
{
  DdpmSchedule *s = linear_1000 ();
  const int H = 20, W = 36;
  float *orig = make_image (1, H, W, 4);
  float *img = g_memdup2 (orig, sizeof (float) * H * W);

  for (int k = 0; k < 4; k++)
    {
      Analytic a = { .base = s, .mu = k & 1 ? 0.1 : 0.0, .s = 0.5 };
      DdpmDenoiser d = { nan_denoise, &a, 1, k < 2 ? 0 : 16, 0, NULL };
      GError *error = NULL;
      DdpmSampleParams p;

      ddpm_sample_params_init (&p);
      p.steps = 10;
      g_assert_false (ddpm_img2img (img, NULL, 1, H, W, s, &d, &p, &error));
      g_assert_error (error, DDPM_ERROR, DDPM_ERROR_INVALID_ARGUMENT);
      g_assert_nonnull (strstr (error->message, "NaN or infinity"));
      g_clear_error (&error);
      g_assert_cmpint (a.calls, ==, 3);
      g_assert_cmpmem (img, sizeof (float) * H * W, orig, sizeof (float) * H * W);
    }
  g_free (img);
  g_free (orig);
  ddpm_schedule_free (s);
}

static void
expect_invalid (float *img, const float *mask, int C, const DdpmSchedule *s,
                const DdpmDenoiser *d, const DdpmSampleParams *p)
{
  GError *error = NULL;

  g_assert_false (ddpm_img2img (img, mask, C, 8, 8, s, d, p, &error));
  g_assert_error (error, DDPM_ERROR, DDPM_ERROR_INVALID_ARGUMENT);
  g_test_message ("%s", error->message);
  g_clear_error (&error);
}

static void
test_bad_arguments (void)
{
  DdpmSchedule *s = linear_1000 ();
  Analytic a = { .base = s, .mu = 0.0, .s = 0.5 };
  DdpmDenoiser d = { analytic_denoise, &a, 1, 0, 0, NULL };
  DdpmDenoiser d3 = { analytic_denoise, &a, 3, 0, 0, NULL };
  DdpmDenoiser tiled = { analytic_denoise, &a, 1, 4, 0, NULL };
  float *orig = make_image (1, 8, 8, 1), *img = g_memdup2 (orig, sizeof (float) * 64);
  float mask[64];
  DdpmSampleParams p, q;

  ddpm_sample_params_init (&p);
  for (int i = 0; i < 64; i++)
    mask[i] = 0.5f;

  q = p; q.strength = -0.1; expect_invalid (img, NULL, 1, s, &d, &q);
  q = p; q.strength = 1.5; expect_invalid (img, NULL, 1, s, &d, &q);
  q = p; q.steps = 0; expect_invalid (img, NULL, 1, s, &d, &q);
  q = p; q.eta = 1.5; expect_invalid (img, NULL, 1, s, &d, &q);
  q = p; q.eta = -0.5; expect_invalid (img, NULL, 1, s, &d, &q);
  q = p; q.sampler = DDPM_SAMPLER_COUNT; expect_invalid (img, NULL, 1, s, &d, &q);
  q = p; q.tile_overlap = 4; expect_invalid (img, NULL, 1, s, &tiled, &q);
  expect_invalid (img, NULL, 1, s, NULL, &p);
  expect_invalid (img, NULL, 1, s, &d3, &p);
  mask[9] = 1.5f;
  expect_invalid (img, mask, 1, s, &d, &p);
  g_assert_cmpmem (img, sizeof (float) * 64, orig, sizeof (float) * 64);
  g_assert_cmpint (a.calls, ==, 0);
  g_free (img);
  g_free (orig);
  ddpm_schedule_free (s);
}

/* ddpm_sample_params_validate: the defaults pass; each bad setting fails
 * with an error that names it and its value (NaN included), the same one
 * ddpm_img2img gives. */
static void
test_validate (void)
{
  static const struct
  {
    const char *field;
    double      value;
    const char *says;
  } bad[] = {
    { "steps", 0, "steps must be at least 1, not 0" },
    { "steps", -3, "not -3" },
    { "strength", -0.1, "strength must be between 0 and 1, not -0.1" },
    { "strength", 1.5, "not 1.5" },
    { "strength", NAN, "strength" },
    { "sampler", DDPM_SAMPLER_COUNT, "sampler 3" },
    { "sampler", -1, "sampler -1" },
    { "variance", DDPM_VARIANCE_COUNT, "variance 2" },
    { "spacing", DDPM_SPACING_COUNT, "spacing 4" },
    { "eta", 1.5, "η must be between 0 and 1, not 1.5" },
    { "eta", NAN, "η" },
    { "threads", -1, "threads must be 0 (all cores) or more, not -1" },
  };
  DdpmSchedule *s = linear_1000 ();
  Analytic a = { .base = s, .mu = 0.0, .s = 0.5 };
  DdpmDenoiser d = { analytic_denoise, &a, 1, 0, 0, NULL };
  float img[64] = { 0 };
  DdpmSampleParams p, q;
  GError *error = NULL;

  ddpm_sample_params_init (&p);
  g_assert_true (ddpm_sample_params_validate (&p, &error));
  g_assert_no_error (error);
  q = p; q.tile_overlap = -7; q.strength = 0; q.eta = 1; q.steps = 1;
  g_assert_true (ddpm_sample_params_validate (&q, NULL));

  for (gsize i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      q = p;
      if (g_str_equal (bad[i].field, "steps"))
        q.steps = (int) bad[i].value;
      else if (g_str_equal (bad[i].field, "strength"))
        q.strength = bad[i].value;
      else if (g_str_equal (bad[i].field, "sampler"))
        q.sampler = (DdpmSamplerKind) bad[i].value;
      else if (g_str_equal (bad[i].field, "variance"))
        q.variance = (DdpmVariance) bad[i].value;
      else if (g_str_equal (bad[i].field, "spacing"))
        q.spacing = (DdpmSpacing) bad[i].value;
      else if (g_str_equal (bad[i].field, "eta"))
        q.eta = bad[i].value;
      else
        q.threads = (int) bad[i].value;

      g_assert_false (ddpm_sample_params_validate (&q, &error));
      g_assert_error (error, DDPM_ERROR, DDPM_ERROR_INVALID_ARGUMENT);
      if (strstr (error->message, bad[i].says) == NULL)
        g_error ("%s = %g: \"%s\" does not say \"%s\"", bad[i].field, bad[i].value,
                 error->message, bad[i].says);
      char *first = g_strdup (error->message);
      g_clear_error (&error);

      /* img2img says the same */
      g_assert_false (ddpm_img2img (img, NULL, 1, 8, 8, s, &d, &q, &error));
      g_assert_error (error, DDPM_ERROR, DDPM_ERROR_INVALID_ARGUMENT);
      g_assert_cmpstr (error->message, ==, first);
      g_clear_error (&error);
      g_free (first);
    }
  g_assert_cmpint (a.calls, ==, 0);
  ddpm_schedule_free (s);
}

/* ----------------------------------------------------------- big (slow) */

/* A 4000×3000 RGB image with 64-pixel tiles: memory stays at two
 * full-image buffers plus a batch (run under /usr/bin/time -v to see it). */
static void
test_large_image (void)
{
  if (!g_test_slow ())
    {
      g_test_skip ("slow: run with -m slow");
      return;
    }
  DdpmSchedule *s = linear_1000 ();
  Analytic a = { .base = s, .mu = 0.0, .s = 0.5, .tile_size = 64, .max_batch = 16 };
  DdpmDenoiser d = { analytic_denoise, &a, 3, 64, 0, NULL };
  const int C = 3, H = 3000, W = 4000;
  float *img = g_new (float, (gsize) C * H * W);
  DdpmSampleParams p;

  for (gsize i = 0; i < (gsize) C * H * W; i++)
    img[i] = (float) ((i % 255) / 127.5 - 1);
  ddpm_sample_params_init (&p);
  p.steps = 2;
  p.strength = 0.3;
  g_assert_true (ddpm_img2img (img, NULL, C, H, W, s, &d, &p, NULL));
  g_assert_cmpint (a.max_batch_seen, ==, 16);
  for (gsize i = 0; i < (gsize) C * H * W; i += 9973)
    g_assert_true (isfinite (img[i]) && fabs (img[i]) <= 1.0f);
  g_free (img);
  ddpm_schedule_free (s);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/engine/img2img/plan", test_plan);
  g_test_add_func ("/engine/img2img/strength-zero", test_strength_zero);
  g_test_add_func ("/engine/img2img/strength-distance", test_strength_distance);
  g_test_add_func ("/engine/img2img/strength-one", test_strength_one);
  g_test_add_func ("/engine/img2img/mask-blend", test_mask_blend);
  g_test_add_func ("/engine/img2img/mask-renoise-each-step", test_mask_renoise_each_step);
  g_test_add_func ("/engine/img2img/threads", test_threads);
  g_test_add_func ("/engine/img2img/tiles-match-untiled", test_tiles_match_untiled);
  g_test_add_func ("/engine/img2img/tiles-no-seams", test_tiles_no_seams);
  g_test_add_func ("/engine/img2img/progress-and-cancel", test_progress_and_cancel);
  g_test_add_func ("/engine/img2img/denoiser-error", test_denoiser_error);
  g_test_add_func ("/engine/img2img/nonfinite-eps", test_nonfinite_eps);
  g_test_add_func ("/engine/img2img/bad-arguments", test_bad_arguments);
  g_test_add_func ("/engine/img2img/validate", test_validate);
  g_test_add_func ("/engine/img2img/large-image", test_large_image);
  return g_test_run ();
}
