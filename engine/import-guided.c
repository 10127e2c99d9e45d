/* import-guided.c: guided-diffusion / improved-diffusion checkpoints (ADM,
 * Dhariwal & Nichol 2021; Nichol & Dhariwal 2021) into our model files.
 *
 * A published `.pt` is a bare state_dict: the architecture is not in it but
 * in the flags the user ran the reference with (its README's MODEL_FLAGS
 * and DIFFUSION_FLAGS), so those are what this takes, with the names,
 * value spellings and defaults of guided_diffusion/script_util.py
 * (model_and_diffusion_defaults, create_model).
 *
 * The network is our UNet in its ADM style (unet.c), whose tensors carry
 * diffusers' names; guided_map() walks UNetModel.__init__'s module order
 * (input_blocks, middle_block, output_blocks, out) in step with it and
 * names, for each of our tensors, the checkpoint tensor it comes from:
 *
 *   time_embed.0 / .2            time_embedding.linear_1 / linear_2
 *   label_emb                    class_embedding
 *   input_blocks.0.0             conv_in
 *   ResBlock in_layers.0 / .2    norm1 / conv1
 *            emb_layers.1        time_emb_proj
 *            out_layers.0 / .3   norm2 / conv2
 *            skip_connection     conv_shortcut
 *   Downsample op, Upsample conv downsamplers.0.conv, upsamplers.0.conv
 *   AttentionBlock norm          group_norm
 *            qkv (3C, C, 1)      query, key, value (C, C): split below
 *            proj_out (C, C, 1)  proj_attn
 *   out.0 / out.2                conv_norm_out / conv_out
 *
 * QKVAttentionLegacy reshapes qkv to (B·heads, 3d, N) and splits each
 * head's 3d rows into q, k, v: head j's query rows are qkv rows
 * [3dj, 3dj + d), its keys the next d, its values the d after.  Our
 * attention takes head j as rows [dj, dj + d) of separate q, k, v
 * (diffusers' layout), so the rows are gathered into that order here.
 *
 * Every checkpoint tensor must be used and every one of ours found, each
 * with its shape: a wrong flag shows as a tensor of another shape, or one
 * too many or too few, and the error names it, both shapes and the flag
 * that most likely made it.
 */
#include "config.h"

#include <string.h>

#include "intl.h"
#include "torch-pickle.h"
#include "train.h"
#include "unet.h"

/* ------------------------------------------------------------------- flags */

/* script_util.py's model_and_diffusion_defaults(), what its argparse gives
 * a user who leaves a flag out. */
typedef struct
{
  int      image_size;
  int      num_channels;
  int      num_res_blocks;
  int      num_heads;
  int      num_heads_upsample;
  int      num_head_channels;
  char    *attention_resolutions;
  char    *channel_mult;
  double   dropout;
  gboolean class_cond;
  gboolean use_scale_shift_norm;
  gboolean resblock_updown;
  gboolean use_fp16;
  gboolean use_new_attention_order;
  gboolean learn_sigma;
  int      diffusion_steps;
  char    *noise_schedule;
  gboolean predict_xstart;
  gboolean rescale_timesteps;
} GuidedFlags;

static void
flags_init (GuidedFlags *f)
{
  memset (f, 0, sizeof *f);
  f->image_size = 64;
  f->num_channels = 128;
  f->num_res_blocks = 2;
  f->num_heads = 4;
  f->num_heads_upsample = -1;
  f->num_head_channels = -1;
  f->attention_resolutions = g_strdup ("16,8");
  f->channel_mult = g_strdup ("");
  f->use_scale_shift_norm = TRUE;
  f->diffusion_steps = 1000;
  f->noise_schedule = g_strdup ("linear");
}

static void
flags_clear (GuidedFlags *f)
{
  g_free (f->attention_resolutions);
  g_free (f->channel_mult);
  g_free (f->noise_schedule);
}

/* script_util's str2bool: yes/true/t/y/1 and no/false/f/n/0, any case */
static gboolean
parse_bool (const char *flag, const char *v, gboolean *out, GError **error)
{
  static const char *const yes[] = { "yes", "true", "t", "y", "1" };
  static const char *const no[] = { "no", "false", "f", "n", "0" };

  for (gsize i = 0; i < G_N_ELEMENTS (yes); i++)
    if (g_ascii_strcasecmp (v, yes[i]) == 0)
      return *out = TRUE, TRUE;
  for (gsize i = 0; i < G_N_ELEMENTS (no); i++)
    if (g_ascii_strcasecmp (v, no[i]) == 0)
      return *out = FALSE, TRUE;
  g_set_error (error, DDPM_ERROR, DDPM_ERROR_INVALID_ARGUMENT,
               _("--%s takes True or False, not “%s”."), flag, v);
  return FALSE;
}

