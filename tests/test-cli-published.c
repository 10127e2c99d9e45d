/* test-cli-published.c: the commands on published-architecture models,
 * imported from the guided-diffusion fixtures of test-adm.c with
 * `ddpm import`, as a user runs them:
 *
 *   `ddpm forward`: an .npy batch in, the network's raw output out, equal
 *   to the in-process ddpm_model_forward; wrong timestep counts, shapes and
 *   labels refused with a message naming them, and nothing written.
 *
 *   `--class`: below −1, beyond the model's classes, or given to an
 *   unconditional model: refused (an error, not a warning), nothing
 *   written; −1 means none.
 *
 *   `ddpm sample --sampler ddpm` on a learn_sigma model draws with the
 *   learned variance: the PNG is the in-process run with the model's
 *   denoise_v, and differs from the same run with the fixed variance.
 */
#include <math.h>
#include <stdarg.h>
#include <string.h>

#include <glib/gstdio.h>

#include "ddpm.h"
#include "cli-helpers.h"
#include "dir-helpers.h"

static char *tmp_dir;
static char *sigma_model;   /* learn_sigma, unconditional, 32² */
static char *class_model;   /* class-conditional (1000 classes), 32² */

static char *
tmp_path (const char *file)
{
  return g_build_filename (tmp_dir, file, NULL);
}

static char *
import_fixture (const char *name)
{
  char *base = g_strconcat (name, ".pt", NULL);
  char *src = g_test_build_filename (G_TEST_DIST, "fixtures", "adm", base, NULL);
  char *flags_base = g_strconcat (name, ".flags", NULL);
  char *flags_path = g_test_build_filename (G_TEST_DIST, "fixtures", "adm", flags_base, NULL);
  char *out_base = g_strconcat (name, ".safetensors", NULL);
  char *out = tmp_path (out_base), *text = NULL, *err = NULL;
  GPtrArray *argv = g_ptr_array_new ();
  int status;

  g_assert_true (g_file_get_contents (flags_path, &text, NULL, NULL));
  char **flags = g_strsplit_set (g_strstrip (text), " ", -1);
  g_ptr_array_add (argv, (char *) g_getenv ("DDPM_CLI"));
  g_ptr_array_add (argv, "import");
  g_ptr_array_add (argv, src);
  g_ptr_array_add (argv, "--out");
  g_ptr_array_add (argv, out);
  for (int i = 0; flags[i] != NULL; i++)
    g_ptr_array_add (argv, flags[i]);
  g_ptr_array_add (argv, NULL);
  g_assert_true (g_spawn_sync (NULL, (char **) argv->pdata, NULL, G_SPAWN_STDOUT_TO_DEV_NULL,
                               NULL, NULL, NULL, &err, &status, NULL));
  if (!g_spawn_check_wait_status (status, NULL))
    g_error ("ddpm import %s failed: %s", name, err);
  g_ptr_array_free (argv, TRUE);
  g_strfreev (flags);
  g_free (err);
  g_free (text);
  g_free (flags_path);
  g_free (flags_base);
  g_free (src);
  g_free (base);
  g_free (out_base);
  return out;
}

/* np.save of a float32 (B, C, H, W) array, as numpy writes it (format 1.0,
 * header padded to 64 bytes). */
static void
npy_save (const char *path, const int shape[4], const float *data)
{
  char *dict = g_strdup_printf ("{'descr': '<f4', 'fortran_order': False, "
                                "'shape': (%d, %d, %d, %d), }",
                                shape[0], shape[1], shape[2], shape[3]);
  gsize hl = strlen (dict) + 1, pad = (64 - (10 + hl) % 64) % 64;
  gsize count = (gsize) shape[0] * shape[1] * shape[2] * shape[3];
  GString *s = g_string_new (NULL);

  g_string_append_len (s, "\x93NUMPY\x01\x00", 8);
  g_string_append_c (s, (char) ((hl + pad) & 0xff));
  g_string_append_c (s, (char) ((hl + pad) >> 8));
  g_string_append (s, dict);
  for (gsize i = 0; i < pad; i++)
    g_string_append_c (s, ' ');
  g_string_append_c (s, '\n');
  g_string_append_len (s, (const char *) data, count * sizeof (float));
  g_assert_true (g_file_set_contents (path, s->str, s->len, NULL));
  g_string_free (s, TRUE);
  g_free (dict);
}

