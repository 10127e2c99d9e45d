/* train-dialog.c: the Train dialog (Filters ▸ Diffusion ▸ Train).
 *
 * Chooses where the model file goes, the network size (a preset of the
 * DDPM UNet), how long to train, the patch size of the training crops taken
 * from the layer, the seed, and optionally a checkpoint to continue.
 *
 * GTK 2's GtkFileChooserButton cannot SAVE, so the output file is an entry
 * with a "Browse…" button opening a GtkFileChooserDialog, as GIMP's own
 * export dialogs do. */
#include "ui-private.h"

#include <math.h>
#include <string.h>

const gchar *const ui_train_presets[UI_N_TRAIN_PRESETS] = { "tiny", "small", "cifar" };

/* Multiples of this are the patch sizes every preset's UNet can halve down
 * to its lowest level (at most 4 levels: 3 halvings). */
#define PATCH_GRANULE 8

static gint
train_preset_index (const gchar *name)
{
  for (gint i = 0; i < UI_N_TRAIN_PRESETS; i++)
    if (g_strcmp0 (name, ui_train_presets[i]) == 0)
      return i;
  return 0;
}

static gint
train_channels (gint32 drawable_id)
{
  return gimp_drawable_is_rgb (drawable_id) ? 3 : 1;
}

/* OK needs an output file, and a checkpoint when resuming is on. */
static void
train_update_sensitivity (UiTrainWidgets *w)
{
  gboolean resume = gtk_toggle_button_get_active (GTK_TOGGLE_BUTTON (w->resume_toggle));
  gboolean ok = w->work.output[0] != '\0';

  if (resume)
    {
      gchar *file = gtk_file_chooser_get_filename (GTK_FILE_CHOOSER (w->resume_chooser));

      ok = ok && file != NULL;
      g_free (file);
    }

  gtk_widget_set_sensitive (w->resume_chooser, resume);
  /* A checkpoint carries its own network: the preset does not apply. */
  gtk_widget_set_sensitive (w->preset_combo, ! resume);
  gtk_widget_set_sensitive (w->preset_label, ! resume);
  gtk_dialog_set_response_sensitive (GTK_DIALOG (w->dialog), GTK_RESPONSE_OK, ok);
}

static void
train_update_preset_label (UiTrainWidgets *w)
{
  DdpmUNetConfig  config;
  GError         *error = NULL;
  gchar          *text;

  if (ddpm_unet_config_from_preset (w->work.preset, train_channels (w->drawable_id),
                                    &config, &error))
    {
      gdouble millions = ddpm_unet_config_n_params (&config) / 1e6;

      /* TRANSLATORS: the size of the neural network, e.g. "2.1 million
       * parameters". */
      text = g_strdup_printf (_("%.1f million parameters"), millions);
    }
  else
    {
      text = g_strdup (error->message);
      g_clear_error (&error);
    }
  gtk_label_set_text (GTK_LABEL (w->preset_label), text);
  g_free (text);
}

static void
train_preset_changed (GtkComboBox    *combo,
                      UiTrainWidgets *w)
{
  gint index;

  if (! gimp_int_combo_box_get_active (GIMP_INT_COMBO_BOX (combo), &index) ||
      index < 0 || index >= UI_N_TRAIN_PRESETS)
    return;

  g_strlcpy (w->work.preset, ui_train_presets[index], sizeof (w->work.preset));
  train_update_preset_label (w);
}

static void
train_output_changed (GtkEntry       *entry,
                      UiTrainWidgets *w)
{
  g_strlcpy (w->work.output, gtk_entry_get_text (entry), sizeof (w->work.output));
  train_update_sensitivity (w);
}

