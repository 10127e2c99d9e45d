/* paths.c: where the plug-in's files are: the default model, the user's
 * own models, the translations.  Per user under <user data dir>/gimp-ddpm
 * (where tools/install-user puts them, no root needed), else installed.
 */
#include "core-private.h"

const gchar *
plugin_locale_dir (void)
{
  static gchar *dir = NULL;

  if (dir == NULL)
    {
      dir = g_build_filename (g_get_user_data_dir (), "gimp-ddpm", "locale", NULL);
      if (!g_file_test (dir, G_FILE_TEST_IS_DIR))
        {
          g_free (dir);
          dir = g_strdup (LOCALEDIR);
        }
    }
  return dir;
}

static gchar *
user_model_dir (void)
{
  return g_build_filename (g_get_user_data_dir (), "gimp-ddpm", "models", NULL);
}

gchar *
plugin_user_model_path (const gchar *name)
{
  gchar *dir = user_model_dir ();
  gchar *file = g_strconcat (name, ".safetensors", NULL);
  gchar *path = g_build_filename (dir, file, NULL);

  g_free (file);
  g_free (dir);
  return path;
}

/* $DDPM_MODEL_DIR (GIMP passes its environment on to plug-ins), the user's
 * own data directory (where tools/install-user puts it), the installed
 * data directory. */
gchar **
plugin_default_model_candidates (void)
{
  GPtrArray *paths = g_ptr_array_new ();
  const gchar *env = g_getenv ("DDPM_MODEL_DIR");

  if (env != NULL && *env != '\0')
    g_ptr_array_add (paths, g_build_filename (env, "default.safetensors", NULL));
  g_ptr_array_add (paths, plugin_user_model_path ("default"));
  g_ptr_array_add (paths, ddpm_model_default_path ());
  g_ptr_array_add (paths, NULL);
  return (gchar **) g_ptr_array_free (paths, FALSE);
}

gchar *
plugin_default_model_path (void)
{
  gchar **paths = plugin_default_model_candidates ();
  guint n = g_strv_length (paths);
  gchar *found = NULL;

  for (guint i = 0; i < n && found == NULL; i++)
    if (g_file_test (paths[i], G_FILE_TEST_IS_REGULAR))
      found = g_strdup (paths[i]);
  if (found == NULL)
    found = g_strdup (paths[n - 1]);
  g_strfreev (paths);
  return found;
}
