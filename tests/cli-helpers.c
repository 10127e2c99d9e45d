/* cli-helpers.c: shared by test-cli-sampling.c and test-cli-denoise.c. */
#include <math.h>
#include <sys/wait.h>

#include "cli-helpers.h"

char *cli_test_model;
static char *tmp_dir;

char *
cli_test_path (const char *file)
{
  return g_build_filename (tmp_dir, file, NULL);
}

static int
run_va (char **out_text, char **err, va_list ap)
{
  GPtrArray *argv = g_ptr_array_new ();
  const char *arg;
  int status = -1;
  char *out = NULL, *err_text = NULL;
  GError *error = NULL;

  g_assert_nonnull (g_getenv ("DDPM_CLI"));
  g_ptr_array_add (argv, (char *) g_getenv ("DDPM_CLI"));
  while ((arg = va_arg (ap, const char *)) != NULL)
    g_ptr_array_add (argv, (char *) arg);
  g_ptr_array_add (argv, NULL);
  g_spawn_sync (NULL, (char **) argv->pdata, NULL, G_SPAWN_DEFAULT, NULL, NULL,
                &out, &err_text, &status, &error);
  g_assert_no_error (error);
  g_test_message ("%s", err_text);
  if (err)
    *err = err_text;
  else
    g_free (err_text);
  if (out_text)
    *out_text = out;
  else
    g_free (out);
  g_ptr_array_free (argv, TRUE);
  return WIFEXITED (status) ? WEXITSTATUS (status) : -1;
}

int
cli_test_run (char **err, ...)
{
  va_list ap;
  int status;

  va_start (ap, err);
  status = run_va (NULL, err, ap);
  va_end (ap);
  return status;
}

int
cli_test_run_capture (char **out, char **err, ...)
{
  va_list ap;
  int status;

  va_start (ap, err);
  status = run_va (out, err, ap);
  va_end (ap);
  return status;
}

DdpmImage *
cli_test_load (const char *path)
{
  GError *error = NULL;
  DdpmImage *image = ddpm_image_load (path, &error);

  g_assert_no_error (error);
  return image;
}

char *
cli_test_make_input (const char *file, int channels, gboolean with_alpha)
{
  DdpmImage *image = ddpm_image_new (40, 36, channels, with_alpha);
  char *path = cli_test_path (file);
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

double
cli_test_max_diff (const float *a, const float *b, gsize n)
{
  double m = 0;

  for (gsize i = 0; i < n; i++)
    m = MAX (m, fabs (a[i] - b[i]));
  return m;
}

void
cli_test_setup (const char *name)
{
  GError *error = NULL;
  char *template = g_strdup_printf ("ddpm-%s-XXXXXX", name);

  tmp_dir = g_dir_make_tmp (template, &error);
  g_assert_no_error (error);
  g_free (template);

  char *train_image = cli_test_make_input ("train.png", 3, FALSE);
  cli_test_model = cli_test_path ("model.safetensors");
  g_assert_cmpint (cli_test_run (NULL, "train", train_image, "--preset", "tiny", "--steps", "2",
                                 "--batch", "2", "--out", cli_test_model, NULL), ==, 0);
  g_free (train_image);
}

void
cli_test_teardown (void)
{
  char *rm[] = { "rm", "-rf", tmp_dir, NULL };

  g_spawn_sync (NULL, rm, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL, NULL, NULL, NULL, NULL);
  g_clear_pointer (&cli_test_model, g_free);
  g_clear_pointer (&tmp_dir, g_free);
}
