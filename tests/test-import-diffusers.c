/* test-import-diffusers.c: ddpm_import_diffusers against diffusers itself.
 *
 * The fixtures (tests/make-diffusers-fixtures.py) are real diffusers
 * folders written by diffusers' UNet2DModel.save_config, DDPMScheduler
 * .save_config and torch.save, in the layouts of google/ddpm-cifar10-32
 * (flat folder, the 0.0.4 config keys) and of the google 256² models
 * (6 levels, attention at the fifth; pipeline folder unet/ + scheduler/),
 * scaled down to 32 base channels, with diffusers' forward output on them
 * (run in float64) and its DDPMScheduler.alphas_cumprod.  Each is imported
 * into our model file, loaded back as any model is, and run.
 */
#include <math.h>
#include <string.h>

#include <glib/gstdio.h>

#include "ddpm.h"
#include "safetensors.h"
#include "torch-pickle.h"
#include "train.h"
#include "unet.h"

#include "dir-helpers.h"

/* Our float32 forward against diffusers' float64 one: the largest
 * difference, relative to the largest output. */
#define FORWARD_TOL 1e-4
/* ᾱ_t: diffusers computes β and their product in float32. */
#define ALPHA_BAR_TOL 2e-5

static char *
fixture (const char *name)
{
  return g_test_build_filename (G_TEST_DIST, "fixtures", "diffusers", name, NULL);
}

typedef struct
{
  int     B, C, H, W, C_out;
  int    *t;
  float  *x, *out;
  int     T;
  double *alpha_bar;   /* (T) diffusers' alphas_cumprod[0..T−1] */
} Ref;

static void
ref_free (Ref *r)
{
  g_free (r->t);
  g_free (r->x);
  g_free (r->out);
  g_free (r->alpha_bar);
}

static void
ref_read (Ref *r, const char *name)
{
  char *path = fixture (name);
  char *data;
  gsize len, pos = 8;
  GError *error = NULL;

  g_assert_true (g_file_get_contents (path, &data, &len, &error));
  g_assert_no_error (error);
  g_assert_true (len > 28 && memcmp (data, "DDPMDIF1", 8) == 0);
#define TAKE(dst, bytes) \
  G_STMT_START { g_assert_cmpuint (pos + (bytes), <=, len); \
                 memcpy ((dst), data + pos, (bytes)); pos += (bytes); } G_STMT_END
  int head[5];
  TAKE (head, sizeof head);
  r->B = head[0], r->C = head[1], r->H = head[2], r->W = head[3], r->C_out = head[4];
  gsize nx = (gsize) r->B * r->C * r->H * r->W, ny = (gsize) r->B * r->C_out * r->H * r->W;
  r->t = g_new (int, r->B);
  r->x = g_new (float, nx);
  r->out = g_new (float, ny);
  TAKE (r->t, sizeof (int) * r->B);
  TAKE (r->x, sizeof (float) * nx);
  TAKE (r->out, sizeof (float) * ny);
  TAKE (&r->T, sizeof (int));
  r->alpha_bar = g_new (double, r->T);
  TAKE (r->alpha_bar, sizeof (double) * r->T);
#undef TAKE
  g_assert_cmpuint (pos, ==, len);
  g_free (data);
  g_free (path);
}

/* Load the imported model and compare its forward and schedule with the
 * reference; returns the forward's relative error. */
