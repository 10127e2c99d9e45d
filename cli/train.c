/* train.c: `ddpm train`: train (or resume) a model on a folder of images
 * or on the patches of one image, with a live progress line, checkpoints,
 * and Ctrl-C that saves a checkpoint before leaving.
 *
 *   ddpm train DATA --preset tiny --size 32 --steps N --batch B
 *              [--lr LR] [--seed S] [--threads N] [--resume CKPT]
 *              [--checkpoint-every K] [--channels 1|3] --out MODEL.safetensors
 */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "ddpm.h"
#include "cli.h"

/* Exit status after Ctrl-C (128 + SIGINT, as shells report it). */
#define CLI_EXIT_INTERRUPTED 130

static volatile sig_atomic_t interrupted = 0;

static void
on_sigint (int signum)
{
  interrupted = 1;
}

typedef struct
{
  gboolean tty;
  gint64   last_print_us;
  int      last_step;
} ProgressState;

static void
format_duration (char *buf, gsize size, double seconds)
{
  if (!isfinite (seconds) || seconds < 0)
    g_snprintf (buf, size, "?");
  else if (seconds < 3600)
    g_snprintf (buf, size, "%d:%02d", (int) seconds / 60, (int) seconds % 60);
  else
    g_snprintf (buf, size, "%d:%02d:%02d", (int) seconds / 3600,
                ((int) seconds / 60) % 60, (int) seconds % 60);
}

/* On a terminal: one line rewritten in place.  Otherwise (a log file, a
 * pipe): a line every 10 steps or 2 seconds, and at the last step. */
static gboolean
on_progress (const DdpmProgress *p, gpointer user_data)
{
  ProgressState *state = user_data;
  gint64 now = g_get_monotonic_time ();
  char eta[32];

  format_duration (eta, sizeof eta, p->remaining);
  if (state->tty)
    {
      fprintf (stderr, "\rstep %d/%d  loss %.4f  %.2f it/s  ETA %s   ",
               p->step, p->n_steps, p->loss, p->per_second, eta);
      if (p->step == p->n_steps)
        fputc ('\n', stderr);
      fflush (stderr);
    }
  else if (p->step - state->last_step >= 10 || now - state->last_print_us >= 2000000
           || p->step == p->n_steps)
    {
      fprintf (stderr, "step %d/%d loss %.4f %.2f it/s elapsed %.2fs ETA %s\n",
               p->step, p->n_steps, p->loss, p->per_second, p->elapsed, eta);
      state->last_step = p->step;
      state->last_print_us = now;
    }
  return !interrupted;
}

static DdpmDataset *
load_data (const char *path, int *channels, int resize, GError **error)
{
  if (g_file_test (path, G_FILE_TEST_IS_DIR))
    {
      if (*channels == 0)
        *channels = 3;
      return ddpm_dataset_new_from_folder (path, *channels, resize, error);
    }

  /* One image: single-image training on its patches. */
  DdpmImage *image = ddpm_image_load (path, error);
  if (!image)
    return NULL;
  if (*channels == 0)
    *channels = image->channels == 1 ? 1 : 3;
  if (image->channels != *channels)
    {
      DdpmImage *converted = ddpm_image_convert_channels (image, *channels);
      ddpm_image_free (image);
      image = converted;
    }
  if (resize > 0 && MIN (image->width, image->height) != resize)
    {
      int short_side = MIN (image->width, image->height);
      int w = MAX (1, (int) ((gint64) image->width * resize / short_side));
      int h = MAX (1, (int) ((gint64) image->height * resize / short_side));
      DdpmImage *resized = ddpm_image_resize (image, w, h);
      ddpm_image_free (image);
      image = resized;
    }

  gsize n = (gsize) image->channels * image->width * image->height;
  float *pixels = g_new (float, n);
  for (gsize i = 0; i < n; i++)
    pixels[i] = 2.0f * image->pixels[i] - 1.0f;
  DdpmDataset *dataset = ddpm_dataset_new_from_pixels (pixels, image->channels,
                                                       image->height, image->width, error);
  g_free (pixels);
  ddpm_image_free (image);
  return dataset;
}

