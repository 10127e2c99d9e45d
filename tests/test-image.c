/* test-image.c: PNG and JPEG files, channel conversion and resampling.
 *
 * PNG round trips are exact at both bit depths (k/max back to k/max).
 * The other PNG layouts (palette, tRNS, 1/4-bit gray, interlaced) and the
 * JPEGs are written here with libpng and libjpeg directly, from samples
 * the test chooses, so the loader is checked against independent writers.
 * Resampling is checked against values computed by hand. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <glib/gstdio.h>
#include <png.h>
#include <jpeglib.h>

#include "ddpm.h"

static char *tmpdir;

static char *
tmp_path (const char *name)
{
  return g_build_filename (tmpdir, name, NULL);
}

static DdpmImage *
load_ok (const char *path)
{
  GError *error = NULL;
  DdpmImage *image = ddpm_image_load (path, &error);

  g_assert_no_error (error);
  g_assert_nonnull (image);
  return image;
}

static void
expect_load_error (const char *path, int code, const char *part)
{
  GError *error = NULL;
  DdpmImage *image = ddpm_image_load (path, &error);
  char *base = g_path_get_basename (path);

  g_assert_null (image);
  g_assert_error (error, DDPM_ERROR, code);
  g_test_message ("error: %s", error->message);
  g_assert_nonnull (strstr (error->message, base));
  if (strstr (error->message, part) == NULL)
    g_error ("message \"%s\" lacks \"%s\"", error->message, part);
  g_error_free (error);
  g_free (base);
}

/* ------------------------------------------------------------ PNG round */

/* Every pixel and channel gets a distinct sample k (mod max + 1), and the
 * first pixels hit 0, 1, max − 1 and max; the file's header bytes say the
 * right bit depth and colour type. */
static void
test_png_round_trip (void)
{
  const int W = 37, H = 9;

  for (int bits = 8; bits <= 16; bits += 8)
    for (int C = 1; C <= 3; C += 2)
      for (int with_alpha = 0; with_alpha <= 1; with_alpha++)
        {
          const guint max = bits == 8 ? 255 : 65535;
          DdpmImage *image = ddpm_image_new (W, H, C, with_alpha);
          const gsize plane = (gsize) W * H;
          const int planes = C + with_alpha;
          guint *k = g_new (guint, plane * planes);
          GError *error = NULL;

          for (gsize i = 0; i < plane * planes; i++)
            {
              k[i] = i < 4 ? (guint[]) { 0, 1, max - 1, max }[i]
                           : (guint) ((i * 7919u + 13) % (max + 1));
              float v = (float) k[i] / (float) max;
              if (i < plane * C)
                image->pixels[i] = v;
              else
                image->alpha[i - plane * C] = v;
            }
          char *name = g_strdup_printf ("round-%d-%d-%d.png", bits, C, with_alpha);
          char *path = tmp_path (name);
          g_assert_true (ddpm_image_save_png (image, path, bits, &error));
          g_assert_no_error (error);

          /* IHDR: bit depth at byte 24, colour type at byte 25. */
          char *contents;
          gsize len;
          g_assert_true (g_file_get_contents (path, &contents, &len, NULL));
          g_assert_cmpint ((guint8) contents[24], ==, bits);
          const int types[2][2] = { { 0, 4 }, { 2, 6 } };
          g_assert_cmpint ((guint8) contents[25], ==, types[C == 3][with_alpha]);
          g_free (contents);

          DdpmImage *back = load_ok (path);
          g_assert_cmpint (back->width, ==, W);
          g_assert_cmpint (back->height, ==, H);
          g_assert_cmpint (back->channels, ==, C);
          g_assert_true ((back->alpha != NULL) == with_alpha);
          for (gsize i = 0; i < plane * planes; i++)
            {
              float got = i < plane * C ? back->pixels[i] : back->alpha[i - plane * C];
              if (got != (float) k[i] / (float) max)
                g_error ("%s: sample %" G_GSIZE_FORMAT " is %.9g, expected %u/%u",
                         name, i, got, k[i], max);
            }
          ddpm_image_free (back);
          ddpm_image_free (image);
          g_unlink (path);
          g_free (path);
          g_free (name);
          g_free (k);
        }
}

