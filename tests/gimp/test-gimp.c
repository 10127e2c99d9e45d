/* test-gimp.c: the plug-in end to end, in the real GIMP 2.10 in batch mode.
 *
 * One gimp-console session runs every scenario (a GIMP start costs
 * seconds), each scenario one `-b` Script-Fu command that loads its input,
 * calls a plug-in procedure and saves what came out as PNG; the test cases
 * then judge those files and the session's log.  The plug-in is installed
 * into an isolated profile with tools/install-user (which is tested that
 * way), and the model the scenarios use is trained in the same session by
 * plug-in-ddpm-train into the user data directory, where the plug-in finds
 * it as its default model.
 *
 * GIMP exits 0 even when a batch command fails, so every check looks at
 * output files or at the log ("execution error", the error strings).
 *
 * Environment (meson): GIMP_CONSOLE, DDPM_SOURCE_ROOT, DDPM_BUILD_ROOT,
 * G_TEST_BUILDDIR.  The work folder (inputs, outputs, gimp.log) stays in
 * the build directory for a look after a failure.
 */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <string.h>

#include <glib.h>
#include <glib/gstdio.h>
#include <png.h>

/* Training and sampling budget: small enough for the whole session to take
 * about a minute on two busy cores.  Twenty steps do not make a good model
 * (the loss is still ≈ 1), so the checks are about the plumbing, with
 * thresholds an unrelated image could not pass. */
#define TRAIN_ITERATIONS "20"
#define PATCH_SIZE       "16"
#define STEPS            "10"

static gchar *work_dir;      /* everything the session reads and writes */
static gchar *model_path;    /* the trained model, as the default model */
static gchar *gimp_log;      /* stdout + stderr of the session */
static gboolean install_ok;

/* ------------------------------------------------------------------- PNGs */

typedef struct
{
  int     width, height;
  guint8 *rgba;              /* (height, width, 4) */
} Image;

static Image *
image_load (const char *name)
{
  gchar *path = g_build_filename (work_dir, name, NULL);
  png_image png;
  Image *image;

  memset (&png, 0, sizeof png);
  png.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_file (&png, path))
    {
      g_test_message ("cannot read %s (%s); see %s/gimp.log",
                      path, png.message, work_dir);
      g_free (path);
      return NULL;
    }
  png.format = PNG_FORMAT_RGBA;
  image = g_new0 (Image, 1);
  image->width = png.width;
  image->height = png.height;
  image->rgba = g_malloc (PNG_IMAGE_SIZE (png));
  if (!png_image_finish_read (&png, NULL, image->rgba, 0, NULL))
    g_error ("%s: %s", path, png.message);
  g_free (path);
  return image;
}

static void
image_free (Image *image)
{
  if (image != NULL)
    g_free (image->rgba);
  g_free (image);
}

/* Load `name` or fail the test, naming the log to look at. */
static Image *
must_load (const char *name)
{
  Image *image = image_load (name);

  if (image == NULL)
    {
      g_test_fail_printf ("%s was not written: the batch command failed "
                          "(see %s/gimp.log)", name, work_dir);
    }
  return image;
}

/* Counts over a rectangle (all of it when w == 0) of two same-sized
 * images: pixels whose colour differs, and the Pearson correlation of the
 * colour values of pixels that are not fully transparent in a. */
typedef struct
{
  gsize  pixels;
  gsize  changed;            /* any of R, G, B differs */
  gsize  alpha_changed;
  double max_diff;           /* largest |a − b| of a colour value */
  double correlation;
} Comparison;

