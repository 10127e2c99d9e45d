/* test-layers.c: every network layer against an oracle written again here
 * (plain loops, double accumulation), and every gradient against central
 * finite differences.
 *
 * HOW THE GRADIENT CHECK WORKS
 *
 * For a layer y = f(x, θ) and a fixed random dout, the scalar
 * L = Σ dout·y (summed in double) has ∂L/∂x = the layer's dinp for that
 * dout, and likewise for every parameter.  For each checked element we set
 * it to x ± h (h = 1e-2, in float), recompute L, and compare
 * (L(+h) − L(−h))/(x₊ − x₋) (the perturbation actually stored) with the
 * analytic gradient.  The error measure is
 *
 *   |fd − analytic| / max(|fd|, |analytic|, 0.05·rms(analytic))
 *
 * (the floor keeps elements whose gradient is nearly zero from dividing by
 * nothing).  It must stay below 1e-2: the O(h²) truncation of the smooth
 * layers and the float rounding of L/2h are both ~1e-4 here, while a wrong
 * index or a missing term gives errors of order one.  The observed maxima
 * are printed as TAP comments ("# ... max rel err").
 *
 * Backward functions accumulate: every check also prefills the gradient
 * buffers with random values, calls backward twice, and expects
 * g0 + 2·gradient.
 */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "ddpm.h"
#include "layers/layers.h"

/* PyTorch reference values, made by tests/make-layer-fixtures.py */
#include "fixtures/layers-torch.h"

#define FD_H       1e-2
#define FD_TOL     1e-2
#define MAX_CHECKS 400   /* elements per tensor checked by finite differences */

/* --------------------------------------------------------------- helpers */

static guint64 data_stream = 1000;

/* Deterministic test data in [lo, hi). */
static float *
random_tensor (gsize n, double lo, double hi)
{
  float *x = g_new (float, n);
  guint64 stream = data_stream++;

  for (gsize i = 0; i < n; i++)
    x[i] = (float) (lo + (hi - lo) * ddpm_rng_uniform (42, stream, i));
  return x;
}

static double
dot (const float *a, const float *b, gsize n)
{
  double s = 0;

  for (gsize i = 0; i < n; i++)
    s += (double) a[i] * b[i];
  return s;
}

static double
dot_d (const double *a, const double *b, gsize n)
{
  double s = 0;

  for (gsize i = 0; i < n; i++)
    s += a[i] * b[i];
  return s;
}

static void
assert_close (const char *what, const float *got, const double *want, gsize n, double tol)
{
  double max_err = 0;

  for (gsize i = 0; i < n; i++)
    {
      double e = fabs (got[i] - want[i]);
      if (!(e <= tol))
        g_error ("%s: element %" G_GSIZE_FORMAT ": got %.9g, want %.9g (tolerance %g)",
                 what, i, got[i], want[i], tol);
      max_err = MAX (max_err, e);
    }
  g_test_message ("%s: max abs err %.3g", what, max_err);
}

static double *
to_double (const float *x, gsize n)
{
  double *d = g_new (double, n);

  for (gsize i = 0; i < n; i++)
    d[i] = x[i];
  return d;
}

typedef double (*LossFunc) (gpointer ctx);

/* The largest relative error of any checked gradient, over the whole run,
 * reported at the end. */
static double worst_fd_error = 0;

static void
check_gradient (const char *what, float *x, gsize n, const float *analytic,
                LossFunc loss, gpointer ctx)
{
  gsize step = n > MAX_CHECKS ? (n + MAX_CHECKS - 1) / MAX_CHECKS : 1;
  double rms = sqrt (dot (analytic, analytic, n) / n);
  double max_err = 0;
  gsize checked = 0;

  g_assert_cmpfloat (rms, >, 0);
  /* an odd offset so that a subset does not always skip the same column */
  for (gsize i = step > 1 ? 1 : 0; i < n; i += step)
    {
      const float saved = x[i];
      const float xp = (float) (saved + FD_H), xm = (float) (saved - FD_H);

      x[i] = xp;
      double lp = loss (ctx);
      x[i] = xm;
      double lm = loss (ctx);
      x[i] = saved;

      double fd = (lp - lm) / ((double) xp - (double) xm);
      double denom = MAX (MAX (fabs (fd), fabs (analytic[i])), 0.05 * rms);
      double err = fabs (fd - analytic[i]) / denom;
      if (!(err < FD_TOL))
        g_error ("%s: element %" G_GSIZE_FORMAT ": finite difference %.7g, analytic %.7g "
                 "(rel err %.3g)", what, i, fd, analytic[i], err);
      max_err = MAX (max_err, err);
      checked++;
    }
  g_test_message ("%s: max rel err %.3g over %" G_GSIZE_FORMAT " of %" G_GSIZE_FORMAT
                  " elements", what, max_err, checked, n);
  worst_fd_error = MAX (worst_fd_error, max_err);
}

/* The sharper second check of the nonlinear layers: central differences of
 * the double-precision oracle (h = 1e-5, so truncation ~1e-10 and rounding
 * ~1e-11), against the layer's float gradient.  What remains is the float
 * rounding of the analytic gradient, ~1e-6 relative; the tolerance is 1e-4,
 * so even a small missing term of the backward pass shows. */
#define FD_H_DOUBLE   1e-5
#define FD_TOL_DOUBLE 1e-4

static double worst_fd_double_error = 0;

static void
check_gradient_double (const char *what, double *x, gsize n, const float *analytic,
                       LossFunc loss, gpointer ctx)
{
  double rms = sqrt (dot (analytic, analytic, n) / n);
  double max_err = 0;

  g_assert_cmpfloat (rms, >, 0);
  for (gsize i = 0; i < n; i++)
    {
      const double saved = x[i];

      x[i] = saved + FD_H_DOUBLE;
      double lp = loss (ctx);
      x[i] = saved - FD_H_DOUBLE;
      double lm = loss (ctx);
      x[i] = saved;

      double fd = (lp - lm) / (2 * FD_H_DOUBLE);
      double denom = MAX (MAX (fabs (fd), fabs (analytic[i])), 0.05 * rms);
      double err = fabs (fd - analytic[i]) / denom;
      if (!(err < FD_TOL_DOUBLE))
        g_error ("%s: element %" G_GSIZE_FORMAT ": double finite difference %.9g, "
                 "analytic %.9g (rel err %.3g)", what, i, fd, analytic[i], err);
      max_err = MAX (max_err, err);
    }
  g_test_message ("%s: max rel err %.3g against double differences of the oracle "
                  "(%" G_GSIZE_FORMAT " elements)", what, max_err, n);
  worst_fd_double_error = MAX (worst_fd_double_error, max_err);
}

/* A gradient buffer prefilled with random values (copied to *g0). */
static float *
prefilled (gsize n, float **g0)
{
  *g0 = random_tensor (n, -1, 1);
  return g_memdup2 (*g0, n * sizeof (float));
}

/* After two backward calls into g (prefilled with g0): g = g0 + 2·grad. */
static void
assert_accumulated_twice (const char *what, const float *g, const float *g0,
                          const float *grad, gsize n)
{
  for (gsize i = 0; i < n; i++)
    {
      double want = (double) g0[i] + 2.0 * grad[i];
      double tol = 1e-5 * (1 + fabs (g0[i]) + 2 * fabs (grad[i]));
      if (!(fabs (g[i] - want) <= tol))
        g_error ("%s: backward does not accumulate: element %" G_GSIZE_FORMAT
                 ": %.9g, want g0 + 2·grad = %.9g", what, i, g[i], want);
    }
}

/* ---------------------------------------------------------------- conv2d */

/* The oracle: pad the input explicitly (zeros), then slide the kernel. */
static void
oracle_conv2d (double *out, const float *inp, const float *w, const float *bias,
               const DdpmConvShape *s)
{
  const int Hp = s->H + s->pad_begin + s->pad_end, Wp = s->W + s->pad_begin + s->pad_end;
  const int Ho = (Hp - s->k) / s->stride + 1, Wo = (Wp - s->k) / s->stride + 1;
  double *pad = g_new0 (double, (gsize) Hp * Wp);

  for (int b = 0; b < s->B; b++)
    for (int co = 0; co < s->C_out; co++)
      for (int y = 0; y < Ho; y++)
        for (int x = 0; x < Wo; x++)
          out[((b * s->C_out + co) * Ho + y) * Wo + x] = bias ? bias[co] : 0;
  for (int b = 0; b < s->B; b++)
    for (int ci = 0; ci < s->C_in; ci++)
      {
        for (int y = 0; y < s->H; y++)
          for (int x = 0; x < s->W; x++)
            pad[(y + s->pad_begin) * Wp + x + s->pad_begin] =
              inp[((b * s->C_in + ci) * s->H + y) * s->W + x];
        for (int co = 0; co < s->C_out; co++)
          for (int y = 0; y < Ho; y++)
            for (int x = 0; x < Wo; x++)
              {
                double acc = 0;
                for (int ky = 0; ky < s->k; ky++)
                  for (int kx = 0; kx < s->k; kx++)
                    acc += w[((co * s->C_in + ci) * s->k + ky) * s->k + kx]
                           * pad[(y * s->stride + ky) * Wp + x * s->stride + kx];
                out[((b * s->C_out + co) * Ho + y) * Wo + x] += acc;
              }
      }
  g_free (pad);
}

typedef struct
{
  DdpmConvShape s;
  int Ho, Wo;
  gsize n_in, n_w, n_out;
  float *inp, *w, *bias, *out, *dout, *scratch;
} ConvCase;

