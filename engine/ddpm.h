/* ddpm.h: the public interface of libddpm, the GIMP DDPM diffusion engine.
 *
 * OVERVIEW
 *
 * libddpm implements Denoising Diffusion Probabilistic Models (Ho et al.
 * 2020) on the CPU.  It depends on GLib, OpenBLAS, json-glib (model file
 * headers), libpng and libjpeg (image files); it knows nothing of GIMP.
 * The pieces, in the order data flows through them (and through this
 * header):
 *
 *   DdpmError        the error domain; ddpm_set_error_no_memory, the one
 *                    out-of-memory message.  Messages are translated in
 *                    the gimp-ddpm catalogue when a front end binds it.
 *   DdpmRng          counter-based random numbers (Philox4x32-10): the noise
 *                    of element i of stream s under seed k is a pure function
 *                    of (k, s, i), so results never depend on threads or tiles.
 *   DdpmSchedule     the noise schedule β_1..β_T and every table derived from
 *                    it (ᾱ, √ᾱ, posterior coefficients, ...), in double; also
 *                    respaced schedules for sampling in fewer steps.
 *   ddpm_q_*         the forward process q(x_t|x_0) and posterior
 *                    q(x_{t-1}|x_t,x_0) on float tensors.
 *   ddpm_*_kl, ...   likelihood terms of the ELBO (DDPM §3.3).
 *   ddpm_rgb_to_gray GIMP's own RGB → gray, for every front end.
 *   DdpmProgress     what long work reports, and how a caller cancels it.
 *   DdpmDenoiser     "predict ε for this batch at this t": a network, or an
 *                    analytic denoiser in tests.
 *   samplers         DDPM ancestral, DDIM and DPM-Solver++(2M) on a
 *                    respaced schedule;
 *                    ddpm_img2img runs them on any image size (tiles whose
 *                    predictions are blended, SDEdit strength, masks), and
 *                    DdpmSampleParams holds a user's settings, checked once
 *                    by ddpm_sample_params_validate.
 *   ddpm_denoise     a noisy photo as a diffusion state: σ → t, then the
 *                    reverse chain from there.
 *   DdpmUNetConfig   the DDPM UNet's shape (presets tiny/small/cifar).
 *   DdpmModel        a model file (safetensors: weights + config + schedule
 *                    in its metadata) loaded as a DdpmDenoiser.
 *   DdpmImage        PNG/JPEG files in and PNGs out, for the command line
 *                    and the training data.
 *   DdpmDataset,
 *   DdpmTrainParams  training: crops of images, L_simple, AdamW, EMA,
 *                    checkpoints that resume bit for bit.
 *   ddpm_elbo_bpd    the model's negative ELBO in bits per dimension.
 *
 * Types with a _free function can be declared g_autoptr(Type).
 *
 * WORKED EXAMPLE: noise an image to t = 400 and recover x_0 from the noise.
 *
 *   GError *error = NULL;
 *   DdpmSchedule *s = ddpm_schedule_new (DDPM_SCHEDULE_LINEAR, 1000, &error);
 *   float *eps = g_new (float, n), *xt = g_new (float, n), *x0 = g_new (float, n);
 *   ddpm_rng_normal_fill (eps, n, seed, 0, 0);
 *   ddpm_q_sample (xt, image, eps, n, s, 400);       // √ᾱ·x0 + √(1−ᾱ)·ε
 *   ddpm_predict_x0_from_eps (x0, xt, eps, n, s, 400);  // == image, to rounding
 *   ddpm_schedule_free (s);
 *
 * CONVENTIONS
 *
 * - Timesteps are 1-based as in the paper: t = 1..T, and every table has an
 *   entry at t = 0 that stands for the data itself (ᾱ_0 = 1, β_0 = 0).
 *   A network trained in the 0-based convention of the reference code sees
 *   t − 1 (see DdpmSchedule.timestep).
 * - Tensors are float, NCHW, contiguous.  Elementwise functions take the
 *   output first, then inputs, then sizes (as llm.c does).
 * - Fallible functions return FALSE or NULL and set a GError in DDPM_ERROR.
 */
#ifndef DDPM_H
#define DDPM_H

#include <glib.h>

G_BEGIN_DECLS

/* ------------------------------------------------------------------ errors */

#define DDPM_ERROR (ddpm_error_quark ())
GQuark ddpm_error_quark (void);

typedef enum
{
  DDPM_ERROR_INVALID_ARGUMENT, /* a parameter out of its range */
  DDPM_ERROR_IO,               /* a file could not be read or written */
  DDPM_ERROR_CORRUPT_FILE,     /* a file is truncated, damaged or foreign */
  DDPM_ERROR_UNSUPPORTED,      /* valid, but not something we can handle */
  DDPM_ERROR_NO_MEMORY,        /* an allocation failed (huge image) */
  DDPM_ERROR_CANCELLED         /* the progress callback asked to stop */
} DdpmError;

/* The engine's one out-of-memory error (DDPM_ERROR_NO_MEMORY), translated:
 * "Not enough memory for <what> (<bytes, e.g. 2.4 MB>)." — the size left
 * out when `bytes` is 0 (unknown).  `what_format` is a printf format for a
 * translated noun phrase, e.g. _("a %d × %d image"). */
void ddpm_set_error_no_memory (GError     **error,
                               gsize        bytes,
                               const char  *what_format,
                               ...) G_GNUC_PRINTF (3, 4);

/* ------------------------------------------------------------------ random */

/* Philox4x32-10 (Salmon et al. 2011, "Parallel random numbers: as easy as
 * 1, 2, 3"): a bijection of a 128-bit counter under a 64-bit key.  We use
 * counter = (block, stream) and key = seed. */
void     ddpm_philox4x32_10   (guint32        out[4],
                               const guint32  counter[4],
                               const guint32  key[2]);

/* Uniform in [0, 1) with 53 random bits: element `index` of `stream`. */
double   ddpm_rng_uniform     (guint64 seed, guint64 stream, guint64 index);

/* Standard normal (Box–Muller): element `index` of `stream`. */
float    ddpm_rng_normal      (guint64 seed, guint64 stream, guint64 index);

/* out[i] = ddpm_rng_normal (seed, stream, first + i) for i < n, but faster
 * (one Philox block serves four consecutive elements). */
void     ddpm_rng_normal_fill (float   *out,
                               gsize    n,
                               guint64  seed,
                               guint64  stream,
                               guint64  first);

