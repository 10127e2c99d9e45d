/* dialogs.c: the GIMP 3 dialogs (ui-gtk3.h).  GimpProcedureDialog makes
 * the argument widgets from the procedure's arguments and keeps the last
 * values in the config; this file adds what it does not make, as the
 * GIMP 2.10 dialogs (ui/gimp2) have it:
 *
 *   - the live preview: a GimpDrawablePreview whose "invalidated" signal
 *     renders the config's values through the glue's render function,
 *     the same one that renders the whole layer on OK;
 *   - the plan line, which follows every change of the config through the
 *     core's plan text (plugin_renoise_plan_text, plugin_denoise_plan_text,
 *     on the model's schedule from the core's model cache), and OK
 *     insensitive while that plan is an error (no usable model);
 *   - denoise: σ in 0–255 levels and "Estimate from the layer" (aux
 *     arguments), kept in step with the procedure's σ on the [0, 1] scale
 *     (0 = estimate), so that Filters ▸ Repeat estimates afresh;
 *   - train: the network's parameter count under the preset, "Resume
 *     from:" (an aux toggle: off clears the checkpoint on OK), OK
 *     insensitive without an output file or a checkpoint to resume.
 */
#include "config.h"

#include <glib/gi18n.h>
#include <libgimp/gimp.h>
#include <libgimp/gimpui.h>

#include "plugin-core.h"
#include "ui-gtk3-private.h"

#define UI_KIND_TRAIN (-1)

/* The model the config names as a path, and whether it is the default. */
static gchar *
config_model_path (GimpProcedureConfig *config,
                   gboolean            *is_default)
{
  GFile *model = NULL;
  gchar *path, *def = plugin_default_model_path ();

  g_object_get (config, "model", &model, NULL);
  path = model && g_file_peek_path (model) ? g_file_get_path (model) : NULL;
  g_clear_object (&model);
  if (path == NULL)
    path = g_strdup (def);
  *is_default = g_strcmp0 (path, def) == 0;
  g_free (def);
  return path;
}

/* Whether the config's boolean `name` is on. */
static gboolean
config_flag (GimpProcedureConfig *config,
             const gchar         *name)
{
  gboolean on = FALSE;

  g_object_get (config, name, &on, NULL);
  return on;
}

/* The σ ([0, 1] scale) the plan and the preview use: the layer's
 * estimate while estimating, else the config's. */
static gdouble
dialog_sigma (UiDialog *d)
{
  gdouble sigma = 0.0;

  if (config_flag (d->config, "estimate"))
    return MAX (d->estimate, 0.0);
  g_object_get (d->config, "sigma", &sigma, NULL);
  return sigma;
}

/* The plan line's text for the config's values, newly allocated;
 * *is_error when OK cannot run. */
static gchar *
dialog_plan_text (UiDialog *d,
                  gboolean *is_error)
{
  DdpmSchedule *schedule;
  GError *error = NULL;
  gboolean is_default;
  gchar *path = config_model_path (d->config, &is_default);
  gchar *text = NULL;
  gint steps;

  *is_error = FALSE;
  g_object_get (d->config, "steps", &steps, NULL);
  schedule = plugin_model_get_schedule (path, is_default, &error);
  if (schedule == NULL)
    *is_error = TRUE;
  else if (d->kind == PLUGIN_RENDER_DENOISE)
    text = plugin_denoise_plan_text (schedule, dialog_sigma (d),
                                     config_flag (d->config, "estimate"),
                                     d->estimate_error, steps, is_error);
  else
    {
      gdouble strength = 1.0;

      if (d->kind == PLUGIN_RENDER_RENOISE)
        g_object_get (d->config, "strength", &strength, NULL);
      text = plugin_renoise_plan_text (schedule,
                                       d->kind == PLUGIN_RENDER_GENERATE,
                                       strength, steps, &error);
      *is_error = text == NULL;
    }
  if (text == NULL)
    text = g_strdup (error ? error->message : "");
  if (schedule != NULL)
    ddpm_schedule_free (schedule);
  g_clear_error (&error);
  g_free (path);
  return text;
}

