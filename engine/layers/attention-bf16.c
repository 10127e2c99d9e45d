/* attention-bf16.c: the inference forward of self-attention in bf16 with
 * AVX512_BF16 (the attention blocks of every UNet here; ADM's heads call
 * it per head).
 *
 * WHY
 *
 * attention.c's forward runs its two products, S = QᵀK and O = V·Pᵀ, as
 * fp32 OpenBLAS calls on blocks of query rows.  At N = 4096 positions
 * (the small preset's attention on a 128² image) those products are half
 * of a forward pass, and in fp32 at best half of the bf16 rate the 3×3
 * convolutions already run at (conv-bf16.c).  Here both products run on
 * vdpbf16ps (two bf16 products summed into each fp32 lane), the softmax
 * stays fp32.
 *
 * HOW
 *
 * vdpbf16ps needs each 32-bit lane to hold a pair of the summed-over
 * index, so each product gets its operands paired along its sum:
 *
 *   S_ij = Σ_c q_ci k_cj     pairs along c: K as (C/2, N) planes of
 *                            (k_2p,j, k_2p+1,j) (vectors of 16 keys j), Q
 *                            transposed to (N, C/2) (one pair broadcast
 *                            per query i);
 *   O_ic = Σ_j e_ij v_cj     pairs along j: V transposed to (N/2, C) of
 *                            (v_c,2r, v_c,2r+1) (vectors of 16 channels
 *                            c), e's rows (N/2 pairs of consecutive keys,
 *                            one pair broadcast per query).
 *
 * K, Qᵀ and Vᵀ are rounded and laid out once per image; then, for a block
 * of R query rows: S (R × N, fp32) in register tiles of 8 queries × 3
 * vectors of 16 keys, the softmax per row in fp32 (max-shifted, e^x by
 * ddpm_fast_expf as attention.c), e rounded to bf16 unnormalised, O in
 * tiles of 8 queries × 3 vectors of 16 channels, divided by the row's sum
 * (fp32) and written back transposed into (C, N).  A block's S and e stay
 * in the thread's cache (R·N floats: 512 KB at N = 4096).
 *
 * Rounding: q, k, v and the unnormalised e lose their low 16 bits (8
 * significant bits); every sum is fp32.  With 1/√C on the scores a
 * relative error of 2⁻⁹ per factor moves a score by ~10⁻³ of its typical
 * size, so the weights move by ~0.1 %: see tests/test-attention-bf16.c
 * against the fp32 forward and the ε gates of tests/test-bf16.c.
 *
 * Each output is summed in a fixed order by one thread, and R depends on
 * N only: the result does not depend on the thread count.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <immintrin.h>

#include "layers.h"

#define BF16_TARGET "avx512f,avx512dq,avx512bw,avx512vl,avx512bf16"
#define VEC 16
#define TILE_R 8   /* queries per register tile */
#define MAX_V 3    /* vectors per register tile */
#define BLOCK_R 32 /* query rows per block */

typedef struct
{
  float   *out;     /* (B, C, N) */
  guint32 *kp;      /* (B, P, Nk) K's channel pairs; Nk = N rounded up to 16 */
  guint32 *qt;      /* (B, Nq, P) Qᵀ's channel pairs; Nq = N rounded up to 8 */
  guint32 *vt;      /* (B, Nh, Cv) Vᵀ's key pairs; Nh = ⌈N/2⌉, Cv = C rounded up to 16 */
  const float *q, *k, *v;
  int      C, N, P, Nk, Nq, Nh, Cv, blocks;
  float    scale;
} Job;

static inline gsize
round_up (gsize n, gsize m)
{
  return (n + m - 1) / m * m;
}

/* n floats rounded to bf16 in order (vcvtneps2bf16, as
 * ddpm_float_to_bf16), n even: consecutive values become the pairs. */
