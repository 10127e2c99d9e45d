/* test-ui.c: the plug-in's dialogs, really shown by a real GIMP 2.10.
 *
 * A GimpDrawablePreview needs a drawable of a running GIMP, so the dialogs
 * are tested where they live.  This program (run by meson under xvfb-run,
 * which provides the X display) prepares a private GIMP profile with the
 * freshly built plug-in, trains a tiny default model (two steps of
 * ddpm_train), and starts gimp-2.10 with batch commands that call
 * plug-in-ddpm-renoise, -generate, -denoise and -train with
 * RUN-INTERACTIVE and DDPM_UI_TEST set; then once more in German
 * (LANGUAGE=de, with the catalogue built from po/de.po) for the renoise
 * and denoise dialogs.  The denoise dialog opens on noisy.png, the test
 * picture with Gaussian noise of NOISE_LEVELS added, so that its estimate
 * has something to find.  The dialogs'
 * test hook (ui/gimp2/ui-test.c, in the plug-in's test build
 * gimp-ddpm-uitest) pokes the widgets, records what they showed
 * into <procedure>.result, saves a screenshot <procedure>.png and
 * cancels.  Every assertion is made here, on those records and pictures;
 * the expected numbers are computed here (t0 = strength·T of the model's
 * 1000-step schedule; for denoise, the t of σ on that schedule and the
 * noise estimate, by the engine's own functions on the same pixels).
 *
 * Environment (set by tests/ui/meson.build): GIMP (gimp-2.10), DDPM_PLUGIN
 * (the built gimp-ddpm-uitest binary, installed in the profile as
 * gimp-ddpm), DDPM_PO_BUILDDIR (the built catalogues),
 * DDPM_UI_RUN_DIR (a scratch directory, emptied first). */
#include <math.h>
#include <string.h>
#include <glib.h>
#include <glib/gstdio.h>
#include <gdk-pixbuf/gdk-pixbuf.h>

#include "ddpm.h"
#include "../dir-helpers.h"
#include "ui-helpers.h"

#define RENOISE_PROC  "plug-in-ddpm-renoise"
#define GENERATE_PROC "plug-in-ddpm-generate"
#define TRAIN_PROC    "plug-in-ddpm-train"
#define DENOISE_PROC  "plug-in-ddpm-denoise"

/* The noise in noisy.png, in 0–255 levels. */
#define NOISE_LEVELS 20

/* The most seconds one GIMP run may take: usually 20–50 (the start takes
 * ~10 s with a fresh profile, each dialog a few), more on a loaded
 * machine. */
#define GIMP_TIMEOUT "180"

static gchar    *run_dir;
static gchar    *results_dir;
static gchar    *results_de_dir;
static gchar    *model_file;
static gchar    *test_image;  /* the picture the dialogs open: layer.png */
static gchar    *noisy_image; /* the denoise dialog's: noisy.png */
static gboolean  gimp_ran;
static gchar    *gimp_log;

/* A colourful 128×96 picture: the layer the dialogs open on, and the
 * tiny model's training data. */
static gchar *
write_test_image (void)
{
  GdkPixbuf *pixbuf = gdk_pixbuf_new (GDK_COLORSPACE_RGB, FALSE, 8, 128, 96);
  guchar    *pixels = gdk_pixbuf_get_pixels (pixbuf);
  gint       stride = gdk_pixbuf_get_rowstride (pixbuf);
  gchar     *file = g_build_filename (run_dir, "layer.png", NULL);
  GError    *error = NULL;

  for (gint y = 0; y < 96; y++)
    for (gint x = 0; x < 128; x++)
      {
        guchar *p = pixels + y * stride + 3 * x;
        gint    dx = x - 64, dy = y - 48;
        gboolean ring = ((dx * dx + dy * dy) / 150) % 2;

        p[0] = (guchar) (x * 2);
        p[1] = (guchar) (y * 255 / 95);
        p[2] = ring ? 220 : 40;
      }
  gdk_pixbuf_save (pixbuf, file, "png", &error, NULL);
  g_assert_no_error (error);
  g_object_unref (pixbuf);
  return file;
}

/* The test picture plus Gaussian noise of NOISE_LEVELS (the engine's
 * counter-based normals, seed 7), rounded and clipped to 8 bits. */
static gchar *
write_noisy_image (const gchar *clean)
{
  GError    *error = NULL;
  GdkPixbuf *pixbuf = gdk_pixbuf_new_from_file (clean, &error);
  gchar     *file = g_build_filename (run_dir, "noisy.png", NULL);
  guchar    *pixels;
  gint       W, H, stride, n_channels;

  g_assert_no_error (error);
  W = gdk_pixbuf_get_width (pixbuf);
  H = gdk_pixbuf_get_height (pixbuf);
  stride = gdk_pixbuf_get_rowstride (pixbuf);
  n_channels = gdk_pixbuf_get_n_channels (pixbuf);
  pixels = gdk_pixbuf_get_pixels (pixbuf);
  for (gint y = 0; y < H; y++)
    for (gint x = 0; x < W; x++)
      for (gint c = 0; c < 3; c++)
        {
          guchar *p = pixels + y * stride + x * n_channels + c;
          gdouble v = *p + NOISE_LEVELS * ddpm_rng_normal (7, 0, (y * W + x) * 3 + c);

          *p = (guchar) CLAMP (v + 0.5, 0.0, 255.0);
        }
  gdk_pixbuf_save (pixbuf, file, "png", &error, NULL);
  g_assert_no_error (error);
  g_object_unref (pixbuf);
  return file;
}

/* Donoho's estimate of the noise in a PNG, as the dialog makes it: the
 * engine's estimator on the colour planes, [0, 1] scale. */
