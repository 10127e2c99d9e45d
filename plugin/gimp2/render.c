/* render.c: the GIMP 2.10 side of the core's render job (plugin-core.h),
 * the one render function that serves both the dialogs' previews and the
 * final apply (GIMP 2.10 plug-ins/common style).
 *
 * The core decides (model, plan, context, engine call, what the pixels
 * become); this file moves the pixels: the target region (the selection's
 * bounds, or the preview's visible area), the context and selection read
 * through GEGL (pixels.c), and the result written either into the
 * GimpDrawablePreview or into the drawable's shadow buffer, merged as one
 * undo step with GIMP's progress bar showing the steps.  The merge applies
 * the selection, so pixels outside it are never written; a cancel (GIMP
 * kills the plug-in) leaves the shadow buffer unmerged and the image
 * untouched.
 */
#include "plugin-gimp2.h"

#include <string.h>

#include "pixels.h"

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

static void
draw_preview (GimpPreview        *preview,
              const PluginPixels *pixels)
{
  guchar *u8 = plugin_pixels_to_u8 (pixels);

  gimp_preview_draw_buffer (preview, u8,
                            pixels->rect.width * pixels->n_components);
  g_free (u8);
}

gboolean
plugin_render_target (gint32         drawable_id,
                      GimpPreview   *preview,
                      GeglRectangle *target)
{
  if (preview != NULL)
    {
      gimp_preview_get_position (preview, &target->x, &target->y);
      gimp_preview_get_size (preview, &target->width, &target->height);
    }
  else if (!gimp_drawable_mask_intersect (drawable_id, &target->x, &target->y,
                                          &target->width, &target->height))
    return FALSE;  /* the selection misses this layer */
  return target->width > 0 && target->height > 0;
}

/* The region the engine sees for `target`: with a selection, a margin of
 * context around it (plugin_render_context); FALSE if beyond the limits. */
static gboolean
render_context (gint32                  drawable_id,
                const PluginRenderPlan *plan,
                const GeglRectangle    *target,
                GeglRectangle          *context,
                GError                **error)
{
  gint32 image_id = gimp_item_get_image (drawable_id);
  PluginRect t = { target->x, target->y, target->width, target->height };
  PluginRect c;

  if (!plugin_render_context (plan, &t, gimp_drawable_width (drawable_id),
                              gimp_drawable_height (drawable_id),
                              !gimp_selection_is_empty (image_id), &c, error))
    return FALSE;
  *context = (GeglRectangle) { c.x, c.y, c.width, c.height };
  return TRUE;
}

/* The pixels out, into the drawable as one undo step: the shadow buffer,
 * merged through the selection. */
static void
apply_to_drawable (gint32              drawable_id,
                   const PluginPixels *out)
{
  gint32 image_id = gimp_item_get_image (drawable_id);

  gimp_image_undo_group_start (image_id);
  plugin_pixels_write_shadow (drawable_id, out);
  gimp_drawable_merge_shadow (drawable_id, TRUE);
  gimp_drawable_update (drawable_id, out->rect.x, out->rect.y,
                        out->rect.width, out->rect.height);
  gimp_image_undo_group_end (image_id);
  gimp_progress_update (1.0);
}

/* No work to do (strength 0, no noise found): the result is the input, so
 * leave the drawable alone (bit for bit, whatever its precision); a
 * preview shows it as it is. */
static gboolean
render_unchanged (gint32               drawable_id,
                  GimpPreview         *preview,
                  const GeglRectangle *target,
                  GError             **error)
{
  PluginPixels *pixels;

  if (preview == NULL)
    return TRUE;
  pixels = plugin_pixels_read (drawable_id, target, error);
  if (pixels == NULL)
    return FALSE;
  draw_preview (preview, pixels);
  plugin_pixels_free (pixels);
  return TRUE;
}

gboolean
plugin_render_drawable (gint32                 drawable_id,
                        const PluginRenderJob *job,
                        GimpPreview           *preview,
                        GError               **error)
{
  GeglRectangle target, context;
  PluginRenderPlan plan;
  PluginPixels *pixels = NULL, *out = NULL;
  float *planes = NULL, *original = NULL, *mask = NULL;
  gsize size;
  gboolean ok = FALSE;

  g_return_val_if_fail (job != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (!plugin_render_job_check (job, error))
    return FALSE;
  if (!plugin_render_target (drawable_id, preview, &target))
    return TRUE;  /* nothing to do */
  if (!plugin_render_job_plan (job, &plan, error))
    return FALSE;
  if (plan.n_steps == 0)
    return render_unchanged (drawable_id, preview, &target, error);

  /* In: the context's pixels as the model's planes, and the selection. */
  if (!render_context (drawable_id, &plan, &target, &context, error))
    goto out;
  pixels = plugin_pixels_read (drawable_id, &context, error);
  if (pixels == NULL)
    goto out;
  size = (gsize) context.width * context.height * plan.channels * sizeof (float);
  planes = plugin_pixels_to_tensor (pixels, plan.channels);
  original = planes ? g_try_malloc (size) : NULL;
  if (original == NULL)
    {
      plugin_set_region_error (error, context.width, context.height);
      goto out;
    }
  memcpy (original, planes, size);
  mask = plugin_selection_read (drawable_id, &context);

  if (!plugin_render_job_run (job, &plan, planes, original, mask,
                              context.height, context.width,
                              preview ? NULL : plugin_gimp_progress, NULL,
                              error))
    goto out;

  /* Out: the target's pixels, to the preview or the drawable. */
  plugin_pixels_from_tensor (pixels, planes, original, plan.channels,
                             job->keep_chroma);
  out = plugin_pixels_crop (pixels, &target);
  if (preview != NULL)
    draw_preview (preview, out);
  else
    apply_to_drawable (drawable_id, out);
  ok = TRUE;

out:
  plugin_pixels_free (out);
  plugin_pixels_free (pixels);
  g_free (planes);
  g_free (original);
  g_free (mask);
  return ok;
}
