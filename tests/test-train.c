/* test-train.c: the training loop's step-level helpers (warm-up, gradient
 * clipping, EMA, the L_simple loss) against hand computations, and the loop
 * on a small UNet: progress, cancel, and the exact resume (N steps +
 * checkpoint + N steps gives the same bits as 2N steps); and `ddpm train`
 * as a user runs it. */
#include <math.h>
#include <string.h>

#include <signal.h>

#include <gio/gio.h>
#include <glib/gstdio.h>

#include "ddpm.h"
#include "safetensors.h"
#include "train.h"
#include "cli-helpers.h"

/* ------------------------------------------------------ step-level helpers */

static void
test_warmup (void)
{
  g_assert_cmpfloat_with_epsilon (ddpm_train_warmup_lr (1e-3, 100, 1), 1e-5, 1e-15);
  g_assert_cmpfloat_with_epsilon (ddpm_train_warmup_lr (1e-3, 100, 50), 5e-4, 1e-15);
  g_assert_cmpfloat_with_epsilon (ddpm_train_warmup_lr (1e-3, 100, 99), 9.9e-4, 1e-15);
  g_assert_cmpfloat (ddpm_train_warmup_lr (1e-3, 100, 100), ==, 1e-3);
  g_assert_cmpfloat (ddpm_train_warmup_lr (1e-3, 100, 100000), ==, 1e-3);
  g_assert_cmpfloat (ddpm_train_warmup_lr (1e-3, 0, 1), ==, 1e-3);
}

static void
test_clip (void)
{
  float g[4] = { 3, 0, -4, 0 };
  double norm;

  /* Below the limit: untouched. */
  norm = ddpm_train_clip_grad_norm (g, 4, 10);
  g_assert_cmpfloat_with_epsilon (norm, 5, 1e-12);
  g_assert_cmpfloat (g[0], ==, 3);
  g_assert_cmpfloat (g[2], ==, -4);

  /* Above: scaled to norm 1 (to the 1e-6 guard), direction kept. */
  norm = ddpm_train_clip_grad_norm (g, 4, 1);
  g_assert_cmpfloat_with_epsilon (norm, 5, 1e-12);
  g_assert_cmpfloat_with_epsilon (g[0], 0.6, 1e-6);
  g_assert_cmpfloat_with_epsilon (g[2], -0.8, 1e-6);
  g_assert_cmpfloat (g[1], ==, 0);
  double after = sqrt ((double) g[0] * g[0] + (double) g[2] * g[2]);
  g_assert_cmpfloat_with_epsilon (after, 1, 1e-6);

  /* A large array: the norm is the global one over all elements. */
  gsize n = 100000;
  float *big = g_new (float, n);
  for (gsize i = 0; i < n; i++)
    big[i] = (i % 2) ? 0.5f : -0.5f;
  norm = ddpm_train_clip_grad_norm (big, n, 0);  /* measures only */
  g_assert_cmpfloat_with_epsilon (norm, 0.5 * sqrt ((double) n), 1e-9);
  g_assert_cmpfloat (big[0], ==, -0.5f);
  norm = ddpm_train_clip_grad_norm (big, n, 2);
  g_assert_cmpfloat_with_epsilon (ddpm_train_clip_grad_norm (big, n, 0), 2, 1e-5);
  g_free (big);
}

static void
test_ema (void)
{
  float ema[3] = { 1, 2, -3 }, p[3] = { 0, 4, 1 };

  ddpm_train_ema_update (ema, p, 3, 0.9);
  g_assert_cmpfloat_with_epsilon (ema[0], 0.9, 1e-6);
  g_assert_cmpfloat_with_epsilon (ema[1], 2.2, 1e-6);
  g_assert_cmpfloat_with_epsilon (ema[2], -2.6, 1e-6);

  /* decay 1 freezes, decay 0 copies. */
  ddpm_train_ema_update (ema, p, 3, 1.0);
  g_assert_cmpfloat_with_epsilon (ema[1], 2.2, 1e-6);
  ddpm_train_ema_update (ema, p, 3, 0.0);
  g_assert_cmpfloat (ema[1], ==, 4);

  /* The decay's warm-up (1 + s)/(10 + s), capped by the configured one. */
  g_assert_cmpfloat_with_epsilon (ddpm_train_ema_decay (0.999, 1), 2.0 / 11, 1e-15);
  g_assert_cmpfloat_with_epsilon (ddpm_train_ema_decay (0.999, 90), 0.91, 1e-15);
  g_assert_cmpfloat (ddpm_train_ema_decay (0.999, 1000000), ==, 0.999);
  g_assert_cmpfloat (ddpm_train_ema_decay (0.5, 90), ==, 0.5);
}