static void
conv_case_init (ConvCase *c, int B, int C_in, int H, int W, int C_out, int k,
                int stride, int pad_begin, int pad_end)
{
  DdpmConvShape s = { B, C_in, H, W, C_out, k, stride, pad_begin, pad_end };

  c->s = s;
  c->Ho = ddpm_conv2d_out_size (H, k, stride, pad_begin, pad_end);
  c->Wo = ddpm_conv2d_out_size (W, k, stride, pad_begin, pad_end);
  g_assert_cmpint (c->Ho, ==, (H + pad_begin + pad_end - k) / stride + 1);
  c->n_in = (gsize) B * C_in * H * W;
  c->n_w = (gsize) C_out * C_in * k * k;
  c->n_out = (gsize) B * C_out * c->Ho * c->Wo;
  c->inp = random_tensor (c->n_in, -1, 1);
  c->w = random_tensor (c->n_w, -0.5, 0.5);
  c->bias = random_tensor (C_out, -1, 1);
  c->out = g_new (float, c->n_out);
  c->dout = random_tensor (c->n_out, -1, 1);
  /* +1 so a zero size still gives a valid (unused) pointer */
  c->scratch = g_new (float, ddpm_conv2d_scratch_size (&c->s) + 1);
}

static void
conv_case_clear (ConvCase *c)
{
  g_free (c->inp);
  g_free (c->w);
  g_free (c->bias);
  g_free (c->out);
  g_free (c->dout);
  g_free (c->scratch);
}

static double
conv_loss (gpointer data)
{
  ConvCase *c = data;

  ddpm_conv2d_forward (c->out, c->inp, c->w, c->bias, &c->s, c->scratch);
  return dot (c->out, c->dout, c->n_out);
}

/* Shapes of the UNet and beyond: the "same" 3×3, the DDPM down-sampling
 * conv (stride 2, pad (0, 1)) on even and odd sizes, 1×1 (the skip and
 * attention projections), batch > 1, C_in ≠ C_out, non-square images. */
static const int conv_shapes[][9] = {
  /* B, C_in, H, W, C_out, k, stride, pad_begin, pad_end */
  { 2, 3, 5, 6, 4, 3, 1, 1, 1 },
  { 1, 4, 4, 4, 4, 3, 1, 1, 1 },
  { 2, 3, 8, 8, 2, 3, 2, 0, 1 },
  { 1, 2, 7, 5, 3, 3, 2, 0, 1 },
  { 2, 2, 7, 7, 3, 3, 2, 0, 1 },
  { 2, 4, 4, 5, 3, 1, 1, 0, 0 },
  { 1, 3, 6, 6, 2, 3, 1, 0, 0 },  /* "valid" 3×3 */
  { 2, 2, 5, 6, 3, 1, 2, 0, 0 },  /* 1×1 stride 2: the general path */
  { 3, 16, 12, 10, 8, 3, 1, 1, 1 }, /* large enough for sgemm blocking */
  { 2, 16, 16, 16, 32, 3, 2, 0, 1 },
  { 2, 32, 9, 7, 16, 1, 1, 0, 0 },
  { 3, 4, 48, 48, 8, 3, 1, 1, 1 }, /* images batched into one sgemm: groups of 2 + 1 */
  /* the AVX-512 same-3×3 path (conv3x3.c): rows of 16·k pixels, 8·k channels */
  { 2, 8, 5, 16, 16, 3, 1, 1, 1 },  /* 5 vectors per image: tiles of 3 + 2 */
  { 1, 24, 4, 48, 8, 3, 1, 1, 1 },  /* 3 vectors per row */
  { 3, 16, 7, 32, 24, 3, 1, 1, 1 }, /* 14 vectors: 3 + 3 + 3 + 3 + 2 */
  { 2, 8, 3, 16, 12, 3, 1, 1, 1 },  /* 12 outputs: a last block of 4 */
  { 2, 12, 3, 16, 8, 3, 1, 1, 1 },  /* 12 inputs: dinp's last block of 4 */
  { 2, 32, 16, 16, 3, 3, 1, 1, 1 }, /* the head: 3 outputs, one partial block */
  { 40, 8, 16, 16, 8, 3, 1, 1, 1 }, /* groups of 16 images + 8 */
  { 3, 8, 8, 8, 16, 3, 1, 1, 1 },   /* rows of 8: vectors of two rows */
  { 2, 16, 6, 8, 8, 3, 1, 1, 1 },   /* rows of 8, 3 vectors */
  { 2, 6, 8, 8, 6, 3, 1, 1, 1 },    /* rows of 8, 6 channels: a partial block in every pass */
  /* the AVX-512 stride-2 forward (conv3x3.c phases): even sizes, 8·k outputs */
  { 2, 8, 32, 32, 8, 3, 2, 0, 1 },  /* output rows of 16 */
  { 3, 5, 16, 16, 16, 3, 2, 0, 1 }, /* output rows of 8: vectors of two rows */
  { 1, 3, 4, 96, 24, 3, 2, 0, 1 },  /* rows of 48: 3 vectors, 2 output rows */
  { 2, 4, 10, 32, 8, 3, 2, 0, 1 },  /* 5 output rows of 16 */
  { 2, 4, 16, 16, 12, 3, 2, 0, 1 }, /* 12 outputs: a last block of 4 */
  /* guided-diffusion's Downsample: stride 2, one pixel of padding on both sides */
  { 2, 8, 32, 32, 8, 3, 2, 1, 1 },  /* output rows of 16 */
  { 3, 5, 16, 16, 13, 3, 2, 1, 1 }, /* rows of 8, a last block of 5 */
  { 1, 3, 4, 96, 24, 3, 2, 1, 1 },  /* rows of 48 */
  /* the AVX-512 1×1 input gradient (conv1x1.c): 8·k inputs, 16·k pixels */
  { 3, 24, 4, 8, 16, 1, 1, 0, 0 },  /* 2 vectors per image */
  { 2, 16, 8, 10, 5, 1, 1, 0, 0 },  /* 5 vectors: tiles of 3 + 2; 5 outputs */
  { 2, 6, 9, 32, 8, 3, 2, 0, 1 },   /* odd H: falls back to im2col */
  /* the AVX-512 1×1 forward (conv1x1.c): H·W a multiple of 16, 8·k outputs */
  { 3, 12, 4, 4, 8, 1, 1, 0, 0 },   /* one vector per image */
  { 2, 5, 8, 10, 16, 1, 1, 0, 0 },  /* 5 vectors: 3 + 2 */
  { 2, 7, 6, 8, 24, 1, 1, 0, 0 },   /* 3 vectors */
};

static void
test_conv2d_forward (void)
{
  for (gsize j = 0; j < G_N_ELEMENTS (conv_shapes); j++)
    {
      const int *p = conv_shapes[j];
      ConvCase c;
      char *name = g_strdup_printf ("conv2d %dx%d s%d pad (%d,%d) B%d %d->%d %dx%d",
                                    p[5], p[5], p[6], p[7], p[8], p[0], p[1], p[4], p[2], p[3]);

      conv_case_init (&c, p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8]);
      double *want = g_new (double, c.n_out);
      float *ref = g_new (float, c.n_out);

      for (int with_bias = 0; with_bias < 2; with_bias++)
        {
          const float *bias = with_bias ? c.bias : NULL;
          oracle_conv2d (want, c.inp, c.w, bias, &c.s);
          /* poison the output: forward must overwrite every element */
          for (gsize i = 0; i < c.n_out; i++)
            c.out[i] = NAN;
          ddpm_conv2d_forward (c.out, c.inp, c.w, bias, &c.s, c.scratch);
          assert_close (name, c.out, want, c.n_out, 1e-5 * (1 + p[1] * p[5] * p[5] / 8.0));
          ddpm_conv2d_forward_reference (ref, c.inp, c.w, bias, &c.s);
          assert_close ("conv2d reference", ref, want, c.n_out, 1e-6);
        }
      g_free (want);
      g_free (ref);
      g_free (name);
      conv_case_clear (&c);
    }
  /* output sizes: TF "SAME" stride 2 halves even and odd sizes, rounding up */
  g_assert_cmpint (ddpm_conv2d_out_size (32, 3, 2, 0, 1), ==, 16);
  g_assert_cmpint (ddpm_conv2d_out_size (7, 3, 2, 0, 1), ==, 3);
  g_assert_cmpint (ddpm_conv2d_out_size (7, 3, 1, 1, 1), ==, 7);
  g_assert_cmpint (ddpm_conv2d_out_size (1, 3, 1, 0, 0), ==, 0);
}

static void
test_conv2d_gradient (void)
{
  /* the small shapes: every element of every tensor is checked */
  for (gsize j = 0; j < 8; j++)
    {
      const int *p = conv_shapes[j];
      ConvCase c;
      char *name = g_strdup_printf ("conv2d %dx%d s%d pad (%d,%d) B%d %d->%d %dx%d",
                                    p[5], p[5], p[6], p[7], p[8], p[0], p[1], p[4], p[2], p[3]);
      char *what;

      conv_case_init (&c, p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8]);
      float *dinp = g_new0 (float, c.n_in), *dw = g_new0 (float, c.n_w);
      float *db = g_new0 (float, c.s.C_out);

      ddpm_conv2d_backward (dinp, dw, db, c.dout, c.inp, c.w, &c.s, c.scratch);
      check_gradient (what = g_strconcat (name, " dinp", NULL), c.inp, c.n_in, dinp, conv_loss, &c);
      g_free (what);
      check_gradient (what = g_strconcat (name, " dweight", NULL), c.w, c.n_w, dw, conv_loss, &c);
      g_free (what);
      check_gradient (what = g_strconcat (name, " dbias", NULL), c.bias, c.s.C_out, db, conv_loss, &c);
      g_free (what);

      /* accumulation, into prefilled buffers */
      float *gi0, *gw0, *gb0;
      float *gi = prefilled (c.n_in, &gi0), *gw = prefilled (c.n_w, &gw0);
      float *gb = prefilled (c.s.C_out, &gb0);
      for (int rep = 0; rep < 2; rep++)
        ddpm_conv2d_backward (gi, gw, gb, c.dout, c.inp, c.w, &c.s, c.scratch);
      assert_accumulated_twice (name, gi, gi0, dinp, c.n_in);
      assert_accumulated_twice (name, gw, gw0, dw, c.n_w);
      assert_accumulated_twice (name, gb, gb0, db, c.s.C_out);

      /* NULL gradients are skipped and do not change the others */
      float *dw2 = g_new0 (float, c.n_w);
      ddpm_conv2d_backward (NULL, dw2, NULL, c.dout, c.inp, c.w, &c.s, c.scratch);
      g_assert_cmpmem (dw2, c.n_w * sizeof (float), dw, c.n_w * sizeof (float));
      float *dinp2 = g_new0 (float, c.n_in);
      ddpm_conv2d_backward (dinp2, NULL, NULL, c.dout, c.inp, c.w, &c.s, c.scratch);
      g_assert_cmpmem (dinp2, c.n_in * sizeof (float), dinp, c.n_in * sizeof (float));

      g_free (dinp); g_free (dw); g_free (db);
      g_free (gi); g_free (gw); g_free (gb);
      g_free (gi0); g_free (gw0); g_free (gb0);
      g_free (dw2); g_free (dinp2);
      g_free (name);
      conv_case_clear (&c);
    }
}

