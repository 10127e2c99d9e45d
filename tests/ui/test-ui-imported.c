/* test-ui-imported.c: the renoise dialog of a real GIMP 2.10 with a model
 * of the published 256² ADM architecture, imported from a .pt.
 *
 * Issue #16 is done when such a model "renoises an image … through the
 * dialog".  tests/fixtures/adm/adm256-tiny.pt is guided-diffusion's own
 * UNetModel in the 256×256 model's shape with few channels and random
 * weights (tests/make-adm-fixtures.py); `ddpm import` writes it, with the
 * flags beside it, as the default model of a private profile, the way a
 * user installs a downloaded one.  Then, as in test-ui.c, gimp-2.10 under
 * Xvfb runs the plug-in's test build (gimp-ddpm-uitest), whose hook
 * (ui/gimp2/ui-test.c) records what the dialog showed, lets the preview
 * render and saves a screenshot.  The expected numbers come from
 * elsewhere: the parameter count is the one PyTorch counted for the
 * fixture (1 906 502, printed by the fixture script), the tile size the
 * fixture's --image_size, the plan's t0 = strength·T on T = 1000.
 *
 * Environment (tests/ui/meson.build): GIMP, DDPM_PLUGIN, DDPM_CLI,
 * DDPM_SOURCE_ROOT, DDPM_UI_RUN_DIR (a scratch directory, emptied first). */
#include <string.h>
#include <glib.h>
#include <glib/gstdio.h>
#include <gdk-pixbuf/gdk-pixbuf.h>

#include "ddpm.h"
#include "../dir-helpers.h"
#include "ui-helpers.h"

#define RENOISE_PROC "plug-in-ddpm-renoise"
#define FIXTURE      "adm256-tiny"
/* What PyTorch counted: sum (p.numel () for p in model.parameters ()). */
#define FIXTURE_PARAMS 1906502
#define GIMP_TIMEOUT "300"

static gchar *run_dir;
static gchar *results_dir;
static gchar *model_file;
static gchar *gimp_log;

/* Run argv in run_dir; its output goes to *output (may be NULL). */
static gboolean
spawn (const gchar *const *argv, gchar **envp, gchar **output)
{
  GError  *error = NULL;
  gint     status = 0;
  gchar   *out = NULL, *err = NULL;
  gboolean ok;

  g_spawn_sync (run_dir, (gchar **) argv, envp, G_SPAWN_SEARCH_PATH, NULL, NULL,
                &out, &err, &status, &error);
  g_assert_no_error (error);
  ok = g_spawn_check_wait_status (status, &error);
  if (! ok)
    g_printerr ("%s: %s\n%s%s\n", argv[0], error->message, out, err);
  if (output)
    *output = g_strconcat (out, err, NULL);
  g_clear_error (&error);
  g_free (out);
  g_free (err);
  return ok;
}

/* A colourful 300×260 picture, larger than one 256² tile. */
static gchar *
write_test_image (void)
{
  GdkPixbuf *pixbuf = gdk_pixbuf_new (GDK_COLORSPACE_RGB, FALSE, 8, 300, 260);
  guchar    *pixels = gdk_pixbuf_get_pixels (pixbuf);
  gint       stride = gdk_pixbuf_get_rowstride (pixbuf);
  gchar     *file = g_build_filename (run_dir, "layer.png", NULL);
  GError    *error = NULL;

  for (gint y = 0; y < 260; y++)
    for (gint x = 0; x < 300; x++)
      {
        guchar  *p = pixels + y * stride + 3 * x;
        gint     dx = x - 150, dy = y - 130;
        gboolean ring = ((dx * dx + dy * dy) / 600) % 2;

        p[0] = (guchar) (40 + x * 180 / 299);
        p[1] = (guchar) (40 + y * 180 / 259);
        p[2] = ring ? 210 : 50;
      }
  gdk_pixbuf_save (pixbuf, file, "png", &error, NULL);
  g_assert_no_error (error);
  g_object_unref (pixbuf);
  return file;
}

/* `ddpm import` of the fixture with its own flags line, to `out`. */
static void
import_fixture (const gchar *out)
{
  gchar     *dir = g_build_filename (ui_env ("DDPM_SOURCE_ROOT"), "tests", "fixtures", "adm", NULL);
  gchar     *pt = g_build_filename (dir, FIXTURE ".pt", NULL);
  gchar     *flags_file = g_build_filename (dir, FIXTURE ".flags", NULL);
  gchar     *flags = NULL, **words;
  GPtrArray *argv = g_ptr_array_new ();

  g_assert_true (g_file_get_contents (flags_file, &flags, NULL, NULL));
  words = g_strsplit_set (g_strstrip (flags), " \t", -1);
  for (const gchar *a[] = { ui_env ("DDPM_CLI"), "import", pt, "--out", out, NULL },
       **p = a; *p; p++)
    g_ptr_array_add (argv, (gpointer) *p);
  for (gchar **w = words; *w; w++)
    if (**w)
      g_ptr_array_add (argv, *w);
  g_ptr_array_add (argv, NULL);
  g_assert_true (spawn ((const gchar *const *) argv->pdata, NULL, NULL));

  g_ptr_array_unref (argv);
  g_strfreev (words);
  g_free (flags);
  g_free (flags_file);
  g_free (pt);
  g_free (dir);
}

