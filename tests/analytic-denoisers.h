/* analytic-denoisers.h: noise predictors whose optimum is known in closed
 * form, shared by the sampler, img2img and denoise tests. */
#ifndef DDPM_TEST_ANALYTIC_DENOISERS_H
#define DDPM_TEST_ANALYTIC_DENOISERS_H

#include "ddpm.h"

G_BEGIN_DECLS

/* For data x0 ~ N(μ, s²) independently per element, q(x_t) = N(√ᾱ_t·μ,
 * ᾱ_t·s² + 1 − ᾱ_t) and the optimal ε-prediction E[ε|x_t] is
 *   ε*(x_t, t) = √(1−ᾱ_t)·(x_t − √ᾱ_t·μ)/(ᾱ_t·s² + 1 − ᾱ_t),
 * with ᾱ_t from `base` at base timestep t (s = 0: the point mass μ). */
void     analytic_gaussian_eps     (float              *eps,
                                    const float        *x,
                                    gsize               n,
                                    const DdpmSchedule *base,
                                    int                 t,
                                    double              mu,
                                    double              s);

/* The same as a DdpmDenoiseFunc; user_data is an AnalyticGaussian. */
typedef struct
{
  const DdpmSchedule *base;
  double mu, s;
} AnalyticGaussian;

gboolean analytic_gaussian_denoise (float       *eps,
                                    const float *x,
                                    int          B,
                                    int          C,
                                    int          H,
                                    int          W,
                                    int          t,
                                    gpointer     user_data,
                                    GError     **error);

G_END_DECLS

#endif /* DDPM_TEST_ANALYTIC_DENOISERS_H */
