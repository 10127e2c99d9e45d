/* train.c: `ddpm train`: train (or resume) a model on a folder of images
 * or on the patches of one image, with a live progress line, checkpoints,
 * and Ctrl-C that saves a checkpoint before leaving.
 *
 *   ddpm train DATA --preset tiny --size 32 --steps N --batch B
 *              [--lr LR] [--seed S] [--threads N] [--resume CKPT]
 *              [--checkpoint-every K] [--channels 1|3] --out MODEL.safetensors
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "ddpm.h"
#include "cli.h"
#include "train-mpi.h"

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

/* On a terminal: one line rewritten in place.  Otherwise (a log file, a
 * pipe): a line every 10 steps or 2 seconds, and at the last step. */
static gboolean
on_progress (const DdpmProgress *p, gpointer user_data)
{
  ProgressState *state = user_data;
  gint64 now = g_get_monotonic_time ();
  char eta[32];

  cli_format_duration (eta, sizeof eta, p->remaining);
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

/* ----------------------------------------------------------------- options */

/* The command line of `ddpm train`.  params starts from
 * ddpm_train_params_init and the numbers and switches are parsed straight
 * into it, so an option not given keeps the engine's default.  The
 * network's configuration is made after parsing (resolve_config): it needs
 * the preset, the channels and the data. */
typedef struct
{
  DdpmTrainParams params;
  char           *preset;        /* NULL: tiny, the preset params starts from */
  char           *schedule;      /* a DdpmScheduleKind name, or NULL */
  char           *out;
  char           *resume;
  int             size;          /* > 0: train at this size, not the preset's */
  int             channels;      /* 1 or 3; 0: a single image's own, else 3 */
  int             resize;        /* > 0: each image's short side first */
  double          dropout;       /* replaces the preset's when given and ≥ 0 */
  gboolean        dropout_given;
  gboolean        T_given;       /* --timesteps given (see cli_train) */
  gboolean        seed_given;    /* --seed given */
} TrainOptions;

/* --dropout replaces the preset's dropout, so the preset (known only after
 * parsing) must not overwrite one that was given: this callback notes that
 * it was, and reads the number as G_OPTION_ARG_DOUBLE does, with GLib's
 * own messages. */
static gboolean
parse_dropout (const char *option_name, const char *value, gpointer data, GError **error)
{
  TrainOptions *o = data;
  char *end;
  double v;

  errno = 0;
  v = g_strtod (value, &end);
  if (*value == '\0' || *end != '\0')
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                   g_dgettext ("glib20", "Cannot parse double value “%s” for %s"),
                   value, option_name);
      return FALSE;
    }
  if (errno == ERANGE)
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                   g_dgettext ("glib20", "Double value “%s” for %s out of range"),
                   value, option_name);
      return FALSE;
    }
  o->dropout = v;
  o->dropout_given = TRUE;
  return TRUE;
}

