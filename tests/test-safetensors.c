/* test-safetensors.c: the model file format.  Round trips through the
 * writer; a reference file assembled byte by byte here as the reference
 * implementation lays it out (the `safetensors` Python package is not
 * installed on these machines); one handcrafted bad file per validation
 * rule, each checked for its error code and message; and the writer's
 * atomicity under failures (missing folder, a rename onto a folder, a
 * write cut short by RLIMIT_FSIZE). */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib/gstdio.h>

#include "safetensors.h"
#include "dir-helpers.h"

/* ------------------------------------------------------------------ helpers */

static char *
make_tmpdir (void)
{
  GError *error = NULL;
  char *dir = g_dir_make_tmp ("ddpm-safetensors-XXXXXX", &error);

  g_assert_no_error (error);
  return dir;
}

/* A file image: u64 header length, the header, then `data`. */
static GBytes *
assemble (const char *header, const void *data, gsize data_len)
{
  gsize hlen = strlen (header);
  guint8 *buf = g_malloc (8 + hlen + data_len);
  guint64 le = GUINT64_TO_LE ((guint64) hlen);

  memcpy (buf, &le, 8);
  memcpy (buf + 8, header, hlen);
  if (data_len)
    memcpy (buf + 8 + hlen, data, data_len);
  return g_bytes_new_take (buf, 8 + hlen + data_len);
}

/* Opening `bytes` must fail with `code` and a message containing every
 * string in the NULL-terminated list. */
static void
expect_open_error (GBytes *bytes, int code, ...)
{
  GError *error = NULL;
  DdpmTensorFile *file = ddpm_tensor_file_open_bytes_named (bytes, "bad.safetensors", &error);
  va_list ap;
  const char *part;

  g_assert_null (file);
  g_assert_error (error, DDPM_ERROR, code);
  g_test_message ("error: %s", error->message);
  g_assert_nonnull (strstr (error->message, "bad.safetensors"));
  va_start (ap, code);
  while ((part = va_arg (ap, const char *)) != NULL)
    if (strstr (error->message, part) == NULL)
      g_error ("message \"%s\" lacks \"%s\"", error->message, part);
  va_end (ap);
  g_error_free (error);
  g_bytes_unref (bytes);
}

static DdpmTensorFile *
open_ok (GBytes *bytes)
{
  GError *error = NULL;
  DdpmTensorFile *file = ddpm_tensor_file_open_bytes (bytes, &error);

  g_assert_no_error (error);
  g_assert_nonnull (file);
  return file;
}

/* ------------------------------------------------------------------- tests */

static void
test_dtypes (void)
{
  DdpmDtype d;
  GError *error = NULL;

  g_assert_cmpuint (ddpm_dtype_size (DDPM_DTYPE_F32), ==, 4);
  g_assert_cmpuint (ddpm_dtype_size (DDPM_DTYPE_F64), ==, 8);
  g_assert_cmpuint (ddpm_dtype_size (DDPM_DTYPE_I64), ==, 8);
  g_assert_cmpuint (ddpm_dtype_size (DDPM_DTYPE_U64), ==, 8);
  g_assert_cmpuint (ddpm_dtype_size (DDPM_DTYPE_U8), ==, 1);
  g_assert_cmpuint (ddpm_dtype_size (DDPM_DTYPE_F16), ==, 2);
  g_assert_cmpuint (ddpm_dtype_size (DDPM_DTYPE_BF16), ==, 2);
  for (int i = 0; i < DDPM_DTYPE_COUNT; i++)
    {
      g_assert_true (ddpm_dtype_from_string (ddpm_dtype_name ((DdpmDtype) i), &d, NULL));
      g_assert_cmpint (d, ==, i);
    }
  g_assert_false (ddpm_dtype_from_string ("f32", &d, &error));
  g_assert_error (error, DDPM_ERROR, DDPM_ERROR_INVALID_ARGUMENT);
  g_assert_nonnull (strstr (error->message, "F32, F64, I64, U64, U8"));
  g_error_free (error);
}

/* F16 and BF16 tensors (a file image as diffusers' fp16 variants are
 * laid out: little-endian halves) read as float, exactly: the values are
 * known from the IEEE 754 bit patterns (normal, subnormal, largest, signs,
 * zero), not from our converter.  Odd element counts leave the data
 * unaligned for floats, which the reader must not mind. */
