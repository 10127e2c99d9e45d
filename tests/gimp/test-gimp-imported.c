/* test-gimp-imported.c: a published-architecture model in the real GIMP
 * 2.10, batch mode.
 *
 * Issue #16 is done when "a 256² ADM-architecture model imported from a
 * .pt renoises an image through GIMP batch mode".  The model here is
 * tests/fixtures/adm/adm256-tiny.pt: guided-diffusion's own UNetModel
 * (made by tests/make-adm-fixtures.py) in the 256×256 model's shape — six
 * levels, attention at 32, 16 and 8 by head channels, res-block up and
 * down sampling, scale-shift norm, learned variance, fp16 convolutions —
 * with random weights and few channels.  `ddpm import` turns it into our
 * file with the flags beside it, as a user pastes them; then one
 * gimp-console session (the plug-in installed by tools/install-user into
 * a private profile) renoises, denoises and generates on a 300×260 RGBA
 * image, which takes four 256² tiles that overlap.
 *
 * Random weights predict no picture, so the checks are what must hold of
 * any model: the result has the input's size, its alpha untouched, finite
 * colours that are not black, and at strength 0.05 (t0 = 50 of 1000,
 * √(1 − ᾱ)/√ᾱ ≈ 0.1 on the linear schedule, so the predicted image moves
 * by a tenth of the network's error) it stays close to the input while
 * differing from it.  `ddpm renoise` with the same arguments on the same
 * pixels is the reference for the plug-in's tiling and colour handling.
 *
 * Environment (meson): GIMP_CONSOLE, DDPM_CLI, DDPM_SOURCE_ROOT,
 * DDPM_BUILD_ROOT, G_TEST_BUILDDIR.  The work folder stays in the build
 * directory (tests/gimp/imported) for a look after a failure.
 */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <glib.h>
#include <glib/gstdio.h>
#include "imported-util.h"
#include "../dir-helpers.h"

#define FIXTURE   IMPORTED_FIXTURE
#define WIDTH     IMPORTED_WIDTH
#define HEIGHT    IMPORTED_HEIGHT
#define STRENGTH  "0.05"
#define STEPS     "3"
#define SEED      "11"
#define DDIM      "1"

static gchar *work_dir;
static gchar *model_path;
static gchar *gimp_log;
static gboolean imported;

static gchar *
work_file (const char *name)
{
  return g_build_filename (work_dir, name, NULL);
}

static gchar *
scheme_path (const char *name)
{
  gchar *path = work_file (name);
  gchar *quoted = g_strdup_printf ("\"%s\"", path);

  /* The work folder is ours (the build directory): no quote or backslash. */
  g_assert_null (strpbrk (path, "\"\\"));
  g_free (path);
  return quoted;
}

/* Load `input`, run `body` with img, drw and the model path `model`
 * bound, save to `output`. */
static gchar *
scenario (const char *input, const char *body, const char *output)
{
  gchar *in = scheme_path (input), *out = scheme_path (output);
  gchar *model = g_strdup_printf ("\"%s\"", model_path);
  gchar *cmd = g_strdup_printf (
    "(let* ((img (car (gimp-file-load RUN-NONINTERACTIVE %s %s)))"
    "       (drw (car (gimp-image-get-active-drawable img)))"
    "       (model %s))"
    "  %s"
    "  (gimp-file-save RUN-NONINTERACTIVE img drw %s %s)"
    "  (gimp-image-delete img))",
    in, in, model, body, out, out);

  g_free (in);
  g_free (out);
  g_free (model);
  return cmd;
}

