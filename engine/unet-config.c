/* unet-config.c: the UNet's configuration: the presets, the checks of
 * every field, and training at another resolution (the network itself is
 * in unet.c).
 *
 * The checks run once, here: ddpm_unet_new, the trainer and the model
 * reader all call ddpm_unet_config_validate, and the network code trusts a
 * config it was given.  Each error names the bad field and its range, so a
 * model file or a command line with a bad value says what to change.
 */
#include <string.h>

#include "intl.h"
#include "unet.h"

/* ----------------------------------------------------------------- presets */

typedef struct
{
  const char *name;
  int         ch;
  int         n_levels;
  int         ch_mult[4];
  int         num_res_blocks;
  int         attn;
  float       dropout;
} Preset;

static const Preset presets[] = {
  { "tiny",  32,  3, { 1, 2, 2 },    1, 8,  0.0f },
  { "small", 64,  4, { 1, 2, 2, 2 }, 2, 16, 0.0f },
  { "cifar", 128, 4, { 1, 2, 2, 2 }, 2, 16, 0.1f },
};

gboolean
ddpm_unet_config_from_preset (const char     *name,
                              int             channels,
                              DdpmUNetConfig *config,
                              GError        **error)
{
  g_return_val_if_fail (name != NULL && config != NULL, FALSE);

  for (gsize i = 0; i < G_N_ELEMENTS (presets); i++)
    {
      const Preset *p = &presets[i];

      if (g_ascii_strcasecmp (name, p->name) != 0)
        continue;
      memset (config, 0, sizeof *config);
      config->in_channels = channels;
      config->out_channels = channels;
      config->ch = p->ch;
      config->n_levels = p->n_levels;
      for (int l = 0; l < p->n_levels; l++)
        config->ch_mult[l] = p->ch_mult[l];
      config->num_res_blocks = p->num_res_blocks;
      config->n_attn = 1;
      config->attn_resolutions[0] = p->attn;
      config->image_size = 32;
      config->dropout = p->dropout;
      return ddpm_unet_config_validate (config, error);
    }
  g_set_error (error, DDPM_ERROR, DDPM_ERROR_INVALID_ARGUMENT,
               _("Unknown model size “%s”: use tiny, small or cifar"), name);
  return FALSE;
}

/* -------------------------------------------------------------- validation */

int
ddpm_unet_config_attn_level (const DdpmUNetConfig *config,
                             int                   i)
{
  const int S = config->image_size, r = config->attn_resolutions[i];

  for (int l = 0; l < 31; l++)
    if ((S >> l) == r && (r << l) == S)
      return l;
  return -1;
}

int
ddpm_unet_config_heads (const DdpmUNetConfig *config, int channels, gboolean up)
{
  const DdpmUNetConfig *c = config;

  if (c->num_head_channels > 0)
    return channels % c->num_head_channels == 0 ? channels / c->num_head_channels : 0;
  int heads = up && c->num_heads_upsample > 0 ? c->num_heads_upsample : MAX (c->num_heads, 1);
  return channels % heads == 0 ? heads : 0;
}

gboolean
ddpm_unet_config_is_adm_feature_free (const DdpmUNetConfig *config)
{
  const DdpmUNetConfig *c = config;

  return c->style == DDPM_UNET_STYLE_DDPM && c->num_heads <= 1 && c->num_head_channels == 0
         && c->num_heads_upsample <= 1 && !c->scale_shift && !c->resblock_updown
         && !c->learn_sigma && c->num_classes == 0 && !c->rescale_timesteps;
}

