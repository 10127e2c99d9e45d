/* test-memory.c: the memory bound of `ddpm renoise`, measured (suite
 * slow).  The README states it: with the default model, a 4096 × 4096
 * renoise peaks at most 1 GiB and an 8000 × 6000 one under 2 GiB.
 *
 * What is measured is the peak resident set of a child `ddpm renoise`
 * process, from the kernel's own account (wait4's rusage, ru_maxrss): the
 * whole program, input decoding and PNG encoding included, not a guess
 * from what the code allocates.  Time is not measured.
 *
 * One denoising step is enough.  ddpm_img2img allocates its state (x_t,
 * ε, the tile batches) once before the loop, and each step reuses them;
 * the denoiser's activations for a batch of tiles are the same every
 * call.  So the peak is reached in the first step, and more steps only
 * repeat it: /memory/renoise/steps checks exactly that on a smaller
 * image (1 and 3 steps peak within a few percent).  A strength of 0.02
 * (t0 = 20 of 1000) keeps the single step a real step of the sampler.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <glib.h>
#include <glib/gstdio.h>

#include "ddpm.h"

#define MIB ((guint64) 1 << 20)

static char *tmp_dir;

/* A width × height RGB picture (smooth gradients and a ripple, so the PNG
 * has real content to decode and encode) saved as an 8-bit PNG. */
static char *
make_input (int width, int height)
{
  char *name = g_strdup_printf ("in-%dx%d.png", width, height);
  char *path = g_build_filename (tmp_dir, name, NULL);
  DdpmImage *image = ddpm_image_new (width, height, 3, FALSE);
  gsize plane = (gsize) width * height;
  GError *error = NULL;

  for (int y = 0; y < height; y++)
    for (int x = 0; x < width; x++)
      {
        gsize i = (gsize) y * width + x;
        image->pixels[i] = (float) x / width;
        image->pixels[plane + i] = (float) y / height;
        image->pixels[2 * plane + i] = (float) ((x * 7 + y * 3) % 64) / 63.0f;
      }
  g_assert_true (ddpm_image_save_png (image, path, 8, &error));
  g_assert_no_error (error);
  ddpm_image_free (image);
  g_free (name);
  return path;
}

static void
stderr_to_file (gpointer data)
{
  int fd = open (data, O_WRONLY | O_CREAT | O_TRUNC, 0644);

  if (fd >= 0)
    {
      dup2 (fd, 2);
      close (fd);
    }
}

/* Run `ddpm renoise` on `in` with the default model and `steps` steps;
 * assert it succeeds; return its peak RSS in bytes. */
static guint64
renoise_peak (const char *in, int steps)
{
  char *model = g_test_build_filename (G_TEST_DIST, "..", "models", "default.safetensors",
                                       NULL);
  char *out = g_build_filename (tmp_dir, "out.png", NULL);
  char *log = g_build_filename (tmp_dir, "stderr.txt", NULL);
  char *steps_arg = g_strdup_printf ("%d", steps);
  const char *cli = g_getenv ("DDPM_CLI");
  char *argv[] = { (char *) cli, "renoise", "--model", model, "--steps", steps_arg,
                   "--strength", "0.02", (char *) in, out, NULL };
  struct rusage ru;
  GError *error = NULL;
  GPid pid;
  int status;

  g_assert_nonnull (cli);
  g_assert_true (g_spawn_async (NULL, argv, NULL,
                                G_SPAWN_DO_NOT_REAP_CHILD | G_SPAWN_STDOUT_TO_DEV_NULL,
                                stderr_to_file, log, &pid, &error));
  g_assert_no_error (error);
  memset (&ru, 0, sizeof ru);
  while (wait4 (pid, &status, 0, &ru) < 0)
    g_assert_cmpint (errno, ==, EINTR);
  g_spawn_close_pid (pid);
  if (!WIFEXITED (status) || WEXITSTATUS (status) != 0)
    {
      char *text = NULL;
      g_file_get_contents (log, &text, NULL, NULL);
      g_error ("ddpm renoise %s failed (status %d): %s", in, status, text ? text : "");
    }
  g_assert_true (g_file_test (out, G_FILE_TEST_IS_REGULAR));
  g_unlink (out);
  g_unlink (log);
  g_free (model);
  g_free (out);
  g_free (log);
  g_free (steps_arg);
  return (guint64) ru.ru_maxrss * 1024;   /* Linux: kilobytes */
}

static void
check_bound (int width, int height, guint64 bound, gboolean inclusive)
{
  char *in = make_input (width, height);
  guint64 peak = renoise_peak (in, 1);
  /* the image's float planes: one copy of what any front end holds */
  guint64 planes = (guint64) width * height * 3 * sizeof (float);

  g_test_message ("renoise %d × %d, 1 step: peak RSS %" G_GUINT64_FORMAT " MiB (%.2f× the "
                  "image's float planes, %" G_GUINT64_FORMAT " MiB); bound %s %"
                  G_GUINT64_FORMAT " MiB", width, height, peak / MIB,
                  (double) peak / (double) planes, planes / MIB, inclusive ? "≤" : "<",
                  bound / MIB);
  if (inclusive)
    g_assert_cmpuint (peak, <=, bound);
  else
    g_assert_cmpuint (peak, <, bound);
  g_unlink (in);
  g_free (in);
}

static void
test_4096 (void)
{
  check_bound (4096, 4096, 1024 * MIB, TRUE);
}

static void
test_8000x6000 (void)
{
  check_bound (8000, 6000, 2048 * MIB, FALSE);
}

/* The step count does not move the peak (see the top). */
static void
test_steps (void)
{
  char *in = make_input (1024, 1024);
  guint64 one = renoise_peak (in, 1), three = renoise_peak (in, 3);

  g_test_message ("renoise 1024 × 1024: peak RSS %" G_GUINT64_FORMAT " MiB with 1 step, %"
                  G_GUINT64_FORMAT " MiB with 3", one / MIB, three / MIB);
  g_assert_cmpuint (three, <=, one + one / 20);
  g_assert_cmpuint (one, <=, three + three / 20);
  g_unlink (in);
  g_free (in);
}

int
main (int argc, char **argv)
{
  GError *error = NULL;
  int status;

  g_test_init (&argc, &argv, NULL);
  tmp_dir = g_dir_make_tmp ("ddpm-memory-XXXXXX", &error);
  g_assert_no_error (error);
  g_test_add_func ("/memory/renoise/steps", test_steps);
  g_test_add_func ("/memory/renoise/4096x4096", test_4096);
  g_test_add_func ("/memory/renoise/8000x6000", test_8000x6000);
  status = g_test_run ();
  g_rmdir (tmp_dir);
  g_free (tmp_dir);
  return status;
}
