/* sampler-private.h: one reverse step of each sampler, shared by img2img.c
 * (which drives them over tiles, masks and threads) and the tests.
 *
 * The steps work in place on a slice of the state, on the RESPACED chain
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

/* Nichol & Dhariwal 2021 (improved DDPM), eq. 15: the log-variance of
 * step i for the network's v ∈ [−1, 1], with frac = (v + 1)/2,
 *   log σ² = frac·log β'_i + (1 − frac)·log β̃'_i,
 * β' and β̃' those of the RESPACED chain s (as improved-diffusion's
 * respace.py rebuilds them) and log β̃'_1 clipped to log β̃'_2 (its
 * posterior_log_variance_clipped). */
double ddpm_sampler_learned_log_variance (const DdpmSchedule *s,
                                          int                 i,
                                          double              v);

/* The DDPM step of ddpm_sampler_ddpm_step with that learned variance per
 * element: x ← coef_x0·x̂0 + coef_xt·x + exp(½·log σ²(v))·z, no noise at
 * i = 1 (or with noise NULL). */
void ddpm_sampler_ddpm_step_learned (float              *x,
                                     const float        *eps,
                                     const float        *v,
                                     const float        *noise,
                                     gsize               n,
                                     const DdpmSchedule *s,
                                     int                 i,
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

/* DPM-Solver++(2M) (Lu et al. 2022, Algorithm 2; sampler-dpm.c): the order
 * of step i of an n_steps chain — 1 for the first step (no history) and
 * the last (to σ = 0), else 2. */
int  ddpm_sampler_dpm_order (int i,
                             int n_steps);

/* One DPM-Solver++ step from chain index i to i − 1, data prediction
 * x̂0 = √(1/ᾱ'_i)·x − √(1/ᾱ'_i − 1)·ε (clipped if asked), λ = log(α/σ),
 * h = λ_{i−1} − λ_i:
 *   order 1: x ← (σ_{i−1}/σ_i)·x − α_{i−1}·(e^{−h} − 1)·x̂0  (= DDIM, η = 0)
 *   order 2: the same with D = x̂0 + (x̂0 − x0_prev)/(2r), r = h_prev/h,
 *            x0_prev holding step i + 1's x̂0 (needs 1 < i < s->T).
 * x0_prev receives this step's x̂0 for the next step.  At i = 1 (ᾱ'_0 = 1)
 * the step is x ← x̂0 and order must be 1.  Draws no noise. */
void ddpm_sampler_dpm_step (float              *x,
                            float              *x0_prev,
                            const float        *eps,
                            gsize               n,
                            const DdpmSchedule *s,
                            int                 i,
                            int                 order,
                            gboolean            clip_x0);

G_END_DECLS

#endif /* DDPM_SAMPLER_PRIVATE_H */
