/* ops.c: the small shape and elementwise operations of the UNet, forward
 * and backward: nearest-neighbour ×2 up-sampling, skip concatenation,
 * residual addition, the per-channel time-embedding bias, and dropout.
 * None of them has parameters; each backward is the adjoint of its forward
 * (sums where the forward copied one value to several places).
 */
#include <string.h>

#include "layers.h"

/* Elements per part of the thread team (a part shorter than ~16K floats
 * costs more to hand out than it saves).  These ops are cheap, but run on
 * one thread they left the other core idle for ~10 % of a forward pass. */
#define GRAIN_FLOATS 16384

typedef struct
{
  float       *out;
  const float *a, *b;
  int          C, H, W;     /* planes: upsample's input; channel bias 1 × HW */
  gsize        na, nb;      /* concat: floats per sample of a and b; add: 0 */
  int          border;      /* upsample: zero rows/columns around each plane */
} OpJob;

static gsize
grain_planes (gsize plane)
{
  return MAX ((gsize) 1, GRAIN_FLOATS / MAX (plane, (gsize) 1));
}

/* ------------------------------------------------------------- upsample */

/* Planes [begin, end) up-sampled into planes of (2H + 2p, 2W + 2p) with
 * p = j->border rows and columns of zeros around them. */
static void
upsample_range (gsize begin, gsize end, gpointer data)
{
  const OpJob *j = data;
  const int H = j->H, W = j->W, p = j->border, Wp = 2 * W + 2 * p;

  for (gsize pl = begin; pl < end; pl++)
    {
      const float *src = j->a + pl * H * W;
      float *dst = j->out + pl * (2 * H + 2 * p) * Wp;

      if (p > 0)
        {
          memset (dst, 0, sizeof (float) * Wp);
          memset (dst + (gsize) (2 * H + 1) * Wp, 0, sizeof (float) * Wp);
        }
      for (int y = 0; y < H; y++)
        {
          float *row = dst + (gsize) (2 * y + p) * Wp;
          if (p > 0)
            row[0] = row[Wp - 1] = 0.0f;
          for (int x = 0; x < W; x++)
            row[p + 2 * x] = row[p + 2 * x + 1] = src[(gsize) y * W + x];
          memcpy (row + Wp, row, sizeof (float) * Wp);
        }
    }
}

static void
upsample (float *out, const float *inp, int B, int C, int H, int W, int border)
{
  g_return_if_fail (out != NULL && inp != NULL && B > 0 && C > 0 && H > 0 && W > 0);

  OpJob j = { .out = out, .a = inp, .C = C, .H = H, .W = W, .border = border };
  ddpm_parallel_for ((gsize) B * C, grain_planes ((gsize) 4 * H * W), upsample_range, &j);
}

/* out[b][c][y][x] = inp[b][c][⌊y/2⌋][⌊x/2⌋] (the DDPM Upsample block,
 * before its 3×3 conv). */
void
ddpm_upsample2x_forward (float *out, const float *inp, int B, int C, int H, int W)
{
  upsample (out, inp, B, C, H, W, 0);
}

/* The same into zero-bordered (2H + 2, 2W + 2) planes, the input
 * ddpm_conv3x3_forward_padded reads (inference: no up-sampled copy to pad
 * again). */
void
ddpm_upsample2x_forward_padded (float *out, const float *inp, int B, int C, int H, int W)
{
  upsample (out, inp, B, C, H, W, 1);
}

static void
upsample_backward_range (gsize begin, gsize end, gpointer data)
{
  const OpJob *j = data;
  const int H = j->H, W = j->W;

  for (gsize pl = begin; pl < end; pl++)
    {
      const float *src = j->a + pl * 4 * H * W;
      float *dst = j->out + pl * H * W;

      for (int y = 0; y < H; y++)
        {
          const float *r0 = src + (gsize) (2 * y) * (2 * W);
          const float *r1 = r0 + 2 * W;
          for (int x = 0; x < W; x++)
            dst[(gsize) y * W + x] += (r0[2 * x] + r0[2 * x + 1]) + (r1[2 * x] + r1[2 * x + 1]);
        }
    }
}

/* dinp[y][x] += the four dout pixels it was copied to. */
void
ddpm_upsample2x_backward (float *dinp, const float *dout, int B, int C, int H, int W)
{
  g_return_if_fail (dout != NULL && B > 0 && C > 0 && H > 0 && W > 0);

  if (dinp == NULL)
    return;
  OpJob j = { .out = dinp, .a = dout, .C = C, .H = H, .W = W };
  ddpm_parallel_for ((gsize) B * C, grain_planes ((gsize) 4 * H * W), upsample_backward_range,
                     &j);
}

/* --------------------------------------------------------------- concat */

static void
concat_range (gsize begin, gsize end, gpointer data)
{
  const OpJob *j = data;
  const gsize na = j->na, nb = j->nb;

  for (gsize s = begin; s < end; s++)
    {
      memcpy (j->out + s * (na + nb), j->a + s * na, sizeof (float) * na);
      memcpy (j->out + s * (na + nb) + na, j->b + s * nb, sizeof (float) * nb);
    }
}

void
ddpm_concat_forward (float *out, const float *a, const float *b,
                     int B, int Ca, int Cb, int HW)
{
  g_return_if_fail (out != NULL && a != NULL && b != NULL);
  g_return_if_fail (B > 0 && Ca >= 0 && Cb >= 0 && HW > 0);

  OpJob j = { .out = out, .a = a, .b = b, .na = (gsize) Ca * HW, .nb = (gsize) Cb * HW };
  ddpm_parallel_for ((gsize) B, grain_planes (j.na + j.nb), concat_range, &j);
}

