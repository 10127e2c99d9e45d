/* ui-helpers.h: what the dialog suites (test-ui.c, test-ui-imported.c)
 * share: their environment and the reading of a dialog's result file (the
 * [dialog] group the test hooks of ui/gimp2/ui-test.c write). */
#pragma once

#include <glib.h>

/* The value of an environment variable meson sets; a clear error if it
 * is missing (the test was not run through meson). */
const gchar *ui_env      (const gchar *name);

/* Copy `from` to `to`, creating the folders, with the given mode (the
 * plug-in and model the private GIMP profile gets); fails the test on an
 * error. */
void         ui_copy_file (const gchar *from, const gchar *to, gint mode);

/* A key of the result's [dialog] group; the test fails if it is missing. */
gchar       *ui_get      (GKeyFile *result, const gchar *key);
gboolean     ui_get_bool (GKeyFile *result, const gchar *key);
