/* test-cli-sampling.c: `ddpm renoise` and `ddpm sample` as a user runs
 * them, on a model the test trains for two steps with `ddpm train` (the
 * outputs of such a model are noise; what is checked is what the commands
 * promise: identity at strength 0, alpha kept, masks, channels, seeds,
 * errors). */
#include <math.h>
#include <string.h>
#include <sys/wait.h>

#include <glib/gstdio.h>

#include "ddpm.h"
#include "image.h"

static char *tmp_dir;
static char *model_path;

static char *
tmp_path (const char *name)
{
  return g_build_filename (tmp_dir, name, NULL);
}

/* Run ddpm with the NULL-terminated arguments; return its exit status and
 * keep stderr in *err (may be NULL). */
static int
run_ddpm (char **err, ...)
{
  GPtrArray *argv = g_ptr_array_new ();
  const char *arg;
  va_list ap;
  int status = -1;
  char *out = NULL, *err_text = NULL;
  GError *error = NULL;

  g_ptr_array_add (argv, (char *) g_getenv ("DDPM_CLI"));
  va_start (ap, err);
  while ((arg = va_arg (ap, const char *)) != NULL)
    g_ptr_array_add (argv, (char *) arg);
  va_end (ap);
  g_ptr_array_add (argv, NULL);
  g_spawn_sync (NULL, (char **) argv->pdata, NULL, G_SPAWN_DEFAULT, NULL, NULL,
                &out, &err_text, &status, &error);
  g_assert_no_error (error);
  g_test_message ("%s", err_text);
  if (err)
    *err = err_text;
  else
    g_free (err_text);
  g_free (out);
  g_ptr_array_free (argv, TRUE);
  return WIFEXITED (status) ? WEXITSTATUS (status) : -1;
}

static DdpmImage *
load (const char *path)
{
  GError *error = NULL;
  DdpmImage *image = ddpm_image_load (path, &error);

  g_assert_no_error (error);
  return image;
}

/* A 40×36 RGB picture with a gradient, a disc and a varying alpha. */
static char *
make_input (const char *name, int channels, gboolean with_alpha)
{
  DdpmImage *image = ddpm_image_new (40, 36, channels, with_alpha);
  char *path = tmp_path (name);
  GError *error = NULL;

  for (int c = 0; c < channels; c++)
    for (int y = 0; y < 36; y++)
      for (int x = 0; x < 40; x++)
        {
          gboolean disc = (x - 20) * (x - 20) + (y - 18) * (y - 18) < 100;
          image->pixels[(c * 36 + y) * 40 + x] = disc ? 0.9f - 0.3f * c
                                                 : (float) ((x + 3 * c) % 40) / 40;
        }
  if (with_alpha)
    for (int i = 0; i < 40 * 36; i++)
      image->alpha[i] = (float) (i % 7) / 6;
  g_assert_true (ddpm_image_save_png (image, path, 8, &error));
  g_assert_no_error (error);
  ddpm_image_free (image);
  return path;
}

static double
max_abs_diff (const float *a, const float *b, gsize n)
{
  double m = 0;

  for (gsize i = 0; i < n; i++)
    m = MAX (m, fabs (a[i] - b[i]));
  return m;
}

/* Strength 0 gives the input back, pixel for pixel; strength 0.5 changes
 * the colours but never the alpha channel or the size. */
static void
test_renoise_strength (void)
{
  char *in = make_input ("in.png", 3, TRUE);
  char *out0 = tmp_path ("out0.png"), *out5 = tmp_path ("out5.png");

  g_assert_cmpint (run_ddpm (NULL, "renoise", "--model", model_path, "--strength", "0",
                             in, out0, NULL), ==, 0);
  g_assert_cmpint (run_ddpm (NULL, "renoise", "--model", model_path, "--strength", "0.5",
                             "--steps", "3", "--seed", "7", in, out5, NULL), ==, 0);

  DdpmImage *a = load (in), *b = load (out0), *c = load (out5);
  gsize n = 3 * 40 * 36;
  g_assert_cmpint (b->width, ==, 40);
  g_assert_cmpint (b->height, ==, 36);
  g_assert_cmpint (b->channels, ==, 3);
  g_assert_cmpfloat (max_abs_diff (a->pixels, b->pixels, n), ==, 0.0);
  g_assert_cmpfloat (max_abs_diff (a->alpha, b->alpha, 40 * 36), ==, 0.0);
  g_assert_cmpfloat (max_abs_diff (a->pixels, c->pixels, n), >, 0.05);
  g_assert_nonnull (c->alpha);
  g_assert_cmpfloat (max_abs_diff (a->alpha, c->alpha, 40 * 36), ==, 0.0);
  ddpm_image_free (a);
  ddpm_image_free (b);
  ddpm_image_free (c);
  g_free (in);
  g_free (out0);
  g_free (out5);
}