static double
check_model (const char *model_path, const char *ref_name)
{
  GError *error = NULL;
  Ref r;

  ref_read (&r, ref_name);
  DdpmModel *model = ddpm_model_load (model_path, &error);
  g_assert_no_error (error);

  gsize ny = (gsize) r.B * r.C_out * r.H * r.W;
  float *out = g_new (float, ny);
  g_assert_true (ddpm_unet_forward (ddpm_model_get_unet (model), out, r.x, r.t,
                                    r.B, r.H, r.W, FALSE, 0, &error));
  g_assert_no_error (error);
  double max_ref = 0, max_diff = 0;
  for (gsize i = 0; i < ny; i++)
    {
      max_ref = MAX (max_ref, fabs (r.out[i]));
      max_diff = MAX (max_diff, fabs ((double) out[i] - r.out[i]));
    }
  g_test_message ("%s: max |ours − diffusers| = %.3g, max |out| = %.3g",
                  ref_name, max_diff, max_ref);
  g_assert_cmpfloat (max_ref, >, 0.1);   /* not a vacuous comparison */
  g_assert_cmpfloat (max_diff, <=, FORWARD_TOL * max_ref);

  /* diffusers' alphas_cumprod[i] is ᾱ at our 1-based t = i + 1 */
  const DdpmSchedule *s = ddpm_model_get_schedule (model);
  g_assert_cmpint (s->T, ==, r.T);
  double worst = 0;
  for (int i = 0; i < r.T; i++)
    worst = MAX (worst, fabs (s->alpha_bar[i + 1] - r.alpha_bar[i]) / r.alpha_bar[i]);
  g_test_message ("%s: max relative |ᾱ − diffusers'| = %.3g", ref_name, worst);
  g_assert_cmpfloat (worst, <=, ALPHA_BAR_TOL);

  double rel = max_diff / max_ref;
  g_free (out);
  ddpm_model_free (model);
  ref_free (&r);
  return rel;
}

static char *
tmp_dir (void)
{
  GError *error = NULL;
  char *dir = g_dir_make_tmp ("ddpm-diffusers-XXXXXX", &error);

  g_assert_no_error (error);
  return dir;
}

/* ------------------------------------------------------------------ tests */

static void
test_cifar_bin (void)
{
  char *dir = tmp_dir (), *src = fixture ("cifar");
  char *out = g_build_filename (dir, "m.safetensors", NULL);
  GError *error = NULL;

  g_assert_true (ddpm_import_diffusers (src, out, &error));
  g_assert_no_error (error);

  DdpmModel *model = ddpm_model_load (out, &error);
  g_assert_no_error (error);
  const DdpmUNetConfig *c = ddpm_model_get_config (model);
  g_assert_cmpint (c->ch, ==, 32);
  g_assert_cmpint (c->n_levels, ==, 4);
  g_assert_cmpint (c->ch_mult[0], ==, 1);
  g_assert_cmpint (c->ch_mult[1], ==, 2);
  g_assert_cmpint (c->ch_mult[3], ==, 2);
  g_assert_cmpint (c->num_res_blocks, ==, 2);
  g_assert_cmpint (c->n_attn, ==, 1);
  g_assert_cmpint (c->attn_resolutions[0], ==, 16);
  g_assert_cmpint (c->image_size, ==, 32);
  g_assert_cmpint (ddpm_model_get_schedule (model)->kind, ==, DDPM_SCHEDULE_LINEAR);
  ddpm_model_free (model);

  check_model (out, "cifar.ref");
  test_remove_tree (dir);
  g_free (dir);
  g_free (src);
  g_free (out);
}

/* attention_head_dim 16: diffusers' multi-head attention (4 heads of 16
 * channels at 16×16 and in the mid block) as num_head_channels 16, against
 * diffusers' own forward. */
static void
test_heads (void)
{
  char *dir = tmp_dir (), *src = fixture ("heads");
  char *out = g_build_filename (dir, "m.safetensors", NULL);
  GError *error = NULL;

  g_assert_true (ddpm_import_diffusers (src, out, &error));
  g_assert_no_error (error);

  DdpmModel *model = ddpm_model_load (out, &error);
  g_assert_no_error (error);
  const DdpmUNetConfig *c = ddpm_model_get_config (model);
  g_assert_cmpint (c->num_head_channels, ==, 16);
  g_assert_cmpint (c->style, ==, DDPM_UNET_STYLE_DDPM);
  g_assert_cmpstr (ddpm_model_get_metadata (model, "num_head_channels"), ==, "16");
  ddpm_model_free (model);

  check_model (out, "heads.ref");
  test_remove_tree (dir);
  g_free (dir);
  g_free (src);
  g_free (out);
}

