/* test-torch-pickle-fuzz.c: a mutation fuzzer for the PyTorch checkpoint
 * reader, run as an ordinary test (the style of test-safetensors-fuzz.c:
 * plain C, deterministic, no fuzzing engine needed).
 *
 * Seeds are the real checkpoints in tests/fixtures (torch-*.pt, made by
 * make-torch-pickle-fixtures.py), including the ones that must be refused.
 * Three kinds of case, each handed to ddpm_torch_checkpoint_fuzz, which
 * opens the data, reads back every tensor into exactly-sized buffers and
 * reports any broken promise (then this test fails, naming seed and case):
 *
 *   pickle  a seed's data.pkl, mutated, read alone (storages exist with the
 *           sizes the pickle declares): the unpickler's own corners;
 *   rezip   the mutated data.pkl zipped again with the seed's storages, so
 *           it meets real records (sizes, names, CRCs);
 *   file    the whole .pt mutated as bytes: the zip layer.
 *
 * Pickle mutations know the format: besides bit flips, bytes, truncations
 * and chunks deleted, duplicated or spliced from another seed, they insert
 * opcodes and pickle fragments (allowed and forbidden globals, MARKs,
 * tuples, REDUCE, extreme integers), retarget BININT1 operands (sizes,
 * strides, offsets, memo indices) and rename storage classes.
 *
 * DDPM_FUZZ_CASES sets the number of cases (default 60000, a few seconds;
 * split 4:1:1 between pickle, rezip and file); DDPM_FUZZ_SEED the seed
 * (default 1).  Case c is reproduced from (seed, c) alone:
 * DDPM_FUZZ_SEED=s DDPM_FUZZ_FIRST=c DDPM_FUZZ_CASES=1.  For tools/fuzz:
 * DDPM_FUZZ_VERBOSE=1 prints each case before running it (the last printed
 * before a crash is the culprit) and DDPM_FUZZ_CASE_TIMEOUT is the seconds
 * a case may take (SIGALRM ends the run after that, reported as a hang).
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <zip.h>

#include "torch-pickle.h"

#define DEFAULT_CASES 60000

typedef struct
{
  guint8 *data;
  gsize   len;
} Buf;

/* ------------------------------------------------------------------ seeds */

typedef struct
{
  char      *name;
  GBytes    *file;        /* the whole .pt */
  GBytes    *pickle;      /* its data.pkl */
  GPtrArray *names;       /* every record's name … */
  GPtrArray *contents;    /* … and bytes (GBytes*), data.pkl included */
  guint      pickle_at;   /* data.pkl's position in names */
} Seed;

static GPtrArray *seeds;   /* of Seed* */

static void
seed_free (gpointer p)
{
  Seed *s = p;

  g_free (s->name);
  g_bytes_unref (s->file);
  g_bytes_unref (s->pickle);
  g_ptr_array_unref (s->names);
  g_ptr_array_unref (s->contents);
  g_free (s);
}

static void
load_seed (const char *name)
{
  char *path = g_test_build_filename (G_TEST_DIST, "fixtures", name, NULL);
  char *contents;
  gsize len;
  GError *error = NULL;

  g_file_get_contents (path, &contents, &len, &error);
  g_assert_no_error (error);
  g_free (path);

  Seed *s = g_new0 (Seed, 1);
  s->name = g_strdup (name);
  s->file = g_bytes_new_take (contents, len);
  s->names = g_ptr_array_new_with_free_func (g_free);
  s->contents = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);

  /* The legacy file is no zip: it seeds the file kind only. */
  zip_error_t ze;
  zip_error_init (&ze);
  zip_source_t *src = zip_source_buffer_create (contents, len, 0, &ze);
  zip_t *za = zip_open_from_source (src, ZIP_RDONLY, &ze);
  if (za == NULL)
    zip_source_free (src);
  for (zip_int64_t i = 0; za && i < zip_get_num_entries (za, 0); i++)
    {
      zip_stat_t st;
      g_assert_cmpint (zip_stat_index (za, (zip_uint64_t) i, 0, &st), ==, 0);
      guint8 *buf = g_malloc (MAX (st.size, 1));
      zip_file_t *zf = zip_fopen_index (za, (zip_uint64_t) i, 0);
      g_assert_nonnull (zf);
      g_assert_cmpint (zip_fread (zf, buf, st.size), ==, (zip_int64_t) st.size);
      zip_fclose (zf);
      if (g_str_has_suffix (st.name, "/data.pkl"))
        {
          s->pickle_at = s->names->len;
          s->pickle = g_bytes_new (buf, st.size);
        }
      g_ptr_array_add (s->names, g_strdup (st.name));
      g_ptr_array_add (s->contents, g_bytes_new_take (buf, st.size));
    }
  if (za)
    zip_discard (za);
  zip_error_fini (&ze);
  if (s->pickle == NULL)
    s->pickle = g_bytes_new (NULL, 0);
  g_ptr_array_add (seeds, s);
}

