/* test-gimp3-imported.c: a published-architecture model in the real GIMP
 * 3.0, batch mode (gimp-console-3.0, Script-Fu 3).
 *
 * The GIMP 3 half of tests/gimp/test-gimp-imported.c: the 256² ADM-shaped
 * tests/fixtures/adm/adm256-tiny.pt, imported by `ddpm import` with its
 * own flags, renoises a 300×260 picture (four overlapping 256² tiles)
 * through plug-in-ddpm-renoise with the model given as a file.  The
 * oracle is the command line, as in test-gimp3.c: `ddpm renoise` runs the
 * same engine call on the same planes, so the plug-in's output must
 * equal it on opaque 8-bit RGB (to a level, in a few values where the
 * tiles overlap); with alpha, the alpha must
 * come back untouched.  The profile ($DDPM_GIMP3_PROFILE) is shared with
 * the other GIMP 3 suites, so only the first run pays for GIMP's first
 * start.
 *
 * Environment (meson): GIMP_CONSOLE, DDPM_CLI, DDPM_SOURCE_ROOT,
 * DDPM_BUILD_ROOT, DDPM_GIMP3_PROFILE, G_TEST_BUILDDIR.
 */
#include "config.h"

#include <errno.h>
#include <string.h>

#include <glib.h>
#include <glib/gstdio.h>

#include "imported-util.h"

#define STRENGTH "0.05"
#define STEPS    "3"
#define SEED     "11"

static gchar *work_dir;
static gchar *model_path;
static gchar *gimp_log;
static gboolean imported, session_ok;

static gchar *
work_file (const char *name)
{
  return g_build_filename (work_dir, name, NULL);
}

static gchar **
session_env (void)
{
  gchar *xdg = work_file ("xdg"), *home = work_file ("home");
  gchar **env = g_get_environ ();

  env = g_environ_setenv (env, "GIMP3_DIRECTORY", g_getenv ("DDPM_GIMP3_PROFILE"), TRUE);
  env = g_environ_setenv (env, "HOME", home, TRUE);
  env = g_environ_setenv (env, "XDG_DATA_HOME", xdg, TRUE);
  env = g_environ_setenv (env, "LC_ALL", "C.UTF-8", TRUE);
  env = g_environ_unsetenv (env, "LANGUAGE");
  env = g_environ_unsetenv (env, "DDPM_MODEL_DIR");
  env = g_environ_unsetenv (env, "DISPLAY");
  g_mkdir_with_parents (home, 0755);
  g_mkdir_with_parents (g_getenv ("DDPM_GIMP3_PROFILE"), 0755);
  g_free (xdg);
  g_free (home);
  return env;
}

/* Load `input`, renoise it with the imported model, save to `output`. */
static gchar *
renoise (const char *input, const char *output)
{
  gchar *in = work_file (input), *out = work_file (output);
  gchar *cmd = g_strdup_printf (
    "(let* ((img (car (gimp-file-load RUN-NONINTERACTIVE \"%s\")))"
    "       (drw (vector-ref (car (gimp-image-get-selected-drawables img)) 0)))"
    "  (plug-in-ddpm-renoise #:run-mode RUN-NONINTERACTIVE #:image img"
    "   #:drawables (vector drw) #:model \"%s\" #:strength " STRENGTH
    "   #:steps " STEPS " #:seed " SEED " #:sampler \"ddim\")"
    "  (gimp-file-save RUN-NONINTERACTIVE img \"%s\" -1)"
    "  (gimp-image-delete img))",
    in, model_path, out);

  g_free (in);
  g_free (out);
  return cmd;
}

static void
run_session (void)
{
  gchar **env = session_env ();
  gchar *install = g_build_filename (g_getenv ("DDPM_SOURCE_ROOT"), "tools",
                                     "install-user", NULL);
  const char *iargv[] = { "/bin/sh", install, g_getenv ("DDPM_BUILD_ROOT"), NULL };
  GPtrArray *argv = g_ptr_array_new_with_free_func (g_free);
  gchar *err = NULL;
  int status = -1;

  g_assert_true (g_spawn_sync (NULL, (char **) iargv, env, G_SPAWN_STDOUT_TO_DEV_NULL,
                               NULL, NULL, NULL, NULL, &status, NULL)
                 && g_spawn_check_wait_status (status, NULL));

  for (const char *const *a = (const char *const[]) {
         "timeout", "540", g_getenv ("GIMP_CONSOLE"), "-i", "-d", "-f", "--quit",
         "--batch-interpreter=plug-in-script-fu-eval", NULL };
       *a; a++)
    g_ptr_array_add (argv, g_strdup (*a));
  g_ptr_array_add (argv, g_strdup ("-b"));
  g_ptr_array_add (argv, renoise ("input.png", "renoised.png"));
  g_ptr_array_add (argv, g_strdup ("-b"));
  g_ptr_array_add (argv, renoise ("input-alpha.png", "renoised-alpha.png"));
  g_ptr_array_add (argv, NULL);

  session_ok = g_spawn_sync (work_dir, (char **) argv->pdata, env, G_SPAWN_SEARCH_PATH
                             | G_SPAWN_STDOUT_TO_DEV_NULL, NULL, NULL, NULL, &err,
                             &status, NULL);
  g_file_set_contents (gimp_log, err ? err : "", -1, NULL);
  session_ok = session_ok && g_spawn_check_wait_status (status, NULL);
  if (!session_ok)
    g_test_message ("gimp-console-3.0 failed (status %d): see %s", status, gimp_log);

  g_free (err);
  g_ptr_array_free (argv, TRUE);
  g_free (install);
  g_strfreev (env);
}

