/* ui-helpers.c: see ui-helpers.h. */
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