static __attribute__ ((target (BF16_TARGET))) void
row_to_bf16 (guint16 *dst, const float *src, int n)
{
  for (int x = 0; x < n; x += VEC)
    {
      const __mmask16 m = n - x >= VEC ? 0xffff : (__mmask16) ((1u << (n - x)) - 1);
      const __m256i h = (__m256i) _mm512_cvtneps_pbh (_mm512_maskz_loadu_ps (m, src + x));

      _mm256_mask_storeu_epi16 (dst + x, m, h);
    }
}

/* ------------------------------------------------------------ layouts */

/* Image b's K pairs, Qᵀ pairs and Vᵀ pairs (zero padding included). */
static void
layout_range (gsize begin, gsize end, gpointer data)
{
  const Job *j = data;
  const int C = j->C, N = j->N;

  for (gsize b = begin; b < end; b++)
    {
      const float *q = j->q + b * C * N, *k = j->k + b * C * N, *v = j->v + b * C * N;
      guint32 *kp = j->kp + b * j->P * j->Nk;
      guint32 *qt = j->qt + b * j->Nq * j->P;
      guint32 *vt = j->vt + b * j->Nh * j->Cv;

      for (int p = 0; p < j->P; p++)
        {
          const float *lo = k + (gsize) 2 * p * N;
          const float *hi = 2 * p + 1 < C ? lo + N : NULL;

          ddpm_bf16_pair_rows (kp + (gsize) p * j->Nk, lo, hi, N);
          memset (kp + (gsize) p * j->Nk + N, 0, sizeof (guint32) * (j->Nk - N));
        }
      /* Qᵀ and Vᵀ: the pairs made along rows by the vector rounding
       * (q's channel pairs as K's; v's key pairs: a row rounded in order
       * is its pairs), then transposed as 32-bit words in blocks of 16
       * rows of the result, so that the strided writes stay within a few
       * KB */
      guint32 *tmp = g_new (guint32, MAX ((gsize) j->P * N, (gsize) C * j->Nh));

      for (int p = 0; p < j->P; p++)
        {
          const float *lo = q + (gsize) 2 * p * N;
          ddpm_bf16_pair_rows (tmp + (gsize) p * N, lo, 2 * p + 1 < C ? lo + N : NULL, N);
        }
      memset (qt, 0, sizeof (guint32) * j->Nq * j->P);
      for (int i0 = 0; i0 < N; i0 += VEC)
        for (int p = 0; p < j->P; p++)
          for (int i = i0; i < MIN (i0 + VEC, N); i++)
            qt[(gsize) i * j->P + p] = tmp[(gsize) p * N + i];

      for (int c = 0; c < C; c++)
        {
          guint32 *row = tmp + (gsize) c * j->Nh;
          row_to_bf16 ((guint16 *) row, v + (gsize) c * N, N);
          if (N % 2 != 0)
            row[j->Nh - 1] &= 0xffffu;   /* the odd last key's partner: 0 */
        }
      memset (vt, 0, sizeof (guint32) * j->Nh * j->Cv);
      for (int r0 = 0; r0 < j->Nh; r0 += VEC)
        for (int c = 0; c < C; c++)
          for (int r = r0; r < MIN (r0 + VEC, j->Nh); r++)
            vt[(gsize) r * j->Cv + c] = tmp[(gsize) c * j->Nh + r];
      g_free (tmp);
    }
}

/* ------------------------------------------------------------ kernels */

/* acc[r][u] (r < 8 rows, u < V vectors) = Σ_p a[u] (16 pairs at
 * a + p·a_stride + 16u) · broadcast b[r·b_stride + p], over P pairs: the
 * register tile both products use. */
