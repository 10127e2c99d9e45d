/* gemm.c: every matrix product of the layers, split over the engine's own
 * thread team, with OpenBLAS running single-threaded inside each part.
 *
 * WHY
 *
 * OpenBLAS's pthread build keeps its own workers, which after each call
 * spin in sched_yield for a while before sleeping.  Between two sgemm
 * calls the layers' elementwise loops run on the engine's team, so those
 * spinning workers stole a quarter of a training step on 2 cores (perf:
 * 35 % of samples in sched_yield).  With OpenBLAS pinned to one thread
 * (ddpm_parallel_set_threads does that) and the product split here, there
 * is one set of threads, which sleeps when idle: no oversubscription.
 *
 * HOW
 *
 * C (M×N, row-major) is cut into `parts` blocks of whole columns (when N
 * is the wide side) or whole rows, each a product of the same K terms in
 * the same order, so the split never changes which numbers are added; the
 * column cut falls on multiples of 16 (one AVX-512 register of floats) so
 * that every part but the last runs OpenBLAS's full-width kernel.
 */
#include <cblas.h>

#include "layers.h"

typedef struct
{
  gboolean     trans_a, trans_b;
  int          M, N, K;
  float        alpha, beta;
  const float *A, *B;
  int          lda, ldb, ldc;
  float       *C;
  gboolean     by_columns;
  int          unit;       /* columns or rows per item of the split */
} GemmJob;

static void
gemm_range (gsize begin, gsize end, gpointer data)
{
  const GemmJob *j = data;
  const CBLAS_TRANSPOSE ta = j->trans_a ? CblasTrans : CblasNoTrans;
  const CBLAS_TRANSPOSE tb = j->trans_b ? CblasTrans : CblasNoTrans;
  const int lim = j->by_columns ? j->N : j->M;
  const int first = (int) begin * j->unit;
  const int last = MIN ((int) end * j->unit, lim);

  if (first >= last)
    return;
  if (j->by_columns)
    {
      /* columns [first, last) of B and C */
      const float *b = j->trans_b ? j->B + (gsize) first * j->ldb : j->B + first;
      cblas_sgemm (CblasRowMajor, ta, tb, j->M, last - first, j->K,
                   j->alpha, j->A, j->lda, b, j->ldb,
                   j->beta, j->C + first, j->ldc);
    }
  else
    {
      /* rows [first, last) of A and C */
      const float *a = j->trans_a ? j->A + first : j->A + (gsize) first * j->lda;
      cblas_sgemm (CblasRowMajor, ta, tb, last - first, j->N, j->K,
                   j->alpha, a, j->lda, j->B, j->ldb,
                   j->beta, j->C + (gsize) first * j->ldc, j->ldc);
    }
}

/* Below this many multiply-adds a product runs on the calling thread:
 * waking the team costs more than it saves. */
#define MIN_PARALLEL_MACS (1 << 18)

void
ddpm_sgemm (gboolean     trans_a,
            gboolean     trans_b,
            int          M,
            int          N,
            int          K,
            float        alpha,
            const float *A,
            int          lda,
            const float *B,
            int          ldb,
            float        beta,
            float       *C,
            int          ldc)
{
  g_return_if_fail (M >= 0 && N >= 0 && K >= 0);
  if (M == 0 || N == 0)
    return;

  GemmJob j = { trans_a, trans_b, M, N, K, alpha, beta, A, B, lda, ldb, ldc, C, TRUE, 16 };
  const double macs = (double) M * N * K;

  /* cut the wider side; rows in blocks of 4 (any cut is exact) */
  j.by_columns = N >= M;
  j.unit = j.by_columns ? 16 : 4;
  const gsize items = ((gsize) (j.by_columns ? N : M) + j.unit - 1) / j.unit;

  if (macs < MIN_PARALLEL_MACS || items < 2)
    {
      gemm_range (0, items, &j);
      return;
    }
  ddpm_parallel_for (items, 1, gemm_range, &j);
}
