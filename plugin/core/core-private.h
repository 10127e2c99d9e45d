/* core-private.h: what the core's files share among themselves (not
 * installed, not for the front ends: they see plugin-core.h only). */
#ifndef DDPM_PLUGIN_CORE_PRIVATE_H
#define DDPM_PLUGIN_CORE_PRIVATE_H

#include "config.h"

/* The core is a library: its strings come from the gimp-ddpm catalogue
 * whatever the program's default domain (gi18n-lib: _() is dgettext). */
#include <glib/gi18n-lib.h>

#include "plugin-core.h"

G_BEGIN_DECLS

/* strength, steps, sampler and precision through the engine's one check
 * of sampling settings (ddpm_sample_params_validate), or its translated
 * error. */
gboolean  plugin_check_sampling           (gdouble  strength,
                                           gint     steps,
                                           gint     sampler,
                                           gint     precision,
                                           GError **error);

/* The places the default model may be, in the order they are tried
 * (paths.c).  NULL-terminated, newly allocated. */
gchar   **plugin_default_model_candidates (void);

/* The engine's progress callback adapted to a PluginProgressFunc
 * (progress.c): the state a job's run keeps on its stack. */
typedef struct
{
  PluginProgressFunc func;
  gpointer           user_data;
  gboolean           training;     /* texts with loss and time left */
  gint64             last_update;  /* µs, monotonic */
} PluginProgress;

/* Start: func (title, 0, TRUE). */
void      plugin_progress_begin           (PluginProgress     *state,
                                           PluginProgressFunc  func,
                                           gpointer            user_data,
                                           gboolean            training,
                                           const gchar        *title);

/* A DdpmProgressFunc; user_data is a begun PluginProgress. */
gboolean  plugin_progress_engine          (const DdpmProgress *progress,
                                           gpointer            user_data);

G_END_DECLS

#endif /* DDPM_PLUGIN_CORE_PRIVATE_H */