static void
session (void)
{
  const char *src = g_getenv ("DDPM_SOURCE_ROOT");
  gchar *profile = work_file ("profile");
  gchar *xdg = work_file ("xdg");
  gchar **env = g_get_environ ();
  GPtrArray *argv = g_ptr_array_new_with_free_func (g_free);
  gchar *out = NULL, *err = NULL, *log_path;
  int status;
  GError *error = NULL;

  env = g_environ_setenv (env, "GIMP2_DIRECTORY", profile, TRUE);
  env = g_environ_setenv (env, "XDG_DATA_HOME", xdg, TRUE);
  env = g_environ_setenv (env, "XDG_CACHE_HOME", xdg, TRUE);
  env = g_environ_setenv (env, "LC_ALL", "C.UTF-8", TRUE);
  env = g_environ_unsetenv (env, "DDPM_MODEL_DIR");
  env = g_environ_unsetenv (env, "DISPLAY");
  {
    gchar *gradients = g_build_filename (profile, "gradients", NULL);
    gchar *script = g_build_filename (src, "tools", "install-user", NULL);
    const char *install[] = { "/bin/sh", script, g_getenv ("DDPM_BUILD_ROOT"), NULL };

    g_mkdir_with_parents (gradients, 0755);
    g_assert_true (g_spawn_sync (NULL, (char **) install, env, G_SPAWN_DEFAULT, NULL,
                                 NULL, NULL, NULL, &status, &error));
    g_assert_no_error (error);
    g_assert_true (g_spawn_check_wait_status (status, NULL));
    g_free (script);
    g_free (gradients);
  }

#define BATCH(cmd) \
  G_STMT_START { g_ptr_array_add (argv, g_strdup ("-b")); \
                 g_ptr_array_add (argv, (cmd)); } G_STMT_END
  g_ptr_array_add (argv, g_strdup (g_getenv ("GIMP_CONSOLE")));
  g_ptr_array_add (argv, g_strdup ("-i"));
  g_ptr_array_add (argv, g_strdup ("-d"));
  g_ptr_array_add (argv, g_strdup ("-f"));
  BATCH (scenario ("input.png",
    "(plug-in-ddpm-renoise RUN-NONINTERACTIVE img drw model " STRENGTH " " STEPS
    " " SEED " " DDIM " 0)", "renoised.png"));
  BATCH (scenario ("input-alpha.png",
    "(plug-in-ddpm-renoise RUN-NONINTERACTIVE img drw model " STRENGTH " " STEPS
    " " SEED " " DDIM " 0)", "renoised-alpha.png"));
  /* The DDPM sampler: the learned variance (learn_sigma) is used. */
  BATCH (scenario ("input.png",
    "(plug-in-ddpm-renoise RUN-NONINTERACTIVE img drw model " STRENGTH " " STEPS
    " " SEED " 0 0)", "renoised-ddpm.png"));
  /* σ = 10 levels on the [0, 1] scale. */
  BATCH (scenario ("input.png",
    "(plug-in-ddpm-denoise RUN-NONINTERACTIVE img drw model (/ 10 255) " STEPS
    " " SEED " " DDIM " 0)", "denoised.png"));
  /* A whole new image, in a selection spanning two tiles' seam. */
  BATCH (scenario ("input.png",
    "(gimp-image-select-rectangle img CHANNEL-OP-REPLACE 200 20 80 60)"
    "(plug-in-ddpm-generate RUN-NONINTERACTIVE img drw model 2 " SEED " " DDIM " 0)",
    "generated.png"));
  BATCH (g_strdup ("(gimp-quit 0)"));
#undef BATCH
  g_ptr_array_add (argv, NULL);

  if (!g_spawn_sync (work_dir, (char **) argv->pdata, env, G_SPAWN_DEFAULT,
                     NULL, NULL, &out, &err, &status, &error))
    g_error ("cannot run %s: %s", g_getenv ("GIMP_CONSOLE"), error->message);
  gimp_log = g_strconcat (out, err, NULL);
  log_path = work_file ("gimp.log");
  g_file_set_contents (log_path, gimp_log, -1, NULL);
  g_test_message ("GIMP exited with status %d; its output is in %s", status, log_path);

  g_free (log_path);
  g_free (out);
  g_free (err);
  g_ptr_array_free (argv, TRUE);
  g_strfreev (env);
  g_free (xdg);
  g_free (profile);
}

/* ------------------------------------------------------------------ checks */

static ImportedImage *
must_load (const char *name)
{
  gchar *path = work_file (name);
  ImportedImage *image = imported_image_load (path);

  g_free (path);

  if (image == NULL)
    g_test_fail_printf ("%s was not written: the batch command failed (see %s/gimp.log)",
                        name, work_dir);
  return image;
}

/* Near the input but not it: what a small strength must give with any
 * network, over the whole image (every tile and seam). */
static void
assert_low_strength (const char *input, const char *output)
{
  ImportedImage *in = must_load (input), *out = must_load (output);

  if (in != NULL && out != NULL)
    {
      ImportedDiff d = imported_diff (in, out, 0, 0, in->width, in->height);
      gsize n = (gsize) in->width * in->height;

      g_test_message ("%s: mean |d| %.2f, max |d| %.0f, correlation %.4f, "
                      "%" G_GSIZE_FORMAT " of %" G_GSIZE_FORMAT " pixels changed",
                      output, d.mean_abs, d.max_abs, d.correlation, d.changed, n);
      g_assert_cmpuint (d.alpha_changed, ==, 0);
      g_assert_cmpuint (d.changed, >, n / 2);
      g_assert_cmpfloat (d.b_mean, >, 20.0);      /* not black */
      g_assert_cmpfloat (d.mean_abs, >, 0.5);
      g_assert_cmpfloat (d.mean_abs, <, 40.0);
      g_assert_cmpfloat (d.correlation, >, 0.8);
    }
  imported_image_free (in);
  imported_image_free (out);
}

