/* conv-bf16.c: the inference convolutions (same 3×3, and 1×1) in bf16
 * with AVX512_BF16: weights and inputs rounded to bf16, products summed in
 * fp32 by vdpbf16ps.
 *
 * WHY
 *
 * vdpbf16ps does two multiply-adds per fp32 lane, 32 per instruction
 * against vfmadd's 16, at the same rate on Zen 5: twice the arithmetic
 * peak for the convolutions, which are almost all of a forward pass.  The
 * inputs lose mantissa bits (8 significant bits, relative rounding error
 * ≤ 2⁻⁹ per factor), the sums do not (fp32 accumulators): see the bounds
 * in tests/test-bf16.c and the end-to-end gates there.
 *
 * HOW
 *
 * vdpbf16ps (acc, a, b) adds a[2i]·b[2i] + a[2i+1]·b[2i+1] to fp32 lane i,
 * so each 32-bit lane must hold a PAIR of the summed-over index.  We pair
 * input channels: the input is rewritten once per call as
 *   xin[b][p][pixel] = (bf16 in[b][2p][pixel], bf16 in[b][2p+1][pixel])
 * (a zero channel after an odd last one), the weights as
 *   wpk[o/8][p][tap][o%8] = (bf16 w[o][2p][tap], bf16 w[o][2p+1][tap]),
 * and the register tile of conv3x3.c carries over unchanged: 8 output
 * channels × V ≤ 3 vectors of 16 pixels, for each channel pair and tap V
 * loads of 16 pairs and 8 broadcast weight pairs, 8·V vdpbf16ps (64·V
 * multiply-adds).  A 1×1 conv is the same tile with one tap over the
 * plane read as a flat row; its input is rounded by the tiles themselves,
 * a run of up to 8 tiles at a time into the part's own buffer (a pass of
 * its own over the input, written and read back as pairs, had made the
 * 1×1 skip convs of the res blocks run at a quarter of the kernel's
 * peak).  Each output is summed in a fixed order by one thread, so the
 * thread count does not change the result.
 *
 * FUSED EPILOGUES
 *
 * For the res blocks (unet.c) the accumulators can start from a bias per
 * image, (B, C_out) (conv1's bias plus the time-embedding projection),
 * and a residual plane (the block's skip, possibly out itself: each
 * output is read and written by the one tile that owns it) can be added
 * to the sums before they are stored, so that neither costs a pass over
 * planes that do not fit in L2.  The 1×1 conv
 * can read its input as the concatenation of two tensors along channels
 * (the up path's x and skip), without the copy.
 *
 * MEMORY
 *
 * The bf16 copies live in a per-thread workspace (ddpm_bf16_workspace):
 * the input pairs of a 3×3 conv, half the size of the fp32 input, and
 * the packed weights, half the size of the fp32 pack conv3x3.c already makes on every
 * call.  The model keeps only its fp32 weights: no second copy of a 552 M
 * parameter model (1.1 GB more), at the price of re-rounding one layer's
 * weights per call, 9·C_in·C_out values against 9·C_in·C_out·H·W
 * multiply-adds.
 */
#include <stdlib.h>
#include <string.h>

#include <immintrin.h>

#include "layers.h"
#include "simd-transpose.h"

#define TILE_CO 8
#define VEC 16
#define MAX_V 3
/* the 1×1 kernel's rounded input runs (tiles_range) */
#define SLAB_TILES 8
#define SLAB_BYTES (128 * 1024)
#define BF16_TARGET "avx512f,avx512dq,avx512bw,avx512bf16"

/* ----------------------------------------------------------- workspace */

typedef struct
{
  gpointer data;
  gsize    size;
} Workspace;

static void
workspace_free (gpointer p)
{
  Workspace *w = p;

  free (w->data);
  g_free (w);
}

static GPrivate workspace_key = G_PRIVATE_INIT (workspace_free);

