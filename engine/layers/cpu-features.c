/* cpu-features.c: whether this CPU has AVX512_BF16, and which arithmetic
 * the inference layers use on the calling thread (fp32 or bf16).
 *
 * WHY A THREAD-LOCAL SETTING
 *
 * The bf16 kernels are chosen inside the layer functions (conv3x3.c,
 * conv1x1.c), so the network code (unet.c) keeps calling the same
 * functions whatever the precision.  What they need to know is whether
 * the pass they run in may use bf16: ddpm_img2img sets that for its run
 * from DdpmSampleParams.precision, as it sets the thread count, and gives
 * the old value back afterwards; a training forward (ddpm_unet_forward)
 * sets fp32 for its pass.  The setting belongs to the thread that runs the
 * network (the layer functions read it before they hand work to the
 * team), so two runs in two threads do not see each other's setting; a
 * new thread starts at fp32, the safe value for training.
 *
 * The CPU test is __builtin_cpu_supports, at run time, so that a portable
 * build (-Dnative=false) still carries and uses the bf16 kernels, which
 * are compiled with function-level target attributes.
 * DDPM_DISABLE_BF16=1 in the environment, or
 * ddpm_cpu_set_bf16_disabled (TRUE), makes the CPU count as one without
 * AVX512_BF16: the fallback path, for the tests and for users who suspect
 * the bf16 path.
 */
#include <string.h>

#include "layers.h"
#include "../names.h"

static gboolean bf16_disabled = FALSE;
static __thread DdpmPrecision thread_precision = DDPM_PRECISION_FP32;

gboolean
ddpm_cpu_has_avx512_bf16 (void)
{
  static int has = -1;

  if (has < 0)
    {
      const char *env = g_getenv ("DDPM_DISABLE_BF16");

      has = ddpm_layers_have_avx512 () && __builtin_cpu_supports ("avx512bw")
            && __builtin_cpu_supports ("avx512bf16")
            && !(env != NULL && env[0] != '\0' && strcmp (env, "0") != 0);
    }
  return has && !bf16_disabled;
}

void
ddpm_cpu_set_bf16_disabled (gboolean disabled)
{
  bf16_disabled = disabled;
}

DdpmPrecision
ddpm_precision_resolve (DdpmPrecision precision)
{
  if (precision == DDPM_PRECISION_FP32 || !ddpm_cpu_has_avx512_bf16 ())
    return DDPM_PRECISION_FP32;
  return DDPM_PRECISION_BF16;
}

DdpmPrecision
ddpm_layers_set_precision (DdpmPrecision precision)
{
  const DdpmPrecision old = thread_precision;

  thread_precision = precision;
  return old;
}

gboolean
ddpm_layers_use_bf16 (void)
{
  return thread_precision != DDPM_PRECISION_FP32 && ddpm_cpu_has_avx512_bf16 ();
}

static const char *const precision_names[DDPM_PRECISION_COUNT] = { "auto", "fp32", "bf16" };

const char *
ddpm_precision_name (DdpmPrecision precision)
{
  g_return_val_if_fail (precision >= 0 && precision < DDPM_PRECISION_COUNT, NULL);
  return precision_names[precision];
}

gboolean
ddpm_precision_from_string (const char *name, DdpmPrecision *precision, GError **error)
{
  int value;

  if (!ddpm_name_lookup (precision_names, DDPM_PRECISION_COUNT, "precision", name, &value,
                         error))
    return FALSE;
  *precision = (DdpmPrecision) value;
  return TRUE;
}