static Comparison
compare (const Image *a, const Image *b, int x0, int y0, int w, int h,
         gboolean inside)
{
  Comparison r = { 0 };
  double sa = 0, sb = 0, saa = 0, sbb = 0, sab = 0;
  gsize n = 0;

  g_assert_cmpint (a->width, ==, b->width);
  g_assert_cmpint (a->height, ==, b->height);
  if (w == 0)
    {
      x0 = y0 = 0;
      w = a->width;
      h = a->height;
    }

  for (int y = 0; y < a->height; y++)
    for (int x = 0; x < a->width; x++)
      {
        gboolean in = x >= x0 && x < x0 + w && y >= y0 && y < y0 + h;
        const guint8 *pa = a->rgba + ((gsize) y * a->width + x) * 4;
        const guint8 *pb = b->rgba + ((gsize) y * b->width + x) * 4;

        if (in != inside)
          continue;
        r.pixels++;
        if (pa[0] != pb[0] || pa[1] != pb[1] || pa[2] != pb[2])
          r.changed++;
        if (pa[3] != pb[3])
          r.alpha_changed++;
        if (pa[3] == 0)
          continue;
        for (int c = 0; c < 3; c++)
          {
            double va = pa[c], vb = pb[c];

            r.max_diff = MAX (r.max_diff, fabs (va - vb));
            sa += va;
            sb += vb;
            saa += va * va;
            sbb += vb * vb;
            sab += va * vb;
            n++;
          }
      }
  if (n > 1)
    {
      double cov = sab - sa * sb / n;
      double va = saa - sa * sa / n, vb = sbb - sb * sb / n;

      r.correlation = va > 0 && vb > 0 ? cov / sqrt (va * vb) : 0.0;
    }
  return r;
}

/* Standard deviation of the colour values of an image. */
static double
image_stddev (const Image *image)
{
  double s = 0, ss = 0;
  gsize n = (gsize) image->width * image->height * 3;

  for (gsize i = 0; i < (gsize) image->width * image->height; i++)
    for (int c = 0; c < 3; c++)
      {
        double v = image->rgba[i * 4 + c];

        s += v;
        ss += v * v;
      }
  return sqrt (MAX (ss / n - (s / n) * (s / n), 0.0));
}

static gboolean
log_contains (const char *text)
{
  return gimp_log != NULL && strstr (gimp_log, text) != NULL;
}

/* ------------------------------------------------------------- the session */

/* A Scheme string literal for `s`. */
static gchar *
scheme_string (const char *s)
{
  GString *out = g_string_new ("\"");

  for (const char *p = s; *p; p++)
    {
      if (*p == '"' || *p == '\\')
        g_string_append_c (out, '\\');
      g_string_append_c (out, *p);
    }
  g_string_append_c (out, '"');
  return g_string_free (out, FALSE);
}

static gchar *
work_path (const char *name)
{
  gchar *path = g_build_filename (work_dir, name, NULL);
  gchar *quoted = scheme_string (path);

  g_free (path);
  return quoted;
}

/* One scenario: load `input` (a PNG in the work folder, read from the XCF
 * copy the first command made: XCF is GIMP's own, so no file plug-in has
 * to start), run `body` with img and drw bound, save the drawable to the
 * PNG `output`. */
static gchar *
scenario (const char *input, const char *body, const char *output)
{
  gchar *xcf = g_strconcat (input, ".xcf", NULL);
  gchar *in = work_path (xcf), *out = work_path (output);
  gchar *cmd = g_strdup_printf (
    "(let* ((img (car (gimp-file-load RUN-NONINTERACTIVE %s %s)))"
    "       (drw (car (gimp-image-get-active-drawable img))))"
    "  %s"
    "  (set! drw (car (gimp-image-get-active-drawable img)))"
    "  (gimp-file-save RUN-NONINTERACTIVE img drw %s %s)"
    "  (gimp-image-delete img))",
    in, in, body, out, out);

  g_free (xcf);
  g_free (in);
  g_free (out);
  return cmd;
}

/* The Script-Fu expression of the README's batch example: the text
 * between "-b '" and the next "'" after the README's marker line. */
static gchar *
readme_batch_example (void)
{
  gchar *readme = g_build_filename (g_getenv ("DDPM_SOURCE_ROOT"), "README.md", NULL);
  gchar *text = NULL, *expr = NULL;
  const char *p, *end;

  if (g_file_get_contents (readme, &text, NULL, NULL)
      && (p = strstr (text, "<!-- batch example: tested by tests/gimp -->")) != NULL
      && (p = strstr (p, "-b '")) != NULL
      && (end = strchr (p + 4, '\'')) != NULL)
    expr = g_strndup (p + 4, end - (p + 4));
  g_free (text);
  g_free (readme);
  return expr;
}