static GOptionContext *
train_context (TrainOptions *o)
{
  DdpmTrainParams *p = &o->params;
  const GOptionEntry entries[] = {
    { "preset", 'p', 0, G_OPTION_ARG_STRING, &o->preset,
      "model size: tiny, small or cifar (default tiny)", "NAME" },
    { "size", 0, 0, G_OPTION_ARG_INT, &o->size,
      "training resolution in pixels (default the preset's, 32)", "S" },
    { "channels", 'c', 0, G_OPTION_ARG_INT, &o->channels,
      "1 (gray) or 3 (RGB); default: a single image's own, else 3", "C" },
    { "steps", 'n', 0, G_OPTION_ARG_INT, &p->steps, "optimizer steps in all (default 1000)", "N" },
    { "batch", 'b', 0, G_OPTION_ARG_INT, &p->batch, "batch size (default 16)", "B" },
    { "lr", 0, 0, G_OPTION_ARG_DOUBLE, &p->lr, "learning rate (default 2e-4)", "LR" },
    { "warmup", 0, 0, G_OPTION_ARG_INT, &p->warmup, "linear warm-up steps (default 100)", "N" },
    { "weight-decay", 0, 0, G_OPTION_ARG_DOUBLE, &p->weight_decay,
      "AdamW decoupled weight decay (default 0)", "WD" },
    { "ema-decay", 0, 0, G_OPTION_ARG_DOUBLE, &p->ema_decay,
      "EMA decay of the weights (default 0.999)", "D" },
    { "grad-clip", 0, 0, G_OPTION_ARG_DOUBLE, &p->grad_clip,
      "maximum global gradient norm, 0 for none (default 1)", "NORM" },
    /* FILENAME: the raw bytes, as G_OPTION_ARG_DOUBLE sees them. */
    { "dropout", 0, G_OPTION_FLAG_FILENAME, G_OPTION_ARG_CALLBACK, parse_dropout,
      "dropout probability (default the preset's)", "P" },
    { "schedule", 's', 0, G_OPTION_ARG_STRING, &o->schedule,
      "linear, cosine, scaled-linear or sigmoid (default linear)", "NAME" },
    { "timesteps", 'T', 0, G_OPTION_ARG_INT, &p->T, "diffusion steps T (default 1000)", "T" },
    { "resize", 0, 0, G_OPTION_ARG_INT, &o->resize,
      "resize each image's short side to this before cropping", "PIXELS" },
    { "no-flip", 0, G_OPTION_FLAG_REVERSE, G_OPTION_ARG_NONE, &p->hflip,
      "no random horizontal flips", NULL },
    /* GOption writes a gint64 into the guint64; check_options refuses a
     * negative one. */
    { "seed", 0, 0, G_OPTION_ARG_INT64, &p->seed, "random seed (default 0)", "S" },
    { "threads", 'j', 0, G_OPTION_ARG_INT, &p->threads, "threads, 0 = all cores (default)", "N" },
    { "resume", 'r', 0, G_OPTION_ARG_FILENAME, &o->resume,
      "continue from this checkpoint (its model, schedule and seed)", "CKPT" },
    { "checkpoint-every", 0, 0, G_OPTION_ARG_INT, &p->checkpoint_every,
      "write a checkpoint every K steps (default: at the end only)", "K" },
    { "out", 'o', 0, G_OPTION_ARG_FILENAME, &o->out, "the model file to write", "MODEL" },
    { NULL }
  };
  GOptionContext *context = g_option_context_new ("DATA - train a diffusion model");

  /* The main group carries `o` to parse_dropout; GOption copies the
   * entries, whose arg_data point into `o`. */
  g_option_context_set_main_group (context, g_option_group_new (NULL, NULL, NULL, o, NULL));
  g_option_context_add_main_entries (context, entries, NULL);
  g_option_context_set_description (context,
    "DATA is a folder of PNG/JPEG images (random crops) or one image (random patches).\n"
    "The checkpoint goes beside the model: MODEL.ckpt.safetensors.  Ctrl-C writes a\n"
    "checkpoint and stops (exit status 130); continue with --resume.");
  return context;
}

/* The options after parsing, DATA being argv[1]: CLI_EXIT_OK, or the exit
 * status after saying what is wrong. */
