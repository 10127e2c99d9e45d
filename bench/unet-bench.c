/* unet-bench.c: time the engine's UNet for bench/compare, which runs the
 * PyTorch peer (bench/torch-peer.py) on the same configurations in the
 * same invocation and prints the table.  Not a test: it asserts nothing.
 *
 *   unet-bench PRESET fwd   B S [THREADS [ITERS [BUDGET_S [PRECISION]]]]
 *   unet-bench PRESET train B S [THREADS [ITERS [BUDGET_S]]]
 *
 * fwd:   one inference forward ε_θ(x_t, t) of B images of S×S, in
 *        PRECISION: fp32 (the default), bf16 or auto, set on the calling
 *        thread with ddpm_layers_set_precision as ddpm_img2img does for a
 *        run (bench/compare's <row>-bf16 rows), with the weights' bf16
 *        packs kept as a loaded model keeps them.
 * train: one optimizer step as the peer's step() does it: fresh ε and t,
 *        x_t = √ᾱ·x0 + √(1−ᾱ)·ε (Ho et al. 2020, eq. 4), training forward,
 *        L_simple and its gradient, zeroed gradients, backward, and the
 *        engine's Adam (ddpm_adam_step on the flat parameter array).  The
 *        trainer's own step function (train.c: trainer_step) is static, so
 *        this replicates it minus data loading, gradient clipping and EMA
 *        (which the peer's step does not do either).
 *
 * Training runs in fp32 only (ddpm_unet_forward forces it for a training
 * forward), so train refuses a PRECISION other than fp32 rather than time
 * something else than it was asked for.
 *
 * THREADS sets OpenBLAS's thread count, which is also the engine's own
 * thread count for its elementwise layers (layers/parallel.c follows it),
 * so the process never runs more than THREADS busy threads.
 *
 * Prints one JSON line: min / median / max seconds over the timed
 * repetitions (after warm-ups, at least 3, at most ITERS, stopping after
 * BUDGET_S seconds once 3 are done), the activation memory and the
 * precision the forward ran in (auto and bf16 resolved on this CPU: bf16
 * falls back to fp32 without AVX512_BF16).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "layers/layers.h"

#include "ddpm.h"
#include "unet.h"
#include "train.h"

typedef struct
{
  DdpmUNet     *unet;
  DdpmSchedule *schedule;
  int           B, S, C;
  gsize         n;
  float        *x0, *eps, *xt, *pred, *dpred, *m, *v;
  int          *t;
  gint64        step;
} Bench;

static int
cmp_double (const void *a, const void *b)
{
  double x = *(const double *) a, y = *(const double *) b;
  return (x > y) - (x < y);
}

static gboolean
run_fwd (Bench *b, GError **error)
{
  for (int i = 0; i < b->B; i++)
    b->t[i] = 499;
  return ddpm_unet_forward (b->unet, b->pred, b->xt, b->t, b->B, b->S, b->S, FALSE, 0, error);
}

/* One training step (see the top of the file). */
static gboolean
run_train (Bench *b, GError **error)
{
  const gsize per_image = b->n / b->B;
  const gsize np = ddpm_unet_n_params (b->unet);

  b->step++;
  ddpm_rng_normal_fill (b->eps, b->n, 7, 1, (guint64) b->step * b->n);
  for (int i = 0; i < b->B; i++)
    {
      int t = 1 + (int) ((b->step * 7919 + i * 104729) % 1000);
      ddpm_q_sample (b->xt + i * per_image, b->x0 + i * per_image, b->eps + i * per_image,
                     per_image, b->schedule, t);
      b->t[i] = t - 1;
    }
  if (!ddpm_unet_forward (b->unet, b->pred, b->xt, b->t, b->B, b->S, b->S, TRUE,
                          (guint64) b->step, error))
    return FALSE;
  ddpm_train_mse_loss (b->dpred, b->pred, b->eps, b->n);
  ddpm_unet_zero_grads (b->unet);
  ddpm_unet_backward (b->unet, b->dpred);
  ddpm_adam_step (ddpm_unet_params (b->unet), b->m, b->v, ddpm_unet_grads (b->unet), np,
                  2e-4, 0.9, 0.999, 1e-8, 0.0, b->step);
  return TRUE;
}