/* A file that is not a model: a header length far past its end. */
static void
write_corrupt_model (void)
{
  static const char bytes[] = "\xff\xff\x00\x00\x00\x00\x00\x00{\"junk\":";
  gchar *path = g_build_filename (work_dir, "corrupt.safetensors", NULL);

  g_assert_true (g_file_set_contents (path, bytes, sizeof bytes - 1, NULL));
  g_free (path);
}

static gboolean
remove_tree (const char *path)
{
  GDir *dir = g_dir_open (path, 0, NULL);
  const char *name;

  if (dir != NULL)
    {
      while ((name = g_dir_read_name (dir)) != NULL)
        {
          gchar *child = g_build_filename (path, name, NULL);

          if (g_file_test (child, G_FILE_TEST_IS_DIR)
              && !g_file_test (child, G_FILE_TEST_IS_SYMLINK))
            remove_tree (child);
          else
            g_unlink (child);
          g_free (child);
        }
      g_dir_close (dir);
    }
  return g_rmdir (path) == 0 || errno == ENOENT;
}

static gchar **
session_env (const char *profile)
{
  gchar **env = g_get_environ ();
  gchar *xdg = g_build_filename (work_dir, "xdg", NULL);
  gchar *cache = g_build_filename (work_dir, "cache", NULL);

  env = g_environ_setenv (env, "GIMP2_DIRECTORY", profile, TRUE);
  env = g_environ_setenv (env, "XDG_DATA_HOME", xdg, TRUE);
  env = g_environ_setenv (env, "XDG_CACHE_HOME", cache, TRUE);
  env = g_environ_setenv (env, "LC_ALL", "C.UTF-8", TRUE);
  /* The default model must come from the user data directory. */
  env = g_environ_unsetenv (env, "DDPM_MODEL_DIR");
  env = g_environ_unsetenv (env, "DISPLAY");
  g_free (xdg);
  g_free (cache);
  return env;
}