/* The plan line for the config's values, and OK's sensitivity. */
static void
dialog_update (UiDialog *d)
{
  gboolean is_error;
  gchar *text = dialog_plan_text (d, &is_error);

  gtk_label_set_text (GTK_LABEL (d->plan), text);
  gtk_dialog_set_response_sensitive (GTK_DIALOG (d->dialog), GTK_RESPONSE_OK,
                                     !is_error);
  g_free (text);
}

/* The preview: the same render as OK's, on the visible region. */
static void
preview_invalidated (GimpPreview *preview,
                     UiDialog    *d)
{
  GError *error = NULL;
  gboolean is_error;
  gchar *text = dialog_plan_text (d, &is_error);

  g_free (text);
  gtk_widget_hide (d->preview_error);
  if (is_error)
    return;  /* nothing to run: the plan line says why */
  if (d->render (d->drawable, d->config, dialog_sigma (d), preview,
                 d->render_data, &error))
    d->n_renders++;
  else
    {
      gchar *message = g_strdup_printf (_("Preview failed: %s"),
                                        error->message);

      gtk_label_set_text (GTK_LABEL (d->preview_error), message);
      gtk_widget_show (d->preview_error);
      g_free (message);
    }
  g_clear_error (&error);
}

/* Denoise: "sigma" (the procedure's, [0, 1], 0 = estimate) follows the
 * dialog's σ in levels and "estimate"; while estimating, the levels show
 * the estimate. */
static void
denoise_sync (UiDialog    *d,
              const gchar *changed)
{
  gboolean estimate = config_flag (d->config, "estimate");
  gdouble levels = 0.0;

  d->syncing = TRUE;
  g_object_get (d->config, "sigma-levels", &levels, NULL);
  if (estimate)
    {
      g_object_set (d->config, "sigma", 0.0, NULL);
      if (g_strcmp0 (changed, "estimate") == 0 && d->estimate > 0.0)
        g_object_set (d->config, "sigma-levels",
                      MIN (d->estimate * 255.0, 255.0), NULL);
    }
  else
    g_object_set (d->config, "sigma", levels / 255.0, NULL);
  d->syncing = FALSE;
}

static void
config_notify (GObject    *config,
               GParamSpec *pspec,
               UiDialog   *d)
{
  if (d->syncing)
    return;
  if (d->kind == PLUGIN_RENDER_DENOISE
      && (g_strcmp0 (pspec->name, "estimate") == 0
          || g_strcmp0 (pspec->name, "sigma-levels") == 0))
    denoise_sync (d, pspec->name);
  dialog_update (d);
  if (d->preview != NULL)
    gimp_preview_invalidate (GIMP_PREVIEW (d->preview));
}

/* The model chooser shows the default model when none is chosen. */
static void
preselect_default_model (GimpProcedureConfig *config)
{
  GFile *model = NULL;

  g_object_get (config, "model", &model, NULL);
  if (model == NULL || g_file_peek_path (model) == NULL)
    {
      gchar *def = plugin_default_model_path ();
      GFile *file = g_file_new_for_path (def);

      g_object_set (config, "model", file, NULL);
      g_object_unref (file);
      g_free (def);
    }
  g_clear_object (&model);
}

/* Seed and "Randomize" on one row, the seed insensitive while random. */
static void
fill_seed_box (GimpProcedureDialog *dialog,
               GimpProcedureConfig *config)
{
  GtkWidget *box = gimp_procedure_dialog_fill_box (dialog, "seed-box", "seed",
                                                   "random-seed", NULL);

  gtk_orientable_set_orientation (GTK_ORIENTABLE (box),
                                  GTK_ORIENTATION_HORIZONTAL);
  gtk_box_set_spacing (GTK_BOX (box), 12);
  gimp_procedure_dialog_set_sensitive (dialog, "seed", FALSE,
                                       G_OBJECT (config), "random-seed", TRUE);
}