/* out[i] = ddpm_rng_uniform (seed, stream, first + i) for i < n. */
void     ddpm_rng_uniform_fill (double  *out,
                                gsize    n,
                                guint64  seed,
                                guint64  stream,
                                guint64  first);

/* A sequential generator over the same function, for code that just wants
 * "the next number" (data augmentation, timestep draws).  Its whole state is
 * these three integers, which is what a training checkpoint saves. */
typedef struct
{
  guint64 seed;
  guint64 stream;
  guint64 counter;  /* index of the next element */
} DdpmRng;

void     ddpm_rng_init        (DdpmRng *rng, guint64 seed, guint64 stream);
double   ddpm_rng_next_uniform (DdpmRng *rng);
float    ddpm_rng_next_normal  (DdpmRng *rng);
/* Uniform integer in [0, n), n > 0, without modulo bias. */
guint32  ddpm_rng_next_below   (DdpmRng *rng, guint32 n);

/* ---------------------------------------------------------------- schedule */

typedef enum
{
  DDPM_SCHEDULE_LINEAR,        /* Ho et al. 2020: β from 1e-4 to 0.02 at T = 1000 */
  DDPM_SCHEDULE_COSINE,        /* Nichol & Dhariwal 2021, s = 0.008 */
  DDPM_SCHEDULE_SCALED_LINEAR, /* Rombach et al. 2022: √β linear, 0.00085..0.012 */
  DDPM_SCHEDULE_SIGMOID,       /* Jabri et al. 2022: β = σ(linspace(−6, 6)) scaled */
  DDPM_SCHEDULE_COUNT
} DdpmScheduleKind;

const char *ddpm_schedule_kind_name        (DdpmScheduleKind kind);
/* Returns FALSE (and sets error listing the valid names) for an unknown name. */
gboolean    ddpm_schedule_kind_from_string (const char        *name,
                                            DdpmScheduleKind  *kind,
                                            GError           **error);

/* How a respaced schedule picks its N timesteps among 1..t_max. */
typedef enum
{
  DDPM_SPACING_TRAILING, /* t_i = round(i·t_max/N): always includes t_max */
  DDPM_SPACING_LEADING,  /* t_i = 1 + (i−1)·⌊t_max/N⌋: always includes 1 */
  DDPM_SPACING_LINSPACE, /* t_i = round(linspace(1, t_max, N)): both ends */
  DDPM_SPACING_KARRAS,   /* Karras et al. 2022, eq. 5, ρ = 7: noise levels
                            σ = √((1−ᾱ)/ᾱ) evenly spaced in σ^(1/ρ) from
                            σ(t_max) to σ(1), each mapped to the timestep
                            of nearest log σ; needs the schedule (see
                            ddpm_spacing_karras_timesteps) */
  DDPM_SPACING_COUNT
} DdpmSpacing;

const char *ddpm_spacing_name        (DdpmSpacing spacing);
gboolean    ddpm_spacing_from_string (const char   *name,
                                      DdpmSpacing  *spacing,
                                      GError      **error);

/* A noise schedule and its derived tables.  Every array has T + 1 entries,
 * indexed by t = 0..T; entry 0 is the noise-free data.  All in double: the
 * products ᾱ_t reach 4e-5 and their complements must not lose digits. */
typedef struct
{
  DdpmScheduleKind kind;
  int     T;                   /* number of diffusion steps */
  int     T_base;              /* T of the schedule this was respaced from */
  int    *timestep;            /* (T+1) the base schedule's t for each step:
                                  identity unless respaced */
  double *beta;                /* (T+1) β_t */
  double *alpha;               /* (T+1) α_t = 1 − β_t */
  double *alpha_bar;           /* (T+1) ᾱ_t = ∏_{s≤t} α_s */
  double *sqrt_alpha_bar;      /* (T+1) √ᾱ_t */
  double *sqrt_one_minus_alpha_bar; /* (T+1) √(1 − ᾱ_t) */
  double *sqrt_recip_alpha_bar;     /* (T+1) 1/√ᾱ_t */
  double *sqrt_recipm1_alpha_bar;   /* (T+1) √(1/ᾱ_t − 1) */
  double *posterior_variance;       /* (T+1) β̃_t = (1−ᾱ_{t−1})/(1−ᾱ_t)·β_t */
  double *posterior_log_variance_clipped; /* (T+1) log β̃_t, with β̃_1 := β̃_2 */
  double *posterior_mean_coef_x0;   /* (T+1) √ᾱ_{t−1}·β_t/(1−ᾱ_t) */
  double *posterior_mean_coef_xt;   /* (T+1) √α_t·(1−ᾱ_{t−1})/(1−ᾱ_t) */
  double *log_beta;                 /* (T+1) log β_t (σ² = β variance) */
} DdpmSchedule;

/* A named schedule with T steps (T ≥ 1).  The linear schedule is scaled by
 * 1000/T as in improved DDPM, so that any T spans the same noise levels as
 * the T = 1000 original. */
DdpmSchedule *ddpm_schedule_new  (DdpmScheduleKind   kind,
                                  int                T,
                                  GError           **error);

/* A schedule from explicit ᾱ_1..ᾱ_T (alpha_bar[0] is ignored and taken as
 * 1; ᾱ must be strictly decreasing in (0, 1)).  `timestep` (may be NULL for
 * the identity) records, for each step, the base schedule's t. */
DdpmSchedule *ddpm_schedule_new_from_alpha_bar (DdpmScheduleKind   kind,
                                                const double      *alpha_bar,
                                                const int         *timestep,
                                                int                T,
                                                int                T_base,
                                                GError           **error);

/* Respacing (Nichol & Dhariwal 2021, §4): keep N of the base timesteps in
 * 1..t_max (t_max ≤ base->T, N ≤ t_max) and build the chain whose steps jump
 * between them, with β'_i = 1 − ᾱ_{t_i}/ᾱ_{t_{i−1}} (ᾱ_{t_0} = 1).  The new
 * chain's cumulative products are exactly the base ᾱ at the kept steps, so
 * its marginals q(x_{t_i}|x_0) are unchanged. */
DdpmSchedule *ddpm_schedule_respace (const DdpmSchedule  *base,
                                     int                  t_max,
                                     int                  n_steps,
                                     DdpmSpacing          spacing,
                                     GError             **error);

