/* image.h: image files for the command line and the folder dataset
 * (internal to libddpm; the GIMP plug-in gets its pixels from GIMP).
 *
 * PNG (libpng: 1–16 bit gray, gray+alpha, RGB, RGBA, palette) and JPEG
 * (libjpeg: gray, YCbCr, CMYK) load into planar float images in [0, 1],
 * colour and alpha kept apart, the way the engine's tensors are laid out.
 * Pixel values are taken as stored: no gamma or colour-profile
 * conversion, as GIMP does for 8-bit sRGB images.
 */
#ifndef DDPM_IMAGE_H
#define DDPM_IMAGE_H

#include <glib.h>

#include "ddpm.h"

G_BEGIN_DECLS

/* Images larger than this are refused (DDPM_ERROR_UNSUPPORTED) before any
 * allocation: 2^28 pixels is 16384 × 16384, 4 GiB as float RGB + alpha.
 * Either side may be at most 65535 (JPEG's own limit is 65500). */
#define DDPM_IMAGE_MAX_PIXELS ((gsize) 1 << 28)
#define DDPM_IMAGE_MAX_SIDE   65535

typedef struct
{
  int    width, height;
  int    channels;  /* 1 (gray) or 3 (RGB) */
  float *pixels;    /* (channels, height, width) in [0, 1] */
  float *alpha;     /* (height, width) in [0, 1], or NULL if opaque */
} DdpmImage;

/* A zeroed image; aborts if memory runs out, like g_new (use
 * ddpm_image_try_new for sizes that come from a file). */
DdpmImage *ddpm_image_new      (int width, int height, int channels, gboolean with_alpha);
/* The same, but NULL and DDPM_ERROR_NO_MEMORY (or UNSUPPORTED beyond the
 * limits above) instead of aborting. */
DdpmImage *ddpm_image_try_new  (int width, int height, int channels, gboolean with_alpha,
                                GError **error);
void       ddpm_image_free     (DdpmImage *image);
DdpmImage *ddpm_image_copy     (const DdpmImage *image);

/* Load a PNG or JPEG file (the format is sniffed from the content, not
 * the name).  Errors: DDPM_ERROR_IO (cannot open or read),
 * DDPM_ERROR_CORRUPT_FILE (truncated, damaged, or not an image),
 * DDPM_ERROR_UNSUPPORTED (another image format, or too large),
 * DDPM_ERROR_NO_MEMORY. */
DdpmImage *ddpm_image_load     (const char *path, GError **error);

/* Write a PNG with 8 or 16 bits per sample; gray or RGB by channels, with
 * alpha if the image has it.  Values are clamped to [0, 1] and rounded
 * (v·(2^bits − 1) + ½), so that an 8-bit file loaded and saved again is
 * bit-identical.  Atomic, like the tensor writer. */
gboolean   ddpm_image_save_png (const DdpmImage *image,
                                const char      *path,
                                int              bit_depth,
                                GError         **error);

/* A new image with `channels` (1 or 3) colour channels: gray → RGB
 * replicates, RGB → gray is ddpm_rgb_to_gray (the gray GIMP itself makes,
 * so a file converted here and a layer converted by the plug-in or by
 * GIMP agree).  Alpha is copied.  The same channel count gives a copy. */
DdpmImage *ddpm_image_convert_channels (const DdpmImage *image, int channels);

/* A new image of width × height (≥ 1).  Each axis separately: the area
 * average (box filter with fractional coverage) when it shrinks, bilinear
 * interpolation between pixel centres (edge pixels clamped) when it grows,
 * a copy when it keeps its size.  With alpha, colour is resampled
 * premultiplied, so fully transparent pixels do not bleed their colour. */
DdpmImage *ddpm_image_resize   (const DdpmImage *image, int width, int height);

G_END_DECLS

#endif /* DDPM_IMAGE_H */
