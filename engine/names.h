/* names.h: enum ⇄ name lookup shared by the engine's enums (schedules,
 * spacings, samplers, variances).  Internal. */
#ifndef DDPM_NAMES_H
#define DDPM_NAMES_H

#include <glib.h>

/* Find `name` (case-insensitive) in names[0..count); on failure set an
 * error that names `what` and lists the valid names. */
gboolean ddpm_name_lookup (const char *const *names,
                           int                 count,
                           const char         *what,
                           const char         *name,
                           int                *out,
                           GError            **error);

#endif /* DDPM_NAMES_H */
