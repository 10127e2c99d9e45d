/* import-diffusers.c: models published in diffusers' layout (Google's DDPM
 * checkpoints google/ddpm-*-{32,256} and ddpm-ema-*) into our model file.
 *
 * HOW IT MAPS
 *
 * diffusers' UNet2DModel, with the block list and options the google
 * checkpoints use, is our UNet (unet.c) exactly: both are the network of
 * Ho et al. 2020 (diffusion_tf), and our tensor table already carries
 * diffusers' names.  Field by field, as diffusers' unet_2d.py builds it:
 *
 *   block_out_channels [c_0 … c_{L−1}]  ch = c_0, ch_mult[l] = c_l / c_0
 *   layers_per_block                    num_res_blocks (up blocks: + 1)
 *   down_block_types[l] AttnDownBlock2D attention at level l: resolution
 *                                       sample_size >> l; DownBlock2D none;
 *                                       up_block_types must mirror them
 *   sample_size                         image_size
 *   in_channels, out_channels, dropout  the same
 *   time_embedding_type "positional", flip_sin_to_cos false, freq_shift 1
 *       sinusoid [sin(t·f_i), cos(t·f_i)], f_i = 10000^(−i/(half − 1)):
 *       our embedding (layers/embedding.c); time_embed_dim = 4·c_0
 *   norm_num_groups 32, norm_eps 1e-6   our GroupNorm everywhere
 *   downsample_padding 0                pad right/bottom by one, 3×3 stride
 *                                       2 (diffusers' padding 1 pads both
 *                                       sides: another network)
 *   act_fn silu, mid_block_scale_factor 1, resnet_time_scale_shift
 *       "default" (temb added after conv1), add_attention true,
 *       downsample/upsample_type "conv", center_input_sample false
 *   attention_head_dim null             one head of all C channels
 *   attention_head_dim d                heads of d channels (C / d heads,
 *                                       mid block too): num_head_channels d
 *
 * Missing keys take diffusers' defaults (which are NOT the google values:
 * attention_head_dim 8, norm_eps 1e-5, freq_shift 0, flip_sin_to_cos true,
 * downsample_padding 1), since that is the network diffusers would build.
 * Anything else is refused with the field and its value.
 *
 * Tensors: our name, or for attention the names diffusers uses since
 * 0.14 (to_q, to_k, to_v, to_out.0 for query, key, value, proj_attn; the
 * google files still carry the old ones, and diffusers renames them on
 * load in ModelMixin._fix_state_dict_keys_on_load).  Shapes are the same
 * under both: Linear (C, C).
 *
 * Schedule (scheduler_config.json, DDPMScheduler): betas "linear",
 * "scaled_linear", "sigmoid" with our endpoints (1e-4 … 0.02 and 0.00085 …
 * 0.012, times 1000/T), or "squaredcos_cap_v2" (Nichol & Dhariwal's cosine,
 * our "cosine"), and prediction_type "epsilon".  variance_type,
 * clip_sample and the spacing are sampling choices our samplers take as
 * options (fixed_small = posterior, our default); they are not stored.
 */
#include <inttypes.h>
#include <math.h>
#include <string.h>

#include <json-glib/json-glib.h>

#include "intl.h"

#include "safetensors.h"
#include "torch-pickle.h"
#include "train.h"
#include "unet.h"

/* config.json and scheduler_config.json are a few kB; refuse anything
 * absurd before parsing it. */
#define MAX_JSON_BYTES (1 << 20)

/* ------------------------------------------------------------ JSON fields */

typedef struct
{
  const char *file;   /* display name for errors */
  JsonObject *object;
  GHashTable *seen;   /* keys read */
} Fields;

static char *
node_text (JsonNode *node)
{
  if (node && JSON_NODE_HOLDS_VALUE (node)
      && json_node_get_value_type (node) == G_TYPE_DOUBLE)
    {
      /* as the file spells it (1e-05), not 1.0000000000000001e-05 */
      char buf[G_ASCII_DTOSTR_BUF_SIZE];
      return g_strdup (g_ascii_formatd (buf, sizeof buf, "%.9g",
                                        json_node_get_double (node)));
    }
  return node ? json_to_string (node, FALSE) : g_strdup ("(missing)");
}

static void
refuse (GError **error, const Fields *f, const char *key, JsonNode *node,
        const char *needed)
{
  char *text = node_text (node);

  g_set_error (error, DDPM_ERROR, DDPM_ERROR_UNSUPPORTED,
               _("%s: “%s” is %s; this engine runs only %s"),
               f->file, key, text, needed);
  g_free (text);
}

static void
bad_type (GError **error, const Fields *f, const char *key, JsonNode *node,
          const char *type)
{
  char *text = node_text (node);

  g_set_error (error, DDPM_ERROR, DDPM_ERROR_CORRUPT_FILE,
               _("%s: “%s” must be %s, not %s"), f->file, key, type, text);
  g_free (text);
}

