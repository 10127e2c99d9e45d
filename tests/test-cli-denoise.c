/* test-cli-denoise.c: `ddpm denoise` and `ddpm denoise-eval` as a user runs
 * them, on a model the test trains for two steps with `ddpm train` (its
 * outputs are noise, so what is checked is what the commands promise:
 * size, channels and alpha kept, σ parsed and estimated, the PSNR of the
 * noisy inputs, errors).  The helpers are those of test-cli-sampling.c. */
#include <math.h>
#include <stdlib.h>
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

/* σ given and estimated, RGB with alpha and gray: the output has the
 * input's size, channels and alpha, and differs from the input. */
static void
test_denoise (void)
{
  const struct { const char *name; int channels; gboolean alpha; const char *sigma; } cases[] = {
    { "rgba.png", 3, TRUE, "0.1" },
    { "gray.png", 1, FALSE, "0.05" },
  };

  for (gsize k = 0; k < G_N_ELEMENTS (cases); k++)
    {
      char *in = make_input (cases[k].name, cases[k].channels, cases[k].alpha);
      char *out = tmp_path ("denoised.png"), *err;

      g_assert_cmpint (run_ddpm (&err, "denoise", "--model", model_path, "--sigma",
                                 cases[k].sigma, "--steps", "2", "--seed", "3",
                                 in, out, NULL), ==, 0);
      g_assert_nonnull (strstr (err, "given"));
      g_free (err);

      DdpmImage *a = load (in), *b = load (out);
      gsize n = (gsize) a->channels * 40 * 36;
      g_assert_cmpint (b->width, ==, 40);
      g_assert_cmpint (b->height, ==, 36);
      g_assert_cmpint (b->channels, ==, cases[k].channels);
      /* A two-step model predicts ε ≈ 0 (its last layer starts at zero),
       * so deterministic DDIM gives the input back, to within rounding. */
      g_assert_cmpfloat (max_abs_diff (a->pixels, b->pixels, n), <, 0.05);
      if (cases[k].alpha)
        {
          g_assert_nonnull (b->alpha);
          g_assert_cmpfloat (max_abs_diff (a->alpha, b->alpha, 40 * 36), ==, 0.0);
        }
      else
        g_assert_null (b->alpha);
      ddpm_image_free (a);
      ddpm_image_free (b);
      g_remove (out);
      g_free (in);
      g_free (out);
    }
}

/* --sigma auto: on a noisy picture the estimate (printed) is near the
 * noise added; on the clean synthetic picture, which has no diagonal
 * detail at all, there is nothing to remove and the output is the input. */
static void
test_denoise_auto (void)
{
  DdpmImage *image = ddpm_image_new (64, 48, 3, TRUE);
  char *noisy = tmp_path ("noisy.png"), *out = tmp_path ("auto.png"), *err;
  const double sigma = 0.06;

  for (int i = 0; i < 3 * 64 * 48; i++)
    image->pixels[i] = (float) (0.3 + 0.4 * (i % 64) / 64.0
                                + sigma * ddpm_rng_normal (11, 0, i));
  for (int i = 0; i < 64 * 48; i++)
    image->alpha[i] = (float) (i % 5) / 4;
  g_assert_true (ddpm_image_save_png (image, noisy, 16, NULL));
  ddpm_image_free (image);
  g_assert_cmpint (run_ddpm (&err, "denoise", "--model", model_path, "--sigma", "auto",
                             "--steps", "2", noisy, out, NULL), ==, 0);
  const char *at = strstr (err, "σ = ");
  g_assert_nonnull (at);
  g_assert_nonnull (strstr (err, "estimated"));
  double got = g_ascii_strtod (at + strlen ("σ = "), NULL);
  g_test_message ("σ = %g: estimated %g", sigma, got);
  g_assert_cmpfloat (fabs (got / sigma - 1), <, 0.1);
  g_free (err);
  DdpmImage *a = load (noisy), *b = load (out);
  g_assert_cmpint (b->width, ==, 64);
  g_assert_cmpint (b->height, ==, 48);
  g_assert_nonnull (b->alpha);
  g_assert_cmpfloat (max_abs_diff (a->alpha, b->alpha, 64 * 48), <, 0.5 / 255);
  ddpm_image_free (a);
  ddpm_image_free (b);

  char *clean = make_input ("clean.png", 3, TRUE);
  g_assert_cmpint (run_ddpm (&err, "denoise", "--model", model_path, "--sigma", "auto",
                             clean, out, NULL), ==, 0);
  g_assert_nonnull (strstr (err, "no noise"));
  g_free (err);
  a = load (clean);
  b = load (out);
  g_assert_cmpfloat (max_abs_diff (a->pixels, b->pixels, 3 * 40 * 36), ==, 0.0);
  g_assert_cmpfloat (max_abs_diff (a->alpha, b->alpha, 40 * 36), ==, 0.0);
  ddpm_image_free (a);
  ddpm_image_free (b);
  g_free (clean);
  g_free (noisy);
  g_free (out);
}

