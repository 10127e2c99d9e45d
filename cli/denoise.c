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

/* The command line of `ddpm denoise`: the sampler's options and its own. */
typedef struct
{
  CliSampleOptions sample;
  char            *sigma_text;  /* --sigma: "auto" or a level */
  int              bit_depth;
} DenoiseOptions;

static GOptionContext *
denoise_context (DenoiseOptions *o)
{
  const GOptionEntry entries[] = {
    { "sigma", 0, 0, G_OPTION_ARG_STRING, &o->sigma_text,
      "noise standard deviation on the [0, 1] pixel scale (25/255 ≈ 0.098), "
      "or auto to estimate it from the image", "S|auto" },
    { "bit-depth", 0, 0, G_OPTION_ARG_INT, &o->bit_depth, "8 (default) or 16", "B" },
    { NULL }
  };
  GOptionContext *context = g_option_context_new ("IN.png OUT.png - remove Gaussian "
                                                  "noise with the model");

  cli_sample_options_add (context, &o->sample);
  g_option_context_add_main_entries (context, entries, NULL);
  return context;
}

/* --sigma auto found no noise at all: not one 2×2 block in two has any
 * diagonal detail (a synthetic or posterised image), so there is nothing
 * to remove and OUT is IN. */
static gboolean
write_unchanged (const DdpmImage *image, const char *in, const char *out, int bit_depth,
                 GError **error)
{
  fprintf (stderr, "denoise %s: no noise found, the image is written unchanged\n", in);
  if (!ddpm_image_save_png (image, out, bit_depth, error))
    return FALSE;
  printf ("%s\n", out);
  return TRUE;
}

