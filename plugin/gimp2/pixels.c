/* pixels.c: GIMP drawables ⇄ the engine's planar float tensors, and the
 * selection as the engine's mask.  See pixels.h.
 *
 * Everything goes through GEGL buffers in perceptual ("R'G'B'", "Y'") float
 * formats: babl converts from and to whatever the drawable stores (8, 16 or
 * 32 bits, integer or float, perceptual or linear), and the model sees the
 * sRGB-encoded values it was trained on.
 */
#include "config.h"

#include <string.h>

#include <glib/gi18n.h>

#include "ddpm.h"
#include "pixels.h"
#include "plugin-core.h"

static const Babl *
float_format (gboolean rgb, gboolean alpha)
{
  if (rgb)
    return babl_format (alpha ? "R'G'B'A float" : "R'G'B' float");
  return babl_format (alpha ? "Y'A float" : "Y' float");
}

/* n floats, or NULL when that does not fit in memory (a huge layer). */
static float *
try_new_floats (gsize a, gsize b, gsize c)
{
  if (a == 0 || b == 0 || c == 0)
    return g_try_new (float, 1);
  if (b > G_MAXSIZE / a || c > G_MAXSIZE / (a * b)
      || a * b * c > G_MAXSIZE / sizeof (float))
    return NULL;
  return g_try_new (float, a * b * c);
}

PluginPixels *
plugin_pixels_read (gint32               drawable_id,
                    const GeglRectangle *rect,
                    GError             **error)
{
  PluginPixels *p;
  GeglBuffer *buffer;

  g_return_val_if_fail (rect != NULL, NULL);

  if (gimp_drawable_is_indexed (drawable_id))
    {
      g_set_error_literal (error, DDPM_ERROR, DDPM_ERROR_UNSUPPORTED,
                           _("Indexed layers are not supported: convert the "
                             "image to RGB or grayscale first (Image ▸ Mode)."));
      return NULL;
    }

  p = g_new0 (PluginPixels, 1);
  p->rect = *rect;
  p->n_color = gimp_drawable_is_rgb (drawable_id) ? 3 : 1;
  p->has_alpha = gimp_drawable_has_alpha (drawable_id);
  p->n_components = p->n_color + (p->has_alpha ? 1 : 0);
  p->format = float_format (p->n_color == 3, p->has_alpha);
  p->data = try_new_floats (rect->width, rect->height, p->n_components);
  if (p->data == NULL)
    {
      plugin_set_region_error (error, rect->width, rect->height);
      g_free (p);
      return NULL;
    }

  buffer = gimp_drawable_get_buffer (drawable_id);
  gegl_buffer_get (buffer, rect, 1.0, p->format, p->data,
                   GEGL_AUTO_ROWSTRIDE, GEGL_ABYSS_NONE);
  g_object_unref (buffer);
  return p;
}

PluginPixels *
plugin_pixels_crop (const PluginPixels  *p,
                    const GeglRectangle *sub)
{
  PluginPixels *c;
  int nc = p->n_components;

  g_return_val_if_fail (gegl_rectangle_contains (&p->rect, sub), NULL);

  c = g_new (PluginPixels, 1);
  *c = *p;
  c->rect = *sub;
  c->data = g_new (float, (gsize) sub->width * sub->height * nc);
  for (int y = 0; y < sub->height; y++)
    memcpy (c->data + (gsize) y * sub->width * nc,
            p->data + ((gsize) (sub->y - p->rect.y + y) * p->rect.width
                       + (sub->x - p->rect.x)) * nc,
            sizeof (float) * sub->width * nc);
  return c;
}

void
plugin_pixels_free (PluginPixels *p)
{
  if (p == NULL)
    return;
  g_free (p->data);
  g_free (p);
}

float *
plugin_pixels_to_tensor (const PluginPixels *p,
                         int                 channels)
{
  gsize n = (gsize) p->rect.width * p->rect.height;
  int nc = p->n_components;
  float *t;

  g_return_val_if_fail (channels == 1 || channels == 3, NULL);

  t = try_new_floats (channels, p->rect.width, p->rect.height);
  if (t == NULL)
    return NULL;

  for (gsize i = 0; i < n; i++)
    {
      const float *px = p->data + i * nc;

      if (channels == p->n_color)
        for (int c = 0; c < channels; c++)
          t[c * n + i] = 2.0f * px[c] - 1.0f;
      else if (channels == 3)        /* gray pixels, RGB model: replicate */
        for (int c = 0; c < 3; c++)
          t[c * n + i] = 2.0f * px[0] - 1.0f;
      else                           /* RGB pixels, gray model: GIMP's gray */
        t[i] = 2.0f * ddpm_rgb_to_gray (px[0], px[1], px[2]) - 1.0f;
    }
  return t;
}

