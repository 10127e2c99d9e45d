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
 */
#include <math.h>

#include <cblas.h>

#include "layers.h"

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

  const float scale = (float) (1.0 / sqrt ((double) C));
  const gsize cn = (gsize) C * N, nn = (gsize) N * N;

  for (int b = 0; b < B; b++)
    {
      float *P = probs + b * nn;

      cblas_sgemm (CblasRowMajor, CblasTrans, CblasNoTrans,
                   N, N, C,
                   scale, q + b * cn, N, k + b * cn, N,
                   0.0f, P, N);
      for (int i = 0; i < N; i++)
        {
          float *row = P + (gsize) i * N;
          float m = row[0];
          double sum = 0;

          for (int j = 1; j < N; j++)
            m = MAX (m, row[j]);
          for (int j = 0; j < N; j++)
            {
              row[j] = expf (row[j] - m);
              sum += row[j];
            }
          const float inv = (float) (1.0 / sum);
          for (int j = 0; j < N; j++)
            row[j] *= inv;
        }
      cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasTrans,
                   C, N, N,
                   1.0f, v + b * cn, N, P, N,
                   0.0f, out + b * cn, N);
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

  const float scale = (float) (1.0 / sqrt ((double) C));
  const gsize cn = (gsize) C * N, nn = (gsize) N * N;

  for (int b = 0; b < B; b++)
    {
      const float *P = probs + b * nn;
      const float *dO = dout + b * cn;

      if (dv != NULL)
        cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasNoTrans,
                     C, N, N,
                     1.0f, dO, N, P, N,
                     1.0f, dv + b * cn, N);
      if (dq == NULL && dk == NULL)
        continue;

      float *dS = scratch + b * nn;
      cblas_sgemm (CblasRowMajor, CblasTrans, CblasNoTrans,
                   N, N, C,
                   1.0f, dO, N, v + b * cn, N,
                   0.0f, dS, N);
      for (int i = 0; i < N; i++)
        {
          const float *p = P + (gsize) i * N;
          float *row = dS + (gsize) i * N;
          double dot = 0;

          for (int j = 0; j < N; j++)
            dot += (double) p[j] * row[j];
          for (int j = 0; j < N; j++)
            row[j] = p[j] * (row[j] - (float) dot);
        }
      if (dq != NULL)
        cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasTrans,
                     C, N, N,
                     scale, k + b * cn, N, dS, N,
                     1.0f, dq + b * cn, N);
      if (dk != NULL)
        cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasNoTrans,
                     C, N, N,
                     scale, q + b * cn, N, dS, N,
                     1.0f, dk + b * cn, N);
    }
}
