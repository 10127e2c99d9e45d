/* conv3x3.c: the "same" 3×3 convolution (stride 1, one pixel of zero
 * padding) computed directly with AVX-512, for the forward pass and for
 * the input gradient.  Almost all of the UNet's arithmetic is this one
 * shape; conv2d.c sends it here when the CPU and the shape allow and
 * keeps im2col + sgemm for everything else (and as the oracle's peer).
 *
 * WHY
 *
 * im2col writes nine copies of the input, OpenBLAS then packs that matrix
 * once more, and the product lands in a buffer that is scattered back to
 * NCHW: three passes over memory around one product (perf: ~27 % of a
 * training step).  Here the input is copied once into a zero-padded
 * buffer and the kernel reads it in place.
 *
 * HOW
 *
 *   out[co][y][x] = bias[co] + Σ_ci Σ_ky Σ_kx w[co][ci][ky][kx] · pad[ci][y + ky][x + kx]
 *
 * A register tile is 8 output channels × V vectors of 16 consecutive
 * output pixels of one row (V ≤ 3: 24 zmm accumulators).  For each input
 * channel and tap the kernel loads the V input vectors (unaligned loads of
 * the padded row, shifted by kx) and broadcasts the 8 weights, packed as
 * wpack[co/8][ci][tap][8] so that they are adjacent: 8·V multiply-adds for
 * V + 8 loads.  Each output element is summed over (ci, ky, kx) in that
 * fixed order by one thread, so the result does not depend on the thread
 * count.  Rows must be a multiple of 16 pixels (W ≥ 16: the UNet's upper
 * levels, where the work is) and C_out a multiple of 8.
 *
 * The input gradient of a same-3×3 conv is again a same-3×3 conv, of dout
 * with the kernel flipped and its channel axes swapped:
 *   dinp[ci][y][x] = Σ_co Σ_ky Σ_kx w[co][ci][2 − ky][2 − kx] · padded dout[co][y + ky][x + kx],
 * so the same kernel serves both (ddpm_conv3x3_pack_weights, transposed).
 */
#include <string.h>

#include <immintrin.h>

#include "layers.h"

#define TILE_CO 8
#define VEC 16
#define MAX_V 3

gboolean
ddpm_conv3x3_direct_ok (const DdpmConvShape *s, gboolean for_input_grad)
{
  static int avx512 = -1;

  if (avx512 < 0)
    avx512 = __builtin_cpu_supports ("avx512f") ? 1 : 0;
  return avx512 && s->k == 3 && s->stride == 1 && s->pad_begin == 1 && s->pad_end == 1
         && s->W % VEC == 0
         && (for_input_grad ? s->C_in : s->C_out) % TILE_CO == 0;
}

gsize
ddpm_conv3x3_scratch_size (const DdpmConvShape *s, int images)
{
  const int C = MAX (s->C_in, s->C_out);

  /* the padded images, then the packed weights */
  return (gsize) images * C * (s->H + 2) * (s->W + 2) + (gsize) s->C_in * s->C_out * 9;
}

/* ------------------------------------------------------------ packing */

typedef struct
{
  float       *pad;       /* (g, C, H + 2, W + 2) */
  const float *src;       /* (g, C, H, W) */
  int          C, H, W;
} PadJob;

static void
pad_range (gsize begin, gsize end, gpointer data)
{
  const PadJob *j = data;
  const int Hp = j->H + 2, Wp = j->W + 2;

  for (gsize plane = begin; plane < end; plane++)
    {
      float *dst = j->pad + plane * Hp * Wp;
      const float *src = j->src + plane * j->H * j->W;

      memset (dst, 0, sizeof (float) * Wp);
      for (int y = 0; y < j->H; y++)
        {
          float *row = dst + (gsize) (y + 1) * Wp;
          row[0] = 0.0f;
          memcpy (row + 1, src + (gsize) y * j->W, sizeof (float) * j->W);
          row[Wp - 1] = 0.0f;
        }
      memset (dst + (gsize) (Hp - 1) * Wp, 0, sizeof (float) * Wp);
    }
}