/* Where the mask is black the output is the input. */
static void
test_renoise_mask (void)
{
  char *in = make_input ("in-mask.png", 3, FALSE);
  char *mask_path = tmp_path ("mask.png"), *out = tmp_path ("out-mask.png");
  DdpmImage *mask = ddpm_image_new (40, 36, 1, FALSE);

  for (int y = 0; y < 36; y++)
    for (int x = 20; x < 40; x++)
      mask->pixels[y * 40 + x] = 1.0f;
  g_assert_true (ddpm_image_save_png (mask, mask_path, 8, NULL));
  g_assert_cmpint (run_ddpm (NULL, "renoise", "--model", model_path, "--strength", "0.6",
                             "--steps", "2", "--mask", mask_path, in, out, NULL), ==, 0);

  DdpmImage *a = load (in), *b = load (out);
  double left = 0, right = 0;
  for (int c = 0; c < 3; c++)
    for (int y = 0; y < 36; y++)
      for (int x = 0; x < 40; x++)
        {
          int i = (c * 36 + y) * 40 + x;
          double d = fabs (a->pixels[i] - b->pixels[i]);
          if (x < 20)
            left = MAX (left, d);
          else
            right = MAX (right, d);
        }
  g_assert_cmpfloat (left, ==, 0.0);
  g_assert_cmpfloat (right, >, 0.05);
  ddpm_image_free (mask);
  ddpm_image_free (a);
  ddpm_image_free (b);
  g_free (in);
  g_free (mask_path);
  g_free (out);
}

/* A gray image through the RGB model comes back gray; the same seed gives
 * the same output with 1 and 2 threads; another seed another output. */
static void
test_renoise_gray_and_seeds (void)
{
  char *in = make_input ("gray.png", 1, FALSE);
  char *o1 = tmp_path ("g1.png"), *o2 = tmp_path ("g2.png"), *o3 = tmp_path ("g3.png");

  g_assert_cmpint (run_ddpm (NULL, "renoise", "--model", model_path, "--strength", "0.4",
                             "--steps", "2", "--seed", "5", "--threads", "1", in, o1, NULL), ==, 0);
  g_assert_cmpint (run_ddpm (NULL, "renoise", "--model", model_path, "--strength", "0.4",
                             "--steps", "2", "--seed", "5", "--threads", "2", in, o2, NULL), ==, 0);
  g_assert_cmpint (run_ddpm (NULL, "renoise", "--model", model_path, "--strength", "0.4",
                             "--steps", "2", "--seed", "6", "--sampler", "ddpm", in, o3, NULL), ==, 0);
  DdpmImage *a = load (o1), *b = load (o2), *c = load (o3);
  g_assert_cmpint (a->channels, ==, 1);
  g_assert_cmpfloat (max_abs_diff (a->pixels, b->pixels, 40 * 36), ==, 0.0);
  g_assert_cmpfloat (max_abs_diff (a->pixels, c->pixels, 40 * 36), >, 0.0);
  ddpm_image_free (a);
  ddpm_image_free (b);
  ddpm_image_free (c);
  g_free (in);
  g_free (o1);
  g_free (o2);
  g_free (o3);
}

static void
test_sample (void)
{
  char *out = tmp_path ("sample.png");

  g_assert_cmpint (run_ddpm (NULL, "sample", "--model", model_path, "--size", "40x24",
                             "--steps", "2", "--seed", "1", "--out", out, NULL), ==, 0);
  DdpmImage *s = load (out);
  g_assert_cmpint (s->width, ==, 40);
  g_assert_cmpint (s->height, ==, 24);
  g_assert_cmpint (s->channels, ==, 3);
  ddpm_image_free (s);
  g_free (out);
}

/* `ddpm eval` prints a positive, finite bits/dim per image and a mean. */
static void
test_eval (void)
{
  char *in = make_input ("eval.png", 3, FALSE);
  char *out = NULL, *err = NULL;
  char *argv[] = { (char *) g_getenv ("DDPM_CLI"), "eval", "--model", model_path, "--crops", "2",
                   "--t-samples", "5", in, NULL };
  int status;
  GError *error = NULL;

  g_spawn_sync (NULL, argv, NULL, G_SPAWN_DEFAULT, NULL, NULL, &out, &err, &status, &error);
  g_assert_no_error (error);
  g_assert_true (WIFEXITED (status) && WEXITSTATUS (status) == 0);
  char *line = strstr (out, ": ");
  g_assert_nonnull (line);
  double bpd = g_ascii_strtod (line + 2, NULL);
  g_test_message ("%s", out);
  g_assert_true (isfinite (bpd));
  g_assert_cmpfloat (bpd, >, 0.0);
  g_assert_nonnull (strstr (out, "mean: "));
  g_free (out);
  g_free (err);
  g_assert_cmpint (run_ddpm (&err, "eval", "--model", model_path, NULL), ==, 2);
  g_assert_nonnull (strstr (err, "no images"));
  g_free (err);
  g_free (in);
}

