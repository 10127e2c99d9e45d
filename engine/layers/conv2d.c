/* conv2d.c: 2-D convolution, forward and backward, on OpenBLAS.
 *
 * HOW IT WORKS
 *
 * A convolution of one image is a matrix product once the input is
 * unfolded ("im2col", Chellapilla et al. 2006): row (ci, ky, kx) of the
 * column matrix holds, for every output pixel (oy, ox), the input pixel
 * that tap (ky, kx) of channel ci sees, or 0 in the padding:
 *
 *   cols[(ci·k + ky)·k + kx][oy·W_out + ox] = inp[ci][oy·s + ky − p][ox·s + kx − p]
 *
 * The weight (C_out, C_in, k, k) is already the row-major matrix
 * (C_out, C_in·k²), so per image
 *
 *   forward:  out   = W · cols                      (C_out, HW_out)
 *   backward: dW   += dout · colsᵀ                  (C_out, C_in·k²)
 *             dcols = Wᵀ · dout, then col2im adds every column entry back
 *                     onto the input pixel it came from.
 *
 * A 1×1 stride-1 convolution without padding needs no unfolding: the image
 * (C_in, HW) is its own column matrix, and dinp accumulates straight from
 * the product.  Columns live in the caller's scratch (one image's worth,
 * ddpm_conv2d_scratch_size), so neither direction allocates.
 */
#include <string.h>

#include <cblas.h>

#include "layers.h"

int
ddpm_conv2d_out_size (int size, int k, int stride, int pad_begin, int pad_end)
{
  int span = size + pad_begin + pad_end - k;

  g_return_val_if_fail (stride > 0, 0);
  return span < 0 ? 0 : span / stride + 1;
}

static gboolean
is_pointwise (const DdpmConvShape *s)
{
  return s->k == 1 && s->stride == 1 && s->pad_begin == 0 && s->pad_end == 0;
}

static gboolean
shape_is_valid (const DdpmConvShape *s)
{
  return s->B > 0 && s->C_in > 0 && s->H > 0 && s->W > 0 && s->C_out > 0
         && s->k > 0 && s->stride > 0 && s->pad_begin >= 0 && s->pad_end >= 0
         && ddpm_conv2d_out_size (s->H, s->k, s->stride, s->pad_begin, s->pad_end) > 0
         && ddpm_conv2d_out_size (s->W, s->k, s->stride, s->pad_begin, s->pad_end) > 0;
}

gsize
ddpm_conv2d_scratch_size (const DdpmConvShape *shape)
{
  g_return_val_if_fail (shape != NULL && shape_is_valid (shape), 0);

  if (is_pointwise (shape))
    return 0;
  return (gsize) shape->C_in * shape->k * shape->k
         * ddpm_conv2d_out_size (shape->H, shape->k, shape->stride, shape->pad_begin, shape->pad_end)
         * ddpm_conv2d_out_size (shape->W, shape->k, shape->stride, shape->pad_begin, shape->pad_end);
}

/* The outputs o in [*lo, *hi) of a row of n_out whose input index
 * o·stride + offset falls inside [0, n_in); the others read padding. */
static void
valid_range (int n_out, int stride, int offset, int n_in, int *lo, int *hi)
{
  int l = offset >= 0 ? 0 : (-offset + stride - 1) / stride;
  int h = n_in - 1 - offset < 0 ? 0 : (n_in - 1 - offset) / stride + 1;

  h = MIN (h, n_out);
  l = MIN (l, h);
  *lo = l;
  *hi = h;
}

