/* test-gimp3.c: the GIMP 3 plug-in (plugin/gimp3) end to end, in the real
 * GIMP 3.0 in batch mode (gimp-console-3.0, Script-Fu 3).
 *
 * One GIMP session runs every scenario (a GIMP 3 start costs 20–90 s on a
 * loaded machine), each one `-b` command that loads an input PNG, calls a
 * procedure by its 2.10 name with Script-Fu 3's named arguments (the
 * model a path, the sampler a choice nick) and saves what came out; the
 * test cases then judge the files and the session's log.  The profile
 * ($DDPM_GIMP3_PROFILE, shared with the ui3 suite) is kept between runs,
 * so only the first run pays for GIMP's first start.  The session runs in German
 * (LANG=de_DE.UTF-8: trixie's glibc ignores LANGUAGE under C.UTF-8), so
 * the plug-in's errors must come out translated.
 *
 * The oracle for the pixels is the command line: `ddpm renoise` and
 * `ddpm denoise` run the same engine call on the same planes, so the
 * plug-in's output must equal theirs byte for byte (8-bit RGB input,
 * no selection).  GIMP 2.10's plug-in is held to the same CLI by
 * tests/gimp, hence the same Script-Fu in both GIMPs gives the same
 * pixels.
 *
 * Environment (meson): GIMP_CONSOLE, DDPM_CLI, DDPM_SOURCE_ROOT,
 * DDPM_BUILD_ROOT, DDPM_GIMP3_PROFILE, G_TEST_BUILDDIR.  The work folder stays in the build
 * directory for a look after a failure.
 */
#include "config.h"

#include <math.h>
#include <string.h>

#include <glib.h>
#include <glib/gstdio.h>
#include <png.h>

#define SIZE        64
#define STEPS       "10"
#define SEED        "7"
#define NOISE_SIGMA "0.098"   /* 25 levels of 255 */

static gchar *work_dir;
static gchar *model_path;     /* the default model, `ddpm train` on the photo */
static gchar *gimp_log;
static gboolean session_ok;

/* ------------------------------------------------------------------- PNGs */

typedef struct
{
  int     width, height;
  guint8 *rgba;
} Image;

static gchar *
work_file (const char *name)
{
  return g_build_filename (work_dir, name, NULL);
}

static Image *
image_load (const char *name)
{
  gchar *path = work_file (name);
  png_image png = { .version = PNG_IMAGE_VERSION };
  Image *image = NULL;

  if (png_image_begin_read_from_file (&png, path))
    {
      png.format = PNG_FORMAT_RGBA;
      image = g_new0 (Image, 1);
      image->width = png.width;
      image->height = png.height;
      image->rgba = g_malloc (PNG_IMAGE_SIZE (png));
      if (!png_image_finish_read (&png, NULL, image->rgba, 0, NULL))
        g_error ("%s: %s", path, png.message);
    }
  else
    g_test_fail_printf ("%s was not written (see %s)", path, gimp_log);
  g_free (path);
  return image;
}

static void
image_save (const Image *image, const char *name, gboolean alpha)
{
  gchar *path = work_file (name);
  png_image png = { .version = PNG_IMAGE_VERSION };
  gsize n = (gsize) image->width * image->height;
  guint8 *data = g_new (guint8, n * 4);
  int nc = alpha ? 4 : 3;

  png.width = image->width;
  png.height = image->height;
  png.format = alpha ? PNG_FORMAT_RGBA : PNG_FORMAT_RGB;
  for (gsize i = 0; i < n; i++)
    memcpy (data + i * nc, image->rgba + i * 4, nc);
  g_assert_true (png_image_write_to_file (&png, path, 0, data, 0, NULL));
  g_free (data);
  g_free (path);
}

static void
image_free (Image *image)
{
  if (image)
    g_free (image->rgba);
  g_free (image);
}

/* Over the pixels inside (or outside) the rectangle x0, y0, w, h (w 0:
 * the whole image): how many differ in colour, in alpha, and by how much. */
typedef struct
{
  gsize pixels, changed, alpha_changed;
  int   max_diff;
  gsize not_gray;    /* pixels of b with R, G, B not all equal */
} Diff;

