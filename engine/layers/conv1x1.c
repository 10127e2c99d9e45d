/* conv1x1.c: the forward pass of a 1×1 convolution computed directly with
 * AVX-512 (the residual blocks' skip projections and attention's q, k, v
 * and output projections).
 *
 * WHY
 *
 * Through sgemm each image is one small product (C_out × HW × C_in, e.g.
 * 64 × 256 × 64 at the attention level) that OpenBLAS runs in its
 * small-matrix kernel at about half the speed of conv3x3.c's kernel, and
 * the bias is a second pass: two waits on the thread team per image.  Here
 * the whole batch is one pass, the bias folded in.
 *
 * HOW
 *
 *   out[b][co][p] = bias[co] + Σ_ci w[co][ci] · inp[b][ci][p]
 *
 * A register tile is 8 output channels × up to 3 vectors of 16 consecutive
 * pixels (the plane read as one flat row, so any H·W that is a multiple of
 * 16 works): per input channel V loads and 8 broadcast weights (read in
 * place, w[co][ci] for co = o0 … o0 + 7) for 8·V multiply-adds.  Each
 * output is summed over ci in order by one thread: the thread count does
 * not change the result.
 */
#include <immintrin.h>

#include "layers.h"

#define TILE_CO 8
#define VEC 16
#define MAX_V 3

gboolean
ddpm_conv1x1_direct_ok (const DdpmConvShape *s)
{
  return ddpm_layers_have_avx512 () && s->k == 1 && s->stride == 1 && s->pad_begin == 0 && s->pad_end == 0
         && s->C_out % TILE_CO == 0 && (s->H * s->W) % VEC == 0;
}

/* A tile of 8 outputs × V vectors: out[r] (+)= bias[r] + Σ_i w[r·ro + i·ri]
 * · inp[i], over K input planes.  The forward reads w as (C_out, C_in)
 * (ro = C_in, ri = 1); the input gradient reads the same array as its
 * transpose (ro = 1, ri = C_in) and adds to what dinp holds. */
static inline __attribute__ ((always_inline, target ("avx512f"))) void
tile_kernel (float *out, const float *inp, gsize plane, const float *w, gsize ro, gsize ri,
             int K, const float *bias, gboolean accumulate, int V)
{
  __m512 acc[TILE_CO][MAX_V];

#pragma GCC unroll 8
  for (int r = 0; r < TILE_CO; r++)
#pragma GCC unroll 3
    for (int v = 0; v < V; v++)
      acc[r][v] = accumulate ? _mm512_loadu_ps (out + r * plane + v * VEC)
                             : _mm512_set1_ps (bias != NULL ? bias[r] : 0.0f);

  for (int i = 0; i < K; i++)
    {
      const float *x = inp + (gsize) i * plane;
      __m512 xv[MAX_V];

#pragma GCC unroll 3
      for (int v = 0; v < V; v++)
        xv[v] = _mm512_loadu_ps (x + v * VEC);
#pragma GCC unroll 8
      for (int r = 0; r < TILE_CO; r++)
        {
          const __m512 wr = _mm512_set1_ps (w[r * ro + i * ri]);
#pragma GCC unroll 3
          for (int v = 0; v < V; v++)
            acc[r][v] = _mm512_fmadd_ps (wr, xv[v], acc[r][v]);
        }
    }

#pragma GCC unroll 8
  for (int r = 0; r < TILE_CO; r++)
#pragma GCC unroll 3
    for (int v = 0; v < V; v++)
      _mm512_storeu_ps (out + r * plane + v * VEC, acc[r][v]);
}

#define DEFINE_TILE(V)                                                                   \
  static __attribute__ ((noinline, target ("avx512f"))) void                           \
  tile_##V (float *out, const float *inp, gsize plane, const float *w, gsize ro,       \
            gsize ri, int K, const float *bias, gboolean accumulate)                   \
  {                                                                                    \
    tile_kernel (out, inp, plane, w, ro, ri, K, bias, accumulate, V);                  \
  }
DEFINE_TILE (1)
DEFINE_TILE (2)
DEFINE_TILE (3)

typedef void (*TileFunc) (float *, const float *, gsize, const float *, gsize, gsize, int,
                          const float *, gboolean);

static const TileFunc tile_funcs[MAX_V] = { tile_1, tile_2, tile_3 };

typedef struct
{
  float       *out;       /* (B, O, plane) */
  const float *inp;       /* (B, K, plane) */
  const float *weight, *bias;
  gsize        ro, ri;    /* weight strides: output, input channel */
  int          O, K;
  gsize        plane;
  gboolean     accumulate;
  int          tiles;     /* per image */
} Conv1x1Job;

/* Items are (image, group of 3 vectors), each running every block of 8
 * output channels over the same input pixels. */
static void
tiles_range (gsize begin, gsize end, gpointer data)
{
  const Conv1x1Job *j = data;
  const gsize plane = j->plane;
  const int n_vec = (int) (plane / VEC);

  for (gsize item = begin; item < end; item++)
    {
      const int b = (int) (item / j->tiles), first = (int) (item % j->tiles) * MAX_V;
      const int V = MIN (MAX_V, n_vec - first);
      const float *x = j->inp + (gsize) b * j->K * plane + (gsize) first * VEC;

      for (int o0 = 0; o0 < j->O; o0 += TILE_CO)
        tile_funcs[V - 1] (j->out + ((gsize) b * j->O + o0) * plane + (gsize) first * VEC, x,
                           plane, j->weight + o0 * j->ro, j->ro, j->ri, j->K,
                           j->bias != NULL ? j->bias + o0 : NULL, j->accumulate);
    }
}

static void
run (float *out, const float *inp, const float *weight, const float *bias, gsize ro, gsize ri,
     int B, int O, int K, gsize plane, gboolean accumulate)
{
  const int n_vec = (int) (plane / VEC);
  Conv1x1Job j = { out, inp, weight, bias, ro, ri, O, K, plane, accumulate,
                   (n_vec + MAX_V - 1) / MAX_V };

  ddpm_parallel_for ((gsize) B * j.tiles, 1, tiles_range, &j);
}

void
ddpm_conv1x1_forward (float *out, const float *inp, const float *weight, const float *bias,
                      const DdpmConvShape *s)
{
  /* an inference pass that may use bf16 (cpu-features.c) */
  if (ddpm_layers_use_bf16 () && ddpm_conv1x1_forward_bf16 (out, inp, weight, bias, s))
    return;
  run (out, inp, weight, bias, s->C_in, 1, s->B, s->C_out, s->C_in, (gsize) s->H * s->W,
       FALSE);
}

gboolean
ddpm_conv1x1_input_grad_ok (const DdpmConvShape *s)
{
  return ddpm_layers_have_avx512 () && s->k == 1 && s->stride == 1 && s->pad_begin == 0
         && s->pad_end == 0 && s->C_in % TILE_CO == 0 && (s->H * s->W) % VEC == 0;
}

/* dinp[b][ci][p] += Σ_co w[co][ci] · dout[b][co][p]: the forward's kernel
 * with the weights read transposed, the batch in one pass (through sgemm
 * it was two small products per image). */
void
ddpm_conv1x1_input_grad (float *dinp, const float *dout, const float *weight,
                         const DdpmConvShape *s)
{
  run (dinp, dout, weight, NULL, 1, s->C_in, s->B, s->C_in, s->C_out, (gsize) s->H * s->W,
       TRUE);
}