/* The member `key`, or NULL when absent; marks it read. */
static JsonNode *
field (Fields *f, const char *key)
{
  g_hash_table_add (f->seen, (gpointer) key);
  return json_object_has_member (f->object, key)
         ? json_object_get_member (f->object, key) : NULL;
}

static gboolean
is_null (JsonNode *node)
{
  return node == NULL || JSON_NODE_HOLDS_NULL (node);
}

static gboolean
is_number (JsonNode *node)
{
  if (!node || !JSON_NODE_HOLDS_VALUE (node))
    return FALSE;
  GType type = json_node_get_value_type (node);
  return type == G_TYPE_INT64 || type == G_TYPE_DOUBLE;
}

/* A string member; `fallback` (may be NULL) when absent or null. */
static gboolean
get_string (Fields *f, const char *key, const char *fallback,
            const char **out, GError **error)
{
  JsonNode *node = field (f, key);

  if (is_null (node))
    {
      *out = node ? NULL : fallback;
      return TRUE;
    }
  if (!JSON_NODE_HOLDS_VALUE (node) || json_node_get_value_type (node) != G_TYPE_STRING)
    {
      bad_type (error, f, key, node, _("a string"));
      return FALSE;
    }
  *out = json_node_get_string (node);
  return TRUE;
}

static gboolean
get_double (Fields *f, const char *key, double fallback, double *out,
            GError **error)
{
  JsonNode *node = field (f, key);

  if (!node)
    {
      *out = fallback;
      return TRUE;
    }
  if (!is_number (node))
    {
      bad_type (error, f, key, node, _("a number"));
      return FALSE;
    }
  *out = json_node_get_double (node);
  return TRUE;
}

/* An integer member in [lo, hi] (1.0 counts as 1); *present FALSE when
 * absent or null, *out then `fallback`. */
static gboolean
get_int (Fields *f, const char *key, gint64 fallback, gint64 lo, gint64 hi,
         gint64 *out, gboolean *present, GError **error)
{
  JsonNode *node = field (f, key);

  if (present)
    *present = !is_null (node);
  if (is_null (node))
    {
      *out = fallback;
      return TRUE;
    }
  double v = is_number (node) ? json_node_get_double (node) : NAN;
  if (!(v >= lo && v <= hi && v == floor (v)))
    {
      char *range = g_strdup_printf (_("an integer from %" PRId64 " to %" PRId64),
                                     (int64_t) lo, (int64_t) hi);
      bad_type (error, f, key, node, range);
      g_free (range);
      return FALSE;
    }
  *out = (gint64) v;
  return TRUE;
}

static gboolean
get_bool (Fields *f, const char *key, gboolean fallback, gboolean *out,
          GError **error)
{
  JsonNode *node = field (f, key);

  if (!node)
    {
      *out = fallback;
      return TRUE;
    }
  if (!JSON_NODE_HOLDS_VALUE (node) || json_node_get_value_type (node) != G_TYPE_BOOLEAN)
    {
      bad_type (error, f, key, node, _("true or false"));
      return FALSE;
    }
  *out = json_node_get_boolean (node);
  return TRUE;
}

/* An array member of 1..DDPM_MAX_LEVELS elements (absent: NULL, *n = 0). */
static gboolean
get_array (Fields *f, const char *key, JsonArray **out, guint *n, GError **error)
{
  JsonNode *node = field (f, key);

  *out = NULL;
  *n = 0;
  if (!node)
    return TRUE;
  if (!JSON_NODE_HOLDS_ARRAY (node)
      || json_array_get_length (json_node_get_array (node)) < 1
      || json_array_get_length (json_node_get_array (node)) > DDPM_MAX_LEVELS)
    {
      char *what = g_strdup_printf (_("a list of 1 to %d entries"), DDPM_MAX_LEVELS);
      bad_type (error, f, key, node, what);
      g_free (what);
      return FALSE;
    }
  *out = json_node_get_array (node);
  *n = json_array_get_length (*out);
  return TRUE;
}

/* After every known key was read: refuse any other (a key we do not know
 * may change the network).  Keys starting with "_" are bookkeeping
 * (_class_name, _diffusers_version, _name_or_path). */
static gboolean
check_unknown_keys (Fields *f, GError **error)
{
  GList *members = json_object_get_members (f->object);
  gboolean ok = TRUE;

  for (GList *l = members; l && ok; l = l->next)
    {
      const char *key = l->data;
      if (key[0] != '_' && !g_hash_table_contains (f->seen, key))
        {
          g_set_error (error, DDPM_ERROR, DDPM_ERROR_UNSUPPORTED,
                       _("%s: unknown field “%s”: this engine does not know what it "
                         "changes in the network"), f->file, key);
          ok = FALSE;
        }
    }
  g_list_free (members);
  return ok;
}

