/* test-cli.c: the `ddpm` command as a user runs it: output format,
 * values, and clear errors with a non-zero exit for bad arguments.  The
 * binary's path comes from the DDPM_CLI environment variable (meson). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <glib.h>
#include <glib/gstdio.h>

#include "cli-helpers.h"

/* The acceptance check: the CSV's header names the columns and its
 * last row (t = 1000) has ᾱ ≈ 4.04e-5. */
static void
test_schedule_csv (void)
{
  char *out, *err;
  int status = cli_test_run_capture (&out, &err, "schedule", "--schedule", "linear",
                         "--timesteps", "1000", "--csv", NULL);

  g_assert_cmpint (status, ==, 0);
  char **lines = g_strsplit (g_strchomp (out), "\n", -1);
  g_assert_cmpuint (g_strv_length (lines), ==, 1001);

  char **header = g_strsplit (lines[0], ",", -1);
  int col_t = -1, col_ab = -1, col_beta = -1, col_pv = -1;
  for (int i = 0; header[i]; i++)
    {
      if (!strcmp (header[i], "t")) col_t = i;
      if (!strcmp (header[i], "alpha_bar")) col_ab = i;
      if (!strcmp (header[i], "beta")) col_beta = i;
      if (!strcmp (header[i], "posterior_variance")) col_pv = i;
    }
  g_assert_cmpint (col_t, ==, 0);
  g_assert_cmpint (col_ab, >, 0);
  g_assert_cmpint (col_beta, >, 0);
  g_assert_cmpint (col_pv, >, 0);

  char **first = g_strsplit (lines[1], ",", -1);
  char **last = g_strsplit (lines[1000], ",", -1);
  g_assert_cmpstr (first[col_t], ==, "1");
  g_assert_cmpstr (last[col_t], ==, "1000");
  g_assert_cmpfloat_with_epsilon (g_ascii_strtod (first[col_beta], NULL), 1e-4, 1e-12);
  g_assert_cmpfloat_with_epsilon (g_ascii_strtod (last[col_beta], NULL), 0.02, 1e-12);
  double ab = g_ascii_strtod (last[col_ab], NULL);
  g_assert_cmpfloat (fabs (ab - 4.04e-5), <, 0.01e-5);

  g_strfreev (first);
  g_strfreev (last);
  g_strfreev (header);
  g_strfreev (lines);
  g_free (out);
  g_free (err);
}

static void
test_respaced_table (void)
{
  char *out, *err;
  int status = cli_test_run_capture (&out, &err, "schedule", "--schedule", "cosine", "--steps", "10",
                         "--csv", NULL);

  g_assert_cmpint (status, ==, 0);
  char **lines = g_strsplit (g_strchomp (out), "\n", -1);
  g_assert_cmpuint (g_strv_length (lines), ==, 11);
  char **last = g_strsplit (lines[10], ",", -1);
  g_assert_cmpstr (last[0], ==, "10");
  g_assert_cmpstr (last[1], ==, "1000"); /* the base timestep of the last step */
  g_strfreev (last);
  g_strfreev (lines);
  g_free (out);
  g_free (err);
}

/* Bad arguments: a message that names the problem, exit status 2. */
static void
test_errors (void)
{
  const char *cases[][4] = {
    { "schedule", "--schedule", "quadratic", "unknown schedule" },
    { "schedule", "--timesteps", "0", "between 1 and" },
    { "schedule", "--timesteps", "abc", "abc" },
    { "schedule", "--steps", "5000", "5000 steps" },
    { "frobnicate", NULL, NULL, "unknown command" },
  };

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      char *out, *err;
      int status = cases[i][1]
                   ? cli_test_run_capture (&out, &err, cases[i][0], cases[i][1], cases[i][2], NULL)
                   : cli_test_run_capture (&out, &err, cases[i][0], NULL);
      char *lower = g_ascii_strdown (err, -1);

      g_test_message ("%s → %s", cases[i][0], err);
      g_assert_cmpint (status, ==, 2);
      g_assert_nonnull (strstr (lower, cases[i][3]));
      g_free (lower);
      g_free (out);
      g_free (err);
    }
}

static void
test_help_and_version (void)
{
  char *out, *err;

  g_assert_cmpint (cli_test_run_capture (&out, &err, "--version", NULL), ==, 0);
  g_assert_true (g_str_has_prefix (out, "ddpm "));
  g_free (out);
  g_free (err);
  g_assert_cmpint (cli_test_run_capture (&out, &err, "--help", NULL), ==, 0);
  g_assert_nonnull (strstr (out, "schedule"));
  g_free (out);
  g_free (err);
  g_assert_cmpint (cli_test_run_capture (&out, &err, "schedule", "--help", NULL), ==, 0);
  g_assert_nonnull (strstr (out, "--timesteps"));
  g_free (out);
  g_free (err);
}

/* `ddpm import` sends a folder to the diffusers importer and a file to the
 * guided-diffusion one, writes a model `ddpm info` reads, and refuses
 * guided-diffusion flags on a folder without writing anything. */
static void
test_import_dispatch (void)
{
  GError *error = NULL;
  char *dir = g_dir_make_tmp ("ddpm-cli-import-XXXXXX", &error);
  g_assert_no_error (error);
  char *folder = g_test_build_filename (G_TEST_DIST, "fixtures", "diffusers", "cifar", NULL);
  char *pt = g_test_build_filename (G_TEST_DIST, "fixtures", "adm", "heads-conv.pt", NULL);
  char *from_folder = g_build_filename (dir, "folder.safetensors", NULL);
  char *from_pt = g_build_filename (dir, "pt.safetensors", NULL);
  char *refused = g_build_filename (dir, "refused.safetensors", NULL);
  char *out, *err;

  g_assert_cmpint (cli_test_run_capture (&out, &err, "import", folder, "--out", from_folder,
                                         NULL), ==, 0);
  g_free (out);
  g_free (err);
  g_assert_cmpint (cli_test_run_capture (&out, &err, "info", from_folder, NULL), ==, 0);
  g_assert_nonnull (strstr (out, "ch: 32"));
  g_free (out);
  g_free (err);

  g_assert_cmpint (cli_test_run_capture (&out, &err, "import", pt, "--out", from_pt,
                                         "--attention_resolutions", "16,8",
                                         "--channel_mult", "1,1,1", "--image_size", "32",
                                         "--num_channels", "32", "--num_heads", "2",
                                         "--num_res_blocks", "1", "--use_scale_shift_norm", "False",
                                         NULL), ==, 0);
  g_free (out);
  g_free (err);
  g_assert_true (g_file_test (from_pt, G_FILE_TEST_IS_REGULAR));

  g_assert_cmpint (cli_test_run_capture (&out, &err, "import", folder, "--out", refused,
                                         "--image_size", "32", NULL), ==, 2);
  g_assert_nonnull (strstr (err, "diffusers folder"));
  g_assert_nonnull (strstr (err, "--image_size"));
  g_assert_false (g_file_test (refused, G_FILE_TEST_EXISTS));
  g_free (out);
  g_free (err);

  g_remove (from_folder);
  g_remove (from_pt);
  g_rmdir (dir);
  g_free (refused);
  g_free (from_pt);
  g_free (from_folder);
  g_free (pt);
  g_free (folder);
  g_free (dir);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/cli/schedule-csv", test_schedule_csv);
  g_test_add_func ("/cli/respaced-table", test_respaced_table);
  g_test_add_func ("/cli/errors", test_errors);
  g_test_add_func ("/cli/help-and-version", test_help_and_version);
  g_test_add_func ("/cli/import-dispatch", test_import_dispatch);
  return g_test_run ();
}