/* The kept timesteps alone: fills out[1..n_steps] (out[0] = 0), increasing.
 * DDPM_SPACING_KARRAS depends on the schedule's noise levels and fails
 * here: use ddpm_spacing_karras_timesteps. */
gboolean ddpm_spacing_timesteps (int           *out,
                                 int            t_max,
                                 int            n_steps,
                                 DdpmSpacing    spacing,
                                 GError       **error);

/* The Karras spacing (spacing-karras.c) of `base`: fills out[1..n_steps]
 * (out[0] = 0), strictly increasing, out[n_steps] = t_max and, for
 * n_steps > 1, out[1] = 1.  Fails (translated) unless 1 ≤ t_max ≤ base->T
 * and 1 ≤ n_steps ≤ t_max. */
gboolean ddpm_spacing_karras_timesteps (int                *out,
                                        const DdpmSchedule *base,
                                        int                 t_max,
                                        int                 n_steps,
                                        GError            **error);

/* A deep copy: every table bit for bit, kind, T, T_base and timesteps
 * included (rebuilding from ᾱ with ddpm_schedule_new_from_alpha_bar would
 * recompute β and the derived tables, to rounding).  Free it with
 * ddpm_schedule_free. */
DdpmSchedule *ddpm_schedule_copy (const DdpmSchedule *schedule);

void          ddpm_schedule_free (DdpmSchedule *schedule);

/* --------------------------------------------------------------- diffusion */

/* Ho et al. 2020, eq. 4 with the reparameterisation of §3.2:
 * out = √ᾱ_t·x0 + √(1−ᾱ_t)·eps.  0 ≤ t ≤ T; t = 0 copies x0. */
void ddpm_q_sample (float              *out,
                    const float        *x0,
                    const float        *eps,
                    gsize               n,
                    const DdpmSchedule *schedule,
                    int                 t);

/* Inverse of q_sample for x0: out = x0 = (x_t − √(1−ᾱ_t)·eps)/√ᾱ_t,
 * computed as √(1/ᾱ_t)·x_t − √(1/ᾱ_t − 1)·eps. */
void ddpm_predict_x0_from_eps (float              *out,
                               const float        *xt,
                               const float        *eps,
                               gsize               n,
                               const DdpmSchedule *schedule,
                               int                 t);

/* Inverse of q_sample for eps: out = (x_t − √ᾱ_t·x0)/√(1−ᾱ_t).  t ≥ 1. */
void ddpm_predict_eps_from_x0 (float              *out,
                               const float        *xt,
                               const float        *x0,
                               gsize               n,
                               const DdpmSchedule *schedule,
                               int                 t);

/* Ho et al. 2020, eqs. 6–7: the posterior q(x_{t−1}|x_t, x_0) =
 * N(μ̃, β̃_t·I) with μ̃ = coef_x0·x0 + coef_xt·x_t.  Writes μ̃ to mean
 * (n floats); returns β̃_t and log β̃_t (clipped at t = 1) through the
 * optional pointers.  1 ≤ t ≤ T. */
void ddpm_q_posterior (float              *mean,
                       double             *variance,
                       double             *log_variance_clipped,
                       const float        *x0,
                       const float        *xt,
                       gsize               n,
                       const DdpmSchedule *schedule,
                       int                 t);

/* -------------------------------------------------------------- likelihood */

/* KL(N(mean1, e^logvar1) ‖ N(mean2, e^logvar2)) per element, in nats:
 * ½(−1 + logvar2 − logvar1 + e^(logvar1−logvar2) + (mean1−mean2)²·e^−logvar2). */
double ddpm_normal_kl (double mean1, double logvar1,
                       double mean2, double logvar2);

/* log of the probability that N(mean, e^(2·log_scale)) puts on the 8-bit bin
 * of x, for data x ∈ [−1, 1] on the grid −1 + 2k/255 (DDPM §3.3, eq. 13):
 * the bin is [x − 1/255, x + 1/255], with the outermost bins extended to
 * ±∞, so the 256 probabilities sum to exactly 1. */
double ddpm_discretized_gaussian_log_likelihood (double x,
                                                 double mean,
                                                 double log_scale);

/* -------------------------------------------------------------------- gray */

/* RGB → gray, the engine's one formula (gray.c), for every front end: the
 * gray GIMP 2.10 itself makes (Image ▸ Mode ▸ Grayscale, and Colors ▸
 * Desaturate's default "Luminance" mode), i.e. the CIE luminance on linear
 * light with GIMP's sRGB weights (GIMP_RGB_LUMINANCE_*: Rec. 709 primaries
 * adapted to D50), encoded again with the sRGB curve f:
 *   Y' = f(0.22248840·f⁻¹(R') + 0.71690369·f⁻¹(G') + 0.06060791·f⁻¹(B')).
 * Values are sRGB-encoded, 0 = black, 1 = white (the model's [−1, 1]
 * pixels map to it by (v + 1)/2); gray stays gray. */
float ddpm_rgb_to_gray        (float        r,
                               float        g,
                               float        b);
/* The same for planes: gray[i] from rgb (3, n) = R plane, G plane, B
 * plane.  gray may be rgb's first plane. */
void  ddpm_rgb_to_gray_planes (float       *gray,
                               const float *rgb,
                               gsize        n);

/* ---------------------------------------------------------------- progress */

/* What long work reports after each unit (a sampling or training step). */
typedef struct
{
  int    step;        /* units done so far, 1..n_steps */
  int    n_steps;     /* units in all */
  double loss;        /* training: the (EMA-smoothed) loss; sampling: NAN */
  double elapsed;     /* seconds since the work began */
  double per_second;  /* units per second so far */
  double remaining;   /* estimated seconds left */
} DdpmProgress;

/* Return FALSE to cancel: the engine stops at the next safe point and fails
 * with DDPM_ERROR_CANCELLED, leaving its outputs untouched (sampling) or its
 * last checkpoint in place (training). */
typedef gboolean (*DdpmProgressFunc) (const DdpmProgress *progress,
                                      gpointer            user_data);

/* ---------------------------------------------------------------- denoiser */

/* ε_θ(x_t, t): predict the noise in a batch of images x (B, C, H, W) at the
 * base schedule's timestep t (1-based; a UNet trained in the reference
 * code's 0-based convention is given t − 1 by its adapter).  All images in
 * a batch share t.  Returns FALSE with error set on failure. */