static void
test_l256_pipeline (void)
{
  char *dir = tmp_dir (), *src = fixture ("l256");
  char *out = g_build_filename (dir, "m.safetensors", NULL);
  GError *error = NULL;

  g_assert_true (ddpm_import_diffusers (src, out, &error));
  g_assert_no_error (error);

  DdpmModel *model = ddpm_model_load (out, &error);
  g_assert_no_error (error);
  const DdpmUNetConfig *c = ddpm_model_get_config (model);
  g_assert_cmpint (c->n_levels, ==, 6);
  g_assert_cmpint (c->ch_mult[5], ==, 4);
  g_assert_cmpint (c->n_attn, ==, 1);
  g_assert_cmpint (c->attn_resolutions[0], ==, 4);   /* 64 >> 4 */
  g_assert_cmpint (ddpm_model_get_schedule (model)->kind, ==, DDPM_SCHEDULE_COSINE);
  g_assert_cmpint (ddpm_model_get_schedule (model)->T, ==, 500);
  ddpm_model_free (model);

  check_model (out, "l256.ref");
  test_remove_tree (dir);
  g_free (dir);
  g_free (src);
  g_free (out);
}

/* Copy a file, replacing the first `from` by `to` (both may be NULL). */
static void
copy_replacing (const char *src, const char *dst, const char *from, const char *to)
{
  char *text;
  gsize len;
  GError *error = NULL;

  g_assert_true (g_file_get_contents (src, &text, &len, &error));
  if (from)
    {
      char *at = strstr (text, from);
      g_assert_nonnull (at);
      *at = '\0';
      char *joined = g_strconcat (text, to, at + strlen (from), NULL);
      g_free (text);
      text = joined;
      len = strlen (text);
    }
  g_assert_true (g_file_set_contents (dst, text, (gssize) len, &error));
  g_assert_no_error (error);
  g_free (text);
}

/* A flat copy of the cifar fixture in a new folder, with a replacement in
 * config.json or scheduler_config.json; `weights` FALSE leaves the weights
 * out (the caller writes them). */
static char *
cifar_variant (const char *file, const char *from, const char *to, gboolean weights)
{
  char *dir = tmp_dir ();
  static const char *const files[] =
    { "config.json", "scheduler_config.json", "diffusion_pytorch_model.bin" };

  for (gsize i = 0; i < G_N_ELEMENTS (files); i++)
    {
      if (i == 2 && !weights)
        continue;
      char *name = g_build_filename ("cifar", files[i], NULL);
      char *src = fixture (name);
      char *dst = g_build_filename (dir, files[i], NULL);
      gboolean here = file && strcmp (file, files[i]) == 0;
      copy_replacing (src, dst, here ? from : NULL, here ? to : NULL);
      g_free (name);
      g_free (src);
      g_free (dst);
    }
  return dir;
}

/* The google files' attention names, from diffusers' current ones. */
static char *
old_name (const char *name)
{
  static const char *const renames[][2] = {
    { ".to_q.", ".query." }, { ".to_k.", ".key." },
    { ".to_v.", ".value." }, { ".to_out.0.", ".proj_attn." },
  };

  for (gsize i = 0; i < G_N_ELEMENTS (renames); i++)
    {
      const char *at = strstr (name, renames[i][0]);
      if (at)
        {
          char *head = g_strndup (name, (gsize) (at - name));
          char *out = g_strconcat (head, renames[i][1], at + strlen (renames[i][0]), NULL);
          g_free (head);
          return out;
        }
    }
  return g_strdup (name);
}

/* x rounded to IEEE binary16 (nearest, ties to even), as its bits and,
 * in *value, as a float: written from the format's definition, not from
 * the reader's converter.  The weights here are far below 65504. */