static inline __attribute__ ((always_inline, target (BF16_TARGET))) void
tile_dot (__m512 acc[TILE_R][MAX_V], const guint32 *a, gsize a_stride, const guint32 *b,
          gsize b_stride, int P, int V)
{
#pragma GCC unroll 8
  for (int r = 0; r < TILE_R; r++)
#pragma GCC unroll 3
    for (int u = 0; u < V; u++)
      acc[r][u] = _mm512_setzero_ps ();
  for (int p = 0; p < P; p++)
    {
      __m512i x[MAX_V];

#pragma GCC unroll 3
      for (int u = 0; u < V; u++)
        x[u] = _mm512_loadu_si512 (a + (gsize) p * a_stride + u * VEC);
#pragma GCC unroll 8
      for (int r = 0; r < TILE_R; r++)
        {
          const __m512bh w = (__m512bh) _mm512_set1_epi32 ((int) b[r * b_stride + p]);
#pragma GCC unroll 3
          for (int u = 0; u < V; u++)
            acc[r][u] = _mm512_dpbf16_ps (acc[r][u], (__m512bh) x[u], w);
        }
    }
}

#define DEFINE_TILE(V)                                                                    \
  static __attribute__ ((noinline, target (BF16_TARGET))) void                          \
  tile_##V (float *out, gsize out_stride, const guint32 *a, gsize a_stride,              \
            const guint32 *b, gsize b_stride, int P)                                     \
  {                                                                                     \
    __m512 acc[TILE_R][MAX_V];                                                          \
    tile_dot (acc, a, a_stride, b, b_stride, P, V);                                     \
    for (int r = 0; r < TILE_R; r++)                                                    \
      for (int u = 0; u < V; u++)                                                       \
        _mm512_storeu_ps (out + r * out_stride + u * VEC, acc[r][u]);                   \
  }
DEFINE_TILE (1)
DEFINE_TILE (2)
DEFINE_TILE (3)

typedef void (*TileFunc) (float *, gsize, const guint32 *, gsize, const guint32 *, gsize, int);
static const TileFunc tiles[MAX_V] = { tile_1, tile_2, tile_3 };

/* out (rows × cols, row stride out_stride; rows a multiple of 8, cols of
 * 16) = for each row r and column x: Σ_p a[p][x] · b[r][p]. */
static void
product (float *out, gsize out_stride, int rows, int cols, const guint32 *a, gsize a_stride,
         const guint32 *b, gsize b_stride, int P)
{
  for (int r0 = 0; r0 < rows; r0 += TILE_R)
    for (int x0 = 0, V; x0 < cols; x0 += V * VEC)
      {
        /* 3 vectors a tile, but 2 + 2 rather than 3 + 1 */
        const int left = (cols - x0) / VEC;

        V = left == 4 ? 2 : MIN (MAX_V, left);
        tiles[V - 1] (out + (gsize) r0 * out_stride + x0, out_stride, a + x0, a_stride,
                      b + (gsize) r0 * b_stride, b_stride, P);
      }
}

/* e = exp(scale·(s − max)) of each row of S (rows × Nk, the first N
 * valid; overwritten by e in fp32), rounded into pairs of consecutive keys
 * (rows × Nh, an odd last key paired with 0); the sums as attention.c's
 * softmax (16 lanes, then double), returned in sum[]. */
static void
softmax_pairs (guint32 *e, float *sum, float *S, int rows, int N, int Nk, int Nh,
               float scale)
{
  for (int r = 0; r < rows; r++)
    {
      float *restrict row = S + (gsize) r * Nk;
      float lane[VEC], m = row[0];
      double total = 0;
      int x;

      for (int l = 0; l < VEC; l++)
        lane[l] = row[0];
      for (x = 0; x + VEC <= N; x += VEC)
        for (int l = 0; l < VEC; l++)
          lane[l] = row[x + l] > lane[l] ? row[x + l] : lane[l];
      for (int l = 0; l < VEC; l++)
        m = MAX (m, lane[l]);
      for (; x < N; x++)
        m = MAX (m, row[x]);

      for (int l = 0; l < VEC; l++)
        lane[l] = 0;
      for (x = 0; x + VEC <= N; x += VEC)
        for (int l = 0; l < VEC; l++)
          {
            const float t = ddpm_fast_expf ((row[x + l] - m) * scale);
            row[x + l] = t;
            lane[l] += t;
          }
      for (int l = 0; l < VEC; l++)
        total += lane[l];
      for (; x < N; x++)
        {
          row[x] = ddpm_fast_expf ((row[x] - m) * scale);
          total += row[x];
        }
      if (N % 2 != 0)
        row[N] = 0.0f;   /* within Nk: N odd < Nk */
      row_to_bf16 ((guint16 *) (e + (gsize) r * Nh), row, 2 * Nh);
      sum[r] = (float) total;
    }
}

