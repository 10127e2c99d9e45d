/* img2img.c: the sampling driver — strength (SDEdit), masks (inpainting),
 * tiles (MultiDiffusion), noise keys, threads, progress and cancel.
 *
 * HOW IT WORKS
 *
 * Strength (Meng et al. 2021, SDEdit).  t0 = round(strength·T).  The base
 * timesteps 1..t0 are respaced into n = min(steps, t0) steps (trailing by
 * default, so t0 itself is the first step); the image is forward-noised to
 * the top of that chain, x = √ᾱ·image + √(1−ᾱ)·ε (Ho et al. 2020, eq. 4),
 * and the n steps run down to t = 0.  strength = 0 returns at once;
 * strength = 1 starts from x = ε itself (generation: the input is unused).
 * params->t_start > 0 names t0 directly; params->add_noise = FALSE starts
 * from x = √ᾱ·image, for an input that already carries the noise of t0
 * (denoise.c), and the masked-out region then follows √ᾱ_t·image.
 *
 * Masks (RePaint, Lugmayr et al. 2022, eq. 8).  After every step to t > 0
 * the known region is replaced by the original forward-noised to that t,
 * x ← m·x + (1−m)·(√ᾱ_t·image + √(1−ᾱ_t)·z), with z drawn for that step;
 * after the last step x ← m·x + (1−m)·image, so a mask-0 pixel is the
 * input's bit for bit and a feathered edge blends.
 *
 * Tiles (Bar-Tal et al. 2023, MultiDiffusion, eq. 5 with a window).  A
 * denoiser with a native size S sees S×S tiles laid on a grid that covers
 * the image with at least `overlap` pixels shared by neighbours.  At every
 * step the full-image ε is the average of the tiles' ε weighted by a
 * separable raised-cosine window w(u) = sin²(π(u + ½)/S), positive
 * everywhere; the weights are normalised per pixel once, per axis (the
 * grid is a product of two 1-D layouts, so is the sum of the weights).
 * An image side shorter than S is reflect-padded: the tile reads the
 * current state mirrored about the edge (replicated for a 1-pixel side),
 * and only the real pixels keep their ε.  Memory: the state and ε (two
 * full-image float buffers; three for DPM-Solver++, which keeps the
 * previous x̂0, and for the DDPM sampler on a denoiser with learned
 * variance, which keeps v) and one batch of tiles in and out (and v out).
 *
 * Learned variance (Nichol & Dhariwal 2021, eq. 15).  A denoiser with
 * denoise_v predicts, besides ε, the interpolation v between log β̃ and
 * log β; the DDPM sampler asks for it and draws with that variance per
 * pixel.  Tiles blend v with the same window as ε.  DDIM and
 * DPM-Solver++ have no use for it and call plain denoise.
 *
 * Noise keys.  Every normal is ddpm_rng_normal (seed, stream, index) with
 * index = c·H·W + y·W + x in the FULL image and a stream made of the step
 * index and the purpose (initial, ancestral, mask renoising), so no two
 * draws share a key and the result depends neither on tiles nor threads.
 *
 * Threads.  The elementwise work (noise, the step, masks, tile copies) is
 * split over the engine's one thread team (layers/parallel.c), sized to
 * params->threads for the run and given back at its size afterwards.  The
 * denoiser is called from the caller's thread, one call at a time, and
 * uses the same team inside (the model's adapter sizes it to its own
 * thread count, so img2img sizes it again after each call).  Chunks cover
 * disjoint pixels, every normal is keyed by its pixel, and tiles are added
 * in a fixed order, so the output is bit-identical for any thread count
 * and any split.
 */
#include <math.h>
#include <string.h>

#include "finite.h"
#include "intl.h"

#include "layers/layers.h"
#include "sampler-private.h"

#define DEFAULT_MAX_BATCH 16 /* tiles per denoiser call when it sets no limit */
#define CHUNK 4096           /* elements per noise buffer */
#define GRAIN 32768          /* elements below which a thread isn't worth it */