static Diff
diff (const Image *a, const Image *b, int x0, int y0, int w, int h,
      gboolean inside)
{
  Diff d = { 0 };

  g_assert_cmpint (a->width, ==, b->width);
  g_assert_cmpint (a->height, ==, b->height);
  if (w == 0)
    w = a->width, h = a->height;
  for (int y = 0; y < a->height; y++)
    for (int x = 0; x < a->width; x++)
      {
        const guint8 *p = a->rgba + ((gsize) y * a->width + x) * 4;
        const guint8 *q = b->rgba + ((gsize) y * a->width + x) * 4;
        gboolean in = x >= x0 && x < x0 + w && y >= y0 && y < y0 + h;

        if (in != inside)
          continue;
        d.pixels++;
        d.changed += p[0] != q[0] || p[1] != q[1] || p[2] != q[2];
        d.alpha_changed += p[3] != q[3];
        d.not_gray += q[0] != q[1] || q[1] != q[2];
        for (int c = 0; c < 3; c++)
          d.max_diff = MAX (d.max_diff, abs (p[c] - q[c]));
      }
  return d;
}

/* ----------------------------------------------------------------- inputs */

/* A smooth synthetic photograph (gradients, a disc, a stripe pattern),
 * opaque; with alpha, a left-to-right alpha ramp. */
static void
make_photo (const char *name, gboolean alpha)
{
  Image im = { SIZE, SIZE, g_new (guint8, SIZE * SIZE * 4) };

  for (int y = 0; y < SIZE; y++)
    for (int x = 0; x < SIZE; x++)
      {
        guint8 *p = im.rgba + (y * SIZE + x) * 4;
        double disc = hypot (x - 40.0, y - 24.0) < 14.0 ? 1.0 : 0.0;

        p[0] = (guint8) (60 + 2.5 * x + 60 * disc);
        p[1] = (guint8) (40 + 2.0 * y + 40 * sin (x / 3.0));
        p[2] = (guint8) (180 - 1.5 * x - 50 * disc);
        p[3] = alpha ? (guint8) (64 + 3 * x) : 255;
      }
  image_save (&im, name, alpha);
  g_free (im.rgba);
}

/* The photo with Gaussian noise of 25 levels, seeded. */
static void
make_noisy (void)
{
  Image *im = image_load ("photo.png");
  GRand *rand = g_rand_new_with_seed (5);

  for (int i = 0; i < SIZE * SIZE * 4; i++)
    if (i % 4 != 3)
      {
        double u = g_rand_double (rand), v = g_rand_double (rand);
        double n = sqrt (-2.0 * log (1.0 - u)) * cos (2.0 * G_PI * v);

        im->rgba[i] = (guint8) CLAMP (lround (im->rgba[i] + 25.0 * n), 0, 255);
      }
  image_save (im, "noisy.png", FALSE);
  g_rand_free (rand);
  image_free (im);
}

/* Remove the PNGs a previous run left in `dir`. */
static void
rm_rf_png (const char *dir)
{
  GDir *d = g_dir_open (dir, 0, NULL);
  const char *name;

  while (d && (name = g_dir_read_name (d)))
    if (g_str_has_suffix (name, ".png"))
      {
        gchar *path = g_build_filename (dir, name, NULL);

        g_unlink (path);
        g_free (path);
      }
  if (d)
    g_dir_close (d);
}

static gboolean
run_cli (const char *const *args)
{
  GPtrArray *argv = g_ptr_array_new ();
  gchar *err = NULL;
  int status = -1;
  gboolean ok;

  g_ptr_array_add (argv, (gpointer) g_getenv ("DDPM_CLI"));
  for (int i = 0; args[i]; i++)
    g_ptr_array_add (argv, (gpointer) args[i]);
  g_ptr_array_add (argv, NULL);
  ok = g_spawn_sync (NULL, (char **) argv->pdata, NULL, G_SPAWN_STDOUT_TO_DEV_NULL,
                     NULL, NULL, NULL, &err, &status, NULL)
       && g_spawn_check_wait_status (status, NULL);
  if (!ok)
    g_test_message ("ddpm %s failed: %s", args[0], err ? err : "");
  g_free (err);
  g_ptr_array_free (argv, TRUE);
  return ok;
}