static void
train_browse_clicked (GtkWidget      *button,
                      UiTrainWidgets *w)
{
  GtkWidget     *chooser;
  GtkFileFilter *filter;
  const gchar   *current = gtk_entry_get_text (GTK_ENTRY (w->output_entry));

  chooser = gtk_file_chooser_dialog_new (_("Save the Trained Model As"),
                                         GTK_WINDOW (w->dialog),
                                         GTK_FILE_CHOOSER_ACTION_SAVE,
                                         _("_Cancel"), GTK_RESPONSE_CANCEL,
                                         _("_Save"),   GTK_RESPONSE_ACCEPT,
                                         NULL);
  gtk_dialog_set_alternative_button_order (GTK_DIALOG (chooser),
                                           GTK_RESPONSE_ACCEPT,
                                           GTK_RESPONSE_CANCEL,
                                           -1);
  gtk_dialog_set_default_response (GTK_DIALOG (chooser), GTK_RESPONSE_ACCEPT);
  gtk_file_chooser_set_do_overwrite_confirmation (GTK_FILE_CHOOSER (chooser), TRUE);

  filter = gtk_file_filter_new ();
  gtk_file_filter_set_name (filter, _("Diffusion models (*.safetensors)"));
  gtk_file_filter_add_pattern (filter, "*.safetensors");
  gtk_file_chooser_add_filter (GTK_FILE_CHOOSER (chooser), filter);

  if (*current)
    {
      gchar *dir  = g_path_get_dirname (current);
      gchar *base = g_path_get_basename (current);

      gtk_file_chooser_set_current_folder (GTK_FILE_CHOOSER (chooser), dir);
      gtk_file_chooser_set_current_name (GTK_FILE_CHOOSER (chooser), base);
      g_free (dir);
      g_free (base);
    }

  if (gtk_dialog_run (GTK_DIALOG (chooser)) == GTK_RESPONSE_ACCEPT)
    {
      gchar *file = gtk_file_chooser_get_filename (GTK_FILE_CHOOSER (chooser));

      if (file)
        {
          if (! g_str_has_suffix (file, ".safetensors"))
            {
              gchar *with_suffix = g_strconcat (file, ".safetensors", NULL);

              g_free (file);
              file = with_suffix;
            }
          gtk_entry_set_text (GTK_ENTRY (w->output_entry), file);
          g_free (file);
        }
    }
  gtk_widget_destroy (chooser);
}

/* Keep the patch size a multiple of PATCH_GRANULE. */
static void
train_patch_size_changed (GtkAdjustment  *adjustment,
                          UiTrainWidgets *w)
{
  gdouble value   = gtk_adjustment_get_value (adjustment);
  gdouble rounded = PATCH_GRANULE * floor (value / PATCH_GRANULE + 0.5);

  rounded = CLAMP (rounded, gtk_adjustment_get_lower (adjustment),
                   gtk_adjustment_get_upper (adjustment));
  if (rounded != value)
    {
      gtk_adjustment_set_value (adjustment, rounded);
      return;  /* the nested value-changed stores it */
    }
  w->work.patch_size = (gint) rounded;
}

static void
train_dialog_destroy (GtkWidget      *dialog,
                      UiTrainWidgets *w)
{
  w->dialog = w->output_entry = w->browse_button = w->preset_combo = NULL;
  w->preset_label = w->seed_box = w->resume_toggle = w->resume_chooser = NULL;
  w->iterations_adj = w->patch_size_adj = NULL;
}

/* A place to suggest for the model when the values name none: the user's
 * model folder, under the image's name. */
static gchar *
train_default_output (gint32 drawable_id)
{
  gint32  image_id = gimp_item_get_image (drawable_id);
  gchar  *image_file = image_id > 0 ? gimp_image_get_filename (image_id) : NULL;
  gchar  *name;
  gchar  *output;

  if (image_file)
    {
      gchar *dot;

      name = g_path_get_basename (image_file);
      dot = strrchr (name, '.');
      if (dot && dot != name)
        *dot = '\0';
    }
  else
    {
      name = g_strdup ("my-model");
    }
  output = plugin_user_model_path (name);
  g_free (name);
  g_free (image_file);
  return output;
}

/* The largest patch the layer gives (its shorter side, at most 256), in
 * multiples of PATCH_GRANULE. */
static gint
train_max_patch (gint32 drawable_id)
{
  gint max_patch = MIN (gimp_drawable_width (drawable_id),
                        gimp_drawable_height (drawable_id));

  return MAX (PATCH_GRANULE, MIN (256, max_patch / PATCH_GRANULE * PATCH_GRANULE));
}

