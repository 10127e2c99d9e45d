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
#include "cli-helpers.h"

/* Strength 0 gives the input back, pixel for pixel; strength 0.5 changes
 * the colours but never the alpha channel or the size. */
static void
test_renoise_strength (void)
{
  char *in = cli_test_make_input ("in.png", 3, TRUE);
  char *out0 = cli_test_path ("out0.png"), *out5 = cli_test_path ("out5.png");

  g_assert_cmpint (cli_test_run (NULL, "renoise", "--model", cli_test_model, "--strength", "0",
                             in, out0, NULL), ==, 0);
  g_assert_cmpint (cli_test_run (NULL, "renoise", "--model", cli_test_model, "--strength", "0.5",
                             "--steps", "3", "--seed", "7", in, out5, NULL), ==, 0);

  DdpmImage *a = cli_test_load (in), *b = cli_test_load (out0), *c = cli_test_load (out5);
  gsize n = 3 * 40 * 36;
  g_assert_cmpint (b->width, ==, 40);
  g_assert_cmpint (b->height, ==, 36);
  g_assert_cmpint (b->channels, ==, 3);
  g_assert_cmpfloat (cli_test_max_diff (a->pixels, b->pixels, n), ==, 0.0);
  g_assert_cmpfloat (cli_test_max_diff (a->alpha, b->alpha, 40 * 36), ==, 0.0);
  g_assert_cmpfloat (cli_test_max_diff (a->pixels, c->pixels, n), >, 0.05);
  g_assert_nonnull (c->alpha);
  g_assert_cmpfloat (cli_test_max_diff (a->alpha, c->alpha, 40 * 36), ==, 0.0);
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
  char *in = cli_test_make_input ("in-mask.png", 3, FALSE);
  char *mask_path = cli_test_path ("mask.png"), *out = cli_test_path ("out-mask.png");
  DdpmImage *mask = ddpm_image_new (40, 36, 1, FALSE);

  for (int y = 0; y < 36; y++)
    for (int x = 20; x < 40; x++)
      mask->pixels[y * 40 + x] = 1.0f;
  g_assert_true (ddpm_image_save_png (mask, mask_path, 8, NULL));
  g_assert_cmpint (cli_test_run (NULL, "renoise", "--model", cli_test_model, "--strength", "0.6",
                             "--steps", "2", "--mask", mask_path, in, out, NULL), ==, 0);

  DdpmImage *a = cli_test_load (in), *b = cli_test_load (out);
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
  char *in = cli_test_make_input ("gray.png", 1, FALSE);
  char *o1 = cli_test_path ("g1.png"), *o2 = cli_test_path ("g2.png"), *o3 = cli_test_path ("g3.png");

  g_assert_cmpint (cli_test_run (NULL, "renoise", "--model", cli_test_model, "--strength", "0.4",
                             "--steps", "2", "--seed", "5", "--threads", "1", in, o1, NULL), ==, 0);
  g_assert_cmpint (cli_test_run (NULL, "renoise", "--model", cli_test_model, "--strength", "0.4",
                             "--steps", "2", "--seed", "5", "--threads", "2", in, o2, NULL), ==, 0);
  g_assert_cmpint (cli_test_run (NULL, "renoise", "--model", cli_test_model, "--strength", "0.4",
                             "--steps", "2", "--seed", "6", "--sampler", "ddpm", in, o3, NULL), ==, 0);
  DdpmImage *a = cli_test_load (o1), *b = cli_test_load (o2), *c = cli_test_load (o3);
  g_assert_cmpint (a->channels, ==, 1);
  g_assert_cmpfloat (cli_test_max_diff (a->pixels, b->pixels, 40 * 36), ==, 0.0);
  g_assert_cmpfloat (cli_test_max_diff (a->pixels, c->pixels, 40 * 36), >, 0.0);
  ddpm_image_free (a);
  ddpm_image_free (b);
  ddpm_image_free (c);
  g_free (in);
  g_free (o1);
  g_free (o2);
  g_free (o3);
}