gboolean
ddpm_unet_config_validate (const DdpmUNetConfig *config,
                           GError              **error)
{
  const DdpmUNetConfig *c = config;

  g_return_val_if_fail (config != NULL, FALSE);

#define BAD(...) \
  G_STMT_START { \
    g_set_error (error, DDPM_ERROR, DDPM_ERROR_INVALID_ARGUMENT, __VA_ARGS__); \
    return FALSE; \
  } G_STMT_END

  if (c->in_channels < 1 || c->in_channels > 64)
    BAD ("UNet in_channels must be between 1 and 64, not %d", c->in_channels);
  if (c->out_channels < 1 || c->out_channels > 64)
    BAD ("UNet out_channels must be between 1 and 64, not %d", c->out_channels);
  if (c->ch < DDPM_UNET_GROUPS || c->ch % DDPM_UNET_GROUPS != 0 || c->ch > 4096)
    BAD ("UNet ch must be a multiple of %d between %d and 4096, not %d",
         DDPM_UNET_GROUPS, DDPM_UNET_GROUPS, c->ch);
  if (c->n_levels < 1 || c->n_levels > DDPM_MAX_LEVELS)
    BAD ("UNet n_levels must be between 1 and %d, not %d", DDPM_MAX_LEVELS, c->n_levels);
  for (int l = 0; l < c->n_levels; l++)
    if (c->ch_mult[l] < 1 || c->ch_mult[l] > 64)
      BAD ("UNet ch_mult[%d] must be between 1 and 64, not %d", l, c->ch_mult[l]);
  if (c->num_res_blocks < 1 || c->num_res_blocks > 16)
    BAD ("UNet num_res_blocks must be between 1 and 16, not %d", c->num_res_blocks);
  if (c->image_size < 1 || c->image_size > DDPM_MODEL_MAX_IMAGE_SIZE
      || c->image_size % (1 << (c->n_levels - 1)) != 0)
    BAD ("UNet image_size must be a multiple of 2^(n_levels−1) = %d up to %d, not %d",
         1 << (c->n_levels - 1), DDPM_MODEL_MAX_IMAGE_SIZE, c->image_size);
  if (c->n_attn < 0 || c->n_attn > DDPM_MAX_LEVELS)
    BAD ("UNet n_attn must be between 0 and %d, not %d", DDPM_MAX_LEVELS, c->n_attn);
  for (int i = 0; i < c->n_attn; i++)
    {
      int l = ddpm_unet_config_attn_level (c, i);
      if (l < 0 || l >= c->n_levels)
        BAD ("UNet attn_resolutions[%d] = %d is not the resolution of a level "
             "(image_size %d halved 0 to %d times)",
             i, c->attn_resolutions[i], c->image_size, c->n_levels - 1);
    }
  if (!(c->dropout >= 0.0f && c->dropout < 1.0f))
    BAD ("UNet dropout must be in [0, 1), not %g", c->dropout);
  if (c->style != DDPM_UNET_STYLE_DDPM && c->style != DDPM_UNET_STYLE_ADM)
    BAD ("UNet style must be 0 (DDPM) or 1 (ADM), not %d", (int) c->style);
  if (c->num_heads < 0 || c->num_heads > 1024 || c->num_heads_upsample < 0
      || c->num_heads_upsample > 1024 || c->num_head_channels < 0
      || c->num_head_channels > 4096)
    BAD ("UNet num_heads and num_heads_upsample must be between 0 and 1024 and "
         "num_head_channels between 0 and 4096, not %d, %d and %d",
         c->num_heads, c->num_heads_upsample, c->num_head_channels);
  /* every attention block's channels split into whole heads: the levels
   * with attention, and the middle block's (the deepest level) */
  for (int l = 0; l < c->n_levels; l++)
    {
      gboolean attn = l == c->n_levels - 1;
      for (int i = 0; i < c->n_attn; i++)
        attn = attn || ddpm_unet_config_attn_level (c, i) == l;
      if (!attn)
        continue;
      for (int up = 0; up < 2; up++)
        {
          const int C = c->ch * c->ch_mult[l];
          if (ddpm_unet_config_heads (c, C, up) < 1)
            BAD ("UNet attention at level %d has %d channels, which do not split "
                 "into %d heads (num_head_channels %d)",
                 l, C, up && c->num_heads_upsample > 0 ? c->num_heads_upsample
                                                       : MAX (c->num_heads, 1),
                 c->num_head_channels);
        }
    }
  if (c->learn_sigma && c->out_channels != 2 * c->in_channels)
    BAD ("UNet out_channels must be 2·in_channels = %d with learn_sigma, not %d",
         2 * c->in_channels, c->out_channels);
  if (c->rescale_timesteps && c->style != DDPM_UNET_STYLE_ADM)
    BAD ("UNet rescale_timesteps is for the ADM style only");
  if (c->num_classes < 0 || c->num_classes > 100000)
    BAD ("UNet num_classes must be between 0 and 100000, not %d", c->num_classes);
#undef BAD
  return TRUE;
}

/* ---------------------------------------------------------------- resizing */

void
ddpm_unet_config_set_image_size (DdpmUNetConfig *config, int size)
{
  g_return_if_fail (config != NULL && size > 0 && config->image_size > 0);
  for (int i = 0; i < config->n_attn; i++)
    config->attn_resolutions[i] = (int) ((gint64) config->attn_resolutions[i] * size
                                         / config->image_size);
  config->image_size = size;
}