/* Parse `path` as a JSON object into f (f->object owned by *parser). */
static gboolean
fields_open (Fields *f, JsonParser **parser, const char *path, GError **error)
{
  char *text = NULL;
  gsize len = 0;
  GError *local = NULL;

  memset (f, 0, sizeof *f);
  f->file = path;
  *parser = NULL;
  if (!g_file_get_contents (path, &text, &len, &local))
    {
      g_set_error (error, DDPM_ERROR, DDPM_ERROR_IO, "%s", local->message);
      g_error_free (local);
      return FALSE;
    }
  if (len > MAX_JSON_BYTES)
    {
      g_set_error (error, DDPM_ERROR, DDPM_ERROR_CORRUPT_FILE,
                   _("%s: %zu bytes is too large for a configuration file"),
                   path, (size_t) len);
      g_free (text);
      return FALSE;
    }
  *parser = json_parser_new_immutable ();
  gboolean ok = json_parser_load_from_data (*parser, text, (gssize) len, &local);
  g_free (text);
  if (!ok)
    {
      g_set_error (error, DDPM_ERROR, DDPM_ERROR_CORRUPT_FILE,
                   _("%s: not valid JSON: %s"), path, local->message);
      g_error_free (local);
      return FALSE;
    }
  JsonNode *root = json_parser_get_root (*parser);
  if (!root || !JSON_NODE_HOLDS_OBJECT (root))
    {
      g_set_error (error, DDPM_ERROR, DDPM_ERROR_CORRUPT_FILE,
                   _("%s: not a JSON object"), path);
      return FALSE;
    }
  f->object = json_node_get_object (root);
  f->seen = g_hash_table_new (g_str_hash, g_str_equal);
  return TRUE;
}

static void
fields_close (Fields *f, JsonParser *parser)
{
  if (f->seen)
    g_hash_table_destroy (f->seen);
  if (parser)
    g_object_unref (parser);
}

/* ------------------------------------------------------------ config.json */

/* A string field that must have one value. */
static gboolean
require_string (Fields *f, const char *key, const char *fallback,
                const char *needed, GError **error)
{
  const char *v;

  if (!get_string (f, key, fallback, &v, error))
    return FALSE;
  if (v == NULL || strcmp (v, needed) != 0)
    {
      char *what = g_strdup_printf ("“%s”", needed);
      refuse (error, f, key, field (f, key), what);
      g_free (what);
      return FALSE;
    }
  return TRUE;
}

static gboolean
require_null (Fields *f, const char *key, const char *needed, GError **error)
{
  JsonNode *node = field (f, key);

  if (!is_null (node))
    {
      refuse (error, f, key, node, needed);
      return FALSE;
    }
  return TRUE;
}

static gboolean
require_bool (Fields *f, const char *key, gboolean fallback, gboolean needed,
              GError **error)
{
  gboolean v;

  if (!get_bool (f, key, fallback, &v, error))
    return FALSE;
  if (v != needed)
    {
      refuse (error, f, key, field (f, key), needed ? "true" : "false");
      return FALSE;
    }
  return TRUE;
}

static gboolean
require_number (Fields *f, const char *key, double fallback, double needed,
                GError **error)
{
  double v;

  if (!get_double (f, key, fallback, &v, error))
    return FALSE;
  if (!(fabs (v - needed) <= 1e-9 * fabs (needed)))
    {
      char *what = g_strdup_printf ("%g", needed);
      /* a missing key shows diffusers' default, which is what is refused */
      JsonNode *node = field (f, key);
      if (node)
        refuse (error, f, key, node, what);
      else
        g_set_error (error, DDPM_ERROR, DDPM_ERROR_UNSUPPORTED,
                     _("%s: “%s” is missing, so diffusers' default %g applies; this "
                       "engine runs only %s"), f->file, key, fallback, what);
      g_free (what);
      return FALSE;
    }
  return TRUE;
}

/* The one string of `array` at i, or NULL. */
static const char *
array_string (JsonArray *array, guint i)
{
  JsonNode *node = json_array_get_element (array, i);

  if (!JSON_NODE_HOLDS_VALUE (node) || json_node_get_value_type (node) != G_TYPE_STRING)
    return NULL;
  return json_node_get_string (node);
}

