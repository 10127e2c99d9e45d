/* test-ui3.c: the GIMP 3 plug-in's dialogs in a real gimp-3.0 under Xvfb
 * (suite ui3).  One GUI session, in German, calls renoise, generate,
 * denoise and train with RUN-INTERACTIVE; the plug-in's test build
 * (gimp-ddpm-uitest, ui/gtk3/ui-test.c) records each dialog's plan line
 * (train: its parameter count), OK's sensitivity, screenshots and facts
 * (the preview area's pixels without and with the render, the denoise
 * σ's levels and estimate, the precision widget), changes values as a
 * user would and presses OK (train: Cancel); Filters ▸ Repeat
 * (RUN-WITH-LAST-VALS) runs renoise again, and the last values GIMP kept
 * must be the dialog's.  The profile is the gimp3
 * suite's (one first start for both, one language).
 *
 * Environment (meson): GIMP, XVFB_RUN, DDPM_PLUGIN, DDPM_SOURCE_ROOT,
 * DDPM_BUILD_ROOT, DDPM_GIMP3_PROFILE, G_TEST_BUILDDIR.
 */
#include "config.h"

#include <math.h>
#include <stdlib.h>
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
    "  (plug-in-ddpm-generate #:run-mode RUN-INTERACTIVE #:image img #:drawables (vector drw))"
    "  (plug-in-ddpm-denoise #:run-mode RUN-INTERACTIVE #:image img #:drawables (vector drw))"
    "  (plug-in-ddpm-train #:run-mode RUN-INTERACTIVE #:image img #:drawables (vector drw))"
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

  /* The dialogs open on the last values GIMP kept (the profile outlives
   * the run): start from the procedures' defaults, as a new user does. */
  for (int i = 0; i < 4; i++)
    {
      const char *names[] = { "renoise", "generate", "denoise", "train" };
      gchar *name = g_strdup_printf ("GimpProcedureConfigRun-plug-in-ddpm-%s.last",
                                     names[i]);
      gchar *last = g_build_filename (g_getenv ("DDPM_GIMP3_PROFILE"),
                                      "plug-in-settings", name, NULL);

      g_unlink (last);
      g_free (last);
      g_free (name);
    }
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

  if (line && strstr (line, expected) == NULL)
    g_test_fail_printf ("%s step %d: \"%s\" has no \"%s\"", proc, step,
                        line, expected);
  g_free (line);
}

/* The fact `key` the hook recorded for `proc` ("<proc> fact key=value"),
 * or NULL (the test fails). */
static gchar *
fact (const char *proc, const char *key)
{
  gchar *text = NULL, *value = NULL;
  gchar *prefix = g_strdup_printf ("%s fact %s=", proc, key);

  if (g_file_get_contents (report, &text, NULL, NULL))
    {
      gchar **lines = g_strsplit (text, "\n", -1);

      for (int i = 0; lines[i] && value == NULL; i++)
        if (g_str_has_prefix (lines[i], prefix))
          value = g_strdup (lines[i] + strlen (prefix));
      g_strfreev (lines);
    }
  g_free (text);
  g_free (prefix);
  if (value == NULL)
    g_test_fail_printf ("no fact %s of %s (see %s)", key, proc, gimp_log);
  else
    g_test_message ("%s %s=%s", proc, key, value);
  return value;
}

static gint
fact_int (const char *proc, const char *key)
{
  gchar *value = fact (proc, key);
  gint n = value ? atoi (value) : -1;

  g_free (value);
  return n;
}

static gdouble
fact_double (const char *proc, const char *key)
{
  gchar *value = fact (proc, key);
  gdouble x = value ? g_ascii_strtod (value, NULL) : -1.0;

  g_free (value);
  return x;
}

static void
check_fact (const char *proc, const char *key, const char *expected)
{
  gchar *value = fact (proc, key);

  if (value)
    g_assert_cmpstr (value, ==, expected);
  g_free (value);
}