/* ---------------------------------------------------------------- session */

static gchar *
quoted (const char *name)
{
  gchar *path = g_path_is_absolute (name) ? g_strdup (name) : work_file (name);
  gchar *q = g_strdup_printf ("\"%s\"", path);

  g_free (path);
  return q;
}

/* Load `input`, run `body` with img and drw bound, save to `output`. */
static gchar *
scenario (const char *input, const char *body, const char *output)
{
  gchar *in = quoted (input), *out = quoted (output);
  gchar *cmd = g_strdup_printf (
    "(let* ((img (car (gimp-file-load RUN-NONINTERACTIVE %s)))"
    "       (drw (vector-ref (car (gimp-image-get-selected-drawables img)) 0)))"
    "  %s"
    "  (gimp-file-save RUN-NONINTERACTIVE img %s -1)"
    "  (gimp-image-delete img))",
    in, body, out);

  g_free (in);
  g_free (out);
  return cmd;
}

#define RENOISE(extra) \
  "(plug-in-ddpm-renoise #:run-mode RUN-NONINTERACTIVE #:image img " \
  "#:drawables (vector drw) #:steps " STEPS " #:seed " SEED " " extra ")"

/* The session's environment: its own profile (kept between runs), home
 * and data folder, German, no display, no model folder override. */
static gchar **
session_env (void)
{
  gchar *profile = g_strdup (g_getenv ("DDPM_GIMP3_PROFILE"));
  gchar *xdg = work_file ("xdg"), *home = work_file ("home");
  gchar **env = g_get_environ ();

  env = g_environ_setenv (env, "GIMP3_DIRECTORY", profile, TRUE);
  env = g_environ_setenv (env, "HOME", home, TRUE);
  env = g_environ_setenv (env, "XDG_DATA_HOME", xdg, TRUE);
  env = g_environ_setenv (env, "LANG", "de_DE.UTF-8", TRUE);
  env = g_environ_unsetenv (env, "LC_ALL");
  env = g_environ_unsetenv (env, "LANGUAGE");
  env = g_environ_unsetenv (env, "DDPM_MODEL_DIR");
  env = g_environ_unsetenv (env, "DISPLAY");
  g_mkdir_with_parents (home, 0755);
  g_mkdir_with_parents (profile, 0755);
  g_free (profile);
  g_free (xdg);
  g_free (home);
  return env;
}

/* Installed the way a user would (translations included); the test's
 * own default model is trained over the checkout's afterwards. */
static void
install_user (void)
{
  gchar *install = g_build_filename (g_getenv ("DDPM_SOURCE_ROOT"), "tools",
                                     "install-user", NULL);
  const char *iargv[] = { "/bin/sh", install, g_getenv ("DDPM_BUILD_ROOT"), NULL };
  gchar **env = session_env ();
  int status = -1;

  g_assert_true (g_spawn_sync (NULL, (char **) iargv, env,
                               G_SPAWN_STDOUT_TO_DEV_NULL, NULL, NULL, NULL,
                               NULL, &status, NULL)
                 && g_spawn_check_wait_status (status, NULL));
  g_strfreev (env);
  g_free (install);
}

/* The Script-Fu of the README's GIMP 3 batch example: the text between
 * "-b '" and the next "'" after its marker line. */
static gchar *
readme_example (void)
{
  gchar *readme = g_build_filename (g_getenv ("DDPM_SOURCE_ROOT"), "README.md", NULL);
  gchar *text = NULL, *expr = NULL;
  const char *p, *end;

  if (g_file_get_contents (readme, &text, NULL, NULL)
      && (p = strstr (text, "<!-- batch example for GIMP 3: tested by tests/gimp3 -->"))
      && (p = strstr (p, "-b '")) && (end = strchr (p + 4, '\'')))
    expr = g_strndup (p + 4, end - (p + 4));
  g_free (text);
  g_free (readme);
  return expr;
}