/* The floats of an .npy file written by `ddpm forward`, its shape checked
 * the way numpy would read it. */
static float *
npy_load (const char *path, const int shape[4])
{
  char *bytes = NULL;
  gsize len;

  g_assert_true (g_file_get_contents (path, &bytes, &len, NULL));
  g_assert_cmpint (memcmp (bytes, "\x93NUMPY\x01\x00", 8), ==, 0);
  gsize hl = (guint8) bytes[8] | (gsize) (guint8) bytes[9] << 8;
  g_assert_cmpuint ((10 + hl) % 64, ==, 0);
  char *header = g_strndup (bytes + 10, hl);
  char *want = g_strdup_printf ("'shape': (%d, %d, %d, %d)", shape[0], shape[1], shape[2],
                                shape[3]);
  g_assert_nonnull (strstr (header, "'descr': '<f4'"));
  g_assert_nonnull (strstr (header, want));
  gsize count = (gsize) shape[0] * shape[1] * shape[2] * shape[3];
  g_assert_cmpuint (len, ==, 10 + hl + count * sizeof (float));
  float *data = g_memdup2 (bytes + 10 + hl, count * sizeof (float));
  g_free (want);
  g_free (header);
  g_free (bytes);
  return data;
}

static void
expect_refused (const char *out, const char *needle, ...)
{
  /* the arguments after needle: the command line, NULL-terminated */
  va_list ap;
  GPtrArray *argv = g_ptr_array_new ();
  char *err = NULL;
  int status;

  g_ptr_array_add (argv, (char *) g_getenv ("DDPM_CLI"));
  va_start (ap, needle);
  for (const char *a = va_arg (ap, const char *); a != NULL; a = va_arg (ap, const char *))
    g_ptr_array_add (argv, (char *) a);
  va_end (ap);
  g_ptr_array_add (argv, NULL);
  g_assert_true (g_spawn_sync (NULL, (char **) argv->pdata, NULL, G_SPAWN_STDOUT_TO_DEV_NULL,
                               NULL, NULL, NULL, &err, &status, NULL));
  g_test_message ("%s", err);
  g_assert_false (g_spawn_check_wait_status (status, NULL));
  if (strstr (err, needle) == NULL)
    g_error ("“%s” not in the error “%s”", needle, err);
  g_assert_false (g_file_test (out, G_FILE_TEST_EXISTS));
  g_ptr_array_free (argv, TRUE);
  g_free (err);
}