typedef struct
{
  float       *da, *db;
  const float *dout;
  gsize        na, nb;
} ConcatBackJob;

static void
concat_backward_range (gsize begin, gsize end, gpointer data)
{
  const ConcatBackJob *j = data;
  const gsize na = j->na, nb = j->nb;

  for (gsize s = begin; s < end; s++)
    {
      const float *src = j->dout + s * (na + nb);
      if (j->da != NULL)
        for (gsize i = 0; i < na; i++)
          j->da[s * na + i] += src[i];
      if (j->db != NULL)
        for (gsize i = 0; i < nb; i++)
          j->db[s * nb + i] += src[na + i];
    }
}

void
ddpm_concat_backward (float *da, float *db, const float *dout,
                      int B, int Ca, int Cb, int HW)
{
  g_return_if_fail (dout != NULL && B > 0 && Ca >= 0 && Cb >= 0 && HW > 0);

  ConcatBackJob j = { da, db, dout, (gsize) Ca * HW, (gsize) Cb * HW };
  ddpm_parallel_for ((gsize) B, grain_planes (j.na + j.nb), concat_backward_range, &j);
}

/* ------------------------------------------------------------------ add */

static void
add_range (gsize begin, gsize end, gpointer data)
{
  const OpJob *j = data;

  for (gsize i = begin; i < end; i++)
    j->out[i] = j->a[i] + j->b[i];
}

void
ddpm_add_forward (float *out, const float *a, const float *b, gsize n)
{
  g_return_if_fail (n == 0 || (out != NULL && a != NULL && b != NULL));

  OpJob j = { .out = out, .a = a, .b = b };
  ddpm_parallel_for (n, GRAIN_FLOATS, add_range, &j);
}

/* ---------------------------------------------------- add_channel_bias */

static void
channel_bias_range (gsize begin, gsize end, gpointer data)
{
  const OpJob *j = data;
  const int HW = j->W;

  for (gsize pl = begin; pl < end; pl++)
    {
      const float v = j->b[pl];
      const float *x = j->a + pl * HW;
      float *y = j->out + pl * HW;
      for (int i = 0; i < HW; i++)
        y[i] = x[i] + v;
    }
}

void
ddpm_add_channel_bias_forward (float *out, const float *inp, const float *vec,
                               int B, int C, int HW)
{
  g_return_if_fail (out != NULL && inp != NULL && vec != NULL);
  g_return_if_fail (B > 0 && C > 0 && HW > 0);

  OpJob j = { .out = out, .a = inp, .b = vec, .C = C, .H = 1, .W = HW };
  ddpm_parallel_for ((gsize) B * C, grain_planes (HW), channel_bias_range, &j);
}

static void
channel_bias_backward_range (gsize begin, gsize end, gpointer data)
{
  const OpJob *j = data;
  const int HW = j->W;

  for (gsize pl = begin; pl < end; pl++)
    j->out[pl] += (float) ddpm_sum_plane (j->a + pl * HW, HW);
}

void
ddpm_add_channel_bias_backward (float *dvec, const float *dout, int B, int C, int HW)
{
  g_return_if_fail (dout != NULL && B > 0 && C > 0 && HW > 0);

  if (dvec == NULL)
    return;
  /* each plane's sum is its own: no order depends on the parts */
  OpJob j = { .out = dvec, .a = dout, .C = C, .H = 1, .W = HW };
  ddpm_parallel_for ((gsize) B * C, grain_planes (HW), channel_bias_backward_range, &j);
}

/* -------------------------------------------------------------- dropout */

/* Inverted dropout (Srivastava et al. 2014, with the 1/(1 − p) scaling
 * moved to training time so inference is the identity): element i is
 * dropped when ddpm_rng_uniform (seed, stream, i) < p, so the mask is a pure
 * function of (seed, stream, i), whatever the threads or batch split.
 * mask may be NULL when p = 0 (nothing to remember); p ≥ 1 drops all. */
#define DROPOUT_CHUNK 256

void
ddpm_dropout_forward (float *out, guint8 *mask, const float *inp, gsize n,
                      float p, guint64 seed, guint64 stream)
{
  g_return_if_fail (n == 0 || (out != NULL && inp != NULL));
  g_return_if_fail (p >= 0.0f);
  g_return_if_fail (mask != NULL || p == 0.0f || n == 0);

  if (p == 0.0f)
    {
      if (out != inp)
        memmove (out, inp, sizeof (float) * n);
      if (mask != NULL)
        memset (mask, 1, n);
      return;
    }

  const float scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
  double u[DROPOUT_CHUNK];

  for (gsize first = 0; first < n; first += DROPOUT_CHUNK)
    {
      gsize m = MIN ((gsize) DROPOUT_CHUNK, n - first);

      ddpm_rng_uniform_fill (u, m, seed, stream, first);
      for (gsize i = 0; i < m; i++)
        {
          guint8 keep = u[i] < (double) p ? 0 : 1;
          mask[first + i] = keep;
          out[first + i] = keep ? inp[first + i] * scale : 0.0f;
        }
    }
}

void
ddpm_dropout_backward (float *dinp, const float *dout, const guint8 *mask,
                       gsize n, float p)
{
  g_return_if_fail (n == 0 || dout != NULL);
  g_return_if_fail (p >= 0.0f);
  g_return_if_fail (mask != NULL || p == 0.0f || n == 0);

  if (dinp == NULL)
    return;
  if (p == 0.0f)
    {
      ddpm_add_forward (dinp, dinp, dout, n);
      return;
    }
  const float scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
  for (gsize i = 0; i < n; i++)
    if (mask[i])
      dinp[i] += dout[i] * scale;
}
