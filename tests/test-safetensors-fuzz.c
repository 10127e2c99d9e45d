/* test-safetensors-fuzz.c: a mutation fuzzer for the model file loader,
 * run as an ordinary test (SQLite/GLib `fuzzing/` style: the driver is
 * plain C, deterministic, and needs no fuzzing engine).
 *
 * It starts from a few valid files and applies random stacks of
 * mutations: bit flips, bytes overwritten with interesting values,
 * truncations, edits of the header length, and JSON splices (numbers
 * swapped for extreme ones, dtype and key names swapped, header pieces
 * deleted, duplicated or taken from another file) with the header length
 * fixed up or not.  Each result is opened with
 * ddpm_tensor_file_open_bytes from an exactly-sized heap buffer (so
 * AddressSanitizer sees any over-read) and, when it opens, every tensor
 * it lists is read back.  The property: either open fails with a
 * DDPM_ERROR (corrupt or unsupported) naming the data, or every read
 * succeeds with sizes that agree with the shape and lie inside the file.
 *
 * DDPM_FUZZ_CASES sets the number of cases (default 1000000, about ten
 * seconds); DDPM_FUZZ_SEED the seed (default 1).  Randomness comes from
 * the engine's counter-based generator, so a failing case is reproduced
 * by its seed and index alone (printed on failure).  For tools/fuzz:
 * DDPM_FUZZ_FIRST (first case index), DDPM_FUZZ_VERBOSE=1 (print each case
 * before running it, so the last printed before a crash is the culprit)
 * and DDPM_FUZZ_CASE_TIMEOUT (seconds a case may take; SIGALRM ends the
 * run after that, reported as a hang).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <glib/gstdio.h>

#include "safetensors.h"

#define DEFAULT_CASES 1000000

typedef struct
{
  guint8 *data;
  gsize   len;
} Buf;

static void
buf_set (Buf *b, const guint8 *data, gsize len)
{
  g_free (b->data);
  b->data = g_memdup2 (data, len ? len : 1);
  b->len = len;
}

/* ------------------------------------------------------------------ seeds */

static GPtrArray *seeds;   /* of GBytes* */

static void
add_seed_from_writer (DdpmTensorWriter *writer, const char *dir, const char *name)
{
  char *path = g_build_filename (dir, name, NULL);
  GError *error = NULL;
  char *contents;
  gsize len;

  g_assert_true (ddpm_tensor_writer_write (writer, path, &error));
  g_assert_no_error (error);
  g_assert_true (g_file_get_contents (path, &contents, &len, NULL));
  g_ptr_array_add (seeds, g_bytes_new_take (contents, len));
  g_unlink (path);
  g_free (path);
}

