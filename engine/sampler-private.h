/* sampler-private.h: one reverse step of each sampler, shared by img2img.c
 * (which drives them over tiles, masks and threads) and the tests.
 *
 * Both steps work in place on a slice of the state, on the RESPACED chain
 * `s` (see ddpm_schedule_respace): step index i (1 ≤ i ≤ s->T) takes
 * x_{t_i} to x_{t_{i−1}}, with ᾱ' = s->alpha_bar and the posterior tables
 * of the respaced chain.  `noise` holds standard normals for the slice, or
 * NULL when the step needs none (ddpm_sampler_step_needs_noise says when).
 */
#ifndef DDPM_SAMPLER_PRIVATE_H
#define DDPM_SAMPLER_PRIVATE_H

#include "ddpm.h"

G_BEGIN_DECLS

/* TRUE when step i of `params->sampler` draws fresh noise: DDPM except at
 * the last step (i = 1), DDIM when η > 0 and i > 1. */
gboolean ddpm_sampler_step_needs_noise (const DdpmSampleParams *params,
                                        int                     i);

/* Ho et al. 2020, Algorithm 2, through x0-prediction:
 * x̂0 = √(1/ᾱ'_i)·x − √(1/ᾱ'_i − 1)·ε (clipped to [−1, 1] if asked),
 * x ← coef_x0·x̂0 + coef_xt·x + σ·z, σ² = β̃'_i or β'_i, no noise at i = 1. */
void ddpm_sampler_ddpm_step (float              *x,
                             const float        *eps,
                             const float        *noise,
                             gsize               n,
                             const DdpmSchedule *s,
                             int                 i,
                             DdpmVariance        variance,
                             gboolean            clip_x0);

/* Song et al. 2021 (DDIM), eq. 12:
 * x ← √ᾱ_prev·x̂0 + √(1 − ᾱ_prev − σ²)·ε + σ·z,
 * σ = η·√((1−ᾱ_prev)/(1−ᾱ))·√(1 − ᾱ/ᾱ_prev) (eq. 16).  When clipping, ε
 * is recomputed from the clipped x̂0 so the step stays on the line
 * through x and x̂0. */
void ddpm_sampler_ddim_step (float              *x,
                             const float        *eps,
                             const float        *noise,
                             gsize               n,
                             const DdpmSchedule *s,
                             int                 i,
                             double              eta,
                             gboolean            clip_x0);

G_END_DECLS

#endif /* DDPM_SAMPLER_PRIVATE_H */