/* On the larger shapes the gradient is checked against its closed form,
 * the adjoint of the oracle written as loops in double:
 *   dinp[b][ci][iy][ix] = Σ dout[b][co][y][x]·w[co][ci][ky][kx] where iy = y·s + ky − p,
 *   dw[co][ci][ky][kx]  = Σ dout[b][co][y][x]·inp[b][ci][y·s + ky − p][x·s + kx − p]. */
static void
test_conv2d_backward_oracle (void)
{
  for (gsize j = 8; j < G_N_ELEMENTS (conv_shapes); j++)
    {
      const int *p = conv_shapes[j];
      ConvCase c;
      const DdpmConvShape *s = &c.s;

      conv_case_init (&c, p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8]);
      double *want_i = g_new0 (double, c.n_in), *want_w = g_new0 (double, c.n_w);
      double *want_b = g_new0 (double, s->C_out);
      for (int b = 0; b < s->B; b++)
        for (int co = 0; co < s->C_out; co++)
          for (int y = 0; y < c.Ho; y++)
            for (int x = 0; x < c.Wo; x++)
              {
                double g = c.dout[((b * s->C_out + co) * c.Ho + y) * c.Wo + x];
                want_b[co] += g;
                for (int ci = 0; ci < s->C_in; ci++)
                  for (int ky = 0; ky < s->k; ky++)
                    for (int kx = 0; kx < s->k; kx++)
                      {
                        int iy = y * s->stride + ky - s->pad_begin;
                        int ix = x * s->stride + kx - s->pad_begin;
                        if (iy < 0 || iy >= s->H || ix < 0 || ix >= s->W)
                          continue;
                        gsize wi = ((gsize) (co * s->C_in + ci) * s->k + ky) * s->k + kx;
                        gsize xi = ((gsize) (b * s->C_in + ci) * s->H + iy) * s->W + ix;
                        want_i[xi] += g * c.w[wi];
                        want_w[wi] += g * c.inp[xi];
                      }
              }
      float *dinp = g_new0 (float, c.n_in), *dw = g_new0 (float, c.n_w);
      float *db = g_new0 (float, s->C_out);
      ddpm_conv2d_backward (dinp, dw, db, c.dout, c.inp, c.w, s, c.scratch);
      assert_close ("conv2d dinp (oracle)", dinp, want_i, c.n_in, 1e-4);
      assert_close ("conv2d dweight (oracle)", dw, want_w, c.n_w, 2e-4);
      assert_close ("conv2d dbias (oracle)", db, want_b, s->C_out, 1e-4);
      g_free (want_i); g_free (want_w); g_free (want_b);
      g_free (dinp); g_free (dw); g_free (db);
      conv_case_clear (&c);
    }
}

/* ------------------------------------------------------------- groupnorm */

static void
oracle_groupnorm (double *out, double *mean, double *rstd, const double *x,
                  const double *gamma, const double *beta, int B, int C, int HW, int G,
                  double eps)
{
  int Cg = C / G;

  for (int b = 0; b < B; b++)
    for (int g = 0; g < G; g++)
      {
        double s = 0, ss = 0;
        for (int c = g * Cg; c < (g + 1) * Cg; c++)
          for (int i = 0; i < HW; i++)
            s += x[(b * C + c) * HW + i];
        double m = s / (Cg * HW);
        for (int c = g * Cg; c < (g + 1) * Cg; c++)
          for (int i = 0; i < HW; i++)
            ss += pow (x[(b * C + c) * HW + i] - m, 2);
        double r = 1 / sqrt (ss / (Cg * HW) + eps);
        mean[b * G + g] = m;
        rstd[b * G + g] = r;
        for (int c = g * Cg; c < (g + 1) * Cg; c++)
          for (int i = 0; i < HW; i++)
            out[(b * C + c) * HW + i] = (x[(b * C + c) * HW + i] - m) * r * gamma[c] + beta[c];
      }
}

typedef struct
{
  int B, C, HW, G;
  float eps;
  gsize n;
  float *x, *gamma, *beta, *out, *mean, *rstd, *dout;
} NormCase;

static void
norm_case_init (NormCase *c, int B, int C, int HW, int G, double offset, double spread)
{
  c->B = B; c->C = C; c->HW = HW; c->G = G; c->eps = 1e-6f;
  c->n = (gsize) B * C * HW;
  c->x = random_tensor (c->n, offset - spread, offset + spread);
  c->gamma = random_tensor (C, 0.5, 1.5);
  c->beta = random_tensor (C, -0.5, 0.5);
  c->out = g_new (float, c->n);
  c->mean = g_new (float, B * G);
  c->rstd = g_new (float, B * G);
  c->dout = random_tensor (c->n, -1, 1);
}

static void
norm_case_clear (NormCase *c)
{
  g_free (c->x); g_free (c->gamma); g_free (c->beta); g_free (c->out);
  g_free (c->mean); g_free (c->rstd); g_free (c->dout);
}

static double
norm_loss (gpointer data)
{
  NormCase *c = data;

  ddpm_groupnorm_forward (c->out, c->mean, c->rstd, c->x, c->gamma, c->beta,
                          c->B, c->C, c->HW, c->G, c->eps);
  return dot (c->out, c->dout, c->n);
}

/* The oracle in double, as a loss for check_gradient_double. */
typedef struct
{
  int B, C, HW, G;
  double eps;
  gsize n;
  double *x, *gamma, *beta, *out, *mean, *rstd, *dout;
} NormOracle;

static double
norm_oracle_loss (gpointer data)
{
  NormOracle *o = data;

  oracle_groupnorm (o->out, o->mean, o->rstd, o->x, o->gamma, o->beta,
                    o->B, o->C, o->HW, o->G, o->eps);
  return dot_d (o->out, o->dout, o->n);
}

static void
check_groupnorm_forward (int B, int C, int HW, int G, double offset, double spread, double tol)
{
  NormCase c;

  norm_case_init (&c, B, C, HW, G, offset, spread);
  double *want = g_new (double, c.n), *wm = g_new (double, B * G), *wr = g_new (double, B * G);
  double *xd = to_double (c.x, c.n), *gd = to_double (c.gamma, C), *bd = to_double (c.beta, C);
  oracle_groupnorm (want, wm, wr, xd, gd, bd, B, C, HW, G, c.eps);
  g_free (xd); g_free (gd); g_free (bd);
  ddpm_groupnorm_forward (c.out, c.mean, c.rstd, c.x, c.gamma, c.beta, B, C, HW, G, c.eps);
  assert_close ("groupnorm out", c.out, want, c.n, tol);
  for (int i = 0; i < B * G; i++)
    {
      g_assert_cmpfloat (fabs (c.mean[i] - wm[i]), <=, 1e-6 * (1 + fabs (wm[i])));
      g_assert_cmpfloat (fabs (c.rstd[i] - wr[i]), <=, 1e-6 * wr[i]);
    }
  g_free (want); g_free (wm); g_free (wr);
  norm_case_clear (&c);
}

static void
test_groupnorm_forward (void)
{
  check_groupnorm_forward (2, 64, 25, 32, 0.3, 1.0, 1e-5);
  check_groupnorm_forward (3, 32, 16, 32, -0.2, 2.0, 1e-5);
  check_groupnorm_forward (1, 96, 64, 32, 0.0, 1.0, 1e-5);
  /* precision: a 64×64 image with mean 1000 and spread 1.  One-pass float
   * statistics (Σx² − (Σx)²/n) lose every digit of the variance here. */
  check_groupnorm_forward (1, 64, 64 * 64, 32, 1000.0, 1.0, 1e-5);
}

/* padded holds `planes` (H + 2) × (W + 2) planes: zero borders around the
 * bits of plain's H × W planes. */
static void
assert_zero_bordered (const float *padded, const float *plain, int planes, int H, int W)
{
  for (int p = 0; p < planes; p++)
    for (int y = 0; y < H + 2; y++)
      for (int x = 0; x < W + 2; x++)
        {
          const float v = padded[((gsize) p * (H + 2) + y) * (W + 2) + x];
          if (y == 0 || y == H + 1 || x == 0 || x == W + 1)
            g_assert_cmpfloat (v, ==, 0.0f);
          else
            g_assert_cmpfloat (v, ==, plain[((gsize) p * H + y - 1) * W + x - 1]);
        }
}

/* Inference's fused path (unet.c norm_silu_conv): GroupNorm + SiLU written
 * straight into zero-bordered planes, read by the 3×3 kernel without a
 * padded copy, gives the bits of the two-step path, for rows of 16 and
 * of 8 pixels. */
