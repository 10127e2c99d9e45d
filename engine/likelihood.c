/* likelihood.c: the terms of the variational bound (Ho et al. 2020, §3.3,
 * eq. 5): Gaussian KL divergences for L_1..L_{T−1} and L_T, and the
 * discretised Gaussian decoder for L_0.  In nats; divide by ln 2 and by the
 * number of dimensions for bits/dim. */
#include <math.h>

#include "ddpm.h"

double
ddpm_normal_kl (double mean1, double logvar1, double mean2, double logvar2)
{
  double d = mean1 - mean2;

  return 0.5 * (-1.0 + logvar2 - logvar1 + exp (logvar1 - logvar2)
                + d * d * exp (-logvar2));
}

/* log Φ(z) and log(1 − Φ(z)) without cancellation in the tails:
 * Φ(z) = ½·erfc(−z/√2). */
static double
log_cdf (double z)
{
  return log (0.5 * erfc (-z * G_SQRT2 / 2.0));
}

static double
log_survival (double z)
{
  return log (0.5 * erfc (z * G_SQRT2 / 2.0));
}

/* Ho et al. 2020, eq. 13.  The reference code approximates Φ with a tanh
 * formula; we use erfc, which is exact to double precision, so that the 256
 * bin probabilities sum to 1.  The middle bins take the difference of two
 * CDFs on whichever side of the mean keeps it well conditioned. */
double
ddpm_discretized_gaussian_log_likelihood (double x,
                                          double mean,
                                          double log_scale)
{
  const double half_bin = 1.0 / 255.0;
  double inv_stdv = exp (-log_scale);
  double lo = (x - mean - half_bin) * inv_stdv;
  double hi = (x - mean + half_bin) * inv_stdv;

  if (x < -0.999)
    return log_cdf (hi);
  if (x > 0.999)
    return log_survival (lo);

  /* P(lo < Z < hi): in the upper tail use survival functions, else CDFs. */
  double p = lo > 0.0
             ? 0.5 * erfc (lo * G_SQRT2 / 2.0) - 0.5 * erfc (hi * G_SQRT2 / 2.0)
             : 0.5 * erfc (-hi * G_SQRT2 / 2.0) - 0.5 * erfc (-lo * G_SQRT2 / 2.0);
  /* A bin far in the tail can underflow to 0; the reference clamps at 1e-12. */
  return log (MAX (p, 1e-300));
}