/* One GIMP session: a non-interactive renoise leaves strength 0.3 and 2
 * steps as the last values (the dialog opens on them and its preview
 * renders quickly), then the dialog, which the hook records and cancels. */
static void
ensure_gimp_ran (void)
{
  static gboolean ran;
  gchar     *profile, *models_dir, *plugin_copy, *image, *command, *log_file;
  GPtrArray *argv;
  gchar    **envp;

  if (ran)
    return;
  ran = TRUE;

  run_dir = g_strdup (ui_env ("DDPM_UI_RUN_DIR"));
  test_remove_tree (run_dir);
  g_assert_cmpint (g_mkdir_with_parents (run_dir, 0755), ==, 0);
  results_dir = g_build_filename (run_dir, "results", NULL);
  g_assert_cmpint (g_mkdir_with_parents (results_dir, 0755), ==, 0);
  profile = g_build_filename (run_dir, "gimp-profile", NULL);
  models_dir = g_build_filename (run_dir, "models", NULL);
  plugin_copy = g_build_filename (profile, "plug-ins", "gimp-ddpm", "gimp-ddpm", NULL);
  ui_copy_file (ui_env ("DDPM_PLUGIN"), plugin_copy, 0755);

  g_assert_cmpint (g_mkdir_with_parents (models_dir, 0755), ==, 0);
  model_file = g_build_filename (models_dir, "default.safetensors", NULL);
  import_fixture (model_file);
  image = write_test_image ();

  command = g_strdup_printf (
    "(let* ((img (car (gimp-file-load RUN-NONINTERACTIVE \"%s\" \"%s\")))"
    "       (drw (car (gimp-image-get-active-drawable img))))"
    "  (" RENOISE_PROC " RUN-NONINTERACTIVE img drw \"\" 0.3 2 1234 1 0)"
    "  (gimp-file-save RUN-NONINTERACTIVE img drw \"%s/renoised.png\" \"%s/renoised.png\")"
    "  (" RENOISE_PROC " RUN-INTERACTIVE img drw \"\" 0.3 2 1234 1 0))",
    image, image, run_dir, run_dir);

  argv = g_ptr_array_new ();
  for (const gchar *a[] = { "timeout", "-k", "10", GIMP_TIMEOUT, ui_env ("GIMP"),
                            "--new-instance", "--no-data", "--no-fonts",
                            "--no-splash", "--console-messages",
                            "--batch-interpreter", "plug-in-script-fu-eval",
                            "-b", command, "-b", "(gimp-quit 0)", NULL },
       **p = a; *p; p++)
    g_ptr_array_add (argv, (gpointer) *p);
  g_ptr_array_add (argv, NULL);

  envp = g_get_environ ();
  envp = g_environ_setenv (envp, "GIMP2_DIRECTORY", profile, TRUE);
  envp = g_environ_setenv (envp, "DDPM_MODEL_DIR", models_dir, TRUE);
  envp = g_environ_setenv (envp, "DDPM_UI_TEST", results_dir, TRUE);
  envp = g_environ_setenv (envp, "HOME", run_dir, TRUE);
  envp = g_environ_setenv (envp, "XDG_CONFIG_HOME", run_dir, TRUE);
  envp = g_environ_setenv (envp, "XDG_DATA_HOME", run_dir, TRUE);
  envp = g_environ_setenv (envp, "XDG_CACHE_HOME", run_dir, TRUE);
  envp = g_environ_setenv (envp, "LC_ALL", "C.UTF-8", TRUE);
  envp = g_environ_unsetenv (envp, "LANGUAGE");
  envp = g_environ_unsetenv (envp, "DDPM_UI_TEST_RESPONSE");
  envp = g_environ_unsetenv (envp, "GIMP_TESTING_PLUGINDIRS");

  spawn ((const gchar *const *) argv->pdata, envp, &gimp_log);
  log_file = g_build_filename (run_dir, "gimp.log", NULL);
  g_file_set_contents (log_file, gimp_log, -1, NULL);

  g_free (log_file);
  g_strfreev (envp);
  g_ptr_array_unref (argv);
  g_free (command);
  g_free (image);
  g_free (plugin_copy);
  g_free (models_dir);
  g_free (profile);
}