static void
test_half_precision (void)
{
  static const guint8 data[] = {
    /* F16 "h", 7 values at bytes 0..14 */
    0x00, 0x3c,   /* 1.0 */
    0x00, 0xc1,   /* −2.5 */
    0x01, 0x00,   /* 2^−24, the smallest subnormal */
    0xff, 0x7b,   /* 65504, the largest */
    0x55, 0x35,   /* 0x3555 = 1365/4096 · … = 0.333251953125 */
    0x00, 0x80,   /* −0 */
    0xff, 0x03,   /* 1023·2^−24, the largest subnormal */
    /* BF16 "b", 3 values at bytes 14..20 */
    0x80, 0x3f,   /* 1.0 */
    0xa0, 0xc0,   /* −5.0 */
    0x49, 0x40,   /* 3.140625 */
  };
  const float want_h[7] = { 1.0f, -2.5f, 0x1p-24f, 65504.0f, 0.333251953125f, -0.0f,
                            1023 * 0x1p-24f };
  const float want_b[3] = { 1.0f, -5.0f, 3.140625f };
  GBytes *bytes = assemble ("{\"h\":{\"dtype\":\"F16\",\"shape\":[7],\"data_offsets\":[0,14]},"
                            "\"b\":{\"dtype\":\"BF16\",\"shape\":[1,3],\"data_offsets\":[14,20]}}",
                            data, sizeof data);
  GError *error = NULL;
  DdpmTensorFile *file = ddpm_tensor_file_open_bytes (bytes, &error);
  float h[7], b[3];
  const gint64 shape_h[1] = { 7 }, shape_b[2] = { 1, 3 }, wrong[1] = { 3 };
  DdpmDtype dtype;

  g_assert_no_error (error);
  g_assert_true (ddpm_tensor_file_get_shape (file, "h", &dtype, NULL, NULL));
  g_assert_cmpint (dtype, ==, DDPM_DTYPE_F16);
  g_assert_true (ddpm_tensor_file_read_f32 (file, "h", h, 1, shape_h, &error));
  g_assert_no_error (error);
  g_assert_true (ddpm_tensor_file_read_f32 (file, "b", b, 2, shape_b, &error));
  g_assert_no_error (error);
  for (int i = 0; i < 7; i++)
    g_assert_cmpfloat (h[i], ==, want_h[i]);
  g_assert_true (signbit (h[5]));
  for (int i = 0; i < 3; i++)
    g_assert_cmpfloat (b[i], ==, want_b[i]);
  /* the shape is still checked */
  g_assert_false (ddpm_tensor_file_read_f32 (file, "b", b, 1, wrong, &error));
  g_assert_error (error, DDPM_ERROR, DDPM_ERROR_CORRUPT_FILE);
  g_assert_nonnull (strstr (error->message, "shape"));
  g_clear_error (&error);
  /* a wrong byte count for the dtype is a damaged file */
  ddpm_tensor_file_free (file);
  g_bytes_unref (bytes);
  expect_open_error (assemble ("{\"h\":{\"dtype\":\"F16\",\"shape\":[4],"
                               "\"data_offsets\":[0,16]}}", data, 16),
                     DDPM_ERROR_CORRUPT_FILE, NULL);
}

/* Several dtypes, a scalar, a zero-sized tensor, dotted names and
 * metadata through a file and back; the file's layout checked by hand. */
