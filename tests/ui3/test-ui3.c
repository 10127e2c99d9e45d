/* test-ui3.c: the GIMP 3 plug-in's dialogs in a real gimp-3.0 under Xvfb
 * (suite ui3).  One GUI session, in German, calls renoise and denoise
 * with RUN-INTERACTIVE; the plug-in's test build (gimp-ddpm-uitest,
 * ui/gtk3/ui-test.c) records each dialog's plan line, OK's sensitivity
 * and a screenshot, changes values as a user would and presses OK; then
 * Filters ▸ Repeat (RUN-WITH-LAST-VALS) runs renoise again, and the last
 * values GIMP kept must be the dialog's.  The profile is the gimp3
 * suite's (one first start for both, one language).
 *
 * Environment (meson): GIMP, XVFB_RUN, DDPM_PLUGIN, DDPM_SOURCE_ROOT,
 * DDPM_BUILD_ROOT, DDPM_GIMP3_PROFILE, G_TEST_BUILDDIR.
 */
#include "config.h"

#include <string.h>

#include <glib.h>
#include <glib/gstdio.h>

static gchar *work_dir;
static gchar *report;
static gchar *gimp_log;
static gboolean session_ok;

static gchar *
work_file (const char *name)
{
  return g_build_filename (work_dir, name, NULL);
}

static gchar **
session_env (void)
{
  gchar *xdg = work_file ("xdg"), *home = work_file ("home");
  gchar *bad = work_file ("bad.safetensors");
  gchar **env = g_get_environ ();

  env = g_environ_setenv (env, "GIMP3_DIRECTORY", g_getenv ("DDPM_GIMP3_PROFILE"), TRUE);
  env = g_environ_setenv (env, "HOME", home, TRUE);
  env = g_environ_setenv (env, "XDG_DATA_HOME", xdg, TRUE);
  env = g_environ_setenv (env, "LANG", "de_DE.UTF-8", TRUE);
  env = g_environ_setenv (env, "DDPM_UI3_OUT", work_dir, TRUE);
  env = g_environ_setenv (env, "DDPM_UI3_BAD_MODEL", bad, TRUE);
  env = g_environ_unsetenv (env, "LC_ALL");
  env = g_environ_unsetenv (env, "LANGUAGE");
  env = g_environ_unsetenv (env, "DDPM_MODEL_DIR");
  g_mkdir_with_parents (home, 0755);
  g_mkdir_with_parents (g_getenv ("DDPM_GIMP3_PROFILE"), 0755);
  g_free (xdg);
  g_free (home);
  g_free (bad);
  return env;
}

static gboolean
spawn (const char *const *argv, gchar **env, gchar **err)
{
  int status = -1;

  return g_spawn_sync (work_dir, (char **) argv, env, G_SPAWN_SEARCH_PATH
                       | (err ? 0 : G_SPAWN_STDERR_TO_DEV_NULL)
                       | G_SPAWN_STDOUT_TO_DEV_NULL,
                       NULL, NULL, NULL, err, &status, NULL)
         && g_spawn_check_wait_status (status, NULL);
}

static void
run_session (void)
{
  gchar **env = session_env ();
  gchar *install = g_build_filename (g_getenv ("DDPM_SOURCE_ROOT"), "tools",
                                     "install-user", NULL);
  const char *iargv[] = { "/bin/sh", install, g_getenv ("DDPM_BUILD_ROOT"), NULL };
  gchar *plugin = g_build_filename (g_getenv ("DDPM_GIMP3_PROFILE"), "plug-ins",
                                    "gimp-ddpm", "gimp-ddpm", NULL);
  gchar *data = NULL, *err = NULL;
  gsize len;
  const char *body =
    "(let* ((img (car (gimp-file-load RUN-NONINTERACTIVE "
    "\"/usr/share/gimp/3.0/images/gimp-logo.png\")))"
    "       (drw (vector-ref (car (gimp-image-get-selected-drawables img)) 0)))"
    "  (gimp-image-scale img 64 64)"
    "  (plug-in-ddpm-renoise #:run-mode RUN-INTERACTIVE #:image img #:drawables (vector drw))"
    "  (plug-in-ddpm-renoise #:run-mode RUN-WITH-LAST-VALS #:image img #:drawables (vector drw))"
    "  (plug-in-ddpm-denoise #:run-mode RUN-INTERACTIVE #:image img #:drawables (vector drw))"
    "  (gimp-image-delete img))";
  const char *gargv[] = { "timeout", "540", g_getenv ("XVFB_RUN"), "-a", "-s",
                          "-screen 0 1280x1024x24", g_getenv ("GIMP"), "-n",
                          "-d", "-f", "-s", "--quit",
                          "--batch-interpreter=plug-in-script-fu-eval",
                          "-b", body, NULL };

  /* Installed the way a user would, then the test build in its place. */
  g_assert_true (spawn (iargv, env, NULL));
  g_assert_true (g_file_get_contents (g_getenv ("DDPM_PLUGIN"), &data, &len, NULL));
  g_unlink (plugin);
  g_assert_true (g_file_set_contents (plugin, data, len, NULL));
  g_chmod (plugin, 0755);
  g_free (data);

  session_ok = spawn (gargv, env, &err);
  g_file_set_contents (gimp_log, err ? err : "", -1, NULL);
  if (!session_ok)
    g_test_message ("gimp-3.0 failed: see %s", gimp_log);
  g_free (err);
  g_free (plugin);
  g_free (install);
  g_strfreev (env);
}

