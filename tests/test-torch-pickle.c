/* test-torch-pickle.c: the PyTorch checkpoint reader.
 *
 * Real checkpoints made by torch.save (tests/make-torch-pickle-fixtures.py,
 * PyTorch 1.13) are read and every name, dtype, shape and value compared
 * bit for bit with the dump the script wrote beside each; files that must
 * be refused (the legacy format, a pickle calling os.system, a short
 * storage) are refused with messages that say why.  Hand-assembled
 * pickles, zipped here with libzip, probe what torch never writes:
 * forbidden globals and opcodes, views beyond their storage, absurd sizes
 * and the unpickler's limits.
 */
#include <math.h>
#include <string.h>

#include <glib/gstdio.h>
#include <zip.h>

#include "torch-pickle.h"

#define PWNED "/tmp/ddpm-torch-pickle-pwned"

/* ------------------------------------------------------------- fixtures */

/* memmem without _GNU_SOURCE. */
static guint8 *
find_bytes (const guint8 *hay, gsize n, const void *needle, gsize m)
{
  for (gsize i = 0; m <= n && i <= n - m; i++)
    if (memcmp (hay + i, needle, m) == 0)
      return (guint8 *) hay + i;
  return NULL;
}


static char *
fixture_path (const char *name)
{
  return g_test_build_filename (G_TEST_DIST, "fixtures", name, NULL);
}

static GBytes *
fixture_bytes (const char *name)
{
  char *path = fixture_path (name), *contents;
  gsize len;
  GError *error = NULL;

  g_file_get_contents (path, &contents, &len, &error);
  g_assert_no_error (error);
  g_free (path);
  return g_bytes_new_take (contents, len);
}

/* Compare a checkpoint with the script's dump: same tensors in the same
 * order, same dtypes and shapes, bit-identical float32 values (NaN for NaN). */
static DdpmTorchCheckpoint *
check_fixture (const char *stem)
{
  char *pt = g_strdup_printf ("torch-%s.pt", stem), *txt = g_strdup_printf ("torch-%s.txt", stem);
  char *path = fixture_path (pt);
  GError *error = NULL;
  DdpmTorchCheckpoint *ckpt = ddpm_torch_checkpoint_open (path, &error);
  g_assert_no_error (error);
  g_assert_nonnull (ckpt);

  GBytes *dump = fixture_bytes (txt);
  char *text = g_strndup (g_bytes_get_data (dump, NULL), g_bytes_get_size (dump));
  char **lines = g_strsplit (g_strchomp (text), "\n", -1);
  guint n_lines = g_strv_length (lines);
  g_assert_cmpuint (ddpm_torch_checkpoint_get_n_tensors (ckpt), ==, n_lines);

  for (guint i = 0; i < n_lines; i++)
    {
      char **f = g_strsplit (lines[i], "\t", -1);
      g_assert_cmpuint (g_strv_length (f), ==, 4);
      const DdpmTorchTensor *t = ddpm_torch_checkpoint_get_tensor (ckpt, i);

      g_assert_cmpstr (t->name, ==, f[0]);
      g_assert_true (ddpm_torch_checkpoint_lookup (ckpt, f[0]) == t);
      g_assert_cmpstr (ddpm_torch_dtype_name (t->dtype), ==, f[1]);

      char **dims = g_strsplit (f[2], ",", -1);
      int ndim = *f[2] ? (int) g_strv_length (dims) : 0;
      guint64 numel = 1;
      g_assert_cmpint (t->ndim, ==, ndim);
      for (int d = 0; d < ndim; d++)
        {
          g_assert_cmpint (t->shape[d], ==, g_ascii_strtoll (dims[d], NULL, 10));
          numel *= (guint64) t->shape[d];
        }
      g_assert_cmpuint (t->numel, ==, numel);

      char **vals = g_strsplit (f[3], " ", -1);
      g_assert_cmpuint (*f[3] ? g_strv_length (vals) : 0, ==, numel);
      float *got = g_new0 (float, MAX (numel, 1));
      g_assert_true (ddpm_torch_checkpoint_read_f32 (ckpt, t, got, numel, &error));
      g_assert_no_error (error);
      for (guint64 k = 0; k < numel; k++)
        {
          float want = (float) g_ascii_strtod (vals[k], NULL);
          if (isnan (want))
            g_assert_true (isnan (got[k]));
          else if (memcmp (&want, &got[k], 4) != 0)
            g_error ("%s: %s[%" G_GUINT64_FORMAT "] = %.9g, want %.9g", stem, t->name, k,
                     got[k], want);
        }
      g_free (got);
      g_strfreev (vals);
      g_strfreev (dims);
      g_strfreev (f);
    }
  g_strfreev (lines);
  g_free (text);
  g_bytes_unref (dump);
  g_free (path);
  g_free (txt);
  g_free (pt);
  return ckpt;
}

static void
test_f32 (void)
{
  DdpmTorchCheckpoint *ckpt = check_fixture ("f32");

  /* Nested module names, the BatchNorm counter as I64, the prefix from the
   * file name at save time. */
  const DdpmTorchTensor *t = ddpm_torch_checkpoint_lookup (ckpt, "down.0.0.conv.weight");
  g_assert_nonnull (t);
  g_assert_cmpint (t->ndim, ==, 4);
  t = ddpm_torch_checkpoint_lookup (ckpt, "bn.num_batches_tracked");
  g_assert_nonnull (t);
  g_assert_cmpint (t->dtype, ==, DDPM_TORCH_DTYPE_I64);
  g_assert_cmpint (t->ndim, ==, 0);
  g_assert_cmpstr (ddpm_torch_checkpoint_get_prefix (ckpt), ==, "torch-f32");
  g_assert_null (ddpm_torch_checkpoint_get_state_dict_key (ckpt));
  g_assert_null (ddpm_torch_checkpoint_lookup (ckpt, "_metadata"));
  ddpm_torch_checkpoint_free (ckpt);
}

static void
test_f16 (void)
{
  DdpmTorchCheckpoint *ckpt = check_fixture ("f16");
  g_assert_cmpint (ddpm_torch_checkpoint_lookup (ckpt, "special")->dtype, ==, DDPM_TORCH_DTYPE_F16);
  g_assert_cmpint (ddpm_torch_checkpoint_lookup (ckpt, "conv_in.weight")->dtype, ==,
                   DDPM_TORCH_DTYPE_F16);
  ddpm_torch_checkpoint_free (ckpt);
}

static void
test_bf16 (void)
{
  DdpmTorchCheckpoint *ckpt = check_fixture ("bf16");
  g_assert_cmpint (ddpm_torch_checkpoint_lookup (ckpt, "special")->dtype, ==,
                   DDPM_TORCH_DTYPE_BF16);
  ddpm_torch_checkpoint_free (ckpt);
}

