/* mpi/test-mpi.c: `ddpm train` under mpirun (suite mpi, built with MPI only).
 *
 * On loopback, K processes on this machine (--oversubscribe: it may have
 * fewer cores).  What is checked:
 *   - K = 1 under mpirun writes the same bytes as a plain run (the comm
 *     path adds nothing); K = 2 run twice writes the same bytes (the sum's
 *     order is fixed, timing does not enter);
 *   - K = 2 and 4 reach the one-process weights after 50 steps within the
 *     bound below, and really split the work (rank 0's statistics line);
 *   - a checkpoint written by K = 2 resumes with K = 4 to the same weights;
 *   - kill -9 of one process ends the job (non-zero, bounded time) with
 *     mpirun's message, and the last checkpoint loads and resumes.
 *
 * THE BOUND.  The processes sum their shares' gradients; one process sums
 * the whole batch inside its GEMMs: the same numbers grouped differently,
 * so the gradients differ by float rounding (~1e-7 relative).  Adam
 * divides by √v, which turns that into a visible change only where a
 * gradient is near zero and its sign flips; each such element is off by
 * at most a few steps of lr.  So, after 50 steps at lr = 1e-3 (measured
 * on a 1.1 M-parameter tiny UNet at 16², batch 4):
 *   RMS difference of the weights ≤ 5e-4   (measured 2.2e-5 for K = 2,
 *                                            7.1e-5 for K = 4)
 *   largest difference ≤ 10·lr = 1e-2       (measured 1.2e-3, 1.6e-3)
 * A process that trains on its own share only (no sum) lands at RMS 9.7e-3
 * and largest 7.8e-2: outside both, twentyfold and eightfold.
 */
#include <math.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <glib/gstdio.h>

#include "ddpm.h"
#include "train.h"
#include "dir-helpers.h"

#define LR          "1e-3"
#define RMS_BOUND   5e-4
#define MAX_BOUND   1e-2
/* mpirun must end this long after a process died (measured ~1 s) */
#define DEATH_TIMEOUT_S 60

static char *tmpdir;
static char *data_path;
static const char *ddpm;
static char *mpirun;

/* mpirun comes with openmpi-bin, which a build against libopenmpi-dev may
 * lack: then the tests are skipped, saying why. */
static gboolean
have_mpirun (void)
{
  if (mpirun && ddpm)
    return TRUE;
  g_test_skip (ddpm ? "no mpirun (install openmpi-bin)" : "DDPM_CLI not set");
  return FALSE;
}

static char *
path (const char *file)
{
  return g_build_filename (tmpdir, file, NULL);
}

/* argv for `[mpirun -np K] ddpm train DATA <small run> --steps N --out OUT
 * [extra…]`: K = 0 runs ddpm alone. */
static GPtrArray *
train_argv (int K, int steps, const char *out, const char *extra1, const char *extra2)
{
  GPtrArray *a = g_ptr_array_new_with_free_func (g_free);

  if (K > 0)
    {
      g_ptr_array_add (a, g_strdup (mpirun));
      g_ptr_array_add (a, g_strdup ("--oversubscribe"));
      /* this machine's cores are shared: no binding of ranks to cores */
      g_ptr_array_add (a, g_strdup ("--bind-to"));
      g_ptr_array_add (a, g_strdup ("none"));
      g_ptr_array_add (a, g_strdup ("-np"));
      g_ptr_array_add (a, g_strdup_printf ("%d", K));
    }
  const char *fixed[] = { ddpm, "train", data_path, "--batch", "4",
                          "--warmup", "0", "--lr", LR, "--threads", "1" };
  for (gsize i = 0; i < G_N_ELEMENTS (fixed); i++)
    g_ptr_array_add (a, g_strdup (fixed[i]));
  /* a resumed training takes these from its checkpoint (and refuses them) */
  if (!extra1 || strcmp (extra1, "--resume") != 0)
    {
      const char *arch[] = { "--size", "16", "--seed", "3" };
      for (gsize i = 0; i < G_N_ELEMENTS (arch); i++)
        g_ptr_array_add (a, g_strdup (arch[i]));
    }
  g_ptr_array_add (a, g_strdup ("--steps"));
  g_ptr_array_add (a, g_strdup_printf ("%d", steps));
  g_ptr_array_add (a, g_strdup ("--out"));
  g_ptr_array_add (a, path (out));
  if (extra1)
    g_ptr_array_add (a, g_strdup (extra1));
  if (extra2)
    g_ptr_array_add (a, g_strdup (extra2));
  g_ptr_array_add (a, NULL);
  return a;
}

