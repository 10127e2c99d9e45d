/* plugin-core.h: the part of the GIMP DDPM plug-in that every GIMP shares.
 *
 * GIMP 2.10's glue (plugin/gimp2) and its dialogs (ui/gimp2) are built on
 * it, and a GIMP 3 glue can be: it includes no libgimp and no GTK, only
 * GLib and the engine's ddpm.h, and it knows pixels only as the engine's
 * float planes (C, H, W) in [−1, 1].  What it holds:
 *
 *   procedures   their names, the values structs that the run modes
 *                remember between runs, defaults, user values validated
 *   paths        the default model, the user's models, the translations
 *   model cache  one model loaded per process, shared by the dialog (its
 *                schedule), the preview and the final apply
 *   plan         what a run will do on the model's schedule, and the
 *                dialogs' plan line ("Noise to t = 400 of 1000, then 20
 *                denoising steps")
 *   render job   one run of the model over float planes: selection mask
 *                and context, sampler, the engine call, progress, cancel
 *   train job    a training run on float planes
 *
 * A front end renders in four calls, doing the pixel I/O in between
 * (GIMP 2.10's is plugin_render_drawable, plugin/gimp2/render.c):
 *
 *   PluginRenderJob  job;
 *   PluginRenderPlan plan;
 *   PluginRect       target, context;
 *
 *   plugin_render_job_init_renoise (&job, &vals, FALSE);
 *   if (!plugin_render_job_check (&job, error))
 *     return FALSE;
 *   ... target = the selection's bounds on the layer (or the preview's
 *       area); none: return TRUE ...
 *   if (!plugin_render_job_plan (&job, &plan, error))
 *     return FALSE;
 *   if (plan.n_steps == 0)
 *     return TRUE;                  (strength 0, no noise: leave the pixels)
 *   if (!plugin_render_context (&plan, &target, layer_width, layer_height,
 *                               has_selection, &context, error))
 *     return FALSE;                 (larger than the resource limits)
 *   ... read `context` as plan.channels planes, keep a copy (original),
 *       read the selection over it as mask (NULL: none) ...
 *   if (!plugin_render_job_run (&job, &plan, planes, original, mask,
 *                               context.height, context.width,
 *                               progress, progress_data, error))
 *     return FALSE;
 *   ... write planes back inside `target` (job.keep_chroma), through a
 *       merge that applies the selection ...
 *
 * Strings in errors and texts are translated (the gimp-ddpm domain).
 */
#ifndef DDPM_PLUGIN_CORE_H
#define DDPM_PLUGIN_CORE_H

#include <glib.h>

#include "ddpm.h"

G_BEGIN_DECLS

/* ------------------------------------------------------------- procedures */

#define PLUG_IN_BINARY "gimp-ddpm"
#define PLUG_IN_ROLE   "gimp-ddpm"
#define RENOISE_PROC   "plug-in-ddpm-renoise"
#define GENERATE_PROC  "plug-in-ddpm-generate"
#define TRAIN_PROC     "plug-in-ddpm-train"
#define DENOISE_PROC   "plug-in-ddpm-denoise"

/* The values structs are remembered as raw bytes between runs (GIMP 2.10:
 * gimp_get_data / gimp_set_data under the procedure's name): their layout
 * is part of the plug-in's state, so fields are added at the end only. */

typedef struct
{
  gchar    model[1024];   /* a .safetensors file; "" = the default model */
  gdouble  strength;      /* 0..1; generate ignores it (always 1) */
  gint     steps;         /* denoising steps actually run */
  guint32  seed;
  gboolean random_seed;   /* the dialog draws a new seed on each run */
  gint     sampler;       /* DdpmSamplerKind: 0 = ddpm, 1 = ddim,
                             2 = dpm++2m */
  gint     precision;     /* DdpmPrecision: 0 = auto (bf16 where the CPU
                             has AVX512_BF16), 1 = fp32, 2 = bf16; last, so
                             that values saved before it keep the default */
} PluginRenoiseValues;