/* The DDPM sampler draws noise: the same seed gives the same output, and
 * another seed another one. */
static void
test_denoise_seeds (void)
{
  char *in = make_input ("seeds.png", 3, FALSE);
  char *o1 = tmp_path ("s1.png"), *o2 = tmp_path ("s2.png"), *o3 = tmp_path ("s3.png");

  g_assert_cmpint (run_ddpm (NULL, "denoise", "--model", model_path, "--sigma", "0.2",
                             "--sampler", "ddpm", "--steps", "3", "--seed", "1", in, o1,
                             NULL), ==, 0);
  g_assert_cmpint (run_ddpm (NULL, "denoise", "--model", model_path, "--sigma", "0.2",
                             "--sampler", "ddpm", "--steps", "3", "--seed", "1",
                             "--threads", "1", in, o2, NULL), ==, 0);
  g_assert_cmpint (run_ddpm (NULL, "denoise", "--model", model_path, "--sigma", "0.2",
                             "--sampler", "ddpm", "--steps", "3", "--seed", "2", in, o3,
                             NULL), ==, 0);
  DdpmImage *a = load (o1), *b = load (o2), *c = load (o3), *x = load (in);
  gsize n = 3 * 40 * 36;
  g_assert_cmpfloat (max_abs_diff (a->pixels, b->pixels, n), ==, 0.0);
  g_assert_cmpfloat (max_abs_diff (a->pixels, c->pixels, n), >, 0.0);
  g_assert_cmpfloat (max_abs_diff (a->pixels, x->pixels, n), >, 0.0);
  ddpm_image_free (a);
  ddpm_image_free (b);
  ddpm_image_free (c);
  ddpm_image_free (x);
  g_free (in);
  g_free (o1);
  g_free (o2);
  g_free (o3);
}

/* The table has a row per σ and sampler; the noisy PSNR is that of the
 * added noise, 20·log10(255/L) dB (noise unclipped), to sampling error. */
