/* test-model.c: model files: a saved model reloads bit for bit and its
 * denoiser gives the UNet's output at t − 1; corrupt, foreign and
 * mismatched files give errors that name the problem; the default path;
 * `ddpm info`. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <glib/gstdio.h>

#include "ddpm.h"
#include "safetensors.h"
#include "train.h"
#include "cli-helpers.h"

static char *tmp_dir;

static char *
tmp_path (const char *name)
{
  return g_build_filename (tmp_dir, name, NULL);
}

static void
small_config (DdpmUNetConfig *c, int channels)
{
  memset (c, 0, sizeof *c);
  c->in_channels = channels;
  c->out_channels = channels;
  c->ch = 32;
  c->n_levels = 2;
  c->ch_mult[0] = 1;
  c->ch_mult[1] = 2;
  c->num_res_blocks = 1;
  c->n_attn = 1;
  c->attn_resolutions[0] = 8;
  c->image_size = 16;
  c->dropout = 0.1f;
}

/* A UNet with every weight non-zero (the init leaves conv_out at zero,
 * which would make every output 0), written to `path`. */
static DdpmUNet *
write_model (const char *path, int channels, guint64 seed, const DdpmTrainState *state)
{
  DdpmUNetConfig c;
  GError *error = NULL;

  small_config (&c, channels);
  DdpmUNet *u = ddpm_unet_new (&c, &error);
  g_assert_no_error (error);
  ddpm_unet_init (u, seed);
  float *p = ddpm_unet_params (u);
  gsize n = ddpm_unet_n_params (u);
  for (gsize i = 0; i < n; i++)
    p[i] += 0.02f * ddpm_rng_normal (seed, 4242, i);
  g_assert_true (ddpm_model_file_write (path, u, p, DDPM_SCHEDULE_COSINE, 500,
                                        NULL, NULL, NULL, state, &error));
  g_assert_no_error (error);
  return u;
}

