/* ui-test.c: the hooks through which the 'ui' test suite drives the real
 * dialogs inside a real GIMP.  Linked only into the test build of the
 * plug-in, gimp-ddpm-uitest, whose main installs them (ui_test_install);
 * the installed gimp-ddpm has none.
 *
 * HOW IT WORKS.  A GimpDrawablePreview needs a drawable of a running GIMP,
 * so the dialogs can only be tested inside one: tests/ui/test-ui.c starts
 * gimp-2.10 under Xvfb, with gimp-ddpm-uitest installed as the plug-in,
 * and batch commands that call the procedures with RUN-INTERACTIVE and the
 * environment variable DDPM_UI_TEST set to a directory.  The dialog, once
 * shown, calls its hook; with the variable set the hook waits for the main
 * loop to settle (the preview renders), then, like a user would, changes
 * values through the widgets' own adjustments and entries, and writes what
 * the dialog showed before and after into DIR/<procedure>.result (a
 * GKeyFile, group "dialog").  It saves a screenshot of the dialog window as
 * DIR/<procedure>.png and answers the dialog with CANCEL (or OK when
 * DDPM_UI_TEST_RESPONSE=ok), so GIMP returns to the batch script.
 * The hook only observes and records: the test program makes every
 * assertion on the recorded facts.  Without the variable the hooks return
 * at once. */
#include "ui-private.h"
#include "ui-test.h"

#include <string.h>

/* Milliseconds to let the dialog map and the preview render before the
 * first look, and after the last change before the screenshot. */
#define SETTLE_MS 1500

typedef struct
{
  gchar            *dir;
  const gchar      *procedure;
  GKeyFile         *result;
  UiRenoiseWidgets *renoise;
  UiDenoiseWidgets *denoise;
  UiTrainWidgets   *train;
  guint             source;     /* the pending timeout, 0 if none */
} UiTest;

static void
ui_test_free (UiTest *test)
{
  g_key_file_free (test->result);
  g_free (test->dir);
  g_free (test);
}

static UiTest *
ui_test_new (const gchar *procedure)
{
  const gchar *dir = g_getenv ("DDPM_UI_TEST");
  UiTest      *test;

  if (! dir || ! *dir)
    return NULL;

  test = g_new0 (UiTest, 1);
  test->dir       = g_strdup (dir);
  test->procedure = procedure;
  test->result    = g_key_file_new ();
  return test;
}

static void
record_string (UiTest      *test,
               const gchar *key,
               const gchar *value)
{
  g_key_file_set_string (test->result, "dialog", key, value ? value : "");
}

static void
record_bool (UiTest      *test,
             const gchar *key,
             gboolean     value)
{
  g_key_file_set_boolean (test->result, "dialog", key, value);
}

static void
record_double (UiTest      *test,
               const gchar *key,
               gdouble      value)
{
  g_key_file_set_double (test->result, "dialog", key, value);
}

/* Whether the dialog's OK (response GTK_RESPONSE_OK) can be pressed. */
static gboolean
ok_sensitive (GtkWidget *dialog)
{
  GtkWidget *button;

  button = gtk_dialog_get_widget_for_response (GTK_DIALOG (dialog), GTK_RESPONSE_OK);
  return button && gtk_widget_is_sensitive (button);
}

/* What a widget shows on screen: realised, mapped, with a size. */
static gboolean
on_screen (GtkWidget *widget)
{
  GtkAllocation a;

  if (! widget || ! gtk_widget_get_mapped (widget))
    return FALSE;
  gtk_widget_get_allocation (widget, &a);
  return a.width > 1 && a.height > 1;
}

/* Save the dialog window's pixels as DIR/<procedure>.png.  With no window
 * manager under Xvfb, raise it so that no other GIMP window covers it. */