static guint16
to_half (float x, float *value)
{
  const double a = fabs ((double) x);
  guint16 sign = signbit (x) ? 0x8000 : 0, bits;
  double v;

  if (a < 0x1p-14)
    {
      /* subnormal: m·2^−24 (m = 1024 is the smallest normal, bits alike) */
      double m = rint (a * 0x1p24);
      bits = (guint16) m;
      v = ldexp (m, -24);
    }
  else
    {
      int e;
      double f = frexp (a, &e);     /* a = f·2^e, f in [0.5, 1) */
      double m = rint ((2 * f - 1) * 1024);
      e -= 1;                       /* a = (1 + m/1024)·2^e */
      if (m == 1024)
        {
          m = 0;
          e++;
        }
      bits = (guint16) (((e + 15) << 10) | (int) m);
      v = ldexp (1 + m / 1024, e);
    }
  *value = (float) (sign ? -v : v);
  return sign | bits;
}

/* Write the cifar weights as dir/diffusion_pytorch_model.safetensors under
 * the old attention names; `break_name` (if not NULL) gets one element
 * fewer in its last dimension.  F16: every weight as binary16 (diffusers'
 * fp16 files); F32_ROUNDED: the same rounded values as float32. */
typedef enum { WEIGHTS_F32, WEIGHTS_F16, WEIGHTS_F32_ROUNDED } WeightsAs;

static void
write_safetensors_as (const char *dir, const char *break_name, WeightsAs as)
{
  char *bin = fixture ("cifar/diffusion_pytorch_model.bin");
  char *path = g_build_filename (dir, "diffusion_pytorch_model.safetensors", NULL);
  GError *error = NULL;
  DdpmTorchCheckpoint *ckpt = ddpm_torch_checkpoint_open (bin, &error);
  DdpmTensorWriter *writer = ddpm_tensor_writer_new ();
  GPtrArray *keep = g_ptr_array_new_with_free_func (g_free);
  int renamed = 0;

  g_assert_no_error (error);
  for (guint i = 0; i < ddpm_torch_checkpoint_get_n_tensors (ckpt); i++)
    {
      const DdpmTorchTensor *t = ddpm_torch_checkpoint_get_tensor (ckpt, i);
      float *data = g_new (float, t->numel);
      char *name = old_name (t->name);
      gint64 shape[DDPM_TENSOR_MAX_DIMS];

      g_assert_true (ddpm_torch_checkpoint_read_f32 (ckpt, t, data, t->numel, &error));
      memcpy (shape, t->shape, sizeof shape);
      if (break_name && strcmp (name, break_name) == 0)
        shape[t->ndim - 1]--;
      renamed += strcmp (name, t->name) != 0;
      if (as == WEIGHTS_F32)
        ddpm_tensor_writer_add (writer, name, DDPM_DTYPE_F32, data, t->ndim, shape);
      else
        {
          guint16 *half = g_new (guint16, t->numel);
          for (guint64 k = 0; k < t->numel; k++)
            half[k] = GUINT16_TO_LE (to_half (data[k], &data[k]));
          if (as == WEIGHTS_F16)
            ddpm_tensor_writer_add (writer, name, DDPM_DTYPE_F16, half, t->ndim, shape);
          else
            ddpm_tensor_writer_add (writer, name, DDPM_DTYPE_F32, data, t->ndim, shape);
          g_ptr_array_add (keep, half);
        }
      g_ptr_array_add (keep, data);
      g_ptr_array_add (keep, name);
    }
  /* 6 attention blocks (2 down, 1 mid, 3 up) × 8 tensors */
  g_assert_cmpint (renamed, ==, 6 * 8);
  g_assert_true (ddpm_tensor_writer_write (writer, path, &error));
  g_assert_no_error (error);
  ddpm_tensor_writer_free (writer);
  ddpm_torch_checkpoint_free (ckpt);
  g_ptr_array_unref (keep);
  g_free (bin);
  g_free (path);
}

