/* renoise.c: plug-in-ddpm-renoise and plug-in-ddpm-generate for GIMP 3:
 * their arguments (the 2.10 plug-in's names, defaults and ranges, from
 * the core's defaults; the model a GFile, the sampler a GimpChoice) and
 * run function.  Generate is renoise at strength 1, without a strength
 * argument.  The render is the core's job (plugin_render_drawable).
 *
 * Last values: GIMP 3 keeps the config of a successful interactive run
 * (Filters ▸ Repeat).  "Randomize" is the aux argument random-seed: a
 * non-non-interactive run with it on draws a fresh seed, as 2.10 does.
 */
#include "plugin-gimp3.h"

#include "ui-gtk3.h"

/* The values of a run from the procedure's config. */
static gboolean
renoise_values_from_config (GimpProcedureConfig *config,
                            gboolean             generate,
                            PluginRenoiseValues *vals,
                            GError             **error)
{
  GFile *model = NULL;
  gint steps, seed;
  gboolean ok;

  *vals = generate ? plugin_generate_defaults : plugin_renoise_defaults;
  g_object_get (config, "model", &model, "steps", &steps, "seed", &seed,
                "random-seed", &vals->random_seed, NULL);
  if (!generate)
    g_object_get (config, "strength", &vals->strength, NULL);
  vals->steps = steps;
  vals->seed = (guint32) seed;
  vals->sampler = gimp_procedure_config_get_choice_id (config, "sampler");
  vals->precision = gimp_procedure_config_get_choice_id (config, "precision");
  ok = plugin_file_to_path (model, vals->model, sizeof vals->model, "model",
                            error);
  g_clear_object (&model);
  return ok && plugin_renoise_values_validate (vals, error);
}

/* The dialog's preview (a UiPreviewFunc): the config's values rendered
 * by the same function as the apply, into the preview. */
static gboolean
renoise_preview (GimpDrawable        *drawable,
                 GimpProcedureConfig *config,
                 gdouble              sigma,
                 GimpPreview         *preview,
                 gpointer             user_data,
                 GError             **error)
{
  gboolean generate = GPOINTER_TO_INT (user_data);
  PluginRenoiseValues vals;
  PluginRenderJob job;

  if (!renoise_values_from_config (config, generate, &vals, error))
    return FALSE;
  plugin_render_job_init_renoise (&job, &vals, generate);
  return plugin_render_drawable (drawable, &job, preview, error);
}

static GimpValueArray *
renoise_run (GimpProcedure        *procedure,
             GimpRunMode           run_mode,
             GimpImage            *image,
             GimpDrawable        **drawables,
             GimpProcedureConfig  *config,
             gpointer              run_data)
{
  gboolean generate = GPOINTER_TO_INT (run_data);
  PluginRenoiseValues vals;
  PluginRenderJob job;
  GimpDrawable *drawable;
  GError *error = NULL;

  drawable = plugin_single_drawable (drawables, &error);
  if (drawable == NULL)
    return gimp_procedure_new_return_values (procedure,
                                             GIMP_PDB_CALLING_ERROR, error);

  if (run_mode == GIMP_RUN_INTERACTIVE
      && !ui_renoise_dialog (procedure, config, drawable, generate,
                             renoise_preview, GINT_TO_POINTER (generate)))
    return gimp_procedure_new_return_values (procedure, GIMP_PDB_CANCEL, NULL);

  if (!renoise_values_from_config (config, generate, &vals, &error))
    return gimp_procedure_new_return_values (procedure,
                                             GIMP_PDB_CALLING_ERROR, error);
  if (run_mode != GIMP_RUN_NONINTERACTIVE && vals.random_seed)
    {
      vals.seed = g_random_int_range (0, G_MAXINT);
      g_object_set (config, "seed", (gint) vals.seed, NULL);
    }

  plugin_render_job_init_renoise (&job, &vals, generate);
  if (!plugin_render_drawable (drawable, &job, NULL, &error))
    return gimp_procedure_new_return_values (procedure,
                                             GIMP_PDB_EXECUTION_ERROR, error);
  if (run_mode != GIMP_RUN_NONINTERACTIVE)
    gimp_displays_flush ();
  return gimp_procedure_new_return_values (procedure, GIMP_PDB_SUCCESS, NULL);
}

/* The arguments every rendering procedure has (renoise, generate and
 * denoise): model, then the procedure's own, then steps, seed, sampler. */
void
plugin_add_model_argument (GimpProcedure *procedure)
{
  gimp_procedure_add_file_argument (procedure, "model", _("_Model:"),
                                    _("Model file (.safetensors); none for "
                                      "the default model"),
                                    GIMP_FILE_CHOOSER_ACTION_OPEN, TRUE, NULL,
                                    G_PARAM_READWRITE);
}

