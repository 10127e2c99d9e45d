/* conv3x3.c: the "same" 3×3 convolution (stride 1, one pixel of zero
 * padding) computed directly with AVX-512: the forward pass, the input
 * gradient and the weight gradient.  Almost all of the UNet's arithmetic is this one
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
 * count.  Rows must be a multiple of 16 pixels, or exactly 8 (then a
 * vector is two rows of 8, loaded as two halves, and H must be even); a
 * last block of fewer than 8 output channels runs with zero weights in the
 * rest and stores only its own rows.
 *
 * The input gradient of a same-3×3 conv is again a same-3×3 conv, of dout
 * with the kernel flipped and its channel axes swapped:
 *   dinp[ci][y][x] = Σ_co Σ_ky Σ_kx w[co][ci][2 − ky][2 − kx] · padded dout[co][y + ky][x + kx],
 * so the same kernel serves both (pack_weights, transposed).
 *
 * The weight gradient sums over pixels instead:
 *   dw[co][ci][ky][kx] = Σ_b Σ_y Σ_x dout[b][co][y][x] · pad[b][ci][y + ky][x + kx],
 * a register tile being 3 output channels × the 9 taps of one input
 * channel (27 accumulators of 16 pixel lanes, reduced at the end): per
 * vector of 16 pixels, 3 + 9 loads for 27 multiply-adds.
 */
#include <string.h>

#include <immintrin.h>

#include "layers.h"
#include "simd-transpose.h"

#define TILE_CO 8
#define VEC 16
#define MAX_V 3
#define WG_CO 3   /* output channels per weight-gradient tile */

gboolean
ddpm_layers_have_avx512 (void)
{
  static int avx512 = -1;

  if (avx512 < 0)
    avx512 = __builtin_cpu_supports ("avx512f") && __builtin_cpu_supports ("avx512dq");
  return avx512;
}

gboolean
ddpm_conv3x3_direct_ok (const DdpmConvShape *s)
{
  /* any channel counts, for all three passes: a last block of fewer than
   * 8 output channels computes zero weights for the rest and stores only
   * its own (the head's 3 outputs: through im2col they took ~7 % of a
   * tiny forward); the weight gradient's tiles take any count anyway */
  return ddpm_layers_have_avx512 () && s->k == 3 && s->stride == 1 && s->pad_begin == 1 && s->pad_end == 1
         && (s->W % VEC == 0 || (s->W == VEC / 2 && s->H % 2 == 0));
}

/* Channels rounded up to whole blocks of 8: the packed weights' size. */
static gsize
round_block (int c)
{
  return (gsize) (c + TILE_CO - 1) / TILE_CO * TILE_CO;
}

/* The UNet's down-sampling conv: 3×3, stride 2, padding only at the end
 * (TF "SAME", our models) or one pixel on both sides (guided-diffusion's
 * Downsample, padding=1), even sizes; the output rows under the
 * forward's condition. */
gboolean
ddpm_conv3x3_stride2_ok (const DdpmConvShape *s)
{
  const int Ho = s->H / 2, Wo = s->W / 2;

  return ddpm_layers_have_avx512 () && s->k == 3 && s->stride == 2
         && (s->pad_begin == 0 || s->pad_begin == 1)
         && s->pad_end == 1 && s->H % 2 == 0 && s->W % 2 == 0
         && (Wo % VEC == 0 || (Wo == VEC / 2 && Ho % 2 == 0));
}

gsize
ddpm_conv3x3_scratch_size (const DdpmConvShape *s, int images)
{
  if (s->stride == 2)
    /* the four phases of each input plane, then the packed weights */
    return (gsize) images * s->C_in * 4 * (s->H / 2 + 1) * (s->W / 2 + 1)
           + round_block (s->C_in) * round_block (s->C_out) * 9;

  const int C = MAX (s->C_in, s->C_out);

  /* the padded images, then the packed weights */
  return (gsize) images * C * (s->H + 2) * (s->W + 2)
         + round_block (s->C_in) * round_block (s->C_out) * 9;
}

/* ------------------------------------------------------------ packing */

/* The input laid out for the kernel, plane by plane: zero-padded
 * (pad_range) or split into stride-2 phases (phase_range). */