static void
test_views (void)
{
  g_autoptr (DdpmTorchCheckpoint) ckpt = check_fixture ("views");
  const DdpmTorchTensor *base = ddpm_torch_checkpoint_lookup (ckpt, "base");
  const DdpmTorchTensor *tr = ddpm_torch_checkpoint_lookup (ckpt, "transposed");
  const DdpmTorchTensor *sl = ddpm_torch_checkpoint_lookup (ckpt, "slice");
  const DdpmTorchTensor *ex = ddpm_torch_checkpoint_lookup (ckpt, "expanded");

  /* One storage under five views. */
  g_assert_cmpstr (tr->storage_key, ==, base->storage_key);
  g_assert_cmpstr (sl->storage_key, ==, base->storage_key);
  g_assert_cmpstr (ddpm_torch_checkpoint_lookup (ckpt, "column")->storage_key, ==,
                   base->storage_key);
  g_assert_cmpuint (base->storage_numel, ==, 24);
  g_assert_cmpint (tr->stride[0], ==, 1);
  g_assert_cmpint (tr->stride[1], ==, 6);
  g_assert_cmpint (sl->storage_offset, ==, 8);
  g_assert_cmpint (ddpm_torch_checkpoint_lookup (ckpt, "flat_part")->storage_offset, ==, 5);
  g_assert_cmpint (ex->stride[0], ==, 0);
  g_assert_cmpuint (ex->storage_numel, ==, 3);
  g_assert_cmpint (ddpm_torch_checkpoint_lookup (ckpt, "double")->dtype, ==, DDPM_TORCH_DTYPE_F64);
  g_assert_cmpuint (ddpm_torch_checkpoint_lookup (ckpt, "empty")->numel, ==, 0);
}

static void
test_guided (void)
{
  /* guided-diffusion's fp16 layout: every parameter a view at its own
   * offset into one of two master storages. */
  g_autoptr (DdpmTorchCheckpoint) ckpt = check_fixture ("guided");
  GHashTable *keys = g_hash_table_new (g_str_hash, g_str_equal);
  guint n_offset = 0;

  for (guint i = 0; i < ddpm_torch_checkpoint_get_n_tensors (ckpt); i++)
    {
      const DdpmTorchTensor *t = ddpm_torch_checkpoint_get_tensor (ckpt, i);
      g_hash_table_add (keys, (char *) t->storage_key);
      n_offset += t->storage_offset > 0;
    }
  g_assert_cmpuint (g_hash_table_size (keys), ==, 5);
  g_assert_cmpuint (n_offset, >, 5);
  g_hash_table_unref (keys);
}

static void
test_protocol4 (void)
{
  ddpm_torch_checkpoint_free (check_fixture ("protocol4"));
}

static void
test_wrapped (void)
{
  g_autoptr (DdpmTorchCheckpoint) ckpt = check_fixture ("wrapped");
  g_assert_cmpstr (ddpm_torch_checkpoint_get_state_dict_key (ckpt), ==, "model");
}

static void
test_top_folder (void)
{
  g_autoptr (DdpmTorchCheckpoint) ckpt = check_fixture ("renamed");
  g_assert_cmpstr (ddpm_torch_checkpoint_get_prefix (ckpt), ==, "weights");
}

/* Open a fixture that must be refused; returns the error. */
static GError *
open_refused (const char *name, int code)
{
  char *path = fixture_path (name);
  GError *error = NULL;
  DdpmTorchCheckpoint *ckpt = ddpm_torch_checkpoint_open (path, &error);

  g_assert_null (ckpt);
  g_assert_error (error, DDPM_ERROR, code);
  g_assert_nonnull (strstr (error->message, name));
  g_test_message ("%s: %s", name, error->message);
  g_free (path);
  return error;
}

static void
test_legacy (void)
{
  GError *error = open_refused ("torch-legacy.pt", DDPM_ERROR_UNSUPPORTED);
  g_assert_nonnull (strstr (error->message, "legacy"));
  g_assert_nonnull (strstr (error->message, "torch.save(torch.load("));
  g_error_free (error);
}

static void
test_os_system (void)
{
  g_unlink (PWNED);
  g_assert_false (g_file_test (PWNED, G_FILE_TEST_EXISTS));

  GError *error = open_refused ("torch-evil.pt", DDPM_ERROR_UNSUPPORTED);
  g_assert_nonnull (strstr (error->message, "posix.system"));
  g_assert_nonnull (strstr (error->message, "Nothing in the file was run"));
  g_clear_error (&error);
  /* The command it carries would have created the file. */
  g_assert_false (g_file_test (PWNED, G_FILE_TEST_EXISTS));

  /* Same from memory, and as data.pkl alone. */
  GBytes *bytes = fixture_bytes ("torch-evil.pt");
  g_assert_null (ddpm_torch_checkpoint_open_bytes (bytes, "evil", &error));
  g_assert_error (error, DDPM_ERROR, DDPM_ERROR_UNSUPPORTED);
  g_clear_error (&error);
  g_bytes_unref (bytes);
  g_assert_false (g_file_test (PWNED, G_FILE_TEST_EXISTS));
}

static void
test_short_storage (void)
{
  GError *error = open_refused ("torch-short-storage.pt", DDPM_ERROR_CORRUPT_FILE);
  g_assert_nonnull (strstr (error->message, "torch-short-storage/data/0 holds 20 bytes"));
  g_assert_nonnull (strstr (error->message, "6 F32 elements (24 bytes)"));
  g_error_free (error);
}

static void
test_truncated (void)
{
  GBytes *whole = fixture_bytes ("torch-f32.pt");
  gsize size;
  const guint8 *data = g_bytes_get_data (whole, &size);
  guint n = 0;

  /* Every length short of whole: the end-of-directory record is gone. */
  for (gsize len = 0; len < size; len += (len < 64 || size - len < 64) ? 1 : 7)
    {
      GBytes *cut = g_bytes_new (data, len);
      GError *error = NULL;
      g_assert_null (ddpm_torch_checkpoint_open_bytes (cut, "cut.pt", &error));
      g_assert_error (error, DDPM_ERROR, DDPM_ERROR_CORRUPT_FILE);
      g_assert_nonnull (strstr (error->message, "cut.pt"));
      g_error_free (error);
      g_bytes_unref (cut);
      n++;
    }
  g_test_message ("%u truncations refused", n);
  g_bytes_unref (whole);
}