static int
check_options (const TrainOptions *o, int argc, char **argv)
{
  const DdpmTrainParams *p = &o->params;

  if (argc != 2)
    return cli_fail ("train", CLI_EXIT_USAGE,
                     argc < 2 ? "no training data given (a folder or an image)"
                              : "unexpected argument “%s”", argv[2]);
  if (!o->out)
    return cli_fail ("train", CLI_EXIT_USAGE, "no output file given (--out MODEL.safetensors)");
  if (o->channels != 0 && o->channels != 1 && o->channels != 3)
    return cli_fail ("train", CLI_EXIT_USAGE, "--channels must be 1 or 3, not %d", o->channels);
  if (p->steps < 1 || p->batch < 1 || p->threads < 0 || p->checkpoint_every < 0
      || o->resize < 0 || (gint64) p->seed < 0)
    return cli_fail ("train", CLI_EXIT_USAGE, "%s must not be %s",
                     p->steps < 1 ? "--steps" : p->batch < 1 ? "--batch"
                     : p->threads < 0 ? "--threads"
                     : p->checkpoint_every < 0 ? "--checkpoint-every"
                     : o->resize < 0 ? "--resize" : "--seed",
                     p->steps < 1 || p->batch < 1 ? "below 1" : "negative");

  const char *bad = !(p->lr > 0) ? "--lr must be positive"
                    : !(p->weight_decay >= 0) ? "--weight-decay must not be negative"
                    : p->ema_decay > 1 ? "--ema-decay must be in [0, 1]"
                    : o->dropout_given && o->dropout >= 1 ? "--dropout must be below 1"
                    : p->T < 1 ? "--timesteps must be at least 1" : NULL;
  if (bad)
    return cli_fail ("train", CLI_EXIT_USAGE, "%s", bad);
  if (!g_file_test (argv[1], G_FILE_TEST_EXISTS))
    return cli_fail ("train", CLI_EXIT_FAILURE, "%s: no such file or folder", argv[1]);

  /* A checkpoint brings its network, schedule and seed: an option that
   * would change them cannot take effect, so it is refused rather than
   * silently ignored. */
  if (o->resume)
    {
      const char *arch = o->preset ? "--preset" : o->size > 0 ? "--size"
                         : o->dropout_given ? "--dropout" : NULL;
      const char *other = o->schedule ? "--schedule" : o->T_given ? "--timesteps"
                          : o->seed_given ? "--seed" : NULL;
      if (arch)
        return cli_fail ("train", CLI_EXIT_USAGE,
                         "%s cannot be used with --resume: a resumed model keeps the "
                         "architecture of its checkpoint %s", arch, o->resume);
      if (other)
        return cli_fail ("train", CLI_EXIT_USAGE,
                         "%s cannot be used with --resume: a resumed training keeps the "
                         "schedule and seed of its checkpoint %s", other, o->resume);
    }
  return CLI_EXIT_OK;
}

/* With --resume, the checkpoint's step against --steps: a checkpoint
 * already past --steps would be written out unchanged as the model, so
 * that is refused; one exactly at --steps has nothing left to train and
 * says so.  Returns CLI_EXIT_OK or the exit status after the message. */
static int
check_resume_steps (const TrainOptions *o)
{
  GError *error = NULL;
  DdpmModel *ckpt = ddpm_model_load (o->resume, &error);

  if (!ckpt)
    {
      int status = cli_fail ("train", CLI_EXIT_FAILURE, "%s", error->message);
      g_error_free (error);
      return status;
    }
  const char *v = ddpm_model_get_metadata (ckpt, "train_steps");
  gint64 done = v ? g_ascii_strtoll (v, NULL, 10) : 0;
  int status = CLI_EXIT_OK;

  if (done > o->params.steps)
    status = cli_fail ("train", CLI_EXIT_USAGE,
                       "the checkpoint %s is already at step %" G_GINT64_FORMAT
                       ", past --steps %d: give --steps above %" G_GINT64_FORMAT
                       " to train further", o->resume, done, o->params.steps, done);
  else if (done == o->params.steps)
    fprintf (stderr, "ddpm train: warning: the checkpoint %s is already at step %d "
             "(--steps): nothing left to train, writing it as the model\n",
             o->resume, o->params.steps);
  ddpm_model_free (ckpt);
  return status;
}

/* A negative (or NaN) --warmup, --ema-decay or --grad-clip has always meant
 * the default, not an error; keep it so. */
static void
negative_means_default (DdpmTrainParams *p)
{
  DdpmTrainParams defaults;

  ddpm_train_params_init (&defaults);
  if (!(p->warmup >= 0))
    p->warmup = defaults.warmup;
  if (!(p->ema_decay >= 0))
    p->ema_decay = defaults.ema_decay;
  if (!(p->grad_clip >= 0))
    p->grad_clip = defaults.grad_clip;
}

/* ------------------------------------------------------------------- steps */

/* The training set from DATA: a folder (random crops of its images) or
 * one image (its patches), in `*channels` (0: a single image's own, else
 * 3; set to what was used), short sides resized to `resize` when > 0. */
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

/* The rest of params once the data's channels are known: the network from
 * the preset (with --size and --dropout), the schedule, the files.  The
 * errors are the user's. */
static gboolean
resolve_config (TrainOptions *o, GError **error)
{
  DdpmTrainParams *p = &o->params;

  if (!ddpm_unet_config_from_preset (o->preset ? o->preset : "tiny", o->channels,
                                     &p->config, error)
      || (o->schedule && !ddpm_schedule_kind_from_string (o->schedule, &p->schedule, error)))
    return FALSE;
  if (o->size > 0)
    ddpm_unet_config_set_image_size (&p->config, o->size);
  if (o->dropout_given && o->dropout >= 0)
    p->config.dropout = (float) o->dropout;
  /* a checkpoint brings its own network */
  if (!o->resume && !ddpm_unet_config_validate (&p->config, error))
    return FALSE;
  p->out_path = o->out;
  p->resume_path = o->resume;
  return TRUE;
}

