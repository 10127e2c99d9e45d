/* denoise-dialog.c: the Denoise dialog (Filters ▸ Diffusion ▸ Denoise).
 *
 * The Renoise dialog's layout and parts (widgets.c: preview, model chooser,
 * sampler, steps, seed, plan line), with the noise level in place of the
 * strength.  GIMP users count noise in 0–255 levels, so that is what the
 * entry shows ("25" is σ = 25/255 ≈ 0.098 on the [0, 1] scale the
 * procedure takes).  "Estimate from the layer" fills the entry with
 * Donoho's estimate (the glue's estimate callback, over the selection's
 * bounds: the pixels OK works on) and greys it out; the values then say
 * "estimate" (σ = 0), so that Repeat on another image estimates afresh.
 *
 * The plan line says where the reverse chain starts: the t of the model's
 * schedule whose noise level is 2σ, and how many steps run from there
 * (the core's plugin_denoise_plan_text). */
#include "ui-private.h"

#include <string.h>

/* The σ ([0, 1] scale) the preview and the plan use: the estimate when
 * estimating (0 while it is unknown), else the entry's. */
static gdouble
denoise_effective_sigma (UiDenoiseWidgets *w)
{
  if (! w->estimating)
    return w->work.sigma;
  return MAX (w->estimate, 0.0);
}

/* The plan line's text, newly allocated; *is_error when OK cannot run. */
static gchar *
denoise_plan_text (UiDenoiseWidgets *w,
                   gboolean         *is_error)
{
  if (! w->schedule)
    {
      *is_error = TRUE;
      return g_strdup (w->model_error);
    }
  return plugin_denoise_plan_text (w->schedule, denoise_effective_sigma (w),
                                   w->estimating, w->estimate_error,
                                   w->work.steps, is_error);
}

static void
denoise_update_plan (UiDenoiseWidgets *w)
{
  gboolean is_error;
  gchar   *text = denoise_plan_text (w, &is_error);

  ui_plan_line_set (w->dialog, w->plan_label, w->plan_icon, text, is_error);
  g_free (text);
}

/* The preview: the same rendering as the final run, on the visible
 * region, with the σ the plan line shows. */
static void
denoise_preview_invalidated (GimpPreview      *preview,
                             UiDenoiseWidgets *w)
{
  PluginDenoiseValues vals = w->work;
  GError             *error = NULL;
  gboolean            is_error;
  gchar              *plan = denoise_plan_text (w, &is_error);

  g_free (plan);
  if (is_error)
    {
      /* Nothing to run: the plan line already says why. */
      gtk_widget_hide (w->preview_error);
      return;
    }

  /* (No noise found: 0, and the render finds none again.) */
  vals.sigma = denoise_effective_sigma (w);
  ui_preview_show_result (w->preview_error,
                          w->render (w->drawable_id, &vals, preview,
                                     w->user_data, &error),
                          error);
  g_clear_error (&error);
}

static void
denoise_changed (UiDenoiseWidgets *w)
{
  denoise_update_plan (w);
  if (w->preview)
    gimp_preview_invalidate (GIMP_PREVIEW (w->preview));
}

static void
denoise_steps_changed (GtkAdjustment    *adjustment,
                       UiDenoiseWidgets *w)
{
  denoise_update_plan (w);
}

static void
denoise_sigma_changed (GtkAdjustment    *adjustment,
                       UiDenoiseWidgets *w)
{
  /* While estimating, the entry only shows the estimate. */
  if (w->estimating)
    return;
  w->work.sigma = gtk_adjustment_get_value (adjustment) / 255.0;
  denoise_changed (w);
}

void
ui_denoise_dialog_set_estimate (UiDenoiseWidgets *w,
                                gboolean          estimate)
{
  gboolean sensitive = ! estimate;

  g_return_if_fail (w != NULL);

  w->estimating = estimate;
  if (estimate)
    {
      if (w->estimate < 0.0 && ! w->estimate_error)
        {
          GError *error = NULL;

          if (! w->estimate_func (w->drawable_id, &w->estimate,
                                  w->user_data, &error))
            {
              w->estimate_error = g_strdup (error->message);
              w->estimate = -1.0;
            }
          g_clear_error (&error);
        }
      w->work.sigma = 0.0;  /* before the entry changes: it only shows */
      if (w->estimate >= 0.0)
        gtk_adjustment_set_value (GTK_ADJUSTMENT (w->sigma_adj), w->estimate * 255.0);
    }
  else
    {
      /* Start from what the entry shows (the estimate, if it was one). */
      w->work.sigma = gtk_adjustment_get_value (GTK_ADJUSTMENT (w->sigma_adj)) / 255.0;
    }

  if (gtk_toggle_button_get_active (GTK_TOGGLE_BUTTON (w->estimate_toggle)) != estimate)
    gtk_toggle_button_set_active (GTK_TOGGLE_BUTTON (w->estimate_toggle), estimate);
  gtk_widget_set_sensitive (GIMP_SCALE_ENTRY_LABEL (w->sigma_adj), sensitive);
  gtk_widget_set_sensitive (GIMP_SCALE_ENTRY_SCALE (w->sigma_adj), sensitive);
  gtk_widget_set_sensitive (GIMP_SCALE_ENTRY_SPINBUTTON (w->sigma_adj), sensitive);
  denoise_changed (w);
}

