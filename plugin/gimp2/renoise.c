/* renoise.c: plug-in-ddpm-renoise, Filters ▸ Diffusion ▸ Renoise…: noise
 * the layer (or selection) to t0 = strength·T and let the model denoise it
 * back (SDEdit, Meng et al. 2021).  Strength 0 leaves the pixels as they
 * are, 1 makes a new image.
 *
 * Its PDB arguments and run modes, and the run modes of generate.c too
 * (the same procedure at strength 1, without the strength argument).  The
 * rendering itself is the core's render job on the drawable
 * (plugin_render_drawable, render.c).
 */
#include "plugin-gimp2.h"

#include "ui.h"

void
plugin_renoise_query (void)
{
  static const GimpParamDef args[] =
  {
    { GIMP_PDB_INT32,    "run-mode", "The run mode { RUN-INTERACTIVE (0), RUN-NONINTERACTIVE (1), RUN-WITH-LAST-VALS (2) }" },
    { GIMP_PDB_IMAGE,    "image",    "Input image" },
    { GIMP_PDB_DRAWABLE, "drawable", "Input drawable" },
    { GIMP_PDB_STRING,   "model",    "Model file (.safetensors); \"\" for the default model" },
    { GIMP_PDB_FLOAT,    "strength", "How far to noise before denoising, 0..1 (0: unchanged, 1: a new image)" },
    { GIMP_PDB_INT32,    "steps",    "Denoising steps to run (>= 1)" },
    { GIMP_PDB_INT32,    "seed",     "Random seed" },
    { GIMP_PDB_INT32,    "sampler",  "Sampler { DDPM (0), DDIM (1), DPM-Solver++ (2) }" },
    PLUGIN_PRECISION_PARAM_DEF,
  };

  gimp_install_procedure (RENOISE_PROC,
                          N_("Partially noise the layer and denoise it back with a diffusion model"),
                          "Forward-noises the layer (or selection) to "
                          "t0 = strength·T and runs the model's reverse process "
                          "back to t = 0 (SDEdit).  strength 0 leaves the "
                          "pixels unchanged, 1 generates a new image.  Pixels "
                          "outside the selection are kept and used as context.",
                          "GIMP DDPM authors",
                          "GIMP DDPM authors",
                          "2026",
                          N_("_Renoise…"),
                          "RGB*, GRAY*",
                          GIMP_PLUGIN,
                          G_N_ELEMENTS (args), 0,
                          args, NULL);
  gimp_plugin_menu_register (RENOISE_PROC, "<Image>/Filters/Diffusion");
}

/* The render of renoise and generate, serving both preview and apply
 * (a UiRenoiseRenderFunc, for the dialog's preview too): preview == NULL
 * applies to the drawable through the shadow buffer with progress, as one
 * undo step; else it renders into the GimpPreview region only.  generate
 * = TRUE: strength 1.  On failure returns FALSE with a translated message
 * in error and leaves the drawable untouched. */
static gboolean
renoise_render (gint32                     drawable_id,
                const PluginRenoiseValues *vals,
                gboolean                   generate,
                GimpPreview               *preview,
                gpointer                   user_data,
                GError                   **error)
{
  PluginRenderJob job;

  g_return_val_if_fail (vals != NULL, FALSE);

  plugin_render_job_init_renoise (&job, vals, generate);
  return plugin_render_drawable (drawable_id, &job, preview, error);
}

/* The non-interactive arguments from param[3] on into vals. */
static gboolean
renoise_read_args (const gchar         *name,
                   gboolean             generate,
                   gint                 nparams,
                   const GimpParam     *param,
                   PluginRenoiseValues *vals,
                   GError             **error)
{
  int p = 3;
  gint expected = generate ? 8 : 9;

  /* A caller of the plug-in's first version, without precision, gets
   * the default (Script-Fu itself insists on every argument). */
  if (nparams == expected - 1)
    expected--;
  if (!plugin_check_nparams (name, expected, nparams, error)
      || !plugin_copy_string (vals->model, sizeof vals->model,
                              param[p++].data.d_string, "model", error))
    return FALSE;
  if (!generate)
    vals->strength = param[p++].data.d_float;
  vals->steps = param[p++].data.d_int32;
  vals->seed = (guint32) param[p++].data.d_int32;
  vals->random_seed = FALSE;
  vals->sampler = param[p++].data.d_int32;
  vals->precision = p < nparams ? param[p++].data.d_int32 : DDPM_PRECISION_AUTO;
  return plugin_renoise_values_validate (vals, error);
}

GimpPDBStatusType
plugin_renoise_run_procedure (const gchar               *name,
                              gboolean                   generate,
                              const PluginRenoiseValues *defaults,
                              GimpRunMode                run_mode,
                              gint                       nparams,
                              const GimpParam           *param,
                              GError                   **error)
{
  gint32 drawable_id = param[2].data.d_drawable;
  PluginRenoiseValues vals = *defaults;

  gimp_get_data (name, &vals);

  switch (run_mode)
    {
    case GIMP_RUN_INTERACTIVE:
      {
        gchar *default_model = plugin_default_model_path ();
        gboolean ok = ui_renoise_dialog (drawable_id, &vals, generate,
                                         default_model, renoise_render, NULL);

        g_free (default_model);
        if (!ok)
          return GIMP_PDB_CANCEL;
      }
      break;

    case GIMP_RUN_NONINTERACTIVE:
      if (!renoise_read_args (name, generate, nparams, param, &vals, error))
        return GIMP_PDB_CALLING_ERROR;
      break;

    case GIMP_RUN_WITH_LAST_VALS:
      if (vals.random_seed)
        vals.seed = g_random_int ();
      break;
    }

  if (!renoise_render (drawable_id, &vals, generate, NULL, NULL, error))
    return GIMP_PDB_EXECUTION_ERROR;

  gimp_set_data (name, &vals, sizeof vals);
  if (run_mode != GIMP_RUN_NONINTERACTIVE)
    gimp_displays_flush ();
  return GIMP_PDB_SUCCESS;
}

GimpPDBStatusType
plugin_renoise_run (GimpRunMode      run_mode,
                    gint             nparams,
                    const GimpParam *param,
                    GError         **error)
{
  return plugin_renoise_run_procedure (RENOISE_PROC, FALSE,
                                       &plugin_renoise_defaults,
                                       run_mode, nparams, param, error);
}
