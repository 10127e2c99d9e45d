/* train-mpi.h: `ddpm train` across processes with MPI (train-mpi.c).
 *
 * Started under mpirun (or another MPI launcher), `ddpm train` joins the
 * job: cli_train_mpi_begin initialises MPI and gives the engine a
 * DdpmTrainComm whose sums are computed in a fixed order (see
 * train-mpi.c), so the trained weights do not depend on timing.  Started
 * alone it does nothing, and the training is exactly the one-process one.
 * Built without MPI (-Dmpi=disabled, or no MPI found), the functions below
 * are the one-process ones.
 */
#ifndef DDPM_CLI_TRAIN_MPI_H
#define DDPM_CLI_TRAIN_MPI_H

#include <glib.h>

#include "ddpm.h"

#ifdef DDPM_HAVE_MPI

/* Under an MPI launcher: initialise MPI and set params->comm (freed by
 * cli_train_mpi_end) and, when params->threads is 0, threads to this
 * machine's cores divided among its processes.  Otherwise TRUE and
 * nothing changes. */
gboolean cli_train_mpi_begin   (DdpmTrainParams *params, GError **error);
/* TRUE in the process that prints and writes: rank 0, or the only one. */
gboolean cli_train_mpi_is_root (void);
/* Leave MPI: normally (status 0, or the interrupt that every process saw
 * together), else abort the whole job with `status`, so that processes
 * waiting for this one in a collective stop rather than hang.  Returns
 * status. */
int      cli_train_mpi_end     (int status);

#else

static inline gboolean
cli_train_mpi_begin (DdpmTrainParams *params, GError **error)
{
  return TRUE;
}

static inline gboolean
cli_train_mpi_is_root (void)
{
  return TRUE;
}

static inline int
cli_train_mpi_end (int status)
{
  return status;
}

#endif

#endif /* DDPM_CLI_TRAIN_MPI_H */