static void
test_groupnorm_silu_padded_conv (void)
{
  const int shapes[][5] = { /* B, C_in, H, W, C_out */
                            { 2, 16, 6, 32, 8 }, { 3, 8, 8, 8, 16 } };

  if (!ddpm_layers_have_avx512 ())
    {
      g_test_skip ("no AVX-512: the padded path is not taken");
      return;
    }
  for (gsize k = 0; k < G_N_ELEMENTS (shapes); k++)
    {
      const int B = shapes[k][0], C = shapes[k][1], H = shapes[k][2], W = shapes[k][3];
      const int G = 4;
      NormCase n;
      ConvCase c;

      norm_case_init (&n, B, C, H * W, G, 0.2, 1.5);
      conv_case_init (&c, B, C, H, W, shapes[k][4], 3, 1, 1, 1);
      g_assert_true (ddpm_conv3x3_direct_ok (&c.s));

      /* two steps: normalise, then the convolution with its own padding */
      ddpm_groupnorm_silu_forward (n.out, n.mean, n.rstd, n.x, n.gamma, n.beta, B, C, H * W,
                                   G, n.eps);
      ddpm_conv2d_forward (c.out, n.out, c.w, c.bias, &c.s, c.scratch);

      /* fused: poisoned planes, so a border left unwritten would show */
      const gsize n_pad = (gsize) B * C * (H + 2) * (W + 2);
      float *padded = g_new (float, n_pad), *out = g_new (float, c.n_out);
      for (gsize i = 0; i < n_pad; i++)
        padded[i] = NAN;
      ddpm_groupnorm_silu_forward_padded (padded, NULL, n.mean, n.rstd, n.x, n.gamma, n.beta,
                                          B, C, H, W, G, n.eps);
      /* training's call also keeps GroupNorm's own output, the bits of
       * ddpm_groupnorm_forward, and writes the same SiLU planes */
      float *norm = g_new (float, (gsize) B * C * H * W), *want = g_new (float, n.n);
      float *padded2 = g_new (float, n_pad);
      ddpm_groupnorm_forward (want, n.mean, n.rstd, n.x, n.gamma, n.beta, B, C, H * W, G,
                              n.eps);
      ddpm_groupnorm_silu_forward_padded (padded2, norm, n.mean, n.rstd, n.x, n.gamma, n.beta,
                                          B, C, H, W, G, n.eps);
      g_assert_cmpmem (norm, n.n * sizeof (float), want, n.n * sizeof (float));
      g_assert_cmpmem (padded2, n_pad * sizeof (float), padded, n_pad * sizeof (float));
      g_free (norm); g_free (want); g_free (padded2);
      assert_zero_bordered (padded, n.out, B * C, H, W);
      ddpm_conv3x3_forward_padded (out, padded, c.w, c.bias, &c.s, c.scratch);
      g_assert_cmpmem (out, c.n_out * sizeof (float), c.out, c.n_out * sizeof (float));

      g_free (padded);
      g_free (out);
      conv_case_clear (&c);
      norm_case_clear (&n);
    }
}

/* Training's path (unet.c silu_conv_backward): SiLU written into
 * zero-bordered planes, whose weight gradient reads them in place, gives
 * the bits of SiLU + ddpm_conv2d_backward (which pads a copy), for rows
 * of 16 and of 8 pixels; it adds to the weight and bias gradients it is
 * given and writes the input gradient over what the buffer held. */
static void
test_silu_padded_conv_backward (void)
{
  const int shapes[][5] = { /* B, C_in, H, W, C_out */
                            { 5, 16, 6, 32, 8 }, { 3, 8, 8, 8, 19 }, { 70, 3, 4, 16, 8 } };

  if (!ddpm_layers_have_avx512 ())
    {
      g_test_skip ("no AVX-512: the padded path is not taken");
      return;
    }
  for (gsize k = 0; k < G_N_ELEMENTS (shapes); k++)
    {
      const int B = shapes[k][0], C = shapes[k][1], H = shapes[k][2], W = shapes[k][3];
      const gsize n = (gsize) B * C * H * W, n_pad = (gsize) B * C * (H + 2) * (W + 2);
      ConvCase c;

      conv_case_init (&c, B, C, H, W, shapes[k][4], 3, 1, 1, 1);
      g_assert_true (ddpm_conv3x3_direct_ok (&c.s));
      float *norm = random_tensor (n, -4, 4), *a = g_new (float, n);
      float *padded = g_new (float, n_pad);
      for (gsize i = 0; i < n_pad; i++)
        padded[i] = NAN;
      ddpm_silu_forward (a, norm, n);
      ddpm_silu_forward_padded (padded, norm, (gsize) B * C, H, W);
      assert_zero_bordered (padded, a, B * C, H, W);

      /* both start from the same non-zero weight and bias gradients, which
       * must be added to; the input gradient starts from zero for the
       * accumulating path and from garbage for the padded one */
      float *di0 = g_new0 (float, c.n_in), *di = random_tensor (c.n_in, -1, 1);
      float *dw0, *dw = prefilled (c.n_w, &dw0), *db0, *db = prefilled (c.s.C_out, &db0);
      ddpm_conv2d_backward (di0, dw0, db0, c.dout, a, c.w, &c.s, c.scratch);
      ddpm_conv2d_backward_padded (di, dw, db, c.dout, padded, c.w, &c.s, c.scratch);
      g_assert_cmpmem (di, c.n_in * sizeof (float), di0, c.n_in * sizeof (float));
      g_assert_cmpmem (dw, c.n_w * sizeof (float), dw0, c.n_w * sizeof (float));
      g_assert_cmpmem (db, c.s.C_out * sizeof (float), db0, c.s.C_out * sizeof (float));

      g_free (di); g_free (di0); g_free (dw); g_free (dw0); g_free (db); g_free (db0);
      g_free (norm); g_free (a); g_free (padded);
      conv_case_clear (&c);
    }
}

static void
test_groupnorm_gradient (void)
{
  const int shapes[][4] = { { 2, 64, 6, 32 }, { 2, 32, 9, 32 }, { 1, 64, 4, 8 } };

  for (gsize j = 0; j < G_N_ELEMENTS (shapes); j++)
    {
      NormCase c;
      int B = shapes[j][0], C = shapes[j][1], HW = shapes[j][2], G = shapes[j][3];
      char *name = g_strdup_printf ("groupnorm B%d C%d HW%d G%d", B, C, HW, G);

      norm_case_init (&c, B, C, HW, G, 0.2, 1.0);
      norm_loss (&c);  /* fills mean and rstd */
      float *dx = g_new0 (float, c.n), *dg = g_new0 (float, C), *dbeta = g_new0 (float, C);
      ddpm_groupnorm_backward (dx, dg, dbeta, c.dout, c.x, c.mean, c.rstd, c.gamma, B, C, HW, G);

      /* the saved statistics are overwritten by the loss evaluations, which
       * is fine: backward has already run */
      check_gradient ("groupnorm dinp", c.x, c.n, dx, norm_loss, &c);
      check_gradient ("groupnorm dgamma", c.gamma, C, dg, norm_loss, &c);
      check_gradient ("groupnorm dbeta", c.beta, C, dbeta, norm_loss, &c);

      NormOracle o = { B, C, HW, G, c.eps, c.n, to_double (c.x, c.n), to_double (c.gamma, C),
                       to_double (c.beta, C), g_new (double, c.n), g_new (double, B * G),
                       g_new (double, B * G), to_double (c.dout, c.n) };
      check_gradient_double ("groupnorm dinp", o.x, c.n, dx, norm_oracle_loss, &o);
      check_gradient_double ("groupnorm dgamma", o.gamma, C, dg, norm_oracle_loss, &o);
      check_gradient_double ("groupnorm dbeta", o.beta, C, dbeta, norm_oracle_loss, &o);
      g_free (o.x); g_free (o.gamma); g_free (o.beta); g_free (o.out);
      g_free (o.mean); g_free (o.rstd); g_free (o.dout);

      /* the gradient of a normalisation sums to zero over each group */
      for (int b = 0; b < B; b++)
        for (int g = 0; g < G; g++)
          {
            double s = 0;
            for (gsize i = 0; i < (gsize) (C / G) * HW; i++)
              s += dx[((gsize) b * C + g * (C / G)) * HW + i];
            g_assert_cmpfloat (fabs (s), <, 1e-4);
          }

      norm_loss (&c);
      float *g0x, *g0g, *g0b;
      float *gx = prefilled (c.n, &g0x), *gg = prefilled (C, &g0g), *gb = prefilled (C, &g0b);
      for (int rep = 0; rep < 2; rep++)
        ddpm_groupnorm_backward (gx, gg, gb, c.dout, c.x, c.mean, c.rstd, c.gamma, B, C, HW, G);
      assert_accumulated_twice (name, gx, g0x, dx, c.n);
      assert_accumulated_twice (name, gg, g0g, dg, C);
      assert_accumulated_twice (name, gb, g0b, dbeta, C);

      g_free (dx); g_free (dg); g_free (dbeta);
      g_free (gx); g_free (gg); g_free (gb);
      g_free (g0x); g_free (g0g); g_free (g0b);
      g_free (name);
      norm_case_clear (&c);
    }
}

/* Training's fused backward of SiLU (GroupNorm (x)) (unet.c res blocks
 * and head) against the two checked layers one after the other:
 * ddpm_silu_backward, then ddpm_groupnorm_backward (in double).  The
 * fused one works in float, hence the tolerance; it adds to the
 * gradients it is given.  Shapes: one and three channels per group, rows
 * not a multiple of 16, and the large-mean image of the forward test. */