static gboolean
parse_int (const char *flag, const char *v, int min, int *out, GError **error)
{
  gint64 n;

  if (!g_ascii_string_to_signed (v, 10, min, G_MAXINT, &n, NULL))
    {
      g_set_error (error, DDPM_ERROR, DDPM_ERROR_INVALID_ARGUMENT,
                   _("--%s takes an integer of at least %d, not “%s”."), flag, min, v);
      return FALSE;
    }
  *out = (int) n;
  return TRUE;
}

/* Flags that only steer training or sampling in the reference, which our
 * own commands replace: accepted (a user pastes them) and ignored. */
static const char *const ignored_flags[] = {
  "use_checkpoint", "timestep_respacing", "use_kl", "rescale_learned_sigmas",
  "batch_size", "num_samples", "clip_denoised", "use_ddim", "model_path",
  "classifier_scale", "lr", "weight_decay", "lr_anneal_steps", "microbatch",
  "ema_rate", "log_interval", "save_interval", "resume_checkpoint",
  "fp16_scale_growth", "schedule_sampler", "data_dir",
};

static gboolean
parse_flags (const char * const *argv, int argc, GuidedFlags *f, GError **error)
{
  for (int i = 0; i < argc; i++)
    {
      const char *arg = argv[i];
      char *name, *value;
      const char *eq;
      gboolean ok = TRUE, known = TRUE;

      if (!g_str_has_prefix (arg, "--"))
        {
          g_set_error (error, DDPM_ERROR, DDPM_ERROR_INVALID_ARGUMENT,
                       _("Unexpected “%s”: guided-diffusion flags are --name value."), arg);
          return FALSE;
        }
      eq = strchr (arg, '=');
      if (eq != NULL)
        {
          name = g_strndup (arg + 2, eq - arg - 2);
          value = g_strdup (eq + 1);
        }
      else if (i + 1 < argc)
        {
          name = g_strdup (arg + 2);
          value = g_strdup (argv[++i]);
        }
      else
        {
          g_set_error (error, DDPM_ERROR, DDPM_ERROR_INVALID_ARGUMENT,
                       _("%s needs a value."), arg);
          return FALSE;
        }

#define IS(n) (strcmp (name, n) == 0)
      if (IS ("image_size"))
        ok = parse_int (name, value, 8, &f->image_size, error);
      else if (IS ("num_channels"))
        ok = parse_int (name, value, 1, &f->num_channels, error);
      else if (IS ("num_res_blocks"))
        ok = parse_int (name, value, 1, &f->num_res_blocks, error);
      else if (IS ("num_heads"))
        ok = parse_int (name, value, 1, &f->num_heads, error);
      else if (IS ("num_heads_upsample"))
        ok = parse_int (name, value, -1, &f->num_heads_upsample, error);
      else if (IS ("num_head_channels"))
        ok = parse_int (name, value, -1, &f->num_head_channels, error);
      else if (IS ("diffusion_steps"))
        ok = parse_int (name, value, 1, &f->diffusion_steps, error);
      else if (IS ("attention_resolutions"))
        g_free (f->attention_resolutions), f->attention_resolutions = g_strdup (value);
      else if (IS ("channel_mult"))
        g_free (f->channel_mult), f->channel_mult = g_strdup (value);
      else if (IS ("noise_schedule"))
        g_free (f->noise_schedule), f->noise_schedule = g_strdup (value);
      else if (IS ("dropout"))
        f->dropout = g_ascii_strtod (value, NULL);
      else if (IS ("class_cond"))
        ok = parse_bool (name, value, &f->class_cond, error);
      else if (IS ("use_scale_shift_norm"))
        ok = parse_bool (name, value, &f->use_scale_shift_norm, error);
      else if (IS ("resblock_updown"))
        ok = parse_bool (name, value, &f->resblock_updown, error);
      else if (IS ("use_fp16"))
        ok = parse_bool (name, value, &f->use_fp16, error);
      else if (IS ("use_new_attention_order"))
        ok = parse_bool (name, value, &f->use_new_attention_order, error);
      else if (IS ("learn_sigma"))
        ok = parse_bool (name, value, &f->learn_sigma, error);
      else if (IS ("predict_xstart"))
        ok = parse_bool (name, value, &f->predict_xstart, error);
      else if (IS ("rescale_timesteps"))
        ok = parse_bool (name, value, &f->rescale_timesteps, error);
      else
        {
          known = FALSE;
          for (gsize k = 0; k < G_N_ELEMENTS (ignored_flags); k++)
            known = known || IS (ignored_flags[k]);
        }
#undef IS
      if (ok && !known)
        {
          g_set_error (error, DDPM_ERROR, DDPM_ERROR_INVALID_ARGUMENT,
                       _("Unknown guided-diffusion flag --%s."), name);
          ok = FALSE;
        }
      g_free (name);
      g_free (value);
      if (!ok)
        return FALSE;
    }
  return TRUE;
}