static void
run_session (void)
{
  gchar *corrupt = quoted ("corrupt.safetensors");
  gchar *trained = quoted ("trained.safetensors");
  gchar **env = session_env ();
  GPtrArray *argv = g_ptr_array_new_with_free_func (g_free);
  gchar *out = NULL, *err = NULL;
  int status = -1;

#define BATCH(cmd) (g_ptr_array_add (argv, g_strdup ("-b")), \
                    g_ptr_array_add (argv, (cmd)))
  g_ptr_array_add (argv, g_strdup ("timeout"));
  g_ptr_array_add (argv, g_strdup ("540"));
  g_ptr_array_add (argv, g_strdup (g_getenv ("GIMP_CONSOLE")));
  g_ptr_array_add (argv, g_strdup ("-i"));
  g_ptr_array_add (argv, g_strdup ("-d"));
  g_ptr_array_add (argv, g_strdup ("-f"));
  g_ptr_array_add (argv, g_strdup ("--quit"));
  g_ptr_array_add (argv, g_strdup ("--batch-interpreter=plug-in-script-fu-eval"));
  BATCH (scenario ("photo.png", RENOISE ("#:strength 0.5 #:sampler \"ddim\""),
                   "renoise.png"));
  BATCH (scenario ("photo.png",
                   RENOISE ("#:strength 0.5 #:sampler \"ddim\" #:precision \"fp32\""),
                   "renoise-fp32.png"));
  BATCH (scenario ("photo.png",
                   RENOISE ("#:strength 0.5 #:sampler \"ddim\" #:precision \"bf16\""),
                   "renoise-bf16.png"));
  BATCH (scenario ("photo.png",
                   "(gimp-image-convert-precision img PRECISION-FLOAT-LINEAR)"
                   RENOISE ("#:strength 0.5")
                   "(gimp-image-convert-precision img PRECISION-U8-NON-LINEAR)",
                   "renoise-float.png"));
  BATCH (scenario ("photo.png",
                   "(gimp-image-select-rectangle img CHANNEL-OP-REPLACE 16 8 32 24)"
                   RENOISE ("#:strength 1.0 #:sampler \"ddpm\""),
                   "renoise-selection.png"));
  BATCH (scenario ("photo-alpha.png", RENOISE ("#:strength 0.5"),
                   "renoise-alpha.png"));
  BATCH (scenario ("photo.png",
                   "(gimp-image-convert-grayscale img)" RENOISE ("#:strength 0.5"),
                   "renoise-gray.png"));
  BATCH (scenario ("photo.png", g_strdup_printf (
                   "(catch #f " RENOISE ("#:model %s") ")", corrupt),
                   "renoise-corrupt.png"));
  BATCH (scenario ("photo.png",
                   "(plug-in-ddpm-generate #:run-mode RUN-NONINTERACTIVE #:image img "
                   "#:drawables (vector drw) #:steps " STEPS " #:seed 3)",
                   "generate.png"));
  BATCH (scenario ("noisy.png",
                   "(plug-in-ddpm-denoise #:run-mode RUN-NONINTERACTIVE #:image img "
                   "#:drawables (vector drw) #:sigma " NOISE_SIGMA " #:steps 5 #:seed 1)",
                   "denoise.png"));
  BATCH (scenario ("photo.png", g_strdup_printf (
                   "(plug-in-ddpm-train #:run-mode RUN-NONINTERACTIVE #:image img "
                   "#:drawables (vector drw) #:output %s #:preset \"tiny\" "
                   "#:iterations 10 #:patch-size 16 #:seed 1)", trained),
                   "train-input.png"));
  /* Last: a failing command stops the session (exit 70), and this one
   * is the README's text. */
  {
    gchar *example = readme_example ();

    if (example != NULL)
      BATCH (example);
  }
  g_ptr_array_add (argv, NULL);
#undef BATCH

  session_ok = g_spawn_sync (work_dir, (char **) argv->pdata, env,
                             G_SPAWN_SEARCH_PATH, NULL, NULL, &out, &err,
                             &status, NULL);
  g_file_set_contents (gimp_log, err ? err : "", -1, NULL);
  session_ok = session_ok && g_spawn_check_wait_status (status, NULL);
  if (!session_ok)
    g_test_message ("gimp-console-3.0 failed (status %d): see %s", status, gimp_log);

  g_free (out);
  g_free (err);
  g_ptr_array_free (argv, TRUE);
  g_strfreev (env);
  g_free (corrupt);
  g_free (trained);
}