/* The values the dialog edits: a copy of `vals` within the widgets'
 * ranges, with an output file proposed if it names none. */
static void
train_values_init (UiTrainWidgets          *w,
                   const PluginTrainValues *vals,
                   gint                     max_patch)
{
  w->work = *vals;
  w->work.output[sizeof (w->work.output) - 1] = '\0';
  w->work.resume[sizeof (w->work.resume) - 1] = '\0';
  g_strlcpy (w->work.preset, ui_train_presets[train_preset_index (vals->preset)],
             sizeof (w->work.preset));
  if (! w->work.output[0])
    {
      gchar *output = train_default_output (w->drawable_id);

      g_strlcpy (w->work.output, output, sizeof (w->work.output));
      g_free (output);
    }

  /* Patches come from the layer: no larger than its shorter side. */
  w->work.patch_size = CLAMP (w->work.patch_size / PATCH_GRANULE * PATCH_GRANULE,
                              PATCH_GRANULE, max_patch);
  w->work.iterations = CLAMP (w->work.iterations, 1, 1000000);
}

/* What the dialog is for, above its table. */
static void
train_intro_new (GtkWidget *main_vbox)
{
  GtkWidget *label;

  label = gtk_label_new (_("Teaches a diffusion model what this layer looks "
                           "like, from random patches of it. The model can "
                           "then renoise or generate images in its style."));
  gtk_label_set_line_wrap (GTK_LABEL (label), TRUE);
  gtk_misc_set_alignment (GTK_MISC (label), 0.0, 0.5);
  gtk_widget_set_size_request (label, UI_SCALE_WIDTH + 200, -1);
  gtk_box_pack_start (GTK_BOX (main_vbox), label, FALSE, FALSE, 0);
  gtk_widget_show (label);
}

/* Row 0: the output file, an entry and "Browse…". */
static void
train_output_row_new (UiTrainWidgets *w,
                      GtkTable       *table)
{
  GtkWidget *hbox;
  GtkWidget *label;

  hbox = gtk_hbox_new (FALSE, 6);
  w->output_entry = gtk_entry_new ();
  gtk_entry_set_width_chars (GTK_ENTRY (w->output_entry), 32);
  gtk_entry_set_text (GTK_ENTRY (w->output_entry), w->work.output);
  gtk_box_pack_start (GTK_BOX (hbox), w->output_entry, TRUE, TRUE, 0);
  gtk_widget_show (w->output_entry);
  gimp_help_set_help_data (w->output_entry,
                           _("The model file to write (.safetensors). It is "
                             "rewritten at every checkpoint, so a cancelled "
                             "training keeps what it has learnt."), NULL);

  w->browse_button = gtk_button_new_with_mnemonic (_("_Browse…"));
  gtk_box_pack_start (GTK_BOX (hbox), w->browse_button, FALSE, FALSE, 0);
  gtk_widget_show (w->browse_button);
  g_signal_connect (w->browse_button, "clicked",
                    G_CALLBACK (train_browse_clicked), w);

  label = gimp_table_attach_aligned (table, 0, 0,
                                     _("_Output file:"), 0.0, 0.5,
                                     hbox, 2, FALSE);
  gtk_label_set_mnemonic_widget (GTK_LABEL (label), w->output_entry);
  g_signal_connect (w->output_entry, "changed",
                    G_CALLBACK (train_output_changed), w);
}

