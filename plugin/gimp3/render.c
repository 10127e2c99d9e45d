/* render.c: the GIMP 3.0 side of the core's render and train jobs
 * (plugin-core.h): the drawable's region read through GEGL as perceptual
 * floats in the drawable's own colour space (babl converts from whatever
 * precision it stores), turned into planes by the core, and the result
 * written to the drawable's shadow buffer, which gimp_drawable_merge_shadow
 * applies through the selection as one undo step.  A failure or a cancel
 * (GIMP ends the plug-in) leaves the shadow unmerged: the image untouched.
 */
#include "plugin-gimp3.h"

#include <string.h>

#include <libgimp/gimpui.h>

gboolean
plugin_gimp_progress (const gchar *text,
                      gdouble      fraction,
                      gboolean     begin,
                      gpointer     user_data)
{
  if (begin)
    gimp_progress_init (text);
  else
    {
      gimp_progress_set_text (text);
      gimp_progress_update (fraction);
    }
  return TRUE;
}

/* One region of a drawable as interleaved perceptual floats. */
typedef struct
{
  GeglRectangle rect;
  gint          n_color;
  gboolean      has_alpha;
  const Babl   *format;
  float        *data;
} Pixels;

static void
pixels_clear (Pixels *p)
{
  g_clear_pointer (&p->data, g_free);
}

static gboolean
pixels_read (GimpDrawable        *drawable,
             const GeglRectangle *rect,
             Pixels              *p,
             GError             **error)
{
  const Babl *space = gimp_drawable_get_format (drawable);
  GeglBuffer *buffer;
  gint nc;

  if (gimp_drawable_is_indexed (drawable))
    {
      g_set_error_literal (error, DDPM_ERROR, DDPM_ERROR_UNSUPPORTED,
                           _("Indexed layers are not supported: convert the "
                             "image to RGB or grayscale first (Image ▸ Mode)."));
      return FALSE;
    }
  p->rect = *rect;
  p->n_color = gimp_drawable_is_rgb (drawable) ? 3 : 1;
  p->has_alpha = gimp_drawable_has_alpha (drawable);
  if (p->n_color == 3)
    p->format = babl_format_with_space (p->has_alpha ? "R'G'B'A float"
                                                     : "R'G'B' float", space);
  else
    p->format = babl_format_with_space (p->has_alpha ? "Y'A float"
                                                     : "Y' float", space);
  nc = p->n_color + (p->has_alpha ? 1 : 0);
  p->data = plugin_try_new_floats (rect->width, rect->height, nc);
  if (p->data == NULL)
    {
      plugin_set_region_error (error, rect->width, rect->height);
      return FALSE;
    }
  buffer = gimp_drawable_get_buffer (drawable);
  gegl_buffer_get (buffer, rect, 1.0, p->format, p->data,
                   GEGL_AUTO_ROWSTRIDE, GEGL_ABYSS_NONE);
  g_object_unref (buffer);
  return TRUE;
}

/* The selection over rect (drawable coordinates) as floats in [0, 1];
 * NULL when nothing is selected (GIMP 3 then reads the mask as all 0). */
static float *
selection_read (GimpDrawable        *drawable,
                const GeglRectangle *rect)
{
  GimpImage *image = gimp_item_get_image (GIMP_ITEM (drawable));
  GimpSelection *selection;
  GeglBuffer *buffer;
  const Babl *format;
  float *mask;
  gint ox = 0, oy = 0;

  if (gimp_selection_is_empty (image))
    return NULL;
  mask = plugin_try_new_floats (rect->width, rect->height, 1);
  if (mask == NULL)
    return NULL;
  /* Image coordinates; in the mask's own transfer curve, so that a
   * feather of 50 % stays 0.5 (as the 2.10 glue reads it). */
  gimp_drawable_get_offsets (drawable, &ox, &oy);
  selection = gimp_image_get_selection (image);
  format = gimp_drawable_get_format (GIMP_DRAWABLE (selection));
  format = babl_format (strstr (babl_get_name (format), "Y'") ? "Y' float"
                                                               : "Y float");
  buffer = gimp_drawable_get_buffer (GIMP_DRAWABLE (selection));
  gegl_buffer_get (buffer,
                   GEGL_RECTANGLE (rect->x + ox, rect->y + oy,
                                   rect->width, rect->height),
                   1.0, format, mask, GEGL_AUTO_ROWSTRIDE, GEGL_ABYSS_NONE);
  g_object_unref (buffer);
  plugin_mask_clamp (mask, (gsize) rect->width * rect->height);
  return mask;
}