static gdouble
estimate_noise (const gchar *file)
{
  GError       *error = NULL;
  GdkPixbuf    *pixbuf = gdk_pixbuf_new_from_file (file, &error);
  const guchar *pixels;
  gint          W, H, stride, n_channels;
  float        *planes;
  gdouble       sigma = -1.0;

  g_assert_no_error (error);
  W = gdk_pixbuf_get_width (pixbuf);
  H = gdk_pixbuf_get_height (pixbuf);
  stride = gdk_pixbuf_get_rowstride (pixbuf);
  n_channels = gdk_pixbuf_get_n_channels (pixbuf);
  pixels = gdk_pixbuf_read_pixels (pixbuf);
  planes = g_new (float, 3 * W * H);
  for (gint c = 0; c < 3; c++)
    for (gint y = 0; y < H; y++)
      for (gint x = 0; x < W; x++)
        planes[(c * H + y) * W + x] = pixels[y * stride + x * n_channels + c] / 255.0f;
  g_assert_true (ddpm_estimate_noise_sigma (planes, 3, H, W, &sigma, &error));
  g_assert_no_error (error);
  g_free (planes);
  g_object_unref (pixbuf);
  return sigma;
}

static void
spawn (gchar **argv, gchar **envp, gchar **output)
{
  GError *error = NULL;
  gint    status = 0;
  gchar  *out = NULL, *err = NULL;

  g_spawn_sync (run_dir, argv, envp, G_SPAWN_SEARCH_PATH, NULL, NULL,
                &out, &err, &status, &error);
  g_assert_no_error (error);
  if (output)
    *output = g_strconcat (out, err, NULL);
  if (! g_spawn_check_wait_status (status, &error))
    g_printerr ("%s: %s\n%s%s\n", argv[0], error->message, out, err);
  g_clear_error (&error);
  g_free (out);
  g_free (err);
}

static void
train_tiny_model (const gchar *image, const gchar *out)
{
  GdkPixbuf       *pixbuf;
  DdpmDataset     *dataset;
  DdpmTrainParams  params;
  GError          *error = NULL;
  gint             W, H, stride;
  const guchar    *pixels;
  float           *planes;

  pixbuf = gdk_pixbuf_new_from_file (image, &error);
  g_assert_no_error (error);
  W = gdk_pixbuf_get_width (pixbuf);
  H = gdk_pixbuf_get_height (pixbuf);
  stride = gdk_pixbuf_get_rowstride (pixbuf);
  pixels = gdk_pixbuf_read_pixels (pixbuf);
  planes = g_new (float, 3 * W * H);
  for (gint c = 0; c < 3; c++)
    for (gint y = 0; y < H; y++)
      for (gint x = 0; x < W; x++)
        planes[(c * H + y) * W + x] = pixels[y * stride + 3 * x + c] / 127.5f - 1.0f;

  dataset = ddpm_dataset_new_from_pixels (planes, 3, H, W, &error);
  g_assert_no_error (error);

  ddpm_train_params_init (&params);
  ddpm_unet_config_from_preset ("tiny", 3, &params.config, &error);
  g_assert_no_error (error);
  params.steps    = 2;
  params.batch    = 2;
  params.warmup   = 1;
  params.seed     = 1;
  params.out_path = out;
  ddpm_train (&params, dataset, &error);
  g_assert_no_error (error);

  ddpm_dataset_free (dataset);
  g_free (planes);
  g_object_unref (pixbuf);
}

/* One GIMP session in `language` (NULL: untranslated) that runs the
 * Script-Fu `commands` with the dialogs' hook writing into `results`.
 * Each -b runs on its own, so a cancelled dialog (an error for Script-Fu)
 * does not stop the next. */
static void
run_gimp (const gchar *results, const gchar *language, gchar **commands)
{
  gchar     *profile = g_build_filename (run_dir, "gimp-profile", NULL);
  gchar     *models_dir = g_build_filename (run_dir, "models", NULL);
  gchar     *log_file, *log;
  GPtrArray *argv = g_ptr_array_new ();
  gchar    **envp;

  g_assert_cmpint (g_mkdir_with_parents (results, 0755), ==, 0);
  for (const gchar *a[] = { "timeout", "-k", "10", GIMP_TIMEOUT, ui_env ("GIMP"),
                            "--new-instance", "--no-data", "--no-fonts",
                            "--no-splash", "--console-messages",
                            "--batch-interpreter", "plug-in-script-fu-eval", NULL },
       **p = a; *p; p++)
    g_ptr_array_add (argv, (gpointer) *p);
  for (gchar **c = commands; *c; c++)
    {
      g_ptr_array_add (argv, "-b");
      g_ptr_array_add (argv, *c);
    }
  g_ptr_array_add (argv, "-b");
  g_ptr_array_add (argv, "(gimp-quit 0)");
  g_ptr_array_add (argv, NULL);

  envp = g_get_environ ();
  envp = g_environ_setenv (envp, "GIMP2_DIRECTORY", profile, TRUE);
  envp = g_environ_setenv (envp, "DDPM_MODEL_DIR", models_dir, TRUE);
  envp = g_environ_setenv (envp, "DDPM_UI_TEST", results, TRUE);
  envp = g_environ_setenv (envp, "HOME", run_dir, TRUE);
  envp = g_environ_setenv (envp, "XDG_CONFIG_HOME", run_dir, TRUE);
  /* The plug-in finds its catalogues in XDG_DATA_HOME/gimp-ddpm/locale. */
  envp = g_environ_setenv (envp, "XDG_DATA_HOME", run_dir, TRUE);
  envp = g_environ_setenv (envp, "XDG_CACHE_HOME", run_dir, TRUE);
  envp = g_environ_setenv (envp, "LC_ALL", "C.UTF-8", TRUE);
  if (language)
    envp = g_environ_setenv (envp, "LANGUAGE", language, TRUE);
  else
    envp = g_environ_unsetenv (envp, "LANGUAGE");
  envp = g_environ_unsetenv (envp, "GIMP_TESTING_PLUGINDIRS");

  spawn ((gchar **) argv->pdata, envp, &log);
  log_file = g_strdup_printf ("%s.log", results);
  g_file_set_contents (log_file, log, -1, NULL);
  gimp_log = g_strconcat (gimp_log ? gimp_log : "", log, NULL);

  g_free (log);
  g_free (log_file);
  g_strfreev (envp);
  g_ptr_array_unref (argv);
  g_free (models_dir);
  g_free (profile);
}