static void
test_session (void)
{
  g_assert_true (session_ok);
}

/* The steps of a filter dialog's hook: 0 as it opens, 1 preview without
 * the render, 2 with it, 3 after the user's changes, 4 a file that is
 * no model, 5 the model back (then OK). */

/* The plan line follows the values (German), OK follows the model. */
static void
test_renoise_dialog (void)
{
  check_line ("plug-in-ddpm-renoise", 0, "ok=1 plan=Bis t = ");
  check_line ("plug-in-ddpm-renoise", 0, "verrauschen, dann 20 Entrauschungsschritte");
  check_line ("plug-in-ddpm-renoise", 3, "verrauschen, dann 10 Entrauschungsschritte");
  check_line ("plug-in-ddpm-renoise", 4, "ok=0");
  check_line ("plug-in-ddpm-renoise", 5, "ok=1 plan=Bis t = ");
}

/* The preview is a GimpDrawablePreview, drawn by the render: its pixels
 * with the render differ from the layer's as GimpPreview draws them. */
static void
check_preview (const char *proc, gboolean must_change)
{
  gint changed = fact_int (proc, "preview_changed");
  gint pixels = fact_int (proc, "preview_pixels");

  check_fact (proc, "preview", "GimpDrawablePreview");
  check_fact (proc, "preview_error", "");
  g_assert_cmpint (fact_int (proc, "renders_initial"), >=, 1);
  g_assert_cmpint (fact_int (proc, "renders"), >, fact_int (proc, "renders_initial"));
  g_assert_cmpint (pixels, >, 4096);
  if (must_change)
    g_assert_cmpint (changed, >, 500);  /* of the 64 × 64 layer's pixels */
}

static void
test_renoise_preview (void)
{
  check_preview ("plug-in-ddpm-renoise", TRUE);
}

static void
test_generate_dialog (void)
{
  check_line ("plug-in-ddpm-generate", 0,
              "ok=1 plan=Mit reinem Rauschen bei t = 1000 von 1000 beginnen, "
              "dann 20 Entrauschungsschritte");
  check_line ("plug-in-ddpm-generate", 3, "dann 10 Entrauschungsschritte");
  check_line ("plug-in-ddpm-generate", 4, "ok=0");
  check_line ("plug-in-ddpm-generate", 5, "ok=1 plan=Mit reinem Rauschen");
  check_preview ("plug-in-ddpm-generate", TRUE);
}

/* σ in 0–255 levels: the estimate shown (insensitive) while estimating,
 * the procedure's σ 0; "Estimate" off: σ = levels / 255. */
static void
test_denoise_dialog (void)
{
  gdouble levels;

  check_line ("plug-in-ddpm-denoise", 0, "ok=");
  check_line ("plug-in-ddpm-denoise", 3, "ok=1 plan=Bei t = ");
  check_line ("plug-in-ddpm-denoise", 3, "dann 10 Entrauschungsschritte");
  check_line ("plug-in-ddpm-denoise", 4, "ok=0");
  check_line ("plug-in-ddpm-denoise", 5, "ok=1");
  check_fact ("plug-in-ddpm-denoise", "estimate_initial", "1");
  check_fact ("plug-in-ddpm-denoise", "levels_sensitive_initial", "0");
  g_assert_cmpfloat (fact_double ("plug-in-ddpm-denoise", "sigma_initial"), ==, 0.0);
  levels = fact_double ("plug-in-ddpm-denoise", "levels_initial");
  g_assert_cmpfloat (levels, >=, 0.0);
  g_assert_cmpfloat (levels, <=, 255.0);
  check_fact ("plug-in-ddpm-denoise", "levels_sensitive_manual", "1");
  g_assert_cmpfloat (fabs (fact_double ("plug-in-ddpm-denoise", "sigma_manual")
                           - fact_double ("plug-in-ddpm-denoise", "levels_manual") / 255.0),
                     <, 1e-5);
  g_assert_cmpfloat (fabs (fact_double ("plug-in-ddpm-denoise", "sigma_25") - 25.0 / 255.0),
                     <, 1e-5);
  check_preview ("plug-in-ddpm-denoise", FALSE);
}