void
plugin_add_sampling_arguments (GimpProcedure *procedure,
                               gint           default_steps,
                               gint           default_sampler)
{
  GimpChoice *choice = plugin_sampler_choice ();

  gimp_procedure_add_int_argument (procedure, "steps", _("St_eps:"),
                                   _("Denoising steps to run (>= 1)"),
                                   1, 1000, default_steps, G_PARAM_READWRITE);
  /* int, not uint: GimpProcedureDialog has no widget for a uint. */
  gimp_procedure_add_int_argument (procedure, "seed", _("_Seed:"),
                                   _("Random seed"),
                                   0, G_MAXINT, 0, G_PARAM_READWRITE);
  gimp_procedure_add_choice_argument (procedure, "sampler", _("S_ampler:"),
                                      _("DDPM adds fresh noise at every step; "
                                        "DDIM follows a deterministic path and "
                                        "needs fewer steps; DPM-Solver++ "
                                        "follows the same path to second order "
                                        "and needs fewest (10–20)"),
                                      choice,
                                      ddpm_sampler_kind_name (default_sampler),
                                      G_PARAM_READWRITE);
  gimp_procedure_add_choice_argument (procedure, "precision", _("_Precision:"),
                                      _("The arithmetic of the network: bf16 "
                                        "runs about twice as fast on CPUs with "
                                        "AVX512_BF16 and differs from fp32 by "
                                        "slight rounding; auto is bf16 where "
                                        "the CPU has it"),
                                      plugin_precision_choice (),
                                      plugin_precision_choices[DDPM_PRECISION_AUTO].name,
                                      G_PARAM_READWRITE);
  gimp_procedure_add_boolean_aux_argument (procedure, "random-seed",
                                           _("Randomi_ze"),
                                           _("Draw a new seed on each run"),
                                           TRUE, G_PARAM_READWRITE);
}

void
plugin_procedure_common (GimpProcedure *procedure,
                         const gchar   *label,
                         const gchar   *blurb,
                         const gchar   *help)
{
  gimp_procedure_set_image_types (procedure, "RGB*, GRAY*");
  gimp_procedure_set_sensitivity_mask (procedure,
                                       GIMP_PROCEDURE_SENSITIVE_DRAWABLE);
  gimp_procedure_set_menu_label (procedure, label);
  gimp_procedure_add_menu_path (procedure, "<Image>/Filters/Diffusion");
  gimp_procedure_set_documentation (procedure, blurb, help,
                                    gimp_procedure_get_name (procedure));
  gimp_procedure_set_attribution (procedure, "GIMP DDPM authors",
                                  "GIMP DDPM authors", "2026");
}

GimpProcedure *
plugin_renoise_create (GimpPlugIn *plug_in,
                       gboolean    generate)
{
  const PluginRenoiseValues *d = generate ? &plugin_generate_defaults
                                          : &plugin_renoise_defaults;
  GimpProcedure *procedure;

  procedure = gimp_image_procedure_new (plug_in,
                                        generate ? GENERATE_PROC : RENOISE_PROC,
                                        GIMP_PDB_PROC_TYPE_PLUGIN,
                                        renoise_run,
                                        GINT_TO_POINTER (generate), NULL);
  if (generate)
    plugin_procedure_common (procedure, _("_Generate…"),
                             _("Fill the layer or selection with a new image "
                               "from a diffusion model"),
                             "Runs the model's reverse process from pure "
                             "noise over the layer (or selection).  Pixels "
                             "outside the selection are kept and used as "
                             "context.");
  else
    plugin_procedure_common (procedure, _("_Renoise…"),
                             _("Partially noise the layer and denoise it back "
                               "with a diffusion model"),
                             "Forward-noises the layer (or selection) to "
                             "t0 = strength·T and runs the model's reverse "
                             "process back to t = 0 (SDEdit).  strength 0 "
                             "leaves the pixels unchanged, 1 generates a new "
                             "image.  Pixels outside the selection are kept "
                             "and used as context.");

  plugin_add_model_argument (procedure);
  if (!generate)
    gimp_procedure_add_double_argument (procedure, "strength", _("S_trength:"),
                                        _("How far to noise before denoising, "
                                          "0..1 (0: unchanged, 1: a new image)"),
                                        0.0, 1.0, d->strength,
                                        G_PARAM_READWRITE);
  plugin_add_sampling_arguments (procedure, d->steps, d->sampler);
  return procedure;
}
