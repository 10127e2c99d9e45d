/* test-atomic-file.c: the engine's one atomic file writer (atomic-file.c),
 * which the tensor writer and the PNG writer share.
 *
 * Written data arrives whole (small writes, and one larger than the
 * write buffer); while the file is open only a hidden temporary exists
 * beside the destination; abort, a failed write (RLIMIT_FSIZE standing in
 * for a full disk) and a failed rename (onto a folder) leave the old file
 * as it was and no temporary behind; a missing folder fails at once with
 * an error naming the file.  Temporaries left by killed writers (SIGKILL
 * mid-write) are removed by the next write to the same destination, but
 * never a live writer's (locked or fresh) nor another file's.  Its users are checked through it too: the
 * tensor writer in test-safetensors.c, the PNG writer in test-image.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <glib/gstdio.h>

#include "atomic-file.h"
#include "dir-helpers.h"

static char *
make_tmpdir (void)
{
  GError *error = NULL;
  char *dir = g_dir_make_tmp ("ddpm-atomic-XXXXXX", &error);

  g_assert_no_error (error);
  return dir;
}

/* `n` bytes of a pattern that tells offsets apart. */
static guint8 *
pattern (gsize n, guint8 salt)
{
  guint8 *p = g_malloc (n);

  for (gsize i = 0; i < n; i++)
    p[i] = (guint8) (i * 131 + i / 251 + salt);
  return p;
}

static void
assert_contents (const char *path, const guint8 *want, gsize n)
{
  char *got = NULL;
  gsize len = 0;
  GError *error = NULL;

  g_assert_true (g_file_get_contents (path, &got, &len, &error));
  g_assert_no_error (error);
  g_assert_cmpmem (got, len, want, n);
  g_free (got);
}

/* Pieces of every size, one of them larger than the write buffer: the
 * file holds exactly their concatenation, created like any new file
 * (0666 & ~umask, not mkstemp's private 0600). */
static void
test_write_and_commit (void)
{
  char *dir = make_tmpdir ();
  char *path = g_build_filename (dir, "out.bin", NULL);
  const gsize sizes[] = { 0, 1, 7, 4096, 600 * 1024, 3, 256 * 1024, 11 };
  gsize total = 0;
  GError *error = NULL;

  for (gsize i = 0; i < G_N_ELEMENTS (sizes); i++)
    total += sizes[i];
  guint8 *data = pattern (total, 5);

  DdpmAtomicFile *file = ddpm_atomic_file_new (path, &error);
  g_assert_no_error (error);
  g_assert_nonnull (file);
  gsize at = 0;
  for (gsize i = 0; i < G_N_ELEMENTS (sizes); i++)
    {
      g_assert_true (ddpm_atomic_file_write (file, data + at, sizes[i], &error));
      g_assert_no_error (error);
      at += sizes[i];
    }

  /* Until commit: no destination, one hidden temporary named after it. */
  char *listing = test_list_dir (dir);
  g_assert_false (g_file_test (path, G_FILE_TEST_EXISTS));
  g_assert_true (g_str_has_prefix (listing, ".out.bin."));
  g_assert_null (strchr (listing, ' '));
  g_free (listing);

  g_assert_true (ddpm_atomic_file_commit (file, &error));
  g_assert_no_error (error);
  assert_contents (path, data, total);
  listing = test_list_dir (dir);
  g_assert_cmpstr (listing, ==, "out.bin");
  g_free (listing);

  mode_t mask = umask (022);
  umask (mask);
  GStatBuf st;
  g_assert_cmpint (g_stat (path, &st), ==, 0);
  g_assert_cmpint (st.st_mode & 0777, ==, 0666 & ~mask);

  g_free (data);
  g_free (path);
  test_remove_tree (dir);
  g_free (dir);
}