static gboolean
read_unet_config (const char *path, DdpmUNetConfig *c, GError **error)
{
  static const char *const default_down[] =
    { "DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D" };
  static const char *const default_up[] =
    { "AttnUpBlock2D", "AttnUpBlock2D", "AttnUpBlock2D", "UpBlock2D" };
  static const int default_channels[] = { 224, 448, 672, 896 };
  Fields f;
  JsonParser *parser;
  gboolean ok = FALSE;

  memset (c, 0, sizeof *c);
  if (!fields_open (&f, &parser, path, error))
    goto out;

  const char *cls;
  if (!get_string (&f, "_class_name", "UNet2DModel", &cls, error))
    goto out;
  if (cls == NULL || strcmp (cls, "UNet2DModel") != 0)
    {
      refuse (error, &f, "_class_name", field (&f, "_class_name"), "“UNet2DModel”");
      goto out;
    }

  /* the fields that must have the google checkpoints' values */
  if (!require_bool (&f, "center_input_sample", FALSE, FALSE, error)
      || !require_string (&f, "time_embedding_type", "positional", "positional", error)
      || !require_bool (&f, "flip_sin_to_cos", TRUE, FALSE, error)
      || !require_number (&f, "freq_shift", 0, 1, error)
      || !require_string (&f, "mid_block_type", "UNetMidBlock2D", "UNetMidBlock2D", error)
      || !require_number (&f, "mid_block_scale_factor", 1, 1, error)
      || !require_number (&f, "downsample_padding", 1, 0, error)
      || !require_string (&f, "downsample_type", "conv", "conv", error)
      || !require_string (&f, "upsample_type", "conv", "conv", error)
      || !require_string (&f, "act_fn", "silu", "silu", error)
      || !require_number (&f, "norm_num_groups", 32, DDPM_UNET_GROUPS, error)
      || !require_number (&f, "norm_eps", 1e-5, 1e-6, error)
      || !require_string (&f, "resnet_time_scale_shift", "default", "default", error)
      || !require_bool (&f, "add_attention", TRUE, TRUE, error)
      || !require_null (&f, "class_embed_type", _("null (no class conditioning)"), error)
      || !require_null (&f, "num_class_embeds", _("null (no class conditioning)"), error))
    goto out;
  /* only read by the "learned" time embedding, refused above */
  field (&f, "num_train_timesteps");

  JsonNode *agn = field (&f, "attn_norm_num_groups");
  if (!is_null (agn) && !(is_number (agn) && json_node_get_double (agn) == DDPM_UNET_GROUPS))
    {
      refuse (error, &f, "attn_norm_num_groups", agn, "null or 32");
      goto out;
    }

  gint64 in_ch, out_ch, layers;
  double dropout;
  if (!get_int (&f, "in_channels", 3, 1, 64, &in_ch, NULL, error)
      || !get_int (&f, "out_channels", 3, 1, 64, &out_ch, NULL, error)
      || !get_int (&f, "layers_per_block", 2, 1, 16, &layers, NULL, error)
      || !get_double (&f, "dropout", 0.0, &dropout, error))
    goto out;
  if (!(dropout >= 0 && dropout < 1))
    {
      bad_type (error, &f, "dropout", field (&f, "dropout"), _("a number in [0, 1)"));
      goto out;
    }

  /* sample_size: an integer, or [h, w] with h = w */
  JsonNode *ss = field (&f, "sample_size");
  gint64 size = -1;
  if (ss && JSON_NODE_HOLDS_ARRAY (ss) && json_array_get_length (json_node_get_array (ss)) == 2)
    {
      JsonArray *a = json_node_get_array (ss);
      JsonNode *h = json_array_get_element (a, 0), *w = json_array_get_element (a, 1);
      if (is_number (h) && is_number (w)
          && json_node_get_double (h) != json_node_get_double (w))
        {
          refuse (error, &f, "sample_size", ss, _("square models"));
          goto out;
        }
      if (is_number (h))
        size = (gint64) json_node_get_double (h);
    }
  else if (is_number (ss) && json_node_get_double (ss) == floor (json_node_get_double (ss)))
    size = (gint64) json_node_get_double (ss);
  if (size < 1 || size > DDPM_MODEL_MAX_IMAGE_SIZE)
    {
      char *what = g_strdup_printf (_("an integer from 1 to %d"), DDPM_MODEL_MAX_IMAGE_SIZE);
      bad_type (error, &f, "sample_size", ss, what);
      g_free (what);
      goto out;
    }

  /* the levels */
  JsonArray *boc, *down, *up;
  guint n_boc, n_down, n_up;
  if (!get_array (&f, "block_out_channels", &boc, &n_boc, error)
      || !get_array (&f, "down_block_types", &down, &n_down, error)
      || !get_array (&f, "up_block_types", &up, &n_up, error))
    goto out;
  int L = boc ? (int) n_boc : (int) G_N_ELEMENTS (default_channels);
  int nd = down ? (int) n_down : (int) G_N_ELEMENTS (default_down);
  int nu = up ? (int) n_up : (int) G_N_ELEMENTS (default_up);
  if (nd != L || nu != L)
    {
      g_set_error (error, DDPM_ERROR, DDPM_ERROR_CORRUPT_FILE,
                   _("%s: block_out_channels has %d entries, down_block_types %d and "
                     "up_block_types %d: they must be equal"), f.file, L, nd, nu);
      goto out;
    }

  int channels[DDPM_MAX_LEVELS];
  gboolean attn[DDPM_MAX_LEVELS];
  for (int l = 0; l < L; l++)
    {
      if (boc)
        {
          JsonNode *node = json_array_get_element (boc, l);
          double v = is_number (node) ? json_node_get_double (node) : -1;
          if (!(v >= 1 && v <= 1 << 16 && v == floor (v)))
            {
              bad_type (error, &f, "block_out_channels", field (&f, "block_out_channels"),
                        _("a list of positive integers"));
              goto out;
            }
          channels[l] = (int) v;
        }
      else
        channels[l] = default_channels[l];

      const char *d = down ? array_string (down, l) : default_down[l];
      const char *u = up ? array_string (up, L - 1 - l) : default_up[L - 1 - l];
      if (!d || (strcmp (d, "DownBlock2D") != 0 && strcmp (d, "AttnDownBlock2D") != 0))
        {
          char *key = g_strdup_printf ("down_block_types[%d]", l);
          refuse (error, &f, key, down ? json_array_get_element (down, l) : NULL,
                  "“DownBlock2D” and “AttnDownBlock2D”");
          g_free (key);
          goto out;
        }
      if (!u || (strcmp (u, "UpBlock2D") != 0 && strcmp (u, "AttnUpBlock2D") != 0))
        {
          char *key = g_strdup_printf ("up_block_types[%d]", L - 1 - l);
          refuse (error, &f, key, up ? json_array_get_element (up, L - 1 - l) : NULL,
                  "“UpBlock2D” and “AttnUpBlock2D”");
          g_free (key);
          goto out;
        }
      attn[l] = strcmp (d, "AttnDownBlock2D") == 0;
      /* our up path attends at the same levels as the down path */
      if (attn[l] != (strcmp (u, "AttnUpBlock2D") == 0))
        {
          g_set_error (error, DDPM_ERROR, DDPM_ERROR_UNSUPPORTED,
                       _("%s: up_block_types[%d] is “%s” but down_block_types[%d] is "
                         "“%s”: this engine runs only UNets whose up path has attention "
                         "at the levels of the down path"), f.file, L - 1 - l, u, l, d);
          goto out;
        }
    }

  c->in_channels = (int) in_ch;
  c->out_channels = (int) out_ch;
  c->ch = channels[0];
  c->n_levels = L;
  c->num_res_blocks = (int) layers;
  c->image_size = (int) size;
  c->dropout = (float) dropout;
  for (int l = 0; l < L; l++)
    {
      if (channels[l] % channels[0] != 0)
        {
          refuse (error, &f, "block_out_channels", field (&f, "block_out_channels"),
                  _("channel counts that are multiples of the first"));
          goto out;
        }
      c->ch_mult[l] = channels[l] / channels[0];
      if (attn[l])
        {
          if (size % (1 << l) != 0)
            {
              refuse (error, &f, "sample_size", ss,
                      _("sizes that halve exactly at every level"));
              goto out;
            }
          c->attn_resolutions[c->n_attn++] = (int) (size >> l);
        }
    }

  /* Heads: diffusers' UNet2DModel splits an attention block of C channels
   * into C / attention_head_dim heads of attention_head_dim channels (null:
   * one head of C), the mid block's too, channels in head order and each
   * head's softmax scaled by 1/√attention_head_dim: ADM's num_head_channels
   * exactly.  One head everywhere stays num_head_channels 0 (the plain
   * DDPM network, a version-1 file). */
  JsonNode *ahd = field (&f, "attention_head_dim");
  if (!is_null (ahd) || !ahd)
    {
      double v = ahd ? (is_number (ahd) ? json_node_get_double (ahd) : -1) : 8;
      gboolean one_head = v == channels[L - 1], divides = v >= 1 && v == floor (v)
                                                          && v <= channels[L - 1];
      for (int l = 0; l < L; l++)
        if (attn[l] && v != channels[l])
          one_head = FALSE;
      for (int l = 0; divides && l <= L; l++)
        /* the attention levels, then the mid block (the deepest level's) */
        if (l == L ? fmod (channels[L - 1], v) != 0 : attn[l] && fmod (channels[l], v) != 0)
          divides = FALSE;
      if (!one_head && divides)
        c->num_head_channels = (int) v;
      else if (!one_head)
        {
          if (ahd)
            refuse (error, &f, "attention_head_dim", ahd,
                    _("null, or a whole number of channels that divides the "
                      "channels of every attention block (the mid block's too)"));
          else
            g_set_error (error, DDPM_ERROR, DDPM_ERROR_UNSUPPORTED,
                         _("%s: “attention_head_dim” is missing, so diffusers' default "
                           "8 applies, which does not divide the channels of every "
                           "attention block"), f.file);
          goto out;
        }
    }

  gint64 temb_dim;
  gboolean has_temb_dim;
  if (!get_int (&f, "time_embedding_dim", 0, 1, 1 << 20, &temb_dim, &has_temb_dim, error))
    goto out;
  if (has_temb_dim && temb_dim != 4 * (gint64) c->ch)
    {
      char *what = g_strdup_printf (_("null or 4 × block_out_channels[0] = %d"), 4 * c->ch);
      refuse (error, &f, "time_embedding_dim", field (&f, "time_embedding_dim"), what);
      g_free (what);
      goto out;
    }

  if (!check_unknown_keys (&f, error))
    goto out;

  GError *local = NULL;
  if (!ddpm_unet_config_validate (c, &local))
    {
      g_set_error (error, DDPM_ERROR, DDPM_ERROR_UNSUPPORTED, "%s: %s", f.file,
                   local->message);
      g_error_free (local);
      goto out;
    }
  ok = TRUE;
out:
  fields_close (&f, parser);
  return ok;
}

