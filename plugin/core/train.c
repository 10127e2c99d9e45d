/* train.c: the train job, a training run (or the continuation of a
 * checkpoint) on one layer's pixels as float planes: the values checked
 * against the pixels there are, the preset's network at the patch size,
 * the folder for the model file, then the engine's ddpm_train on random
 * patches, with progress.  The engine writes checkpoints atomically along
 * the way, so a cancel (GIMP 2.10: the plug-in process killed) keeps the
 * last one.
 */
#include "core-private.h"

#include <errno.h>

#include <glib/gstdio.h>

/* The values a caller gave, against the width × height pixels there are. */
static gboolean
train_values_check (const PluginTrainValues *vals,
                    gint                     width,
                    gint                     height,
                    GError                 **error)
{
  gboolean resume = vals->resume[0] != '\0';

  if (vals->output[0] == '\0')
    {
      g_set_error_literal (error, DDPM_ERROR, DDPM_ERROR_INVALID_ARGUMENT,
                           _("No output file given for the model."));
      return FALSE;
    }
  if (vals->iterations < 1)
    {
      g_set_error (error, DDPM_ERROR, DDPM_ERROR_INVALID_ARGUMENT,
                   _("Iterations must be at least 1, not %d."), vals->iterations);
      return FALSE;
    }
  if (width <= 0 || height <= 0)
    {
      g_set_error_literal (error, DDPM_ERROR, DDPM_ERROR_INVALID_ARGUMENT,
                           _("The selection does not touch this layer: there "
                             "are no pixels to learn from."));
      return FALSE;
    }
  /* (Resuming, the checkpoint's size applies; the engine checks it.) */
  if (!resume
      && (vals->patch_size < 8 || vals->patch_size > MIN (width, height)))
    {
      g_set_error (error, DDPM_ERROR, DDPM_ERROR_INVALID_ARGUMENT,
                   _("The patch size %d does not fit: the pixels to learn "
                     "from are %d × %d, so it must be between 8 and %d."),
                   vals->patch_size, width, height, MIN (width, height));
      return FALSE;
    }
  return TRUE;
}

gboolean
plugin_train_job_prepare (const PluginTrainValues *vals,
                          gint                     channels,
                          gint                     width,
                          gint                     height,
                          DdpmTrainParams         *params,
                          GError                 **error)
{
  gboolean resume;
  gchar *dir;

  g_return_val_if_fail (vals != NULL && params != NULL, FALSE);

  if (!train_values_check (vals, width, height, error)
      || !plugin_region_check (width, height, channels, error))
    return FALSE;

  resume = vals->resume[0] != '\0';
  ddpm_train_params_init (params);
  if (!resume)
    {
      if (!ddpm_unet_config_from_preset (vals->preset, channels,
                                         &params->config, error))
        return FALSE;
      ddpm_unet_config_set_image_size (&params->config, vals->patch_size);
      if (!ddpm_unet_config_validate (&params->config, error))
        return FALSE;
    }
  params->steps = vals->iterations;
  params->seed = vals->seed;
  params->out_path = vals->output;
  params->resume_path = resume ? vals->resume : NULL;
  /* About ten checkpoints a run: a cancel loses at most a tenth. */
  params->checkpoint_every = CLAMP (vals->iterations / 10, 10, 1000);

  dir = g_path_get_dirname (vals->output);
  if (g_mkdir_with_parents (dir, 0755) != 0)
    {
      g_set_error (error, DDPM_ERROR, DDPM_ERROR_IO,
                   _("Could not create the folder “%s” for the model: %s"),
                   dir, g_strerror (errno));
      g_free (dir);
      return FALSE;
    }
  g_free (dir);
  return TRUE;
}

gboolean
plugin_train_job_run (const DdpmTrainParams *params,
                      const float           *planes,
                      gint                   channels,
                      gint                   height,
                      gint                   width,
                      PluginProgressFunc     progress,
                      gpointer               progress_data,
                      GError               **error)
{
  DdpmTrainParams p;
  DdpmDataset *dataset;
  PluginProgress state;
  gboolean ok;

  g_return_val_if_fail (params != NULL && planes != NULL, FALSE);

  dataset = ddpm_dataset_new_from_pixels (planes, channels, height, width,
                                          error);
  if (dataset == NULL)
    return FALSE;

  p = *params;
  if (progress != NULL)
    {
      p.progress = plugin_progress_engine;
      p.progress_data = &state;
      plugin_progress_begin (&state, progress, progress_data, TRUE,
                             _("Training a diffusion model"));
    }
  ok = ddpm_train (&p, dataset, error);
  ddpm_dataset_free (dataset);
  return ok;
}