/* Out-of-range values clamp; NaN becomes 0; rounding is to nearest. */
static void
test_png_clamp (void)
{
  DdpmImage *image = ddpm_image_new (6, 1, 1, FALSE);
  const float in[6] = { -0.5f, 1.5f, NAN, 0.5f, 0.501f / 255.0f, 0.499f / 255.0f };
  const float want[6] = { 0, 1, 0, 128 / 255.0f, 1 / 255.0f, 0 };
  char *path = tmp_path ("clamp.png");
  GError *error = NULL;

  memcpy (image->pixels, in, sizeof in);
  g_assert_true (ddpm_image_save_png (image, path, 8, &error));
  DdpmImage *back = load_ok (path);
  for (int i = 0; i < 6; i++)
    g_assert_cmpfloat (back->pixels[i], ==, want[i]);
  ddpm_image_free (back);

  g_assert_false (ddpm_image_save_png (image, path, 12, &error));
  g_assert_error (error, DDPM_ERROR, DDPM_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);

  /* Atomic: a save into a missing folder fails and leaves nothing. */
  char *missing = g_build_filename (tmpdir, "missing", "x.png", NULL);
  g_assert_false (ddpm_image_save_png (image, missing, 8, &error));
  g_assert_error (error, DDPM_ERROR, DDPM_ERROR_IO);
  g_assert_nonnull (strstr (error->message, "missing"));
  g_clear_error (&error);
  g_free (missing);

  ddpm_image_free (image);
  g_unlink (path);
  g_free (path);
}

/* ---------------------------------------------------- other PNG layouts */