static void
test_round_trip (void)
{
  char *dir = make_tmpdir ();
  char *path = g_build_filename (dir, "model.safetensors", NULL);
  GError *error = NULL;

  float w[2][3] = { { 1.5f, -2.25f, 3.0f }, { 1e-30f, -0.0f, 65504.0f } };
  double d[3] = { G_PI, -1e300, 4.9e-324 };
  gint64 steps[1] = { G_MININT64 };
  guint64 rng[3] = { 12345, 1, G_MAXUINT64 };
  guint8 bytes[5] = { 0, 1, 127, 128, 255 };
  float scalar = 0.125f;
  const gint64 w_shape[] = { 2, 3 }, d_shape[] = { 3 }, s_shape[] = { 1 },
               r_shape[] = { 3 }, b_shape[] = { 5, 1 }, z_shape[] = { 0, 4 };

  DdpmTensorWriter *writer = ddpm_tensor_writer_new ();
  ddpm_tensor_writer_set_metadata (writer, "config", "{\"ch\": 32}");
  ddpm_tensor_writer_set_metadata (writer, "schedule", "cosine");
  ddpm_tensor_writer_set_metadata (writer, "note", "first");
  ddpm_tensor_writer_set_metadata (writer, "note", "ünïcode, \"quoted\"\n");
  ddpm_tensor_writer_add (writer, "down.0.conv.weight", DDPM_DTYPE_F32, w, 2, w_shape);
  ddpm_tensor_writer_add (writer, "u8.bytes", DDPM_DTYPE_U8, bytes, 2, b_shape);
  ddpm_tensor_writer_add (writer, "f64", DDPM_DTYPE_F64, d, 1, d_shape);
  ddpm_tensor_writer_add (writer, "opt.step", DDPM_DTYPE_I64, steps, 1, s_shape);
  ddpm_tensor_writer_add (writer, "empty", DDPM_DTYPE_F32, NULL, 2, z_shape);
  ddpm_tensor_writer_add (writer, "rng", DDPM_DTYPE_U64, rng, 1, r_shape);
  ddpm_tensor_writer_add (writer, "scalar", DDPM_DTYPE_F32, &scalar, 0, NULL);
  g_assert_true (ddpm_tensor_writer_write (writer, path, &error));
  g_assert_no_error (error);
  ddpm_tensor_writer_free (writer);

  /* The layout, independently of the reader. */
  char *contents;
  gsize size;
  g_assert_true (g_file_get_contents (path, &contents, &size, NULL));
  guint64 hlen;
  memcpy (&hlen, contents, 8);
  hlen = GUINT64_FROM_LE (hlen);
  g_assert_cmpuint ((8 + hlen) % 8, ==, 0);
  gsize data_len = sizeof w + sizeof bytes + sizeof d + sizeof steps + sizeof rng + sizeof scalar;
  g_assert_cmpuint (size, ==, 8 + hlen + data_len);
  g_assert_cmpint (contents[8], ==, '{');
  g_assert_true (memcmp (contents + 8 + hlen, w, sizeof w) == 0);
  g_assert_true (memcmp (contents + 8 + hlen + sizeof w, bytes, sizeof bytes) == 0);
  g_assert_true (memcmp (contents + size - sizeof scalar, &scalar, sizeof scalar) == 0);
  g_assert_nonnull (g_strstr_len (contents + 8, (gssize) hlen,
                                  "\"down.0.conv.weight\":{\"dtype\":\"F32\",\"shape\":[2,3],"
                                  "\"data_offsets\":[0,24]}"));
  g_free (contents);

  DdpmTensorFile *file = ddpm_tensor_file_open (path, &error);
  g_assert_no_error (error);
  g_assert_nonnull (file);

  GPtrArray *names = ddpm_tensor_file_list (file);
  const char *expected[] = { "down.0.conv.weight", "u8.bytes", "f64", "opt.step", "empty", "rng", "scalar" };
  g_assert_cmpuint (names->len, ==, G_N_ELEMENTS (expected));
  for (guint i = 0; i < names->len; i++)
    g_assert_cmpstr (names->pdata[i], ==, expected[i]);
  g_ptr_array_unref (names);

  g_assert_cmpstr (ddpm_tensor_file_get_metadata (file, "config"), ==, "{\"ch\": 32}");
  g_assert_cmpstr (ddpm_tensor_file_get_metadata (file, "schedule"), ==, "cosine");
  g_assert_cmpstr (ddpm_tensor_file_get_metadata (file, "note"), ==, "ünïcode, \"quoted\"\n");
  g_assert_null (ddpm_tensor_file_get_metadata (file, "absent"));
  const char **keys = ddpm_tensor_file_list_metadata (file);
  g_assert_cmpstr (keys[0], ==, "config");
  g_assert_cmpstr (keys[1], ==, "note");
  g_assert_cmpstr (keys[2], ==, "schedule");
  g_assert_null (keys[3]);
  g_free (keys);

  g_assert_true (ddpm_tensor_file_has (file, "down.0.conv.weight"));
  g_assert_false (ddpm_tensor_file_has (file, "down.0"));
  g_assert_false (ddpm_tensor_file_has (file, "__metadata__"));

  DdpmDtype dtype;
  int ndim;
  gint64 shape[DDPM_TENSOR_MAX_DIMS];
  g_assert_true (ddpm_tensor_file_get_shape (file, "u8.bytes", &dtype, &ndim, shape));
  g_assert_cmpint (dtype, ==, DDPM_DTYPE_U8);
  g_assert_cmpint (ndim, ==, 2);
  g_assert_cmpint (shape[0], ==, 5);
  g_assert_cmpint (shape[1], ==, 1);
  g_assert_true (ddpm_tensor_file_get_shape (file, "scalar", &dtype, &ndim, NULL));
  g_assert_cmpint (ndim, ==, 0);
  g_assert_false (ddpm_tensor_file_get_shape (file, "nope", &dtype, &ndim, shape));
  g_assert_cmpuint (ddpm_tensor_file_get_n_elements (file, "down.0.conv.weight"), ==, 6);
  g_assert_cmpuint (ddpm_tensor_file_get_n_bytes (file, "f64"), ==, 24);
  g_assert_cmpuint (ddpm_tensor_file_get_n_bytes (file, "empty"), ==, 0);

  float w2[2][3];
  g_assert_true (ddpm_tensor_file_read_f32 (file, "down.0.conv.weight", &w2[0][0], 2, w_shape, &error));
  g_assert_no_error (error);
  g_assert_true (memcmp (w, w2, sizeof w) == 0);   /* bit-exact, −0 included */

  double d2[3];
  guint64 rng2[3];
  gint64 steps2[1];
  guint8 bytes2[5];
  float scalar2 = 0;
  g_assert_true (ddpm_tensor_file_read_raw (file, "f64", DDPM_DTYPE_F64, d2, sizeof d2, NULL));
  g_assert_true (memcmp (d, d2, sizeof d) == 0);
  g_assert_true (ddpm_tensor_file_read_raw (file, "rng", DDPM_DTYPE_U64, rng2, sizeof rng2, NULL));
  g_assert_cmpuint (rng2[2], ==, G_MAXUINT64);
  g_assert_true (ddpm_tensor_file_read_raw (file, "opt.step", DDPM_DTYPE_I64, steps2, sizeof steps2, NULL));
  g_assert_cmpint (steps2[0], ==, G_MININT64);
  g_assert_true (ddpm_tensor_file_read_raw (file, "u8.bytes", DDPM_DTYPE_U8, bytes2, 5, NULL));
  g_assert_true (memcmp (bytes, bytes2, 5) == 0);
  g_assert_true (ddpm_tensor_file_read_f32 (file, "scalar", &scalar2, 0, NULL, NULL));
  g_assert_cmpfloat (scalar2, ==, 0.125f);
  g_assert_true (ddpm_tensor_file_read_f32 (file, "empty", NULL, 2, z_shape, &error));
  g_assert_no_error (error);

  ddpm_tensor_file_free (file);
  g_unlink (path);
  g_free (path);
  test_remove_tree (dir);
  g_free (dir);
}

