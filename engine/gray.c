/* gray.c: the engine's one RGB → gray conversion, shared by the command
 * line (image files), the trainer (datasets) and the GIMP plug-in.
 *
 * HOW IT WORKS
 *
 * GIMP 2.10 turns colour into gray with the CIE luminance of the colour,
 * computed on linear light: Image ▸ Mode ▸ Grayscale is babl's conversion
 * from R'G'B' to Y', and Colors ▸ Desaturate's default mode, "Luminance",
 * works on linear RGB with the same weights (app/operations/
 * gimpoperationdesaturate.c).  The weights are libgimpcolor/gimprgb.h's
 * GIMP_RGB_LUMINANCE_RED/GREEN/BLUE = 0.22248840, 0.71690369, 0.06060791:
 * the Y row of sRGB's RGB → XYZ matrix (Rec. 709 primaries, whose D65
 * luminance weights are 0.2126, 0.7152, 0.0722) chromatically adapted to
 * the D50 white of ICC profiles, as babl's sRGB space has them.  Pixels
 * here are sRGB-encoded (what the plug-in reads as R'G'B' and what the
 * command line takes from PNG and JPEG files), so each component is
 * decoded with the sRGB curve (IEC 61966-2-1), weighted, and the sum
 * encoded again:
 *
 *   Y' = f(0.22248840·f⁻¹(R') + 0.71690369·f⁻¹(G') + 0.06060791·f⁻¹(B')).
 *
 * The engine had Rec. 601 luma (0.299 R' + 0.587 G' + 0.114 B') and the
 * plug-in Rec. 709 luma (0.2126 R' + …), both weighting the encoded
 * values, so the command line and GIMP fed a gray model different grays
 * for one photo, and neither matched a photo the user had made gray in
 * GIMP.  With GIMP's own formula all three agree (to babl's float
 * rounding, about 1e-6; tests/gimp/test-gray-babl.c compares).  The
 * weights sum to 1, so gray stays gray.  Values outside [0, 1] (float
 * images) go through the curves mirrored about 0, as babl does.
 */
#include <math.h>

#include "ddpm.h"

#define LUMINANCE_RED   0.22248840
#define LUMINANCE_GREEN 0.71690369
#define LUMINANCE_BLUE  0.06060791

/* sRGB-encoded → linear light (IEC 61966-2-1), odd about 0 */
static inline double
srgb_to_linear (double v)
{
  double a = fabs (v);
  double l = a <= 0.04045 ? a / 12.92 : pow ((a + 0.055) / 1.055, 2.4);

  return v < 0 ? -l : l;
}

/* linear light → sRGB-encoded, odd about 0 */
static inline double
linear_to_srgb (double v)
{
  double a = fabs (v);
  double e = a <= 0.0031308 ? 12.92 * a : 1.055 * pow (a, 1.0 / 2.4) - 0.055;

  return v < 0 ? -e : e;
}

float
ddpm_rgb_to_gray (float r, float g, float b)
{
  double y = LUMINANCE_RED * srgb_to_linear (r)
             + LUMINANCE_GREEN * srgb_to_linear (g)
             + LUMINANCE_BLUE * srgb_to_linear (b);

  return (float) linear_to_srgb (y);
}

void
ddpm_rgb_to_gray_planes (float       *gray,
                         const float *rgb,
                         gsize        n)
{
  g_return_if_fail (gray != NULL || n == 0);
  g_return_if_fail (rgb != NULL || n == 0);

  for (gsize i = 0; i < n; i++)
    gray[i] = ddpm_rgb_to_gray (rgb[i], rgb[n + i], rgb[2 * n + i]);
}