/* An italic label of the dialog's, left-aligned and wrapping. */
static GtkWidget *
dialog_label (GimpProcedureDialog *dialog,
              const gchar         *id)
{
  GtkWidget *label = gimp_procedure_dialog_get_label (dialog, id, "", FALSE,
                                                      FALSE);

  gtk_label_set_line_wrap (GTK_LABEL (label), TRUE);
  gtk_label_set_xalign (GTK_LABEL (label), 0.0);
  gtk_label_set_max_width_chars (GTK_LABEL (label), 48);
  gimp_label_set_attributes (GTK_LABEL (label),
                             PANGO_ATTR_STYLE, PANGO_STYLE_ITALIC, -1);
  return label;
}

/* Run the dialog d->dialog, filled with `ids`; TRUE for OK. */
static gboolean
dialog_run (UiDialog *d,
            GList    *ids)
{
  GimpProcedureDialog *dialog = GIMP_PROCEDURE_DIALOG (d->dialog);
  gboolean ok;

  gimp_procedure_dialog_fill_list (dialog, ids);
  if (d->preview_error != NULL)
    gtk_widget_hide (d->preview_error);  /* shown only when a render fails */
  if (d->kind != UI_KIND_TRAIN)
    {
      g_signal_connect (d->config, "notify", G_CALLBACK (config_notify), d);
      dialog_update (d);
    }
#ifdef PLUGIN_UI_TEST
  ui_test_attach (d);
#endif
  ok = gimp_procedure_dialog_run (dialog);
  g_signal_handlers_disconnect_by_data (d->config, d);
  gtk_widget_destroy (d->dialog);
  return ok;
}

/* The filter dialogs: preview, the rows `first`…, seed, plan line. */
static gboolean
run_filter_dialog (UiDialog            *d,
                   GimpProcedure       *procedure,
                   GimpProcedureConfig *config,
                   GimpDrawable        *drawable,
                   const gchar         *title,
                   const gchar         *ok_label,
                   const gchar         *first,
                   ...)
{
  GimpProcedureDialog *dialog;
  GList *ids = NULL;
  const gchar *id;
  va_list args;

  gimp_ui_init (PLUG_IN_BINARY);
  preselect_default_model (config);
  d->config = config;
  d->drawable = drawable;
  d->name = gimp_procedure_get_name (procedure);
  d->dialog = gimp_procedure_dialog_new (procedure, config, title);
  dialog = GIMP_PROCEDURE_DIALOG (d->dialog);
  gimp_procedure_dialog_set_ok_label (dialog, ok_label);

  /* The live preview of the visible region, and under it why it failed. */
  d->preview = gimp_procedure_dialog_get_drawable_preview (dialog, "preview",
                                                           drawable);
  g_signal_connect (d->preview, "invalidated",
                    G_CALLBACK (preview_invalidated), d);
  d->preview_error = dialog_label (dialog, "preview-error");

  fill_seed_box (dialog, config);
  d->plan = dialog_label (dialog, "plan");
  /* Sliders as 2.10's, not the spin buttons GIMP makes by default;
   * steps logarithmic (10 and 200 are both common). */
  if (d->kind == PLUGIN_RENDER_RENOISE)
    gimp_procedure_dialog_get_scale_entry (dialog, "strength", 1.0);
  gimp_scale_entry_set_logarithmic (
    GIMP_SCALE_ENTRY (gimp_procedure_dialog_get_scale_entry (dialog, "steps",
                                                             1.0)),
    TRUE);
  if (d->kind == PLUGIN_RENDER_DENOISE)
    {
      /* Logarithmic, as 2.10's: noise of 2 and of 20 levels are both
       * common.  It only shows the estimate while estimating. */
      GtkWidget *levels = gimp_procedure_dialog_get_widget (dialog,
                                                            "sigma-levels",
                                                            GIMP_TYPE_SCALE_ENTRY);

      gimp_scale_entry_set_logarithmic (GIMP_SCALE_ENTRY (levels), TRUE);
      gimp_procedure_dialog_set_sensitive (dialog, "sigma-levels", FALSE,
                                           G_OBJECT (config), "estimate",
                                           TRUE);
    }

  ids = g_list_append (ids, (gpointer) "preview");
  ids = g_list_append (ids, (gpointer) "preview-error");
  va_start (args, first);
  for (id = first; id != NULL; id = va_arg (args, const gchar *))
    ids = g_list_append (ids, (gpointer) id);
  va_end (args);
  ids = g_list_append (ids, (gpointer) "seed-box");
  ids = g_list_append (ids, (gpointer) "precision");
  ids = g_list_append (ids, (gpointer) "plan");

  {
    gboolean ok = dialog_run (d, ids);

    g_list_free (ids);
    return ok;
  }
}