static void
test_damaged_storage (void)
{
  /* Flip one bit of layer.bias's data: the directory is intact, so the
   * file opens, but reading the tensor meets the CRC. */
  GBytes *bytes = fixture_bytes ("torch-protocol4.pt");
  gsize size;
  const guint8 *original = g_bytes_get_data (bytes, &size);
  guint8 *data = g_memdup2 (original, size);
  g_autoptr (DdpmTorchCheckpoint) good = ddpm_torch_checkpoint_open_bytes (bytes, "good", NULL);
  const DdpmTorchTensor *bias = ddpm_torch_checkpoint_lookup (good, "layer.bias");
  float b[3];
  g_assert_true (ddpm_torch_checkpoint_read_f32 (good, bias, b, 3, NULL));

  guint8 *at = find_bytes (data, size, b, sizeof b);
  g_assert_nonnull (at);
  at[5] ^= 0x10;
  GBytes *flipped = g_bytes_new_take (data, size);
  GError *error = NULL;
  g_autoptr (DdpmTorchCheckpoint) ckpt = ddpm_torch_checkpoint_open_bytes (flipped, "flipped.pt",
                                                                           &error);
  g_assert_no_error (error);
  bias = ddpm_torch_checkpoint_lookup (ckpt, "layer.bias");
  g_assert_false (ddpm_torch_checkpoint_read_f32 (ckpt, bias, b, 3, &error));
  g_assert_error (error, DDPM_ERROR, DDPM_ERROR_CORRUPT_FILE);
  g_assert_nonnull (strstr (error->message, "flipped.pt"));
  g_assert_nonnull (strstr (error->message, "layer.bias"));
  g_test_message ("%s", error->message);
  g_error_free (error);

  /* The other tensor is intact. */
  float w[6];
  g_assert_true (ddpm_torch_checkpoint_read_f32 (ckpt, ddpm_torch_checkpoint_lookup (ckpt, "layer.weight"),
                                                 w, 6, NULL));
  g_bytes_unref (flipped);
  g_bytes_unref (bytes);
}

static void
test_read_arguments (void)
{
  g_autoptr (DdpmTorchCheckpoint) ckpt = check_fixture ("protocol4");
  const DdpmTorchTensor *t = ddpm_torch_checkpoint_lookup (ckpt, "layer.weight");
  float w[7];
  GError *error = NULL;

  g_assert_false (ddpm_torch_checkpoint_read_f32 (ckpt, t, w, 7, &error));
  g_assert_error (error, DDPM_ERROR, DDPM_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);
  g_assert_false (ddpm_torch_checkpoint_read_f32 (ckpt, t, w, 5, &error));
  g_assert_error (error, DDPM_ERROR, DDPM_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);
}

static void
test_open_errors (void)
{
  GError *error = NULL;
  char *dir = g_dir_make_tmp ("ddpm-torch-XXXXXX", &error);
  g_assert_no_error (error);

  char *missing = g_build_filename (dir, "missing.pt", NULL);
  g_assert_null (ddpm_torch_checkpoint_open (missing, &error));
  g_assert_error (error, DDPM_ERROR, DDPM_ERROR_IO);
  g_assert_nonnull (strstr (error->message, "missing.pt"));
  g_clear_error (&error);

  g_assert_null (ddpm_torch_checkpoint_open (dir, &error));
  g_assert_error (error, DDPM_ERROR, DDPM_ERROR_IO);
  g_clear_error (&error);

  char *empty = g_build_filename (dir, "empty.pt", NULL);
  g_assert_true (g_file_set_contents (empty, "", 0, NULL));
  g_assert_null (ddpm_torch_checkpoint_open (empty, &error));
  g_assert_error (error, DDPM_ERROR, DDPM_ERROR_CORRUPT_FILE);
  g_clear_error (&error);
  g_unlink (empty);

  GBytes *junk = g_bytes_new_static ("PK\3\4 this is not a zip archive at all", 38);
  g_assert_null (ddpm_torch_checkpoint_open_bytes (junk, "junk.pt", &error));
  g_assert_error (error, DDPM_ERROR, DDPM_ERROR_CORRUPT_FILE);
  g_assert_nonnull (strstr (error->message, "junk.pt"));
  g_clear_error (&error);
  g_bytes_unref (junk);

  g_rmdir (dir);
  g_free (empty);
  g_free (missing);
  g_free (dir);
}

/* ------------------------------------------------- hand-made checkpoints */

/* A pickle assembler: just enough to write what torch writes, and what it
 * does not. */
static void
pk_op (GByteArray *b, guint8 op)
{
  g_byte_array_append (b, &op, 1);
}

static void
pk_raw (GByteArray *b, const void *data, gsize n)
{
  g_byte_array_append (b, data, (guint) n);
}

static void
pk_str (GByteArray *b, const char *s)
{
  guint32 n = GUINT32_TO_LE ((guint32) strlen (s));
  pk_op (b, 'X');
  pk_raw (b, &n, 4);
  pk_raw (b, s, strlen (s));
}

static void
pk_global (GByteArray *b, const char *module, const char *name)
{
  pk_op (b, 'c');
  pk_raw (b, module, strlen (module));
  pk_op (b, '\n');
  pk_raw (b, name, strlen (name));
  pk_op (b, '\n');
}

/* Any int: BININT when it fits, else an 8-byte LONG1. */
static void
pk_int (GByteArray *b, gint64 v)
{
  if (v >= G_MININT32 && v <= G_MAXINT32)
    {
      guint32 le = GUINT32_TO_LE ((guint32) v);
      pk_op (b, 'J');
      pk_raw (b, &le, 4);
    }
  else
    {
      guint64 le = GUINT64_TO_LE ((guint64) v);
      pk_op (b, 0x8a);
      pk_op (b, 8);
      pk_raw (b, &le, 8);
    }
}

static void
pk_ordered_dict (GByteArray *b)
{
  pk_global (b, "collections", "OrderedDict");
  pk_op (b, ')');
  pk_op (b, 'R');
}

/* _rebuild_tensor_v2 ((storage, cls, key, 'cpu', numel), offset, shape,
 * stride, False, OrderedDict ()) */
static void
pk_tensor_ranks (GByteArray *b, const char *cls, const char *key, gint64 numel, gint64 offset,
                 int ndim, const gint64 *shape, int n_stride, const gint64 *stride)
{
  pk_global (b, "torch._utils", "_rebuild_tensor_v2");
  pk_op (b, '(');
  pk_op (b, '(');
  pk_str (b, "storage");
  pk_global (b, "torch", cls);
  pk_str (b, key);
  pk_str (b, "cpu");
  pk_int (b, numel);
  pk_op (b, 't');
  pk_op (b, 'Q');
  pk_int (b, offset);
  pk_op (b, '(');
  for (int d = 0; d < ndim; d++)
    pk_int (b, shape[d]);
  pk_op (b, 't');
  pk_op (b, '(');
  for (int d = 0; d < n_stride; d++)
    pk_int (b, stride[d]);
  pk_op (b, 't');
  pk_op (b, 0x89);
  pk_ordered_dict (b);
  pk_op (b, 't');
  pk_op (b, 'R');
}

