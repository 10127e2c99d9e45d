/* ui-private.h: what the dialogs share inside ui/gimp2, and what the ui
 * tests drive: the dialog constructors (which build and wire every widget
 * but do not run a main loop), the widget records they fill, and the test
 * hooks.
 *
 * Not installed, not used by plugin/: the plug-in sees only ui.h. */
#ifndef DDPM_UI_PRIVATE_H
#define DDPM_UI_PRIVATE_H

#include "config.h"

#include <glib/gi18n.h>
#include <libgimp/gimp.h>
#include <libgimp/gimpui.h>

#include "ddpm.h"
#include "plugin-core.h"
#include "ui.h"

/* Widths shared by the dialogs, as GIMP's own filters use them. */
#define UI_SCALE_WIDTH 200
#define UI_ENTRY_WIDTH 6

/* Pieces every dialog that runs a model is built from (widgets.c). */

/* A GimpDialog with Cancel and an OK button labelled ok_label ("_OK",
 * "_Train"), help id `help_id`, transient for the image window;
 * *main_vbox is the shown box its widgets go in. */
GtkWidget *ui_dialog_new          (const gchar   *title,
                                   const gchar   *help_id,
                                   const gchar   *ok_label,
                                   GtkWidget    **main_vbox);
/* A GimpDrawablePreview packed into box, and under it *error_label, a
 * hidden label for ui_preview_show_result. */
GtkWidget *ui_preview_new         (GtkWidget     *box,
                                   gint32         drawable_id,
                                   GtkWidget    **error_label);
/* After a preview render: hide the label (ok), or show why it failed. */
void       ui_preview_show_result (GtkWidget     *error_label,
                                   gboolean       ok,
                                   const GError  *error);
/* A GtkFileChooserButton for .safetensors files (not yet shown). */
GtkWidget *ui_model_chooser_new   (void);
/* Choose the model at `path` ("" or NULL: default_model): *model_path
 * becomes a copy of the file's path, *schedule a copy of its schedule from
 * the core's model cache (NULL, and *model_error saying why, when it
 * cannot be used; the old ones are freed), the values' `model` field ""
 * for the default model or the path, and the chooser (if any) shows the
 * file. */
void       ui_model_select        (const gchar   *path,
                                   const gchar   *default_model,
                                   GtkWidget     *chooser,
                                   gchar        **model_path,
                                   DdpmSchedule **schedule,
                                   gchar        **model_error,
                                   gchar         *model,
                                   gsize          model_size);
/* A GimpIntComboBox of DdpmSamplerKind that writes *sampler. */
GtkWidget *ui_sampler_combo_new   (gint          *sampler);
/* The table every filter dialog starts with (n_rows rows): the model
 * chooser in row 0, whose "file-set" goes to model_file_set (data), and
 * the sampler in row 1 writing *sampler and invalidating preview. */
GtkWidget *ui_filter_table_new    (GtkWidget     *main_vbox,
                                   gint           n_rows,
                                   GtkWidget     *preview,
                                   gint          *sampler,
                                   GCallback      model_file_set,
                                   gpointer       data,
                                   GtkWidget    **model_chooser,
                                   GtkWidget    **sampler_combo);
/* A GimpIntComboBox of DdpmPrecision (plugin_precision_choices) that
 * writes *precision and invalidates preview. */
GtkWidget *ui_precision_combo_new (gint          *precision,
                                   GtkWidget     *preview);
/* The "Steps" scale entry (1–1000, logarithmic) in row `row` of table,
 * writing *steps. */
GtkObject *ui_steps_entry_new     (GtkTable      *table,
                                   gint           row,
                                   gint          *steps);
/* The "Seed" row: gimp_random_seed_new on *seed and *random_seed, which
 * invalidates `preview` when it changes. */
GtkWidget *ui_seed_new            (GtkTable      *table,
                                   gint           row,
                                   guint32       *seed,
                                   gboolean      *random_seed,
                                   GtkWidget     *preview);
/* The line that says what OK will run: a warning icon (*icon, hidden)
 * and an italic label, packed into box; returns the label. */
GtkWidget *ui_plan_line_new       (GtkWidget     *box,
                                   GtkWidget    **icon);
/* Show `text` there; an error shows the icon and makes OK insensitive. */
void       ui_plan_line_set       (GtkWidget     *dialog,
                                   GtkWidget     *label,
                                   GtkWidget     *icon,
                                   const gchar   *text,
                                   gboolean       is_error);

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
  GtkWidget           *model_info_label; /* "Model: 256×256 pixel tiles,
                                            552.8 million parameters" */

  gint32               drawable_id;
  gboolean             generate;
  PluginRenoiseValues  work;
  UiRenoiseRenderFunc  render;         /* the preview's */
  gpointer             render_data;
  gchar               *default_model;  /* what work.model "" stands for */
  gchar               *model_path;     /* the file the schedule came from */
  DdpmSchedule        *schedule;       /* that model's schedule (a copy);
                                          NULL when it could not load */
  gchar               *model_error;    /* why, when schedule is NULL */
  GtkWidget           *precision_combo; /* GimpIntComboBox of
                                           DdpmPrecision */
} UiRenoiseWidgets;

