/* model-bench.c: time one inference forward of a model file at batch 1,
 * for bench/compare's rows of the published 256² architectures (a
 * guided-diffusion state_dict with random weights, imported with `ddpm
 * import`).  Not a test: it asserts nothing.
 *
 *   model-bench MODEL.safetensors [--threads N] [--precision fp32|bf16]
 *               [--warmup N] [--iters N] [--input X.f32] [--output OUT.f32]
 *
 * It loads the model with ddpm_model_load and runs ddpm_model_forward, the
 * network's whole raw output (ε, and v for a learn_sigma model) at the
 * 0-based timestep 499, as the PyTorch peer does.  The precision is set on
 * the calling thread as ddpm_img2img does for a run (the public API takes
 * it through DdpmSampleParams; a bare forward has no such argument).
 * --input: the image as raw little-endian float32 (C·S·S values, C and S
 * from the model), the same bytes the peer feeds its network; default a
 * fixed N(0, 1) draw.  --output: the last forward's output, raw float32,
 * for bench/compare to check against the peer's.
 *
 * Prints one JSON line: min / median / max seconds of the timed forwards
 * (after the warm-ups) and the parameter count.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "layers/layers.h"

#include "ddpm.h"

static int
cmp_double (const void *a, const void *b)
{
  const double x = *(const double *) a, y = *(const double *) b;
  return (x > y) - (x < y);
}

int
main (int argc, char **argv)
{
  int threads = 2, warmup = 1, iters = 1;
  char *precision_name = NULL, *input = NULL, *output = NULL;
  GOptionEntry entries[] = {
    { "threads", 0, 0, G_OPTION_ARG_INT, &threads, "threads (default 2)", "N" },
    { "precision", 0, 0, G_OPTION_ARG_STRING, &precision_name, "fp32, bf16 or auto", "P" },
    { "warmup", 0, 0, G_OPTION_ARG_INT, &warmup, "untimed forwards first (default 1)", "N" },
    { "iters", 0, 0, G_OPTION_ARG_INT, &iters, "timed forwards (default 1)", "N" },
    { "input", 0, 0, G_OPTION_ARG_FILENAME, &input, "the image, raw float32", "FILE" },
    { "output", 0, 0, G_OPTION_ARG_FILENAME, &output, "the output, raw float32", "FILE" },
    { NULL }
  };
  GOptionContext *context = g_option_context_new ("MODEL.safetensors");
  GError *error = NULL;
  DdpmPrecision precision = DDPM_PRECISION_FP32;

  g_option_context_add_main_entries (context, entries, NULL);
  if (!g_option_context_parse (context, &argc, &argv, &error)
      || (precision_name != NULL
          && !ddpm_precision_from_string (precision_name, &precision, &error)))
    {
      fprintf (stderr, "model-bench: %s\n", error->message);
      return 2;
    }
  g_option_context_free (context);
  if (argc != 2 || threads < 1 || warmup < 0 || iters < 1)
    {
      fprintf (stderr, "usage: model-bench MODEL.safetensors [--threads N] "
               "[--precision P] [--warmup N] [--iters N] [--input F] [--output F]\n");
      return 2;
    }

  DdpmModel *model = ddpm_model_load (argv[1], &error);
  if (model == NULL)
    {
      fprintf (stderr, "model-bench: %s\n", error->message);
      return 1;
    }
  const DdpmUNetConfig *c = ddpm_model_get_config (model);
  const int C = c->in_channels, S = c->image_size;
  const gsize n_in = (gsize) C * S * S, n_out = (gsize) c->out_channels * S * S;
  float *x = g_new (float, n_in), *out = g_new (float, n_out);
  const int t = 499;

  if (input != NULL)
    {
      char *bytes = NULL;
      gsize len = 0;

      if (!g_file_get_contents (input, &bytes, &len, &error))
        {
          fprintf (stderr, "model-bench: %s\n", error->message);
          return 1;
        }
      if (len != n_in * sizeof (float))
        {
          fprintf (stderr, "model-bench: %s has %zu bytes, the model takes %zu\n", input,
                   (size_t) len, (size_t) (n_in * sizeof (float)));
          return 1;
        }
      memcpy (x, bytes, len);   /* little-endian float32: this machine's order */
      g_free (bytes);
    }
  else
    ddpm_rng_normal_fill (x, n_in, 3, 0, 0);

  ddpm_layers_set_precision (precision);
  double *ts = g_new (double, iters);
  for (int it = -warmup; it < iters; it++)
    {
      gint64 t0 = g_get_monotonic_time ();

      if (!ddpm_model_forward (model, out, x, &t, NULL, 1, C, S, S, threads, &error))
        {
          fprintf (stderr, "model-bench: %s\n", error->message);
          return 1;
        }
      if (it >= 0)
        ts[it] = (g_get_monotonic_time () - t0) / 1e6;
    }
  if (output != NULL
      && !g_file_set_contents (output, (const char *) out, n_out * sizeof (float), &error))
    {
      fprintf (stderr, "model-bench: %s\n", error->message);
      return 1;
    }
  qsort (ts, iters, sizeof (double), cmp_double);
  printf ("{\"engine\": \"ddpm\", \"model\": \"%s\", \"precision\": \"%s\", \"size\": %d, "
          "\"threads\": %d, \"params\": %zu, \"min\": %.6f, \"median\": %.6f, \"max\": %.6f, "
          "\"n\": %d}\n",
          argv[1], ddpm_precision_name (ddpm_precision_resolve (precision)), S, threads,
          (size_t) ddpm_unet_config_n_params (c), ts[0],
          iters % 2 ? ts[iters / 2] : 0.5 * (ts[iters / 2 - 1] + ts[iters / 2]),
          ts[iters - 1], iters);

  g_free (ts);
  g_free (x);
  g_free (out);
  g_free (precision_name);
  g_free (input);
  g_free (output);
  ddpm_model_free (model);
  return 0;
}
