/* test-learns.c (suite 'slow'): the tiny preset really learns.  A few
 * hundred 32×32 images of simple coloured shapes are generated into a
 * temporary folder; 150 training steps must bring the smoothed
 * L_simple below half its initial value (≈ 1: the zero-initialised output
 * predicts ε = 0), and the saved model, reloaded, must give on a fixed
 * batch the loss of the checkpoint's EMA weights, well below the untrained
 * one. */
#include <math.h>
#include <string.h>

#include <glib/gstdio.h>

#include "ddpm.h"
#include "train.h"

#define N_IMAGES 256
#define SIZE 32
#define STEPS 150

/* A flat background and one filled disc or square, colours and placement
 * from the counter-based generator. */
static void
draw_shape (DdpmImage *image, guint64 k)
{
  const int S = SIZE;
  float bg[3], fg[3];
  double u[8];

  ddpm_rng_uniform_fill (u, 8, 77, k, 0);
  for (int c = 0; c < 3; c++)
    {
      bg[c] = (float) (0.1 + 0.3 * u[c]);
      fg[c] = (float) (0.5 + 0.5 * u[3 + c]);
    }
  double r = 5 + 7 * u[6];
  double cx = r + (S - 2 * r) * u[7], cy = r + (S - 2 * r) * fmod (u[7] * 7.31, 1.0);
  gboolean disc = k % 2 == 0;

  for (int y = 0; y < S; y++)
    for (int x = 0; x < S; x++)
      {
        double dx = x + 0.5 - cx, dy = y + 0.5 - cy;
        gboolean inside = disc ? dx * dx + dy * dy <= r * r
                               : fabs (dx) <= r * 0.8 && fabs (dy) <= r * 0.8;
        for (int c = 0; c < 3; c++)
          image->pixels[(c * S + y) * S + x] = inside ? fg[c] : bg[c];
      }
}

typedef struct
{
  double first;
  double last;
  int    calls;
} Losses;

static gboolean
record (const DdpmProgress *p, gpointer user_data)
{
  Losses *l = user_data;

  if (l->calls++ == 0)
    l->first = p->loss;
  l->last = p->loss;
  if (g_test_verbose () && p->step % 25 == 0)
    g_printerr ("step %d loss %.4f %.2f it/s\n", p->step, p->loss, p->per_second);
  return TRUE;
}

/* L_simple of a denoiser on a fixed batch: image b at t = 1 + 997·b/(B−1)
 * with fixed noise. */
static double
fixed_batch_loss (const DdpmDenoiser *den, const DdpmSchedule *s, const float *x0, int B)
{
  const gsize per = 3 * SIZE * SIZE;
  float *eps = g_new (float, per), *xt = g_new (float, per), *pred = g_new (float, per);
  GError *error = NULL;
  double sum = 0;

  for (int b = 0; b < B; b++)
    {
      int t = 1 + (int) ((gint64) (s->T - 3) * b / (B - 1));
      ddpm_rng_normal_fill (eps, per, 4321, b, 0);
      ddpm_q_sample (xt, x0 + b * per, eps, per, s, t);
      g_assert_true (den->denoise (pred, xt, 1, 3, SIZE, SIZE, t, den->user_data, &error));
      g_assert_no_error (error);
      sum += ddpm_train_mse_loss (NULL, pred, eps, per);
    }
  g_free (eps);
  g_free (xt);
  g_free (pred);
  return sum / B;
}

/* A denoiser over a bare UNet (the checkpoint's EMA weights). */
static gboolean
unet_denoise (float *eps, const float *x, int B, int C, int H, int W, int t,
              gpointer user_data, GError **error)
{
  int tb[1] = { t - 1 };

  g_assert_cmpint (B, ==, 1);
  return ddpm_unet_forward (user_data, eps, x, tb, 1, H, W, FALSE, 0, error);
}