/* The L_simple gradient against central differences of the loss. */
static void
test_mse_loss (void)
{
  float pred[5] = { 0.3f, -1.2f, 0.0f, 2.5f, -0.7f };
  const float eps[5] = { 0.1f, -1.0f, 0.4f, 2.0f, 0.2f };
  float dout[5];
  double loss = ddpm_train_mse_loss (dout, pred, eps, 5);
  double expected = 0;

  for (int i = 0; i < 5; i++)
    expected += ((double) pred[i] - eps[i]) * ((double) pred[i] - eps[i]) / 5;
  g_assert_cmpfloat_with_epsilon (loss, expected, 1e-7);

  for (int i = 0; i < 5; i++)
    {
      float keep = pred[i], h = 1e-2f;
      pred[i] = keep + h;
      double up = ddpm_train_mse_loss (NULL, pred, eps, 5);
      pred[i] = keep - h;
      double down = ddpm_train_mse_loss (NULL, pred, eps, 5);
      pred[i] = keep;
      g_assert_cmpfloat_with_epsilon (dout[i], (up - down) / (2.0 * h), 1e-4);
    }
}

/* --------------------------------------------------------------- training */

/* A small UNet that still has every kind of block: two levels, attention
 * at 8×8, dropout. */
static void
small_config (DdpmUNetConfig *c)
{
  memset (c, 0, sizeof *c);
  c->in_channels = 1;
  c->out_channels = 1;
  c->ch = 32;
  c->n_levels = 2;
  c->ch_mult[0] = 1;
  c->ch_mult[1] = 2;
  c->num_res_blocks = 1;
  c->n_attn = 1;
  c->attn_resolutions[0] = 8;
  c->image_size = 16;
  c->dropout = 0.1f;
}

typedef struct
{
  int     calls;
  int     cancel_at;     /* 0: never */
  int     last_step;
  int     n_steps;
  double  first_loss;
  double  last_loss;
} Recorder;

static gboolean
record_progress (const DdpmProgress *p, gpointer user_data)
{
  Recorder *r = user_data;

  r->calls++;
  g_assert_cmpint (p->step, ==, r->last_step + 1);
  r->last_step = p->step;
  r->n_steps = p->n_steps;
  g_assert_true (isfinite (p->loss) && p->loss >= 0);
  g_assert_true (p->elapsed >= 0 && p->per_second >= 0 && p->remaining >= 0);
  if (r->calls == 1)
    r->first_loss = p->loss;
  r->last_loss = p->loss;
  return r->cancel_at == 0 || p->step < r->cancel_at;
}

static float *
stripes (int C, int H, int W)
{
  float *p = g_new (float, (gsize) C * H * W);

  for (int c = 0; c < C; c++)
    for (int y = 0; y < H; y++)
      for (int x = 0; x < W; x++)
        p[(c * H + y) * W + x] = ((x / 3 + y / 5) % 2) ? 0.8f : -0.6f;
  return p;
}

/* Three different images, so that the epoch order (the data cursor)
 * matters. */
static DdpmDataset *
three_images (void)
{
  DdpmDataset *d = ddpm_dataset_new_empty ();

  for (int k = 0; k < 3; k++)
    {
      float *p = stripes (1, 20 + k, 24);
      for (int i = 0; i < (20 + k) * 24; i++)
        p[i] *= 1.0f - 0.3f * k;
      ddpm_dataset_add_image (d, g_strdup_printf ("image %d", k), p, 1, 20 + k, 24);
    }
  return d;
}

