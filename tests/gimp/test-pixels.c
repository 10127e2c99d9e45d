/* test-pixels.c: the plug-in's pixel conversions (plugin/gimp2/pixels.c)
 * that need no running GIMP: drawable pixels ⇄ the engine's planar [−1, 1]
 * tensors, for every pairing of layer and model channels, with alpha
 * carried through.  The oracles are the definitions: v ↦ 2v − 1, GIMP's
 * gray (ddpm_rgb_to_gray, itself checked against babl by test-gray and
 * test-gray-babl), replication, and the luma shift that keeps colours. */
#include "config.h"

#include <math.h>
#include <string.h>

#include "ddpm.h"
#include "pixels.h"

/* A PluginPixels of width × 1 pixels with the given components. */
static PluginPixels *
make_pixels (int n_color, gboolean alpha, int width, const float *data)
{
  PluginPixels *p = g_new0 (PluginPixels, 1);

  p->rect = (GeglRectangle) { 0, 0, width, 1 };
  p->n_color = n_color;
  p->has_alpha = alpha;
  p->n_components = n_color + (alpha ? 1 : 0);
  p->data = g_new (float, width * p->n_components);
  memcpy (p->data, data, sizeof (float) * width * p->n_components);
  return p;
}

static void
test_rgb_identity (void)
{
  const float data[] = { 0.0f, 0.5f, 1.0f, 0.25f,   0.1f, 0.2f, 0.3f, 1.0f };
  PluginPixels *p = make_pixels (3, TRUE, 2, data);
  float *t = plugin_pixels_to_tensor (p, 3);

  /* Planar: channel c of pixel i at c·n + i, in [−1, 1]. */
  g_assert_cmpfloat_with_epsilon (t[0], -1.0f, 1e-6);  /* R of pixel 0 */
  g_assert_cmpfloat_with_epsilon (t[1], -0.8f, 1e-6);  /* R of pixel 1 */
  g_assert_cmpfloat_with_epsilon (t[2], 0.0f, 1e-6);   /* G of pixel 0 */
  g_assert_cmpfloat_with_epsilon (t[4], 1.0f, 1e-6);   /* B of pixel 0 */
  g_assert_cmpfloat_with_epsilon (t[5], -0.4f, 1e-6);  /* B of pixel 1 */

  /* Back, out of range values clamped, alpha untouched. */
  t[0] = -3.0f;
  t[3] = 0.0f;
  plugin_pixels_from_tensor (p, t, NULL, 3, FALSE);
  g_assert_cmpfloat (p->data[0], ==, 0.0f);
  g_assert_cmpfloat_with_epsilon (p->data[1], 0.5f, 1e-6);
  g_assert_cmpfloat_with_epsilon (p->data[5], 0.5f, 1e-6);   /* G of pixel 1 */
  g_assert_cmpfloat (p->data[3], ==, 0.25f);
  g_assert_cmpfloat (p->data[7], ==, 1.0f);

  g_free (t);
  plugin_pixels_free (p);
}

static void
test_gray_on_rgb_model (void)
{
  const float data[] = { 0.2f, 0.5f,   0.8f, 1.0f };  /* Y'A */
  PluginPixels *p = make_pixels (1, TRUE, 2, data);
  float *t = plugin_pixels_to_tensor (p, 3);
  float rgb[6] = { 0.0f, 0.4f,   1.0f, -0.2f,   -1.0f, 0.6f };

  /* Gray replicated into the three channels. */
  for (int c = 0; c < 3; c++)
    {
      g_assert_cmpfloat_with_epsilon (t[c * 2], -0.6f, 1e-6);
      g_assert_cmpfloat_with_epsilon (t[c * 2 + 1], 0.6f, 1e-6);
    }

  /* RGB back to gray: GIMP's gray of the components on the [0, 1] scale. */
  plugin_pixels_from_tensor (p, rgb, NULL, 3, FALSE);
  g_assert_cmpfloat_with_epsilon (p->data[0], ddpm_rgb_to_gray (0.5f, 1.0f, 0.0f), 1e-6);
  g_assert_cmpfloat_with_epsilon (p->data[2], ddpm_rgb_to_gray (0.7f, 0.4f, 0.8f), 1e-6);
  g_assert_cmpfloat (p->data[1], ==, 0.5f);
  g_assert_cmpfloat (p->data[3], ==, 1.0f);
  g_free (t);
  plugin_pixels_free (p);
}