typedef gboolean (*DdpmDenoiseFunc) (float       *eps,
                                     const float *x,
                                     int          B,
                                     int          C,
                                     int          H,
                                     int          W,
                                     int          t,
                                     gpointer     user_data,
                                     GError     **error);

/* The same for a network that also learned its reverse-process variance
 * (improved DDPM's learn_sigma): eps and v (B, C, H, W) each, v the
 * interpolation in [−1, 1] between log β̃_t (−1) and log β_t (+1) (Nichol
 * & Dhariwal 2021, eq. 15). */
typedef gboolean (*DdpmDenoiseVarFunc) (float       *eps,
                                        float       *v,
                                        const float *x,
                                        int          B,
                                        int          C,
                                        int          H,
                                        int          W,
                                        int          t,
                                        gpointer     user_data,
                                        GError     **error);

/* A denoiser and what the samplers must know about it.  Anything can stand
 * behind it: the UNet, or an analytic optimum in the tests. */
typedef struct
{
  DdpmDenoiseFunc denoise;
  gpointer        user_data;
  int             channels;   /* C the denoiser expects */
  int             tile_size;  /* its native H = W; 0 if any size works
                                 (no tiling needed) */
  int             max_batch;  /* tiles per call; 0 = no limit */
  DdpmDenoiseVarFunc denoise_v; /* NULL, or ε and the learned variance:
                                   the DDPM sampler then calls it instead
                                   of denoise and draws with σ² from v
                                   (params->variance is for denoisers
                                   without one); DDIM and DPM-Solver++
                                   use ε alone */
} DdpmDenoiser;

/* ---------------------------------------------------------------- samplers */

typedef enum
{
  DDPM_SAMPLER_DDPM,   /* ancestral sampling, Ho et al. 2020, Algorithm 2 */
  DDPM_SAMPLER_DDIM,   /* Song et al. 2021, eq. 12, with η */
  DDPM_SAMPLER_DPM_2M, /* DPM-Solver++(2M), Lu et al. 2022, Algorithm 2:
                          deterministic, for 10–20 steps */
  DDPM_SAMPLER_COUNT
} DdpmSamplerKind;

const char *ddpm_sampler_kind_name        (DdpmSamplerKind kind);
gboolean    ddpm_sampler_kind_from_string (const char       *name,
                                           DdpmSamplerKind  *kind,
                                           GError          **error);

/* The reverse-process variance of the DDPM sampler (Ho et al. 2020, §3.2). */
typedef enum
{
  DDPM_VARIANCE_POSTERIOR, /* σ² = β̃_t: the right default for few steps */
  DDPM_VARIANCE_BETA,      /* σ² = β_t */
  DDPM_VARIANCE_COUNT
} DdpmVariance;

const char *ddpm_variance_name        (DdpmVariance variance);
gboolean    ddpm_variance_from_string (const char    *name,
                                       DdpmVariance  *variance,
                                       GError       **error);

/* The arithmetic of the network's inference passes.  bf16 (AVX512_BF16:
 * weights and activations rounded to bf16, products summed in fp32) runs
 * the convolutions about twice as fast; GroupNorm, SiLU, softmax and the
 * time path stay fp32, and training is always fp32.  AUTO is bf16 where
 * the CPU has AVX512_BF16; BF16 on a CPU without it falls back to fp32.
 * DDPM_DISABLE_BF16=1 in the environment makes every setting fp32. */
typedef enum
{
  DDPM_PRECISION_AUTO,
  DDPM_PRECISION_FP32,
  DDPM_PRECISION_BF16,
  DDPM_PRECISION_COUNT
} DdpmPrecision;

const char   *ddpm_precision_name        (DdpmPrecision precision);
gboolean      ddpm_precision_from_string (const char     *name,
                                          DdpmPrecision  *precision,
                                          GError        **error);
/* Whether this CPU runs the bf16 kernels (and DDPM_DISABLE_BF16 is unset). */
gboolean      ddpm_cpu_has_avx512_bf16   (void);
/* What a setting means on this CPU: FP32 or BF16. */
DdpmPrecision ddpm_precision_resolve     (DdpmPrecision precision);

typedef struct
{
  DdpmSamplerKind  sampler;      /* default DDIM */
  DdpmVariance     variance;     /* DDPM sampler only; default posterior;
                                    unused with a denoiser that learned
                                    its variance (denoise_v) */
  double           eta;          /* DDIM only, in [0, 1]; default 0 */
  gboolean         clip_x0;      /* clip predicted x0 to [−1, 1]; default TRUE */
  int              steps;        /* denoising steps actually run; default 20 */
  double           strength;     /* t0 = round(strength·T); default 1 */
  guint64          seed;
  DdpmSpacing      spacing;      /* default trailing */
  int              tile_overlap; /* pixels shared by neighbouring tiles;
                                    default (negative, as set by _init):
                                    an eighth of the tile, at least 8 */
  int              threads;      /* 0 = all cores */
  DdpmProgressFunc progress;     /* may be NULL */
  gpointer         progress_data;
  int              t_start;      /* > 0: start at this base timestep
                                    (1..T) instead of round(strength·T) */
  gboolean         add_noise;    /* default TRUE; FALSE: start from
                                    x_t0 = √ᾱ_t0·x, for an input that
                                    already carries the noise of t0
                                    (see ddpm_denoise) */
  DdpmPrecision    precision;    /* inference arithmetic; default AUTO */
} DdpmSampleParams;

/* Fill `params` with the defaults above (seed 0). */
void     ddpm_sample_params_init (DdpmSampleParams *params);

/* The one check of a user's sampling settings, for every front end
 * (ddpm_img2img and ddpm_denoise run it too): steps ≥ 1, strength in
 * [0, 1], a known sampler, variance and spacing, η in [0, 1], threads ≥ 0.
 * A negative tile_overlap is the default, so any is accepted.  The
 * error (DDPM_ERROR_INVALID_ARGUMENT, translated) names the first bad
 * setting and its value.  What depends on the model (t_start against T,
 * the tile overlap against the tile) is checked by ddpm_img2img; the noise
 * level σ of ddpm_denoise by ddpm_denoise_sigma_to_t. */
gboolean ddpm_sample_params_validate (const DdpmSampleParams *params,
                                      GError                **error);

