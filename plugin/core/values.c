/* values.c: the procedures' values: their defaults, and the validation of
 * values a caller gives (the PDB's non-interactive arguments; the dialogs
 * keep theirs in range with their widgets).  Each rule lives here once,
 * with the one translated message that explains it.
 */
#include "core-private.h"

#include <math.h>

const PluginRenoiseValues plugin_renoise_defaults =
{
  "",                /* model: the default one */
  0.5,               /* strength */
  20,                /* steps */
  0,                 /* seed */
  TRUE,              /* random_seed */
  DDPM_SAMPLER_DDIM, /* sampler */
  DDPM_PRECISION_AUTO, /* precision: bf16 where the CPU has it */
};

const PluginRenoiseValues plugin_generate_defaults =
{
  "",                /* model: the default one */
  1.0,               /* strength: generation is strength 1 */
  20,                /* steps */
  0,                 /* seed */
  TRUE,              /* random_seed */
  DDPM_SAMPLER_DDIM, /* sampler */
  DDPM_PRECISION_AUTO, /* precision: bf16 where the CPU has it */
};

const PluginDenoiseValues plugin_denoise_defaults =
{
  "",                /* model: the default one */
  0.0,               /* sigma: estimate it */
  5,                 /* steps: the models/README measurements use 5 */
  0,                 /* seed */
  TRUE,              /* random_seed */
  DDPM_SAMPLER_DDIM, /* sampler: deterministic, the better PSNR */
  DDPM_PRECISION_AUTO, /* precision: bf16 where the CPU has it */
};

const PluginSamplerChoice plugin_sampler_choices[] =
{
  { DDPM_SAMPLER_DDPM,   N_("DDPM (ancestral, stochastic)") },
  { DDPM_SAMPLER_DDIM,   N_("DDIM (deterministic)") },
  { DDPM_SAMPLER_DPM_2M, N_("DPM-Solver++ (deterministic, 10–20 steps)") },
};
const gint plugin_n_sampler_choices = G_N_ELEMENTS (plugin_sampler_choices);
G_STATIC_ASSERT (G_N_ELEMENTS (plugin_sampler_choices) == DDPM_SAMPLER_COUNT);

const PluginPrecisionChoice plugin_precision_choices[] =
{
  { DDPM_PRECISION_AUTO, "auto", N_("Automatic (bf16 where the CPU has it)") },
  { DDPM_PRECISION_FP32, "fp32", N_("fp32 (exact, slower)") },
  { DDPM_PRECISION_BF16, "bf16", N_("bf16 (about twice as fast)") },
};
const gint plugin_n_precision_choices = G_N_ELEMENTS (plugin_precision_choices);
G_STATIC_ASSERT (G_N_ELEMENTS (plugin_precision_choices) == DDPM_PRECISION_COUNT);

const gchar *
plugin_precision_auto_label (void)
{
  /* Resolved at run time: the same binary runs on CPUs with and without
   * AVX512_BF16, and DDPM_DISABLE_BF16 turns it off. */
  if (ddpm_precision_resolve (DDPM_PRECISION_AUTO) == DDPM_PRECISION_BF16)
    return _("Automatic (bf16 on this CPU)");
  return _("Automatic (fp32 on this CPU)");
}

const PluginTrainValues plugin_train_defaults =
{
  "",                /* output: filled in for the dialog */
  "tiny",            /* preset */
  1000,              /* iterations */
  32,                /* patch_size */
  0,                 /* seed */
  "",                /* resume: a fresh model */
};

/* The settings the engine checks for every front end
 * (ddpm_sample_params_validate: its messages are translated in our
 * catalogue), so the plug-in says what the CLI says. */
gboolean
plugin_check_sampling (gdouble  strength,
                       gint     steps,
                       gint     sampler,
                       gint     precision,
                       GError **error)
{
  DdpmSampleParams params;

  ddpm_sample_params_init (&params);
  params.strength = strength;
  params.steps    = steps;
  params.sampler  = (DdpmSamplerKind) sampler;
  params.precision = (DdpmPrecision) precision;
  return ddpm_sample_params_validate (&params, error);
}

gboolean
plugin_renoise_values_validate (const PluginRenoiseValues *vals,
                                GError                   **error)
{
  g_return_val_if_fail (vals != NULL, FALSE);

  return plugin_check_sampling (vals->strength, vals->steps, vals->sampler,
                                vals->precision, error);
}

gboolean
plugin_denoise_values_validate (PluginDenoiseValues *vals,
                                GError             **error)
{
  g_return_val_if_fail (vals != NULL, FALSE);

  if (isnan (vals->sigma) || vals->sigma > 1.0)
    {
      g_set_error (error, DDPM_ERROR, DDPM_ERROR_INVALID_ARGUMENT,
                   _("The noise level must be at most 1 on the 0–1 pixel "
                     "scale (25/255 ≈ 0.098 for noise of 25 levels), or 0 "
                     "to estimate it, not %g."), vals->sigma);
      return FALSE;
    }
  if (vals->sigma < 0.0)
    vals->sigma = 0.0;
  return plugin_check_sampling (0.0, vals->steps, vals->sampler,
                                vals->precision, error);
}

gboolean
plugin_copy_string (gchar       *dest,
                    gsize        size,
                    const gchar *src,
                    const gchar *name,
                    GError     **error)
{
  if (src == NULL)
    src = "";
  if (g_strlcpy (dest, src, size) >= size)
    {
      g_set_error (error, DDPM_ERROR, DDPM_ERROR_INVALID_ARGUMENT,
                   _("The argument “%s” is too long (at most %d bytes)."),
                   name, (int) size - 1);
      return FALSE;
    }
  return TRUE;
}

void
plugin_set_region_error (GError **error,
                         gint     width,
                         gint     height)
{
  g_set_error (error, DDPM_ERROR, DDPM_ERROR_NO_MEMORY,
               _("Not enough memory for a %d × %d region: select a "
                 "smaller part of the layer."), width, height);
}
