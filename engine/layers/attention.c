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
 * The forward runs in blocks of query rows (see forward_blocks); the
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

  ForwardJob j = { out, probs, q, k, v, C, N, block_rows (N), 0,
                   (float) (1.0 / sqrt ((double) C)) };
  j.blocks = (N + j.R - 1) / j.R;
  ddpm_parallel_for ((gsize) B * j.blocks, 1, forward_blocks, &j);
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

  const float scale = (float) (1.0 / sqrt ((double) C));
  const gsize cn = (gsize) C * N, nn = (gsize) N * N;

  for (int b = 0; b < B; b++)
    {
      const float *P = probs + b * nn;
      const float *dO = dout + b * cn;

      if (dv != NULL)
        ddpm_sgemm (FALSE, FALSE,
                    C, N, N,
                    1.0f, dO, N, P, N,
                    1.0f, dv + b * cn, N);
      if (dq == NULL && dk == NULL)
        continue;

      float *dS = scratch + b * nn;
      ddpm_sgemm (TRUE, FALSE,
                  N, N, C,
                  1.0f, dO, N, v + b * cn, N,
                  0.0f, dS, N);
      SoftmaxJob j = { dS, P, N };
      ddpm_parallel_for (N, MAX (1, 16384 / N), softmax_backward_rows, &j);
      if (dq != NULL)
        ddpm_sgemm (FALSE, TRUE,
                    C, N, N,
                    scale, k + b * cn, N, dS, N,
                    1.0f, dq + b * cn, N);
      if (dk != NULL)
        ddpm_sgemm (FALSE, FALSE,
                    C, N, N,
                    scale, q + b * cn, N, dS, N,
                    1.0f, dk + b * cn, N);
    }
}