static gboolean
log_contains (const char *text)
{
  gchar *log = NULL;
  gboolean found;

  g_file_get_contents (gimp_log, &log, NULL, NULL);
  found = log && strstr (log, text);
  g_free (log);
  return found;
}

/* ------------------------------------------------------------------ tests */

static void
test_session (void)
{
  g_assert_true (session_ok);
  /* An unknown choice nick is not refused by Script-Fu, only logged
   * (and the default used instead). */
  g_assert_false (log_contains ("invalid or out of range for property"));
}

/* The same pixels as `ddpm renoise` (hence as GIMP 2.10's plug-in). */
static void
test_renoise_same_as_cli (void)
{
  Image *in = image_load ("photo.png"), *gimp = image_load ("renoise.png");
  Image *cli = image_load ("cli-renoise.png");

  if (in && gimp && cli)
    {
      Diff d = diff (cli, gimp, 0, 0, 0, 0, TRUE);
      Diff c = diff (in, gimp, 0, 0, 0, 0, TRUE);

      g_test_message ("renoise: %" G_GSIZE_FORMAT " of %" G_GSIZE_FORMAT
                      " pixels differ from the CLI's (max %d); %" G_GSIZE_FORMAT
                      " changed from the input", d.changed, d.pixels,
                      d.max_diff, c.changed);
      g_assert_cmpuint (c.changed, >, c.pixels / 2);
      g_assert_cmpuint (d.changed, ==, 0);
    }
  image_free (in);
  image_free (gimp);
  image_free (cli);
}

/* Whether the engine runs bf16 here: the CPU has AVX512_BF16 and
 * DDPM_DISABLE_BF16 does not turn it off (ddpm.h). */
static gboolean
cpu_has_bf16 (void)
{
  gchar *info = NULL;
  gboolean has;

  g_file_get_contents ("/proc/cpuinfo", &info, NULL, NULL);
  has = info && strstr (info, " avx512_bf16") != NULL
        && g_strcmp0 (g_getenv ("DDPM_DISABLE_BF16"), "1") != 0;
  g_free (info);
  return has;
}

/* The precision argument reaches the engine: fp32 and bf16 give the
 * CLI's pixels for --precision fp32 and bf16, which differ (slightly)
 * where the CPU runs bf16. */
static void
test_renoise_precision (void)
{
  Image *g32 = image_load ("renoise-fp32.png"), *g16 = image_load ("renoise-bf16.png");
  Image *c32 = image_load ("cli-renoise-fp32.png"), *c16 = image_load ("cli-renoise-bf16.png");

  if (g32 && g16 && c32 && c16)
    {
      Diff d32 = diff (c32, g32, 0, 0, 0, 0, TRUE);
      Diff d16 = diff (c16, g16, 0, 0, 0, 0, TRUE);
      Diff between = diff (g32, g16, 0, 0, 0, 0, TRUE);

      g_test_message ("fp32 vs bf16: %" G_GSIZE_FORMAT " of %" G_GSIZE_FORMAT
                      " pixels differ (max %d); CPU bf16: %d",
                      between.changed, between.pixels, between.max_diff,
                      cpu_has_bf16 ());
      g_assert_cmpuint (d32.changed, ==, 0);
      g_assert_cmpuint (d16.changed, ==, 0);
      if (cpu_has_bf16 ())
        {
          g_assert_cmpuint (between.changed, >, 0);
          g_assert_cmpint (between.max_diff, <=, 32);  /* rounding, not noise */
        }
      else
        g_assert_cmpuint (between.changed, ==, 0);
    }
  image_free (g32);
  image_free (g16);
  image_free (c32);
  image_free (c16);
}