/* Run to the end; returns the exit status, stderr in *err. */
static int
run (GPtrArray *argv, char **err)
{
  GError *error = NULL;
  int wait_status;

  g_spawn_sync (NULL, (char **) argv->pdata, NULL, G_SPAWN_STDOUT_TO_DEV_NULL,
                NULL, NULL, NULL, err, &wait_status, &error);
  g_assert_no_error (error);
  g_ptr_array_unref (argv);
  return WIFEXITED (wait_status) ? WEXITSTATUS (wait_status) : 128 + WTERMSIG (wait_status);
}

static void
train_ok (int K, int steps, const char *out, const char *extra1, const char *extra2)
{
  char *err = NULL;
  int status = run (train_argv (K, steps, out, extra1, extra2), &err);

  if (status != 0)
    g_printerr ("%s", err);
  g_assert_cmpint (status, ==, 0);
  /* rank 0's line (DDPM_MPI_STATS): K processes summed gradients */
  if (K > 1)
    {
      char *line = g_strdup_printf ("MPI: %d processes, ", K);
      g_assert_nonnull (strstr (err, line));
      g_free (line);
    }
  g_free (err);
}

typedef struct
{
  float *params, *m, *v;
  gint64 step;
  gsize  n;
} Weights;

static void
weights_read (Weights *w, const char *file)
{
  char *ckpt = path (file);
  DdpmUNetConfig c;
  DdpmScheduleKind kind;
  DdpmTrainState state;
  int T;
  GError *error = NULL;

  g_assert_true (ddpm_checkpoint_read (ckpt, &c, &kind, &T, NULL, NULL, NULL, NULL, NULL,
                                       NULL, &error));
  g_assert_no_error (error);
  DdpmUNet *u = ddpm_unet_new (&c, &error);
  g_assert_no_error (error);
  w->n = ddpm_unet_n_params (u);
  w->params = g_new (float, w->n);
  w->m = g_new (float, w->n);
  w->v = g_new (float, w->n);
  float *ema = g_new (float, w->n);
  g_assert_true (ddpm_checkpoint_read (ckpt, &c, &kind, &T, u, w->params, w->m, w->v, ema,
                                       &state, &error));
  g_assert_no_error (error);
  w->step = state.step;
  g_free (ema);
  ddpm_unet_free (u);
  g_free (ckpt);
}

static void
weights_clear (Weights *w)
{
  g_free (w->params);
  g_free (w->m);
  g_free (w->v);
}

/* The two checkpoints' raw weights within the bound of the header. */
static void
assert_close (const char *a_file, const char *b_file)
{
  Weights a, b;
  double sq = 0, max = 0;

  weights_read (&a, a_file);
  weights_read (&b, b_file);
  g_assert_cmpuint (a.n, ==, b.n);
  g_assert_cmpint (a.step, ==, b.step);
  for (gsize i = 0; i < a.n; i++)
    {
      double d = (double) a.params[i] - b.params[i];
      sq += d * d;
      max = MAX (max, fabs (d));
    }
  double rms = sqrt (sq / a.n);
  g_test_message ("%s vs %s: RMS %.3g, largest %.3g", a_file, b_file, rms, max);
  g_assert_cmpfloat (rms, <=, RMS_BOUND);
  g_assert_cmpfloat (max, <=, MAX_BOUND);
  weights_clear (&a);
  weights_clear (&b);
}

static void
assert_same_bytes (const char *a_file, const char *b_file)
{
  char *a_path = path (a_file), *b_path = path (b_file), *a, *b;
  gsize a_len, b_len;

  g_assert_true (g_file_get_contents (a_path, &a, &a_len, NULL));
  g_assert_true (g_file_get_contents (b_path, &b, &b_len, NULL));
  g_assert_cmpmem (a, a_len, b, b_len);
  g_free (a);
  g_free (b);
  g_free (a_path);
  g_free (b_path);
}