static void
test_groupnorm_silu_backward (void)
{
  const int shapes[][4] = { { 2, 64, 1024, 64 }, { 3, 96, 72, 32 }, { 1, 64, 4096, 32 } };
  const double offsets[] = { 0.2, -0.3, 1000.0 };

  for (gsize k = 0; k < G_N_ELEMENTS (shapes); k++)
    {
      const int B = shapes[k][0], C = shapes[k][1], HW = shapes[k][2], G = shapes[k][3];
      NormCase c;

      norm_case_init (&c, B, C, HW, G, offsets[k], 1.5);
      /* the forward as training runs it: y kept, SiLU(y) feeds the conv */
      ddpm_groupnorm_forward (c.out, c.mean, c.rstd, c.x, c.gamma, c.beta, B, C, HW, G, c.eps);

      float *dy = g_new0 (float, c.n), *dx = g_new0 (float, c.n);
      float *dg = g_new0 (float, C), *db = g_new0 (float, C);
      ddpm_silu_backward (dy, c.dout, c.out, c.n);
      ddpm_groupnorm_backward (dx, dg, db, dy, c.x, c.mean, c.rstd, c.gamma, B, C, HW, G);
      double *want_x = to_double (dx, c.n), *want_g = to_double (dg, C);
      double *want_b = to_double (db, C);

      float *g0x, *g0g, *g0b;
      float *gx = prefilled (c.n, &g0x), *gg = prefilled (C, &g0g), *gb = prefilled (C, &g0b);
      for (gsize i = 0; i < c.n; i++)
        want_x[i] += g0x[i];
      for (int i = 0; i < C; i++)
        {
          want_g[i] += g0g[i];
          want_b[i] += g0b[i];
        }
      ddpm_groupnorm_silu_backward (gx, gg, gb, c.dout, c.out, c.x, c.mean, c.rstd, c.gamma,
                                    B, C, HW, G);
      /* dγ and dβ sum up to HW·C/G terms of order 1 */
      assert_close ("groupnorm+silu dinp", gx, want_x, c.n, 2e-6);
      assert_close ("groupnorm+silu dgamma", gg, want_g, C, 2e-6 * sqrt (HW));
      assert_close ("groupnorm+silu dbeta", gb, want_b, C, 2e-6 * sqrt (HW));

      g_free (dy); g_free (dx); g_free (dg); g_free (db);
      g_free (want_x); g_free (want_g); g_free (want_b);
      g_free (gx); g_free (gg); g_free (gb); g_free (g0x); g_free (g0g); g_free (g0b);
      norm_case_clear (&c);
    }
}

/* ------------------------------------------------------------------ silu */

typedef struct
{
  gsize n;
  float *x, *out, *dout;
} EltCase;

static double
silu_loss (gpointer data)
{
  EltCase *c = data;

  ddpm_silu_forward (c->out, c->x, c->n);
  return dot (c->out, c->dout, c->n);
}

typedef struct
{
  gsize n;
  double *x, *dout;
} SiluOracle;

static double
silu_oracle_loss (gpointer data)
{
  SiluOracle *o = data;
  double s = 0;

  for (gsize i = 0; i < o->n; i++)
    s += o->dout[i] * o->x[i] / (1 + exp (-o->x[i]));
  return s;
}

static void
test_silu (void)
{
  const gsize n = 300;
  EltCase c = { n, random_tensor (n, -6, 6), g_new (float, n), random_tensor (n, -1, 1) };
  double *want = g_new (double, n);

  /* the tails and zero */
  c.x[0] = -100; c.x[1] = 100; c.x[2] = 0; c.x[3] = -1000;
  for (gsize i = 0; i < n; i++)
    want[i] = c.x[i] / (1 + exp (-(double) c.x[i]));
  ddpm_silu_forward (c.out, c.x, n);
  g_assert_cmpfloat (c.out[3], ==, 0);
  for (gsize i = 0; i < n; i++)
    g_assert_cmpfloat (fabs (c.out[i] - want[i]), <=, 1e-6 * (1 + fabs (want[i])));

  float *dx = g_new0 (float, n);
  ddpm_silu_backward (dx, c.dout, c.x, n);
  g_assert_true (isfinite (dx[3]));
  check_gradient ("silu dinp", c.x, n, dx, silu_loss, &c);
  SiluOracle o = { n, to_double (c.x, n), to_double (c.dout, n) };
  check_gradient_double ("silu dinp", o.x, n, dx, silu_oracle_loss, &o);
  g_free (o.x); g_free (o.dout);

  float *g0, *g = prefilled (n, &g0);
  ddpm_silu_backward (g, c.dout, c.x, n);
  ddpm_silu_backward (g, c.dout, c.x, n);
  assert_accumulated_twice ("silu", g, g0, dx, n);
  g_free (g); g_free (g0); g_free (dx); g_free (want);
  g_free (c.x); g_free (c.out); g_free (c.dout);
}

/* ---------------------------------------------------------------- linear */

typedef struct
{
  int B, IC, OC;
  float *x, *w, *bias, *out, *dout;
} LinearCase;

static double
linear_loss (gpointer data)
{
  LinearCase *c = data;

  ddpm_linear_forward (c->out, c->x, c->w, c->bias, c->B, c->IC, c->OC);
  return dot (c->out, c->dout, (gsize) c->B * c->OC);
}

static void
test_linear (void)
{
  const int shapes[][3] = { { 3, 5, 4 }, { 1, 32, 128 }, { 4, 128, 64 } };

  for (gsize j = 0; j < G_N_ELEMENTS (shapes); j++)
    {
      int B = shapes[j][0], IC = shapes[j][1], OC = shapes[j][2];
      LinearCase c = { B, IC, OC, random_tensor (B * IC, -1, 1), random_tensor (OC * IC, -0.5, 0.5),
                       random_tensor (OC, -1, 1), g_new (float, B * OC),
                       random_tensor (B * OC, -1, 1) };
      double *want = g_new (double, B * OC);

      for (int with_bias = 0; with_bias < 2; with_bias++)
        {
          for (int b = 0; b < B; b++)
            for (int o = 0; o < OC; o++)
              {
                double s = with_bias ? c.bias[o] : 0;
                for (int i = 0; i < IC; i++)
                  s += (double) c.x[b * IC + i] * c.w[o * IC + i];
                want[b * OC + o] = s;
              }
          for (int i = 0; i < B * OC; i++)
            c.out[i] = NAN;
          ddpm_linear_forward (c.out, c.x, c.w, with_bias ? c.bias : NULL, B, IC, OC);
          assert_close ("linear out", c.out, want, B * OC, 1e-5 * (1 + IC / 16.0));
        }

      float *dx = g_new0 (float, B * IC), *dw = g_new0 (float, OC * IC), *db = g_new0 (float, OC);
      ddpm_linear_backward (dx, dw, db, c.dout, c.x, c.w, B, IC, OC);
      check_gradient ("linear dinp", c.x, B * IC, dx, linear_loss, &c);
      check_gradient ("linear dweight", c.w, OC * IC, dw, linear_loss, &c);
      check_gradient ("linear dbias", c.bias, OC, db, linear_loss, &c);

      float *g0x, *g0w, *g0b;
      float *gx = prefilled (B * IC, &g0x), *gw = prefilled (OC * IC, &g0w), *gb = prefilled (OC, &g0b);
      for (int rep = 0; rep < 2; rep++)
        ddpm_linear_backward (gx, gw, gb, c.dout, c.x, c.w, B, IC, OC);
      assert_accumulated_twice ("linear", gx, g0x, dx, B * IC);
      assert_accumulated_twice ("linear", gw, g0w, dw, OC * IC);
      assert_accumulated_twice ("linear", gb, g0b, db, OC);

      float *dw2 = g_new0 (float, OC * IC);
      ddpm_linear_backward (NULL, dw2, NULL, c.dout, c.x, c.w, B, IC, OC);
      g_assert_cmpmem (dw2, OC * IC * sizeof (float), dw, OC * IC * sizeof (float));

      g_free (dx); g_free (dw); g_free (db); g_free (dw2);
      g_free (gx); g_free (gw); g_free (gb); g_free (g0x); g_free (g0w); g_free (g0b);
      g_free (want);
      g_free (c.x); g_free (c.w); g_free (c.bias); g_free (c.out); g_free (c.dout);
    }
}

/* ------------------------------------------------------------- embedding */

/* Against the formula in double: the embedding is evaluated in float as
 * PyTorch does, so its argument t·f carries a relative rounding of a few
 * float ulps; the tolerance scales with |t·f|. */
static void
test_timestep_embedding (void)
{
  const int ts[] = { 0, 1, 7, 100, 499, 999 };
  const int B = G_N_ELEMENTS (ts);
  const int dims[] = { 32, 128, 6, 33 };

  for (gsize d = 0; d < G_N_ELEMENTS (dims); d++)
    {
      int dim = dims[d], half = dim / 2;
      float *out = g_new (float, B * dim);

      ddpm_timestep_embedding (out, ts, B, dim);
      for (int b = 0; b < B; b++)
        {
          for (int i = 0; i < half; i++)
            {
              double f = exp (-log (10000.0) * i / (half - 1));
              double arg = ts[b] * f;
              double tol = 1e-6 + 4 * FLT_EPSILON * arg;
              g_assert_cmpfloat (fabs (out[b * dim + i] - sin (arg)), <=, tol);
              g_assert_cmpfloat (fabs (out[b * dim + half + i] - cos (arg)), <=, tol);
            }
          if (dim % 2)
            g_assert_cmpfloat (out[b * dim + dim - 1], ==, 0);
        }
      /* t = 0: sines 0, cosines 1; the first frequency is 1 and the last
       * 1/10000 */
      for (int i = 0; i < half; i++)
        {
          g_assert_cmpfloat (out[i], ==, 0);
          g_assert_cmpfloat (out[half + i], ==, 1);
        }
      g_assert_cmpfloat (fabs (out[5 * dim] - sin (999.0)), <, 1e-5);
      g_assert_cmpfloat (fabs (out[5 * dim + half - 1] - sin (999.0 / 10000)), <, 1e-6);
      g_free (out);
    }
}

/* ------------------------------------------------------------- attention */

/* The oracle: for each query position i, scores s_j = q_i·k_j/√C, then a
 * log-sum-exp softmax in double, then the weighted sum of values. */