/* A file laid out as the reference implementation (Python `safetensors`
 * 0.4, save_file) writes it: "__metadata__" first, names sorted, header
 * padded with spaces to a multiple of 8, data in order.  The values are
 * written out as literal little-endian bytes. */
static void
test_reference_layout (void)
{
  static const char header[] =
    "{\"__metadata__\":{\"format\":\"pt\"},"
    "\"bias\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
    "\"weight\":{\"dtype\":\"F64\",\"shape\":[1,2],\"data_offsets\":[8,24]}}";
  static const guint8 data[24] = {
    0x00, 0x00, 0x80, 0x3f,  0x00, 0x00, 0x00, 0xc0,       /* 1.0f, −2.0f */
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xe0, 0x3f,        /* 0.5 */
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x14, 0xc0,        /* −5.0 */
  };
  /* Padded (aligned data) and unpadded (odd offset) variants: the reader
   * must not depend on alignment. */
  for (int pad = 0; pad < 2; pad++)
    {
      GString *h = g_string_new (header);
      if (pad)
        while ((8 + h->len) % 8)
          g_string_append_c (h, ' ');
      else
        g_assert_cmpuint ((8 + h->len) % 8, !=, 0);
      DdpmTensorFile *file = open_ok (assemble (h->str, data, sizeof data));
      float b[2];
      double w[2];
      const gint64 bs[] = { 2 };

      g_assert_cmpstr (ddpm_tensor_file_get_metadata (file, "format"), ==, "pt");
      g_assert_true (ddpm_tensor_file_read_f32 (file, "bias", b, 1, bs, NULL));
      g_assert_cmpfloat (b[0], ==, 1.0f);
      g_assert_cmpfloat (b[1], ==, -2.0f);
      g_assert_true (ddpm_tensor_file_read_raw (file, "weight", DDPM_DTYPE_F64, w, sizeof w, NULL));
      g_assert_cmpfloat (w[0], ==, 0.5);
      g_assert_cmpfloat (w[1], ==, -5.0);
      ddpm_tensor_file_free (file);
      g_string_free (h, TRUE);
    }
  /* An empty header object is a valid (empty) file. */
  DdpmTensorFile *file = open_ok (assemble ("{}", NULL, 0));
  GPtrArray *names = ddpm_tensor_file_list (file);
  g_assert_cmpuint (names->len, ==, 0);
  g_ptr_array_unref (names);
  ddpm_tensor_file_free (file);
}

#define ONE_F32 "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}"

/* Each rule of the loader, one bad file each. */
static void
test_bad_structure (void)
{
  static const guint8 data[16] = { 0 };

  /* Shorter than the length field. */
  expect_open_error (g_bytes_new ("abc", 3), DDPM_ERROR_CORRUPT_FILE,
                     "is not a safetensors model file", "too short", NULL);
  /* A text file: "This is " read as a length. */
  {
    const char *text = "This is a text file, not a model.\n";
    guint64 len;
    memcpy (&len, text, 8);
    char *num = g_strdup_printf ("header length %" G_GUINT64_FORMAT " exceeds the file size %zu",
                                 GUINT64_FROM_LE (len), strlen (text));
    expect_open_error (g_bytes_new (text, strlen (text)), DDPM_ERROR_CORRUPT_FILE,
                       "is not a safetensors model file", num, NULL);
    g_free (num);
  }
  /* Header length one past the end. */
  {
    GBytes *ok = assemble (ONE_F32, data, 8);
    gsize n;
    guint8 *b = g_bytes_unref_to_data (ok, &n);
    guint64 len = GUINT64_TO_LE ((guint64) (n - 7));
    memcpy (b, &len, 8);
    expect_open_error (g_bytes_new_take (b, n), DDPM_ERROR_CORRUPT_FILE, "exceeds the file size", NULL);
  }
  expect_open_error (assemble ("{\"a\": ", NULL, 0), DDPM_ERROR_CORRUPT_FILE,
                     "is not a safetensors model file", "not valid JSON", NULL);
  expect_open_error (assemble ("[1, 2, 3]", NULL, 0), DDPM_ERROR_CORRUPT_FILE,
                     "not a JSON object", NULL);
  expect_open_error (assemble ("{", NULL, 0), DDPM_ERROR_CORRUPT_FILE, "too short", NULL);
  {
    /* json-glib's parser recurses per level: 200000 levels would overflow
     * the stack without the depth check. */
    GString *s = g_string_new ("{\"a\":");
    for (int i = 0; i < 200000; i++)
      g_string_append_c (s, '[');
    for (int i = 0; i < 200000; i++)
      g_string_append_c (s, ']');
    g_string_append_c (s, '}');
    expect_open_error (assemble (s->str, NULL, 0), DDPM_ERROR_CORRUPT_FILE, "nests too deeply", NULL);
    g_string_free (s, TRUE);
  }
  {
    /* JSON text cannot hold a NUL byte. */
    char h[] = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}} X";
    h[sizeof h - 2] = '\0';
    gsize hlen = sizeof h - 1;
    guint8 *buf = g_malloc0 (8 + hlen + 8);
    guint64 le = GUINT64_TO_LE ((guint64) hlen);
    memcpy (buf, &le, 8);
    memcpy (buf + 8, h, hlen);
    expect_open_error (g_bytes_new_take (buf, 8 + hlen + 8), DDPM_ERROR_CORRUPT_FILE, "NUL", NULL);
  }
}