static void
make_seeds (void)
{
  GError *error = NULL;
  char *dir = g_dir_make_tmp ("ddpm-fuzz-XXXXXX", &error);
  g_assert_no_error (error);
  seeds = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);

  /* 1: a small model-like file with metadata and every dtype. */
  {
    static float w[2 * 3 * 3 * 3], b[2], s = 1;
    static double d[4] = { 1, 2, 3, 4 };
    static gint64 i[2] = { -1, 7 };
    static guint64 u[3] = { 1, 2, 3 };
    static guint8 bytes[7] = { 1, 2, 3, 4, 5, 6, 7 };
    const gint64 ws[] = { 2, 3, 3, 3 }, bs[] = { 2 }, ds[] = { 2, 2 }, is[] = { 2 },
                 us[] = { 3 }, ys[] = { 7 };
    for (gsize k = 0; k < G_N_ELEMENTS (w); k++)
      w[k] = (float) k * 0.25f - 3;
    DdpmTensorWriter *wr = ddpm_tensor_writer_new ();
    ddpm_tensor_writer_set_metadata (wr, "config", "{\"ch\":32,\"ch_mult\":[1,2]}");
    ddpm_tensor_writer_set_metadata (wr, "schedule", "linear");
    ddpm_tensor_writer_add (wr, "conv_in.weight", DDPM_DTYPE_F32, w, 4, ws);
    ddpm_tensor_writer_add (wr, "conv_in.bias", DDPM_DTYPE_F32, b, 1, bs);
    ddpm_tensor_writer_add (wr, "ema.f64", DDPM_DTYPE_F64, d, 2, ds);
    ddpm_tensor_writer_add (wr, "step", DDPM_DTYPE_I64, i, 1, is);
    ddpm_tensor_writer_add (wr, "rng", DDPM_DTYPE_U64, u, 1, us);
    ddpm_tensor_writer_add (wr, "bytes", DDPM_DTYPE_U8, bytes, 1, ys);
    ddpm_tensor_writer_add (wr, "scale", DDPM_DTYPE_F32, &s, 0, NULL);
    add_seed_from_writer (wr, dir, "a.safetensors");
    ddpm_tensor_writer_free (wr);
  }
  /* 2: zero-sized tensors between real ones. */
  {
    static float x[5] = { 1, 2, 3, 4, 5 };
    const gint64 zs[] = { 0, 3 }, xs[] = { 5, 1, 1 }, z1[] = { 4, 0 };
    DdpmTensorWriter *wr = ddpm_tensor_writer_new ();
    ddpm_tensor_writer_add (wr, "z", DDPM_DTYPE_F32, NULL, 2, zs);
    ddpm_tensor_writer_add (wr, "x", DDPM_DTYPE_F32, x, 3, xs);
    ddpm_tensor_writer_add (wr, "z.1", DDPM_DTYPE_U8, NULL, 2, z1);
    add_seed_from_writer (wr, dir, "b.safetensors");
    ddpm_tensor_writer_free (wr);
  }
  /* 3: hand-made, unpadded, reference-implementation key order. */
  {
    const char *h = "{\"__metadata__\":{\"format\":\"pt\"},"
                    "\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,12]},"
                    "\"b\":{\"dtype\":\"I64\",\"shape\":[1,1],\"data_offsets\":[12,20]}}";
    gsize hl = strlen (h);
    guint8 *buf = g_malloc0 (8 + hl + 20);
    guint64 le = GUINT64_TO_LE ((guint64) hl);
    memcpy (buf, &le, 8);
    memcpy (buf + 8, h, hl);
    for (int k = 0; k < 20; k++)
      buf[8 + hl + k] = (guint8) (k * 37);
    g_ptr_array_add (seeds, g_bytes_new_take (buf, 8 + hl + 20));
  }
  g_rmdir (dir);
  g_free (dir);

  /* The seeds themselves must open. */
  for (guint k = 0; k < seeds->len; k++)
    {
      DdpmTensorFile *f = ddpm_tensor_file_open_bytes (seeds->pdata[k], &error);
      g_assert_no_error (error);
      ddpm_tensor_file_free (f);
    }
}

/* -------------------------------------------------------------- mutations */

static const guint8 interesting_bytes[] = {
  0x00, 0x01, 0x7f, 0x80, 0xff, '"', '\\', '[', ']', '{', '}', ',', ':', '-', '.',
  '0', '1', '9', 'e', ' ', 'F', 'U', 'I',
};

static const char *const interesting_numbers[] = {
  "0", "1", "-1", "7", "8", "4294967296", "9223372036854775807",
  "9223372036854775808", "18446744073709551615", "18446744073709551616",
  "99999999999999999999999", "1e308", "3.5", "-0", "2147483648", "4611686018427387904",
};

static const char *const interesting_tokens[] = {
  "\"F32\"", "\"F64\"", "\"I64\"", "\"U64\"", "\"U8\"", "\"F16\"", "\"BF16\"", "\"X\"",
  "\"dtype\"", "\"shape\"", "\"data_offsets\"", "\"__metadata__\"", "[]", "{}", "null",
  "true", "[0,0]", "[1,1,1,1,1,1,1,1,1]", "\"\"", "\"\\u0000\"", "\"\\ud800\"",
};

static guint64
header_length (const Buf *b)
{
  guint64 le = 0;

  if (b->len >= 8)
    memcpy (&le, b->data, 8);
  return GUINT64_FROM_LE (le);
}

static void
set_header_length (Buf *b, guint64 v)
{
  if (b->len < 8)
    return;
  v = GUINT64_TO_LE (v);
  memcpy (b->data, &v, 8);
}

/* The header's byte range [8, 8 + n) clamped to the buffer. */
static gsize
header_span (const Buf *b)
{
  if (b->len < 8)
    return 0;
  return (gsize) MIN (header_length (b), (guint64) (b->len - 8));
}

/* Replace b[at, at + del) with `ins`, and fix the header length if the
 * edit lies inside the header and `fix` is set. */