static void
oracle_attention (double *out, double *probs, const double *q, const double *k,
                  const double *v, int B, int C, int N)
{
  double *sc = g_new (double, N);

  for (int b = 0; b < B; b++)
    for (int i = 0; i < N; i++)
      {
        double m = -INFINITY, z = 0;
        for (int j = 0; j < N; j++)
          {
            sc[j] = 0;
            for (int c = 0; c < C; c++)
              sc[j] += q[(b * C + c) * N + i] * k[(b * C + c) * N + j];
            sc[j] /= sqrt (C);
            m = MAX (m, sc[j]);
          }
        for (int j = 0; j < N; j++)
          z += exp (sc[j] - m);
        for (int j = 0; j < N; j++)
          probs[(b * N + i) * N + j] = exp (sc[j] - m) / z;
        for (int c = 0; c < C; c++)
          {
            double s = 0;
            for (int j = 0; j < N; j++)
              s += probs[(b * N + i) * N + j] * v[(b * C + c) * N + j];
            out[(b * C + c) * N + i] = s;
          }
      }
  g_free (sc);
}

typedef struct
{
  int B, C, N;
  gsize n, nn;
  float *q, *k, *v, *out, *probs, *dout;
} AttnCase;

static double
attn_loss (gpointer data)
{
  AttnCase *c = data;

  ddpm_attention_forward (c->out, c->probs, c->q, c->k, c->v, c->B, c->C, c->N);
  return dot (c->out, c->dout, c->n);
}

static void
attn_case_init (AttnCase *c, int B, int C, int N, double range)
{
  c->B = B; c->C = C; c->N = N;
  c->n = (gsize) B * C * N;
  c->nn = (gsize) B * N * N;
  c->q = random_tensor (c->n, -range, range);
  c->k = random_tensor (c->n, -range, range);
  c->v = random_tensor (c->n, -1, 1);
  c->out = g_new (float, c->n);
  c->probs = g_new (float, c->nn);
  c->dout = random_tensor (c->n, -1, 1);
}

static void
attn_case_clear (AttnCase *c)
{
  g_free (c->q); g_free (c->k); g_free (c->v);
  g_free (c->out); g_free (c->probs); g_free (c->dout);
}

static void
test_attention_forward (void)
{
  /* (B, C, N, range of q and k): the UNet's sizes, and scores up to ±800
   * where a softmax without the max subtraction overflows */
  const struct { int B, C, N; double range; } cases[] = {
    { 2, 8, 16, 1.5 }, { 1, 32, 64, 1.0 }, { 2, 4, 9, 20.0 },
    { 2, 8, 200, 1.0 },  /* blocks of 32 query rows, the last one of 8 */
  };

  for (gsize j = 0; j < G_N_ELEMENTS (cases); j++)
    {
      AttnCase c;
      attn_case_init (&c, cases[j].B, cases[j].C, cases[j].N, cases[j].range);
      double *want = g_new (double, c.n), *wp = g_new (double, c.nn);

      double *qd = to_double (c.q, c.n), *kd = to_double (c.k, c.n), *vd = to_double (c.v, c.n);
      oracle_attention (want, wp, qd, kd, vd, c.B, c.C, c.N);
      g_free (qd); g_free (kd); g_free (vd);
      ddpm_attention_forward (c.out, c.probs, c.q, c.k, c.v, c.B, c.C, c.N);
      assert_close ("attention out", c.out, want, c.n, 1e-5);
      assert_close ("attention probs", c.probs, wp, c.nn, 1e-5);
      g_free (want); g_free (wp);
      attn_case_clear (&c);
    }
}

typedef struct
{
  int B, C, N;
  gsize n;
  double *q, *k, *v, *out, *probs, *dout;
} AttnOracle;

static double
attn_oracle_loss (gpointer data)
{
  AttnOracle *o = data;

  oracle_attention (o->out, o->probs, o->q, o->k, o->v, o->B, o->C, o->N);
  return dot_d (o->out, o->dout, o->n);
}

static void
check_attention_gradient (int B, int C, int N)
{
  AttnCase c;

  attn_case_init (&c, B, C, N, 1.5);
  attn_loss (&c);
  float *scratch = g_new (float, c.nn);
  float *dq = g_new0 (float, c.n), *dk = g_new0 (float, c.n), *dv = g_new0 (float, c.n);
  ddpm_attention_backward (dq, dk, dv, c.dout, c.probs, c.q, c.k, c.v, B, C, N, scratch);

  check_gradient ("attention dq", c.q, c.n, dq, attn_loss, &c);
  check_gradient ("attention dk", c.k, c.n, dk, attn_loss, &c);
  check_gradient ("attention dv", c.v, c.n, dv, attn_loss, &c);

  AttnOracle o = { B, C, N, c.n, to_double (c.q, c.n), to_double (c.k, c.n), to_double (c.v, c.n),
                   g_new (double, c.n), g_new (double, c.nn), to_double (c.dout, c.n) };
  check_gradient_double ("attention dq", o.q, c.n, dq, attn_oracle_loss, &o);
  check_gradient_double ("attention dk", o.k, c.n, dk, attn_oracle_loss, &o);
  check_gradient_double ("attention dv", o.v, c.n, dv, attn_oracle_loss, &o);
  g_free (o.q); g_free (o.k); g_free (o.v); g_free (o.out); g_free (o.probs); g_free (o.dout);

  attn_loss (&c);
  float *g0q, *g0k, *g0v;
  float *gq = prefilled (c.n, &g0q), *gk = prefilled (c.n, &g0k), *gv = prefilled (c.n, &g0v);
  for (int rep = 0; rep < 2; rep++)
    ddpm_attention_backward (gq, gk, gv, c.dout, c.probs, c.q, c.k, c.v, B, C, N, scratch);
  assert_accumulated_twice ("attention dq", gq, g0q, dq, c.n);
  assert_accumulated_twice ("attention dk", gk, g0k, dk, c.n);
  assert_accumulated_twice ("attention dv", gv, g0v, dv, c.n);

  /* each gradient alone equals its part of the full call */
  float *only = g_new0 (float, c.n);
  ddpm_attention_backward (NULL, only, NULL, c.dout, c.probs, c.q, c.k, c.v, B, C, N, scratch);
  g_assert_cmpmem (only, c.n * sizeof (float), dk, c.n * sizeof (float));

  g_free (only); g_free (scratch);
  g_free (dq); g_free (dk); g_free (dv);
  g_free (gq); g_free (gk); g_free (gv); g_free (g0q); g_free (g0k); g_free (g0v);
  attn_case_clear (&c);
}

/* Two images: one after another, each product split over the thread team;
 * seven: the images themselves split over the team (with up to 3
 * threads), each image's products on one thread. */
static void
test_attention_gradient (void)
{
  check_attention_gradient (2, 8, 16);
  check_attention_gradient (7, 8, 16);
}

/* -------------------------------------------------------- upsample, concat */

typedef struct
{
  int B, C, H, W;
  float *x, *out, *dout;
} UpCase;

static double
upsample_loss (gpointer data)
{
  UpCase *c = data;

  ddpm_upsample2x_forward (c->out, c->x, c->B, c->C, c->H, c->W);
  return dot (c->out, c->dout, (gsize) c->B * c->C * 4 * c->H * c->W);
}

static void
test_upsample (void)
{
  const int B = 2, C = 3, H = 3, W = 5;
  const gsize n = B * C * H * W;
  UpCase c = { B, C, H, W, random_tensor (n, -1, 1), g_new (float, 4 * n),
               random_tensor (4 * n, -1, 1) };

  ddpm_upsample2x_forward (c.out, c.x, B, C, H, W);
  for (int p = 0; p < B * C; p++)
    for (int y = 0; y < 2 * H; y++)
      for (int x = 0; x < 2 * W; x++)
        g_assert_cmpfloat (c.out[(p * 2 * H + y) * 2 * W + x], ==, c.x[(p * H + y / 2) * W + x / 2]);

  /* into zero-bordered planes (inference's up-sampling conv input),
   * poisoned first so that a border left unwritten shows */
  const int Hp = 2 * H + 2, Wp = 2 * W + 2;
  float *padded = g_new (float, (gsize) B * C * Hp * Wp);
  for (gsize i = 0; i < (gsize) B * C * Hp * Wp; i++)
    padded[i] = NAN;
  ddpm_upsample2x_forward_padded (padded, c.x, B, C, H, W);
  assert_zero_bordered (padded, c.out, B * C, 2 * H, 2 * W);
  g_free (padded);

  float *dx = g_new0 (float, n);
  ddpm_upsample2x_backward (dx, c.dout, B, C, H, W);
  check_gradient ("upsample dinp", c.x, n, dx, upsample_loss, &c);
  float *g0, *g = prefilled (n, &g0);
  ddpm_upsample2x_backward (g, c.dout, B, C, H, W);
  ddpm_upsample2x_backward (g, c.dout, B, C, H, W);
  assert_accumulated_twice ("upsample", g, g0, dx, n);
  g_free (g); g_free (g0); g_free (dx);
  g_free (c.x); g_free (c.out); g_free (c.dout);
}

typedef struct
{
  int B, Ca, Cb, HW;
  float *a, *b, *out, *dout;
} CatCase;

static double
concat_loss (gpointer data)
{
  CatCase *c = data;

  ddpm_concat_forward (c->out, c->a, c->b, c->B, c->Ca, c->Cb, c->HW);
  return dot (c->out, c->dout, (gsize) c->B * (c->Ca + c->Cb) * c->HW);
}

