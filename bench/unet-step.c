/* unet-step.c: time one UNet training step (forward + backward) and one
 * inference forward, for comparison with the PyTorch reference
 * ../shared/bench/torch_unet.py in the same run.  Not a test: it asserts
 * nothing and prints times.
 *
 *   OPENBLAS_NUM_THREADS=2 build/bench/unet-step tiny 16 32 [iters]
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "ddpm.h"
#include "unet.h"

/* Process CPU time: on a loaded machine with one BLAS thread, closer to
 * the quiet-machine wall time than the wall clock is. */
static double
cpu_seconds (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int
cmp_double (const void *a, const void *b)
{
  double x = *(const double *) a, y = *(const double *) b;
  return (x > y) - (x < y);
}

int
main (int argc, char **argv)
{
  const char *preset = argc > 1 ? argv[1] : "tiny";
  const int B = argc > 2 ? atoi (argv[2]) : 16;
  const int S = argc > 3 ? atoi (argv[3]) : 32;
  const int iters = argc > 4 ? atoi (argv[4]) : 5;
  DdpmUNetConfig config;
  GError *error = NULL;
  DdpmUNet *u;

  if (B < 1 || S < 1 || iters < 1
      || !ddpm_unet_config_from_preset (preset, 3, &config, &error)
      || !(u = ddpm_unet_new (&config, &error)))
    {
      fprintf (stderr, "unet-step: %s\nusage: unet-step PRESET BATCH SIZE [ITERS]\n",
               error != NULL ? error->message : "bad arguments");
      return 1;
    }
  ddpm_unet_init (u, 1);

  const gsize n = (gsize) B * 3 * S * S;
  float *x = g_new (float, n), *out = g_new (float, n), *dout = g_new (float, n);
  int *t = g_new (int, B);
  double *train = g_new (double, iters), *fwd = g_new (double, iters);
  double *train_cpu = g_new (double, iters);

  ddpm_rng_normal_fill (x, n, 2, 0, 0);
  ddpm_rng_normal_fill (dout, n, 2, 1, 0);
  for (int b = 0; b < B; b++)
    t[b] = (b * 997) % 1000;

  for (int it = -1; it < iters; it++)  /* one warm-up */
    {
      gint64 t0 = g_get_monotonic_time ();
      double c0 = cpu_seconds ();
      if (!ddpm_unet_forward (u, out, x, t, B, S, S, TRUE, (guint64) it, &error))
        {
          fprintf (stderr, "unet-step: %s\n", error->message);
          return 1;
        }
      ddpm_unet_zero_grads (u);
      ddpm_unet_backward (u, dout);
      gint64 t1 = g_get_monotonic_time ();
      if (it >= 0)
        {
          train[it] = (t1 - t0) / 1e6;
          train_cpu[it] = cpu_seconds () - c0;
        }
    }
  const gsize train_bytes = ddpm_unet_activation_bytes (u);
  ddpm_unet_free (u);  /* a fresh one, to measure what inference alone needs */
  u = ddpm_unet_new (&config, NULL);
  ddpm_unet_init (u, 1);
  for (int it = -1; it < iters; it++)
    {
      gint64 t0 = g_get_monotonic_time ();
      ddpm_unet_forward (u, out, x, t, 1, S, S, FALSE, 0, NULL);
      gint64 t1 = g_get_monotonic_time ();
      if (it >= 0)
        fwd[it] = (t1 - t0) / 1e6;
    }
  qsort (train, iters, sizeof (double), cmp_double);
  qsort (fwd, iters, sizeof (double), cmp_double);
  qsort (train_cpu, iters, sizeof (double), cmp_double);
  printf ("{\"config\": \"%s\", \"params\": %" G_GSIZE_FORMAT ", \"batch\": %d, \"size\": %d, "
          "\"train_median\": %.4f, \"train_min\": %.4f, \"train_cpu_median\": %.4f, \"fwd1_median\": %.4f, \"iters\": %d, "
          "\"train_act_mb\": %.1f, \"fwd1_act_mb\": %.1f}\n",
          preset, ddpm_unet_n_params (u), B, S, train[iters / 2], train[0], train_cpu[iters / 2], fwd[iters / 2], iters,
          train_bytes / 1048576.0, ddpm_unet_activation_bytes (u) / 1048576.0);

  g_free (x);
  g_free (out);
  g_free (dout);
  g_free (t);
  g_free (train);
  g_free (train_cpu);
  g_free (fwd);
  ddpm_unet_free (u);
  return 0;
}