/* What img2img will run, for display before running it: t0 =
 * round(strength·T) and the number of denoising steps (steps, capped at
 * t0 since there are only t0 distinct timesteps below it; 0 when strength
 * is 0).  Fails on strength outside [0, 1] or steps < 1. */
gboolean ddpm_img2img_plan (const DdpmSchedule *schedule,
                            double              strength,
                            int                 steps,
                            int                *t0,
                            int                *n_steps,
                            GError            **error);

/* SDEdit (Meng et al. 2021) with masks and tiling, in place on one image
 * (C, H, W) with values in [−1, 1]:
 *   x_t0 = √ᾱ_t0·x + √(1−ᾱ_t0)·ε, then params->steps denoising steps from
 *   t0 down to 0.  strength = 0 leaves image bit for bit; strength = 1
 *   starts from pure noise (generation).  params->t_start > 0 gives t0
 *   directly (strength is then ignored); params->add_noise = FALSE starts
 *   from x_t0 = √ᾱ_t0·x, and the known region of a mask then follows
 *   √ᾱ_t·x without fresh noise.
 * mask (H, W) in [0, 1] or NULL (= all ones): where it is 0, at every step
 * the state is replaced by the original forward-noised to the current t,
 * and the result is composited as mask·generated + (1 − mask)·original.
 * Images larger than denoiser->tile_size are processed in overlapping
 * tiles whose ε are blended with a smooth window (MultiDiffusion); smaller
 * ones are reflect-padded.  Noise is keyed by (seed, step, pixel), so the
 * result does not depend on threads or tile size.  On failure or cancel
 * the image is left unchanged. */
gboolean ddpm_img2img (float                  *image,
                       const float            *mask,
                       int                     C,
                       int                     H,
                       int                     W,
                       const DdpmSchedule     *schedule,
                       const DdpmDenoiser     *denoiser,
                       const DdpmSampleParams *params,
                       GError                **error);

/* ----------------------------------------------------------------- denoise */

/* A photo y = x + σ·n with white Gaussian noise of standard deviation σ
 * (on the [0, 1] pixel scale) is, scaled by √ᾱ_t, the diffusion state x_t
 * for the t with √(1/ᾱ_t − 1) = 2σ (2σ: the model's [−1, 1] scale); the
 * model denoises it from there without adding noise (see denoise.c). */

/* That t, 1..T: the timestep whose level schedule->sqrt_recipm1_alpha_bar[t]
 * is nearest to 2σ in ratio (levels below t = 1's map to 1).  Returns 0
 * and sets DDPM_ERROR_INVALID_ARGUMENT (translated) for σ ≤ 0, not
 * finite, or beyond the schedule's last level: the one check of a user's
 * σ against a model, for every front end. */
int      ddpm_denoise_sigma_to_t   (const DdpmSchedule *schedule,
                                    double              sigma,
                                    GError            **error);

/* Estimate the standard deviation of white Gaussian noise in an image
 * (C, H, W) on any scale (the result is on the same scale): Donoho's
 * median(|HH|)/0.6745 over the finest Haar diagonal coefficients (Donoho
 * & Johnstone 1994).  Image detail biases it upwards a little.  Fails for
 * images smaller than 2×2. */
gboolean ddpm_estimate_noise_sigma (const float *image,
                                    int          C,
                                    int          H,
                                    int          W,
                                    double      *sigma,
                                    GError     **error);

/* Remove noise of level σ ([0, 1] pixel scale) from image (C, H, W) with
 * values in [−1, 1], in place: ddpm_img2img from t = sigma_to_t (σ) on
 * x_t = √ᾱ_t·image, with params->t_start, add_noise and strength
 * overridden.  A mask (H, W) limits the change as in img2img: where it is
 * 0 the result is the noisy input.  On failure the image is unchanged. */
gboolean ddpm_denoise (float                  *image,
                       const float            *mask,
                       int                     C,
                       int                     H,
                       int                     W,
                       const DdpmSchedule     *schedule,
                       const DdpmDenoiser     *denoiser,
                       double                  sigma,
                       const DdpmSampleParams *params,
                       GError                **error);

/* -------------------------------------------------------------------- unet */

#define DDPM_MAX_LEVELS 8

/* The UNet family: DDPM is Ho et al.'s diffusion_tf (sinusoid [sin, cos]
 * with frequencies over half − 1, GroupNorm ε 1e-6, the down-sampling
 * conv padded right and bottom, conv_in to ch); ADM is guided-diffusion's
 * (sinusoid [cos, sin] over half, ε 1e-5, padding 1 all round, conv_in
 * to ch·ch_mult[0]). */
typedef enum
{
  DDPM_UNET_STYLE_DDPM = 0,
  DDPM_UNET_STYLE_ADM  = 1
} DdpmUNetStyle;

/* The DDPM UNet (Ho et al. 2020, appendix B), as in the reference
 * ../shared/bench/torch_unet.py.  Attention is tied to a depth level:
 * resolution r at training size S means level log2(S/r). */
typedef struct
{
  int   in_channels;       /* 1 (gray) or 3 (RGB) */
  int   out_channels;      /* = in_channels for an ε-predictor */
  int   ch;                /* base channel count (multiple of 32) */
  int   n_levels;
  int   ch_mult[DDPM_MAX_LEVELS];
  int   num_res_blocks;
  int   n_attn;
  int   attn_resolutions[DDPM_MAX_LEVELS];
  int   image_size;        /* training resolution */
  float dropout;
  /* The fields below describe the published ADM networks (Dhariwal &
   * Nichol 2021, guided-diffusion's UNetModel).  All zero (FALSE) is the
   * DDPM network above, so a config set up without them is unchanged. */
  DdpmUNetStyle style;     /* the family: details fixed by the reference code */
  int   num_heads;         /* attention heads (0 = 1) on the way down and mid */
  int   num_head_channels; /* > 0: heads = channels / this (overrides the counts) */
  int   num_heads_upsample;/* heads on the way up (0 = num_heads) */
  gboolean scale_shift;    /* AdaGN: norm2(h)·(1 + scale) + shift from the
                              time embedding instead of h + temb */
  gboolean resblock_updown;/* residual blocks resample (avg-pool / nearest)
                              instead of the strided and up-sampling convs */
  gboolean learn_sigma;    /* out_channels = 2·in_channels: ε, then v, the
                              interpolation of log β and log β̃ (Nichol &
                              Dhariwal 2021, eq. 15) */
  int   num_classes;       /* > 0: class-conditional (a label embedding) */
  gboolean rescale_timesteps; /* ADM only: the network was trained on
                              t·1000/T instead of t (improved-diffusion's
                              --rescale_timesteps; the model applies it) */
} DdpmUNetConfig;

