/* test-model-fuzz.c: a mutation fuzzer for what a user loads as a model,
 * run as an ordinary test (GLib `fuzzing/` style: a target function and a
 * plain deterministic driver; tools/fuzz runs the same driver for minutes
 * under AddressSanitizer and UBSan with a random seed).
 *
 * The seed is the shipped model models/default.safetensors.  Mutations
 * aim at its JSON header, where a model file is interpreted: values in
 * "__metadata__" (image_size, ch, ch_mult, T, num_res_blocks, schedule, …)
 * replaced by extreme or malformed ones, metadata keys renamed or
 * dropped, numbers in tensor entries (shapes, offsets) swapped, bit flips,
 * deleted and duplicated chunks, and truncation of the file.  The target
 * (fuzz_one) calls ddpm_model_load_bytes on the bytes; when the model loads
 * it runs the model's denoiser once on an 8×8 image and then one
 * ddpm_img2img step on it.  The property: load fails with a GError or the
 * model runs (or fails with a GError); no crash, no sanitizer report.
 *
 * Speed (a campaign needs 10⁶ inputs): an input is kept as its first part
 * (the length field and JSON header, where mutations land, a few KB) and
 * a length of the seed's tensor data that follows unchanged.  The data is
 * copied once into an arena; each case copies only its header in front of
 * it, so the bytes the loader sees are contiguous without copying 4.4 MB
 * per input.  Under AddressSanitizer the arena outside the input is
 * poisoned, so reading past either end is still caught.
 *
 * DDPM_FUZZ_CASES sets the number of cases (default 150, a few seconds);
 * DDPM_FUZZ_SEED the seed (default 1).  Case c of seed s is reproduced
 * alone with DDPM_FUZZ_SEED=s DDPM_FUZZ_FIRST=c DDPM_FUZZ_CASES=1;
 * DDPM_FUZZ_VERBOSE=1 prints each case before running it, so the last one
 * printed before a crash is the culprit; DDPM_FUZZ_CASE_TIMEOUT is the
 * seconds a case may take (SIGALRM ends the run after that: a hang).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ddpm.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define POISON(p, n)   ASAN_POISON_MEMORY_REGION ((p), (n))
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION ((p), (n))
#else
#define POISON(p, n)   ((void) (p), (void) (n))
#define UNPOISON(p, n) ((void) (p), (void) (n))
#endif

#define DEFAULT_CASES 150

/* An input: `data` holds its first `len` bytes (the length field and the
 * header, mutated); then come the first `tail` bytes of the seed's tensor
 * data, unchanged. */
typedef struct
{
  guint8 *data;
  gsize   len;
  gsize   tail;
} Buf;

/* Room for the header in front of the data in the arena: the seed's
 * header is 19 KB and at most 4 mutations of ≤ 96 bytes grow it. */
#define ARENA_HEAD_ROOM ((gsize) 1 << 20)

static guint8 *arena;        /* ARENA_HEAD_ROOM + the seed's tensor data */
static gsize   arena_size;

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

/* The header bytes a mutation may touch: as the length field says, within
 * the input's first part. */
static gsize
header_span (const Buf *b)
{
  if (b->len < 8)
    return 0;
  return (gsize) MIN (header_length (b), (guint64) (b->len - 8));
}

/* Cut the input to `total` bytes. */
static void
truncate_to (Buf *b, gsize total)
{
  if (total <= b->len)
    {
      b->len = total;
      b->tail = 0;
    }
  else
    b->tail = MIN (b->tail, total - b->len);
}

/* Replace b[at, at + del) with `ins`; fix the header length if the edit
 * lies inside the header and `fix` is set. */
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

/* Where `"key":"` starts its value in the header, or 0. */
static gsize
find_value (const Buf *b, const char *key, gsize *value_len)
{
  gsize h = header_span (b);
  char *pat = g_strdup_printf ("\"%s\":\"", key);
  gsize pl = strlen (pat), at = 0;

  for (gsize p = 8; p + pl <= 8 + h; p++)
    if (memcmp (b->data + p, pat, pl) == 0)
      {
        at = p + pl;
        break;
      }
  g_free (pat);
  if (at == 0)
    return 0;
  gsize q = at;
  while (q < 8 + h && b->data[q] != '"')
    q++;
  *value_len = q - at;
  return at;
}

static const char *const metadata_keys[] = {
  "in_channels", "out_channels", "ch", "ch_mult", "num_res_blocks", "attn_resolutions",
  "image_size", "dropout", "schedule", "T", "format", "format_version", "checkpoint",
  "train_steps", "train_loss",
};