/* Script-Fu: open the test picture and call a procedure on its layer.  A
 * non-interactive run first leaves its values as the last values, so the
 * renoise and generate dialogs open on 3 steps and their previews render
 * quickly. */
static gchar *
script (const gchar *image, const gchar *calls)
{
  return g_strdup_printf ("(let* ((img (car (gimp-file-load RUN-NONINTERACTIVE \"%s\" \"%s\")))"
                          "       (drw (car (gimp-image-get-active-drawable img)))) %s)",
                          image, image, calls);
}

#define RENOISE_CALLS \
  "(" RENOISE_PROC " RUN-NONINTERACTIVE img drw \"\" 0.5 3 1234 1 0)" \
  "(" RENOISE_PROC " RUN-INTERACTIVE img drw \"\" 0.5 3 1234 1 0)"
#define GENERATE_CALLS \
  "(" GENERATE_PROC " RUN-NONINTERACTIVE img drw \"\" 3 1234 1 0)" \
  "(" GENERATE_PROC " RUN-INTERACTIVE img drw \"\" 3 1234 1 0)"
/* Last values: σ estimated, 3 steps, seed 1234, DDIM; left by a run on a
 * copy, so that the dialog opens on the noisy pixels themselves. */
#define DENOISE_CALLS \
  "(let* ((copy (car (gimp-image-duplicate img))))" \
  "  (" DENOISE_PROC " RUN-NONINTERACTIVE copy" \
  "   (car (gimp-image-get-active-drawable copy)) \"\" 0 3 1234 1 0)" \
  "  (gimp-image-delete copy))" \
  "(" DENOISE_PROC " RUN-INTERACTIVE img drw \"\" 0 3 1234 1 0)"
#define TRAIN_CALLS \
  "(" TRAIN_PROC " RUN-INTERACTIVE img drw \"\" \"tiny\" 100 32 1 \"\")"

/* Everything the tests look at comes from two GIMP runs, made on first
 * use: the three dialogs untranslated, then the renoise dialog in German. */
static void
ensure_gimp_ran (void)
{
  gchar *models_dir, *plugin_copy, *mo_built, *mo_copy;

  if (gimp_ran)
    return;
  gimp_ran = TRUE;

  run_dir = g_strdup (ui_env ("DDPM_UI_RUN_DIR"));
  test_remove_tree (run_dir);
  results_dir    = g_build_filename (run_dir, "results", NULL);
  results_de_dir = g_build_filename (run_dir, "results-de", NULL);
  models_dir     = g_build_filename (run_dir, "models", NULL);
  g_assert_cmpint (g_mkdir_with_parents (models_dir, 0755), ==, 0);

  /* The plug-in, installed into the private profile, and its German
   * catalogue where it looks for a per-user one. */
  plugin_copy = g_build_filename (run_dir, "gimp-profile", "plug-ins", "gimp-ddpm",
                                  "gimp-ddpm", NULL);
  ui_copy_file (ui_env ("DDPM_PLUGIN"), plugin_copy, 0755);
  mo_built = g_build_filename (ui_env ("DDPM_PO_BUILDDIR"), "de", "LC_MESSAGES",
                               "gimp-ddpm.mo", NULL);
  mo_copy = g_build_filename (run_dir, "gimp-ddpm", "locale", "de", "LC_MESSAGES",
                              "gimp-ddpm.mo", NULL);
  ui_copy_file (mo_built, mo_copy, 0644);

  test_image = write_test_image ();
  noisy_image = write_noisy_image (test_image);

  /* The default model: a tiny UNet after two optimizer steps on the same
   * picture.  The dialogs read its schedule (linear, T = 1000) and the
   * preview runs it. */
  model_file = g_build_filename (models_dir, "default.safetensors", NULL);
  train_tiny_model (test_image, model_file);

  {
    gchar *commands[] = { script (test_image, RENOISE_CALLS),
                          script (test_image, GENERATE_CALLS),
                          script (noisy_image, DENOISE_CALLS),
                          script (test_image, TRAIN_CALLS), NULL };

    run_gimp (results_dir, NULL, commands);
    for (gchar **c = commands; *c; c++)
      g_free (*c);
  }
  {
    /* In German, and with OK pressed: the hook leaves strength 0.4 (the
     * script says 0.5, the last values too), 3 steps, seed 1234, DDIM, so
     * the layer must come out exactly as a non-interactive run with those
     * values makes it (DDIM is deterministic under a fixed seed). */
    gchar *ok_png = g_build_filename (results_de_dir, "ok.png", NULL);
    gchar *expected_png = g_build_filename (results_de_dir, "expected.png", NULL);
    gchar *ok_calls = g_strdup_printf ("%s (gimp-file-save RUN-NONINTERACTIVE img drw \"%s\" \"%s\")",
                                       RENOISE_CALLS, ok_png, ok_png);
    gchar *expected_calls = g_strdup_printf ("(" RENOISE_PROC " RUN-NONINTERACTIVE img drw \"\" 0.5 3 1234 1 0)"
                                             "(" RENOISE_PROC " RUN-NONINTERACTIVE img drw \"\" 0.4 3 1234 1 1)"
                                             "(gimp-file-save RUN-NONINTERACTIVE img drw \"%s\" \"%s\")",
                                             expected_png, expected_png);
    /* The denoise dialog's hook leaves σ = 25 levels by hand, 3 steps,
     * seed 1234, DDIM: the same as a non-interactive run with those. */
    gchar *ok_denoise_png = g_build_filename (results_de_dir, "ok-denoise.png", NULL);
    gchar *expected_denoise_png = g_build_filename (results_de_dir, "expected-denoise.png", NULL);
    gchar *ok_denoise_calls = g_strdup_printf ("%s (gimp-file-save RUN-NONINTERACTIVE img drw \"%s\" \"%s\")",
                                               DENOISE_CALLS, ok_denoise_png, ok_denoise_png);
    gchar *expected_denoise_calls = g_strdup_printf ("(" DENOISE_PROC " RUN-NONINTERACTIVE img drw \"\" (/ 25 255) 3 1234 1 1)"
                                                     "(gimp-file-save RUN-NONINTERACTIVE img drw \"%s\" \"%s\")",
                                                     expected_denoise_png, expected_denoise_png);
    /* The same at bf16: what OK would have made without the hook's fp32. */
    gchar *expected_bf16_png = g_build_filename (results_de_dir, "expected-bf16.png", NULL);
    gchar *expected_bf16_calls = g_strdup_printf ("(" RENOISE_PROC " RUN-NONINTERACTIVE img drw \"\" 0.5 3 1234 1 0)"
                                                  "(" RENOISE_PROC " RUN-NONINTERACTIVE img drw \"\" 0.4 3 1234 1 2)"
                                                  "(gimp-file-save RUN-NONINTERACTIVE img drw \"%s\" \"%s\")",
                                                  expected_bf16_png, expected_bf16_png);
    gchar *commands[] = { script (test_image, ok_calls), script (test_image, expected_calls),
                          script (test_image, expected_bf16_calls),
                          script (noisy_image, ok_denoise_calls),
                          script (noisy_image, expected_denoise_calls), NULL };

    g_setenv ("DDPM_UI_TEST_RESPONSE", "ok", TRUE);
    run_gimp (results_de_dir, "de", commands);
    g_unsetenv ("DDPM_UI_TEST_RESPONSE");
    for (gchar **c = commands; *c; c++)
      g_free (*c);
    g_free (expected_bf16_png);
    g_free (expected_bf16_calls);
    g_free (ok_denoise_png);
    g_free (expected_denoise_png);
    g_free (ok_denoise_calls);
    g_free (expected_denoise_calls);
    g_free (ok_calls);
    g_free (expected_calls);
    g_free (ok_png);
    g_free (expected_png);
  }

  g_free (models_dir);
  g_free (plugin_copy);
  g_free (mo_built);
  g_free (mo_copy);
}