/* Presets: "tiny" (32, [1,2,2], 1, attn 8), "small" (64, [1,2,2,2], 2,
 * attn 16), "cifar" (128, [1,2,2,2], 2, attn 16, dropout 0.1); image 32. */
gboolean ddpm_unet_config_from_preset (const char     *name,
                                       int             channels,
                                       DdpmUNetConfig *config,
                                       GError        **error);
/* Checks every field; the error names the first bad one. */
gboolean ddpm_unet_config_validate    (const DdpmUNetConfig *config,
                                       GError              **error);
gsize    ddpm_unet_config_n_params    (const DdpmUNetConfig *config);
/* Train at another resolution: set image_size and scale the attention
 * resolutions with it, so attention stays at the same depth level
 * (resolution r at size S is level log2(S/r)). */
void     ddpm_unet_config_set_image_size (DdpmUNetConfig *config,
                                          int             size);

/* ------------------------------------------------------------------- model */

/* A trained model: UNet configuration, weights (the EMA weights when the
 * file has them) and noise schedule, as read from a .safetensors file. */
typedef struct _DdpmModel DdpmModel;

DdpmModel            *ddpm_model_load         (const char  *path,
                                               GError     **error);
/* The same from a model file's bytes in memory (read during the call; the
 * model keeps no reference); `display_name` names it in error messages.  For
 * embedding a model and for fuzzing the loader without a file system. */
DdpmModel            *ddpm_model_load_bytes   (GBytes      *bytes,
                                               const char  *display_name,
                                               GError     **error);
void                  ddpm_model_free         (DdpmModel   *model);
const DdpmUNetConfig *ddpm_model_get_config   (const DdpmModel *model);
const DdpmSchedule   *ddpm_model_get_schedule (const DdpmModel *model);
/* A denoiser running this model's UNet with `threads` threads (0 = all
 * cores), with denoise_v for a learn_sigma model.  Valid while the model
 * lives. */
void                  ddpm_model_get_denoiser (DdpmModel    *model,
                                               int           threads,
                                               DdpmDenoiser *denoiser);
/* A "__metadata__" value of the model's file, or NULL if the file has no
 * such key.  Keys: "format_version", the configuration and schedule
 * ("ch", "schedule", "T", …), and what ddpm_train wrote: "train_steps",
 * "train_loss" (the smoothed loss), "checkpoint" ("true" in a checkpoint).
 * Owned by the model. */
const char           *ddpm_model_get_metadata (const DdpmModel *model,
                                               const char      *key);
/* The class label a class-conditional model's denoiser conditions on
 * (0..num_classes − 1), or −1 to unset it (its denoiser then fails with a
 * message asking for one).  Fails (DDPM_ERROR_INVALID_ARGUMENT) for a
 * label below −1 or ≥ num_classes, and for any label but −1 given to an
 * unconditional model. */
gboolean              ddpm_model_set_class    (DdpmModel       *model,
                                               int              label,
                                               GError         **error);
/* The network's raw output out (B, out_channels, H, W) for x (B, C, H, W):
 * ε, then for a learn_sigma model v.  t (B) are the 0-based diffusion
 * timesteps (as the reference code feeds them; a rescale_timesteps model
 * is run on t·1000/T, as improved-diffusion does), y (B) the class labels of
 * a class-conditional model (else NULL: labels given to an unconditional
 * model are refused, never ignored).  For checking an import against
 * the reference and debugging (`ddpm forward`). */
gboolean              ddpm_model_forward      (DdpmModel       *model,
                                               float           *out,
                                               const float     *x,
                                               const int       *t,
                                               const int       *y,
                                               int              B,
                                               int              C,
                                               int              H,
                                               int              W,
                                               int              threads,
                                               GError         **error);
/* Import a guided-diffusion / improved-diffusion checkpoint (`.pt`, the
 * state_dict torch.save writes) into a model file at out_path (written
 * atomically), the architecture and schedule given by guided-diffusion's
 * own flags, argv-style as its README's MODEL_FLAGS and DIFFUSION_FLAGS:
 * "--image_size", "256", "--learn_sigma", "True", … ("--name=value" too;
 * defaults as script_util.py's).  Every tensor's name and shape is
 * checked against the flags; an error names the tensor, both shapes and
 * the flag that is likely wrong.  (import-guided.c) */
gboolean              ddpm_import_guided_diffusion (const char         *src,
                                                    const char         *out_path,
                                                    const char * const *flags,
                                                    int                 n_flags,
                                                    GError            **error);
/* The installed default model: $DDPM_MODEL_DIR/default.safetensors if that
 * variable is set, else the data directory's.  Newly allocated. */
char                 *ddpm_model_default_path (void);

/* Import a model published in diffusers' layout (Google's DDPM checkpoints
 * google/ddpm-cifar10-32, -celebahq-256, -church-256, -bedroom-256,
 * -cat-256, ddpm-ema-*, and any UNet2DModel of the same architecture):
 * `folder` holds config.json (UNet2DModel), diffusion_pytorch_model
 * .safetensors or .bin (PyTorch, read without running it) and
 * scheduler_config.json (DDPMScheduler), or is a pipeline folder with
 * them in unet/ and scheduler/.  Writes our model file to `out_path`
 * (atomically: on failure nothing is left there).  Every configuration
 * field this engine cannot honour is refused with an error naming the
 * field and its value (DDPM_ERROR_UNSUPPORTED), and every tensor is
 * checked by name and shape (DDPM_ERROR_CORRUPT_FILE naming the tensor,
 * the shape expected and the shape found).  See import-diffusers.c for the
 * mapping, field by field. */
gboolean              ddpm_import_diffusers   (const char  *folder,
                                               const char  *out_path,
                                               GError     **error);

/* ------------------------------------------------------------------- image */

