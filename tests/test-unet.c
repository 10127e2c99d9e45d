/* test-unet.c: the DDPM UNet against PyTorch and against itself.
 *
 * - parameter counts of the presets, as the reference
 *   ../shared/bench/torch_unet.py --params-only prints them;
 * - forward output, every parameter gradient and ∂L/∂x compared with
 *   PyTorch (float64) dumps made by tests/make-unet-fixtures.py, for two
 *   configurations the presets do not cover (attention at the top level;
 *   one input channel with three levels);
 * - central finite differences of the whole network, dropout on;
 * - batch independence, layout reuse across sizes, the initialisation.
 */
#include <math.h>
#include <string.h>

#include "ddpm.h"
#include "unet.h"

/* ------------------------------------------------------------ fixtures */

/* The weight generator of make-unet-fixtures.py. */
static guint64
splitmix64 (guint64 z)
{
  z += G_GUINT64_CONSTANT (0x9E3779B97F4A7C15);
  z = (z ^ (z >> 30)) * G_GUINT64_CONSTANT (0xBF58476D1CE4E5B9);
  z = (z ^ (z >> 27)) * G_GUINT64_CONSTANT (0x94D049BB133111EB);
  return z ^ (z >> 31);
}

typedef struct
{
  char   *name;
  int     ndim;
  gint64  shape[4];
  gsize   numel;
  double  offset, bound;
  float  *grad;
} FixTensor;

typedef struct
{
  DdpmUNetConfig config;
  int        B, H, W;
  guint64    seed;
  int        n_tensors;
  FixTensor *tensors;
  int       *t;
  float     *x, *dout, *out, *dx;
} Fixture;

typedef struct
{
  const guint8 *p, *end;
} Reader;

static const void *
take (Reader *r, gsize n)
{
  const void *at = r->p;

  g_assert_cmpuint ((gsize) (r->end - r->p), >=, n);
  r->p += n;
  return at;
}

static gint32
read_i32 (Reader *r)
{
  gint32 v;
  memcpy (&v, take (r, 4), 4);
  return GINT32_FROM_LE (v);
}

static guint32
read_u32 (Reader *r)
{
  return (guint32) read_i32 (r);
}

static double
read_f64 (Reader *r)
{
  guint64 v;
  double d;
  memcpy (&v, take (r, 8), 8);
  v = GUINT64_FROM_LE (v);
  memcpy (&d, &v, 8);
  return d;
}

static float
read_f32 (Reader *r)
{
  guint32 v = read_u32 (r);
  float f;
  memcpy (&f, &v, 4);
  return f;
}

static float *
read_f32_array (Reader *r, gsize n)
{
  float *a = g_new (float, n);
  for (gsize i = 0; i < n; i++)
    a[i] = read_f32 (r);
  return a;
}

static Fixture *
fixture_load (const char *basename)
{
  char *path = g_test_build_filename (G_TEST_DIST, "fixtures", basename, NULL);
  char *data;
  gsize len;
  GError *error = NULL;
  Fixture *f = g_new0 (Fixture, 1);
  DdpmUNetConfig *c = &f->config;

  g_file_get_contents (path, &data, &len, &error);
  g_assert_no_error (error);
  Reader r = { (const guint8 *) data, (const guint8 *) data + len };

  g_assert_cmpmem (take (&r, 8), 8, "DDPMUNF1", 8);
  c->in_channels = read_i32 (&r);
  c->out_channels = read_i32 (&r);
  c->ch = read_i32 (&r);
  c->n_levels = read_i32 (&r);
  for (int i = 0; i < DDPM_MAX_LEVELS; i++)
    c->ch_mult[i] = read_i32 (&r);
  c->num_res_blocks = read_i32 (&r);
  c->n_attn = read_i32 (&r);
  for (int i = 0; i < DDPM_MAX_LEVELS; i++)
    c->attn_resolutions[i] = read_i32 (&r);
  c->image_size = read_i32 (&r);
  f->B = read_i32 (&r);
  f->H = f->W = read_i32 (&r);
  c->dropout = read_f32 (&r);
  f->seed = (guint64) read_u32 (&r);
  f->seed |= (guint64) read_u32 (&r) << 32;
  f->n_tensors = read_i32 (&r);
  f->tensors = g_new0 (FixTensor, f->n_tensors);
  for (int j = 0; j < f->n_tensors; j++)
    {
      FixTensor *t = &f->tensors[j];
      guint32 nl = read_u32 (&r);

      t->name = g_strndup (take (&r, nl), nl);
      t->ndim = read_i32 (&r);
      t->numel = 1;
      for (int d = 0; d < 4; d++)
        {
          t->shape[d] = read_u32 (&r);
          if (d < t->ndim)
            t->numel *= t->shape[d];
        }
      t->offset = read_f64 (&r);
      t->bound = read_f64 (&r);
      float scale = read_f32 (&r);
      const guint8 *q = take (&r, 2 * t->numel);
      t->grad = g_new (float, t->numel);
      for (gsize i = 0; i < t->numel; i++)
        {
          gint16 v = (gint16) GUINT16_FROM_LE ((guint16) (q[2 * i] | q[2 * i + 1] << 8));
          t->grad[i] = (float) ((double) v * scale / 32767.0);
        }
    }
  const gsize nx = (gsize) f->B * c->in_channels * f->H * f->W;
  const gsize ny = (gsize) f->B * c->out_channels * f->H * f->W;
  f->t = g_new (int, f->B);
  for (int b = 0; b < f->B; b++)
    f->t[b] = read_i32 (&r);
  f->x = read_f32_array (&r, nx);
  f->dout = read_f32_array (&r, ny);
  f->out = read_f32_array (&r, ny);
  f->dx = read_f32_array (&r, nx);
  g_assert_true (r.p == r.end);
  g_free (data);
  g_free (path);
  return f;
}