/* Build the renoise (generate = FALSE) or generate dialog for `vals`, fill
 * `widgets` (owned by the caller, must outlive the dialog) and return the
 * dialog, not yet shown.  Destroying the dialog frees what `widgets` holds.
 * default_model, render and render_data: as ui_renoise_dialog's. */
GtkWidget *ui_renoise_dialog_new       (gint32               drawable_id,
                                        const PluginRenoiseValues *vals,
                                        gboolean             generate,
                                        const gchar         *default_model,
                                        UiRenoiseRenderFunc  render,
                                        gpointer             render_data,
                                        UiRenoiseWidgets    *widgets);

/* Select the model at `path` ("" or NULL: the default model): loads its
 * schedule, updates the plan line, OK's sensitivity and the preview.  This
 * is what the file chooser's "file-set" runs. */
void       ui_renoise_dialog_set_model (UiRenoiseWidgets    *widgets,
                                        const gchar         *path);

/* Copy the dialog's working values into `vals` (as OK does). */
void       ui_renoise_dialog_get_values (UiRenoiseWidgets   *widgets,
                                         PluginRenoiseValues *vals);

/* The denoise dialog (denoise-dialog.c).  The dialog edits `work`, a copy
 * of the caller's values; ui_denoise_dialog copies it back only on OK.
 * The noise level is shown in 0–255 levels and kept in `work.sigma` on
 * the [0, 1] scale; with "Estimate" on, work.sigma is 0 (estimate when
 * the procedure runs) and the entry shows the estimate, insensitive.  A
 * level of 0 given by hand cannot be run (OK is insensitive). */
typedef struct
{
  GtkWidget           *dialog;
  GtkWidget           *preview;        /* GimpDrawablePreview */
  GtkWidget           *preview_error;
  GtkWidget           *model_chooser;
  GtkObject           *sigma_adj;      /* σ in 0–255 levels */
  GtkWidget           *estimate_toggle;
  GtkObject           *steps_adj;
  GtkWidget           *seed_box;
  GtkWidget           *sampler_combo;
  GtkWidget           *plan_label;     /* "Start at t = 57 of 1000, then
                                          5 denoising steps" */
  GtkWidget           *plan_icon;

  gint32               drawable_id;
  PluginDenoiseValues  work;
  UiDenoiseRenderFunc  render;         /* the preview's */
  UiEstimateFunc       estimate_func;  /* the noise in the layer */
  gpointer             user_data;      /* of both */
  gboolean             estimating;     /* "Estimate" is on */
  gdouble              estimate;       /* [0, 1]; < 0 until computed */
  gchar               *estimate_error; /* why estimating failed */
  gchar               *default_model;
  gchar               *model_path;
  DdpmSchedule        *schedule;
  gchar               *model_error;
  GtkWidget           *precision_combo; /* GimpIntComboBox of
                                           DdpmPrecision */
} UiDenoiseWidgets;

/* As ui_renoise_dialog_new; the arguments are ui_denoise_dialog's. */
GtkWidget *ui_denoise_dialog_new        (gint32               drawable_id,
                                         const PluginDenoiseValues *vals,
                                         const gchar         *default_model,
                                         UiDenoiseRenderFunc  render,
                                         UiEstimateFunc       estimate,
                                         gpointer             user_data,
                                         UiDenoiseWidgets    *widgets);
/* As ui_renoise_dialog_set_model. */
void       ui_denoise_dialog_set_model  (UiDenoiseWidgets    *widgets,
                                         const gchar         *path);
/* Turn "Estimate from the layer" on or off, as the toggle does. */
void       ui_denoise_dialog_set_estimate (UiDenoiseWidgets  *widgets,
                                           gboolean           estimate);
void       ui_denoise_dialog_get_values (UiDenoiseWidgets    *widgets,
                                         PluginDenoiseValues *vals);

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

/* As ui_renoise_dialog_new. */
GtkWidget *ui_train_dialog_new         (gint32               drawable_id,
                                        const PluginTrainValues *vals,
                                        UiTrainWidgets      *widgets);
void       ui_train_dialog_get_values  (UiTrainWidgets      *widgets,
                                        PluginTrainValues   *vals);

/* The preset names of the training dialog's combo, in its order. */
extern const gchar *const ui_train_presets[];
#define UI_N_TRAIN_PRESETS 3

/* The test build's hooks (ui-test.c, linked into gimp-ddpm-uitest only,
 * whose main installs them with ui_test_install): each dialog, once
 * shown, hands its widgets to its hook.  NULL in the installed gimp-ddpm:
 * the dialogs just run. */
typedef struct
{
  void (*renoise) (UiRenoiseWidgets *widgets);
  void (*denoise) (UiDenoiseWidgets *widgets);
  void (*train)   (UiTrainWidgets   *widgets);
} UiTestHooks;

extern const UiTestHooks *ui_test_hooks;

#endif /* DDPM_UI_PRIVATE_H */