/* Values that are wrong in interesting ways.  image_size values that the
 * model would accept but that make one 8×8 step enormous (the image is
 * padded to image_size) are left to the campaign via DDPM_FUZZ_BIG. */
static const char *const metadata_values[] = {
  "0", "-1", "1", "2", "3", "4", "7", "8", "16", "31", "33", "64", "96", "100",
  "2147483647", "2147483648", "4294967297", "-2147483648", "9223372036854775808",
  "1e9", "nan", "inf", "-0", "", " 64", "64 ", "0x40", "abc", "1.5", "1,2", "1,2,2,2",
  "1,2,2,2,2,2,2,2,2", "1,,2", ",", "0,0", "-1,2", "8,16", "linear", "cosine", "quadratic",
  "true", "false", "gimp-ddpm", "2", "99",
};

static const char *const big_values[] = {
  "65536", "65535", "4096", "1024", "32768", "1000000", "100000",
};

static const char *const numbers[] = {
  "0", "1", "-1", "2", "3", "8", "31", "33", "4294967296", "9223372036854775807",
  "18446744073709551615", "1e308", "3.5", "-0", "2147483648",
};

static void
mutate (DdpmRng *rng, Buf *b, gboolean big, int *kinds)
{
  int kind = (int) ddpm_rng_next_below (rng, 8);
  gsize h = header_span (b);

  kinds[kind]++;
  switch (kind)
    {
    case 0:   /* a metadata value replaced (twice as likely: cases 0 and 1) */
    case 1:
      {
        const char *key = metadata_keys[pick (rng, G_N_ELEMENTS (metadata_keys))];
        const char *v;
        gsize vl;
        if (big && ddpm_rng_next_uniform (rng) < 0.2)
          v = big_values[pick (rng, G_N_ELEMENTS (big_values))];
        else
          v = metadata_values[pick (rng, G_N_ELEMENTS (metadata_values))];
        gsize at = find_value (b, key, &vl);
        if (at)
          splice (b, at, vl, v, strlen (v), ddpm_rng_next_uniform (rng) < 0.95);
      }
      break;
    case 2:   /* a metadata key renamed (dropped) or made a duplicate */
      {
        const char *key = metadata_keys[pick (rng, G_N_ELEMENTS (metadata_keys))];
        const char *other = metadata_keys[pick (rng, G_N_ELEMENTS (metadata_keys))];
        gsize vl, at = find_value (b, key, &vl);
        if (at)
          {
            gsize kl = strlen (key);
            gsize kat = at - 3 - kl;   /* after the opening quote */
            const char *nk = ddpm_rng_next_uniform (rng) < 0.5 ? "x" : other;
            splice (b, kat, kl, nk, strlen (nk), TRUE);
          }
      }
      break;
    case 3:   /* a number anywhere in the header (shapes, offsets) */
      if (h)
        {
          gsize p = 8 + pick (rng, h), end = 8 + h;
          while (p < end && !g_ascii_isdigit (b->data[p]))
            p++;
          gsize q = p;
          while (q < end && g_ascii_isdigit (b->data[q]))
            q++;
          const char *num = numbers[pick (rng, G_N_ELEMENTS (numbers))];
          splice (b, p, q - p, num, strlen (num), ddpm_rng_next_uniform (rng) < 0.9);
        }
      break;
    case 4:   /* bit flip in the header */
      if (h)
        b->data[8 + pick (rng, h)] ^= (guint8) (1u << ddpm_rng_next_below (rng, 8));
      break;
    case 5:   /* delete a chunk of the header */
      if (h)
        {
          gsize p = 8 + pick (rng, h), n = 1 + pick (rng, MIN (48, 8 + h - p));
          splice (b, p, n, "", 0, ddpm_rng_next_uniform (rng) < 0.9);
        }
      break;
    case 6:   /* duplicate a chunk of the header */
      if (h)
        {
          gsize p = 8 + pick (rng, h), n = 1 + pick (rng, MIN (96, 8 + h - p));
          guint8 *copy = g_memdup2 (b->data + p, n);
          splice (b, p, 0, copy, n, ddpm_rng_next_uniform (rng) < 0.9);
          g_free (copy);
        }
      break;
    default:  /* truncate the file (mostly in the tensor data) */
      {
        gsize total = b->len + b->tail;
        if (total < 8 + h)
          break;
        truncate_to (b, 8 + h + pick (rng, total - 8 - h + 1));
        if (ddpm_rng_next_uniform (rng) < 0.2)
          truncate_to (b, pick (rng, b->len + b->tail + 1));
      }
      break;
    }
}

