/* test-parallel.c: the engine's thread team (layers/parallel.c) and the
 * products split over it (layers/gemm.c).
 *
 * The team must run every index of [0, n) exactly once whatever n, grain
 * and thread count, also when two threads call it at once (the second runs
 * inline); ddpm_sgemm must equal the product written as loops in double,
 * for the four transpose cases and beta 0 and 1, and give the same bits
 * with 1 and 3 threads (the split never changes a sum).
 */
#include <math.h>

#include "layers/layers.h"

typedef struct
{
  gint *hits;     /* per index, atomically */
} HitJob;

static void
hit_range (gsize begin, gsize end, gpointer data)
{
  HitJob *j = data;

  for (gsize i = begin; i < end; i++)
    g_atomic_int_inc (&j->hits[i]);
}

static void
assert_each_once (gsize n, gsize grain)
{
  HitJob j = { g_new0 (gint, MAX (n, 1)) };

  ddpm_parallel_for (n, grain, hit_range, &j);
  for (gsize i = 0; i < n; i++)
    if (j.hits[i] != 1)
      g_error ("n %zu grain %zu threads %d: index %zu ran %d times", n, grain,
               ddpm_parallel_threads (), i, j.hits[i]);
  g_free (j.hits);
}

static void
test_each_index_once (void)
{
  static const gsize sizes[] = { 0, 1, 2, 5, 63, 64, 1000, 100003 };
  static const gsize grains[] = { 1, 7, 1000 };
  static const int threads[] = { 1, 2, 3, 8, 2 };   /* up, then down again */

  for (gsize t = 0; t < G_N_ELEMENTS (threads); t++)
    {
      ddpm_parallel_set_threads (threads[t]);
      g_assert_cmpint (ddpm_parallel_threads (), ==, threads[t]);
      for (gsize s = 0; s < G_N_ELEMENTS (sizes); s++)
        for (gsize g = 0; g < G_N_ELEMENTS (grains); g++)
          assert_each_once (sizes[s], grains[g]);
    }
  ddpm_parallel_set_threads (0);
  g_assert_cmpint (ddpm_parallel_threads (), ==, (int) g_get_num_processors ());
}

static gpointer
caller (gpointer data)
{
  for (int r = 0; r < 200; r++)
    assert_each_once (4096 + r, 1);
  return data;
}

/* Two threads share the team: one of them gets it, the other runs its
 * calls inline, and every call still covers its range once. */
static void
test_two_callers (void)
{
  ddpm_parallel_set_threads (2);
  GThread *a = g_thread_new ("caller-a", caller, NULL);
  GThread *b = g_thread_new ("caller-b", caller, NULL);
  g_thread_join (a);
  g_thread_join (b);
}

/* Jobs back to back, a small one (2 parts) then a large one (8 parts),
 * many times with nothing in between: a worker still finishing a small
 * job must not claim a part of the large one under the old job's
 * generation (it did once: the part ran twice, or after the call had
 * returned, on a job the caller had freed).  Each job counts into its own
 * slice, checked at the end: every index once, also after a pause for a
 * late part. */
static void
test_back_to_back (void)
{
  const int rounds = 200000, width = 16;
  gint *hits = g_new0 (gint, (gsize) rounds * width);
  HitJob *jobs = g_new (HitJob, rounds);

  ddpm_parallel_set_threads (2);
  for (int r = 0; r < rounds; r++)
    {
      jobs[r].hits = hits + (gsize) r * width;
      ddpm_parallel_for (r % 2 == 0 ? 2 : width, 1, hit_range, &jobs[r]);
    }
  g_usleep (10000);
  for (int r = 0; r < rounds; r++)
    for (int i = 0; i < width; i++)
      {
        const int want = i < (r % 2 == 0 ? 2 : width) ? 1 : 0;
        const int got = g_atomic_int_get (&hits[(gsize) r * width + i]);
        if (got != want)
          g_error ("job %d: index %d ran %d times, not %d", r, i, got, want);
      }
  g_free (jobs);
  g_free (hits);
  ddpm_parallel_set_threads (0);
}

/* ------------------------------------------------------------- sgemm */