typedef struct
{
  gchar    model[1024];   /* a .safetensors file; "" = the default model */
  gdouble  sigma;         /* the noise's standard deviation on the [0, 1]
                             pixel scale (25/255 ≈ 0.098); <= 0: estimate
                             it from the layer (plugin_estimate_noise) */
  gint     steps;         /* denoising steps actually run (at most t) */
  guint32  seed;          /* for the DDPM sampler's fresh noise */
  gboolean random_seed;   /* the dialog draws a new seed on each run */
  gint     sampler;       /* DdpmSamplerKind: 0 = ddpm, 1 = ddim,
                             2 = dpm++2m */
  gint     precision;     /* DdpmPrecision: 0 = auto (bf16 where the CPU
                             has AVX512_BF16), 1 = fp32, 2 = bf16; last, so
                             that values saved before it keep the default */
} PluginDenoiseValues;

typedef struct
{
  gchar    output[1024];  /* the model file to write */
  gchar    preset[32];    /* "tiny", "small", "cifar" */
  gint     iterations;    /* optimizer steps in all (when resuming too) */
  gint     patch_size;    /* training patch side, the model's tile size */
  guint32  seed;
  gchar    resume[1024];  /* a checkpoint to continue; "" = fresh */
} PluginTrainValues;

/* The values a procedure starts from before any run was remembered.
 * Generate is renoise at strength 1. */
extern const PluginRenoiseValues plugin_renoise_defaults;
extern const PluginRenoiseValues plugin_generate_defaults;
extern const PluginDenoiseValues plugin_denoise_defaults;
extern const PluginTrainValues   plugin_train_defaults;

/* The samplers a dialog offers, in order: a DdpmSamplerKind and its
 * label (marked N_(): translate with _() when showing it). */
typedef struct
{
  gint         value;
  const gchar *label;
} PluginSamplerChoice;

extern const PluginSamplerChoice plugin_sampler_choices[];
extern const gint                plugin_n_sampler_choices;

/* The precisions a procedure takes and a dialog offers, in order: a
 * DdpmPrecision (the GIMP 2.10 argument's value), its name (the CLI's
 * --precision and GIMP 3's choice nick: "auto", "fp32", "bf16") and
 * label (N_()).  The default is AUTO, as the CLI's: bf16 where the CPU
 * has AVX512_BF16 (ddpm_precision_resolve), else fp32. */
typedef struct
{
  gint         value;
  const gchar *name;
  const gchar *label;
} PluginPrecisionChoice;

extern const PluginPrecisionChoice plugin_precision_choices[];
extern const gint                  plugin_n_precision_choices;

/* What "auto" means on this CPU, for a dialog: "Automatic (bf16 on this
 * CPU)" or "Automatic (fp32 on this CPU)", translated, static. */
const gchar *plugin_precision_auto_label (void);

/* Check values given by a caller (the PDB's non-interactive arguments):
 * strength in [0, 1], steps >= 1, a known sampler and precision.  FALSE with a translated error if not. */
gboolean plugin_renoise_values_validate (const PluginRenoiseValues *vals,
                                         GError                   **error);

/* The same for denoise: σ at most 1 (not NaN), steps >= 1.  A negative σ
 * is the caller's other way of saying "estimate it": it becomes 0. */
gboolean plugin_denoise_values_validate (PluginDenoiseValues       *vals,
                                         GError                   **error);

/* Copy the string argument `name` into a values field of `size` bytes
 * (NULL: ""); FALSE (error set) if it is too long. */
gboolean plugin_copy_string (gchar       *dest,
                             gsize        size,
                             const gchar *src,
                             const gchar *name,
                             GError     **error);

/* The error for a region whose pixels do not fit in memory: "Not enough
 * memory for a W × H region: select a smaller part of the layer." */
void     plugin_set_region_error (GError **error,
                                  gint     width,
                                  gint     height);

/* ------------------------------------------------------------------ paths */

/* Where the translations are: <user data dir>/gimp-ddpm/locale when
 * tools/install-user put them there, else the installed LOCALEDIR. */
const gchar *plugin_locale_dir (void);

/* The model file that values' model "" stands for: the first of
 * $DDPM_MODEL_DIR/default.safetensors, <user data dir>/gimp-ddpm/models/
 * default.safetensors and the installed default that exists; if none
 * does, the installed path (so that an error names it).  Newly allocated.
 * For the dialog's model chooser too. */