static void
test_learns (void)
{
  GError *error = NULL;
  char *dir = g_dir_make_tmp ("ddpm-learns-XXXXXX", &error);
  char *model_path = g_build_filename (dir, "shapes.safetensors", NULL);
  char *ckpt_path = ddpm_train_checkpoint_path (model_path);
  DdpmImage *image = ddpm_image_new (SIZE, SIZE, 3, FALSE);
  const int B_fixed = 16;
  float *fixed = g_new (float, (gsize) B_fixed * 3 * SIZE * SIZE);

  g_assert_no_error (error);
  for (int k = 0; k < N_IMAGES; k++)
    {
      char name[32];
      g_snprintf (name, sizeof name, "shape%03d.png", k);
      char *path = g_build_filename (dir, name, NULL);

      draw_shape (image, k);
      g_assert_true (ddpm_image_save_png (image, path, 8, &error));
      g_assert_no_error (error);
      g_free (path);
    }

  DdpmDataset *d = ddpm_dataset_new_from_folder (dir, 3, 0, &error);
  g_assert_no_error (error);
  g_assert_cmpint (ddpm_dataset_n_images (d), ==, N_IMAGES);

  DdpmTrainParams p;
  Losses losses = { 0 };
  ddpm_train_params_init (&p);
  g_assert_true (ddpm_unet_config_from_preset ("tiny", 3, &p.config, &error));
  p.steps = STEPS;
  p.batch = 16;
  p.lr = 1e-3;
  p.warmup = 50;
  p.ema_decay = 0.99;
  p.seed = 2024;
  p.threads = 2;
  p.out_path = model_path;
  p.progress = record;
  p.progress_data = &losses;
  g_assert_true (ddpm_train (&p, d, &error));
  g_assert_no_error (error);
  ddpm_dataset_free (d);

  g_test_message ("smoothed loss: first %.4f, after %d steps %.4f", losses.first,
                  STEPS, losses.last);
  g_assert_cmpint (losses.calls, ==, STEPS);
  g_assert_cmpfloat (losses.first, >, 0.5);
  g_assert_cmpfloat (losses.last, <, 0.5 * losses.first);

  /* The fixed batch: shapes the training also saw, in [−1, 1]. */
  for (int b = 0; b < B_fixed; b++)
    {
      draw_shape (image, b);
      for (int i = 0; i < 3 * SIZE * SIZE; i++)
        fixed[(gsize) b * 3 * SIZE * SIZE + i] = 2 * image->pixels[i] - 1;
    }

  DdpmModel *model = ddpm_model_load (model_path, &error);
  g_assert_no_error (error);
  DdpmDenoiser den;
  ddpm_model_get_denoiser (model, 2, &den);
  double loss_model = fixed_batch_loss (&den, ddpm_model_get_schedule (model), fixed, B_fixed);

  /* The same weights through the checkpoint reader. */
  DdpmUNetConfig c;
  DdpmScheduleKind kind;
  int T;
  g_assert_true (ddpm_checkpoint_read (ckpt_path, &c, &kind, &T, NULL, NULL, NULL, NULL,
                                       NULL, NULL, &error));
  DdpmUNet *u = ddpm_unet_new (&c, &error);
  g_assert_no_error (error);
  float *scratch = g_new (float, ddpm_unet_n_params (u));
  g_assert_true (ddpm_checkpoint_read (ckpt_path, &c, &kind, &T, u, scratch, NULL, NULL,
                                       ddpm_unet_params (u), NULL, &error));
  g_assert_no_error (error);
  DdpmDenoiser raw = { unet_denoise, u, 3, SIZE, 1, NULL };
  double loss_ckpt = fixed_batch_loss (&raw, ddpm_model_get_schedule (model), fixed, B_fixed);

  /* An untrained network (conv_out zero: predicts 0) scores mean(ε²). */
  ddpm_unet_init (u, 1);
  double loss_untrained = fixed_batch_loss (&raw, ddpm_model_get_schedule (model), fixed,
                                            B_fixed);

  g_test_message ("fixed batch: model %.5f, checkpoint EMA %.5f, untrained %.5f",
                  loss_model, loss_ckpt, loss_untrained);
  g_assert_cmpfloat (loss_model, ==, loss_ckpt);
  g_assert_cmpfloat (loss_model, <, 0.5 * loss_untrained);

  g_free (scratch);
  ddpm_unet_free (u);
  ddpm_model_free (model);
  ddpm_image_free (image);
  g_free (fixed);

  GDir *gd = g_dir_open (dir, 0, NULL);
  const char *entry;
  while ((entry = g_dir_read_name (gd)) != NULL)
    {
      char *path = g_build_filename (dir, entry, NULL);
      g_remove (path);
      g_free (path);
    }
  g_dir_close (gd);
  g_rmdir (dir);
  g_free (dir);
  g_free (model_path);
  g_free (ckpt_path);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/engine/learns/shapes", test_learns);
  return g_test_run ();
}