typedef struct
{
  float       *dst;       /* (g, C, H + 2, W + 2) or (g, C, 4, H/2 + 1, W/2 + 1) */
  const float *src;       /* (g, C, H, W) */
  int          C, H, W;
  int          pad_begin; /* stride-2 phases: 0 or 1 zero pixel before */
} InputJob;

/* A row of W floats (a multiple of 8) from src to dst, inline: rows are
 * short (8 to 128 floats), where a memcpy call costs as much as the copy
 * (perf: 6 % of a forward pass went to memmove here). */
static inline __attribute__ ((always_inline, target ("avx512f,avx512dq"))) void
copy_row (float *dst, const float *src, int W)
{
  int x = 0;

  for (; x + VEC <= W; x += VEC)
    _mm512_storeu_ps (dst + x, _mm512_loadu_ps (src + x));
  if (x < W)
    _mm256_storeu_ps (dst + x, _mm256_loadu_ps (src + x));
}

static __attribute__ ((target ("avx512f,avx512dq"))) void
pad_range (gsize begin, gsize end, gpointer data)
{
  const InputJob *j = data;
  const int Hp = j->H + 2, Wp = j->W + 2;

  for (gsize plane = begin; plane < end; plane++)
    {
      float *dst = j->dst + plane * Hp * Wp;
      const float *src = j->src + plane * j->H * j->W;

      memset (dst, 0, sizeof (float) * Wp);
      for (int y = 0; y < j->H; y++)
        {
          float *row = dst + (gsize) (y + 1) * Wp;
          row[0] = 0.0f;
          copy_row (row + 1, src + (gsize) y * j->W, j->W);
          row[Wp - 1] = 0.0f;
        }
      memset (dst + (gsize) (Hp - 1) * Wp, 0, sizeof (float) * Wp);
    }
}

/* wpack[o/8][i][tap][o%8] for the conv from I to O channels: the forward
 * weight w (O, I, 3, 3) as is, or (transposed) the input-gradient kernel
 * w'[i][o][t] = w[o][i][8 − t] with O = C_in, I = C_out; zero past O in
 * the last block.
 *
 * Every call packs the whole layer (the weights change between training
 * steps, and an inference model keeps no second copy), a pass over all
 * the parameters per forward: for a 552 M-parameter model, one value at a
 * time on one thread, 0.3 s of a 7 s forward.  Forward weights: with
 * k = 9·i + tap, wpack[o/8][k][o%8] = w[o][k], i.e. each block of 8
 * output channels is an 8 × 9·I transpose, done 8 × 8 in registers while
 * reading the 8 rows front to back.  Input-gradient weights (training
 * only): one gather per (i, tap) collects the 8 values, a fixed stride
 * apart.  The items (block, run of k) are split over the team. */
#define PACK_RUN 128   /* values of k per item */

typedef struct
{
  float       *wpack;
  const float *w;
  int          C_in, O, I;
  gsize        K;       /* 9·I */
  gsize        runs;    /* items per block */
  gboolean     transposed;
} PackJob;

static __attribute__ ((target ("avx512f,avx512dq"))) void
pack_range (gsize begin, gsize end, gpointer data)
{
  const PackJob *j = data;
  const __m256i lane = _mm256_setr_epi32 (0, 1, 2, 3, 4, 5, 6, 7);

  for (gsize item = begin; item < end; item++)
    {
      const int ob = (int) (item / j->runs), o0 = ob * TILE_CO, rows = MIN (TILE_CO, j->O - o0);
      const gsize k0 = item % j->runs * PACK_RUN, k1 = MIN (j->K, k0 + PACK_RUN);
      float *dst = j->wpack + (gsize) ob * j->K * TILE_CO;
      gsize k = k0;

      if (j->transposed)
        {
          /* w'[o][i][t] = w[i][o][8 − t]: o0 + r is 9·r further on */
          const __m256i index = _mm256_mullo_epi32 (lane, _mm256_set1_epi32 (9));
          const __m256 live = _mm256_castsi256_ps (_mm256_cmpgt_epi32 (_mm256_set1_epi32 (rows), lane));

          for (; k < k1; k++)
            {
              const gsize i = k / 9, t = k % 9;
              const float *src = j->w + (i * j->C_in + o0) * 9 + (8 - t);

              _mm256_storeu_ps (dst + k * TILE_CO,
                                _mm256_mask_i32gather_ps (_mm256_setzero_ps (), src, index, live, 4));
            }
          continue;
        }
      const float *row = j->w + (gsize) o0 * j->K;
      if (rows == TILE_CO)
        for (; k + 8 <= k1; k += 8)
          {
            __m256 r[8];

            for (int o = 0; o < 8; o++)
              r[o] = _mm256_loadu_ps (row + o * j->K + k);
            ddpm_transpose8x8_ps (r);
            for (int m = 0; m < 8; m++)
              _mm256_storeu_ps (dst + (k + m) * TILE_CO, r[m]);
          }
      for (; k < k1; k++)
        for (int o = 0; o < TILE_CO; o++)
          dst[k * TILE_CO + o] = o < rows ? row[o * j->K + k] : 0.0f;
    }
}