static void
fixture_free (Fixture *f)
{
  for (int j = 0; j < f->n_tensors; j++)
    {
      g_free (f->tensors[j].name);
      g_free (f->tensors[j].grad);
    }
  g_free (f->tensors);
  g_free (f->t);
  g_free (f->x);
  g_free (f->dout);
  g_free (f->out);
  g_free (f->dx);
  g_free (f);
}

/* max |a − b| / max (max |b|, floor), and max |a − b|. */
static double
compare (const float *a, const float *b, gsize n, double floor, double *max_abs)
{
  double err = 0, mag = floor;

  for (gsize i = 0; i < n; i++)
    {
      err = MAX (err, fabs ((double) a[i] - b[i]));
      mag = MAX (mag, fabs ((double) b[i]));
    }
  *max_abs = err;
  return mag > 0 ? err / mag : err;
}

/* Tolerances, relative to the largest magnitude of the expected tensor:
 * float32 against float64; the gradients also carry the fixture's 16-bit
 * quantisation (≤ 1.6e-5). */
#define TOL_OUT 1e-4
#define TOL_GRAD 1e-3

static void
check_against_pytorch (const char *basename)
{
  Fixture *f = fixture_load (basename);
  GError *error = NULL;
  DdpmUNet *u = ddpm_unet_new (&f->config, &error);
  const gsize ny = (gsize) f->B * f->config.out_channels * f->H * f->W;
  const gsize nx = (gsize) f->B * f->config.in_channels * f->H * f->W;
  float *out = g_new (float, ny);
  double abs_err, rel;

  g_assert_no_error (error);

  /* the same tensors, in the same order, with the same shapes */
  g_assert_cmpint (ddpm_unet_n_tensors (u), ==, f->n_tensors);
  float *params = ddpm_unet_params (u);
  for (int j = 0; j < f->n_tensors; j++)
    {
      const FixTensor *t = &f->tensors[j];
      const DdpmParamInfo *info = ddpm_unet_tensor (u, j);

      g_assert_cmpstr (info->name, ==, t->name);
      g_assert_cmpint (info->ndim, ==, t->ndim);
      for (int d = 0; d < t->ndim; d++)
        g_assert_cmpint (info->shape[d], ==, t->shape[d]);
      g_assert_cmpuint (info->numel, ==, t->numel);
      for (gsize i = 0; i < t->numel; i++)
        {
          guint64 z = splitmix64 (f->seed + ((guint64) j << 32) + i);
          double uu = (double) (z >> 40) / (double) (1 << 24);
          params[info->offset + i] = (float) (t->offset + t->bound * (2.0 * uu - 1.0));
        }
    }

  g_assert_true (ddpm_unet_forward (u, out, f->x, f->t, f->B, f->H, f->W, TRUE, 0, &error));
  g_assert_no_error (error);
  rel = compare (out, f->out, ny, 0, &abs_err);
  g_test_message ("%s out: max abs %.3g, max rel %.3g", basename, abs_err, rel);
  g_assert_cmpfloat (rel, <, TOL_OUT);

  ddpm_unet_zero_grads (u);
  ddpm_unet_backward (u, f->dout);
  rel = compare (ddpm_unet_input_grad (u), f->dx, nx, 0, &abs_err);
  g_test_message ("%s dx: max abs %.3g, max rel %.3g", basename, abs_err, rel);
  g_assert_cmpfloat (rel, <, TOL_GRAD);

  /* Some gradients are exactly zero in exact arithmetic: a per-channel
   * constant added just before a GroupNorm with one channel per group
   * (conv1.bias, time_emb_proj at 32 channels), or to every key (key.bias:
   * softmax is shift-invariant).  Float32 leaves ~1e-7 there, so errors
   * are measured against at least 1% of the largest gradient anywhere. */
  double global = 0;
  for (int j = 0; j < f->n_tensors; j++)
    for (gsize i = 0; i < f->tensors[j].numel; i++)
      global = MAX (global, fabs (f->tensors[j].grad[i]));
  const float *grads = ddpm_unet_grads (u);
  double worst = 0;
  const char *worst_name = "";
  int n_bad = 0;
  for (int j = 0; j < f->n_tensors; j++)
    {
      const FixTensor *t = &f->tensors[j];
      const DdpmParamInfo *info = ddpm_unet_tensor (u, j);

      rel = compare (grads + info->offset, t->grad, t->numel, 1e-2 * global, &abs_err);
      g_test_message ("%s grad %s: max abs %.3g, max rel %.3g",
                      basename, t->name, abs_err, rel);
      if (rel > worst)
        {
          worst = rel;
          worst_name = t->name;
        }
      if (rel >= TOL_GRAD)
        {
          g_test_message ("FAILED: %s", t->name);
          n_bad++;
        }
    }
  g_assert_cmpint (n_bad, ==, 0);
  g_test_message ("%s: worst gradient %s, rel %.3g", basename, worst_name, worst);

  /* the inference forward agrees with the training one (no dropout) */
  float *out2 = g_new (float, ny);
  g_assert_true (ddpm_unet_forward (u, out2, f->x, f->t, f->B, f->H, f->W, FALSE, 0, &error));
  g_assert_cmpmem (out2, ny * sizeof (float), out, ny * sizeof (float));

  g_free (out2);
  g_free (out);
  ddpm_unet_free (u);
  fixture_free (f);
}