/* A float image renders from the same values (8-bit ones, converted). */
static void
test_renoise_float (void)
{
  Image *u8 = image_load ("renoise.png"), *f = image_load ("renoise-float.png");

  if (u8 && f)
    {
      Diff d = diff (u8, f, 0, 0, 0, 0, TRUE);

      g_test_message ("float vs 8-bit: max difference %d", d.max_diff);
      g_assert_cmpint (d.max_diff, <=, 2);
    }
  image_free (u8);
  image_free (f);
}

static void
test_renoise_selection (void)
{
  Image *in = image_load ("photo.png"), *out = image_load ("renoise-selection.png");

  if (in && out)
    {
      Diff inside = diff (in, out, 16, 8, 32, 24, TRUE);
      Diff outside = diff (in, out, 16, 8, 32, 24, FALSE);

      g_assert_cmpuint (inside.changed, >, inside.pixels / 2);
      g_assert_cmpuint (outside.changed, ==, 0);
    }
  image_free (in);
  image_free (out);
}

static void
test_renoise_alpha (void)
{
  Image *in = image_load ("photo-alpha.png"), *out = image_load ("renoise-alpha.png");

  if (in && out)
    {
      Diff d = diff (in, out, 0, 0, 0, 0, TRUE);

      g_assert_cmpuint (d.changed, >, d.pixels / 2);
      g_assert_cmpuint (d.alpha_changed, ==, 0);
    }
  image_free (in);
  image_free (out);
}

static void
test_renoise_gray (void)
{
  Image *in = image_load ("photo.png"), *out = image_load ("renoise-gray.png");

  if (in && out)
    {
      Diff d = diff (in, out, 0, 0, 0, 0, TRUE);

      g_assert_cmpuint (d.not_gray, ==, 0);
      g_assert_cmpuint (d.changed, >, d.pixels / 2);
    }
  image_free (in);
  image_free (out);
}

/* A model that cannot be loaded: an error, in German, the image as it was. */
static void
test_error_untouched (void)
{
  Image *in = image_load ("photo.png"), *out = image_load ("renoise-corrupt.png");

  if (in && out)
    g_assert_cmpuint (diff (in, out, 0, 0, 0, 0, TRUE).changed, ==, 0);
  g_assert_true (log_contains ("Das Diffusionsmodell konnte nicht geladen werden"));
  image_free (in);
  image_free (out);
}

static void
test_generate (void)
{
  Image *in = image_load ("photo.png"), *out = image_load ("generate.png");

  if (in && out)
    {
      Diff d = diff (in, out, 0, 0, 0, 0, TRUE);

      g_assert_cmpuint (d.changed, >, d.pixels * 9 / 10);
      g_assert_cmpuint (d.alpha_changed, ==, 0);
    }
  image_free (in);
  image_free (out);
}

static void
test_denoise_same_as_cli (void)
{
  Image *gimp = image_load ("denoise.png"), *cli = image_load ("cli-denoise.png");
  Image *noisy = image_load ("noisy.png");

  if (gimp && cli && noisy)
    {
      g_assert_cmpuint (diff (noisy, gimp, 0, 0, 0, 0, TRUE).changed, >,
                        SIZE * SIZE / 2);
      g_assert_cmpuint (diff (cli, gimp, 0, 0, 0, 0, TRUE).changed, ==, 0);
    }
  image_free (gimp);
  image_free (cli);
  image_free (noisy);
}

/* The README's example ran (in the work folder, on photos/) and renoised
 * the photo as renoise with those settings does. */
static void
test_readme_example (void)
{
  gchar *example = readme_example ();
  Image *in, *out;

  g_assert_nonnull (example);
  in = image_load ("photos/photo.png");
  out = image_load ("renoised/photo.png");
  if (in && out)
    g_assert_cmpuint (diff (in, out, 0, 0, 0, 0, TRUE).changed, >,
                      SIZE * SIZE / 2);
  image_free (in);
  image_free (out);
  g_free (example);
}

static void
test_train (void)
{
  gchar *path = work_file ("trained.safetensors");
  const char *args[] = { "info", path, NULL };

  g_assert_true (g_file_test (path, G_FILE_TEST_IS_REGULAR));
  g_assert_true (run_cli (args));
  g_free (path);
}

