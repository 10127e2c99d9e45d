/* denoise.c: plug-in-ddpm-denoise for GIMP 3: remove white Gaussian noise
 * of σ (the [0, 1] pixel scale; 0 = estimate it from the layer) by
 * starting the model's reverse chain at the t of that noise level (the
 * core's denoise job, see plugin/gimp2/denoise.c for the why).
 */
#include "plugin-gimp3.h"

#include "ui-gtk3.h"

static gboolean
denoise_values_from_config (GimpProcedureConfig *config,
                            PluginDenoiseValues *vals,
                            GError             **error)
{
  GFile *model = NULL;
  gint steps, seed;
  gboolean ok;

  *vals = plugin_denoise_defaults;
  g_object_get (config, "model", &model, "sigma", &vals->sigma,
                "steps", &steps, "seed", &seed,
                "random-seed", &vals->random_seed, NULL);
  vals->steps = steps;
  vals->seed = (guint32) seed;
  vals->sampler = gimp_procedure_config_get_choice_id (config, "sampler");
  vals->precision = gimp_procedure_config_get_choice_id (config, "precision");
  ok = plugin_file_to_path (model, vals->model, sizeof vals->model, "model",
                            error);
  g_clear_object (&model);
  return ok && plugin_denoise_values_validate (vals, error);
}

/* The dialog's preview (a UiPreviewFunc): the config's values at the σ
 * the dialog's plan line shows (its estimate while estimating), rendered
 * by the same function as the apply. */
static gboolean
denoise_preview (GimpDrawable        *drawable,
                 GimpProcedureConfig *config,
                 gdouble              sigma,
                 GimpPreview         *preview,
                 gpointer             user_data,
                 GError             **error)
{
  PluginDenoiseValues vals;
  PluginRenderJob job;

  if (!denoise_values_from_config (config, &vals, error))
    return FALSE;
  plugin_render_job_init_denoise (&job, &vals, sigma);
  return plugin_render_drawable (drawable, &job, preview, error);
}

static GimpValueArray *
denoise_run (GimpProcedure        *procedure,
             GimpRunMode           run_mode,
             GimpImage            *image,
             GimpDrawable        **drawables,
             GimpProcedureConfig  *config,
             gpointer              run_data)
{
  PluginDenoiseValues vals;
  PluginRenderJob job;
  GimpDrawable *drawable;
  gdouble sigma;
  GError *error = NULL;

  drawable = plugin_single_drawable (drawables, &error);
  if (drawable == NULL)
    return gimp_procedure_new_return_values (procedure,
                                             GIMP_PDB_CALLING_ERROR, error);

  if (run_mode == GIMP_RUN_INTERACTIVE)
    {
      GError *estimate_error = NULL;
      gdouble estimate = 0.0;
      gboolean ok;

      /* The layer's own σ, for the plan line while σ is 0 ("estimate"). */
      plugin_estimate_drawable (drawable, &estimate, &estimate_error);
      ok = ui_denoise_dialog (procedure, config, drawable, estimate,
                              estimate_error ? estimate_error->message : NULL,
                              denoise_preview, NULL);
      g_clear_error (&estimate_error);
      if (!ok)
        return gimp_procedure_new_return_values (procedure, GIMP_PDB_CANCEL,
                                                 NULL);
    }

  if (!denoise_values_from_config (config, &vals, &error))
    return gimp_procedure_new_return_values (procedure,
                                             GIMP_PDB_CALLING_ERROR, error);
  if (run_mode != GIMP_RUN_NONINTERACTIVE && vals.random_seed)
    {
      vals.seed = g_random_int_range (0, G_MAXINT);
      g_object_set (config, "seed", (gint) vals.seed, NULL);
    }

  sigma = vals.sigma;
  if (!(sigma > 0.0) && !plugin_estimate_drawable (drawable, &sigma, &error))
    return gimp_procedure_new_return_values (procedure,
                                             GIMP_PDB_EXECUTION_ERROR, error);
  plugin_render_job_init_denoise (&job, &vals, sigma);
  if (!plugin_render_drawable (drawable, &job, NULL, &error))
    return gimp_procedure_new_return_values (procedure,
                                             GIMP_PDB_EXECUTION_ERROR, error);
  if (run_mode != GIMP_RUN_NONINTERACTIVE)
    gimp_displays_flush ();
  return gimp_procedure_new_return_values (procedure, GIMP_PDB_SUCCESS, NULL);
}

GimpProcedure *
plugin_denoise_create (GimpPlugIn *plug_in)
{
  const PluginDenoiseValues *d = &plugin_denoise_defaults;
  GimpProcedure *procedure;

  procedure = gimp_image_procedure_new (plug_in, DENOISE_PROC,
                                        GIMP_PDB_PROC_TYPE_PLUGIN,
                                        denoise_run, NULL, NULL);
  plugin_procedure_common (procedure, _("_Denoise…"),
                           _("Remove Gaussian noise from the layer with a "
                             "diffusion model"),
                           "Removes white Gaussian noise of standard "
                           "deviation sigma (on the 0..1 pixel scale: 25/255 "
                           "= 0.098 for noise of 25 levels) from the layer or "
                           "selection.  sigma 0 estimates the level from the "
                           "layer (Donoho's wavelet estimator).  Pixels "
                           "outside the selection are kept and used as "
                           "context.");
  plugin_add_model_argument (procedure);
  /* 2.10 takes a negative σ as "estimate" too; here 0 is the one way. */
  gimp_procedure_add_double_argument (procedure, "sigma",
                                      _("_Noise level (σ, 0–1):"),
                                      _("Standard deviation of the noise on "
                                        "the 0..1 pixel scale; 0: estimate it "
                                        "from the layer"),
                                      0.0, 1.0, d->sigma, G_PARAM_READWRITE);
  plugin_add_sampling_arguments (procedure, d->steps, d->sampler);
  /* The dialog's σ, as GIMP users count noise (0–255 levels, as the 2.10
   * dialog shows it), and "estimate"; the dialog keeps "sigma" (the
   * procedure's own, on the [0, 1] scale, 0 = estimate) in step. */
  gimp_procedure_add_double_aux_argument (procedure, "sigma-levels",
                                          _("_Noise level (σ, 0–255):"),
                                          _("The standard deviation of the "
                                            "noise in the layer, in levels of "
                                            "0–255: 25 for clearly visible "
                                            "grain"),
                                          0.0, 255.0, 25.0, G_PARAM_READWRITE);
  gimp_procedure_add_boolean_aux_argument (procedure, "estimate",
                                           _("Es_timate from the layer"),
                                           _("Measure the noise level in the "
                                             "layer (or the selection) instead "
                                             "of giving it"),
                                           TRUE, G_PARAM_READWRITE);
  return procedure;
}
