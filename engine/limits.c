/* limits.c: the engine's resource limits, in one place (ddpm.h, RESOURCE
 * LIMITS).  Every size that comes from outside (a model's metadata, an
 * image header, --size, a plug-in region) is checked here BEFORE the
 * memory for it is allocated; errors name the file or field to blame.
 *
 * Why a budget and not only allocation failures: on Linux a large
 * allocation usually "succeeds" and the pages fail later (the OOM killer,
 * or swapping for minutes), and g_new aborts; a fixed product cap alone
 * lets sizes wrap in int arithmetic downstream (image_size² in the
 * denoiser).  So: fixed generous caps on each field, then the memory the
 * work needs against half the physical memory.
 */
#include "config.h"

#include <unistd.h>

#include "intl.h"

#include "ddpm.h"
#include "unet.h"

#define FALLBACK_BUDGET ((gsize) 8 << 30)

gsize
ddpm_limits_memory_budget (void)
{
  static gsize budget = 0;

  if (g_once_init_enter (&budget))
    {
      long pages = sysconf (_SC_PHYS_PAGES), page = sysconf (_SC_PAGESIZE);
      gsize b = FALLBACK_BUDGET;

      if (pages > 0 && page > 0)
        b = (gsize) pages / 2 * (gsize) page;
      g_once_init_leave (&budget, MAX (b, (gsize) 1 << 28));
    }
  return budget;
}

gboolean
ddpm_limits_check_image (int          width,
                         int          height,
                         int          channels,
                         gboolean     with_alpha,
                         const char  *what,
                         GError     **error)
{
  g_return_val_if_fail (what != NULL, FALSE);

  if (width < 1 || height < 1)
    {
      g_set_error (error, DDPM_ERROR, DDPM_ERROR_CORRUPT_FILE,
                   _("%s has an empty size %d × %d"), what, width, height);
      return FALSE;
    }

  /* each factor is below 2^31, so the products fit in 64 bits */
  guint64 pixels = (guint64) width * (guint64) height;
  guint64 bytes = pixels * (guint64) (MAX (channels, 1) + (with_alpha ? 1 : 0))
                  * sizeof (float);

  if (width > DDPM_IMAGE_MAX_SIDE || height > DDPM_IMAGE_MAX_SIDE
      || pixels > DDPM_IMAGE_MAX_PIXELS)
    {
      g_set_error (error, DDPM_ERROR, DDPM_ERROR_UNSUPPORTED,
                   _("%s is %d × %d pixels, larger than this program handles (at "
                     "most %d pixels a side and %zu pixels in all)"),
                   what, width, height, DDPM_IMAGE_MAX_SIDE, DDPM_IMAGE_MAX_PIXELS);
      return FALSE;
    }
  if (bytes > ddpm_limits_memory_budget ())
    {
      char *need = g_format_size (bytes), *have = g_format_size (ddpm_limits_memory_budget ());
      g_set_error (error, DDPM_ERROR, DDPM_ERROR_UNSUPPORTED,
                   _("%s is %d × %d pixels and needs %s, more than the %s this "
                     "program uses (half of this computer's memory)"),
                   what, width, height, need, have);
      g_free (need);
      g_free (have);
      return FALSE;
    }
  return TRUE;
}

gboolean
ddpm_limits_check_model (const DdpmUNetConfig *config,
                         int                   T,
                         const char           *what,
                         GError              **error)
{
  const DdpmUNetConfig *c = config;

  g_return_val_if_fail (config != NULL && what != NULL, FALSE);

  if (T < 1 || T > DDPM_MODEL_MAX_T)
    {
      g_set_error (error, DDPM_ERROR, DDPM_ERROR_UNSUPPORTED,
                   _("%s: its number of timesteps T = %d is beyond this program's "
                     "limit of %d"), what, T, DDPM_MODEL_MAX_T);
      return FALSE;
    }
  if (c->image_size > DDPM_MODEL_MAX_IMAGE_SIZE)
    {
      g_set_error (error, DDPM_ERROR, DDPM_ERROR_UNSUPPORTED,
                   _("%s: its image_size = %d is beyond this program's limit of %d"),
                   what, c->image_size, DDPM_MODEL_MAX_IMAGE_SIZE);
      return FALSE;
    }

  /* Counting builds the network's table of tensors, not its weights. */
  gsize n_params = ddpm_unet_config_n_params (c);
  if (n_params == 0 || n_params > DDPM_MODEL_MAX_PARAMS)
    {
      GString *mult = g_string_new (NULL);
      for (int l = 0; l < c->n_levels; l++)
        g_string_append_printf (mult, "%s%d", l ? "," : "", c->ch_mult[l]);
      g_set_error (error, DDPM_ERROR, DDPM_ERROR_UNSUPPORTED,
                   _("%s: its ch = %d (with ch_mult = %s and num_res_blocks = %d) "
                     "makes %zu parameters, beyond this program's "
                     "limit of %zu"), what, c->ch, mult->str,
                   c->num_res_blocks, n_params, DDPM_MODEL_MAX_PARAMS);
      g_string_free (mult, TRUE);
      return FALSE;
    }

  /* The weights plus the activations of one tile: the least the model
   * needs to denoise anything (the denoiser batches within this). */
  gsize acts = ddpm_unet_config_activation_floats (c, 1, c->image_size, c->image_size);
  guint64 bytes = ((guint64) n_params + acts) * sizeof (float);
  if (acts == 0 || bytes > ddpm_limits_memory_budget ())
    {
      char *need = g_format_size (bytes), *have = g_format_size (ddpm_limits_memory_budget ());
      g_set_error (error, DDPM_ERROR, DDPM_ERROR_UNSUPPORTED,
                   _("%s: its image_size = %d and ch = %d need %s to denoise one "
                     "tile, more than the %s this program uses (half of this "
                     "computer's memory)"), what, c->image_size, c->ch, need, have);
      g_free (need);
      g_free (have);
      return FALSE;
    }
  return TRUE;
}