static void
pk_tensor (GByteArray *b, const char *cls, const char *key, gint64 numel, gint64 offset,
           int ndim, const gint64 *shape, const gint64 *stride)
{
  pk_tensor_ranks (b, cls, key, numel, offset, ndim, shape, ndim, stride);
}

/* PROTO 2, OrderedDict (), MARK, 'w', <tensor>, SETITEMS, STOP */
static GByteArray *
pk_state_dict (const char *cls, gint64 numel, gint64 offset, int ndim, const gint64 *shape,
               const gint64 *stride)
{
  GByteArray *b = g_byte_array_new ();
  pk_op (b, 0x80);
  pk_op (b, 2);
  pk_ordered_dict (b);
  pk_op (b, '(');
  pk_str (b, "w");
  pk_tensor (b, cls, "0", numel, offset, ndim, shape, stride);
  pk_op (b, 'u');
  pk_op (b, '.');
  return b;
}

/* A zip archive in memory of (name, bytes) pairs, compressed with
 * `method` (ZIP_CM_STORE as torch writes, or ZIP_CM_DEFLATE). */
static GBytes *
make_zip_method (int n, const char *const *names, GBytes *const *contents, zip_int32_t method)
{
  zip_error_t ze;
  zip_error_init (&ze);
  zip_source_t *src = zip_source_buffer_create (NULL, 0, 0, &ze);
  g_assert_nonnull (src);
  zip_source_keep (src);
  zip_t *za = zip_open_from_source (src, ZIP_TRUNCATE, &ze);
  g_assert_nonnull (za);
  for (int i = 0; i < n; i++)
    {
      gsize len;
      const void *data = g_bytes_get_data (contents[i], &len);
      zip_source_t *s = zip_source_buffer (za, data, len, 0);
      zip_int64_t idx = zip_file_add (za, names[i], s, ZIP_FL_ENC_UTF_8);
      g_assert_cmpint (idx, >=, 0);
      zip_set_file_compression (za, (zip_uint64_t) idx, method, 0);
    }
  g_assert_cmpint (zip_close (za), ==, 0);

  g_assert_cmpint (zip_source_open (src), ==, 0);
  zip_source_seek (src, 0, SEEK_END);
  zip_int64_t size = zip_source_tell (src);
  zip_source_seek (src, 0, SEEK_SET);
  guint8 *out = g_malloc (MAX (size, 1));
  g_assert_cmpint (zip_source_read (src, out, (zip_uint64_t) size), ==, size);
  zip_source_close (src);
  zip_source_free (src);
  zip_error_fini (&ze);
  return g_bytes_new_take (out, (gsize) size);
}

static GBytes *
make_zip (int n, const char *const *names, GBytes *const *contents)
{
  return make_zip_method (n, names, contents, ZIP_CM_STORE);
}

/* top/data.pkl = pickle, top/data/0 = storage_bytes bytes (element k of
 * an F32 storage is k + 0.5), top/version, and top/byteorder if given. */
static GBytes *
make_checkpoint (GByteArray *pickle, gsize storage_bytes, const char *byteorder)
{
  const char *names[4] = { "top/data.pkl", "top/data/0", "top/version", "top/byteorder" };
  GBytes *contents[4];
  guint8 *storage = g_malloc0 (MAX (storage_bytes, 1));

  for (gsize k = 0; k + 4 <= storage_bytes; k += 4)
    {
      float v = (float) (k / 4) + 0.5f;
      memcpy (storage + k, &v, 4);
    }
  contents[0] = g_bytes_new (pickle->data, pickle->len);
  contents[1] = g_bytes_new_take (storage, storage_bytes);
  contents[2] = g_bytes_new_static ("3\n", 2);
  contents[3] = g_bytes_new_static (byteorder ? byteorder : "", byteorder ? strlen (byteorder) : 0);
  GBytes *zip = make_zip (byteorder ? 4 : 3, names, contents);
  for (int i = 0; i < 4; i++)
    g_bytes_unref (contents[i]);
  return zip;
}

/* Open pickle+storage as a checkpoint; also as data.pkl alone (which must
 * agree unless the storage is inconsistent with the pickle). */
static DdpmTorchCheckpoint *
open_made (GByteArray *pickle, gsize storage_bytes, const char *byteorder, GError **error)
{
  GBytes *zip = make_checkpoint (pickle, storage_bytes, byteorder);
  DdpmTorchCheckpoint *ckpt = ddpm_torch_checkpoint_open_bytes (zip, "made.pt", error);
  g_bytes_unref (zip);
  g_assert_true (ckpt != NULL || strstr ((*error)->message, "made.pt") != NULL);
  return ckpt;
}

/* Set while a loop would log hundreds of messages. */
static gboolean quiet;

static void
expect_refused (GByteArray *pickle, gsize storage_bytes, int code, const char *words)
{
  GError *error = NULL;
  DdpmTorchCheckpoint *ckpt = open_made (pickle, storage_bytes, NULL, &error);

  g_assert_null (ckpt);
  g_assert_error (error, DDPM_ERROR, code);
  if (strstr (error->message, words) == NULL)
    g_error ("expected '%s' in: %s", words, error->message);
  if (!quiet)
    g_test_message ("%s", error->message);
  g_error_free (error);
  g_byte_array_unref (pickle);
}