static void
run_session (void)
{
  const char *gimp = g_getenv ("GIMP_CONSOLE");
  const char *src = g_getenv ("DDPM_SOURCE_ROOT");
  const char *build = g_getenv ("DDPM_BUILD_ROOT");
  gchar *profile = g_build_filename (g_getenv ("G_TEST_BUILDDIR"), "profile", NULL);
  gchar **env;
  GPtrArray *argv = g_ptr_array_new_with_free_func (g_free);
  gchar *out = NULL, *err = NULL, *log_path;
  gchar *model = scheme_string (model_path);
  gchar *missing = scheme_string ("/nonexistent/missing.safetensors");
  gchar *corrupt = work_path ("corrupt.safetensors");
  gchar *splash = scheme_string ("/usr/share/gimp/2.0/images/gimp-splash.png");
  gchar *wilber = scheme_string ("/usr/share/gimp/2.0/images/wilber.png");
  gchar *example;
  int status;
  GError *error = NULL;

  g_assert_nonnull (gimp);
  g_assert_nonnull (src);
  g_assert_nonnull (build);
  env = session_env (profile);
  {
    /* GIMP complains at exit about a missing writable data folder. */
    gchar *gradients = g_build_filename (profile, "gradients", NULL);

    g_mkdir_with_parents (gradients, 0755);
    g_free (gradients);
  }

  /* Install into the isolated profile the way a user would. */
  {
    gchar *script = g_build_filename (src, "tools", "install-user", NULL);
    const char *install_argv[] = { "/bin/sh", script, build, NULL };

    install_ok = g_spawn_sync (NULL, (char **) install_argv, env, G_SPAWN_DEFAULT,
                               NULL, NULL, &out, &err, &status, &error)
                 && g_spawn_check_wait_status (status, NULL);
    g_test_message ("install-user: %s%s", out ? out : "", err ? err : "");
    g_clear_error (&error);
    g_clear_pointer (&out, g_free);
    g_clear_pointer (&err, g_free);
    g_free (script);
  }

  write_corrupt_model ();
  {
    gchar *photos = g_build_filename (work_dir, "photos", NULL);
    gchar *renoised = g_build_filename (work_dir, "renoised", NULL);

    g_mkdir_with_parents (photos, 0755);
    g_mkdir_with_parents (renoised, 0755);
    g_free (photos);
    g_free (renoised);
  }

  g_ptr_array_add (argv, g_strdup (gimp));
  g_ptr_array_add (argv, g_strdup ("-i"));   /* no interface */
  g_ptr_array_add (argv, g_strdup ("-d"));   /* no brushes, patterns, … */
  g_ptr_array_add (argv, g_strdup ("-f"));   /* no fonts */
#define BATCH(cmd) \
  G_STMT_START { g_ptr_array_add (argv, g_strdup ("-b")); \
                 g_ptr_array_add (argv, (cmd)); } G_STMT_END

  /* The inputs: a 64×64 crop of GIMP's splash photograph (opaque RGB) and
   * Wilber scaled to 64×64 (RGBA with soft edges), as PNG and XCF, and
   * 32×32 copies in photos/ for the README example. */
  BATCH (g_strdup_printf (
    "(let* ((img (car (gimp-file-load RUN-NONINTERACTIVE %s %s)))"
    "       (drw (car (gimp-image-get-active-drawable img))))"
    "  (gimp-image-crop img 480 480 300 320)"
    "  (gimp-image-flatten img)"
    "  (gimp-image-scale img 64 64)"
    "  (set! drw (car (gimp-image-get-active-drawable img)))"
    "  (gimp-file-save RUN-NONINTERACTIVE img drw %s %s)"
    "  (gimp-xcf-save 0 img drw %s %s)"
    "  (gimp-image-scale img 32 32)"
    "  (gimp-file-save RUN-NONINTERACTIVE img drw %s %s))",
    splash, splash, work_path ("photo.png"), work_path ("photo.png"),
    work_path ("photo.png.xcf"), work_path ("photo.png.xcf"),
    work_path ("photos/photo.png"), work_path ("photos/photo.png")));
  BATCH (g_strdup_printf (
    "(let* ((img (car (gimp-file-load RUN-NONINTERACTIVE %s %s)))"
    "       (drw (car (gimp-image-get-active-drawable img))))"
    "  (gimp-image-scale img 64 64)"
    "  (gimp-file-save RUN-NONINTERACTIVE img drw %s %s)"
    "  (gimp-xcf-save 0 img drw %s %s)"
    "  (gimp-image-scale img 32 32)"
    "  (gimp-file-save RUN-NONINTERACTIVE img drw %s %s))",
    wilber, wilber, work_path ("wilber.png"), work_path ("wilber.png"),
    work_path ("wilber.png.xcf"), work_path ("wilber.png.xcf"),
    work_path ("photos/wilber.png"), work_path ("photos/wilber.png")));

  /* Train the model every later scenario uses, as the default model. */
  BATCH (g_strdup_printf (
    "(let* ((img (car (gimp-file-load RUN-NONINTERACTIVE %s %s)))"
    "       (drw (car (gimp-image-get-active-drawable img))))"
    "  (plug-in-ddpm-train RUN-NONINTERACTIVE img drw %s \"tiny\" "
    TRAIN_ITERATIONS " " PATCH_SIZE " 7 \"\"))",
    work_path ("photo.png.xcf"), work_path ("photo.png.xcf"), model));

  BATCH (scenario ("photo.png",
    "(plug-in-ddpm-renoise RUN-NONINTERACTIVE img drw \"\" 0.0 " STEPS " 1 1)",
    "s0.png"));
  BATCH (scenario ("photo.png",
    "(plug-in-ddpm-renoise RUN-NONINTERACTIVE img drw \"\" 0.5 " STEPS " 1 1)",
    "s05.png"));
  /* Last values: the arguments are ignored, the 0.5 run is repeated. */
  BATCH (scenario ("photo.png",
    "(plug-in-ddpm-renoise RUN-WITH-LAST-VALS img drw \"\" 0.0 1 99 0)",
    "last.png"));
  BATCH (scenario ("photo.png",
    "(plug-in-ddpm-renoise RUN-NONINTERACTIVE img drw \"\" 0.5 " STEPS " 2 0)",
    "s05-ddpm.png"));
  BATCH (scenario ("photo.png",
    "(gimp-image-select-rectangle img CHANNEL-OP-REPLACE 16 20 24 28)"
    "(plug-in-ddpm-renoise RUN-NONINTERACTIVE img drw \"\" 0.8 " STEPS " 3 1)",
    "selection.png"));
  BATCH (scenario ("wilber.png",
    "(plug-in-ddpm-renoise RUN-NONINTERACTIVE img drw \"\" 0.5 " STEPS " 4 1)",
    "wilber-s05.png"));
  /* Gray with alpha, and its input as GIMP converted it. */
  BATCH (scenario ("photo.png",
    "(gimp-image-convert-grayscale img)"
    "(gimp-layer-add-alpha drw)"
    "(gimp-file-save RUN-NONINTERACTIVE img drw %GRAYIN% %GRAYIN%)"
    "(plug-in-ddpm-renoise RUN-NONINTERACTIVE img drw \"\" 0.5 " STEPS " 1 1)",
    "gray.png"));
  /* 32-bit linear float: the same values reach the engine as from 8 bits. */
  BATCH (scenario ("photo.png",
    "(gimp-image-convert-precision img PRECISION-FLOAT-LINEAR)"
    "(plug-in-ddpm-renoise RUN-NONINTERACTIVE img drw \"\" 0.5 " STEPS " 1 1)"
    "(gimp-image-convert-precision img PRECISION-U8-GAMMA)",
    "float.png"));
  /* Generation on a new white image whose size is no multiple of 32. */
  BATCH (g_strdup_printf (
    "(let* ((img (car (gimp-image-new 48 40 RGB)))"
    "       (drw (car (gimp-layer-new img 48 40 RGB-IMAGE \"bg\" 100 LAYER-MODE-NORMAL))))"
    "  (gimp-image-insert-layer img drw 0 0)"
    "  (gimp-drawable-fill drw FILL-WHITE)"
    "  (plug-in-ddpm-generate RUN-NONINTERACTIVE img drw \"\" " STEPS " 5 1)"
    "  (gimp-file-save RUN-NONINTERACTIVE img drw %s %s))",
    work_path ("generated.png"), work_path ("generated.png")));
  BATCH (scenario ("photo.png",
    "(gimp-image-select-rectangle img CHANNEL-OP-REPLACE 8 12 32 24)"
    "(plug-in-ddpm-generate RUN-NONINTERACTIVE img drw \"\" " STEPS " 6 1)",
    "generated-selection.png"));

  /* Errors: the image is saved after a failed call (caught), and the
   * uncaught call puts the procedure's error string into the log. */
  BATCH (scenario ("photo.png", g_strdup_printf (
    "(catch #f (plug-in-ddpm-renoise RUN-NONINTERACTIVE img drw %s 0.5 " STEPS " 1 1))",
    missing), "missing.png"));
  BATCH (scenario ("photo.png", g_strdup_printf (
    "(catch #f (plug-in-ddpm-renoise RUN-NONINTERACTIVE img drw %s 0.5 " STEPS " 1 1))",
    corrupt), "corrupt.png"));
  BATCH (scenario ("photo.png", g_strdup_printf (
    "(plug-in-ddpm-renoise RUN-NONINTERACTIVE img drw %s 0.5 " STEPS " 1 1)",
    missing), "never-missing.png"));
  BATCH (scenario ("photo.png", g_strdup_printf (
    "(plug-in-ddpm-generate RUN-NONINTERACTIVE img drw %s " STEPS " 1 1)",
    corrupt), "never-corrupt.png"));
  BATCH (scenario ("photo.png",
    "(plug-in-ddpm-renoise RUN-NONINTERACTIVE img drw \"\" 1.5 " STEPS " 1 1)",
    "never-strength.png"));

  /* The README's example, run from the work folder. */
  example = readme_batch_example ();
  if (example != NULL)
    BATCH (example);

  BATCH (g_strdup ("(gimp-quit 0)"));
#undef BATCH
  g_ptr_array_add (argv, NULL);

  /* %GRAYIN% stands for a path inside a scenario body. */
  for (guint i = 0; i + 1 < argv->len; i++)
    {
      char *arg = argv->pdata[i];

      if (strstr (arg, "%GRAYIN%") != NULL)
        {
          gchar *path = work_path ("gray-in.png");
          gchar **parts = g_strsplit (arg, "%GRAYIN%", -1);

          argv->pdata[i] = g_strjoinv (path, parts);
          g_strfreev (parts);
          g_free (path);
          g_free (arg);
        }
    }

  if (!g_spawn_sync (work_dir, (char **) argv->pdata, env, G_SPAWN_DEFAULT,
                     NULL, NULL, &out, &err, &status, &error))
    g_error ("cannot run %s: %s", gimp, error->message);
  gimp_log = g_strconcat (out, err, NULL);
  log_path = g_build_filename (work_dir, "gimp.log", NULL);
  g_file_set_contents (log_path, gimp_log, -1, NULL);
  g_test_message ("GIMP exited with status %d; its output is in %s", status, log_path);

  g_free (log_path);
  g_free (out);
  g_free (err);
  g_free (model);
  g_free (missing);
  g_free (corrupt);
  g_free (splash);
  g_free (wilber);
  g_ptr_array_free (argv, TRUE);
  g_strfreev (env);
  g_free (profile);
}