static void
denoise_estimate_toggled (GtkToggleButton  *toggle,
                          UiDenoiseWidgets *w)
{
  gboolean active = gtk_toggle_button_get_active (toggle);

  if (active != w->estimating)
    ui_denoise_dialog_set_estimate (w, active);
}

void
ui_denoise_dialog_set_model (UiDenoiseWidgets *w,
                             const gchar      *path)
{
  g_return_if_fail (w != NULL);

  ui_model_select (path, w->default_model, w->model_chooser,
                   &w->model_path, &w->schedule, &w->model_error,
                   w->work.model, sizeof (w->work.model));
  denoise_changed (w);
}

static void
denoise_model_file_set (GtkFileChooserButton *button,
                        UiDenoiseWidgets     *w)
{
  gchar *path = gtk_file_chooser_get_filename (GTK_FILE_CHOOSER (button));

  if (path)
    ui_denoise_dialog_set_model (w, path);
  g_free (path);
}

static void
denoise_dialog_destroy (GtkWidget        *dialog,
                        UiDenoiseWidgets *w)
{
  g_clear_pointer (&w->schedule, ddpm_schedule_free);
  g_clear_pointer (&w->model_error, g_free);
  g_clear_pointer (&w->model_path, g_free);
  g_clear_pointer (&w->default_model, g_free);
  g_clear_pointer (&w->estimate_error, g_free);
  w->dialog = w->preview = w->preview_error = w->model_chooser = NULL;
  w->plan_label = w->plan_icon = w->seed_box = w->sampler_combo = NULL;
  w->estimate_toggle = w->precision_combo = NULL;
  w->sigma_adj = w->steps_adj = NULL;
}

/* The values the dialog edits: a copy of `vals` in the widgets' ranges. */
static void
denoise_values_init (UiDenoiseWidgets          *w,
                     const PluginDenoiseValues *vals)
{
  w->work          = *vals;
  w->work.model[sizeof (w->work.model) - 1] = '\0';
  w->work.sigma    = CLAMP (w->work.sigma, 0.0, 1.0);
  w->work.steps    = CLAMP (w->work.steps, 1, 1000);
  if (w->work.sampler < 0 || w->work.sampler >= DDPM_SAMPLER_COUNT)
    w->work.sampler = DDPM_SAMPLER_DDIM;
  if (w->work.precision < 0 || w->work.precision >= DDPM_PRECISION_COUNT)
    w->work.precision = DDPM_PRECISION_AUTO;
}

/* Rows 2 and 3: the noise level in 0–255 levels (0 shown while the
 * values say "estimate"), and "Estimate from the layer". */
static void
denoise_sigma_rows_new (UiDenoiseWidgets *w,
                        GtkTable         *table,
                        gboolean          estimate)
{
  /* The noise level, in 0–255 levels. */
  w->sigma_adj = gimp_scale_entry_new (table, 0, 2,
                                       _("_Noise level (σ, 0–255):"),
                                       UI_SCALE_WIDTH, UI_ENTRY_WIDTH,
                                       estimate ? 0.0 : w->work.sigma * 255.0,
                                       0.0, 255.0, 0.5, 5.0, 1,
                                       TRUE, 0, 0,
                                       _("The standard deviation of the "
                                         "noise in the layer, in levels of "
                                         "0–255: 25 for clearly visible "
                                         "grain"),
                                       NULL);
  gimp_scale_entry_set_logarithmic (w->sigma_adj, TRUE);
  g_signal_connect (w->sigma_adj, "value-changed",
                    G_CALLBACK (denoise_sigma_changed), w);

  w->estimate_toggle =
    gtk_check_button_new_with_mnemonic (_("Es_timate from the layer"));
  gtk_table_attach (table, w->estimate_toggle, 1, 3, 3, 4,
                    GTK_FILL, GTK_FILL, 0, 0);
  gimp_help_set_help_data (w->estimate_toggle,
                           _("Measure the noise level in the layer (or the "
                             "selection) instead of giving it"), NULL);
  gtk_widget_show (w->estimate_toggle);
  g_signal_connect (w->estimate_toggle, "toggled",
                    G_CALLBACK (denoise_estimate_toggled), w);
}