/* wpack[o/8][i][tap][o%8] for the conv from I to O channels: the forward
 * weight w (O, I, 3, 3) as is, or (transposed) the input-gradient kernel
 * w'[i][o][t] = w[o][i][8 − t] with O = C_in, I = C_out. */
static void
pack_weights (float *wpack, const float *w, int C_out, int C_in, gboolean transposed)
{
  const int O = transposed ? C_in : C_out, I = transposed ? C_out : C_in;

  for (int o = 0; o < O; o++)
    for (int i = 0; i < I; i++)
      for (int t = 0; t < 9; t++)
        {
          const float v = transposed ? w[((gsize) i * C_in + o) * 9 + (8 - t)]
                                     : w[((gsize) o * C_in + i) * 9 + t];
          wpack[(((gsize) (o / TILE_CO) * I + i) * 9 + t) * TILE_CO + o % TILE_CO] = v;
        }
}

/* ------------------------------------------------------------- kernel */

/* One register tile: 8 channels of `out` from o0, V vectors whose first
 * pixels are at offsets px[v] in the output plane and pp[v] in the padded
 * input plane.  accumulate: add to out instead of starting from bias. */
static inline __attribute__ ((always_inline, target ("avx512f"))) void
tile_kernel (float *out, gsize out_plane, const float *pad, gsize pad_plane, int Wp,
             const float *wpack, const float *bias, int I, const gsize *px,
             const gsize *pp, int V, gboolean accumulate)
{
  __m512 acc[TILE_CO][MAX_V];

#pragma GCC unroll 8
  for (int r = 0; r < TILE_CO; r++)
#pragma GCC unroll 3
    for (int v = 0; v < V; v++)
      {
        const float *o = out + r * out_plane + px[v];
        acc[r][v] = accumulate ? _mm512_loadu_ps (o)
                               : _mm512_set1_ps (bias != NULL ? bias[r] : 0.0f);
      }

  for (int i = 0; i < I; i++)
    {
      const float *plane = pad + (gsize) i * pad_plane;
      const float *wi = wpack + (gsize) i * 9 * TILE_CO;

#pragma GCC unroll 3
      for (int ky = 0; ky < 3; ky++)
#pragma GCC unroll 3
        for (int kx = 0; kx < 3; kx++)
          {
            const float *wt = wi + (ky * 3 + kx) * TILE_CO;
            __m512 x[MAX_V];

#pragma GCC unroll 3
            for (int v = 0; v < V; v++)
              x[v] = _mm512_loadu_ps (plane + pp[v] + (gsize) ky * Wp + kx);
#pragma GCC unroll 8
            for (int r = 0; r < TILE_CO; r++)
              {
                const __m512 wr = _mm512_set1_ps (wt[r]);
#pragma GCC unroll 3
                for (int v = 0; v < V; v++)
                  acc[r][v] = _mm512_fmadd_ps (wr, x[v], acc[r][v]);
              }
          }
    }

#pragma GCC unroll 8
  for (int r = 0; r < TILE_CO; r++)
#pragma GCC unroll 3
    for (int v = 0; v < V; v++)
      _mm512_storeu_ps (out + r * out_plane + px[v], acc[r][v]);
}

/* The kernel for V = 1, 2, 3 as separate bodies, so that the accumulators
 * of each stay in registers. */
#define DEFINE_TILE(V)                                                                   \
  static __attribute__ ((noinline, target ("avx512f"))) void                           \
  tile_##V (float *out, gsize out_plane, const float *pad, gsize pad_plane, int Wp,    \
            const float *wpack, const float *bias, int I, const gsize *px,             \
            const gsize *pp, gboolean accumulate)                                      \
  {                                                                                    \
    tile_kernel (out, out_plane, pad, pad_plane, Wp, wpack, bias, I, px, pp, V,        \
                 accumulate);                                                          \
  }
DEFINE_TILE (1)
DEFINE_TILE (2)
DEFINE_TILE (3)

typedef struct
{
  float       *out;       /* (g, O, H, W) */
  const float *pad;       /* (g, I, H + 2, W + 2) */
  const float *wpack;
  const float *bias;      /* (O) or NULL */
  int          I, O, H, W;
  int          tiles;     /* register tiles of up to 3 vectors per image */
  gboolean     accumulate;
} TileJob;

