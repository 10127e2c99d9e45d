/* plugin.h: what the plug-in (plugin/) and its dialogs (ui/) share: the
 * procedure names, the values structs that gimp_get_data/gimp_set_data
 * remember between runs, and the one render function that serves both the
 * dialog's preview and the real apply (GIMP 2.10 plug-ins/common style).
 */
#ifndef DDPM_PLUGIN_H
#define DDPM_PLUGIN_H

#include "config.h"

#include <libintl.h>
#include <glib/gi18n.h>
#include <libgimp/gimp.h>
#include <libgimp/gimpui.h>

#include "ddpm.h"

G_BEGIN_DECLS

#define PLUG_IN_BINARY "gimp-ddpm"
#define PLUG_IN_ROLE   "gimp-ddpm"
#define RENOISE_PROC   "plug-in-ddpm-renoise"
#define GENERATE_PROC  "plug-in-ddpm-generate"
#define TRAIN_PROC     "plug-in-ddpm-train"
#define DENOISE_PROC   "plug-in-ddpm-denoise"

/* GIMP's own plug-ins get this from libgimp/stdplugins-intl.h, which is not
 * installed: bind our catalogue (po/) and make it the default domain. */
#define INIT_I18N()                                                     \
  G_STMT_START {                                                        \
    bindtextdomain (GETTEXT_PACKAGE, plugin_locale_dir ());             \
    bind_textdomain_codeset (GETTEXT_PACKAGE, "UTF-8");                 \
    textdomain (GETTEXT_PACKAGE);                                       \
  } G_STMT_END

/* Where the translations are: <user data dir>/gimp-ddpm/locale when
 * tools/install-user put them there, else the installed LOCALEDIR. */
const gchar *plugin_locale_dir (void);

typedef struct
{
  gchar    model[1024];   /* a .safetensors file; "" = the default model */
  gdouble  strength;      /* 0..1; generate ignores it (always 1) */
  gint     steps;         /* denoising steps actually run */
  guint32  seed;
  gboolean random_seed;   /* the dialog draws a new seed on each run */
  gint     sampler;       /* DdpmSamplerKind: 0 = ddpm, 1 = ddim */
} PluginRenoiseValues;

typedef struct
{
  gchar    model[1024];   /* a .safetensors file; "" = the default model */
  gdouble  sigma;         /* the noise's standard deviation on the [0, 1]
                             pixel scale (25/255 ≈ 0.098); <= 0: estimate
                             it from the layer (plugin_denoise_estimate) */
  gint     steps;         /* denoising steps actually run (at most t) */
  guint32  seed;          /* for the DDPM sampler's fresh noise */
  gboolean random_seed;   /* the dialog draws a new seed on each run */
  gint     sampler;       /* DdpmSamplerKind: 0 = ddpm, 1 = ddim */
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

/* ONE render function serving both preview and apply (GIMP 2.10
 * plug-ins/common style).  preview == NULL: apply to the drawable through
 * the shadow buffer with progress, as one undo step; else render into the
 * GimpPreview (a GimpDrawablePreview) region only.  generate = TRUE:
 * strength 1.  On failure returns FALSE with a translated message in error
 * and leaves the drawable untouched. */
gboolean plugin_render (gint32                     drawable_id,
                        const PluginRenoiseValues *vals,
                        gboolean                   generate,
                        GimpPreview               *preview,
                        GError                   **error);

/* The same for plug-in-ddpm-denoise (plugin/denoise.c): remove white
 * Gaussian noise of vals->sigma by starting the model's reverse chain at
 * the t whose noise level it is (ddpm_denoise).  vals->sigma <= 0 is
 * estimated first with plugin_denoise_estimate; an estimate of 0 (no noise
 * found) leaves the drawable unchanged. */
gboolean plugin_denoise_render   (gint32                     drawable_id,
                                  const PluginDenoiseValues *vals,
                                  GimpPreview               *preview,
                                  GError                   **error);

/* The noise level of the drawable, where a denoise would work (the
 * selection's bounds, else the whole layer), on the [0, 1] pixel scale:
 * Donoho's estimator (ddpm_estimate_noise_sigma) on its colour channels.
 * 0 when nothing is selected on this layer or no noise is found. */
gboolean plugin_denoise_estimate (gint32                     drawable_id,
                                  gdouble                   *sigma,
                                  GError                   **error);

/* The model file that vals->model == "" stands for: the first of
 * $DDPM_MODEL_DIR/default.safetensors, <user data dir>/gimp-ddpm/models/
 * default.safetensors and the installed default that exists; if none
 * does, the installed path (so that an error names it).  Newly allocated.
 * For the dialog's model chooser too. */
gchar   *plugin_default_model_path (void);

/* Where the train dialog proposes to write a new model:
 * <user data dir>/gimp-ddpm/models/<name>.safetensors.  Newly allocated. */
gchar   *plugin_user_model_path    (const gchar *name);

/* ---- inside plugin/ only: what plugin.c shares with denoise.c ---- */

/* One run of the model over the drawable's target region, shared by every
 * procedure that renders (renoise, generate, denoise): the model, the
 * selection as mask with context around it, the pixels in and out, the
 * shadow buffer, the undo group, the progress bar, or the preview.  The
 * procedure supplies what is its own: `plan` checks the job against the
 * loaded model's schedule and says how many steps will run (0: leave the
 * pixels unchanged), `run` is the engine call on the region's tensor. */
typedef struct
{
  const gchar *model;          /* "" = the default model */
  gint         sampler;        /* DdpmSamplerKind, checked here */
  gint         steps;
  guint32      seed;
  gboolean     keep_chroma;    /* gray model on RGB: shift the luma only */
  const gchar *progress_title; /* translated: "Denoising" */
  gboolean   (*plan) (const DdpmSchedule *schedule,
                      gint                steps,
                      gpointer            data,
                      int                *n_steps,
                      GError            **error);
  gboolean   (*run)  (float                  *image,
                      const float            *mask,
                      int                     C,
                      int                     H,
                      int                     W,
                      const DdpmSchedule     *schedule,
                      const DdpmDenoiser     *denoiser,
                      const DdpmSampleParams *params,
                      gpointer                data,
                      GError                **error);
  gpointer     data;
} PluginRenderJob;

gboolean plugin_render_job (gint32                 drawable_id,
                            const PluginRenderJob *job,
                            GimpPreview           *preview,
                            GError               **error);

/* The region a run works on: the selection's bounds on the drawable, or
 * the preview's visible area; FALSE when it is empty (nothing to do). */
gboolean plugin_render_target (gint32         drawable_id,
                               GimpPreview   *preview,
                               GeglRectangle *target);

/* Copy the PDB string argument `name` into a values field; FALSE (error
 * set) if it is too long. */
gboolean plugin_copy_string (gchar       *dest,
                             gsize        size,
                             const gchar *src,
                             const gchar *name,
                             GError     **error);

/* plug-in-ddpm-denoise's run function (plugin/denoise.c). */
GimpPDBStatusType plugin_denoise_run (GimpRunMode      run_mode,
                                      gint             nparams,
                                      const GimpParam *param,
                                      GError         **error);

G_END_DECLS

#endif /* DDPM_PLUGIN_H */
