/* attention.c: the core of single-head self-attention, forward and
 * backward, on OpenBLAS.
 *
 * Vaswani et al. 2017, eq. 1, as used by the DDPM UNet's attention blocks
 * (Ho et al. 2020, appendix B).  Per sample, with q, k, v as (C, N)
 * matrices Q, K, V (channels × positions) and s = 1/√C:
 *
 *   S = s·QᵀK              (N, N)   S_ij = s·q_i·k_j
 *   P = softmax_rows(S)             P_ij = e^(S_ij − m_i) / Σ_j e^(S_ij − m_i),
 *                                   m_i = max_j S_ij (no overflow)
 *   O = V·Pᵀ               (C, N)   o_i = Σ_j P_ij v_j
 *
 * Backward, given dO:
 *
 *   dV += dO·P
 *   dP  = dOᵀ·V
 *   dS  = P ⊙ (dP − rowsum(P ⊙ dP))     (the softmax Jacobian
 *                                        diag(p) − p·pᵀ applied per row)
 *   dQ += s·K·dSᵀ,   dK += s·Q·dS
 *
 * P is saved by the forward pass; dP and dS share the caller's scratch.
 * The forward runs in blocks of query rows (see forward_blocks), or in
 * bf16 for inference (attention-bf16.c); the
 * backward's row-wise softmax Jacobian runs on the thread team between
 * products.
 */
#include <math.h>

#include <cblas.h>

#include "layers.h"

/* Rows of one sample's (N, N) matrix, on the layers' thread team. */
typedef struct
{
  float       *S;   /* forward: scores → probabilities; backward: dP → dS */
  const float *P;   /* backward: the probabilities */
  int          N;
} SoftmaxJob;

/* Row-wise softmax in place, max-shifted; e^x by ddpm_fast_expf and the
 * max and sum in 16 interleaved lanes, so the row vectorises. */
static void
softmax_rows (gsize begin, gsize end, gpointer data)
{
  const SoftmaxJob *j = data;
  const int N = j->N;

  for (gsize i = begin; i < end; i++)
    {
      float *restrict row = j->S + i * N;
      float lane[16];
      int k;

      for (int l = 0; l < 16; l++)
        lane[l] = row[0];
      for (k = 0; k + 16 <= N; k += 16)
        for (int l = 0; l < 16; l++)
          lane[l] = row[k + l] > lane[l] ? row[k + l] : lane[l];
      float m = lane[0];
      for (int l = 1; l < 16; l++)
        m = MAX (m, lane[l]);
      for (; k < N; k++)
        m = MAX (m, row[k]);

      for (int l = 0; l < 16; l++)
        lane[l] = 0;
      for (k = 0; k + 16 <= N; k += 16)
        for (int l = 0; l < 16; l++)
          {
            float e = ddpm_fast_expf (row[k + l] - m);
            row[k + l] = e;
            lane[l] += e;
          }
      double sum = 0;
      for (int l = 0; l < 16; l++)
        sum += lane[l];
      for (; k < N; k++)
        {
          row[k] = ddpm_fast_expf (row[k] - m);
          sum += row[k];
        }
      const float inv = (float) (1.0 / sum);
      for (k = 0; k < N; k++)
        row[k] *= inv;
    }
}

/* dS = P ⊙ (dP − rowsum(P ⊙ dP)), row by row in place. */
static void
softmax_backward_rows (gsize begin, gsize end, gpointer data)
{
  const SoftmaxJob *j = data;
  const int N = j->N;

  for (gsize i = begin; i < end; i++)
    {
      const float *restrict p = j->P + i * N;
      float *restrict row = j->S + i * N;
      double lane[8] = { 0 };
      int k;

      for (k = 0; k + 8 <= N; k += 8)
        for (int l = 0; l < 8; l++)
          lane[l] += (double) p[k + l] * row[k + l];
      double dot = 0;
      for (int l = 0; l < 8; l++)
        dot += lane[l];
      for (; k < N; k++)
        dot += (double) p[k] * row[k];
      const float d = (float) dot;
      for (k = 0; k < N; k++)
        row[k] = p[k] * (row[k] - d);
    }
}

/* The forward pass in blocks of query rows: for rows [r0, r0 + R) of
 * sample b, S = s·Q[:, rows]ᵀK, softmax, O[:, rows] = V·P[rows]ᵀ, one
 * block per item of the thread team with single-threaded products inside.
 * A block of P is produced, normalised and consumed while it is in cache,
 * instead of three passes over the whole (N, N) matrix (64 MB at N =
 * 4096, the small preset's attention on a 128² image).  R depends on N
 * only, so the products, and the result, do not depend on the thread
 * count. */
typedef struct
{
  float       *out, *probs;
  const float *q, *k, *v;
  int          C, N, R, blocks;
  float        scale;
} ForwardJob;

static int
block_rows (int N)
{
  /* ~8 blocks per sample for parallelism, at most 256 rows (a 4 MB block
   * at N = 4096) */
  return CLAMP ((N / 8 + 15) / 16 * 16, 16, 256);
}

