/* ui-helpers.c: see ui-helpers.h. */
#include <glib/gstdio.h>

#include "ui-helpers.h"

const gchar *
ui_env (const gchar *name)
{
  const gchar *value = g_getenv (name);

  if (! value || ! *value)
    g_error ("%s is not set: run this test through meson (tests/ui/meson.build)", name);
  return value;
}

gchar *
ui_get (GKeyFile *result, const gchar *key)
{
  GError *error = NULL;
  gchar  *value = g_key_file_get_string (result, "dialog", key, &error);

  g_assert_no_error (error);
  return value;
}

gboolean
ui_get_bool (GKeyFile *result, const gchar *key)
{
  GError  *error = NULL;
  gboolean value = g_key_file_get_boolean (result, "dialog", key, &error);

  g_assert_no_error (error);
  return value;
}

void
ui_copy_file (const gchar *from, const gchar *to, gint mode)
{
  gchar  *contents, *dir = g_path_get_dirname (to);
  gsize   length;
  GError *error = NULL;

  g_assert_cmpint (g_mkdir_with_parents (dir, 0755), ==, 0);
  g_file_get_contents (from, &contents, &length, &error);
  g_assert_no_error (error);
  g_file_set_contents (to, contents, length, &error);
  g_assert_no_error (error);
  g_assert_cmpint (g_chmod (to, mode), ==, 0);
  g_free (contents);
  g_free (dir);
}
