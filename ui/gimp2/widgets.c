/* widgets.c: the pieces every dialog that runs a model is built from: the
 * dialog window, the live preview and its error line, the model chooser
 * and the model's schedule, the sampler combo, the steps entry, the seed,
 * and the plan line that says what OK will run.  The Renoise / Generate
 * dialog (renoise-dialog.c) and the Denoise dialog (denoise-dialog.c) are
 * built from them.
 *
 * Built the way GIMP 2.10's own filters are (plug-ins/common/despeckle.c,
 * nl-filter.c): a GimpDialog with a help id, a GimpDrawablePreview, scale
 * entries, the random-seed widget and an int combo. */
#include "ui-private.h"

#include <string.h>

const UiTestHooks *ui_test_hooks = NULL;

void
ui_plan_line_set (GtkWidget   *dialog,
                  GtkWidget   *label,
                  GtkWidget   *icon,
                  const gchar *text,
                  gboolean     is_error)
{
  gtk_label_set_text (GTK_LABEL (label), text);
  gtk_widget_set_visible (icon, is_error);
  gtk_dialog_set_response_sensitive (GTK_DIALOG (dialog), GTK_RESPONSE_OK,
                                     ! is_error);
}

GtkWidget *
ui_plan_line_new (GtkWidget  *box,
                  GtkWidget **icon)
{
  GtkWidget *hbox;
  GtkWidget *label;

  hbox = gtk_hbox_new (FALSE, 6);
  gtk_box_pack_start (GTK_BOX (box), hbox, FALSE, FALSE, 0);
  gtk_widget_show (hbox);

  *icon = gtk_image_new_from_icon_name (GIMP_ICON_DIALOG_WARNING,
                                        GTK_ICON_SIZE_BUTTON);
  gtk_misc_set_alignment (GTK_MISC (*icon), 0.5, 0.0);
  gtk_box_pack_start (GTK_BOX (hbox), *icon, FALSE, FALSE, 0);

  label = gtk_label_new (NULL);
  gtk_misc_set_alignment (GTK_MISC (label), 0.0, 0.5);
  gtk_label_set_line_wrap (GTK_LABEL (label), TRUE);
  gtk_label_set_selectable (GTK_LABEL (label), TRUE);
  gtk_widget_set_size_request (label, UI_SCALE_WIDTH + 160, -1);
  gimp_label_set_attributes (GTK_LABEL (label),
                             PANGO_ATTR_STYLE, PANGO_STYLE_ITALIC,
                             -1);
  gtk_box_pack_start (GTK_BOX (hbox), label, TRUE, TRUE, 0);
  gtk_widget_show (label);
  return label;
}

void
ui_model_select (const gchar   *path,
                 const gchar   *default_model,
                 GtkWidget     *chooser,
                 gchar        **model_path,
                 DdpmSchedule **schedule,
                 gchar        **model_error,
                 gchar         *model,
                 gsize          model_size)
{
  gchar  *old_path = *model_path;
  GError *error = NULL;

  if (! path || ! *path)
    path = default_model;

  /* path may point into `model`, which is rewritten below. */
  path = *model_path = g_strdup (path);
  g_free (old_path);

  g_clear_pointer (schedule, ddpm_schedule_free);
  g_clear_pointer (model_error, g_free);

  /* An empty model in the values means "the default model", so that a
   * newly installed default is picked up. */
  if (g_strcmp0 (path, default_model) == 0)
    model[0] = '\0';
  else
    g_strlcpy (model, path, model_size);

  /* From the core's model cache: the preview renders with the same load. */
  *schedule = plugin_model_get_schedule (path,
                                         g_strcmp0 (path, default_model) == 0,
                                         &error);
  if (*schedule == NULL)
    *model_error = g_strdup (error->message);
  g_clear_error (&error);

  /* Show the file in the chooser when the change did not come from it. */
  if (chooser)
    {
      gchar *shown = gtk_file_chooser_get_filename (GTK_FILE_CHOOSER (chooser));

      if (g_strcmp0 (shown, path) != 0 &&
          g_file_test (path, G_FILE_TEST_IS_REGULAR))
        gtk_file_chooser_set_filename (GTK_FILE_CHOOSER (chooser), path);
      g_free (shown);
    }
}