static void
test_denoise_eval (void)
{
  char *a = make_input ("eval-a.png", 3, FALSE), *b = make_input ("eval-b.png", 1, FALSE);
  char *out = NULL, *err = NULL;
  char *argv[] = { (char *) g_getenv ("DDPM_CLI"), "denoise-eval", "--model", model_path,
                   "--sigma", "10,25", "--steps", "2", "--seed", "4", a, b, NULL };
  int status;
  GError *error = NULL;

  g_spawn_sync (NULL, argv, NULL, G_SPAWN_DEFAULT, NULL, NULL, &out, &err, &status,
                &error);
  g_assert_no_error (error);
  g_test_message ("%s%s", out, err);
  g_assert_true (WIFEXITED (status) && WEXITSTATUS (status) == 0);

  char **lines = g_strsplit (out, "\n", -1);
  int rows = 0;
  for (char **l = lines; *l; l++)
    {
      char sigma[16], sampler[16];
      int t, steps;
      double noisy, result;

      if (**l == '#' || sscanf (*l, "%15s %15s %d %d %lf %lf", sigma, sampler, &t,
                                &steps, &noisy, &result) != 6)
        continue;
      rows++;
      double level = g_ascii_strtod (sigma, NULL);
      g_assert_true (strcmp (sampler, "ddim") == 0 || strcmp (sampler, "ddpm") == 0);
      g_assert_true (level == 10 || level == 25);
      g_assert_cmpint (steps, ==, 2);
      g_assert_cmpfloat (fabs (noisy - 20 * log10 (255 / level)), <, 0.3);
      g_assert_true (isfinite (result));
    }
  g_assert_cmpint (rows, ==, 4);
  g_strfreev (lines);
  g_free (out);
  g_free (err);
  g_free (a);
  g_free (b);
}

/* A bad --sigma is a usage error (exit 2) and writes nothing. */
static void
test_errors (void)
{
  char *in = make_input ("in-err.png", 3, FALSE);
  char *out = tmp_path ("never.png"), *err;
  const char *bad[] = { "0", "-0.1", "25", "abc", "0.1x", "nan" };

  for (gsize k = 0; k < G_N_ELEMENTS (bad); k++)
    {
      g_assert_cmpint (run_ddpm (&err, "denoise", "--model", model_path, "--sigma", bad[k],
                                 in, out, NULL), ==, 2);
      g_assert_nonnull (strstr (err, "--sigma"));
      g_free (err);
    }
  g_assert_cmpint (run_ddpm (&err, "denoise", "--model", model_path, in, out, NULL), ==, 2);
  g_assert_nonnull (strstr (err, "--sigma"));
  g_free (err);
  g_assert_cmpint (run_ddpm (&err, "denoise", "--model", model_path, "--sigma", "0.1",
                             in, NULL), ==, 2);
  g_free (err);
  g_assert_cmpint (run_ddpm (&err, "denoise-eval", "--model", model_path, "--sigma", "10,x",
                             in, NULL), ==, 2);
  g_assert_nonnull (strstr (err, "--sigma"));
  g_free (err);
  g_assert_cmpint (run_ddpm (&err, "denoise-eval", "--model", model_path, NULL), ==, 2);
  g_free (err);
  g_assert_false (g_file_test (out, G_FILE_TEST_EXISTS));
  g_free (in);
  g_free (out);
}

int
main (int argc, char **argv)
{
  GError *error = NULL;
  int status;

  g_test_init (&argc, &argv, NULL);
  g_assert_nonnull (g_getenv ("DDPM_CLI"));
  tmp_dir = g_dir_make_tmp ("ddpm-cli-denoise-XXXXXX", &error);
  g_assert_no_error (error);

  /* A model to denoise with: two training steps of the tiny preset. */
  char *train_image = make_input ("train.png", 3, FALSE);
  model_path = tmp_path ("model.safetensors");
  g_assert_cmpint (run_ddpm (NULL, "train", train_image, "--preset", "tiny", "--steps", "2",
                             "--batch", "2", "--out", model_path, NULL), ==, 0);
  g_free (train_image);

  g_test_add_func ("/cli/denoise/run", test_denoise);
  g_test_add_func ("/cli/denoise/auto", test_denoise_auto);
  g_test_add_func ("/cli/denoise/seeds", test_denoise_seeds);
  g_test_add_func ("/cli/denoise/eval", test_denoise_eval);
  g_test_add_func ("/cli/denoise/errors", test_errors);
  status = g_test_run ();

  char *rm[] = { "rm", "-rf", tmp_dir, NULL };
  g_spawn_sync (NULL, rm, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL, NULL, NULL, NULL, NULL);
  g_free (model_path);
  g_free (tmp_dir);
  return status;
}