/* Streams: "SAMP" in the high word, then step index and purpose. */
#define STREAM_TAG (G_GUINT64_CONSTANT (0x53414d50) << 32)
enum { NOISE_INITIAL = 0, NOISE_ANCESTRAL = 1, NOISE_MASK = 2 };

static inline guint64
noise_stream (int step, int purpose)
{
  return STREAM_TAG | ((guint64) step << 2) | (guint64) purpose;
}

void
ddpm_sample_params_init (DdpmSampleParams *params)
{
  g_return_if_fail (params != NULL);
  memset (params, 0, sizeof *params);
  params->sampler = DDPM_SAMPLER_DDIM;
  params->variance = DDPM_VARIANCE_POSTERIOR;
  params->eta = 0.0;
  params->clip_x0 = TRUE;
  params->steps = 20;
  params->strength = 1.0;
  params->seed = 0;
  params->spacing = DDPM_SPACING_TRAILING;
  params->tile_overlap = -1;
  params->threads = 0;
  params->progress = NULL;
  params->progress_data = NULL;
  params->t_start = 0;
  params->add_noise = TRUE;
  params->precision = DDPM_PRECISION_AUTO;
}

/* The checks ddpm_img2img_plan and ddpm_sample_params_validate share. */
static gboolean
check_strength_and_steps (double strength, int steps, GError **error)
{
  if (!(strength >= 0.0 && strength <= 1.0))
    {
      g_set_error (error, DDPM_ERROR, DDPM_ERROR_INVALID_ARGUMENT,
                   _("The strength must be between 0 and 1, not %g."), strength);
      return FALSE;
    }
  if (steps < 1)
    {
      g_set_error (error, DDPM_ERROR, DDPM_ERROR_INVALID_ARGUMENT,
                   _("The number of steps must be at least 1, not %d."), steps);
      return FALSE;
    }
  return TRUE;
}

gboolean
ddpm_sample_params_validate (const DdpmSampleParams *p,
                             GError                **error)
{
#define FAIL(...) \
  do { g_set_error (error, DDPM_ERROR, DDPM_ERROR_INVALID_ARGUMENT, __VA_ARGS__); \
       return FALSE; } while (0)

  g_return_val_if_fail (p != NULL, FALSE);

  if (!check_strength_and_steps (p->strength, p->steps, error))
    return FALSE;
  /* the message names the values */
  G_STATIC_ASSERT (DDPM_SAMPLER_DDPM == 0 && DDPM_SAMPLER_DDIM == 1
                   && DDPM_SAMPLER_DPM_2M == 2 && DDPM_SAMPLER_COUNT == 3);
  if (p->sampler < 0 || p->sampler >= DDPM_SAMPLER_COUNT)
    FAIL (_("Unknown sampler %d: use 0 (DDPM), 1 (DDIM) or 2 (DPM-Solver++)."),
          (int) p->sampler);
  if (p->variance < 0 || p->variance >= DDPM_VARIANCE_COUNT)
    FAIL (_("Unknown sampler variance %d."), (int) p->variance);
  if (p->spacing < 0 || p->spacing >= DDPM_SPACING_COUNT)
    FAIL (_("Unknown timestep spacing %d."), (int) p->spacing);
  if (!(p->eta >= 0.0 && p->eta <= 1.0))
    FAIL (_("The DDIM η must be between 0 and 1, not %g."), p->eta);
  if (p->threads < 0)
    FAIL (_("The number of threads must be 0 (all cores) or more, not %d."),
          p->threads);
  if (p->precision < 0 || p->precision >= DDPM_PRECISION_COUNT)
    FAIL (_("Unknown precision %d."), (int) p->precision);
  return TRUE;
#undef FAIL
}