static void
write_safetensors (const char *dir, const char *break_name)
{
  write_safetensors_as (dir, break_name, WEIGHTS_F32);
}

/* An fp16 weights file (the binary16 bits written from the format's
 * definition) imports to exactly the model of a float32 file holding the
 * same rounded values. */
static void
test_cifar_safetensors_f16 (void)
{
  char *dir16 = cifar_variant (NULL, NULL, NULL, FALSE);
  char *dir32 = cifar_variant (NULL, NULL, NULL, FALSE);
  char *out16 = g_build_filename (dir16, "m.safetensors", NULL);
  char *out32 = g_build_filename (dir32, "m.safetensors", NULL);
  GError *error = NULL;

  write_safetensors_as (dir16, NULL, WEIGHTS_F16);
  write_safetensors_as (dir32, NULL, WEIGHTS_F32_ROUNDED);
  g_assert_true (ddpm_import_diffusers (dir16, out16, &error));
  g_assert_no_error (error);
  g_assert_true (ddpm_import_diffusers (dir32, out32, &error));
  g_assert_no_error (error);

  DdpmModel *m16 = ddpm_model_load (out16, &error), *m32 = ddpm_model_load (out32, &error);
  g_assert_no_error (error);
  DdpmUNet *u16 = ddpm_model_get_unet (m16), *u32 = ddpm_model_get_unet (m32);
  gsize n = ddpm_unet_config_n_params (ddpm_model_get_config (m16));
  g_assert_cmpint (memcmp (ddpm_unet_params (u16), ddpm_unet_params (u32), n * sizeof (float)),
                   ==, 0);
  ddpm_model_free (m16);
  ddpm_model_free (m32);
  test_remove_tree (dir16);
  test_remove_tree (dir32);
  g_free (dir16);
  g_free (dir32);
  g_free (out16);
  g_free (out32);
}

static void
test_cifar_safetensors_old_names (void)
{
  char *dir = cifar_variant (NULL, NULL, NULL, FALSE);
  char *out = g_build_filename (dir, "m.safetensors", NULL);
  GError *error = NULL;

  write_safetensors (dir, NULL);
  g_assert_true (ddpm_import_diffusers (dir, out, &error));
  g_assert_no_error (error);
  check_model (out, "cifar.ref");
  test_remove_tree (dir);
  g_free (dir);
  g_free (out);
}

/* Import `dir` expecting failure with `code` and a message containing each
 * of the NULL-terminated strings; a file already at the output path must
 * be left as it was. */
static void
expect_failure (const char *dir, int code, ...)
{
  char *out = g_build_filename (dir, "m.safetensors", NULL);
  GError *error = NULL;
  char *before;
  va_list ap;

  g_assert_true (g_file_set_contents (out, "keep", -1, NULL));
  g_assert_false (ddpm_import_diffusers (dir, out, &error));
  g_assert_nonnull (error);
  g_test_message ("%s", error->message);
  g_assert_error (error, DDPM_ERROR, code);
  va_start (ap, code);
  for (const char *s = va_arg (ap, const char *); s; s = va_arg (ap, const char *))
    if (!strstr (error->message, s))
      g_error ("“%s” not in the error message “%s”", s, error->message);
  va_end (ap);
  g_assert_true (g_file_get_contents (out, &before, NULL, NULL));
  g_assert_cmpstr (before, ==, "keep");
  g_free (before);
  g_error_free (error);
  g_free (out);
}

static void
test_missing_config (void)
{
  char *dir = tmp_dir ();

  expect_failure (dir, DDPM_ERROR_IO, "config.json", NULL);
  test_remove_tree (dir);
  g_free (dir);
}