static float *
random_matrix (GRand *rand, gsize n)
{
  float *m = g_new (float, n);

  for (gsize i = 0; i < n; i++)
    m[i] = (float) g_rand_double_range (rand, -1, 1);
  return m;
}

/* C = alpha·op(A)·op(B) + beta·C, row-major, in double. */
static void
gemm_oracle (double *C, gboolean ta, gboolean tb, int M, int N, int K, float alpha,
             const float *A, int lda, const float *B, int ldb, float beta,
             const float *C0, int ldc)
{
  for (int i = 0; i < M; i++)
    for (int j = 0; j < N; j++)
      {
        double sum = 0;
        for (int k = 0; k < K; k++)
          sum += (double) (ta ? A[(gsize) k * lda + i] : A[(gsize) i * lda + k])
                 * (tb ? B[(gsize) j * ldb + k] : B[(gsize) k * ldb + j]);
        C[(gsize) i * N + j] = alpha * sum + beta * (double) C0[(gsize) i * ldc + j];
      }
}

static void
test_sgemm (void)
{
  /* narrow, wide, tall, and big enough to be split */
  static const int shapes[][3] = {
    { 1, 1, 1 }, { 3, 17, 5 }, { 17, 3, 40 }, { 32, 1024, 288 }, { 300, 64, 96 },
    { 64, 4000, 9 }, { 5, 33, 700 },
  };
  GRand *rand = g_rand_new_with_seed (11);
  double worst = 0;

  for (gsize s = 0; s < G_N_ELEMENTS (shapes); s++)
    for (int t = 0; t < 4; t++)
      for (int use_beta = 0; use_beta < 2; use_beta++)
        {
          const int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
          const gboolean ta = t & 1, tb = (t >> 1) & 1;
          /* leading dimensions one wider than needed, to test they are used */
          const int lda = (ta ? M : K) + 1, ldb = (tb ? K : N) + 1, ldc = N + 1;
          float *A = random_matrix (rand, (gsize) (ta ? K : M) * lda);
          float *B = random_matrix (rand, (gsize) (tb ? N : K) * ldb);
          float *C0 = random_matrix (rand, (gsize) M * ldc);
          float *C1 = g_memdup2 (C0, sizeof (float) * M * ldc);
          float *C3 = g_memdup2 (C0, sizeof (float) * M * ldc);
          double *want = g_new (double, (gsize) M * N);
          const float alpha = 0.75f, beta = use_beta ? 1.0f : 0.0f;

          gemm_oracle (want, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C0, ldc);
          ddpm_parallel_set_threads (1);
          ddpm_sgemm (ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C1, ldc);
          ddpm_parallel_set_threads (3);
          ddpm_sgemm (ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C3, ldc);
          for (int i = 0; i < M; i++)
            {
              for (int j = 0; j < N; j++)
                {
                  const double w = want[(gsize) i * N + j];
                  const double err = fabs (C1[(gsize) i * ldc + j] - w) / (1.0 + fabs (w));
                  worst = MAX (worst, err);
                  if (err > 1e-5 * sqrt ((double) K))
                    g_error ("sgemm %dx%dx%d ta %d tb %d beta %g: C[%d][%d] = %g, want %g",
                             M, N, K, ta, tb, beta, i, j, C1[(gsize) i * ldc + j], w);
                }
              /* the padding column beyond N is never written */
              g_assert_cmpfloat (C1[(gsize) i * ldc + N], ==, C0[(gsize) i * ldc + N]);
            }
          g_assert_cmpmem (C1, sizeof (float) * M * ldc, C3, sizeof (float) * M * ldc);
          g_free (A);
          g_free (B);
          g_free (C0);
          g_free (C1);
          g_free (C3);
          g_free (want);
        }
  g_test_message ("sgemm: worst error %.3g relative to 1 + |C|", worst);
  ddpm_parallel_set_threads (0);
  g_rand_free (rand);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/engine/parallel/each-index-once", test_each_index_once);
  g_test_add_func ("/engine/parallel/two-callers", test_two_callers);
  g_test_add_func ("/engine/parallel/back-to-back", test_back_to_back);
  g_test_add_func ("/engine/parallel/sgemm", test_sgemm);
  return g_test_run ();
}
