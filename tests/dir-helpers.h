/* dir-helpers.h: folder helpers the file-writing tests share
 * (test-safetensors.c, test-atomic-file.c). */
#ifndef DDPM_TEST_DIR_HELPERS_H
#define DDPM_TEST_DIR_HELPERS_H

#include <glib.h>

/* The names in `dir`, sorted and joined with spaces; free it. */
char *test_list_dir    (const char *dir);
/* Remove `dir` and everything below it. */
void  test_remove_tree (const char *dir);

#endif /* DDPM_TEST_DIR_HELPERS_H */