static void
test_roundtrip (void)
{
  char *path = tmp_path ("round.safetensors");
  DdpmTrainState state = { 0 };
  GError *error = NULL;

  state.step = 42;
  state.loss_ema = 0.25;
  DdpmUNet *u = write_model (path, 3, 11, &state);
  DdpmModel *model = ddpm_model_load (path, &error);
  g_assert_no_error (error);
  g_assert_nonnull (model);

  const DdpmUNetConfig *a = ddpm_unet_get_config (u), *b = ddpm_model_get_config (model);
  g_assert_cmpint (a->in_channels, ==, b->in_channels);
  g_assert_cmpint (a->out_channels, ==, b->out_channels);
  g_assert_cmpint (a->ch, ==, b->ch);
  g_assert_cmpint (a->n_levels, ==, b->n_levels);
  g_assert_cmpint (a->ch_mult[1], ==, b->ch_mult[1]);
  g_assert_cmpint (a->num_res_blocks, ==, b->num_res_blocks);
  g_assert_cmpint (a->n_attn, ==, b->n_attn);
  g_assert_cmpint (a->attn_resolutions[0], ==, b->attn_resolutions[0]);
  g_assert_cmpint (a->image_size, ==, b->image_size);
  g_assert_cmpfloat (a->dropout, ==, b->dropout);
  const DdpmSchedule *s = ddpm_model_get_schedule (model);
  g_assert_cmpint (s->kind, ==, DDPM_SCHEDULE_COSINE);
  g_assert_cmpint (s->T, ==, 500);
  g_assert_cmpstr (ddpm_model_get_metadata (model, "train_steps"), ==, "42");
  g_assert_cmpfloat (g_ascii_strtod (ddpm_model_get_metadata (model, "train_loss"), NULL),
                     ==, 0.25);
  g_assert_cmpstr (ddpm_model_get_metadata (model, "checkpoint"), ==, "false");

  DdpmUNet *v = ddpm_model_get_unet (model);
  gsize n = ddpm_unet_n_params (u);
  g_assert_cmpuint (ddpm_unet_n_params (v), ==, n);
  g_assert_true (memcmp (ddpm_unet_params (u), ddpm_unet_params (v), n * sizeof (float)) == 0);

  /* The denoiser: the UNet at t − 1, bit for bit (same code, same
   * weights, same thread count). */
  DdpmDenoiser den;
  ddpm_model_get_denoiser (model, 1, &den);
  g_assert_cmpint (den.channels, ==, 3);
  g_assert_cmpint (den.tile_size, ==, 16);
  g_assert_cmpint (den.max_batch, >, 0);

  const int B = 2, C = 3, H = 16, W = 16;
  gsize m = (gsize) B * C * H * W;
  float *x = g_new (float, m), *e1 = g_new (float, m), *e2 = g_new (float, m);
  int t[2] = { 499, 499 };
  ddpm_rng_normal_fill (x, m, 3, 0, 0);
  g_assert_true (den.denoise (e1, x, B, C, H, W, 500, den.user_data, &error));
  g_assert_no_error (error);
  g_assert_true (ddpm_unet_forward (u, e2, x, t, B, H, W, FALSE, 0, &error));
  g_assert_true (memcmp (e1, e2, m * sizeof (float)) == 0);
  double norm = 0;
  for (gsize i = 0; i < m; i++)
    norm += fabs (e1[i]);
  g_assert_cmpfloat (norm, >, 0);

  /* …and not at t itself: the time embedding makes them differ. */
  t[0] = t[1] = 500;
  g_assert_true (ddpm_unet_forward (u, e2, x, t, B, H, W, FALSE, 0, &error));
  g_assert_true (memcmp (e1, e2, m * sizeof (float)) != 0);

  /* t outside 1..T and a wrong channel count are errors. */
  g_assert_false (den.denoise (e1, x, B, C, H, W, 0, den.user_data, &error));
  g_assert_error (error, DDPM_ERROR, DDPM_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);
  g_assert_false (den.denoise (e1, x, B, 1, H, W, 10, den.user_data, &error));
  g_assert_error (error, DDPM_ERROR, DDPM_ERROR_INVALID_ARGUMENT);
  g_assert_nonnull (strstr (error->message, "trained for 3 channels"));
  g_clear_error (&error);

  g_free (x);
  g_free (e1);
  g_free (e2);
  ddpm_model_free (model);
  ddpm_unet_free (u);
  g_remove (path);
  g_free (path);
}

/* More images than max_batch: split into several UNet calls, each image
 * with the result it gets alone. */
static void
test_large_batch (void)
{
  char *path = tmp_path ("batch.safetensors");
  GError *error = NULL;
  DdpmUNet *u = write_model (path, 1, 12, NULL);
  DdpmModel *model = ddpm_model_load (path, &error);
  DdpmDenoiser den;

  g_assert_no_error (error);
  ddpm_model_get_denoiser (model, 1, &den);
  const int B = den.max_batch + 3, H = 16, W = 16;
  gsize per = (gsize) H * W;
  float *x = g_new (float, B * per), *all = g_new (float, B * per), *one = g_new (float, per);
  ddpm_rng_normal_fill (x, B * per, 4, 0, 0);
  g_assert_true (den.denoise (all, x, B, 1, H, W, 200, den.user_data, &error));
  g_assert_no_error (error);
  for (int b = 0; b < B; b++)
    {
      g_assert_true (den.denoise (one, x + b * per, 1, 1, H, W, 200, den.user_data, &error));
      for (gsize i = 0; i < per; i++)
        g_assert_cmpfloat_with_epsilon (all[b * per + i], one[i],
                                        1e-5 * (1 + fabs (one[i])));
    }
  g_free (x);
  g_free (all);
  g_free (one);
  ddpm_model_free (model);
  ddpm_unet_free (u);
  g_remove (path);
  g_free (path);
}

/* Copy a safetensors file, dropping tensor `drop` (or NULL) and setting
 * metadata `key` to `value` (NULL value: remove the key). */