/* The 100 MB cap, on a sparse file so the test costs no memory: the
 * length is checked before anything past it is read. */
static void
test_header_limit (void)
{
  char *dir = make_tmpdir ();
  char *path = g_build_filename (dir, "huge.safetensors", NULL);
  GError *error = NULL;
  FILE *f = fopen (path, "wb");
  guint64 len = GUINT64_TO_LE (DDPM_TENSOR_FILE_MAX_HEADER + 1);

  g_assert_nonnull (f);
  g_assert_cmpint (fwrite (&len, 8, 1, f), ==, 1);
  g_assert_cmpint (ftruncate (fileno (f), (off_t) (DDPM_TENSOR_FILE_MAX_HEADER + 64)), ==, 0);
  fclose (f);
  DdpmTensorFile *file = ddpm_tensor_file_open (path, &error);
  g_assert_null (file);
  g_assert_error (error, DDPM_ERROR, DDPM_ERROR_CORRUPT_FILE);
  g_assert_nonnull (strstr (error->message, "huge.safetensors"));
  g_assert_nonnull (strstr (error->message, "header length 100000001 exceeds the limit of 100000000"));
  g_clear_error (&error);
  g_unlink (path);

  /* Unreadable: a missing file and a folder are I/O errors. */
  file = ddpm_tensor_file_open (path, &error);
  g_assert_null (file);
  g_assert_error (error, DDPM_ERROR, DDPM_ERROR_IO);
  g_assert_nonnull (strstr (error->message, "huge.safetensors"));
  g_clear_error (&error);
  file = ddpm_tensor_file_open (dir, &error);
  g_assert_null (file);
  g_assert_error (error, DDPM_ERROR, DDPM_ERROR_IO);
  g_assert_nonnull (strstr (error->message, "folder"));
  g_clear_error (&error);

  g_free (path);
  test_remove_tree (dir);
  g_free (dir);
}

static GBytes *
one_tensor (const char *dtype, const char *shape, const char *offsets, gsize data_len)
{
  char *h = g_strdup_printf ("{\"t.w\":{\"dtype\":%s,\"shape\":%s,\"data_offsets\":%s}}",
                             dtype, shape, offsets);
  guint8 *data = g_malloc0 (data_len + 1);
  GBytes *b = assemble (h, data, data_len);
  g_free (data);
  g_free (h);
  return b;
}