GtkWidget *
ui_denoise_dialog_new (gint32                     drawable_id,
                       const PluginDenoiseValues *vals,
                       const gchar               *default_model,
                       UiDenoiseRenderFunc        render,
                       UiEstimateFunc             estimate_func,
                       gpointer                   user_data,
                       UiDenoiseWidgets          *w)
{
  GtkWidget *dialog;
  GtkWidget *main_vbox;
  GtkWidget *table;
  gboolean   estimate;

  g_return_val_if_fail (vals != NULL, NULL);
  g_return_val_if_fail (default_model != NULL, NULL);
  g_return_val_if_fail (render != NULL && estimate_func != NULL, NULL);
  g_return_val_if_fail (w != NULL, NULL);

  memset (w, 0, sizeof (*w));
  w->drawable_id   = drawable_id;
  w->render        = render;
  w->estimate_func = estimate_func;
  w->user_data     = user_data;
  w->estimate      = -1.0;
  w->default_model = g_strdup (default_model);
  denoise_values_init (w, vals);
  estimate = w->work.sigma <= 0.0;

  dialog = ui_dialog_new (_("Denoise with a Diffusion Model"),
                          DENOISE_PROC, _("_OK"), &main_vbox);
  w->dialog = dialog;
  g_signal_connect (dialog, "destroy",
                    G_CALLBACK (denoise_dialog_destroy), w);

  /* The live preview of the visible region. */
  w->preview = ui_preview_new (main_vbox, drawable_id, &w->preview_error);
  g_signal_connect (w->preview, "invalidated",
                    G_CALLBACK (denoise_preview_invalidated), w);

  table = ui_filter_table_new (main_vbox, 7, w->preview, &w->work.sampler,
                               G_CALLBACK (denoise_model_file_set), w,
                               &w->model_chooser, &w->sampler_combo);

  denoise_sigma_rows_new (w, GTK_TABLE (table), estimate);

  /* Steps: the denoising steps actually run. */
  w->steps_adj = ui_steps_entry_new (GTK_TABLE (table), 4, &w->work.steps);
  g_signal_connect (w->steps_adj, "value-changed",
                    G_CALLBACK (denoise_steps_changed), w);
  g_signal_connect_swapped (w->steps_adj, "value-changed",
                            G_CALLBACK (gimp_preview_invalidate),
                            w->preview);

  /* Seed: only the DDPM sampler draws noise. */
  w->seed_box = ui_seed_new (GTK_TABLE (table), 5, &w->work.seed,
                             &w->work.random_seed, w->preview);

  /* Precision: the engine's arithmetic (bf16 where the CPU has it). */
  w->precision_combo = ui_precision_combo_new (&w->work.precision, w->preview);
  gimp_table_attach_aligned (GTK_TABLE (table), 0, 6,
                             _("_Precision:"), 0.0, 0.5,
                             w->precision_combo, 2, FALSE);

  /* What OK will run. */
  w->plan_label = ui_plan_line_new (main_vbox, &w->plan_icon);

  /* The model's schedule, then the estimate (if wanted) and the plan. */
  ui_model_select (w->work.model, w->default_model, w->model_chooser,
                   &w->model_path, &w->schedule, &w->model_error,
                   w->work.model, sizeof (w->work.model));
  ui_denoise_dialog_set_estimate (w, estimate);

  return dialog;
}

void
ui_denoise_dialog_get_values (UiDenoiseWidgets    *w,
                              PluginDenoiseValues *vals)
{
  g_return_if_fail (w != NULL && vals != NULL);

  *vals = w->work;
}

gboolean
ui_denoise_dialog (gint32                drawable_id,
                   PluginDenoiseValues  *vals,
                   const gchar          *default_model,
                   UiDenoiseRenderFunc   render,
                   UiEstimateFunc        estimate,
                   gpointer              user_data)
{
  UiDenoiseWidgets  w;
  GtkWidget        *dialog;
  gboolean          run;

  g_return_val_if_fail (vals != NULL, FALSE);

  gimp_ui_init (PLUG_IN_BINARY, FALSE);

  dialog = ui_denoise_dialog_new (drawable_id, vals, default_model,
                                  render, estimate, user_data, &w);
  gtk_widget_show (dialog);

  if (ui_test_hooks != NULL)
    ui_test_hooks->denoise (&w);

  run = (gimp_dialog_run (GIMP_DIALOG (dialog)) == GTK_RESPONSE_OK);
  if (run)
    {
      ui_denoise_dialog_get_values (&w, vals);
      /* "Randomize": this run gets a new seed (the preview kept its own). */
      if (vals->random_seed)
        vals->seed = g_random_int ();
    }

  /* gimp_dialog_run returns without a dialog when the window was closed. */
  if (w.dialog)
    gtk_widget_destroy (dialog);

  return run;
}