/* Unfold one image (C_in, H, W) into cols (C_in·k·k, H_out·W_out). */
static void
im2col (float *cols, const float *img, const DdpmConvShape *s, int H_out, int W_out)
{
  const int k = s->k, st = s->stride, p = s->pad_begin;
  const gsize n_out = (gsize) H_out * W_out;

  for (int ci = 0; ci < s->C_in; ci++)
    for (int ky = 0; ky < k; ky++)
      for (int kx = 0; kx < k; kx++)
        {
          float *row = cols + ((gsize) (ci * k + ky) * k + kx) * n_out;
          const float *plane = img + (gsize) ci * s->H * s->W;
          int lo, hi;

          valid_range (W_out, st, kx - p, s->W, &lo, &hi);
          for (int oy = 0; oy < H_out; oy++)
            {
              float *dst = row + (gsize) oy * W_out;
              int iy = oy * st + ky - p;

              if (iy < 0 || iy >= s->H || lo == hi)
                {
                  memset (dst, 0, sizeof (float) * W_out);
                  continue;
                }
              const float *src = plane + (gsize) iy * s->W;
              for (int ox = 0; ox < lo; ox++)
                dst[ox] = 0;
              if (st == 1)
                memcpy (dst + lo, src + lo + kx - p, sizeof (float) * (hi - lo));
              else
                for (int ox = lo; ox < hi; ox++)
                  dst[ox] = src[ox * st + kx - p];
              for (int ox = hi; ox < W_out; ox++)
                dst[ox] = 0;
            }
        }
}

/* The adjoint of im2col: add every column entry back onto its input pixel
 * (C_in, H, W); padding entries are dropped. */
static void
col2im_add (float *img, const float *cols, const DdpmConvShape *s, int H_out, int W_out)
{
  const int k = s->k, st = s->stride, p = s->pad_begin;
  const gsize n_out = (gsize) H_out * W_out;

  for (int ci = 0; ci < s->C_in; ci++)
    for (int ky = 0; ky < k; ky++)
      for (int kx = 0; kx < k; kx++)
        {
          const float *row = cols + ((gsize) (ci * k + ky) * k + kx) * n_out;
          float *plane = img + (gsize) ci * s->H * s->W;
          int lo, hi;

          valid_range (W_out, st, kx - p, s->W, &lo, &hi);
          for (int oy = 0; oy < H_out; oy++)
            {
              int iy = oy * st + ky - p;

              if (iy < 0 || iy >= s->H)
                continue;
              const float *src = row + (gsize) oy * W_out;
              float *dst = plane + (gsize) iy * s->W;
              for (int ox = lo; ox < hi; ox++)
                dst[ox * st + kx - p] += src[ox];
            }
        }
}

void
ddpm_conv2d_forward (float               *out,
                     const float         *inp,
                     const float         *weight,
                     const float         *bias,
                     const DdpmConvShape *shape,
                     float               *scratch)
{
  g_return_if_fail (out != NULL && inp != NULL && weight != NULL);
  g_return_if_fail (shape != NULL && shape_is_valid (shape));
  g_return_if_fail (scratch != NULL || is_pointwise (shape));

  const DdpmConvShape *s = shape;
  const int H_out = ddpm_conv2d_out_size (s->H, s->k, s->stride, s->pad_begin, s->pad_end);
  const int W_out = ddpm_conv2d_out_size (s->W, s->k, s->stride, s->pad_begin, s->pad_end);
  const int n_out = H_out * W_out;
  const int K = s->C_in * s->k * s->k;
  const gboolean pointwise = is_pointwise (s);

  for (int b = 0; b < s->B; b++)
    {
      const float *x = inp + (gsize) b * s->C_in * s->H * s->W;
      float *y = out + (gsize) b * s->C_out * n_out;
      const float *cols = x;

      if (!pointwise)
        {
          im2col (scratch, x, s, H_out, W_out);
          cols = scratch;
        }
      cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasNoTrans,
                   s->C_out, n_out, K,
                   1.0f, weight, K, cols, n_out,
                   0.0f, y, n_out);
      if (bias != NULL)
        for (int co = 0; co < s->C_out; co++)
          {
            float *yc = y + (gsize) co * n_out;
            for (int i = 0; i < n_out; i++)
              yc[i] += bias[co];
          }
    }
}