static void
test_bad_entries (void)
{
  /* Data cut short: the last tensor ends past the end of the file. */
  expect_open_error (one_tensor ("\"F32\"", "[4]", "[0,16]", 12), DDPM_ERROR_CORRUPT_FILE,
                     "truncated", "tensor 't.w' ends at byte 16 of the data, which holds only 12 bytes", NULL);
  expect_open_error (one_tensor ("\"F32\"", "[4]", "[8,24]", 16), DDPM_ERROR_CORRUPT_FILE,
                     "ends at byte 24", NULL);
  expect_open_error (one_tensor ("\"F32\"", "[1]", "[8,4]", 16), DDPM_ERROR_CORRUPT_FILE,
                     "end before they begin", NULL);
  expect_open_error (one_tensor ("\"F32\"", "[3]", "[0,16]", 16), DDPM_ERROR_CORRUPT_FILE,
                     "'t.w' has 16 bytes of data, but shape [3] of F32 needs 3 elements of 4 bytes", NULL);
  expect_open_error (one_tensor ("\"F32\"", "[4]", "[0,16,32]", 32), DDPM_ERROR_CORRUPT_FILE,
                     "data_offsets", NULL);
  expect_open_error (one_tensor ("\"F32\"", "[4]", "[-16,0]", 32), DDPM_ERROR_CORRUPT_FILE,
                     "data_offsets", NULL);
  expect_open_error (one_tensor ("\"F32\"", "[4]", "[0,\"16\"]", 32), DDPM_ERROR_CORRUPT_FILE,
                     "data_offsets", NULL);
  /* Offsets beyond 2^63 arrive negative from json-glib: still refused. */
  expect_open_error (one_tensor ("\"F32\"", "[4]", "[18446744073709551608,16]", 32),
                     DDPM_ERROR_CORRUPT_FILE, "data_offsets", NULL);
  /* dtypes */
  expect_open_error (one_tensor ("\"X99\"", "[4]", "[0,16]", 16), DDPM_ERROR_CORRUPT_FILE,
                     "unknown dtype 'X99'", NULL);
  expect_open_error (one_tensor ("32", "[4]", "[0,16]", 16), DDPM_ERROR_CORRUPT_FILE,
                     "no dtype", NULL);
  expect_open_error (one_tensor ("\"F8_E4M3\"", "[4]", "[0,4]", 4), DDPM_ERROR_UNSUPPORTED,
                     "dtype F8_E4M3", "supported: F32", NULL);
  /* shapes */
  expect_open_error (one_tensor ("\"F32\"", "[-1]", "[0,16]", 16), DDPM_ERROR_CORRUPT_FILE,
                     "dimension 0 is not a non-negative integer", NULL);
  expect_open_error (one_tensor ("\"F32\"", "[2, 2.0]", "[0,16]", 16), DDPM_ERROR_CORRUPT_FILE,
                     "dimension 1", NULL);
  expect_open_error (one_tensor ("\"F32\"", "[1,1,1,1,1,1,1,1,1]", "[0,4]", 4), DDPM_ERROR_CORRUPT_FILE,
                     "9 dimensions (at most 8", NULL);
  expect_open_error (one_tensor ("\"F32\"", "[4294967296,4294967296]", "[0,4]", 4),
                     DDPM_ERROR_CORRUPT_FILE, "too large", NULL);
  /* 2^62 F32 elements: the element count fits, the byte count does not. */
  expect_open_error (one_tensor ("\"F32\"", "[4611686018427387904]", "[0,4]", 4),
                     DDPM_ERROR_CORRUPT_FILE, "needs 4611686018427387904 elements of 4 bytes", NULL);
  expect_open_error (one_tensor ("\"F32\"", "{}", "[0,4]", 4), DDPM_ERROR_CORRUPT_FILE,
                     "no shape", NULL);
  /* entry and metadata types */
  expect_open_error (assemble ("{\"t\": [1]}", NULL, 0), DDPM_ERROR_CORRUPT_FILE,
                     "tensor 't' is not described by a JSON object", NULL);
  expect_open_error (assemble ("{\"__metadata__\": {\"a\": \"x\", \"steps\": 10}}", NULL, 0),
                     DDPM_ERROR_CORRUPT_FILE, "__metadata__ entry 'steps' is not a string", NULL);
  expect_open_error (assemble ("{\"__metadata__\": \"x\"}", NULL, 0),
                     DDPM_ERROR_CORRUPT_FILE, "__metadata__ is not a JSON object", NULL);
  /* Overlap: b starts inside a; zero-sized tensors overlap nothing. */
  {
    const char *h = "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
                    "\"z\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,4]},"
                    "\"b\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[15,17]}}";
    guint8 data[17] = { 0 };
    expect_open_error (assemble (h, data, sizeof data), DDPM_ERROR_CORRUPT_FILE,
                       "tensors 'a' [0, 16) and 'b' [15, 17) share bytes", NULL);
    const char *h2 = "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
                     "\"z\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,4]},"
                     "\"b\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[16,17]}}";
    DdpmTensorFile *file = open_ok (assemble (h2, data, sizeof data));
    ddpm_tensor_file_free (file);
    /* Identical ranges overlap too. */
    const char *h3 = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                     "\"b\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[0,8]}}";
    expect_open_error (assemble (h3, data, sizeof data), DDPM_ERROR_CORRUPT_FILE, "share bytes", NULL);
  }
}