gpointer
ddpm_bf16_workspace (gsize bytes)
{
  Workspace *w = g_private_get (&workspace_key);

  if (w == NULL)
    {
      w = g_new0 (Workspace, 1);
      g_private_set (&workspace_key, w);
    }
  if (w->size < bytes)
    {
      void *p = NULL;

      free (w->data);
      w->data = NULL;
      w->size = 0;
      if (posix_memalign (&p, 64, bytes) != 0)
        return NULL;
      w->data = p;
      w->size = bytes;
    }
  return w->data;
}

/* ------------------------------------------------------------- packing */

/* wpk[o/8][p][t][o%8] from w (C_out, C_in, T): zero past C_out and for the
 * channel after an odd last one.  A pass over the whole layer per call
 * (no bf16 copy is kept), reading each block's 8 rows of w front to back:
 * a row's 2·T values of pair p are rounded by one vcvtne2ps2bf16 (as
 * ddpm_float_to_bf16) and permuted into T (lo, hi) pairs, and the 8 rows'
 * pairs are transposed 8 × 8 in registers (simd-transpose.h).  A partial
 * last block or an odd last channel takes one gather per tap (the fast
 * path's 8 rows would read past the layer).  The (block, pair) items are
 * split over the team: one value at a time on one thread this took 6 % of
 * a bf16 forward of a 552 M-parameter model. */
typedef struct
{
  guint32     *wpk;
  const float *w;
  int          C_out, C_in, T, P;
} PackJob;

/* The 2·T ≤ 18 values of pair p of one row as T pairs in lanes 0 … T − 1. */
static inline __attribute__ ((always_inline, target (BF16_TARGET))) __m512i
row_pairs (const float *src, int T)
{
  /* dword t = halves (t, T + t) of the rounded row */
  static const short idx9[32] = { 0, 9, 1, 10, 2, 11, 3, 12, 4, 13, 5, 14, 6, 15, 7, 16, 8, 17 };
  const __m512 a = _mm512_maskz_loadu_ps ((__mmask16) ((1u << MIN (2 * T, 16)) - 1), src);
  const __m512 b = _mm512_maskz_loadu_ps ((__mmask16) ((1u << MAX (2 * T - 16, 0)) - 1), src + 16);
  const __m512i halves = (__m512i) _mm512_cvtne2ps_pbh (b, a);

  /* T = 1: the pair is already (lo, hi) */
  return T == 9 ? _mm512_permutexvar_epi16 (_mm512_loadu_si512 (idx9), halves) : halves;
}

static __attribute__ ((target (BF16_TARGET))) void
pack_range (gsize begin, gsize end, gpointer data)
{
  const PackJob *j = data;
  const __m256i lane = _mm256_setr_epi32 (0, 1, 2, 3, 4, 5, 6, 7);
  const __m256i index = _mm256_mullo_epi32 (lane, _mm256_set1_epi32 (j->C_in * j->T));
  const gsize K = (gsize) j->C_in * j->T;

  for (gsize item = begin; item < end; item++)
    {
      const int ob = (int) (item / j->P), p = (int) (item % j->P), o0 = ob * TILE_CO;
      const int i = 2 * p;
      guint32 *dst = j->wpk + item * j->T * TILE_CO;

      if (o0 + TILE_CO <= j->C_out && i + 1 < j->C_in && (j->T == 9 || j->T == 1))
        {
          const float *row = j->w + (gsize) o0 * K + (gsize) i * j->T;
          __m256 r[8];
          guint32 last[8];

          for (int o = 0; o < 8; o++)
            {
              const __m512i pairs = row_pairs (row + o * K, j->T);

              r[o] = _mm256_castsi256_ps (_mm512_castsi512_si256 (pairs));
              last[o] = (guint32) _mm_cvtsi128_si32 (_mm512_extracti32x4_epi32 (pairs, 2));
            }
          if (j->T == 1)
            {
              /* lane 0 of each row: one pair per output channel */
              for (int o = 0; o < 8; o++)
                dst[o] = (guint32) _mm_cvtsi128_si32 (_mm256_castsi256_si128 (_mm256_castps_si256 (r[o])));
              continue;
            }
          ddpm_transpose8x8_ps (r);
          for (int t = 0; t < 8; t++)
            _mm256_storeu_ps ((float *) (dst + t * TILE_CO), r[t]);
          memcpy (dst + 8 * TILE_CO, last, sizeof last);
          continue;
        }

      const __m256 live = _mm256_castsi256_ps (
        _mm256_cmpgt_epi32 (_mm256_set1_epi32 (j->C_out - o0), lane));
      const __m256 live_hi = i + 1 < j->C_in ? live : _mm256_setzero_ps ();

      for (int t = 0; t < j->T; t++)
        {
          const float *lo = j->w + ((gsize) o0 * j->C_in + i) * j->T + t;
          const __m256 l = _mm256_mask_i32gather_ps (_mm256_setzero_ps (), lo, index, live, 4);
          const __m256 h = _mm256_mask_i32gather_ps (_mm256_setzero_ps (), lo + j->T, index,
                                                     live_hi, 4);
          /* 16 bf16: the 8 lo then the 8 hi, interleaved into pairs */
          const __m256i both = (__m256i) _mm512_cvtneps_pbh (
            _mm512_insertf32x8 (_mm512_castps256_ps512 (l), h, 1));
          const __m128i lo8 = _mm256_castsi256_si128 (both), hi8 = _mm256_extracti128_si256 (both, 1);

          _mm256_storeu_si256 ((__m256i *) (dst + t * TILE_CO),
                               _mm256_set_m128i (_mm_unpackhi_epi16 (lo8, hi8),
                                                 _mm_unpacklo_epi16 (lo8, hi8)));
        }
    }
}