gchar   *plugin_default_model_path (void);

/* Where the train dialog proposes to write a new model:
 * <user data dir>/gimp-ddpm/models/<name>.safetensors.  Newly allocated. */
gchar   *plugin_user_model_path    (const gchar *name);

/* ------------------------------------------------------------ model cache */

/* The model for `name` ("" or NULL = the default model), loaded once per
 * process: a dialog's preview renders many times with the same model.  A
 * file that changed on disk (retrained) is loaded again.  Owned by the
 * cache, valid until the next call that loads another model.  NULL with
 * a translated error ("does not exist", "could not be loaded: …"). */
DdpmModel    *plugin_model_get          (const gchar *name,
                                         GError     **error);

/* A copy of the schedule of the model at `path`, through the same cache
 * (the dialog's plan line counts in its timesteps, and its preview then
 * renders with the weights already loaded).  is_default: `path` is the
 * default model, so that a missing one says how to get one.  NULL with
 * the translated message a dialog shows as it is.  Free the copy with
 * ddpm_schedule_free. */
DdpmSchedule *plugin_model_get_schedule (const gchar *path,
                                         gboolean     is_default,
                                         GError     **error);

/* ------------------------------------------------------------------- plan */

/* Where a denoise of noise level σ ([0, 1] scale) starts on `schedule`:
 * *t, the timestep whose noise level is 2σ (ddpm_denoise_sigma_to_t), and
 * *n_steps = min (steps, t).  σ <= 0 (no noise): *t = *n_steps = 0.
 * Fails for steps < 1 and for more noise than the schedule reaches. */
gboolean plugin_denoise_plan      (const DdpmSchedule *schedule,
                                   gdouble             sigma,
                                   gint                steps,
                                   gint               *t,
                                   gint               *n_steps,
                                   GError            **error);

/* The renoise (generate = FALSE) or generate dialog's plan line for
 * strength and steps on `schedule`, newly allocated: "Noise to t = 400 of
 * 1000, then 20 denoising steps", "Start from pure noise at t = 1000 of
 * 1000, …", "Strength 0: the layer stays unchanged".  NULL (error set)
 * when the plan is impossible (ddpm_img2img_plan). */
gchar   *plugin_renoise_plan_text (const DdpmSchedule *schedule,
                                   gboolean            generate,
                                   gdouble             strength,
                                   gint                steps,
                                   GError            **error);

/* The denoise dialog's plan line, newly allocated: "Start at t = 57 of
 * 1000, then 5 denoising steps", or why OK cannot run (*is_error TRUE).
 * sigma is on the [0, 1] scale; estimating: it is the layer's estimate
 * (0: no noise found, nothing to do), else the user's (0: none given);
 * estimate_error: why estimating failed, or NULL. */
gchar   *plugin_denoise_plan_text (const DdpmSchedule *schedule,
                                   gdouble             sigma,
                                   gboolean            estimating,
                                   const gchar        *estimate_error,
                                   gint                steps,
                                   gboolean           *is_error);

/* ----------------------------------------------------------------- pixels */

/* Every GIMP reads a layer's region through GEGL as interleaved
 * perceptual floats in [0, 1] with the layer's own components: n_color 1
 * (gray) or 3 (RGB), then alpha if has_alpha ("R'G'B'A float", "Y' float",
 * …).  These turn them into the engine's planes and back (pixels.c). */

/* a·b·c floats, or NULL when that does not fit in memory (a huge layer). */
float   *plugin_try_new_floats          (gsize        a,
                                         gsize        b,
                                         gsize        c);

/* The colour of n_pixels interleaved pixels as (channels, n_pixels)
 * planes in [−1, 1]: gray replicated into RGB, or RGB reduced to its
 * Rec. 709 luma (GIMP's gray).  Alpha is not part of it.  NULL when out
 * of memory. */
float   *plugin_pixels_data_to_planes   (const float *data,
                                         gsize        n_pixels,
                                         gint         n_color,
                                         gboolean     has_alpha,
                                         gint         channels);