static void
test_made_valid (void)
{
  /* The assembler makes what torch makes: a 2×3 view at offset 1 of a
   * 7-element storage, read back; and the same as DoubleStorage. */
  const gint64 shape[] = { 2, 3 }, stride[] = { 3, 1 }, tshape[] = { 3, 2 }, tstride[] = { 1, 3 };
  GError *error = NULL;
  GByteArray *pk = pk_state_dict ("FloatStorage", 7, 1, 2, shape, stride);
  g_autoptr (DdpmTorchCheckpoint) ckpt = open_made (pk, 28, "little\n", &error);
  g_assert_no_error (error);
  g_assert_cmpstr (ddpm_torch_checkpoint_get_prefix (ckpt), ==, "top");
  float w[6];
  g_assert_true (ddpm_torch_checkpoint_read_f32 (ckpt, ddpm_torch_checkpoint_get_tensor (ckpt, 0),
                                                 w, 6, &error));
  for (int k = 0; k < 6; k++)
    g_assert_cmpfloat (w[k], ==, k + 1.5f);
  g_byte_array_unref (pk);

  /* Transposed: w[i][j] = storage[1 + i + 3j]. */
  pk = pk_state_dict ("FloatStorage", 7, 1, 2, tshape, tstride);
  DdpmTorchCheckpoint *t = open_made (pk, 28, NULL, &error);
  g_assert_no_error (error);
  g_assert_true (ddpm_torch_checkpoint_read_f32 (t, ddpm_torch_checkpoint_get_tensor (t, 0),
                                                 w, 6, &error));
  const float want[] = { 1.5f, 4.5f, 2.5f, 5.5f, 3.5f, 6.5f };
  for (int k = 0; k < 6; k++)
    g_assert_cmpfloat (w[k], ==, want[k]);
  ddpm_torch_checkpoint_free (t);
  g_byte_array_unref (pk);

  /* DoubleStorage is converted (rounded to float). */
  pk = pk_state_dict ("DoubleStorage", 2, 0, 1, (const gint64[]) { 2 }, (const gint64[]) { 1 });
  GBytes *zip;
  {
    double d[2] = { 0.1, -1e300 };
    const char *names[] = { "x/data.pkl", "x/data/0" };
    GBytes *c[] = { g_bytes_new (pk->data, pk->len), g_bytes_new (d, sizeof d) };
    zip = make_zip (2, names, c);
    g_bytes_unref (c[0]);
    g_bytes_unref (c[1]);
  }
  t = ddpm_torch_checkpoint_open_bytes (zip, "double.pt", &error);
  g_assert_no_error (error);
  g_assert_cmpint (ddpm_torch_checkpoint_get_tensor (t, 0)->dtype, ==, DDPM_TORCH_DTYPE_F64);
  g_assert_true (ddpm_torch_checkpoint_read_f32 (t, ddpm_torch_checkpoint_get_tensor (t, 0),
                                                 w, 2, &error));
  g_assert_cmpfloat (w[0], ==, 0.1f);
  g_assert_true (isinf (w[1]) && w[1] < 0);
  ddpm_torch_checkpoint_free (t);
  g_bytes_unref (zip);
  g_byte_array_unref (pk);
}

static void
test_made_bounds (void)
{
  const gint64 s3[] = { 3 }, s1[] = { 1 }, s2[] = { 2, 2 }, st2[] = { 2, 1 };

  /* Offset 2 + 3 elements in a 4-element storage. */
  expect_refused (pk_state_dict ("FloatStorage", 4, 2, 1, s3, s1), 16,
                  DDPM_ERROR_CORRUPT_FILE, "beyond the 4 elements of its storage '0'");
  /* A stride that steps past the end. */
  expect_refused (pk_state_dict ("FloatStorage", 4, 0, 2, s2, (const gint64[]) { 3, 1 }), 16,
                  DDPM_ERROR_CORRUPT_FILE, "beyond");
  /* Negative stride, negative offset, negative size. */
  expect_refused (pk_state_dict ("FloatStorage", 4, 0, 2, s2, (const gint64[]) { -2, 1 }), 16,
                  DDPM_ERROR_CORRUPT_FILE, "non-negative");
  expect_refused (pk_state_dict ("FloatStorage", 4, -1, 2, s2, st2), 16,
                  DDPM_ERROR_CORRUPT_FILE, "wrong types");
  expect_refused (pk_state_dict ("FloatStorage", 4, 0, 2, (const gint64[]) { -2, 2 }, st2), 16,
                  DDPM_ERROR_CORRUPT_FILE, "non-negative");
  /* Stride overflowing 64 bits. */
  expect_refused (pk_state_dict ("FloatStorage", 4, 0, 2, s2, (const gint64[]) { G_MAXINT64, 1 }),
                  16, DDPM_ERROR_CORRUPT_FILE, "beyond");
  /* numel overflowing 63 bits (with stride 0 the view stays in bounds). */
  {
    const gint64 big[] = { G_MAXINT32, G_MAXINT32, G_MAXINT32 }, zero[] = { 0, 0, 0 };
    expect_refused (pk_state_dict ("FloatStorage", 4, 0, 3, big, zero), 16,
                    DDPM_ERROR_CORRUPT_FILE, "too many elements");
  }
  /* A broadcast view far larger than its storage. */
  {
    const gint64 big[] = { 1 << 20, 1 << 10 }, zero[] = { 0, 0 };
    expect_refused (pk_state_dict ("FloatStorage", 4, 0, 2, big, zero), 16,
                    DDPM_ERROR_UNSUPPORTED, "broadcast");
  }
  /* Nine dimensions. */
  {
    const gint64 ones[9] = { 1, 1, 1, 1, 1, 1, 1, 1, 1 };
    expect_refused (pk_state_dict ("FloatStorage", 4, 0, 9, ones, ones), 16,
                    DDPM_ERROR_UNSUPPORTED, "9 dimensions");
  }
  /* Size and stride of different ranks. */
  {
    GByteArray *b = g_byte_array_new ();
    pk_op (b, 0x80);
    pk_op (b, 2);
    pk_op (b, '}');
    pk_str (b, "w");
    pk_tensor_ranks (b, "FloatStorage", "0", 4, 0, 1, s3, 0, NULL);
    pk_op (b, 's');
    pk_op (b, '.');
    expect_refused (b, 16, DDPM_ERROR_CORRUPT_FILE, "as many");
  }
  /* A storage whose record is smaller than the pickle says, or missing. */
  expect_refused (pk_state_dict ("FloatStorage", 4, 0, 1, s3, s1), 8,
                  DDPM_ERROR_CORRUPT_FILE, "top/data/0 holds 8 bytes");
  expect_refused (pk_state_dict ("FloatStorage", 4, 0, 1, s3, s1), 20,
                  DDPM_ERROR_CORRUPT_FILE, "holds 20 bytes");
  {
    GByteArray *b = g_byte_array_new ();
    pk_op (b, 0x80);
    pk_op (b, 2);
    pk_op (b, '}');
    pk_str (b, "w");
    pk_tensor (b, "FloatStorage", "7", 1, 0, 0, NULL, NULL);
    pk_op (b, 's');
    pk_op (b, '.');
    expect_refused (b, 4, DDPM_ERROR_CORRUPT_FILE, "storage '7' has no record top/data/7");
  }
  /* Storage numel × element size overflowing. */
  expect_refused (pk_state_dict ("FloatStorage", G_MAXINT64 / 2, 0, 1, s3, s1), 16,
                  DDPM_ERROR_CORRUPT_FILE, "too large to address");
}

/* A pickle that names `module`.`name` and calls it. */
static GByteArray *
pk_calls (const char *module, const char *name, gboolean stack_global)
{
  GByteArray *b = g_byte_array_new ();
  pk_op (b, 0x80);
  pk_op (b, stack_global ? 4 : 2);
  pk_op (b, '}');
  pk_str (b, "x");
  if (stack_global)
    {
      pk_str (b, module);
      pk_str (b, name);
      pk_op (b, 0x93);
    }
  else
    pk_global (b, module, name);
  pk_str (b, "touch " PWNED);
  pk_op (b, 0x85);
  pk_op (b, 'R');
  pk_op (b, 's');
  pk_op (b, '.');
  return b;
}