/* The precision is a combo of the dialog (GIMP wraps it with its label),
 * auto by default. */
static void
test_precision_widget (void)
{
  check_fact ("plug-in-ddpm-renoise", "precision_widget", "GimpLabelStringWidget");
  check_fact ("plug-in-ddpm-renoise", "precision_initial", "auto");
  check_fact ("plug-in-ddpm-denoise", "precision_widget", "GimpLabelStringWidget");
}

/* The parameter count follows the preset; OK needs an output file, and
 * a checkpoint while resuming, which makes the preset moot. */
static void
test_train_dialog (void)
{
  gchar *tiny = report_line ("plug-in-ddpm-train", 0);
  gchar *cifar = report_line ("plug-in-ddpm-train", 1);

  check_line ("plug-in-ddpm-train", 0, "ok=1 plan=");
  check_line ("plug-in-ddpm-train", 0, " Millionen Parameter");
  check_line ("plug-in-ddpm-train", 1, " Millionen Parameter");
  if (tiny && cifar)
    g_assert_cmpstr (tiny, !=, cifar);
  check_line ("plug-in-ddpm-train", 2, "ok=0");
  check_line ("plug-in-ddpm-train", 3, "ok=0");
  check_line ("plug-in-ddpm-train", 4, "ok=1");
  check_fact ("plug-in-ddpm-train", "preset_sensitive_resuming", "0");
  check_fact ("plug-in-ddpm-train", "resume_sensitive_resuming", "1");
  check_fact ("plug-in-ddpm-train", "preset_sensitive", "1");
  {
    gchar *output = fact ("plug-in-ddpm-train", "output");

    if (output)
      g_assert_true (g_str_has_suffix (output, "/gimp-ddpm/models/my-model.safetensors"));
    g_free (output);
  }
  g_free (tiny);
  g_free (cifar);
}

static void
test_screenshot (void)
{
  const char *names[] = { "plug-in-ddpm-renoise-5.png", "plug-in-ddpm-generate-5.png",
                          "plug-in-ddpm-denoise-5.png", "plug-in-ddpm-train-0.png" };

  for (guint i = 0; i < G_N_ELEMENTS (names); i++)
    {
      gchar *png = work_file (names[i]);
      GStatBuf st;

      g_assert_cmpint (g_stat (png, &st), ==, 0);
      g_assert_cmpint (st.st_size, >, 5000);
      g_free (png);
    }
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
      g_assert_nonnull (strstr (text, "(precision \"fp32\")"));
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
    GDir *dir = g_dir_open (work_dir, 0, NULL);
    const gchar *name;

    /* No screenshot of an earlier run may pass for this one's. */
    while (dir && (name = g_dir_read_name (dir)))
      if (g_str_has_suffix (name, ".png"))
        {
          gchar *png = work_file (name);

          g_unlink (png);
          g_free (png);
        }
    if (dir)
      g_dir_close (dir);
  }
  bad = work_file ("bad.safetensors");
  g_file_set_contents (bad, "not a model", -1, NULL);
  g_free (bad);
  run_session ();

  g_test_add_func ("/ui3/session", test_session);
  g_test_add_func ("/ui3/renoise-dialog", test_renoise_dialog);
  g_test_add_func ("/ui3/renoise-preview", test_renoise_preview);
  g_test_add_func ("/ui3/generate-dialog", test_generate_dialog);
  g_test_add_func ("/ui3/denoise-dialog", test_denoise_dialog);
  g_test_add_func ("/ui3/precision-widget", test_precision_widget);
  g_test_add_func ("/ui3/train-dialog", test_train_dialog);
  g_test_add_func ("/ui3/screenshot", test_screenshot);
  g_test_add_func ("/ui3/last-values", test_last_values);
  return g_test_run ();
}
