/* test-potfiles.c: po/POTFILES names exactly what it must.
 *
 * Every entry exists, none is repeated, and every C source or header under
 * plugin/, ui/ and engine/ that marks a string for translation (_() or
 * N_()) is listed, so no user-visible string is missing from the
 * translations. */
#include <string.h>

#include <glib.h>

/* Whether C source text marks a string for translation: a call _( or
 * N_( that is not the tail of a longer identifier (g_strdup_ (…)).  Only
 * code counts, not comments or string literals. */
static gboolean
marks_strings (const gchar *text)
{
  enum { CODE, LINE_COMMENT, BLOCK_COMMENT, STRING, CHAR } state = CODE;

  for (const gchar *p = text; *p; p++)
    switch (state)
      {
      case CODE:
        if (p[0] == '/' && p[1] == '/')
          state = LINE_COMMENT;
        else if (p[0] == '/' && p[1] == '*')
          state = BLOCK_COMMENT, p++;
        else if (*p == '"')
          state = STRING;
        else if (*p == '\'')
          state = CHAR;
        else if (*p == '_' && (p[1] == '(' || (p[1] == ' ' && p[2] == '(')))
          {
            const gchar *start = p;

            if (start > text && start[-1] == 'N')
              start--;
            if (start == text ||
                ! (g_ascii_isalnum (start[-1]) || start[-1] == '_'))
              return TRUE;
          }
        break;
      case LINE_COMMENT:
        if (*p == '\n')
          state = CODE;
        break;
      case BLOCK_COMMENT:
        if (p[0] == '*' && p[1] == '/')
          state = CODE, p++;
        break;
      case STRING:
      case CHAR:
        if (*p == '\\' && p[1])
          p++;
        else if (*p == (state == STRING ? '"' : '\''))
          state = CODE;
        break;
      }
  return FALSE;
}

static void
test_scanner (void)
{
  g_assert_true (marks_strings ("x = _(\"Renoise\");"));
  g_assert_true (marks_strings ("{ N_(\"Tiny\") }"));
  g_assert_true (marks_strings ("label (_ (\"Seed\"));"));
  g_assert_false (marks_strings ("g_strdup_(x); ITEM_(y);"));
  g_assert_false (marks_strings ("/* _(\"commented\") */ f ();"));
  g_assert_false (marks_strings ("// _(\"commented\")\nf ();"));
  g_assert_false (marks_strings ("s = \"not _(code)\";"));
  g_assert_false (marks_strings ("c = '\"'; s = \"_(\";"));
  g_assert_true (marks_strings ("c = '\"'; s = _(\"x\");"));
}

static gchar *
source_root (void)
{
  return g_path_get_dirname (g_test_get_dir (G_TEST_DIST));
}

/* POTFILES' entries, relative to the source root, in order. */
static GPtrArray *
read_potfiles (const gchar *root)
{
  gchar     *file = g_build_filename (root, "po", "POTFILES", NULL);
  gchar     *contents = NULL;
  GError    *error = NULL;
  GPtrArray *entries = g_ptr_array_new_with_free_func (g_free);
  gchar    **lines;

  g_file_get_contents (file, &contents, NULL, &error);
  g_assert_no_error (error);
  lines = g_strsplit (contents, "\n", -1);
  for (gchar **line = lines; *line; line++)
    {
      gchar *entry = g_strstrip (g_strdup (*line));

      if (*entry && *entry != '#')
        g_ptr_array_add (entries, entry);
      else
        g_free (entry);
    }
  g_strfreev (lines);
  g_free (contents);
  g_free (file);
  return entries;
}

static gboolean
listed (GPtrArray *entries, const gchar *path)
{
  for (guint i = 0; i < entries->len; i++)
    if (strcmp (g_ptr_array_index (entries, i), path) == 0)
      return TRUE;
  return FALSE;
}

static void
test_entries_exist (void)
{
  gchar     *root = source_root ();
  GPtrArray *entries = read_potfiles (root);

  g_assert_cmpuint (entries->len, >, 0);
  for (guint i = 0; i < entries->len; i++)
    {
      const gchar *entry = g_ptr_array_index (entries, i);
      gchar       *path = g_build_filename (root, entry, NULL);

      if (! g_file_test (path, G_FILE_TEST_IS_REGULAR))
        g_error ("po/POTFILES names %s, which does not exist", entry);
      for (guint j = 0; j < i; j++)
        g_assert_cmpstr (g_ptr_array_index (entries, j), !=, entry);
      g_free (path);
    }
  g_ptr_array_unref (entries);
  g_free (root);
}

/* Collect the marking .c/.h files under root/dir (relative names). */
static void
scan (const gchar *root, const gchar *dir, GPtrArray *marking, guint *n_scanned)
{
  gchar       *path = g_build_filename (root, dir, NULL);
  GDir        *d = g_dir_open (path, 0, NULL);
  const gchar *name;

  if (! d)
    {
      g_free (path);
      return;
    }
  while ((name = g_dir_read_name (d)))
    {
      gchar *relative = g_strconcat (dir, "/", name, NULL);
      gchar *full = g_build_filename (root, relative, NULL);

      if (g_file_test (full, G_FILE_TEST_IS_DIR))
        {
          scan (root, relative, marking, n_scanned);
        }
      else if (g_str_has_suffix (name, ".c") || g_str_has_suffix (name, ".h"))
        {
          gchar *contents = NULL;

          if (g_file_get_contents (full, &contents, NULL, NULL))
            {
              (*n_scanned)++;
              if (marks_strings (contents))
                g_ptr_array_add (marking, g_strdup (relative));
            }
          g_free (contents);
        }
      g_free (full);
      g_free (relative);
    }
  g_dir_close (d);
  g_free (path);
}

static void
test_marking_files_listed (void)
{
  const gchar *dirs[] = { "plugin", "ui", "engine" };
  gchar       *root = source_root ();
  GPtrArray   *entries = read_potfiles (root);
  GPtrArray   *marking = g_ptr_array_new_with_free_func (g_free);
  guint        n_scanned = 0;

  for (gsize i = 0; i < G_N_ELEMENTS (dirs); i++)
    scan (root, dirs[i], marking, &n_scanned);

  /* The scan saw the sources (the engine alone has dozens). */
  g_assert_cmpuint (n_scanned, >, 10);
  g_assert_cmpuint (marking->len, >, 0);
  for (guint i = 0; i < marking->len; i++)
    {
      const gchar *file = g_ptr_array_index (marking, i);

      if (! listed (entries, file))
        g_error ("%s marks strings for translation but po/POTFILES does not list it", file);
    }
  g_ptr_array_unref (marking);
  g_ptr_array_unref (entries);
  g_free (root);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/engine/potfiles/scanner", test_scanner);
  g_test_add_func ("/engine/potfiles/entries-exist", test_entries_exist);
  g_test_add_func ("/engine/potfiles/marking-files-listed", test_marking_files_listed);

  return g_test_run ();
}
