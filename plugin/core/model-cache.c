/* model-cache.c: one model loaded per process, shared by everything that
 * needs it.  A dialog asks for the chosen model's schedule (its plan line
 * counts in the model's timesteps), then its preview renders many times
 * with the same weights, then OK renders once more: loaded once for all.
 * A file is known by its path, modification time and size, so a model
 * retrained under the same name is loaded again.
 *
 * Two callers, two ways of explaining a failure: a render says what the
 * procedure could not do ("The model file … does not exist."), a dialog
 * says which model it cannot use, with the engine's reason.
 */
#include "core-private.h"

#include <glib/gstdio.h>

static struct
{
  DdpmModel *model;  /* NULL until one loads */
  gchar     *path;
  gint64     mtime;  /* -1: the file could not be stat'ed */
  goffset    size;
} cache;

/* The model at `path` from the cache, or loaded into it (replacing the
 * one there).  st: the file's status, NULL if it could not be had (then
 * ddpm_model_load explains).  The engine's error on failure, and the
 * cache keeps what it had. */
static DdpmModel *
cache_lookup (const gchar    *path,
              const GStatBuf *st,
              GError        **error)
{
  DdpmModel *model;

  if (cache.model != NULL && st != NULL && g_strcmp0 (path, cache.path) == 0
      && (gint64) st->st_mtime == cache.mtime && st->st_size == cache.size)
    return cache.model;

  model = ddpm_model_load (path, error);
  if (model == NULL)
    return NULL;

  ddpm_model_free (cache.model);
  g_free (cache.path);
  cache.model = model;
  cache.path = g_strdup (path);
  cache.mtime = st != NULL ? (gint64) st->st_mtime : -1;
  cache.size = st != NULL ? st->st_size : -1;
  return model;
}

DdpmModel *
plugin_model_get (const gchar *name,
                  GError     **error)
{
  gboolean is_default = name == NULL || *name == '\0';
  gchar *path = is_default ? plugin_default_model_path () : g_strdup (name);
  GStatBuf st;
  GError *local = NULL;
  DdpmModel *model;

  if (g_stat (path, &st) != 0)
    {
      if (is_default)
        {
          gchar **paths = plugin_default_model_candidates ();
          gchar *list = g_strjoinv ("\n  ", paths);

          g_set_error (error, DDPM_ERROR, DDPM_ERROR_IO,
                       _("No diffusion model is installed.  Looked for:\n  %s\n"
                         "Train one with Filters ▸ Diffusion ▸ Train Model, "
                         "or choose a model file."), list);
          g_free (list);
          g_strfreev (paths);
        }
      else
        g_set_error (error, DDPM_ERROR, DDPM_ERROR_IO,
                     _("The model file “%s” does not exist."), path);
      g_free (path);
      return NULL;
    }

  model = cache_lookup (path, &st, &local);
  if (model == NULL)
    g_propagate_prefixed_error (error, local,
                                _("The diffusion model could not be loaded: "));
  g_free (path);
  return model;
}

DdpmSchedule *
plugin_model_get_schedule (const gchar *path,
                           gboolean     is_default,
                           GError     **error)
{
  GStatBuf st;
  GError *local = NULL;
  DdpmModel *model;
  DdpmSchedule *schedule = NULL;

  g_return_val_if_fail (path != NULL, NULL);

  model = cache_lookup (path, g_stat (path, &st) == 0 ? &st : NULL, &local);
  if (model != NULL)
    {
      const DdpmSchedule *s = ddpm_model_get_schedule (model);

      /* A copy: the cache may load another model while the dialog shows
       * this one's plan. */
      schedule = ddpm_schedule_new_from_alpha_bar (s->kind, s->alpha_bar,
                                                   s->timestep, s->T,
                                                   s->T_base, &local);
      if (schedule != NULL)
        return schedule;
    }

  if (is_default && !g_file_test (path, G_FILE_TEST_EXISTS))
    {
      /* A fresh installation: say what to do rather than "no such file". */
      g_set_error_literal (error, DDPM_ERROR, DDPM_ERROR_IO,
                           _("No diffusion model is installed yet: choose "
                             "a model file, or train one with Filters ▸ "
                             "Diffusion ▸ Train Model."));
    }
  else
    {
      gchar *name = g_filename_display_basename (path);

      g_set_error (error, local->domain, local->code,
                   _("Cannot use the model “%s”: %s"), name, local->message);
      g_free (name);
    }
  g_clear_error (&local);
  return NULL;
}