/* Rows 1 and 2: the network size, and its parameter count under it. */
static void
train_preset_rows_new (UiTrainWidgets *w,
                       GtkTable       *table)
{
  w->preset_combo = gimp_int_combo_box_new (_("Tiny (fast, for trying out)"), 0,
                                            _("Small"),                       1,
                                            _("CIFAR-10 size (as in the DDPM paper)"), 2,
                                            NULL);
  gimp_int_combo_box_set_active (GIMP_INT_COMBO_BOX (w->preset_combo),
                                 train_preset_index (w->work.preset));
  g_signal_connect (w->preset_combo, "changed",
                    G_CALLBACK (train_preset_changed), w);
  gimp_table_attach_aligned (table, 0, 1,
                             _("Model si_ze:"), 0.0, 0.5,
                             w->preset_combo, 2, FALSE);
  gimp_help_set_help_data (w->preset_combo,
                           _("Larger networks learn more detail but train "
                             "and run more slowly"), NULL);
  gtk_widget_show (w->preset_combo);

  w->preset_label = gtk_label_new (NULL);
  gtk_misc_set_alignment (GTK_MISC (w->preset_label), 0.0, 0.5);
  gimp_label_set_attributes (GTK_LABEL (w->preset_label),
                             PANGO_ATTR_STYLE, PANGO_STYLE_ITALIC,
                             -1);
  gtk_table_attach (table, w->preset_label, 1, 3, 2, 3,
                    GTK_FILL, GTK_FILL, 0, 0);
  gtk_widget_show (w->preset_label);
  train_update_preset_label (w);
}

/* Rows 3 and 4: how long to train, and the patch size (up to max_patch). */
static void
train_scales_new (UiTrainWidgets *w,
                  GtkTable       *table,
                  gint            max_patch)
{
  w->iterations_adj = gimp_scale_entry_new (table, 0, 3,
                                            _("_Iterations:"),
                                            UI_SCALE_WIDTH, UI_ENTRY_WIDTH + 2,
                                            w->work.iterations,
                                            1, 100000, 1, 100, 0,
                                            FALSE, 1, 1000000,
                                            _("Optimizer steps: a few thousand "
                                              "give a usable tiny model"),
                                            NULL);
  gimp_scale_entry_set_logarithmic (w->iterations_adj, TRUE);
  g_signal_connect (w->iterations_adj, "value-changed",
                    G_CALLBACK (gimp_int_adjustment_update),
                    &w->work.iterations);

  w->patch_size_adj = gimp_scale_entry_new (table, 0, 4,
                                            _("_Patch size:"),
                                            UI_SCALE_WIDTH, UI_ENTRY_WIDTH + 2,
                                            w->work.patch_size,
                                            PATCH_GRANULE, max_patch,
                                            PATCH_GRANULE, 4 * PATCH_GRANULE, 0,
                                            TRUE, 0, 0,
                                            _("Side in pixels of the square "
                                              "patches cut from the layer to "
                                              "train on"),
                                            NULL);
  g_signal_connect (w->patch_size_adj, "value-changed",
                    G_CALLBACK (train_patch_size_changed), w);
}

/* Row 5: the seed (no preview to invalidate here). */
static void
train_seed_row_new (UiTrainWidgets *w,
                    GtkTable       *table)
{
  GtkWidget *label;

  w->seed_box = gimp_random_seed_new (&w->work.seed, &w->random_seed);
  label = gimp_table_attach_aligned (table, 0, 5,
                                     _("_Seed:"), 0.0, 0.5,
                                     w->seed_box, 2, TRUE);
  gtk_label_set_mnemonic_widget (GTK_LABEL (label),
                                 GIMP_RANDOM_SEED_SPINBUTTON (w->seed_box));
}

/* Row 6: "Resume from:" and the checkpoint to continue. */
static void
train_resume_row_new (UiTrainWidgets *w,
                      GtkTable       *table)
{
  GtkFileFilter *filter;

  w->resume_toggle = gtk_check_button_new_with_mnemonic (_("_Resume from:"));
  gtk_table_attach (table, w->resume_toggle, 0, 1, 6, 7,
                    GTK_FILL, GTK_FILL, 0, 0);
  gimp_help_set_help_data (w->resume_toggle,
                           _("Continue a training from a model file written "
                             "by an earlier one"), NULL);
  gtk_widget_show (w->resume_toggle);

  w->resume_chooser = gtk_file_chooser_button_new (_("Select a Checkpoint to Resume"),
                                                   GTK_FILE_CHOOSER_ACTION_OPEN);
  filter = gtk_file_filter_new ();
  gtk_file_filter_set_name (filter, _("Diffusion models (*.safetensors)"));
  gtk_file_filter_add_pattern (filter, "*.safetensors");
  gtk_file_chooser_add_filter (GTK_FILE_CHOOSER (w->resume_chooser), filter);
  if (w->work.resume[0])
    gtk_file_chooser_set_filename (GTK_FILE_CHOOSER (w->resume_chooser),
                                   w->work.resume);
  gtk_table_attach (table, w->resume_chooser, 1, 3, 6, 7,
                    GTK_EXPAND | GTK_FILL, GTK_FILL, 0, 0);
  gtk_widget_show (w->resume_chooser);
  gtk_toggle_button_set_active (GTK_TOGGLE_BUTTON (w->resume_toggle),
                                w->work.resume[0] != '\0');

  g_signal_connect_swapped (w->resume_toggle, "toggled",
                            G_CALLBACK (train_update_sensitivity), w);
  g_signal_connect_swapped (w->resume_chooser, "selection-changed",
                            G_CALLBACK (train_update_sensitivity), w);
}