/* Items are (image, group of 3 vectors); every item runs all output
 * channel blocks over the same input rows, which stay in cache. */
static void
tiles_range (gsize begin, gsize end, gpointer data)
{
  const TileJob *j = data;
  const int per_row = j->W / VEC, n_vec = j->H * per_row, Wp = j->W + 2;
  const gsize out_plane = (gsize) j->H * j->W, pad_plane = (gsize) (j->H + 2) * Wp;

  for (gsize item = begin; item < end; item++)
    {
      const int b = (int) (item / j->tiles), first = (int) (item % j->tiles) * MAX_V;
      const int V = MIN (MAX_V, n_vec - first);
      gsize px[MAX_V], pp[MAX_V];

      for (int v = 0; v < V; v++)
        {
          const int y = (first + v) / per_row, x = (first + v) % per_row * VEC;
          px[v] = (gsize) y * j->W + x;
          pp[v] = (gsize) y * Wp + x;   /* tap (0, 0) of output (y, x) */
        }
      const float *pad = j->pad + (gsize) b * j->I * pad_plane;
      for (int o0 = 0; o0 < j->O; o0 += TILE_CO)
        {
          float *out = j->out + ((gsize) b * j->O + o0) * out_plane;
          const float *wp = j->wpack + (gsize) (o0 / TILE_CO) * j->I * 9 * TILE_CO;
          const float *bias = j->bias != NULL ? j->bias + o0 : NULL;

          if (V == 3)
            tile_3 (out, out_plane, pad, pad_plane, Wp, wp, bias, j->I, px, pp, j->accumulate);
          else if (V == 2)
            tile_2 (out, out_plane, pad, pad_plane, Wp, wp, bias, j->I, px, pp, j->accumulate);
          else
            tile_1 (out, out_plane, pad, pad_plane, Wp, wp, bias, j->I, px, pp, j->accumulate);
        }
    }
}

/* out (B, O, H, W) (=, or += when accumulate) the same-3×3 conv of src
 * (B, I, H, W) with the packed kernel, in groups of g images whose padded
 * copies fit the scratch. */
static void
run (float *out, const float *src, const float *wpack, const float *bias, int B, int I,
     int O, int H, int W, int g, gboolean accumulate, float *pad)
{
  const int n_vec = H * (W / VEC);
  TileJob tj = { NULL, pad, wpack, bias, I, O, H, W, (n_vec + MAX_V - 1) / MAX_V,
                 accumulate };

  for (int b0 = 0; b0 < B; b0 += g)
    {
      const int n = MIN (g, B - b0);
      PadJob pj = { pad, src + (gsize) b0 * I * H * W, I, H, W };

      ddpm_parallel_for ((gsize) n * I, MAX (1, 4096 / (H * W)), pad_range, &pj);
      tj.out = out + (gsize) b0 * O * H * W;
      ddpm_parallel_for ((gsize) n * tj.tiles, 1, tiles_range, &tj);
    }
}

void
ddpm_conv3x3_forward (float *out, const float *inp, const float *weight, const float *bias,
                      const DdpmConvShape *s, int g, float *scratch)
{
  const gsize padded = (gsize) g * MAX (s->C_in, s->C_out) * (s->H + 2) * (s->W + 2);
  float *wpack = scratch + padded;

  pack_weights (wpack, weight, s->C_out, s->C_in, FALSE);
  run (out, inp, wpack, bias, s->B, s->C_in, s->C_out, s->H, s->W, g, FALSE, scratch);
}

void
ddpm_conv3x3_input_grad (float *dinp, const float *dout, const float *weight,
                         const DdpmConvShape *s, int g, float *scratch)
{
  const gsize padded = (gsize) g * MAX (s->C_in, s->C_out) * (s->H + 2) * (s->W + 2);
  float *wpack = scratch + padded;

  pack_weights (wpack, weight, s->C_out, s->C_in, TRUE);
  run (dinp, dout, wpack, NULL, s->B, s->C_out, s->C_in, s->H, s->W, g, TRUE, scratch);
}
