/* parallel.c: the engine's one thread team, for the matrix products
 * (gemm.c splits each over it), the layers' elementwise and reshaping
 * loops (GroupNorm, SiLU, softmax, im2col/col2im, …), the trainer's
 * optimizer and the sampling driver's noise, steps, masks and tiles
 * (img2img.c).
 *
 * HOW IT WORKS
 *
 * The team has ddpm_parallel_threads () threads, the caller's thread being
 * one of them (set by ddpm_parallel_set_threads, which ddpm_train,
 * ddpm_img2img and the model's denoiser call with the user's thread
 * count; default: all cores).
 * OpenBLAS is kept at one thread, so it runs only inside the team's parts
 * and the process never has more busy threads than the count asked for.
 *
 * ddpm_parallel_for (n, grain, func, data) splits [0, n) into at most
 * 4·threads contiguous parts of at least `grain` items, which the threads
 * (the caller among them) claim one after another; it returns when all
 * are done.  Work
 * smaller than two grains runs inline with no synchronisation at all.
 * Workers are created on first use.  Between jobs a worker polls for a
 * short while (jobs come back to back during a UNet pass, and a futex
 * wake-up costs tens of microseconds on these VMs), then sleeps on a
 * condition variable (the two cores are shared: no long spinning).  Only
 * one job runs at a time: a call made while another is in flight (from a
 * second thread, or from inside a part) runs inline, so the team never
 * deadlocks and the result never depends on who got the team.
 *
 * Every func here writes disjoint outputs per part and does each part's
 * arithmetic in a fixed order, so results do not depend on the thread
 * count.
 */
#include <stdatomic.h>

#include <cblas.h>

#include "layers.h"

#define MAX_TEAM 64

/* Polls before a worker or the caller goes to sleep: a few tens of
 * microseconds, about the gap between two products of a UNet pass. */
#define SPIN_POLLS 2000

#define PARTS_PER_THREAD 4

typedef struct
{
  GMutex           lock;
  GCond            wake;      /* workers: a new generation */
  GCond            done;      /* caller: pending reached 0 */
  GMutex           busy;      /* held by the caller of the job in flight */
  int              threads;   /* 0 until set or first used */
  int              n_workers;
  int              sleepers;  /* workers in g_cond_wait (under lock) */
  gboolean         caller_waits; /* the caller is in g_cond_wait (under lock) */
  atomic_uint      generation;
  /* the job of the current generation, written before it is published */
  DdpmRangeFunc    func;
  gpointer         data;
  gsize            n;
  guint            parts;
  /* (generation << 32) | next part: a worker from an older generation
   * cannot claim a part of the new one */
  atomic_ullong    claim;
  atomic_int       pending;   /* parts not finished */
} Team;

static Team team;

static inline void
cpu_relax (void)
{
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause ();
#endif
}

static void
run_parts (guint gen)
{
  for (;;)
    {
      unsigned long long v = atomic_load_explicit (&team.claim, memory_order_acquire);

      if ((guint) (v >> 32) != gen || (guint) (v & 0xffffffffu) >= team.parts)
        return;
      if (!atomic_compare_exchange_weak_explicit (&team.claim, &v, v + 1,
                                                  memory_order_acq_rel,
                                                  memory_order_acquire))
        continue;

      const guint p = (guint) (v & 0xffffffffu);
      team.func (team.n * p / team.parts, team.n * (p + 1) / team.parts, team.data);

      /* the caller is told only when it sleeps: g_cond_signal is a futex
       * system call even with nobody waiting, and a system call costs
       * microseconds on these VMs — at every job, since the caller
       * usually finds the parts done while it polls */
      if (atomic_fetch_sub_explicit (&team.pending, 1, memory_order_acq_rel) == 1)
        {
          g_mutex_lock (&team.lock);
          if (team.caller_waits)
            g_cond_signal (&team.done);
          g_mutex_unlock (&team.lock);
        }
    }
}