static void
test_made_globals (void)
{
  static const char *const refused[][2] = {
    { "posix", "system" }, { "os", "system" }, { "builtins", "eval" },
    { "builtins", "exec" }, { "__builtin__", "eval" }, { "subprocess", "Popen" },
    { "__main__", "Net" }, { "torch", "load" }, { "torch._utils", "_rebuild_tensor" },
    { "torch.nn.modules.conv", "Conv2d" }, { "collections", "defaultdict" },
    { "torch", "FloatTensor" }, { "", "" },
  };

  g_unlink (PWNED);
  for (gsize i = 0; i < G_N_ELEMENTS (refused); i++)
    for (int sg = 0; sg < 2; sg++)
      {
        char *words = g_strdup_printf ("names %s.%s,", refused[i][0], refused[i][1]);
        expect_refused (pk_calls (refused[i][0], refused[i][1], sg), 0,
                        DDPM_ERROR_UNSUPPORTED, words);
        g_free (words);
      }
  g_assert_false (g_file_test (PWNED, G_FILE_TEST_EXISTS));

  /* Storage types we do not read are named. */
  expect_refused (pk_state_dict ("IntStorage", 1, 0, 0, NULL, NULL), 4,
                  DDPM_ERROR_UNSUPPORTED, "torch.IntStorage");
  expect_refused (pk_state_dict ("ComplexFloatStorage", 1, 0, 0, NULL, NULL), 8,
                  DDPM_ERROR_UNSUPPORTED, "torch.ComplexFloatStorage");
  /* An allowed global called where torch never calls it. */
  expect_refused (pk_calls ("torch", "FloatStorage", FALSE), 0, DDPM_ERROR_UNSUPPORTED,
                  "calls a torch storage class");
  expect_refused (pk_calls ("collections", "OrderedDict", FALSE), 0, DDPM_ERROR_UNSUPPORTED,
                  "OrderedDict with arguments");
  expect_refused (pk_calls ("torch._utils", "_rebuild_tensor_v2", FALSE), 0,
                  DDPM_ERROR_CORRUPT_FILE, "with 1 arguments");
}

static void
test_made_opcodes (void)
{
  /* Opcodes a state_dict never needs: each named, nothing run. */
  static const struct { guint8 op; const char *name; } ops[] = {
    { 'i', "INST" }, { 'o', "OBJ" }, { 0x81, "NEWOBJ" }, { 0x92, "NEWOBJ_EX" },
    { 0x82, "EXT1" }, { 'P', "PERSID" }, { 'B', "BINBYTES" }, { 'S', "STRING" },
    { 'V', "UNICODE" }, { 0x8f, "EMPTY_SET" }, { 0x97, "NEXT_BUFFER" }, { '2', "DUP" },
    { '0', "POP" }, { 'd', "DICT" }, { 'l', "LIST" }, { 'I', "INT" }, { 'g', "GET" },
  };
  for (gsize i = 0; i < G_N_ELEMENTS (ops); i++)
    {
      GByteArray *b = g_byte_array_new ();
      pk_op (b, 0x80);
      pk_op (b, 2);
      pk_op (b, '}');
      pk_op (b, ops[i].op);
      pk_op (b, '.');
      char *words = g_strdup_printf ("opcode %s,", ops[i].name);
      expect_refused (b, 0, DDPM_ERROR_UNSUPPORTED, words);
      g_free (words);
    }

  /* Not opcodes at all. */
  GByteArray *b = g_byte_array_new ();
  pk_op (b, 0x80);
  pk_op (b, 2);
  pk_op (b, 0xff);
  expect_refused (b, 0, DDPM_ERROR_CORRUPT_FILE, "byte 0xff where an opcode should be");

  /* Protocol 6 does not exist yet. */
  b = g_byte_array_new ();
  pk_op (b, 0x80);
  pk_op (b, 6);
  expect_refused (b, 0, DDPM_ERROR_UNSUPPORTED, "protocol 6");

  /* A 9-byte integer. */
  b = g_byte_array_new ();
  pk_op (b, 0x80);
  pk_op (b, 2);
  pk_op (b, 0x8a);
  pk_op (b, 9);
  pk_raw (b, "123456789", 9);
  pk_op (b, '.');
  expect_refused (b, 0, DDPM_ERROR_UNSUPPORTED, "wider than 64 bits");

  /* Truncated inside an operand, or before STOP. */
  const gint64 s3[] = { 3 }, s1[] = { 1 };
  GByteArray *whole = pk_state_dict ("FloatStorage", 4, 0, 1, s3, s1);
  quiet = TRUE;
  for (guint len = 0; len < whole->len; len++)
    {
      b = g_byte_array_new ();
      pk_raw (b, whole->data, len);
      expect_refused (b, 16, DDPM_ERROR_CORRUPT_FILE, "truncated");
    }
  quiet = FALSE;
  g_byte_array_unref (whole);

  /* Popping beneath a MARK (Python 3 refuses this too), memo misses,
   * SETITEM on a list, odd SETITEMS. */
#define PK(s) s, sizeof (s) - 1
  static const struct { const char *p; gsize n; const char *words; } bad[] = {
    { PK ("\x80\x02}(s."), "empty stack" },
    { PK ("\x80\x02N(\x85."), "fewer than 1 values" },
    { PK ("\x80\x02h\x05."), "memo entry 5" },
    { PK ("\x80\x02]NNs."), "sets an item of a list" },
    { PK ("\x80\x02}(Nu."), "odd number" },
    { PK ("\x80\x02}Na."), "appends to a dict" },
    { PK ("\x80\x02t."), "without a MARK" },
    { PK ("\x80\x02."), "empty stack" },
    { PK ("\x80\x02NN\x86."), "holds a tuple, not a state_dict" },
    { PK ("\x80\x02}N\x85Ns."), "uses a tuple as a dict key" },
    { PK ("\x80\x02}]N\x85" "b."), "sets the state of a list from a tuple" },
    { PK ("\x80\x02}X\x01\x00\x00\x00\x00" "N."), "NUL" },
    { PK ("\x80\x02}X\x02\x00\x00\x00\xc3\x28."), "not UTF-8" },
    { PK ("\x80\x02}X\xff\xff\xff\xff."), "longer than the rest" },
    { PK ("\x80\x02\x95\xff\x00\x00\x00\x00\x00\x00\x00}."), "frame longer" },
    { PK ("\x80\x02}X\x01\x00\x00\x00" "aJ\x01\x00\x00\x00" "s."), "'a': int" },
    { PK ("\x80\x02N)R."), "calls a None" },
    { PK ("\x80\x02" "ccollections\nOrderedDict\nNR."), "arguments in a None" },
    { PK ("\x80\x02NQ."), "persistent id that is not" },
    { PK ("\x80\x02" "ctorch\nFloatStorage\n" "\x8c\x05" "torch\x8c\x08" "load_foo\x93."),
      "names torch.load_foo," },
    { PK ("\x80\x02N\x8c\x01" "a\x93."), "STACK_GLOBAL on values that are not strings" },
  };
#undef PK
  for (gsize i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      b = g_byte_array_new ();
      pk_raw (b, bad[i].p, bad[i].n);
      GError *error = NULL;
      DdpmTorchCheckpoint *c = open_made (b, 0, NULL, &error);
      g_assert_null (c);
      g_assert_nonnull (error);
      if (strstr (error->message, bad[i].words) == NULL)
        g_error ("case %" G_GSIZE_FORMAT ": expected '%s' in: %s", i, bad[i].words,
                 error->message);
      g_clear_error (&error);
      g_byte_array_unref (b);
    }
}

