/* renoise-dialog.c: the Renoise and Generate dialogs (Filters ▸
 * Diffusion), built from the shared pieces of widgets.c: the live preview,
 * the model chooser, the strength (hidden for Generate), steps, seed and
 * sampler.
 *
 * The preview's "invalidated" signal re-renders the visible region through
 * the render callback the glue passed: the same function that renders the
 * whole layer on OK (GIMP 2.10 plug-ins/common style).
 *
 * Above the buttons a line says what OK will run, in the model's own terms:
 * "Noise to t = 400 of 1000, then 20 denoising steps" (the core's
 * plugin_renoise_plan_text, on the schedule of the chosen model file), so
 * it changes when the model does, and it is where a model that cannot be
 * loaded explains why (OK is then insensitive: there is nothing to run). */
#include "ui-private.h"

#include <string.h>

static void
renoise_set_plan (UiRenoiseWidgets *w,
                  const gchar      *text,
                  gboolean          is_error)
{
  ui_plan_line_set (w->dialog, w->plan_label, w->plan_icon, text, is_error);
}

static void
renoise_update_plan (UiRenoiseWidgets *w)
{
  GError *error = NULL;
  gchar  *text;

  if (! w->schedule)
    {
      renoise_set_plan (w, w->model_error, TRUE);
      return;
    }

  text = plugin_renoise_plan_text (w->schedule, w->generate,
                                   w->work.strength, w->work.steps, &error);
  if (text)
    renoise_set_plan (w, text, FALSE);
  else
    renoise_set_plan (w, error->message, TRUE);

  g_free (text);
  g_clear_error (&error);
}

/* The preview: the same rendering as the final run, on the visible region. */
static void
renoise_preview_invalidated (GimpPreview      *preview,
                             UiRenoiseWidgets *w)
{
  GError *error = NULL;

  if (! w->schedule)
    {
      /* Nothing to run: the plan line already says why. */
      gtk_widget_hide (w->preview_error);
      return;
    }

  ui_preview_show_result (w->preview_error,
                          w->render (w->drawable_id, &w->work, w->generate,
                                     preview, w->render_data, &error),
                          error);
  g_clear_error (&error);
}

static void
renoise_plan_changed (GtkAdjustment    *adjustment,
                      UiRenoiseWidgets *w)
{
  renoise_update_plan (w);
}

/* The model's tile size and parameter count: a published 256² model
 * (issue #16) takes far longer per tile than our own small ones, and the
 * user should see which kind is chosen.  From the core's model cache,
 * where loading the schedule has just put it. */
static void
renoise_update_model_info (UiRenoiseWidgets *w)
{
  DdpmModel *model = w->schedule ? plugin_model_get (w->model_path, NULL) : NULL;
  gchar     *text = NULL;

  if (! w->model_info_label)
    return;
  if (model)
    {
      const DdpmUNetConfig *c = ddpm_model_get_config (model);

      text = g_strdup_printf (_("Model: %d×%d pixel tiles, %.1f million parameters"),
                              c->image_size, c->image_size,
                              ddpm_unet_config_n_params (c) / 1e6);
    }
  gtk_label_set_text (GTK_LABEL (w->model_info_label), text ? text : "");
  gtk_widget_set_visible (w->model_info_label, text != NULL);
  g_free (text);
}

/* Load the model's schedule: the plan line counts in its timesteps. */
void
ui_renoise_dialog_set_model (UiRenoiseWidgets *w,
                             const gchar      *path)
{
  g_return_if_fail (w != NULL);

  ui_model_select (path, w->default_model, w->model_chooser,
                   &w->model_path, &w->schedule, &w->model_error,
                   w->work.model, sizeof (w->work.model));
  renoise_update_plan (w);
  renoise_update_model_info (w);
  if (w->preview)
    gimp_preview_invalidate (GIMP_PREVIEW (w->preview));
}