static void
test_pytorch_attn_top (void)
{
  check_against_pytorch ("unet-attn-top.bin");
}

static void
test_pytorch_gray (void)
{
  check_against_pytorch ("unet-gray.bin");
}

/* -------------------------------------------------------------- config */

static void
test_presets (void)
{
  /* ../shared/bench/torch_unet.py --params-only */
  const struct { const char *name; int channels; gsize n; } cases[] = {
    { "tiny", 3, 1113955 },
    { "small", 3, 8952067 },
    { "cifar", 3, 35746307 },
    /* conv_in and conv_out shrink: 2·32·9 + (2·32·9 + 2) fewer */
    { "tiny", 1, 1112801 },
  };

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      DdpmUNetConfig c;
      GError *error = NULL;

      g_assert_true (ddpm_unet_config_from_preset (cases[i].name, cases[i].channels, &c, &error));
      g_assert_no_error (error);
      g_assert_cmpuint (ddpm_unet_config_n_params (&c), ==, cases[i].n);

      DdpmUNet *u = ddpm_unet_new (&c, &error);
      g_assert_no_error (error);
      g_assert_cmpuint (ddpm_unet_n_params (u), ==, cases[i].n);
      /* the table tiles the parameter array exactly */
      gsize next = 0;
      for (int j = 0; j < ddpm_unet_n_tensors (u); j++)
        {
          const DdpmParamInfo *t = ddpm_unet_tensor (u, j);
          gsize numel = 1;
          g_assert_cmpuint (t->offset, ==, next);
          for (int d = 0; d < t->ndim; d++)
            numel *= t->shape[d];
          g_assert_cmpuint (t->numel, ==, numel);
          next += numel;
          g_assert_cmpint (ddpm_unet_find_tensor (u, t->name), ==, j);
        }
      g_assert_cmpuint (next, ==, cases[i].n);
      ddpm_unet_free (u);
    }

  DdpmUNetConfig c;
  GError *error = NULL;
  g_assert_false (ddpm_unet_config_from_preset ("huge", 3, &c, &error));
  g_assert_error (error, DDPM_ERROR, DDPM_ERROR_INVALID_ARGUMENT);
  g_assert_nonnull (strstr (error->message, "tiny"));
  g_clear_error (&error);
}

/* diffusers names and shapes of the tiny preset (ch 32, [1, 2, 2], one
 * block, attention at 8 = level 2), spot-checked by hand. */