/* The target rectangle of p (inside p->rect) into the shadow buffer,
 * merged through the selection as one undo step. */
static void
apply_to_drawable (GimpDrawable        *drawable,
                   const Pixels        *p,
                   const GeglRectangle *target)
{
  GimpImage *image = gimp_item_get_image (GIMP_ITEM (drawable));
  GeglBuffer *shadow = gimp_drawable_get_shadow_buffer (drawable);
  gint nc = p->n_color + (p->has_alpha ? 1 : 0);
  const float *first = p->data + ((gsize) (target->y - p->rect.y) * p->rect.width
                                  + (target->x - p->rect.x)) * nc;

  gimp_image_undo_group_start (image);
  gegl_buffer_set (shadow, target, 0, p->format, first,
                   p->rect.width * nc * sizeof (float));
  gegl_buffer_flush (shadow);
  g_object_unref (shadow);
  gimp_drawable_merge_shadow (drawable, TRUE);
  gimp_drawable_update (drawable, target->x, target->y,
                        target->width, target->height);
  gimp_image_undo_group_end (image);
  gimp_progress_update (1.0);
}

/* The pixels of rect (inside p->rect) as 8-bit in the drawable's own
 * components (what gimp_preview_draw_buffer takes: the drawable's
 * GimpImageType), drawn into the preview, which shows them through the
 * selection. */
static void
draw_preview (GimpPreview         *preview,
              GimpDrawable        *drawable,
              const Pixels        *p,
              const GeglRectangle *rect)
{
  const Babl *space = gimp_drawable_get_format (drawable);
  const Babl *u8;
  const Babl *fish;
  gint nc = p->n_color + (p->has_alpha ? 1 : 0);
  guchar *buffer = g_malloc ((gsize) rect->width * rect->height * nc);

  if (p->n_color == 3)
    u8 = babl_format_with_space (p->has_alpha ? "R'G'B'A u8" : "R'G'B' u8", space);
  else
    u8 = babl_format_with_space (p->has_alpha ? "Y'A u8" : "Y' u8", space);
  fish = babl_fish (p->format, u8);
  for (gint y = 0; y < rect->height; y++)
    babl_process (fish,
                  p->data + ((gsize) (rect->y - p->rect.y + y) * p->rect.width
                             + (rect->x - p->rect.x)) * nc,
                  buffer + (gsize) y * rect->width * nc, rect->width);
  gimp_preview_draw_buffer (preview, buffer, rect->width * nc);
  g_free (buffer);
}

/* Where a run works: the preview's visible area, or the selection's
 * bounds on the drawable; FALSE when that is empty. */
static gboolean
render_target (GimpDrawable  *drawable,
               GimpPreview   *preview,
               GeglRectangle *target)
{
  if (preview != NULL)
    {
      gimp_preview_get_position (preview, &target->x, &target->y);
      gimp_preview_get_size (preview, &target->width, &target->height);
    }
  else if (!gimp_drawable_mask_intersect (drawable, &target->x, &target->y,
                                          &target->width, &target->height))
    return FALSE;  /* the selection misses this layer */
  return target->width > 0 && target->height > 0;
}