/* "1,2,3" into values (at most max), as create_model splits it */
static gboolean
parse_list (const char *flag, const char *text, int *values, int max, int *n, GError **error)
{
  char **parts = g_strsplit (text, ",", -1);
  int count = (int) g_strv_length (parts);
  gboolean ok = count >= 1 && count <= max;

  for (int i = 0; ok && i < count; i++)
    {
      gint64 v;
      ok = g_ascii_string_to_signed (g_strstrip (parts[i]), 10, 1, 1 << 16, &v, NULL);
      values[i] = (int) v;
    }
  g_strfreev (parts);
  if (!ok)
    {
      g_set_error (error, DDPM_ERROR, DDPM_ERROR_INVALID_ARGUMENT,
                   _("--%s takes 1 to %d positive integers separated by commas, not “%s”."),
                   flag, max, text);
      return FALSE;
    }
  *n = count;
  return TRUE;
}

/* The UNet config and schedule create_model and create_gaussian_diffusion
 * would build from the flags. */
static gboolean
flags_to_config (const GuidedFlags *f, DdpmUNetConfig *c, DdpmScheduleKind *kind,
                 GError **error)
{
  memset (c, 0, sizeof *c);
  if (f->use_new_attention_order || f->predict_xstart)
    {
      g_set_error (error, DDPM_ERROR, DDPM_ERROR_UNSUPPORTED,
                   _("--%s True is not supported: import models trained without it."),
                   f->use_new_attention_order ? "use_new_attention_order"
                   : "predict_xstart");
      return FALSE;
    }
  if (f->channel_mult[0] != '\0')
    {
      if (!parse_list ("channel_mult", f->channel_mult, c->ch_mult, DDPM_MAX_LEVELS,
                       &c->n_levels, error))
        return FALSE;
    }
  else
    {
      static const int m256[] = { 1, 1, 2, 2, 4, 4 }, m128[] = { 1, 1, 2, 3, 4 },
                       m64[] = { 1, 2, 3, 4 };
      const int *m = f->image_size == 256 ? m256 : f->image_size == 128 ? m128
                     : f->image_size == 64 ? m64 : NULL;
      int n = f->image_size == 256 ? 6 : f->image_size == 128 ? 5 : 4;
      if (m == NULL)
        {
          /* 512's (0.5, 1, 1, 2, 2, 4, 4) has a fractional multiplier */
          g_set_error (error, DDPM_ERROR, DDPM_ERROR_UNSUPPORTED,
                       _("guided-diffusion has no default --channel_mult for "
                         "--image_size %d that this program builds: give --channel_mult."),
                       f->image_size);
          return FALSE;
        }
      memcpy (c->ch_mult, m, n * sizeof (int));
      c->n_levels = n;
    }
  if (!parse_list ("attention_resolutions", f->attention_resolutions, c->attn_resolutions,
                   DDPM_MAX_LEVELS, &c->n_attn, error))
    return FALSE;
  c->style = DDPM_UNET_STYLE_ADM;
  c->in_channels = 3;
  c->learn_sigma = f->learn_sigma;
  c->out_channels = f->learn_sigma ? 6 : 3;
  c->ch = f->num_channels;
  c->num_res_blocks = f->num_res_blocks;
  c->image_size = f->image_size;
  c->dropout = (float) f->dropout;
  c->num_heads = f->num_heads;
  c->num_head_channels = f->num_head_channels > 0 ? f->num_head_channels : 0;
  c->num_heads_upsample = f->num_heads_upsample > 0 ? f->num_heads_upsample : 0;
  c->scale_shift = f->use_scale_shift_norm;
  c->resblock_updown = f->resblock_updown;
  c->num_classes = f->class_cond ? 1000 : 0;   /* script_util's NUM_CLASSES */
  /* the network is fed t·1000/T (improved-diffusion's default, False in
   * guided-diffusion's script_util): the model file says so and the
   * model's adapter scales */
  c->rescale_timesteps = f->rescale_timesteps;

  if (strcmp (f->noise_schedule, "linear") == 0)
    *kind = DDPM_SCHEDULE_LINEAR;
  else if (strcmp (f->noise_schedule, "cosine") == 0)
    *kind = DDPM_SCHEDULE_COSINE;
  else
    {
      g_set_error (error, DDPM_ERROR, DDPM_ERROR_INVALID_ARGUMENT,
                   _("--noise_schedule takes linear or cosine, not “%s”."), f->noise_schedule);
      return FALSE;
    }
  /* a flag combination the network cannot take (an attention resolution
   * that is no level, heads that do not divide) says which field */
  return ddpm_unet_config_validate (c, error);
}

