/* dialogs.c: the GIMP 3 dialogs (ui-gtk3.h).  GimpProcedureDialog makes
 * the argument widgets from the procedure's arguments and keeps the last
 * values in the config; this file adds the plan line, which follows every
 * change of the config through the core's plan text
 * (plugin_renoise_plan_text, plugin_denoise_plan_text, on the model's
 * schedule from the core's model cache), and keeps OK insensitive while
 * that plan is an error (no usable model, an impossible plan).
 */
#include "config.h"

#include <glib/gi18n.h>
#include <libgimp/gimp.h>
#include <libgimp/gimpui.h>

#include "plugin-core.h"
#include "ui-gtk3.h"
#ifdef PLUGIN_UI_TEST
#include "ui-test.h"
#endif

typedef struct
{
  GtkWidget           *dialog;
  GtkWidget           *plan;
  GimpProcedureConfig *config;
  gint                 kind;            /* PluginRenderKind */
  gdouble              estimate;        /* denoise: the layer's σ */
  const gchar         *estimate_error;
} UiDialog;

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

/* The plan line for the config's values, and OK's sensitivity. */
static void
dialog_update (UiDialog *d)
{
  DdpmSchedule *schedule;
  GError *error = NULL;
  gboolean is_default, is_error = FALSE;
  gchar *path = config_model_path (d->config, &is_default);
  gchar *text = NULL;
  gint steps;

  g_object_get (d->config, "steps", &steps, NULL);
  schedule = plugin_model_get_schedule (path, is_default, &error);
  if (schedule == NULL)
    is_error = TRUE;
  else if (d->kind == PLUGIN_RENDER_DENOISE)
    {
      gdouble sigma;

      g_object_get (d->config, "sigma", &sigma, NULL);
      text = plugin_denoise_plan_text (schedule,
                                       sigma > 0.0 ? sigma : d->estimate,
                                       !(sigma > 0.0), d->estimate_error,
                                       steps, &is_error);
    }
  else
    {
      gdouble strength = 1.0;

      if (d->kind == PLUGIN_RENDER_RENOISE)
        g_object_get (d->config, "strength", &strength, NULL);
      text = plugin_renoise_plan_text (schedule,
                                       d->kind == PLUGIN_RENDER_GENERATE,
                                       strength, steps, &error);
      is_error = text == NULL;
    }
  if (text == NULL)
    text = g_strdup (error ? error->message : "");
  gtk_label_set_text (GTK_LABEL (d->plan), text);
  gtk_dialog_set_response_sensitive (GTK_DIALOG (d->dialog), GTK_RESPONSE_OK,
                                     !is_error);
  if (schedule != NULL)
    ddpm_schedule_free (schedule);
  g_clear_error (&error);
  g_free (text);
  g_free (path);
}

static void
config_notify (GObject    *config,
               GParamSpec *pspec,
               UiDialog   *d)
{
  dialog_update (d);
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

static gboolean
run_dialog (UiDialog            *d,
            GimpProcedure       *procedure,
            GimpProcedureConfig *config,
            const gchar         *title,
            const gchar         *ok_label,
            const gchar         *first,
            ...)
{
  GimpProcedureDialog *dialog;
  GList *ids = NULL;
  const gchar *id;
  va_list args;
  gboolean ok;

  gimp_ui_init (PLUG_IN_BINARY);
  preselect_default_model (config);
  d->config = config;
  d->dialog = gimp_procedure_dialog_new (procedure, config, title);
  dialog = GIMP_PROCEDURE_DIALOG (d->dialog);
  gimp_procedure_dialog_set_ok_label (dialog, ok_label);
  fill_seed_box (dialog, config);
  d->plan = gimp_procedure_dialog_get_label (dialog, "plan", "", FALSE, FALSE);
  gtk_label_set_line_wrap (GTK_LABEL (d->plan), TRUE);
  gtk_label_set_xalign (GTK_LABEL (d->plan), 0.0);

  va_start (args, first);
  for (id = first; id != NULL; id = va_arg (args, const gchar *))
    ids = g_list_append (ids, (gpointer) id);
  va_end (args);
  ids = g_list_append (ids, (gpointer) "seed-box");
  ids = g_list_append (ids, (gpointer) "plan");
  gimp_procedure_dialog_fill_list (dialog, ids);
  g_list_free (ids);

  g_signal_connect (config, "notify", G_CALLBACK (config_notify), d);
  dialog_update (d);
#ifdef PLUGIN_UI_TEST
  ui_test_attach (d->dialog, d->plan, config,
                  gimp_procedure_get_name (procedure));
#endif
  ok = gimp_procedure_dialog_run (dialog);
  g_signal_handlers_disconnect_by_data (config, d);
  gtk_widget_destroy (d->dialog);
  return ok;
}

gboolean
ui_renoise_dialog (GimpProcedure       *procedure,
                   GimpProcedureConfig *config,
                   GimpDrawable        *drawable,
                   gboolean             generate)
{
  UiDialog d = { 0 };

  d.kind = generate ? PLUGIN_RENDER_GENERATE : PLUGIN_RENDER_RENOISE;
  if (generate)
    return run_dialog (&d, procedure, config,
                       _("Generate with a Diffusion Model"), _("_Generate"),
                       "model", "steps", "sampler", NULL);
  return run_dialog (&d, procedure, config,
                     _("Renoise with a Diffusion Model"), _("_Renoise"),
                     "model", "strength", "steps", "sampler", NULL);
}

gboolean
ui_denoise_dialog (GimpProcedure       *procedure,
                   GimpProcedureConfig *config,
                   GimpDrawable        *drawable,
                   gdouble              estimate,
                   const gchar         *estimate_error)
{
  UiDialog d = { 0 };

  d.kind = PLUGIN_RENDER_DENOISE;
  d.estimate = estimate;
  d.estimate_error = estimate_error;
  return run_dialog (&d, procedure, config,
                     _("Denoise with a Diffusion Model"), _("_Denoise"),
                     "model", "sigma", "steps", "sampler", NULL);
}

gboolean
ui_train_dialog (GimpProcedure       *procedure,
                 GimpProcedureConfig *config,
                 GimpDrawable        *drawable)
{
  GtkWidget *dialog;
  gboolean ok;

  gimp_ui_init (PLUG_IN_BINARY);
  dialog = gimp_procedure_dialog_new (procedure, config,
                                      _("Train a Diffusion Model"));
  gimp_procedure_dialog_set_ok_label (GIMP_PROCEDURE_DIALOG (dialog),
                                      _("_Train"));
  gimp_procedure_dialog_fill (GIMP_PROCEDURE_DIALOG (dialog), "output",
                              "preset", "iterations", "patch-size", "seed",
                              "resume", NULL);
  ok = gimp_procedure_dialog_run (GIMP_PROCEDURE_DIALOG (dialog));
  gtk_widget_destroy (dialog);
  return ok;
}
