/* test-adm.c: published guided-diffusion (ADM) checkpoints, imported and
 * run, against guided-diffusion's own UNetModel.
 *
 * tests/fixtures/adm/ holds, per configuration, a real torch.save'd
 * state_dict with random weights, the guided-diffusion flags that build
 * it, and the reference network's output on a batch (made by
 * tests/make-adm-fixtures.py, which runs the upstream unet.py).  Each is
 * imported with ddpm_import_guided_diffusion into a model file, loaded as
 * every command loads a model, and run: the output must match to
 * 1e-4 relative (max |ours − theirs| / max |theirs|; both in float32, the
 * difference is summation order).  The configurations cover 3 and 6
 * levels with channel_mult, attention with num_heads, num_head_channels
 * and num_heads_upsample, scale-shift norm on and off, resblock_updown on
 * and off, learn_sigma, class_cond, fp16 weights and --rescale_timesteps
 * (4000 cosine steps, the network fed t·1000/4000).
 *
 * The import errors: a wrong flag names the tensor, both shapes and the
 * flag; a checkpoint with a tensor missing; a pickle that is no state_dict
 * of tensors (one that would run code).
 */
#include "config.h"

#include <math.h>
#include <string.h>

#include <glib/gstdio.h>

#include "ddpm.h"
#include "train.h"
#include "unet.h"

#define TOLERANCE 1e-4

static char *
fixture (const char *name)
{
  return g_test_build_filename (G_TEST_DIST, "fixtures", "adm", name, NULL);
}

static char **
read_flags (const char *name, int *n)
{
  char *base = g_strconcat (name, ".flags", NULL), *path = fixture (base), *text = NULL;
  char **flags;

  g_assert_true (g_file_get_contents (path, &text, NULL, NULL));
  flags = g_strsplit_set (g_strstrip (text), " ", -1);
  *n = (int) g_strv_length (flags);
  g_free (text);
  g_free (path);
  g_free (base);
  return flags;
}

static char *
import (const char *name, const char * const *flags, int n, GError **error)
{
  char *base = g_strconcat (name, ".pt", NULL), *src = fixture (base);
  char *dir = g_dir_make_tmp ("test-adm-XXXXXX", NULL);
  char *out = g_build_filename (dir, "m.safetensors", NULL);
  gboolean ok = ddpm_import_guided_diffusion (src, out, flags, n, error);

  /* a refused import writes nothing: its folder goes (remove_model
   * removes a written one) */
  if (!ok)
    g_assert_cmpint (g_rmdir (dir), ==, 0);
  g_free (dir);
  g_free (src);
  g_free (base);
  if (!ok)
    {
      g_free (out);
      return NULL;
    }
  return out;
}

static void
remove_model (char *path)
{
  char *dir = g_path_get_dirname (path);
  g_unlink (path);
  g_rmdir (dir);
  g_free (dir);
  g_free (path);
}