/* The record a dialog's hook wrote; fails the test (showing GIMP's output)
 * when the dialog never got there. */
/* The results of the run in `language` (NULL or "de"). */
static const gchar *
results_for (const gchar *language)
{
  ensure_gimp_ran ();
  return language ? results_de_dir : results_dir;
}

static GKeyFile *
load_result (const gchar *language, const gchar *procedure)
{
  GKeyFile *result = g_key_file_new ();
  gchar    *file;
  GError   *error = NULL;

  file = g_strdup_printf ("%s/%s.result", results_for (language), procedure);
  if (! g_key_file_load_from_file (result, file, G_KEY_FILE_NONE, &error))
    {
      g_printerr ("GIMP's output:\n%s\n", gimp_log);
      g_error ("%s: %s (the %s dialog was not shown, or its test hook did not run)",
               file, error->message, procedure);
    }
  g_assert_true (g_key_file_get_boolean (result, "dialog", "finished", NULL));
  g_free (file);
  return result;
}

static gdouble
get_double (GKeyFile *result, const gchar *key)
{
  GError *error = NULL;
  gdouble value = g_key_file_get_double (result, "dialog", key, &error);

  g_assert_no_error (error);
  return value;
}

#define assert_key_str(result, key, cmp, expected)              \
  G_STMT_START {                                                \
    gchar *value_ = ui_get (result, key);                          \
    g_assert_cmpstr (value_, cmp, expected);                    \
    g_free (value_);                                            \
  } G_STMT_END

#define assert_key_contains(result, key, needle)                \
  G_STMT_START {                                                \
    gchar *value_ = ui_get (result, key);                          \
    if (! strstr (value_, needle))                              \
      g_error ("%s = “%s” does not contain “%s”", key, value_, needle); \
    g_free (value_);                                            \
  } G_STMT_END

/* The screenshot is a picture of a dialog: big enough for its widgets, and
 * not blank (a dialog over an empty screen has text, frames, a preview). */
static void
assert_screenshot (const gchar *language, const gchar *procedure,
                   gint min_width, gint min_height)
{
  gchar     *file;
  GError    *error = NULL;
  GdkPixbuf *pixbuf;
  GHashTable *colours;
  gint        width, height, stride, n_channels;
  const guchar *pixels;

  file = g_strdup_printf ("%s/%s.png", results_for (language), procedure);
  pixbuf = gdk_pixbuf_new_from_file (file, &error);
  g_assert_no_error (error);
  width  = gdk_pixbuf_get_width (pixbuf);
  height = gdk_pixbuf_get_height (pixbuf);
  g_assert_cmpint (width, >=, min_width);
  g_assert_cmpint (height, >=, min_height);
  g_assert_cmpint (width, <=, 2000);
  g_assert_cmpint (height, <=, 2000);

  stride     = gdk_pixbuf_get_rowstride (pixbuf);
  n_channels = gdk_pixbuf_get_n_channels (pixbuf);
  pixels     = gdk_pixbuf_read_pixels (pixbuf);
  colours    = g_hash_table_new (NULL, NULL);
  for (gint y = 0; y < height; y++)
    for (gint x = 0; x < width; x++)
      {
        const guchar *p = pixels + y * stride + x * n_channels;

        g_hash_table_add (colours, GUINT_TO_POINTER ((p[0] << 16) | (p[1] << 8) | p[2]));
      }
  /* Anti-aliased text alone gives dozens of greys. */
  g_assert_cmpuint (g_hash_table_size (colours), >=, 32);

  g_hash_table_unref (colours);
  g_object_unref (pixbuf);
  g_free (file);
}

/* ------------------------------------------------------------- renoise */