/* ------------------------------------------------------------- scheduler */

/* Our named schedule's β endpoints at T (schedule.c: the T = 1000 values
 * times 1000/T), for the kinds diffusers spells with beta_start/beta_end. */
static gboolean
check_endpoints (Fields *f, double start, double end, double want_start,
                 double want_end, GError **error)
{
  const char *key = NULL;
  double want = 0;

  if (!(fabs (start - want_start) <= 1e-6 * want_start))
    key = "beta_start", want = want_start;
  else if (!(fabs (end - want_end) <= 1e-6 * want_end))
    key = "beta_end", want = want_end;
  if (key)
    {
      char *what = g_strdup_printf (_("%.9g for this schedule and number of steps"), want);
      refuse (error, f, key, field (f, key), what);
      g_free (what);
      return FALSE;
    }
  return TRUE;
}

static gboolean
read_schedule (const char *path, DdpmScheduleKind *kind, int *T, GError **error)
{
  Fields f;
  JsonParser *parser;
  gboolean ok = FALSE;

  if (!fields_open (&f, &parser, path, error))
    goto out;

  gint64 steps;
  double start, end;
  const char *schedule, *variance, *prediction;
  if (!get_int (&f, "num_train_timesteps", 1000, 1, DDPM_MODEL_MAX_T, &steps, NULL, error)
      || !get_double (&f, "beta_start", 0.0001, &start, error)
      || !get_double (&f, "beta_end", 0.02, &end, error)
      || !get_string (&f, "beta_schedule", "linear", &schedule, error)
      || !get_string (&f, "variance_type", "fixed_small", &variance, error)
      || !get_string (&f, "prediction_type", "epsilon", &prediction, error)
      || !require_null (&f, "trained_betas", _("named schedules (trained_betas null)"), error)
      || !require_bool (&f, "thresholding", FALSE, FALSE, error)
      || !require_bool (&f, "rescale_betas_zero_snr", FALSE, FALSE, error))
    goto out;
  *T = (int) steps;

  const double scale = 1000.0 / (double) steps;
  if (schedule && strcmp (schedule, "linear") == 0)
    {
      *kind = DDPM_SCHEDULE_LINEAR;
      if (!check_endpoints (&f, start, end, scale * 1e-4, scale * 0.02, error))
        goto out;
    }
  else if (schedule && strcmp (schedule, "sigmoid") == 0)
    {
      *kind = DDPM_SCHEDULE_SIGMOID;
      if (!check_endpoints (&f, start, end, scale * 1e-4, scale * 0.02, error))
        goto out;
    }
  else if (schedule && strcmp (schedule, "scaled_linear") == 0)
    {
      *kind = DDPM_SCHEDULE_SCALED_LINEAR;
      if (!check_endpoints (&f, start, end, scale * 0.00085, scale * 0.012, error))
        goto out;
    }
  else if (schedule && strcmp (schedule, "squaredcos_cap_v2") == 0)
    *kind = DDPM_SCHEDULE_COSINE;   /* diffusers ignores beta_start/end here too */
  else
    {
      refuse (error, &f, "beta_schedule", field (&f, "beta_schedule"),
              "“linear”, “scaled_linear”, “sigmoid” and “squaredcos_cap_v2”");
      goto out;
    }

  /* The variance is the sampler's choice here (--variance); a learned one
   * would need the network's extra output channels. */
  static const char *const variances[] =
    { "fixed_small", "fixed_small_log", "fixed_large", "fixed_large_log" };
  gboolean known = FALSE;
  for (gsize i = 0; variance && i < G_N_ELEMENTS (variances); i++)
    known |= strcmp (variance, variances[i]) == 0;
  if (!known)
    {
      refuse (error, &f, "variance_type", field (&f, "variance_type"),
              _("fixed variances (fixed_small, fixed_large)"));
      goto out;
    }
  if (!prediction || strcmp (prediction, "epsilon") != 0)
    {
      refuse (error, &f, "prediction_type", field (&f, "prediction_type"),
              _("networks that predict the noise (“epsilon”)"));
      goto out;
    }
  ok = TRUE;
out:
  fields_close (&f, parser);
  return ok;
}

