/* ui-test.h: for the test build of the plug-in (gimp-ddpm-uitest) only.
 * ui-test.c drives the shown dialogs for tests/ui; the installed gimp-ddpm
 * neither links it nor calls this. */
#ifndef DDPM_UI_TEST_H
#define DDPM_UI_TEST_H

#include <glib.h>

G_BEGIN_DECLS

/* From now on every dialog, once shown, hands its widgets to ui-test.c:
 * when the environment variable DDPM_UI_TEST names a directory, it pokes
 * them, records what they show in DIR/<procedure>.result (a GKeyFile),
 * saves a screenshot DIR/<procedure>.png and answers the dialog (CANCEL,
 * or OK when DDPM_UI_TEST_RESPONSE=ok).  Without the variable the dialogs
 * run as usual. */
void ui_test_install (void);

G_END_DECLS

#endif /* DDPM_UI_TEST_H */