GtkWidget *
ui_train_dialog_new (gint32                   drawable_id,
                     const PluginTrainValues *vals,
                     UiTrainWidgets          *w)
{
  GtkWidget *dialog;
  GtkWidget *main_vbox;
  GtkWidget *table;
  gint       max_patch;

  g_return_val_if_fail (vals != NULL, NULL);
  g_return_val_if_fail (w != NULL, NULL);

  memset (w, 0, sizeof (*w));
  w->drawable_id = drawable_id;
  max_patch = train_max_patch (drawable_id);
  train_values_init (w, vals, max_patch);

  dialog = ui_dialog_new (_("Train a Diffusion Model"), TRAIN_PROC,
                          _("_Train"), &main_vbox);
  w->dialog = dialog;
  g_signal_connect (dialog, "destroy",
                    G_CALLBACK (train_dialog_destroy), w);

  train_intro_new (main_vbox);

  table = gtk_table_new (7, 3, FALSE);
  gtk_table_set_col_spacings (GTK_TABLE (table), 6);
  gtk_table_set_row_spacings (GTK_TABLE (table), 6);
  gtk_box_pack_start (GTK_BOX (main_vbox), table, FALSE, FALSE, 0);
  gtk_widget_show (table);

  train_output_row_new (w, GTK_TABLE (table));
  train_preset_rows_new (w, GTK_TABLE (table));
  train_scales_new (w, GTK_TABLE (table), max_patch);
  train_seed_row_new (w, GTK_TABLE (table));
  train_resume_row_new (w, GTK_TABLE (table));

  train_update_sensitivity (w);

  return dialog;
}

void
ui_train_dialog_get_values (UiTrainWidgets    *w,
                            PluginTrainValues *vals)
{
  g_return_if_fail (w != NULL && vals != NULL);

  *vals = w->work;
  vals->resume[0] = '\0';
  if (gtk_toggle_button_get_active (GTK_TOGGLE_BUTTON (w->resume_toggle)))
    {
      gchar *file = gtk_file_chooser_get_filename (GTK_FILE_CHOOSER (w->resume_chooser));

      if (file)
        g_strlcpy (vals->resume, file, sizeof (vals->resume));
      g_free (file);
    }
  /* The values have no "randomize" flag: draw the seed now. */
  if (w->random_seed)
    vals->seed = g_random_int ();
}

gboolean
ui_train_dialog (gint32             drawable_id,
                 PluginTrainValues *vals)
{
  UiTrainWidgets  w;
  GtkWidget      *dialog;
  gboolean        run;

  g_return_val_if_fail (vals != NULL, FALSE);

  gimp_ui_init (PLUG_IN_BINARY, FALSE);

  dialog = ui_train_dialog_new (drawable_id, vals, &w);
  gtk_widget_show (dialog);

  if (ui_test_hooks != NULL)
    ui_test_hooks->train (&w);

  run = (gimp_dialog_run (GIMP_DIALOG (dialog)) == GTK_RESPONSE_OK);
  if (run)
    ui_train_dialog_get_values (&w, vals);

  if (w.dialog)
    gtk_widget_destroy (dialog);

  return run;
}