/* --sampler dpm++2m and --spacing karras run, independently of threads,
 * and differ from DDIM on the same start. */
static void
test_renoise_dpm_solver (void)
{
  char *in = cli_test_make_input ("dpm.png", 3, FALSE);
  char *o1 = cli_test_path ("d1.png"), *o2 = cli_test_path ("d2.png"), *o3 = cli_test_path ("d3.png");

  g_assert_cmpint (cli_test_run (NULL, "renoise", "--model", cli_test_model, "--strength", "0.4",
                             "--steps", "3", "--sampler", "dpm++2m", "--spacing", "karras",
                             "--threads", "1", in, o1, NULL), ==, 0);
  g_assert_cmpint (cli_test_run (NULL, "renoise", "--model", cli_test_model, "--strength", "0.4",
                             "--steps", "3", "--sampler", "dpm++2m", "--spacing", "karras",
                             "--threads", "2", in, o2, NULL), ==, 0);
  g_assert_cmpint (cli_test_run (NULL, "renoise", "--model", cli_test_model, "--strength", "0.4",
                             "--steps", "3", "--sampler", "ddim", "--spacing", "karras",
                             in, o3, NULL), ==, 0);
  DdpmImage *a = cli_test_load (o1), *b = cli_test_load (o2), *c = cli_test_load (o3);
  gsize n = (gsize) a->channels * a->width * a->height;
  g_assert_cmpfloat (cli_test_max_diff (a->pixels, b->pixels, n), ==, 0.0);
  g_assert_cmpfloat (cli_test_max_diff (a->pixels, c->pixels, n), >, 0.0);
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
  char *out = cli_test_path ("sample.png");

  g_assert_cmpint (cli_test_run (NULL, "sample", "--model", cli_test_model, "--size", "40x24",
                             "--steps", "2", "--seed", "1", "--out", out, NULL), ==, 0);
  DdpmImage *s = cli_test_load (out);
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
  char *in = cli_test_make_input ("eval.png", 3, FALSE);
  char *out = NULL, *err = NULL;
  char *argv[] = { (char *) g_getenv ("DDPM_CLI"), "eval", "--model", cli_test_model, "--crops", "2",
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
  g_assert_cmpint (cli_test_run (&err, "eval", "--model", cli_test_model, NULL), ==, 2);
  g_assert_nonnull (strstr (err, "no images"));
  g_free (err);
  g_free (in);
}

/* Bad arguments: exit 2 and a message naming the problem; failures: exit
 * 1; neither writes an output file. */
static void
test_errors (void)
{
  char *in = cli_test_make_input ("in-err.png", 3, FALSE);
  char *out = cli_test_path ("never.png"), *small = cli_test_path ("small-mask.png");
  char *missing = cli_test_path ("missing.png"), *err;
  DdpmImage *mask = ddpm_image_new (8, 8, 1, FALSE);

  g_assert_true (ddpm_image_save_png (mask, small, 8, NULL));
  ddpm_image_free (mask);

  g_assert_cmpint (cli_test_run (&err, "renoise", "--model", cli_test_model, "--strength", "1.5",
                             in, out, NULL), ==, 2);
  g_assert_nonnull (strstr (err, "between 0 and 1"));
  g_free (err);
  g_assert_cmpint (cli_test_run (&err, "renoise", "--model", cli_test_model, "--steps", "0",
                             in, out, NULL), ==, 2);
  /* the engine's one check of sampling settings, the plug-in's words too */
  g_assert_nonnull (strstr (err, "number of steps must be at least 1, not 0"));
  g_free (err);
  g_assert_cmpint (cli_test_run (&err, "renoise", "--model", cli_test_model, "--sampler", "euler",
                             in, out, NULL), ==, 2);
  g_assert_nonnull (strstr (err, "ddim"));
  g_free (err);
  g_assert_cmpint (cli_test_run (&err, "renoise", "--model", cli_test_model, in, NULL), ==, 2);
  g_free (err);
  g_assert_cmpint (cli_test_run (&err, "renoise", "--model", cli_test_model, "--tile-overlap",
                             "-5", in, out, NULL), ==, 2);
  g_assert_nonnull (strstr (err, "--tile-overlap"));
  g_free (err);
  /* the engine's own check: the value reaches the tiling */
  g_assert_cmpint (cli_test_run (&err, "renoise", "--model", cli_test_model, "--tile-overlap",
                             "1000", in, out, NULL), ==, 1);
  g_assert_nonnull (strstr (err, "smaller than the tile"));
  g_free (err);
  g_assert_cmpint (cli_test_run (&err, "renoise", "--model", cli_test_model, missing, out, NULL), ==, 1);
  g_assert_nonnull (strstr (err, "missing.png"));
  g_free (err);
  g_assert_cmpint (cli_test_run (&err, "renoise", "--model", cli_test_model, "--mask", small,
                             in, out, NULL), ==, 1);
  g_assert_nonnull (strstr (err, "8×8"));
  g_free (err);
  g_assert_cmpint (cli_test_run (&err, "renoise", "--model", in, in, out, NULL), ==, 1);
  g_assert_nonnull (strstr (err, "in-err.png"));
  g_free (err);
  g_assert_cmpint (cli_test_run (&err, "sample", "--model", cli_test_model, "--size", "0x5",
                             "--out", out, NULL), ==, 2);
  g_free (err);
  g_assert_cmpint (cli_test_run (&err, "sample", "--model", cli_test_model, NULL), ==, 2);
  g_assert_nonnull (strstr (err, "--out"));
  g_free (err);
  g_assert_false (g_file_test (out, G_FILE_TEST_EXISTS));

  /* Only PNG is written: an output named .jpg (any other extension) is
   * refused before any work, not filled with PNG bytes (issue 15). */
  char *jpg = cli_test_path ("never.jpg");
  g_assert_cmpint (cli_test_run (&err, "renoise", "--model", cli_test_model, "--steps", "1",
                                 in, jpg, NULL), ==, 2);
  g_assert_nonnull (strstr (err, "only PNG"));
  g_free (err);
  g_assert_cmpint (cli_test_run (&err, "denoise", "--model", cli_test_model, "--sigma", "0.1",
                                 in, jpg, NULL), ==, 2);
  g_assert_nonnull (strstr (err, "only PNG"));
  g_free (err);
  g_assert_cmpint (cli_test_run (&err, "sample", "--model", cli_test_model, "--steps", "1",
                                 "--size", "8x8", "--out", jpg, NULL), ==, 2);
  g_assert_nonnull (strstr (err, "only PNG"));
  g_free (err);
  g_assert_false (g_file_test (jpg, G_FILE_TEST_EXISTS));
  g_free (jpg);
  /* the extension's case does not matter */
  char *upper = cli_test_path ("upper.PNG");
  g_assert_cmpint (cli_test_run (&err, "renoise", "--model", cli_test_model, "--steps", "1",
                                 "--strength", "0.1", in, upper, NULL), ==, 0);
  g_free (err);
  g_assert_true (g_file_test (upper, G_FILE_TEST_IS_REGULAR));
  g_remove (upper);
  g_free (upper);
  g_free (in);
  g_free (out);
  g_free (small);
  g_free (missing);
}

int
main (int argc, char **argv)
{
  int status;

  g_test_init (&argc, &argv, NULL);
  g_assert_nonnull (g_getenv ("DDPM_CLI"));
  cli_test_setup ("cli");

  g_test_add_func ("/cli/sampling/renoise-strength", test_renoise_strength);
  g_test_add_func ("/cli/sampling/renoise-mask", test_renoise_mask);
  g_test_add_func ("/cli/sampling/renoise-gray-and-seeds", test_renoise_gray_and_seeds);
  g_test_add_func ("/cli/sampling/renoise-dpm-solver", test_renoise_dpm_solver);
  g_test_add_func ("/cli/sampling/sample", test_sample);
  g_test_add_func ("/cli/sampling/eval", test_eval);
  g_test_add_func ("/cli/sampling/errors", test_errors);
  status = g_test_run ();

  cli_test_teardown ();
  return status;
}
