/* parallel.c: a tiny thread team for the layers' elementwise and
 * reshaping loops (GroupNorm, SiLU, softmax, im2col/col2im, …).
 *
 * HOW IT WORKS
 *
 * The heavy products run in OpenBLAS, which has its own threads; between
 * two sgemm calls those threads are idle, and the loops here run then.
 * The team has as many threads as OpenBLAS is set to use
 * (openblas_get_num_threads, which ddpm_train and the denoiser set from
 * the user's thread count), the caller's thread being one of them, so our
 * threads and OpenBLAS's never run at the same time and never exceed the
 * count the user asked for.
 *
 * ddpm_parallel_for (n, grain, func, data) splits [0, n) into at most
 * `threads` contiguous parts of at least `grain` items and runs func on
 * each, the caller taking part 0; it returns when all are done.  Work
 * smaller than two grains runs inline with no synchronisation at all.
 * Workers are created on first use and sleep on a condition variable
 * between jobs (no spinning: the two cores are shared).  Only one job runs
 * at a time: a call made while another is in flight (from a second thread,
 * or from inside a part) runs inline, so the team never deadlocks and the
 * result never depends on who got the team.
 *
 * Every func here writes disjoint outputs per part and does each part's
 * arithmetic in a fixed order, so results do not depend on the thread
 * count.
 */
#include <cblas.h>

#include "layers.h"

#define MAX_TEAM 64

typedef struct
{
  GMutex        lock;
  GCond         wake;      /* workers: a new generation */
  GCond         done;      /* caller: pending reached 0 */
  GMutex        busy;      /* held by the caller of the job in flight */
  int           n_workers;
  guint64       generation;
  DdpmRangeFunc func;
  gpointer      data;
  gsize         n;
  int           parts;
  int           next;      /* next part to take */
  int           pending;   /* parts not finished */
} Team;

static Team team;

static void
run_parts (guint64 gen)
{
  for (;;)
    {
      int p;
      gsize begin, end;
      DdpmRangeFunc func;
      gpointer data;

      g_mutex_lock (&team.lock);
      if (team.generation != gen || team.next >= team.parts)
        {
          g_mutex_unlock (&team.lock);
          return;
        }
      p = team.next++;
      begin = team.n * p / team.parts;
      end = team.n * (p + 1) / team.parts;
      func = team.func;
      data = team.data;
      g_mutex_unlock (&team.lock);

      func (begin, end, data);

      g_mutex_lock (&team.lock);
      if (--team.pending == 0)
        g_cond_signal (&team.done);
      g_mutex_unlock (&team.lock);
    }
}

static gpointer
worker (gpointer unused)
{
  guint64 seen = 0;

  for (;;)
    {
      g_mutex_lock (&team.lock);
      while (team.generation == seen)
        g_cond_wait (&team.wake, &team.lock);
      seen = team.generation;
      g_mutex_unlock (&team.lock);
      run_parts (seen);
    }
  return NULL;
}

int
ddpm_parallel_threads (void)
{
  int n = openblas_get_num_threads ();
  return CLAMP (n, 1, MAX_TEAM);
}

void
ddpm_parallel_for (gsize n, gsize grain, DdpmRangeFunc func, gpointer data)
{
  const int threads = ddpm_parallel_threads ();
  gsize parts = MIN ((gsize) threads, n / MAX (grain, 1));

  if (parts <= 1 || !g_mutex_trylock (&team.busy))
    {
      if (n > 0)
        func (0, n, data);
      return;
    }
  /* grow the team to threads − 1 workers (they live for the process) */
  g_mutex_lock (&team.lock);
  while (team.n_workers < (int) parts - 1)
    {
      GThread *t = g_thread_try_new ("ddpm-layers", worker, NULL, NULL);
      if (t == NULL)
        break;
      g_thread_unref (t);
      team.n_workers++;
    }
  parts = MIN (parts, (gsize) team.n_workers + 1);
  team.func = func;
  team.data = data;
  team.n = n;
  team.parts = (int) parts;
  team.next = 0;
  team.pending = (int) parts;
  team.generation++;
  const guint64 gen = team.generation;
  if (parts > 1)
    g_cond_broadcast (&team.wake);
  g_mutex_unlock (&team.lock);

  run_parts (gen);

  g_mutex_lock (&team.lock);
  while (team.pending > 0)
    g_cond_wait (&team.done, &team.lock);
  g_mutex_unlock (&team.lock);
  g_mutex_unlock (&team.busy);
}