static ImportedImage *
must_load (const char *name)
{
  gchar *path = work_file (name);
  ImportedImage *image = imported_image_load (path);

  if (image == NULL)
    g_test_fail_printf ("%s was not written (see %s)", path, gimp_log);
  g_free (path);
  return image;
}

static void
test_session (void)
{
  g_assert_true (imported);
  g_assert_true (session_ok);
}

static void
test_renoise_same_as_cli (void)
{
  ImportedImage *cli = must_load ("cli-renoised.png");
  ImportedImage *out = must_load ("renoised.png");
  ImportedImage *in = must_load ("input.png");

  if (cli != NULL && out != NULL && in != NULL)
    {
      ImportedDiff d = imported_diff (cli, out, 0, 0, cli->width, cli->height);
      ImportedDiff change = imported_diff (in, out, 0, 0, in->width, in->height);

      g_test_message ("against ddpm renoise: max |d| %.0f in %" G_GSIZE_FORMAT
                      " pixels; against the input: mean |d| %.2f, correlation %.4f",
                      d.max_abs, d.changed, change.mean_abs, change.correlation);
      /* Byte for byte but for a few values in the tiles' overlap, where
       * the two blend the same tiles with sums in another order and a
       * value near a half level rounds the other way: 3 of 234 000 here. */
      g_assert_cmpfloat (d.max_abs, <=, 1.0);
      g_assert_cmpuint (d.changed, <=, (gsize) cli->width * cli->height / 1000);
      g_assert_cmpuint (change.changed, >, (gsize) in->width * in->height / 2);
      g_assert_cmpfloat (change.b_mean, >, 20.0);
      g_assert_cmpfloat (change.correlation, >, 0.8);
    }
  imported_image_free (cli);
  imported_image_free (out);
  imported_image_free (in);
}

static void
test_renoise_alpha (void)
{
  ImportedImage *in = must_load ("input-alpha.png");
  ImportedImage *out = must_load ("renoised-alpha.png");

  if (in != NULL && out != NULL)
    {
      ImportedDiff d = imported_diff (in, out, 0, 0, in->width, in->height);

      g_assert_cmpuint (d.alpha_changed, ==, 0);
      g_assert_cmpuint (d.changed, >, (gsize) in->width * in->height / 2);
      g_assert_cmpfloat (d.correlation, >, 0.8);
    }
  imported_image_free (in);
  imported_image_free (out);
}

static gboolean
remove_pngs (const char *dir)
{
  GDir *d = g_dir_open (dir, 0, NULL);
  const char *name;

  if (d != NULL)
    {
      while ((name = g_dir_read_name (d)) != NULL)
        if (g_str_has_suffix (name, ".png") || g_str_has_suffix (name, ".safetensors"))
          {
            gchar *path = g_build_filename (dir, name, NULL);

            g_unlink (path);
            g_free (path);
          }
      g_dir_close (d);
    }
  return TRUE;
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_set_nonfatal_assertions ();
  work_dir = g_build_filename (g_getenv ("G_TEST_BUILDDIR"), "imported", NULL);
  g_mkdir_with_parents (work_dir, 0755);
  remove_pngs (work_dir);   /* no output of an earlier run may pass for this one's */
  gimp_log = work_file ("gimp.log");
  model_path = work_file (IMPORTED_FIXTURE ".safetensors");
  g_assert_null (strpbrk (work_dir, "\"\\"));

  imported_write_inputs (work_dir);
  imported = imported_import_fixture (model_path);
  {
    gchar *in = work_file ("input.png"), *out = work_file ("cli-renoised.png");
    const char *cli[] = { g_getenv ("DDPM_CLI"), "renoise", "-m", model_path,
                          "--strength", STRENGTH, "--steps", STEPS, "--seed", SEED,
                          "--sampler", "ddim", in, out, NULL };

    g_assert_true (imported_run (work_dir, cli));
    g_free (in);
    g_free (out);
  }
  run_session ();

  g_test_add_func ("/gimp3-imported/session", test_session);
  g_test_add_func ("/gimp3-imported/renoise/same-as-cli", test_renoise_same_as_cli);
  g_test_add_func ("/gimp3-imported/renoise/alpha", test_renoise_alpha);
  return g_test_run ();
}