gboolean
ddpm_img2img_plan (const DdpmSchedule *schedule,
                   double              strength,
                   int                 steps,
                   int                *t0,
                   int                *n_steps,
                   GError            **error)
{
  g_return_val_if_fail (schedule != NULL, FALSE);

  if (!check_strength_and_steps (strength, steps, error))
    return FALSE;

  int start = (int) llround (strength * schedule->T);
  if (t0 != NULL)
    *t0 = start;
  if (n_steps != NULL)
    *n_steps = MIN (steps, start);
  return TRUE;
}

/* ------------------------------------------------------------ tile layout */

/* The tiles along one image axis of length L for tiles of size S. */
typedef struct
{
  int    n;       /* tiles along the axis */
  int   *pos;     /* (n) first pixel of each tile */
  float *weight;  /* (n, S) normalised window weight at tile offset u;
                     0 where pos + u is padding */
} TileAxis;

/* i mirrored into [0, L) (numpy "reflect": the edge pixel is not repeated),
 * repeating the mirror for padding longer than L; a 1-pixel side replicates. */
static inline int
reflect_index (int i, int L)
{
  if (L == 1)
    return 0;
  int period = 2 * (L - 1);
  i %= period;
  if (i < 0)
    i += period;
  return i < L ? i : period - i;
}

static void
tile_axis_init (TileAxis *axis, int L, int S, int overlap)
{
  if (L <= S)
    axis->n = 1;
  else
    {
      int stride = S - overlap;
      axis->n = (L - S + stride - 1) / stride + 1;
    }
  axis->pos = g_new (int, axis->n);
  axis->weight = g_new0 (float, (gsize) axis->n * S);

  /* Spread the tiles evenly between 0 and L − S: the gaps are at most the
   * stride, so neighbours share at least `overlap` pixels. */
  for (int k = 0; k < axis->n; k++)
    axis->pos[k] = axis->n == 1 ? 0
                   : (int) (((gint64) k * (L - S) + (axis->n - 1) / 2) / (axis->n - 1));

  double *sum = g_new0 (double, L);
  for (int k = 0; k < axis->n; k++)
    for (int u = 0; u < S && axis->pos[k] + u < L; u++)
      {
        double w = sin (G_PI * (u + 0.5) / S);
        sum[axis->pos[k] + u] += w * w;
      }
  for (int k = 0; k < axis->n; k++)
    for (int u = 0; u < S && axis->pos[k] + u < L; u++)
      {
        double w = sin (G_PI * (u + 0.5) / S);
        axis->weight[(gsize) k * S + u] = (float) (w * w / sum[axis->pos[k] + u]);
      }
  g_free (sum);
}

static void
tile_axis_clear (TileAxis *axis)
{
  g_free (axis->pos);
  g_free (axis->weight);
}

/* ---------------------------------------------------------------- the run */

typedef struct
{
  /* the problem */
  const float            *image;   /* (C, H, W) the original, never written */
  const float            *mask;    /* (H, W) or NULL */
  int                     C, H, W;
  gsize                   hw, n;   /* H·W, C·H·W */
  DdpmSchedule           *chain;   /* the respaced chain, steps 1..n_steps (owned) */
  const DdpmSampleParams *params;
  const DdpmDenoiser     *denoiser;

  /* the state */
  float *x;                        /* (C, H, W) x_t */
  float *eps;                      /* (C, H, W) ε_θ(x_t, t) */
  float *x0_prev;                  /* (C, H, W) DPM-Solver++ only: the
                                      previous step's x̂0; else NULL */
  float *v;                        /* (C, H, W) learned variance only: the
                                      interpolation v; else NULL */
  gboolean learned;                /* DDPM sampler on a denoiser with v */
  int    step;                     /* current chain index i */
  gboolean pure_noise;             /* strength 1: start from ε alone */

  /* tiling (S = tile size; unused when the denoiser takes the image whole) */
  int      S;
  TileAxis ty, tx;
  int      batch_max;
  int      batch_first, batch_count; /* tiles of the batch in flight */
  float   *tiles_in, *tiles_out;    /* (batch_max, C, S, S) */
  float   *tiles_v;                 /* (batch_max, C, S, S) learned only */
} Run;