static void
test_unsupported_fields (void)
{
  static const struct
  {
    const char *file, *from, *to, *expect;
  } cases[] = {
    { "config.json", "\"AttnDownBlock2D\"", "\"CrossAttnDownBlock2D\"", "down_block_types[1]" },
    { "config.json", "\"attention_head_dim\": null", "\"attention_head_dim\": 24",
      "attention_head_dim" },
    /* a missing key means diffusers' default, here not the google value */
    { "config.json", "\"freq_shift\": 1,", "", "freq_shift" },
    { "config.json", "\"downsample_padding\": 0", "\"downsample_padding\": 1",
      "downsample_padding" },
    { "config.json", "\"norm_eps\": 1e-06", "\"norm_eps\": 1e-05", "norm_eps" },
    { "config.json", "\"act_fn\": \"silu\"", "\"act_fn\": \"gelu\"", "act_fn" },
    { "config.json", "\"act_fn\": \"silu\"", "\"act_fn\": \"silu\", \"num_class_embeds\": 10",
      "num_class_embeds" },
    { "config.json", "\"act_fn\": \"silu\"", "\"act_fn\": \"silu\", \"new_option\": 1",
      "new_option" },
    { "config.json", "\"UpBlock2D\",\n    \"UpBlock2D\",\n    \"AttnUpBlock2D\"",
      "\"UpBlock2D\",\n    \"AttnUpBlock2D\",\n    \"UpBlock2D\"", "up_block_types[2]" },
    { "scheduler_config.json", "\"beta_end\": 0.02", "\"beta_end\": 0.03", "beta_end" },
    { "scheduler_config.json", "\"beta_schedule\": \"linear\"",
      "\"beta_schedule\": \"exotic\"", "beta_schedule" },
    { "scheduler_config.json", "\"variance_type\": \"fixed_small\"",
      "\"variance_type\": \"learned_range\"", "variance_type" },
    { "scheduler_config.json", "\"prediction_type\": \"epsilon\"",
      "\"prediction_type\": \"v_prediction\"", "prediction_type" },
  };

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      char *dir = cifar_variant (cases[i].file, cases[i].from, cases[i].to, TRUE);
      expect_failure (dir, DDPM_ERROR_UNSUPPORTED, cases[i].expect, NULL);
      test_remove_tree (dir);
      g_free (dir);
    }
}

static void
test_wrong_shape (void)
{
  char *dir = cifar_variant (NULL, NULL, NULL, FALSE);

  write_safetensors (dir, "down_blocks.1.attentions.0.query.bias");
  expect_failure (dir, DDPM_ERROR_CORRUPT_FILE, "down_blocks.1.attentions.0.query.bias",
                  "(63)", "(64)", NULL);
  test_remove_tree (dir);
  g_free (dir);
}

static void
test_not_a_state_dict (void)
{
  char *dir = cifar_variant (NULL, NULL, NULL, FALSE);
  char *src = fixture ("not-a-state-dict.bin");
  char *dst = g_build_filename (dir, "diffusion_pytorch_model.bin", NULL);

  copy_replacing (src, dst, NULL, NULL);
  expect_failure (dir, DDPM_ERROR_UNSUPPORTED, "diffusion_pytorch_model.bin", NULL);
  test_remove_tree (dir);
  g_free (dir);
  g_free (src);
  g_free (dst);
}

/* google/ddpm-cat-256's config.json and scheduler_config.json as published
 * (diffusers 0.0.4 / 0.1.1 keys; -celebahq-256, -church-256 and
 * -bedroom-256 have the same), and google/ddpm-cifar10-32's UNet in the
 * same keys.  Without their weights the import must get past both
 * configurations and stop only at the missing weights file. */
