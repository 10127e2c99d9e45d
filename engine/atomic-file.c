/* atomic-file.c: replace a file so that readers and crashes see the old
 * file or the new one, never a mixture.  See atomic-file.h.
 *
 * HOW IT WORKS
 *
 * The data goes to a temporary file made with mkstemp in the destination's
 * own folder (so the final rename never crosses file systems), named
 * ".NAME.XXXXXX" so that folder scans (the dataset loader's) skip it.
 * Writes are buffered.  Commit writes the buffer out, fsyncs the file
 * (data on disk before the name points at it: otherwise a crash could
 * leave the new name on an empty file), closes it, renames it over the
 * destination (atomic within a file system) and fsyncs the folder so the
 * rename itself survives a crash.  Any failure before the rename unlinks
 * the temporary, leaving an existing destination untouched.
 *
 * A writer killed outright (SIGKILL, power loss) leaves its temporary
 * behind.  So that these do not pile up beside a checkpoint rewritten for
 * days, each writer holds an flock on its temporary until it is renamed,
 * and every new writer first removes the stale temporaries of its own
 * destination: files named exactly ".NAME." + 6 mkstemp characters, ours,
 * regular, that no process holds locked (the kernel drops a lock when its
 * holder dies) and not touched for STALE_SECONDS (covering the moment
 * between another writer's mkstemp and its flock, and writers of older
 * versions that took no lock).  A concurrent live writer's temporary is
 * locked, so it is never removed.  (O_TMPFILE + linkat would leave
 * nothing at all, but linkat cannot replace an existing name, so it still
 * needs a named step before the rename, and not every file system has
 * O_TMPFILE.)
 *
 * Why not GIO's g_file_replace: for a destination that does not exist yet
 * it writes the file in place (so a failed or interrupted write leaves a
 * partial file under the final name), it fsyncs only when it replaces an
 * existing file, and for a destination with hard links or behind a symlink
 * it truncates and rewrites the original (gio/glocalfileoutputstream.c).
 * The guarantees above are the whole point, so we keep this small writer.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <glib/gstdio.h>

#include "intl.h"
#include "atomic-file.h"

#define ATOMIC_BUFFER_SIZE (256 * 1024)
#define STALE_SECONDS 60
#define TMP_SUFFIX_LEN 6   /* mkstemp's XXXXXX */

struct _DdpmAtomicFile
{
  char   *path;
  char   *display_name;
  char   *tmp_path;
  int     fd;
  guint8 *buffer;
  gsize   buffered;
};

static void
set_write_error (GError **error, const DdpmAtomicFile *file, int errsv)
{
  g_set_error (error, DDPM_ERROR, DDPM_ERROR_IO, _("Could not write %s: %s"),
               file->display_name, g_strerror (errsv));
}

/* Is `name` ".BASE." followed by exactly six mkstemp characters? */
static gboolean
is_own_temp_name (const char *name, const char *base)
{
  gsize blen = strlen (base);

  if (name[0] != '.' || strncmp (name + 1, base, blen) != 0 || name[1 + blen] != '.')
    return FALSE;
  const char *tail = name + 2 + blen;
  if (strlen (tail) != TMP_SUFFIX_LEN)
    return FALSE;
  for (int k = 0; k < TMP_SUFFIX_LEN; k++)
    if (!g_ascii_isalnum (tail[k]))
      return FALSE;
  return TRUE;
}

