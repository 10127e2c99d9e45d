/* ui-gtk3.h: the GIMP 3 plug-in's dialogs (GTK 3), over its procedures'
 * configs: GimpProcedureDialogs with the widgets GIMP makes for the
 * arguments, plus what it does not make: the live preview (rendered by
 * the plug-in's own render function, passed in), the default model
 * preselected, the plan line following every change, OK insensitive while
 * the model cannot be used, the denoise dialog's σ in 0–255 levels with
 * "Estimate from the layer", the train dialog's parameter count.  The
 * dialogs know the core (plugin-core.h) and not the glue (plugin/gimp3).
 * Each returns TRUE for OK, the config edited.
 */
#ifndef DDPM_UI_GTK3_H
#define DDPM_UI_GTK3_H

#include <libgimp/gimp.h>
#include <libgimp/gimpui.h>

G_BEGIN_DECLS

/* Render the config's values on the drawable into `preview` (its visible
 * region), the way OK renders the whole: the glue's render function.
 * sigma: for a denoise, the noise level ([0, 1] scale) the dialog's plan
 * line shows (the estimate while estimating); unused otherwise.  FALSE
 * with a translated error on failure. */
typedef gboolean (*UiPreviewFunc) (GimpDrawable        *drawable,
                                   GimpProcedureConfig *config,
                                   gdouble              sigma,
                                   GimpPreview         *preview,
                                   gpointer             user_data,
                                   GError             **error);

/* Renoise (generate FALSE) or generate. */
gboolean ui_renoise_dialog (GimpProcedure       *procedure,
                            GimpProcedureConfig *config,
                            GimpDrawable        *drawable,
                            gboolean             generate,
                            UiPreviewFunc        render,
                            gpointer             render_data);

/* Denoise; estimate: the layer's noise level ([0, 1] scale) for
 * "Estimate from the layer", estimate_error why it could not be
 * estimated (or NULL). */
gboolean ui_denoise_dialog (GimpProcedure       *procedure,
                            GimpProcedureConfig *config,
                            GimpDrawable        *drawable,
                            gdouble              estimate,
                            const gchar         *estimate_error,
                            UiPreviewFunc        render,
                            gpointer             render_data);

gboolean ui_train_dialog   (GimpProcedure       *procedure,
                            GimpProcedureConfig *config,
                            GimpDrawable        *drawable);

G_END_DECLS

#endif /* DDPM_UI_GTK3_H */
