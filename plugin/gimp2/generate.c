/* generate.c: plug-in-ddpm-generate, Filters ▸ Diffusion ▸ Generate…: fill
 * the layer with a new sample of the model, or, with a selection, only the
 * selection (inpainting), in agreement with its surroundings.
 *
 * This is renoise at strength 1 (SDEdit from pure noise): its own PDB
 * arguments (no strength) and defaults, and renoise.c's run modes and
 * render.
 */
#include "plugin-gimp2.h"

void
plugin_generate_query (void)
{
  static const GimpParamDef args[] =
  {
    { GIMP_PDB_INT32,    "run-mode", "The run mode { RUN-INTERACTIVE (0), RUN-NONINTERACTIVE (1), RUN-WITH-LAST-VALS (2) }" },
    { GIMP_PDB_IMAGE,    "image",    "Input image" },
    { GIMP_PDB_DRAWABLE, "drawable", "Input drawable" },
    { GIMP_PDB_STRING,   "model",    "Model file (.safetensors); \"\" for the default model" },
    { GIMP_PDB_INT32,    "steps",    "Denoising steps to run (>= 1)" },
    { GIMP_PDB_INT32,    "seed",     "Random seed" },
    { GIMP_PDB_INT32,    "sampler",  "Sampler { DDPM (0), DDIM (1), DPM-Solver++ (2) }" },
    PLUGIN_PRECISION_PARAM_DEF,
  };

  gimp_install_procedure (GENERATE_PROC,
                          N_("Fill the layer or selection with a new image from a diffusion model"),
                          "Samples a new image from the model into the layer; "
                          "with a selection, only the selection is generated "
                          "(inpainting) and it agrees with its surroundings.",
                          "GIMP DDPM authors",
                          "GIMP DDPM authors",
                          "2026",
                          N_("_Generate…"),
                          "RGB*, GRAY*",
                          GIMP_PLUGIN,
                          G_N_ELEMENTS (args), 0,
                          args, NULL);
  gimp_plugin_menu_register (GENERATE_PROC, "<Image>/Filters/Diffusion");
}

GimpPDBStatusType
plugin_generate_run (GimpRunMode      run_mode,
                     gint             nparams,
                     const GimpParam *param,
                     GError         **error)
{
  return plugin_renoise_run_procedure (GENERATE_PROC, TRUE,
                                       &plugin_generate_defaults,
                                       run_mode, nparams, param, error);
}