static void
test_renoise_widgets (void)
{
  GKeyFile *r = load_result (NULL, RENOISE_PROC);

  assert_key_str (r, "title", ==, "Renoise with a Diffusion Model");
  assert_key_str (r, "help_id", ==, RENOISE_PROC);
  g_assert_true (ui_get_bool (r, "preview_is_drawable_preview"));
  g_assert_true (ui_get_bool (r, "preview_on_screen"));
  g_assert_true (ui_get_bool (r, "model_chooser_is_file_chooser_button"));
  g_assert_true (ui_get_bool (r, "model_chooser_on_screen"));
  g_assert_true (ui_get_bool (r, "strength_on_screen"));
  g_assert_true (ui_get_bool (r, "steps_on_screen"));
  g_assert_true (ui_get_bool (r, "seed_on_screen"));
  g_assert_true (ui_get_bool (r, "randomize_on_screen"));
  g_assert_true (ui_get_bool (r, "sampler_on_screen"));
  g_assert_true (ui_get_bool (r, "plan_on_screen"));
  g_assert_true (ui_get_bool (r, "ok_sensitive_initial"));
  g_key_file_free (r);
}

/* No model named: the default one is chosen, shown and filtered for. */
static void
test_renoise_default_model (void)
{
  GKeyFile *r = load_result (NULL, RENOISE_PROC);

  assert_key_str (r, "default_model", ==, model_file);
  assert_key_str (r, "model_path", ==, model_file);
  assert_key_str (r, "model_chooser_file", ==, model_file);
  assert_key_contains (r, "model_filter", "*.safetensors");
  g_key_file_free (r);
}

/* The plan line counts in the model's schedule (T = 1000): strength 0.4
 * means t0 = 400, and it follows the steps entry. */
static void
test_renoise_plan (void)
{
  GKeyFile *r = load_result (NULL, RENOISE_PROC);
  gchar    *initial = ui_get (r, "plan_initial");

  /* The last values (strength 0.5, 3 steps) of the run before. */
  g_assert_cmpstr (initial, ==, "Noise to t = 500 of 1000, then 3 denoising steps");
  assert_key_contains (r, "plan_strength_0.4", "t = 400 of 1000");
  g_assert_cmpfloat (get_double (r, "strength_after"), ==, 0.4);
  assert_key_str (r, "plan_steps_7", ==, "Noise to t = 400 of 1000, then 7 denoising steps");
  g_assert_cmpfloat (get_double (r, "steps_after"), ==, 7);
  /* The sampler combo writes the values: 0 = DDPM, 1 = DDIM, 2 = DPM-Solver++. */
  g_assert_cmpfloat (get_double (r, "sampler_after_ddpm"), ==, 0);
  g_assert_cmpfloat (get_double (r, "sampler_after_ddim"), ==, 1);
  g_assert_cmpfloat (get_double (r, "sampler_after_dpm"), ==, 2);
  g_free (initial);
  g_key_file_free (r);
}

/* A file that is not a model: the line explains, OK cannot be pressed;
 * the default model brings both back. */
static void
test_renoise_bad_model (void)
{
  GKeyFile *r = load_result (NULL, RENOISE_PROC);
  gchar    *bad = g_build_filename (results_for (NULL), "not-a-model.safetensors", NULL);

  assert_key_contains (r, "plan_bad_model", "not-a-model.safetensors");
  g_assert_false (ui_get_bool (r, "ok_sensitive_bad_model"));
  g_assert_true (ui_get_bool (r, "warning_icon_bad_model"));
  assert_key_str (r, "values_model_bad", ==, bad);

  /* Without any default model, the line says how to get one. */
  assert_key_contains (r, "plan_no_default_model", "No diffusion model is installed yet");
  assert_key_contains (r, "plan_no_default_model", "Train Model");
  g_assert_false (ui_get_bool (r, "ok_sensitive_no_default_model"));

  assert_key_contains (r, "plan_restored", "t = 400 of 1000");
  g_assert_true (ui_get_bool (r, "ok_sensitive_restored"));
  g_assert_false (ui_get_bool (r, "warning_icon_restored"));
  assert_key_str (r, "values_model_restored", ==, "");
  g_free (bad);
  g_key_file_free (r);
}

/* The live preview rendered through the render callback without an error. */
static void
test_renoise_preview (void)
{
  GKeyFile *r = load_result (NULL, RENOISE_PROC);

  if (ui_get_bool (r, "preview_error_shown"))
    {
      gchar *message = ui_get (r, "preview_error");

      g_error ("the preview failed: %s", message);
    }
  g_key_file_free (r);
}

static void
test_renoise_screenshot (void)
{
  assert_screenshot (NULL, RENOISE_PROC, 300, 300);
}

/* ------------------------------------------------------------ generate */

/* Generation is strength 1: no strength widget, t0 = T. */
static void
test_generate (void)
{
  GKeyFile *r = load_result (NULL, GENERATE_PROC);

  assert_key_str (r, "title", ==, "Generate with a Diffusion Model");
  assert_key_str (r, "help_id", ==, GENERATE_PROC);
  g_assert_true (ui_get_bool (r, "preview_on_screen"));
  g_assert_false (ui_get_bool (r, "strength_on_screen"));
  g_assert_true (ui_get_bool (r, "steps_on_screen"));
  g_assert_true (ui_get_bool (r, "seed_on_screen"));
  assert_key_str (r, "plan_initial", ==, "Start from pure noise at t = 1000 of 1000, then 3 denoising steps");
  assert_key_contains (r, "plan_strength_0.4", "t = 1000 of 1000");
  assert_key_str (r, "plan_steps_7", ==,
                  "Start from pure noise at t = 1000 of 1000, then 7 denoising steps");
  g_assert_false (ui_get_bool (r, "preview_error_shown"));
  g_key_file_free (r);
  assert_screenshot (NULL, GENERATE_PROC, 300, 250);
}

/* ------------------------------------------------------------- denoise */

/* The t at which the denoise starts for σ ([0, 1] scale) on the default
 * model's schedule, by the engine's own mapping. */
static gint
denoise_t (gdouble sigma)
{
  GError    *error = NULL;
  DdpmModel *model = ddpm_model_load (model_file, &error);
  gint       t;

  g_assert_no_error (error);
  t = ddpm_denoise_sigma_to_t (ddpm_model_get_schedule (model), sigma, &error);
  g_assert_no_error (error);
  g_assert_cmpint (ddpm_model_get_schedule (model)->T, ==, 1000);
  ddpm_model_free (model);
  return t;
}

