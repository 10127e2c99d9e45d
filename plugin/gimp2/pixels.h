/* pixels.h: GIMP drawables ⇄ the engine's planar float tensors.
 *
 * The engine works on (C, H, W) floats in [−1, 1] with C = 1 (gray) or
 * 3 (RGB), the channel count of its model.  A drawable has 1–4 components
 * in any precision (8-bit to 32-bit float, perceptual or linear).  These
 * helpers read a region through GEGL in a perceptual float format with the
 * drawable's own components ("R'G'B'A float", "Y' float", …: babl converts
 * from whatever the drawable stores), turn it into a tensor (luma or
 * replicated gray when the model's channel count differs), and back,
 * carrying alpha through unchanged.
 */
#ifndef DDPM_PLUGIN_PIXELS_H
#define DDPM_PLUGIN_PIXELS_H

#include <libgimp/gimp.h>

G_BEGIN_DECLS

/* One rectangle of a drawable, interleaved, perceptual float. */
typedef struct
{
  GeglRectangle rect;         /* in drawable coordinates */
  int           n_color;      /* 1 (gray) or 3 (RGB) */
  gboolean      has_alpha;
  int           n_components; /* n_color + has_alpha */
  const Babl   *format;       /* the float format of data */
  float        *data;         /* (height, width, n_components) */
} PluginPixels;

/* Reads `rect` (drawable coordinates, inside the drawable) of the drawable.
 * Fails for indexed drawables and when the region does not fit in memory. */
PluginPixels *plugin_pixels_read  (gint32               drawable_id,
                                   const GeglRectangle *rect,
                                   GError             **error);
/* A copy of the rectangle `sub` (drawable coordinates, inside p->rect). */
PluginPixels *plugin_pixels_crop  (const PluginPixels  *p,
                                   const GeglRectangle *sub);
void          plugin_pixels_free  (PluginPixels        *p);

/* The pixels' colour as a (channels, H, W) tensor in [−1, 1]: gray
 * replicated into RGB, or RGB reduced to its Rec. 709 luma.  Alpha is not
 * part of it.  NULL when out of memory. */
float        *plugin_pixels_to_tensor   (const PluginPixels *p,
                                         int                 channels);

/* Replaces the colour of p with the tensor (channels, H, W) in [−1, 1]
 * (clamped to it), keeping alpha.  A gray tensor on RGB pixels either
 * replaces all three channels (keep_chroma FALSE) or shifts them by the
 * change in luma (keep_chroma TRUE: the colours survive a renoise by a gray
 * model); `original` is the tensor the change is measured from (only read
 * when keep_chroma). */
void          plugin_pixels_from_tensor (PluginPixels       *p,
                                         const float        *tensor,
                                         const float        *original,
                                         int                 channels,
                                         gboolean            keep_chroma);

/* The image's selection over `rect` (drawable coordinates) as (H, W) floats
 * in [0, 1], 0 outside the selection; NULL when nothing is selected (the
 * whole drawable is the target).  Feathered selections keep their
 * fractional values. */
float        *plugin_selection_read     (gint32               drawable_id,
                                         const GeglRectangle *rect);

/* Writes p into the drawable's shadow buffer (GEGL converts to the
 * drawable's precision).  The caller merges it with
 * gimp_drawable_merge_shadow, which applies the selection. */
void          plugin_pixels_write_shadow (gint32              drawable_id,
                                          const PluginPixels *p);

/* p converted to 8-bit with the same components (the format a
 * GimpDrawablePreview draws), rowstride width·n_components. */
guchar       *plugin_pixels_to_u8       (const PluginPixels *p);

G_END_DECLS

#endif /* DDPM_PLUGIN_PIXELS_H */