/* --------------------------------------------------------------- the names */

typedef enum
{
  MAP_PLAIN,      /* same data, maybe a squeezed 1×1 (Conv1d) dimension */
  MAP_Q, MAP_K, MAP_V   /* rows of a legacy qkv */
} MapKind;

typedef struct
{
  char   *src;    /* the checkpoint tensor */
  MapKind kind;
  int     heads;  /* MAP_Q/K/V */
} Source;

static void
map_one (GHashTable *map, const char *ours, const char *theirs, MapKind kind, int heads)
{
  Source *s = g_new0 (Source, 1);

  s->src = g_strdup (theirs);
  s->kind = kind;
  s->heads = heads;
  g_hash_table_insert (map, g_strdup (ours), s);
}

static void
source_free (gpointer p)
{
  Source *s = p;
  g_free (s->src);
  g_free (s);
}

/* ours.weight/.bias ← theirs.weight/.bias */
static void
map_wb (GHashTable *map, const char *ours, const char *theirs)
{
  for (int k = 0; k < 2; k++)
    {
      const char *leaf = k ? ".bias" : ".weight";
      char *a = g_strconcat (ours, leaf, NULL), *b = g_strconcat (theirs, leaf, NULL);
      map_one (map, a, b, MAP_PLAIN, 0);
      g_free (a);
      g_free (b);
    }
}

static void
map_res (GHashTable *map, const char *ours, const char *theirs)
{
  static const char *const pairs[][2] = {
    { ".norm1", ".in_layers.0" }, { ".conv1", ".in_layers.2" },
    { ".time_emb_proj", ".emb_layers.1" }, { ".norm2", ".out_layers.0" },
    { ".conv2", ".out_layers.3" }, { ".conv_shortcut", ".skip_connection" },
  };

  for (gsize i = 0; i < G_N_ELEMENTS (pairs); i++)
    {
      char *a = g_strconcat (ours, pairs[i][0], NULL), *b = g_strconcat (theirs, pairs[i][1], NULL);
      map_wb (map, a, b);
      g_free (a);
      g_free (b);
    }
}

static void
map_attn (GHashTable *map, const char *ours, const char *theirs, int heads)
{
  static const char *const qkv[3] = { ".query", ".key", ".value" };
  char *a, *b;

  a = g_strconcat (ours, ".group_norm", NULL);
  b = g_strconcat (theirs, ".norm", NULL);
  map_wb (map, a, b);
  g_free (a);
  g_free (b);
  a = g_strconcat (ours, ".proj_attn", NULL);
  b = g_strconcat (theirs, ".proj_out", NULL);
  map_wb (map, a, b);
  g_free (a);
  g_free (b);
  for (int k = 0; k < 3; k++)
    for (int w = 0; w < 2; w++)
      {
        const char *leaf = w ? ".bias" : ".weight";
        a = g_strconcat (ours, qkv[k], leaf, NULL);
        b = g_strconcat (theirs, ".qkv", leaf, NULL);
        map_one (map, a, b, MAP_Q + k, heads);
        g_free (a);
        g_free (b);
      }
}