static void
test_names (void)
{
  const struct { const char *name; int ndim; gint64 shape[4]; } cases[] = {
    { "time_embedding.linear_1.weight", 2, { 128, 32 } },
    { "time_embedding.linear_2.bias", 1, { 128 } },
    { "conv_in.weight", 4, { 32, 3, 3, 3 } },
    { "down_blocks.0.resnets.0.conv1.weight", 4, { 32, 32, 3, 3 } },
    { "down_blocks.0.downsamplers.0.conv.weight", 4, { 32, 32, 3, 3 } },
    { "down_blocks.1.resnets.0.conv_shortcut.weight", 4, { 64, 32, 1, 1 } },
    { "down_blocks.1.resnets.0.time_emb_proj.weight", 2, { 64, 128 } },
    { "down_blocks.2.attentions.0.group_norm.weight", 1, { 64 } },
    { "down_blocks.2.attentions.0.query.weight", 2, { 64, 64 } },
    { "down_blocks.2.attentions.0.proj_attn.bias", 1, { 64 } },
    { "mid_block.resnets.1.norm2.bias", 1, { 64 } },
    { "mid_block.attentions.0.value.weight", 2, { 64, 64 } },
    { "up_blocks.0.resnets.0.conv1.weight", 4, { 64, 128, 3, 3 } },
    { "up_blocks.0.attentions.1.key.weight", 2, { 64, 64 } },
    { "up_blocks.0.upsamplers.0.conv.weight", 4, { 64, 64, 3, 3 } },
    { "up_blocks.2.resnets.0.conv1.weight", 4, { 32, 96, 3, 3 } },
    { "up_blocks.2.resnets.1.conv_shortcut.weight", 4, { 32, 64, 1, 1 } },
    { "conv_norm_out.weight", 1, { 32 } },
    { "conv_out.weight", 4, { 3, 32, 3, 3 } },
  };
  const char *absent[] = {
    "down_blocks.2.downsamplers.0.conv.weight",  /* none after the last level */
    "up_blocks.2.upsamplers.0.conv.weight",      /* none at level 0 */
    "down_blocks.0.attentions.0.query.weight",   /* attention only at level 2 */
    "down_blocks.0.resnets.0.conv_shortcut.weight",
  };
  DdpmUNetConfig c;
  DdpmUNet *u;

  ddpm_unet_config_from_preset ("tiny", 3, &c, NULL);
  u = ddpm_unet_new (&c, NULL);
  g_assert_cmpstr (ddpm_unet_tensor (u, 0)->name, ==, "time_embedding.linear_1.weight");
  g_assert_cmpstr (ddpm_unet_tensor (u, ddpm_unet_n_tensors (u) - 1)->name, ==, "conv_out.bias");
  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      int j = ddpm_unet_find_tensor (u, cases[i].name);
      g_assert_cmpint (j, >=, 0);
      const DdpmParamInfo *t = ddpm_unet_tensor (u, j);
      g_assert_cmpint (t->ndim, ==, cases[i].ndim);
      for (int d = 0; d < t->ndim; d++)
        g_assert_cmpint (t->shape[d], ==, cases[i].shape[d]);
    }
  for (gsize i = 0; i < G_N_ELEMENTS (absent); i++)
    g_assert_cmpint (ddpm_unet_find_tensor (u, absent[i]), ==, -1);
  ddpm_unet_free (u);
}

/* Training at another size keeps attention at the same depth level, so the
 * configuration stays valid and its parameter count does not change. */
