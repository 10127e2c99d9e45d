/* image.c: PNG and JPEG files ⇄ planar float images, channel conversion
 * and resampling, for the command line and the folder dataset.
 *
 * HOW THE ERROR HANDLING WORKS
 *
 * libpng and libjpeg report fatal errors by calling a handler that must
 * not return; ours record the message and longjmp back to a setjmp in the
 * loader, which frees what the loader had allocated and turns the message
 * into a GError.  Everything the handler's cleanup touches and the loader
 * assigns after setjmp is `volatile` (C11 7.13.2.1: other locals have
 * indeterminate values after longjmp).  We route our own refusals (too
 * large, out of memory, a write that failed) through the same handler
 * with a flag, so there is one cleanup path.
 *
 * Sizes come from the file header and are checked before anything is
 * allocated (DDPM_IMAGE_MAX_SIDE, DDPM_IMAGE_MAX_PIXELS); large buffers
 * use g_try_malloc, so a header claiming a huge image fails with an error
 * instead of aborting.  Non-interlaced PNGs and all JPEGs are decoded a
 * row at a time into the float planes; only interlaced PNGs need the
 * whole 8/16-bit image in memory first.
 */
#include <inttypes.h>
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <glib/gstdio.h>
#include <png.h>
#include <jpeglib.h>
#include <jerror.h>

#include "intl.h"

#include "ddpm.h"
#include "atomic-file.h"

/* ------------------------------------------------------------ the object */

/* The size of the file behind fp, or -1 if it is not a regular file. */
static gint64
file_size (FILE *fp)
{
  GStatBuf st;

  if (fstat (fileno (fp), &st) != 0 || !S_ISREG (st.st_mode))
    return -1;
  return (gint64) st.st_size;
}

/* A decompression bomb's other half: a header claiming a large image over
 * too little data would still have us allocate (and fill) the whole image
 * before the data runs out.  Every format here has a least number of bytes
 * per pixel, so a file shorter than needed is refused from its header.
 * need = 0 means no bound is known (the check passes). */
static gboolean
check_data (gint64 have, guint64 need, int width, int height, const char *display,
            GError **error)
{
  if (have < 0 || (guint64) have >= need)
    return TRUE;
  g_set_error (error, DDPM_ERROR, DDPM_ERROR_CORRUPT_FILE,
               _("%s is damaged or truncated: its header says %d × %d pixels, which "
                  "take at least %" PRIu64 " bytes, but the file has %"
                  PRId64), display, width, height, need, have);
  return FALSE;
}