/* ------------------------------------------------------------------ tests */

static void
test_install_user (void)
{
  gchar *binary = g_build_filename (g_getenv ("G_TEST_BUILDDIR"), "profile",
                                    "plug-ins", "gimp-ddpm", "gimp-ddpm", NULL);

  g_assert_true (install_ok);
  g_assert_true (g_file_test (binary, G_FILE_TEST_IS_EXECUTABLE));
  /* GIMP registered the procedures from there: a call reached the plug-in
   * (the training wrote its model, see /gimp/train). */
  g_assert_false (log_contains ("procedure 'plug-in-ddpm-renoise' not found"));
  g_free (binary);
}

static void
test_train (void)
{
  GStatBuf st;

  g_assert_true (g_stat (model_path, &st) == 0);
  g_assert_cmpint (st.st_size, >, 1000);
  /* The model loads and renoises: s05.png exists (see /gimp/renoise/half). */
}

static void
test_strength_zero (void)
{
  Image *in = must_load ("photo.png"), *out = must_load ("s0.png");

  if (in && out)
    {
      Comparison c = compare (in, out, 0, 0, 0, 0, TRUE);

      g_assert_cmpuint (c.changed, ==, 0);
      g_assert_cmpuint (c.alpha_changed, ==, 0);
    }
  image_free (in);
  image_free (out);
}