static void
pack_weights (float *wpack, const float *w, int C_out, int C_in, gboolean transposed)
{
  const int O = transposed ? C_in : C_out, I = transposed ? C_out : C_in;
  const gsize K = (gsize) I * 9;
  PackJob j = { wpack, w, C_in, O, I, K, (K + PACK_RUN - 1) / PACK_RUN, transposed };

  ddpm_parallel_for (round_block (O) / TILE_CO * j.runs, 16, pack_range, &j);
}

/* ------------------------------------------------------------- kernel */

/* 16 input pixels: one unaligned load, or (rows of 8) the 8 at p and the
 * 8 one padded row below. */
static inline __attribute__ ((always_inline, target ("avx512f,avx512dq"))) __m512
load_vec (const float *p, int Wp, int seg)
{
  if (seg == VEC)
    return _mm512_loadu_ps (p);
  return _mm512_insertf32x8 (_mm512_castps256_ps512 (_mm256_loadu_ps (p)),
                             _mm256_loadu_ps (p + Wp), 1);
}

/* One register tile: 8 channels of `out` from o0, V vectors whose first
 * pixels are at offsets px[v] in the output plane and pp[v] in the input
 * layout, whose tap t = 3·ky + kx is taps[t] further on (ky·Wp + kx in a
 * padded plane; see the stride-2 phases below).  accumulate: add to out
 * instead of starting from bias. */
static inline __attribute__ ((always_inline, target ("avx512f,avx512dq"))) void
tile_kernel (float *out, gsize out_plane, const float *pad, gsize pad_plane, int Wp,
             const gsize *taps, const float *wpack, const float *bias, int I,
             const gsize *px, const gsize *pp, int V, int seg, gboolean accumulate, int rows)
{
  __m512 acc[TILE_CO][MAX_V];

#pragma GCC unroll 8
  for (int r = 0; r < TILE_CO; r++)
#pragma GCC unroll 3
    for (int v = 0; v < V; v++)
      {
        const float *o = out + r * out_plane + px[v];
        if (r >= rows)
          acc[r][v] = _mm512_setzero_ps ();
        else
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
              x[v] = load_vec (plane + pp[v] + taps[ky * 3 + kx], Wp, seg);
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
      if (r < rows)
        _mm512_storeu_ps (out + r * out_plane + px[v], acc[r][v]);
}

/* The kernel for V = 1, 2, 3 and both row widths as separate bodies, so
 * that the accumulators of each stay in registers. */
#define DEFINE_TILE(V, SEG)                                                              \
  static __attribute__ ((noinline, target ("avx512f,avx512dq"))) void                  \
  tile_##V##_##SEG (float *out, gsize out_plane, const float *pad, gsize pad_plane,     \
                    int Wp, const gsize *taps, const float *wpack, const float *bias,  \
                    int I, const gsize *px, const gsize *pp, gboolean accumulate,      \
                    int rows)                                                          \
  {                                                                                    \
    tile_kernel (out, out_plane, pad, pad_plane, Wp, taps, wpack, bias, I, px, pp, V,  \
                 SEG, accumulate, rows);                                               \
  }
DEFINE_TILE (1, 16)
DEFINE_TILE (2, 16)
DEFINE_TILE (3, 16)
DEFINE_TILE (1, 8)
DEFINE_TILE (2, 8)
DEFINE_TILE (3, 8)

typedef void (*TileFunc) (float *, gsize, const float *, gsize, int, const gsize *,
                          const float *, const float *, int, const gsize *, const gsize *,
                          gboolean, int);

static const TileFunc tile_funcs[2][MAX_V] = {
  { tile_1_16, tile_2_16, tile_3_16 },
  { tile_1_8, tile_2_8, tile_3_8 },
};