/* --------------------------------------------------------------- weights */

/* The weights file: safetensors (diffusers' choice when both exist) or a
 * PyTorch pickle. */
typedef struct
{
  char                *path;
  DdpmTensorFile      *st;
  DdpmTorchCheckpoint *pt;
  GHashTable          *pt_index;  /* name → const DdpmTorchTensor * */
  GHashTable          *used;      /* names consumed */
} Weights;

static void
weights_close (Weights *w)
{
  g_free (w->path);
  if (w->st)
    ddpm_tensor_file_free (w->st);
  if (w->pt)
    ddpm_torch_checkpoint_free (w->pt);
  if (w->pt_index)
    g_hash_table_destroy (w->pt_index);
  if (w->used)
    g_hash_table_destroy (w->used);
}

static gboolean
weights_open (Weights *w, const char *dir, GError **error)
{
  char *st_path = g_build_filename (dir, "diffusion_pytorch_model.safetensors", NULL);
  char *pt_path = g_build_filename (dir, "diffusion_pytorch_model.bin", NULL);
  gboolean ok = FALSE;

  memset (w, 0, sizeof *w);
  w->used = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  if (g_file_test (st_path, G_FILE_TEST_EXISTS))
    {
      w->path = g_strdup (st_path);
      w->st = ddpm_tensor_file_open (st_path, error);
      ok = w->st != NULL;
    }
  else if (g_file_test (pt_path, G_FILE_TEST_EXISTS))
    {
      w->path = g_strdup (pt_path);
      w->pt = ddpm_torch_checkpoint_open (pt_path, error);
      if (w->pt)
        {
          w->pt_index = g_hash_table_new (g_str_hash, g_str_equal);
          for (guint i = 0; i < ddpm_torch_checkpoint_get_n_tensors (w->pt); i++)
            {
              const DdpmTorchTensor *t = ddpm_torch_checkpoint_get_tensor (w->pt, i);
              g_hash_table_insert (w->pt_index, (gpointer) t->name, (gpointer) t);
            }
          ok = TRUE;
        }
    }
  else
    {
      char *index = g_strconcat (st_path, ".index.json", NULL);
      if (g_file_test (index, G_FILE_TEST_EXISTS))
        g_set_error (error, DDPM_ERROR, DDPM_ERROR_UNSUPPORTED,
                     _("%s: the weights are split into shards; this engine reads one "
                       "diffusion_pytorch_model.safetensors or .bin"), dir);
      else
        g_set_error (error, DDPM_ERROR, DDPM_ERROR_IO,
                     _("%s: no diffusion_pytorch_model.safetensors or "
                       "diffusion_pytorch_model.bin"), dir);
      g_free (index);
    }
  g_free (st_path);
  g_free (pt_path);
  return ok;
}

