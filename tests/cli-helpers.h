/* cli-helpers.h: what the tests of the `ddpm` sampling commands share: a
 * temporary folder, a model trained there for two steps, running `ddpm`,
 * and small images to feed it. */
#ifndef DDPM_TEST_CLI_HELPERS_H
#define DDPM_TEST_CLI_HELPERS_H

#include <glib.h>

#include "ddpm.h"

/* The model cli_test_setup trained (tiny preset, 2 steps: its outputs are
 * noise, so tests check what the commands promise, not image quality). */
extern char *cli_test_model;

/* Make the temporary folder (named after `name`) and train the model. */
void       cli_test_setup      (const char *name);
/* Remove the folder and everything in it. */
void       cli_test_teardown   (void);
/* A path inside the temporary folder; free it. */
char      *cli_test_path       (const char *file);
/* Run $DDPM_CLI with the NULL-terminated arguments; return the exit status
 * and, if err is not NULL, stderr (free it). */
int        cli_test_run        (char **err, ...) G_GNUC_NULL_TERMINATED;
/* The same, keeping stdout in *out and stderr in *err (either may be NULL). */
int        cli_test_run_capture (char **out, char **err, ...) G_GNUC_NULL_TERMINATED;
/* Load an image, asserting it loads. */
DdpmImage *cli_test_load       (const char *path);
/* A 40×36 picture (gradient and disc, optional varying alpha) saved as a
 * PNG in the folder; returns its path. */
char      *cli_test_make_input (const char *file, int channels, gboolean with_alpha);
double     cli_test_max_diff   (const float *a, const float *b, gsize n);

#endif /* DDPM_TEST_CLI_HELPERS_H */