/* Where vector v of an image starts: pixel offset in the output plane and
 * offset of its tap (0, 0) in the padded plane. */
static inline void
vector_offsets (int v, int W, int Wp, gsize *px, gsize *pp)
{
  if (W >= VEC)
    {
      const int per_row = W / VEC, y = v / per_row, x = v % per_row * VEC;
      *px = (gsize) y * W + x;
      *pp = (gsize) y * Wp + x;
    }
  else
    {
      /* rows 2v and 2v + 1 */
      *px = (gsize) v * VEC;
      *pp = (gsize) (2 * v) * Wp;
    }
}

typedef struct
{
  float       *out;       /* (g, O, H, W) */
  const float *pad;       /* (g, I, in_plane): padded planes or stride-2 phases */
  const float *wpack;
  const float *bias;      /* (O) or NULL */
  int          I, O, H, W; /* H, W: the output's */
  int          tiles;     /* register tiles of up to 3 vectors per image */
  gboolean     accumulate;
  int          Wp;        /* a row of the input layout */
  gsize        in_plane;  /* floats per input channel */
  gsize        taps[9];   /* where tap (ky, kx) reads, from the output pixel's spot */
  int          pad_begin; /* stride 2: the conv's padding before (phase_range) */
} TileJob;

/* The job for the same conv on (H + 2, W + 2) padded planes. */
static TileJob
same_job (float *out, const float *pad, const float *wpack, const float *bias, int I, int O,
          int H, int W, gboolean accumulate)
{
  const int n_vec = H * W / VEC;
  TileJob tj = { out, pad, wpack, bias, I, O, H, W, (n_vec + MAX_V - 1) / MAX_V, accumulate,
                 W + 2, (gsize) (H + 2) * (W + 2), { 0 }, 0 };

  for (int t = 0; t < 9; t++)
    tj.taps[t] = (gsize) (t / 3) * tj.Wp + t % 3;
  return tj;
}

/* Items are (image, group of 3 vectors); every item runs all output
 * channel blocks over the same input rows, which stay in cache. */
static void
tiles_range (gsize begin, gsize end, gpointer data)
{
  const TileJob *j = data;
  const int n_vec = j->H * j->W / VEC, Wp = j->Wp;
  const gsize out_plane = (gsize) j->H * j->W, pad_plane = j->in_plane;
  const int half = j->W >= VEC ? 0 : 1;

  for (gsize item = begin; item < end; item++)
    {
      const int b = (int) (item / j->tiles), first = (int) (item % j->tiles) * MAX_V;
      const int V = MIN (MAX_V, n_vec - first);
      const TileFunc tile = tile_funcs[half][V - 1];
      gsize px[MAX_V], pp[MAX_V];

      for (int v = 0; v < V; v++)
        vector_offsets (first + v, j->W, Wp, &px[v], &pp[v]);
      const float *pad = j->pad + (gsize) b * j->I * pad_plane;
      for (int o0 = 0; o0 < j->O; o0 += TILE_CO)
        tile (j->out + ((gsize) b * j->O + o0) * out_plane, out_plane, pad, pad_plane, Wp,
              j->taps, j->wpack + (gsize) (o0 / TILE_CO) * j->I * 9 * TILE_CO,
              j->bias != NULL ? j->bias + o0 : NULL, j->I, px, pp, j->accumulate,
              MIN (TILE_CO, j->O - o0));
    }
}

/* tj's convolution of src (B, tj->I, H, W) into out (B, tj->O, tj->H,
 * tj->W), in groups of g images: `layout` writes a group's input as the
 * kernel reads it into tj->pad (scratch sized for g images), then the
 * tiles run. */
static void
run (TileJob *tj, float *out, const float *src, int B, int H, int W, int g,
     DdpmRangeFunc layout)
{
  for (int b0 = 0; b0 < B; b0 += g)
    {
      const int n = MIN (g, B - b0);
      InputJob ij = { (float *) tj->pad, src + (gsize) b0 * tj->I * H * W, tj->I, H, W,
                      tj->pad_begin };

      ddpm_parallel_for ((gsize) n * tj->I, MAX (1, 4096 / (H * W)), layout, &ij);
      tj->out = out + (gsize) b0 * tj->O * tj->H * tj->W;
      ddpm_parallel_for ((gsize) n * tj->tiles, 1, tiles_range, tj);
    }
}