/* RESOURCE LIMITS (limits.c): what the engine agrees to work on, checked
 * BEFORE anything is allocated, so that a hostile or mistaken file or
 * size fails with an error naming it instead of aborting, crashing or
 * swapping.  The policy lives in limits.c alone; callers ask it.
 *
 *   images: at most DDPM_IMAGE_MAX_SIDE a side and DDPM_IMAGE_MAX_PIXELS
 *     in all (2^26 = 8192 × 8192, 64 megapixels: above any camera the
 *     plug-in is likely to see, and the command line's whole pipeline on
 *     such an image, ~40 bytes a pixel, stays under 3 GB), and the planes
 *     within the memory budget;
 *   models: T at most DDPM_MODEL_MAX_T, image_size at most
 *     DDPM_MODEL_MAX_IMAGE_SIZE, at most DDPM_MODEL_MAX_PARAMS parameters
 *     (2^30: 30 times the largest published DDPM UNet, 4 GiB of floats),
 *     and the parameters plus the activations of one tile within the
 *     memory budget;
 *   the memory budget: half of the machine's physical memory
 *     (sysconf), or 8 GiB where it cannot be read. */
#define DDPM_IMAGE_MAX_PIXELS     ((gsize) 1 << 26)
#define DDPM_IMAGE_MAX_SIDE       65535
#define DDPM_MODEL_MAX_T          100000
#define DDPM_MODEL_MAX_IMAGE_SIZE 4096
#define DDPM_MODEL_MAX_PARAMS     ((gsize) 1 << 30)

/* Bytes the engine lets one model or image take: half the physical memory. */
gsize    ddpm_limits_memory_budget (void);
/* Whether a width × height image of channels planes (+ alpha) is within
 * the limits; if not, FALSE and DDPM_ERROR_UNSUPPORTED naming `what`
 * (e.g. the file's display name, "The image"), or DDPM_ERROR_CORRUPT_FILE
 * for an empty size. */
gboolean ddpm_limits_check_image   (int          width,
                                    int          height,
                                    int          channels,
                                    gboolean     with_alpha,
                                    const char  *what,
                                    GError     **error);
/* Whether a model of this (valid) config and T is within the limits:
 * parameters, T, image_size, and the memory of its weights plus the
 * activations of one image_size tile.  If not, FALSE and
 * DDPM_ERROR_UNSUPPORTED naming `what` (the file) and the field to blame. */
gboolean ddpm_limits_check_model   (const DdpmUNetConfig *config,
                                    int                   T,
                                    const char           *what,
                                    GError              **error);

/* Image files, for front ends (the command line) and the folder dataset;
 * the GIMP plug-in gets its pixels from GIMP.  PNG (libpng: 1–16 bit gray,
 * gray+alpha, RGB, RGBA, palette) and JPEG (libjpeg: gray, YCbCr, CMYK)
 * load into planar float images in [0, 1], colour and alpha kept apart,
 * the way the engine's tensors are laid out (the engine itself works on
 * [−1, 1]: x = 2·p − 1).  Pixel values are taken as stored: no gamma or
 * colour-profile conversion, as GIMP does for 8-bit sRGB images. */

/* The largest image (DDPM_IMAGE_MAX_PIXELS, DDPM_IMAGE_MAX_SIDE) is part of
 * the resource limits below (ddpm_limits_check_image). */

/* An image owns its planes: ddpm_image_free frees them with it. */
typedef struct
{
  int    width, height;
  int    channels;  /* 1 (gray) or 3 (RGB) */
  float *pixels;    /* (channels, height, width) in [0, 1] */
  float *alpha;     /* (height, width) in [0, 1], or NULL if opaque */
} DdpmImage;

/* A zeroed image; aborts if memory runs out, like g_new (use
 * ddpm_image_try_new for sizes that come from a file). */
DdpmImage *ddpm_image_new      (int width, int height, int channels, gboolean with_alpha);
/* The same, but NULL and DDPM_ERROR_NO_MEMORY (or UNSUPPORTED beyond the
 * limits above) instead of aborting. */
DdpmImage *ddpm_image_try_new  (int width, int height, int channels, gboolean with_alpha,
                                GError **error);
/* Frees the image and its planes; NULL is ignored. */
void       ddpm_image_free     (DdpmImage *image);
/* A new image with the same size, channels, pixels and alpha. */
DdpmImage *ddpm_image_copy     (const DdpmImage *image);

/* Load a PNG or JPEG file (the format is sniffed from the content, not
 * the name).  Errors: DDPM_ERROR_IO (cannot open or read),
 * DDPM_ERROR_CORRUPT_FILE (truncated, damaged, or not an image),
 * DDPM_ERROR_UNSUPPORTED (another image format, or too large),
 * DDPM_ERROR_NO_MEMORY.  Newly allocated. */
DdpmImage *ddpm_image_load     (const char *path, GError **error);

/* Write a PNG with 8 or 16 bits per sample; gray or RGB by channels, with
 * alpha if the image has it.  Values are clamped to [0, 1] and rounded
 * (v·(2^bits − 1) + ½), so that an 8-bit file loaded and saved again is
 * bit-identical.  Atomic, like the model writer: on failure the old file
 * at `path`, if any, is untouched. */
gboolean   ddpm_image_save_png (const DdpmImage *image,
                                const char      *path,
                                int              bit_depth,
                                GError         **error);

/* A new image with `channels` (1 or 3) colour channels: gray → RGB
 * replicates, RGB → gray is ddpm_rgb_to_gray (the gray GIMP itself makes,
 * so a file converted here and a layer converted by the plug-in or by
 * GIMP agree).  Alpha is copied.  The same channel count gives a copy. */
DdpmImage *ddpm_image_convert_channels (const DdpmImage *image, int channels);

/* A new image of width × height (≥ 1).  Each axis separately: the area
 * average (box filter with fractional coverage) when it shrinks, bilinear
 * interpolation between pixel centres (edge pixels clamped) when it grows,
 * a copy when it keeps its size.  With alpha, colour is resampled
 * premultiplied, so fully transparent pixels do not bleed their colour. */
DdpmImage *ddpm_image_resize   (const DdpmImage *image, int width, int height);

/* The PNG/JPEG file names in folder `path` (regular files or links to
 * them, by extension, case ignored; not hidden ones), sorted by strcmp, so that what is built from them
 * does not depend on the order the file system lists them in.  Names, not
 * paths: join them to `path`.  NULL and error if the folder cannot be
 * read.  Newly allocated (g_ptr_array_unref frees the names too). */
GPtrArray *ddpm_folder_image_names (const char *path, GError **error);

/* ------------------------------------------------------------------- train */

/* Training images: patches of one image, or random crops of the images in
 * a folder; pixels in [−1, 1]. */