/* Shape of `name` in the file; FALSE if absent. */
static gboolean
weights_shape (const Weights *w, const char *name, int *ndim, gint64 *shape)
{
  if (w->st)
    {
      if (!ddpm_tensor_file_has (w->st, name))
        return FALSE;
      ddpm_tensor_file_get_shape (w->st, name, NULL, ndim, shape);
      return TRUE;
    }
  const DdpmTorchTensor *t = g_hash_table_lookup (w->pt_index, name);
  if (!t)
    return FALSE;
  *ndim = t->ndim;
  memcpy (shape, t->shape, sizeof (gint64) * (gsize) t->ndim);
  return TRUE;
}

static char *
shape_text (int ndim, const gint64 *shape)
{
  GString *s = g_string_new ("(");

  for (int d = 0; d < ndim; d++)
    g_string_append_printf (s, "%s%" G_GINT64_FORMAT, d ? ", " : "", shape[d]);
  g_string_append (s, ")");
  return g_string_free (s, FALSE);
}

/* diffusers ≥ 0.14's name of an attention tensor of ours, or NULL. */
static char *
new_attention_name (const char *name)
{
  static const char *const renames[][2] = {
    { ".query.", ".to_q." }, { ".key.", ".to_k." },
    { ".value.", ".to_v." }, { ".proj_attn.", ".to_out.0." },
  };
  const char *attn = strstr (name, ".attentions.");

  for (gsize i = 0; attn && i < G_N_ELEMENTS (renames); i++)
    {
      const char *at = strstr (attn, renames[i][0]);
      if (at)
        {
          char *head = g_strndup (name, (gsize) (at - name));
          char *out = g_strconcat (head, renames[i][1], at + strlen (renames[i][0]), NULL);
          g_free (head);
          return out;
        }
    }
  return NULL;
}

/* Read our tensor `info` into dst from whichever name the file uses. */
static gboolean
weights_read (Weights *w, const DdpmParamInfo *info, float *dst, GError **error)
{
  char *alt = new_attention_name (info->name);
  gint64 shape[DDPM_TENSOR_MAX_DIMS];
  int ndim = 0;
  gboolean has = weights_shape (w, info->name, &ndim, shape);
  gboolean has_alt = alt && weights_shape (w, alt, &ndim, shape);
  const char *name = has ? info->name : alt;
  gboolean ok = FALSE;

  if (has && has_alt)
    {
      g_set_error (error, DDPM_ERROR, DDPM_ERROR_CORRUPT_FILE,
                   _("%s: both “%s” and “%s” are present: which one is the weight?"),
                   w->path, info->name, alt);
      goto out;
    }
  if (!has && !has_alt)
    {
      char *want = shape_text (info->ndim, info->shape);
      if (alt)
        g_set_error (error, DDPM_ERROR, DDPM_ERROR_CORRUPT_FILE,
                     _("%s: missing tensor “%s” (or “%s”) of shape %s, which config.json "
                       "implies"), w->path, info->name, alt, want);
      else
        g_set_error (error, DDPM_ERROR, DDPM_ERROR_CORRUPT_FILE,
                     _("%s: missing tensor “%s” of shape %s, which config.json implies"),
                     w->path, info->name, want);
      g_free (want);
      goto out;
    }
  if (ndim != info->ndim || memcmp (shape, info->shape, sizeof (gint64) * (gsize) ndim) != 0)
    {
      char *want = shape_text (info->ndim, info->shape);
      char *found = shape_text (ndim, shape);
      g_set_error (error, DDPM_ERROR, DDPM_ERROR_CORRUPT_FILE,
                   _("%s: tensor “%s” has shape %s; config.json implies %s"),
                   w->path, name, found, want);
      g_free (want);
      g_free (found);
      goto out;
    }
  if (w->st)
    ok = ddpm_tensor_file_read_f32 (w->st, name, dst, info->ndim, info->shape, error);
  else
    ok = ddpm_torch_checkpoint_read_f32 (w->pt, g_hash_table_lookup (w->pt_index, name),
                                         dst, info->numel, error);
  if (ok)
    g_hash_table_add (w->used, g_strdup (name));
out:
  g_free (alt);
  return ok;
}