static void
train_params (DdpmTrainParams *p, const char *out, int steps)
{
  ddpm_train_params_init (p);
  small_config (&p->config);
  p->steps = steps;
  p->batch = 3;
  p->lr = 1e-3;
  p->warmup = 2;
  p->weight_decay = 0.01;
  p->T = 100;
  p->seed = 1234;
  p->threads = 1;
  p->out_path = out;
}

typedef struct
{
  float *params, *m, *v, *ema;
  DdpmTrainState state;
  gsize n;
} Snapshot;

static void
snapshot_read (Snapshot *s, const char *ckpt)
{
  DdpmUNetConfig c;
  DdpmScheduleKind kind;
  int T;
  GError *error = NULL;

  small_config (&c);
  DdpmUNet *u = ddpm_unet_new (&c, &error);
  g_assert_no_error (error);
  s->n = ddpm_unet_n_params (u);
  s->params = g_new (float, s->n);
  s->m = g_new (float, s->n);
  s->v = g_new (float, s->n);
  s->ema = g_new (float, s->n);
  g_assert_true (ddpm_checkpoint_read (ckpt, &c, &kind, &T, u, s->params, s->m, s->v,
                                       s->ema, &s->state, &error));
  g_assert_no_error (error);
  g_assert_cmpint (T, ==, 100);
  g_assert_cmpint (kind, ==, DDPM_SCHEDULE_LINEAR);
  ddpm_unet_free (u);
}

static void
snapshot_clear (Snapshot *s)
{
  g_free (s->params);
  g_free (s->m);
  g_free (s->v);
  g_free (s->ema);
}

static void
test_resume_exact (void)
{
  const int N = 3;
  GError *error = NULL;
  char *dir = g_dir_make_tmp ("ddpm-resume-XXXXXX", &error);
  char *straight = g_build_filename (dir, "straight.safetensors", NULL);
  char *split = g_build_filename (dir, "split.safetensors", NULL);
  char *straight_ckpt = ddpm_train_checkpoint_path (straight);
  char *split_ckpt = ddpm_train_checkpoint_path (split);
  DdpmTrainParams p;
  Recorder rec = { 0 };

  g_assert_cmpstr (split_ckpt + strlen (dir), ==, "/split.ckpt.safetensors");

  /* 2N steps straight. */
  DdpmDataset *d = three_images ();
  train_params (&p, straight, 2 * N);
  p.progress = record_progress;
  p.progress_data = &rec;
  g_assert_true (ddpm_train (&p, d, &error));
  g_assert_no_error (error);
  g_assert_cmpint (rec.calls, ==, 2 * N);
  g_assert_cmpint (rec.n_steps, ==, 2 * N);
  /* conv_out starts at zero, so the first prediction is 0 and the loss
   * is the mean of ε² over 3·16·16 normals: 1 ± 0.2 (5 standard errors). */
  g_assert_cmpfloat (fabs (rec.first_loss - 1), <, 0.2);
  ddpm_dataset_free (d);
  g_assert_true (g_file_test (straight, G_FILE_TEST_IS_REGULAR));

  /* N steps, cancelled from the progress callback after step N: the
   * checkpoint is written and the error says so. */
  d = three_images ();
  Recorder rec2 = { 0 };
  rec2.cancel_at = N;
  train_params (&p, split, 2 * N);
  p.progress = record_progress;
  p.progress_data = &rec2;
  g_assert_false (ddpm_train (&p, d, &error));
  g_assert_error (error, DDPM_ERROR, DDPM_ERROR_CANCELLED);
  g_assert_nonnull (strstr (error->message, split_ckpt));
  g_clear_error (&error);
  ddpm_dataset_free (d);

  Snapshot half;
  snapshot_read (&half, split_ckpt);
  g_assert_cmpint (half.state.step, ==, N);
  snapshot_clear (&half);

  /* Resume in a fresh dataset (its epoch order rebuilt from the cursor)
   * for the remaining N steps. */
  d = three_images ();
  Recorder rec3 = { 0 };
  rec3.last_step = N;
  train_params (&p, split, 2 * N);
  p.resume_path = split_ckpt;
  p.seed = 999;                  /* ignored: the checkpoint's seed rules */
  p.progress = record_progress;
  p.progress_data = &rec3;
  g_assert_true (ddpm_train (&p, d, &error));
  g_assert_no_error (error);
  g_assert_cmpint (rec3.calls, ==, N);
  ddpm_dataset_free (d);

  Snapshot a, b;
  snapshot_read (&a, straight_ckpt);
  snapshot_read (&b, split_ckpt);
  g_assert_cmpint (a.state.step, ==, 2 * N);
  g_assert_cmpint (b.state.step, ==, 2 * N);
  g_assert_true (memcmp (a.params, b.params, a.n * sizeof (float)) == 0);
  g_assert_true (memcmp (a.m, b.m, a.n * sizeof (float)) == 0);
  g_assert_true (memcmp (a.v, b.v, a.n * sizeof (float)) == 0);
  g_assert_true (memcmp (a.ema, b.ema, a.n * sizeof (float)) == 0);
  g_assert_true (memcmp (&a.state.data, &b.state.data, sizeof a.state.data) == 0);
  g_assert_cmpfloat (a.state.loss, ==, b.state.loss);

  /* Training changed the weights, and the EMA lags the raw weights. */
  double diff = 0;
  for (gsize i = 0; i < a.n; i++)
    diff += fabs ((double) a.params[i] - a.ema[i]);
  g_assert_cmpfloat (diff, >, 0);

  /* The model files hold the same EMA weights as the checkpoints. */
  gchar *c1, *c2;
  gsize l1, l2;
  g_assert_true (g_file_get_contents (straight, &c1, &l1, NULL));
  g_assert_true (g_file_get_contents (split, &c2, &l2, NULL));
  g_assert_cmpuint (l1, ==, l2);
  g_assert_true (memcmp (c1, c2, l1) == 0);
  g_free (c1);
  g_free (c2);

  snapshot_clear (&a);
  snapshot_clear (&b);
  g_remove (straight);
  g_remove (split);
  g_remove (straight_ckpt);
  g_remove (split_ckpt);
  g_rmdir (dir);
  g_free (straight);
  g_free (split);
  g_free (straight_ckpt);
  g_free (split_ckpt);
  g_free (dir);
}

