/* train-mpi.c: the DdpmTrainComm of `ddpm train` on MPI (Open MPI here).
 *
 * HOW THE GRADIENT SUM WORKS.  MPI_Allreduce would do, but the MPI
 * standard lets an implementation pick its reduction order (by message
 * size, by topology, …), so its bits are not a function of the inputs
 * alone.  The sum here is written out instead, as the two halves of a
 * ring allreduce, and costs the same bytes on the wire:
 *
 *   1. reduce-scatter: the n gradients are cut into K shards (K processes),
 *      shard j = [j·n/K, (j+1)·n/K); MPI_Alltoallv sends every process's
 *      copy of shard j to process j, which adds the K copies up in rank
 *      order 0, 1, …, K − 1, in double, rounded once to float;
 *   2. allgather: MPI_Allgatherv gives everyone every summed shard.
 *
 * Each element is thus summed by one process in one fixed order: the
 * result is the same on every process and from run to run, whatever the
 * timing.  Every process sends and receives 2·(K − 1)/K·n floats, the ring
 * allreduce's volume.  With K = 1 it is the identity (the one-process bits).
 *
 * Scalars (the loss's parts, the cancel flag) go through MPI_Allgather and
 * the same rank-order sum.
 *
 * FAULTS: MPI's default error handler (MPI_ERRORS_ARE_FATAL) stays: a
 * process that dies makes mpirun end the job, and a process whose training
 * fails calls MPI_Abort (cli_train_mpi_end), so no process waits forever
 * for a partner that is gone.  Files are written by rank 0 alone, and
 * atomically, so the last checkpoint is whole whatever is killed when.
 *
 * DDPM_MPI_STATS=1 in the environment makes rank 0 print the bytes summed
 * per step and the time the sums took (bench/mpi-train reads it).
 */
#define _GNU_SOURCE   /* sched_getaffinity, CPU_COUNT */
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <mpi.h>

#include "cli.h"
#include "train-mpi.h"

/* Exit status after Ctrl-C (as cli/train.c): every process stops together. */
#define CLI_EXIT_INTERRUPTED 130

GQuark cli_mpi_error_quark (void);
G_DEFINE_QUARK (ddpm-mpi-error-quark, cli_mpi_error)
#define CLI_MPI_ERROR (cli_mpi_error_quark ())

typedef struct
{
  DdpmTrainComm comm;
  float   *shards;      /* (K, counts[rank]) the copies of this process's shard */
  int     *counts;      /* (K) shard sizes */
  int     *displs;      /* (K) shard starts */
  gsize    n;           /* what counts/displs were made for */
  double  *gathered;    /* (K · max scalars) */
  gsize    gathered_n;
  gboolean stats;       /* DDPM_MPI_STATS */
  double   sum_seconds; /* time in sum_floats */
  gint64   sums;
  gsize    sum_bytes;   /* of one gradient sum */
} CliMpi;

static CliMpi *mpi;     /* the job joined by cli_train_mpi_begin, or NULL */

static gboolean
check (int rc, const char *what, GError **error)
{
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;

  if (rc == MPI_SUCCESS)
    return TRUE;
  MPI_Error_string (rc, text, &len);
  g_set_error (error, CLI_MPI_ERROR, 0, "MPI %s failed: %.*s", what, len, text);
  return FALSE;
}

/* data ← Σ over ranks, in rank order (see above). */
static gboolean
sum_floats (const DdpmTrainComm *comm, float *data, gsize n, GError **error)
{
  CliMpi *m = comm->user_data;
  const int K = comm->size, r = comm->rank;
  double t0 = MPI_Wtime ();

  if (K == 1)
    return TRUE;
  if (n > G_MAXINT)
    {
      g_set_error (error, CLI_MPI_ERROR, 0,
                   "%" G_GSIZE_FORMAT " gradients are too many for one MPI message", n);
      return FALSE;
    }
  if (m->n != n)
    {
      g_free (m->shards);
      for (int j = 0; j < K; j++)
        {
          m->displs[j] = (int) (n * j / K);
          m->counts[j] = (int) (n * (j + 1) / K) - m->displs[j];
        }
      m->shards = g_try_new (float, (gsize) K * m->counts[r]);
      m->n = m->shards ? n : 0;
      if (!m->shards)
        {
          g_set_error (error, CLI_MPI_ERROR, 0,
                       "Not enough memory for the gradients of the other processes");
          return FALSE;
        }
    }

  const int c = m->counts[r];
  int *recv_counts = g_newa (int, K), *recv_displs = g_newa (int, K);
  for (int j = 0; j < K; j++)
    {
      recv_counts[j] = c;
      recv_displs[j] = j * c;
    }
  if (!check (MPI_Alltoallv (data, m->counts, m->displs, MPI_FLOAT,
                             m->shards, recv_counts, recv_displs, MPI_FLOAT,
                             MPI_COMM_WORLD), "Alltoallv", error))
    return FALSE;

  float *mine = data + m->displs[r];
  for (int i = 0; i < c; i++)
    {
      double s = 0;
      for (int j = 0; j < K; j++)
        s += m->shards[(gsize) j * c + i];
      mine[i] = (float) s;
    }

  if (!check (MPI_Allgatherv (MPI_IN_PLACE, 0, MPI_DATATYPE_NULL,
                              data, m->counts, m->displs, MPI_FLOAT, MPI_COMM_WORLD),
              "Allgatherv", error))
    return FALSE;

  m->sum_seconds += MPI_Wtime () - t0;
  m->sums++;
  m->sum_bytes = n * sizeof (float);
  return TRUE;
}