DdpmImage *
ddpm_image_try_new (int width, int height, int channels, gboolean with_alpha,
                    GError **error)
{
  g_return_val_if_fail (channels == 1 || channels == 3, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  if (!ddpm_limits_check_image (width, height, channels, with_alpha, _("The image"),
                                error))
    return NULL;

  gsize n = (gsize) width * (gsize) height;
  DdpmImage *image = g_new0 (DdpmImage, 1);
  image->width = width;
  image->height = height;
  image->channels = channels;
  image->pixels = g_try_malloc0_n (n * (gsize) channels, sizeof (float));
  if (with_alpha)
    image->alpha = g_try_malloc0_n (n, sizeof (float));
  if (image->pixels == NULL || (with_alpha && image->alpha == NULL))
    {
      ddpm_set_error_no_memory (error,
                                n * (gsize) (channels + (with_alpha ? 1 : 0)) * sizeof (float),
                                /* TRANSLATORS: completes "Not enough memory
                                 * for %s": width × height in pixels. */
                                _("a %d × %d image"), width, height);
      ddpm_image_free (image);
      return NULL;
    }
  return image;
}

DdpmImage *
ddpm_image_new (int width, int height, int channels, gboolean with_alpha)
{
  g_return_val_if_fail (width >= 1 && height >= 1, NULL);
  g_return_val_if_fail (channels == 1 || channels == 3, NULL);

  gsize n = (gsize) width * (gsize) height;
  DdpmImage *image = g_new0 (DdpmImage, 1);
  image->width = width;
  image->height = height;
  image->channels = channels;
  image->pixels = g_new0 (float, n * (gsize) channels);
  image->alpha = with_alpha ? g_new0 (float, n) : NULL;
  return image;
}

void
ddpm_image_free (DdpmImage *image)
{
  if (image == NULL)
    return;
  g_free (image->pixels);
  g_free (image->alpha);
  g_free (image);
}

DdpmImage *
ddpm_image_copy (const DdpmImage *image)
{
  g_return_val_if_fail (image != NULL, NULL);

  gsize n = (gsize) image->width * (gsize) image->height;
  DdpmImage *copy = ddpm_image_new (image->width, image->height, image->channels,
                                    image->alpha != NULL);
  memcpy (copy->pixels, image->pixels, n * (gsize) image->channels * sizeof (float));
  if (image->alpha)
    memcpy (copy->alpha, image->alpha, n * sizeof (float));
  return copy;
}

/* ------------------------------------------------------------- PNG load */

typedef struct
{
  FILE       *fp;
  const char *display;
  char        message[256];  /* libpng's last error */
  gboolean    eof;           /* the file ended early */
  int         read_errno;    /* a read failed */
  GError     *error;         /* our own refusal, if set */
} PngContext;

static void
png_error_cb (png_structp png, png_const_charp message)
{
  PngContext *ctx = png_get_error_ptr (png);

  g_strlcpy (ctx->message, message, sizeof ctx->message);
  png_longjmp (png, 1);
}

static void
png_warning_cb (png_structp png, png_const_charp message)
{
  PngContext *ctx = png_get_error_ptr (png);

  g_debug ("%s: libpng: %s", ctx->display, message);
}

static void
png_read_cb (png_structp png, png_bytep data, png_size_t n)
{
  PngContext *ctx = png_get_io_ptr (png);

  if (fread (data, 1, n, ctx->fp) != n)
    {
      if (ferror (ctx->fp))
        ctx->read_errno = errno ? errno : EIO;
      else
        ctx->eof = TRUE;
      png_error (png, "read failed");
    }
}

/* Row y of the decoded samples (out_channels per pixel, 8 or 16 bits,
 * 16-bit big-endian as PNG stores it) into the image planes. */
static void
png_row_to_planes (DdpmImage *image, int y, const guint8 *row, int out_channels, int depth)
{
  const int W = image->width, C = image->channels;
  const gsize plane = (gsize) W * (gsize) image->height;
  float *dst = image->pixels + (gsize) y * (gsize) W;
  float *alpha = image->alpha ? image->alpha + (gsize) y * (gsize) W : NULL;

  for (int x = 0; x < W; x++)
    for (int k = 0; k < out_channels; k++)
      {
        gsize i = (gsize) x * (gsize) out_channels + (gsize) k;
        float v = depth == 16 ? (float) ((row[2 * i] << 8) | row[2 * i + 1]) / 65535.0f
                              : (float) row[i] / 255.0f;
        if (k < C)
          dst[(gsize) k * plane + (gsize) x] = v;
        else
          alpha[x] = v;
      }
}

static DdpmImage *
load_png (FILE *fp, const char *display, GError **error)
{
  PngContext ctx = { .fp = fp, .display = display };
  DdpmImage *volatile image = NULL;
  guint8 *volatile buffer = NULL;
  png_bytep *volatile rows = NULL;
  png_structp png;
  png_infop info;

  png = png_create_read_struct (PNG_LIBPNG_VER_STRING, &ctx, png_error_cb, png_warning_cb);
  if (png == NULL)
    {
      /* TRANSLATORS: completes "Not enough memory for %s"; %s is a file. */
      ddpm_set_error_no_memory (error, 0, _("reading %s"), display);
      return NULL;
    }
  info = png_create_info_struct (png);
  if (info == NULL)
    {
      png_destroy_read_struct (&png, NULL, NULL);
      ddpm_set_error_no_memory (error, 0, _("reading %s"), display);
      return NULL;
    }

  if (setjmp (png_jmpbuf (png)))
    {
      png_destroy_read_struct (&png, &info, NULL);
      ddpm_image_free (image);
      g_free (buffer);
      g_free (rows);
      if (ctx.error)
        g_propagate_error (error, ctx.error);
      else if (ctx.read_errno)
        g_set_error (error, DDPM_ERROR, DDPM_ERROR_IO, _("Could not read %s: %s"),
                     display, g_strerror (ctx.read_errno));
      else if (ctx.eof)
        g_set_error (error, DDPM_ERROR, DDPM_ERROR_CORRUPT_FILE,
                     _("%s is truncated: the PNG data ends early"), display);
      else
        g_set_error (error, DDPM_ERROR, DDPM_ERROR_CORRUPT_FILE,
                     _("%s is a damaged PNG file (%s)"), display, ctx.message);
      return NULL;
    }

  png_set_read_fn (png, &ctx, png_read_cb);
  /* Our limits, checked below, are the ones that apply: lift libpng's
   * default 1,000,000-pixel side limit so that its error does not preempt
   * the clearer one. */
  png_set_user_limits (png, 0x7fffffff, 0x7fffffff);
  png_read_info (png, info);

  png_uint_32 width, height;
  int bit_depth, color_type, interlace;
  png_get_IHDR (png, info, &width, &height, &bit_depth, &color_type, &interlace, NULL, NULL);
  /* Deflate expands at most 1032:1 (zlib's technical notes), so the
   * filtered rows, (1 + rowbytes) × height, need at least 1/1032 as many
   * bytes of file. */
  gboolean alpha = (color_type & PNG_COLOR_MASK_ALPHA) || png_get_valid (png, info, PNG_INFO_tRNS);
  if (width > G_MAXINT || height > G_MAXINT
      || !ddpm_limits_check_image ((int) width, (int) height,
                                   (color_type & PNG_COLOR_MASK_COLOR) ? 3 : 1, alpha,
                                   display, &ctx.error)
      || !check_data (file_size (ctx.fp),
                      (1 + (guint64) png_get_rowbytes (png, info)) * height / 1032,
                      (int) width, (int) height, display, &ctx.error))
    {
      if (ctx.error == NULL)
        g_set_error (&ctx.error, DDPM_ERROR, DDPM_ERROR_UNSUPPORTED,
                     _("%s is too large"), display);
      png_error (png, "refused");
    }

  if (color_type == PNG_COLOR_TYPE_PALETTE)
    png_set_palette_to_rgb (png);
  if (color_type == PNG_COLOR_TYPE_GRAY && bit_depth < 8)
    png_set_expand_gray_1_2_4_to_8 (png);
  if (png_get_valid (png, info, PNG_INFO_tRNS))
    png_set_tRNS_to_alpha (png);
  int passes = png_set_interlace_handling (png);
  png_read_update_info (png, info);

  int out_channels = png_get_channels (png, info);
  int depth = png_get_bit_depth (png, info);
  gsize rowbytes = png_get_rowbytes (png, info);
  if (out_channels < 1 || out_channels > 4 || (depth != 8 && depth != 16))
    png_error (png, "unexpected sample layout");

  image = ddpm_image_try_new ((int) width, (int) height, out_channels >= 3 ? 3 : 1,
                              out_channels == 2 || out_channels == 4, &ctx.error);
  if (image == NULL)
    png_error (png, "refused");

  if (passes > 1)
    {
      /* Interlaced: the passes refine the whole image, so it is decoded
       * into one buffer first. */
      buffer = g_try_malloc_n (rowbytes, height);
      rows = g_try_new (png_bytep, height);
      if (buffer == NULL || rows == NULL)
        {
          ddpm_set_error_no_memory (&ctx.error, (gsize) rowbytes * height,
                                    /* TRANSLATORS: completes "Not enough
                                     * memory for %s"; %s is a file. */
                                    _("decoding %s"), display);
          png_error (png, "refused");
        }
      for (png_uint_32 y = 0; y < height; y++)
        rows[y] = buffer + (gsize) y * rowbytes;
      png_read_image (png, rows);
      for (png_uint_32 y = 0; y < height; y++)
        png_row_to_planes (image, (int) y, rows[y], out_channels, depth);
    }
  else
    {
      buffer = g_try_malloc (rowbytes);
      if (buffer == NULL)
        {
          ddpm_set_error_no_memory (&ctx.error, rowbytes, _("decoding %s"), display);
          png_error (png, "refused");
        }
      for (png_uint_32 y = 0; y < height; y++)
        {
          png_read_row (png, buffer, NULL);
          png_row_to_planes (image, (int) y, buffer, out_channels, depth);
        }
    }
  /* The chunks after the image data (text, IEND) are not read: a file
   * whose pixels are complete is accepted even if its tail is missing. */

  DdpmImage *result = image;
  png_destroy_read_struct (&png, &info, NULL);
  g_free (buffer);
  g_free (rows);
  return result;
}

/* ------------------------------------------------------------ JPEG load */

typedef struct
{
  struct jpeg_error_mgr pub;    /* first: libjpeg casts to it */
  jmp_buf               jmp;
  char                  message[JMSG_LENGTH_MAX];
  gboolean              truncated;
  GError               *error;  /* our own refusal, if set */
} JpegError;

static void
jpeg_error_exit_cb (j_common_ptr cinfo)
{
  JpegError *err = (JpegError *) cinfo->err;

  err->pub.format_message (cinfo, err->message);
  longjmp (err->jmp, 1);
}

/* Warnings (msg_level −1) are recoverable damage that libjpeg papers over
 * with gray; the one we refuse is a file that ends before the image does
 * (libjpeg would silently pad it).  Other messages are traces: dropped. */
static void
jpeg_emit_message_cb (j_common_ptr cinfo, int msg_level)
{
  JpegError *err = (JpegError *) cinfo->err;

  if (msg_level >= 0)
    return;
  err->pub.num_warnings++;
  err->pub.format_message (cinfo, err->message);
  if (err->pub.msg_code == JWRN_JPEG_EOF)
    {
      err->truncated = TRUE;
      longjmp (err->jmp, 1);
    }
  g_debug ("libjpeg: %s", err->message);
}

static void
jpeg_output_message_cb (j_common_ptr cinfo)
{
}

static DdpmImage *
load_jpeg (FILE *fp, const char *display, GError **error)
{
  struct jpeg_decompress_struct cinfo;
  JpegError err = { 0 };
  DdpmImage *volatile image = NULL;
  JSAMPLE *volatile row = NULL;

  cinfo.err = jpeg_std_error (&err.pub);
  err.pub.error_exit = jpeg_error_exit_cb;
  err.pub.emit_message = jpeg_emit_message_cb;
  err.pub.output_message = jpeg_output_message_cb;

  if (setjmp (err.jmp))
    {
      jpeg_destroy_decompress (&cinfo);
      ddpm_image_free (image);
      g_free (row);
      if (err.error)
        g_propagate_error (error, err.error);
      else if (err.truncated)
        g_set_error (error, DDPM_ERROR, DDPM_ERROR_CORRUPT_FILE,
                     _("%s is truncated: the JPEG data ends early"), display);
      else
        g_set_error (error, DDPM_ERROR, DDPM_ERROR_CORRUPT_FILE,
                     _("%s is a damaged JPEG file (%s)"), display, err.message);
      return NULL;
    }

  jpeg_create_decompress (&cinfo);
  jpeg_stdio_src (&cinfo, fp);
  jpeg_read_header (&cinfo, TRUE);

  /* Huffman coding spends at least one bit on every 8 × 8 block of the
   * largest component (its DC symbol, in baseline and progressive files
   * alike).  Arithmetic coding has no such floor: those files are bounded
   * by the pixel budget only. */
  guint64 blocks = ((guint64) cinfo.image_width + 7) / 8 * (((guint64) cinfo.image_height + 7) / 8);
  if (cinfo.image_width > G_MAXINT || cinfo.image_height > G_MAXINT
      || !ddpm_limits_check_image ((int) cinfo.image_width, (int) cinfo.image_height,
                                   cinfo.num_components == 1 ? 1 : 3, FALSE, display,
                                   &err.error)
      || !check_data (file_size (fp), cinfo.arith_code ? 0 : blocks / 8,
                      (int) cinfo.image_width, (int) cinfo.image_height, display,
                      &err.error))
    {
      if (err.error == NULL)
        g_set_error (&err.error, DDPM_ERROR, DDPM_ERROR_UNSUPPORTED, _("%s is too large"), display);
      longjmp (err.jmp, 1);
    }

  gboolean cmyk = FALSE;
  switch (cinfo.jpeg_color_space)
    {
    case JCS_GRAYSCALE:
      cinfo.out_color_space = JCS_GRAYSCALE;
      break;
    case JCS_CMYK:
    case JCS_YCCK:
      /* libjpeg converts YCCK to CMYK but not on to RGB: we do that. */
      cinfo.out_color_space = JCS_CMYK;
      cmyk = TRUE;
      break;
    default:
      cinfo.out_color_space = JCS_RGB;
      break;
    }
  jpeg_start_decompress (&cinfo);

  const int W = (int) cinfo.output_width, H = (int) cinfo.output_height;
  const int comps = cinfo.output_components;
  const gboolean inverted = cmyk && cinfo.saw_Adobe_marker;  /* Adobe stores 255 − ink */
  image = ddpm_image_try_new (W, H, comps == 1 ? 1 : 3, FALSE, &err.error);
  if (image == NULL)
    longjmp (err.jmp, 1);
  row = g_try_malloc_n ((gsize) W, (gsize) comps);
  if (row == NULL)
    {
      ddpm_set_error_no_memory (&err.error, (gsize) W * (gsize) comps,
                                _("decoding %s"), display);
      longjmp (err.jmp, 1);
    }

  const gsize plane = (gsize) W * (gsize) H;
  while (cinfo.output_scanline < cinfo.output_height)
    {
      const int y = (int) cinfo.output_scanline;
      JSAMPROW rowp = (JSAMPROW) row;
      float *dst = image->pixels + (gsize) y * (gsize) W;

      if (jpeg_read_scanlines (&cinfo, &rowp, 1) != 1)
        {
          g_set_error (&err.error, DDPM_ERROR, DDPM_ERROR_CORRUPT_FILE,
                       _("%s is a damaged JPEG file (no data for row %d)"), display, y);
          longjmp (err.jmp, 1);
        }
      for (int x = 0; x < W; x++)
        {
          const JSAMPLE *s = row + (gsize) x * (gsize) comps;
          if (comps == 1)
            dst[x] = s[0] / 255.0f;
          else if (!cmyk)
            for (int k = 0; k < 3; k++)
              dst[(gsize) k * plane + (gsize) x] = s[k] / 255.0f;
          else
            {
              /* Naive CMYK → RGB (no ICC profile): R = (1 − C)(1 − K). */
              float kk = inverted ? s[3] / 255.0f : 1.0f - s[3] / 255.0f;
              for (int k = 0; k < 3; k++)
                {
                  float c = inverted ? s[k] / 255.0f : 1.0f - s[k] / 255.0f;
                  dst[(gsize) k * plane + (gsize) x] = c * kk;
                }
            }
        }
    }
  jpeg_finish_decompress (&cinfo);
  jpeg_destroy_decompress (&cinfo);
  g_free (row);
  return image;
}

/* ----------------------------------------------------------------- load */

static const struct
{
  const char *magic;
  gsize       len;
  const char *name;
} other_formats[] = {
  { "GIF87a", 6, "GIF" }, { "GIF89a", 6, "GIF" }, { "BM", 2, "BMP" },
  { "II*\0", 4, "TIFF" }, { "MM\0*", 4, "TIFF" }, { "gimp xcf", 8, "GIMP XCF" },
  { "8BPS", 4, "Photoshop" }, { "\xff\x0a", 2, "JPEG XL" }, { "P5", 2, "PGM" },
  { "P6", 2, "PPM" },
};

DdpmImage *
ddpm_image_load (const char *path, GError **error)
{
  g_return_val_if_fail (path != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  char *display = g_filename_display_name (path);
  DdpmImage *image = NULL;
  FILE *fp = NULL;
  guint8 head[16] = { 0 };
  gsize n;

  if (g_file_test (path, G_FILE_TEST_IS_DIR))
    {
      g_set_error (error, DDPM_ERROR, DDPM_ERROR_IO,
                   _("Could not read image %s: it is a folder"), display);
      goto out;
    }
  fp = fopen (path, "rb");
  if (fp == NULL)
    {
      int errsv = errno;
      g_set_error (error, DDPM_ERROR, DDPM_ERROR_IO, _("Could not open image %s: %s"),
                   display, g_strerror (errsv));
      goto out;
    }
  n = fread (head, 1, sizeof head, fp);
  if (ferror (fp) || fseek (fp, 0, SEEK_SET) != 0)
    {
      int errsv = errno;
      g_set_error (error, DDPM_ERROR, DDPM_ERROR_IO, _("Could not read image %s: %s"),
                   display, g_strerror (errsv));
      goto out;
    }

  if (n >= 8 && png_sig_cmp (head, 0, 8) == 0)
    image = load_png (fp, display, error);
  else if (n >= 3 && head[0] == 0xff && head[1] == 0xd8 && head[2] == 0xff)
    image = load_jpeg (fp, display, error);
  else
    {
      for (gsize i = 0; i < G_N_ELEMENTS (other_formats); i++)
        if (n >= other_formats[i].len
            && memcmp (head, other_formats[i].magic, other_formats[i].len) == 0)
          {
            g_set_error (error, DDPM_ERROR, DDPM_ERROR_UNSUPPORTED,
                         _("%s is a %s image; only PNG and JPEG files can be read "
                           "(convert it first, e.g. with GIMP)"), display, other_formats[i].name);
            goto out;
          }
      if (n >= 12 && memcmp (head, "RIFF", 4) == 0 && memcmp (head + 8, "WEBP", 4) == 0)
        g_set_error (error, DDPM_ERROR, DDPM_ERROR_UNSUPPORTED,
                     _("%s is a WebP image; only PNG and JPEG files can be read "
                       "(convert it first, e.g. with GIMP)"), display);
      else if (n == 0)
        g_set_error (error, DDPM_ERROR, DDPM_ERROR_CORRUPT_FILE,
                     _("%s is empty, not a PNG or JPEG image"), display);
      else
        g_set_error (error, DDPM_ERROR, DDPM_ERROR_CORRUPT_FILE,
                     _("%s is not a PNG or JPEG image"), display);
    }

out:
  if (fp)
    fclose (fp);
  g_free (display);
  return image;
}

/* ------------------------------------------------------------- PNG save */

typedef struct
{
  DdpmAtomicFile *file;
  char            message[256];
  GError         *error;   /* from a failed write */
} PngWriteContext;

static void
png_write_error_cb (png_structp png, png_const_charp message)
{
  PngWriteContext *ctx = png_get_error_ptr (png);

  g_strlcpy (ctx->message, message, sizeof ctx->message);
  png_longjmp (png, 1);
}

static void
png_write_warning_cb (png_structp png, png_const_charp message)
{
  g_debug ("libpng: %s", message);
}

static void
png_write_cb (png_structp png, png_bytep data, png_size_t n)
{
  PngWriteContext *ctx = png_get_io_ptr (png);

  if (ctx->error == NULL && !ddpm_atomic_file_write (ctx->file, data, n, &ctx->error))
    png_error (png, "write failed");
}

static void
png_flush_cb (png_structp png)
{
}

/* v in [0, 1] (NaN → 0) to an integer sample of `max`. */
static inline guint
quantize (float v, guint max)
{
  if (!(v > 0.0f))
    return 0;
  if (v >= 1.0f)
    return max;
  return (guint) ((double) v * max + 0.5);
}

gboolean
ddpm_image_save_png (const DdpmImage *image,
                     const char      *path,
                     int              bit_depth,
                     GError         **error)
{
  g_return_val_if_fail (image != NULL && image->pixels != NULL, FALSE);
  g_return_val_if_fail (image->channels == 1 || image->channels == 3, FALSE);
  g_return_val_if_fail (image->width >= 1 && image->height >= 1, FALSE);
  g_return_val_if_fail (path != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (bit_depth != 8 && bit_depth != 16)
    {
      g_set_error (error, DDPM_ERROR, DDPM_ERROR_INVALID_ARGUMENT,
                   _("PNG bit depth %d is not supported (use 8 or 16)"), bit_depth);
      return FALSE;
    }
  if (!ddpm_limits_check_image (image->width, image->height, image->channels,
                                image->alpha != NULL, _("The image"), error))
    return FALSE;

  PngWriteContext ctx = { 0 };
  guint8 *volatile row = NULL;
  png_structp png;
  png_infop info;

  ctx.file = ddpm_atomic_file_new (path, error);
  if (ctx.file == NULL)
    return FALSE;

  png = png_create_write_struct (PNG_LIBPNG_VER_STRING, &ctx, png_write_error_cb,
                                 png_write_warning_cb);
  info = png ? png_create_info_struct (png) : NULL;
  if (info == NULL)
    {
      png_destroy_write_struct (&png, NULL);
      ddpm_atomic_file_abort (ctx.file);
      char *display = g_filename_display_name (path);
      /* TRANSLATORS: completes "Not enough memory for %s"; %s is a file. */
      ddpm_set_error_no_memory (error, 0, _("writing %s"), display);
      g_free (display);
      return FALSE;
    }

  if (setjmp (png_jmpbuf (png)))
    {
      png_destroy_write_struct (&png, &info);
      ddpm_atomic_file_abort (ctx.file);
      g_free (row);
      if (ctx.error)
        g_propagate_error (error, ctx.error);
      else
        g_set_error (error, DDPM_ERROR, DDPM_ERROR_IO, _("Could not write PNG: %s"), ctx.message);
      return FALSE;
    }

  const int W = image->width, H = image->height, C = image->channels;
  const int out_channels = C + (image->alpha ? 1 : 0);
  const int bytes = bit_depth / 8;
  const guint max = bit_depth == 16 ? 65535 : 255;
  const gsize plane = (gsize) W * (gsize) H;
  static const int color_types[] = { 0, PNG_COLOR_TYPE_GRAY, PNG_COLOR_TYPE_GRAY_ALPHA,
                                     PNG_COLOR_TYPE_RGB, PNG_COLOR_TYPE_RGB_ALPHA };

  png_set_write_fn (png, &ctx, png_write_cb, png_flush_cb);
  png_set_IHDR (png, info, (png_uint_32) W, (png_uint_32) H, bit_depth,
                color_types[out_channels], PNG_INTERLACE_NONE,
                PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info (png, info);

  row = g_malloc ((gsize) W * (gsize) out_channels * (gsize) bytes);
  for (int y = 0; y < H; y++)
    {
      guint8 *p = row;
      for (int x = 0; x < W; x++)
        {
          gsize i = (gsize) y * (gsize) W + (gsize) x;
          for (int k = 0; k < out_channels; k++)
            {
              float v = k < C ? image->pixels[(gsize) k * plane + i] : image->alpha[i];
              guint q = quantize (v, max);
              if (bytes == 2)
                *p++ = (guint8) (q >> 8);   /* PNG is big-endian */
              *p++ = (guint8) q;
            }
        }
      png_write_row (png, row);
    }
  png_write_end (png, NULL);
  png_destroy_write_struct (&png, &info);
  g_free (row);
  return ddpm_atomic_file_commit (ctx.file, error);
}

/* -------------------------------------------------------------- convert */

DdpmImage *
ddpm_image_convert_channels (const DdpmImage *image, int channels)
{
  g_return_val_if_fail (image != NULL, NULL);
  g_return_val_if_fail (channels == 1 || channels == 3, NULL);

  if (channels == image->channels)
    return ddpm_image_copy (image);

  const gsize plane = (gsize) image->width * (gsize) image->height;
  DdpmImage *out = ddpm_image_new (image->width, image->height, channels, image->alpha != NULL);
  const float *in = image->pixels;

  if (channels == 3)   /* gray → RGB */
    for (int k = 0; k < 3; k++)
      memcpy (out->pixels + (gsize) k * plane, in, plane * sizeof (float));
  else                 /* RGB → gray: GIMP's own, see gray.c */
    ddpm_rgb_to_gray_planes (out->pixels, in, plane);
  if (image->alpha)
    memcpy (out->alpha, image->alpha, plane * sizeof (float));
  return out;
}

/* --------------------------------------------------------------- resize */

/* The resampling weights of one axis: destination index i takes
 * Σ_j weight[i·taps + j] · src[first[i] + j]. */
typedef struct
{
  int    taps;
  int   *first;    /* (dst) */
  float *weight;   /* (dst, taps) */
} AxisWeights;

static void
axis_weights_init (AxisWeights *a, int src, int dst)
{
  const double scale = (double) src / dst;

  a->taps = dst < src ? (int) ceil (scale) + 1 : 2;
  a->first = g_new (int, dst);
  a->weight = g_new0 (float, (gsize) dst * (gsize) a->taps);

  for (int i = 0; i < dst; i++)
    {
      float *w = a->weight + (gsize) i * (gsize) a->taps;

      if (dst == src)
        {
          a->first[i] = i;
          w[0] = 1;
        }
      else if (dst < src)
        {
          /* Area average: destination pixel i covers [i·s, (i+1)·s) of
           * the source; each source pixel weighs by its overlap. */
          double lo = i * scale, hi = (i + 1) * scale, sum = 0;
          int first = (int) floor (lo), end = MIN (src, (int) ceil (hi));
          double tmp[a->taps];

          a->first[i] = first;
          for (int s = first; s < end; s++)
            {
              tmp[s - first] = MIN (hi, s + 1.0) - MAX (lo, (double) s);
              sum += tmp[s - first];
            }
          for (int s = first; s < end; s++)
            w[s - first] = (float) (tmp[s - first] / sum);
        }
      else
        {
          /* Bilinear between pixel centres: destination centre i + ½
           * maps to source coordinate (i + ½)·s − ½, clamped to the
           * first and last centres. */
          double x = CLAMP ((i + 0.5) * scale - 0.5, 0.0, src - 1.0);
          int x0 = MIN ((int) floor (x), src - 1);
          double f = x - x0;

          if (x0 == src - 1)
            {
              a->first[i] = x0 - (src > 1 ? 1 : 0);
              w[src > 1 ? 1 : 0] = 1;
            }
          else
            {
              a->first[i] = x0;
              w[0] = (float) (1 - f);
              w[1] = (float) f;
            }
        }
    }
}

static void
axis_weights_clear (AxisWeights *a)
{
  g_free (a->first);
  g_free (a->weight);
}

/* One plane (sh, sw) → (dh, dw): rows through `h`, then columns through
 * `v`; tmp holds (sh, dw). */
static void
resize_plane (float             *dst,
              const float       *src,
              float             *tmp,
              int                sw,
              int                sh,
              int                dw,
              int                dh,
              const AxisWeights *h,
              const AxisWeights *v)
{
  for (int y = 0; y < sh; y++)
    {
      const float *in = src + (gsize) y * (gsize) sw;
      float *out = tmp + (gsize) y * (gsize) dw;
      for (int x = 0; x < dw; x++)
        {
          const float *w = h->weight + (gsize) x * (gsize) h->taps;
          float acc = 0;
          for (int j = 0; j < h->taps && h->first[x] + j < sw; j++)
            acc += w[j] * in[h->first[x] + j];
          out[x] = acc;
        }
    }
  for (int y = 0; y < dh; y++)
    {
      const float *w = v->weight + (gsize) y * (gsize) v->taps;
      float *out = dst + (gsize) y * (gsize) dw;
      for (int x = 0; x < dw; x++)
        out[x] = 0;
      for (int j = 0; j < v->taps && v->first[y] + j < sh; j++)
        {
          const float *in = tmp + (gsize) (v->first[y] + j) * (gsize) dw;
          for (int x = 0; x < dw; x++)
            out[x] += w[j] * in[x];
        }
    }
}

DdpmImage *
ddpm_image_resize (const DdpmImage *image, int width, int height)
{
  g_return_val_if_fail (image != NULL, NULL);
  g_return_val_if_fail (width >= 1 && height >= 1, NULL);

  const int sw = image->width, sh = image->height, C = image->channels;
  const gsize splane = (gsize) sw * (gsize) sh, dplane = (gsize) width * (gsize) height;
  DdpmImage *out = ddpm_image_new (width, height, C, image->alpha != NULL);
  AxisWeights h, v;
  float *tmp = g_new (float, (gsize) sh * (gsize) width);

  axis_weights_init (&h, sw, width);
  axis_weights_init (&v, sh, height);

  for (int k = 0; k < C; k++)
    resize_plane (out->pixels + (gsize) k * dplane, image->pixels + (gsize) k * splane,
                  tmp, sw, sh, width, height, &h, &v);

  if (image->alpha)
    {
      /* Premultiplied: colour' = resize(α·c)/resize(α); where the result
       * is fully transparent the straight resize above stays. */
      float *pre = g_new (float, splane), *rpre = g_new (float, dplane);

      resize_plane (out->alpha, image->alpha, tmp, sw, sh, width, height, &h, &v);
      for (int k = 0; k < C; k++)
        {
          const float *c = image->pixels + (gsize) k * splane;
          float *o = out->pixels + (gsize) k * dplane;

          for (gsize i = 0; i < splane; i++)
            pre[i] = c[i] * image->alpha[i];
          resize_plane (rpre, pre, tmp, sw, sh, width, height, &h, &v);
          for (gsize i = 0; i < dplane; i++)
            if (out->alpha[i] > 0)
              o[i] = rpre[i] / out->alpha[i];
        }
      g_free (pre);
      g_free (rpre);
    }

  axis_weights_clear (&h);
  axis_weights_clear (&v);
  g_free (tmp);
  return out;
}