static void
pack_weights (guint32 *wpk, const float *w, int C_out, int C_in, int T)
{
  PackJob j = { wpk, w, C_out, C_in, T, (C_in + 1) / 2 };

  ddpm_parallel_for ((gsize) (C_out + TILE_CO - 1) / TILE_CO * j.P, 256, pack_range, &j);
}

/* ---------------------------------------------------------- kept packs */

/* A model that will not change its weights (ddpm_unet_keep_bf16_packs)
 * registers its layers' packs here once, and run() takes them instead of
 * packing again: re-rounding every layer's weights was 8 % of a
 * batch-1 forward of the small preset and is a fixed cost per call.
 * Keyed by the fp32 weight's address; the shape is checked too, so a
 * pointer reused for another shape packs afresh. */
typedef struct
{
  guint32 *data;
  int      C_out, C_in, T;
} KeptPack;

static GMutex kept_lock;
static GHashTable *kept;   /* const float * → KeptPack */

static gsize
packed_words (int C_out, int C_in, int T)
{
  return (gsize) (C_out + TILE_CO - 1) / TILE_CO * TILE_CO * ((C_in + 1) / 2) * T;
}

static void
kept_pack_free (gpointer p)
{
  KeptPack *k = p;

  free (k->data);
  g_free (k);
}

gsize
ddpm_bf16_pack_bytes (int C_out, int C_in, int T)
{
  return sizeof (guint32) * packed_words (C_out, C_in, T);
}

gboolean
ddpm_bf16_keep_pack (const float *weight, int C_out, int C_in, int T)
{
  void *data = NULL;
  KeptPack *k;

  g_return_val_if_fail (weight != NULL && C_out > 0 && C_in > 0 && (T == 1 || T == 9), FALSE);
  if (!ddpm_cpu_has_avx512_bf16 ()
      || posix_memalign (&data, 64, ddpm_bf16_pack_bytes (C_out, C_in, T)) != 0)
    return FALSE;
  pack_weights (data, weight, C_out, C_in, T);
  k = g_new (KeptPack, 1);
  *k = (KeptPack) { data, C_out, C_in, T };
  g_mutex_lock (&kept_lock);
  if (kept == NULL)
    kept = g_hash_table_new_full (NULL, NULL, NULL, kept_pack_free);
  g_hash_table_replace (kept, (gpointer) weight, k);
  g_mutex_unlock (&kept_lock);
  return TRUE;
}

static gboolean
in_range (gpointer key, gpointer value, gpointer data)
{
  const float *const *range = data;

  return (const float *) key >= range[0] && (const float *) key < range[1];
}