static GKeyFile *
load_result (void)
{
  GKeyFile *result = g_key_file_new ();
  gchar    *file;
  GError   *error = NULL;

  ensure_gimp_ran ();
  file = g_build_filename (results_dir, RENOISE_PROC ".result", NULL);
  if (! g_key_file_load_from_file (result, file, G_KEY_FILE_NONE, &error))
    {
      g_printerr ("GIMP's output:\n%s\n", gimp_log);
      g_error ("%s: %s (the dialog was not shown, or its test hook did not run)",
               file, error->message);
    }
  g_assert_true (g_key_file_get_boolean (result, "dialog", "finished", NULL));
  g_free (file);
  return result;
}

/* The file `ddpm import` wrote is the 256² model PyTorch counted. */
static void
test_imported_model (void)
{
  GError    *error = NULL;
  DdpmModel *model;

  ensure_gimp_ran ();
  model = ddpm_model_load (model_file, &error);
  g_assert_no_error (error);
  g_assert_cmpint (ddpm_model_get_config (model)->image_size, ==, 256);
  g_assert_cmpuint (ddpm_unet_config_n_params (ddpm_model_get_config (model)), ==,
                    FIXTURE_PARAMS);
  g_assert_cmpstr (ddpm_model_get_metadata (model, "style"), ==, "adm");
  ddpm_model_free (model);
}

/* The dialog names the model's tile size and parameter count. */
static void
test_model_info (void)
{
  GKeyFile *r = load_result ();
  gchar    *info = ui_get (r, "model_info");
  gchar    *expected = g_strdup_printf ("Model: 256×256 pixel tiles, %.1f million parameters",
                                        FIXTURE_PARAMS / 1e6);

  g_assert_cmpstr (info, ==, expected);
  g_assert_cmpstr (expected, ==, "Model: 256×256 pixel tiles, 1.9 million parameters");
  g_assert_true (ui_get_bool (r, "model_info_on_screen"));
  g_free (expected);
  g_free (info);
  g_key_file_free (r);
}

static void
test_dialog (void)
{
  GKeyFile *r = load_result ();
  gchar    *path = ui_get (r, "model_path");
  gchar    *plan = ui_get (r, "plan_initial");

  g_assert_cmpstr (path, ==, model_file);
  g_assert_true (ui_get_bool (r, "preview_on_screen"));
  g_assert_true (ui_get_bool (r, "ok_sensitive_initial"));
  /* The last values: strength 0.3 of T = 1000, 2 steps. */
  g_assert_cmpstr (plan, ==, "Noise to t = 300 of 1000, then 2 denoising steps");
  g_free (plan);
  g_free (path);
  g_key_file_free (r);
}

/* The preview ran the model without an error, and the screenshot holds
 * a dialog with a rendered preview: many colours, in the preview's
 * region too. */
static void
test_preview (void)
{
  GKeyFile   *r = load_result ();
  gchar      *file, *renoised;
  GdkPixbuf  *pixbuf;
  GError     *error = NULL;
  GHashTable *colours = g_hash_table_new (NULL, NULL);
  gint        width, height, stride, n;
  const guchar *pixels;

  if (ui_get_bool (r, "preview_error_shown"))
    {
      gchar *message = ui_get (r, "preview_error");

      g_error ("the preview failed: %s", message);
    }
  /* The non-interactive run before the dialog renoised the layer. */
  renoised = g_build_filename (run_dir, "renoised.png", NULL);
  g_assert_true (g_file_test (renoised, G_FILE_TEST_IS_REGULAR));

  file = g_build_filename (results_dir, RENOISE_PROC ".png", NULL);
  g_test_message ("screenshot: %s", file);
  pixbuf = gdk_pixbuf_new_from_file (file, &error);
  g_assert_no_error (error);
  width  = gdk_pixbuf_get_width (pixbuf);
  height = gdk_pixbuf_get_height (pixbuf);
  g_assert_cmpint (width, >=, 300);
  g_assert_cmpint (height, >=, 300);
  stride = gdk_pixbuf_get_rowstride (pixbuf);
  n      = gdk_pixbuf_get_n_channels (pixbuf);
  pixels = gdk_pixbuf_read_pixels (pixbuf);
  for (gint y = 0; y < height; y++)
    for (gint x = 0; x < width; x++)
      {
        const guchar *p = pixels + y * stride + x * n;

        g_hash_table_add (colours, GUINT_TO_POINTER ((p[0] << 16) | (p[1] << 8) | p[2]));
      }
  /* Text and frames give dozens of greys; a rendered colour preview gives
   * thousands of colours. */
  g_test_message ("%u colours", g_hash_table_size (colours));
  g_assert_cmpuint (g_hash_table_size (colours), >=, 1000);

  g_hash_table_unref (colours);
  g_object_unref (pixbuf);
  g_free (file);
  g_free (renoised);
  g_key_file_free (r);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/ui-imported/model", test_imported_model);
  g_test_add_func ("/ui-imported/renoise/model-info", test_model_info);
  g_test_add_func ("/ui-imported/renoise/dialog", test_dialog);
  g_test_add_func ("/ui-imported/renoise/preview", test_preview);
  return g_test_run ();
}
