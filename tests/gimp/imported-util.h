/* imported-util.h: what the batch tests of an imported published-shape
 * model share between GIMP 2.10 (tests/gimp/test-gimp-imported.c) and
 * GIMP 3 (tests/gimp3/test-gimp3-imported.c): the fixture's import, the
 * input picture, PNG reading and the comparison of two pictures. */
#ifndef IMPORTED_UTIL_H
#define IMPORTED_UTIL_H

#include <glib.h>

/* tests/fixtures/adm/FIXTURE.pt, the 256² ADM shape (see
 * tests/make-adm-fixtures.py). */
#define IMPORTED_FIXTURE "adm256-tiny"
/* The input: larger than one 256² tile in both directions. */
#define IMPORTED_WIDTH   300
#define IMPORTED_HEIGHT  260

typedef struct
{
  int     width, height;
  guint8 *rgba;              /* (height, width, 4) */
} ImportedImage;

typedef struct
{
  double mean_abs;           /* mean |b − a| of the colour values */
  double max_abs;
  double b_mean;             /* mean colour value of b */
  double correlation;        /* Pearson, over the colour values */
  gsize  changed;            /* pixels whose colour differs */
  gsize  alpha_changed;
} ImportedDiff;

/* `ddpm import` (DDPM_CLI) of the fixture with its own .flags line (from
 * DDPM_SOURCE_ROOT) to `out`; FALSE, with the output as a test message,
 * when it failed. */
gboolean       imported_import_fixture (const char *out);

/* dir/input.png (opaque) and dir/input-alpha.png (alpha 96–255: never 0,
 * whose colour PNG drops): colour ramps with rings, structure in every
 * tile. */
void           imported_write_inputs   (const char *dir);

/* NULL (and a test message) when `path` cannot be read. */
ImportedImage *imported_image_load     (const char *path);
void           imported_image_free     (ImportedImage *image);

ImportedDiff   imported_diff           (const ImportedImage *a,
                                        const ImportedImage *b,
                                        int x0, int y0, int w, int h);

/* Run argv (NULL-terminated) in `dir`; FALSE with a test message on failure. */
gboolean       imported_run            (const char *dir,
                                        const char *const *argv);

#endif
