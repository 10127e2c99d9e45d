/* test-gray.c: the engine's one RGB → gray conversion (gray.c).
 *
 * The oracle is GIMP itself: the gray babl 0.1.98 makes of each colour
 * when GIMP 2.10 converts R'G'B' float to Y' float (Image ▸ Mode ▸
 * Grayscale), recorded below; tests/gimp/test-gray-babl.c compares with
 * the installed babl live.  Also: gray stays gray, more of any primary is
 * never darker, the planar form equals the per-pixel one (also in place),
 * and out-of-range values are handled oddly symmetric, without NaN.
 */
#include <math.h>

#include "ddpm.h"

static const float reference[][4] = {
  /* R', G', B' → Y' from babl */
  { 1, 0, 0, 0.5090231f },
  { 0, 1, 0, 0.8633916f },
  { 0, 0, 1, 0.2730758f },
  { 0.5f, 0.5f, 0.5f, 0.5000002f },
  { 1, 0, 0.75f, 0.5411814f },
  { 0.9f, 0.3f, 0.1f, 0.5151187f },
  { 0.2f, 0.7f, 0.4f, 0.6152049f },
  { 0.02f, 0.01f, 0.03f, 0.0134370f },
  { 0, 0, 0, 0 },
  { 1, 1, 1, 1 },
  { 0.25f, 0.5f, 0.75f, 0.4805016f },
};

static void
test_matches_gimp (void)
{
  for (gsize i = 0; i < G_N_ELEMENTS (reference); i++)
    {
      const float *c = reference[i];
      float y = ddpm_rgb_to_gray (c[0], c[1], c[2]);

      if (fabsf (y - c[3]) > 2e-6f)
        g_error ("(%g, %g, %g): gray %.7f, GIMP's %.7f", c[0], c[1], c[2], y, c[3]);
    }
  /* Not the old luma of the encoded values, Rec. 601 or Rec. 709. */
  g_assert_cmpfloat (fabsf (ddpm_rgb_to_gray (1, 0, 0) - 0.299f), >, 0.1f);
  g_assert_cmpfloat (fabsf (ddpm_rgb_to_gray (1, 0, 0) - 0.2126f), >, 0.1f);
}

static void
test_properties (void)
{
  for (int k = 0; k <= 1000; k++)
    {
      const float v = k / 1000.0f;

      /* gray in, the same gray out (the weights sum to 1) */
      g_assert_cmpfloat_with_epsilon (ddpm_rgb_to_gray (v, v, v), v, 2e-6);
      /* more of one primary is never darker */
      if (k > 0)
        {
          const float u = (k - 1) / 1000.0f;
          g_assert_cmpfloat (ddpm_rgb_to_gray (v, 0.3f, 0.6f), >, ddpm_rgb_to_gray (u, 0.3f, 0.6f));
          g_assert_cmpfloat (ddpm_rgb_to_gray (0.3f, v, 0.6f), >, ddpm_rgb_to_gray (0.3f, u, 0.6f));
          g_assert_cmpfloat (ddpm_rgb_to_gray (0.3f, 0.6f, v), >, ddpm_rgb_to_gray (0.3f, 0.6f, u));
        }
    }
  /* outside [0, 1] (float images): odd about 0, finite */
  const float odd[][3] = { { -0.5f, -0.2f, -0.9f }, { -0.01f, -0.02f, -0.03f }, { -2, -1, -3 } };
  for (gsize i = 0; i < G_N_ELEMENTS (odd); i++)
    {
      const float *c = odd[i];
      float neg = ddpm_rgb_to_gray (c[0], c[1], c[2]);
      float pos = ddpm_rgb_to_gray (-c[0], -c[1], -c[2]);

      g_assert_true (isfinite (neg));
      g_assert_cmpfloat (neg, ==, -pos);
    }
  g_assert_cmpfloat (ddpm_rgb_to_gray (2, 2, 2), >, 1.9f);
}

static void
test_planes (void)
{
  enum { N = 1000 };
  float *rgb = g_new (float, 3 * N), *gray = g_new (float, N);
  GRand *rand = g_rand_new_with_seed (7);

  for (gsize i = 0; i < 3 * N; i++)
    rgb[i] = (float) g_rand_double (rand);
  ddpm_rgb_to_gray_planes (gray, rgb, N);
  for (gsize i = 0; i < N; i++)
    g_assert_cmpfloat (gray[i], ==, ddpm_rgb_to_gray (rgb[i], rgb[N + i], rgb[2 * N + i]));
  /* in place, over the red plane */
  ddpm_rgb_to_gray_planes (rgb, rgb, N);
  g_assert_cmpmem (rgb, N * sizeof (float), gray, N * sizeof (float));
  ddpm_rgb_to_gray_planes (NULL, NULL, 0);
  g_rand_free (rand);
  g_free (rgb);
  g_free (gray);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/engine/gray/matches-gimp", test_matches_gimp);
  g_test_add_func ("/engine/gray/properties", test_properties);
  g_test_add_func ("/engine/gray/planes", test_planes);
  return g_test_run ();
}