static const char cat256_config[] =
  "{\"_class_name\": \"UNet2DModel\", \"_diffusers_version\": \"0.0.4\", "
  "\"act_fn\": \"silu\", \"attention_head_dim\": null, "
  "\"block_out_channels\": [128, 128, 256, 256, 512, 512], "
  "\"center_input_sample\": false, "
  "\"down_block_types\": [\"DownBlock2D\", \"DownBlock2D\", \"DownBlock2D\", "
  "\"DownBlock2D\", \"AttnDownBlock2D\", \"DownBlock2D\"], "
  "\"downsample_padding\": 0, \"flip_sin_to_cos\": false, \"freq_shift\": 1, "
  "\"in_channels\": 3, \"layers_per_block\": 2, \"mid_block_scale_factor\": 1, "
  "\"norm_eps\": 1e-06, \"norm_num_groups\": 32, \"out_channels\": 3, "
  "\"sample_size\": 256, \"time_embedding_type\": \"positional\", "
  "\"up_block_types\": [\"UpBlock2D\", \"AttnUpBlock2D\", \"UpBlock2D\", "
  "\"UpBlock2D\", \"UpBlock2D\", \"UpBlock2D\"]}";
static const char cifar32_config[] =
  "{\"_class_name\": \"UNet2DModel\", \"_diffusers_version\": \"0.0.4\", "
  "\"act_fn\": \"silu\", \"attention_head_dim\": null, "
  "\"block_out_channels\": [128, 256, 256, 256], \"center_input_sample\": false, "
  "\"down_block_types\": [\"DownBlock2D\", \"AttnDownBlock2D\", \"DownBlock2D\", "
  "\"DownBlock2D\"], "
  "\"downsample_padding\": 0, \"flip_sin_to_cos\": false, \"freq_shift\": 1, "
  "\"in_channels\": 3, \"layers_per_block\": 2, \"mid_block_scale_factor\": 1, "
  "\"norm_eps\": 1e-06, \"norm_num_groups\": 32, \"out_channels\": 3, "
  "\"sample_size\": 32, \"time_embedding_type\": \"positional\", "
  "\"up_block_types\": [\"UpBlock2D\", \"UpBlock2D\", \"AttnUpBlock2D\", "
  "\"UpBlock2D\"]}";
static const char google_scheduler[] =
  "{\"_class_name\": \"DDPMScheduler\", \"_diffusers_version\": \"0.1.1\", "
  "\"beta_end\": 0.02, \"beta_schedule\": \"linear\", \"beta_start\": 0.0001, "
  "\"clip_sample\": true, \"num_train_timesteps\": 1000, \"trained_betas\": null, "
  "\"variance_type\": \"fixed_small\"}";

static void
test_published_configs (void)
{
  const char *configs[] = { cat256_config, cifar32_config };

  for (gsize i = 0; i < G_N_ELEMENTS (configs); i++)
    {
      char *dir = tmp_dir ();
      char *config = g_build_filename (dir, "config.json", NULL);
      char *sched = g_build_filename (dir, "scheduler_config.json", NULL);

      g_assert_true (g_file_set_contents (config, configs[i], -1, NULL));
      g_assert_true (g_file_set_contents (sched, google_scheduler, -1, NULL));
      expect_failure (dir, DDPM_ERROR_IO, "diffusion_pytorch_model.safetensors", NULL);
      test_remove_tree (dir);
      g_free (dir);
      g_free (config);
      g_free (sched);
    }
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/import-diffusers/cifar-bin", test_cifar_bin);
  g_test_add_func ("/import-diffusers/l256-pipeline", test_l256_pipeline);
  g_test_add_func ("/import-diffusers/heads", test_heads);
  g_test_add_func ("/import-diffusers/cifar-safetensors-f16", test_cifar_safetensors_f16);
  g_test_add_func ("/import-diffusers/cifar-safetensors-old-names",
                   test_cifar_safetensors_old_names);
  g_test_add_func ("/import-diffusers/published-configs", test_published_configs);
  g_test_add_func ("/import-diffusers/error/missing-config", test_missing_config);
  g_test_add_func ("/import-diffusers/error/unsupported-fields", test_unsupported_fields);
  g_test_add_func ("/import-diffusers/error/wrong-shape", test_wrong_shape);
  g_test_add_func ("/import-diffusers/error/not-a-state-dict", test_not_a_state_dict);
  return g_test_run ();
}