/* The same seed and thread count give the same weights; another seed
 * gives others. */
static void
test_deterministic (void)
{
  GError *error = NULL;
  char *dir = g_dir_make_tmp ("ddpm-det-XXXXXX", &error);
  char *paths[3];
  float *pixels = stripes (1, 20, 20);
  gchar *contents[3];
  gsize lengths[3];

  for (int i = 0; i < 3; i++)
    {
      DdpmTrainParams p;
      DdpmDataset *d = ddpm_dataset_new_from_pixels (pixels, 1, 20, 20, &error);

      paths[i] = g_strdup_printf ("%s/m%d.safetensors", dir, i);
      train_params (&p, paths[i], 2);
      p.seed = i == 2 ? 5 : 4;
      g_assert_true (ddpm_train (&p, d, &error));
      g_assert_no_error (error);
      g_assert_true (g_file_get_contents (paths[i], &contents[i], &lengths[i], NULL));
      ddpm_dataset_free (d);
    }
  g_assert_cmpuint (lengths[0], ==, lengths[1]);
  g_assert_true (memcmp (contents[0], contents[1], lengths[0]) == 0);
  g_assert_cmpuint (lengths[0], ==, lengths[2]);
  g_assert_true (memcmp (contents[0], contents[2], lengths[0]) != 0);
  for (int i = 0; i < 3; i++)
    {
      char *ckpt = ddpm_train_checkpoint_path (paths[i]);
      g_remove (paths[i]);
      g_remove (ckpt);
      g_free (ckpt);
      g_free (paths[i]);
      g_free (contents[i]);
    }
  g_rmdir (dir);
  g_free (dir);
  g_free (pixels);
}

