/* train.c: plug-in-ddpm-train, Filters ▸ Diffusion ▸ Train Model…: train a
 * new model (or continue a checkpoint) on random patches of the layer or
 * of the selection's bounds, and write it as a .safetensors file.
 *
 * Its PDB arguments and run modes, and the GIMP side of the run: the
 * layer's pixels in, GIMP's progress bar.  The checks, the network, the
 * checkpoints and the training are the core's train job (plugin/core).
 */
#include "plugin-gimp2.h"

#include "pixels.h"
#include "ui.h"

void
plugin_train_query (void)
{
  static const GimpParamDef args[] =
  {
    { GIMP_PDB_INT32,    "run-mode",   "The run mode { RUN-INTERACTIVE (0), RUN-NONINTERACTIVE (1), RUN-WITH-LAST-VALS (2) }" },
    { GIMP_PDB_IMAGE,    "image",      "Input image" },
    { GIMP_PDB_DRAWABLE, "drawable",   "The layer to learn from (its selection bounds, if any)" },
    { GIMP_PDB_STRING,   "output",     "Model file to write (.safetensors)" },
    { GIMP_PDB_STRING,   "preset",     "Model size { \"tiny\", \"small\", \"cifar\" } (ignored when resuming)" },
    { GIMP_PDB_INT32,    "iterations", "Optimizer steps in all, those of a resumed checkpoint included (>= 1)" },
    { GIMP_PDB_INT32,    "patch-size", "Training patch side in pixels (a multiple of 8, at most the layer's size; ignored when resuming)" },
    { GIMP_PDB_INT32,    "seed",       "Random seed" },
    { GIMP_PDB_STRING,   "resume",     "Checkpoint to continue from; \"\" to start a new model" },
  };

  gimp_install_procedure (TRAIN_PROC,
                          N_("Train a diffusion model on the layer's pixels"),
                          "Trains a new model (or continues a checkpoint) on "
                          "random patches of the layer or of the selection's "
                          "bounds, and writes it as a .safetensors file.  "
                          "Checkpoints are written along the way, so a "
                          "cancelled run keeps the last one.",
                          "GIMP DDPM authors",
                          "GIMP DDPM authors",
                          "2026",
                          N_("_Train Model…"),
                          "RGB*, GRAY*",
                          GIMP_PLUGIN,
                          G_N_ELEMENTS (args), 0,
                          args, NULL);
  gimp_plugin_menu_register (TRAIN_PROC, "<Image>/Filters/Diffusion");
}

/* Train on the drawable's pixels (the selection's bounds) with vals. */
static gboolean
train_drawable (gint32                   drawable_id,
                const PluginTrainValues *vals,
                GError                 **error)
{
  GeglRectangle rect;
  DdpmTrainParams params;
  PluginPixels *pixels;
  float *planes;
  gboolean ok;

  if (!gimp_drawable_mask_intersect (drawable_id, &rect.x, &rect.y,
                                     &rect.width, &rect.height))
    rect.width = rect.height = 0;  /* no pixels to learn from */
  if (!plugin_train_job_prepare (vals, gimp_drawable_is_rgb (drawable_id) ? 3 : 1,
                                 rect.width, rect.height, &params, error))
    return FALSE;

  pixels = plugin_pixels_read (drawable_id, &rect, error);
  if (pixels == NULL)
    return FALSE;
  planes = plugin_pixels_to_tensor (pixels, pixels->n_color);
  if (planes == NULL)
    {
      plugin_set_region_error (error, rect.width, rect.height);
      plugin_pixels_free (pixels);
      return FALSE;
    }

  ok = plugin_train_job_run (&params, planes, pixels->n_color,
                             rect.height, rect.width,
                             plugin_gimp_progress, NULL, error);
  if (ok)
    gimp_progress_update (1.0);

  g_free (planes);
  plugin_pixels_free (pixels);
  return ok;
}

/* The non-interactive arguments from param[3] on into vals. */
static gboolean
train_read_args (gint               nparams,
                 const GimpParam   *param,
                 PluginTrainValues *vals,
                 GError           **error)
{
  if (!plugin_check_nparams (TRAIN_PROC, 9, nparams, error)
      || !plugin_copy_string (vals->output, sizeof vals->output,
                              param[3].data.d_string, "output", error)
      || !plugin_copy_string (vals->preset, sizeof vals->preset,
                              param[4].data.d_string, "preset", error)
      || !plugin_copy_string (vals->resume, sizeof vals->resume,
                              param[8].data.d_string, "resume", error))
    return FALSE;
  vals->iterations = param[5].data.d_int32;
  vals->patch_size = param[6].data.d_int32;
  vals->seed = (guint32) param[7].data.d_int32;
  return TRUE;
}

GimpPDBStatusType
plugin_train_run (GimpRunMode      run_mode,
                  gint             nparams,
                  const GimpParam *param,
                  GError         **error)
{
  gint32 drawable_id = param[2].data.d_drawable;
  PluginTrainValues vals = plugin_train_defaults;

  gimp_get_data (TRAIN_PROC, &vals);

  switch (run_mode)
    {
    case GIMP_RUN_INTERACTIVE:
      if (vals.output[0] == '\0')
        {
          gchar *path = plugin_user_model_path ("my-model");

          g_strlcpy (vals.output, path, sizeof vals.output);
          g_free (path);
        }
      if (!ui_train_dialog (drawable_id, &vals))
        return GIMP_PDB_CANCEL;
      break;

    case GIMP_RUN_NONINTERACTIVE:
      if (!train_read_args (nparams, param, &vals, error))
        return GIMP_PDB_CALLING_ERROR;
      break;

    case GIMP_RUN_WITH_LAST_VALS:
      break;
    }

  if (!train_drawable (drawable_id, &vals, error))
    return GIMP_PDB_EXECUTION_ERROR;

  gimp_set_data (TRAIN_PROC, &vals, sizeof vals);
  if (run_mode == GIMP_RUN_INTERACTIVE)
    {
      gchar *text = g_strdup_printf (_("The model was written to “%s”."),
                                     vals.output);

      gimp_message (text);
      g_free (text);
    }
  return GIMP_PDB_SUCCESS;
}
