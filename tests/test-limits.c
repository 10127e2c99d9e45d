/* test-limits.c: the resource limits (engine/limits.c), issue 15: the
 * policy's functions, then a crafted file (or command line) for each
 * defect the issue lists, through the same public calls a user's file
 * takes.  Each crafted case failed before its fix (checked by building
 * these tests against the commit before engine/limits.c).
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

#include <glib/gstdio.h>
#include <jpeglib.h>
#include <png.h>

#include "ddpm.h"

static char *tmp_dir;

static char *
tmp_path (const char *name)
{
  return g_build_filename (tmp_dir, name, NULL);
}

static void
test_image (void)
{
  GError *error = NULL;

  /* 16384² is the old 2^28 cap: the decompression bomb's size, refused */
  g_assert_false (ddpm_limits_check_image (16384, 16384, 1, FALSE, "bomb.png", &error));
  g_assert_error (error, DDPM_ERROR, DDPM_ERROR_UNSUPPORTED);
  g_assert_nonnull (strstr (error->message, "bomb.png"));
  g_clear_error (&error);
  /* --size 40000x40000: each side is fine, the product is not */
  g_assert_false (ddpm_limits_check_image (40000, 40000, 3, FALSE, "The image", &error));
  g_clear_error (&error);
  g_assert_null (ddpm_image_try_new (65535, 65535, 3, FALSE, &error));
  g_assert_error (error, DDPM_ERROR, DDPM_ERROR_UNSUPPORTED);
  g_clear_error (&error);
  g_assert_true (ddpm_limits_check_image (48, 40, 3, TRUE, "The image", NULL));
}

static void
test_model (void)
{
  DdpmUNetConfig config;
  GError *error = NULL;

  g_assert_true (ddpm_unet_config_from_preset ("tiny", 1, &config, NULL));
  g_assert_true (ddpm_limits_check_model (&config, 1000, "m.safetensors", NULL));
  g_assert_false (ddpm_limits_check_model (&config, 16777216, "m.safetensors", &error));
  g_assert_nonnull (strstr (error->message, "m.safetensors"));
  g_assert_nonnull (strstr (error->message, "T ="));
  g_clear_error (&error);
  config.ch = 4096;
  g_assert_false (ddpm_limits_check_model (&config, 1000, "m.safetensors", &error));
  g_assert_nonnull (strstr (error->message, "ch = 4096"));
  g_clear_error (&error);
}

/* ------------------------------------------------------ crafted models */

/* Replace the value of `key` in a safetensors file's JSON header, fixing
 * the header's length. */
static void
set_metadata (GString *file, const char *key, const char *value)
{
  char *pat = g_strdup_printf ("\"%s\":\"", key);
  guint64 hl = 0;

  for (int k = 0; k < 8; k++)
    hl |= (guint64) (guint8) file->str[k] << (8 * k);
  char *at = g_strstr_len (file->str + 8, (gssize) hl, pat);
  g_assert_nonnull (at);
  gsize v = (gsize) (at - file->str) + strlen (pat);
  gsize old = (gsize) (strchr (file->str + v, '"') - (file->str + v));
  g_string_erase (file, (gssize) v, (gssize) old);
  g_string_insert (file, (gssize) v, value);
  hl = hl - old + strlen (value);
  for (int k = 0; k < 8; k++)
    file->str[k] = (char) (guint8) (hl >> (8 * k));
  g_free (pat);
}

/* The shipped default model with metadata values replaced (key, value,
 * …, NULL), written to `name` in the temporary folder. */
static char *
model_with (const char *name, ...)
{
  char *src = g_test_build_filename (G_TEST_DIST, "..", "models", "default.safetensors",
                                     NULL);
  char *data;
  gsize len;
  va_list ap;

  g_assert_true (g_file_get_contents (src, &data, &len, NULL));
  GString *file = g_string_new_len (data, (gssize) len);
  va_start (ap, name);
  for (const char *key; (key = va_arg (ap, const char *)) != NULL;)
    set_metadata (file, key, va_arg (ap, const char *));
  va_end (ap);

  char *path = tmp_path (name);
  g_assert_true (g_file_set_contents (path, file->str, (gssize) file->len, NULL));
  g_string_free (file, TRUE);
  g_free (data);
  g_free (src);
  return path;
}

/* Refused, naming the file, the field and its value. */
static void
assert_model_refused (const char *key, const char *value, const char *path)
{
  GError *error = NULL;
  DdpmModel *model = ddpm_model_load (path, &error);

  g_assert_null (model);
  g_assert_nonnull (error);
  g_test_message ("%s = %s: %s", key, value, error->message);
  g_assert_true (g_error_matches (error, DDPM_ERROR, DDPM_ERROR_UNSUPPORTED)
                 || g_error_matches (error, DDPM_ERROR, DDPM_ERROR_CORRUPT_FILE));
  g_assert_nonnull (strstr (error->message, "crafted.safetensors"));
  g_assert_nonnull (strstr (error->message, key));
  g_assert_nonnull (strstr (error->message, value));
  g_clear_error (&error);
  g_unlink (path);
  g_free ((char *) path);
}

