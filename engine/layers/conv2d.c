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
 * the product.  Columns live in the caller's scratch
 * (ddpm_conv2d_scratch_size), so neither direction allocates.
 *
 * Batching: at the low levels one image gives a product of only 64 or 256
 * columns, far too narrow for OpenBLAS; the columns of g images go side by
 * side (N = g·H_out·W_out ≥ 4096 when the batch allows) and the product's
 * (C_out, g·HW) result is scattered back to NCHW, with the bias, on the
 * layers' thread team, which also runs im2col and col2im (split over input
 * channels, so every part writes its own planes).
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

/* Images per sgemm.  One image's product has N = H_out·W_out columns,
 * which is tiny at the low levels (64 at 8×8), where OpenBLAS runs far
 * below its peak and barely threads; the columns of g images side by side
 * make one product of N = g·H_out·W_out.  g is chosen so that N reaches
 * GROUP_COLUMNS, bounded by the batch; it depends on the shape only, so
 * the scratch size does too. */
#define GROUP_COLUMNS 4096

static int
group_size (const DdpmConvShape *s, int n_out)
{
  int g = (GROUP_COLUMNS + n_out - 1) / n_out;
  return CLAMP (g, 1, s->B);
}

gsize
ddpm_conv2d_scratch_size (const DdpmConvShape *shape)
{
  g_return_val_if_fail (shape != NULL && shape_is_valid (shape), 0);

  if (is_pointwise (shape))
    return 0;
  const gsize n_out
    = (gsize) ddpm_conv2d_out_size (shape->H, shape->k, shape->stride, shape->pad_begin,
                                    shape->pad_end)
      * ddpm_conv2d_out_size (shape->W, shape->k, shape->stride, shape->pad_begin,
                              shape->pad_end);
  const int g = group_size (shape, (int) n_out);
  /* the columns of g images, and (g > 1) their outputs side by side */
  gsize size = (gsize) shape->C_in * shape->k * shape->k * g * n_out
               + (g > 1 ? (gsize) shape->C_out * g * n_out : 0);
  if (ddpm_conv3x3_direct_ok (shape) || ddpm_conv3x3_stride2_ok (shape))
    size = MAX (size, ddpm_conv3x3_scratch_size (shape, g));
  return size;
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

/* Unfold input channels [c0, c1) of one image (C_in, H, W) into rows of
 * cols (C_in·k·k, ld), from column `col` on (H_out·W_out columns). */
static void
im2col (float *cols, gsize ld, gsize col, const float *img, const DdpmConvShape *s,
        int H_out, int W_out, int c0, int c1)
{
  const int k = s->k, st = s->stride, p = s->pad_begin;

  for (int ci = c0; ci < c1; ci++)
    for (int ky = 0; ky < k; ky++)
      for (int kx = 0; kx < k; kx++)
        {
          float *row = cols + ((gsize) (ci * k + ky) * k + kx) * ld + col;
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

/* The adjoint of im2col: add every column entry of channels [c0, c1) back
 * onto its input pixel (C_in, H, W); padding entries are dropped. */
static void
col2im_add (float *img, const float *cols, gsize ld, gsize col, const DdpmConvShape *s,
            int H_out, int W_out, int c0, int c1)
{
  const int k = s->k, st = s->stride, p = s->pad_begin;

  for (int ci = c0; ci < c1; ci++)
    for (int ky = 0; ky < k; ky++)
      for (int kx = 0; kx < k; kx++)
        {
          const float *row = cols + ((gsize) (ci * k + ky) * k + kx) * ld + col;
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
              if (st == 1)
                {
                  float *d = dst + kx - p;
                  for (int ox = lo; ox < hi; ox++)
                    d[ox] += src[ox];
                }
              else
                for (int ox = lo; ox < hi; ox++)
                  dst[ox * st + kx - p] += src[ox];
            }
        }
}

/* One group of g images [b0, b0 + g) on the layers' thread team. */
typedef struct
{
  const DdpmConvShape *s;
  int          H_out, W_out, n_out, b0, g;
  float       *cols;        /* (K, g·n_out) */
  float       *ybuf;        /* (C_out, g·n_out) or the output (g = 1) */
  const float *inp;
  float       *out;         /* (B, C_out, n_out) */
  const float *dout;
  float       *dinp;
  const float *bias;
} ConvJob;

/* im2col of every image of the group, input channels [c0, c1). */
static void
im2col_range (gsize c0, gsize c1, gpointer data)
{
  const ConvJob *j = data;
  const DdpmConvShape *s = j->s;

  for (int b = 0; b < j->g; b++)
    im2col (j->cols, (gsize) j->g * j->n_out, (gsize) b * j->n_out,
            j->inp + (gsize) (j->b0 + b) * s->C_in * s->H * s->W, s, j->H_out, j->W_out,
            (int) c0, (int) c1);
}

static void
col2im_range (gsize c0, gsize c1, gpointer data)
{
  const ConvJob *j = data;
  const DdpmConvShape *s = j->s;

  for (int b = 0; b < j->g; b++)
    col2im_add (j->dinp + (gsize) (j->b0 + b) * s->C_in * s->H * s->W, j->cols,
                (gsize) j->g * j->n_out, (gsize) b * j->n_out, s, j->H_out, j->W_out,
                (int) c0, (int) c1);
}

/* Output channels [c0, c1): out[b0 + b][co] = ybuf[co][b·n_out …] + bias. */
static void
scatter_range (gsize c0, gsize c1, gpointer data)
{
  const ConvJob *j = data;
  const int n = j->n_out;

  for (int b = 0; b < j->g; b++)
    for (gsize co = c0; co < c1; co++)
      {
        const float *restrict src = j->ybuf + (co * j->g + b) * n;
        float *restrict dst = j->out + ((gsize) (j->b0 + b) * j->s->C_out + co) * n;
        const float bias = j->bias != NULL ? j->bias[co] : 0.0f;

        if (src == dst)
          for (int i = 0; i < n; i++)
            dst[i] += bias;
        else
          for (int i = 0; i < n; i++)
            dst[i] = src[i] + bias;
      }
}

/* Output channels [c0, c1): ybuf[co][b·n_out …] = dout[b0 + b][co]. */
static void
gather_range (gsize c0, gsize c1, gpointer data)
{
  const ConvJob *j = data;
  const int n = j->n_out;

  for (int b = 0; b < j->g; b++)
    for (gsize co = c0; co < c1; co++)
      memcpy (j->ybuf + (co * j->g + b) * n,
              j->dout + ((gsize) (j->b0 + b) * j->s->C_out + co) * n, sizeof (float) * n);
}

static gsize
grain_for (gsize per_item)
{
  return MAX ((gsize) 1, 16384 / MAX (per_item, (gsize) 1));
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

  if (ddpm_conv1x1_direct_ok (s))
    {
      ddpm_conv1x1_forward (out, inp, weight, bias, s);
      return;
    }
  if (is_pointwise (s))
    {
      /* the image is its own column matrix: one product per image */
      ConvJob j = { s, H_out, W_out, n_out, 0, 1, NULL, NULL, NULL, out, NULL, NULL, bias };
      for (int b = 0; b < s->B; b++)
        {
          j.b0 = b;
          j.ybuf = out + (gsize) b * s->C_out * n_out;
          ddpm_sgemm (FALSE, FALSE,
                      s->C_out, n_out, K,
                      1.0f, weight, K, inp + (gsize) b * s->C_in * s->H * s->W, n_out,
                      0.0f, j.ybuf, n_out);
          if (bias != NULL)
            ddpm_parallel_for (s->C_out, grain_for (n_out), scatter_range, &j);
        }
      return;
    }

  const int G = group_size (s, n_out);
  if (ddpm_conv3x3_direct_ok (s))
    {
      ddpm_conv3x3_forward (out, inp, weight, bias, s, G, scratch);
      return;
    }
  if (ddpm_conv3x3_stride2_ok (s))
    {
      ddpm_conv3x3_forward_stride2 (out, inp, weight, bias, s, G, scratch);
      return;
    }
  for (int b0 = 0; b0 < s->B; b0 += G)
    {
      const int g = MIN (G, s->B - b0);
      ConvJob j = { s, H_out, W_out, n_out, b0, g, scratch, NULL, inp, out, NULL, NULL, bias };

      /* with g = 1 the product lands in place */
      j.ybuf = G > 1 ? scratch + (gsize) K * G * n_out : out + (gsize) b0 * s->C_out * n_out;
      ddpm_parallel_for (s->C_in, grain_for ((gsize) g * s->k * s->k * n_out),
                         im2col_range, &j);
      ddpm_sgemm (FALSE, FALSE,
                  s->C_out, g * n_out, K,
                  1.0f, weight, K, scratch, g * n_out,
                  0.0f, j.ybuf, g * n_out);
      if (G > 1 || bias != NULL)
        ddpm_parallel_for (s->C_out, grain_for ((gsize) g * n_out), scatter_range, &j);
    }
}

typedef struct
{
  float       *dbias;
  const float *dout;
  int          B, C_out, n_out;
} BiasGradJob;

/* dbias[co] += Σ over the images and pixels of dout, for co in [c0, c1):
 * each image's plane summed in float in 16 lanes (at most a few hundred
 * terms each), the planes totalled in double in image order, so the bits
 * depend on neither the split nor the thread count. */
static void
bias_grad_range (gsize c0, gsize c1, gpointer data)
{
  const BiasGradJob *j = data;
  const int n_out = j->n_out;

  for (gsize co = c0; co < c1; co++)
    {
      double sum = 0;

      for (int b = 0; b < j->B; b++)
        sum += ddpm_sum_plane (j->dout + ((gsize) b * j->C_out + co) * n_out, n_out);
      j->dbias[co] += (float) sum;
    }
}

static void
bias_grad (float *dbias, const float *dout, int B, int C_out, int n_out)
{
  BiasGradJob j = { dbias, dout, B, C_out, n_out };

  ddpm_parallel_for (C_out, grain_for ((gsize) B * n_out), bias_grad_range, &j);
}

/* The 1×1 weight gradient, dW += Σ_b dy_b·x_bᵀ, split by blocks of
 * output channels: each part runs its rows over every image in order, one
 * single-threaded product per image (as one ddpm_sgemm per image the team
 * was woken 2·B times a conv for products of a few microseconds). */
#define POINTWISE_ROWS 8

typedef struct
{
  float               *dweight;
  const float         *dout, *inp;
  const DdpmConvShape *s;
  int                  n_out;
} PointwiseJob;

static void
pointwise_weight_grad_range (gsize begin, gsize end, gpointer data)
{
  const PointwiseJob *j = data;
  const DdpmConvShape *s = j->s;
  const int n = j->n_out;

  for (gsize blk = begin; blk < end; blk++)
    {
      const int r0 = (int) blk * POINTWISE_ROWS, rows = MIN (POINTWISE_ROWS, s->C_out - r0);

      for (int b = 0; b < s->B; b++)
        cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasTrans, rows, s->C_in, n, 1.0f,
                     j->dout + ((gsize) b * s->C_out + r0) * n, n,
                     j->inp + (gsize) b * s->C_in * n, n, 1.0f,
                     j->dweight + (gsize) r0 * s->C_in, s->C_in);
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

  if (dbias != NULL)
    bias_grad (dbias, dout, s->B, s->C_out, n_out);

  if (pointwise)
    {
      const gboolean direct_dinp = dinp != NULL && ddpm_conv1x1_input_grad_ok (s);

      if (direct_dinp)
        ddpm_conv1x1_input_grad (dinp, dout, weight, s);
      if (dweight != NULL)
        {
          PointwiseJob j = { dweight, dout, inp, s, n_out };
          ddpm_parallel_for ((s->C_out + POINTWISE_ROWS - 1) / POINTWISE_ROWS, 1,
                             pointwise_weight_grad_range, &j);
        }
      if (dinp != NULL && !direct_dinp)
        for (int b = 0; b < s->B; b++)
          ddpm_sgemm (TRUE, FALSE,
                      s->C_in, n_out, s->C_out,
                      1.0f, weight, K, dout + (gsize) b * s->C_out * n_out, n_out,
                      1.0f, dinp + (gsize) b * s->C_in * s->H * s->W, n_out);
      return;
    }

  const int G = group_size (s, n_out);
  const gboolean direct_dinp = dinp != NULL && ddpm_conv3x3_direct_ok (s);
  const gboolean direct_dw = dweight != NULL && ddpm_conv3x3_direct_ok (s);
  for (int b0 = 0;
       b0 < s->B && ((dweight != NULL && !direct_dw) || (dinp != NULL && !direct_dinp));
       b0 += G)
    {
      const int g = MIN (G, s->B - b0);
      ConvJob j = { s, H_out, W_out, n_out, b0, g, scratch, NULL, inp, NULL, dout, dinp, NULL };
      const float *dy = dout + (gsize) b0 * s->C_out * n_out;

      if (G > 1)
        {
          /* dout of the group side by side, as the forward's product */
          j.ybuf = scratch + (gsize) K * G * n_out;
          ddpm_parallel_for (s->C_out, grain_for ((gsize) g * n_out), gather_range, &j);
          dy = j.ybuf;
        }
      if (dweight != NULL && !direct_dw)
        {
          ddpm_parallel_for (s->C_in, grain_for ((gsize) g * s->k * s->k * n_out),
                             im2col_range, &j);
          ddpm_sgemm (FALSE, TRUE,
                      s->C_out, K, g * n_out,
                      1.0f, dy, g * n_out, scratch, g * n_out,
                      1.0f, dweight, K);
        }
      if (dinp != NULL && !direct_dinp)
        {
          /* the columns are no longer needed: reuse them for dcols */
          ddpm_sgemm (TRUE, FALSE,
                      K, g * n_out, s->C_out,
                      1.0f, weight, K, dy, g * n_out,
                      0.0f, scratch, g * n_out);
          ddpm_parallel_for (s->C_in, grain_for ((gsize) g * s->k * s->k * n_out),
                             col2im_range, &j);
        }
    }
  if (direct_dw)
    ddpm_conv3x3_weight_grad (dweight, dout, inp, s, G, scratch);
  if (direct_dinp)
    ddpm_conv3x3_input_grad (dinp, dout, weight, s, G, TRUE, scratch);
}

void
ddpm_conv2d_backward_padded (float               *dinp,
                             float               *dweight,
                             float               *dbias,
                             const float         *dout,
                             const float         *padded,
                             const float         *weight,
                             const DdpmConvShape *shape,
                             float               *scratch)
{
  g_return_if_fail (dout != NULL && padded != NULL && weight != NULL && scratch != NULL);
  g_return_if_fail (shape != NULL && shape_is_valid (shape));
  g_return_if_fail (ddpm_conv3x3_direct_ok (shape));

  const DdpmConvShape *s = shape;
  const int n_out = s->H * s->W, G = group_size (s, n_out);

  if (dbias != NULL)
    bias_grad (dbias, dout, s->B, s->C_out, n_out);
  if (dweight != NULL)
    ddpm_conv3x3_weight_grad_padded (dweight, dout, padded, s, G);
  if (dinp != NULL)
    ddpm_conv3x3_input_grad (dinp, dout, weight, s, G, FALSE, scratch);
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