static void
make_seeds (void)
{
  static const char *const names[] = {
    "torch-f32.pt", "torch-f16.pt", "torch-bf16.pt", "torch-views.pt", "torch-guided.pt",
    "torch-protocol4.pt",
    "torch-wrapped.pt", "torch-renamed.pt", "torch-evil.pt", "torch-short-storage.pt",
    "torch-legacy.pt",
  };

  seeds = g_ptr_array_new_with_free_func (seed_free);
  for (gsize i = 0; i < G_N_ELEMENTS (names); i++)
    load_seed (names[i]);
}

/* Zip records again, data.pkl replaced by `pickle`. */
static void
rezip (const Seed *s, const Buf *pickle, Buf *out)
{
  zip_error_t ze;
  zip_error_init (&ze);
  zip_source_t *src = zip_source_buffer_create (NULL, 0, 0, &ze);
  zip_source_keep (src);
  zip_t *za = zip_open_from_source (src, ZIP_TRUNCATE, &ze);
  g_assert_nonnull (za);
  for (guint i = 0; i < s->names->len; i++)
    {
      gsize len;
      const void *data = g_bytes_get_data (s->contents->pdata[i], &len);
      if (i == s->pickle_at)
        {
          data = pickle->data;
          len = pickle->len;
        }
      zip_source_t *rs = zip_source_buffer (za, data, len, 0);
      zip_int64_t idx = zip_file_add (za, s->names->pdata[i], rs, ZIP_FL_ENC_RAW);
      g_assert_cmpint (idx, >=, 0);
      zip_set_file_compression (za, (zip_uint64_t) idx, ZIP_CM_STORE, 0);
    }
  g_assert_cmpint (zip_close (za), ==, 0);
  g_assert_cmpint (zip_source_open (src), ==, 0);
  zip_source_seek (src, 0, SEEK_END);
  zip_int64_t size = zip_source_tell (src);
  zip_source_seek (src, 0, SEEK_SET);
  g_free (out->data);
  out->data = g_malloc (MAX (size, 1));
  out->len = (gsize) size;
  g_assert_cmpint (zip_source_read (src, out->data, (zip_uint64_t) size), ==, size);
  zip_source_close (src);
  zip_source_free (src);
  zip_error_fini (&ze);
}

/* -------------------------------------------------------------- mutations */

/* memmem without _GNU_SOURCE. */
static guint8 *
find_bytes (const guint8 *hay, gsize n, const void *needle, gsize m)
{
  for (gsize i = 0; m <= n && i <= n - m; i++)
    if (memcmp (hay + i, needle, m) == 0)
      return (guint8 *) hay + i;
  return NULL;
}


static void
buf_set (Buf *b, const guint8 *data, gsize len)
{
  g_free (b->data);
  b->data = g_memdup2 (data, MAX (len, 1));
  b->len = len;
}

static gsize
pick (DdpmRng *rng, gsize n)
{
  return n ? ddpm_rng_next_below (rng, (guint32) MIN (n, G_MAXUINT32)) : 0;
}

