/* test-error.c: the engine's error domain and its one out-of-memory
 * message (error.c), in the untranslated (C locale) form the command line
 * shows: "Not enough memory for <what> (<size>)." */
#include <string.h>

#include "ddpm.h"

static void
test_no_memory (void)
{
  GError *error = NULL;

  ddpm_set_error_no_memory (&error, 2400000, "a %d × %d image", 512, 385);
  g_assert_error (error, DDPM_ERROR, DDPM_ERROR_NO_MEMORY);
  /* g_format_size: SI units, a no-break space before the unit */
  g_assert_cmpstr (error->message, ==,
                   "Not enough memory for a 512 × 385 image (2.4\u00a0MB).");
  g_clear_error (&error);

  /* size unknown: left out */
  ddpm_set_error_no_memory (&error, 0, "reading %s", "photo.png");
  g_assert_error (error, DDPM_ERROR, DDPM_ERROR_NO_MEMORY);
  g_assert_cmpstr (error->message, ==, "Not enough memory for reading photo.png.");
  g_clear_error (&error);

  /* huge sizes in the largest unit that fits */
  ddpm_set_error_no_memory (&error, (gsize) 64 << 30, "%s", "the gradients");
  g_assert_nonnull (strstr (error->message, "(68.7\u00a0GB)."));
  g_clear_error (&error);

  /* no error wanted: nothing happens */
  ddpm_set_error_no_memory (NULL, 1, "%s", "x");
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/engine/error/no-memory", test_no_memory);
  return g_test_run ();
}