static void
splice (Buf *b, gsize at, gsize del, const void *ins, gsize ins_len, gboolean fix)
{
  g_assert (at + del <= b->len);
  gsize n = b->len - del + ins_len;
  guint8 *out = g_malloc (n ? n : 1);
  guint64 hl = header_length (b);

  memcpy (out, b->data, at);
  memcpy (out + at, ins, ins_len);
  memcpy (out + at + ins_len, b->data + at + del, b->len - at - del);
  g_free (b->data);
  b->data = out;
  b->len = n;
  if (fix && at >= 8 && at + del <= 8 + hl)
    set_header_length (b, hl - del + ins_len);
}

static gsize
pick (DdpmRng *rng, gsize n)
{
  return n ? ddpm_rng_next_below (rng, (guint32) MIN (n, G_MAXUINT32)) : 0;
}

/* A position in the header (more often) or anywhere. */
static gsize
pick_pos (DdpmRng *rng, const Buf *b)
{
  gsize h = header_span (b);

  if (h > 0 && ddpm_rng_next_uniform (rng) < 0.75)
    return 8 + pick (rng, h);
  return pick (rng, b->len);
}

static void
mutate (DdpmRng *rng, Buf *b, int *kinds)
{
  int kind = (int) ddpm_rng_next_below (rng, 9);
  kinds[kind]++;

  switch (kind)
    {
    case 0:   /* bit flip */
      if (b->len)
        {
          gsize p = pick_pos (rng, b);
          b->data[p] ^= (guint8) (1u << ddpm_rng_next_below (rng, 8));
        }
      break;
    case 1:   /* interesting byte */
      if (b->len)
        b->data[pick_pos (rng, b)] = interesting_bytes[pick (rng, sizeof interesting_bytes)];
      break;
    case 2:   /* truncation */
      b->len = pick (rng, b->len + 1);
      break;
    case 3:   /* header length edits */
      {
        guint64 hl = header_length (b), v;
        switch (ddpm_rng_next_below (rng, 6))
          {
          case 0: v = hl + 1 + pick (rng, 16); break;
          case 1: v = hl - 1 - pick (rng, 16); break;
          case 2: v = G_MAXUINT64 - pick (rng, 4); break;
          case 3: v = (guint64) 1 << ddpm_rng_next_below (rng, 64); break;
          case 4: v = b->len >= 8 ? b->len - 8 : 0; break;
          default: v = pick (rng, b->len + 1); break;
          }
        set_header_length (b, v);
      }
      break;
    case 4:   /* a number in the header replaced by an extreme one */
    case 5:   /* a token replaced */
      {
        gsize h = header_span (b);
        if (h == 0)
          break;
        gsize p = 8 + pick (rng, h), end = 8 + h;
        if (kind == 4)
          {
            while (p < end && !g_ascii_isdigit (b->data[p]))
              p++;
            gsize q = p;
            while (q < end && g_ascii_isdigit (b->data[q]))
              q++;
            const char *num = interesting_numbers[pick (rng, G_N_ELEMENTS (interesting_numbers))];
            splice (b, p, q - p, num, strlen (num), ddpm_rng_next_uniform (rng) < 0.8);
          }
        else
          {
            while (p < end && b->data[p] != '"')
              p++;
            gsize q = p + 1;
            while (q < end && b->data[q] != '"')
              q++;
            q = MIN (q + 1, end);
            if (p >= end)
              break;
            const char *tok = interesting_tokens[pick (rng, G_N_ELEMENTS (interesting_tokens))];
            splice (b, p, q - p, tok, strlen (tok), ddpm_rng_next_uniform (rng) < 0.8);
          }
      }
      break;
    case 6:   /* delete a chunk of the header */
      {
        gsize h = header_span (b);
        if (h == 0)
          break;
        gsize p = 8 + pick (rng, h), n = 1 + pick (rng, MIN (32, 8 + h - p));
        splice (b, p, n, "", 0, ddpm_rng_next_uniform (rng) < 0.8);
      }
      break;
    case 7:   /* duplicate a chunk of the header in place */
      {
        gsize h = header_span (b);
        if (h == 0)
          break;
        gsize p = 8 + pick (rng, h), n = 1 + pick (rng, MIN (64, 8 + h - p));
        guint8 *copy = g_memdup2 (b->data + p, n);
        splice (b, p, 0, copy, n, ddpm_rng_next_uniform (rng) < 0.8);
        g_free (copy);
      }
      break;
    default:  /* a piece of another seed's header spliced in */
      {
        gsize h = header_span (b);
        GBytes *other = seeds->pdata[pick (rng, seeds->len)];
        gsize olen;
        const guint8 *o = g_bytes_get_data (other, &olen);
        guint64 ohl;
        memcpy (&ohl, o, 8);
        ohl = GUINT64_FROM_LE (ohl);
        if (h == 0 || ohl == 0)
          break;
        gsize src = 8 + pick (rng, ohl), n = 1 + pick (rng, MIN (64, 8 + ohl - src));
        gsize p = 8 + pick (rng, h), del = pick (rng, MIN (64, 8 + h - p) + 1);
        splice (b, p, del, o + src, n, ddpm_rng_next_uniform (rng) < 0.8);
      }
      break;
    }
}