static void
rewrite (const char *src, const char *dst, const char *drop, const char *key,
         const char *value)
{
  GError *error = NULL;
  DdpmTensorFile *f = ddpm_tensor_file_open (src, &error);
  DdpmTensorWriter *w = ddpm_tensor_writer_new ();
  GPtrArray *names = ddpm_tensor_file_list (f);
  GPtrArray *buffers = g_ptr_array_new_with_free_func (g_free);
  const char **keys = ddpm_tensor_file_list_metadata (f);

  g_assert_no_error (error);
  for (int i = 0; keys[i]; i++)
    if (!key || strcmp (keys[i], key) != 0)
      ddpm_tensor_writer_set_metadata (w, keys[i], ddpm_tensor_file_get_metadata (f, keys[i]));
  if (key && value)
    ddpm_tensor_writer_set_metadata (w, key, value);
  g_free (keys);

  for (guint i = 0; i < names->len; i++)
    {
      const char *name = g_ptr_array_index (names, i);
      DdpmDtype dtype;
      int ndim;
      gint64 shape[DDPM_TENSOR_MAX_DIMS];
      gsize bytes = ddpm_tensor_file_get_n_bytes (f, name);
      void *buf = g_malloc (MAX (bytes, 1));

      if (drop && strcmp (name, drop) == 0)
        {
          g_free (buf);
          continue;
        }
      g_assert_true (ddpm_tensor_file_get_shape (f, name, &dtype, &ndim, shape));
      g_assert_true (ddpm_tensor_file_read_raw (f, name, dtype, buf, bytes, &error));
      g_ptr_array_add (buffers, buf);
      ddpm_tensor_writer_add (w, name, dtype, buf, ndim, shape);
    }
  g_assert_true (ddpm_tensor_writer_write (w, dst, &error));
  g_assert_no_error (error);
  ddpm_tensor_writer_free (w);
  g_ptr_array_unref (buffers);
  g_ptr_array_unref (names);
  ddpm_tensor_file_free (f);
}

static void
assert_load_fails (const char *path, int code, const char *s1, const char *s2)
{
  GError *error = NULL;
  DdpmModel *model = ddpm_model_load (path, &error);

  g_assert_null (model);
  g_assert_error (error, DDPM_ERROR, code);
  if (g_test_verbose ())
    g_printerr ("%s\n", error->message);
  g_assert_nonnull (strstr (error->message, s1));
  if (s2)
    g_assert_nonnull (strstr (error->message, s2));
  g_error_free (error);
}