void
ddpm_bf16_forget_packs (const float *begin, const float *end)
{
  const float *range[2] = { begin, end };

  g_mutex_lock (&kept_lock);
  if (kept != NULL)
    g_hash_table_foreach_remove (kept, in_range, range);
  g_mutex_unlock (&kept_lock);
}

/* The kept pack of weight in this shape, or NULL. */
static const guint32 *
kept_pack (const float *weight, int C_out, int C_in, int T)
{
  const KeptPack *k = NULL;

  g_mutex_lock (&kept_lock);
  if (kept != NULL)
    k = g_hash_table_lookup (kept, weight);
  g_mutex_unlock (&kept_lock);
  return k != NULL && k->C_out == C_out && k->C_in == C_in && k->T == T ? k->data : NULL;
}

typedef struct
{
  guint32     *dst;   /* (B, P, plane) pairs */
  const float *src;   /* (B, C, plane) */
  int          C, P;
  gsize        plane;
} PairJob;

void
ddpm_bf16_pair_rows (guint32 *dst, const float *lo, const float *hi, gsize n)
__attribute__ ((target (BF16_TARGET)));

/* vcvtne2ps2bf16 rounds 16 + 16 floats (round to nearest even, as
 * ddpm_float_to_bf16), vpermw interleaves them into pairs. */
void
ddpm_bf16_pair_rows (guint32 *dst, const float *lo, const float *hi, gsize n)
{
  const __m512i interleave = _mm512_set_epi16 (31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10,
                                               25, 9, 24, 8, 23, 7, 22, 6, 21, 5, 20, 4,
                                               19, 3, 18, 2, 17, 1, 16, 0);

  for (gsize i = 0; i < n; i += VEC)
    {
      const gsize left = n - i;
      const __mmask16 m = left >= VEC ? 0xffff : (__mmask16) ((1u << left) - 1);
      const __m512 a = _mm512_maskz_loadu_ps (m, lo + i);
      const __m512 h = hi != NULL ? _mm512_maskz_loadu_ps (m, hi + i) : _mm512_setzero_ps ();
      const __m512i both = (__m512i) _mm512_cvtne2ps_pbh (h, a);

      _mm512_mask_storeu_epi32 (dst + i, m, _mm512_permutexvar_epi16 (interleave, both));
    }
}

/* Items are (image, channel pair). */
static void
pair_range (gsize begin, gsize end, gpointer data)
{
  const PairJob *j = data;

  for (gsize item = begin; item < end; item++)
    {
      const int b = (int) (item / j->P), p = (int) (item % j->P), c = 2 * p;
      const float *lo = j->src + ((gsize) b * j->C + c) * j->plane;

      ddpm_bf16_pair_rows (j->dst + item * j->plane, lo, c + 1 < j->C ? lo + j->plane : NULL,
                           j->plane);
    }
}

/* -------------------------------------------------------------- kernel */

/* 16 input pairs: one unaligned load, or (rows of 8) the 8 at p and the
 * 8 one padded row below. */
static inline __attribute__ ((always_inline, target (BF16_TARGET))) __m512i
load_pairs (const guint32 *p, int Wp, int seg)
{
  if (seg == VEC)
    return _mm512_loadu_si512 (p);
  return _mm512_inserti64x4 (_mm512_castsi256_si512 (_mm256_loadu_si256 ((const void *) p)),
                             _mm256_loadu_si256 ((const void *) (p + Wp)), 1);
}

/* One register tile: 8 channels of out from o0, V vectors at px[v] in
 * the output plane and pp[v] in the input's pair plane, tap t taps[t]
 * further on; P channel pairs, T taps, rows valid output channels. */