/* Defect 1: image_size 65536 (S² wrapped to 0 in max_batch: SIGFPE in
 * renoise and the plug-in) is refused at load.  Its attention stays at the
 * third level (65536 / 4), so the model is otherwise the shipped one and
 * was accepted before the limits. */
static void
test_crafted_image_size_65536 (void)
{
  assert_model_refused ("image_size", "65536",
                        model_with ("crafted.safetensors", "image_size", "65536",
                                    "attn_resolutions", "16384", NULL));
}

/* Defect 3: image_size 32768 (12.6 GB for a 48 × 40 image) is refused at
 * load. */
static void
test_crafted_image_size_32768 (void)
{
  assert_model_refused ("image_size", "32768",
                        model_with ("crafted.safetensors", "image_size", "32768",
                                    "attn_resolutions", "8192", NULL));
}

/* Defect 7: T = 16777216 is refused naming the file and the field (it
 * used to pass the metadata check and fail in the schedule, unnamed). */
static void
test_crafted_T (void)
{
  assert_model_refused ("T", "16777216",
                        model_with ("crafted.safetensors", "T", "16777216", NULL));
}

/* Defect 7: ch = 4096 is refused naming the file and the field (it used
 * to say "Not enough memory for the 18103775235 parameters"). */
static void
test_crafted_ch (void)
{
  assert_model_refused ("ch", "4096", model_with ("crafted.safetensors", "ch", "4096", NULL));
}

/* Run $DDPM_CLI; the wait status, stderr in *err. */
static int
run_cli (char **err, const char *const *args)
{
  GPtrArray *argv = g_ptr_array_new ();
  int status = -1;
  GError *error = NULL;

  g_assert_nonnull (g_getenv ("DDPM_CLI"));
  g_ptr_array_add (argv, (char *) g_getenv ("DDPM_CLI"));
  for (int i = 0; args[i]; i++)
    g_ptr_array_add (argv, (char *) args[i]);
  g_ptr_array_add (argv, NULL);
  g_assert_true (g_spawn_sync (NULL, (char **) argv->pdata, NULL, G_SPAWN_STDOUT_TO_DEV_NULL,
                               NULL, NULL, NULL, err, &status, &error));
  g_assert_no_error (error);
  g_ptr_array_free (argv, TRUE);
  return status;
}

/* Defect 1 end to end: `ddpm renoise` with the image_size 65536 model
 * exits with an error (status 1) naming the field, not SIGFPE, and writes
 * nothing. */
static void
test_crafted_renoise (void)
{
  char *model = model_with ("huge-tiles.safetensors", "image_size", "65536",
                            "attn_resolutions", "16384", NULL);
  char *in = tmp_path ("in.png"), *out = tmp_path ("out.png"), *err = NULL;
  DdpmImage *image = ddpm_image_new (48, 40, 3, FALSE);
  GError *error = NULL;
  int status;

  g_assert_true (ddpm_image_save_png (image, in, 8, &error));
  g_assert_no_error (error);
  ddpm_image_free (image);

  status = run_cli (&err, (const char *[]) { "renoise", "--model", model, "--steps", "1",
                                             in, out, NULL });
  g_test_message ("renoise: %s", err);
  g_assert_true (WIFEXITED (status));
  g_assert_cmpint (WEXITSTATUS (status), ==, 1);
  g_assert_nonnull (strstr (err, "image_size"));
  g_assert_nonnull (strstr (err, "65536"));
  g_assert_false (g_file_test (out, G_FILE_TEST_EXISTS));
  g_free (err);
  g_unlink (model);
  g_unlink (in);
  g_free (model);
  g_free (in);
  g_free (out);
}

/* Defect 2: `ddpm sample --size 65535x65535` (51 GB: g_new0 aborted) and
 * 40000x40000 (each side fine, 7 GB in all) are refused by the limits
 * before anything is allocated. */