/* Our tensor name → its source, walking UNetModel.__init__'s order. */
static GHashTable *
guided_map (const DdpmUNetConfig *c)
{
  GHashTable *map = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, source_free);
  const int L = c->n_levels, nrb = c->num_res_blocks;
  gboolean attn[DDPM_MAX_LEVELS] = { FALSE };
  char ours[128], theirs[128];
  int idx = 1;

  for (int i = 0; i < c->n_attn; i++)
    attn[ddpm_unet_config_attn_level (c, i)] = TRUE;

  map_wb (map, "time_embedding.linear_1", "time_embed.0");
  map_wb (map, "time_embedding.linear_2", "time_embed.2");
  map_one (map, "class_embedding.weight", "label_emb.weight", MAP_PLAIN, 0);
  map_wb (map, "conv_in", "input_blocks.0.0");

  for (int l = 0; l < L; l++)
    {
      const int C = c->ch * c->ch_mult[l];
      for (int j = 0; j < nrb; j++, idx++)
        {
          g_snprintf (ours, sizeof ours, "down_blocks.%d.resnets.%d", l, j);
          g_snprintf (theirs, sizeof theirs, "input_blocks.%d.0", idx);
          map_res (map, ours, theirs);
          g_snprintf (ours, sizeof ours, "down_blocks.%d.attentions.%d", l, j);
          g_snprintf (theirs, sizeof theirs, "input_blocks.%d.1", idx);
          if (attn[l])
            map_attn (map, ours, theirs, ddpm_unet_config_heads (c, C, FALSE));
        }
      if (l == L - 1)
        continue;
      if (c->resblock_updown)
        {
          g_snprintf (ours, sizeof ours, "down_blocks.%d.downsamplers.0", l);
          g_snprintf (theirs, sizeof theirs, "input_blocks.%d.0", idx);
          map_res (map, ours, theirs);
        }
      else
        {
          g_snprintf (ours, sizeof ours, "down_blocks.%d.downsamplers.0.conv", l);
          g_snprintf (theirs, sizeof theirs, "input_blocks.%d.0.op", idx);
          map_wb (map, ours, theirs);
        }
      idx++;
    }

  map_res (map, "mid_block.resnets.0", "middle_block.0");
  map_attn (map, "mid_block.attentions.0", "middle_block.1",
            ddpm_unet_config_heads (c, c->ch * c->ch_mult[L - 1], FALSE));
  map_res (map, "mid_block.resnets.1", "middle_block.2");

  idx = 0;
  for (int l = L - 1; l >= 0; l--)
    {
      const int C = c->ch * c->ch_mult[l], u = L - 1 - l;
      for (int j = 0; j < nrb + 1; j++, idx++)
        {
          int k = 1;
          g_snprintf (ours, sizeof ours, "up_blocks.%d.resnets.%d", u, j);
          g_snprintf (theirs, sizeof theirs, "output_blocks.%d.0", idx);
          map_res (map, ours, theirs);
          if (attn[l])
            {
              g_snprintf (ours, sizeof ours, "up_blocks.%d.attentions.%d", u, j);
              g_snprintf (theirs, sizeof theirs, "output_blocks.%d.1", idx);
              map_attn (map, ours, theirs, ddpm_unet_config_heads (c, C, TRUE));
              k = 2;
            }
          if (l == 0 || j != nrb)
            continue;
          if (c->resblock_updown)
            {
              g_snprintf (ours, sizeof ours, "up_blocks.%d.upsamplers.0", u);
              g_snprintf (theirs, sizeof theirs, "output_blocks.%d.%d", idx, k);
              map_res (map, ours, theirs);
            }
          else
            {
              g_snprintf (ours, sizeof ours, "up_blocks.%d.upsamplers.0.conv", u);
              g_snprintf (theirs, sizeof theirs, "output_blocks.%d.%d.conv", idx, k);
              map_wb (map, ours, theirs);
            }
        }
    }
  map_wb (map, "conv_norm_out", "out.0");
  map_wb (map, "conv_out", "out.2");
  return map;
}

/* ---------------------------------------------------------------- checking */

/* The flag that most likely made a tensor (a guided-diffusion name) come
 * out wrong, for the error message. */