static void
record_screenshot (UiTest    *test,
                   GtkWidget *dialog)
{
  GdkWindow *window = gtk_widget_get_window (dialog);
  GdkPixbuf *pixbuf;
  GError    *error = NULL;
  gchar     *file;
  gint       width, height;

  gdk_window_raise (window);
  gdk_window_process_all_updates ();
  gdk_flush ();
  while (gtk_events_pending ())
    gtk_main_iteration ();
  gdk_window_process_all_updates ();
  gdk_flush ();

  gdk_drawable_get_size (GDK_DRAWABLE (window), &width, &height);
  pixbuf = gdk_pixbuf_get_from_drawable (NULL, GDK_DRAWABLE (window), NULL,
                                         0, 0, 0, 0, width, height);
  file = g_strdup_printf ("%s%c%s.png", test->dir, G_DIR_SEPARATOR, test->procedure);
  if (! pixbuf || ! gdk_pixbuf_save (pixbuf, file, "png", &error, NULL))
    record_string (test, "screenshot_error",
                   error ? error->message : "gdk_pixbuf_get_from_drawable failed");
  else
    record_string (test, "screenshot", file);
  g_clear_error (&error);
  g_clear_object (&pixbuf);
  g_free (file);
}

/* The dialog is gone (closed by the hook, or by hand before the hook ran):
 * nothing may touch its widgets any more. */
static void
ui_test_dialog_destroyed (GtkWidget *dialog,
                          UiTest    *test)
{
  if (test->source)
    g_source_remove (test->source);
  ui_test_free (test);
}

static void
ui_test_start (UiTest      *test,
               GtkWidget   *dialog,
               GSourceFunc  first_step)
{
  test->source = g_timeout_add (SETTLE_MS, first_step, test);
  g_signal_connect (dialog, "destroy",
                    G_CALLBACK (ui_test_dialog_destroyed), test);
}

/* Write the record and answer the dialog; its destruction then frees
 * `test`. */
static gboolean
finish (UiTest    *test,
        GtkWidget *dialog)
{
  gchar  *file;
  GError *error = NULL;

  record_screenshot (test, dialog);
  record_bool (test, "finished", TRUE);

  file = g_strdup_printf ("%s%c%s.result", test->dir, G_DIR_SEPARATOR, test->procedure);
  if (! g_key_file_save_to_file (test->result, file, &error))
    {
      g_printerr ("%s: %s\n", file, error->message);
      g_clear_error (&error);
    }
  g_free (file);

  test->source = 0;
  /* DDPM_UI_TEST_RESPONSE=ok presses OK instead: the procedure then runs
   * with the values the hook left in the dialog. */
  gtk_dialog_response (GTK_DIALOG (dialog),
                       g_strcmp0 (g_getenv ("DDPM_UI_TEST_RESPONSE"), "ok") == 0
                       ? GTK_RESPONSE_OK : GTK_RESPONSE_CANCEL);
  return G_SOURCE_REMOVE;
}

/* The precision combo: on screen, what it shows first, and the values it
 * writes for bf16 and then fp32 (left selected). */
static void
record_precision (UiTest    *test,
                  GtkWidget *combo,
                  gint      *precision)
{
  gint active = -1;

  record_bool (test, "precision_on_screen", on_screen (combo));
  gimp_int_combo_box_get_active (GIMP_INT_COMBO_BOX (combo), &active);
  record_double (test, "precision_initial", active);
  gimp_int_combo_box_set_active (GIMP_INT_COMBO_BOX (combo), DDPM_PRECISION_BF16);
  record_double (test, "precision_after_bf16", *precision);
  gimp_int_combo_box_set_active (GIMP_INT_COMBO_BOX (combo), DDPM_PRECISION_FP32);
  record_double (test, "precision_after_fp32", *precision);
}

/* ------------------------------------------------------ renoise / generate */

static gboolean
renoise_finish (gpointer data)
{
  UiTest           *test = data;
  UiRenoiseWidgets *w = test->renoise;

  record_bool (test, "preview_error_shown", gtk_widget_get_visible (w->preview_error));
  record_string (test, "preview_error", gtk_label_get_text (GTK_LABEL (w->preview_error)));
  return finish (test, w->dialog);
}