static void
test_crafted_sample_size (void)
{
  char *out = tmp_path ("out.png"), *err = NULL;
  char *shipped = g_test_build_filename (G_TEST_DIST, "..", "models", "default.safetensors",
                                         NULL);
  static const char *const sizes[] = { "65535x65535", "40000x40000" };

  for (gsize i = 0; i < G_N_ELEMENTS (sizes); i++)
    {
      int status = run_cli (&err, (const char *[]) { "sample", "--model", shipped,
                                                     "--steps", "1", "--size", sizes[i],
                                                     "--out", out, NULL });
      g_test_message ("sample --size %s: %s", sizes[i], err);
      g_assert_true (WIFEXITED (status));
      g_assert_cmpint (WEXITSTATUS (status), ==, 1);
      g_assert_nonnull (strstr (err, "larger than this program handles"));
      g_assert_false (g_file_test (out, G_FILE_TEST_EXISTS));
      g_free (err);
    }
  g_free (out);
  g_free (shipped);
}

/* ------------------------------------------------------ crafted images */

static void
expect_refused (const char *path, int code, const char *what)
{
  GError *error = NULL;
  DdpmImage *image = ddpm_image_load (path, &error);

  g_assert_null (image);
  g_assert_nonnull (error);
  g_test_message ("%s", error->message);
  g_assert_true (g_error_matches (error, DDPM_ERROR, code));
  g_assert_nonnull (strstr (error->message, what));
  g_clear_error (&error);
}

/* A gray 8-bit PNG of width × height, every pixel 0: rows of zeros
 * deflate about 1000:1, so 16384² is a file of a few hundred KB. */
static void
write_zero_png (const char *path, int width, int height)
{
  FILE *fp = fopen (path, "wb");
  png_structp png = png_create_write_struct (PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
  png_infop info = png_create_info_struct (png);
  guint8 *row = g_malloc0 ((gsize) width);

  g_assert_nonnull (fp);
  g_assert_nonnull (info);
  g_assert_cmpint (setjmp (png_jmpbuf (png)), ==, 0);
  png_init_io (png, fp);
  png_set_compression_level (png, 9);
  png_set_IHDR (png, info, (png_uint_32) width, (png_uint_32) height, 8, PNG_COLOR_TYPE_GRAY,
                PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info (png, info);
  for (int y = 0; y < height; y++)
    png_write_row (png, row);
  png_write_end (png, NULL);
  png_destroy_write_struct (&png, &info);
  fclose (fp);
  g_free (row);
}

/* The PNG chunk CRC (the PNG specification's annex), bit by bit. */
static guint32
png_crc (const guint8 *p, gsize n)
{
  guint32 c = 0xffffffffu;

  for (gsize i = 0; i < n; i++)
    {
      c ^= p[i];
      for (int k = 0; k < 8; k++)
        c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1)));
    }
  return c ^ 0xffffffffu;
}

/* write_zero_png's signature and IHDR (patched to width × height), then
 * an empty IDAT and IEND: a well-formed file with no image data. */
static void
write_header_only_png (const char *path, int width, int height)
{
  char *full = tmp_path ("header-source.png");
  char *data;
  gsize len;
  static const char idat_iend[] = "\0\0\0\0IDAT\0\0\0\0" "\0\0\0\0IEND\xae\x42\x60\x82";

  write_zero_png (full, 8, 8);   /* any valid PNG: its IHDR is patched */
  g_assert_true (g_file_get_contents (full, &data, &len, NULL));
  g_assert_cmpuint (len, >, 33 + 24);
  guint8 *p = (guint8 *) data;
  for (int k = 0; k < 4; k++)
    {
      p[16 + k] = (guint8) ((guint32) width >> (24 - 8 * k));
      p[20 + k] = (guint8) ((guint32) height >> (24 - 8 * k));
    }
  guint32 crc = png_crc (p + 12, 17);
  for (int k = 0; k < 4; k++)
    p[29 + k] = (guint8) (crc >> (24 - 8 * k));
  memcpy (p + 33, idat_iend, 24);
  crc = png_crc (p + 37, 4);   /* the empty IDAT's CRC covers its type */
  for (int k = 0; k < 4; k++)
    p[41 + k] = (guint8) (crc >> (24 - 8 * k));
  g_assert_true (g_file_set_contents (path, data, 33 + 24, NULL));
  g_unlink (full);
  g_free (full);
  g_free (data);
}

/* Defect 4: the 16384² gray PNG bomb (a few hundred KB at the old 2^28
 * cap, 10.6 GB once loaded) is refused by the pixel budget. */
static void
test_crafted_png_bomb (void)
{
  char *bomb = tmp_path ("bomb.png");
  GStatBuf st;

  write_zero_png (bomb, 16384, 16384);
  g_assert_cmpint (g_stat (bomb, &st), ==, 0);
  g_test_message ("bomb: %" G_GINT64_FORMAT " bytes", (gint64) st.st_size);
  g_assert_cmpint (st.st_size, <, 1 << 20);
  expect_refused (bomb, DDPM_ERROR_UNSUPPORTED, "16384 × 16384 pixels, larger than");
  g_unlink (bomb);
  g_free (bomb);
}