/* The one-process reference, trained once for the tests that need it. */
static void
reference (void)
{
  static gboolean done;
  char *ckpt = path ("one.ckpt.safetensors");

  if (!done || !g_file_test (ckpt, G_FILE_TEST_EXISTS))
    train_ok (0, 50, "one.safetensors", NULL, NULL);
  done = TRUE;
  g_free (ckpt);
}

static void
test_equal (void)
{
  if (!have_mpirun ())
    return;
  reference ();
  train_ok (1, 50, "k1.safetensors", NULL, NULL);
  assert_same_bytes ("one.safetensors", "k1.safetensors");
  assert_same_bytes ("one.ckpt.safetensors", "k1.ckpt.safetensors");

  train_ok (2, 50, "k2.safetensors", NULL, NULL);
  train_ok (2, 50, "k2again.safetensors", NULL, NULL);
  assert_same_bytes ("k2.ckpt.safetensors", "k2again.ckpt.safetensors");
  assert_close ("one.ckpt.safetensors", "k2.ckpt.safetensors");

  train_ok (4, 50, "k4.safetensors", NULL, NULL);
  assert_close ("one.ckpt.safetensors", "k4.ckpt.safetensors");
}

/* Half with two processes, the rest with four, then with one. */
static void
test_resume_other_k (void)
{
  if (!have_mpirun ())
    return;
  char *ckpt = path ("half.ckpt.safetensors");

  reference ();
  train_ok (2, 25, "half.safetensors", NULL, NULL);
  train_ok (4, 50, "resumed4.safetensors", "--resume", ckpt);
  assert_close ("one.ckpt.safetensors", "resumed4.ckpt.safetensors");
  train_ok (0, 50, "resumed1.safetensors", "--resume", ckpt);
  assert_close ("one.ckpt.safetensors", "resumed1.ckpt.safetensors");
  g_free (ckpt);
}

/* The pid of mpirun's child that is rank `rank` (from its environment). */
static GPid
find_rank (GPid launcher, int rank)
{
  GDir *proc = g_dir_open ("/proc", 0, NULL);
  char *want = g_strdup_printf ("OMPI_COMM_WORLD_RANK=%d", rank);
  const char *name;
  GPid found = 0;

  g_assert_nonnull (proc);
  while (!found && (name = g_dir_read_name (proc)))
    {
      char *stat_path = g_build_filename ("/proc", name, "stat", NULL);
      char *env_path = g_build_filename ("/proc", name, "environ", NULL);
      char *stat = NULL, *env = NULL;
      gsize env_len = 0;

      if (g_ascii_isdigit (name[0])
          && g_file_get_contents (stat_path, &stat, NULL, NULL)
          && g_file_get_contents (env_path, &env, &env_len, NULL))
        {
          /* "pid (comm) state ppid …": comm may hold spaces, so after ')' */
          const char *rp = strrchr (stat, ')');
          int ppid = 0;
          if (rp && sscanf (rp + 2, "%*c %d", &ppid) == 1 && ppid == launcher)
            for (gsize i = 0; i < env_len; i += strlen (env + i) + 1)
              if (strcmp (env + i, want) == 0)
                found = (GPid) g_ascii_strtoll (name, NULL, 10);
        }
      g_free (stat);
      g_free (env);
      g_free (stat_path);
      g_free (env_path);
    }
  g_dir_close (proc);
  g_free (want);
  return found;
}