static void
test_concat (void)
{
  const int B = 2, Ca = 3, Cb = 2, HW = 6;
  const gsize na = B * Ca * HW, nb = B * Cb * HW, n = na + nb;
  CatCase c = { B, Ca, Cb, HW, random_tensor (na, -1, 1), random_tensor (nb, -1, 1),
                g_new (float, n), random_tensor (n, -1, 1) };

  ddpm_concat_forward (c.out, c.a, c.b, B, Ca, Cb, HW);
  for (int s = 0; s < B; s++)
    for (int ch = 0; ch < Ca + Cb; ch++)
      for (int i = 0; i < HW; i++)
        g_assert_cmpfloat (c.out[(s * (Ca + Cb) + ch) * HW + i], ==,
                           ch < Ca ? c.a[(s * Ca + ch) * HW + i] : c.b[(s * Cb + ch - Ca) * HW + i]);

  float *da = g_new0 (float, na), *db = g_new0 (float, nb);
  ddpm_concat_backward (da, db, c.dout, B, Ca, Cb, HW);
  check_gradient ("concat da", c.a, na, da, concat_loss, &c);
  check_gradient ("concat db", c.b, nb, db, concat_loss, &c);

  float *g0a, *g0b, *ga = prefilled (na, &g0a), *gb = prefilled (nb, &g0b);
  ddpm_concat_backward (ga, gb, c.dout, B, Ca, Cb, HW);
  ddpm_concat_backward (ga, gb, c.dout, B, Ca, Cb, HW);
  assert_accumulated_twice ("concat a", ga, g0a, da, na);
  assert_accumulated_twice ("concat b", gb, g0b, db, nb);
  /* one side only */
  float *db2 = g_new0 (float, nb);
  ddpm_concat_backward (NULL, db2, c.dout, B, Ca, Cb, HW);
  g_assert_cmpmem (db2, nb * sizeof (float), db, nb * sizeof (float));

  g_free (db2); g_free (ga); g_free (gb); g_free (g0a); g_free (g0b); g_free (da); g_free (db);
  g_free (c.a); g_free (c.b); g_free (c.out); g_free (c.dout);
}

/* ------------------------------------------------- add, add_channel_bias */

static void
test_add (void)
{
  const gsize n = 37;
  float *a = random_tensor (n, -1, 1), *b = random_tensor (n, -1, 1), *out = g_new (float, n);

  ddpm_add_forward (out, a, b, n);
  for (gsize i = 0; i < n; i++)
    g_assert_cmpfloat (out[i], ==, a[i] + b[i]);
  /* in place, as the residual connections use it */
  ddpm_add_forward (a, a, b, n);
  g_assert_cmpmem (a, n * sizeof (float), out, n * sizeof (float));
  g_free (a); g_free (b); g_free (out);
}

typedef struct
{
  int B, C, HW;
  float *x, *vec, *out, *dout;
} BiasCase;

static double
bias_loss (gpointer data)
{
  BiasCase *c = data;

  ddpm_add_channel_bias_forward (c->out, c->x, c->vec, c->B, c->C, c->HW);
  return dot (c->out, c->dout, (gsize) c->B * c->C * c->HW);
}

static void
test_add_channel_bias (void)
{
  const int B = 3, C = 4, HW = 10;
  const gsize n = B * C * HW;
  BiasCase c = { B, C, HW, random_tensor (n, -1, 1), random_tensor (B * C, -1, 1),
                 g_new (float, n), random_tensor (n, -1, 1) };

  ddpm_add_channel_bias_forward (c.out, c.x, c.vec, B, C, HW);
  for (int b = 0; b < B; b++)
    for (int ch = 0; ch < C; ch++)
      for (int i = 0; i < HW; i++)
        g_assert_cmpfloat (c.out[(b * C + ch) * HW + i], ==,
                           c.x[(b * C + ch) * HW + i] + c.vec[b * C + ch]);

  float *dv = g_new0 (float, B * C);
  ddpm_add_channel_bias_backward (dv, c.dout, B, C, HW);
  check_gradient ("add_channel_bias dvec", c.vec, B * C, dv, bias_loss, &c);
  float *g0, *g = prefilled (B * C, &g0);
  ddpm_add_channel_bias_backward (g, c.dout, B, C, HW);
  ddpm_add_channel_bias_backward (g, c.dout, B, C, HW);
  assert_accumulated_twice ("add_channel_bias", g, g0, dv, B * C);
  g_free (g); g_free (g0); g_free (dv);
  g_free (c.x); g_free (c.vec); g_free (c.out); g_free (c.dout);
}

/* --------------------------------------------------------------- dropout */

typedef struct
{
  gsize n;
  float p;
  float *x, *out, *dout;
  guint8 *mask;
} DropCase;

static double
dropout_loss (gpointer data)
{
  DropCase *c = data;

  ddpm_dropout_forward (c->out, c->mask, c->x, c->n, c->p, 7, 3);
  return dot (c->out, c->dout, c->n);
}

static void
test_dropout (void)
{
  const gsize n = 100000;
  const float p = 0.3f;
  float *x = random_tensor (n, 0.5, 1.5), *out = g_new (float, n), *out2 = g_new (float, n);
  guint8 *mask = g_new (guint8, n), *mask2 = g_new (guint8, n);
  gsize dropped = 0;
  double mean_in = 0, mean_out = 0;

  ddpm_dropout_forward (out, mask, x, n, p, 7, 3);
  for (gsize i = 0; i < n; i++)
    {
      /* the mask is the RNG's, element by element */
      gboolean drop = ddpm_rng_uniform (7, 3, i) < p;
      g_assert_cmpint (mask[i], ==, drop ? 0 : 1);
      g_assert_cmpfloat (out[i], ==, drop ? 0.0f : x[i] * (1.0f / (1.0f - p)));
      dropped += drop;
      mean_in += x[i];
      mean_out += out[i];
    }
  /* the drop rate is p within 5 binomial standard errors, and inverted
   * dropout keeps the mean (within 5 standard errors of the mean of
   * x·Bernoulli(1 − p)/(1 − p), whose variance is ≤ E[x²]·p/(1 − p)) */
  g_assert_cmpfloat (fabs ((double) dropped / n - p), <, 5 * sqrt (p * (1 - p) / n));
  g_assert_cmpfloat (fabs (mean_out - mean_in) / n, <, 5 * sqrt (1.5 * 1.5 * p / (1 - p) / n));

  /* reproducible: same (seed, stream) same mask; another stream differs */
  ddpm_dropout_forward (out2, mask2, x, n, p, 7, 3);
  g_assert_cmpmem (mask2, n, mask, n);
  g_assert_cmpmem (out2, n * sizeof (float), out, n * sizeof (float));
  ddpm_dropout_forward (out2, mask2, x, n, p, 7, 4);
  g_assert_true (memcmp (mask2, mask, n) != 0);

  /* p = 0 copies bit for bit */
  ddpm_dropout_forward (out2, mask2, x, n, 0.0f, 7, 3);
  g_assert_cmpmem (out2, n * sizeof (float), x, n * sizeof (float));
  for (gsize i = 0; i < n; i++)
    g_assert_cmpint (mask2[i], ==, 1);

  /* backward: the same mask and scale, checked by finite differences on a
   * small instance (the mask is fixed by (seed, stream)) */
  const gsize m = 200;
  DropCase c = { m, p, random_tensor (m, -1, 1), g_new (float, m), random_tensor (m, -1, 1),
                 g_new (guint8, m) };
  dropout_loss (&c);
  float *dx = g_new0 (float, m);
  ddpm_dropout_backward (dx, c.dout, c.mask, m, p);
  check_gradient ("dropout dinp", c.x, m, dx, dropout_loss, &c);
  for (gsize i = 0; i < m; i++)
    g_assert_cmpfloat (dx[i], ==, c.mask[i] ? c.dout[i] * (1.0f / (1.0f - p)) : 0.0f);
  float *g0, *g = prefilled (m, &g0);
  ddpm_dropout_backward (g, c.dout, c.mask, m, p);
  ddpm_dropout_backward (g, c.dout, c.mask, m, p);
  assert_accumulated_twice ("dropout", g, g0, dx, m);
  /* p = 0: the gradient passes through */
  float *gp = g_new0 (float, m);
  ddpm_dropout_backward (gp, c.dout, NULL, m, 0.0f);
  g_assert_cmpmem (gp, m * sizeof (float), c.dout, m * sizeof (float));

  g_free (gp); g_free (g); g_free (g0); g_free (dx);
  g_free (c.x); g_free (c.out); g_free (c.dout); g_free (c.mask);
  g_free (x); g_free (out); g_free (out2); g_free (mask); g_free (mask2);
}

/* ------------------------------------------------------------- PyTorch */

static void
assert_close_f (const char *what, const float *got, const float *want, gsize n, double tol)
{
  double *w = g_new (double, n);

  for (gsize i = 0; i < n; i++)
    w[i] = want[i];
  assert_close (what, got, w, n, tol);
  g_free (w);
}

/* Every layer once more against PyTorch 1.13 (float64 there, float here),
 * as the reference ../shared/bench/torch_unet.py calls it: this pins the
 * conventions (TF "SAME" padding of the down-sampling conv, the 1/√C of
 * the attention, the biased variance of GroupNorm, the layout of the
 * timestep embedding), which the oracles above only restate. */