/* Blend the known region into x[e0 .. e0 + len) after a step to chain
 * index i: with the original forward-noised to t_i (noise from `stream`)
 * when i > 0, with the original itself when i = 0. */
static void
mask_blend_chunk (const Run *run, gsize e0, gsize len, int i, guint64 stream)
{
  const double a = run->chain->sqrt_alpha_bar[i];
  const double b = run->chain->sqrt_one_minus_alpha_bar[i];
  gboolean any_known = FALSE;
  float z[CHUNK];

  for (gsize k = 0; k < len && !any_known; k++)
    any_known = run->mask[(e0 + k) % run->hw] < 1.0f;
  if (!any_known)
    return;
  if (i > 0 && run->params->add_noise)
    ddpm_rng_normal_fill (z, len, run->params->seed, stream, e0);

  for (gsize k = 0; k < len; k++)
    {
      gsize e = e0 + k;
      double m = run->mask[e % run->hw];

      if (m == 1.0)
        continue;
      double known = i == 0 ? run->image[e]
                     : run->params->add_noise ? a * run->image[e] + b * z[k]
                     : a * run->image[e];
      run->x[e] = (float) (m == 0.0 ? known : m * run->x[e] + (1.0 - m) * known);
    }
}

/* x_top = √ᾱ·image + √(1−ᾱ)·ε (or ε alone; or √ᾱ·image alone without
 * add_noise), masks applied. */
static void
init_range (gsize begin, gsize end, gpointer data)
{
  Run *run = data;
  const int top = run->chain->T;
  const double a = run->chain->sqrt_alpha_bar[top];
  const double b = run->params->add_noise
                   ? run->chain->sqrt_one_minus_alpha_bar[top] : 0.0;
  const guint64 stream = noise_stream (top, NOISE_INITIAL);
  float z[CHUNK];

  for (gsize e0 = begin; e0 < end; e0 += CHUNK)
    {
      gsize len = MIN ((gsize) CHUNK, end - e0);

      if (run->params->add_noise)
        ddpm_rng_normal_fill (z, len, run->params->seed, stream, e0);
      else
        memset (z, 0, len * sizeof (float));
      for (gsize k = 0; k < len; k++)
        {
          gsize e = e0 + k;
          double noised = a * run->image[e] + b * z[k];
          double v = run->pure_noise ? z[k] : noised;

          /* With strength < 1 both regions start from the same noised
           * original; with strength 1 the known region still starts from
           * it, with the same ε. */
          if (run->mask != NULL && run->pure_noise)
            {
              double m = run->mask[e % run->hw];
              v = m == 1.0 ? v : m == 0.0 ? noised : m * v + (1.0 - m) * noised;
            }
          run->x[e] = (float) v;
        }
    }
}