static void
test_bad_params (void)
{
  GError *error = NULL;
  float *pixels = stripes (1, 16, 16);
  DdpmDataset *d = ddpm_dataset_new_from_pixels (pixels, 1, 16, 16, &error);
  DdpmTrainParams p;

  train_params (&p, "/nonexistent-dir/x.safetensors", 0);
  g_assert_false (ddpm_train (&p, d, &error));
  g_assert_error (error, DDPM_ERROR, DDPM_ERROR_INVALID_ARGUMENT);
  g_assert_nonnull (strstr (error->message, "steps"));
  g_clear_error (&error);

  train_params (&p, "/nonexistent-dir/x.safetensors", 1);
  p.lr = -1;
  g_assert_false (ddpm_train (&p, d, &error));
  g_assert_nonnull (strstr (error->message, "learning rate"));
  g_clear_error (&error);

  train_params (&p, "/nonexistent-dir/x.safetensors", 1);
  p.config.ch = 0;
  g_assert_false (ddpm_train (&p, d, &error));
  g_assert_error (error, DDPM_ERROR, DDPM_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);

  train_params (&p, "/nonexistent-dir/x.safetensors", 1);
  p.resume_path = "/nonexistent-dir/x.ckpt.safetensors";
  g_assert_false (ddpm_train (&p, d, &error));
  g_assert_error (error, DDPM_ERROR, DDPM_ERROR_IO);
  g_clear_error (&error);

  /* A write that fails (no such folder) is an IO error, not a crash. */
  train_params (&p, "/nonexistent-dir/x.safetensors", 1);
  g_assert_false (ddpm_train (&p, d, &error));
  g_assert_error (error, DDPM_ERROR, DDPM_ERROR_IO);
  g_clear_error (&error);

  ddpm_dataset_free (d);
  g_free (pixels);
}

/* ddpm_train_params_validate: the defaults with an output path pass; each
 * bad setting fails naming it and its value, before any work. */
