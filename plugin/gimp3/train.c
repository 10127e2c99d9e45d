/* train.c: plug-in-ddpm-train for GIMP 3: train a new model (or continue
 * a checkpoint) on the layer's pixels (the selection's bounds) and write
 * it as a .safetensors file; the core's train job does the work.  The
 * output and resume files are GFiles, the preset a GimpChoice (the
 * engine's preset names).  Returns nothing: the file is the result.
 */
#include "plugin-gimp3.h"

#include "ui-gtk3.h"

static gboolean
train_values_from_config (GimpProcedureConfig *config,
                          PluginTrainValues   *vals,
                          GError             **error)
{
  GFile *output = NULL, *resume = NULL;
  gchar *preset = NULL;
  gint seed;
  gboolean ok;

  *vals = plugin_train_defaults;
  g_object_get (config, "output", &output, "resume", &resume,
                "preset", &preset, "iterations", &vals->iterations,
                "patch-size", &vals->patch_size, "seed", &seed, NULL);
  vals->seed = (guint32) seed;
  ok = plugin_file_to_path (output, vals->output, sizeof vals->output,
                            "output", error)
       && plugin_file_to_path (resume, vals->resume, sizeof vals->resume,
                               "resume", error)
       && plugin_copy_string (vals->preset, sizeof vals->preset, preset,
                              "preset", error);
  g_clear_object (&output);
  g_clear_object (&resume);
  g_free (preset);
  return ok;
}

static GimpValueArray *
train_run (GimpProcedure        *procedure,
           GimpRunMode           run_mode,
           GimpImage            *image,
           GimpDrawable        **drawables,
           GimpProcedureConfig  *config,
           gpointer              run_data)
{
  PluginTrainValues vals;
  GimpDrawable *drawable;
  GError *error = NULL;

  drawable = plugin_single_drawable (drawables, &error);
  if (drawable == NULL)
    return gimp_procedure_new_return_values (procedure,
                                             GIMP_PDB_CALLING_ERROR, error);

  if (run_mode == GIMP_RUN_INTERACTIVE)
    {
      GFile *output = NULL;

      g_object_get (config, "output", &output, NULL);
      if (output == NULL || g_file_peek_path (output) == NULL)
        {
          gchar *path = plugin_user_model_path ("my-model");
          GFile *file = g_file_new_for_path (path);

          g_object_set (config, "output", file, NULL);
          g_object_unref (file);
          g_free (path);
        }
      g_clear_object (&output);
      if (!ui_train_dialog (procedure, config, drawable))
        return gimp_procedure_new_return_values (procedure, GIMP_PDB_CANCEL,
                                                 NULL);
    }

  if (!train_values_from_config (config, &vals, &error))
    return gimp_procedure_new_return_values (procedure,
                                             GIMP_PDB_CALLING_ERROR, error);
  if (!plugin_train_drawable (drawable, &vals, &error))
    return gimp_procedure_new_return_values (procedure,
                                             GIMP_PDB_EXECUTION_ERROR, error);
  if (run_mode == GIMP_RUN_INTERACTIVE)
    {
      gchar *text = g_strdup_printf (_("The model was written to “%s”."),
                                     vals.output);

      gimp_message (text);
      g_free (text);
    }
  return gimp_procedure_new_return_values (procedure, GIMP_PDB_SUCCESS, NULL);
}

GimpProcedure *
plugin_train_create (GimpPlugIn *plug_in)
{
  const PluginTrainValues *d = &plugin_train_defaults;
  GimpProcedure *procedure;

  procedure = gimp_image_procedure_new (plug_in, TRAIN_PROC,
                                        GIMP_PDB_PROC_TYPE_PLUGIN,
                                        train_run, NULL, NULL);
  plugin_procedure_common (procedure, _("_Train Model…"),
                           _("Train a diffusion model on the layer's pixels"),
                           "Trains a new model (or continues a checkpoint) "
                           "on random patches of the layer or of the "
                           "selection's bounds, and writes it as a "
                           ".safetensors file.  Checkpoints are written "
                           "along the way, so a cancelled run keeps the "
                           "last one.");
  gimp_procedure_add_file_argument (procedure, "output", _("_Output file:"),
                                    _("Model file to write (.safetensors)"),
                                    GIMP_FILE_CHOOSER_ACTION_SAVE, FALSE, NULL,
                                    G_PARAM_READWRITE);
  gimp_procedure_add_choice_argument (procedure, "preset", _("Model si_ze:"),
                                      _("The network's size (ignored when "
                                        "resuming)"),
                                      gimp_choice_new_with_values (
                                        "tiny", 0, _("Tiny (fast, for trying out)"), NULL,
                                        "small", 1, _("Small"), NULL,
                                        "cifar", 2, _("CIFAR-10 size (as in the DDPM paper)"), NULL,
                                        NULL),
                                      d->preset, G_PARAM_READWRITE);
  gimp_procedure_add_int_argument (procedure, "iterations", _("_Iterations:"),
                                   _("Optimizer steps in all, those of a "
                                     "resumed checkpoint included"),
                                   1, 100000, d->iterations, G_PARAM_READWRITE);
  gimp_procedure_add_int_argument (procedure, "patch-size", _("_Patch size:"),
                                   _("Training patch side in pixels (a "
                                     "multiple of 8, at most the layer's "
                                     "size; ignored when resuming)"),
                                   8, 1024, d->patch_size, G_PARAM_READWRITE);
  gimp_procedure_add_int_argument (procedure, "seed", _("_Seed:"),
                                   _("Random seed"), 0, G_MAXINT, d->seed,
                                   G_PARAM_READWRITE);
  gimp_procedure_add_file_argument (procedure, "resume", _("_Resume from:"),
                                    _("Checkpoint to continue from; none to "
                                      "start a new model"),
                                    GIMP_FILE_CHOOSER_ACTION_OPEN, TRUE, NULL,
                                    G_PARAM_READWRITE);
  /* The dialog's "Resume from:" toggle: off, OK runs a fresh model. */
  gimp_procedure_add_boolean_aux_argument (procedure, "resume-enabled",
                                           _("Con_tinue a checkpoint"),
                                           _("Continue a training from a "
                                             "model file written by an "
                                             "earlier one"),
                                           FALSE, G_PARAM_READWRITE);
  return procedure;
}