static void
forward_blocks (gsize begin, gsize end, gpointer data)
{
  const ForwardJob *j = data;
  const int N = j->N, C = j->C;
  const gsize cn = (gsize) C * N, nn = (gsize) N * N;

  for (gsize item = begin; item < end; item++)
    {
      const gsize b = item / j->blocks;
      const int r0 = (int) (item % j->blocks) * j->R, rows = MIN (j->R, N - r0);
      float *P = j->probs + b * nn + (gsize) r0 * N;

      cblas_sgemm (CblasRowMajor, CblasTrans, CblasNoTrans, rows, N, C,
                   j->scale, j->q + b * cn + r0, N, j->k + b * cn, N, 0.0f, P, N);
      SoftmaxJob sj = { P, NULL, N };
      softmax_rows (0, rows, &sj);
      cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasTrans, C, rows, N,
                   1.0f, j->v + b * cn, N, P, N, 0.0f, j->out + b * cn + r0, N);
    }
}

void
ddpm_attention_forward (float       *out,
                        float       *probs,
                        const float *q,
                        const float *k,
                        const float *v,
                        int B, int C, int N)
{
  g_return_if_fail (out != NULL && probs != NULL && q != NULL && k != NULL && v != NULL);
  g_return_if_fail (B > 0 && C > 0 && N > 0);

  /* inference in bf16 (training runs in fp32: ddpm_unet_forward) */
  if (ddpm_layers_use_bf16 () && ddpm_attention_forward_bf16 (out, q, k, v, B, C, N))
    return;

  ForwardJob j = { out, probs, q, k, v, C, N, block_rows (N), 0,
                   (float) (1.0 / sqrt ((double) C)) };
  j.blocks = (N + j.R - 1) / j.R;
  ddpm_parallel_for ((gsize) B * j.blocks, 1, forward_blocks, &j);
}

/* C = alpha·op(A)·op(B) + beta·C for the backward's (M, K)·(K, N)
 * row-major products with leading dimensions those of the untransposed
 * shapes: split over the team (ddpm_sgemm), or one cblas_sgemm on this
 * thread. */
static void
product (gboolean on_team, gboolean ta, gboolean tb, int M, int Nc, int K, float alpha,
         const float *A, const float *Bm, float beta, float *Cm)
{
  const int lda = ta ? M : K, ldb = tb ? K : Nc;

  if (on_team)
    ddpm_sgemm (ta, tb, M, Nc, K, alpha, A, lda, Bm, ldb, beta, Cm, Nc);
  else
    cblas_sgemm (CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                 M, Nc, K, alpha, A, lda, Bm, ldb, beta, Cm, Nc);
}

typedef struct
{
  float       *dq, *dk, *dv, *scratch;
  const float *dout, *probs, *q, *k, *v;
  int          C, N;
  float        scale;
  gboolean     on_team;   /* the products split over the team (ddpm_sgemm) */
} BackwardJob;

/* Images [begin, end), one after another.  With the team busy running
 * them (a few images per thread), each image's products are plain
 * single-threaded cblas_sgemm calls: at the attention level they are tiny
 * (64 × 64 × 64 in the tiny model), far below what a wait on the team
 * costs. */
static void
backward_images (gsize begin, gsize end, gpointer data)
{
  const BackwardJob *j = data;
  const int C = j->C, N = j->N;
  const gsize cn = (gsize) C * N, nn = (gsize) N * N;

  for (gsize b = begin; b < end; b++)
    {
      const float *P = j->probs + b * nn;
      const float *dO = j->dout + b * cn;

      if (j->dv != NULL)
        product (j->on_team, FALSE, FALSE, C, N, N, 1.0f, dO, P, 1.0f, j->dv + b * cn);
      if (j->dq == NULL && j->dk == NULL)
        continue;

      float *dS = j->scratch + b * nn;
      product (j->on_team, TRUE, FALSE, N, N, C, 1.0f, dO, j->v + b * cn, 0.0f, dS);
      SoftmaxJob sj = { dS, P, N };
      if (j->on_team)
        ddpm_parallel_for (N, MAX (1, 16384 / N), softmax_backward_rows, &sj);
      else
        softmax_backward_rows (0, N, &sj);
      if (j->dq != NULL)
        product (j->on_team, FALSE, TRUE, C, N, N, j->scale, j->k + b * cn, dS, 1.0f,
                 j->dq + b * cn);
      if (j->dk != NULL)
        product (j->on_team, FALSE, FALSE, C, N, N, j->scale, j->q + b * cn, dS, 1.0f,
                 j->dk + b * cn);
    }
}

void
ddpm_attention_backward (float       *dq,
                         float       *dk,
                         float       *dv,
                         const float *dout,
                         const float *probs,
                         const float *q,
                         const float *k,
                         const float *v,
                         int B, int C, int N,
                         float       *scratch)
{
  g_return_if_fail (dout != NULL && probs != NULL && q != NULL && k != NULL && v != NULL);
  g_return_if_fail (B > 0 && C > 0 && N > 0);
  g_return_if_fail (scratch != NULL || (dq == NULL && dk == NULL));

  BackwardJob j = { dq, dk, dv, scratch, dout, probs, q, k, v, C, N,
                    (float) (1.0 / sqrt ((double) C)), FALSE };

  /* images over the team when there are enough of them; else one image
   * at a time, each product split over the team */
  if (B >= 2 * ddpm_parallel_threads ())
    ddpm_parallel_for (B, 1, backward_images, &j);
  else
    {
      j.on_team = TRUE;
      backward_images (0, B, &j);
    }
}