/* One reverse step on [begin, end), then the mask. */
static void
step_range (gsize begin, gsize end, gpointer data)
{
  Run *run = data;
  const DdpmSampleParams *p = run->params;
  const int i = run->step;
  const gboolean noisy = ddpm_sampler_step_needs_noise (p, i);
  const guint64 stream = noise_stream (i, NOISE_ANCESTRAL);
  const guint64 mask_stream = noise_stream (i, NOISE_MASK);
  float z[CHUNK];

  for (gsize e0 = begin; e0 < end; e0 += CHUNK)
    {
      gsize len = MIN ((gsize) CHUNK, end - e0);

      if (noisy)
        ddpm_rng_normal_fill (z, len, p->seed, stream, e0);
      if (run->learned)
        ddpm_sampler_ddpm_step_learned (run->x + e0, run->eps + e0, run->v + e0,
                                        noisy ? z : NULL, len, run->chain, i, p->clip_x0);
      else if (p->sampler == DDPM_SAMPLER_DDPM)
        ddpm_sampler_ddpm_step (run->x + e0, run->eps + e0, noisy ? z : NULL,
                                len, run->chain, i, p->variance, p->clip_x0);
      else if (p->sampler == DDPM_SAMPLER_DPM_2M)
        ddpm_sampler_dpm_step (run->x + e0, run->x0_prev + e0, run->eps + e0,
                               len, run->chain, i,
                               ddpm_sampler_dpm_order (i, run->chain->T),
                               p->clip_x0);
      else
        ddpm_sampler_ddim_step (run->x + e0, run->eps + e0, noisy ? z : NULL,
                                len, run->chain, i, p->eta, p->clip_x0);
      if (run->mask != NULL)
        mask_blend_chunk (run, e0, len, i - 1, mask_stream);
    }
}

static void
zero_range (gsize begin, gsize end, gpointer data)
{
  Run *run = data;

  memset (run->eps + begin, 0, (end - begin) * sizeof (float));
  if (run->v != NULL)
    memset (run->v + begin, 0, (end - begin) * sizeof (float));
}

/* Copy tiles [begin, end) of the batch in flight out of the state. */
static void
extract_range (gsize begin, gsize end, gpointer data)
{
  Run *run = data;
  const int S = run->S;
  const gsize tile_len = (gsize) run->C * S * S;

  for (gsize b = begin; b < end; b++)
    {
      int j = run->batch_first + (int) b;
      int y0 = run->ty.pos[j / run->tx.n], x0 = run->tx.pos[j % run->tx.n];
      float *dst = run->tiles_in + b * tile_len;

      for (int c = 0; c < run->C; c++)
        for (int u = 0; u < S; u++)
          {
            int y = y0 + u < run->H ? y0 + u : reflect_index (y0 + u, run->H);
            const float *src = run->x + ((gsize) c * run->H + y) * run->W;
            float *row = dst + ((gsize) c * S + u) * S;

            if (x0 + S <= run->W)
              memcpy (row, src + x0, S * sizeof (float));
            else
              for (int v = 0; v < S; v++)
                row[v] = src[reflect_index (x0 + v, run->W)];
          }
    }
}

/* Add the batch's weighted ε (and v) to image rows [begin, end) (over all
 * channels), tile after tile in a fixed order. */
static void
accumulate_range (gsize begin, gsize end, gpointer data)
{
  Run *run = data;
  const int S = run->S;
  const gsize tile_len = (gsize) run->C * S * S;

  for (int b = 0; b < run->batch_count; b++)
    {
      int j = run->batch_first + b;
      int ky = j / run->tx.n, kx = j % run->tx.n;
      int y0 = run->ty.pos[ky], x0 = run->tx.pos[kx];
      const float *wy = run->ty.weight + (gsize) ky * S;
      const float *wx = run->tx.weight + (gsize) kx * S;
      int u_lo = MAX (0, (int) begin - y0);
      int u_hi = MIN (S, MIN ((int) end, run->H) - y0);
      int v_hi = MIN (S, run->W - x0);
      const float *tile = run->tiles_out + b * tile_len;
      const float *tile_v = run->v != NULL ? run->tiles_v + b * tile_len : NULL;

      for (int c = 0; c < run->C; c++)
        for (int u = u_lo; u < u_hi; u++)
          {
            const gsize src_at = ((gsize) c * S + u) * S;
            const gsize dst_at = ((gsize) c * run->H + y0 + u) * run->W + x0;
            const float *src = tile + src_at;
            float *dst = run->eps + dst_at;

            for (int v = 0; v < v_hi; v++)
              dst[v] += wy[u] * wx[v] * src[v];
            if (tile_v != NULL)
              for (int v = 0; v < v_hi; v++)
                run->v[dst_at + v] += wy[u] * wx[v] * tile_v[src_at + v];
          }
    }
}

