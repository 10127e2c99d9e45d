/* ui-gtk3.h: the GIMP 3 plug-in's dialogs (GTK 3), over its procedures'
 * configs: GimpProcedureDialogs with the widgets GIMP makes for the
 * arguments, plus what it does not make: the default model preselected,
 * the plan line following every change, OK insensitive while the model
 * cannot be used.  Each returns TRUE for OK, the config edited.
 */
#ifndef DDPM_UI_GTK3_H
#define DDPM_UI_GTK3_H

#include <libgimp/gimp.h>

G_BEGIN_DECLS

/* Renoise (generate FALSE) or generate. */
gboolean ui_renoise_dialog (GimpProcedure       *procedure,
                            GimpProcedureConfig *config,
                            GimpDrawable        *drawable,
                            gboolean             generate);

/* Denoise; estimate: the layer's noise level ([0, 1] scale) for a σ of 0,
 * estimate_error why it could not be estimated (or NULL). */
gboolean ui_denoise_dialog (GimpProcedure       *procedure,
                            GimpProcedureConfig *config,
                            GimpDrawable        *drawable,
                            gdouble              estimate,
                            const gchar         *estimate_error);

gboolean ui_train_dialog   (GimpProcedure       *procedure,
                            GimpProcedureConfig *config,
                            GimpDrawable        *drawable);

G_END_DECLS

#endif /* DDPM_UI_GTK3_H */