static inline __attribute__ ((always_inline, target (BF16_TARGET))) void
tile_kernel (float *out, gsize out_plane, const guint32 *xin, gsize in_plane, int Wp,
             const gsize *taps, int T, const guint32 *wpk, const float *bias,
             const float *res, int P, const gsize *px, const gsize *pp, int V, int seg,
             int rows)
{
  __m512 acc[TILE_CO][MAX_V];

  /* The residual is added to the sums before the store: a load per
   * output instead of a pass over three planes (res may be out itself:
   * each element is read and then written by this tile only).  Its lines
   * are fetched now, while the products are summed: starting the
   * accumulators from the loaded residual would make every product of
   * the tile wait for those loads.  Either way the read costs conv2
   * about what the separate add pass did (0.2 ms in the 96 → 32 block at
   * 64², batch 8): a wash in time, a pass and a scratch plane fewer. */
#pragma GCC unroll 8
  for (int r = 0; r < TILE_CO; r++)
#pragma GCC unroll 3
    for (int v = 0; v < V; v++)
      {
        acc[r][v] = _mm512_set1_ps (bias != NULL && r < rows ? bias[r] : 0.0f);
        if (res != NULL && r < rows)
          _mm_prefetch ((const char *) (res + r * out_plane + px[v]), _MM_HINT_T0);
      }

  for (int p = 0; p < P; p++)
    {
      const guint32 *plane = xin + (gsize) p * in_plane;

      for (int t = 0; t < T; t++)
        {
          const guint32 *wt = wpk + ((gsize) p * T + t) * TILE_CO;
          __m512i x[MAX_V];

#pragma GCC unroll 3
          for (int v = 0; v < V; v++)
            x[v] = load_pairs (plane + pp[v] + taps[t], Wp, seg);
#pragma GCC unroll 8
          for (int r = 0; r < TILE_CO; r++)
            {
              const __m512bh wr = (__m512bh) _mm512_set1_epi32 ((int) wt[r]);
#pragma GCC unroll 3
              for (int v = 0; v < V; v++)
                acc[r][v] = _mm512_dpbf16_ps (acc[r][v], (__m512bh) x[v], wr);
            }
        }
    }

#pragma GCC unroll 8
  for (int r = 0; r < TILE_CO; r++)
#pragma GCC unroll 3
    for (int v = 0; v < V; v++)
      if (r < rows)
        _mm512_storeu_ps (out + r * out_plane + px[v],
                          res != NULL
                          ? _mm512_add_ps (acc[r][v], _mm512_loadu_ps (res + r * out_plane
                                                                        + px[v]))
                          : acc[r][v]);
}

/* Separate bodies per (V, row width, taps), so that each keeps its
 * accumulators in registers and its tap loop unrolled. */
#define DEFINE_TILE(V, SEG, T)                                                           \
  static __attribute__ ((noinline, target (BF16_TARGET))) void                         \
  tile_##V##_##SEG##_##T (float *out, gsize out_plane, const guint32 *xin,              \
                          gsize in_plane, int Wp, const gsize *taps,                    \
                          const guint32 *wpk, const float *bias, const float *res,      \
                          int P, const gsize *px, const gsize *pp, int rows)            \
  {                                                                                    \
    tile_kernel (out, out_plane, xin, in_plane, Wp, taps, T, wpk, bias, res, P, px, pp, \
                 V, SEG, rows);                                                        \
  }
DEFINE_TILE (1, 16, 9)
DEFINE_TILE (2, 16, 9)
DEFINE_TILE (3, 16, 9)
DEFINE_TILE (1, 8, 9)
DEFINE_TILE (2, 8, 9)
DEFINE_TILE (3, 8, 9)
DEFINE_TILE (1, 16, 1)
DEFINE_TILE (2, 16, 1)
DEFINE_TILE (3, 16, 1)

typedef void (*TileFunc) (float *, gsize, const guint32 *, gsize, int, const gsize *,
                          const guint32 *, const float *, const float *, int, const gsize *,
                          const gsize *, int);

/* [3×3 rows of 16, 3×3 rows of 8, 1×1][V − 1] */
static const TileFunc tile_funcs[3][MAX_V] = {
  { tile_1_16_9, tile_2_16_9, tile_3_16_9 },
  { tile_1_8_9, tile_2_8_9, tile_3_8_9 },
  { tile_1_16_1, tile_2_16_1, tile_3_16_1 },
};