static void
test_made_limits (void)
{
  /* MARKs nested deeper than any state_dict. */
  GByteArray *b = g_byte_array_new ();
  pk_op (b, 0x80);
  pk_op (b, 2);
  for (int i = 0; i <= DDPM_TORCH_MAX_MARKS; i++)
    pk_op (b, '(');
  pk_op (b, '.');
  expect_refused (b, 0, DDPM_ERROR_UNSUPPORTED, "MARKs more than");

  /* A stack of a million Nones. */
  b = g_byte_array_new ();
  pk_op (b, 0x80);
  pk_op (b, 2);
  for (guint i = 0; i <= DDPM_TORCH_MAX_STACK; i++)
    pk_op (b, 'N');
  pk_op (b, '.');
  expect_refused (b, 0, DDPM_ERROR_UNSUPPORTED, "stacks more than");

  /* Millions of objects through a list that grows in batches. */
  b = g_byte_array_new ();
  pk_op (b, 0x80);
  pk_op (b, 2);
  pk_op (b, ']');
  for (guint i = 0; i < DDPM_TORCH_MAX_OBJECTS / 1000; i++)
    {
      pk_op (b, '(');
      for (int k = 0; k < 1000; k++)
        pk_op (b, 'N');
      pk_op (b, 'e');
    }
  pk_op (b, '.');
  expect_refused (b, 0, DDPM_ERROR_UNSUPPORTED, "builds more than");

  /* A memo index of 2^32 − 1 costs one entry, not an array that size; a
   * list appended to itself (a cycle) is freed with the arena. */
  b = g_byte_array_new ();
  pk_op (b, 0x80);
  pk_op (b, 2);
  pk_op (b, ']');
  pk_op (b, 'r');
  pk_raw (b, "\xff\xff\xff\xff", 4);
  pk_op (b, 'j');
  pk_raw (b, "\xff\xff\xff\xff", 4);
  pk_op (b, 'a');
  pk_op (b, '.');
  expect_refused (b, 0, DDPM_ERROR_UNSUPPORTED, "holds a list, not a state_dict");
}

static void
test_made_archives (void)
{
  const gint64 s3[] = { 3 }, s1[] = { 1 };
  GByteArray *pk = pk_state_dict ("FloatStorage", 4, 0, 1, s3, s1);
  GError *error = NULL;

  /* Big-endian storages are refused, "little" with or without newline read. */
  g_assert_null (open_made (pk, 16, "big", &error));
  g_assert_error (error, DDPM_ERROR, DDPM_ERROR_UNSUPPORTED);
  g_assert_nonnull (strstr (error->message, "'big' byte order"));
  g_clear_error (&error);
  DdpmTorchCheckpoint *ckpt = open_made (pk, 16, "little", &error);
  g_assert_no_error (error);
  ddpm_torch_checkpoint_free (ckpt);

  /* No data.pkl; two; data.pkl at the root (empty prefix) works. */
  GBytes *c[] = { g_bytes_new (pk->data, pk->len), g_bytes_new_static ("0123456789abcdef", 16) };
  {
    const char *names[] = { "top/model.pkl", "top/data/0" };
    GBytes *zip = make_zip (2, names, c);
    g_assert_null (ddpm_torch_checkpoint_open_bytes (zip, "z.pt", &error));
    g_assert_error (error, DDPM_ERROR, DDPM_ERROR_CORRUPT_FILE);
    g_assert_nonnull (strstr (error->message, "no data.pkl"));
    g_clear_error (&error);
    g_bytes_unref (zip);
  }
  {
    const char *names[] = { "a/data.pkl", "b/data.pkl" };
    GBytes *zip = make_zip (2, names, c);
    g_assert_null (ddpm_torch_checkpoint_open_bytes (zip, "z.pt", &error));
    g_assert_error (error, DDPM_ERROR, DDPM_ERROR_CORRUPT_FILE);
    g_assert_nonnull (strstr (error->message, "several data.pkl"));
    g_clear_error (&error);
    g_bytes_unref (zip);
  }
  {
    const char *names[] = { "data.pkl", "data/0" };
    GBytes *zip = make_zip (2, names, c);
    ckpt = ddpm_torch_checkpoint_open_bytes (zip, "z.pt", &error);
    g_assert_no_error (error);
    g_assert_cmpstr (ddpm_torch_checkpoint_get_prefix (ckpt), ==, "");
    ddpm_torch_checkpoint_free (ckpt);
    g_bytes_unref (zip);
  }
  g_bytes_unref (c[0]);
  g_bytes_unref (c[1]);

  /* A wrapper: 'state_dict' is preferred to 'model'; neither → the keys. */
  for (int variant = 0; variant < 2; variant++)
    {
      GByteArray *b = g_byte_array_new ();
      pk_op (b, 0x80);
      pk_op (b, 2);
      pk_op (b, '}');
      pk_op (b, '(');
      pk_str (b, "epoch");
      pk_int (b, 3);
      pk_str (b, variant ? "weights" : "model");
      pk_op (b, '}');
      pk_str (b, variant ? "state_dict_ema" : "state_dict");
      pk_op (b, '}');
      pk_str (b, "w");
      pk_tensor (b, "FloatStorage", "0", 4, 0, 1, s3, s1);
      pk_op (b, 's');
      pk_op (b, 'u');
      pk_op (b, '.');
      ckpt = open_made (b, 16, NULL, &error);
      if (variant == 0)
        {
          g_assert_no_error (error);
          g_assert_cmpstr (ddpm_torch_checkpoint_get_state_dict_key (ckpt), ==, "state_dict");
          g_assert_cmpuint (ddpm_torch_checkpoint_get_n_tensors (ckpt), ==, 1);
          ddpm_torch_checkpoint_free (ckpt);
        }
      else
        {
          g_assert_null (ckpt);
          g_assert_error (error, DDPM_ERROR, DDPM_ERROR_UNSUPPORTED);
          g_assert_nonnull (strstr (error->message, "'epoch': int, 'weights': dict, "
                                                    "'state_dict_ema': dict"));
          g_clear_error (&error);
        }
      g_byte_array_unref (b);
    }
  g_byte_array_unref (pk);

  /* A storage named twice with different sizes. */
  GByteArray *b = g_byte_array_new ();
  pk_op (b, 0x80);
  pk_op (b, 2);
  pk_op (b, '}');
  pk_op (b, '(');
  pk_str (b, "a");
  pk_tensor (b, "FloatStorage", "0", 4, 0, 1, s3, s1);
  pk_str (b, "b");
  pk_tensor (b, "FloatStorage", "0", 3, 0, 1, s3, s1);
  pk_op (b, 'u');
  pk_op (b, '.');
  expect_refused (b, 16, DDPM_ERROR_CORRUPT_FILE, "declares storage '0' twice");
}