/* Write a PNG with libpng: rows of raw samples as PNG stores them. */
static void
write_png_raw (const char *path, int W, int H, int bit_depth, int color_type,
               int interlace, const guint8 *data, gsize rowbytes,
               const png_color *palette, int n_palette,
               const guint8 *trns, int n_trns, const png_color_16 *trns_color)
{
  FILE *fp = fopen (path, "wb");
  png_structp png = png_create_write_struct (PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
  png_infop info = png_create_info_struct (png);

  g_assert_nonnull (fp);
  if (setjmp (png_jmpbuf (png)))
    g_error ("libpng failed writing the test image");
  png_init_io (png, fp);
  png_set_IHDR (png, info, W, H, bit_depth, color_type, interlace,
                PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  if (palette)
    png_set_PLTE (png, info, palette, n_palette);
  if (trns || trns_color)
    png_set_tRNS (png, info, trns, n_trns, trns_color);
  png_write_info (png, info);
  png_bytep *rows = g_new (png_bytep, H);
  for (int y = 0; y < H; y++)
    rows[y] = (png_bytep) data + (gsize) y * rowbytes;
  png_write_image (png, rows);
  png_write_end (png, NULL);
  png_destroy_write_struct (&png, &info);
  fclose (fp);
  g_free (rows);
}

static void
test_png_layouts (void)
{
  char *path = tmp_path ("layout.png");

  /* Palette with tRNS → RGB + alpha; entries past the tRNS table are
   * opaque. */
  {
    const png_color pal[3] = { { 255, 0, 0 }, { 0, 128, 0 }, { 10, 20, 30 } };
    const guint8 trns[2] = { 0, 51 };
    const guint8 idx[2 * 2] = { 0, 1, 2, 1 };
    write_png_raw (path, 2, 2, 8, PNG_COLOR_TYPE_PALETTE, PNG_INTERLACE_NONE, idx, 2,
                   pal, 3, trns, 2, NULL);
    DdpmImage *im = load_ok (path);
    g_assert_cmpint (im->channels, ==, 3);
    g_assert_nonnull (im->alpha);
    for (int i = 0; i < 4; i++)
      {
        const png_color *c = &pal[idx[i]];
        g_assert_cmpfloat (im->pixels[i], ==, c->red / 255.0f);
        g_assert_cmpfloat (im->pixels[4 + i], ==, c->green / 255.0f);
        g_assert_cmpfloat (im->pixels[8 + i], ==, c->blue / 255.0f);
        g_assert_cmpfloat (im->alpha[i], ==, (idx[i] < 2 ? trns[idx[i]] : 255) / 255.0f);
      }
    ddpm_image_free (im);
  }
  /* 1-bit gray: bits 1,0,1,1,0,0,0,1 then 1 → 0 or 1. */
  {
    const guint8 row[2] = { 0xb1, 0x80 };
    const int bits[9] = { 1, 0, 1, 1, 0, 0, 0, 1, 1 };
    write_png_raw (path, 9, 1, 1, PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE, row, 2,
                   NULL, 0, NULL, 0, NULL);
    DdpmImage *im = load_ok (path);
    g_assert_cmpint (im->channels, ==, 1);
    g_assert_null (im->alpha);
    for (int i = 0; i < 9; i++)
      g_assert_cmpfloat (im->pixels[i], ==, (float) bits[i]);
    ddpm_image_free (im);
  }
  /* 4-bit gray: nibble n → n/15. */
  {
    const guint8 row[2] = { 0x0f, 0x7a };
    const int nib[4] = { 0, 15, 7, 10 };
    write_png_raw (path, 4, 1, 4, PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE, row, 2,
                   NULL, 0, NULL, 0, NULL);
    DdpmImage *im = load_ok (path);
    for (int i = 0; i < 4; i++)
      g_assert_cmpfloat_with_epsilon (im->pixels[i], nib[i] / 15.0f, 1e-7);
    ddpm_image_free (im);
  }
  /* 8-bit gray with a tRNS colour key: pixels equal to 77 are transparent. */
  {
    const guint8 row[3] = { 77, 78, 0 };
    png_color_16 key = { .gray = 77 };
    write_png_raw (path, 3, 1, 8, PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE, row, 3,
                   NULL, 0, NULL, 0, &key);
    DdpmImage *im = load_ok (path);
    g_assert_nonnull (im->alpha);
    g_assert_cmpfloat (im->alpha[0], ==, 0.0f);
    g_assert_cmpfloat (im->alpha[1], ==, 1.0f);
    g_assert_cmpfloat (im->alpha[2], ==, 1.0f);
    g_assert_cmpfloat (im->pixels[1], ==, 78 / 255.0f);
    ddpm_image_free (im);
  }
  /* Interlaced (Adam7) 16-bit RGBA, 11 × 7: every sample distinct. */
  {
    const int W = 11, H = 7;
    guint8 *data = g_new (guint8, (gsize) W * H * 8);
    for (int i = 0; i < W * H * 4; i++)
      {
        guint v = (guint) (i * 811 + 5) % 65536;
        data[2 * i] = (guint8) (v >> 8);
        data[2 * i + 1] = (guint8) v;
      }
    write_png_raw (path, W, H, 16, PNG_COLOR_TYPE_RGB_ALPHA, PNG_INTERLACE_ADAM7, data,
                   (gsize) W * 8, NULL, 0, NULL, 0, NULL);
    DdpmImage *im = load_ok (path);
    g_assert_cmpint (im->channels, ==, 3);
    for (int p = 0; p < W * H; p++)
      for (int k = 0; k < 4; k++)
        {
          guint v = (guint) ((p * 4 + k) * 811 + 5) % 65536;
          float got = k < 3 ? im->pixels[k * W * H + p] : im->alpha[p];
          g_assert_cmpfloat (got, ==, v / 65535.0f);
        }
    ddpm_image_free (im);
    g_free (data);
  }
  g_unlink (path);
  g_free (path);
}

/* ------------------------------------------------------------------ JPEG */

static void
write_jpeg (const char *path, int W, int H, int comps, J_COLOR_SPACE space,
            const guint8 *data, int quality)
{
  struct jpeg_compress_struct cinfo;
  struct jpeg_error_mgr jerr;
  FILE *fp = fopen (path, "wb");

  g_assert_nonnull (fp);
  cinfo.err = jpeg_std_error (&jerr);
  jpeg_create_compress (&cinfo);
  jpeg_stdio_dest (&cinfo, fp);
  cinfo.image_width = W;
  cinfo.image_height = H;
  cinfo.input_components = comps;
  cinfo.in_color_space = space;
  jpeg_set_defaults (&cinfo);
  jpeg_set_quality (&cinfo, quality, TRUE);
  /* No chroma subsampling: 4:4:4, so solid colours come back close. */
  for (int c = 0; c < cinfo.num_components; c++)
    cinfo.comp_info[c].h_samp_factor = cinfo.comp_info[c].v_samp_factor = 1;
  jpeg_start_compress (&cinfo, TRUE);
  while (cinfo.next_scanline < cinfo.image_height)
    {
      JSAMPROW row = (JSAMPROW) data + (gsize) cinfo.next_scanline * W * comps;
      jpeg_write_scanlines (&cinfo, &row, 1);
    }
  jpeg_finish_compress (&cinfo);
  jpeg_destroy_compress (&cinfo);
  fclose (fp);
}

static void
test_jpeg (void)
{
  char *path = tmp_path ("photo.jpg");
  const int W = 32, H = 16;

  /* RGB: four 8-aligned blocks of solid colour.  A solid block's DCT has
   * only a DC term, so after YCbCr rounding it comes back within 2/255. */
  {
    const guint8 colours[4][3] = { { 200, 30, 40 }, { 10, 220, 90 }, { 60, 60, 250 }, { 128, 128, 128 } };
    guint8 *data = g_new (guint8, W * H * 3);
    for (int y = 0; y < H; y++)
      for (int x = 0; x < W; x++)
        memcpy (data + (y * W + x) * 3, colours[(x / 8) % 2 + 2 * (y / 8)], 3);
    write_jpeg (path, W, H, 3, JCS_RGB, data, 100);
    DdpmImage *im = load_ok (path);
    g_assert_cmpint (im->width, ==, W);
    g_assert_cmpint (im->height, ==, H);
    g_assert_cmpint (im->channels, ==, 3);
    g_assert_null (im->alpha);
    for (int y = 0; y < H; y++)
      for (int x = 0; x < W; x++)
        for (int k = 0; k < 3; k++)
          {
            float want = data[(y * W + x) * 3 + k] / 255.0f;
            g_assert_cmpfloat (fabsf (im->pixels[k * W * H + y * W + x] - want), <=, 2.5f / 255);
          }
    ddpm_image_free (im);

    /* Truncated in the middle of the scan data. */
    char *contents;
    gsize len;
    g_assert_true (g_file_get_contents (path, &contents, &len, NULL));
    char *cut = tmp_path ("cut.jpg");
    g_assert_true (g_file_set_contents (cut, contents, (gssize) (len * 2 / 3), NULL));
    expect_load_error (cut, DDPM_ERROR_CORRUPT_FILE, "truncated");
    /* Only the SOI marker. */
    g_assert_true (g_file_set_contents (cut, contents, 3, NULL));
    expect_load_error (cut, DDPM_ERROR_CORRUPT_FILE, "JPEG");
    g_unlink (cut);
    g_free (cut);
    g_free (contents);
    g_free (data);
  }
  /* Grayscale: a smooth gradient along x, within 2/255. */
  {
    guint8 *data = g_new (guint8, W * H);
    for (int y = 0; y < H; y++)
      for (int x = 0; x < W; x++)
        data[y * W + x] = (guint8) (x * 8);
    write_jpeg (path, W, H, 1, JCS_GRAYSCALE, data, 100);
    DdpmImage *im = load_ok (path);
    g_assert_cmpint (im->channels, ==, 1);
    for (int i = 0; i < W * H; i++)
      g_assert_cmpfloat (fabsf (im->pixels[i] - data[i] / 255.0f), <=, 2.5f / 255);
    ddpm_image_free (im);
    g_free (data);
  }
  /* CMYK, as Photoshop writes it (Adobe marker, inverted samples s = 255 −
   * ink): R = s_C·s_K/255² and so on. */
  {
    const guint8 s[4] = { 255, 128, 0, 200 };
    guint8 *data = g_new (guint8, W * H * 4);
    for (int i = 0; i < W * H; i++)
      memcpy (data + i * 4, s, 4);
    write_jpeg (path, W, H, 4, JCS_CMYK, data, 100);
    DdpmImage *im = load_ok (path);
    g_assert_cmpint (im->channels, ==, 3);
    for (int k = 0; k < 3; k++)
      g_assert_cmpfloat (fabsf (im->pixels[k * W * H + 5] - s[k] * s[3] / (255.0f * 255.0f)),
                         <=, 2.5f / 255);
    ddpm_image_free (im);
    g_free (data);
  }
  g_unlink (path);
  g_free (path);
}

/* ---------------------------------------------------------------- errors */

static guint32
be32 (const guint8 *p)
{
  return ((guint32) p[0] << 24) | ((guint32) p[1] << 16) | ((guint32) p[2] << 8) | p[3];
}

/* The PNG chunk CRC (ISO 3309 / ITU-T V.42, as in the PNG spec's annex),
 * bit by bit. */
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

static void
put_be32 (guint8 *p, guint32 v)
{
  p[0] = (guint8) (v >> 24);
  p[1] = (guint8) (v >> 16);
  p[2] = (guint8) (v >> 8);
  p[3] = (guint8) v;
}

static void
test_errors (void)
{
  char *png = tmp_path ("noise.png"), *bad = tmp_path ("bad.png");
  GError *error = NULL;
  char *contents;
  gsize len;

  /* A 64 × 64 noisy RGB PNG (so its IDAT is large), then damaged copies. */
  DdpmImage *image = ddpm_image_new (64, 64, 3, FALSE);
  for (int i = 0; i < 64 * 64 * 3; i++)
    image->pixels[i] = (float) ((i * 2654435761u) >> 24) / 255.0f;
  g_assert_true (ddpm_image_save_png (image, png, 8, &error));
  ddpm_image_free (image);
  g_assert_true (g_file_get_contents (png, &contents, &len, NULL));
  g_assert_cmpuint (len, >, 4000);

  g_assert_true (g_file_set_contents (bad, contents, (gssize) (len / 2), NULL));
  expect_load_error (bad, DDPM_ERROR_CORRUPT_FILE, "truncated");
  g_assert_true (g_file_set_contents (bad, contents, 20, NULL));
  expect_load_error (bad, DDPM_ERROR_CORRUPT_FILE, "truncated");

  /* A flipped bit in IHDR: the CRC no longer matches. */
  guint8 *copy = g_memdup2 (contents, len);
  copy[17] ^= 1;
  g_assert_true (g_file_set_contents (bad, (char *) copy, (gssize) len, NULL));
  expect_load_error (bad, DDPM_ERROR_CORRUPT_FILE, "damaged PNG");

  /* A well-formed header claiming 100000 × 100000: refused before any
   * allocation. */
  memcpy (copy, contents, len);
  put_be32 (copy + 16, 100000);
  put_be32 (copy + 20, 100000);
  put_be32 (copy + 29, png_crc (copy + 12, 17));
  g_assert_cmpuint (be32 (copy + 8), ==, 13);
  g_assert_true (g_file_set_contents (bad, (char *) copy, (gssize) len, NULL));
  expect_load_error (bad, DDPM_ERROR_UNSUPPORTED, "larger than");
  /* 2000 × 2000 is within the limits but the data is 64 × 64: the
   * planes are allocated, then the data runs out; an error, not a crash. */
  put_be32 (copy + 16, 2000);
  put_be32 (copy + 20, 2000);
  put_be32 (copy + 29, png_crc (copy + 12, 17));
  g_assert_true (g_file_set_contents (bad, (char *) copy, (gssize) len, NULL));
  image = ddpm_image_load (bad, &error);
  g_assert_null (image);
  g_assert_true (g_error_matches (error, DDPM_ERROR, DDPM_ERROR_CORRUPT_FILE)
                 || g_error_matches (error, DDPM_ERROR, DDPM_ERROR_NO_MEMORY));
  g_test_message ("2000 × 2000 claim: %s", error->message);
  g_clear_error (&error);
  g_free (copy);
  g_free (contents);

  /* Not images. */
  g_assert_true (g_file_set_contents (bad, "This is a text file.\n", -1, NULL));
  expect_load_error (bad, DDPM_ERROR_CORRUPT_FILE, "is not a PNG or JPEG image");
  g_assert_true (g_file_set_contents (bad, "", 0, NULL));
  expect_load_error (bad, DDPM_ERROR_CORRUPT_FILE, "empty");
  g_assert_true (g_file_set_contents (bad, "GIF89a\x01\x00\x01\x00", 10, NULL));
  expect_load_error (bad, DDPM_ERROR_UNSUPPORTED, "GIF");
  g_unlink (bad);
  expect_load_error (bad, DDPM_ERROR_IO, g_strerror (ENOENT));
  expect_load_error (tmpdir, DDPM_ERROR_IO, "folder");

  g_unlink (png);
  g_free (png);
  g_free (bad);
}

/* Damaged files through libpng's and libjpeg's longjmp error paths:
 * random byte overwrites, bit flips and truncations of a valid PNG
 * (interlaced and not) and JPEG, deterministic (the engine's RNG).  Each
 * load must succeed with a sane image or fail with one of the file
 * errors; under AddressSanitizer this also checks that no path leaks or
 * touches freed memory. */
static void
test_damaged (void)
{
  char *path = tmp_path ("damaged"), *src = tmp_path ("src");
  GPtrArray *originals = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
  GError *error = NULL;
  char *contents;
  gsize len;
  int loaded = 0, failed = 0;

  DdpmImage *image = ddpm_image_new (24, 20, 3, TRUE);
  for (int i = 0; i < 24 * 20 * 3; i++)
    image->pixels[i] = (float) ((i * 2654435761u) >> 24) / 255.0f;
  for (int i = 0; i < 24 * 20; i++)
    image->alpha[i] = (float) (i % 256) / 255.0f;
  g_assert_true (ddpm_image_save_png (image, src, 16, &error));
  g_assert_true (g_file_get_contents (src, &contents, &len, NULL));
  g_ptr_array_add (originals, g_bytes_new_take (contents, len));
  ddpm_image_free (image);
  {
    guint8 data[24 * 20 * 3];
    for (int i = 0; i < (int) sizeof data; i++)
      data[i] = (guint8) (i * 7);
    write_png_raw (src, 24, 20, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_ADAM7, data, 72,
                   NULL, 0, NULL, 0, NULL);
    g_assert_true (g_file_get_contents (src, &contents, &len, NULL));
    g_ptr_array_add (originals, g_bytes_new_take (contents, len));
    write_jpeg (src, 24, 20, 3, JCS_RGB, data, 90);
    g_assert_true (g_file_get_contents (src, &contents, &len, NULL));
    g_ptr_array_add (originals, g_bytes_new_take (contents, len));
  }

  for (int c = 0; c < 600; c++)
    {
      DdpmRng rng;
      gsize n;
      ddpm_rng_init (&rng, 7, (guint64) c);
      const guint8 *orig = g_bytes_get_data (originals->pdata[c % originals->len], &n);
      guint8 *buf = g_memdup2 (orig, n);
      int n_mut = 1 + (int) ddpm_rng_next_below (&rng, 3);

      for (int m = 0; m < n_mut; m++)
        {
          gsize p = 8 + ddpm_rng_next_below (&rng, (guint32) (n - 8));
          switch (ddpm_rng_next_below (&rng, 3))
            {
            case 0: buf[p] ^= (guint8) (1u << ddpm_rng_next_below (&rng, 8)); break;
            case 1: buf[p] = (guint8) ddpm_rng_next_below (&rng, 256); break;
            default: n = p; break;
            }
        }
      g_assert_true (g_file_set_contents (path, (char *) buf, (gssize) n, NULL));
      g_free (buf);

      DdpmImage *im = ddpm_image_load (path, &error);
      if (im)
        {
          g_assert_cmpint (im->width, >=, 1);
          g_assert_cmpint (im->height, >=, 1);
          g_assert_true (im->channels == 1 || im->channels == 3);
          loaded++;
          ddpm_image_free (im);
        }
      else
        {
          g_assert_true (error->domain == DDPM_ERROR);
          g_assert_true (error->code == DDPM_ERROR_CORRUPT_FILE
                         || error->code == DDPM_ERROR_UNSUPPORTED
                         || error->code == DDPM_ERROR_NO_MEMORY);
          failed++;
          g_clear_error (&error);
        }
    }
  g_test_message ("damaged files: %d loaded, %d refused", loaded, failed);
  /* Both outcomes occur: JPEG shrugs off most flipped bits in its scan
   * data, and truncations are refused. */
  g_assert_cmpint (loaded, >, 0);
  g_assert_cmpint (failed, >, 0);

  g_unlink (path);
  g_unlink (src);
  g_free (path);
  g_free (src);
  g_ptr_array_unref (originals);
}

/* ------------------------------------------------------- convert, resize */

static void
test_convert (void)
{
  DdpmImage *rgb = ddpm_image_new (4, 1, 3, TRUE);
  const float r[4] = { 1, 0, 0, 0.5f }, g[4] = { 0, 1, 0, 0.5f }, b[4] = { 0, 0, 1, 0.5f };
  /* What GIMP makes of these colours (babl 0.1.98, R'G'B' float → Y'
   * float): RGB → gray is GIMP's own conversion (ddpm_rgb_to_gray). */
  const float luma[4] = { 0.5090231f, 0.8633916f, 0.2730758f, 0.5f };

  memcpy (rgb->pixels, r, sizeof r);
  memcpy (rgb->pixels + 4, g, sizeof g);
  memcpy (rgb->pixels + 8, b, sizeof b);
  for (int i = 0; i < 4; i++)
    rgb->alpha[i] = i / 3.0f;

  DdpmImage *gray = ddpm_image_convert_channels (rgb, 1);
  g_assert_cmpint (gray->channels, ==, 1);
  for (int i = 0; i < 4; i++)
    {
      g_assert_cmpfloat_with_epsilon (gray->pixels[i], luma[i], 2e-6);
      g_assert_cmpfloat (gray->alpha[i], ==, rgb->alpha[i]);
    }
  DdpmImage *back = ddpm_image_convert_channels (gray, 3);
  g_assert_cmpint (back->channels, ==, 3);
  for (int k = 0; k < 3; k++)
    for (int i = 0; i < 4; i++)
      g_assert_cmpfloat (back->pixels[k * 4 + i], ==, gray->pixels[i]);
  DdpmImage *same = ddpm_image_convert_channels (rgb, 3);
  g_assert_true (memcmp (same->pixels, rgb->pixels, 12 * sizeof (float)) == 0);
  g_assert_true (same->pixels != rgb->pixels);
  ddpm_image_free (same);
  ddpm_image_free (back);
  ddpm_image_free (gray);
  ddpm_image_free (rgb);
}

static DdpmImage *
gray_image (int W, int H, const float *values)
{
  DdpmImage *im = ddpm_image_new (W, H, 1, FALSE);
  memcpy (im->pixels, values, (gsize) W * H * sizeof (float));
  return im;
}

static void
expect_resize (int W, int H, const float *in, int w, int h, const float *want)
{
  DdpmImage *im = gray_image (W, H, in);
  DdpmImage *out = ddpm_image_resize (im, w, h);

  g_assert_cmpint (out->width, ==, w);
  g_assert_cmpint (out->height, ==, h);
  for (int i = 0; i < w * h; i++)
    if (fabsf (out->pixels[i] - want[i]) > 1e-6f)
      g_error ("%d×%d → %d×%d: pixel %d is %g, expected %g", W, H, w, h, i,
               out->pixels[i], want[i]);
  ddpm_image_free (out);
  ddpm_image_free (im);
}

static void
test_resize (void)
{
  /* Shrinking: the area average. */
  expect_resize (4, 1, (float[]) { 0, 1, 2, 3 }, 2, 1, (float[]) { 0.5f, 2.5f });
  /* 3 → 2: pixel 0 covers [0, 1.5): a + ½b over 1.5. */
  expect_resize (3, 1, (float[]) { 3, 6, 9 }, 2, 1,
                 (float[]) { (3 + 0.5f * 6) / 1.5f, (0.5f * 6 + 9) / 1.5f });
  expect_resize (5, 1, (float[]) { 1, 2, 3, 4, 5 }, 1, 1, (float[]) { 3 });
  /* 2-D block means, 4 × 4 → 2 × 2. */
  expect_resize (4, 4, (float[]) { 1, 2, 3, 4,  5, 6, 7, 8,  9, 10, 11, 12,  13, 14, 15, 16 },
                 2, 2, (float[]) { 3.5f, 5.5f, 11.5f, 13.5f });
  /* Growing: bilinear between centres, x = (i + ½)/2 − ½ = −¼, ¼, ¾, 1¼,
   * clamped at the ends. */
  expect_resize (2, 1, (float[]) { 0, 4 }, 4, 1, (float[]) { 0, 1, 3, 4 });
  expect_resize (1, 2, (float[]) { 0, 4 }, 1, 4, (float[]) { 0, 1, 3, 4 });
  /* 2 → 3: x = (i + ½)·⅔ − ½ = −⅙, ½, 7/6. */
  expect_resize (2, 1, (float[]) { 0, 6 }, 3, 1, (float[]) { 0, 3, 6 });
  expect_resize (1, 1, (float[]) { 0.25f }, 3, 2, (float[]) { 0.25f, 0.25f, 0.25f, 0.25f, 0.25f, 0.25f });
  /* Mixed: 4 × 2 → 2 × 4, shrink along x, grow along y. */
  expect_resize (4, 2, (float[]) { 0, 2, 4, 6,  8, 10, 12, 14 }, 2, 4,
                 (float[]) { 1, 5,  3, 7,  7, 11,  9, 13 });
  /* Same size: a copy. */
  expect_resize (3, 2, (float[]) { 1, 2, 3, 4, 5, 6 }, 3, 2, (float[]) { 1, 2, 3, 4, 5, 6 });
  /* Any ratio keeps a constant image constant (weights sum to 1). */
  {
    float in[7 * 5], want[3 * 11];
    for (int i = 0; i < 35; i++)
      in[i] = 0.3f;
    for (int i = 0; i < 33; i++)
      want[i] = 0.3f;
    expect_resize (7, 5, in, 3, 11, want);
  }
  /* RGB planes resize independently. */
  {
    DdpmImage *im = ddpm_image_new (2, 1, 3, FALSE);
    const float px[6] = { 0, 1, 0.2f, 0.4f, 1, 1 };
    memcpy (im->pixels, px, sizeof px);
    DdpmImage *out = ddpm_image_resize (im, 1, 1);
    g_assert_cmpfloat_with_epsilon (out->pixels[0], 0.5f, 1e-6);
    g_assert_cmpfloat_with_epsilon (out->pixels[1], 0.3f, 1e-6);
    g_assert_cmpfloat_with_epsilon (out->pixels[2], 1.0f, 1e-6);
    ddpm_image_free (out);
    ddpm_image_free (im);
  }
  /* Alpha: colour is averaged premultiplied.  White opaque next to black
   * transparent → alpha ½, colour still white (straight would be ½);
   * both transparent → the straight average. */
  {
    DdpmImage *im = ddpm_image_new (4, 1, 1, TRUE);
    const float c[4] = { 1, 0, 0.2f, 0.6f }, a[4] = { 1, 0, 0, 0 };
    memcpy (im->pixels, c, sizeof c);
    memcpy (im->alpha, a, sizeof a);
    DdpmImage *out = ddpm_image_resize (im, 2, 1);
    g_assert_cmpfloat_with_epsilon (out->alpha[0], 0.5f, 1e-6);
    g_assert_cmpfloat_with_epsilon (out->pixels[0], 1.0f, 1e-6);
    g_assert_cmpfloat (out->alpha[1], ==, 0.0f);
    g_assert_cmpfloat_with_epsilon (out->pixels[1], 0.4f, 1e-6);
    ddpm_image_free (out);
    /* Weighted: α = (0.25, 0.75), c = (1, 0) → c' = 0.25/0.5. */
    DdpmImage *im2 = ddpm_image_new (2, 1, 1, TRUE);
    im2->pixels[0] = 1;
    im2->pixels[1] = 0;
    im2->alpha[0] = 0.25f;
    im2->alpha[1] = 0.75f;
    out = ddpm_image_resize (im2, 1, 1);
    g_assert_cmpfloat_with_epsilon (out->alpha[0], 0.5f, 1e-6);
    g_assert_cmpfloat_with_epsilon (out->pixels[0], 0.25f, 1e-6);
    ddpm_image_free (out);
    ddpm_image_free (im2);
    ddpm_image_free (im);
  }
}

int
main (int argc, char **argv)
{
  GError *error = NULL;
  int status;

  g_test_init (&argc, &argv, NULL);
  tmpdir = g_dir_make_tmp ("ddpm-image-XXXXXX", &error);
  g_assert_no_error (error);

  g_test_add_func ("/engine/image/png-round-trip", test_png_round_trip);
  g_test_add_func ("/engine/image/png-clamp", test_png_clamp);
  g_test_add_func ("/engine/image/png-layouts", test_png_layouts);
  g_test_add_func ("/engine/image/jpeg", test_jpeg);
  g_test_add_func ("/engine/image/errors", test_errors);
  g_test_add_func ("/engine/image/damaged", test_damaged);
  g_test_add_func ("/engine/image/convert", test_convert);
  g_test_add_func ("/engine/image/resize", test_resize);
  status = g_test_run ();

  g_rmdir (tmpdir);
  g_free (tmpdir);
  return status;
}