typedef struct
{
  float         *out;      /* (B, O, H, W) */
  const guint32 *xin;      /* (B, P, in_plane) */
  const guint32 *wpk;
  const float   *bias;
  gsize          bias_stride;  /* 0, or O: a bias per image (B, O) */
  const float   *residual; /* (B, O, H, W) added to the sums, or NULL */
  const float   *src;      /* 1×1: the fp32 input (B, C1, H·W) when xin is NULL, */
  const float   *src2;     /* channels C1 … C_in − 1 from here, (B, C_in − C1, H·W) */
  int            C_in, C1;
  int            P, O, H, W, T;
  int            kind;     /* row of tile_funcs */
  int            tiles;    /* tiles of up to 3 vectors per image */
  int            Wp;       /* a row of the input plane */
  gsize          in_plane;
  gsize          taps[9];
} TileJob;

/* The 1×1 kernel's input from fp32 (j->src): pixels [from, to) of image
 * b, every channel pair, rounded into slab as pairs (B = 1, P, to − from). */
static void
round_slab (guint32 *slab, const TileJob *j, int b, gsize from, gsize to)
{
  const gsize plane = (gsize) j->H * j->W, n = to - from;

  for (int p = 0; p < j->P; p++)
    {
      const float *ch[2] = { NULL, NULL };

      for (int k = 0; k < 2 && 2 * p + k < j->C_in; k++)
        {
          const int c = 2 * p + k;
          ch[k] = c < j->C1
            ? j->src + ((gsize) b * j->C1 + c) * plane + from
            : j->src2 + ((gsize) b * (j->C_in - j->C1) + c - j->C1) * plane + from;
        }
      ddpm_bf16_pair_rows (slab + (gsize) p * n, ch[0], ch[1], n);
    }
}

static void
tiles_range (gsize begin, gsize end, gpointer data)
{
  const TileJob *j = data;
  const int n_vec = j->H * j->W / VEC;
  const gsize out_plane = (gsize) j->H * j->W;
  /* 1×1 from fp32: the input rounded into pairs here, a run of up to
   * SLAB_TILES tiles at a time (the part's own buffer, in L2), which all
   * their output blocks read.  Rounding the whole input first was a pass
   * of its own (write and read back the pairs); rounding one tile's 48
   * pixels at a time read C_in runs of 192 bytes, far more streams than
   * the hardware prefetcher follows: the loads missed and the rounding
   * took longer than the 1×1 conv's products.  Runs of SLAB_TILES · 192
   * bytes per channel stream well. */
  const int slab_tiles = MAX (1, MIN (SLAB_TILES, (SLAB_BYTES / (int) sizeof (guint32))
                                                  / (j->P * MAX_V * VEC)));
  guint32 *slab = j->src != NULL
    ? g_malloc (sizeof (guint32) * j->P * slab_tiles * MAX_V * VEC) : NULL;
  gsize slab_end = begin, slab_from = 0, slab_to = 0;   /* the run in slab */

  for (gsize item = begin; item < end; item++)
    {
      const int b = (int) (item / j->tiles), first = (int) (item % j->tiles) * MAX_V;
      const int V = MIN (MAX_V, n_vec - first);
      const TileFunc tile = tile_funcs[j->kind][V - 1];
      gsize px[MAX_V], pp[MAX_V];

      for (int v = 0; v < V; v++)
        {
          const int f = first + v;

          if (j->kind == 2)
            px[v] = pp[v] = (gsize) f * VEC;                 /* flat plane */
          else if (j->W >= VEC)
            {
              const int per_row = j->W / VEC, y = f / per_row, x = f % per_row * VEC;
              px[v] = (gsize) y * j->W + x;
              pp[v] = (gsize) y * j->Wp + x;
            }
          else
            {
              px[v] = (gsize) f * VEC;                       /* rows 2f, 2f + 1 */
              pp[v] = (gsize) (2 * f) * j->Wp;
            }
        }
      const guint32 *xin;
      gsize in_plane = j->in_plane;

      if (slab != NULL)
        {
          if (item >= slab_end)
            {
              /* the next run: up to slab_tiles items of this image */
              const gsize image_end = (gsize) (b + 1) * j->tiles;

              slab_end = MIN (MIN (end, image_end), item + slab_tiles);
              slab_from = (gsize) first * VEC;
              slab_to = MIN ((gsize) n_vec, (slab_end - (gsize) b * j->tiles) * MAX_V) * VEC;
              round_slab (slab, j, b, slab_from, slab_to);
            }
          for (int v = 0; v < V; v++)
            pp[v] = px[v] - slab_from;
          xin = slab;
          in_plane = slab_to - slab_from;
        }
      else
        xin = j->xin + (gsize) b * j->P * j->in_plane;
      const gsize ob = (gsize) b * j->O;
      for (int o0 = 0; o0 < j->O; o0 += TILE_CO)
        tile (j->out + (ob + o0) * out_plane, out_plane, xin, in_plane, j->Wp, j->taps,
              j->wpk + (gsize) (o0 / TILE_CO) * j->P * j->T * TILE_CO,
              j->bias != NULL ? j->bias + b * j->bias_stride + o0 : NULL,
              j->residual != NULL ? j->residual + (ob + o0) * out_plane : NULL, j->P, px, pp,
              MIN (TILE_CO, j->O - o0));
    }
  g_free (slab);
}