static void
test_set_image_size (void)
{
  DdpmUNetConfig config;
  GError *error = NULL;
  gsize n32;

  g_assert_true (ddpm_unet_config_from_preset ("tiny", 3, &config, NULL));
  n32 = ddpm_unet_config_n_params (&config);
  ddpm_unet_config_set_image_size (&config, 64);
  g_assert_cmpint (config.image_size, ==, 64);
  g_assert_cmpint (config.attn_resolutions[0], ==, 16);   /* level 2: 64 / 2² */
  g_assert_true (ddpm_unet_config_validate (&config, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (ddpm_unet_config_n_params (&config), ==, n32);
  ddpm_unet_config_set_image_size (&config, 16);
  g_assert_cmpint (config.attn_resolutions[0], ==, 4);
  g_assert_true (ddpm_unet_config_validate (&config, NULL));
}

static void
test_validate (void)
{
  DdpmUNetConfig good, c;
  GError *error = NULL;

  g_assert_true (ddpm_unet_config_from_preset ("small", 1, &good, NULL));
  g_assert_true (ddpm_unet_config_validate (&good, NULL));

#define EXPECT_BAD(field_expr, word) \
  G_STMT_START { \
    c = good; \
    field_expr; \
    g_assert_false (ddpm_unet_config_validate (&c, &error)); \
    g_assert_error (error, DDPM_ERROR, DDPM_ERROR_INVALID_ARGUMENT); \
    g_assert_nonnull (strstr (error->message, word)); \
    g_clear_error (&error); \
    g_assert_cmpuint (ddpm_unet_config_n_params (&c), ==, 0); \
    g_assert_null (ddpm_unet_new (&c, &error)); \
    g_clear_error (&error); \
  } G_STMT_END

  EXPECT_BAD (c.in_channels = 0, "in_channels");
  EXPECT_BAD (c.out_channels = -1, "out_channels");
  EXPECT_BAD (c.ch = 48, "ch");
  EXPECT_BAD (c.n_levels = 0, "n_levels");
  EXPECT_BAD (c.n_levels = DDPM_MAX_LEVELS + 1, "n_levels");
  EXPECT_BAD (c.ch_mult[2] = 0, "ch_mult[2]");
  EXPECT_BAD (c.num_res_blocks = 0, "num_res_blocks");
  EXPECT_BAD (c.image_size = 20, "image_size");
  EXPECT_BAD (c.attn_resolutions[0] = 12, "attn_resolutions[0]");
  EXPECT_BAD (c.attn_resolutions[0] = 2, "attn_resolutions[0]");  /* level 4 of 4 */
  EXPECT_BAD (c.n_attn = -1, "n_attn");
  EXPECT_BAD (c.dropout = 1.0f, "dropout");
  EXPECT_BAD (c.dropout = NAN, "dropout");
#undef EXPECT_BAD
}

/* --------------------------------------------------------- self checks */

/* ch 32, [1, 2], one block, attention at level 1, dropout: small enough
 * for finite differences. */
static DdpmUNet *
random_net (const DdpmUNetConfig *c, guint64 seed)
{
  DdpmUNet *u = ddpm_unet_new (c, NULL);

  g_assert_nonnull (u);
  /* random weights with every layer live (no zero init), scaled so that
   * activations stay O(1) */
  ddpm_unet_init (u, seed);
  float *p = ddpm_unet_params (u);
  for (int j = 0; j < ddpm_unet_n_tensors (u); j++)
    {
      const DdpmParamInfo *t = ddpm_unet_tensor (u, j);
      gboolean is_norm = strstr (t->name, "norm") != NULL;
      double bound = is_norm ? 0.2 : t->ndim == 1 ? 0.1 : sqrt (3.0 * t->shape[0] / t->numel);
      double offset = is_norm && g_str_has_suffix (t->name, ".weight") ? 1.0 : 0.0;
      for (gsize i = 0; i < t->numel; i++)
        p[t->offset + i] = (float) (offset + bound * (2 * ddpm_rng_uniform (seed, 1000 + j, i) - 1));
    }
  return u;
}

static DdpmUNet *
small_net (float dropout, guint64 seed)
{
  DdpmUNetConfig c = { 0 };

  c.in_channels = 2;
  c.out_channels = 2;
  c.ch = 32;
  c.n_levels = 2;
  c.ch_mult[0] = 1;
  c.ch_mult[1] = 2;
  c.num_res_blocks = 1;
  c.n_attn = 1;
  c.attn_resolutions[0] = 4;
  c.image_size = 8;
  c.dropout = dropout;
  return random_net (&c, seed);
}

static double
loss_hw (DdpmUNet *u, const float *x, const int *t, const float *r, int B, int H, int W,
         guint64 dseed)
{
  const gsize ny = (gsize) B * ddpm_unet_get_config (u)->out_channels * H * W;
  float *out = g_new (float, ny);
  double l = 0;

  g_assert_true (ddpm_unet_forward (u, out, x, t, B, H, W, TRUE, dseed, NULL));
  for (gsize i = 0; i < ny; i++)
    l += (double) out[i] * r[i];
  g_free (out);
  return l;
}

static double
loss (DdpmUNet *u, const float *x, const int *t, const float *r, int B, int S, guint64 dseed)
{
  return loss_hw (u, x, t, r, B, S, S, dseed);
}

/* Central differences (L(θ+h) − L(θ−h))/2h of L = Σ out·r, for the
 * parameter of largest gradient in each of a set of tensors covering every
 * kind of layer, and for a few input pixels; dropout 0.3 with a fixed seed
 * (the mask is a function of the seed, so both sides see the same one). */
static void
test_finite_differences (void)
{
  const int B = 2, S = 8, t[2] = { 5, 700 };
  const guint64 dseed = 99;
  DdpmUNet *u = small_net (0.3f, 7);
  const gsize nx = (gsize) B * 2 * S * S;
  float *x = g_new (float, nx), *r = g_new (float, nx), *out = g_new (float, nx);
  const char *names[] = {
    "time_embedding.linear_1.weight", "time_embedding.linear_2.bias", "conv_in.weight",
    "down_blocks.0.resnets.0.norm1.weight", "down_blocks.0.resnets.0.conv1.weight",
    "down_blocks.1.resnets.0.time_emb_proj.weight", "down_blocks.0.resnets.0.norm2.bias",
    "down_blocks.0.resnets.0.conv2.weight", "down_blocks.0.downsamplers.0.conv.weight",
    "down_blocks.1.resnets.0.conv_shortcut.weight", "down_blocks.1.attentions.0.query.weight",
    "down_blocks.1.attentions.0.key.weight", "down_blocks.1.attentions.0.value.bias",
    "mid_block.attentions.0.proj_attn.weight", "mid_block.resnets.1.conv2.bias",
    "up_blocks.0.resnets.1.conv1.weight", "up_blocks.0.attentions.1.group_norm.weight",
    "up_blocks.0.upsamplers.0.conv.weight", "up_blocks.1.resnets.0.conv_shortcut.bias",
    "conv_norm_out.weight", "conv_out.weight",
  };

  ddpm_rng_normal_fill (x, nx, 3, 0, 0);
  ddpm_rng_normal_fill (r, nx, 3, 1, 0);
  g_assert_true (ddpm_unet_forward (u, out, x, t, B, S, S, TRUE, dseed, NULL));
  ddpm_unet_zero_grads (u);
  ddpm_unet_backward (u, r);
  float *grads = g_memdup2 (ddpm_unet_grads (u), ddpm_unet_n_params (u) * sizeof (float));
  float *dx = g_memdup2 (ddpm_unet_input_grad (u), nx * sizeof (float));
  float *p = ddpm_unet_params (u);

  /* backward accumulates into the gradients (and may run again on the
   * same forward), and overwrites ∂L/∂x */
  ddpm_unet_backward (u, r);
  const float *twice = ddpm_unet_grads (u);
  float gmax = 0;
  for (gsize i = 0; i < ddpm_unet_n_params (u); i++)
    gmax = MAX (gmax, fabsf (grads[i]));
  for (gsize i = 0; i < ddpm_unet_n_params (u); i++)  /* to rounding: sums reassociate */
    g_assert_cmpfloat (fabsf (twice[i] - 2 * grads[i]), <=, 1e-5f * fabsf (grads[i]) + 1e-7f * gmax);
  g_assert_cmpmem (ddpm_unet_input_grad (u), nx * sizeof (float), dx, nx * sizeof (float));

  for (gsize k = 0; k < G_N_ELEMENTS (names); k++)
    {
      int j = ddpm_unet_find_tensor (u, names[k]);
      g_assert_cmpint (j, >=, 0);
      const DdpmParamInfo *info = ddpm_unet_tensor (u, j);
      gsize at = info->offset;
      for (gsize i = 0; i < info->numel; i++)
        if (fabsf (grads[info->offset + i]) > fabsf (grads[at]))
          at = info->offset + i;

      const float saved = p[at];
      const float h = 1e-2f * MAX (1.0f, fabsf (saved));
      p[at] = saved + h;
      double lp = loss (u, x, t, r, B, S, dseed);
      p[at] = saved - h;
      double lm = loss (u, x, t, r, B, S, dseed);
      p[at] = saved;
      double fd = (lp - lm) / (2.0 * ((double) (saved + h) - saved));
      g_test_message ("%s[%" G_GSIZE_FORMAT "]: analytic %.6g, numeric %.6g",
                      names[k], at - info->offset, grads[at], fd);
      g_assert_cmpfloat (fabs (fd - grads[at]), <, 2e-2 * fabs (grads[at]) + 2e-3);
    }

  /* ∂L/∂x at the largest entry and a corner (zero padding) */
  gsize at = 0;
  for (gsize i = 0; i < nx; i++)
    if (fabsf (dx[i]) > fabsf (dx[at]))
      at = i;
  const gsize pixels[] = { at, 0, nx - 1 };
  for (gsize k = 0; k < G_N_ELEMENTS (pixels); k++)
    {
      gsize i = pixels[k];
      const float saved = x[i], h = 1e-2f;
      x[i] = saved + h;
      double lp = loss (u, x, t, r, B, S, dseed);
      x[i] = saved - h;
      double lm = loss (u, x, t, r, B, S, dseed);
      x[i] = saved;
      double fd = (lp - lm) / (2.0 * ((double) (saved + h) - saved));
      g_test_message ("x[%" G_GSIZE_FORMAT "]: analytic %.6g, numeric %.6g", i, dx[i], fd);
      g_assert_cmpfloat (fabs (fd - dx[i]), <, 2e-2 * fabs (dx[i]) + 2e-3);
    }

  /* a different dropout seed drops different units: the loss changes */
  g_assert_cmpfloat (fabs (loss (u, x, t, r, B, S, dseed) - loss (u, x, t, r, B, S, dseed + 1)),
                     >, 1e-3);

  g_free (grads);
  g_free (dx);
  g_free (x);
  g_free (r);
  g_free (out);
  ddpm_unet_free (u);
}

/* Shapes the fixtures do not cover: one level, two blocks per level,
 * attention at two levels, more output than input channels, wide and tall
 * images.  Central differences on ∂L/∂x at the largest entry and on the
 * largest gradient of the first conv and of the attention's value. */
static void
test_configs (void)
{
  const struct
  {
    int in, out, n_levels, mult[3], nrb, n_attn, attn[2], image, B, H, W;
    float dropout;
  } cases[] = {
    { 1, 1, 1, { 1 }, 1, 1, { 4 }, 4, 1, 4, 4, 0.0f },
    { 3, 6, 2, { 1, 1 }, 2, 2, { 8, 4 }, 8, 2, 8, 16, 0.2f },
    { 2, 2, 3, { 2, 1, 2 }, 1, 1, { 4 }, 16, 1, 12, 4, 0.0f },
  };

  for (gsize k = 0; k < G_N_ELEMENTS (cases); k++)
    {
      DdpmUNetConfig c = { 0 };
      const int t[2] = { 17, 400 };

      c.in_channels = cases[k].in;
      c.out_channels = cases[k].out;
      c.ch = 32;
      c.n_levels = cases[k].n_levels;
      for (int l = 0; l < c.n_levels; l++)
        c.ch_mult[l] = cases[k].mult[l];
      c.num_res_blocks = cases[k].nrb;
      c.n_attn = cases[k].n_attn;
      for (int a = 0; a < c.n_attn; a++)
        c.attn_resolutions[a] = cases[k].attn[a];
      c.image_size = cases[k].image;
      c.dropout = cases[k].dropout;

      DdpmUNet *u = random_net (&c, 100 + k);
      const int B = cases[k].B, H = cases[k].H, W = cases[k].W;
      const gsize nx = (gsize) B * c.in_channels * H * W, ny = (gsize) B * c.out_channels * H * W;
      float *x = g_new (float, nx), *r = g_new (float, ny), *out = g_new (float, ny);

      ddpm_rng_normal_fill (x, nx, 4, k, 0);
      ddpm_rng_normal_fill (r, ny, 5, k, 0);
      g_assert_true (ddpm_unet_forward (u, out, x, t, B, H, W, TRUE, 1, NULL));
      ddpm_unet_zero_grads (u);
      ddpm_unet_backward (u, r);
      float *dx = g_memdup2 (ddpm_unet_input_grad (u), nx * sizeof (float));
      float *grads = g_memdup2 (ddpm_unet_grads (u), ddpm_unet_n_params (u) * sizeof (float));

      gsize at = 0;
      for (gsize i = 0; i < nx; i++)
        if (fabsf (dx[i]) > fabsf (dx[at]))
          at = i;
      const float saved = x[at], h = 1e-2f;
      x[at] = saved + h;
      double lp = loss_hw (u, x, t, r, B, H, W, 1);
      x[at] = saved - h;
      double lm = loss_hw (u, x, t, r, B, H, W, 1);
      x[at] = saved;
      double fd = (lp - lm) / (2.0 * ((double) (saved + h) - saved));
      g_test_message ("case %" G_GSIZE_FORMAT " x[%" G_GSIZE_FORMAT "]: analytic %.6g, numeric %.6g",
                      k, at, dx[at], fd);
      g_assert_cmpfloat (fabs (fd - dx[at]), <, 2e-2 * fabs (dx[at]) + 2e-3);

      const char *names[] = { "down_blocks.0.resnets.0.conv1.weight",
                              "mid_block.attentions.0.value.weight" };
      float *p = ddpm_unet_params (u);
      for (gsize n = 0; n < G_N_ELEMENTS (names); n++)
        {
          const DdpmParamInfo *info = ddpm_unet_tensor (u, ddpm_unet_find_tensor (u, names[n]));
          gsize j = info->offset;
          for (gsize i = 0; i < info->numel; i++)
            if (fabsf (grads[info->offset + i]) > fabsf (grads[j]))
              j = info->offset + i;
          const float ps = p[j], ph = 1e-2f * MAX (1.0f, fabsf (ps));
          p[j] = ps + ph;
          lp = loss_hw (u, x, t, r, B, H, W, 1);
          p[j] = ps - ph;
          lm = loss_hw (u, x, t, r, B, H, W, 1);
          p[j] = ps;
          fd = (lp - lm) / (2.0 * ((double) (ps + ph) - ps));
          g_test_message ("case %" G_GSIZE_FORMAT " %s: analytic %.6g, numeric %.6g",
                          k, names[n], grads[j], fd);
          g_assert_cmpfloat (fabs (fd - grads[j]), <, 2e-2 * fabs (grads[j]) + 2e-3);
        }
      g_free (dx);
      g_free (grads);
      g_free (x);
      g_free (r);
      g_free (out);
      ddpm_unet_free (u);
    }
}

/* Each image of a batch is computed on its own (GroupNorm is per sample),
 * whatever the batch and the image size seen before: the activation
 * layout is rebuilt and its allocation reused or grown. */
static void
test_batch_and_sizes (void)
{
  DdpmUNet *u = small_net (0.0f, 11);
  const int t[3] = { 0, 999, 321 };
  float *x = g_new (float, 3 * 2 * 16 * 16), *out = g_new (float, 3 * 2 * 16 * 16);
  float *one = g_new (float, 2 * 16 * 16);
  GError *error = NULL;

  ddpm_rng_normal_fill (x, 3 * 2 * 16 * 16, 5, 0, 0);
  for (int S = 8; S <= 16; S += 8)
    {
      const gsize per = (gsize) 2 * S * S;

      g_assert_true (ddpm_unet_forward (u, out, x, t, 3, S, S, FALSE, 0, &error));
      g_assert_no_error (error);
      for (int b = 0; b < 3; b++)
        {
          g_assert_true (ddpm_unet_forward (u, one, x + b * per, t + b, 1, S, S, b == 1, 0, &error));
          for (gsize i = 0; i < per; i++)
            g_assert_cmpfloat (fabsf (one[i] - out[b * per + i]), <=, 1e-5f * (1 + fabsf (one[i])));
        }
    }
  /* back to the first shape, after a larger one */
  float *again = g_new (float, 3 * 2 * 8 * 8);
  g_assert_true (ddpm_unet_forward (u, again, x, t, 3, 8, 8, FALSE, 0, &error));
  g_assert_true (ddpm_unet_forward (u, out, x, t, 3, 16, 16, TRUE, 0, &error));
  g_assert_true (ddpm_unet_forward (u, out, x, t, 3, 8, 8, FALSE, 0, &error));
  g_assert_cmpmem (again, 3 * 2 * 8 * 8 * sizeof (float), out, 3 * 2 * 8 * 8 * sizeof (float));

  /* sizes that do not halve down to the deepest level */
  g_assert_false (ddpm_unet_forward (u, out, x, t, 1, 8, 7, FALSE, 0, &error));
  g_assert_error (error, DDPM_ERROR, DDPM_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);

  g_free (again);
  g_free (x);
  g_free (out);
  g_free (one);
  ddpm_unet_free (u);
}

/* PyTorch's default bounds U(±1/√fan_in), GroupNorm (1, 0), and the zero
 * initialised output layers, so the initial network outputs exactly 0. */
static void
test_init (void)
{
  DdpmUNetConfig c;
  DdpmUNet *u;

  ddpm_unet_config_from_preset ("tiny", 3, &c, NULL);
  u = ddpm_unet_new (&c, NULL);
  ddpm_unet_init (u, 1234);
  const float *p = ddpm_unet_params (u);
  for (int j = 0; j < ddpm_unet_n_tensors (u); j++)
    {
      const DdpmParamInfo *t = ddpm_unet_tensor (u, j);
      const float *v = p + t->offset;
      gboolean weight = g_str_has_suffix (t->name, ".weight");

      if (strstr (t->name, "norm") != NULL)
        {
          for (gsize i = 0; i < t->numel; i++)
            g_assert_cmpfloat (v[i], ==, weight ? 1.0f : 0.0f);
          continue;
        }
      if (strstr (t->name, ".conv2.") || strstr (t->name, ".proj_attn.")
          || g_str_has_prefix (t->name, "conv_out."))
        {
          for (gsize i = 0; i < t->numel; i++)
            g_assert_cmpfloat (v[i], ==, 0.0f);
          continue;
        }
      const DdpmParamInfo *w = weight ? t : ddpm_unet_tensor (u, j - 1);
      double bound = 1.0 / sqrt ((double) w->numel / w->shape[0]);
      double s = 0, s2 = 0;
      for (gsize i = 0; i < t->numel; i++)
        {
          g_assert_cmpfloat (fabs (v[i]), <=, bound);
          s += v[i];
          s2 += (double) v[i] * v[i];
        }
      /* uniform: mean 0, variance bound²/3, checked on the large tensors */
      if (t->numel >= 4096)
        {
          double n = t->numel, var = bound * bound / 3;
          g_assert_cmpfloat (fabs (s / n), <, 5 * sqrt (var / n));
          g_assert_cmpfloat (fabs (s2 / n - var), <, 5 * var * sqrt (0.8 / n));
        }
    }

  const int t[2] = { 3, 40 };
  float x[2 * 3 * 16 * 16], out[2 * 3 * 16 * 16];
  ddpm_rng_normal_fill (x, G_N_ELEMENTS (x), 1, 0, 0);
  g_assert_true (ddpm_unet_forward (u, out, x, t, 2, 16, 16, FALSE, 0, NULL));
  for (gsize i = 0; i < G_N_ELEMENTS (out); i++)
    g_assert_cmpfloat (out[i], ==, 0.0f);
  ddpm_unet_free (u);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/engine/unet/presets", test_presets);
  g_test_add_func ("/engine/unet/names", test_names);
  g_test_add_func ("/engine/unet/validate", test_validate);
  g_test_add_func ("/engine/unet/set-image-size", test_set_image_size);
  g_test_add_func ("/engine/unet/init", test_init);
  g_test_add_func ("/engine/unet/pytorch-attn-top", test_pytorch_attn_top);
  g_test_add_func ("/engine/unet/pytorch-gray", test_pytorch_gray);
  g_test_add_func ("/engine/unet/finite-differences", test_finite_differences);
  g_test_add_func ("/engine/unet/configs", test_configs);
  g_test_add_func ("/engine/unet/batch-and-sizes", test_batch_and_sizes);
  return g_test_run ();
}