/* ------------------------------------------------------------------ driver */

typedef struct
{
  guint64 opened, rejected, unsupported, tensors, bytes_read;
} Stats;

static void
check_case (const guint8 *data, gsize len, guint64 seed, guint64 index, Stats *st)
{
  /* Exactly sized, so that ASan flags a read one byte past the end. */
  guint8 *exact = g_malloc (len ? len : 1);
  if (len)
    memcpy (exact, data, len);
  GBytes *bytes = g_bytes_new_take (exact, len);
  GError *error = NULL;
  DdpmTensorFile *file = ddpm_tensor_file_open_bytes_named (bytes, "fuzz.safetensors", &error);

  if (file == NULL)
    {
      if (error == NULL || error->domain != DDPM_ERROR
          || (error->code != DDPM_ERROR_CORRUPT_FILE && error->code != DDPM_ERROR_UNSUPPORTED)
          || strstr (error->message, "fuzz.safetensors") == NULL)
        g_error ("seed %" G_GUINT64_FORMAT " case %" G_GUINT64_FORMAT ": bad error %s",
                 seed, index, error ? error->message : "(none)");
      if (error->code == DDPM_ERROR_UNSUPPORTED)
        st->unsupported++;
      else
        st->rejected++;
      g_error_free (error);
      g_bytes_unref (bytes);
      return;
    }

  st->opened++;
  GPtrArray *names = ddpm_tensor_file_list (file);
  guint64 total = 0;
  for (guint i = 0; i < names->len; i++)
    {
      const char *name = names->pdata[i];
      DdpmDtype dtype;
      int ndim;
      gint64 shape[DDPM_TENSOR_MAX_DIMS];
      guint64 numel = 1;

      if (!ddpm_tensor_file_has (file, name)
          || !ddpm_tensor_file_get_shape (file, name, &dtype, &ndim, shape)
          || dtype >= DDPM_DTYPE_COUNT || ndim < 0 || ndim > DDPM_TENSOR_MAX_DIMS)
        g_error ("seed %" G_GUINT64_FORMAT " case %" G_GUINT64_FORMAT
                 ": listed tensor '%s' has no valid shape", seed, index, name);
      for (int d = 0; d < ndim; d++)
        if (shape[d] < 0 || !g_uint64_checked_mul (&numel, numel, (guint64) shape[d]))
          g_error ("seed %" G_GUINT64_FORMAT " case %" G_GUINT64_FORMAT
                   ": tensor '%s' has an impossible shape", seed, index, name);
      gsize n_bytes = ddpm_tensor_file_get_n_bytes (file, name);
      guint64 want;
      if (!g_uint64_checked_mul (&want, numel, ddpm_dtype_size (dtype)) || want != n_bytes
          || n_bytes > len || numel != ddpm_tensor_file_get_n_elements (file, name))
        g_error ("seed %" G_GUINT64_FORMAT " case %" G_GUINT64_FORMAT
                 ": tensor '%s' claims %" G_GSIZE_FORMAT " bytes in a %" G_GSIZE_FORMAT
                 "-byte file", seed, index, name, n_bytes, len);
      total += n_bytes;

      /* Exactly sized destination: ASan catches an over-write. */
      guint8 *dst = g_malloc (n_bytes ? n_bytes : 1);
      if (!ddpm_tensor_file_read_raw (file, name, dtype, dst, n_bytes, &error))
        g_error ("seed %" G_GUINT64_FORMAT " case %" G_GUINT64_FORMAT
                 ": reading '%s' failed: %s", seed, index, name, error->message);
      if (dtype == DDPM_DTYPE_F32
          && !ddpm_tensor_file_read_f32 (file, name, (float *) dst, ndim, shape, &error))
        g_error ("seed %" G_GUINT64_FORMAT " case %" G_GUINT64_FORMAT
                 ": reading '%s' as F32 failed: %s", seed, index, name, error->message);
      g_free (dst);
      st->tensors++;
      st->bytes_read += n_bytes;
    }
  /* Non-overlapping tensors cannot hold more bytes than the file. */
  if (total > len)
    g_error ("seed %" G_GUINT64_FORMAT " case %" G_GUINT64_FORMAT
             ": tensors hold %" G_GUINT64_FORMAT " bytes in a %" G_GSIZE_FORMAT "-byte file",
             seed, index, total, len);
  const char **keys = ddpm_tensor_file_list_metadata (file);
  for (int k = 0; keys[k]; k++)
    g_assert_nonnull (ddpm_tensor_file_get_metadata (file, keys[k]));
  g_free (keys);
  g_ptr_array_unref (names);
  ddpm_tensor_file_free (file);
  g_bytes_unref (bytes);
}