static gboolean
renoise_poke (gpointer data)
{
  UiTest           *test = data;
  UiRenoiseWidgets *w = test->renoise;
  gchar            *text;
  gchar            *bad_model;
  gdouble           steps;

  /* What the dialog shows as it opens. */
  record_string (test, "title", gtk_window_get_title (GTK_WINDOW (w->dialog)));
  record_string (test, "help_id",
                 g_object_get_data (G_OBJECT (w->dialog), "gimp-help-id"));
  record_bool (test, "preview_is_drawable_preview",
               GIMP_IS_DRAWABLE_PREVIEW (w->preview));
  record_bool (test, "preview_on_screen", on_screen (w->preview));
  record_bool (test, "model_chooser_on_screen", on_screen (w->model_chooser));
  record_bool (test, "model_chooser_is_file_chooser_button",
               GTK_IS_FILE_CHOOSER_BUTTON (w->model_chooser));
  {
    GtkFileFilter *filter = gtk_file_chooser_get_filter (GTK_FILE_CHOOSER (w->model_chooser));

    record_string (test, "model_filter", filter ? gtk_file_filter_get_name (filter) : NULL);
  }
  text = gtk_file_chooser_get_filename (GTK_FILE_CHOOSER (w->model_chooser));
  record_string (test, "model_chooser_file", text);
  g_free (text);
  record_string (test, "default_model", w->default_model);
  record_string (test, "model_path", w->model_path);
  record_bool (test, "strength_on_screen",
               on_screen (GIMP_SCALE_ENTRY_SCALE (w->strength_adj)) ||
               on_screen (GIMP_SCALE_ENTRY_SPINBUTTON (w->strength_adj)));
  record_bool (test, "steps_on_screen", on_screen (GIMP_SCALE_ENTRY_SCALE (w->steps_adj)));
  record_bool (test, "seed_on_screen", on_screen (GIMP_RANDOM_SEED_SPINBUTTON (w->seed_box)));
  record_bool (test, "randomize_on_screen", on_screen (GIMP_RANDOM_SEED_TOGGLE (w->seed_box)));
  record_bool (test, "sampler_on_screen", on_screen (w->sampler_combo));
  record_bool (test, "plan_on_screen", on_screen (w->plan_label));
  record_string (test, "plan_initial", gtk_label_get_text (GTK_LABEL (w->plan_label)));
  record_bool (test, "ok_sensitive_initial", ok_sensitive (w->dialog));
  record_string (test, "model_info", gtk_label_get_text (GTK_LABEL (w->model_info_label)));
  record_bool (test, "model_info_on_screen", on_screen (w->model_info_label));

  /* Move the strength slider and the steps entry: the plan line follows. */
  gtk_adjustment_set_value (GTK_ADJUSTMENT (w->strength_adj), 0.4);
  record_double (test, "strength_after", w->work.strength);
  record_string (test, "plan_strength_0.4", gtk_label_get_text (GTK_LABEL (w->plan_label)));

  steps = gtk_adjustment_get_value (GTK_ADJUSTMENT (w->steps_adj));
  gtk_adjustment_set_value (GTK_ADJUSTMENT (w->steps_adj), 7);
  record_double (test, "steps_after", w->work.steps);
  record_string (test, "plan_steps_7", gtk_label_get_text (GTK_LABEL (w->plan_label)));
  gtk_adjustment_set_value (GTK_ADJUSTMENT (w->steps_adj), steps);

  gimp_int_combo_box_set_active (GIMP_INT_COMBO_BOX (w->sampler_combo), DDPM_SAMPLER_DDPM);
  record_double (test, "sampler_after_ddpm", w->work.sampler);
  gimp_int_combo_box_set_active (GIMP_INT_COMBO_BOX (w->sampler_combo), DDPM_SAMPLER_DPM_2M);
  record_double (test, "sampler_after_dpm", w->work.sampler);
  gimp_int_combo_box_set_active (GIMP_INT_COMBO_BOX (w->sampler_combo), DDPM_SAMPLER_DDIM);
  record_double (test, "sampler_after_ddim", w->work.sampler);

  /* Precision: the combo writes the values; fp32 is left for OK (the ok
   * runs compare with non-interactive fp32 and bf16 runs). */
  record_precision (test, w->precision_combo, &w->work.precision);

  /* A file that is not a model: the plan line says why, OK goes grey. */
  bad_model = g_build_filename (test->dir, "not-a-model.safetensors", NULL);
  g_file_set_contents (bad_model, "this is not a safetensors file", -1, NULL);
  ui_renoise_dialog_set_model (w, bad_model);
  record_string (test, "plan_bad_model", gtk_label_get_text (GTK_LABEL (w->plan_label)));
  record_bool (test, "ok_sensitive_bad_model", ok_sensitive (w->dialog));
  record_bool (test, "warning_icon_bad_model", gtk_widget_get_visible (w->plan_icon));
  record_string (test, "values_model_bad", w->work.model);
  g_free (bad_model);

  /* No default model installed (a fresh installation): the line says what
   * to do, OK goes grey. */
  {
    gchar *installed = w->default_model;

    w->default_model = g_build_filename (test->dir, "no-such-dir",
                                         "default.safetensors", NULL);
    ui_renoise_dialog_set_model (w, "");
    record_string (test, "plan_no_default_model",
                   gtk_label_get_text (GTK_LABEL (w->plan_label)));
    record_bool (test, "ok_sensitive_no_default_model", ok_sensitive (w->dialog));
    g_free (w->default_model);
    w->default_model = installed;
  }

  /* And back to the default model. */
  ui_renoise_dialog_set_model (w, "");
  record_string (test, "plan_restored", gtk_label_get_text (GTK_LABEL (w->plan_label)));
  record_bool (test, "ok_sensitive_restored", ok_sensitive (w->dialog));
  record_bool (test, "warning_icon_restored", gtk_widget_get_visible (w->plan_icon));
  record_string (test, "values_model_restored", w->work.model);

  /* Let the preview render the last values, then take the picture. */
  test->source = g_timeout_add (SETTLE_MS, renoise_finish, test);
  return G_SOURCE_REMOVE;
}

