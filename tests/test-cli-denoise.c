/* test-cli-denoise.c: `ddpm denoise` and `ddpm denoise-eval` as a user runs
 * them, on a model the test trains for two steps with `ddpm train` (its
 * outputs are noise, so what is checked is what the commands promise:
 * size, channels and alpha kept, σ parsed and estimated, the PSNR of the
 * noisy inputs, errors).  Helpers: cli-helpers.c. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <glib/gstdio.h>

#include "ddpm.h"
#include "cli-helpers.h"

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
      char *in = cli_test_make_input (cases[k].name, cases[k].channels, cases[k].alpha);
      char *out = cli_test_path ("denoised.png"), *err;

      g_assert_cmpint (cli_test_run (&err, "denoise", "--model", cli_test_model, "--sigma",
                                 cases[k].sigma, "--steps", "2", "--seed", "3",
                                 in, out, NULL), ==, 0);
      g_assert_nonnull (strstr (err, "given"));
      g_free (err);

      DdpmImage *a = cli_test_load (in), *b = cli_test_load (out);
      gsize n = (gsize) a->channels * 40 * 36;
      g_assert_cmpint (b->width, ==, 40);
      g_assert_cmpint (b->height, ==, 36);
      g_assert_cmpint (b->channels, ==, cases[k].channels);
      /* A two-step model predicts ε ≈ 0 (its last layer starts at zero),
       * so deterministic DDIM gives the input back, to within rounding. */
      g_assert_cmpfloat (cli_test_max_diff (a->pixels, b->pixels, n), <, 0.05);
      if (cases[k].alpha)
        {
          g_assert_nonnull (b->alpha);
          g_assert_cmpfloat (cli_test_max_diff (a->alpha, b->alpha, 40 * 36), ==, 0.0);
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
  char *noisy = cli_test_path ("noisy.png"), *out = cli_test_path ("auto.png"), *err;
  const double sigma = 0.06;

  for (int i = 0; i < 3 * 64 * 48; i++)
    image->pixels[i] = (float) (0.3 + 0.4 * (i % 64) / 64.0
                                + sigma * ddpm_rng_normal (11, 0, i));
  for (int i = 0; i < 64 * 48; i++)
    image->alpha[i] = (float) (i % 5) / 4;
  g_assert_true (ddpm_image_save_png (image, noisy, 16, NULL));
  ddpm_image_free (image);
  g_assert_cmpint (cli_test_run (&err, "denoise", "--model", cli_test_model, "--sigma", "auto",
                             "--steps", "2", noisy, out, NULL), ==, 0);
  const char *at = strstr (err, "σ = ");
  g_assert_nonnull (at);
  g_assert_nonnull (strstr (err, "estimated"));
  double got = g_ascii_strtod (at + strlen ("σ = "), NULL);
  g_test_message ("σ = %g: estimated %g", sigma, got);
  g_assert_cmpfloat (fabs (got / sigma - 1), <, 0.1);
  g_free (err);
  DdpmImage *a = cli_test_load (noisy), *b = cli_test_load (out);
  g_assert_cmpint (b->width, ==, 64);
  g_assert_cmpint (b->height, ==, 48);
  g_assert_nonnull (b->alpha);
  g_assert_cmpfloat (cli_test_max_diff (a->alpha, b->alpha, 64 * 48), <, 0.5 / 255);
  ddpm_image_free (a);
  ddpm_image_free (b);

  char *clean = cli_test_make_input ("clean.png", 3, TRUE);
  g_assert_cmpint (cli_test_run (&err, "denoise", "--model", cli_test_model, "--sigma", "auto",
                             clean, out, NULL), ==, 0);
  g_assert_nonnull (strstr (err, "no noise"));
  g_free (err);
  a = cli_test_load (clean);
  b = cli_test_load (out);
  g_assert_cmpfloat (cli_test_max_diff (a->pixels, b->pixels, 3 * 40 * 36), ==, 0.0);
  g_assert_cmpfloat (cli_test_max_diff (a->alpha, b->alpha, 40 * 36), ==, 0.0);
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
  char *in = cli_test_make_input ("seeds.png", 3, FALSE);
  char *o1 = cli_test_path ("s1.png"), *o2 = cli_test_path ("s2.png"), *o3 = cli_test_path ("s3.png");

  g_assert_cmpint (cli_test_run (NULL, "denoise", "--model", cli_test_model, "--sigma", "0.2",
                             "--sampler", "ddpm", "--steps", "3", "--seed", "1", in, o1,
                             NULL), ==, 0);
  g_assert_cmpint (cli_test_run (NULL, "denoise", "--model", cli_test_model, "--sigma", "0.2",
                             "--sampler", "ddpm", "--steps", "3", "--seed", "1",
                             "--threads", "1", in, o2, NULL), ==, 0);
  g_assert_cmpint (cli_test_run (NULL, "denoise", "--model", cli_test_model, "--sigma", "0.2",
                             "--sampler", "ddpm", "--steps", "3", "--seed", "2", in, o3,
                             NULL), ==, 0);
  DdpmImage *a = cli_test_load (o1), *b = cli_test_load (o2), *c = cli_test_load (o3), *x = cli_test_load (in);
  gsize n = 3 * 40 * 36;
  g_assert_cmpfloat (cli_test_max_diff (a->pixels, b->pixels, n), ==, 0.0);
  g_assert_cmpfloat (cli_test_max_diff (a->pixels, c->pixels, n), >, 0.0);
  g_assert_cmpfloat (cli_test_max_diff (a->pixels, x->pixels, n), >, 0.0);
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
  char *a = cli_test_make_input ("eval-a.png", 3, FALSE), *b = cli_test_make_input ("eval-b.png", 1, FALSE);
  char *out = NULL, *err = NULL;
  char *argv[] = { (char *) g_getenv ("DDPM_CLI"), "denoise-eval", "--model", cli_test_model,
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
  char *in = cli_test_make_input ("in-err.png", 3, FALSE);
  char *out = cli_test_path ("never.png"), *err;
  const char *bad[] = { "0", "-0.1", "25", "abc", "0.1x", "nan" };

  for (gsize k = 0; k < G_N_ELEMENTS (bad); k++)
    {
      g_assert_cmpint (cli_test_run (&err, "denoise", "--model", cli_test_model, "--sigma", bad[k],
                                 in, out, NULL), ==, 2);
      g_assert_nonnull (strstr (err, "--sigma"));
      g_free (err);
    }
  g_assert_cmpint (cli_test_run (&err, "denoise", "--model", cli_test_model, in, out, NULL), ==, 2);
  g_assert_nonnull (strstr (err, "--sigma"));
  g_free (err);
  g_assert_cmpint (cli_test_run (&err, "denoise", "--model", cli_test_model, "--sigma", "0.1",
                             in, NULL), ==, 2);
  g_free (err);
  g_assert_cmpint (cli_test_run (&err, "denoise-eval", "--model", cli_test_model, "--sigma", "10,x",
                             in, NULL), ==, 2);
  g_assert_nonnull (strstr (err, "--sigma"));
  g_free (err);
  g_assert_cmpint (cli_test_run (&err, "denoise-eval", "--model", cli_test_model, NULL), ==, 2);
  g_free (err);
  g_assert_false (g_file_test (out, G_FILE_TEST_EXISTS));
  g_free (in);
  g_free (out);
}

int
main (int argc, char **argv)
{
  int status;

  g_test_init (&argc, &argv, NULL);
  g_assert_nonnull (g_getenv ("DDPM_CLI"));
  cli_test_setup ("cli-denoise");

  g_test_add_func ("/cli/denoise/run", test_denoise);
  g_test_add_func ("/cli/denoise/auto", test_denoise_auto);
  g_test_add_func ("/cli/denoise/seeds", test_denoise_seeds);
  g_test_add_func ("/cli/denoise/eval", test_denoise_eval);
  g_test_add_func ("/cli/denoise/errors", test_errors);
  status = g_test_run ();

  cli_test_teardown ();
  return status;
}