void
ddpm_conv3x3_forward (float *out, const float *inp, const float *weight, const float *bias,
                      const DdpmConvShape *s, int g, float *scratch)
{
  const gsize padded = (gsize) g * MAX (s->C_in, s->C_out) * (s->H + 2) * (s->W + 2);
  float *wpack = scratch + padded;

  TileJob tj = same_job (NULL, scratch, wpack, bias, s->C_in, s->C_out, s->H, s->W, FALSE);

  pack_weights (wpack, weight, s->C_out, s->C_in, FALSE);
  run (&tj, out, inp, s->B, s->H, s->W, g, pad_range);
}

void
ddpm_conv3x3_forward_padded (float *out, const float *padded, const float *weight,
                             const float *bias, const DdpmConvShape *s, float *scratch)
{
  /* an inference pass that may use bf16 (cpu-features.c) */
  if (ddpm_layers_use_bf16 () && ddpm_conv3x3_forward_padded_bf16 (out, padded, weight, bias, s))
    return;

  TileJob tj = same_job (out, padded, scratch, bias, s->C_in, s->C_out, s->H, s->W, FALSE);

  pack_weights (scratch, weight, s->C_out, s->C_in, FALSE);
  ddpm_parallel_for ((gsize) s->B * tj.tiles, 1, tiles_range, &tj);
}

/* ------------------------------------------------------------ stride 2 */

/* With stride 2 the 16 inputs a vector of outputs needs at one tap are
 * every other pixel of a row.  Splitting each input plane into its four
 * phases q[py][px][Y][X] = in[2Y + py][2X + px] (zero past the edge:
 * that is the conv's end padding), of (H/2 + 1) × (W/2 + 1), makes them
 * consecutive again:
 *
 *   out[y][x] = Σ_ky Σ_kx w[ky][kx] · q[ky mod 2][kx mod 2][y + ⌊ky/2⌋][x + ⌊kx/2⌋]
 *
 * which is the same register tile with other tap offsets.  It replaces
 * im2col (9/4 of the input written) + sgemm + scatter.  With one pixel of
 * padding before as well (pad_begin = 1) the phases are those of the
 * input shifted by one, q[py][px][Y][X] = in[2Y + py − 1][2X + px − 1]
 * (zero outside), and the taps stay the same. */
static void
phase_range (gsize begin, gsize end, gpointer data)
{
  const InputJob *j = data;
  const int H = j->H, W = j->W, Hq = H / 2 + 1, Wq = W / 2 + 1;
  const gsize qplane = (gsize) Hq * Wq;

  for (gsize plane = begin; plane < end; plane++)
    {
      const float *src = j->src + plane * H * W;
      float *q = j->dst + plane * 4 * qplane;

      for (int ph = 0; ph < 4; ph++)
        {
          const int py = ph / 2, px = ph % 2;
          float *dst = q + ph * qplane;

          for (int Y = 0; Y < Hq; Y++)
            {
              float *row = dst + (gsize) Y * Wq;
              const int y = 2 * Y + py - j->pad_begin;

              if (y < 0 || y >= H)
                {
                  memset (row, 0, sizeof (float) * Wq);
                  continue;
                }
              const float *in = src + (gsize) y * W;
              if (j->pad_begin == 0)
                {
                  for (int X = 0; X < Wq - 1; X++)
                    row[X] = in[2 * X + px];
                  row[Wq - 1] = 0.0f;   /* x = W + px: past the edge (W is even) */
                }
              else
                /* x = 2X + px − 1: −1 for X = 0, px = 0; W − 1 at most */
                for (int X = 0; X < Wq; X++)
                  {
                    const int x = 2 * X + px - 1;
                    row[X] = x >= 0 && x < W ? in[x] : 0.0f;
                  }
            }
        }
    }
}

