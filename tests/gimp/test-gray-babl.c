/* test-gray-babl.c: the engine's RGB → gray (ddpm_rgb_to_gray) against
 * GIMP's own, live: babl's conversion from R'G'B' float to Y' float, which
 * GIMP 2.10 runs for Image ▸ Mode ▸ Grayscale and which the plug-in gets
 * when it reads a gray layer.  Random colours and the corners of the
 * cube; the two agree to babl's float rounding. */
#include <math.h>

#include <babl/babl.h>

#include "ddpm.h"

static void
test_matches_babl (void)
{
  enum { N = 4096 };
  float *rgb = g_new (float, 3 * N), *want = g_new (float, N);
  GRand *rand = g_rand_new_with_seed (2026);
  double worst = 0;

  for (int i = 0; i < N; i++)
    for (int c = 0; c < 3; c++)
      rgb[3 * i + c] = i < 8 ? (float) ((i >> c) & 1) : (float) g_rand_double (rand);
  babl_process (babl_fish (babl_format ("R'G'B' float"), babl_format ("Y' float")),
                rgb, want, N);
  for (int i = 0; i < N; i++)
    {
      const float *c = rgb + 3 * i;
      double err = fabs ((double) ddpm_rgb_to_gray (c[0], c[1], c[2]) - want[i]);

      worst = MAX (worst, err);
      if (err > 4e-6)
        g_error ("(%g, %g, %g): engine %.7f, babl %.7f", c[0], c[1], c[2],
                 ddpm_rgb_to_gray (c[0], c[1], c[2]), want[i]);
    }
  g_test_message ("worst difference from babl: %.3g", worst);
  g_rand_free (rand);
  g_free (rgb);
  g_free (want);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  babl_init ();
  g_test_add_func ("/gimp/gray/matches-babl", test_matches_babl);
  int status = g_test_run ();
  babl_exit ();
  return status;
}