static void
test_forward (void)
{
  const int shape[4] = { 2, 3, 32, 32 }, out_shape[4] = { 2, 6, 32, 32 };
  const gsize nx = 2 * 3 * 32 * 32, ny = 2 * 6 * 32 * 32;
  char *in = tmp_path ("x.npy"), *out = tmp_path ("y.npy");
  float *x = g_new (float, nx), *ref = g_new (float, ny);
  GError *error = NULL;

  ddpm_rng_normal_fill (x, nx, 4, 0, 0);
  npy_save (in, shape, x);
  g_assert_cmpint (cli_test_run (NULL, "forward", sigma_model, "--input", in, "--t", "7,913",
                                 "--out", out, "--threads", "1", NULL), ==, 0);
  float *y = npy_load (out, out_shape);

  DdpmModel *model = ddpm_model_load (sigma_model, &error);
  g_assert_no_error (error);
  const int t[2] = { 7, 913 };
  g_assert_true (ddpm_model_forward (model, ref, x, t, NULL, 2, 3, 32, 32, 1, &error));
  g_assert_no_error (error);
  double diff = cli_test_max_diff (y, ref, ny), max_ref = 0;
  for (gsize i = 0; i < ny; i++)
    max_ref = MAX (max_ref, fabs (ref[i]));
  g_assert_cmpfloat (max_ref, >, 0.1);
  g_assert_cmpfloat (diff, ==, 0.0);
  /* one timestep for every image: image 1 at t = 7 too */
  g_assert_cmpint (cli_test_run (NULL, "forward", sigma_model, "--input", in, "--t", "7",
                                 "--out", out, "--threads", "1", NULL), ==, 0);
  g_free (y);
  y = npy_load (out, out_shape);
  const int t7[2] = { 7, 7 };
  g_assert_true (ddpm_model_forward (model, ref, x, t7, NULL, 2, 3, 32, 32, 1, &error));
  g_assert_cmpfloat (cli_test_max_diff (y, ref, ny), ==, 0.0);
  g_unlink (out);

  /* errors: nothing written */
  expect_refused (out, "--t", "forward", sigma_model, "--input", in, "--t", "1,2,3",
                  "--out", out, NULL);
  expect_refused (out, "0..999", "forward", sigma_model, "--input", in, "--t", "1000",
                  "--out", out, NULL);
  expect_refused (out, "not class-conditional", "forward", sigma_model, "--input", in,
                  "--t", "5", "--class", "3", "--out", out, NULL);
  const int gray[4] = { 2, 1, 32, 32 }, odd[4] = { 1, 3, 30, 30 };
  npy_save (in, gray, x);
  expect_refused (out, "3 channels, not 1", "forward", sigma_model, "--input", in, "--t", "5",
                  "--out", out, NULL);
  npy_save (in, odd, x);
  expect_refused (out, "multiples of 4", "forward", sigma_model, "--input", in, "--t", "5",
                  "--out", out, NULL);
  g_assert_true (g_file_set_contents (in, "not numpy", -1, NULL));
  expect_refused (out, "not a NumPy .npy file", "forward", sigma_model, "--input", in,
                  "--t", "5", "--out", out, NULL);

  ddpm_model_free (model);
  g_free (x);
  g_free (y);
  g_free (ref);
  g_free (in);
  g_free (out);
}

static void
test_class (void)
{
  char *out = tmp_path ("class.png"), *in = tmp_path ("class-x.npy");
  char *npy_out = tmp_path ("class-y.npy");
  const int shape[4] = { 1, 3, 32, 32 };
  float x[3 * 32 * 32] = { 0 };

  expect_refused (out, "Class label -5 is not a class", "sample", "--model", class_model,
                  "--class", "-5", "--steps", "1", "--out", out, NULL);
  expect_refused (out, "outside the model's 0 to 999", "sample", "--model", class_model,
                  "--class", "1000", "--steps", "1", "--out", out, NULL);
  expect_refused (out, "class-conditional: give a class label", "sample", "--model",
                  class_model, "--steps", "1", "--out", out, NULL);
  expect_refused (out, "not class-conditional", "sample", "--model", sigma_model,
                  "--class", "3", "--steps", "1", "--out", out, NULL);
  npy_save (in, shape, x);
  expect_refused (npy_out, "--class", "forward", class_model, "--input", in, "--t", "5",
                  "--class", "-1", "--out", npy_out, NULL);
  expect_refused (npy_out, "outside the model's 0 to 999", "forward", class_model, "--input",
                  in, "--t", "5", "--class", "1000", "--out", npy_out, NULL);

  /* a label in range, and −1 ("none") on an unconditional model */
  g_assert_cmpint (cli_test_run (NULL, "sample", "--model", class_model, "--class", "998",
                                 "--steps", "1", "--out", out, NULL), ==, 0);
  g_assert_true (g_file_test (out, G_FILE_TEST_EXISTS));
  g_unlink (out);
  g_assert_cmpint (cli_test_run (NULL, "sample", "--model", sigma_model, "--class", "-1",
                                 "--steps", "1", "--out", out, NULL), ==, 0);
  g_assert_true (g_file_test (out, G_FILE_TEST_EXISTS));
  g_unlink (out);
  g_free (out);
  g_free (in);
  g_free (npy_out);
}