GtkWidget *
ui_model_chooser_new (void)
{
  GtkWidget     *chooser;
  GtkFileFilter *filter;

  chooser = gtk_file_chooser_button_new (_("Select a Diffusion Model"),
                                         GTK_FILE_CHOOSER_ACTION_OPEN);
  gtk_file_chooser_button_set_width_chars (GTK_FILE_CHOOSER_BUTTON (chooser), 24);

  filter = gtk_file_filter_new ();
  gtk_file_filter_set_name (filter, _("Diffusion models (*.safetensors)"));
  gtk_file_filter_add_pattern (filter, "*.safetensors");
  gtk_file_chooser_add_filter (GTK_FILE_CHOOSER (chooser), filter);
  gtk_file_chooser_set_filter (GTK_FILE_CHOOSER (chooser), filter);

  filter = gtk_file_filter_new ();
  gtk_file_filter_set_name (filter, _("All files"));
  gtk_file_filter_add_pattern (filter, "*");
  gtk_file_chooser_add_filter (GTK_FILE_CHOOSER (chooser), filter);

  gimp_help_set_help_data (chooser,
                           _("The trained model (.safetensors) that denoises "
                             "the image"), NULL);
  return chooser;
}

GtkWidget *
ui_preview_new (GtkWidget  *box,
                gint32      drawable_id,
                GtkWidget **error_label)
{
  GtkWidget *preview;
  GtkWidget *label;

  preview = gimp_drawable_preview_new_from_drawable_id (drawable_id);
  gtk_box_pack_start (GTK_BOX (box), preview, TRUE, TRUE, 0);
  gtk_widget_show (preview);

  label = gtk_label_new (NULL);
  gtk_misc_set_alignment (GTK_MISC (label), 0.0, 0.5);
  gtk_label_set_line_wrap (GTK_LABEL (label), TRUE);
  gimp_label_set_attributes (GTK_LABEL (label),
                             PANGO_ATTR_STYLE, PANGO_STYLE_ITALIC,
                             -1);
  gtk_box_pack_start (GTK_BOX (box), label, FALSE, FALSE, 0);
  /* shown only when rendering fails */
  *error_label = label;
  return preview;
}

void
ui_preview_show_result (GtkWidget    *error_label,
                        gboolean      ok,
                        const GError *error)
{
  gchar *text;

  if (ok)
    {
      gtk_widget_hide (error_label);
      return;
    }
  text = g_strdup_printf (_("Preview failed: %s"),
                          error ? error->message : _("unknown error"));
  gtk_label_set_text (GTK_LABEL (error_label), text);
  gtk_widget_show (error_label);
  g_free (text);
}

GtkWidget *
ui_sampler_combo_new (gint *sampler)
{
  GtkWidget *combo;

  combo = gimp_int_combo_box_new (_("DDPM (ancestral, stochastic)"),
                                  DDPM_SAMPLER_DDPM,
                                  _("DDIM (deterministic)"),
                                  DDPM_SAMPLER_DDIM,
                                  _("DPM-Solver++ (deterministic, 10–20 steps)"),
                                  DDPM_SAMPLER_DPM_2M,
                                  NULL);
  gimp_int_combo_box_connect (GIMP_INT_COMBO_BOX (combo), *sampler,
                              G_CALLBACK (gimp_int_combo_box_get_active),
                              sampler);
  gimp_help_set_help_data (combo,
                           _("DDPM adds fresh noise at every step; DDIM "
                             "follows a deterministic path and needs fewer "
                             "steps; DPM-Solver++ follows the same path to "
                             "second order and needs fewest (10–20)"), NULL);
  return combo;
}

GtkWidget *
ui_precision_combo_new (gint      *precision,
                        GtkWidget *preview)
{
  GtkWidget *combo = g_object_new (GIMP_TYPE_INT_COMBO_BOX, NULL);  /* empty: filled below */

  /* From the core's list, "auto" saying what it means on this CPU. */
  for (gint i = 0; i < plugin_n_precision_choices; i++)
    {
      const PluginPrecisionChoice *c = &plugin_precision_choices[i];

      gimp_int_combo_box_append (GIMP_INT_COMBO_BOX (combo),
                                 GIMP_INT_STORE_VALUE, c->value,
                                 GIMP_INT_STORE_LABEL,
                                 c->value == DDPM_PRECISION_AUTO
                                 ? plugin_precision_auto_label ()
                                 : _(c->label),
                                 -1);
    }
  if (*precision < 0 || *precision >= DDPM_PRECISION_COUNT)
    *precision = DDPM_PRECISION_AUTO;
  gimp_int_combo_box_connect (GIMP_INT_COMBO_BOX (combo), *precision,
                              G_CALLBACK (gimp_int_combo_box_get_active),
                              precision);
  g_signal_connect_swapped (combo, "changed",
                            G_CALLBACK (gimp_preview_invalidate), preview);
  gimp_help_set_help_data (combo,
                           _("The arithmetic of the network: bf16 runs about "
                             "twice as fast on CPUs with AVX512_BF16 and "
                             "differs from fp32 by slight rounding"), NULL);
  return combo;
}