typedef struct _DdpmDataset DdpmDataset;

DdpmDataset *ddpm_dataset_new_from_pixels (const float *pixels, /* (C, H, W) */
                                           int          C,
                                           int          H,
                                           int          W,
                                           GError     **error);
DdpmDataset *ddpm_dataset_new_from_folder (const char  *path,
                                           int          channels,
                                           int          resize_short, /* 0: no resize */
                                           GError     **error);
void         ddpm_dataset_free            (DdpmDataset *dataset);

/* Data-parallel training across processes (the `ddpm` command implements
 * it on MPI in cli/train-mpi.c; the engine itself needs no MPI).  Every
 * process runs ddpm_train with the same parameters and its own comm:
 * each draws the whole global batch's random numbers (crops, t, noise
 * counters) so that the seed alone decides what step s sees, computes
 * the forward and backward pass of its share of the batch (examples
 * [rank·B/size, (rank+1)·B/size)), and the gradients are summed with
 * sum_floats; every process then applies the same AdamW and EMA update,
 * and only rank 0 writes the model and checkpoints.
 *
 * The functions must be called by every process in the same order (they
 * are collective) and return on every process the same bits:
 *   sum_floats   data[i] ← Σ over ranks of data[i], in rank order
 *   sum_doubles  the same for doubles
 *   broadcast    rank 0's bytes to every process
 * A process that fails there sets `error` (the trainer returns it). */
typedef struct _DdpmTrainComm DdpmTrainComm;
struct _DdpmTrainComm
{
  int      rank;   /* 0 … size − 1 */
  int      size;   /* processes in the training */
  gboolean (*sum_floats)  (const DdpmTrainComm *comm, float *data, gsize n,
                           GError **error);
  gboolean (*sum_doubles) (const DdpmTrainComm *comm, double *data, gsize n,
                           GError **error);
  gboolean (*broadcast)   (const DdpmTrainComm *comm, void *data, gsize bytes,
                           GError **error);
  gpointer user_data;
};

typedef struct
{
  DdpmUNetConfig   config;           /* ignored when resuming */
  DdpmScheduleKind schedule;         /* default linear */
  int              T;                /* default 1000 */
  int              steps;            /* optimizer steps in all */
  int              batch;            /* default 16 */
  double           lr;               /* default 2e-4 */
  double           beta1, beta2;     /* default 0.9, 0.999 */
  double           weight_decay;     /* AdamW; default 0 */
  int              warmup;           /* linear warm-up steps; default 100 */
  double           grad_clip;        /* max global gradient norm; default 1 */
  double           ema_decay;        /* default 0.999 */
  gboolean         hflip;            /* random horizontal flips; default TRUE */
  guint64          seed;
  int              threads;          /* 0 = all cores */
  const char      *out_path;         /* the model file to write */
  const char      *resume_path;      /* a checkpoint to continue, or NULL */
  int              checkpoint_every; /* steps between checkpoints; 0: end only */
  DdpmProgressFunc progress;
  gpointer         progress_data;
  /* NULL: one process (no communication at all); else this process's
   * part of a data-parallel training (see DdpmTrainComm); batch ≥ size */
  const DdpmTrainComm *comm;
} DdpmTrainParams;

void     ddpm_train_params_init (DdpmTrainParams *params);
/* The one check of a user's training settings (ddpm_train runs it first;
 * front ends may call it before loading any data): steps, batch ≥ 1;
 * lr > 0; β₁, β₂ in [0, 1); weight decay, warm-up, clipping norm,
 * checkpoint interval, threads ≥ 0; EMA decay in [0, 1]; T ≥ 1; an
 * output path.  The error (DDPM_ERROR_INVALID_ARGUMENT, translated) names
 * the first bad setting and its value. */
gboolean ddpm_train_params_validate (const DdpmTrainParams *params,
                                     GError               **error);
/* Train (or resume) and write params->out_path atomically; on cancel the
 * last checkpoint is written and DDPM_ERROR_CANCELLED returned. */
gboolean ddpm_train             (const DdpmTrainParams *params,
                                 DdpmDataset           *dataset,
                                 GError               **error);
/* Where ddpm_train writes its checkpoint (the model file plus raw weights,
 * Adam moments, step and random state; resume from it with resume_path):
 * "X.safetensors" → "X.ckpt.safetensors", other names → "<name>.ckpt".
 * Checkpoints are written every checkpoint_every steps, on cancel and at
 * the end, each time together with the model file.  Resuming continues
 * the checkpoint's network, schedule and random streams (its seed), so
 * params->config, schedule, T and seed are then ignored; the step count
 * `steps` is the total including the steps already done.  Newly allocated. */
char    *ddpm_train_checkpoint_path (const char *model_path);

/* -------------------------------------------------------------------- elbo */

/* The negative ELBO (Ho et al. 2020, §3.3, eq. 5) in bits per dimension,
 * averaged over a batch, split into its terms. */
typedef struct
{
  double total_bpd;    /* prior + vb + decoder */
  double prior_bpd;    /* L_T: KL(q(x_T|x_0) ‖ N(0, I)) */
  double vb_bpd;       /* Σ_{t=2..T} L_{t−1}, exact or estimated */
  double decoder_bpd;  /* L_0: −log p_θ(x_0|x_1), 8-bit discretised */
  int    n_terms;      /* network evaluations per image */
} DdpmElbo;

/* x0 (B, C, H, W): images on the 8-bit grid −1 + 2k/255.  t_samples = 0
 * evaluates all T terms; K > 0 estimates the middle sum from K stratified
 * timesteps (unbiased).  The noise is keyed by (seed, t, element). */
gboolean ddpm_elbo_bpd (DdpmElbo           *result,
                        const float        *x0,
                        int                 B,
                        int                 C,
                        int                 H,
                        int                 W,
                        const DdpmSchedule *schedule,
                        const DdpmDenoiser *denoiser,
                        int                 t_samples,
                        guint64             seed,
                        DdpmProgressFunc    progress,
                        gpointer            progress_data,
                        GError            **error);

/* -------------------------------------------------------------- g_autoptr */

G_DEFINE_AUTOPTR_CLEANUP_FUNC (DdpmSchedule, ddpm_schedule_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (DdpmModel, ddpm_model_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (DdpmImage, ddpm_image_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (DdpmDataset, ddpm_dataset_free)

G_END_DECLS

#endif /* DDPM_H */
