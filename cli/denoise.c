/* denoise.c: `ddpm denoise`, removing white Gaussian noise with the model
 * (ddpm_denoise), and `ddpm denoise-eval`, its PSNR on held-out images.
 *
 *   ddpm denoise --model M --sigma S|auto [--steps N] [--seed S]
 *                [--sampler …] IN.png OUT.png
 *   ddpm denoise-eval --model M [--sigma 10,25,50] [--steps N] [--seed S]
 *                IMAGES…
 *
 * σ is on the [0, 1] pixel scale for `denoise` (25/255 ≈ 0.098) and in
 * 1/255 units for `denoise-eval`, where the table is read in those units.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "ddpm.h"
#include "cli.h"

/* Noise added by denoise-eval: stream "EVAL" in the high word, image index
 * in the low, so every image gets its own noise, the same for each σ
 * (scaled) and each sampler. */
#define EVAL_STREAM_TAG (G_GUINT64_CONSTANT (0x4556414c) << 32)

/* --sigma: "auto" (*sigma = 0) or a level in (0, 1]. */
static gboolean
parse_sigma (const char *text, double *sigma, GError **error)
{
  char *end;

  if (text == NULL)
    {
      g_set_error (error, DDPM_ERROR, DDPM_ERROR_INVALID_ARGUMENT,
                   "--sigma is required: the noise level on the [0, 1] pixel "
                   "scale (25/255 ≈ 0.098), or “auto” to estimate it");
      return FALSE;
    }
  if (strcmp (text, "auto") == 0)
    {
      *sigma = 0.0;
      return TRUE;
    }
  *sigma = g_ascii_strtod (text, &end);
  if (end == text || *end != '\0' || !(*sigma > 0.0 && *sigma <= 1.0))
    {
      g_set_error (error, DDPM_ERROR, DDPM_ERROR_INVALID_ARGUMENT,
                   "--sigma must be “auto” or a noise level in (0, 1] on the "
                   "[0, 1] pixel scale (25/255 ≈ 0.098), not “%s”", text);
      return FALSE;
    }
  return TRUE;
}

int
cli_denoise (int argc, char **argv)
{
  CliSampleOptions options = { 0 };
  char *sigma_text = NULL;
  int bit_depth = 8;
  const GOptionEntry entries[] = {
    { "sigma", 0, 0, G_OPTION_ARG_STRING, &sigma_text,
      "noise standard deviation on the [0, 1] pixel scale (25/255 ≈ 0.098), "
      "or auto to estimate it from the image", "S|auto" },
    { "bit-depth", 0, 0, G_OPTION_ARG_INT, &bit_depth, "8 (default) or 16", "B" },
    { NULL }
  };
  GOptionContext *context = g_option_context_new ("IN.png OUT.png - remove Gaussian "
                                                  "noise with the model");
  DdpmSampleParams params;
  DdpmModel *model = NULL;
  DdpmImage *image = NULL;
  GError *error = NULL;
  CliProgress progress;
  double sigma = 0.0;
  gboolean estimated;
  int status = CLI_EXIT_USAGE, t0;

  cli_sample_options_add (context, &options);
  g_option_context_add_main_entries (context, entries, NULL);
  if (!cli_parse (context, "denoise", &argc, &argv))
    goto out;
  if (!cli_check_in_out ("denoise", argc, bit_depth))
    goto out;
  if (!parse_sigma (sigma_text, &sigma, &error)
      || !cli_sample_options_resolve (&options, &params, &error))
    goto out;
  estimated = sigma == 0.0;

  status = CLI_EXIT_FAILURE;
  if (!(model = cli_load_model (options.model, &error))
      || !(image = ddpm_image_load (argv[1], &error)))
    goto out;
  if (estimated)
    {
      if (!ddpm_estimate_noise_sigma (image->pixels, image->channels, image->height,
                                      image->width, &sigma, &error))
        goto out;
      if (sigma == 0.0)
        {
          /* Not one 2×2 block in two has any diagonal detail: a synthetic
           * or posterised image; there is no noise to remove. */
          fprintf (stderr, "denoise %s: no noise found, the image is written "
                   "unchanged\n", argv[1]);
          if (!ddpm_image_save_png (image, argv[2], bit_depth, &error))
            goto out;
          printf ("%s\n", argv[2]);
          status = CLI_EXIT_OK;
          goto out;
        }
    }
  if (!(t0 = ddpm_denoise_sigma_to_t (ddpm_model_get_schedule (model), sigma, &error)))
    {
      /* a level the schedule cannot reach is the user's argument */
      if (!estimated)
        status = CLI_EXIT_USAGE;
      goto out;
    }

  int n_steps = MIN (params.steps, t0);
  fprintf (stderr, "denoise %s: %d×%d, σ = %.4f (%.1f/255, %s), from t = %d of %d "
           "in %d step%s (%s, seed %" G_GINT64_FORMAT ")\n", argv[1], image->width,
           image->height, sigma, sigma * 255, estimated ? "estimated" : "given", t0,
           ddpm_model_get_schedule (model)->T, n_steps, n_steps == 1 ? "" : "s",
           ddpm_sampler_kind_name (params.sampler), (gint64) params.seed);
  cli_progress_init (&progress, "step");
  cli_catch_interrupt ();
  params.progress = cli_progress_report;
  params.progress_data = &progress;
  if (!cli_run_denoise (model, image, NULL, sigma, &params, &error)
      || !ddpm_image_save_png (image, argv[2], bit_depth, &error))
    goto out;
  printf ("%s\n", argv[2]);
  status = CLI_EXIT_OK;

out:
  if (error)
    {
      cli_fail ("denoise", status, "%s", error->message);
      g_error_free (error);
    }
  if (image)
    ddpm_image_free (image);
  if (model)
    ddpm_model_free (model);
  cli_sample_options_clear (&options);
  g_free (sigma_text);
  g_option_context_free (context);
  return status;
}