static void
test_validate_params (void)
{
  DdpmTrainParams p, q;
  GError *error = NULL;

  ddpm_train_params_init (&p);
  p.steps = 10;
  p.out_path = "model.safetensors";
  g_assert_true (ddpm_train_params_validate (&p, &error));
  g_assert_no_error (error);

#define BAD(assign, says)                                                   \
  do {                                                                      \
    q = p; assign;                                                          \
    g_assert_false (ddpm_train_params_validate (&q, &error));               \
    g_assert_error (error, DDPM_ERROR, DDPM_ERROR_INVALID_ARGUMENT);        \
    if (strstr (error->message, says) == NULL)                              \
      g_error ("%s: \"%s\" does not say \"%s\"", #assign, error->message, says); \
    g_clear_error (&error);                                                 \
  } while (0)

  BAD (q.steps = 0, "training steps must be at least 1, not 0");
  BAD (q.batch = -2, "batch size must be at least 1, not -2");
  BAD (q.lr = 0, "learning rate");
  BAD (q.lr = NAN, "learning rate");
  BAD (q.beta1 = 1, "β₁ and β₂");
  BAD (q.beta2 = -0.1, "not 0.9 and -0.1");
  BAD (q.weight_decay = -1, "weight decay");
  BAD (q.warmup = -1, "warm-up");
  BAD (q.grad_clip = -1, "clipping");
  BAD (q.ema_decay = 1.5, "EMA decay");
  BAD (q.T = 0, "T must be at least 1, not 0");
  BAD (q.checkpoint_every = -5, "checkpoint interval");
  BAD (q.threads = -1, "threads must be 0 (all cores) or more, not -1");
  BAD (q.out_path = "", "No output file");
  BAD (q.out_path = NULL, "No output file");
#undef BAD
}

/* -------------------------------------------------------------------- CLI */

static void
test_cli_train (void)
{
  GError *error = NULL;
  char *dir = g_dir_make_tmp ("ddpm-cli-train-XXXXXX", &error);
  char *image_path = g_build_filename (dir, "stripes.png", NULL);
  char *model = g_build_filename (dir, "m.safetensors", NULL);
  char *ckpt = ddpm_train_checkpoint_path (model);
  float *pixels = stripes (3, 20, 24);
  DdpmImage image = { 0 };
  char *out, *err;
  int status;

  for (int i = 0; i < 3 * 20 * 24; i++)
    pixels[i] = (pixels[i] + 1) / 2;
  image.width = 24;
  image.height = 20;
  image.channels = 3;
  image.pixels = pixels;
  g_assert_true (ddpm_image_save_png (&image, image_path, 8, &error));

  /* Single-image training, 3 steps at 16×16 with the tiny preset. */
  status = cli_test_run_capture (&out, &err, "train", image_path, "--preset", "tiny", "--size", "16",
                     "--steps", "3", "--batch", "2", "--threads", "1", "--seed", "7",
                     "--out", model, NULL);
  g_assert_cmpint (status, ==, 0);
  /* Not a terminal: plain log lines, the last one at step 3. */
  g_assert_nonnull (strstr (err, "step 3/3"));
  g_assert_null (strchr (err, '\r'));
  g_assert_true (g_file_test (model, G_FILE_TEST_IS_REGULAR));
  g_assert_true (g_file_test (ckpt, G_FILE_TEST_IS_REGULAR));
  g_free (out);
  g_free (err);

  status = cli_test_run_capture (&out, &err, "info", model, NULL);
  g_assert_cmpint (status, ==, 0);
  g_assert_nonnull (strstr (out, "train_steps: 3\n"));
  g_assert_nonnull (strstr (out, "image_size: 16\n"));
  g_assert_nonnull (strstr (out, "attn_resolutions: 4\n"));
  g_assert_nonnull (strstr (out, "in_channels: 3\n"));
  g_assert_nonnull (strstr (out, "parameters: 1113955\n"));
  g_free (out);
  g_free (err);

  /* Resume to 5 steps. */
  status = cli_test_run_capture (&out, &err, "train", image_path, "--steps", "5", "--batch", "2",
                     "--threads", "1", "--resume", ckpt, "--out", model, NULL);
  g_assert_cmpint (status, ==, 0);
  g_assert_nonnull (strstr (err, "step 5/5"));
  g_assert_null (strstr (err, "step 3/5"));
  g_free (out);
  g_free (err);

  /* With --resume, what the checkpoint fixes cannot be changed: an
   * architecture, schedule or seed option is refused, not ignored, and
   * names itself (issue 15). */
  const char *const refused[][3] = {
    { "--preset", "small", "architecture" }, { "--size", "32", "architecture" },
    { "--dropout", "0.1", "architecture" }, { "--schedule", "cosine", "schedule" },
    { "--timesteps", "1000", "schedule" }, { "--seed", "7", "seed" },
  };
  for (gsize k = 0; k < G_N_ELEMENTS (refused); k++)
    {
      status = cli_test_run_capture (&out, &err, "train", image_path, "--steps", "6",
                                     "--batch", "2", "--threads", "1", "--resume", ckpt,
                                     refused[k][0], refused[k][1], "--out", model, NULL);
      g_assert_cmpint (status, ==, 2);
      g_assert_nonnull (strstr (err, refused[k][0]));
      g_assert_nonnull (strstr (err, refused[k][2]));
      g_assert_null (strstr (err, "step 6/6"));
      g_free (out);
      g_free (err);
    }
  /* A checkpoint already past --steps is refused (it would be written out
   * as the model unchanged); one exactly at --steps says so. */
  status = cli_test_run_capture (&out, &err, "train", image_path, "--steps", "4", "--batch", "2",
                                 "--threads", "1", "--resume", ckpt, "--out", model, NULL);
  g_assert_cmpint (status, ==, 2);
  g_assert_nonnull (strstr (err, "already at step 5, past --steps 4"));
  g_free (out);
  g_free (err);
  status = cli_test_run_capture (&out, &err, "train", image_path, "--steps", "5", "--batch", "2",
                                 "--threads", "1", "--resume", ckpt, "--out", model, NULL);
  g_assert_cmpint (status, ==, 0);
  g_assert_nonnull (strstr (err, "nothing left to train"));
  g_free (out);
  g_free (err);

  /* A folder (holding that one image), converted to gray, resized. */
  char *gray_model = g_build_filename (dir, "g.safetensors", NULL);
  char *gray_ckpt = ddpm_train_checkpoint_path (gray_model);
  status = cli_test_run_capture (&out, &err, "train", dir, "--size", "16", "--channels", "1",
                     "--resize", "40", "--steps", "1", "--batch", "2", "--threads", "1",
                     "--out", gray_model, NULL);
  g_assert_cmpint (status, ==, 0);
  g_free (out);
  g_free (err);
  status = cli_test_run_capture (&out, &err, "info", gray_model, NULL);
  g_assert_cmpint (status, ==, 0);
  g_assert_nonnull (strstr (out, "in_channels: 1\n"));
  g_assert_nonnull (strstr (out, "train_steps: 1\n"));
  g_free (out);
  g_free (err);
  g_remove (gray_model);
  g_remove (gray_ckpt);
  g_free (gray_model);
  g_free (gray_ckpt);

  /* Bad arguments: exit 2 with a message; a missing data path: exit 1. */
  status = cli_test_run_capture (&out, &err, "train", image_path, "--channels", "2", "--out", model, NULL);
  g_assert_cmpint (status, ==, 2);
  g_assert_nonnull (strstr (err, "--channels"));
  g_free (out);
  g_free (err);
  status = cli_test_run_capture (&out, &err, "train", image_path, NULL);
  g_assert_cmpint (status, ==, 2);
  g_assert_nonnull (strstr (err, "--out"));
  g_free (out);
  g_free (err);
  status = cli_test_run_capture (&out, &err, "train", image_path, "--preset", "huge", "--out", model, NULL);
  g_assert_cmpint (status, ==, 2);
  g_free (out);
  g_free (err);
  status = cli_test_run_capture (&out, &err, "train", "/nonexistent/data", "--out", model, NULL);
  g_assert_cmpint (status, ==, 1);
  g_assert_nonnull (strstr (err, "/nonexistent/data"));
  g_free (out);
  g_free (err);

  /* Ctrl-C: SIGINT after the first logged step writes a checkpoint, says
   * how to resume, and exits with 130. */
  g_remove (ckpt);
  const char *argv_int[] = { g_getenv ("DDPM_CLI"), "train", image_path, "--size", "16",
                             "--steps", "100000", "--batch", "2", "--threads", "1",
                             "--out", model, NULL };
  GSubprocess *proc = g_subprocess_newv (argv_int, G_SUBPROCESS_FLAGS_STDERR_PIPE, &error);
  g_assert_no_error (error);
  GDataInputStream *lines = g_data_input_stream_new (g_subprocess_get_stderr_pipe (proc));
  char *line;
  GString *log = g_string_new (NULL);
  gboolean sent = FALSE;
  while ((line = g_data_input_stream_read_line_utf8 (lines, NULL, NULL, &error)) != NULL)
    {
      g_string_append_printf (log, "%s\n", line);
      if (!sent && g_str_has_prefix (line, "step "))
        {
          g_subprocess_send_signal (proc, SIGINT);
          sent = TRUE;
        }
      g_free (line);
    }
  g_assert_no_error (error);
  g_assert_true (g_subprocess_wait (proc, NULL, &error));
  g_assert_true (sent);
  g_assert_true (g_subprocess_get_if_exited (proc));
  g_assert_cmpint (g_subprocess_get_exit_status (proc), ==, 130);
  g_assert_nonnull (strstr (log->str, "interrupted"));
  g_assert_nonnull (strstr (log->str, "--resume"));
  g_assert_true (g_file_test (ckpt, G_FILE_TEST_IS_REGULAR));
  g_string_free (log, TRUE);
  g_object_unref (lines);
  g_object_unref (proc);

  g_remove (model);
  g_remove (ckpt);
  g_remove (image_path);
  g_rmdir (dir);
  g_free (model);
  g_free (ckpt);
  g_free (image_path);
  g_free (dir);
  g_free (pixels);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/engine/train/warmup", test_warmup);
  g_test_add_func ("/engine/train/clip", test_clip);
  g_test_add_func ("/engine/train/ema", test_ema);
  g_test_add_func ("/engine/train/mse-loss", test_mse_loss);
  g_test_add_func ("/engine/train/resume-exact", test_resume_exact);
  g_test_add_func ("/engine/train/deterministic", test_deterministic);
  g_test_add_func ("/engine/train/bad-params", test_bad_params);
  g_test_add_func ("/engine/train/validate-params", test_validate_params);
  g_test_add_func ("/engine/train/cli", test_cli_train);
  return g_test_run ();
}