static void
test_strength_half (void)
{
  Image *in = must_load ("photo.png"), *out = must_load ("s05.png");
  Image *ddpm = must_load ("s05-ddpm.png");

  if (in && out && ddpm)
    {
      Comparison c = compare (in, out, 0, 0, 0, 0, TRUE);
      Comparison d = compare (in, ddpm, 0, 0, 0, 0, TRUE);

      g_test_message ("strength 0.5, DDIM: %" G_GSIZE_FORMAT " of %" G_GSIZE_FORMAT
                      " pixels changed, correlation %.3f; DDPM: correlation %.3f",
                      c.changed, c.pixels, c.correlation, d.correlation);
      /* Different from the input, yet clearly the same picture (an
       * unrelated image would correlate ≈ 0 ± 0.01 over 12288 values). */
      g_assert_cmpuint (c.changed, >, c.pixels / 2);
      g_assert_cmpfloat (c.correlation, >, 0.3);
      g_assert_cmpfloat (c.correlation, <, 0.999);
      g_assert_cmpuint (d.changed, >, d.pixels / 2);
      g_assert_cmpfloat (d.correlation, >, 0.3);
    }
  image_free (in);
  image_free (out);
  image_free (ddpm);
}

static void
test_last_values (void)
{
  Image *a = must_load ("s05.png"), *b = must_load ("last.png");

  if (a && b)
    {
      Comparison c = compare (a, b, 0, 0, 0, 0, TRUE);

      /* Same values, same seed: the same image, bit for bit. */
      g_assert_cmpuint (c.changed, ==, 0);
    }
  image_free (a);
  image_free (b);
}