/* Defect 4: a header-only PNG claiming 16384² (it used to allocate and
 * fill 410 MB before "Not enough image data") is refused by the budget;
 * one claiming 8192², within the budget, is refused from its header,
 * because the file is far shorter than that many pixels can deflate to. */
static void
test_crafted_png_header_only (void)
{
  char *header = tmp_path ("header-only.png");

  write_header_only_png (header, 16384, 16384);
  expect_refused (header, DDPM_ERROR_UNSUPPORTED, "larger than");
  write_header_only_png (header, 8192, 8192);
  expect_refused (header, DDPM_ERROR_CORRUPT_FILE, "its header says 8192 × 8192");
  g_unlink (header);
  g_free (header);
}

/* Defect 4 for JPEG: a 64 × 64 baseline JPEG whose frame header (SOF0)
 * is patched to claim 8000 × 6000 and whose scan is cut after a few
 * hundred bytes: refused from the header (a JPEG stores at least a bit
 * per 8 × 8 block), before 576 MB of planes are allocated. */
static void
test_crafted_jpeg (void)
{
  char *path = tmp_path ("short.jpg");
  struct jpeg_compress_struct cinfo;
  struct jpeg_error_mgr jerr;
  guint8 rgb[64 * 64 * 3];
  FILE *fp = fopen (path, "wb");
  char *data;
  gsize len;

  g_assert_nonnull (fp);
  for (gsize i = 0; i < sizeof rgb; i++)
    rgb[i] = (guint8) (i * 7);
  cinfo.err = jpeg_std_error (&jerr);
  jpeg_create_compress (&cinfo);
  jpeg_stdio_dest (&cinfo, fp);
  cinfo.image_width = 64;
  cinfo.image_height = 64;
  cinfo.input_components = 3;
  cinfo.in_color_space = JCS_RGB;
  jpeg_set_defaults (&cinfo);
  jpeg_start_compress (&cinfo, TRUE);
  while (cinfo.next_scanline < cinfo.image_height)
    {
      JSAMPROW row = rgb + (gsize) cinfo.next_scanline * 64 * 3;
      jpeg_write_scanlines (&cinfo, &row, 1);
    }
  jpeg_finish_compress (&cinfo);
  jpeg_destroy_compress (&cinfo);
  fclose (fp);

  g_assert_true (g_file_get_contents (path, &data, &len, NULL));
  guint8 *p = (guint8 *) data;
  gsize sof = 0, sos = 0;
  for (gsize i = 2; i + 9 < len && !sos; i++)
    if (p[i] == 0xff && p[i + 1] == 0xc0)
      sof = i;
    else if (p[i] == 0xff && p[i + 1] == 0xda)
      sos = i;
  g_assert_cmpuint (sof, >, 0);
  g_assert_cmpuint (sos, >, sof);
  /* SOF0: marker, length (2), precision (1), height (2), width (2) */
  p[sof + 5] = 6000 >> 8;
  p[sof + 6] = 6000 & 0xff;
  p[sof + 7] = 8000 >> 8;
  p[sof + 8] = 8000 & 0xff;
  g_assert_true (g_file_set_contents (path, data, (gssize) MIN (len, sos + 200), NULL));
  expect_refused (path, DDPM_ERROR_CORRUPT_FILE, "its header says 8000 × 6000");

  g_unlink (path);
  g_free (path);
  g_free (data);
}

int
main (int argc, char **argv)
{
  GError *error = NULL;
  int status;

  g_test_init (&argc, &argv, NULL);
  tmp_dir = g_dir_make_tmp ("ddpm-limits-XXXXXX", &error);
  g_assert_no_error (error);
  g_test_add_func ("/engine/limits/image", test_image);
  g_test_add_func ("/engine/limits/model", test_model);
  g_test_add_func ("/engine/limits/crafted/image-size-65536", test_crafted_image_size_65536);
  g_test_add_func ("/engine/limits/crafted/image-size-32768", test_crafted_image_size_32768);
  g_test_add_func ("/engine/limits/crafted/T", test_crafted_T);
  g_test_add_func ("/engine/limits/crafted/ch", test_crafted_ch);
  g_test_add_func ("/engine/limits/crafted/renoise-image-size-65536", test_crafted_renoise);
  g_test_add_func ("/engine/limits/crafted/sample-size", test_crafted_sample_size);
  g_test_add_func ("/engine/limits/crafted/png-bomb", test_crafted_png_bomb);
  g_test_add_func ("/engine/limits/crafted/png-header-only", test_crafted_png_header_only);
  g_test_add_func ("/engine/limits/crafted/jpeg-short", test_crafted_jpeg);
  status = g_test_run ();
  g_rmdir (tmp_dir);
  g_free (tmp_dir);
  return status;
}
