/* pixels.c: GIMP 2.10 drawables ⇄ the engine's planar float tensors, and
 * the selection as the engine's mask.  See pixels.h.  The conversion of
 * the float pixels to planes and back is the core's (plugin/core/pixels.c,
 * shared with GIMP 3); this file does GIMP 2.10's reading and writing.
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
  p->data = plugin_try_new_floats (rect->width, rect->height, p->n_components);
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
  return plugin_pixels_data_to_planes (p->data,
                                       (gsize) p->rect.width * p->rect.height,
                                       p->n_color, p->has_alpha, channels);
}

void
plugin_pixels_from_tensor (PluginPixels *p,
                           const float  *tensor,
                           const float  *original,
                           int           channels,
                           gboolean      keep_chroma)
{
  plugin_pixels_data_from_planes (p->data,
                                  (gsize) p->rect.width * p->rect.height,
                                  p->n_color, p->has_alpha, tensor, original,
                                  channels, keep_chroma);
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
  mask = plugin_try_new_floats (rect->width, rect->height, 1);
  if (mask != NULL)
    gegl_buffer_get (buffer,
                     GEGL_RECTANGLE (rect->x + ox, rect->y + oy,
                                     rect->width, rect->height),
                     1.0, format, mask, GEGL_AUTO_ROWSTRIDE, GEGL_ABYSS_NONE);
  g_object_unref (buffer);
  if (mask == NULL)
    return NULL;

  plugin_mask_clamp (mask, (gsize) rect->width * rect->height);
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
