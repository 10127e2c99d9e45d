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
 * C (M×N, row-major) is cut into blocks of whole columns (when N is the
 * wide side: 256 columns, a multiple of 16 so every block but the last
 * runs OpenBLAS's full-width kernel) or of 64 whole rows, and each block
 * is one single-threaded sgemm call, whichever thread runs it.  The blocks
 * depend on the shape only, never on the thread count: OpenBLAS picks
 * different kernels (and so different rounding) for different sizes, so
 * cutting by thread count would make the result depend on it.
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
  int          unit;       /* columns or rows per block */
} GemmJob;

/* One block: columns or rows [first, last) of C. */
static void
gemm_block (const GemmJob *j, int first, int last)
{
  const CBLAS_TRANSPOSE ta = j->trans_a ? CblasTrans : CblasNoTrans;
  const CBLAS_TRANSPOSE tb = j->trans_b ? CblasTrans : CblasNoTrans;

  if (j->by_columns)
    {
      const float *b = j->trans_b ? j->B + (gsize) first * j->ldb : j->B + first;
      cblas_sgemm (CblasRowMajor, ta, tb, j->M, last - first, j->K,
                   j->alpha, j->A, j->lda, b, j->ldb,
                   j->beta, j->C + first, j->ldc);
    }
  else
    {
      const float *a = j->trans_a ? j->A + first : j->A + (gsize) first * j->lda;
      cblas_sgemm (CblasRowMajor, ta, tb, last - first, j->N, j->K,
                   j->alpha, a, j->lda, j->B, j->ldb,
                   j->beta, j->C + (gsize) first * j->ldc, j->ldc);
    }
}

static void
gemm_range (gsize begin, gsize end, gpointer data)
{
  const GemmJob *j = data;
  const int lim = j->by_columns ? j->N : j->M;

  for (gsize block = begin; block < end; block++)
    gemm_block (j, (int) block * j->unit, MIN ((int) (block + 1) * j->unit, lim));
}

/* Below this many multiply-adds a product is one call on the calling
 * thread: waking the team costs more than it saves. */
#define MIN_PARALLEL_MACS (1 << 18)
#define BLOCK_COLUMNS 256
#define BLOCK_ROWS 64

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

  GemmJob j = { trans_a, trans_b, M, N, K, alpha, beta, A, B, lda, ldb, ldc, C, TRUE, N };

  if ((double) M * N * K < MIN_PARALLEL_MACS || (N <= BLOCK_COLUMNS && M <= BLOCK_ROWS))
    {
      gemm_block (&j, 0, N);
      return;
    }
  j.by_columns = N >= M;
  j.unit = j.by_columns ? BLOCK_COLUMNS : BLOCK_ROWS;
  const int lim = j.by_columns ? N : M;
  ddpm_parallel_for ((gsize) (lim + j.unit - 1) / j.unit, 1, gemm_range, &j);
}