/* Every failure leaves the old file and nothing else. */
static void
test_failures_keep_old_file (void)
{
  char *dir = make_tmpdir ();
  char *path = g_build_filename (dir, "model.bin", NULL);
  char *sub = g_build_filename (dir, "sub", NULL);
  char *missing = g_build_filename (dir, "no-such-folder", "model.bin", NULL);
  guint8 *old = pattern (1000, 1), *big = pattern (1024 * 1024, 2);
  GError *error = NULL;
  char *listing;

  DdpmAtomicFile *file = ddpm_atomic_file_new (path, &error);
  g_assert_true (ddpm_atomic_file_write (file, old, 1000, &error));
  g_assert_true (ddpm_atomic_file_commit (file, &error));
  g_assert_no_error (error);

  /* Abort after writing: the temporary goes, the old file stays. */
  file = ddpm_atomic_file_new (path, &error);
  g_assert_true (ddpm_atomic_file_write (file, big, 1024 * 1024, &error));
  ddpm_atomic_file_abort (file);
  assert_contents (path, old, 1000);
  listing = test_list_dir (dir);
  g_assert_cmpstr (listing, ==, "model.bin");
  g_free (listing);

  /* A folder that does not exist: refused at once, naming the file. */
  g_assert_null (ddpm_atomic_file_new (missing, &error));
  g_assert_error (error, DDPM_ERROR, DDPM_ERROR_IO);
  g_assert_nonnull (strstr (error->message, "no-such-folder"));
  g_assert_nonnull (strstr (error->message, g_strerror (ENOENT)));
  g_clear_error (&error);

  /* Onto a folder: everything is written, the rename fails. */
  g_assert_cmpint (g_mkdir (sub, 0755), ==, 0);
  file = ddpm_atomic_file_new (sub, &error);
  g_assert_no_error (error);
  g_assert_true (ddpm_atomic_file_write (file, old, 10, &error));
  g_assert_false (ddpm_atomic_file_commit (file, &error));
  g_assert_error (error, DDPM_ERROR, DDPM_ERROR_IO);
  g_clear_error (&error);
  g_assert_true (g_file_test (sub, G_FILE_TEST_IS_DIR));
  listing = test_list_dir (dir);
  g_assert_cmpstr (listing, ==, "model.bin sub");
  g_free (listing);

  /* A write cut short (RLIMIT_FSIZE stands in for a full disk), in the
   * write itself or in commit's flush: the old file keeps its bytes. */
  for (int in_commit = 0; in_commit <= 1; in_commit++)
    {
      struct rlimit old_limit, limit;
      gboolean ok;

      g_assert_cmpint (getrlimit (RLIMIT_FSIZE, &old_limit), ==, 0);
      signal (SIGXFSZ, SIG_IGN);
      limit = old_limit;
      limit.rlim_cur = in_commit ? 16 : 64 * 1024;
      g_assert_cmpint (setrlimit (RLIMIT_FSIZE, &limit), ==, 0);
      file = ddpm_atomic_file_new (path, &error);
      g_assert_no_error (error);
      if (in_commit)   /* buffered: the failure comes with the flush */
        ok = ddpm_atomic_file_write (file, big, 1000, &error)
             && ddpm_atomic_file_commit (file, &error);
      else
        {
          ok = ddpm_atomic_file_write (file, big, 1024 * 1024, &error);
          g_assert_false (ok);
          ddpm_atomic_file_abort (file);
        }
      g_assert_cmpint (setrlimit (RLIMIT_FSIZE, &old_limit), ==, 0);
      signal (SIGXFSZ, SIG_DFL);
      g_assert_false (ok);
      g_assert_error (error, DDPM_ERROR, DDPM_ERROR_IO);
      g_assert_nonnull (strstr (error->message, "model.bin"));
      g_assert_nonnull (strstr (error->message, g_strerror (EFBIG)));
      g_clear_error (&error);
      assert_contents (path, old, 1000);
      listing = test_list_dir (dir);
      g_assert_cmpstr (listing, ==, "model.bin sub");
      g_free (listing);
    }

  g_free (old);
  g_free (big);
  g_free (missing);
  g_free (sub);
  g_free (path);
  test_remove_tree (dir);
  g_free (dir);
}

/* Make `path` look untouched for an hour. */
static void
backdate (const char *path)
{
  struct timespec ts[2];

  clock_gettime (CLOCK_REALTIME, &ts[0]);
  ts[0].tv_sec -= 3600;
  ts[1] = ts[0];
  g_assert_cmpint (utimensat (AT_FDCWD, path, ts, 0), ==, 0);
}

static void
make_file (const char *dir, const char *name, gboolean old)
{
  char *p = g_build_filename (dir, name, NULL);

  g_assert_true (g_file_set_contents (p, "partial", -1, NULL));
  if (old)
    backdate (p);
  g_free (p);
}

static void
write_small (const char *path)
{
  GError *error = NULL;
  DdpmAtomicFile *f = ddpm_atomic_file_new (path, &error);

  g_assert_no_error (error);
  g_assert_true (ddpm_atomic_file_write (f, "new", 3, &error));
  g_assert_true (ddpm_atomic_file_commit (f, &error));
  g_assert_no_error (error);
}