static void
test_forward (gconstpointer data)
{
  const char *name = data;
  GError *error = NULL;
  int n;
  char **flags = read_flags (name, &n);
  char *path = import (name, (const char * const *) flags, n, &error);

  g_assert_no_error (error);
  DdpmModel *model = ddpm_model_load (path, &error);
  g_assert_no_error (error);

  char *base = g_strconcat (name, ".io", NULL), *io_path = fixture (base), *io = NULL;
  gsize len;
  g_assert_true (g_file_get_contents (io_path, &io, &len, NULL));
  gint32 head[4];
  memcpy (head, io, sizeof head);
  const int B = head[0], C = head[1], S = head[2], Co = head[3];
  const gsize nx = (gsize) B * C * S * S, ny = (gsize) B * Co * S * S;
  g_assert_cmpuint (len, ==, sizeof head + 2 * B * sizeof (gint32) + (nx + ny) * sizeof (float));
  int t[8], y[8];
  float *x = g_new (float, nx), *ref = g_new (float, ny), *out = g_new (float, ny);
  const char *p = io + sizeof head;
  for (int b = 0; b < B; b++)
    {
      gint32 v;
      memcpy (&v, p + 4 * b, 4);
      t[b] = v;
      memcpy (&v, p + 4 * (B + b), 4);
      y[b] = v;
    }
  memcpy (x, p + 8 * B, nx * sizeof (float));
  memcpy (ref, p + 8 * B + nx * sizeof (float), ny * sizeof (float));

  const DdpmUNetConfig *c = ddpm_model_get_config (model);
  g_assert_cmpint (c->out_channels, ==, Co);
  /* through the public call `ddpm forward` makes: it applies the
   * model's timestep rescaling */
  g_assert_true (ddpm_model_forward (model, out, x, t, c->num_classes > 0 ? y : NULL, B, C,
                                     S, S, 1, &error));
  g_assert_no_error (error);

  double max_ref = 0, max_err = 0;
  for (gsize i = 0; i < ny; i++)
    {
      max_ref = MAX (max_ref, fabs (ref[i]));
      max_err = MAX (max_err, fabs ((double) out[i] - ref[i]));
    }
  g_test_message ("%s: max |ref| %.4f, max |error| %.3g, relative %.3g", name, max_ref,
                  max_err, max_err / max_ref);
  g_assert_cmpfloat (max_ref, >, 0.1);
  g_assert_cmpfloat (max_err / max_ref, <, TOLERANCE);

  /* the file says what it is: ADM keys, version 2 */
  g_assert_cmpstr (ddpm_model_get_metadata (model, "format_version"), ==, "2");
  g_assert_cmpstr (ddpm_model_get_metadata (model, "style"), ==, "adm");
  g_assert_cmpstr (ddpm_model_get_metadata (model, "rescale_timesteps"), ==,
                   c->rescale_timesteps ? "true" : NULL);
  g_assert_true (c->rescale_timesteps == (strstr (name, "rescale") != NULL));

  g_free (x);
  g_free (ref);
  g_free (out);
  g_free (io);
  g_free (io_path);
  g_free (base);
  ddpm_model_free (model);
  remove_model (path);
  g_strfreev (flags);
}

/* Set flag `name` to `value` in a copy of the flags. */
static char **
with_flag (char **flags, const char *name, const char *value)
{
  char **copy = g_strdupv (flags);
  for (int i = 0; copy[i] != NULL; i++)
    if (strcmp (copy[i], name) == 0 && copy[i + 1] != NULL)
      {
        g_free (copy[i + 1]);
        copy[i + 1] = g_strdup (value);
      }
  return copy;
}

static void
expect_import_error (const char *name, char **flags, const char *const *needles)
{
  GError *error = NULL;
  char *path = import (name, (const char * const *) flags, (int) g_strv_length (flags),
                       &error);

  g_assert_null (path);
  g_assert_nonnull (error);
  g_test_message ("%s", error->message);
  for (int i = 0; needles[i] != NULL; i++)
    if (strstr (error->message, needles[i]) == NULL)
      g_error ("“%s” not in the error “%s”", needles[i], error->message);
  g_error_free (error);
}