/* Replace b[at, at + del) with ins. */
static void
splice (Buf *b, gsize at, gsize del, const void *ins, gsize ins_len)
{
  g_assert (at + del <= b->len);
  gsize n = b->len - del + ins_len;
  guint8 *out = g_malloc (MAX (n, 1));

  memcpy (out, b->data, at);
  if (ins_len)
    memcpy (out + at, ins, ins_len);
  memcpy (out + at + ins_len, b->data + at + del, b->len - at - del);
  g_free (b->data);
  b->data = out;
  b->len = n;
}

static const guint8 interesting_bytes[] = {
  0x00, 0x01, 0x02, 0x03, 0x07, 0x08, 0x7f, 0x80, 0xfe, 0xff, '\n',
  /* opcodes */
  '(', '.', '0', '2', 'J', 'K', 'M', 'N', 'Q', 'R', 'X', 'a', 'b', 'c', '}', 'e', 'h',
  ']', 'q', 'r', 's', 't', ')', 'u', 'G', 'i', 'o', 0x81, 0x85, 0x86, 0x87, 0x88, 0x89,
  0x8a, 0x8c, 0x8d, 0x93, 0x94, 0x95,
};

/* Pickle fragments: pieces torch writes, and pieces it must not. */
#define FRAG(s) { s, sizeof (s) - 1 }
static const struct { const char *p; gsize n; } fragments[] = {
  FRAG ("("), FRAG ("t"), FRAG (")"), FRAG ("}"), FRAG ("]"), FRAG ("N"), FRAG ("R"),
  FRAG ("Q"), FRAG ("b"), FRAG ("s"), FRAG ("u"), FRAG ("a"), FRAG ("e"), FRAG ("\x85"),
  FRAG ("\x86"), FRAG ("\x87"), FRAG ("\x88"), FRAG ("\x89"), FRAG ("."),
  FRAG ("ccollections\nOrderedDict\n"), FRAG ("ctorch._utils\n_rebuild_tensor_v2\n"),
  FRAG ("ctorch._utils\n_rebuild_parameter\n"), FRAG ("ctorch\nFloatStorage\n"),
  FRAG ("ctorch\nHalfStorage\n"), FRAG ("ctorch\nBFloat16Storage\n"),
  FRAG ("ctorch\nDoubleStorage\n"), FRAG ("ctorch\nLongStorage\n"),
  FRAG ("ctorch\nIntStorage\n"), FRAG ("cposix\nsystem\n"), FRAG ("cbuiltins\neval\n"),
  FRAG ("ccollections\nOrderedDict\n)R"), FRAG ("X\x07\0\0\0storage"), FRAG ("X\x03\0\0\0cpu"),
  FRAG ("X\x01\0\0\0" "0"), FRAG ("X\x01\0\0\0" "1"), FRAG ("X\x00\0\0\0"),
  FRAG ("\x8c\x05torch\x8c\x0b" "FloatStorage\x93"), FRAG ("\x94"),
  FRAG ("J\xff\xff\xff\x7f"), FRAG ("J\x00\x00\x00\x80"), FRAG ("J\xff\xff\xff\xff"),
  FRAG ("\x8a\x08\xff\xff\xff\xff\xff\xff\xff\x7f"), FRAG ("\x8a\x08\0\0\0\0\0\0\0\x80"),
  FRAG ("\x8a\x00"), FRAG ("\x8a\x01\xff"), FRAG ("K\x00"), FRAG ("K\x01"), FRAG ("K\xff"),
  FRAG ("M\xff\xff"), FRAG ("h\x00"), FRAG ("h\x01"), FRAG ("j\xff\xff\xff\xff"),
  FRAG ("q\x00"), FRAG ("r\xff\xff\xff\xff"), FRAG ("G\x7f\xf0\0\0\0\0\0\0"),
  FRAG ("\x95\x08\0\0\0\0\0\0\0"), FRAG ("\x80\x04"), FRAG ("(K\x01K\x02t"),
  FRAG ("(K\x00K\x00t"), FRAG ("(t"), FRAG ("(K\x01t"),
};
#undef FRAG