void
ddpm_atomic_file_remove_stale (const char *path)
{
  g_return_if_fail (path != NULL);

  char *dir = g_path_get_dirname (path), *base = g_path_get_basename (path);
  GDir *d = g_dir_open (dir, 0, NULL);
  const char *name;
  time_t now = time (NULL);

  while (d != NULL && (name = g_dir_read_name (d)) != NULL)
    {
      if (!is_own_temp_name (name, base))
        continue;

      char *tmp = g_build_filename (dir, name, NULL);
      int fd = open (tmp, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
      struct stat st;

      /* Ours, a regular file, idle, and no live writer holds its lock. */
      if (fd >= 0 && fstat (fd, &st) == 0 && S_ISREG (st.st_mode)
          && st.st_uid == geteuid ()
          && now - st.st_mtime >= STALE_SECONDS
          && flock (fd, LOCK_EX | LOCK_NB) == 0)
        g_unlink (tmp);
      if (fd >= 0)
        close (fd);   /* drops our lock too */
      g_free (tmp);
    }
  if (d != NULL)
    g_dir_close (d);
  g_free (dir);
  g_free (base);
}

DdpmAtomicFile *
ddpm_atomic_file_new (const char *path, GError **error)
{
  g_return_val_if_fail (path != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  ddpm_atomic_file_remove_stale (path);

  char *dir = g_path_get_dirname (path), *base = g_path_get_basename (path);
  DdpmAtomicFile *file = g_new0 (DdpmAtomicFile, 1);

  file->path = g_strdup (path);
  file->display_name = g_filename_display_name (path);
  file->tmp_path = g_strdup_printf ("%s%c.%s.XXXXXX", dir, G_DIR_SEPARATOR, base);
  g_free (dir);
  g_free (base);

  /* 0666 & ~umask, like any newly created file (mkstemp's 0600 would make
   * a model file private to its author). */
  file->fd = g_mkstemp_full (file->tmp_path, O_WRONLY | O_CLOEXEC, 0666);
  if (file->fd < 0)
    {
      set_write_error (error, file, errno);
      g_free (file->tmp_path);
      file->tmp_path = NULL;
      ddpm_atomic_file_abort (file);
      return NULL;
    }
  /* Held until the rename: tells ddpm_atomic_file_remove_stale that a
   * live writer owns this temporary.  Best effort (some network file
   * systems refuse it; the age rule still protects the file). */
  (void) flock (file->fd, LOCK_EX | LOCK_NB);
  file->buffer = g_malloc (ATOMIC_BUFFER_SIZE);
  return file;
}

static gboolean
write_all (int fd, const guint8 *data, gsize n, int *errsv)
{
  while (n > 0)
    {
      gssize w = write (fd, data, MIN (n, (gsize) G_MAXSSIZE));

      if (w < 0)
        {
          if (errno == EINTR)
            continue;
          *errsv = errno;
          return FALSE;
        }
      data += w;
      n -= (gsize) w;
    }
  return TRUE;
}

static gboolean
atomic_flush (DdpmAtomicFile *file, GError **error)
{
  int errsv = 0;

  if (file->buffered > 0 && !write_all (file->fd, file->buffer, file->buffered, &errsv))
    {
      set_write_error (error, file, errsv);
      return FALSE;
    }
  file->buffered = 0;
  return TRUE;
}

gboolean
ddpm_atomic_file_write (DdpmAtomicFile *file, const void *data, gsize n, GError **error)
{
  g_return_val_if_fail (file != NULL, FALSE);
  g_return_val_if_fail (data != NULL || n == 0, FALSE);

  if (file->buffered + n <= ATOMIC_BUFFER_SIZE)
    {
      if (n > 0)
        memcpy (file->buffer + file->buffered, data, n);
      file->buffered += n;
      return TRUE;
    }
  if (!atomic_flush (file, error))
    return FALSE;
  if (n <= ATOMIC_BUFFER_SIZE)
    {
      memcpy (file->buffer, data, n);
      file->buffered = n;
      return TRUE;
    }

  int errsv = 0;
  if (!write_all (file->fd, data, n, &errsv))
    {
      set_write_error (error, file, errsv);
      return FALSE;
    }
  return TRUE;
}

void
ddpm_atomic_file_abort (DdpmAtomicFile *file)
{
  if (file == NULL)
    return;
  if (file->fd >= 0)
    close (file->fd);
  if (file->tmp_path)
    g_unlink (file->tmp_path);
  g_free (file->buffer);
  g_free (file->tmp_path);
  g_free (file->display_name);
  g_free (file->path);
  g_free (file);
}

gboolean
ddpm_atomic_file_commit (DdpmAtomicFile *file, GError **error)
{
  g_return_val_if_fail (file != NULL, FALSE);

  if (!atomic_flush (file, error))
    goto fail;
  /* Data on disk before the rename makes it visible: otherwise a crash
   * could leave the new name pointing at an empty file. */
  if (fsync (file->fd) != 0)
    {
      set_write_error (error, file, errno);
      goto fail;
    }
  int fd = file->fd;
  file->fd = -1;
  if (close (fd) != 0)
    {
      set_write_error (error, file, errno);
      goto fail;
    }
  if (g_rename (file->tmp_path, file->path) != 0)
    {
      set_write_error (error, file, errno);
      goto fail;
    }

  /* Make the rename itself durable; failure here loses nothing that a
   * reader could see, so it is not an error. */
  char *dir = g_path_get_dirname (file->path);
  int dfd = open (dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0)
    {
      fsync (dfd);
      close (dfd);
    }
  g_free (dir);

  g_free (file->tmp_path);
  file->tmp_path = NULL;   /* renamed: nothing to remove */
  ddpm_atomic_file_abort (file);
  return TRUE;

fail:
  ddpm_atomic_file_abort (file);
  return FALSE;
}
