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

static inline __attribute__ ((always_inline, target ("avx512f"))) void
tile_kernel (float *out, const float *inp, gsize plane, const float *w, int C_in,
             const float *bias, int V)
{
  __m512 acc[TILE_CO][MAX_V];

#pragma GCC unroll 8
  for (int r = 0; r < TILE_CO; r++)
#pragma GCC unroll 3
    for (int v = 0; v < V; v++)
      acc[r][v] = _mm512_set1_ps (bias != NULL ? bias[r] : 0.0f);

  for (int i = 0; i < C_in; i++)
    {
      const float *x = inp + (gsize) i * plane;
      __m512 xv[MAX_V];

#pragma GCC unroll 3
      for (int v = 0; v < V; v++)
        xv[v] = _mm512_loadu_ps (x + v * VEC);
#pragma GCC unroll 8
      for (int r = 0; r < TILE_CO; r++)
        {
          const __m512 wr = _mm512_set1_ps (w[(gsize) r * C_in + i]);
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
  tile_##V (float *out, const float *inp, gsize plane, const float *w, int C_in,       \
            const float *bias)                                                         \
  {                                                                                    \
    tile_kernel (out, inp, plane, w, C_in, bias, V);                                   \
  }
DEFINE_TILE (1)
DEFINE_TILE (2)
DEFINE_TILE (3)

typedef struct
{
  float       *out;
  const float *inp, *weight, *bias;
  const DdpmConvShape *s;
  int          tiles;     /* per image */
} Conv1x1Job;

/* Items are (image, group of 3 vectors), each running every block of 8
 * output channels over the same input pixels. */
static void
tiles_range (gsize begin, gsize end, gpointer data)
{
  const Conv1x1Job *j = data;
  const DdpmConvShape *s = j->s;
  const gsize plane = (gsize) s->H * s->W;
  const int n_vec = (int) (plane / VEC);

  for (gsize item = begin; item < end; item++)
    {
      const int b = (int) (item / j->tiles), first = (int) (item % j->tiles) * MAX_V;
      const int V = MIN (MAX_V, n_vec - first);
      const float *x = j->inp + (gsize) b * s->C_in * plane + (gsize) first * VEC;

      for (int o0 = 0; o0 < s->C_out; o0 += TILE_CO)
        {
          float *y = j->out + ((gsize) b * s->C_out + o0) * plane + (gsize) first * VEC;
          const float *w = j->weight + (gsize) o0 * s->C_in;
          const float *bias = j->bias != NULL ? j->bias + o0 : NULL;

          if (V == 3)
            tile_3 (y, x, plane, w, s->C_in, bias);
          else if (V == 2)
            tile_2 (y, x, plane, w, s->C_in, bias);
          else
            tile_1 (y, x, plane, w, s->C_in, bias);
        }
    }
}

void
ddpm_conv1x1_forward (float *out, const float *inp, const float *weight, const float *bias,
                      const DdpmConvShape *s)
{
  const int n_vec = s->H * s->W / VEC;
  Conv1x1Job j = { out, inp, weight, bias, s, (n_vec + MAX_V - 1) / MAX_V };

  ddpm_parallel_for ((gsize) s->B * j.tiles, 1, tiles_range, &j);
}
