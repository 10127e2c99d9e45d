/* error.c: the engine's GError domain and its one out-of-memory message. */
#include "intl.h"

#include "ddpm.h"

G_DEFINE_QUARK (ddpm-error-quark, ddpm_error)

void
ddpm_set_error_no_memory (GError     **error,
                          gsize        bytes,
                          const char  *what_format,
                          ...)
{
  va_list args;
  char *what;

  g_return_if_fail (what_format != NULL);
  if (error == NULL)
    return;

  va_start (args, what_format);
  what = g_strdup_vprintf (what_format, args);
  va_end (args);
  if (bytes > 0)
    {
      char *size = g_format_size (bytes);

      g_set_error (error, DDPM_ERROR, DDPM_ERROR_NO_MEMORY,
                   /* TRANSLATORS: the first %s is what did not fit, e.g.
                    * "a 512 × 385 image" (translated on its own); the
                    * second the memory it needed, e.g. "2.4 MB". */
                   _("Not enough memory for %s (%s)."), what, size);
      g_free (size);
    }
  else
    g_set_error (error, DDPM_ERROR, DDPM_ERROR_NO_MEMORY,
                 /* TRANSLATORS: %s is what did not fit, e.g. "reading
                  * photo.png" (translated on its own). */
                 _("Not enough memory for %s."), what);
  g_free (what);
}