static guint64
env_u64 (const char *name, guint64 fallback)
{
  const char *v = g_getenv (name);
  return v && *v ? g_ascii_strtoull (v, NULL, 10) : fallback;
}

static void
test_fuzz (void)
{
  guint64 n_cases = env_u64 ("DDPM_FUZZ_CASES", DEFAULT_CASES);
  guint64 seed = env_u64 ("DDPM_FUZZ_SEED", 1);
  guint64 first = env_u64 ("DDPM_FUZZ_FIRST", 0);
  gboolean verbose = env_u64 ("DDPM_FUZZ_VERBOSE", 0) != 0;
  guint case_timeout = (guint) env_u64 ("DDPM_FUZZ_CASE_TIMEOUT", 0);
  Stats st = { 0 };
  int kinds[9] = { 0 };
  Buf b = { 0 };

  make_seeds ();
  for (guint64 c = first; c < first + n_cases; c++)
    {
      /* One generator per case: case c is reproducible on its own. */
      DdpmRng rng;
      ddpm_rng_init (&rng, seed, c);
      GBytes *s = seeds->pdata[c % seeds->len];
      gsize slen;
      const guint8 *sd = g_bytes_get_data (s, &slen);
      buf_set (&b, sd, slen);

      /* Mostly one mutation (a file that still nearly parses probes the
       * validator's corners), sometimes a stack of up to four. */
      int n_mut = 1;
      while (n_mut < 4 && ddpm_rng_next_uniform (&rng) < 0.35)
        n_mut++;
      for (int m = 0; m < n_mut; m++)
        mutate (&rng, &b, kinds);
      if (verbose)
        {
          printf ("# case seed %" G_GUINT64_FORMAT " index %" G_GUINT64_FORMAT "\n", seed, c);
          fflush (stdout);
        }
      if (case_timeout)
        alarm (case_timeout);
      check_case (b.data, b.len, seed, c, &st);
    }
  alarm (0);
  g_free (b.data);
  g_ptr_array_unref (seeds);

  g_test_message ("%" G_GUINT64_FORMAT " cases: %" G_GUINT64_FORMAT " opened (%"
                  G_GUINT64_FORMAT " tensors, %" G_GUINT64_FORMAT " bytes read), %"
                  G_GUINT64_FORMAT " rejected as corrupt, %" G_GUINT64_FORMAT " as unsupported",
                  n_cases, st.opened, st.tensors, st.bytes_read, st.rejected, st.unsupported);
  g_test_message ("mutations: flip %d, byte %d, truncate %d, length %d, number %d, token %d, "
                  "delete %d, duplicate %d, splice %d", kinds[0], kinds[1], kinds[2], kinds[3],
                  kinds[4], kinds[5], kinds[6], kinds[7], kinds[8]);
  printf ("# FUZZ-SUMMARY cases=%" G_GUINT64_FORMAT " opened=%" G_GUINT64_FORMAT
          " rejected=%" G_GUINT64_FORMAT "\n", n_cases, st.opened, st.rejected + st.unsupported);
  /* Both outcomes must be exercised, or the mutations are too weak (all
   * rejected) or not reaching the validator (all accepted). */
  g_assert_cmpuint (st.opened + st.rejected + st.unsupported, ==, n_cases);
  if (n_cases >= 1000)
    {
      g_assert_cmpuint (st.opened, >, n_cases / 100);
      g_assert_cmpuint (st.rejected, >, n_cases / 2);
    }
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/engine/safetensors-fuzz/mutations", test_fuzz);
  return g_test_run ();
}
