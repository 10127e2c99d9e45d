/* pixels.c: a layer's interleaved float pixels ⇄ the engine's planar
 * tensors, for every GIMP front end.  See plugin-core.h ("pixels").
 *
 * Each GIMP reads its drawable through GEGL in a perceptual float format
 * with the drawable's own components ("R'G'B'A float", "Y' float", …), so
 * what arrives here is the same whatever GIMP and precision: (H·W, n_color
 * [+ alpha]) floats in [0, 1].  The model sees the sRGB-encoded values it
 * was trained on, gray replicated into RGB or RGB reduced to GIMP's luma
 * when the channel counts differ; alpha is never touched.
 */
#include "core-private.h"

float *
plugin_try_new_floats (gsize a,
                       gsize b,
                       gsize c)
{
  if (a == 0 || b == 0 || c == 0)
    return g_try_new (float, 1);
  if (b > G_MAXSIZE / a || c > G_MAXSIZE / (a * b)
      || a * b * c > G_MAXSIZE / sizeof (float))
    return NULL;
  return g_try_new (float, a * b * c);
}

float *
plugin_pixels_data_to_planes (const float *data,
                              gsize        n_pixels,
                              gint         n_color,
                              gboolean     has_alpha,
                              gint         channels)
{
  gsize n = n_pixels;
  int nc = n_color + (has_alpha ? 1 : 0);
  float *t;

  g_return_val_if_fail (channels == 1 || channels == 3, NULL);
  g_return_val_if_fail (n_color == 1 || n_color == 3, NULL);

  t = plugin_try_new_floats (channels, n, 1);
  if (t == NULL)
    return NULL;

  for (gsize i = 0; i < n; i++)
    {
      const float *px = data + i * nc;

      if (channels == n_color)
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
plugin_pixels_data_from_planes (float       *data,
                                gsize        n_pixels,
                                gint         n_color,
                                gboolean     has_alpha,
                                const float *tensor,
                                const float *original,
                                gint         channels,
                                gboolean     keep_chroma)
{
  gsize n = n_pixels;
  int nc = n_color + (has_alpha ? 1 : 0);

  g_return_if_fail (channels == 1 || channels == 3);
  g_return_if_fail (n_color == 1 || n_color == 3);
  g_return_if_fail (!keep_chroma || original != NULL);

  for (gsize i = 0; i < n; i++)
    {
      float *px = data + i * nc;

      if (channels == n_color)
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

void
plugin_mask_clamp (float *mask,
                   gsize  n_pixels)
{
  for (gsize i = 0; i < n_pixels; i++)
    mask[i] = CLAMP (mask[i], 0.0f, 1.0f);
}