/* The denoiser on n images of h×w (with v when the run is learned); the
 * team back at img2img's size after it (a model's adapter sizes the team
 * to its own thread count). */
static gboolean
run_denoiser (Run *run, float *eps, float *v, const float *x, int n, int h, int w,
              int t, GError **error)
{
  const DdpmDenoiser *d = run->denoiser;
  gboolean ok = run->learned
    ? d->denoise_v (eps, v, x, n, run->C, h, w, t, d->user_data, error)
    : d->denoise (eps, x, n, run->C, h, w, t, d->user_data, error);

  ddpm_parallel_set_threads (run->params->threads);

  /* A NaN or infinity in ε would spread through x and come out as black
   * pixels with a success status.  Checking every prediction costs one
   * pass over n·C·h·w floats a step, against the denoiser's thousands of
   * operations per value: nothing measurable; and it names the step. */
  gsize len = (gsize) n * run->C * h * w;
  if (ok && (ddpm_floats_find_nonfinite (eps, len) < len
             || (run->learned && ddpm_floats_find_nonfinite (v, len) < len)))
    {
      g_set_error (error, DDPM_ERROR, DDPM_ERROR_INVALID_ARGUMENT,
                   _("The denoiser predicted NaN or infinity at step t = %d: "
                     "the model is damaged or unstable."), t);
      ok = FALSE;
    }
  return ok;
}

/* ε_θ(x_t, t) for the whole image, whole or in tiles. */
static gboolean
predict_eps (Run *run, int t, GError **error)
{
  if (run->S == 0)
    return run_denoiser (run, run->eps, run->v, run->x, 1, run->H, run->W, t, error);

  const int n_tiles = run->ty.n * run->tx.n;

  ddpm_parallel_for (run->n, GRAIN, zero_range, run);
  for (int first = 0; first < n_tiles; first += run->batch_max)
    {
      run->batch_first = first;
      run->batch_count = MIN (run->batch_max, n_tiles - first);
      ddpm_parallel_for (run->batch_count, 1, extract_range, run);
      if (!run_denoiser (run, run->tiles_out, run->tiles_v, run->tiles_in,
                         run->batch_count, run->S, run->S, t, error))
        return FALSE;
      ddpm_parallel_for (run->H, MAX (1, GRAIN / ((gsize) run->W * run->C)),
                         accumulate_range, run);
    }
  return TRUE;
}

static gboolean
check_arguments (const float            *mask,
                 int                     C,
                 int                     H,
                 int                     W,
                 const DdpmSchedule     *schedule,
                 const DdpmDenoiser     *denoiser,
                 const DdpmSampleParams *p,
                 GError                **error)
{
#define FAIL(...) \
  do { g_set_error (error, DDPM_ERROR, DDPM_ERROR_INVALID_ARGUMENT, __VA_ARGS__); \
       return FALSE; } while (0)

  if (C < 1 || H < 1 || W < 1)
    FAIL ("The image must have at least one channel and one pixel, not %d×%d×%d",
          C, H, W);
  if (denoiser == NULL || denoiser->denoise == NULL)
    FAIL ("No model to denoise with: load a model first");
  if (denoiser->channels != C)
    FAIL ("The model works on %d-channel images but the image has %d channels",
          denoiser->channels, C);
  if (denoiser->tile_size < 0 || denoiser->max_batch < 0)
    FAIL ("The model reports a negative tile size (%d) or batch (%d)",
          denoiser->tile_size, denoiser->max_batch);
  if (!ddpm_sample_params_validate (p, error))
    return FALSE;
  if (p->t_start < 0 || p->t_start > schedule->T)
    FAIL ("The starting timestep must be between 1 and %d, not %d",
          schedule->T, p->t_start);
  if (denoiser->tile_size > 0 && p->tile_overlap >= denoiser->tile_size)
    FAIL ("The tile overlap (%d pixels) must be smaller than the tile (%d)",
          p->tile_overlap, denoiser->tile_size);
  if (mask != NULL)
    for (gsize k = 0; k < (gsize) H * W; k++)
      if (!(mask[k] >= 0.0f && mask[k] <= 1.0f))
        FAIL ("Mask values must lie between 0 and 1; pixel (%d, %d) is %g",
              (int) (k % W), (int) (k / W), mask[k]);
  return TRUE;
#undef FAIL
}