static const char *const storage_classes[] = {
  "FloatStorage", "HalfStorage", "BFloat16Storage", "DoubleStorage", "LongStorage",
  "IntStorage", "ByteStorage",
};

static const guint8 small_ints[] = { 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 24, 25, 64, 127, 128, 255 };

static void
mutate_pickle (DdpmRng *rng, Buf *b, int *kinds)
{
  int kind = (int) ddpm_rng_next_below (rng, 10);
  kinds[kind]++;

  switch (kind)
    {
    case 0:   /* bit flip */
      if (b->len)
        b->data[pick (rng, b->len)] ^= (guint8) (1u << ddpm_rng_next_below (rng, 8));
      break;
    case 1:   /* interesting byte */
      if (b->len)
        b->data[pick (rng, b->len)] = interesting_bytes[pick (rng, sizeof interesting_bytes)];
      break;
    case 2:   /* truncation */
      b->len = pick (rng, b->len + 1);
      break;
    case 3:   /* delete a chunk */
      if (b->len)
        {
          gsize p = pick (rng, b->len), n = 1 + pick (rng, MIN (32, b->len - p));
          splice (b, p, n, "", 0);
        }
      break;
    case 4:   /* duplicate a chunk in place */
      if (b->len)
        {
          gsize p = pick (rng, b->len), n = 1 + pick (rng, MIN (128, b->len - p));
          guint8 *copy = g_memdup2 (b->data + p, n);
          splice (b, p, 0, copy, n);
          g_free (copy);
        }
      break;
    case 5:   /* a chunk of another seed's pickle spliced in */
      {
        const Seed *o = seeds->pdata[pick (rng, seeds->len)];
        gsize olen;
        const guint8 *od = g_bytes_get_data (o->pickle, &olen);
        if (olen == 0)
          break;
        gsize src = pick (rng, olen), n = 1 + pick (rng, MIN (128, olen - src));
        gsize p = pick (rng, b->len + 1), del = pick (rng, MIN (64, b->len - p) + 1);
        splice (b, p, del, od + src, n);
      }
      break;
    case 6:   /* insert a fragment */
    case 7:
      {
        gsize f = pick (rng, G_N_ELEMENTS (fragments));
        splice (b, pick (rng, b->len + 1), 0, fragments[f].p, fragments[f].n);
      }
      break;
    case 8:   /* retarget a BININT1 operand: a size, stride, offset or numel */
      {
        gsize p = pick (rng, b->len);
        while (p + 1 < b->len && b->data[p] != 'K')
          p++;
        if (p + 1 < b->len)
          b->data[p + 1] = small_ints[pick (rng, sizeof small_ints)];
      }
      break;
    default:  /* rename a storage class */
      {
        gsize p = pick (rng, b->len);
        guint8 *at = b->len > p ? find_bytes (b->data + p, b->len - p, "Storage\n", 8) : NULL;
        if (at == NULL)
          at = find_bytes (b->data, b->len, "Storage\n", 8);
        if (at == NULL)
          break;
        gsize end = (gsize) (at - b->data) + 7, start = end - 7;
        while (start > 0 && b->data[start - 1] != '\n')
          start--;
        const char *cls = storage_classes[pick (rng, G_N_ELEMENTS (storage_classes))];
        splice (b, start, end - start, cls, strlen (cls));
      }
      break;
    }
}