static void
test_torch_fixtures (void)
{
  /* the down-sampling conv: F.pad (0, 1, 0, 1) then 3×3 stride 2 */
  {
    const int sh[] = { TORCH_DOWN_SHAPE };
    DdpmConvShape s = { sh[0], sh[1], sh[2], sh[3], sh[4], 3, 2, 0, 1 };
    gsize n_in = G_N_ELEMENTS (torch_down_x), n_out = G_N_ELEMENTS (torch_down_y);
    float *y = g_new (float, n_out), *scratch = g_new (float, ddpm_conv2d_scratch_size (&s));
    float *dx = g_new0 (float, n_in), *dw = g_new0 (float, G_N_ELEMENTS (torch_down_w));
    float *db = g_new0 (float, s.C_out);

    g_assert_cmpuint (n_in, ==, (gsize) s.B * s.C_in * s.H * s.W);
    ddpm_conv2d_forward (y, torch_down_x, torch_down_w, torch_down_b, &s, scratch);
    assert_close_f ("torch down conv y", y, torch_down_y, n_out, 2e-6);
    ddpm_conv2d_backward (dx, dw, db, torch_down_dy, torch_down_x, torch_down_w, &s, scratch);
    assert_close_f ("torch down conv dx", dx, torch_down_dx, n_in, 2e-6);
    assert_close_f ("torch down conv dw", dw, torch_down_dw, G_N_ELEMENTS (torch_down_w), 1e-5);
    assert_close_f ("torch down conv db", db, torch_down_db, s.C_out, 1e-5);
    g_free (y); g_free (scratch); g_free (dx); g_free (dw); g_free (db);
  }
  /* GroupNorm (32, 64, eps = 1e-6) */
  {
    const int sh[] = { TORCH_GN_SHAPE };
    const int B = sh[0], C = sh[1], HW = sh[2], G = sh[3];
    gsize n = G_N_ELEMENTS (torch_gn_x);
    float *y = g_new (float, n), *mean = g_new (float, B * G), *rstd = g_new (float, B * G);
    float *dx = g_new0 (float, n), *dg = g_new0 (float, C), *dbeta = g_new0 (float, C);

    g_assert_cmpuint (n, ==, (gsize) B * C * HW);
    ddpm_groupnorm_forward (y, mean, rstd, torch_gn_x, torch_gn_gamma, torch_gn_beta,
                            B, C, HW, G, 1e-6f);
    assert_close_f ("torch groupnorm y", y, torch_gn_y, n, 2e-6);
    ddpm_groupnorm_backward (dx, dg, dbeta, torch_gn_dy, torch_gn_x, mean, rstd, torch_gn_gamma,
                             B, C, HW, G);
    assert_close_f ("torch groupnorm dx", dx, torch_gn_dx, n, 1e-5);
    assert_close_f ("torch groupnorm dgamma", dg, torch_gn_dgamma, C, 2e-6);
    assert_close_f ("torch groupnorm dbeta", dbeta, torch_gn_dbeta, C, 2e-6);
    g_free (y); g_free (mean); g_free (rstd); g_free (dx); g_free (dg); g_free (dbeta);
  }
  /* the attention core */
  {
    const int sh[] = { TORCH_ATTN_SHAPE };
    const int B = sh[0], C = sh[1], N = sh[2];
    gsize n = G_N_ELEMENTS (torch_attn_q), nn = G_N_ELEMENTS (torch_attn_probs);
    float *o = g_new (float, n), *P = g_new (float, nn), *scratch = g_new (float, nn);
    float *dq = g_new0 (float, n), *dk = g_new0 (float, n), *dv = g_new0 (float, n);

    g_assert_cmpuint (nn, ==, (gsize) B * N * N);
    ddpm_attention_forward (o, P, torch_attn_q, torch_attn_k, torch_attn_v, B, C, N);
    assert_close_f ("torch attention out", o, torch_attn_out, n, 2e-6);
    assert_close_f ("torch attention probs", P, torch_attn_probs, nn, 2e-6);
    ddpm_attention_backward (dq, dk, dv, torch_attn_dout, P, torch_attn_q, torch_attn_k,
                             torch_attn_v, B, C, N, scratch);
    assert_close_f ("torch attention dq", dq, torch_attn_dq, n, 2e-6);
    assert_close_f ("torch attention dk", dk, torch_attn_dk, n, 2e-6);
    assert_close_f ("torch attention dv", dv, torch_attn_dv, n, 2e-6);
    g_free (o); g_free (P); g_free (scratch); g_free (dq); g_free (dk); g_free (dv);
  }
  /* nearest ×2 */
  {
    const int sh[] = { TORCH_UP_SHAPE };
    gsize n = G_N_ELEMENTS (torch_up_x);
    float *y = g_new (float, 4 * n), *dx = g_new0 (float, n);

    ddpm_upsample2x_forward (y, torch_up_x, sh[0], sh[1], sh[2], sh[3]);
    assert_close_f ("torch upsample y", y, torch_up_y, 4 * n, 0);
    ddpm_upsample2x_backward (dx, torch_up_dy, sh[0], sh[1], sh[2], sh[3]);
    assert_close_f ("torch upsample dx", dx, torch_up_dx, n, 1e-6);
    g_free (y); g_free (dx);
  }
  /* SiLU then Linear */
  {
    const int sh[] = { TORCH_LINEAR_SHAPE };
    const int B = sh[0], IC = sh[1], OC = sh[2];
    float *s = g_new (float, B * IC), *y = g_new (float, B * OC);
    float *ds = g_new0 (float, B * IC), *dx = g_new0 (float, B * IC);
    float *dw = g_new0 (float, OC * IC), *db = g_new0 (float, OC);

    ddpm_silu_forward (s, torch_linear_x, B * IC);
    assert_close_f ("torch silu", s, torch_linear_silu, B * IC, 1e-6);
    ddpm_linear_forward (y, s, torch_linear_w, torch_linear_b, B, IC, OC);
    assert_close_f ("torch linear y", y, torch_linear_y, B * OC, 2e-6);
    ddpm_linear_backward (ds, dw, db, torch_linear_dy, s, torch_linear_w, B, IC, OC);
    assert_close_f ("torch linear dinp", ds, torch_linear_dsilu, B * IC, 2e-6);
    assert_close_f ("torch linear dw", dw, torch_linear_dw, OC * IC, 2e-6);
    assert_close_f ("torch linear db", db, torch_linear_db, OC, 2e-6);
    ddpm_silu_backward (dx, ds, torch_linear_x, B * IC);
    assert_close_f ("torch silu dx", dx, torch_linear_dx, B * IC, 2e-6);
    g_free (s); g_free (y); g_free (ds); g_free (dx); g_free (dw); g_free (db);
  }
  /* the timestep embedding, float32 there and here: equal up to the last
   * bits of exp and sin, which move t·f by an ulp or two */
  {
    const int B = G_N_ELEMENTS (torch_emb_t), dim = TORCH_EMB_DIM;
    float *e = g_new (float, B * dim);

    double max_err = 0;
    ddpm_timestep_embedding (e, torch_emb_t, B, dim);
    for (int b = 0; b < B; b++)
      for (int i = 0; i < dim; i++)
        {
          double err = fabs (e[b * dim + i] - torch_emb[b * dim + i]);
          g_assert_cmpfloat (err, <=, 1e-6 + 2 * FLT_EPSILON * torch_emb_t[b]);
          max_err = MAX (max_err, err);
        }
    g_test_message ("torch timestep embedding: max abs err %.3g", max_err);
    g_free (e);
  }
}

/* ddpm_fast_expf against expf over its range, and its clamps: ±inf give
 * +inf and 0, NaN the lower clamp (≈ 1e-38).  NaN used to pass both
 * clamps and shift a negative integer left (undefined behaviour, which
 * UBSan reports in the sanitize build) and return NaN. */
static void
test_fast_expf (void)
{
  volatile float nan_in = NAN, inf_in = INFINITY;

  for (float x = -80.0f; x <= 80.0f; x += 0.37f)
    g_assert_cmpfloat_with_epsilon (ddpm_fast_expf (x) / expf (x), 1.0f, 1e-5f);
  g_assert_true (isinf (ddpm_fast_expf (inf_in)));
  g_assert_cmpfloat (ddpm_fast_expf (-inf_in), <, 1e-37f);
  g_assert_cmpfloat (ddpm_fast_expf (-inf_in), >=, 0.0f);

  float r = ddpm_fast_expf (nan_in);
  g_assert_false (isnan (r));
  g_assert_cmpfloat (r, >=, 0.0f);
  g_assert_cmpfloat (r, <, 1e-37f);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/engine/layers/fast-expf", test_fast_expf);
  g_test_add_func ("/engine/layers/conv2d/forward", test_conv2d_forward);
  g_test_add_func ("/engine/layers/conv2d/gradient", test_conv2d_gradient);
  g_test_add_func ("/engine/layers/conv2d/backward-oracle", test_conv2d_backward_oracle);
  g_test_add_func ("/engine/layers/groupnorm/forward", test_groupnorm_forward);
  g_test_add_func ("/engine/layers/groupnorm/gradient", test_groupnorm_gradient);
  g_test_add_func ("/engine/layers/groupnorm/silu-backward", test_groupnorm_silu_backward);
  g_test_add_func ("/engine/layers/groupnorm/silu-padded-conv", test_groupnorm_silu_padded_conv);
  g_test_add_func ("/engine/layers/silu", test_silu);
  g_test_add_func ("/engine/layers/silu/padded-conv-backward", test_silu_padded_conv_backward);
  g_test_add_func ("/engine/layers/linear", test_linear);
  g_test_add_func ("/engine/layers/timestep-embedding", test_timestep_embedding);
  g_test_add_func ("/engine/layers/attention/forward", test_attention_forward);
  g_test_add_func ("/engine/layers/attention/gradient", test_attention_gradient);
  g_test_add_func ("/engine/layers/upsample", test_upsample);
  g_test_add_func ("/engine/layers/concat", test_concat);
  g_test_add_func ("/engine/layers/add", test_add);
  g_test_add_func ("/engine/layers/add-channel-bias", test_add_channel_bias);
  g_test_add_func ("/engine/layers/dropout", test_dropout);
  g_test_add_func ("/engine/layers/torch-fixtures", test_torch_fixtures);
  int status = g_test_run ();

  /* the worst finite-difference error of all checks, as a TAP comment */
  printf ("# worst gradient-check rel err over all layers: %.3g (tolerance %g)\n",
          worst_fd_error, FD_TOL);
  printf ("# worst rel err against double differences of the oracles: %.3g (tolerance %g)\n",
          worst_fd_double_error, FD_TOL_DOUBLE);
  return status;
}