static gchar *
denoise_plan (gdouble sigma, gint steps)
{
  gint t = denoise_t (sigma);

  return g_strdup_printf ("Start at t = %d of 1000, then %d denoising step%s",
                          t, MIN (steps, t), MIN (steps, t) == 1 ? "" : "s");
}

static void
test_denoise_widgets (void)
{
  GKeyFile *r = load_result (NULL, DENOISE_PROC);

  assert_key_str (r, "title", ==, "Denoise with a Diffusion Model");
  assert_key_str (r, "help_id", ==, DENOISE_PROC);
  g_assert_true (ui_get_bool (r, "preview_is_drawable_preview"));
  g_assert_true (ui_get_bool (r, "preview_on_screen"));
  g_assert_true (ui_get_bool (r, "model_chooser_on_screen"));
  assert_key_str (r, "model_path", ==, model_file);
  g_assert_true (ui_get_bool (r, "sigma_on_screen"));
  g_assert_true (ui_get_bool (r, "estimate_on_screen"));
  g_assert_true (ui_get_bool (r, "steps_on_screen"));
  g_assert_true (ui_get_bool (r, "seed_on_screen"));
  g_assert_true (ui_get_bool (r, "sampler_on_screen"));
  g_assert_true (ui_get_bool (r, "plan_on_screen"));
  g_assert_true (ui_get_bool (r, "ok_sensitive_initial"));
  g_assert_cmpfloat (get_double (r, "sampler_after_ddpm"), ==, 0);
  g_assert_cmpfloat (get_double (r, "sampler_after_ddim"), ==, 1);
  g_assert_cmpfloat (get_double (r, "sampler_after_dpm"), ==, 2);
  g_key_file_free (r);
}

/* The last values said "estimate": the toggle is on, the entry shows the
 * engine's estimate for these pixels, in 0–255 levels, and cannot be
 * edited; the values keep σ = 0 ("estimate when run").  Off, the entry
 * starts from the estimate. */
static void
test_denoise_estimate (void)
{
  GKeyFile *r = load_result (NULL, DENOISE_PROC);
  gdouble   expected = estimate_noise (noisy_image);
  gdouble   estimate = get_double (r, "estimate");

  g_test_message ("noise of %d levels: estimated %.3f by the dialog, %.3f here",
                  NOISE_LEVELS, estimate * 255, expected * 255);
  g_assert_cmpfloat (fabs (estimate - expected) * 255, <, 0.01);
  /* The rings' sharp edges bias it up a little (measured: 23.7 for 20). */
  g_assert_cmpfloat (fabs (estimate * 255 - NOISE_LEVELS), <, 0.3 * NOISE_LEVELS);

  g_assert_true (ui_get_bool (r, "estimate_active_initial"));
  g_assert_false (ui_get_bool (r, "sigma_sensitive_initial"));
  g_assert_cmpfloat (get_double (r, "values_sigma_initial"), ==, 0.0);
  g_assert_cmpfloat (fabs (get_double (r, "sigma_shown_initial") - estimate * 255), <, 1e-9);

  g_assert_false (ui_get_bool (r, "estimate_active_manual"));
  g_assert_true (ui_get_bool (r, "sigma_sensitive_manual"));
  g_assert_cmpfloat (fabs (get_double (r, "values_sigma_manual") - estimate), <, 1e-12);

  /* On again: the estimate, σ = 0 in the values, and the same plan. */
  g_assert_true (ui_get_bool (r, "estimate_active_estimating"));
  g_assert_false (ui_get_bool (r, "sigma_sensitive_estimating"));
  g_assert_cmpfloat (get_double (r, "values_sigma_estimating"), ==, 0.0);
  g_assert_cmpfloat (fabs (get_double (r, "sigma_shown_estimating") - estimate * 255), <, 1e-9);
  g_key_file_free (r);
}

/* The plan line: the t of σ on the model's schedule and the steps. */
static void
test_denoise_plan (void)
{
  GKeyFile *r = load_result (NULL, DENOISE_PROC);
  gdouble   estimate = get_double (r, "estimate");
  gchar    *initial = denoise_plan (estimate, 3);
  gchar    *at_25 = denoise_plan (25 / 255.0, 3);
  gchar    *at_25_7 = denoise_plan (25 / 255.0, 7);

  assert_key_str (r, "plan_initial", ==, initial);
  assert_key_str (r, "plan_estimating", ==, initial);
  /* 25 levels in the entry is σ = 25/255 in the values. */
  g_assert_cmpfloat (get_double (r, "values_sigma_25"), ==, 25 / 255.0);
  assert_key_str (r, "plan_25", ==, at_25);
  g_assert_true (ui_get_bool (r, "ok_sensitive_25"));
  assert_key_str (r, "plan_steps_7", ==, at_25_7);
  /* Noise and its removal start later in the chain when there is more. */
  g_assert_cmpint (denoise_t (25 / 255.0), >, denoise_t (estimate));
  g_assert_cmpfloat (get_double (r, "values_sigma_final"), ==, 25 / 255.0);
  g_assert_cmpfloat (get_double (r, "values_steps_final"), ==, 3);

  /* Level 0 by hand: nothing to run. */
  assert_key_contains (r, "plan_0", "Set a noise level above 0");
  g_assert_false (ui_get_bool (r, "ok_sensitive_0"));
  g_free (initial);
  g_free (at_25);
  g_free (at_25_7);
  g_key_file_free (r);
}

static void
test_denoise_bad_model (void)
{
  GKeyFile *r = load_result (NULL, DENOISE_PROC);
  gchar    *at_25 = denoise_plan (25 / 255.0, 3);

  assert_key_contains (r, "plan_bad_model", "not-a-model.safetensors");
  g_assert_false (ui_get_bool (r, "ok_sensitive_bad_model"));
  assert_key_str (r, "plan_restored", ==, at_25);
  g_assert_true (ui_get_bool (r, "ok_sensitive_restored"));
  assert_key_str (r, "values_model_restored", ==, "");
  g_free (at_25);
  g_key_file_free (r);
}