/* The report line of `proc` at `step`, or NULL. */
static gchar *
report_line (const char *proc, int step)
{
  gchar *text = NULL, *line = NULL;
  gchar *prefix = g_strdup_printf ("%s %d ", proc, step);

  if (g_file_get_contents (report, &text, NULL, NULL))
    {
      gchar **lines = g_strsplit (text, "\n", -1);

      for (int i = 0; lines[i] && line == NULL; i++)
        if (g_str_has_prefix (lines[i], prefix))
          line = g_strdup (lines[i] + strlen (prefix));
      g_strfreev (lines);
    }
  g_free (text);
  g_free (prefix);
  if (line == NULL)
    g_test_fail_printf ("no report of %s step %d (see %s)", proc, step, gimp_log);
  else
    g_test_message ("%s %d: %s", proc, step, line);
  return line;
}

static void
check_line (const char *proc, int step, const char *expected)
{
  gchar *line = report_line (proc, step);

  if (line)
    g_assert_nonnull (strstr (line, expected));
  g_free (line);
}

static void
test_session (void)
{
  g_assert_true (session_ok);
}

/* The plan line follows the values (German), OK follows the model. */
static void
test_renoise_dialog (void)
{
  check_line ("plug-in-ddpm-renoise", 0, "ok=1 plan=Bis t = ");
  check_line ("plug-in-ddpm-renoise", 0, "verrauschen, dann 20 Entrauschungsschritte");
  check_line ("plug-in-ddpm-renoise", 1, "verrauschen, dann 10 Entrauschungsschritte");
  check_line ("plug-in-ddpm-renoise", 2, "ok=0");
  check_line ("plug-in-ddpm-renoise", 3, "ok=1 plan=Bis t = ");
}

static void
test_denoise_dialog (void)
{
  check_line ("plug-in-ddpm-denoise", 0, "ok=");
  check_line ("plug-in-ddpm-denoise", 2, "ok=0");
  check_line ("plug-in-ddpm-denoise", 3, "ok=");
}

static void
test_screenshot (void)
{
  gchar *png = work_file ("plug-in-ddpm-renoise-0.png");
  GStatBuf st;

  g_assert_cmpint (g_stat (png, &st), ==, 0);
  g_assert_cmpint (st.st_size, >, 5000);
  g_free (png);
}

/* GIMP kept the dialog's values for Filters ▸ Repeat. */
static void
test_last_values (void)
{
  gchar *path = g_build_filename (g_getenv ("DDPM_GIMP3_PROFILE"), "plug-in-settings",
                                  "GimpProcedureConfigRun-plug-in-ddpm-renoise.last",
                                  NULL);
  gchar *text = NULL;

  g_assert_true (g_file_get_contents (path, &text, NULL, NULL));
  if (text)
    {
      g_assert_nonnull (strstr (text, "(strength 0.25"));
      g_assert_nonnull (strstr (text, "(steps 10)"));
    }
  g_free (text);
  g_free (path);
}

int
main (int argc, char **argv)
{
  gchar *bad;

  g_test_init (&argc, &argv, NULL);
  g_test_set_nonfatal_assertions ();
  work_dir = g_build_filename (g_getenv ("G_TEST_BUILDDIR"), "work", NULL);
  g_mkdir_with_parents (work_dir, 0755);
  report = work_file ("report.txt");
  gimp_log = work_file ("gimp.log");
  g_unlink (report);
  {
    gchar *png = work_file ("plug-in-ddpm-renoise-0.png");

    g_unlink (png);
    g_free (png);
  }
  bad = work_file ("bad.safetensors");
  g_file_set_contents (bad, "not a model", -1, NULL);
  g_free (bad);
  run_session ();

  g_test_add_func ("/ui3/session", test_session);
  g_test_add_func ("/ui3/renoise-dialog", test_renoise_dialog);
  g_test_add_func ("/ui3/denoise-dialog", test_denoise_dialog);
  g_test_add_func ("/ui3/screenshot", test_screenshot);
  g_test_add_func ("/ui3/last-values", test_last_values);
  return g_test_run ();
}