/* The rows every filter dialog opens with: a table of n_rows packed into
 * main_vbox, the model chooser in row 0 (its "file-set" to
 * model_file_set) and the sampler in row 1, which invalidates preview. */
GtkWidget *
ui_filter_table_new (GtkWidget  *main_vbox,
                     gint        n_rows,
                     GtkWidget  *preview,
                     gint       *sampler,
                     GCallback   model_file_set,
                     gpointer    data,
                     GtkWidget **model_chooser,
                     GtkWidget **sampler_combo)
{
  GtkWidget *table = gtk_table_new (n_rows, 3, FALSE);

  gtk_table_set_col_spacings (GTK_TABLE (table), 6);
  gtk_table_set_row_spacings (GTK_TABLE (table), 6);
  gtk_box_pack_start (GTK_BOX (main_vbox), table, FALSE, FALSE, 0);
  gtk_widget_show (table);

  /* Model file. */
  *model_chooser = ui_model_chooser_new ();
  gimp_table_attach_aligned (GTK_TABLE (table), 0, 0,
                             _("_Model:"), 0.0, 0.5,
                             *model_chooser, 2, FALSE);
  g_signal_connect (*model_chooser, "file-set", model_file_set, data);

  /* Sampler. */
  *sampler_combo = ui_sampler_combo_new (sampler);
  g_signal_connect_swapped (*sampler_combo, "changed",
                            G_CALLBACK (gimp_preview_invalidate), preview);
  gimp_table_attach_aligned (GTK_TABLE (table), 0, 1,
                             _("S_ampler:"), 0.0, 0.5,
                             *sampler_combo, 2, FALSE);
  return table;
}

GtkObject *
ui_steps_entry_new (GtkTable *table,
                    gint      row,
                    gint     *steps)
{
  GtkObject *adj;

  adj = gimp_scale_entry_new (table, 0, row,
                              _("St_eps:"),
                              UI_SCALE_WIDTH, UI_ENTRY_WIDTH,
                              *steps,
                              1, 1000, 1, 10, 0,
                              TRUE, 0, 0,
                              _("Number of denoising steps: more "
                                "steps are slower and usually "
                                "cleaner"),
                              NULL);
  gimp_scale_entry_set_logarithmic (adj, TRUE);
  g_signal_connect (adj, "value-changed",
                    G_CALLBACK (gimp_int_adjustment_update), steps);
  return adj;
}

GtkWidget *
ui_seed_new (GtkTable  *table,
             gint       row,
             guint32   *seed,
             gboolean  *random_seed,
             GtkWidget *preview)
{
  GtkWidget *seed_box;
  GtkWidget *label;

  seed_box = gimp_random_seed_new (seed, random_seed);
  label = gimp_table_attach_aligned (table, 0, row,
                                     _("_Seed:"), 0.0, 0.5,
                                     seed_box, 2, TRUE);
  gtk_label_set_mnemonic_widget (GTK_LABEL (label),
                                 GIMP_RANDOM_SEED_SPINBUTTON (seed_box));
  g_signal_connect_swapped (GIMP_RANDOM_SEED_SPINBUTTON_ADJ (seed_box),
                            "value-changed",
                            G_CALLBACK (gimp_preview_invalidate),
                            preview);
  g_signal_connect_swapped (GIMP_RANDOM_SEED_TOGGLE (seed_box), "toggled",
                            G_CALLBACK (gimp_preview_invalidate),
                            preview);
  return seed_box;
}

GtkWidget *
ui_dialog_new (const gchar *title,
               const gchar *help_id,
               const gchar *ok_label,
               GtkWidget  **main_vbox)
{
  GtkWidget *dialog;

  dialog = gimp_dialog_new (title, PLUG_IN_ROLE,
                            NULL, 0,
                            gimp_standard_help_func, help_id,

                            _("_Cancel"), GTK_RESPONSE_CANCEL,
                            ok_label,     GTK_RESPONSE_OK,

                            NULL);

  /* GIMP 2.10 spells gimp_dialog_set_alternative_button_order this way. */
  gtk_dialog_set_alternative_button_order (GTK_DIALOG (dialog),
                                           GTK_RESPONSE_OK,
                                           GTK_RESPONSE_CANCEL,
                                           -1);
  gimp_window_set_transient (GTK_WINDOW (dialog));

  *main_vbox = gtk_vbox_new (FALSE, 12);
  gtk_container_set_border_width (GTK_CONTAINER (*main_vbox), 12);
  gtk_box_pack_start (GTK_BOX (gtk_dialog_get_content_area (GTK_DIALOG (dialog))),
                      *main_vbox, TRUE, TRUE, 0);
  gtk_widget_show (*main_vbox);
  return dialog;
}