void
ddpm_conv3x3_forward_stride2 (float *out, const float *inp, const float *weight,
                              const float *bias, const DdpmConvShape *s, int g,
                              float *scratch)
{
  const int Ho = s->H / 2, Wo = s->W / 2, Wq = Wo + 1;
  const gsize qplane = (gsize) (Ho + 1) * Wq;
  float *q = scratch, *wpack = scratch + (gsize) g * s->C_in * 4 * qplane;
  const int n_vec = Ho * Wo / VEC;
  TileJob tj = { NULL, q, wpack, bias, s->C_in, s->C_out, Ho, Wo, (n_vec + MAX_V - 1) / MAX_V,
                 FALSE, Wq, 4 * qplane, { 0 }, s->pad_begin };

  for (int t = 0; t < 9; t++)
    {
      const int ky = t / 3, kx = t % 3;
      tj.taps[t] = (gsize) ((ky % 2) * 2 + kx % 2) * qplane + (gsize) (ky / 2) * Wq + kx / 2;
    }
  if (ddpm_layers_use_bf16 ())
    {
      /* an inference pass in bf16: the phases in fp32, group by group,
       * then the same register tile in vdpbf16ps (conv-bf16.c) */
      gboolean ok = TRUE;

      for (int b0 = 0; b0 < s->B && ok; b0 += g)
        {
          const int n = MIN (g, s->B - b0);
          DdpmConvShape sg = *s;
          InputJob ij = { q, inp + (gsize) b0 * s->C_in * s->H * s->W, s->C_in, s->H, s->W,
                          s->pad_begin };

          sg.B = n;
          ddpm_parallel_for ((gsize) n * s->C_in, MAX (1, 4096 / (s->H * s->W)), phase_range,
                             &ij);
          ok = ddpm_conv3x3_forward_phases_bf16 (out + (gsize) b0 * s->C_out * Ho * Wo, q,
                                                 weight, bias, &sg);
        }
      if (ok)
        return;
    }
  pack_weights (wpack, weight, s->C_out, s->C_in, FALSE);
  run (&tj, out, inp, s->B, s->H, s->W, g, phase_range);
}

void
ddpm_conv3x3_input_grad (float *dinp, const float *dout, const float *weight,
                         const DdpmConvShape *s, int g, gboolean accumulate, float *scratch)
{
  const gsize padded = (gsize) g * MAX (s->C_in, s->C_out) * (s->H + 2) * (s->W + 2);
  float *wpack = scratch + padded;

  pack_weights (wpack, weight, s->C_out, s->C_in, TRUE);
  TileJob tj = same_job (NULL, scratch, wpack, NULL, s->C_out, s->C_in, s->H, s->W,
                         accumulate);

  run (&tj, dinp, dout, s->B, s->H, s->W, g, pad_range);
}

/* ---------------------------------------------------- weight gradient */

typedef struct
{
  float       *dweight;   /* (C_out, C_in, 3, 3), += */
  const float *dout;      /* (g, C_out, H, W) */
  const float *pad;       /* (g, C_in, H + 2, W + 2) */
  int          g, C_in, C_out, H, W;
} WeightGradJob;

/* Output channels co … co + R − 1 and input channel ci: 9·R dot products
 * over every pixel of the group's images.  The pixels are walked row by
 * row (two rows per vector when W = 8) rather than through
 * vector_offsets: its division per vector sat in the load addresses of
 * this loop, which has no other work between its 27 FMAs. */
static inline __attribute__ ((always_inline, target ("avx512f,avx512dq"))) void
weight_grad_tile (const WeightGradJob *j, int co, int ci, int seg, int R)
{
  const int W = j->W, Wp = W + 2, rows_per_vec = VEC / seg;
  const gsize out_plane = (gsize) j->H * W, pad_plane = (gsize) (j->H + 2) * Wp;
  __m512 acc[WG_CO][9];

#pragma GCC unroll 3
  for (int r = 0; r < R; r++)
#pragma GCC unroll 9
    for (int t = 0; t < 9; t++)
      acc[r][t] = _mm512_setzero_ps ();

  for (int b = 0; b < j->g; b++)
    {
      const float *d = j->dout + ((gsize) b * j->C_out + co) * out_plane;
      const float *plane = j->pad + ((gsize) b * j->C_in + ci) * pad_plane;

      for (int y = 0; y < j->H; y += rows_per_vec, d += rows_per_vec * W,
               plane += rows_per_vec * Wp)
        for (int x = 0; x < W; x += VEC)
          {
            __m512 g[WG_CO];

#pragma GCC unroll 3
            for (int r = 0; r < R; r++)
              g[r] = _mm512_loadu_ps (d + r * out_plane + x);
#pragma GCC unroll 3
            for (int ky = 0; ky < 3; ky++)
#pragma GCC unroll 3
              for (int kx = 0; kx < 3; kx++)
                {
                  __m512 xv = load_vec (plane + x + (gsize) ky * Wp + kx, Wp, seg);
                  /* one load for the R FMAs: without this GCC folds the
                   * load into each FMA, R loads (mostly line-crossing)
                   * where one will do, and the loop becomes load-bound */
                  __asm__ ("" : "+v"(xv));
#pragma GCC unroll 3
                  for (int r = 0; r < R; r++)
                    acc[r][ky * 3 + kx] = _mm512_fmadd_ps (g[r], xv, acc[r][ky * 3 + kx]);
                }
          }
    }

#pragma GCC unroll 3
  for (int r = 0; r < R; r++)
#pragma GCC unroll 9
    for (int t = 0; t < 9; t++)
      j->dweight[((gsize) (co + r) * j->C_in + ci) * 9 + t] += _mm512_reduce_add_ps (acc[r][t]);
}

