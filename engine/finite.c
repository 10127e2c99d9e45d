/* finite.c: find NaN or infinity in a float array.  See finite.h.
 *
 * A float is not finite exactly when its 8 exponent bits are all ones.
 * Testing the bits rather than calling isfinite() keeps the answer right
 * under -ffast-math (which lets the compiler assume no NaN) and lets gcc
 * vectorise the scan: each chunk ORs its lanes' verdicts without a branch,
 * and only a chunk that holds a non-finite value is scanned again for the
 * index.
 */
#include <string.h>

#include "finite.h"

#define FINITE_CHUNK 4096

static inline guint32
nonfinite_bit (const float *x, gsize k)
{
  guint32 u;

  memcpy (&u, x + k, sizeof u);
  return (u & 0x7f800000u) == 0x7f800000u;
}

gsize
ddpm_floats_find_nonfinite (const float *x, gsize n)
{
  g_return_val_if_fail (x != NULL || n == 0, 0);

  for (gsize c0 = 0; c0 < n; c0 += FINITE_CHUNK)
    {
      gsize c1 = MIN (n, c0 + FINITE_CHUNK);
      guint32 bad = 0;

      for (gsize k = c0; k < c1; k++)
        bad |= nonfinite_bit (x, k);
      if (bad)
        for (gsize k = c0; k < c1; k++)
          if (nonfinite_bit (x, k))
            return k;
    }
  return n;
}