static void
test_import (void)
{
  g_assert_true (imported);
  g_assert_true (g_file_test (model_path, G_FILE_TEST_IS_REGULAR));
  g_assert_null (strstr (gimp_log, "execution error"));
}

static void
test_renoise (void)
{
  assert_low_strength ("input.png", "renoised.png");
}

static void
test_renoise_alpha (void)
{
  assert_low_strength ("input-alpha.png", "renoised-alpha.png");
}

static void
test_renoise_ddpm (void)
{
  assert_low_strength ("input.png", "renoised-ddpm.png");
}

static void
test_denoise (void)
{
  assert_low_strength ("input.png", "denoised.png");
}

/* `ddpm renoise` on the same pixels with the same arguments: the same
 * engine run, so the plug-in's tiles, seams and colour conversion must
 * give the same picture: up to a level, in a few values where the tiles
 * overlap and the two blend with sums in another order (3 of 234 000 in
 * GIMP 3, where the same holds). */
static void
test_renoise_matches_cli (void)
{
  gchar *in = work_file ("input.png"), *out = work_file ("cli-renoised.png");
  const char *argv[] = { g_getenv ("DDPM_CLI"), "renoise", "--model", model_path,
                         "--strength", STRENGTH, "--steps", STEPS, "--seed", SEED,
                         "--sampler", "ddim", in, out, NULL };
  ImportedImage *cli, *plugin;

  g_assert_true (imported_run (work_dir, argv));
  cli = must_load ("cli-renoised.png");
  plugin = must_load ("renoised.png");
  if (cli != NULL && plugin != NULL)
    {
      ImportedDiff d = imported_diff (cli, plugin, 0, 0, cli->width, cli->height);

      g_test_message ("plug-in against ddpm renoise: max |d| %.0f in %" G_GSIZE_FORMAT " pixels",
                      d.max_abs, d.changed);
      g_assert_cmpfloat (d.max_abs, <=, 1.0);
      g_assert_cmpuint (d.changed, <=, (gsize) cli->width * cli->height / 1000);
    }
  imported_image_free (cli);
  imported_image_free (plugin);
  g_free (in);
  g_free (out);
}

/* Generation replaces the selection and leaves the rest. */
static void
test_generate_selection (void)
{
  ImportedImage *in = must_load ("input.png"), *out = must_load ("generated.png");

  if (in != NULL && out != NULL)
    {
      ImportedDiff inside = imported_diff (in, out, 200, 20, 80, 60);
      ImportedDiff above = imported_diff (in, out, 0, 0, WIDTH, 20);
      ImportedDiff below = imported_diff (in, out, 0, 80, WIDTH, HEIGHT - 80);
      ImportedDiff left = imported_diff (in, out, 0, 20, 200, 60);

      g_test_message ("generated: mean |d| %.1f inside, correlation %.3f",
                      inside.mean_abs, inside.correlation);
      g_assert_cmpuint (inside.changed, >, 80 * 60 * 9 / 10);
      g_assert_cmpfloat (inside.b_mean, >, 5.0);
      g_assert_cmpuint (above.changed + below.changed + left.changed, ==, 0);
    }
  imported_image_free (in);
  imported_image_free (out);
}

int
main (int argc, char **argv)
{
  int result;

  g_test_init (&argc, &argv, NULL);
  if (g_getenv ("GIMP_CONSOLE") == NULL || g_getenv ("DDPM_CLI") == NULL)
    {
      g_test_skip ("run through meson test (tests/gimp/meson.build)");
      return g_test_run ();
    }
  work_dir = g_build_filename (g_getenv ("G_TEST_BUILDDIR"), "imported", NULL);
  g_assert_true (test_remove_tree (work_dir));
  g_assert_cmpint (g_mkdir_with_parents (work_dir, 0755), ==, 0);
  model_path = work_file (FIXTURE ".safetensors");
  imported_write_inputs (work_dir);
  imported = imported_import_fixture (model_path);
  session ();

  g_test_add_func ("/gimp-imported/import", test_import);
  g_test_add_func ("/gimp-imported/renoise", test_renoise);
  g_test_add_func ("/gimp-imported/renoise-alpha", test_renoise_alpha);
  g_test_add_func ("/gimp-imported/renoise-ddpm", test_renoise_ddpm);
  g_test_add_func ("/gimp-imported/renoise-matches-cli", test_renoise_matches_cli);
  g_test_add_func ("/gimp-imported/denoise", test_denoise);
  g_test_add_func ("/gimp-imported/generate-selection", test_generate_selection);
  result = g_test_run ();

  g_free (gimp_log);
  g_free (model_path);
  g_free (work_dir);
  return result;
}