#define DEFINE_WEIGHT_GRAD(R, SEG)                                                       \
  static __attribute__ ((noinline, target ("avx512f,avx512dq"))) void                  \
  weight_grad_##R##_##SEG (const WeightGradJob *j, int co, int ci)                     \
  {                                                                                    \
    weight_grad_tile (j, co, ci, SEG, R);                                              \
  }
DEFINE_WEIGHT_GRAD (1, 16)
DEFINE_WEIGHT_GRAD (2, 16)
DEFINE_WEIGHT_GRAD (3, 16)
DEFINE_WEIGHT_GRAD (1, 8)
DEFINE_WEIGHT_GRAD (2, 8)
DEFINE_WEIGHT_GRAD (3, 8)

typedef void (*WeightGradFunc) (const WeightGradJob *, int, int);

static const WeightGradFunc weight_grad_funcs[2][WG_CO] = {
  { weight_grad_1_16, weight_grad_2_16, weight_grad_3_16 },
  { weight_grad_1_8, weight_grad_2_8, weight_grad_3_8 },
};

/* Items are (ci, block of up to 3 output channels), blocks fastest: a
 * thread's run of items reads one padded input plane again and again
 * from L1. */
static void
weight_grad_range (gsize begin, gsize end, gpointer data)
{
  const WeightGradJob *j = data;
  const int blocks = (j->C_out + WG_CO - 1) / WG_CO;

  for (gsize item = begin; item < end; item++)
    {
      const int ci = (int) (item / blocks), co = (int) (item % blocks) * WG_CO;
      const int R = MIN (WG_CO, j->C_out - co);

      weight_grad_funcs[j->W >= VEC ? 0 : 1][R - 1] (j, co, ci);
    }
}

/* The weight gradient of n images whose inputs are zero-bordered planes. */
static void
weight_grad_group (float *dweight, const float *dout, const float *pad, int n,
                   const DdpmConvShape *s)
{
  WeightGradJob wj = { dweight, dout, pad, n, s->C_in, s->C_out, s->H, s->W };

  ddpm_parallel_for ((gsize) s->C_in * ((s->C_out + WG_CO - 1) / WG_CO), 1,
                     weight_grad_range, &wj);
}

void
ddpm_conv3x3_weight_grad (float *dweight, const float *dout, const float *inp,
                          const DdpmConvShape *s, int g, float *scratch)
{
  const int H = s->H, W = s->W;

  for (int b0 = 0; b0 < s->B; b0 += g)
    {
      const int n = MIN (g, s->B - b0);
      InputJob pj = { scratch, inp + (gsize) b0 * s->C_in * H * W, s->C_in, H, W, 0 };

      ddpm_parallel_for ((gsize) n * s->C_in, MAX (1, 4096 / (H * W)), pad_range, &pj);
      weight_grad_group (dweight, dout + (gsize) b0 * s->C_out * H * W, scratch, n, s);
    }
}

/* The same on an input held zero-bordered: no copy.  Still g images at a
 * time, so that a run of items finds the group's input planes in L1. */
void
ddpm_conv3x3_weight_grad_padded (float *dweight, const float *dout, const float *padded,
                                 const DdpmConvShape *s, int g)
{
  const gsize in_image = (gsize) s->C_in * (s->H + 2) * (s->W + 2);
  const gsize out_image = (gsize) s->C_out * s->H * s->W;

  for (int b0 = 0; b0 < s->B; b0 += g)
    weight_grad_group (dweight, dout + b0 * out_image, padded + b0 * in_image,
                       MIN (g, s->B - b0), s);
}