/* What a caller asks for and the file holds differ. */
static void
test_read_mismatch (void)
{
  const char *h = "{\"conv_in.weight\":{\"dtype\":\"F32\",\"shape\":[32,3,3,3],\"data_offsets\":[0,3456]},"
                  "\"step\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[3456,3464]}}";
  guint8 *data = g_malloc0 (3464);
  GBytes *bytes = assemble (h, data, 3464);
  g_free (data);
  GError *error = NULL;
  DdpmTensorFile *file = ddpm_tensor_file_open_bytes_named (bytes, "model.safetensors", &error);
  g_assert_no_error (error);
  g_bytes_unref (bytes);

  float *dst = g_new0 (float, 32 * 3 * 3 * 3);
  const gint64 want[] = { 32, 1, 3, 3 }, right[] = { 32, 3, 3, 3 };
  g_assert_false (ddpm_tensor_file_read_f32 (file, "conv_in.weight", dst, 4, want, &error));
  g_assert_error (error, DDPM_ERROR, DDPM_ERROR_CORRUPT_FILE);
  g_assert_cmpstr (error->message, ==,
                   "model.safetensors: tensor 'conv_in.weight' has shape [32, 3, 3, 3], expected [32, 1, 3, 3]");
  g_clear_error (&error);
  g_assert_false (ddpm_tensor_file_read_f32 (file, "conv_in.weight", dst, 3, right, &error));
  g_assert_error (error, DDPM_ERROR, DDPM_ERROR_CORRUPT_FILE);
  g_assert_nonnull (strstr (error->message, "expected [32, 3, 3]"));
  g_clear_error (&error);
  g_assert_false (ddpm_tensor_file_read_f32 (file, "step", dst, 0, NULL, &error));
  g_assert_error (error, DDPM_ERROR, DDPM_ERROR_CORRUPT_FILE);
  g_assert_cmpstr (error->message, ==, "model.safetensors: tensor 'step' has dtype I64, expected F32");
  g_clear_error (&error);
  g_assert_false (ddpm_tensor_file_read_f32 (file, "conv_out.weight", dst, 4, right, &error));
  g_assert_error (error, DDPM_ERROR, DDPM_ERROR_CORRUPT_FILE);
  g_assert_cmpstr (error->message, ==, "model.safetensors has no tensor 'conv_out.weight'");
  g_clear_error (&error);
  gint64 step = -1;
  g_assert_false (ddpm_tensor_file_read_raw (file, "step", DDPM_DTYPE_I64, &step, 4, &error));
  g_assert_error (error, DDPM_ERROR, DDPM_ERROR_CORRUPT_FILE);
  g_assert_nonnull (strstr (error->message, "holds 8 bytes, expected 4"));
  g_clear_error (&error);
  g_assert_false (ddpm_tensor_file_read_raw (file, "step", DDPM_DTYPE_U64, &step, 8, &error));
  g_assert_error (error, DDPM_ERROR, DDPM_ERROR_CORRUPT_FILE);
  g_clear_error (&error);
  g_assert_cmpint (step, ==, -1);   /* failed reads write nothing */
  g_assert_true (ddpm_tensor_file_read_raw (file, "step", DDPM_DTYPE_I64, &step, 8, &error));
  g_assert_cmpint (step, ==, 0);
  g_assert_true (ddpm_tensor_file_read_f32 (file, "conv_in.weight", dst, 4, right, &error));
  g_assert_no_error (error);
  g_free (dst);
  ddpm_tensor_file_free (file);
}

static void
write_one (const char *path, float value, gsize n, GError **error, gboolean expect_ok)
{
  float *data = g_new (float, n);
  const gint64 shape[] = { (gint64) n };

  for (gsize i = 0; i < n; i++)
    data[i] = value;
  DdpmTensorWriter *writer = ddpm_tensor_writer_new ();
  ddpm_tensor_writer_add (writer, "x", DDPM_DTYPE_F32, data, 1, shape);
  gboolean ok = ddpm_tensor_writer_write (writer, path, error);
  g_assert_true (ok == expect_ok);
  ddpm_tensor_writer_free (writer);
  g_free (data);
}

static float
read_first (const char *path)
{
  GError *error = NULL;
  DdpmTensorFile *file = ddpm_tensor_file_open (path, &error);
  gint64 shape[DDPM_TENSOR_MAX_DIMS];
  int ndim;

  g_assert_no_error (error);
  g_assert_true (ddpm_tensor_file_get_shape (file, "x", NULL, &ndim, shape));
  float *data = g_new (float, shape[0]);
  g_assert_true (ddpm_tensor_file_read_f32 (file, "x", data, ndim, shape, &error));
  float v = data[0];
  g_free (data);
  ddpm_tensor_file_free (file);
  return v;
}