/* Whole-file mutations: bytes, truncations, chunks. */
static void
mutate_file (DdpmRng *rng, Buf *b, int *kinds)
{
  int kind = (int) ddpm_rng_next_below (rng, 5);
  kinds[10 + kind]++;

  switch (kind)
    {
    case 0:
      if (b->len)
        b->data[pick (rng, b->len)] ^= (guint8) (1u << ddpm_rng_next_below (rng, 8));
      break;
    case 1:
      if (b->len)
        b->data[pick (rng, b->len)] = interesting_bytes[pick (rng, 11)];
      break;
    case 2:
      b->len = pick (rng, b->len + 1);
      break;
    case 3:
      if (b->len)
        {
          gsize p = pick (rng, b->len), n = 1 + pick (rng, MIN (16, b->len - p));
          splice (b, p, n, "", 0);
        }
      break;
    default:  /* a little-endian size field somewhere set to an extreme */
      if (b->len >= 4)
        {
          static const guint32 v[] = { 0, 1, 0x7fffffff, 0xffffffff, 0x10000 };
          guint32 x = GUINT32_TO_LE (v[pick (rng, G_N_ELEMENTS (v))]);
          memcpy (b->data + pick (rng, b->len - 3), &x, 4);
        }
      break;
    }
}

/* ------------------------------------------------------------------ driver */

typedef struct
{
  guint64 cases, opened, corrupt, unsupported, no_memory, tensors, values;
} Stats;

static void
run_case (const Buf *b, gboolean pickle_only, guint64 seed, guint64 c, Stats *st)
{
  DdpmTorchFuzzResult r;
  char *problem = ddpm_torch_checkpoint_fuzz (b->data, b->len, pickle_only, &r);

  if (problem)
    g_error ("seed %" G_GUINT64_FORMAT " case %" G_GUINT64_FORMAT ": %s", seed, c, problem);
  st->cases++;
  if (r.opened)
    {
      st->opened++;
      st->tensors += r.n_tensors;
      st->values += r.n_values;
    }
  else if (r.error_code == DDPM_ERROR_CORRUPT_FILE)
    st->corrupt++;
  else if (r.error_code == DDPM_ERROR_UNSUPPORTED)
    st->unsupported++;
  else
    st->no_memory++;
}

static guint64
env_u64 (const char *name, guint64 fallback)
{
  const char *v = g_getenv (name);
  return v && *v ? g_ascii_strtoull (v, NULL, 10) : fallback;
}

static void
report (const char *what, const Stats *st)
{
  g_test_message ("%s: %" G_GUINT64_FORMAT " cases, %" G_GUINT64_FORMAT " opened (%"
                  G_GUINT64_FORMAT " tensors, %" G_GUINT64_FORMAT " values read), %"
                  G_GUINT64_FORMAT " corrupt, %" G_GUINT64_FORMAT " unsupported, %"
                  G_GUINT64_FORMAT " out of memory", what, st->cases, st->opened, st->tensors,
                  st->values, st->corrupt, st->unsupported, st->no_memory);
}

static void
test_seeds (void)
{
  /* Unmutated, the readable seeds open and read; the others are refused. */
  make_seeds ();
  for (guint i = 0; i < seeds->len; i++)
    {
      const Seed *s = seeds->pdata[i];
      gsize len;
      const guint8 *data = g_bytes_get_data (s->file, &len);
      DdpmTorchFuzzResult r;
      char *problem = ddpm_torch_checkpoint_fuzz (data, len, FALSE, &r);
      gboolean refused = strstr (s->name, "evil") || strstr (s->name, "short")
                         || strstr (s->name, "legacy");

      g_assert_null (problem);
      g_assert_cmpint (r.opened, ==, !refused);
      if (!refused)
        g_assert_cmpuint (r.n_tensors, >, 0);
      data = g_bytes_get_data (s->pickle, &len);
      problem = ddpm_torch_checkpoint_fuzz (data, len, TRUE, &r);
      g_assert_null (problem);
      /* Alone, the short storage's pickle is fine. */
      g_assert_cmpint (r.opened, ==, !refused || strstr (s->name, "short"));
    }
  g_ptr_array_unref (seeds);
}