int
cli_denoise (int argc, char **argv)
{
  DenoiseOptions options = { .bit_depth = 8 };
  GOptionContext *context = denoise_context (&options);
  DdpmSampleParams params;
  DdpmModel *model = NULL;
  DdpmImage *image = NULL;
  GError *error = NULL;
  CliProgress progress;
  double sigma = 0.0;
  gboolean estimated;
  int status = CLI_EXIT_USAGE, t0;

  if (!cli_parse (context, "denoise", &argc, &argv))
    goto out;
  if (!cli_check_in_out ("denoise", argc, argv, options.bit_depth))
    goto out;
  if (!parse_sigma (options.sigma_text, &sigma, &error)
      || !cli_sample_options_resolve (&options.sample, &params, &error))
    goto out;
  estimated = sigma == 0.0;

  status = CLI_EXIT_FAILURE;
  if (!(model = cli_load_model (options.sample.model, &error))
      || !(image = ddpm_image_load (argv[1], &error)))
    goto out;
  if (estimated && !ddpm_estimate_noise_sigma (image->pixels, image->channels, image->height,
                                               image->width, &sigma, &error))
    goto out;
  if (estimated && sigma == 0.0)
    {
      if (write_unchanged (image, argv[1], argv[2], options.bit_depth, &error))
        status = CLI_EXIT_OK;
      goto out;
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
      || !ddpm_image_save_png (image, argv[2], options.bit_depth, &error))
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
  cli_sample_options_clear (&options.sample);
  g_free (options.sigma_text);
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

/* The two samplers denoise-eval compares, in the table's order. */
static const DdpmSamplerKind eval_samplers[] = { DDPM_SAMPLER_DDIM, DDPM_SAMPLER_DDPM };
#define N_EVAL_SAMPLERS ((int) G_N_ELEMENTS (eval_samplers))

/* What denoise-eval adds up over the images, per noise level. */
typedef struct
{
  double *levels;      /* (n_levels) σ in 1/255 units */
  int     n_levels;
  int    *t_of;        /* (n_levels) the timestep each level starts from */
  double *noisy_sum;   /* (n_levels) Σ PSNR of the noisy inputs */
  double *result_sum;  /* (n_levels, N_EVAL_SAMPLERS) Σ PSNR of the results */
} DenoiseEval;

static void
denoise_eval_clear (DenoiseEval *e)
{
  g_free (e->levels);
  g_free (e->t_of);
  g_free (e->noisy_sum);
  g_free (e->result_sum);
}

/* The timestep of each level (all must be in the schedule's reach), and
 * the sums zeroed. */
static gboolean
denoise_eval_start (DenoiseEval *e, const DdpmSchedule *schedule, GError **error)
{
  e->t_of = g_new (int, e->n_levels);
  for (int l = 0; l < e->n_levels; l++)
    if (!(e->t_of[l] = ddpm_denoise_sigma_to_t (schedule, e->levels[l] / 255, error)))
      return FALSE;
  e->noisy_sum = g_new0 (double, e->n_levels);
  e->result_sum = g_new0 (double, (gsize) e->n_levels * N_EVAL_SAMPLERS);
  return TRUE;
}

/* Image number `index` of the command line at `path`: add noise at each
 * level (the same n ~ N(0, 1) scaled), denoise it with each sampler, print
 * and add up the PSNRs.  Errors of the denoising name the file. */
static gboolean
denoise_eval_image (DenoiseEval            *e,
                    DdpmModel              *model,
                    const char             *path,
                    int                     index,
                    const DdpmSampleParams *params,
                    GError                **error)
{
  DdpmImage *clean = ddpm_image_load (path, error);
  GError *local = NULL;

  if (clean == NULL)
    return FALSE;

  gsize n = (gsize) clean->channels * clean->width * clean->height;
  float *noise = g_new (float, n);
  DdpmImage *work = ddpm_image_copy (clean);

  ddpm_rng_normal_fill (noise, n, params->seed, EVAL_STREAM_TAG | (guint64) index, 0);
  for (int l = 0; l < e->n_levels && local == NULL; l++)
    {
      const double sigma = e->levels[l] / 255;
      float *noisy = g_new (float, n);

      for (gsize i = 0; i < n; i++)
        noisy[i] = (float) (clean->pixels[i] + sigma * noise[i]);
      double p_noisy = psnr (noisy, clean->pixels, n);
      e->noisy_sum[l] += p_noisy;

      for (int k = 0; k < N_EVAL_SAMPLERS && local == NULL; k++)
        {
          DdpmSampleParams p = *params;

          p.sampler = eval_samplers[k];
          memcpy (work->pixels, noisy, n * sizeof (float));
          if (cli_run_denoise (model, work, NULL, sigma, &p, &local))
            {
              double p_result = psnr (work->pixels, clean->pixels, n);

              e->result_sum[l * N_EVAL_SAMPLERS + k] += p_result;
              fprintf (stderr, "%s: σ = %g/255, %s: PSNR %.2f → %.2f dB\n",
                       path, e->levels[l], ddpm_sampler_kind_name (eval_samplers[k]),
                       p_noisy, p_result);
            }
          else
            g_prefix_error (&local, "%s: ", path);
        }
      g_free (noisy);
    }
  g_free (noise);
  ddpm_image_free (work);
  ddpm_image_free (clean);
  if (local != NULL)
    {
      g_propagate_error (error, local);
      return FALSE;
    }
  return TRUE;
}

/* The table of mean PSNRs over n_images, in the C locale so that scripts
 * can read it. */
static void
denoise_eval_print (const DenoiseEval *e, int n_images, const DdpmSampleParams *params)
{
  char a[G_ASCII_DTOSTR_BUF_SIZE], b[G_ASCII_DTOSTR_BUF_SIZE];
  char c[G_ASCII_DTOSTR_BUF_SIZE], d[G_ASCII_DTOSTR_BUF_SIZE];

  printf ("# ddpm denoise-eval: %d image%s, %d step%s at most, seed %" G_GINT64_FORMAT
          "; mean PSNR in dB\n", n_images, n_images == 1 ? "" : "s", params->steps,
          params->steps == 1 ? "" : "s", (gint64) params->seed);
  printf ("%-9s %-7s %5s %5s %10s %10s %7s\n", "sigma/255", "sampler", "t", "steps",
          "noisy", "denoised", "gain");
  for (int l = 0; l < e->n_levels; l++)
    for (int k = 0; k < N_EVAL_SAMPLERS; k++)
      {
        double pn = e->noisy_sum[l] / n_images;
        double pr = e->result_sum[l * N_EVAL_SAMPLERS + k] / n_images;

        printf ("%-9s %-7s %5d %5d %10s %10s %7s\n",
                g_ascii_formatd (a, sizeof a, "%g", e->levels[l]),
                ddpm_sampler_kind_name (eval_samplers[k]), e->t_of[l],
                MIN (params->steps, e->t_of[l]),
                g_ascii_formatd (b, sizeof b, "%.2f", pn),
                g_ascii_formatd (c, sizeof c, "%.2f", pr),
                g_ascii_formatd (d, sizeof d, "%+.2f", pr - pn));
      }
}

int
cli_denoise_eval (int argc, char **argv)
{
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
  DenoiseEval eval = { 0 };
  GError *error = NULL;
  int status = CLI_EXIT_USAGE;

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
  if (!(eval.levels = parse_sigma_list (sigma_text ? sigma_text : "10,25,50",
                                        &eval.n_levels, &error))
      || !cli_sample_options_resolve (&options, &params, &error))
    goto out;

  status = CLI_EXIT_FAILURE;
  if (!(model = cli_load_model (options.model, &error)))
    goto out;
  if (!denoise_eval_start (&eval, ddpm_model_get_schedule (model), &error))
    {
      status = CLI_EXIT_USAGE;
      goto out;
    }
  for (int f = 1; f < argc; f++)
    if (!denoise_eval_image (&eval, model, argv[f], f - 1, &params, &error))
      goto out;
  denoise_eval_print (&eval, argc - 1, &params);
  status = CLI_EXIT_OK;

out:
  if (error)
    {
      cli_fail ("denoise-eval", status, "%s", error->message);
      g_error_free (error);
    }
  if (model)
    ddpm_model_free (model);
  denoise_eval_clear (&eval);
  cli_sample_options_clear (&options);
  g_free (sigma_text);
  g_option_context_free (context);
  return status;
}