/* Every tensor of the file was read: anything else belongs to a network
 * config.json does not describe. */
static gboolean
weights_check_all_used (const Weights *w, GError **error)
{
  GPtrArray *names = NULL;
  const char *extra = NULL;
  guint n_extra = 0;

  if (w->st)
    names = ddpm_tensor_file_list (w->st);
  else
    {
      names = g_ptr_array_new ();
      for (guint i = 0; i < ddpm_torch_checkpoint_get_n_tensors (w->pt); i++)
        g_ptr_array_add (names, (gpointer) ddpm_torch_checkpoint_get_tensor (w->pt, i)->name);
    }
  for (guint i = 0; i < names->len; i++)
    if (!g_hash_table_contains (w->used, names->pdata[i]))
      {
        extra = extra ? extra : names->pdata[i];
        n_extra++;
      }
  if (extra)
    g_set_error (error, DDPM_ERROR, DDPM_ERROR_CORRUPT_FILE,
                 _("%s: %u tensors (first “%s”) are not part of the UNet config.json "
                   "describes"), w->path, n_extra, extra);
  g_ptr_array_unref (names);
  return extra == NULL;
}

/* ---------------------------------------------------------------- import */

gboolean
ddpm_import_diffusers (const char  *folder,
                       const char  *out_path,
                       GError     **error)
{
  g_return_val_if_fail (folder != NULL && out_path != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  /* the model-index layout (a pipeline: unet/ and scheduler/), else a
   * model folder with scheduler_config.json beside config.json (as the
   * google repositories have it) */
  char *unet_dir = g_build_filename (folder, "unet", NULL);
  char *sched_path = g_build_filename (folder, "scheduler", "scheduler_config.json", NULL);
  char *config_path = g_build_filename (unet_dir, "config.json", NULL);
  DdpmUNet *unet = NULL;
  Weights w = { 0 };
  gboolean ok = FALSE;

  if (!g_file_test (config_path, G_FILE_TEST_IS_REGULAR))
    {
      g_free (unet_dir);
      g_free (sched_path);
      g_free (config_path);
      unet_dir = g_strdup (folder);
      sched_path = g_build_filename (folder, "scheduler_config.json", NULL);
      config_path = g_build_filename (folder, "config.json", NULL);
      if (!g_file_test (config_path, G_FILE_TEST_IS_REGULAR))
        {
          g_set_error (error, DDPM_ERROR, DDPM_ERROR_IO,
                       _("%s: no config.json (nor unet/config.json): not a diffusers "
                         "model folder"), folder);
          goto out;
        }
    }
  if (!g_file_test (sched_path, G_FILE_TEST_IS_REGULAR))
    {
      g_set_error (error, DDPM_ERROR, DDPM_ERROR_IO,
                   _("%s: no scheduler_config.json (the noise schedule) beside "
                     "config.json or in scheduler/"), folder);
      goto out;
    }

  DdpmUNetConfig config;
  DdpmScheduleKind kind = DDPM_SCHEDULE_LINEAR;
  int T = 0;
  if (!read_unet_config (config_path, &config, error)
      || !read_schedule (sched_path, &kind, &T, error)
      || !ddpm_limits_check_model (&config, T, config_path, error))
    goto out;

  /* the weights file is found and checked before the (maybe 450 MB)
   * parameters are allocated */
  if (!weights_open (&w, unet_dir, error))
    goto out;
  unet = ddpm_unet_new (&config, error);
  if (!unet)
    goto out;

  float *params = ddpm_unet_params (unet);
  for (int i = 0; i < ddpm_unet_n_tensors (unet); i++)
    {
      const DdpmParamInfo *info = ddpm_unet_tensor (unet, i);
      if (!weights_read (&w, info, params + info->offset, error))
        goto out;
    }
  if (!weights_check_all_used (&w, error))
    goto out;

  ok = ddpm_model_file_write (out_path, unet, params, kind, T,
                              NULL, NULL, NULL, NULL, error);
out:
  weights_close (&w);
  if (unet)
    ddpm_unet_free (unet);
  g_free (unet_dir);
  g_free (sched_path);
  g_free (config_path);
  return ok;
}