static void
test_selection (void)
{
  Image *in = must_load ("photo.png"), *out = must_load ("selection.png");

  if (in && out)
    {
      Comparison outside = compare (in, out, 16, 20, 24, 28, FALSE);
      Comparison inside = compare (in, out, 16, 20, 24, 28, TRUE);

      g_assert_cmpuint (outside.changed, ==, 0);
      g_assert_cmpuint (inside.changed, >, inside.pixels / 2);
    }
  image_free (in);
  image_free (out);
}

static void
test_alpha (void)
{
  Image *in = must_load ("wilber.png"), *out = must_load ("wilber-s05.png");

  if (in && out)
    {
      Comparison c = compare (in, out, 0, 0, 0, 0, TRUE);

      g_test_message ("RGBA: correlation %.3f", c.correlation);
      g_assert_cmpuint (c.alpha_changed, ==, 0);
      g_assert_cmpuint (c.changed, >, 0);
      g_assert_cmpfloat (c.correlation, >, 0.3);
    }
  image_free (in);
  image_free (out);
}

static void
test_gray (void)
{
  Image *in = must_load ("gray-in.png"), *out = must_load ("gray.png");

  if (in && out)
    {
      Comparison c = compare (in, out, 0, 0, 0, 0, TRUE);
      gboolean gray = TRUE;

      for (gsize i = 0; i < (gsize) out->width * out->height; i++)
        gray &= out->rgba[i * 4] == out->rgba[i * 4 + 1]
                && out->rgba[i * 4] == out->rgba[i * 4 + 2];
      g_test_message ("GRAYA with an RGB model: correlation %.3f", c.correlation);
      g_assert_true (gray);
      g_assert_cmpuint (c.alpha_changed, ==, 0);
      g_assert_cmpuint (c.changed, >, c.pixels / 2);
      g_assert_cmpfloat (c.correlation, >, 0.3);
    }
  image_free (in);
  image_free (out);
}

static void
test_float (void)
{
  Image *u8 = must_load ("s05.png"), *f = must_load ("float.png");

  if (u8 && f)
    {
      Comparison c = compare (u8, f, 0, 0, 0, 0, TRUE);

      /* A 32-bit linear layer gives the engine the values an 8-bit one
       * does (to float rounding): the same result to a level or two. */
      g_test_message ("float vs 8-bit: max difference %.0f, correlation %.4f",
                      c.max_diff, c.correlation);
      g_assert_cmpfloat (c.correlation, >, 0.99);
    }
  image_free (u8);
  image_free (f);
}

static void
test_generate (void)
{
  Image *out = must_load ("generated.png");

  if (out)
    {
      gsize white = 0;

      for (gsize i = 0; i < (gsize) out->width * out->height * 4; i++)
        white += out->rgba[i] == 255;
      g_assert_cmpint (out->width, ==, 48);
      g_assert_cmpint (out->height, ==, 40);
      /* Not the white it started as, and not flat. */
      g_assert_cmpuint (white, <, (gsize) out->width * out->height * 2);
      g_assert_cmpfloat (image_stddev (out), >, 5.0);
    }
  image_free (out);
}

static void
test_generate_selection (void)
{
  Image *in = must_load ("photo.png"), *out = must_load ("generated-selection.png");

  if (in && out)
    {
      Comparison outside = compare (in, out, 8, 12, 32, 24, FALSE);
      Comparison inside = compare (in, out, 8, 12, 32, 24, TRUE);

      g_assert_cmpuint (outside.changed, ==, 0);
      g_assert_cmpuint (inside.changed, >, inside.pixels / 2);
    }
  image_free (in);
  image_free (out);
}