/* ------------------------------------------------------------ denoise-eval */

/* PSNR = 10·log10(1/MSE) for [0, 1] images, over n values. */
static double
psnr (const float *a, const float *b, gsize n)
{
  double sum = 0.0;

  for (gsize i = 0; i < n; i++)
    {
      double d = (double) a[i] - b[i];
      sum += d * d;
    }
  return sum > 0 ? 10.0 * log10 ((double) n / sum) : INFINITY;
}

/* "10,25,50" → levels in 1/255 units, each in (0, 255]. */
static double *
parse_sigma_list (const char *text, int *count, GError **error)
{
  char **parts = g_strsplit (text, ",", -1);
  int n = (int) g_strv_length (parts);
  double *levels = g_new (double, MAX (n, 1));

  for (int i = 0; i < n; i++)
    {
      char *end;
      levels[i] = g_ascii_strtod (parts[i], &end);
      if (end == parts[i] || *end != '\0' || !(levels[i] > 0 && levels[i] <= 255))
        {
          g_set_error (error, DDPM_ERROR, DDPM_ERROR_INVALID_ARGUMENT,
                       "--sigma must list noise levels in 1/255 units, each in "
                       "(0, 255], e.g. 10,25,50; “%s” is not one", parts[i]);
          g_free (levels);
          g_strfreev (parts);
          return NULL;
        }
    }
  if (n == 0)
    {
      g_set_error (error, DDPM_ERROR, DDPM_ERROR_INVALID_ARGUMENT,
                   "--sigma lists no noise level");
      g_free (levels);
      levels = NULL;
    }
  g_strfreev (parts);
  *count = n;
  return levels;
}