static void
renoise_model_file_set (GtkFileChooserButton *button,
                        UiRenoiseWidgets     *w)
{
  gchar *path = gtk_file_chooser_get_filename (GTK_FILE_CHOOSER (button));

  if (path)
    ui_renoise_dialog_set_model (w, path);
  g_free (path);
}

static void
renoise_dialog_destroy (GtkWidget        *dialog,
                        UiRenoiseWidgets *w)
{
  g_clear_pointer (&w->schedule, ddpm_schedule_free);
  g_clear_pointer (&w->model_error, g_free);
  g_clear_pointer (&w->model_path, g_free);
  g_clear_pointer (&w->default_model, g_free);
  w->dialog = w->preview = w->preview_error = w->model_chooser = NULL;
  w->plan_label = w->plan_icon = w->seed_box = w->sampler_combo = NULL;
  w->precision_combo = NULL;
  w->model_info_label = NULL;
  w->strength_adj = w->steps_adj = NULL;
}

/* The values the dialog edits: a copy of `vals` in the widgets' ranges. */
static void
renoise_values_init (UiRenoiseWidgets          *w,
                     const PluginRenoiseValues *vals)
{
  w->work          = *vals;
  w->work.model[sizeof (w->work.model) - 1] = '\0';
  w->work.strength = CLAMP (w->work.strength, 0.0, 1.0);
  w->work.steps    = CLAMP (w->work.steps, 1, 1000);
  if (w->work.sampler < 0 || w->work.sampler >= DDPM_SAMPLER_COUNT)
    w->work.sampler = DDPM_SAMPLER_DDIM;
  if (w->work.precision < 0 || w->work.precision >= DDPM_PRECISION_COUNT)
    w->work.precision = DDPM_PRECISION_AUTO;
}

/* Row 2: the strength, how far into the noise the layer is pushed
 * (hidden for Generate). */
static void
renoise_strength_new (UiRenoiseWidgets *w,
                      GtkTable         *table)
{
  w->strength_adj = gimp_scale_entry_new (table, 0, 2,
                                          _("S_trength:"),
                                          UI_SCALE_WIDTH, UI_ENTRY_WIDTH,
                                          w->work.strength,
                                          0.0, 1.0, 0.01, 0.1, 2,
                                          TRUE, 0, 0,
                                          _("How much noise to add before "
                                            "denoising: 0 keeps the layer, "
                                            "1 replaces it with a new image"),
                                          NULL);
  g_signal_connect (w->strength_adj, "value-changed",
                    G_CALLBACK (gimp_double_adjustment_update),
                    &w->work.strength);
  g_signal_connect (w->strength_adj, "value-changed",
                    G_CALLBACK (renoise_plan_changed), w);
  g_signal_connect_swapped (w->strength_adj, "value-changed",
                            G_CALLBACK (gimp_preview_invalidate),
                            w->preview);
  if (w->generate)
    {
      /* Generation is strength 1 by definition. */
      gtk_widget_hide (GIMP_SCALE_ENTRY_LABEL (w->strength_adj));
      gtk_widget_hide (GIMP_SCALE_ENTRY_SCALE (w->strength_adj));
      gtk_widget_hide (GIMP_SCALE_ENTRY_SPINBUTTON (w->strength_adj));
    }
}