static void
test_denoise_preview (void)
{
  GKeyFile *r = load_result (NULL, DENOISE_PROC);

  if (ui_get_bool (r, "preview_error_shown"))
    {
      gchar *message = ui_get (r, "preview_error");

      g_error ("the preview failed: %s", message);
    }
  g_key_file_free (r);
  assert_screenshot (NULL, DENOISE_PROC, 300, 300);
}

/* --------------------------------------------------------------- train */

static void
test_train (void)
{
  GKeyFile *r = load_result (NULL, TRAIN_PROC);
  gchar    *label_initial = ui_get (r, "preset_label_initial");
  gchar    *label_after = ui_get (r, "preset_label_after");
  gchar    *typed = ui_get (r, "output_typed");

  assert_key_str (r, "title", ==, "Train a Diffusion Model");
  assert_key_str (r, "help_id", ==, TRAIN_PROC);
  g_assert_true (ui_get_bool (r, "output_on_screen"));
  g_assert_true (ui_get_bool (r, "browse_on_screen"));
  g_assert_true (ui_get_bool (r, "preset_on_screen"));
  g_assert_true (ui_get_bool (r, "iterations_on_screen"));
  g_assert_true (ui_get_bool (r, "patch_size_on_screen"));
  g_assert_true (ui_get_bool (r, "seed_on_screen"));
  g_assert_true (ui_get_bool (r, "resume_on_screen"));

  /* The output file: proposed, required. */
  assert_key_contains (r, "output_initial", ".safetensors");
  g_assert_true (ui_get_bool (r, "ok_sensitive_initial"));
  g_assert_false (ui_get_bool (r, "ok_sensitive_no_output"));
  g_assert_true (ui_get_bool (r, "ok_sensitive_output"));
  assert_key_str (r, "output_after", ==, typed);
  assert_key_str (r, "values_output", ==, typed);

  /* Presets: the tiny one is smaller than CIFAR's (35.7 M in the paper). */
  assert_key_str (r, "preset_initial", ==, "tiny");
  assert_key_str (r, "preset_after", ==, "cifar");
  g_assert_true (strstr (label_initial, "million parameters") != NULL);
  g_assert_true (strstr (label_after, "million parameters") != NULL);
  g_assert_cmpfloat (g_ascii_strtod (label_initial, NULL), <, g_ascii_strtod (label_after, NULL));
  g_assert_cmpfloat (g_ascii_strtod (label_after, NULL), >, 30.0);
  assert_key_str (r, "values_preset", ==, "tiny");

  g_assert_cmpfloat (get_double (r, "patch_size_after_37"), ==, 40);
  g_assert_cmpfloat (get_double (r, "iterations_after"), ==, 250);
  g_assert_cmpfloat (get_double (r, "values_patch_size"), ==, 40);
  g_assert_cmpfloat (get_double (r, "values_iterations"), ==, 250);

  /* Resuming needs a checkpoint, and makes the preset moot. */
  g_assert_false (ui_get_bool (r, "ok_sensitive_resume_without_file"));
  g_assert_false (ui_get_bool (r, "preset_sensitive_resume"));
  g_assert_true (ui_get_bool (r, "resume_chooser_sensitive_resume"));
  g_assert_true (ui_get_bool (r, "ok_sensitive_resume_off"));
  g_assert_false (ui_get_bool (r, "resume_chooser_sensitive_off"));
  assert_key_str (r, "values_resume", ==, "");

  g_free (label_initial);
  g_free (label_after);
  g_free (typed);
  g_key_file_free (r);
  assert_screenshot (NULL, TRAIN_PROC, 300, 250);
}

/* ------------------------------------------------------------ language */

/* With LANGUAGE=de the dialog speaks German: the catalogue built from
 * po/de.po is found and used, plural forms included. */
static void
test_renoise_german (void)
{
  GKeyFile *r = load_result ("de", RENOISE_PROC);

  assert_key_str (r, "title", ==, "Mit einem Diffusionsmodell neu verrauschen");
  assert_key_str (r, "plan_initial", ==,
                  "Bis t = 500 von 1000 verrauschen, dann 3 Entrauschungsschritte");
  assert_key_str (r, "plan_strength_0.4", ==,
                  "Bis t = 400 von 1000 verrauschen, dann 3 Entrauschungsschritte");
  assert_key_str (r, "plan_steps_7", ==,
                  "Bis t = 400 von 1000 verrauschen, dann 7 Entrauschungsschritte");
  assert_key_contains (r, "plan_bad_model", "Das Modell „not-a-model.safetensors“ kann nicht verwendet werden");
  g_assert_false (ui_get_bool (r, "preview_error_shown"));
  g_key_file_free (r);
  assert_screenshot ("de", RENOISE_PROC, 300, 300);
}

static void
test_denoise_german (void)
{
  GKeyFile *r = load_result ("de", DENOISE_PROC);
  gint      t = denoise_t (get_double (r, "estimate"));
  gchar    *plan = g_strdup_printf ("Bei t = %d von 1000 beginnen, dann %d "
                                    "Entrauschungsschritte", t, MIN (3, t));

  assert_key_str (r, "title", ==, "Mit einem Diffusionsmodell entrauschen");
  assert_key_str (r, "plan_initial", ==, plan);
  assert_key_contains (r, "plan_0", "Geben Sie einen Rauschpegel über 0 an");
  g_assert_false (ui_get_bool (r, "preview_error_shown"));
  g_free (plan);
  g_key_file_free (r);
  assert_screenshot ("de", DENOISE_PROC, 300, 300);
}

/* Pixels of a PNG as loaded by gdk-pixbuf. */
static GdkPixbuf *
load_png (const gchar *dir, const gchar *name)
{
  gchar     *file = g_build_filename (dir, name, NULL);
  GError    *error = NULL;
  GdkPixbuf *pixbuf = gdk_pixbuf_new_from_file (file, &error);

  if (error)
    g_printerr ("GIMP's output:\n%s\n", gimp_log);
  g_assert_no_error (error);
  g_free (file);
  return pixbuf;
}

