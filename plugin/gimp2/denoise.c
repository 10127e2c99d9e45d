/* denoise.c: plug-in-ddpm-denoise, Filters ▸ Diffusion ▸ Denoise…: remove
 * white Gaussian noise from the layer (or selection) with the diffusion
 * model (issue #7).
 *
 * A photo y = x + σ·n is, scaled by √ᾱ_t, the model's diffusion state at
 * the t whose noise level √(1/ᾱ_t − 1) is 2σ (engine/denoise.c explains
 * why); the engine's ddpm_denoise starts the reverse chain there without
 * adding noise.  This file adds what GIMP needs around it: the PDB
 * arguments and run modes, and σ estimated from the layer's pixels when
 * the user gives none.  Pixels, selection, context, shadow buffer, undo,
 * progress and preview are the core's render job on the drawable
 * (plugin_render_drawable, render.c), as for renoise.
 *
 * σ is on the [0, 1] pixel scale in the PDB and in the values (as the
 * `ddpm denoise --sigma` of the command line); the dialog shows it in the
 * 0–255 levels GIMP users think in.  σ <= 0 means "estimate it".
 */
#include "plugin-gimp2.h"

#include "pixels.h"
#include "ui.h"

void
plugin_denoise_query (void)
{
  static const GimpParamDef args[] =
  {
    { GIMP_PDB_INT32,    "run-mode", "The run mode { RUN-INTERACTIVE (0), RUN-NONINTERACTIVE (1), RUN-WITH-LAST-VALS (2) }" },
    { GIMP_PDB_IMAGE,    "image",    "Input image" },
    { GIMP_PDB_DRAWABLE, "drawable", "Input drawable" },
    { GIMP_PDB_STRING,   "model",    "Model file (.safetensors); \"\" for the default model" },
    { GIMP_PDB_FLOAT,    "sigma",    "Standard deviation of the noise on the 0..1 pixel scale (25/255 = 0.098 for noise of 25 levels); 0 or negative: estimate it from the layer" },
    { GIMP_PDB_INT32,    "steps",    "Denoising steps to run (>= 1; at most the starting timestep are run)" },
    { GIMP_PDB_INT32,    "seed",     "Random seed (used by the DDPM sampler)" },
    { GIMP_PDB_INT32,    "sampler",  "Sampler { DDPM (0), DDIM (1), DPM-Solver++ (2) }" },
    PLUGIN_PRECISION_PARAM_DEF,
  };

  gimp_install_procedure (DENOISE_PROC,
                          N_("Remove Gaussian noise from the layer with a diffusion model"),
                          "Removes white Gaussian noise of standard deviation "
                          "sigma (on the 0..1 pixel scale: 25/255 = 0.098 for "
                          "noise of 25 levels) from the layer or selection: "
                          "the noisy pixels are the model's diffusion state "
                          "at the timestep of that noise level, from which "
                          "its reverse process runs to t = 0 without adding "
                          "noise.  sigma 0 or negative estimates the level "
                          "from the layer (Donoho's wavelet estimator).  "
                          "Pixels outside the selection are kept and used as "
                          "context.",
                          "GIMP DDPM authors",
                          "GIMP DDPM authors",
                          "2026",
                          N_("_Denoise…"),
                          "RGB*, GRAY*",
                          GIMP_PLUGIN,
                          G_N_ELEMENTS (args), 0,
                          args, NULL);
  gimp_plugin_menu_register (DENOISE_PROC, "<Image>/Filters/Diffusion");
}

/* The noise level of the drawable, where a denoise would work (the
 * selection's bounds, else the whole layer), on the [0, 1] pixel scale:
 * Donoho's estimator (plugin_estimate_noise) on its colour channels.
 * 0 when nothing is selected on this layer or no noise is found.  (A
 * UiEstimateFunc, for the dialog too.) */