static void
test_killed_rank (void)
{
  if (!have_mpirun ())
    return;
  GPtrArray *argv = train_argv (2, 1000000, "killed.safetensors",
                                "--checkpoint-every", "5");
  char *ckpt = path ("killed.ckpt.safetensors");
  GError *error = NULL;
  GPid launcher, victim = 0;
  int err_fd, wait_status = 0;

  g_assert_true (g_spawn_async_with_pipes (NULL, (char **) argv->pdata, NULL,
                                           G_SPAWN_DO_NOT_REAP_CHILD
                                           | G_SPAWN_STDOUT_TO_DEV_NULL,
                                           NULL, NULL, &launcher, NULL, NULL, &err_fd,
                                           &error));
  g_assert_no_error (error);
  g_ptr_array_unref (argv);

  /* until the second checkpoint (step 10): the first was whole */
  for (int i = 0; i < 1200; i++)
    {
      Weights w = { 0 };
      if (g_file_test (ckpt, G_FILE_TEST_EXISTS))
        {
          weights_read (&w, "killed.ckpt.safetensors");
          weights_clear (&w);
          if (w.step >= 10)
            break;
        }
      g_usleep (100000);
    }
  g_assert_true (g_file_test (ckpt, G_FILE_TEST_EXISTS));
  victim = find_rank (launcher, 1);
  g_assert_cmpint (victim, >, 0);
  g_assert_cmpint (kill (victim, SIGKILL), ==, 0);

  /* the job must end, not hang */
  gint64 deadline = g_get_monotonic_time () + DEATH_TIMEOUT_S * G_USEC_PER_SEC;
  pid_t done = 0;
  while ((done = waitpid (launcher, &wait_status, WNOHANG)) == 0
         && g_get_monotonic_time () < deadline)
    g_usleep (50000);
  if (done == 0)
    {
      kill (launcher, SIGKILL);
      waitpid (launcher, &wait_status, 0);
      g_assert_not_reached ();   /* the job hung */
    }
  g_assert_false (WIFEXITED (wait_status) && WEXITSTATUS (wait_status) == 0);

  /* mpirun says which process died */
  GIOChannel *channel = g_io_channel_unix_new (err_fd);
  char *err = NULL;
  g_io_channel_set_close_on_unref (channel, TRUE);
  g_io_channel_read_to_end (channel, &err, NULL, NULL);
  g_io_channel_unref (channel);
  g_assert_nonnull (strstr (err, "rank 1"));
  g_assert_nonnull (strstr (err, "signal 9"));
  g_free (err);

  /* the last checkpoint is whole and resumes, with another K */
  Weights w;
  weights_read (&w, "killed.ckpt.safetensors");
  g_assert_cmpint (w.step, >=, 10);
  g_assert_cmpint (w.step % 5, ==, 0);
  char *more = g_strdup_printf ("%" G_GINT64_FORMAT, w.step + 2);
  char *out = path ("killed-resumed.safetensors");
  const char *resume_argv[] = { mpirun, "--oversubscribe", "--bind-to", "none", "-np", "4",
                                ddpm, "train", data_path, "--resume", ckpt, "--steps", more,
                                "--batch", "4", "--threads", "1", "--out", out, NULL };
  g_spawn_sync (NULL, (char **) resume_argv, NULL,
                G_SPAWN_STDOUT_TO_DEV_NULL | G_SPAWN_STDERR_TO_DEV_NULL,
                NULL, NULL, NULL, NULL, &wait_status, &error);
  g_assert_no_error (error);
  g_assert_true (WIFEXITED (wait_status) && WEXITSTATUS (wait_status) == 0);
  Weights r;
  weights_read (&r, "killed-resumed.ckpt.safetensors");
  g_assert_cmpint (r.step, ==, w.step + 2);
  weights_clear (&r);
  weights_clear (&w);
  g_free (more);
  g_free (out);
  g_free (ckpt);
}

int
main (int argc, char **argv)
{
  int status;

  g_test_init (&argc, &argv, NULL);
  ddpm = g_getenv ("DDPM_CLI");
  mpirun = g_find_program_in_path ("mpirun");
  data_path = g_test_build_filename (G_TEST_DIST, "..", "data", "fresh-flower.png", NULL);
  tmpdir = g_dir_make_tmp ("ddpm-test-mpi-XXXXXX", NULL);
  g_assert_nonnull (tmpdir);
  /* Open MPI refuses root without these; rank 0's statistics line */
  g_setenv ("OMPI_ALLOW_RUN_AS_ROOT", "1", TRUE);
  g_setenv ("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", TRUE);
  g_setenv ("DDPM_MPI_STATS", "1", TRUE);

  g_test_add_func ("/mpi/train/equal", test_equal);
  g_test_add_func ("/mpi/train/resume-other-k", test_resume_other_k);
  g_test_add_func ("/mpi/train/killed-rank", test_killed_rank);
  status = g_test_run ();

  test_remove_tree (tmpdir);
  g_free (tmpdir);
  g_free (data_path);
  g_free (mpirun);
  return status;
}
