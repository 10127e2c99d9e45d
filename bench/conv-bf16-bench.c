/* conv-bf16-bench.c: the inference convolutions in fp32 and in bf16
 * (engine/layers/conv-bf16.c) on the default model's shapes and a 256²
 * model's, one JSON line per shape: median seconds of each and GFLOPS
 * (2 flops per multiply-add).  Not a test: no assertions on time.
 *
 *   bench/conv-bf16-bench [--reps N] [--threads N]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ddpm.h"
#include "layers/layers.h"

typedef struct
{
  const char *name;
  int         B, C_in, C_out, H, W, k;
} Shape;

static const Shape shapes[] = {
  /* the default model (ch 32, mult 1,2,2) on its 64² tile */
  { "default-64x64-32to32-3x3", 1, 32, 32, 64, 64, 3 },
  { "default-32x32-64to64-3x3", 1, 64, 64, 32, 32, 3 },
  { "default-16x16-64to64-3x3", 1, 64, 64, 16, 16, 3 },
  { "default-32x32-96to64-3x3", 1, 96, 64, 32, 32, 3 },
  { "default-16x16-64to64-1x1", 1, 64, 64, 16, 16, 1 },
  /* a 256² model's level at 64² (guided-diffusion / CelebA-HQ sizes) */
  { "256model-64x64-256to256-3x3", 1, 256, 256, 64, 64, 3 },
  { "256model-32x32-512to512-1x1", 1, 512, 512, 32, 32, 1 },
};

static int
cmp_double (const void *a, const void *b)
{
  const double x = *(const double *) a, y = *(const double *) b;
  return (x > y) - (x < y);
}

static double
time_one (const Shape *sh, DdpmPrecision precision, int reps, float *out, const float *inp,
          const float *w, const float *bias, float *scratch)
{
  DdpmConvShape s = { sh->B, sh->C_in, sh->H, sh->W, sh->C_out, sh->k, 1, sh->k / 2,
                      sh->k / 2 };
  double *t = g_new (double, reps), median;
  const DdpmPrecision old = ddpm_layers_set_precision (precision);

  for (int r = -1; r < reps; r++)   /* one warm-up */
    {
      gint64 t0 = g_get_monotonic_time ();

      if (sh->k == 3)
        ddpm_conv3x3_forward_padded (out, inp, w, bias, &s, scratch);
      else
        ddpm_conv1x1_forward (out, inp, w, bias, &s);
      if (r >= 0)
        t[r] = (g_get_monotonic_time () - t0) / 1e6;
    }
  ddpm_layers_set_precision (old);
  qsort (t, reps, sizeof *t, cmp_double);
  median = t[reps / 2];
  g_free (t);
  return median;
}

int
main (int argc, char **argv)
{
  int reps = 21, threads = 0;

  for (int i = 1; i + 1 < argc; i += 2)
    if (strcmp (argv[i], "--reps") == 0)
      reps = MAX (1, atoi (argv[i + 1]));
    else if (strcmp (argv[i], "--threads") == 0)
      threads = atoi (argv[i + 1]);
  ddpm_parallel_set_threads (threads);

  for (guint i = 0; i < G_N_ELEMENTS (shapes); i++)
    {
      const Shape *sh = &shapes[i];
      DdpmConvShape s = { sh->B, sh->C_in, sh->H, sh->W, sh->C_out, sh->k, 1, sh->k / 2,
                          sh->k / 2 };
      const int pad = sh->k == 3 ? 2 : 0;
      const gsize n_in = (gsize) sh->B * sh->C_in * (sh->H + pad) * (sh->W + pad);
      float *inp = g_new0 (float, n_in);
      float *w = g_new (float, (gsize) sh->C_out * sh->C_in * sh->k * sh->k);
      float *bias = g_new0 (float, sh->C_out);
      float *out = g_new (float, (gsize) sh->B * sh->C_out * sh->H * sh->W);
      float *scratch = sh->k == 3 ? g_new (float, ddpm_conv3x3_scratch_size (&s, sh->B)) : NULL;
      const double flops = 2.0 * sh->B * sh->C_out * sh->C_in * sh->k * sh->k * sh->H * sh->W;

      ddpm_rng_normal_fill (inp, n_in, 1, 0, 0);
      if (pad)
        for (int p = 0; p < sh->B * sh->C_in; p++)
          ddpm_zero_border (inp + (gsize) p * (sh->H + 2) * (sh->W + 2), sh->H, sh->W);
      ddpm_rng_normal_fill (w, (gsize) sh->C_out * sh->C_in * sh->k * sh->k, 2, 0, 0);

      const double t32 = time_one (sh, DDPM_PRECISION_FP32, reps, out, inp, w, bias, scratch);
      const double t16 = ddpm_cpu_has_avx512_bf16 ()
                           ? time_one (sh, DDPM_PRECISION_BF16, reps, out, inp, w, bias, scratch)
                           : -1;
      printf ("{\"shape\": \"%s\", \"fp32_s\": %.6f, \"bf16_s\": %.6f, \"fp32_gflops\": %.1f, "
              "\"bf16_gflops\": %.1f, \"speedup\": %.2f, \"threads\": %d}\n",
              sh->name, t32, t16, flops / t32 / 1e9, t16 > 0 ? flops / t16 / 1e9 : 0.0,
              t16 > 0 ? t32 / t16 : 0.0, ddpm_parallel_threads ());
      fflush (stdout);
      g_free (inp);
      g_free (w);
      g_free (bias);
      g_free (out);
      g_free (scratch);
    }
  return 0;
}