static const char *
likely_flag (const char *name)
{
  if (strstr (name, "label_emb") != NULL)
    return "--class_cond";
  if (g_str_has_prefix (name, "out.2"))
    return "--learn_sigma";
  if (strstr (name, "emb_layers") != NULL)
    return "--use_scale_shift_norm (or --num_channels, --channel_mult)";
  if (strstr (name, ".qkv.") != NULL || strstr (name, ".proj_out.") != NULL
      || strstr (name, ".norm.") != NULL)
    return "--attention_resolutions (or --num_heads, --num_head_channels)";
  if (strstr (name, ".op.") != NULL || g_str_has_suffix (name, ".conv.weight")
      || g_str_has_suffix (name, ".conv.bias"))
    return "--resblock_updown";
  return "--num_channels, --channel_mult, --num_res_blocks or --image_size";
}

/* The same for a tensor the flags call for that the checkpoint lacks: the
 * checkpoint's own tensors of that module tell what it holds there. */
static const char *
missing_flag (const DdpmTorchCheckpoint *ckpt, const char *name)
{
  char **parts = g_strsplit (name, ".", 4);
  const char *flag = NULL;

  if (g_strv_length (parts) >= 3)
    {
      char *module = g_strjoin (".", parts[0], parts[1], parts[2], NULL);
      char *op = g_strconcat (module, ".op.weight", NULL);
      char *conv = g_strconcat (module, ".conv.weight", NULL);
      char *res = g_strconcat (module, ".in_layers.0.weight", NULL);
      char *qkv = g_strconcat (module, ".qkv.weight", NULL);

      if (ddpm_torch_checkpoint_lookup (ckpt, qkv) != NULL)
        flag = "--attention_resolutions";
      else if (ddpm_torch_checkpoint_lookup (ckpt, op) != NULL
               || ddpm_torch_checkpoint_lookup (ckpt, conv) != NULL
               || (ddpm_torch_checkpoint_lookup (ckpt, res) != NULL
                   && (g_str_has_suffix (name, ".op.weight")
                       || g_str_has_suffix (name, ".conv.weight"))))
        flag = "--resblock_updown";
      g_free (module);
      g_free (op);
      g_free (conv);
      g_free (res);
      g_free (qkv);
    }
  g_strfreev (parts);
  return flag != NULL ? flag : likely_flag (name);
}

static char *
shape_string (int ndim, const gint64 *shape)
{
  GString *s = g_string_new ("[");
  for (int i = 0; i < ndim; i++)
    g_string_append_printf (s, "%s%" G_GINT64_FORMAT, i ? ", " : "", shape[i]);
  g_string_append_c (s, ']');
  return g_string_free (s, FALSE);
}

/* The checkpoint shape our tensor `info` needs of its source. */
static int
source_shape (const DdpmParamInfo *info, const Source *src, gint64 *shape)
{
  int nd = info->ndim;

  memcpy (shape, info->shape, sizeof (gint64) * nd);
  if (src->kind != MAP_PLAIN)
    shape[0] *= 3;   /* qkv holds the three */
  return nd;
}

/* Whether the checkpoint's shape is ours up to trailing 1×1 dimensions
 * (Conv1d's (C, C, 1) for our Linear (C, C)). */
static gboolean
shape_matches (const DdpmTorchTensor *t, int nd, const gint64 *shape)
{
  int tn = t->ndim;

  while (tn > nd && t->shape[tn - 1] == 1)
    tn--;
  if (tn != nd)
    return FALSE;
  for (int i = 0; i < nd; i++)
    if (t->shape[i] != shape[i])
      return FALSE;
  return TRUE;
}

/* Read our tensor `info` from its source into dst. */
static gboolean
read_source (DdpmTorchCheckpoint *ckpt, const DdpmTorchTensor *t, const Source *src,
             const DdpmParamInfo *info, float *dst, GError **error)
{
  if (src->kind == MAP_PLAIN)
    return ddpm_torch_checkpoint_read_f32 (ckpt, t, dst, t->numel, error);

  /* rows of qkv: (3C, row) → head j's d rows from [3dj + kd, 3dj + kd + d) */
  float *all = g_try_new (float, t->numel);
  if (all == NULL)
    {
      ddpm_set_error_no_memory (error, t->numel * sizeof (float), "%s", t->name);
      return FALSE;
    }
  if (!ddpm_torch_checkpoint_read_f32 (ckpt, t, all, t->numel, error))
    {
      g_free (all);
      return FALSE;
    }
  const gsize C = (gsize) info->shape[0], row = info->numel / C, d = C / src->heads;
  const gsize k = src->kind - MAP_Q;
  for (gsize j = 0; j < (gsize) src->heads; j++)
    memcpy (dst + j * d * row, all + (3 * d * j + k * d) * row, d * row * sizeof (float));
  g_free (all);
  return TRUE;
}