static void
test_errors (void)
{
  char *good = tmp_path ("good.safetensors");
  char *bad = tmp_path ("bad.safetensors");
  GError *error = NULL;
  DdpmUNet *u = write_model (good, 1, 13, NULL);

  /* Missing file. */
  char *missing = tmp_path ("missing.safetensors");
  assert_load_fails (missing, DDPM_ERROR_IO, "missing.safetensors", NULL);
  g_free (missing);

  /* Garbage, and a truncated real file. */
  g_assert_true (g_file_set_contents (bad, "this is not a model at all, really", -1, NULL));
  assert_load_fails (bad, DDPM_ERROR_CORRUPT_FILE, "bad.safetensors", NULL);
  gchar *data;
  gsize len;
  g_assert_true (g_file_get_contents (good, &data, &len, NULL));
  g_assert_true (g_file_set_contents (bad, data, len / 2, NULL));
  assert_load_fails (bad, DDPM_ERROR_CORRUPT_FILE, "bad.safetensors", NULL);
  g_free (data);

  /* A foreign safetensors file: valid, but no model metadata. */
  DdpmTensorWriter *w = ddpm_tensor_writer_new ();
  static const float foo[2] = { 1, 2 };
  static const gint64 two[1] = { 2 };
  ddpm_tensor_writer_add (w, "foo", DDPM_DTYPE_F32, foo, 1, two);
  g_assert_true (ddpm_tensor_writer_write (w, bad, &error));
  ddpm_tensor_writer_free (w);
  assert_load_fails (bad, DDPM_ERROR_UNSUPPORTED, "not a GIMP DDPM model", "bad.safetensors");

  /* A missing tensor, named. */
  rewrite (good, bad, "conv_in.weight", NULL, NULL);
  assert_load_fails (bad, DDPM_ERROR_CORRUPT_FILE, "tensor 'conv_in.weight' missing",
                     "bad.safetensors");

  /* Metadata that disagrees with the tensors: 3 channels claimed for
   * weights trained on 1. */
  rewrite (good, bad, NULL, "in_channels", "3");
  assert_load_fails (bad, DDPM_ERROR_CORRUPT_FILE, "was trained for 1 channel", NULL);

  /* A wider network claimed: the first tensor whose shape differs is
   * named. */
  rewrite (good, bad, NULL, "ch", "64");
  assert_load_fails (bad, DDPM_ERROR_CORRUPT_FILE, "bad.safetensors", "weight");

  /* Bad metadata values. */
  rewrite (good, bad, NULL, "ch_mult", "1,x");
  assert_load_fails (bad, DDPM_ERROR_CORRUPT_FILE, "ch_mult", NULL);
  rewrite (good, bad, NULL, "ch", "33");
  assert_load_fails (bad, DDPM_ERROR_CORRUPT_FILE, "bad model configuration", NULL);
  rewrite (good, bad, NULL, "schedule", "wiggly");
  assert_load_fails (bad, DDPM_ERROR_CORRUPT_FILE, "schedule", NULL);
  rewrite (good, bad, NULL, "T", NULL);
  assert_load_fails (bad, DDPM_ERROR_CORRUPT_FILE, "“T”", NULL);
  rewrite (good, bad, NULL, "format_version", "999");
  assert_load_fails (bad, DDPM_ERROR_UNSUPPORTED, "newer", NULL);

  /* NaN or infinity in the weights (a damaged file; data shifted by a
   * byte): refused, naming the file and the tensor, instead of loading a
   * model that samples black images. */
  {
    gchar *bytes;
    gsize n_bytes;
    guint64 header_len = 0;
    static const guint32 nan_bits = 0x7fc00000u, inf_bits = 0x7f800000u;

    g_assert_true (g_file_get_contents (good, &bytes, &n_bytes, NULL));
    for (int k = 0; k < 8; k++)
      header_len |= (guint64) (guint8) bytes[k] << (8 * k);
    g_assert_cmpuint (8 + header_len + 4, <=, n_bytes);
    memcpy (bytes + n_bytes - 4, &nan_bits, 4);     /* the last tensor's last float */
    g_assert_true (g_file_set_contents (bad, bytes, n_bytes, NULL));
    assert_load_fails (bad, DDPM_ERROR_CORRUPT_FILE, "NaN or infinity", "bad.safetensors");
    g_free (bytes);
    g_assert_true (g_file_get_contents (good, &bytes, &n_bytes, NULL));
    memcpy (bytes + 8 + header_len, &inf_bits, 4);  /* the first tensor's first float */
    g_assert_true (g_file_set_contents (bad, bytes, n_bytes, NULL));
    assert_load_fails (bad, DDPM_ERROR_CORRUPT_FILE, "tensor '", "bad.safetensors");
    g_free (bytes);
  }

  /* A model file is not a checkpoint. */
  DdpmUNetConfig c;
  DdpmScheduleKind kind;
  int T;
  g_assert_false (ddpm_checkpoint_read (good, &c, &kind, &T, NULL, NULL, NULL, NULL, NULL,
                                        NULL, &error));
  g_assert_nonnull (strstr (error->message, "not a training checkpoint"));
  g_clear_error (&error);

  ddpm_unet_free (u);
  g_remove (good);
  g_remove (bad);
  g_free (good);
  g_free (bad);
}

static void
test_default_path (void)
{
  char *saved = g_strdup (g_getenv ("DDPM_MODEL_DIR"));
  char *path;

  g_setenv ("DDPM_MODEL_DIR", "/opt/models", TRUE);
  path = ddpm_model_default_path ();
  g_assert_cmpstr (path, ==, "/opt/models/default.safetensors");
  g_free (path);

  g_unsetenv ("DDPM_MODEL_DIR");
  path = ddpm_model_default_path ();
  g_assert_true (g_path_is_absolute (path));
  g_assert_true (g_str_has_suffix (path, "/models/default.safetensors"));
  g_free (path);

  if (saved)
    g_setenv ("DDPM_MODEL_DIR", saved, TRUE);
  g_free (saved);
}