int
cli_denoise_eval (int argc, char **argv)
{
  static const DdpmSamplerKind samplers[] = { DDPM_SAMPLER_DDIM, DDPM_SAMPLER_DDPM };
  const int n_samplers = G_N_ELEMENTS (samplers);
  CliSampleOptions options = { 0 };
  char *sigma_text = NULL;
  const GOptionEntry entries[] = {
    { "sigma", 0, 0, G_OPTION_ARG_STRING, &sigma_text,
      "noise levels to add, in 1/255 units (default 10,25,50)", "L,L,…" },
    { NULL }
  };
  GOptionContext *context = g_option_context_new ("IMAGES… - add Gaussian noise to "
                                                  "clean images, remove it with the "
                                                  "model (DDIM and DDPM) and report "
                                                  "the mean PSNR");
  DdpmSampleParams params;
  DdpmModel *model = NULL;
  GError *error = NULL;
  double *levels = NULL, *noisy_sum = NULL, *result_sum = NULL;
  int *t_of = NULL;
  int status = CLI_EXIT_USAGE, n_levels = 0;

  cli_sample_options_add (context, &options);
  g_option_context_add_main_entries (context, entries, NULL);
  g_option_context_set_description (context,
    "Each image gets noise σ·n, n ~ N(0, 1) from the engine's random numbers keyed by\n"
    "--seed (the same n for every σ and sampler), on its [0, 1] pixels, unclipped.\n"
    "The table gives, per σ and sampler, the mean over the images of\n"
    "PSNR = 10·log10(1/MSE) of the noisy input and of the result (colour only).\n"
    "--sampler is ignored: both samplers run; --eta and --variance apply.");
  if (!cli_parse (context, "denoise-eval", &argc, &argv))
    goto out;
  if (argc < 2)
    {
      cli_fail ("denoise-eval", CLI_EXIT_USAGE, "expected one or more clean images");
      goto out;
    }
  if (!(levels = parse_sigma_list (sigma_text ? sigma_text : "10,25,50",
                                   &n_levels, &error))
      || !cli_sample_options_resolve (&options, &params, &error))
    goto out;

  status = CLI_EXIT_FAILURE;
  if (!(model = cli_load_model (options.model, &error)))
    goto out;
  const DdpmSchedule *schedule = ddpm_model_get_schedule (model);
  t_of = g_new (int, n_levels);
  for (int l = 0; l < n_levels; l++)
    if (!(t_of[l] = ddpm_denoise_sigma_to_t (schedule, levels[l] / 255, &error)))
      {
        status = CLI_EXIT_USAGE;
        goto out;
      }

  noisy_sum = g_new0 (double, n_levels);
  result_sum = g_new0 (double, (gsize) n_levels * n_samplers);
  for (int f = 1; f < argc; f++)
    {
      DdpmImage *clean = ddpm_image_load (argv[f], &error);

      if (clean == NULL)
        goto out;

      gsize n = (gsize) clean->channels * clean->width * clean->height;
      float *noise = g_new (float, n);
      DdpmImage *work = ddpm_image_copy (clean);

      ddpm_rng_normal_fill (noise, n, params.seed, EVAL_STREAM_TAG | (guint64) (f - 1), 0);
      for (int l = 0; l < n_levels && error == NULL; l++)
        {
          const double sigma = levels[l] / 255;
          float *noisy = g_new (float, n);

          for (gsize i = 0; i < n; i++)
            noisy[i] = (float) (clean->pixels[i] + sigma * noise[i]);
          double p_noisy = psnr (noisy, clean->pixels, n);
          noisy_sum[l] += p_noisy;

          for (int k = 0; k < n_samplers && error == NULL; k++)
            {
              DdpmSampleParams p = params;

              p.sampler = samplers[k];
              memcpy (work->pixels, noisy, n * sizeof (float));
              if (cli_run_denoise (model, work, NULL, sigma, &p, &error))
                {
                  double p_result = psnr (work->pixels, clean->pixels, n);

                  result_sum[l * n_samplers + k] += p_result;
                  fprintf (stderr, "%s: σ = %g/255, %s: PSNR %.2f → %.2f dB\n",
                           argv[f], levels[l], ddpm_sampler_kind_name (samplers[k]),
                           p_noisy, p_result);
                }
              else
                g_prefix_error (&error, "%s: ", argv[f]);
            }
          g_free (noisy);
        }
      g_free (noise);
      ddpm_image_free (work);
      ddpm_image_free (clean);
      if (error != NULL)
        goto out;
    }

  /* The table, in the C locale so that scripts can read it. */
  char a[G_ASCII_DTOSTR_BUF_SIZE], b[G_ASCII_DTOSTR_BUF_SIZE];
  char c[G_ASCII_DTOSTR_BUF_SIZE], d[G_ASCII_DTOSTR_BUF_SIZE];
  printf ("# ddpm denoise-eval: %d image%s, %d step%s at most, seed %" G_GINT64_FORMAT
          "; mean PSNR in dB\n", argc - 1, argc == 2 ? "" : "s", params.steps,
          params.steps == 1 ? "" : "s", (gint64) params.seed);
  printf ("%-9s %-7s %5s %5s %10s %10s %7s\n", "sigma/255", "sampler", "t", "steps",
          "noisy", "denoised", "gain");
  for (int l = 0; l < n_levels; l++)
    for (int k = 0; k < n_samplers; k++)
      {
        double pn = noisy_sum[l] / (argc - 1);
        double pr = result_sum[l * n_samplers + k] / (argc - 1);

        printf ("%-9s %-7s %5d %5d %10s %10s %7s\n",
                g_ascii_formatd (a, sizeof a, "%g", levels[l]),
                ddpm_sampler_kind_name (samplers[k]), t_of[l],
                MIN (params.steps, t_of[l]),
                g_ascii_formatd (b, sizeof b, "%.2f", pn),
                g_ascii_formatd (c, sizeof c, "%.2f", pr),
                g_ascii_formatd (d, sizeof d, "%+.2f", pr - pn));
      }
  status = CLI_EXIT_OK;

out:
  if (error)
    {
      cli_fail ("denoise-eval", status, "%s", error->message);
      g_error_free (error);
    }
  if (model)
    ddpm_model_free (model);
  g_free (levels);
  g_free (t_of);
  g_free (noisy_sum);
  g_free (result_sum);
  cli_sample_options_clear (&options);
  g_free (sigma_text);
  g_option_context_free (context);
  return status;
}