gboolean
ddpm_import_guided_diffusion (const char         *src,
                              const char         *out_path,
                              const char * const *flags,
                              int                 n_flags,
                              GError            **error)
{
  g_return_val_if_fail (src != NULL && out_path != NULL, FALSE);
  g_return_val_if_fail (flags != NULL || n_flags == 0, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  GuidedFlags f;
  DdpmUNetConfig config;
  DdpmScheduleKind kind = DDPM_SCHEDULE_LINEAR;
  DdpmTorchCheckpoint *ckpt = NULL;
  GHashTable *map = NULL, *used = NULL;
  DdpmUNet *unet = NULL;
  gboolean ok = FALSE;

  flags_init (&f);
  if (!parse_flags (flags, n_flags, &f, error)
      || !flags_to_config (&f, &config, &kind, error)
      || !ddpm_limits_check_model (&config, f.diffusion_steps, out_path, error))
    goto out;
  if (!(ckpt = ddpm_torch_checkpoint_open (src, error)))
    goto out;
  if (!(unet = ddpm_unet_new (&config, error)))
    goto out;

  map = guided_map (&config);
  used = g_hash_table_new (g_str_hash, g_str_equal);
  for (int i = 0; i < ddpm_unet_n_tensors (unet); i++)
    {
      const DdpmParamInfo *info = ddpm_unet_tensor (unet, i);
      const Source *s = g_hash_table_lookup (map, info->name);
      const DdpmTorchTensor *t;
      gint64 want[DDPM_TENSOR_MAX_DIMS];
      int nd;

      g_assert (s != NULL);   /* guided_map names every tensor unet.c builds */
      nd = source_shape (info, s, want);
      t = ddpm_torch_checkpoint_lookup (ckpt, s->src);
      if (t == NULL)
        {
          char *w = shape_string (nd, want);
          g_set_error (error, DDPM_ERROR, DDPM_ERROR_INVALID_ARGUMENT,
                       _("%s has no tensor “%s” %s, which the flags call for: "
                         "check %s."),
                       ddpm_torch_checkpoint_get_display_name (ckpt), s->src, w,
                       missing_flag (ckpt, s->src));
          g_free (w);
          goto out;
        }
      if (!shape_matches (t, nd, want))
        {
          char *w = shape_string (nd, want), *h = shape_string (t->ndim, t->shape);
          g_set_error (error, DDPM_ERROR, DDPM_ERROR_INVALID_ARGUMENT,
                       _("%s: tensor “%s” has shape %s, but the flags make it %s: "
                         "check %s."),
                       ddpm_torch_checkpoint_get_display_name (ckpt), s->src, h, w,
                       likely_flag (s->src));
          g_free (w);
          g_free (h);
          goto out;
        }
      if (!read_source (ckpt, t, s, info, ddpm_unet_params (unet) + info->offset, error))
        goto out;
      g_hash_table_add (used, (gpointer) t->name);
    }
  for (guint i = 0; i < ddpm_torch_checkpoint_get_n_tensors (ckpt); i++)
    {
      const DdpmTorchTensor *t = ddpm_torch_checkpoint_get_tensor (ckpt, i);
      if (!g_hash_table_contains (used, t->name))
        {
          char *h = shape_string (t->ndim, t->shape);
          g_set_error (error, DDPM_ERROR, DDPM_ERROR_INVALID_ARGUMENT,
                       _("%s has a tensor “%s” %s that the flags do not call for: "
                         "check %s."),
                       ddpm_torch_checkpoint_get_display_name (ckpt), t->name, h,
                       likely_flag (t->name));
          g_free (h);
          goto out;
        }
    }
  ok = ddpm_model_file_write (out_path, unet, ddpm_unet_params (unet), kind,
                              f.diffusion_steps, NULL, NULL, NULL, NULL, error);

out:
  if (used != NULL)
    g_hash_table_unref (used);
  if (map != NULL)
    g_hash_table_unref (map);
  ddpm_unet_free (unet);
  ddpm_torch_checkpoint_free (ckpt);
  flags_clear (&f);
  return ok;
}