/* Rounds the weights (and, if inp is not NULL, the input of a 3×3 conv)
 * into the workspace and runs the tiles (tj->xin: the input's pairs, or
 * for a 1×1 conv tj->src, which the tiles round themselves); FALSE
 * (nothing written) when the workspace cannot be had. */
static gboolean
run (TileJob *tj, const float *inp, const float *weight, int B, int C_in)
{
  const gsize n_in = inp != NULL ? (gsize) B * tj->P * tj->in_plane : 0;
  const guint32 *pack = kept_pack (weight, tj->O, C_in, tj->T);
  const gsize n_w = pack != NULL ? 0 : packed_words (tj->O, C_in, tj->T);
  guint32 *ws = ddpm_bf16_workspace (sizeof (guint32) * MAX (n_in + n_w, 1));

  if (ws == NULL)
    return FALSE;

  if (inp != NULL)
    {
      PairJob pj = { ws, inp, C_in, tj->P, tj->in_plane };
      ddpm_parallel_for ((gsize) B * tj->P, MAX (1, 4096 / tj->in_plane), pair_range, &pj);
      tj->xin = ws;
    }
  if (pack == NULL)
    pack_weights (ws + n_in, weight, tj->O, C_in, tj->T);
  tj->wpk = pack != NULL ? pack : ws + n_in;
  ddpm_parallel_for ((gsize) B * tj->tiles, 1, tiles_range, tj);
  return TRUE;
}

/* The job of a same 3×3 conv on padded planes (of floats or of pairs). */
static TileJob
same_job (float *out, const guint32 *xin, const float *bias, gsize bias_stride,
          const float *residual, const DdpmConvShape *s)
{
  const int n_vec = s->H * s->W / VEC;
  TileJob tj = { out, xin, NULL, bias, bias_stride, residual, NULL, NULL, s->C_in, s->C_in,
                 (s->C_in + 1) / 2, s->C_out, s->H, s->W, 9,
                 s->W >= VEC ? 0 : 1, (n_vec + MAX_V - 1) / MAX_V, s->W + 2,
                 (gsize) (s->H + 2) * (s->W + 2), { 0 } };

  for (int t = 0; t < 9; t++)
    tj.taps[t] = (gsize) (t / 3) * tj.Wp + t % 3;
  return tj;
}

gboolean
ddpm_conv3x3_forward_padded_bf16 (float *out, const float *padded, const float *weight,
                                  const float *bias, const DdpmConvShape *s)
{
  g_return_val_if_fail (ddpm_conv3x3_direct_ok (s), FALSE);
  TileJob tj = same_job (out, NULL, bias, 0, NULL, s);

  return run (&tj, padded, weight, s->B, s->C_in);
}