gboolean
ui_renoise_dialog (GimpProcedure       *procedure,
                   GimpProcedureConfig *config,
                   GimpDrawable        *drawable,
                   gboolean             generate,
                   UiPreviewFunc        render,
                   gpointer             render_data)
{
  UiDialog d = { 0 };

  d.kind = generate ? PLUGIN_RENDER_GENERATE : PLUGIN_RENDER_RENOISE;
  d.render = render;
  d.render_data = render_data;
  if (generate)
    return run_filter_dialog (&d, procedure, config, drawable,
                              _("Generate with a Diffusion Model"),
                              _("_Generate"),
                              "model", "steps", "sampler", NULL);
  return run_filter_dialog (&d, procedure, config, drawable,
                            _("Renoise with a Diffusion Model"), _("_Renoise"),
                            "model", "strength", "steps", "sampler", NULL);
}

gboolean
ui_denoise_dialog (GimpProcedure       *procedure,
                   GimpProcedureConfig *config,
                   GimpDrawable        *drawable,
                   gdouble              estimate,
                   const gchar         *estimate_error,
                   UiPreviewFunc        render,
                   gpointer             render_data)
{
  UiDialog d = { 0 };
  gdouble sigma = 0.0;
  gboolean estimating;

  d.kind = PLUGIN_RENDER_DENOISE;
  d.render = render;
  d.render_data = render_data;
  d.estimate = estimate;
  d.estimate_error = estimate_error;

  /* The procedure's σ decides (a script or Repeat may have set it): 0
   * estimates, and the levels then show the estimate. */
  g_object_get (config, "sigma", &sigma, NULL);
  estimating = !(sigma > 0.0);
  g_object_set (config, "estimate", estimating,
                "sigma-levels", MIN ((estimating ? MAX (estimate, 0.0)
                                                 : sigma) * 255.0, 255.0),
                NULL);
  if (!estimating)
    g_object_set (config, "sigma", sigma, NULL);  /* rounding aside */

  return run_filter_dialog (&d, procedure, config, drawable,
                            _("Denoise with a Diffusion Model"), _("_Denoise"),
                            "model", "sigma-levels", "estimate", "steps",
                            "sampler", NULL);
}

/* ------------------------------------------------------------------ train */

/* The preset's network size, under the preset: "1.2 million parameters". */
static void
train_update (UiDialog *d)
{
  DdpmUNetConfig unet;
  GError *error = NULL;
  GFile *output = NULL, *resume = NULL;
  gchar *preset = NULL, *text;
  gboolean resuming = config_flag (d->config, "resume-enabled");
  gboolean ok;

  g_object_get (d->config, "preset", &preset, "output", &output,
                "resume", &resume, NULL);
  if (ddpm_unet_config_from_preset (preset,
                                    gimp_drawable_is_rgb (d->drawable) ? 3 : 1,
                                    &unet, &error))
    /* TRANSLATORS: the size of the neural network, e.g. "2.1 million
     * parameters". */
    text = g_strdup_printf (_("%.1f million parameters"),
                            ddpm_unet_config_n_params (&unet) / 1e6);
  else
    text = g_strdup (error->message);
  gtk_label_set_text (GTK_LABEL (d->params), text);
  /* A checkpoint carries its own network: the preset does not apply. */
  gtk_widget_set_sensitive (d->params, !resuming);

  /* OK needs a file to write, and a checkpoint when resuming. */
  ok = output != NULL && g_file_peek_path (output) != NULL
       && (!resuming || (resume != NULL && g_file_peek_path (resume) != NULL));
  gtk_dialog_set_response_sensitive (GTK_DIALOG (d->dialog), GTK_RESPONSE_OK,
                                     ok);
  g_clear_error (&error);
  g_clear_object (&output);
  g_clear_object (&resume);
  g_free (preset);
  g_free (text);
}