static void
test_wrong_flags (void)
{
  int n;
  char **flags = read_flags ("heads-conv", &n), **bad;

  /* wider network: every shape grows; the first tensor names the channels */
  bad = with_flag (flags, "--num_channels", "64");
  expect_import_error ("heads-conv", bad,
                       (const char *const[]) { "time_embed.0.weight", "[128, 32]",
                                               "[256, 64]", "--num_channels", NULL });
  g_strfreev (bad);
  /* scale-shift: emb_layers twice as wide */
  bad = with_flag (flags, "--use_scale_shift_norm", "True");
  expect_import_error ("heads-conv", bad,
                       (const char *const[]) { "emb_layers.1.weight", "[32, 128]",
                                               "[64, 128]", "--use_scale_shift_norm", NULL });
  g_strfreev (bad);
  /* learn_sigma: six output channels */
  bad = with_flag (flags, "--learn_sigma", "True");
  expect_import_error ("heads-conv", bad,
                       (const char *const[]) { "out.2.weight", "[3, 32, 3, 3]",
                                               "[6, 32, 3, 3]", "--learn_sigma", NULL });
  g_strfreev (bad);
  /* class_cond: a label embedding the file lacks */
  bad = with_flag (flags, "--class_cond", "True");
  expect_import_error ("heads-conv", bad,
                       (const char *const[]) { "label_emb.weight", "--class_cond", NULL });
  g_strfreev (bad);
  /* resblock_updown: a res block where the file has a conv */
  bad = with_flag (flags, "--resblock_updown", "True");
  expect_import_error ("heads-conv", bad,
                       (const char *const[]) { "input_blocks.2.0", "--resblock_updown",
                                               NULL });
  g_strfreev (bad);
  /* attention at one level less: a tensor the flags do not call for */
  bad = with_flag (flags, "--attention_resolutions", "16");
  expect_import_error ("heads-conv", bad,
                       (const char *const[]) { "output_blocks.1.1",
                                               "--attention_resolutions", NULL });
  g_strfreev (bad);
  /* heads that do not divide the channels */
  bad = with_flag (flags, "--num_heads", "5");
  expect_import_error ("heads-conv", bad, (const char *const[]) { "heads", NULL });
  g_strfreev (bad);
  /* unknown flag, bad boolean */
  bad = with_flag (flags, "--num_heads", "2");
  {
    char **more = g_new0 (char *, n + 3);
    for (int i = 0; i < n; i++)
      more[i] = g_strdup (bad[i]);
    more[n] = g_strdup ("--num_head");
    more[n + 1] = g_strdup ("4");
    expect_import_error ("heads-conv", more,
                         (const char *const[]) { "Unknown guided-diffusion flag --num_head",
                                                 NULL });
    g_strfreev (more);
  }
  g_strfreev (bad);
  bad = with_flag (flags, "--class_cond", "maybe");
  expect_import_error ("heads-conv", bad, (const char *const[]) { "--class_cond", "maybe", NULL });
  g_strfreev (bad);
  g_strfreev (flags);
}

static void
test_not_a_state_dict (void)
{
  /* the pickle of test-torch-pickle's evil fixture would run os.system */
  GError *error = NULL;
  char *src = g_test_build_filename (G_TEST_DIST, "fixtures", "torch-evil.pt", NULL);
  char *dir = g_dir_make_tmp ("test-adm-XXXXXX", NULL);
  char *out = g_build_filename (dir, "m.safetensors", NULL);
  const char *flags[] = { "--image_size", "32", "--channel_mult", "1,1,1" };

  g_assert_false (ddpm_import_guided_diffusion (src, out, flags, 4, &error));
  g_assert_error (error, DDPM_ERROR, DDPM_ERROR_UNSUPPORTED);
  g_assert_false (g_file_test (out, G_FILE_TEST_EXISTS));
  g_clear_error (&error);
  /* a state_dict of something else: a tensor the flags call for is missing */
  g_free (src);
  src = g_test_build_filename (G_TEST_DIST, "fixtures", "torch-f32.pt", NULL);
  g_assert_false (ddpm_import_guided_diffusion (src, out, flags, 4, &error));
  g_assert_nonnull (strstr (error->message, "has no tensor"));
  g_assert_false (g_file_test (out, G_FILE_TEST_EXISTS));
  g_clear_error (&error);
  g_rmdir (dir);
  g_free (out);
  g_free (dir);
  g_free (src);
}

int
main (int argc, char **argv)
{
  static const char *const names[] = {
    "heads-conv", "headch-updown-sigma-fp16", "six-levels-class", "updown-noss",
    "rescale-4000",
  };

  g_test_init (&argc, &argv, NULL);
  for (gsize i = 0; i < G_N_ELEMENTS (names); i++)
    {
      char *path = g_strconcat ("/adm/forward/", names[i], NULL);
      g_test_add_data_func (path, names[i], test_forward);
      g_free (path);
    }
  g_test_add_func ("/adm/import/wrong-flags", test_wrong_flags);
  g_test_add_func ("/adm/import/not-a-state-dict", test_not_a_state_dict);
  return g_test_run ();
}