static void
test_hook_renoise (UiRenoiseWidgets *w)
{
  UiTest *test = ui_test_new (w->generate ? GENERATE_PROC : RENOISE_PROC);

  if (! test)
    return;
  test->renoise = w;
  ui_test_start (test, w->dialog, renoise_poke);
}

/* ------------------------------------------------------------------ denoise */

static gboolean
denoise_finish (gpointer data)
{
  UiTest           *test = data;
  UiDenoiseWidgets *w = test->denoise;

  record_bool (test, "preview_error_shown", gtk_widget_get_visible (w->preview_error));
  record_string (test, "preview_error", gtk_label_get_text (GTK_LABEL (w->preview_error)));
  return finish (test, w->dialog);
}

static void
record_denoise_state (UiTest           *test,
                      UiDenoiseWidgets *w,
                      const gchar      *suffix)
{
  gchar *key;

#define RECORD(what, call) \
  key = g_strconcat (what, "_", suffix, NULL); call; g_free (key)
  RECORD ("plan", record_string (test, key, gtk_label_get_text (GTK_LABEL (w->plan_label))));
  RECORD ("ok_sensitive", record_bool (test, key, ok_sensitive (w->dialog)));
  RECORD ("values_sigma", record_double (test, key, w->work.sigma));
  RECORD ("sigma_shown", record_double (test, key,
                                        gtk_adjustment_get_value (GTK_ADJUSTMENT (w->sigma_adj))));
  RECORD ("sigma_sensitive", record_bool (test, key,
                                          gtk_widget_is_sensitive (GIMP_SCALE_ENTRY_SPINBUTTON (w->sigma_adj))));
  RECORD ("estimate_active", record_bool (test, key,
                                          gtk_toggle_button_get_active (GTK_TOGGLE_BUTTON (w->estimate_toggle))));
#undef RECORD
}