static void
test_rgb_on_gray_model (void)
{
  const float data[] = { 0.9f, 0.3f, 0.1f,   0.05f, 0.05f, 0.95f };  /* R'G'B' */
  PluginPixels *p = make_pixels (3, FALSE, 2, data);
  PluginPixels *q = make_pixels (3, FALSE, 2, data);
  float *t = plugin_pixels_to_tensor (p, 1);
  float y0 = ddpm_rgb_to_gray (0.9f, 0.3f, 0.1f);
  float shifted[2];

  g_assert_cmpfloat_with_epsilon (t[0], 2 * y0 - 1, 1e-6);

  /* Renoise: every channel moves by the change in luma, so the colour
   * stays; where that leaves [0, 1] it clips. */
  shifted[0] = t[0] + 0.2f;   /* luma + 0.1 */
  shifted[1] = t[1] - 0.2f;   /* luma − 0.1: pixel 1's R and G clip */
  plugin_pixels_from_tensor (p, shifted, t, 1, TRUE);
  g_assert_cmpfloat_with_epsilon (p->data[0], 1.0f, 1e-6);
  g_assert_cmpfloat_with_epsilon (p->data[1], 0.4f, 1e-6);
  g_assert_cmpfloat_with_epsilon (p->data[2], 0.2f, 1e-6);
  g_assert_cmpfloat (p->data[3], ==, 0.0f);
  g_assert_cmpfloat (p->data[4], ==, 0.0f);
  g_assert_cmpfloat_with_epsilon (p->data[5], 0.85f, 1e-6);

  /* Generate: the gray result replaces all three channels. */
  plugin_pixels_from_tensor (q, shifted, NULL, 1, FALSE);
  for (int c = 0; c < 3; c++)
    g_assert_cmpfloat_with_epsilon (q->data[c], y0 + 0.1f, 1e-6);

  g_free (t);
  plugin_pixels_free (p);
  plugin_pixels_free (q);
}

static void
test_crop (void)
{
  float data[4 * 3 * 2];
  PluginPixels *p, *c;

  for (int i = 0; i < 24; i++)
    data[i] = i;
  p = make_pixels (1, TRUE, 12, data);   /* 12 × 1 → reshape to 4 × 3 */
  p->rect = (GeglRectangle) { 10, 20, 4, 3 };
  c = plugin_pixels_crop (p, GEGL_RECTANGLE (11, 21, 2, 2));

  g_assert_cmpint (c->rect.x, ==, 11);
  g_assert_cmpint (c->rect.width, ==, 2);
  /* Row 1, column 1 of the 4-wide source: pixel 5, components 10, 11. */
  g_assert_cmpfloat (c->data[0], ==, 10.0f);
  g_assert_cmpfloat (c->data[1], ==, 11.0f);
  g_assert_cmpfloat (c->data[2], ==, 12.0f);
  /* Row 2, column 1: pixel 9. */
  g_assert_cmpfloat (c->data[4], ==, 18.0f);
  g_assert_cmpfloat (c->data[7], ==, 21.0f);
  plugin_pixels_free (c);
  plugin_pixels_free (p);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/plugin/pixels/rgb-identity", test_rgb_identity);
  g_test_add_func ("/plugin/pixels/gray-on-rgb-model", test_gray_on_rgb_model);
  g_test_add_func ("/plugin/pixels/rgb-on-gray-model", test_rgb_on_gray_model);
  g_test_add_func ("/plugin/pixels/crop", test_crop);

  return g_test_run ();
}