typedef struct
{
  guint64 loaded, rejected, ran, run_failed, nonfinite, stepped;
} Stats;

/* The input's bytes, contiguous in the arena: its header copied in front
 * of the seed's data; the rest of the arena poisoned while it is used. */
static GBytes *
input_bytes (const Buf *b)
{
  g_assert_cmpuint (b->len, <=, ARENA_HEAD_ROOM);
  guint8 *start = arena + ARENA_HEAD_ROOM - b->len;
  guint8 *end = arena + ARENA_HEAD_ROOM + b->tail;

  memcpy (start, b->data, b->len);
  POISON (arena, (gsize) (start - arena));
  POISON (end, (gsize) (arena + arena_size - end));
  return g_bytes_new_static (start, b->len + b->tail);
}

static void
input_bytes_done (GBytes *bytes)
{
  g_bytes_unref (bytes);
  UNPOISON (arena, arena_size);
}

/* Metadata keys that do not change what a model computes. */
static const char *const inert_keys[] = {
  "format", "format_version", "checkpoint", "train_steps", "train_loss",
};

/* Whether no model loaded before in this run computes what the input's
 * model computes, judged conservatively from its header: the same values
 * of every metadata key that matters and the same bytes in the rest of
 * the header (tensor names, shapes, offsets; the data is the seed's).
 * An input that loaded has a well-formed header, parsed here by hand. */
static GHashTable *stepped_models;

static gboolean
first_of_its_kind (const Buf *b)
{
  gsize h = header_span (b);
  GString *sig = g_string_new (NULL);
  const guint8 *hdr = b->data + 8;
  const char *meta = g_strstr_len ((const char *) hdr, (gssize) h, "\"__metadata__\"");
  const char *close = meta ? memchr (meta, '}', h - (gsize) ((const guint8 *) meta - hdr)) : NULL;

  g_string_append_printf (sig, "%" G_GSIZE_FORMAT "|", b->tail);
  if (close)
    {
      for (gsize k = 0; k < G_N_ELEMENTS (metadata_keys); k++)
        {
          gboolean inert = FALSE;
          for (gsize i = 0; i < G_N_ELEMENTS (inert_keys); i++)
            inert |= strcmp (metadata_keys[k], inert_keys[i]) == 0;
          gsize vl = 0, at = inert ? 0 : find_value (b, metadata_keys[k], &vl);
          if (at)
            g_string_append_printf (sig, "%s=%.*s|", metadata_keys[k], (int) vl,
                                    (const char *) b->data + at);
        }
      g_string_append_len (sig, (const char *) hdr, (const guint8 *) meta - hdr);
      g_string_append_len (sig, close + 1, (gssize) (hdr + h - (const guint8 *) close - 1));
    }
  else
    g_string_append_len (sig, (const char *) hdr, (gssize) h);

  char *key = g_compute_checksum_for_string (G_CHECKSUM_SHA256, sig->str, (gssize) sig->len);
  g_string_free (sig, TRUE);
  if (g_hash_table_contains (stepped_models, key))
    {
      g_free (key);
      return FALSE;
    }
  g_hash_table_add (stepped_models, key);
  return TRUE;
}