GtkWidget *
ui_renoise_dialog_new (gint32                     drawable_id,
                       const PluginRenoiseValues *vals,
                       gboolean                   generate,
                       const gchar               *default_model,
                       UiRenoiseRenderFunc        render,
                       gpointer                   render_data,
                       UiRenoiseWidgets          *w)
{
  GtkWidget *dialog;
  GtkWidget *main_vbox;
  GtkWidget *table;

  g_return_val_if_fail (vals != NULL, NULL);
  g_return_val_if_fail (default_model != NULL, NULL);
  g_return_val_if_fail (render != NULL, NULL);
  g_return_val_if_fail (w != NULL, NULL);

  memset (w, 0, sizeof (*w));
  w->drawable_id   = drawable_id;
  w->generate      = generate;
  w->render        = render;
  w->render_data   = render_data;
  w->default_model = g_strdup (default_model);
  renoise_values_init (w, vals);

  dialog = ui_dialog_new (generate ? _("Generate with a Diffusion Model")
                                   : _("Renoise with a Diffusion Model"),
                          generate ? GENERATE_PROC : RENOISE_PROC,
                          _("_OK"), &main_vbox);
  w->dialog = dialog;
  g_signal_connect (dialog, "destroy",
                    G_CALLBACK (renoise_dialog_destroy), w);

  /* The live preview of the visible region. */
  w->preview = ui_preview_new (main_vbox, drawable_id, &w->preview_error);
  g_signal_connect (w->preview, "invalidated",
                    G_CALLBACK (renoise_preview_invalidated), w);

  table = ui_filter_table_new (main_vbox, 6, w->preview, &w->work.sampler,
                               G_CALLBACK (renoise_model_file_set), w,
                               &w->model_chooser, &w->sampler_combo);

  renoise_strength_new (w, GTK_TABLE (table));

  /* Steps: the denoising steps actually run. */
  w->steps_adj = ui_steps_entry_new (GTK_TABLE (table), 3, &w->work.steps);
  g_signal_connect (w->steps_adj, "value-changed",
                    G_CALLBACK (renoise_plan_changed), w);
  g_signal_connect_swapped (w->steps_adj, "value-changed",
                            G_CALLBACK (gimp_preview_invalidate),
                            w->preview);

  /* Seed, with GIMP's "Randomize" toggle and "New Seed" button. */
  w->seed_box = ui_seed_new (GTK_TABLE (table), 4, &w->work.seed,
                             &w->work.random_seed, w->preview);

  /* Precision: the engine's arithmetic (bf16 where the CPU has it). */
  w->precision_combo = ui_precision_combo_new (&w->work.precision, w->preview);
  gimp_table_attach_aligned (GTK_TABLE (table), 0, 5,
                             _("_Precision:"), 0.0, 0.5,
                             w->precision_combo, 2, FALSE);

  /* What OK will run. */
  w->plan_label = ui_plan_line_new (main_vbox, &w->plan_icon);

  /* The chosen model's tile size and parameter count. */
  w->model_info_label = gtk_label_new (NULL);
  gtk_misc_set_alignment (GTK_MISC (w->model_info_label), 0.0, 0.5);
  gtk_box_pack_start (GTK_BOX (main_vbox), w->model_info_label, FALSE, FALSE, 0);

  /* Load the chosen (or default) model's schedule and write the plan. */
  ui_renoise_dialog_set_model (w, w->work.model);

  return dialog;
}

void
ui_renoise_dialog_get_values (UiRenoiseWidgets    *w,
                              PluginRenoiseValues *vals)
{
  g_return_if_fail (w != NULL && vals != NULL);

  *vals = w->work;
}

gboolean
ui_renoise_dialog (gint32                drawable_id,
                   PluginRenoiseValues  *vals,
                   gboolean              generate,
                   const gchar          *default_model,
                   UiRenoiseRenderFunc   render,
                   gpointer              render_data)
{
  UiRenoiseWidgets  w;
  GtkWidget        *dialog;
  gboolean          run;

  g_return_val_if_fail (vals != NULL, FALSE);

  gimp_ui_init (PLUG_IN_BINARY, FALSE);

  dialog = ui_renoise_dialog_new (drawable_id, vals, generate, default_model,
                                  render, render_data, &w);
  gtk_widget_show (dialog);

  if (ui_test_hooks != NULL)
    ui_test_hooks->renoise (&w);

  run = (gimp_dialog_run (GIMP_DIALOG (dialog)) == GTK_RESPONSE_OK);
  if (run)
    {
      ui_renoise_dialog_get_values (&w, vals);
      /* "Randomize": this run gets a new seed (the preview kept its own). */
      if (vals->random_seed)
        vals->seed = g_random_int ();
    }

  /* gimp_dialog_run returns without a dialog when the window was closed. */
  if (w.dialog)
    gtk_widget_destroy (dialog);

  return run;
}