void
plugin_pixels_from_tensor (PluginPixels *p,
                           const float  *tensor,
                           const float  *original,
                           int           channels,
                           gboolean      keep_chroma)
{
  gsize n = (gsize) p->rect.width * p->rect.height;
  int nc = p->n_components;

  g_return_if_fail (channels == 1 || channels == 3);
  g_return_if_fail (!keep_chroma || original != NULL);

  for (gsize i = 0; i < n; i++)
    {
      float *px = p->data + i * nc;

      if (channels == p->n_color)
        for (int c = 0; c < channels; c++)
          px[c] = 0.5f * (CLAMP (tensor[c * n + i], -1.0f, 1.0f) + 1.0f);
      else if (channels == 3)        /* RGB model on gray pixels: GIMP's gray */
        {
          float r = 0.5f * (CLAMP (tensor[i], -1.0f, 1.0f) + 1.0f);
          float g = 0.5f * (CLAMP (tensor[n + i], -1.0f, 1.0f) + 1.0f);
          float b = 0.5f * (CLAMP (tensor[2 * n + i], -1.0f, 1.0f) + 1.0f);

          px[0] = ddpm_rgb_to_gray (r, g, b);
        }
      else if (keep_chroma)          /* gray model on RGB pixels: shift */
        {
          float dy = 0.5f * (CLAMP (tensor[i], -1.0f, 1.0f) - original[i]);

          for (int c = 0; c < 3; c++)
            px[c] = CLAMP (px[c] + dy, 0.0f, 1.0f);
        }
      else                           /* gray model on RGB pixels: replicate */
        for (int c = 0; c < 3; c++)
          px[c] = 0.5f * (CLAMP (tensor[i], -1.0f, 1.0f) + 1.0f);
      /* px[n_color], the alpha, is left as read. */
    }
}

float *
plugin_selection_read (gint32               drawable_id,
                       const GeglRectangle *rect)
{
  gint32 image_id = gimp_item_get_image (drawable_id);
  gint32 selection_id;
  const Babl *format;
  GeglBuffer *buffer;
  float *mask;
  gint ox = 0, oy = 0;

  if (gimp_selection_is_empty (image_id))
    return NULL;

  /* The selection lives in image coordinates; the layer may be offset.
   * Read it in its own transfer curve so that a feather of 50 % stays
   * 0.5 (GIMP 2.10 stores masks linear, "Y", but ask rather than assume). */
  gimp_drawable_offsets (drawable_id, &ox, &oy);
  selection_id = gimp_image_get_selection (image_id);
  buffer = gimp_drawable_get_buffer (selection_id);
  format = gimp_drawable_get_format (selection_id);
  format = babl_format (strstr (babl_get_name (format), "Y'") ? "Y' float"
                                                               : "Y float");
  mask = try_new_floats (rect->width, rect->height, 1);
  if (mask != NULL)
    gegl_buffer_get (buffer,
                     GEGL_RECTANGLE (rect->x + ox, rect->y + oy,
                                     rect->width, rect->height),
                     1.0, format, mask, GEGL_AUTO_ROWSTRIDE, GEGL_ABYSS_NONE);
  g_object_unref (buffer);
  if (mask == NULL)
    return NULL;

  for (gsize i = 0; i < (gsize) rect->width * rect->height; i++)
    mask[i] = CLAMP (mask[i], 0.0f, 1.0f);
  return mask;
}

void
plugin_pixels_write_shadow (gint32              drawable_id,
                            const PluginPixels *p)
{
  GeglBuffer *shadow = gimp_drawable_get_shadow_buffer (drawable_id);

  gegl_buffer_set (shadow, &p->rect, 0, p->format, p->data,
                   GEGL_AUTO_ROWSTRIDE);
  gegl_buffer_flush (shadow);
  g_object_unref (shadow);
}

guchar *
plugin_pixels_to_u8 (const PluginPixels *p)
{
  const Babl *u8;
  gsize n = (gsize) p->rect.width * p->rect.height;
  guchar *out = g_new (guchar, n * p->n_components);

  if (p->n_color == 3)
    u8 = babl_format (p->has_alpha ? "R'G'B'A u8" : "R'G'B' u8");
  else
    u8 = babl_format (p->has_alpha ? "Y'A u8" : "Y' u8");
  babl_process (babl_fish (p->format, u8), p->data, out, n);
  return out;
}