/* The target: load the input as a model file and, if it loads, run it. */
static void
fuzz_one (const Buf *b, Stats *st)
{
  GError *error = NULL;
  GBytes *bytes = input_bytes (b);
  DdpmModel *model = ddpm_model_load_bytes (bytes, "fuzz.safetensors", &error);

  input_bytes_done (bytes);
  if (model == NULL)
    {
      g_assert_nonnull (error);
      g_assert_nonnull (error->message);
      g_clear_error (&error);
      st->rejected++;
      return;
    }
  g_assert_no_error (error);
  st->loaded++;

  const DdpmUNetConfig *config = ddpm_model_get_config (model);
  const DdpmSchedule *schedule = ddpm_model_get_schedule (model);
  DdpmDenoiser den;
  ddpm_model_get_denoiser (model, 1, &den);

  int C = den.channels, S = 8;
  gsize n = (gsize) C * S * S;
  float *x = g_new (float, n), *eps = g_new (float, n);
  for (gsize i = 0; i < n; i++)
    x[i] = (float) ((i * 37) % 17) / 8.0f - 1.0f;
  if (den.denoise (eps, x, 1, C, S, S, MAX (1, schedule->T / 2), den.user_data, &error))
    {
      st->ran++;
      for (gsize i = 0; i < n; i++)
        if (!isfinite (eps[i]))
          {
            st->nonfinite++;
            break;
          }
    }
  else
    {
      g_assert_nonnull (error);
      g_clear_error (&error);
      st->run_failed++;
    }

  /* One img2img step pads the 8×8 image to the model's size: bounded here
   * so a legal but huge image_size costs no minutes (that limit is the
   * engine's resource-limit work, not this target's).  It is the costly
   * part of a case (a whole forward at 64²), so it runs once per model
   * that differs from every model stepped before in this run. */
  if (config->image_size <= 128 && first_of_its_kind (b))
    {
      DdpmSampleParams params;
      ddpm_sample_params_init (&params);
      params.steps = 1;
      params.strength = 0.5;
      params.threads = 1;
      if (ddpm_img2img (x, NULL, C, S, S, schedule, &den, &params, &error))
        st->stepped++;
      else
        {
          g_assert_nonnull (error);
          g_clear_error (&error);
        }
    }
  g_free (x);
  g_free (eps);
  ddpm_model_free (model);
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
  gboolean big = env_u64 ("DDPM_FUZZ_BIG", 0) != 0;
  guint case_timeout = (guint) env_u64 ("DDPM_FUZZ_CASE_TIMEOUT", 0);
  char *model_path = g_build_filename (g_getenv ("G_TEST_SRCDIR") ? g_getenv ("G_TEST_SRCDIR") : ".",
                                       "..", "models", "default.safetensors", NULL);
  GError *error = NULL;
  char *contents;
  gsize len;
  Stats st = { 0 };
  int kinds[8] = { 0 };
  Buf b = { 0 };

  g_assert_true (g_file_get_contents (model_path, &contents, &len, &error));
  g_assert_no_error (error);
  Buf seed_input = { (guint8 *) contents, len, 0 };
  gsize head = 8 + header_span (&seed_input);   /* the seed's header is well formed */
  arena_size = ARENA_HEAD_ROOM + (len - head);
  stepped_models = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  arena = g_malloc (arena_size);
  memcpy (arena + ARENA_HEAD_ROOM, contents + head, len - head);

  for (guint64 c = first; c < first + n_cases; c++)
    {
      DdpmRng rng;
      ddpm_rng_init (&rng, seed, c);
      g_free (b.data);
      b.data = g_memdup2 (contents, head);
      b.len = head;
      b.tail = len - head;
      int n_mut = 1;
      while (n_mut < 4 && ddpm_rng_next_uniform (&rng) < 0.35)
        n_mut++;
      for (int m = 0; m < n_mut; m++)
        mutate (&rng, &b, big, kinds);
      if (verbose)
        {
          printf ("# case seed %" G_GUINT64_FORMAT " index %" G_GUINT64_FORMAT "\n", seed, c);
          fflush (stdout);
        }
      if (case_timeout)
        alarm (case_timeout);
      fuzz_one (&b, &st);
    }
  alarm (0);
  g_free (b.data);
  g_free (arena);
  g_free (contents);
  g_hash_table_unref (stepped_models);
  g_free (model_path);

  g_test_message ("%" G_GUINT64_FORMAT " cases: %" G_GUINT64_FORMAT " loaded (%"
                  G_GUINT64_FORMAT " ran, %" G_GUINT64_FORMAT " failed to run, %"
                  G_GUINT64_FORMAT " non-finite, %" G_GUINT64_FORMAT " img2img steps), %"
                  G_GUINT64_FORMAT " rejected", n_cases, st.loaded, st.ran, st.run_failed,
                  st.nonfinite, st.stepped, st.rejected);
  g_test_message ("mutations: value %d, key %d, number %d, flip %d, delete %d, duplicate %d, "
                  "truncate %d", kinds[0] + kinds[1], kinds[2], kinds[3], kinds[4], kinds[5],
                  kinds[6], kinds[7]);
  printf ("# FUZZ-SUMMARY cases=%" G_GUINT64_FORMAT " loaded=%" G_GUINT64_FORMAT
          " rejected=%" G_GUINT64_FORMAT "\n", n_cases, st.loaded, st.rejected);
  g_assert_cmpuint (st.loaded + st.rejected, ==, n_cases);
  /* Both outcomes, or the mutations are too weak or never reach the loader. */
  if (n_cases >= 100)
    {
      g_assert_cmpuint (st.loaded, >, 0);
      g_assert_cmpuint (st.rejected, >, n_cases / 4);
    }
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/engine/model-fuzz/mutations", test_fuzz);
  return g_test_run ();
}