static void
check_unchanged_after_error (const char *output)
{
  Image *in = must_load ("photo.png"), *out = must_load (output);

  if (in && out)
    g_assert_cmpuint (compare (in, out, 0, 0, 0, 0, TRUE).changed, ==, 0);
  image_free (in);
  image_free (out);
}

static void
test_missing_model (void)
{
  gchar *never = g_build_filename (work_dir, "never-missing.png", NULL);

  check_unchanged_after_error ("missing.png");
  /* The failed call stopped its batch command, and said why. */
  g_assert_false (g_file_test (never, G_FILE_TEST_EXISTS));
  g_assert_true (log_contains ("Procedure execution of plug-in-ddpm-renoise failed"));
  g_assert_true (log_contains ("“/nonexistent/missing.safetensors” does not exist"));
  g_free (never);
}

static void
test_corrupt_model (void)
{
  gchar *never = g_build_filename (work_dir, "never-corrupt.png", NULL);

  check_unchanged_after_error ("corrupt.png");
  g_assert_false (g_file_test (never, G_FILE_TEST_EXISTS));
  g_assert_true (log_contains ("Procedure execution of plug-in-ddpm-generate failed"));
  g_assert_true (log_contains ("The diffusion model could not be loaded: "));
  g_assert_true (log_contains ("corrupt.safetensors"));
  g_free (never);
}

static void
test_bad_argument (void)
{
  gchar *never = g_build_filename (work_dir, "never-strength.png", NULL);

  g_assert_false (g_file_test (never, G_FILE_TEST_EXISTS));
  g_assert_true (log_contains ("The strength must be between 0 and 1, not 1.5"));
  g_free (never);
}

static void
test_readme_example (void)
{
  const char *names[] = { "photo.png", "wilber.png" };
  gchar *example = readme_batch_example ();

  g_assert_nonnull (example);
  for (gsize i = 0; i < G_N_ELEMENTS (names); i++)
    {
      gchar *in_name = g_build_filename ("photos", names[i], NULL);
      gchar *out_name = g_build_filename ("renoised", names[i], NULL);
      Image *in = must_load (in_name), *out = must_load (out_name);

      if (in && out)
        {
          Comparison c = compare (in, out, 0, 0, 0, 0, TRUE);

          g_assert_cmpuint (c.changed, >, 0);
          g_assert_cmpuint (c.alpha_changed, ==, 0);
          g_assert_cmpfloat (c.correlation, >, 0.3);
        }
      image_free (in);
      image_free (out);
      g_free (in_name);
      g_free (out_name);
    }
  g_free (example);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  /* Every check runs and reports, even after one fails. */
  g_test_set_nonfatal_assertions ();

  work_dir = g_build_filename (g_getenv ("G_TEST_BUILDDIR"), "work", NULL);
  remove_tree (work_dir);
  g_assert_cmpint (g_mkdir_with_parents (work_dir, 0755), ==, 0);
  model_path = g_build_filename (work_dir, "xdg", "gimp-ddpm", "models",
                                 "default.safetensors", NULL);
  run_session ();

  g_test_add_func ("/gimp/install-user", test_install_user);
  g_test_add_func ("/gimp/train", test_train);
  g_test_add_func ("/gimp/renoise/strength-zero", test_strength_zero);
  g_test_add_func ("/gimp/renoise/strength-half", test_strength_half);
  g_test_add_func ("/gimp/renoise/last-values", test_last_values);
  g_test_add_func ("/gimp/renoise/selection", test_selection);
  g_test_add_func ("/gimp/renoise/alpha", test_alpha);
  g_test_add_func ("/gimp/renoise/gray", test_gray);
  g_test_add_func ("/gimp/renoise/float", test_float);
  g_test_add_func ("/gimp/generate/new-image", test_generate);
  g_test_add_func ("/gimp/generate/selection", test_generate_selection);
  g_test_add_func ("/gimp/errors/missing-model", test_missing_model);
  g_test_add_func ("/gimp/errors/corrupt-model", test_corrupt_model);
  g_test_add_func ("/gimp/errors/bad-argument", test_bad_argument);
  g_test_add_func ("/gimp/readme-example", test_readme_example);

  return g_test_run ();
}