/* Tiles are needed unless the denoiser takes any size or the image is
 * exactly its size. */
static gboolean
run_setup_tiles (Run *run, GError **error)
{
  const int S = run->denoiser->tile_size;
  const DdpmSampleParams *p = run->params;

  if (S == 0 || (run->H == S && run->W == S))
    {
      run->S = 0;
      return TRUE;
    }
  run->S = S;
  /* Default: an eighth of the tile, at least 8 pixels (a quarter for the
   * 32-pixel tiles of the small models).  The window and the averaging at
   * every step hide seams at that overlap (looked at on 384² crops with
   * 64² tiles: no seam at 8 or 16 pixels); more overlap is paid in tiles:
   * on 1024² with 64² tiles, 16 pixels cost 441 tiles a step, 8 cost 361. */
  int overlap = p->tile_overlap >= 0 ? p->tile_overlap : MIN (MAX (8, S / 8), S - 1);
  tile_axis_init (&run->ty, run->H, S, overlap);
  tile_axis_init (&run->tx, run->W, S, overlap);

  int n_tiles = run->ty.n * run->tx.n;
  int limit = run->denoiser->max_batch > 0 ? run->denoiser->max_batch
                                            : DEFAULT_MAX_BATCH;
  run->batch_max = MIN (limit, n_tiles);
  gsize len = (gsize) run->batch_max * run->C * S * S;
  run->tiles_in = g_try_new (float, len);
  run->tiles_out = g_try_new (float, len);
  if (run->learned)
    run->tiles_v = g_try_new (float, len);
  if (run->tiles_in == NULL || run->tiles_out == NULL
      || (run->learned && run->tiles_v == NULL))
    {
      ddpm_set_error_no_memory (error, (run->learned ? 3 : 2) * len * sizeof (float),
                                /* TRANSLATORS: completes "Not enough memory
                                 * for %s": tiles, and their size in pixels. */
                                _("a batch of %d tiles of %d × %d"),
                                run->batch_max, S, S);
      return FALSE;
    }
  return TRUE;
}

static void
run_clear (Run *run)
{
  g_free (run->x);
  g_free (run->eps);
  g_free (run->x0_prev);
  g_free (run->v);
  g_free (run->tiles_in);
  g_free (run->tiles_out);
  g_free (run->tiles_v);
  if (run->S > 0)
    {
      tile_axis_clear (&run->ty);
      tile_axis_clear (&run->tx);
    }
  ddpm_schedule_free (run->chain);
}

/* Meng et al. 2021 (SDEdit), with RePaint masks and MultiDiffusion tiles;
 * see the essay at the top of this file. */
