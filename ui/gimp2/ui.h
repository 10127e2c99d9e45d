/* ui.h: the plug-in's GIMP 2.10 dialogs, as the glue (plugin/gimp2) calls
 * them.
 *
 * The dialogs know the plug-in's core (plugin-core.h: the values, the
 * model cache, the plan lines) and nothing of the glue: what renders a
 * preview, or estimates the noise in a layer, comes in as a callback with
 * its user data, and the default model as a path.
 *
 * Each function initialises libgimpui, shows its dialog modally over the
 * image and returns TRUE if the user pressed OK, having written the chosen
 * values into `vals`; on Cancel (or a closed window) it returns FALSE and
 * leaves `vals` untouched.  They are for the INTERACTIVE run mode only. */
#ifndef DDPM_UI_H
#define DDPM_UI_H

#include <libgimp/gimp.h>
#include <libgimp/gimpui.h>

#include "plugin-core.h"

G_BEGIN_DECLS

/* Render `vals` on the drawable into `preview` (its visible region only),
 * the way OK would render the whole: the preview shows what OK will do.
 * generate: strength 1.  FALSE with a translated error on failure. */
typedef gboolean (*UiRenoiseRenderFunc) (gint32                     drawable_id,
                                         const PluginRenoiseValues *vals,
                                         gboolean                   generate,
                                         GimpPreview               *preview,
                                         gpointer                   user_data,
                                         GError                   **error);

/* The same for a denoise; vals->sigma > 0 (the dialog passes its
 * estimate when estimating). */
typedef gboolean (*UiDenoiseRenderFunc) (gint32                     drawable_id,
                                         const PluginDenoiseValues *vals,
                                         GimpPreview               *preview,
                                         gpointer                   user_data,
                                         GError                   **error);

/* The noise level of the drawable where a denoise would work, on the
 * [0, 1] pixel scale (0: none found). */
typedef gboolean (*UiEstimateFunc)      (gint32                     drawable_id,
                                         gdouble                   *sigma,
                                         gpointer                   user_data,
                                         GError                   **error);

/* The renoise dialog (generate = FALSE: model, strength, steps, seed,
 * sampler, live preview) or the generate dialog (generate = TRUE: the same
 * without strength).  An empty vals->model means the default model, the
 * file default_model.  The preview renders through render (render_data).
 * With vals->random_seed set, OK draws a new vals->seed. */
gboolean ui_renoise_dialog (gint32                drawable_id,
                            PluginRenoiseValues  *vals,
                            gboolean              generate,
                            const gchar          *default_model,
                            UiRenoiseRenderFunc   render,
                            gpointer              render_data);

/* The denoise dialog: model, noise level (in 0–255 levels, or estimated
 * from the layer: vals->sigma <= 0), steps, seed, sampler, live preview.
 * The preview renders through render, the estimate comes from estimate
 * (both given user_data).  With vals->random_seed set, OK draws a new
 * vals->seed. */
gboolean ui_denoise_dialog (gint32                drawable_id,
                            PluginDenoiseValues  *vals,
                            const gchar          *default_model,
                            UiDenoiseRenderFunc   render,
                            UiEstimateFunc        estimate,
                            gpointer              user_data);

/* The training dialog: output file, preset, iterations, patch size, seed,
 * optional checkpoint to resume.  An empty vals->resume means start anew;
 * an empty vals->output is filled with a file in the user's model folder
 * named after the image. */
gboolean ui_train_dialog   (gint32                drawable_id,
                            PluginTrainValues    *vals);

G_END_DECLS

#endif /* DDPM_UI_H */