int
main (int argc, char **argv)
{
  gchar *models, *photo, *noisy, *cli_r, *cli_d;

  g_test_init (&argc, &argv, NULL);
  g_test_set_nonfatal_assertions ();
  work_dir = g_build_filename (g_getenv ("G_TEST_BUILDDIR"), "work", NULL);
  gimp_log = work_file ("gimp.log");
  g_mkdir_with_parents (work_dir, 0755);
  models = g_build_filename (work_dir, "xdg", "gimp-ddpm", "models", NULL);
  g_mkdir_with_parents (models, 0755);
  model_path = g_build_filename (models, "default.safetensors", NULL);
  photo = work_file ("photo.png");
  noisy = work_file ("noisy.png");
  cli_r = work_file ("cli-renoise.png");
  cli_d = work_file ("cli-denoise.png");

  rm_rf_png (work_dir);   /* no output of an earlier run may pass for this one's */
  install_user ();
  make_photo ("photo.png", FALSE);
  make_photo ("photo-alpha.png", TRUE);
  make_noisy ();
  {
    gchar *photos = work_file ("photos"), *renoised = work_file ("renoised");
    gchar *copy = g_build_filename (photos, "photo.png", NULL);
    gchar *data = NULL;
    gsize len;

    rm_rf_png (renoised);
    g_mkdir_with_parents (photos, 0755);
    g_mkdir_with_parents (renoised, 0755);
    g_assert_true (g_file_get_contents (photo, &data, &len, NULL));
    g_assert_true (g_file_set_contents (copy, data, len, NULL));
    g_free (data);
    g_free (copy);
    g_free (photos);
    g_free (renoised);
  }
  g_file_set_contents (g_build_filename (work_dir, "corrupt.safetensors", NULL),
                       "\xff\xff\xff\xff\xff\xff\xff\x7f{", 9, NULL);
  {
    const char *train[] = { "train", "--preset", "tiny", "--size", "16",
                            "--steps", "60", "--lr", "3e-3", "--warmup", "5",
                            "--ema-decay", "0", "--seed", "1", "--out",
                            model_path, photo, NULL };
    const char *renoise[] = { "renoise", "-m", model_path, "--strength", "0.5",
                              "--steps", STEPS, "--seed", SEED, "--sampler",
                              "ddim", photo, cli_r, NULL };
    const char *denoise[] = { "denoise", "-m", model_path, "--sigma", NOISE_SIGMA,
                              "--steps", "5", "--seed", "1", "--sampler", "ddim",
                              noisy, cli_d, NULL };

    g_assert_true (run_cli (train));
    g_assert_true (run_cli (renoise));
    for (int i = 0; i < 2; i++)
      {
        const char *name = i ? "bf16" : "fp32";
        gchar *file = g_strdup_printf ("%s/cli-renoise-%s.png", work_dir, name);
        const char *args[] = { "renoise", "-m", model_path, "--strength", "0.5",
                               "--steps", STEPS, "--seed", SEED, "--sampler",
                               "ddim", "--precision", name, photo, file, NULL };

        g_assert_true (run_cli (args));
        g_free (file);
      }
    g_assert_true (run_cli (denoise));
  }
  run_session ();

  g_test_add_func ("/gimp3/session", test_session);
  g_test_add_func ("/gimp3/renoise/same-as-cli", test_renoise_same_as_cli);
  g_test_add_func ("/gimp3/renoise/precision", test_renoise_precision);
  g_test_add_func ("/gimp3/renoise/float", test_renoise_float);
  g_test_add_func ("/gimp3/renoise/selection", test_renoise_selection);
  g_test_add_func ("/gimp3/renoise/alpha", test_renoise_alpha);
  g_test_add_func ("/gimp3/renoise/gray", test_renoise_gray);
  g_test_add_func ("/gimp3/renoise/error-untouched-de", test_error_untouched);
  g_test_add_func ("/gimp3/generate", test_generate);
  g_test_add_func ("/gimp3/denoise/same-as-cli", test_denoise_same_as_cli);
  g_test_add_func ("/gimp3/train", test_train);
  g_test_add_func ("/gimp3/readme-example", test_readme_example);
  return g_test_run ();
}
