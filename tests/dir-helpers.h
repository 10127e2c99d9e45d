/* dir-helpers.h: folder helpers the file-writing tests share
 * (the file-writing engine tests and the GIMP sessions' work folders). */
#ifndef DDPM_TEST_DIR_HELPERS_H
#define DDPM_TEST_DIR_HELPERS_H

#include <glib.h>

/* The names in `dir`, sorted and joined with spaces; free it. */
char *test_list_dir    (const char *dir);
/* Remove `dir` and everything below it (symlinks themselves, never what
 * they point to); TRUE if it is gone (or was never there). */
gboolean test_remove_tree (const char *dir);

#endif /* DDPM_TEST_DIR_HELPERS_H */