/* The in-process `ddpm sample` on the [0, 1] scale: zeros in (unused at
 * strength 1), the model's denoiser with or without its learned variance. */
static float *
sample_in_process (gboolean learned, const DdpmSampleParams *p)
{
  GError *error = NULL;
  DdpmModel *model = ddpm_model_load (sigma_model, &error);
  DdpmDenoiser d;
  const gsize n = 3 * 32 * 32;
  float *img = g_new (float, n);

  g_assert_no_error (error);
  ddpm_model_get_denoiser (model, 0, &d);
  g_assert_true (d.denoise_v != NULL);
  if (!learned)
    d.denoise_v = NULL;
  for (gsize i = 0; i < n; i++)
    img[i] = -1.0f;
  g_assert_true (ddpm_img2img (img, NULL, 3, 32, 32, ddpm_model_get_schedule (model), &d, p,
                               &error));
  g_assert_no_error (error);
  for (gsize i = 0; i < n; i++)
    img[i] = CLAMP (0.5f * (img[i] + 1.0f), 0.0f, 1.0f);
  ddpm_model_free (model);
  return img;
}

static void
test_sample_learned_variance (void)
{
  char *out = tmp_path ("ddpm.png");
  DdpmSampleParams p;
  const gsize n = 3 * 32 * 32;

  g_assert_cmpint (cli_test_run (NULL, "sample", "--model", sigma_model, "--sampler", "ddpm",
                                 "--steps", "6", "--seed", "11", "--out", out, NULL), ==, 0);
  DdpmImage *png = cli_test_load (out);
  ddpm_sample_params_init (&p);
  p.sampler = DDPM_SAMPLER_DDPM;
  p.steps = 6;
  p.seed = 11;
  float *learned = sample_in_process (TRUE, &p), *fixed = sample_in_process (FALSE, &p);
  double d_learned = cli_test_max_diff (png->pixels, learned, n);
  double d_fixed = cli_test_max_diff (png->pixels, fixed, n);
  double mean_fixed = 0;
  for (gsize i = 0; i < n; i++)
    mean_fixed += fabs (png->pixels[i] - fixed[i]) / n;
  g_test_message ("PNG against learned: max %.4f; against fixed: max %.4f, mean %.4f",
                  d_learned, d_fixed, mean_fixed);
  /* 8-bit rounding */
  g_assert_cmpfloat (d_learned, <=, 0.5 / 255 + 1e-6);
  g_assert_cmpfloat (mean_fixed, >, 2.0 / 255);
  ddpm_image_free (png);
  g_free (learned);
  g_free (fixed);
  g_free (out);
}

int
main (int argc, char **argv)
{
  int status;

  g_test_init (&argc, &argv, NULL);
  tmp_dir = g_dir_make_tmp ("ddpm-cli-published-XXXXXX", NULL);
  g_assert_nonnull (tmp_dir);
  sigma_model = import_fixture ("headch-updown-sigma-fp16");
  class_model = import_fixture ("six-levels-class");
  g_test_add_func ("/cli/published/forward", test_forward);
  g_test_add_func ("/cli/published/class", test_class);
  g_test_add_func ("/cli/published/sample-learned-variance", test_sample_learned_variance);
  status = g_test_run ();
  g_unlink (sigma_model);
  g_unlink (class_model);
  /* the inputs the cases leave behind go with it */
  g_assert_true (test_remove_tree (tmp_dir));
  g_free (sigma_model);
  g_free (class_model);
  g_free (tmp_dir);
  return status;
}