static void
train_notify (GObject    *config,
              GParamSpec *pspec,
              UiDialog   *d)
{
  train_update (d);
}

gboolean
ui_train_dialog (GimpProcedure       *procedure,
                 GimpProcedureConfig *config,
                 GimpDrawable        *drawable)
{
  UiDialog d = { 0 };
  GimpProcedureDialog *dialog;
  GtkWidget *intro, *box;
  GList *ids = NULL;
  GFile *resume = NULL;
  gboolean ok;

  gimp_ui_init (PLUG_IN_BINARY);
  d.kind = UI_KIND_TRAIN;
  d.config = config;
  d.drawable = drawable;
  d.name = gimp_procedure_get_name (procedure);

  /* Resuming is on when the values name a checkpoint. */
  g_object_get (config, "resume", &resume, NULL);
  g_object_set (config, "resume-enabled",
                resume != NULL && g_file_peek_path (resume) != NULL, NULL);
  g_clear_object (&resume);

  d.dialog = gimp_procedure_dialog_new (procedure, config,
                                        _("Train a Diffusion Model"));
  dialog = GIMP_PROCEDURE_DIALOG (d.dialog);
  gimp_procedure_dialog_set_ok_label (dialog, _("_Train"));

  intro = gimp_procedure_dialog_get_label (dialog, "intro",
                                           _("Teaches a diffusion model what "
                                             "this layer looks like, from "
                                             "random patches of it. The model "
                                             "can then renoise or generate "
                                             "images in its style."),
                                           FALSE, FALSE);
  gtk_label_set_line_wrap (GTK_LABEL (intro), TRUE);
  gtk_label_set_xalign (GTK_LABEL (intro), 0.0);
  gtk_label_set_max_width_chars (GTK_LABEL (intro), 48);
  d.params = dialog_label (dialog, "params");
  d.plan = d.params;  /* what the test hook records as the dialog's line */

  gimp_procedure_dialog_set_sensitive (dialog, "preset", FALSE,
                                       G_OBJECT (config), "resume-enabled",
                                       TRUE);
  gimp_procedure_dialog_set_sensitive (dialog, "resume", TRUE,
                                       G_OBJECT (config), "resume-enabled",
                                       FALSE);
  box = gimp_procedure_dialog_fill_box (dialog, "resume-box",
                                        "resume-enabled", "resume", NULL);
  gtk_orientable_set_orientation (GTK_ORIENTABLE (box),
                                  GTK_ORIENTATION_HORIZONTAL);
  gtk_box_set_spacing (GTK_BOX (box), 12);

  ids = g_list_append (ids, (gpointer) "intro");
  ids = g_list_append (ids, (gpointer) "output");
  ids = g_list_append (ids, (gpointer) "preset");
  ids = g_list_append (ids, (gpointer) "params");
  ids = g_list_append (ids, (gpointer) "iterations");
  ids = g_list_append (ids, (gpointer) "patch-size");
  ids = g_list_append (ids, (gpointer) "seed");
  ids = g_list_append (ids, (gpointer) "resume-box");
  g_signal_connect (config, "notify", G_CALLBACK (train_notify), &d);
  train_update (&d);
  ok = dialog_run (&d, ids);
  g_signal_handlers_disconnect_by_data (config, &d);
  g_list_free (ids);

  /* "Resume from:" off: a fresh model, whatever file the chooser kept. */
  if (ok && !config_flag (config, "resume-enabled"))
    g_object_set (config, "resume", NULL, NULL);
  return ok;
}