static void
test_checkpoint_path (void)
{
  char *p = ddpm_train_checkpoint_path ("/a/b.safetensors");
  g_assert_cmpstr (p, ==, "/a/b.ckpt.safetensors");
  g_free (p);
  p = ddpm_train_checkpoint_path ("model.bin");
  g_assert_cmpstr (p, ==, "model.bin.ckpt");
  g_free (p);
}

static void
test_cli_info (void)
{
  char *out, *err;
  int status;

  /* The acceptance check. */
  status = cli_test_run_capture (&out, &err, "info", "--preset", "tiny", NULL);
  g_assert_cmpint (status, ==, 0);
  g_assert_nonnull (strstr (out, "parameters: 1113955\n"));
  g_assert_nonnull (strstr (out, "schedule: linear\n"));
  g_assert_nonnull (strstr (out, "T: 1000\n"));
  g_assert_nonnull (strstr (out, "ch_mult: 1,2,2\n"));
  g_free (out);
  g_free (err);

  /* One input and output channel instead of three: conv_in loses
   * 2·32·9 weights, conv_out 2·32·9 weights and 2 biases. */
  status = cli_test_run_capture (&out, &err, "info", "--preset", "tiny", "--channels", "1", NULL);
  g_assert_cmpint (status, ==, 0);
  char *expected = g_strdup_printf ("parameters: %d\n", 1113955 - 2 * 32 * 9 * 2 - 2);
  g_assert_nonnull (strstr (out, expected));
  g_free (expected);
  g_free (out);
  g_free (err);

  /* A model file. */
  char *path = tmp_path ("info.safetensors");
  DdpmUNet *u = write_model (path, 1, 14, NULL);
  status = cli_test_run_capture (&out, &err, "info", path, NULL);
  g_assert_cmpint (status, ==, 0);
  char *params = g_strdup_printf ("parameters: %" G_GSIZE_FORMAT "\n", ddpm_unet_n_params (u));
  g_assert_nonnull (strstr (out, params));
  g_assert_nonnull (strstr (out, "schedule: cosine\n"));
  g_assert_nonnull (strstr (out, "T: 500\n"));
  g_assert_nonnull (strstr (out, "in_channels: 1\n"));
  g_free (params);
  g_free (out);
  g_free (err);
  ddpm_unet_free (u);
  g_remove (path);
  g_free (path);

  /* Failures: exit 1; bad arguments: exit 2. */
  status = cli_test_run_capture (&out, &err, "info", "/nonexistent/model.safetensors", NULL);
  g_assert_cmpint (status, ==, 1);
  g_assert_nonnull (strstr (err, "model.safetensors"));
  g_free (out);
  g_free (err);
  status = cli_test_run_capture (&out, &err, "info", NULL);
  g_assert_cmpint (status, ==, 2);
  g_free (out);
  g_free (err);
  status = cli_test_run_capture (&out, &err, "info", "--preset", "enormous", NULL);
  g_assert_cmpint (status, ==, 2);
  g_assert_nonnull (strstr (err, "enormous"));
  g_free (out);
  g_free (err);
  status = cli_test_run_capture (&out, &err, "info", "--preset", "tiny", "--channels", "4", NULL);
  g_assert_cmpint (status, ==, 2);
  g_free (out);
  g_free (err);
}

/* The model the project ships (models/default.safetensors) is what the
 * plug-in uses with no model chosen: it must load, be what models/README.md
 * says (tiny, 64×64 tiles, cosine schedule, T = 1000, ≤ 30 MB), and denoise
 * a real photo.  A 64×64 crop of the bundled photo (held out from training)
 * gets noise σ = 25/255; 5 DDIM steps must win back well over half of what
 * models/README.md measured on the held-out crops (+12.9 dB): an untrained
 * or broken model gains nothing or loses. */