gboolean
ddpm_img2img (float                  *image,
              const float            *mask,
              int                     C,
              int                     H,
              int                     W,
              const DdpmSchedule     *schedule,
              const DdpmDenoiser     *denoiser,
              const DdpmSampleParams *params,
              GError                **error)
{
  g_return_val_if_fail (image != NULL, FALSE);
  g_return_val_if_fail (schedule != NULL, FALSE);
  g_return_val_if_fail (params != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (!check_arguments (mask, C, H, W, schedule, denoiser, params, error))
    return FALSE;

  int t0, n_steps;
  if (!ddpm_img2img_plan (schedule, params->strength, params->steps,
                          &t0, &n_steps, error))
    return FALSE;
  if (params->t_start > 0)
    {
      t0 = params->t_start;
      n_steps = MIN (params->steps, t0);
    }
  if (n_steps == 0)
    return TRUE; /* strength 0 (or below half a timestep): nothing to do */

  DdpmSchedule *chain = ddpm_schedule_respace (schedule, t0, n_steps,
                                               params->spacing, error);
  if (chain == NULL)
    return FALSE;

  Run run = { 0 };
  run.image = image;
  run.mask = mask;
  run.C = C;
  run.H = H;
  run.W = W;
  run.hw = (gsize) H * W;
  run.n = run.hw * C;
  run.chain = chain;
  run.params = params;
  run.denoiser = denoiser;
  run.pure_noise = params->t_start <= 0 && params->strength >= 1.0
                   && params->add_noise;
  const int saved_threads = ddpm_parallel_threads ();
  ddpm_parallel_set_threads (params->threads);
  /* the layers read it in this thread, which runs the denoiser */
  const DdpmPrecision saved_precision = ddpm_layers_set_precision (params->precision);

  gboolean ok = FALSE;
  gint64 start = g_get_monotonic_time ();

  /* the multistep solver keeps one more image, the previous x̂0; the
   * DDPM sampler with a learned variance one more too, v */
  run.learned = params->sampler == DDPM_SAMPLER_DDPM && denoiser->denoise_v != NULL;
  const int n_buffers = params->sampler == DDPM_SAMPLER_DPM_2M || run.learned ? 3 : 2;
  run.x = g_try_new (float, run.n);
  run.eps = g_try_new (float, run.n);
  if (params->sampler == DDPM_SAMPLER_DPM_2M)
    run.x0_prev = g_try_new (float, run.n);
  if (run.learned)
    run.v = g_try_new (float, run.n);
  if (run.x == NULL || run.eps == NULL
      || (params->sampler == DDPM_SAMPLER_DPM_2M && run.x0_prev == NULL)
      || (run.learned && run.v == NULL))
    {
      ddpm_set_error_no_memory (error, n_buffers * run.n * sizeof (float),
                                _("a %d × %d image"), W, H);
      goto out;
    }
  if (!run_setup_tiles (&run, error))
    goto out;

  ddpm_parallel_for (run.n, GRAIN, init_range, &run);
  for (int i = n_steps; i >= 1; i--)
    {
      const int done = n_steps - i + 1;
      GError *local = NULL;

      run.step = i;
      if (!predict_eps (&run, chain->timestep[i], &local))
        {
          if (local == NULL) /* a denoiser that forgot its error */
            g_set_error (&local, DDPM_ERROR, DDPM_ERROR_UNSUPPORTED,
                         _("The model failed without saying why"));
          g_propagate_prefixed_error (error, local,
                                      _("Denoising step %d of %d failed: "),
                                      done, n_steps);
          goto out;
        }
      ddpm_parallel_for (run.n, GRAIN, step_range, &run);

      if (params->progress != NULL)
        {
          DdpmProgress progress;
          double elapsed = (g_get_monotonic_time () - start) / 1e6;

          progress.step = done;
          progress.n_steps = n_steps;
          progress.loss = NAN;
          progress.elapsed = elapsed;
          progress.per_second = elapsed > 0 ? done / elapsed : 0.0;
          progress.remaining = done > 0 ? elapsed / done * (n_steps - done) : 0.0;
          if (!params->progress (&progress, params->progress_data))
            {
              g_set_error (error, DDPM_ERROR, DDPM_ERROR_CANCELLED,
                           _("Cancelled after step %d of %d"), done, n_steps);
              goto out;
            }
        }
    }

  /* Success: only now is the caller's image written. */
  memcpy (image, run.x, run.n * sizeof (float));
  ok = TRUE;

out:
  run_clear (&run);
  ddpm_parallel_set_threads (saved_threads);
  ddpm_layers_set_precision (saved_precision);
  return ok;
}