/* Bad arguments: exit 2 and a message naming the problem; failures: exit
 * 1; neither writes an output file. */
static void
test_errors (void)
{
  char *in = make_input ("in-err.png", 3, FALSE);
  char *out = tmp_path ("never.png"), *small = tmp_path ("small-mask.png");
  char *missing = tmp_path ("missing.png"), *err;
  DdpmImage *mask = ddpm_image_new (8, 8, 1, FALSE);

  g_assert_true (ddpm_image_save_png (mask, small, 8, NULL));
  ddpm_image_free (mask);

  g_assert_cmpint (run_ddpm (&err, "renoise", "--model", model_path, "--strength", "1.5",
                             in, out, NULL), ==, 2);
  g_assert_nonnull (strstr (err, "between 0 and 1"));
  g_free (err);
  g_assert_cmpint (run_ddpm (&err, "renoise", "--model", model_path, "--steps", "0",
                             in, out, NULL), ==, 2);
  g_assert_nonnull (strstr (err, "--steps"));
  g_free (err);
  g_assert_cmpint (run_ddpm (&err, "renoise", "--model", model_path, "--sampler", "euler",
                             in, out, NULL), ==, 2);
  g_assert_nonnull (strstr (err, "ddim"));
  g_free (err);
  g_assert_cmpint (run_ddpm (&err, "renoise", "--model", model_path, in, NULL), ==, 2);
  g_free (err);
  g_assert_cmpint (run_ddpm (&err, "renoise", "--model", model_path, missing, out, NULL), ==, 1);
  g_assert_nonnull (strstr (err, "missing.png"));
  g_free (err);
  g_assert_cmpint (run_ddpm (&err, "renoise", "--model", model_path, "--mask", small,
                             in, out, NULL), ==, 1);
  g_assert_nonnull (strstr (err, "8×8"));
  g_free (err);
  g_assert_cmpint (run_ddpm (&err, "renoise", "--model", in, in, out, NULL), ==, 1);
  g_assert_nonnull (strstr (err, "in-err.png"));
  g_free (err);
  g_assert_cmpint (run_ddpm (&err, "sample", "--model", model_path, "--size", "0x5",
                             "--out", out, NULL), ==, 2);
  g_free (err);
  g_assert_cmpint (run_ddpm (&err, "sample", "--model", model_path, NULL), ==, 2);
  g_assert_nonnull (strstr (err, "--out"));
  g_free (err);
  g_assert_false (g_file_test (out, G_FILE_TEST_EXISTS));
  g_free (in);
  g_free (out);
  g_free (small);
  g_free (missing);
}

int
main (int argc, char **argv)
{
  GError *error = NULL;
  int status;

  g_test_init (&argc, &argv, NULL);
  g_assert_nonnull (g_getenv ("DDPM_CLI"));
  tmp_dir = g_dir_make_tmp ("ddpm-cli-XXXXXX", &error);
  g_assert_no_error (error);

  /* A model to sample with: two training steps of the tiny preset. */
  char *train_image = make_input ("train.png", 3, FALSE);
  model_path = tmp_path ("model.safetensors");
  g_assert_cmpint (run_ddpm (NULL, "train", train_image, "--preset", "tiny", "--steps", "2",
                             "--batch", "2", "--out", model_path, NULL), ==, 0);
  g_free (train_image);

  g_test_add_func ("/cli/renoise/strength", test_renoise_strength);
  g_test_add_func ("/cli/renoise/mask", test_renoise_mask);
  g_test_add_func ("/cli/renoise/gray-and-seeds", test_renoise_gray_and_seeds);
  g_test_add_func ("/cli/sample", test_sample);
  g_test_add_func ("/cli/eval", test_eval);
  g_test_add_func ("/cli/sampling-errors", test_errors);
  status = g_test_run ();

  char *rm[] = { "rm", "-rf", tmp_dir, NULL };
  g_spawn_sync (NULL, rm, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL, NULL, NULL, NULL, NULL);
  g_free (model_path);
  g_free (tmp_dir);
  return status;
}