static void
test_shipped_default (void)
{
  const char *src = g_getenv ("G_TEST_SRCDIR");
  char *path = g_build_filename (src, "..", "models", "default.safetensors", NULL);
  char *photo = g_build_filename (src, "..", "data", "fresh-flower.png", NULL);
  GStatBuf st;
  GError *error = NULL;

  g_assert_cmpint (g_stat (path, &st), ==, 0);
  g_assert_cmpint (st.st_size, <=, 30 * 1024 * 1024);

  DdpmModel *model = ddpm_model_load (path, &error);
  g_assert_no_error (error);
  const DdpmUNetConfig *config = ddpm_model_get_config (model);
  const DdpmSchedule *schedule = ddpm_model_get_schedule (model);
  g_assert_cmpint (config->in_channels, ==, 3);
  g_assert_cmpint (config->image_size, ==, 64);
  g_assert_cmpint (config->ch, ==, 32);
  g_assert_cmpint (schedule->kind, ==, DDPM_SCHEDULE_COSINE);
  g_assert_cmpint (schedule->T, ==, 1000);

  DdpmImage *image = ddpm_image_load (photo, &error);
  g_assert_no_error (error);
  g_assert_cmpint (image->channels, ==, 3);
  const int C = 3, S = 64, x0 = (image->width - S) / 2, y0 = (image->height - S) / 2;
  const gsize n = (gsize) C * S * S;
  const double sigma = 25.0 / 255;
  float *clean = g_new (float, n), *noisy = g_new (float, n);

  ddpm_rng_normal_fill (noisy, n, 7, 0, 0);
  for (int c = 0; c < C; c++)
    for (int y = 0; y < S; y++)
      for (int x = 0; x < S; x++)
        {
          const gsize i = ((gsize) c * S + y) * S + x;
          const float v = image->pixels[((gsize) c * image->height + y0 + y) * image->width
                                        + x0 + x];

          /* [0, 1] → [−1, 1], where the noise is 2σ */
          clean[i] = 2 * v - 1;
          noisy[i] = (float) (clean[i] + 2 * sigma * noisy[i]);
        }

  DdpmDenoiser denoiser;
  DdpmSampleParams params;
  float *out = g_memdup2 (noisy, n * sizeof (float));

  ddpm_model_get_denoiser (model, 0, &denoiser);
  ddpm_sample_params_init (&params);
  params.steps = 5;
  params.seed = 1;
  g_assert_true (ddpm_denoise (out, NULL, C, S, S, schedule, &denoiser, sigma, &params, &error));
  g_assert_no_error (error);

  /* PSNR on [0, 1] pixels: the [−1, 1] errors halved. */
  double mse_noisy = 0, mse_out = 0;
  for (gsize i = 0; i < n; i++)
    {
      mse_noisy += (noisy[i] - clean[i]) * (double) (noisy[i] - clean[i]) / (4.0 * n);
      mse_out += (out[i] - clean[i]) * (double) (out[i] - clean[i]) / (4.0 * n);
    }
  double gain = 10 * log10 (mse_noisy / mse_out);
  g_test_message ("shipped model: PSNR %.2f -> %.2f dB (%+.2f)",
                  -10 * log10 (mse_noisy), -10 * log10 (mse_out), gain);
  g_assert_cmpfloat (gain, >, 7.0);

  g_free (out);
  g_free (noisy);
  g_free (clean);
  ddpm_image_free (image);
  ddpm_model_free (model);
  g_free (photo);
  g_free (path);
}

int
main (int argc, char **argv)
{
  GError *error = NULL;
  int status;

  g_test_init (&argc, &argv, NULL);
  tmp_dir = g_dir_make_tmp ("ddpm-model-XXXXXX", &error);
  g_assert_no_error (error);
  g_test_add_func ("/engine/model/roundtrip", test_roundtrip);
  g_test_add_func ("/engine/model/large-batch", test_large_batch);
  g_test_add_func ("/engine/model/errors", test_errors);
  g_test_add_func ("/engine/model/default-path", test_default_path);
  g_test_add_func ("/engine/model/checkpoint-path", test_checkpoint_path);
  g_test_add_func ("/engine/model/cli-info", test_cli_info);
  g_test_add_func ("/engine/model/shipped-default", test_shipped_default);
  status = g_test_run ();
  g_rmdir (tmp_dir);
  g_free (tmp_dir);
  return status;
}