static void
test_deflated (void)
{
  /* torch stores its records, but a zip tool may deflate them: then a
   * record cannot seek and the reader skips through it.  Every tensor of
   * the shared-storage fixtures must read the same. */
  static const char *const stems[] = { "views", "guided" };

  for (gsize f = 0; f < G_N_ELEMENTS (stems); f++)
    {
      DdpmTorchCheckpoint *stored = check_fixture (stems[f]);
      char *pt = g_strdup_printf ("torch-%s.pt", stems[f]);
      GBytes *file = fixture_bytes (pt);
      zip_error_t ze;
      zip_error_init (&ze);
      zip_source_t *src = zip_source_buffer_create (g_bytes_get_data (file, NULL),
                                                    g_bytes_get_size (file), 0, &ze);
      zip_t *za = zip_open_from_source (src, ZIP_RDONLY, &ze);
      g_assert_nonnull (za);
      int n = (int) zip_get_num_entries (za, 0);
      const char **names = g_new0 (const char *, n);
      GBytes **contents = g_new0 (GBytes *, n);
      for (int i = 0; i < n; i++)
        {
          zip_stat_t st;
          g_assert_cmpint (zip_stat_index (za, (zip_uint64_t) i, 0, &st), ==, 0);
          guint8 *buf = g_malloc (MAX (st.size, 1));
          zip_file_t *zf = zip_fopen_index (za, (zip_uint64_t) i, 0);
          g_assert_cmpint (zip_fread (zf, buf, st.size), ==, (zip_int64_t) st.size);
          zip_fclose (zf);
          names[i] = zip_get_name (za, (zip_uint64_t) i, 0);
          contents[i] = g_bytes_new_take (buf, st.size);
        }
      GBytes *deflated = make_zip_method (n, names, contents, ZIP_CM_DEFLATE);
      GError *error = NULL;
      DdpmTorchCheckpoint *ckpt = ddpm_torch_checkpoint_open_bytes (deflated, "deflated.pt",
                                                                    &error);
      g_assert_no_error (error);
      g_assert_cmpuint (g_bytes_get_size (deflated), <, g_bytes_get_size (file));

      /* Read in reverse, so that most reads start past a storage's start. */
      guint nt = ddpm_torch_checkpoint_get_n_tensors (stored);
      g_assert_cmpuint (ddpm_torch_checkpoint_get_n_tensors (ckpt), ==, nt);
      for (guint i = nt; i-- > 0;)
        {
          const DdpmTorchTensor *a = ddpm_torch_checkpoint_get_tensor (stored, i);
          const DdpmTorchTensor *b = ddpm_torch_checkpoint_get_tensor (ckpt, i);
          float *x = g_new (float, MAX (a->numel, 1)), *y = g_new (float, MAX (a->numel, 1));
          g_assert_cmpstr (a->name, ==, b->name);
          g_assert_cmpuint (a->numel, ==, b->numel);
          g_assert_true (ddpm_torch_checkpoint_read_f32 (stored, a, x, a->numel, &error));
          g_assert_true (ddpm_torch_checkpoint_read_f32 (ckpt, b, y, b->numel, &error));
          g_assert_no_error (error);
          g_assert_cmpmem (x, a->numel * 4, y, b->numel * 4);
          g_free (x);
          g_free (y);
        }
      ddpm_torch_checkpoint_free (ckpt);
      g_bytes_unref (deflated);
      for (int i = 0; i < n; i++)
        g_bytes_unref (contents[i]);
      g_free (contents);
      g_free (names);
      zip_discard (za);
      zip_error_fini (&ze);
      g_bytes_unref (file);
      g_free (pt);
      ddpm_torch_checkpoint_free (stored);
    }
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/engine/torch-pickle/f32", test_f32);
  g_test_add_func ("/engine/torch-pickle/f16", test_f16);
  g_test_add_func ("/engine/torch-pickle/bf16", test_bf16);
  g_test_add_func ("/engine/torch-pickle/views", test_views);
  g_test_add_func ("/engine/torch-pickle/guided", test_guided);
  g_test_add_func ("/engine/torch-pickle/protocol4", test_protocol4);
  g_test_add_func ("/engine/torch-pickle/wrapped", test_wrapped);
  g_test_add_func ("/engine/torch-pickle/top-folder", test_top_folder);
  g_test_add_func ("/engine/torch-pickle/legacy", test_legacy);
  g_test_add_func ("/engine/torch-pickle/os-system", test_os_system);
  g_test_add_func ("/engine/torch-pickle/short-storage", test_short_storage);
  g_test_add_func ("/engine/torch-pickle/truncated", test_truncated);
  g_test_add_func ("/engine/torch-pickle/damaged-storage", test_damaged_storage);
  g_test_add_func ("/engine/torch-pickle/deflated", test_deflated);
  g_test_add_func ("/engine/torch-pickle/read-arguments", test_read_arguments);
  g_test_add_func ("/engine/torch-pickle/open-errors", test_open_errors);
  g_test_add_func ("/engine/torch-pickle/made/valid", test_made_valid);
  g_test_add_func ("/engine/torch-pickle/made/bounds", test_made_bounds);
  g_test_add_func ("/engine/torch-pickle/made/globals", test_made_globals);
  g_test_add_func ("/engine/torch-pickle/made/opcodes", test_made_opcodes);
  g_test_add_func ("/engine/torch-pickle/made/limits", test_made_limits);
  g_test_add_func ("/engine/torch-pickle/made/archives", test_made_archives);
  return g_test_run ();
}
