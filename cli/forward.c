/* forward.c: `ddpm forward M.safetensors --input x.npy --t T[,T…] [--class N[,N…]]
 * --out out.npy`: the network's raw output on a batch, for checking an
 * import against the reference code (which is fed the same arrays) and for
 * debugging.
 *
 * The arrays are NumPy .npy files (format 1.0–3.0), float32 little-endian
 * in C order, shaped (B, C, H, W) — np.save(path, x.astype('<f4')) writes
 * one; the output is (B, out_channels, H, W): ε, then for a learn_sigma
 * model the variance interpolation v.  T is the 0-based diffusion timestep,
 * as guided-diffusion's code feeds it (a model imported with
 * --rescale_timesteps True is given T·1000/T_train, as upstream's wrapper
 * does); one value for every image or one per image. */
#include <stdio.h>
#include <string.h>

#include "ddpm.h"
#include "cli.h"

#define NPY_MAGIC "\x93NUMPY"

/* A (B, C, H, W) float32 array from a .npy file; *data newly allocated. */
static gboolean
npy_read (const char *path, int shape[4], float **data, GError **error)
{
  char *bytes = NULL;
  gsize len = 0, header_len, offset;

  if (!g_file_get_contents (path, &bytes, &len, error))
    return FALSE;
#define BAD(...) \
  G_STMT_START { \
    g_set_error (error, DDPM_ERROR, DDPM_ERROR_INVALID_ARGUMENT, __VA_ARGS__); \
    g_free (bytes); \
    return FALSE; \
  } G_STMT_END
  if (len < 10 || memcmp (bytes, NPY_MAGIC, 6) != 0)
    BAD ("%s: not a NumPy .npy file", path);
  if (bytes[6] == 1)
    {
      header_len = (guint8) bytes[8] | (gsize) (guint8) bytes[9] << 8;
      offset = 10;
    }
  else if ((bytes[6] == 2 || bytes[6] == 3) && len >= 12)
    {
      header_len = (guint8) bytes[8] | (gsize) (guint8) bytes[9] << 8
                   | (gsize) (guint8) bytes[10] << 16 | (gsize) (guint8) bytes[11] << 24;
      offset = 12;
    }
  else
    BAD ("%s: .npy format version %d is not read", path, bytes[6]);
  if (header_len > len - offset)
    BAD ("%s: truncated .npy header", path);

  char *header = g_strndup (bytes + offset, header_len);
  const char *descr = strstr (header, "'descr'");
  const char *order = strstr (header, "'fortran_order'");
  const char *sh = strstr (header, "'shape'");
  gboolean ok = descr && order && sh
                && (strncmp (strchr (descr + 7, '\''), "'<f4'", 5) == 0)
                && strstr (order, "False") != NULL;
  int n = 0;
  if (ok)
    {
      const char *p = strchr (sh, '(');
      ok = p != NULL;
      while (ok && n < 5)
        {
          gint64 v;
          char *end;
          p++;
          while (*p == ' ')
            p++;
          if (*p == ')')
            break;
          v = g_ascii_strtoll (p, &end, 10);
          ok = end != p && v >= 1 && v <= 1 << 20;
          if (ok && n < 4)
            shape[n] = (int) v;
          n++;
          p = end;
          while (*p == ' ')
            p++;
          ok = ok && (*p == ',' || *p == ')');
          if (*p == ')')
            break;
        }
    }
  g_free (header);
  if (!ok || n != 4)
    BAD ("%s: expected a float32 ('<f4') C-order array of 4 dimensions (B, C, H, W)", path);
  gsize count = (gsize) shape[0] * shape[1] * shape[2] * shape[3];
  if (count > ((gsize) 1 << 30) || len - offset - header_len != count * sizeof (float))
    BAD ("%s: the data is not the %d×%d×%d×%d floats the header says", path, shape[0],
         shape[1], shape[2], shape[3]);
#undef BAD
  *data = g_new (float, count);
  memcpy (*data, bytes + offset + header_len, count * sizeof (float));
  g_free (bytes);
  return TRUE;
}

/* Write (B, C, H, W) float32 as .npy 1.0 (header padded to 64 bytes). */
static gboolean
npy_write (const char *path, const int shape[4], const float *data, GError **error)
{
  char *dict = g_strdup_printf ("{'descr': '<f4', 'fortran_order': False, "
                                "'shape': (%d, %d, %d, %d), }",
                                shape[0], shape[1], shape[2], shape[3]);
  gsize hl = strlen (dict) + 1, total = 10 + hl;
  gsize pad = (64 - total % 64) % 64;
  gsize count = (gsize) shape[0] * shape[1] * shape[2] * shape[3];
  GString *s = g_string_sized_new (total + pad + count * 4);

  g_string_append_len (s, NPY_MAGIC "\x01\x00", 8);
  g_string_append_c (s, (char) ((hl + pad) & 0xff));
  g_string_append_c (s, (char) ((hl + pad) >> 8));
  g_string_append (s, dict);
  for (gsize i = 0; i < pad; i++)
    g_string_append_c (s, ' ');
  g_string_append_c (s, '\n');
  g_string_append_len (s, (const char *) data, count * sizeof (float));
  gboolean ok = g_file_set_contents (path, s->str, s->len, error);
  g_string_free (s, TRUE);
  g_free (dict);
  return ok;
}

