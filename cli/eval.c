/* eval.c: `ddpm eval`: the negative ELBO in bits/dim (DDPM §3.3) of a
 * model on images, from crops of the model's size.
 *
 *   ddpm eval --model M [--resize PIXELS] [--crops N] [--t-samples K]
 *             [--seed S] [--threads N] IMAGE|FOLDER…
 */
#include <math.h>
#include <stdio.h>

#include "ddpm.h"
#include "cli.h"

/* Image files named on the command line, folders expanded (sorted, so that
 * image i, and the seed + i its crops and timesteps come from, is the same
 * file on every run). */
static GPtrArray *
collect_images (char **args, int n, GError **error)
{
  GPtrArray *paths = g_ptr_array_new_with_free_func (g_free);

  for (int i = 0; i < n; i++)
    {
      if (!g_file_test (args[i], G_FILE_TEST_IS_DIR))
        {
          g_ptr_array_add (paths, g_strdup (args[i]));
          continue;
        }
      GPtrArray *names = ddpm_folder_image_names (args[i], error);
      if (names == NULL)
        {
          g_ptr_array_unref (paths);
          return NULL;
        }
      for (guint k = 0; k < names->len; k++)
        g_ptr_array_add (paths, g_build_filename (args[i], names->pdata[k], NULL));
      g_ptr_array_unref (names);
    }
  return paths;
}

/* `crops` random crops of size S from the image (in the model's channels,
 * short side resized first when asked), on the 8-bit grid in [−1, 1]. */
static float *
image_crops (const char *path, int channels, int resize, int S, int crops,
             guint64 seed, GError **error)
{
  DdpmImage *image = ddpm_image_load (path, error), *tmp;

  if (image == NULL)
    return NULL;
  if (image->channels != channels)
    {
      tmp = ddpm_image_convert_channels (image, channels);
      ddpm_image_free (image);
      image = tmp;
    }
  if (resize > 0)
    {
      int short_side = MIN (image->width, image->height);
      tmp = ddpm_image_resize (image, MAX (1, (int) ((gint64) image->width * resize / short_side)),
                               MAX (1, (int) ((gint64) image->height * resize / short_side)));
      ddpm_image_free (image);
      image = tmp;
    }
  if (image->width < S || image->height < S)
    {
      g_set_error (error, DDPM_ERROR, DDPM_ERROR_INVALID_ARGUMENT,
                   "%s is %d×%d, smaller than the model's %d×%d crops",
                   path, image->width, image->height, S, S);
      ddpm_image_free (image);
      return NULL;
    }

  float *x0 = g_new (float, (gsize) crops * channels * S * S);
  DdpmRng rng;

  ddpm_rng_init (&rng, seed, 0);
  for (int b = 0; b < crops; b++)
    {
      int ox = (int) ddpm_rng_next_below (&rng, (guint32) (image->width - S + 1));
      int oy = (int) ddpm_rng_next_below (&rng, (guint32) (image->height - S + 1));

      for (int c = 0; c < channels; c++)
        for (int y = 0; y < S; y++)
          for (int x = 0; x < S; x++)
            {
              float v = image->pixels[((gsize) c * image->height + oy + y) * image->width + ox + x];
              float k = roundf (CLAMP (v, 0.0f, 1.0f) * 255.0f);
              x0[(((gsize) b * channels + c) * S + y) * S + x] = -1.0f + 2.0f * k / 255.0f;
            }
    }
  ddpm_image_free (image);
  return x0;
}

/* The command line of `ddpm eval`. */
typedef struct
{
  char  *model;
  int    resize;     /* > 0: each image's short side first */
  int    crops;      /* crops of the model's size per image */
  int    t_samples;  /* > 0: estimate the diffusion terms from K timesteps */
  int    threads;
  gint64 seed;
} EvalOptions;

/* The ELBO of each image in paths (image i from seed + i), one line each,
 * then their mean. */