static void
test_fuzz (void)
{
  guint64 n_cases = env_u64 ("DDPM_FUZZ_CASES", DEFAULT_CASES);
  guint64 seed = env_u64 ("DDPM_FUZZ_SEED", 1);
  guint64 first = env_u64 ("DDPM_FUZZ_FIRST", 0);
  gboolean verbose = env_u64 ("DDPM_FUZZ_VERBOSE", 0) != 0;
  guint case_timeout = (guint) env_u64 ("DDPM_FUZZ_CASE_TIMEOUT", 0);
  Stats pk = { 0 }, rz = { 0 }, fl = { 0 };
  int kinds[15] = { 0 };
  Buf b = { 0 }, z = { 0 };

  make_seeds ();
  for (guint64 c = first; c < first + n_cases; c++)
    {
      if (verbose)
        {
          printf ("# case seed %" G_GUINT64_FORMAT " index %" G_GUINT64_FORMAT "\n", seed, c);
          fflush (stdout);
        }
      if (case_timeout)
        alarm (case_timeout);
      /* One generator per case: case c is reproducible on its own. */
      DdpmRng rng;
      ddpm_rng_init (&rng, seed, c);
      const Seed *s = seeds->pdata[c % seeds->len];
      int what = c % 6 < 4 ? 0 : c % 6 == 4 ? 1 : 2;   /* pickle, rezip, file */
      gsize len;
      const guint8 *data;

      if (what == 2)
        {
          data = g_bytes_get_data (s->file, &len);
          buf_set (&b, data, len);
          int n_mut = 1;
          while (n_mut < 4 && ddpm_rng_next_uniform (&rng) < 0.3)
            n_mut++;
          for (int m = 0; m < n_mut; m++)
            mutate_file (&rng, &b, kinds);
          run_case (&b, FALSE, seed, c, &fl);
          continue;
        }

      data = g_bytes_get_data (s->pickle, &len);
      if (len == 0)
        continue;   /* the legacy seed has no data.pkl */
      buf_set (&b, data, len);
      /* Mostly one mutation (a pickle that still nearly parses reaches
       * deep), sometimes a stack of up to five. */
      int n_mut = 1;
      while (n_mut < 5 && ddpm_rng_next_uniform (&rng) < 0.35)
        n_mut++;
      for (int m = 0; m < n_mut; m++)
        mutate_pickle (&rng, &b, kinds);
      if (what == 0)
        run_case (&b, TRUE, seed, c, &pk);
      else
        {
          rezip (s, &b, &z);
          run_case (&z, FALSE, seed, c, &rz);
        }
    }
  alarm (0);
  g_free (b.data);
  g_free (z.data);
  g_ptr_array_unref (seeds);

  report ("pickle", &pk);
  report ("rezip", &rz);
  report ("file", &fl);
  g_test_message ("pickle mutations: flip %d, byte %d, truncate %d, delete %d, duplicate %d, "
                  "splice %d, fragment %d, int operand %d, storage class %d; file: flip %d, "
                  "byte %d, truncate %d, delete %d, size field %d", kinds[0], kinds[1],
                  kinds[2], kinds[3], kinds[4], kinds[5], kinds[6] + kinds[7], kinds[8],
                  kinds[9], kinds[10], kinds[11], kinds[12], kinds[13], kinds[14]);
  printf ("# FUZZ-SUMMARY cases=%" G_GUINT64_FORMAT " opened=%" G_GUINT64_FORMAT "\n",
          pk.cases + rz.cases + fl.cases, pk.opened + rz.opened + fl.opened);

  /* Every outcome must be exercised, or the mutations are too weak (all
   * refused) or never reach the checks (all opened). */
  if (n_cases >= 6000)
    {
      g_assert_cmpuint (pk.opened, >, pk.cases / 50);
      g_assert_cmpuint (pk.corrupt, >, pk.cases / 20);
      g_assert_cmpuint (pk.unsupported, >, pk.cases / 20);
      g_assert_cmpuint (rz.opened, >, rz.cases / 50);
      g_assert_cmpuint (rz.corrupt, >, rz.cases / 20);
      g_assert_cmpuint (fl.corrupt, >, fl.cases / 2);
    }
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/engine/torch-pickle-fuzz/seeds", test_seeds);
  g_test_add_func ("/engine/torch-pickle-fuzz/mutations", test_fuzz);
  return g_test_run ();
}