/* "5" or "5,7,…" into n values (one given: every image). */
static gboolean
parse_per_image (const char *what, const char *text, int B, int *out, GError **error)
{
  char **parts = g_strsplit (text, ",", -1);
  int n = (int) g_strv_length (parts);
  gboolean ok = n == 1 || n == B;

  for (int i = 0; ok && i < B; i++)
    {
      gint64 v;
      ok = g_ascii_string_to_signed (g_strstrip (parts[n == 1 ? 0 : i]), 10, 0, G_MAXINT,
                                     &v, NULL);
      out[i] = (int) v;
    }
  g_strfreev (parts);
  if (!ok)
    g_set_error (error, DDPM_ERROR, DDPM_ERROR_INVALID_ARGUMENT,
                 "--%s takes one non-negative integer or one per image (%d), not “%s”",
                 what, B, text);
  return ok;
}

int
cli_forward (int argc, char **argv)
{
  char *input = NULL, *output = NULL, *t_text = NULL, *class_text = NULL;
  int threads = 0;
  const GOptionEntry entries[] = {
    { "input", 'i', 0, G_OPTION_ARG_FILENAME, &input, "input batch (B, C, H, W) .npy", "FILE" },
    { "t", 0, 0, G_OPTION_ARG_STRING, &t_text,
      "0-based timestep(s), one or one per image", "T[,T…]" },
    { "class", 0, 0, G_OPTION_ARG_STRING, &class_text,
      "class label(s) of a class-conditional model", "N[,N…]" },
    { "out", 'o', 0, G_OPTION_ARG_FILENAME, &output, "output .npy", "FILE" },
    { "threads", 0, 0, G_OPTION_ARG_INT, &threads, "threads (default: all cores)", "N" },
    { NULL }
  };
  GOptionContext *context = g_option_context_new ("MODEL.safetensors");
  GError *error = NULL;
  DdpmModel *model = NULL;
  float *x = NULL, *y = NULL;
  int *t = NULL, *labels = NULL, shape[4], out_shape[4];
  int code = CLI_EXIT_FAILURE;

  g_option_context_set_summary (context, "The network's raw output on a batch of images.");
  g_option_context_add_main_entries (context, entries, NULL);
  if (!cli_parse (context, "forward", &argc, &argv))
    {
      code = CLI_EXIT_USAGE;
      goto out;
    }
  if (argc != 2 || input == NULL || output == NULL || t_text == NULL)
    {
      code = cli_fail ("forward", CLI_EXIT_USAGE,
                       "expected MODEL, --input, --t and --out");
      goto out;
    }
  if (!npy_read (input, shape, &x, &error))
    goto fail;
  t = g_new (int, shape[0]);
  if (!parse_per_image ("t", t_text, shape[0], t, &error))
    goto fail;
  if (class_text != NULL)
    {
      labels = g_new (int, shape[0]);
      if (!parse_per_image ("class", class_text, shape[0], labels, &error))
        goto fail;
    }
  if (!(model = ddpm_model_load (argv[1], &error)))
    goto fail;
  memcpy (out_shape, shape, sizeof shape);
  out_shape[1] = ddpm_model_get_config (model)->out_channels;
  y = g_try_new (float, (gsize) out_shape[0] * out_shape[1] * out_shape[2] * out_shape[3]);
  if (y == NULL)
    {
      g_set_error (&error, DDPM_ERROR, DDPM_ERROR_NO_MEMORY, "not enough memory for the output");
      goto fail;
    }
  if (!ddpm_model_forward (model, y, x, t, labels, shape[0], shape[1], shape[2], shape[3],
                           threads, &error)
      || !npy_write (output, out_shape, y, &error))
    goto fail;
  code = CLI_EXIT_OK;
  goto out;

fail:
  code = cli_fail ("forward", error->code == DDPM_ERROR_INVALID_ARGUMENT ? CLI_EXIT_USAGE
                                                                        : CLI_EXIT_FAILURE,
                   "%s", error->message);
  g_error_free (error);
out:
  ddpm_model_free (model);
  g_free (x);
  g_free (y);
  g_free (t);
  g_free (labels);
  g_free (input);
  g_free (output);
  g_free (t_text);
  g_free (class_text);
  g_option_context_free (context);
  return code;
}