static gboolean
eval_images (DdpmModel *model, GPtrArray *paths, const EvalOptions *o, GError **error)
{
  const DdpmUNetConfig *config = ddpm_model_get_config (model);
  const DdpmSchedule *schedule = ddpm_model_get_schedule (model);
  const int S = config->image_size, C = config->in_channels;
  DdpmDenoiser denoiser;
  CliProgress progress;
  double sum = 0;

  ddpm_model_get_denoiser (model, o->threads, &denoiser);
  cli_progress_init (&progress, "t");
  cli_catch_interrupt ();
  for (guint i = 0; i < paths->len; i++)
    {
      const char *path = paths->pdata[i];
      float *x0 = image_crops (path, C, o->resize, S, o->crops, (guint64) o->seed + i, error);
      DdpmElbo elbo;

      if (x0 == NULL)
        return FALSE;
      gboolean ok = ddpm_elbo_bpd (&elbo, x0, o->crops, C, S, S, schedule, &denoiser,
                                   o->t_samples, (guint64) o->seed + i, cli_progress_report,
                                   &progress, error);
      g_free (x0);
      if (!ok)
        return FALSE;
      printf ("%s: %.4f bits/dim (prior %.5f, diffusion %.4f, decoder %.4f)\n", path,
              elbo.total_bpd, elbo.prior_bpd, elbo.vb_bpd, elbo.decoder_bpd);
      fflush (stdout);
      sum += elbo.total_bpd;
    }
  printf ("mean: %.4f bits/dim over %u image%s, %d crops of %d×%d each, %s\n",
          sum / paths->len, paths->len, paths->len == 1 ? "" : "s", o->crops, S, S,
          o->t_samples > 0 ? "diffusion terms estimated from stratified timesteps"
                           : "all timesteps");
  return TRUE;
}

int
cli_eval (int argc, char **argv)
{
  EvalOptions o = { .crops = 8 };
  const GOptionEntry entries[] = {
    { "model", 'm', 0, G_OPTION_ARG_FILENAME, &o.model,
      "model file (default: the installed default model)", "FILE" },
    { "resize", 0, 0, G_OPTION_ARG_INT, &o.resize,
      "resize each image's short side to this first (as in training)", "PIXELS" },
    { "crops", 0, 0, G_OPTION_ARG_INT, &o.crops,
      "random crops of the model's size per image (default 8)", "N" },
    { "t-samples", 0, 0, G_OPTION_ARG_INT, &o.t_samples,
      "estimate the diffusion terms from K stratified timesteps (default: all T)", "K" },
    { "seed", 's', 0, G_OPTION_ARG_INT64, &o.seed, "random seed (default 0)", "S" },
    { "threads", 't', 0, G_OPTION_ARG_INT, &o.threads, "threads (default: all cores)", "N" },
    { NULL }
  };
  GOptionContext *context = g_option_context_new ("IMAGE|FOLDER… - negative ELBO in bits/dim");
  GPtrArray *paths = NULL;
  DdpmModel *model = NULL;
  GError *error = NULL;
  int status = CLI_EXIT_USAGE;

  g_option_context_add_main_entries (context, entries, NULL);
  if (!cli_parse (context, "eval", &argc, &argv))
    goto out;
  if (argc < 2 || o.crops < 1 || o.t_samples < 0 || o.resize < 0 || o.threads < 0)
    {
      cli_fail ("eval", CLI_EXIT_USAGE, argc < 2 ? "no images given"
                : "--crops must be ≥ 1; --t-samples, --resize and --threads ≥ 0");
      goto out;
    }

  status = CLI_EXIT_FAILURE;
  if (!(paths = collect_images (argv + 1, argc - 1, &error))
      || !(model = cli_load_model (o.model, &error)))
    goto out;
  if (paths->len == 0)
    {
      g_set_error (&error, DDPM_ERROR, DDPM_ERROR_INVALID_ARGUMENT, "no PNG or JPEG images found");
      goto out;
    }
  if (eval_images (model, paths, &o, &error))
    status = CLI_EXIT_OK;

out:
  if (error)
    {
      cli_fail ("eval", status, "%s", error->message);
      g_error_free (error);
    }
  if (paths)
    g_ptr_array_unref (paths);
  if (model)
    ddpm_model_free (model);
  g_free (o.model);
  g_option_context_free (context);
  return status;
}