static void
test_stale_temporaries (void)
{
  char *dir = make_tmpdir ();
  char *path = g_build_filename (dir, "m.ckpt.safetensors", NULL);
  char *locked = g_build_filename (dir, ".m.ckpt.safetensors.Lock01", NULL);

  make_file (dir, ".m.ckpt.safetensors.aB3xY9", TRUE);    /* stale: removed */
  make_file (dir, ".m.ckpt.safetensors.Zz0000", TRUE);    /* stale: removed */
  make_file (dir, ".m.ckpt.safetensors.fresh1", FALSE);   /* maybe being written */
  make_file (dir, ".m.ckpt.safetensors.Lock01", TRUE);    /* a live writer's */
  make_file (dir, ".m.ckpt.safetensors.long123", TRUE);   /* not the pattern */
  make_file (dir, ".m.safetensors.aB3xY9", TRUE);         /* another file's */
  make_file (dir, "m.ckpt.safetensors.aB3xY9", TRUE);     /* not hidden */

  /* A separate open file description: conflicts like another process's. */
  int fd = open (locked, O_RDONLY | O_CLOEXEC);
  g_assert_cmpint (fd, >=, 0);
  g_assert_cmpint (flock (fd, LOCK_EX | LOCK_NB), ==, 0);

  write_small (path);
  char *names = test_list_dir (dir);
  g_assert_cmpstr (names, ==, ".m.ckpt.safetensors.Lock01 .m.ckpt.safetensors.fresh1 "
                   ".m.ckpt.safetensors.long123 .m.safetensors.aB3xY9 "
                   "m.ckpt.safetensors m.ckpt.safetensors.aB3xY9");
  g_free (names);

  /* Its writer gone (lock released), the next write removes it. */
  close (fd);
  write_small (path);
  names = test_list_dir (dir);
  g_assert_cmpstr (names, ==, ".m.ckpt.safetensors.fresh1 .m.ckpt.safetensors.long123 "
                   ".m.safetensors.aB3xY9 m.ckpt.safetensors m.ckpt.safetensors.aB3xY9");
  g_free (names);

  g_free (locked);
  g_free (path);
  test_remove_tree (dir);
  g_free (dir);
}

/* A writer killed mid-write (SIGKILL: no cleanup runs) leaves its
 * temporary; while it lives, another write keeps it; once it is dead and
 * the temporary idle, the next write removes it. */
static void
test_killed_writer (void)
{
  char *dir = make_tmpdir ();
  char *path = g_build_filename (dir, "m.ckpt.safetensors", NULL);
  int ready[2];

  g_assert_cmpint (pipe (ready), ==, 0);
  pid_t pid = fork ();
  g_assert_cmpint (pid, >=, 0);
  if (pid == 0)
    {
      DdpmAtomicFile *f = ddpm_atomic_file_new (path, NULL);
      guint8 *data = pattern (1 << 20, 1);

      if (f == NULL || !ddpm_atomic_file_write (f, data, 1 << 20, NULL))
        _exit (1);
      if (write (ready[1], "r", 1) != 1)
        _exit (1);
      for (;;)
        pause ();
    }
  close (ready[1]);
  char c;
  g_assert_cmpint (read (ready[0], &c, 1), ==, 1);
  close (ready[0]);

  /* The writer alive, its temporary made to look old: kept (locked). */
  char *names = test_list_dir (dir);
  g_assert_true (g_str_has_prefix (names, ".m.ckpt.safetensors."));
  g_assert_cmpuint (strlen (names), ==, strlen (".m.ckpt.safetensors.XXXXXX"));
  char *tmp = g_build_filename (dir, names, NULL);
  backdate (tmp);
  write_small (path);
  g_assert_true (g_file_test (tmp, G_FILE_TEST_EXISTS));

  int status;
  kill (pid, SIGKILL);
  g_assert_cmpint (waitpid (pid, &status, 0), ==, pid);
  g_assert_true (WIFSIGNALED (status));
  g_assert_true (g_file_test (tmp, G_FILE_TEST_EXISTS));

  write_small (path);
  g_free (names);
  names = test_list_dir (dir);
  g_assert_cmpstr (names, ==, "m.ckpt.safetensors");

  g_free (names);
  g_free (tmp);
  g_free (path);
  test_remove_tree (dir);
  g_free (dir);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/engine/atomic-file/write-and-commit", test_write_and_commit);
  g_test_add_func ("/engine/atomic-file/failures-keep-old-file", test_failures_keep_old_file);
  g_test_add_func ("/engine/atomic-file/stale-temporaries", test_stale_temporaries);
  g_test_add_func ("/engine/atomic-file/killed-writer", test_killed_writer);
  return g_test_run ();
}