/* Replaces the colour of the interleaved pixels with the planes
 * (channels, n_pixels) in [−1, 1] (clamped to it), keeping alpha.  Gray
 * planes on RGB pixels either replace all three channels (keep_chroma
 * FALSE) or shift them by the change in luma (keep_chroma TRUE: colours
 * survive a renoise by a gray model); `original` is the planes the change
 * is measured from (only read when keep_chroma). */
void     plugin_pixels_data_from_planes (float       *data,
                                         gsize        n_pixels,
                                         gint         n_color,
                                         gboolean     has_alpha,
                                         const float *planes,
                                         const float *original,
                                         gint         channels,
                                         gboolean     keep_chroma);

/* A selection mask as read from GEGL, clamped to [0, 1] in place. */
void     plugin_mask_clamp              (float       *mask,
                                         gsize        n_pixels);

/* --------------------------------------------------------------- progress */

/* How a job shows its progress: a (callback, user_data) pair.  The job
 * calls it first with begin TRUE, its title as text ("Renoising") and
 * fraction 0 (GIMP: gimp_progress_init); then with begin FALSE after its
 * steps ("Denoising: step 12 of 50"), at most ten times a second but
 * always after the last (GIMP: gimp_progress_set_text and _update).
 * Returning FALSE from a step's call cancels the job: it fails with
 * DDPM_ERROR_CANCELLED, the planes untouched (a render) or the last
 * checkpoint kept (training).  The begin call's return value is ignored.
 * Texts are translated. */
typedef gboolean (*PluginProgressFunc) (const gchar *text,
                                        gdouble      fraction,
                                        gboolean     begin,
                                        gpointer     user_data);

/* ------------------------------------------------------------- render job */

/* A rectangle in layer coordinates (GIMP's GeglRectangle has the same
 * fields; the core keeps its own so that it needs no GEGL). */
typedef struct
{
  gint x, y;
  gint width, height;
} PluginRect;

typedef enum
{
  PLUGIN_RENDER_RENOISE,   /* SDEdit to t0 = strength·T (Meng et al. 2021) */
  PLUGIN_RENDER_GENERATE,  /* the same from pure noise: strength 1 */
  PLUGIN_RENDER_DENOISE    /* the reverse chain from the t of σ, without
                              adding noise (ddpm_denoise) */
} PluginRenderKind;

/* One run of the model over a layer's region, for every procedure that
 * renders.  Filled from the procedure's values by an _init function; the
 * job borrows `model` from those values. */
typedef struct
{
  PluginRenderKind  kind;
  const gchar      *model;          /* "" = the default model */
  gint              sampler;        /* DdpmSamplerKind, checked */
  gint              precision;      /* DdpmPrecision, checked */
  gint              steps;
  guint32           seed;
  gdouble           strength;       /* RENOISE: 0..1; GENERATE: 1 */
  gdouble           sigma;          /* DENOISE: [0, 1] scale, estimated
                                       already if it had to be; 0: no
                                       noise, nothing to do */
  gboolean          keep_chroma;    /* a gray model on RGB pixels shifts
                                       their luma only (renoise, denoise)
                                       rather than replacing the colour
                                       (generate) */
  const gchar      *progress_title; /* translated: "Renoising" */
} PluginRenderJob;

/* What plugin_render_job_plan found: the model (the cache's) and what to
 * do with it. */
typedef struct
{
  DdpmModel          *model;     /* owned by the model cache */
  const DdpmSchedule *schedule;  /* the model's */
  DdpmDenoiser        denoiser;  /* set when n_steps > 0 */
  gint                n_steps;   /* 0: nothing to do, leave the pixels */
  gint                channels;  /* the model's: the planes a run takes */
  gint                margin;    /* context pixels around a selection */
} PluginRenderPlan;

/* Renoise or generate with `vals` (generate: strength 1, colour replaced). */
void     plugin_render_job_init_renoise (PluginRenderJob           *job,
                                         const PluginRenoiseValues *vals,
                                         gboolean                   generate);

/* Denoise with `vals` at noise level sigma ([0, 1] scale): vals->sigma,
 * or its estimate when that is <= 0 (plugin_estimate_noise). */
