/* model.c: model files and checkpoints (safetensors), and the DdpmDenoiser
 * that runs a loaded model's UNet for the samplers.
 *
 * A MODEL FILE holds the EMA weights under their diffusers names
 * ("conv_in.weight", "down_blocks.0.resnets.0.norm1.weight", …), so it
 * reads like a published checkpoint, and in "__metadata__" (string →
 * string) everything needed to rebuild the network and its schedule:
 *
 *   format = "gimp-ddpm", format_version = "1",
 *   in_channels, out_channels, ch, ch_mult ("1,2,2"), num_res_blocks,
 *   attn_resolutions ("8", or "" for none), image_size, dropout,
 *   schedule ("linear", …), T, and training info: train_steps, train_loss.
 *
 * A CHECKPOINT is a model file plus what resuming needs: the raw weights
 * and Adam moments under "train.params.", "train.adam_m.", "train.adam_v."
 * + name, and the training state as small tensors "train.state.*" (step,
 * seed, generator counters, data cursor, losses).  It loads as a model too.
 *
 * Loading validates the metadata (ddpm_unet_config_validate) and the
 * presence, dtype and shape of every tensor; errors name the file and the
 * problem.
 */
#include "config.h"

#include <inttypes.h>
#include <math.h>
#include <string.h>

#include "intl.h"
#include "finite.h"
#include "intl.h"
#include "layers/layers.h"

#include "safetensors.h"
#include "train.h"

#define MODEL_FORMAT "gimp-ddpm"
/* Version 2 adds the ADM architecture's keys (style, num_heads,
 * num_head_channels, num_heads_upsample, scale_shift, resblock_updown,
 * learn_sigma, num_classes, and rescale_timesteps when true).  They are written only for a network that
 * uses them, with version 2, so that an older reader refuses such a file
 * by its version instead of building the wrong network; every other file
 * stays version 1, byte for byte as before. */
#define MODEL_FORMAT_VERSION 2
/* Images per UNet call in the denoiser: bounds the activation memory of a
 * sampler that hands over many tiles at once.  A batch holds at most
 * MODEL_BATCH_PIXELS pixels (32 tiles of 32×32, 8 of 64×64): more only
 * costs memory (and first-touch page faults), since the convolutions
 * already run at full speed on one image. */
#define MODEL_MAX_BATCH 32
#define MODEL_BATCH_PIXELS (32 * 32 * 32)


struct _DdpmModel
{
  char           *path;
  DdpmUNet       *unet;
  DdpmSchedule   *schedule;
  GHashTable     *metadata;  /* key → value, the file's __metadata__ */
  int             threads;   /* for the denoiser; 0 = all cores */
  int            *t_buf;     /* (MODEL_MAX_BATCH) 0-based t per image */
  int            *y_buf;     /* (MODEL_MAX_BATCH) the class label per image */
  int             class_label; /* class-conditional models: the label; −1 unset */
  float          *out_buf;   /* learn_sigma: (max batch, 2C, H, W) the raw output,
                                grown on demand */
  gsize           out_len;
  gboolean        packs_tried; /* keep_packs ran */
};

static int
max_batch (const DdpmModel *model)
{
  /* in 64 bits: S² overflows int from S = 46341 (ddpm_limits_check_model
   * keeps S far below, but the division must not trap whatever S is) */
  const gint64 S = ddpm_unet_get_config (model->unet)->image_size;
  return (int) CLAMP (MODEL_BATCH_PIXELS / (S * S), 1, MODEL_MAX_BATCH);
}


/* ---------------------------------------------------------------- writing */

static char *
format_int_list (const int *values, int n)
{
  GString *s = g_string_new (NULL);

  for (int i = 0; i < n; i++)
    g_string_append_printf (s, "%s%d", i ? "," : "", values[i]);
  return g_string_free (s, FALSE);
}

static void
set_metadata_int (DdpmTensorWriter *writer, const char *key, gint64 value)
{
  char buf[32];

  g_snprintf (buf, sizeof buf, "%" G_GINT64_FORMAT, value);
  ddpm_tensor_writer_set_metadata (writer, key, buf);
}

static void
set_metadata_double (DdpmTensorWriter *writer, const char *key, double value)
{
  char buf[G_ASCII_DTOSTR_BUF_SIZE];

  /* %.17g reads back exactly; the C locale whatever the user's. */
  g_ascii_formatd (buf, sizeof buf, "%.17g", value);
  ddpm_tensor_writer_set_metadata (writer, key, buf);
}

