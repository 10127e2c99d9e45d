/* analytic-denoisers.c: the optimal noise predictor for Gaussian data
 * (see analytic-denoisers.h). */
#include <math.h>

#include "analytic-denoisers.h"

void
analytic_gaussian_eps (float              *eps,
                       const float        *x,
                       gsize               n,
                       const DdpmSchedule *base,
                       int                 t,
                       double              mu,
                       double              s)
{
  const double ab = base->alpha_bar[t];
  const double k = sqrt (1 - ab) / (ab * s * s + 1 - ab);
  const double shift = sqrt (ab) * mu;

  for (gsize i = 0; i < n; i++)
    eps[i] = (float) (k * (x[i] - shift));
}

gboolean
analytic_gaussian_denoise (float       *eps,
                           const float *x,
                           int          B,
                           int          C,
                           int          H,
                           int          W,
                           int          t,
                           gpointer     user_data,
                           GError     **error)
{
  const AnalyticGaussian *g = user_data;

  analytic_gaussian_eps (eps, x, (gsize) B * C * H * W, g->base, t, g->mu, g->s);
  return TRUE;
}