static gboolean
denoise_poke (gpointer data)
{
  UiTest           *test = data;
  UiDenoiseWidgets *w = test->denoise;
  gchar            *bad_model;
  gdouble           steps;

  /* What the dialog shows as it opens. */
  record_string (test, "title", gtk_window_get_title (GTK_WINDOW (w->dialog)));
  record_string (test, "help_id",
                 g_object_get_data (G_OBJECT (w->dialog), "gimp-help-id"));
  record_bool (test, "preview_is_drawable_preview",
               GIMP_IS_DRAWABLE_PREVIEW (w->preview));
  record_bool (test, "preview_on_screen", on_screen (w->preview));
  record_bool (test, "model_chooser_on_screen", on_screen (w->model_chooser));
  record_string (test, "model_path", w->model_path);
  record_bool (test, "sigma_on_screen",
               on_screen (GIMP_SCALE_ENTRY_SCALE (w->sigma_adj)) &&
               on_screen (GIMP_SCALE_ENTRY_SPINBUTTON (w->sigma_adj)));
  record_bool (test, "estimate_on_screen", on_screen (w->estimate_toggle));
  record_bool (test, "steps_on_screen", on_screen (GIMP_SCALE_ENTRY_SCALE (w->steps_adj)));
  record_bool (test, "seed_on_screen", on_screen (GIMP_RANDOM_SEED_SPINBUTTON (w->seed_box)));
  record_bool (test, "sampler_on_screen", on_screen (w->sampler_combo));
  record_bool (test, "plan_on_screen", on_screen (w->plan_label));
  record_double (test, "estimate", w->estimate);
  record_denoise_state (test, w, "initial");

  /* "Estimate" off: the entry keeps the estimate and can be edited. */
  gtk_toggle_button_set_active (GTK_TOGGLE_BUTTON (w->estimate_toggle), FALSE);
  record_denoise_state (test, w, "manual");

  /* A level typed in 0–255 is σ on the [0, 1] scale; the plan follows. */
  gtk_adjustment_set_value (GTK_ADJUSTMENT (w->sigma_adj), 25.0);
  record_denoise_state (test, w, "25");

  steps = gtk_adjustment_get_value (GTK_ADJUSTMENT (w->steps_adj));
  gtk_adjustment_set_value (GTK_ADJUSTMENT (w->steps_adj), 7);
  record_string (test, "plan_steps_7", gtk_label_get_text (GTK_LABEL (w->plan_label)));
  gtk_adjustment_set_value (GTK_ADJUSTMENT (w->steps_adj), steps);

  /* No noise given: nothing to run. */
  gtk_adjustment_set_value (GTK_ADJUSTMENT (w->sigma_adj), 0.0);
  record_denoise_state (test, w, "0");
  gtk_adjustment_set_value (GTK_ADJUSTMENT (w->sigma_adj), 25.0);

  gimp_int_combo_box_set_active (GIMP_INT_COMBO_BOX (w->sampler_combo), DDPM_SAMPLER_DDPM);
  record_double (test, "sampler_after_ddpm", w->work.sampler);
  gimp_int_combo_box_set_active (GIMP_INT_COMBO_BOX (w->sampler_combo), DDPM_SAMPLER_DPM_2M);
  record_double (test, "sampler_after_dpm", w->work.sampler);
  gimp_int_combo_box_set_active (GIMP_INT_COMBO_BOX (w->sampler_combo), DDPM_SAMPLER_DDIM);
  record_double (test, "sampler_after_ddim", w->work.sampler);

  /* Precision: the combo writes the values; fp32 is left for OK (the ok
   * runs compare with non-interactive fp32 and bf16 runs). */
  record_precision (test, w->precision_combo, &w->work.precision);

  /* A file that is not a model, then the default one again. */
  bad_model = g_build_filename (test->dir, "not-a-model.safetensors", NULL);
  g_file_set_contents (bad_model, "this is not a safetensors file", -1, NULL);
  ui_denoise_dialog_set_model (w, bad_model);
  record_denoise_state (test, w, "bad_model");
  g_free (bad_model);
  ui_denoise_dialog_set_model (w, "");
  record_denoise_state (test, w, "restored");
  record_string (test, "values_model_restored", w->work.model);

  /* "Estimate" on again: back to the estimate, and σ = 0 in the values;
   * then off, leaving 25 (what OK runs with DDPM_UI_TEST_RESPONSE=ok). */
  gtk_toggle_button_set_active (GTK_TOGGLE_BUTTON (w->estimate_toggle), TRUE);
  record_denoise_state (test, w, "estimating");
  gtk_toggle_button_set_active (GTK_TOGGLE_BUTTON (w->estimate_toggle), FALSE);
  gtk_adjustment_set_value (GTK_ADJUSTMENT (w->sigma_adj), 25.0);
  {
    PluginDenoiseValues vals;

    ui_denoise_dialog_get_values (w, &vals);
    record_double (test, "values_sigma_final", vals.sigma);
    record_double (test, "values_steps_final", vals.steps);
  }

  /* Let the preview render the last values, then take the picture. */
  test->source = g_timeout_add (SETTLE_MS, denoise_finish, test);
  return G_SOURCE_REMOVE;
}

static void
test_hook_denoise (UiDenoiseWidgets *w)
{
  UiTest *test = ui_test_new (DENOISE_PROC);

  if (! test)
    return;
  test->denoise = w;
  ui_test_start (test, w->dialog, denoise_poke);
}

/* ------------------------------------------------------------------- train */