gboolean
ddpm_conv3x3_forward_phases_bf16 (float *out, const float *phases, const float *weight,
                                  const float *bias, const DdpmConvShape *s)
{
  const int Ho = s->H / 2, Wo = s->W / 2, Wq = Wo + 1;
  const gsize qplane = (gsize) (Ho + 1) * Wq;
  const int n_vec = Ho * Wo / VEC;
  TileJob tj = { out, NULL, NULL, bias, 0, NULL, NULL, NULL, s->C_in, s->C_in,
                 (s->C_in + 1) / 2, s->C_out, Ho, Wo, 9, Wo >= VEC ? 0 : 1,
                 (n_vec + MAX_V - 1) / MAX_V, Wq, 4 * qplane, { 0 } };

  g_return_val_if_fail (ddpm_conv3x3_stride2_ok (s), FALSE);
  /* tap (ky, kx) reads phase (ky mod 2, kx mod 2) at (⌊ky/2⌋, ⌊kx/2⌋):
   * conv3x3.c's stride-2 layout */
  for (int t = 0; t < 9; t++)
    {
      const int ky = t / 3, kx = t % 3;
      tj.taps[t] = (gsize) ((ky % 2) * 2 + kx % 2) * qplane + (gsize) (ky / 2) * Wq + kx / 2;
    }
  return run (&tj, phases, weight, s->B, s->C_in);
}

gboolean
ddpm_conv3x3_forward_pairs_bf16 (float *out, const guint32 *pairs, const float *weight,
                                 const float *bias, const DdpmConvShape *s)
{
  return ddpm_conv3x3_forward_pairs_bf16_fused (out, pairs, weight, bias, 0, NULL, s);
}

gboolean
ddpm_conv3x3_forward_pairs_bf16_fused (float *out, const guint32 *pairs, const float *weight,
                                       const float *bias, gsize bias_stride,
                                       const float *residual, const DdpmConvShape *s)
{
  g_return_val_if_fail (ddpm_conv3x3_direct_ok (s), FALSE);
  g_return_val_if_fail (bias_stride == 0 || bias_stride >= (gsize) s->C_out, FALSE);
  TileJob tj = same_job (out, pairs, bias, bias_stride, residual, s);

  return run (&tj, NULL, weight, s->B, s->C_in);
}

gboolean
ddpm_conv1x1_forward_bf16 (float *out, const float *inp, const float *weight,
                           const float *bias, const DdpmConvShape *s)
{
  return ddpm_conv1x1_forward_bf16_fused (out, inp, weight, bias, 0, NULL, s);
}

gboolean
ddpm_conv1x1_forward_bf16_fused (float *out, const float *inp, const float *weight,
                                 const float *bias, gsize bias_stride, const float *residual,
                                 const DdpmConvShape *s)
{
  return ddpm_conv1x1_forward_bf16_cat (out, inp, s->C_in, NULL, weight, bias, bias_stride,
                                        residual, s);
}

gboolean
ddpm_conv1x1_forward_bf16_cat (float *out, const float *inp, int C1, const float *inp2,
                               const float *weight, const float *bias, gsize bias_stride,
                               const float *residual, const DdpmConvShape *s)
{
  const int HW = s->H * s->W;
  /* the plane as one flat row of H·W pixels, rounded tile by tile
   * (tiles_range) */
  TileJob tj = { out, NULL, NULL, bias, bias_stride, residual, inp, inp2, s->C_in, C1,
                 (s->C_in + 1) / 2, s->C_out, 1, HW, 1, 2,
                 (HW / VEC + MAX_V - 1) / MAX_V, HW, (gsize) HW, { 0 } };

  g_return_val_if_fail (ddpm_conv1x1_direct_ok (s), FALSE);
  g_return_val_if_fail (bias_stride == 0 || bias_stride >= (gsize) s->C_out, FALSE);
  g_return_val_if_fail (C1 > 0 && C1 <= s->C_in && (C1 == s->C_in || inp2 != NULL), FALSE);
  return run (&tj, NULL, weight, s->B, s->C_in);
}