static gpointer
worker (gpointer data)
{
  const int id = GPOINTER_TO_INT (data);   /* 0, 1, … */
  guint seen = 0;

  for (;;)
    {
      guint gen = atomic_load_explicit (&team.generation, memory_order_acquire);

      for (int i = 0; gen == seen && i < SPIN_POLLS; i++)
        {
          cpu_relax ();
          gen = atomic_load_explicit (&team.generation, memory_order_acquire);
        }
      if (gen == seen)
        {
          g_mutex_lock (&team.lock);
          team.sleepers++;
          while ((gen = atomic_load (&team.generation)) == seen)
            g_cond_wait (&team.wake, &team.lock);
          team.sleepers--;
          g_mutex_unlock (&team.lock);
        }
      seen = gen;
      /* workers beyond a lowered thread count stay out */
      if (id < team.threads - 1)
        run_parts (gen);
    }
  return NULL;
}

void
ddpm_parallel_set_threads (int threads)
{
  g_return_if_fail (threads >= 0);

  /* OpenBLAS only ever runs inside the team's parts (gemm.c) */
  openblas_set_num_threads (1);
  team.threads = CLAMP (threads > 0 ? threads : (int) g_get_num_processors (), 1, MAX_TEAM);
}

int
ddpm_parallel_threads (void)
{
  if (team.threads == 0)
    ddpm_parallel_set_threads (0);
  return team.threads;
}

void
ddpm_parallel_for (gsize n, gsize grain, DdpmRangeFunc func, gpointer data)
{
  const int threads = ddpm_parallel_threads ();
  /* a few parts per thread, claimed in turn: when a thread is held up
   * (the cores are shared with GIMP and everything else) the others take
   * its remaining parts instead of waiting for it */
  gsize parts = MIN ((gsize) threads * PARTS_PER_THREAD, n / MAX (grain, 1));

  if (threads <= 1 || parts <= 1 || !g_mutex_trylock (&team.busy))
    {
      if (n > 0)
        func (0, n, data);
      return;
    }
  /* grow the team to threads − 1 workers (they live for the process) */
  g_mutex_lock (&team.lock);
  while (team.n_workers < threads - 1)
    {
      GThread *t = g_thread_try_new ("ddpm-team", worker,
                                     GINT_TO_POINTER (team.n_workers), NULL);
      if (t == NULL)
        break;
      g_thread_unref (t);
      team.n_workers++;
    }
  g_mutex_unlock (&team.lock);
  if (team.n_workers == 0)
    {
      func (0, n, data);
      g_mutex_unlock (&team.busy);
      return;
    }

  const guint gen = atomic_load (&team.generation) + 1;
  /* Close the previous job's claims before its fields are overwritten: a
   * worker still in run_parts for it may have loaded the claim word, seen
   * a part index past that job's end but below the new job's team.parts,
   * and claimed it — a part of the new job run under the old generation,
   * counted against the new job's pending, so the caller returned while it
   * still ran (a crash on the caller's popped stack; seen in renoise).
   * With the counter at its maximum no claim of the old generation can
   * succeed, and a compare-exchange that loaded the word before this store
   * fails. */
  atomic_store (&team.claim, ((unsigned long long) (gen - 1) << 32) | 0xffffffffu);
  team.func = func;
  team.data = data;
  team.n = n;
  team.parts = (guint) parts;
  atomic_store (&team.pending, (int) parts);
  atomic_store_explicit (&team.claim, (unsigned long long) gen << 32, memory_order_release);
  atomic_store_explicit (&team.generation, gen, memory_order_release);
  if (parts > 1)
    {
      g_mutex_lock (&team.lock);
      if (team.sleepers > 0)
        g_cond_broadcast (&team.wake);
      g_mutex_unlock (&team.lock);
    }

  run_parts (gen);

  for (int i = 0; atomic_load_explicit (&team.pending, memory_order_acquire) > 0
                  && i < SPIN_POLLS; i++)
    cpu_relax ();
  if (atomic_load_explicit (&team.pending, memory_order_acquire) > 0)
    {
      g_mutex_lock (&team.lock);
      team.caller_waits = TRUE;
      while (atomic_load (&team.pending) > 0)
        g_cond_wait (&team.done, &team.lock);
      team.caller_waits = FALSE;
      g_mutex_unlock (&team.lock);
    }
  g_mutex_unlock (&team.busy);
}
