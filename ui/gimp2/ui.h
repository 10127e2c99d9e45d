/* ui.h: the plug-in's dialogs, as plugin/ calls them.
 *
 * Each function initialises libgimpui, shows its dialog modally over the
 * image and returns TRUE if the user pressed OK, having written the chosen
 * values into `vals`; on Cancel (or a closed window) it returns FALSE and
 * leaves `vals` untouched.  They are for the INTERACTIVE run mode only. */
#ifndef DDPM_UI_H
#define DDPM_UI_H

#include <libgimp/gimp.h>

#include "plugin.h"

G_BEGIN_DECLS

/* The renoise dialog (generate = FALSE: model, strength, steps, seed,
 * sampler, live preview) or the generate dialog (generate = TRUE: the same
 * without strength).  An empty vals->model means the default model.  With
 * vals->random_seed set, OK draws a new vals->seed. */
gboolean ui_renoise_dialog (gint32               drawable_id,
                            PluginRenoiseValues *vals,
                            gboolean             generate);

/* The denoise dialog: model, noise level (in 0–255 levels, or estimated
 * from the layer: vals->sigma <= 0), steps, seed, sampler, live preview.
 * With vals->random_seed set, OK draws a new vals->seed. */
gboolean ui_denoise_dialog (gint32               drawable_id,
                            PluginDenoiseValues *vals);

/* The training dialog: output file, preset, iterations, patch size, seed,
 * optional checkpoint to resume.  An empty vals->resume means start anew. */
gboolean ui_train_dialog   (gint32               drawable_id,
                            PluginTrainValues   *vals);

G_END_DECLS

#endif /* DDPM_UI_H */