int
main (int argc, char **argv)
{
  const char *usage = "usage: unet-bench PRESET fwd|train BATCH SIZE [THREADS [ITERS [BUDGET_S "
                      "[fp32|bf16|auto]]]]";
  GError *error = NULL;
  DdpmUNetConfig config;
  Bench b = { 0 };

  if (argc < 5)
    {
      fprintf (stderr, "%s\n", usage);
      return 2;
    }
  const char *preset = argv[1], *mode = argv[2];
  const gboolean train = strcmp (mode, "train") == 0;
  const int threads = argc > 5 ? atoi (argv[5]) : 2;
  const int iters = argc > 6 ? atoi (argv[6]) : 7;
  const double budget = argc > 7 ? atof (argv[7]) : 20.0;
  DdpmPrecision precision = DDPM_PRECISION_FP32;

  b.B = atoi (argv[3]);
  b.S = atoi (argv[4]);
  if ((!train && strcmp (mode, "fwd") != 0) || b.B < 1 || b.S < 1 || threads < 1
      || iters < 1)
    {
      fprintf (stderr, "%s\n", usage);
      return 2;
    }
  if (argc > 8 && !ddpm_precision_from_string (argv[8], &precision, &error))
    {
      fprintf (stderr, "unet-bench: %s\n", error->message);
      return 2;
    }
  if (train && precision != DDPM_PRECISION_FP32)
    {
      fprintf (stderr, "unet-bench: training runs in fp32 only, not %s\n", argv[8]);
      return 2;
    }
  if (!ddpm_unet_config_from_preset (preset, 3, &config, &error)
      || !(b.unet = ddpm_unet_new (&config, &error))
      || !(b.schedule = ddpm_schedule_new (DDPM_SCHEDULE_LINEAR, 1000, &error)))
    {
      fprintf (stderr, "unet-bench: %s\n", error->message);
      return 1;
    }
  ddpm_parallel_set_threads (threads);
  ddpm_layers_set_precision (precision);
  ddpm_unet_init (b.unet, 1);
  /* what a loaded model's denoiser does at its first bf16 forward
   * (model.c: keep_packs): the weights rounded once, not per call */
  if (!train && ddpm_layers_use_bf16 ())
    ddpm_unet_keep_bf16_packs (b.unet);

  b.C = config.in_channels;
  b.n = (gsize) b.B * b.C * b.S * b.S;
  b.x0 = g_new (float, b.n);
  b.eps = g_new (float, b.n);
  b.xt = g_new (float, b.n);
  b.pred = g_new (float, b.n);
  b.dpred = g_new (float, b.n);
  b.t = g_new (int, b.B);
  ddpm_rng_normal_fill (b.x0, b.n, 3, 0, 0);
  memcpy (b.xt, b.x0, b.n * sizeof (float));
  if (train)
    {
      b.m = g_new0 (float, ddpm_unet_n_params (b.unet));
      b.v = g_new0 (float, ddpm_unet_n_params (b.unet));
      if (ddpm_unet_grads (b.unet) == NULL)
        {
          fprintf (stderr, "unet-bench: no memory for the gradients\n");
          return 1;
        }
    }

  const int warmup = 2;
  double *ts = g_new (double, iters);
  int n = 0;
  gint64 start = 0;

  for (int it = -warmup; n < iters; it++)
    {
      if (it == 0)
        start = g_get_monotonic_time ();
      if (n >= 3 && (g_get_monotonic_time () - start) / 1e6 > budget)
        break;
      gint64 t0 = g_get_monotonic_time ();
      if (!(train ? run_train (&b, &error) : run_fwd (&b, &error)))
        {
          fprintf (stderr, "unet-bench: %s\n", error->message);
          return 1;
        }
      gint64 t1 = g_get_monotonic_time ();
      if (it >= 0)
        ts[n++] = (t1 - t0) / 1e6;
    }
  qsort (ts, n, sizeof (double), cmp_double);
  printf ("{\"engine\": \"ddpm\", \"config\": \"%s\", \"kind\": \"%s\", \"batch\": %d, "
          "\"size\": %d, \"threads\": %d, \"min\": %.6f, \"median\": %.6f, \"max\": %.6f, "
          "\"n\": %d, \"act_mb\": %.1f, \"precision\": \"%s\"}\n",
          preset, mode, b.B, b.S, threads, ts[0],
          n % 2 ? ts[n / 2] : 0.5 * (ts[n / 2 - 1] + ts[n / 2]), ts[n - 1], n,
          ddpm_unet_activation_bytes (b.unet) / 1048576.0,
          ddpm_precision_name (train ? DDPM_PRECISION_FP32 : ddpm_precision_resolve (precision)));

  g_free (ts);
  g_free (b.x0);
  g_free (b.eps);
  g_free (b.xt);
  g_free (b.pred);
  g_free (b.dpred);
  g_free (b.t);
  g_free (b.m);
  g_free (b.v);
  ddpm_schedule_free (b.schedule);
  ddpm_unet_free (b.unet);
  return 0;
}
