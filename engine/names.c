/* names.c: enum ⇄ name lookup with an error that lists the valid names. */
#include "intl.h"
#include "ddpm.h"
#include "names.h"

gboolean
ddpm_name_lookup (const char *const *names,
                  int                 count,
                  const char         *what,
                  const char         *name,
                  int                *out,
                  GError            **error)
{
  for (int i = 0; i < count; i++)
    if (name != NULL && g_ascii_strcasecmp (name, names[i]) == 0)
      {
        *out = i;
        return TRUE;
      }

  GString *valid = g_string_new (NULL);
  for (int i = 0; i < count; i++)
    g_string_append_printf (valid, "%s%s", i ? ", " : "", names[i]);
  g_set_error (error, DDPM_ERROR, DDPM_ERROR_INVALID_ARGUMENT,
               _("Unknown %s “%s” (expected one of: %s)"),
               what, name ? name : "", valid->str);
  g_string_free (valid, TRUE);
  return FALSE;
}