void     plugin_render_job_init_denoise (PluginRenderJob           *job,
                                         const PluginDenoiseValues *vals,
                                         gdouble                    sigma);

/* Check what a job can check without its model: the sampler. */
gboolean plugin_render_job_check (const PluginRenderJob *job,
                                  GError               **error);

/* Load the job's model (through the cache) and plan the run on its
 * schedule: how many steps (0: nothing to do), how many channels the
 * planes must have, how much context a selection needs.  FALSE with a
 * translated error when the model cannot be used or the plan is
 * impossible. */
gboolean plugin_render_job_plan  (const PluginRenderJob *job,
                                  PluginRenderPlan      *plan,
                                  GError               **error);

/* Whether a width × height area of a layer, with `channels` colour
 * channels and alpha, is within the engine's resource limits
 * (ddpm_limits_check_image); FALSE with its error, translated, if not.
 * Every procedure asks before it reads a layer's pixels. */
gboolean plugin_region_check     (gint                    width,
                                  gint                    height,
                                  gint                    channels,
                                  GError                **error);

/* The region to read for `target` (inside a layer of width × height):
 * with a selection, `target` grown by plan->margin on every side (inside
 * the layer), so that what the model makes agrees with the surroundings;
 * without one, `target` itself.  FALSE with the engine's resource-limits
 * error (ddpm_limits_check_image, translated) when that region is larger
 * than the engine works on: call it before reading any pixels, so a huge
 * layer fails with nothing allocated and the image untouched. */
gboolean plugin_render_context   (const PluginRenderPlan *plan,
                                  const PluginRect       *target,
                                  gint                    width,
                                  gint                    height,
                                  gboolean                has_selection,
                                  PluginRect             *context,
                                  GError                **error);

/* Run the job on `planes` (plan->channels, height, width) in [−1, 1], in
 * place.  original: a copy of planes as read; mask (height, width) in
 * [0, 1], 0 outside the selection, or NULL for none.  On return planes
 * hold what a selection-aware merge wants (see render.c: the selection is
 * applied once, by the merge): where mask is 0, the original.  progress
 * (may be NULL, e.g. for a preview) shows the steps and can cancel.  On
 * failure or cancel planes are unchanged. */
gboolean plugin_render_job_run   (const PluginRenderJob  *job,
                                  const PluginRenderPlan *plan,
                                  float                  *planes,
                                  const float            *original,
                                  const float            *mask,
                                  gint                    height,
                                  gint                    width,
                                  PluginProgressFunc      progress,
                                  gpointer                progress_data,
                                  GError                **error);

/* The noise level of planes (C, height, width) in [−1, 1], on the [0, 1]
 * pixel scale: Donoho's estimator (ddpm_estimate_noise_sigma) halved.
 * 0 for fewer than 2 × 2 pixels. */
gboolean plugin_estimate_noise   (const float *planes,
                                  gint         channels,
                                  gint         height,
                                  gint         width,
                                  gdouble     *sigma,
                                  GError     **error);

/* -------------------------------------------------------------- train job */

/* Check `vals` for training on a region of width × height pixels (0 × 0:
 * the selection misses the layer) with `channels` colour channels, and
 * fill `params`: the preset's network at the patch size (unless resuming:
 * the checkpoint's applies), about ten checkpoints a run.  Creates the
 * output's folder.  params->out_path and resume_path point into `vals`,
 * which must outlive them. */
gboolean plugin_train_job_prepare (const PluginTrainValues *vals,
                                   gint                     channels,
                                   gint                     width,
                                   gint                     height,
                                   DdpmTrainParams         *params,
                                   GError                 **error);

/* Train on planes (channels, height, width) in [−1, 1] with `params`
 * from plugin_train_job_prepare; progress (may be NULL) shows the steps
 * and can cancel (the last checkpoint stays on disk). */
gboolean plugin_train_job_run     (const DdpmTrainParams   *params,
                                   const float             *planes,
                                   gint                     channels,
                                   gint                     height,
                                   gint                     width,
                                   PluginProgressFunc       progress,
                                   gpointer                 progress_data,
                                   GError                 **error);

G_END_DECLS

#endif /* DDPM_PLUGIN_CORE_H */