typedef struct
{
  float   *S;     /* (BLOCK_R, Nk) scores, then e in fp32 */
  guint32 *e;     /* (BLOCK_R, Nh) */
  float   *O;     /* (BLOCK_R, Cv) */
  float    sum[BLOCK_R];
} Scratch;

static void
block_range (gsize begin, gsize end, gpointer data)
{
  const Job *j = data;
  const int C = j->C, N = j->N;
  Scratch s;

  s.S = g_new (float, (gsize) BLOCK_R * j->Nk);
  s.e = g_new (guint32, (gsize) BLOCK_R * j->Nh);
  s.O = g_new (float, (gsize) BLOCK_R * j->Cv);
  for (gsize item = begin; item < end; item++)
    {
      const gsize b = item / j->blocks;
      const int r0 = (int) (item % j->blocks) * BLOCK_R;
      const int rows = MIN (BLOCK_R, j->Nq - r0), valid = MIN (BLOCK_R, N - r0);
      const guint32 *kp = j->kp + b * j->P * j->Nk;
      const guint32 *qt = j->qt + b * j->Nq * j->P + (gsize) r0 * j->P;
      const guint32 *vt = j->vt + b * j->Nh * j->Cv;
      float *out = j->out + b * C * N;

      /* S[r][x] = Σ_p kp[p][x] · qt[r][p] */
      product (s.S, j->Nk, rows, j->Nk, kp, j->Nk, qt, j->P, j->P);
      softmax_pairs (s.e, s.sum, s.S, valid, N, j->Nk, j->Nh, j->scale);
      if (rows > valid)
        memset (s.e + (gsize) valid * j->Nh, 0, sizeof (guint32) * (rows - valid) * j->Nh);
      /* O[r][c] = Σ_h vt[h][c] · e[r][h] */
      product (s.O, j->Cv, rows, j->Cv, vt, j->Cv, s.e, j->Nh, j->Nh);
      for (int c = 0; c < C; c++)
        for (int r = 0; r < valid; r++)
          out[(gsize) c * N + r0 + r] = s.O[(gsize) r * j->Cv + c] / s.sum[r];
    }
  g_free (s.S);
  g_free (s.e);
  g_free (s.O);
}

gboolean
ddpm_attention_forward_bf16 (float       *out,
                             const float *q,
                             const float *k,
                             const float *v,
                             int B, int C, int N)
{
  g_return_val_if_fail (out != NULL && q != NULL && k != NULL && v != NULL, FALSE);
  g_return_val_if_fail (B > 0 && C > 0 && N > 0, FALSE);

  if (!ddpm_layers_use_bf16 ())
    return FALSE;

  Job j = { out, NULL, NULL, NULL, q, k, v, C, N, (C + 1) / 2, (int) round_up (N, VEC),
            (int) round_up (N, TILE_R), (N + 1) / 2, (int) round_up (C, VEC), 0,
            (float) (1.0 / sqrt ((double) C)) };
  const gsize n_kp = (gsize) B * j.P * j.Nk, n_qt = (gsize) B * j.Nq * j.P;
  const gsize n_vt = (gsize) B * j.Nh * j.Cv;
  guint32 *ws = g_try_new (guint32, n_kp + n_qt + n_vt);

  if (ws == NULL)
    return FALSE;
  j.kp = ws;
  j.qt = ws + n_kp;
  j.vt = ws + n_kp + n_qt;
  j.blocks = (j.Nq + BLOCK_R - 1) / BLOCK_R;
  ddpm_parallel_for (B, 1, layout_range, &j);
  ddpm_parallel_for ((gsize) B * j.blocks, 1, block_range, &j);
  g_free (ws);
  return TRUE;
}