static gboolean
train_poke (gpointer data)
{
  UiTest         *test = data;
  UiTrainWidgets *w = test->train;
  gchar          *output;

  record_string (test, "title", gtk_window_get_title (GTK_WINDOW (w->dialog)));
  record_string (test, "help_id",
                 g_object_get_data (G_OBJECT (w->dialog), "gimp-help-id"));
  record_bool (test, "output_on_screen", on_screen (w->output_entry));
  record_bool (test, "browse_on_screen", on_screen (w->browse_button));
  record_bool (test, "preset_on_screen", on_screen (w->preset_combo));
  record_bool (test, "iterations_on_screen",
               on_screen (GIMP_SCALE_ENTRY_SCALE (w->iterations_adj)));
  record_bool (test, "patch_size_on_screen",
               on_screen (GIMP_SCALE_ENTRY_SCALE (w->patch_size_adj)));
  record_bool (test, "seed_on_screen", on_screen (GIMP_RANDOM_SEED_SPINBUTTON (w->seed_box)));
  record_bool (test, "resume_on_screen", on_screen (w->resume_toggle));
  record_string (test, "output_initial", gtk_entry_get_text (GTK_ENTRY (w->output_entry)));
  record_string (test, "preset_initial", w->work.preset);
  record_string (test, "preset_label_initial", gtk_label_get_text (GTK_LABEL (w->preset_label)));
  record_bool (test, "ok_sensitive_initial", ok_sensitive (w->dialog));

  /* No output file: nothing to train into. */
  gtk_entry_set_text (GTK_ENTRY (w->output_entry), "");
  record_bool (test, "ok_sensitive_no_output", ok_sensitive (w->dialog));

  output = g_build_filename (test->dir, "trained.safetensors", NULL);
  gtk_entry_set_text (GTK_ENTRY (w->output_entry), output);
  record_bool (test, "ok_sensitive_output", ok_sensitive (w->dialog));
  record_string (test, "output_typed", output);
  record_string (test, "output_after", w->work.output);
  g_free (output);

  /* Another preset: the values and the size line follow. */
  gimp_int_combo_box_set_active (GIMP_INT_COMBO_BOX (w->preset_combo), 2);
  record_string (test, "preset_after", w->work.preset);
  record_string (test, "preset_label_after", gtk_label_get_text (GTK_LABEL (w->preset_label)));
  gimp_int_combo_box_set_active (GIMP_INT_COMBO_BOX (w->preset_combo), 0);

  /* Patch sizes snap to multiples of 8. */
  gtk_adjustment_set_value (GTK_ADJUSTMENT (w->patch_size_adj), 37);
  record_double (test, "patch_size_after_37", w->work.patch_size);
  gtk_adjustment_set_value (GTK_ADJUSTMENT (w->iterations_adj), 250);
  record_double (test, "iterations_after", w->work.iterations);

  /* Resuming without a checkpoint chosen cannot run; the preset is moot. */
  gtk_toggle_button_set_active (GTK_TOGGLE_BUTTON (w->resume_toggle), TRUE);
  record_bool (test, "ok_sensitive_resume_without_file", ok_sensitive (w->dialog));
  record_bool (test, "preset_sensitive_resume", gtk_widget_is_sensitive (w->preset_combo));
  record_bool (test, "resume_chooser_sensitive_resume", gtk_widget_is_sensitive (w->resume_chooser));
  gtk_toggle_button_set_active (GTK_TOGGLE_BUTTON (w->resume_toggle), FALSE);
  record_bool (test, "ok_sensitive_resume_off", ok_sensitive (w->dialog));
  record_bool (test, "resume_chooser_sensitive_off", gtk_widget_is_sensitive (w->resume_chooser));

  {
    PluginTrainValues vals;

    ui_train_dialog_get_values (w, &vals);
    record_string (test, "values_output", vals.output);
    record_string (test, "values_preset", vals.preset);
    record_double (test, "values_iterations", vals.iterations);
    record_double (test, "values_patch_size", vals.patch_size);
    record_string (test, "values_resume", vals.resume);
  }

  return finish (test, w->dialog);
}

static void
test_hook_train (UiTrainWidgets *w)
{
  UiTest *test = ui_test_new (TRAIN_PROC);

  if (! test)
    return;
  test->train = w;
  ui_test_start (test, w->dialog, train_poke);
}

void
ui_test_install (void)
{
  static const UiTestHooks hooks =
  {
    test_hook_renoise,
    test_hook_denoise,
    test_hook_train,
  };

  ui_test_hooks = &hooks;
}