static void
add_weights (DdpmTensorWriter *writer,
             GPtrArray        *names,
             const DdpmUNet   *unet,
             const char       *prefix,
             const float      *base)
{
  int n = ddpm_unet_n_tensors (unet);

  for (int i = 0; i < n; i++)
    {
      const DdpmParamInfo *info = ddpm_unet_tensor (unet, i);
      char *name = g_strconcat (prefix, info->name, NULL);

      g_ptr_array_add (names, name);  /* freed after the write */
      ddpm_tensor_writer_add (writer, name, DDPM_DTYPE_F32, base + info->offset,
                              info->ndim, info->shape);
    }
}

gboolean
ddpm_model_file_write (const char            *path,
                       const DdpmUNet        *unet,
                       const float           *weights,
                       DdpmScheduleKind       schedule,
                       int                    T,
                       const float           *params,
                       const float           *adam_m,
                       const float           *adam_v,
                       const DdpmTrainState  *state,
                       GError               **error)
{
  g_return_val_if_fail (path != NULL, FALSE);
  g_return_val_if_fail (unet != NULL && weights != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  g_return_val_if_fail (!params || (adam_m && adam_v && state), FALSE);

  const DdpmUNetConfig *c = ddpm_unet_get_config (unet);
  gboolean checkpoint = params != NULL;
  DdpmTensorWriter *writer = ddpm_tensor_writer_new ();
  GPtrArray *names = g_ptr_array_new_with_free_func (g_free);
  char *list;

  const gboolean adm = !ddpm_unet_config_is_adm_feature_free (c);

  ddpm_tensor_writer_set_metadata (writer, "format", MODEL_FORMAT);
  set_metadata_int (writer, "format_version", adm ? 2 : 1);
  if (adm)
    {
      ddpm_tensor_writer_set_metadata (writer, "style",
                                       c->style == DDPM_UNET_STYLE_ADM ? "adm" : "ddpm");
      set_metadata_int (writer, "num_heads", c->num_heads);
      set_metadata_int (writer, "num_head_channels", c->num_head_channels);
      set_metadata_int (writer, "num_heads_upsample", c->num_heads_upsample);
      ddpm_tensor_writer_set_metadata (writer, "scale_shift", c->scale_shift ? "true" : "false");
      ddpm_tensor_writer_set_metadata (writer, "resblock_updown",
                                       c->resblock_updown ? "true" : "false");
      ddpm_tensor_writer_set_metadata (writer, "learn_sigma", c->learn_sigma ? "true" : "false");
      set_metadata_int (writer, "num_classes", c->num_classes);
      /* only when set: files without it stay byte for byte as they were */
      if (c->rescale_timesteps)
        ddpm_tensor_writer_set_metadata (writer, "rescale_timesteps", "true");
    }
  set_metadata_int (writer, "in_channels", c->in_channels);
  set_metadata_int (writer, "out_channels", c->out_channels);
  set_metadata_int (writer, "ch", c->ch);
  list = format_int_list (c->ch_mult, c->n_levels);
  ddpm_tensor_writer_set_metadata (writer, "ch_mult", list);
  g_free (list);
  set_metadata_int (writer, "num_res_blocks", c->num_res_blocks);
  list = format_int_list (c->attn_resolutions, c->n_attn);
  ddpm_tensor_writer_set_metadata (writer, "attn_resolutions", list);
  g_free (list);
  set_metadata_int (writer, "image_size", c->image_size);
  set_metadata_double (writer, "dropout", c->dropout);
  ddpm_tensor_writer_set_metadata (writer, "schedule", ddpm_schedule_kind_name (schedule));
  set_metadata_int (writer, "T", T);
  if (state)
    {
      set_metadata_int (writer, "train_steps", state->step);
      if (!isnan (state->loss_ema))
        set_metadata_double (writer, "train_loss", state->loss_ema);
    }
  ddpm_tensor_writer_set_metadata (writer, "checkpoint", checkpoint ? "true" : "false");

  add_weights (writer, names, unet, "", weights);

  /* The state, as small tensors: exact 64-bit integers survive, which a
   * JSON number (a double in most readers) would not promise. */
  guint64 seed[1], t_rng[3], data_rng[3], cursor[1];
  gint64 step[1];
  double losses[2];
  if (checkpoint)
    {
      static const gint64 one[1] = { 1 }, three[1] = { 3 }, two[1] = { 2 };

      add_weights (writer, names, unet, "train.params.", params);
      add_weights (writer, names, unet, "train.adam_m.", adam_m);
      add_weights (writer, names, unet, "train.adam_v.", adam_v);
      step[0] = state->step;
      seed[0] = state->seed;
      t_rng[0] = state->t_rng.seed;
      t_rng[1] = state->t_rng.stream;
      t_rng[2] = state->t_rng.counter;
      data_rng[0] = state->data.rng.seed;
      data_rng[1] = state->data.rng.stream;
      data_rng[2] = state->data.rng.counter;
      cursor[0] = state->data.cursor;
      losses[0] = state->loss;
      losses[1] = state->loss_ema;
      ddpm_tensor_writer_add (writer, "train.state.step", DDPM_DTYPE_I64, step, 1, one);
      ddpm_tensor_writer_add (writer, "train.state.seed", DDPM_DTYPE_U64, seed, 1, one);
      ddpm_tensor_writer_add (writer, "train.state.t_rng", DDPM_DTYPE_U64, t_rng, 1, three);
      ddpm_tensor_writer_add (writer, "train.state.data_rng", DDPM_DTYPE_U64, data_rng, 1, three);
      ddpm_tensor_writer_add (writer, "train.state.data_cursor", DDPM_DTYPE_U64, cursor, 1, one);
      ddpm_tensor_writer_add (writer, "train.state.loss", DDPM_DTYPE_F64, losses, 1, two);
    }

  gboolean ok = ddpm_tensor_writer_write (writer, path, error);
  ddpm_tensor_writer_free (writer);
  g_ptr_array_free (names, TRUE);
  return ok;
}

char *
ddpm_train_checkpoint_path (const char *model_path)
{
  g_return_val_if_fail (model_path != NULL, NULL);

  if (g_str_has_suffix (model_path, ".safetensors"))
    {
      gsize stem = strlen (model_path) - strlen (".safetensors");
      char *base = g_strndup (model_path, stem);
      char *path = g_strconcat (base, ".ckpt.safetensors", NULL);
      g_free (base);
      return path;
    }
  return g_strconcat (model_path, ".ckpt", NULL);
}

/* ---------------------------------------------------------------- reading */

static gboolean
parse_int (const DdpmTensorFile *file, const char *key, gint64 min, gint64 max,
           gint64 *out, GError **error)
{
  const char *value = ddpm_tensor_file_get_metadata (file, key);
  GError *parse_error = NULL;

  if (!value)
    {
      g_set_error (error, DDPM_ERROR, DDPM_ERROR_CORRUPT_FILE,
                   _("%s: the model metadata has no “%s”"),
                   ddpm_tensor_file_get_display_name (file), key);
      return FALSE;
    }
  if (!g_ascii_string_to_signed (value, 10, min, max, out, &parse_error))
    {
      g_set_error (error, DDPM_ERROR, DDPM_ERROR_CORRUPT_FILE,
                   _("%s: bad “%s” in the model metadata: %s"),
                   ddpm_tensor_file_get_display_name (file), key, parse_error->message);
      g_error_free (parse_error);
      return FALSE;
    }
  return TRUE;
}

static gboolean
parse_int_list (const DdpmTensorFile *file, const char *key, int *values, int *n,
                GError **error)
{
  const char *value = ddpm_tensor_file_get_metadata (file, key);

  if (!value)
    {
      g_set_error (error, DDPM_ERROR, DDPM_ERROR_CORRUPT_FILE,
                   _("%s: the model metadata has no “%s”"),
                   ddpm_tensor_file_get_display_name (file), key);
      return FALSE;
    }

  char **parts = value[0] ? g_strsplit (value, ",", -1) : g_new0 (char *, 1);
  guint count = g_strv_length (parts);
  gboolean ok = count <= DDPM_MAX_LEVELS;

  for (guint i = 0; ok && i < count; i++)
    {
      gint64 v;
      ok = g_ascii_string_to_signed (g_strstrip (parts[i]), 10, 1, 1 << 20, &v, NULL);
      values[i] = (int) v;
    }
  g_strfreev (parts);
  if (!ok)
    {
      g_set_error (error, DDPM_ERROR, DDPM_ERROR_CORRUPT_FILE,
                   _("%s: bad “%s” in the model metadata: “%s” (expected up to %d "
                     "positive integers separated by commas)"),
                   ddpm_tensor_file_get_display_name (file), key, value, DDPM_MAX_LEVELS);
      return FALSE;
    }
  *n = (int) count;
  return TRUE;
}

/* An optional boolean key of version 2 ("true" / "false"; absent: FALSE). */
static gboolean
parse_bool (const DdpmTensorFile *file, const char *key, gboolean *out, GError **error)
{
  const char *value = ddpm_tensor_file_get_metadata (file, key);

  *out = FALSE;
  if (value == NULL || strcmp (value, "false") == 0)
    return TRUE;
  if (strcmp (value, "true") == 0)
    {
      *out = TRUE;
      return TRUE;
    }
  g_set_error (error, DDPM_ERROR, DDPM_ERROR_CORRUPT_FILE,
               "%s: bad “%s” in the model metadata: “%s” (expected true or false)",
               ddpm_tensor_file_get_display_name (file), key, value);
  return FALSE;
}

/* The ADM keys of version 2, each optional (absent: the DDPM default). */
static gboolean
read_adm_keys (const DdpmTensorFile *file, DdpmUNetConfig *config, GError **error)
{
  const char *style = ddpm_tensor_file_get_metadata (file, "style");
  const char *ints[4] = { "num_heads", "num_head_channels", "num_heads_upsample",
                          "num_classes" };
  int *fields[4] = { &config->num_heads, &config->num_head_channels,
                     &config->num_heads_upsample, &config->num_classes };

  if (style != NULL && strcmp (style, "adm") == 0)
    config->style = DDPM_UNET_STYLE_ADM;
  else if (style != NULL && strcmp (style, "ddpm") != 0)
    {
      g_set_error (error, DDPM_ERROR, DDPM_ERROR_CORRUPT_FILE,
                   "%s: bad “style” in the model metadata: “%s” (expected ddpm or adm)",
                   ddpm_tensor_file_get_display_name (file), style);
      return FALSE;
    }
  for (int i = 0; i < 4; i++)
    {
      gint64 v = 0;
      if (ddpm_tensor_file_get_metadata (file, ints[i]) != NULL
          && !parse_int (file, ints[i], 0, 1 << 20, &v, error))
        return FALSE;
      *fields[i] = (int) v;
    }
  return parse_bool (file, "scale_shift", &config->scale_shift, error)
         && parse_bool (file, "resblock_updown", &config->resblock_updown, error)
         && parse_bool (file, "learn_sigma", &config->learn_sigma, error)
         && parse_bool (file, "rescale_timesteps", &config->rescale_timesteps, error);
}

/* Config and schedule from the metadata, validated. */
static gboolean
read_header (const DdpmTensorFile *file,
             DdpmUNetConfig       *config,
             DdpmScheduleKind     *kind,
             int                  *T,
             GError              **error)
{
  const char *name = ddpm_tensor_file_get_display_name (file);
  const char *format = ddpm_tensor_file_get_metadata (file, "format");
  gint64 v[6];

  if (!format || strcmp (format, MODEL_FORMAT) != 0)
    {
      if (format)
        g_set_error (error, DDPM_ERROR, DDPM_ERROR_UNSUPPORTED,
                     _("%s: not a GIMP DDPM model (its format is “%s”)"), name, format);
      else
        g_set_error (error, DDPM_ERROR, DDPM_ERROR_UNSUPPORTED,
                     _("%s: not a GIMP DDPM model (its metadata does not describe a "
                       "model: no “format” entry)"), name);
      return FALSE;
    }
  if (!parse_int (file, "format_version", 1, G_MAXINT, &v[0], error))
    return FALSE;
  if (v[0] > MODEL_FORMAT_VERSION)
    {
      g_set_error (error, DDPM_ERROR, DDPM_ERROR_UNSUPPORTED,
                   _("%s: model format version %" PRId64 " is newer than this "
                     "program reads (%d); update GIMP DDPM"), name, v[0], MODEL_FORMAT_VERSION);
      return FALSE;
    }

  memset (config, 0, sizeof *config);
  if (!parse_int (file, "in_channels", 1, 1 << 16, &v[0], error)
      || !parse_int (file, "out_channels", 1, 1 << 16, &v[1], error)
      || !parse_int (file, "ch", 1, 1 << 16, &v[2], error)
      || !parse_int (file, "num_res_blocks", 0, 1 << 10, &v[3], error)
      || !parse_int (file, "image_size", 1, 1 << 16, &v[4], error)
      || !parse_int (file, "T", 1, DDPM_MODEL_MAX_T, &v[5], error)
      || !parse_int_list (file, "ch_mult", config->ch_mult, &config->n_levels, error)
      || !parse_int_list (file, "attn_resolutions", config->attn_resolutions,
                          &config->n_attn, error))
    return FALSE;
  config->in_channels = (int) v[0];
  config->out_channels = (int) v[1];
  config->ch = (int) v[2];
  config->num_res_blocks = (int) v[3];
  config->image_size = (int) v[4];
  *T = (int) v[5];

  const char *dropout = ddpm_tensor_file_get_metadata (file, "dropout");
  char *end = NULL;
  double d = dropout ? g_ascii_strtod (dropout, &end) : NAN;
  if (!dropout || end == dropout || *end || !(d >= 0 && d < 1))
    {
      g_set_error (error, DDPM_ERROR, DDPM_ERROR_CORRUPT_FILE,
                   _("%s: bad “dropout” in the model metadata: “%s”"), name,
                   dropout ? dropout : "missing");
      return FALSE;
    }
  config->dropout = (float) d;
  if (!read_adm_keys (file, config, error))
    return FALSE;

  GError *local = NULL;
  const char *schedule = ddpm_tensor_file_get_metadata (file, "schedule");
  if (!schedule || !ddpm_schedule_kind_from_string (schedule, kind, &local))
    {
      g_set_error (error, DDPM_ERROR, DDPM_ERROR_CORRUPT_FILE,
                   _("%s: bad “schedule” in the model metadata: %s"), name,
                   local ? local->message : "missing");
      g_clear_error (&local);
      return FALSE;
    }
  if (!ddpm_unet_config_validate (config, &local))
    {
      g_set_error (error, DDPM_ERROR, DDPM_ERROR_CORRUPT_FILE,
                   _("%s: bad model configuration: %s"), name, local->message);
      g_error_free (local);
      return FALSE;
    }
  /* the work budget, before the weights or schedule are allocated */
  return ddpm_limits_check_model (config, *T, name, error);
}

/* Every tensor of the UNet, under prefix + its name, into base. */
static gboolean
read_weights (const DdpmTensorFile *file,
              const DdpmUNet       *unet,
              const char           *prefix,
              float                *base,
              GError              **error)
{
  const DdpmUNetConfig *c = ddpm_unet_get_config (unet);
  int n = ddpm_unet_n_tensors (unet);

  for (int i = 0; i < n; i++)
    {
      const DdpmParamInfo *info = ddpm_unet_tensor (unet, i);
      char *name = g_strconcat (prefix, info->name, NULL);
      gboolean ok;

      if (!ddpm_tensor_file_has (file, name))
        {
          g_set_error (error, DDPM_ERROR, DDPM_ERROR_CORRUPT_FILE,
                       _("%s: tensor '%s' missing"),
                       ddpm_tensor_file_get_display_name (file), name);
          g_free (name);
          return FALSE;
        }

      /* The first convolution tells the channels the weights were trained
       * for; say so in those words when the metadata disagrees. */
      if (strcmp (info->name, "conv_in.weight") == 0)
        {
          gint64 shape[DDPM_TENSOR_MAX_DIMS];
          int ndim = 0;
          if (ddpm_tensor_file_get_shape (file, name, NULL, &ndim, shape)
              && ndim == 4 && shape[1] != c->in_channels)
            {
              g_set_error (error, DDPM_ERROR, DDPM_ERROR_CORRUPT_FILE,
                           _("%s: '%s' was trained for %" PRId64 " channel%s, "
                             "but the metadata says %d"),
                           ddpm_tensor_file_get_display_name (file), name, shape[1],
                           shape[1] == 1 ? "" : "s", c->in_channels);
              g_free (name);
              return FALSE;
            }
        }

      ok = ddpm_tensor_file_read_f32 (file, name, base + info->offset, info->ndim,
                                      info->shape, error);
      /* A NaN or infinity in a weight (a damaged file, or data shifted by
       * a header length off by one) would load and sample black images. */
      if (ok)
        {
          gsize len = info->numel;
          gsize bad = ddpm_floats_find_nonfinite (base + info->offset, len);
          if (bad < len)
            {
              g_set_error (error, DDPM_ERROR, DDPM_ERROR_CORRUPT_FILE,
                           _("%s: tensor '%s' holds a NaN or infinity (element %zu): "
                             "the file is damaged"),
                           ddpm_tensor_file_get_display_name (file), name, bad);
              ok = FALSE;
            }
        }
      g_free (name);
      if (!ok)
        return FALSE;
    }
  return TRUE;
}

static gboolean
read_state (const DdpmTensorFile *file, DdpmTrainState *state, GError **error)
{
  guint64 seed[1], t_rng[3], data_rng[3], cursor[1];
  gint64 step[1];
  double losses[2];

  if (!ddpm_tensor_file_read_raw (file, "train.state.step", DDPM_DTYPE_I64, step,
                                  sizeof step, error)
      || !ddpm_tensor_file_read_raw (file, "train.state.seed", DDPM_DTYPE_U64, seed,
                                     sizeof seed, error)
      || !ddpm_tensor_file_read_raw (file, "train.state.t_rng", DDPM_DTYPE_U64, t_rng,
                                     sizeof t_rng, error)
      || !ddpm_tensor_file_read_raw (file, "train.state.data_rng", DDPM_DTYPE_U64,
                                     data_rng, sizeof data_rng, error)
      || !ddpm_tensor_file_read_raw (file, "train.state.data_cursor", DDPM_DTYPE_U64,
                                     cursor, sizeof cursor, error)
      || !ddpm_tensor_file_read_raw (file, "train.state.loss", DDPM_DTYPE_F64, losses,
                                     sizeof losses, error))
    return FALSE;
  if (step[0] < 0)
    {
      g_set_error (error, DDPM_ERROR, DDPM_ERROR_CORRUPT_FILE,
                   _("%s: negative training step %" PRId64),
                   ddpm_tensor_file_get_display_name (file), step[0]);
      return FALSE;
    }
  state->step = step[0];
  state->seed = seed[0];
  state->t_rng.seed = t_rng[0];
  state->t_rng.stream = t_rng[1];
  state->t_rng.counter = t_rng[2];
  state->data.rng.seed = data_rng[0];
  state->data.rng.stream = data_rng[1];
  state->data.rng.counter = data_rng[2];
  state->data.cursor = cursor[0];
  state->loss = losses[0];
  state->loss_ema = losses[1];
  return TRUE;
}

gboolean
ddpm_checkpoint_read (const char        *path,
                      DdpmUNetConfig    *config,
                      DdpmScheduleKind  *schedule,
                      int               *T,
                      const DdpmUNet    *unet,
                      float             *params,
                      float             *adam_m,
                      float             *adam_v,
                      float             *ema,
                      DdpmTrainState    *state,
                      GError           **error)
{
  g_return_val_if_fail (path != NULL && config != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  DdpmTensorFile *file = ddpm_tensor_file_open (path, error);
  gboolean ok = FALSE;

  if (!file)
    return FALSE;
  if (!read_header (file, config, schedule, T, error))
    goto out;
  if (!ddpm_tensor_file_has (file, "train.state.step"))
    {
      g_set_error (error, DDPM_ERROR, DDPM_ERROR_INVALID_ARGUMENT,
                   _("%s: a model file, not a training checkpoint (it has no optimizer "
                     "state); resume from the .ckpt.safetensors file written beside it"),
                   ddpm_tensor_file_get_display_name (file));
      goto out;
    }
  if (unet)
    {
      const DdpmUNetConfig *c = ddpm_unet_get_config (unet);
      if (c->in_channels != config->in_channels || c->ch != config->ch
          || c->n_levels != config->n_levels || c->image_size != config->image_size)
        {
          g_set_error (error, DDPM_ERROR, DDPM_ERROR_INVALID_ARGUMENT,
                       _("%s: the checkpoint's model differs from the network given"),
                       ddpm_tensor_file_get_display_name (file));
          goto out;
        }
      if ((params && !read_weights (file, unet, "train.params.", params, error))
          || (adam_m && !read_weights (file, unet, "train.adam_m.", adam_m, error))
          || (adam_v && !read_weights (file, unet, "train.adam_v.", adam_v, error))
          || (ema && !read_weights (file, unet, "", ema, error)))
        goto out;
    }
  if (state && !read_state (file, state, error))
    goto out;
  ok = TRUE;

out:
  ddpm_tensor_file_free (file);
  return ok;
}

/* Builds the model from an opened file; takes ownership of `file`.
 * `name` is what error messages call the model (its path). */
static DdpmModel *
model_from_file (DdpmTensorFile *file, const char *name, GError **error)
{
  DdpmUNetConfig config;
  DdpmScheduleKind kind;
  int T;
  DdpmModel *model = NULL;

  if (!file)
    return NULL;
  if (!read_header (file, &config, &kind, &T, error))
    goto fail;

  model = g_new0 (DdpmModel, 1);
  model->path = g_strdup (name);
  model->t_buf = g_new (int, MODEL_MAX_BATCH);
  model->y_buf = g_new (int, MODEL_MAX_BATCH);
  model->class_label = -1;
  model->metadata = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  if (!(model->unet = ddpm_unet_new (&config, error))
      || !(model->schedule = ddpm_schedule_new (kind, T, error))
      || !read_weights (file, model->unet, "", ddpm_unet_params (model->unet), error))
    goto fail;
  /* improved-diffusion's --rescale_timesteps: the network saw t·1000/T
   * (its _WrappedModel / _scale_timesteps), for the samplers' denoiser
   * and ddpm_model_forward alike */
  if (config.rescale_timesteps)
    ddpm_unet_set_timestep_scale (model->unet, (float) (1000.0 / T));

  const char **keys = ddpm_tensor_file_list_metadata (file);
  for (int i = 0; keys[i]; i++)
    g_hash_table_insert (model->metadata, g_strdup (keys[i]),
                         g_strdup (ddpm_tensor_file_get_metadata (file, keys[i])));
  g_free (keys);
  ddpm_tensor_file_free (file);
  return model;

fail:
  ddpm_tensor_file_free (file);
  ddpm_model_free (model);
  return NULL;
}

DdpmModel *
ddpm_model_load (const char *path, GError **error)
{
  g_return_val_if_fail (path != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  return model_from_file (ddpm_tensor_file_open (path, error), path, error);
}

DdpmModel *
ddpm_model_load_bytes (GBytes      *bytes,
                       const char  *display_name,
                       GError     **error)
{
  g_return_val_if_fail (bytes != NULL, NULL);
  g_return_val_if_fail (display_name != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  return model_from_file (ddpm_tensor_file_open_bytes_named (bytes, display_name, error),
                          display_name, error);
}

void
ddpm_model_free (DdpmModel *model)
{
  if (!model)
    return;
  ddpm_unet_free (model->unet);
  ddpm_schedule_free (model->schedule);
  if (model->metadata)
    g_hash_table_unref (model->metadata);
  g_free (model->t_buf);
  g_free (model->y_buf);
  g_free (model->out_buf);
  g_free (model->path);
  g_free (model);
}

const DdpmUNetConfig *
ddpm_model_get_config (const DdpmModel *model)
{
  g_return_val_if_fail (model != NULL, NULL);
  return ddpm_unet_get_config (model->unet);
}

const DdpmSchedule *
ddpm_model_get_schedule (const DdpmModel *model)
{
  g_return_val_if_fail (model != NULL, NULL);
  return model->schedule;
}

DdpmUNet *
ddpm_model_get_unet (DdpmModel *model)
{
  g_return_val_if_fail (model != NULL, NULL);
  return model->unet;
}

const char *
ddpm_model_get_metadata (const DdpmModel *model, const char *key)
{
  g_return_val_if_fail (model != NULL && key != NULL, NULL);
  return g_hash_table_lookup (model->metadata, key);
}

/* The DdpmDenoiser adapter: the samplers speak the base schedule's 1-based
 * t; the UNet was trained on t − 1 (the reference code's convention).  v
 * (B, C, H, W) receives a learn_sigma network's second half, or is NULL. */
/* A loaded model's weights do not change: at its first bf16 forward the
 * UNet rounds them to bf16 once and keeps them (unet.c, ≤ 512 MiB),
 * instead of once per call.  Tried once; a caller who writes the weights
 * through ddpm_model_get_unet + ddpm_unet_params drops them for good. */
static void
keep_packs (DdpmModel *model)
{
  if (model->packs_tried || !ddpm_layers_use_bf16 ())
    return;
  model->packs_tried = TRUE;
  ddpm_unet_keep_bf16_packs (model->unet);
}

static gboolean
model_run (float       *eps,
           float       *v,
           const float *x,
           int          B,
           int          C,
           int          H,
           int          W,
           int          t,
           DdpmModel   *model,
           GError     **error)
{
  const DdpmUNetConfig *c = ddpm_unet_get_config (model->unet);
  gsize per_image = (gsize) C * H * W;

  if (C != c->in_channels)
    {
      g_set_error (error, DDPM_ERROR, DDPM_ERROR_INVALID_ARGUMENT,
                   _("%s was trained for %d channel%s (%s), not %d"),
                   model->path, c->in_channels, c->in_channels == 1 ? "" : "s",
                   c->in_channels == 1 ? "grayscale" : c->in_channels == 3 ? "RGB" : "other",
                   C);
      return FALSE;
    }
  if (t < 1 || t > model->schedule->T)
    {
      g_set_error (error, DDPM_ERROR, DDPM_ERROR_INVALID_ARGUMENT,
                   _("Timestep %d is outside the model's 1..%d"), t, model->schedule->T);
      return FALSE;
    }

  /* a learned-variance network also outputs v: run it into a buffer and
   * split it into ε and (when asked for) v */
  const gboolean split = c->out_channels != c->in_channels;
  if (split)
    {
      gsize need = (gsize) MIN (max_batch (model), B) * c->out_channels * H * W;
      if (need > model->out_len)
        {
          g_free (model->out_buf);
          model->out_len = 0;
          model->out_buf = g_try_new (float, need);
          if (model->out_buf == NULL)
            {
              ddpm_set_error_no_memory (error, need * sizeof (float),
                                        _("the network's output"));
              return FALSE;
            }
          model->out_len = need;
        }
    }

  ddpm_parallel_set_threads (model->threads);
  keep_packs (model);
  for (int b0 = 0; b0 < B; b0 += max_batch (model))
    {
      int nb = MIN (max_batch (model), B - b0);
      float *out = split ? model->out_buf : eps + b0 * per_image;

      for (int b = 0; b < nb; b++)
        {
          model->t_buf[b] = t - 1;
          model->y_buf[b] = model->class_label;
        }
      if (!ddpm_unet_forward_class (model->unet, out, x + b0 * per_image, model->t_buf,
                                    c->num_classes > 0 && model->class_label >= 0
                                    ? model->y_buf : NULL,
                                    nb, H, W, FALSE, 0, error))
        return FALSE;
      for (int b = 0; split && b < nb; b++)
        {
          const float *image_out = out + (gsize) b * c->out_channels * H * W;

          memcpy (eps + (b0 + b) * per_image, image_out, per_image * sizeof (float));
          if (v != NULL)
            memcpy (v + (b0 + b) * per_image, image_out + per_image,
                    per_image * sizeof (float));
        }
    }
  return TRUE;
}

static gboolean
model_denoise (float       *eps,
               const float *x,
               int          B,
               int          C,
               int          H,
               int          W,
               int          t,
               gpointer     user_data,
               GError     **error)
{
  return model_run (eps, NULL, x, B, C, H, W, t, user_data, error);
}

/* A learn_sigma network's ε and v (Nichol & Dhariwal 2021, eq. 15). */
static gboolean
model_denoise_v (float       *eps,
                 float       *v,
                 const float *x,
                 int          B,
                 int          C,
                 int          H,
                 int          W,
                 int          t,
                 gpointer     user_data,
                 GError     **error)
{
  return model_run (eps, v, x, B, C, H, W, t, user_data, error);
}

void
ddpm_model_get_denoiser (DdpmModel    *model,
                         int           threads,
                         DdpmDenoiser *denoiser)
{
  g_return_if_fail (model != NULL && denoiser != NULL);

  model->threads = MAX (threads, 0);
  denoiser->denoise = model_denoise;
  denoiser->user_data = model;
  denoiser->channels = ddpm_unet_get_config (model->unet)->in_channels;
  denoiser->tile_size = ddpm_unet_get_config (model->unet)->image_size;
  denoiser->max_batch = max_batch (model);
  denoiser->denoise_v = ddpm_unet_get_config (model->unet)->learn_sigma
                        ? model_denoise_v : NULL;
}

gboolean
ddpm_model_forward (DdpmModel   *model,
                    float       *out,
                    const float *x,
                    const int   *t,
                    const int   *y,
                    int          B,
                    int          C,
                    int          H,
                    int          W,
                    int          threads,
                    GError     **error)
{
  g_return_val_if_fail (model != NULL && out != NULL && x != NULL && t != NULL, FALSE);

  const DdpmUNetConfig *c = ddpm_unet_get_config (model->unet);
  const gsize in_image = (gsize) C * H * W, out_image = (gsize) c->out_channels * H * W;

  if (C != c->in_channels)
    {
      g_set_error (error, DDPM_ERROR, DDPM_ERROR_INVALID_ARGUMENT,
                   _("%s takes %d channels, not %d."), model->path, c->in_channels, C);
      return FALSE;
    }
  /* labels for a network without a label embedding would be ignored:
   * say so rather than return an output that only looks conditioned */
  if (y != NULL && c->num_classes == 0)
    {
      g_set_error (error, DDPM_ERROR, DDPM_ERROR_INVALID_ARGUMENT,
                   _("%s is not class-conditional: it takes no class label."), model->path);
      return FALSE;
    }
  for (int b = 0; b < B; b++)
    if (t[b] < 0 || t[b] >= model->schedule->T)
      {
        g_set_error (error, DDPM_ERROR, DDPM_ERROR_INVALID_ARGUMENT,
                     _("Timestep %d is outside the model's 0..%d."), t[b],
                     model->schedule->T - 1);
        return FALSE;
      }
  ddpm_parallel_set_threads (MAX (threads, 0));
  keep_packs (model);
  /* one image at a time: bounded activations whatever B */
  for (int b = 0; b < B; b++)
    if (!ddpm_unet_forward_class (model->unet, out + b * out_image, x + b * in_image, t + b,
                                  y != NULL ? y + b : NULL, 1, H, W, FALSE, 0, error))
      return FALSE;
  return TRUE;
}

gboolean
ddpm_model_set_class (DdpmModel *model, int label, GError **error)
{
  g_return_val_if_fail (model != NULL, FALSE);

  const int n = ddpm_unet_get_config (model->unet)->num_classes;
  if (label < -1)
    {
      g_set_error (error, DDPM_ERROR, DDPM_ERROR_INVALID_ARGUMENT,
                   _("Class label %d is not a class: give one from 0 up, or -1 "
                     "for none."), label);
      return FALSE;
    }
  if (label >= 0 && n == 0)
    {
      g_set_error (error, DDPM_ERROR, DDPM_ERROR_INVALID_ARGUMENT,
                   _("%s is not class-conditional: it takes no class label."), model->path);
      return FALSE;
    }
  if (label >= n && n > 0)
    {
      g_set_error (error, DDPM_ERROR, DDPM_ERROR_INVALID_ARGUMENT,
                   _("Class label %d is outside the model's 0 to %d."), label, n - 1);
      return FALSE;
    }
  model->class_label = label;
  return TRUE;
}

char *
ddpm_model_default_path (void)
{
  const char *dir = g_getenv ("DDPM_MODEL_DIR");

  if (dir && *dir)
    return g_build_filename (dir, "default.safetensors", NULL);
  return g_build_filename (DDPM_MODELDIR, "default.safetensors", NULL);
}
