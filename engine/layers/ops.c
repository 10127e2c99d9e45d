/* ops.c: the small shape and elementwise operations of the UNet, forward
 * and backward: nearest-neighbour ×2 up-sampling, skip concatenation,
 * residual addition, the per-channel time-embedding bias, and dropout.
 * None of them has parameters; each backward is the adjoint of its forward
 * (sums where the forward copied one value to several places).
 */
#include <string.h>

#include "layers.h"

/* ------------------------------------------------------------- upsample */

/* out[b][c][y][x] = inp[b][c][⌊y/2⌋][⌊x/2⌋] (the DDPM Upsample block,
 * before its 3×3 conv). */
void
ddpm_upsample2x_forward (float *out, const float *inp, int B, int C, int H, int W)
{
  g_return_if_fail (out != NULL && inp != NULL && B > 0 && C > 0 && H > 0 && W > 0);

  const gsize planes = (gsize) B * C;
  for (gsize pl = 0; pl < planes; pl++)
    {
      const float *src = inp + pl * H * W;
      float *dst = out + pl * 4 * H * W;

      for (int y = 0; y < H; y++)
        {
          float *row = dst + (gsize) (2 * y) * (2 * W);
          for (int x = 0; x < W; x++)
            row[2 * x] = row[2 * x + 1] = src[(gsize) y * W + x];
          memcpy (row + 2 * W, row, sizeof (float) * 2 * W);
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
  const gsize planes = (gsize) B * C;
  for (gsize pl = 0; pl < planes; pl++)
    {
      const float *src = dout + pl * 4 * H * W;
      float *dst = dinp + pl * H * W;

      for (int y = 0; y < H; y++)
        {
          const float *r0 = src + (gsize) (2 * y) * (2 * W);
          const float *r1 = r0 + 2 * W;
          for (int x = 0; x < W; x++)
            dst[(gsize) y * W + x] += (r0[2 * x] + r0[2 * x + 1]) + (r1[2 * x] + r1[2 * x + 1]);
        }
    }
}

/* --------------------------------------------------------------- concat */

void
ddpm_concat_forward (float *out, const float *a, const float *b,
                     int B, int Ca, int Cb, int HW)
{
  g_return_if_fail (out != NULL && a != NULL && b != NULL);
  g_return_if_fail (B > 0 && Ca >= 0 && Cb >= 0 && HW > 0);

  const gsize na = (gsize) Ca * HW, nb = (gsize) Cb * HW;
  for (int s = 0; s < B; s++)
    {
      memcpy (out + s * (na + nb), a + s * na, sizeof (float) * na);
      memcpy (out + s * (na + nb) + na, b + s * nb, sizeof (float) * nb);
    }
}

void
ddpm_concat_backward (float *da, float *db, const float *dout,
                      int B, int Ca, int Cb, int HW)
{
  g_return_if_fail (dout != NULL && B > 0 && Ca >= 0 && Cb >= 0 && HW > 0);

  const gsize na = (gsize) Ca * HW, nb = (gsize) Cb * HW;
  for (int s = 0; s < B; s++)
    {
      const float *src = dout + s * (na + nb);
      if (da != NULL)
        for (gsize i = 0; i < na; i++)
          da[s * na + i] += src[i];
      if (db != NULL)
        for (gsize i = 0; i < nb; i++)
          db[s * nb + i] += src[na + i];
    }
}

/* ------------------------------------------------------------------ add */

void
ddpm_add_forward (float *out, const float *a, const float *b, gsize n)
{
  g_return_if_fail (n == 0 || (out != NULL && a != NULL && b != NULL));

  for (gsize i = 0; i < n; i++)
    out[i] = a[i] + b[i];
}

/* ---------------------------------------------------- add_channel_bias */

void
ddpm_add_channel_bias_forward (float *out, const float *inp, const float *vec,
                               int B, int C, int HW)
{
  g_return_if_fail (out != NULL && inp != NULL && vec != NULL);
  g_return_if_fail (B > 0 && C > 0 && HW > 0);

  const gsize planes = (gsize) B * C;
  for (gsize pl = 0; pl < planes; pl++)
    {
      const float v = vec[pl];
      const float *x = inp + pl * HW;
      float *y = out + pl * HW;
      for (int i = 0; i < HW; i++)
        y[i] = x[i] + v;
    }
}

void
ddpm_add_channel_bias_backward (float *dvec, const float *dout, int B, int C, int HW)
{
  g_return_if_fail (dout != NULL && B > 0 && C > 0 && HW > 0);

  if (dvec == NULL)
    return;
  const gsize planes = (gsize) B * C;
  for (gsize pl = 0; pl < planes; pl++)
    {
      const float *dy = dout + pl * HW;
      double sum = 0;
      for (int i = 0; i < HW; i++)
        sum += dy[i];
      dvec[pl] += (float) sum;
    }
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
      for (gsize i = 0; i < n; i++)
        dinp[i] += dout[i];
      return;
    }
  const float scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
  for (gsize i = 0; i < n; i++)
    if (mask[i])
      dinp[i] += dout[i] * scale;
}