int
cli_train (int argc, char **argv)
{
  char *preset = NULL, *out = NULL, *resume = NULL, *schedule_name = NULL;
  int size = 0, steps = 1000, batch = 16, threads = 0, every = 0, channels = 0;
  int warmup = -1, T = 1000, resize = 0;
  double lr = 2e-4, weight_decay = 0, ema_decay = -1, grad_clip = -1, dropout = -1;
  gint64 seed = 0;
  gboolean no_flip = FALSE;
  GOptionEntry entries[] = {
    { "preset", 'p', 0, G_OPTION_ARG_STRING, &preset,
      "model size: tiny, small or cifar (default tiny)", "NAME" },
    { "size", 0, 0, G_OPTION_ARG_INT, &size,
      "training resolution in pixels (default the preset's, 32)", "S" },
    { "channels", 'c', 0, G_OPTION_ARG_INT, &channels,
      "1 (gray) or 3 (RGB); default: a single image's own, else 3", "C" },
    { "steps", 'n', 0, G_OPTION_ARG_INT, &steps, "optimizer steps in all (default 1000)", "N" },
    { "batch", 'b', 0, G_OPTION_ARG_INT, &batch, "batch size (default 16)", "B" },
    { "lr", 0, 0, G_OPTION_ARG_DOUBLE, &lr, "learning rate (default 2e-4)", "LR" },
    { "warmup", 0, 0, G_OPTION_ARG_INT, &warmup, "linear warm-up steps (default 100)", "N" },
    { "weight-decay", 0, 0, G_OPTION_ARG_DOUBLE, &weight_decay,
      "AdamW decoupled weight decay (default 0)", "WD" },
    { "ema-decay", 0, 0, G_OPTION_ARG_DOUBLE, &ema_decay,
      "EMA decay of the weights (default 0.999)", "D" },
    { "grad-clip", 0, 0, G_OPTION_ARG_DOUBLE, &grad_clip,
      "maximum global gradient norm, 0 for none (default 1)", "NORM" },
    { "dropout", 0, 0, G_OPTION_ARG_DOUBLE, &dropout,
      "dropout probability (default the preset's)", "P" },
    { "schedule", 's', 0, G_OPTION_ARG_STRING, &schedule_name,
      "linear, cosine, scaled-linear or sigmoid (default linear)", "NAME" },
    { "timesteps", 'T', 0, G_OPTION_ARG_INT, &T, "diffusion steps T (default 1000)", "T" },
    { "resize", 0, 0, G_OPTION_ARG_INT, &resize,
      "resize each image's short side to this before cropping", "PIXELS" },
    { "no-flip", 0, 0, G_OPTION_ARG_NONE, &no_flip, "no random horizontal flips", NULL },
    { "seed", 0, 0, G_OPTION_ARG_INT64, &seed, "random seed (default 0)", "S" },
    { "threads", 'j', 0, G_OPTION_ARG_INT, &threads, "threads, 0 = all cores (default)", "N" },
    { "resume", 'r', 0, G_OPTION_ARG_FILENAME, &resume,
      "continue from this checkpoint (its model, schedule and seed)", "CKPT" },
    { "checkpoint-every", 0, 0, G_OPTION_ARG_INT, &every,
      "write a checkpoint every K steps (default: at the end only)", "K" },
    { "out", 'o', 0, G_OPTION_ARG_FILENAME, &out, "the model file to write", "MODEL" },
    { NULL }
  };
  GOptionContext *context = g_option_context_new ("DATA - train a diffusion model");
  DdpmTrainParams params;
  DdpmDataset *dataset = NULL;
  GError *error = NULL;
  int status = CLI_EXIT_USAGE;
  char *ckpt = NULL;
  struct sigaction action, old_action;
  gboolean handler_set = FALSE;

  g_option_context_add_main_entries (context, entries, NULL);
  g_option_context_set_description (context,
    "DATA is a folder of PNG/JPEG images (random crops) or one image (random patches).\n"
    "The checkpoint goes beside the model: MODEL.ckpt.safetensors.  Ctrl-C writes a\n"
    "checkpoint and stops (exit status 130); continue with --resume.");
  if (!cli_parse (context, "train", &argc, &argv))
    goto out;
  if (argc != 2)
    {
      cli_fail ("train", CLI_EXIT_USAGE, argc < 2 ? "no training data given (a folder or an image)"
                                                  : "unexpected argument “%s”", argv[2]);
      goto out;
    }
  if (!out)
    {
      cli_fail ("train", CLI_EXIT_USAGE, "no output file given (--out MODEL.safetensors)");
      goto out;
    }
  if (channels != 0 && channels != 1 && channels != 3)
    {
      cli_fail ("train", CLI_EXIT_USAGE, "--channels must be 1 or 3, not %d", channels);
      goto out;
    }
  if (steps < 1 || batch < 1 || threads < 0 || every < 0 || resize < 0 || seed < 0)
    {
      cli_fail ("train", CLI_EXIT_USAGE, "%s must not be %s",
                steps < 1 ? "--steps" : batch < 1 ? "--batch" : threads < 0 ? "--threads"
                : every < 0 ? "--checkpoint-every" : resize < 0 ? "--resize" : "--seed",
                steps < 1 || batch < 1 ? "below 1" : "negative");
      goto out;
    }
  const char *bad = !(lr > 0) ? "--lr must be positive"
                    : !(weight_decay >= 0) ? "--weight-decay must not be negative"
                    : ema_decay > 1 ? "--ema-decay must be in [0, 1]"
                    : dropout >= 1 ? "--dropout must be below 1"
                    : T < 1 ? "--timesteps must be at least 1" : NULL;
  if (bad)
    {
      cli_fail ("train", CLI_EXIT_USAGE, "%s", bad);
      goto out;
    }
  if (!g_file_test (argv[1], G_FILE_TEST_EXISTS))
    {
      status = cli_fail ("train", CLI_EXIT_FAILURE, "%s: no such file or folder", argv[1]);
      goto out;
    }

  ddpm_train_params_init (&params);
  if (!(dataset = load_data (argv[1], &channels, resize, &error)))
    {
      status = cli_fail ("train", CLI_EXIT_FAILURE, "%s", error->message);
      goto out;
    }
  if (!ddpm_unet_config_from_preset (preset ? preset : "tiny", channels, &params.config, &error)
      || (schedule_name && !ddpm_schedule_kind_from_string (schedule_name, &params.schedule,
                                                            &error)))
    {
      status = cli_fail ("train", CLI_EXIT_USAGE, "%s", error->message);
      goto out;
    }
  if (size > 0)
    ddpm_unet_config_set_image_size (&params.config, size);
  if (dropout >= 0)
    params.config.dropout = (float) dropout;
  if (!resume && !ddpm_unet_config_validate (&params.config, &error))
    {
      status = cli_fail ("train", CLI_EXIT_USAGE, "%s", error->message);
      goto out;
    }
  params.T = T;
  params.steps = steps;
  params.batch = batch;
  params.lr = lr;
  params.weight_decay = weight_decay;
  if (warmup >= 0)
    params.warmup = warmup;
  if (ema_decay >= 0)
    params.ema_decay = ema_decay;
  if (grad_clip >= 0)
    params.grad_clip = grad_clip;
  params.hflip = !no_flip;
  params.seed = (guint64) seed;
  params.threads = threads;
  params.out_path = out;
  params.resume_path = resume;
  params.checkpoint_every = every;

  ProgressState progress = { isatty (STDERR_FILENO), g_get_monotonic_time (), 0 };
  params.progress = on_progress;
  params.progress_data = &progress;

  /* Ctrl-C raises a flag that the progress callback turns into a cancel;
   * a second Ctrl-C (SA_RESETHAND) kills at once. */
  memset (&action, 0, sizeof action);
  action.sa_handler = on_sigint;
  action.sa_flags = SA_RESETHAND;
  sigemptyset (&action.sa_mask);
  handler_set = sigaction (SIGINT, &action, &old_action) == 0;

  ckpt = ddpm_train_checkpoint_path (out);
  if (!ddpm_train (&params, dataset, &error))
    {
      if (progress.tty)
        fputc ('\n', stderr);
      if (g_error_matches (error, DDPM_ERROR, DDPM_ERROR_CANCELLED))
        {
          fprintf (stderr, "ddpm train: interrupted: %s\nContinue with: --resume %s\n",
                   error->message, ckpt);
          status = CLI_EXIT_INTERRUPTED;
        }
      else
        status = cli_fail ("train", CLI_EXIT_FAILURE, "%s", error->message);
      goto out;
    }
  printf ("wrote %s (checkpoint %s)\n", out, ckpt);
  status = CLI_EXIT_OK;

out:
  if (handler_set)
    sigaction (SIGINT, &old_action, NULL);
  g_clear_error (&error);
  ddpm_dataset_free (dataset);
  g_option_context_free (context);
  g_free (ckpt);
  g_free (preset);
  g_free (out);
  g_free (resume);
  g_free (schedule_name);
  return status;
}