/* Failures at every stage leave the old file and no temporary. */
static void
test_atomic_write (void)
{
  char *dir = make_tmpdir ();
  char *path = g_build_filename (dir, "model.safetensors", NULL);
  char *missing = g_build_filename (dir, "no-such-folder", "model.safetensors", NULL);
  char *listing;
  GError *error = NULL;
  GStatBuf st;

  write_one (path, 1.0f, 4, &error, TRUE);
  g_assert_no_error (error);
  g_assert_cmpfloat (read_first (path), ==, 1.0f);
  /* Created like any file (0666 & ~umask), not mkstemp's private 0600. */
  mode_t mask = umask (022);
  umask (mask);
  g_assert_cmpint (g_stat (path, &st), ==, 0);
  g_assert_cmpint (st.st_mode & 0777, ==, 0666 & ~mask);

  /* Overwrite succeeds and replaces. */
  write_one (path, 2.0f, 8, &error, TRUE);
  g_assert_cmpfloat (read_first (path), ==, 2.0f);

  /* Into a folder that does not exist. */
  write_one (missing, 3.0f, 4, &error, FALSE);
  g_assert_error (error, DDPM_ERROR, DDPM_ERROR_IO);
  g_assert_nonnull (strstr (error->message, "no-such-folder"));
  g_assert_nonnull (strstr (error->message, g_strerror (ENOENT)));
  g_clear_error (&error);

  /* Onto a folder: the temporary is written, the rename fails. */
  char *sub = g_build_filename (dir, "sub", NULL);
  g_assert_cmpint (g_mkdir (sub, 0755), ==, 0);
  write_one (sub, 3.0f, 4, &error, FALSE);
  g_assert_error (error, DDPM_ERROR, DDPM_ERROR_IO);
  g_clear_error (&error);
  g_assert_true (g_file_test (sub, G_FILE_TEST_IS_DIR));
  listing = test_list_dir (dir);
  g_assert_cmpstr (listing, ==, "model.safetensors sub");
  g_free (listing);

  /* A write cut short (RLIMIT_FSIZE stands in for a full disk): the old
   * file keeps its contents. */
  struct rlimit old_limit, limit;
  g_assert_cmpint (getrlimit (RLIMIT_FSIZE, &old_limit), ==, 0);
  signal (SIGXFSZ, SIG_IGN);
  limit = old_limit;
  limit.rlim_cur = 64 * 1024;
  g_assert_cmpint (setrlimit (RLIMIT_FSIZE, &limit), ==, 0);
  write_one (path, 4.0f, 1024 * 1024, &error, FALSE);
  g_assert_cmpint (setrlimit (RLIMIT_FSIZE, &old_limit), ==, 0);
  signal (SIGXFSZ, SIG_DFL);
  g_assert_error (error, DDPM_ERROR, DDPM_ERROR_IO);
  g_assert_nonnull (strstr (error->message, "model.safetensors"));
  g_assert_nonnull (strstr (error->message, g_strerror (EFBIG)));
  g_clear_error (&error);
  g_assert_cmpfloat (read_first (path), ==, 2.0f);
  listing = test_list_dir (dir);
  g_assert_cmpstr (listing, ==, "model.safetensors sub");
  g_free (listing);

  /* A bad tensor list fails before anything is created. */
  DdpmTensorWriter *writer = ddpm_tensor_writer_new ();
  float v = 5;
  const gint64 one[] = { 1 }, neg[] = { -3 }, nine[9] = { 1, 1, 1, 1, 1, 1, 1, 1, 1 };
  ddpm_tensor_writer_add (writer, "x", DDPM_DTYPE_F32, &v, 1, one);
  ddpm_tensor_writer_add (writer, "x", DDPM_DTYPE_F32, &v, 1, one);
  g_assert_false (ddpm_tensor_writer_write (writer, path, &error));
  g_assert_error (error, DDPM_ERROR, DDPM_ERROR_INVALID_ARGUMENT);
  g_assert_nonnull (strstr (error->message, "'x' was added twice"));
  g_clear_error (&error);
  ddpm_tensor_writer_free (writer);
  writer = ddpm_tensor_writer_new ();
  ddpm_tensor_writer_add (writer, "n", DDPM_DTYPE_F32, &v, 1, neg);
  g_assert_false (ddpm_tensor_writer_write (writer, path, &error));
  g_assert_error (error, DDPM_ERROR, DDPM_ERROR_INVALID_ARGUMENT);
  g_assert_nonnull (strstr (error->message, "impossible shape [-3]"));
  g_clear_error (&error);
  ddpm_tensor_writer_free (writer);
  writer = ddpm_tensor_writer_new ();
  ddpm_tensor_writer_add (writer, "nine", DDPM_DTYPE_F32, &v, 9, nine);
  g_assert_false (ddpm_tensor_writer_write (writer, path, &error));
  g_assert_error (error, DDPM_ERROR, DDPM_ERROR_INVALID_ARGUMENT);
  g_assert_nonnull (strstr (error->message, "9 dimensions"));
  g_clear_error (&error);
  ddpm_tensor_writer_free (writer);
  g_assert_cmpfloat (read_first (path), ==, 2.0f);
  listing = test_list_dir (dir);
  g_assert_cmpstr (listing, ==, "model.safetensors sub");
  g_free (listing);

  g_free (sub);
  g_free (missing);
  g_free (path);
  test_remove_tree (dir);
  g_free (dir);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/engine/safetensors/dtypes", test_dtypes);
  g_test_add_func ("/engine/safetensors/round-trip", test_round_trip);
  g_test_add_func ("/engine/safetensors/half-precision", test_half_precision);
  g_test_add_func ("/engine/safetensors/reference-layout", test_reference_layout);
  g_test_add_func ("/engine/safetensors/bad-structure", test_bad_structure);
  g_test_add_func ("/engine/safetensors/header-limit", test_header_limit);
  g_test_add_func ("/engine/safetensors/bad-entries", test_bad_entries);
  g_test_add_func ("/engine/safetensors/read-mismatch", test_read_mismatch);
  g_test_add_func ("/engine/safetensors/atomic-write", test_atomic_write);
  return g_test_run ();
}
