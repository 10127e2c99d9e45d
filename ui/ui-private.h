/* ui-private.h: what the dialogs share inside ui/, and what the ui tests
 * drive: the dialog constructors (which build and wire every widget but do
 * not run a main loop), the widget records they fill, and the test hook.
 *
 * Not installed, not used by plugin/: the plug-in sees only ui.h. */
#ifndef DDPM_UI_PRIVATE_H
#define DDPM_UI_PRIVATE_H

#include "config.h"

#include <libgimp/gimp.h>
#include <libgimp/gimpui.h>

#include "ddpm.h"
#include "ui.h"   /* plugin.h: the values, plugin_render, _() */

/* Widths shared by both dialogs, as GIMP's own filters use them. */
#define UI_SCALE_WIDTH 200
#define UI_ENTRY_WIDTH 6

/* The renoise / generate dialog.  The dialog edits `work`, a copy of the
 * caller's values; ui_renoise_dialog copies it back only on OK. */
typedef struct
{
  GtkWidget           *dialog;
  GtkWidget           *preview;        /* GimpDrawablePreview */
  GtkWidget           *preview_error;  /* label: why the preview failed */
  GtkWidget           *model_chooser;  /* GtkFileChooserButton */
  GtkObject           *strength_adj;   /* gimp_scale_entry_new; hidden in
                                          generate mode */
  GtkObject           *steps_adj;
  GtkWidget           *seed_box;       /* gimp_random_seed_new */
  GtkWidget           *sampler_combo;  /* GimpIntComboBox of DdpmSamplerKind */
  GtkWidget           *plan_label;     /* "noise to t = 400 of 1000, then
                                          20 steps", or the load error */
  GtkWidget           *plan_icon;      /* warning icon, shown with errors */

  gint32               drawable_id;
  gboolean             generate;
  PluginRenoiseValues  work;
  gchar               *default_model;  /* plugin_default_model_path () */
  gchar               *model_path;     /* the file the schedule came from */
  DdpmSchedule        *schedule;       /* that model's schedule (a copy);
                                          NULL when it could not load */
  gchar               *model_error;    /* why, when schedule is NULL */
} UiRenoiseWidgets;

/* Build the renoise (generate = FALSE) or generate dialog for `vals`, fill
 * `widgets` (owned by the caller, must outlive the dialog) and return the
 * dialog, not yet shown.  Destroying the dialog frees what `widgets` holds. */
GtkWidget *ui_renoise_dialog_new       (gint32               drawable_id,
                                        const PluginRenoiseValues *vals,
                                        gboolean             generate,
                                        UiRenoiseWidgets    *widgets);

/* Select the model at `path` ("" or NULL: the default model): loads its
 * schedule, updates the plan line, OK's sensitivity and the preview.  This
 * is what the file chooser's "file-set" runs. */
void       ui_renoise_dialog_set_model (UiRenoiseWidgets    *widgets,
                                        const gchar         *path);

/* Copy the dialog's working values into `vals` (as OK does). */
void       ui_renoise_dialog_get_values (UiRenoiseWidgets   *widgets,
                                         PluginRenoiseValues *vals);

/* The training dialog. */
typedef struct
{
  GtkWidget         *dialog;
  GtkWidget         *output_entry;   /* the model file to write */
  GtkWidget         *browse_button;  /* opens a GtkFileChooserDialog (SAVE) */
  GtkWidget         *preset_combo;   /* GimpIntComboBox: index into presets */
  GtkWidget         *preset_label;   /* "1.2 million parameters" */
  GtkObject         *iterations_adj;
  GtkObject         *patch_size_adj;
  GtkWidget         *seed_box;
  GtkWidget         *resume_toggle;
  GtkWidget         *resume_chooser; /* GtkFileChooserButton (OPEN) */

  gint32             drawable_id;
  PluginTrainValues  work;
  gboolean           random_seed;
} UiTrainWidgets;

GtkWidget *ui_train_dialog_new         (gint32               drawable_id,
                                        const PluginTrainValues *vals,
                                        UiTrainWidgets      *widgets);
void       ui_train_dialog_get_values  (UiTrainWidgets      *widgets,
                                        PluginTrainValues   *vals);

/* The preset names of the training dialog's combo, in its order. */
extern const gchar *const ui_train_presets[];
#define UI_N_TRAIN_PRESETS 3

/* Test hook (ui-test.c).  When the environment variable DDPM_UI_TEST names
 * a directory, these run once the shown dialog is idle: they poke the
 * widgets, record what they see in DIR/<procedure>.result (a GKeyFile),
 * save a screenshot as DIR/<procedure>.png and answer the dialog with
 * CANCEL.  Without the variable they do nothing. */
void       ui_test_hook_renoise        (UiRenoiseWidgets    *widgets);
void       ui_test_hook_train          (UiTrainWidgets      *widgets);

#endif /* DDPM_UI_PRIVATE_H */