static gboolean
denoise_estimate (gint32    drawable_id,
                  gdouble  *sigma,
                  gpointer  user_data,
                  GError  **error)
{
  GeglRectangle target;
  PluginPixels *pixels;
  float *planes;
  gboolean ok;

  g_return_val_if_fail (sigma != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  *sigma = 0.0;
  if (!plugin_render_target (drawable_id, NULL, &target)
      || target.width < 2 || target.height < 2)
    return TRUE;  /* no pixels (or too few) to find noise in */

  if (!plugin_region_check (target.width, target.height,
                            gimp_drawable_is_rgb (drawable_id) ? 3 : 1, error))
    return FALSE;
  pixels = plugin_pixels_read (drawable_id, &target, error);
  if (pixels == NULL)
    return FALSE;
  /* The layer's own channels, so that σ is what the user sees in it. */
  planes = plugin_pixels_to_tensor (pixels, pixels->n_color);
  if (planes == NULL)
    {
      plugin_set_region_error (error, target.width, target.height);
      plugin_pixels_free (pixels);
      return FALSE;
    }
  ok = plugin_estimate_noise (planes, pixels->n_color, target.height,
                              target.width, sigma, error);
  g_free (planes);
  plugin_pixels_free (pixels);
  return ok;
}

/* The render of plug-in-ddpm-denoise, serving both preview and apply (a
 * UiDenoiseRenderFunc, for the dialog's preview too): remove white
 * Gaussian noise of vals->sigma by starting the model's reverse chain at
 * the t whose noise level it is (ddpm_denoise).  vals->sigma <= 0 is
 * estimated first with denoise_estimate; an estimate of 0 (no noise
 * found) leaves the drawable unchanged. */
static gboolean
denoise_render (gint32                     drawable_id,
                const PluginDenoiseValues *vals,
                GimpPreview               *preview,
                gpointer                   user_data,
                GError                   **error)
{
  PluginRenderJob job;
  gdouble sigma;

  g_return_val_if_fail (vals != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  sigma = vals->sigma;
  /* Estimated over the whole target, also for a preview, so that the
   * preview shows what OK will do.  (The dialog passes its estimate.) */
  if (!(sigma > 0.0) && !denoise_estimate (drawable_id, &sigma, NULL, error))
    return FALSE;

  plugin_render_job_init_denoise (&job, vals, sigma);
  return plugin_render_drawable (drawable_id, &job, preview, error);
}

/* The non-interactive arguments from param[3] on into vals. */
static gboolean
denoise_read_args (gint                 nparams,
                   const GimpParam     *param,
                   PluginDenoiseValues *vals,
                   GError             **error)
{
  /* Without precision (the plug-in's first version): the default. */
  if (!plugin_check_nparams (DENOISE_PROC, nparams == 8 ? 8 : 9, nparams,
                             error)
      || !plugin_copy_string (vals->model, sizeof vals->model,
                              param[3].data.d_string, "model", error))
    return FALSE;
  vals->sigma = param[4].data.d_float;
  vals->steps = param[5].data.d_int32;
  vals->seed = (guint32) param[6].data.d_int32;
  vals->random_seed = FALSE;
  vals->sampler = param[7].data.d_int32;
  vals->precision = nparams > 8 ? param[8].data.d_int32 : DDPM_PRECISION_AUTO;
  return plugin_denoise_values_validate (vals, error);
}

GimpPDBStatusType
plugin_denoise_run (GimpRunMode      run_mode,
                    gint             nparams,
                    const GimpParam *param,
                    GError         **error)
{
  gint32 drawable_id = param[2].data.d_drawable;
  PluginDenoiseValues vals = plugin_denoise_defaults;

  gimp_get_data (DENOISE_PROC, &vals);

  switch (run_mode)
    {
    case GIMP_RUN_INTERACTIVE:
      {
        gchar *default_model = plugin_default_model_path ();
        gboolean ok = ui_denoise_dialog (drawable_id, &vals, default_model,
                                         denoise_render, denoise_estimate,
                                         NULL);

        g_free (default_model);
        if (!ok)
          return GIMP_PDB_CANCEL;
      }
      break;

    case GIMP_RUN_NONINTERACTIVE:
      if (!denoise_read_args (nparams, param, &vals, error))
        return GIMP_PDB_CALLING_ERROR;
      break;

    case GIMP_RUN_WITH_LAST_VALS:
      if (vals.random_seed)
        vals.seed = g_random_int ();
      break;
    }

  if (!denoise_render (drawable_id, &vals, NULL, NULL, error))
    return GIMP_PDB_EXECUTION_ERROR;

  gimp_set_data (DENOISE_PROC, &vals, sizeof vals);
  if (run_mode != GIMP_RUN_NONINTERACTIVE)
    gimp_displays_flush ();
  return GIMP_PDB_SUCCESS;
}