/* The number of bytes in which two same-sized pictures differ. */
static gsize
pixels_differing (GdkPixbuf *a, GdkPixbuf *b)
{
  gint   w = gdk_pixbuf_get_width (a), h = gdk_pixbuf_get_height (a);
  gint   n = gdk_pixbuf_get_n_channels (a);
  gsize  differing = 0;

  g_assert_cmpint (gdk_pixbuf_get_width (b), ==, w);
  g_assert_cmpint (gdk_pixbuf_get_height (b), ==, h);
  g_assert_cmpint (gdk_pixbuf_get_n_channels (b), ==, n);
  for (gint y = 0; y < h; y++)
    {
      const guchar *pa = gdk_pixbuf_read_pixels (a) + y * gdk_pixbuf_get_rowstride (a);
      const guchar *pb = gdk_pixbuf_read_pixels (b) + y * gdk_pixbuf_get_rowstride (b);

      for (gint i = 0; i < w * n; i++)
        differing += pa[i] != pb[i];
    }
  return differing;
}

/* OK runs the procedure with the dialog's values, not the arguments nor
 * the last values: the result equals a non-interactive run with them. */
static void
test_renoise_ok (void)
{
  GKeyFile  *r = load_result ("de", RENOISE_PROC);
  GdkPixbuf *ok, *expected, *input;

  g_assert_cmpfloat (get_double (r, "strength_after"), ==, 0.4);
  ok       = load_png (results_for ("de"), "ok.png");
  expected = load_png (results_for ("de"), "expected.png");
  input    = gdk_pixbuf_new_from_file (test_image, NULL);
  g_assert_nonnull (input);

  g_assert_cmpuint (pixels_differing (ok, expected), ==, 0);
  g_assert_cmpuint (pixels_differing (ok, input), >, 0);

  g_object_unref (ok);
  g_object_unref (expected);
  g_object_unref (input);
  g_key_file_free (r);
}

/* OK on the denoise dialog runs its values (σ 25 levels typed, not the
 * estimate of the arguments and last values). */
static void
test_denoise_ok (void)
{
  GKeyFile  *r = load_result ("de", DENOISE_PROC);
  GdkPixbuf *ok, *expected, *input;

  g_assert_cmpfloat (get_double (r, "values_sigma_final"), ==, 25 / 255.0);
  ok       = load_png (results_for ("de"), "ok-denoise.png");
  expected = load_png (results_for ("de"), "expected-denoise.png");
  input    = gdk_pixbuf_new_from_file (noisy_image, NULL);
  g_assert_nonnull (input);

  g_assert_cmpuint (pixels_differing (ok, expected), ==, 0);
  g_assert_cmpuint (pixels_differing (ok, input), >, 0);

  g_object_unref (ok);
  g_object_unref (expected);
  g_object_unref (input);
  g_key_file_free (r);
}

/* ------------------------------------------------------------ precision */

/* The precision combo writes the values, and OK runs what it shows: the
 * hook leaves fp32 (the last values said auto), and the German OK run
 * came out as a non-interactive fp32 run (test_renoise_ok) and, where
 * the CPU runs bf16, unlike a bf16 one. */
static void
test_precision (void)
{
  GKeyFile  *r = load_result ("de", RENOISE_PROC);
  GKeyFile  *d = load_result (NULL, DENOISE_PROC);
  GdkPixbuf *ok, *bf16;

  g_assert_true (ui_get_bool (r, "precision_on_screen"));
  g_assert_cmpfloat (get_double (r, "precision_initial"), ==, DDPM_PRECISION_AUTO);
  g_assert_cmpfloat (get_double (r, "precision_after_bf16"), ==, DDPM_PRECISION_BF16);
  g_assert_cmpfloat (get_double (r, "precision_after_fp32"), ==, DDPM_PRECISION_FP32);
  g_assert_true (ui_get_bool (d, "precision_on_screen"));
  g_assert_cmpfloat (get_double (d, "precision_after_fp32"), ==, DDPM_PRECISION_FP32);

  ok   = load_png (results_for ("de"), "ok.png");
  bf16 = load_png (results_for ("de"), "expected-bf16.png");
  if (ddpm_cpu_has_avx512_bf16 ())
    g_assert_cmpuint (pixels_differing (ok, bf16), >, 0);
  else
    g_assert_cmpuint (pixels_differing (ok, bf16), ==, 0);
  g_object_unref (ok);
  g_object_unref (bf16);
  g_key_file_free (r);
  g_key_file_free (d);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/ui/renoise/widgets", test_renoise_widgets);
  g_test_add_func ("/ui/renoise/default-model", test_renoise_default_model);
  g_test_add_func ("/ui/renoise/plan", test_renoise_plan);
  g_test_add_func ("/ui/renoise/bad-model", test_renoise_bad_model);
  g_test_add_func ("/ui/renoise/preview", test_renoise_preview);
  g_test_add_func ("/ui/renoise/screenshot", test_renoise_screenshot);
  g_test_add_func ("/ui/generate/dialog", test_generate);
  g_test_add_func ("/ui/denoise/widgets", test_denoise_widgets);
  g_test_add_func ("/ui/denoise/estimate", test_denoise_estimate);
  g_test_add_func ("/ui/denoise/plan", test_denoise_plan);
  g_test_add_func ("/ui/denoise/bad-model", test_denoise_bad_model);
  g_test_add_func ("/ui/denoise/preview", test_denoise_preview);
  g_test_add_func ("/ui/train/dialog", test_train);
  g_test_add_func ("/ui/renoise/german", test_renoise_german);
  g_test_add_func ("/ui/renoise/ok", test_renoise_ok);
  g_test_add_func ("/ui/denoise/german", test_denoise_german);
  g_test_add_func ("/ui/denoise/ok", test_denoise_ok);
  g_test_add_func ("/ui/precision", test_precision);

  return g_test_run ();
}