/* Train with progress lines; Ctrl-C raises a flag that the progress
 * callback turns into a cancel, and a second Ctrl-C (SA_RESETHAND) kills
 * at once.  Returns the exit status. */
static int
run_training (DdpmTrainParams *params, DdpmDataset *dataset)
{
  ProgressState progress = { isatty (STDERR_FILENO), g_get_monotonic_time (), 0 };
  struct sigaction action, old_action;
  gboolean handler_set;
  GError *error = NULL;
  char *ckpt;
  int status = CLI_EXIT_OK;

  /* under MPI, one process speaks for all */
  params->progress = cli_train_mpi_is_root () ? on_progress : NULL;
  params->progress_data = &progress;

  memset (&action, 0, sizeof action);
  action.sa_handler = on_sigint;
  action.sa_flags = SA_RESETHAND;
  sigemptyset (&action.sa_mask);
  handler_set = sigaction (SIGINT, &action, &old_action) == 0;

  ckpt = ddpm_train_checkpoint_path (params->out_path);
  if (!ddpm_train (params, dataset, &error))
    {
      if (progress.tty)
        fputc ('\n', stderr);
      if (g_error_matches (error, DDPM_ERROR, DDPM_ERROR_CANCELLED))
        {
          if (cli_train_mpi_is_root ())
            fprintf (stderr, "ddpm train: interrupted: %s\nContinue with: --resume %s\n",
                     error->message, ckpt);
          status = CLI_EXIT_INTERRUPTED;
        }
      else
        status = cli_fail ("train", CLI_EXIT_FAILURE, "%s", error->message);
      g_error_free (error);
    }
  else if (cli_train_mpi_is_root ())
    printf ("wrote %s (checkpoint %s)\n", params->out_path, ckpt);

  if (handler_set)
    sigaction (SIGINT, &old_action, NULL);
  g_free (ckpt);
  return status;
}

int
cli_train (int argc, char **argv)
{
  TrainOptions options = { 0 };
  GOptionContext *context;
  DdpmDataset *dataset = NULL;
  GError *error = NULL;
  int status = CLI_EXIT_USAGE;

  ddpm_train_params_init (&options.params);
  /* Sentinels, to tell an option given from the default (refused with
   * --resume even when equal to it). */
  int T_default = options.params.T;
  guint64 seed_default = options.params.seed;
  options.params.T = G_MININT;
  options.params.seed = G_MAXUINT64 - 1;
  context = train_context (&options);
  if (!cli_parse (context, "train", &argc, &argv))
    goto out;
  options.T_given = options.params.T != G_MININT;
  if (!options.T_given)
    options.params.T = T_default;
  options.seed_given = options.params.seed != G_MAXUINT64 - 1;
  if (!options.seed_given)
    options.params.seed = seed_default;
  if ((status = check_options (&options, argc, argv)) != CLI_EXIT_OK)
    goto out;
  if (options.resume && (status = check_resume_steps (&options)) != CLI_EXIT_OK)
    goto out;
  negative_means_default (&options.params);
  if (!(dataset = load_data (argv[1], &options.channels, options.resize, &error)))
    {
      status = cli_fail ("train", CLI_EXIT_FAILURE, "%s", error->message);
      goto out;
    }
  if (!resolve_config (&options, &error))
    {
      status = cli_fail ("train", CLI_EXIT_USAGE, "%s", error->message);
      goto out;
    }
  if (!cli_train_mpi_begin (&options.params, &error))
    {
      status = cli_fail ("train", CLI_EXIT_FAILURE, "%s", error->message);
      goto out;
    }
  status = cli_train_mpi_end (run_training (&options.params, dataset));

out:
  g_clear_error (&error);
  ddpm_dataset_free (dataset);
  g_option_context_free (context);
  g_free (options.preset);
  g_free (options.schedule);
  g_free (options.out);
  g_free (options.resume);
  return status;
}