void
ddpm_conv2d_backward (float               *dinp,
                      float               *dweight,
                      float               *dbias,
                      const float         *dout,
                      const float         *inp,
                      const float         *weight,
                      const DdpmConvShape *shape,
                      float               *scratch)
{
  g_return_if_fail (dout != NULL && inp != NULL && weight != NULL);
  g_return_if_fail (shape != NULL && shape_is_valid (shape));
  g_return_if_fail (scratch != NULL || is_pointwise (shape));

  const DdpmConvShape *s = shape;
  const int H_out = ddpm_conv2d_out_size (s->H, s->k, s->stride, s->pad_begin, s->pad_end);
  const int W_out = ddpm_conv2d_out_size (s->W, s->k, s->stride, s->pad_begin, s->pad_end);
  const int n_out = H_out * W_out;
  const int K = s->C_in * s->k * s->k;
  const gboolean pointwise = is_pointwise (s);

  for (int b = 0; b < s->B; b++)
    {
      const float *x = inp + (gsize) b * s->C_in * s->H * s->W;
      const float *dy = dout + (gsize) b * s->C_out * n_out;

      if (dbias != NULL)
        for (int co = 0; co < s->C_out; co++)
          {
            const float *dyc = dy + (gsize) co * n_out;
            double sum = 0;
            for (int i = 0; i < n_out; i++)
              sum += dyc[i];
            dbias[co] += (float) sum;
          }

      if (dweight != NULL)
        {
          const float *cols = x;
          if (!pointwise)
            {
              im2col (scratch, x, s, H_out, W_out);
              cols = scratch;
            }
          cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasTrans,
                       s->C_out, K, n_out,
                       1.0f, dy, n_out, cols, n_out,
                       1.0f, dweight, K);
        }

      if (dinp != NULL)
        {
          float *dx = dinp + (gsize) b * s->C_in * s->H * s->W;
          if (pointwise)
            cblas_sgemm (CblasRowMajor, CblasTrans, CblasNoTrans,
                         s->C_in, n_out, s->C_out,
                         1.0f, weight, K, dy, n_out,
                         1.0f, dx, n_out);
          else
            {
              /* the columns are no longer needed: reuse them for dcols */
              cblas_sgemm (CblasRowMajor, CblasTrans, CblasNoTrans,
                           K, n_out, s->C_out,
                           1.0f, weight, K, dy, n_out,
                           0.0f, scratch, n_out);
              col2im_add (dx, scratch, s, H_out, W_out);
            }
        }
    }
}

/* The definition, term by term, in double: the oracle of the tests.
 * out[b][co][oy][ox] = bias[co] + Σ_{ci,ky,kx} w[co][ci][ky][kx]
 *                      · inp[b][ci][oy·s + ky − p][ox·s + kx − p]. */
void
ddpm_conv2d_forward_reference (float               *out,
                               const float         *inp,
                               const float         *weight,
                               const float         *bias,
                               const DdpmConvShape *shape)
{
  g_return_if_fail (out != NULL && inp != NULL && weight != NULL);
  g_return_if_fail (shape != NULL && shape_is_valid (shape));

  const DdpmConvShape *s = shape;
  const int H_out = ddpm_conv2d_out_size (s->H, s->k, s->stride, s->pad_begin, s->pad_end);
  const int W_out = ddpm_conv2d_out_size (s->W, s->k, s->stride, s->pad_begin, s->pad_end);

  for (int b = 0; b < s->B; b++)
    for (int co = 0; co < s->C_out; co++)
      for (int oy = 0; oy < H_out; oy++)
        for (int ox = 0; ox < W_out; ox++)
          {
            double sum = bias != NULL ? bias[co] : 0.0;
            for (int ci = 0; ci < s->C_in; ci++)
              for (int ky = 0; ky < s->k; ky++)
                for (int kx = 0; kx < s->k; kx++)
                  {
                    int iy = oy * s->stride + ky - s->pad_begin;
                    int ix = ox * s->stride + kx - s->pad_begin;
                    if (iy < 0 || iy >= s->H || ix < 0 || ix >= s->W)
                      continue;
                    sum += (double) weight[((gsize) (co * s->C_in + ci) * s->k + ky) * s->k + kx]
                           * inp[((gsize) (b * s->C_in + ci) * s->H + iy) * s->W + ix];
                  }
            out[((gsize) (b * s->C_out + co) * H_out + oy) * W_out + ox] = (float) sum;
          }
}
