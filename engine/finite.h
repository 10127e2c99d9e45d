/* finite.h: is a float array free of NaN and infinity?  (internal to
 * libddpm; model loading checks every weight tensor with it, img2img every
 * prediction of ε.)
 */
#ifndef DDPM_FINITE_H
#define DDPM_FINITE_H

#include <glib.h>

G_BEGIN_DECLS

/* The index of the first NaN or ±inf among x[0..n), or n when all are
 * finite.  Reads the exponent bits, so it holds under -ffast-math too, and
 * gcc vectorises it: a few hundred MB/s per core at worst, nothing beside a
 * forward pass. */
gsize ddpm_floats_find_nonfinite (const float *x, gsize n);

G_END_DECLS

#endif /* DDPM_FINITE_H */