static gboolean
sum_doubles (const DdpmTrainComm *comm, double *data, gsize n, GError **error)
{
  CliMpi *m = comm->user_data;
  const int K = comm->size;

  if (K == 1)
    return TRUE;
  if (m->gathered_n < n * K)
    {
      m->gathered = g_renew (double, m->gathered, n * K);
      m->gathered_n = n * K;
    }
  if (!check (MPI_Allgather (data, (int) n, MPI_DOUBLE, m->gathered, (int) n, MPI_DOUBLE,
                             MPI_COMM_WORLD), "Allgather", error))
    return FALSE;
  for (gsize i = 0; i < n; i++)
    {
      double s = 0;
      for (int j = 0; j < K; j++)
        s += m->gathered[(gsize) j * n + i];
      data[i] = s;
    }
  return TRUE;
}

static gboolean
broadcast (const DdpmTrainComm *comm, void *data, gsize bytes, GError **error)
{
  /* in pieces: MPI counts are ints */
  const gsize piece = 1 << 30;

  for (gsize done = 0; done < bytes; done += piece)
    if (!check (MPI_Bcast ((char *) data + done, (int) MIN (piece, bytes - done), MPI_BYTE,
                           0, MPI_COMM_WORLD), "Bcast", error))
      return FALSE;
  return TRUE;
}

/* Started by an MPI launcher?  Open MPI's mpirun sets OMPI_COMM_WORLD_SIZE;
 * PMIx (Open MPI 4+, Slurm) and Hydra (MPICH) their own. */
static gboolean
launched_by_mpi (void)
{
  return g_getenv ("OMPI_COMM_WORLD_SIZE") || g_getenv ("PMIX_RANK")
         || g_getenv ("PMI_RANK");
}

/* This machine's cores shared among its processes, but no more than this
 * process may run on (mpirun binds each process to one core by default
 * when there are at most two; --bind-to none lifts that). */
static int
default_threads (void)
{
  MPI_Comm local;
  int local_size = 1;
  long online = sysconf (_SC_NPROCESSORS_ONLN);

  if (MPI_Comm_split_type (MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL,
                           &local) == MPI_SUCCESS)
    {
      MPI_Comm_size (local, &local_size);
      MPI_Comm_free (&local);
    }
  int share = (int) MAX (1, online / MAX (local_size, 1));
  /* the CPUs mpirun bound this process to (g_get_num_processors does not
   * see the binding here) */
  cpu_set_t set;
  int allowed = sched_getaffinity (0, sizeof set, &set) == 0 ? CPU_COUNT (&set) : share;
  return MAX (1, MIN (share, allowed));
}

gboolean
cli_train_mpi_begin (DdpmTrainParams *params, GError **error)
{
  int provided;

  if (!launched_by_mpi ())
    return TRUE;
  /* funneled: only this thread calls MPI; the engine's team computes */
  if (!check (MPI_Init_thread (NULL, NULL, MPI_THREAD_FUNNELED, &provided),
              "Init", error))
    return FALSE;

  mpi = g_new0 (CliMpi, 1);
  MPI_Comm_rank (MPI_COMM_WORLD, &mpi->comm.rank);
  MPI_Comm_size (MPI_COMM_WORLD, &mpi->comm.size);
  mpi->comm.sum_floats = sum_floats;
  mpi->comm.sum_doubles = sum_doubles;
  mpi->comm.broadcast = broadcast;
  mpi->comm.user_data = mpi;
  mpi->counts = g_new0 (int, mpi->comm.size);
  mpi->displs = g_new0 (int, mpi->comm.size);
  mpi->stats = g_getenv ("DDPM_MPI_STATS") != NULL;

  params->comm = &mpi->comm;
  if (params->threads == 0)
    params->threads = default_threads ();
  if (mpi->stats)
    fprintf (stderr, "ddpm train: MPI rank %d of %d, %d threads\n",
             mpi->comm.rank, mpi->comm.size, params->threads);
  return TRUE;
}

gboolean
cli_train_mpi_is_root (void)
{
  return mpi == NULL || mpi->comm.rank == 0;
}

int
cli_train_mpi_end (int status)
{
  if (mpi == NULL)
    return status;
  if (status != CLI_EXIT_OK && status != CLI_EXIT_INTERRUPTED && mpi->comm.size > 1)
    {
      fprintf (stderr, "ddpm train: process %d of %d failed; stopping the others\n",
               mpi->comm.rank, mpi->comm.size);
      fflush (stderr);
      MPI_Abort (MPI_COMM_WORLD, status);
    }
  if (mpi->stats && mpi->comm.rank == 0 && mpi->sums > 0)
    fprintf (stderr, "ddpm train: MPI: %d processes, %" G_GINT64_FORMAT " gradient sums "
             "of %" G_GSIZE_FORMAT " bytes, %.3f ms each on average\n",
             mpi->comm.size, mpi->sums, mpi->sum_bytes, 1e3 * mpi->sum_seconds / mpi->sums);
  MPI_Finalize ();
  g_free (mpi->shards);
  g_free (mpi->counts);
  g_free (mpi->displs);
  g_free (mpi->gathered);
  g_clear_pointer (&mpi, g_free);
  return status;
}
