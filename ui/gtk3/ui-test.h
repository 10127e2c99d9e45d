/* ui-test.h: the hook through which tests/ui3 drives a shown dialog, in
 * the plug-in's test build only (gimp-ddpm-uitest, -DPLUGIN_UI_TEST). */
#ifndef DDPM_UI_GTK3_TEST_H
#define DDPM_UI_GTK3_TEST_H

#include <libgimp/gimp.h>
#include <gtk/gtk.h>

G_BEGIN_DECLS

/* Once the dialog is shown: record its plan line and OK's sensitivity
 * (and a screenshot) into $DDPM_UI3_OUT, change the config the way a user
 * would (strength 0.25 and 10 steps where there is a strength; a model
 * that is no model, $DDPM_UI3_BAD_MODEL; the model back), recording after
 * each change, then press OK. */
void ui_test_attach (GtkWidget           *dialog,
                     GtkWidget           *plan,
                     GimpProcedureConfig *config,
                     const gchar         *name);

G_END_DECLS

#endif /* DDPM_UI_GTK3_TEST_H */