gboolean
plugin_render_drawable (GimpDrawable          *drawable,
                        const PluginRenderJob *job,
                        GimpPreview           *preview,
                        GError               **error)
{
  GimpImage *image = gimp_item_get_image (GIMP_ITEM (drawable));
  GeglRectangle target;
  PluginRenderPlan plan;
  PluginRect t, c;
  Pixels pixels = { 0 };
  float *planes = NULL, *original = NULL, *mask = NULL;
  gsize n, size;
  gboolean ok = FALSE;

  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (!plugin_render_job_check (job, error))
    return FALSE;
  if (!render_target (drawable, preview, &target))
    return TRUE;  /* nothing to do */
  if (!plugin_render_job_plan (job, &plan, error))
    return FALSE;
  if (plan.n_steps == 0)
    {
      /* Strength 0, no noise: the pixels stay, bit for bit; a preview
       * shows them as they are. */
      if (preview == NULL)
        return TRUE;
      if (!plugin_region_check (target.width, target.height,
                                gimp_drawable_is_rgb (drawable) ? 3 : 1, error)
          || !pixels_read (drawable, &target, &pixels, error))
        return FALSE;
      draw_preview (preview, drawable, &pixels, &target);
      pixels_clear (&pixels);
      return TRUE;
    }

  t = (PluginRect) { target.x, target.y, target.width, target.height };
  if (!plugin_render_context (&plan, &t, gimp_drawable_get_width (drawable),
                              gimp_drawable_get_height (drawable),
                              !gimp_selection_is_empty (image), &c, error))
    goto out;  /* beyond the limits: refused before reading any pixel */
  if (!pixels_read (drawable, GEGL_RECTANGLE (c.x, c.y, c.width, c.height),
                    &pixels, error))
    goto out;
  n = (gsize) c.width * c.height;
  size = n * plan.channels * sizeof (float);
  planes = plugin_pixels_data_to_planes (pixels.data, n, pixels.n_color,
                                         pixels.has_alpha, plan.channels);
  original = planes ? g_try_malloc (size) : NULL;
  if (original == NULL)
    {
      plugin_set_region_error (error, c.width, c.height);
      goto out;
    }
  memcpy (original, planes, size);
  mask = selection_read (drawable, &pixels.rect);

  /* A preview shows no progress: the dialog stays responsive to read. */
  if (!plugin_render_job_run (job, &plan, planes, original, mask,
                              c.height, c.width,
                              preview ? NULL : plugin_gimp_progress, NULL,
                              error))
    goto out;

  plugin_pixels_data_from_planes (pixels.data, n, pixels.n_color,
                                  pixels.has_alpha, planes, original,
                                  plan.channels, job->keep_chroma);
  if (preview != NULL)
    draw_preview (preview, drawable, &pixels, &target);
  else
    apply_to_drawable (drawable, &pixels, &target);
  ok = TRUE;

out:
  pixels_clear (&pixels);
  g_free (planes);
  g_free (original);
  g_free (mask);
  return ok;
}

gboolean
plugin_estimate_drawable (GimpDrawable *drawable,
                          gdouble      *sigma,
                          GError      **error)
{
  GeglRectangle r;
  Pixels pixels = { 0 };
  float *planes;
  gboolean ok;

  *sigma = 0.0;
  if (!gimp_drawable_mask_intersect (drawable, &r.x, &r.y, &r.width, &r.height)
      || r.width < 2 || r.height < 2)
    return TRUE;  /* no pixels (or too few) to find noise in */
  if (!plugin_region_check (r.width, r.height, gimp_drawable_is_rgb (drawable) ? 3 : 1,
                            error))
    return FALSE;  /* beyond the limits: refused before reading any pixel */
  if (!pixels_read (drawable, &r, &pixels, error))
    return FALSE;
  /* The layer's own channels, so that σ is what the user sees in it. */
  planes = plugin_pixels_data_to_planes (pixels.data, (gsize) r.width * r.height,
                                         pixels.n_color, pixels.has_alpha,
                                         pixels.n_color);
  if (planes == NULL)
    {
      plugin_set_region_error (error, r.width, r.height);
      pixels_clear (&pixels);
      return FALSE;
    }
  ok = plugin_estimate_noise (planes, pixels.n_color, r.height, r.width,
                              sigma, error);
  g_free (planes);
  pixels_clear (&pixels);
  return ok;
}

gboolean
plugin_train_drawable (GimpDrawable            *drawable,
                       const PluginTrainValues *vals,
                       GError                 **error)
{
  GeglRectangle r;
  DdpmTrainParams params;
  Pixels pixels = { 0 };
  float *planes;
  gboolean ok;

  if (!gimp_drawable_mask_intersect (drawable, &r.x, &r.y, &r.width, &r.height))
    r.width = r.height = 0;  /* no pixels to learn from */
  if (!plugin_train_job_prepare (vals, gimp_drawable_is_rgb (drawable) ? 3 : 1,
                                 r.width, r.height, &params, error))
    return FALSE;
  if (!pixels_read (drawable, &r, &pixels, error))
    return FALSE;
  planes = plugin_pixels_data_to_planes (pixels.data, (gsize) r.width * r.height,
                                         pixels.n_color, pixels.has_alpha,
                                         pixels.n_color);
  if (planes == NULL)
    {
      plugin_set_region_error (error, r.width, r.height);
      pixels_clear (&pixels);
      return FALSE;
    }
  ok = plugin_train_job_run (&params, planes, pixels.n_color, r.height,
                             r.width, plugin_gimp_progress, NULL, error);
  if (ok)
    gimp_progress_update (1.0);
  g_free (planes);
  pixels_clear (&pixels);
  return ok;
}
