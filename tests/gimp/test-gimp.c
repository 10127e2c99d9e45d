/* test-gimp.c: the plug-in end to end, in the real GIMP 2.10 in batch mode.
 *
 * One gimp-console session runs every scenario (a GIMP start costs
 * seconds), each scenario one `-b` Script-Fu command that loads its input,
 * calls a plug-in procedure and saves what came out as PNG; the test cases
 * then judge those files and the session's log.  The plug-in is installed
 * into an isolated profile with tools/install-user (which is tested that
 * way).  The model the scenarios use is trained first by `ddpm train` on
 * the test photograph (sixty fast steps) into the user data directory,
 * where the plug-in finds it as its default model; plug-in-ddpm-train
 * writes another one in the session, which one scenario then uses.
 *
 * plug-in-ddpm-denoise runs on noisy.png, the photograph with Gaussian
 * noise of a known level added here (seeded), and is judged by the PSNR
 * against the clean photograph.
 *
 * GIMP exits 0 even when a batch command fails, so every check looks at
 * output files or at the log ("execution error", the error strings).
 *
 * Environment (meson): GIMP_CONSOLE, DDPM_CLI, DDPM_SOURCE_ROOT,
 * DDPM_BUILD_ROOT, G_TEST_BUILDDIR.  The work folder (inputs, outputs, gimp.log) stays in
 * the build directory for a look after a failure.
 */
#include "config.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <glib.h>
#include <glib/gstdio.h>
#include <png.h>

#include "../dir-helpers.h"

/* Training and sampling budget, for a suite of a minute or two on two
 * cores.  The default model: 60 steps on 16×16 patches at a high learning
 * rate take the loss from 1 to about 0.15, enough to denoise the photo it
 * learnt from into something like it.  The plug-in's own training only has
 * to produce a model that loads and runs. */
#define MODEL_TRAIN_ARGS "--preset", "tiny", "--size", "16", "--steps", "60", \
                         "--lr", "3e-3", "--warmup", "5", "--ema-decay", "0", \
                         "--seed", "1"
#define TRAIN_ITERATIONS  "10"
#define RESUME_ITERATIONS "14"
#define PATCH_SIZE       "16"
#define STEPS            "10"
/* Denoising: noise of 25 levels (σ = 25/255 on the [0, 1] scale), 5 DDIM
 * steps from t ≈ 57.  `ddpm denoise-eval` with the default model measured
 * on the photograph: noisy 20.1 dB, denoised 25.5 dB (5.3 dB gained). */
#define NOISE_LEVELS     25
#define DENOISE_STEPS    "5"
#define MIN_PSNR_GAIN    2.0   /* dB, on the colour photograph */

static gchar *work_dir;      /* everything the session reads and writes */
static gchar *model_path;    /* the default model, trained by `ddpm train` */
static gchar *trained_path;  /* the model plug-in-ddpm-train writes */
static gchar *gimp_log;      /* stdout + stderr of the session */
static gboolean install_ok;
static gboolean model_ok;

/* ------------------------------------------------------------------- PNGs */

typedef struct
{
  int     width, height;
  guint8 *rgba;              /* (height, width, 4) */
} Image;

/* `name` is relative to the work folder, or absolute. */
static Image *
image_load (const char *name)
{
  gchar *path = g_path_is_absolute (name) ? g_strdup (name)
                                          : g_build_filename (work_dir, name, NULL);
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

static gboolean
image_save (const Image *image, const char *name, gboolean alpha)
{
  gchar *path = g_build_filename (work_dir, name, NULL);
  png_image png;
  gboolean ok;

  memset (&png, 0, sizeof png);
  png.version = PNG_IMAGE_VERSION;
  png.width = image->width;
  png.height = image->height;
  png.format = alpha ? PNG_FORMAT_RGBA : PNG_FORMAT_RGB;
  if (alpha)
    ok = png_image_write_to_file (&png, path, 0, image->rgba, 0, NULL);
  else
    {
      gsize n = (gsize) image->width * image->height;
      guint8 *rgb = g_new (guint8, n * 3);

      for (gsize i = 0; i < n; i++)
        memcpy (rgb + i * 3, image->rgba + i * 4, 3);
      ok = png_image_write_to_file (&png, path, 0, rgb, 0, NULL);
      g_free (rgb);
    }
  g_free (path);
  return ok;
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

/* Pearson correlation of n pairs. */
typedef struct
{
  double sa, sb, saa, sbb, sab;
  gsize  n;
} Correlation;

static void
correlation_add (Correlation *c, double a, double b)
{
  c->sa += a;
  c->sb += b;
  c->saa += a * a;
  c->sbb += b * b;
  c->sab += a * b;
  c->n++;
}

static double
correlation_get (const Correlation *c)
{
  double cov, va, vb;

  if (c->n < 2)
    return 0.0;
  cov = c->sab - c->sa * c->sb / c->n;
  va = c->saa - c->sa * c->sa / c->n;
  vb = c->sbb - c->sb * c->sb / c->n;
  return va > 0 && vb > 0 ? cov / sqrt (va * vb) : 0.0;
}

/* Counts over a rectangle (all of it when w == 0) of two same-sized
 * images, or outside it: pixels whose colour differs, and the correlation
 * of the colour values where a is not fully transparent.  For scale: an
 * unrelated image correlates 0 ± 0.01 over the 12288 values of 64×64 RGB. */
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
  Correlation fine = { 0 };

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
            r.max_diff = MAX (r.max_diff, fabs ((double) pa[c] - pb[c]));
            correlation_add (&fine, pa[c], pb[c]);
          }
      }
  r.correlation = correlation_get (&fine);
  return r;
}

/* The test photograph: a 448×448 crop of GIMP's splash (mushrooms on
 * moss), box-averaged 7×7 down to 64×64, opaque RGB. */
static gboolean
make_photo (void)
{
  Image *splash = image_load ("/usr/share/gimp/2.0/images/gimp-splash.png");
  Image photo = { 64, 64, NULL };
  gboolean ok;

  if (splash == NULL)
    return FALSE;
  g_assert_cmpint (splash->width, >=, 300 + 448);
  g_assert_cmpint (splash->height, >=, 320 + 448);
  photo.rgba = g_new (guint8, 64 * 64 * 4);
  for (int y = 0; y < 64; y++)
    for (int x = 0; x < 64; x++)
      for (int c = 0; c < 4; c++)
        {
          int sum = 0;

          for (int v = 0; v < 7; v++)
            for (int u = 0; u < 7; u++)
              sum += splash->rgba[((gsize) (320 + y * 7 + v) * splash->width
                                   + 300 + x * 7 + u) * 4 + c];
          photo.rgba[(y * 64 + x) * 4 + c] = c == 3 ? 255 : (sum + 24) / 49;
        }
  ok = image_save (&photo, "photo.png", FALSE);
  g_free (photo.rgba);
  image_free (splash);
  return ok;
}

/* `ddpm renoise` of the photograph as the s05 scenarios run it (strength
 * 0.5, STEPS steps, seed 1, DDIM) at `precision`: cli-<precision>.png,
 * the oracle the plug-in's pixels must equal. */
static void
cli_renoise (const char *precision)
{
  gchar *photo = g_build_filename (work_dir, "photo.png", NULL);
  gchar *name = g_strdup_printf ("cli-%s.png", precision);
  gchar *out = g_build_filename (work_dir, name, NULL);
  const char *argv[] = { g_getenv ("DDPM_CLI"), "renoise", "-m", model_path,
                         "--strength", "0.5", "--steps", STEPS, "--seed", "1",
                         "--sampler", "ddim", "--precision", precision,
                         photo, out, NULL };
  int status = -1;

  if (!g_spawn_sync (NULL, (char **) argv, NULL, G_SPAWN_STDOUT_TO_DEV_NULL
                     | G_SPAWN_STDERR_TO_DEV_NULL, NULL, NULL, NULL, NULL,
                     &status, NULL)
      || !g_spawn_check_wait_status (status, NULL))
    g_test_message ("ddpm renoise --precision %s failed", precision);
  g_free (photo);
  g_free (name);
  g_free (out);
}

/* The default model: `ddpm train` on the photograph. */
static gboolean
train_default_model (void)
{
  gchar *photo = g_build_filename (work_dir, "photo.png", NULL);
  gchar *dir = g_path_get_dirname (model_path);
  const char *argv[] = { g_getenv ("DDPM_CLI"), "train", MODEL_TRAIN_ARGS,
                         "--out", model_path, photo, NULL };
  gchar *out = NULL, *err = NULL;
  int status = -1;
  GError *error = NULL;
  gboolean ok;

  g_assert_nonnull (argv[0]);
  g_mkdir_with_parents (dir, 0755);
  ok = g_spawn_sync (NULL, (char **) argv, NULL, G_SPAWN_DEFAULT, NULL, NULL,
                     &out, &err, &status, &error)
       && g_spawn_check_wait_status (status, NULL);
  if (!ok)
    g_test_message ("ddpm train failed: %s%s", error ? error->message : "",
                    err ? err : "");
  else
    {
      /* The last progress line: "step 60/60 loss 0.15 …". */
      gchar **lines = g_strsplit (g_strstrip (err ? err : ""), "\n", -1);
      guint n = g_strv_length (lines);

      g_test_message ("default model: %s", n > 1 ? lines[n - 2] : "");
      g_strfreev (lines);
    }
  g_clear_error (&error);
  g_free (out);
  g_free (err);
  g_free (dir);
  g_free (photo);
  return ok;
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

/* PSNR = 10·log10(255² / MSE) of the colour values of b against a, over a
 * rectangle (all of it when w == 0). */
static double
psnr (const Image *a, const Image *b, int x0, int y0, int w, int h)
{
  double sum = 0.0;
  gsize n = 0;

  g_assert_cmpint (a->width, ==, b->width);
  g_assert_cmpint (a->height, ==, b->height);
  if (w == 0)
    {
      x0 = y0 = 0;
      w = a->width;
      h = a->height;
    }
  for (int y = y0; y < y0 + h; y++)
    for (int x = x0; x < x0 + w; x++)
      for (int c = 0; c < 3; c++)
        {
          gsize k = ((gsize) y * a->width + x) * 4 + c;
          double d = (double) a->rgba[k] - b->rgba[k];

          sum += d * d;
          n++;
        }
  return sum > 0 ? 10.0 * log10 (255.0 * 255.0 * n / sum) : INFINITY;
}

/* The noisy inputs of the denoise scenarios: noisy.png, the photograph
 * plus Gaussian noise of NOISE_LEVELS (Box–Muller on a seeded GRand,
 * rounded and clipped to 8 bits), and noisy-alpha.png, the same with an
 * alpha ramp from 64 to 255 (never 0: PNG export drops the colour of
 * fully transparent pixels). */
static gboolean
make_noisy (void)
{
  Image *photo = image_load ("photo.png");
  GRand *rand = g_rand_new_with_seed (2026);
  gboolean ok;

  if (photo == NULL)
    return FALSE;
  for (int y = 0; y < photo->height; y++)
    for (int x = 0; x < photo->width; x++)
      {
        guint8 *p = photo->rgba + ((gsize) y * photo->width + x) * 4;

        for (int c = 0; c < 3; c++)
          {
            double u1 = g_rand_double_range (rand, DBL_MIN, 1.0);
            double u2 = g_rand_double (rand);
            double n = sqrt (-2.0 * log (u1)) * cos (2.0 * G_PI * u2);

            p[c] = (guint8) CLAMP (floor (p[c] + NOISE_LEVELS * n + 0.5), 0, 255);
          }
      }
  ok = image_save (photo, "noisy.png", FALSE);
  for (int y = 0; y < photo->height; y++)
    for (int x = 0; x < photo->width; x++)
      photo->rgba[((gsize) y * photo->width + x) * 4 + 3] =
        (guint8) (64 + (191 * (x + y)) / (photo->width + photo->height - 2));
  ok = ok && image_save (photo, "noisy-alpha.png", TRUE);
  g_rand_free (rand);
  image_free (photo);
  return ok;
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
  gchar *trained = scheme_string (trained_path);
  gchar *resumed = work_path ("resumed.safetensors");
  gchar *trained_checkpoint = work_path ("trained.ckpt.safetensors");
  gchar *missing = scheme_string ("/nonexistent/missing.safetensors");
  gchar *denoise_missing = scheme_string ("/nonexistent/denoise-missing.safetensors");
  gchar *corrupt = work_path ("corrupt.safetensors");
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
  g_assert_true (make_photo ());
  g_assert_true (make_noisy ());
  model_ok = train_default_model ();
  cli_renoise ("auto");
  cli_renoise ("fp32");
  cli_renoise ("bf16");
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

  /* The inputs: the photograph (made above), and Wilber scaled to 64×64
   * (RGBA with soft edges), as XCF too, and 32×32 copies in photos/ for
   * the README example. */
  BATCH (g_strdup_printf (
    "(let* ((img (car (gimp-file-load RUN-NONINTERACTIVE %s %s)))"
    "       (drw (car (gimp-image-get-active-drawable img))))"
    "  (gimp-xcf-save 0 img drw %s %s)"
    "  (gimp-image-scale img 32 32)"
    "  (gimp-file-save RUN-NONINTERACTIVE img drw %s %s))",
    work_path ("photo.png"), work_path ("photo.png"),
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

  for (int i = 0; i < 2; i++)
    {
      const char *name = i == 0 ? "noisy.png" : "noisy-alpha.png";
      gchar *png = work_path (name);
      gchar *xcf_name = g_strconcat (name, ".xcf", NULL);
      gchar *xcf = work_path (xcf_name);

      BATCH (g_strdup_printf (
        "(let* ((img (car (gimp-file-load RUN-NONINTERACTIVE %s %s)))"
        "       (drw (car (gimp-image-get-active-drawable img))))"
        "  (gimp-xcf-save 0 img drw %s %s))", png, png, xcf, xcf));
      g_free (png);
      g_free (xcf_name);
      g_free (xcf);
    }

  /* What GIMP registered: "REGISTERED <procedure> <menu path> <number of
   * arguments>" in the log for each plug-in-ddpm-* procedure. */
  BATCH (g_strdup (
    "(let* ((q (gimp-plugins-query \"\")))"
    "  (for-each"
    "    (lambda (name menu)"
    "      (if (and (> (string-length name) 13)"
    "               (string=? (substring name 0 13) \"plug-in-ddpm-\"))"
    "          (gimp-message (string-append \"REGISTERED \" name \" \" menu \" \""
    "            (number->string (list-ref (gimp-procedural-db-proc-info name) 6))))))"
    "    (list-ref q 11) (cadr q)))"));

  /* Train a model from a grayscale layer, continue it from its
   * checkpoint, and renoise the colour photograph with the result (a gray
   * model on RGB pixels). */
  BATCH (g_strdup_printf (
    "(let* ((img (car (gimp-file-load RUN-NONINTERACTIVE %s %s)))"
    "       (drw (car (gimp-image-get-active-drawable img))))"
    "  (gimp-image-convert-grayscale img)"
    "  (plug-in-ddpm-train RUN-NONINTERACTIVE img drw %s \"tiny\" "
    TRAIN_ITERATIONS " " PATCH_SIZE " 7 \"\")"
    "  (plug-in-ddpm-train RUN-NONINTERACTIVE img drw %s \"tiny\" "
    RESUME_ITERATIONS " " PATCH_SIZE " 7 %s))",
    work_path ("photo.png.xcf"), work_path ("photo.png.xcf"), trained,
    resumed, trained_checkpoint));
  BATCH (scenario ("photo.png", g_strdup_printf (
    "(plug-in-ddpm-renoise RUN-NONINTERACTIVE img drw %s 0.5 " STEPS " 1 1 0)",
    resumed), "trained.png"));

  BATCH (scenario ("photo.png",
    "(plug-in-ddpm-renoise RUN-NONINTERACTIVE img drw \"\" 0.0 " STEPS " 1 1 0)",
    "s0.png"));
  BATCH (scenario ("photo.png",
    "(plug-in-ddpm-renoise RUN-NONINTERACTIVE img drw \"\" 0.5 " STEPS " 1 1 0)",
    "s05.png"));
  /* Last values: the arguments are ignored, the 0.5 run is repeated. */
  BATCH (scenario ("photo.png",
    "(plug-in-ddpm-renoise RUN-WITH-LAST-VALS img drw \"\" 0.0 1 99 0 0)",
    "last.png"));
  BATCH (scenario ("photo.png",
    "(plug-in-ddpm-renoise RUN-NONINTERACTIVE img drw \"\" 0.5 " STEPS " 2 0 0)",
    "s05-ddpm.png"));
  BATCH (scenario ("photo.png",
    "(gimp-image-select-rectangle img CHANNEL-OP-REPLACE 16 20 24 28)"
    "(plug-in-ddpm-renoise RUN-NONINTERACTIVE img drw \"\" 0.8 " STEPS " 3 1 0)",
    "selection.png"));
  BATCH (scenario ("wilber.png",
    "(plug-in-ddpm-renoise RUN-NONINTERACTIVE img drw \"\" 0.5 " STEPS " 4 1 0)",
    "wilber-s05.png"));
  /* Gray with alpha, and its input as GIMP converted it. */
  BATCH (scenario ("photo.png",
    "(gimp-image-convert-grayscale img)"
    "(gimp-layer-add-alpha drw)"
    "(gimp-file-save RUN-NONINTERACTIVE img drw %GRAYIN% %GRAYIN%)"
    "(plug-in-ddpm-renoise RUN-NONINTERACTIVE img drw \"\" 0.5 " STEPS " 1 1 0)",
    "gray.png"));
  /* 32-bit linear float: the same values reach the engine as from 8 bits. */
  BATCH (scenario ("photo.png",
    "(gimp-image-convert-precision img PRECISION-FLOAT-LINEAR)"
    "(plug-in-ddpm-renoise RUN-NONINTERACTIVE img drw \"\" 0.5 " STEPS " 1 1 0)"
    "(gimp-image-convert-precision img PRECISION-U8-GAMMA)",
    "float.png"));
  /* Generation on a new white image whose size is no multiple of 32. */
  BATCH (g_strdup_printf (
    "(let* ((img (car (gimp-image-new 48 40 RGB)))"
    "       (drw (car (gimp-layer-new img 48 40 RGB-IMAGE \"bg\" 100 LAYER-MODE-NORMAL))))"
    "  (gimp-image-insert-layer img drw 0 0)"
    "  (gimp-drawable-fill drw FILL-WHITE)"
    "  (plug-in-ddpm-generate RUN-NONINTERACTIVE img drw \"\" " STEPS " 5 1 0)"
    "  (gimp-file-save RUN-NONINTERACTIVE img drw %s %s))",
    work_path ("generated.png"), work_path ("generated.png")));
  BATCH (scenario ("photo.png",
    "(gimp-image-select-rectangle img CHANNEL-OP-REPLACE 8 12 32 24)"
    "(plug-in-ddpm-generate RUN-NONINTERACTIVE img drw \"\" " STEPS " 6 1 0)",
    "generated-selection.png"));

  /* Denoise, σ given on the [0, 1] scale as Script-Fu computes it. */
  BATCH (scenario ("noisy.png",
    "(plug-in-ddpm-denoise RUN-NONINTERACTIVE img drw \"\" (/ " G_STRINGIFY (NOISE_LEVELS)
    " 255) " DENOISE_STEPS " 1 1 0)",
    "denoised.png"));
  /* Last values: the arguments are ignored, the σ = 25/255 run is repeated. */
  BATCH (scenario ("noisy.png",
    "(plug-in-ddpm-denoise RUN-WITH-LAST-VALS img drw \"\" 0.5 1 99 0 0)",
    "denoised-last.png"));
  /* σ 0, and negative: estimated from the layer. */
  BATCH (scenario ("noisy.png",
    "(plug-in-ddpm-denoise RUN-NONINTERACTIVE img drw \"\" 0 " DENOISE_STEPS " 1 1 0)",
    "denoised-auto.png"));
  BATCH (scenario ("noisy.png",
    "(plug-in-ddpm-denoise RUN-NONINTERACTIVE img drw \"\" -1 " DENOISE_STEPS " 1 1 0)",
    "denoised-auto-negative.png"));
  BATCH (scenario ("noisy.png",
    "(gimp-image-select-rectangle img CHANNEL-OP-REPLACE 16 20 24 28)"
    "(plug-in-ddpm-denoise RUN-NONINTERACTIVE img drw \"\" (/ " G_STRINGIFY (NOISE_LEVELS)
    " 255) " DENOISE_STEPS " 1 1 0)",
    "denoised-selection.png"));
  BATCH (scenario ("noisy-alpha.png",
    "(plug-in-ddpm-denoise RUN-NONINTERACTIVE img drw \"\" (/ " G_STRINGIFY (NOISE_LEVELS)
    " 255) " DENOISE_STEPS " 1 1 0)",
    "denoised-alpha.png"));
  BATCH (scenario ("noisy.png",
    "(gimp-image-convert-precision img PRECISION-FLOAT-LINEAR)"
    "(plug-in-ddpm-denoise RUN-NONINTERACTIVE img drw \"\" (/ " G_STRINGIFY (NOISE_LEVELS)
    " 255) " DENOISE_STEPS " 1 1 0)"
    "(gimp-image-convert-precision img PRECISION-U8-GAMMA)",
    "denoised-float.png"));
  /* Gray: the clean reference and the noisy input as GIMP converts them
   * (luma averages the colour noise down), σ estimated. */
  BATCH (scenario ("photo.png", "(gimp-image-convert-grayscale img)", "gray-clean.png"));
  {
    gchar *noisy_gray = work_path ("noisy-gray.png");

    BATCH (scenario ("noisy.png", g_strdup_printf (
      "(gimp-image-convert-grayscale img)"
      "(gimp-file-save RUN-NONINTERACTIVE img drw %s %s)"
      "(plug-in-ddpm-denoise RUN-NONINTERACTIVE img drw \"\" 0 " DENOISE_STEPS " 1 1 0)",
      noisy_gray, noisy_gray), "denoised-gray.png"));
    g_free (noisy_gray);
  }
  BATCH (scenario ("noisy.png", g_strdup_printf (
    "(catch #f (plug-in-ddpm-denoise RUN-NONINTERACTIVE img drw %s 0.1 " DENOISE_STEPS " 1 1 0))",
    denoise_missing), "denoised-missing.png"));
  BATCH (scenario ("noisy.png",
    "(plug-in-ddpm-denoise RUN-NONINTERACTIVE img drw \"\" 1.5 " DENOISE_STEPS " 1 1 0)",
    "never-sigma.png"));

  /* Errors: the failed call is caught so that the image is saved after
   * it; GIMP logs the procedure's error string ("GIMP-Error: … <message>")
   * either way.  An uncaught one stops its batch command. */
  BATCH (scenario ("photo.png", g_strdup_printf (
    "(catch #f (plug-in-ddpm-renoise RUN-NONINTERACTIVE img drw %s 0.5 " STEPS " 1 1 0))",
    missing), "missing.png"));
  BATCH (scenario ("photo.png", g_strdup_printf (
    "(catch #f (plug-in-ddpm-generate RUN-NONINTERACTIVE img drw %s " STEPS " 1 1 0))",
    corrupt), "corrupt.png"));
  BATCH (scenario ("photo.png",
    "(plug-in-ddpm-renoise RUN-NONINTERACTIVE img drw \"\" 1.5 " STEPS " 1 1 0)",
    "never-strength.png"));

  /* Precision: fp32 and bf16 (the last argument), and a value that is
   * none, which stops its command before anything is saved. */
  BATCH (scenario ("photo.png",
    "(plug-in-ddpm-renoise RUN-NONINTERACTIVE img drw \"\" 0.5 " STEPS " 1 1 1)",
    "s05-fp32.png"));
  BATCH (scenario ("photo.png",
    "(plug-in-ddpm-renoise RUN-NONINTERACTIVE img drw \"\" 0.5 " STEPS " 1 1 2)",
    "s05-bf16.png"));
  BATCH (scenario ("photo.png",
    "(plug-in-ddpm-renoise RUN-NONINTERACTIVE img drw \"\" 0.5 " STEPS " 1 1 7)",
    "never-precision.png"));

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
  g_free (trained);
  g_free (resumed);
  g_free (trained_checkpoint);
  g_free (missing);
  g_free (denoise_missing);
  g_free (corrupt);
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
  Image *in = must_load ("photo.png"), *out = must_load ("trained.png");
  gchar *checkpoint = g_build_filename (work_dir, "trained.ckpt.safetensors", NULL);
  gchar *resumed = g_build_filename (work_dir, "resumed.safetensors", NULL);

  /* plug-in-ddpm-train wrote a model and the checkpoint beside it; a
   * second run continued that checkpoint into another model, and that one
   * loads and renoises. */
  g_assert_true (g_file_test (trained_path, G_FILE_TEST_IS_REGULAR));
  g_assert_true (g_file_test (checkpoint, G_FILE_TEST_IS_REGULAR));
  g_assert_true (g_file_test (resumed, G_FILE_TEST_IS_REGULAR));
  if (in && out)
    {
      gsize n = (gsize) in->width * in->height, unclipped = 0, same_shift = 0;
      gsize colourful = 0;

      g_assert_cmpuint (compare (in, out, 0, 0, 0, 0, TRUE).changed, >, n / 2);
      /* A gray model changes the luma only: every channel of a pixel moves
       * by the same amount (unless one clipped at 0 or 255), so the
       * colours survive. */
      for (gsize i = 0; i < n; i++)
        {
          const guint8 *a = in->rgba + i * 4, *b = out->rgba + i * 4;
          int dr = b[0] - a[0], dg = b[1] - a[1], db = b[2] - a[2];

          colourful += b[0] != b[1] || b[1] != b[2];
          if (MIN (MIN (b[0], b[1]), b[2]) == 0 || MAX (MAX (b[0], b[1]), b[2]) == 255)
            continue;
          unclipped++;
          same_shift += abs (dr - dg) <= 1 && abs (dr - db) <= 1;
        }
      g_test_message ("gray model on RGB: %" G_GSIZE_FORMAT " of %" G_GSIZE_FORMAT
                      " unclipped pixels shifted evenly, %" G_GSIZE_FORMAT
                      " colourful", same_shift, unclipped, colourful);
      g_assert_cmpuint (unclipped, >, n / 10);
      g_assert_cmpuint (same_shift, ==, unclipped);
      g_assert_cmpuint (colourful, >, n / 2);
    }
  image_free (in);
  image_free (out);
  g_free (checkpoint);
  g_free (resumed);
}

static void
test_registration (void)
{
  g_assert_true (log_contains ("REGISTERED plug-in-ddpm-renoise "
                               "<Image>/Filters/Diffusion/Renoise… 9"));
  g_assert_true (log_contains ("REGISTERED plug-in-ddpm-generate "
                               "<Image>/Filters/Diffusion/Generate… 8"));
  g_assert_true (log_contains ("REGISTERED plug-in-ddpm-train "
                               "<Image>/Filters/Diffusion/Train Model… 9"));
  g_assert_true (log_contains ("REGISTERED plug-in-ddpm-denoise "
                               "<Image>/Filters/Diffusion/Denoise… 9"));
}

static void
test_default_model (void)
{
  /* `ddpm train` made it; the scenarios found it in the user data folder
   * (the model argument "" everywhere), see /gimp/renoise/strength-half. */
  g_assert_true (model_ok);
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
      /* Different from the input, yet clearly the same picture. */
      g_assert_cmpuint (c.changed, >, c.pixels / 2);
      g_assert_cmpfloat (c.correlation, >, 0.25);
      g_assert_cmpfloat (c.correlation, <, 0.99);
      g_assert_cmpuint (d.changed, >, d.pixels / 2);
      g_assert_cmpfloat (d.correlation, >, 0.25);
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
      g_assert_cmpfloat (c.correlation, >, 0.25);
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
      g_assert_cmpfloat (c.correlation, >, 0.25);
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
      gsize white = 0, n = (gsize) out->width * out->height;

      for (gsize i = 0; i < n; i++)
        white += out->rgba[i * 4] == 255 && out->rgba[i * 4 + 1] == 255
                 && out->rgba[i * 4 + 2] == 255;
      g_assert_cmpint (out->width, ==, 48);
      g_assert_cmpint (out->height, ==, 40);
      /* Not the white it started as, and not flat. */
      g_assert_cmpuint (white, <, n / 2);
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
  check_unchanged_after_error ("missing.png");
  g_assert_true (log_contains ("The model file “/nonexistent/missing.safetensors” "
                               "does not exist."));
}

static void
test_corrupt_model (void)
{
  gchar *message = g_strdup_printf ("The diffusion model could not be loaded: "
                                    "%s/corrupt.safetensors is not a safetensors "
                                    "model file", work_dir);

  check_unchanged_after_error ("corrupt.png");
  g_assert_true (log_contains (message));
  g_free (message);
}

static void
test_bad_argument (void)
{
  gchar *never = g_build_filename (work_dir, "never-strength.png", NULL);

  /* The batch command stopped at the failed call, saying why. */
  g_assert_false (g_file_test (never, G_FILE_TEST_EXISTS));
  g_assert_true (log_contains ("Procedure execution of plug-in-ddpm-renoise failed "
                               "on invalid input arguments: The strength must be "
                               "between 0 and 1, not 1.5."));
}

/* ---------------------------------------------------------------- denoise */

/* The PSNR of `output` against the clean picture, over a rectangle (w 0:
 * all), must beat the noisy input's by min_gain dB. */
static void
check_denoised_against (const char *clean_name, const char *noisy_name,
                        const char *output, int x, int y, int w, int h,
                        double min_gain)
{
  Image *clean = must_load (clean_name), *noisy = must_load (noisy_name);
  Image *out = must_load (output);

  if (clean && noisy && out)
    {
      double before = psnr (clean, noisy, x, y, w, h);
      double after = psnr (clean, out, x, y, w, h);

      g_test_message ("%s: PSNR %.2f dB → %.2f dB (%+.2f)", output,
                      before, after, after - before);
      g_assert_cmpfloat (after, >, before + min_gain);
    }
  image_free (clean);
  image_free (noisy);
  image_free (out);
}

/* The same against the colour photograph, whose noisy copies carry noise
 * of NOISE_LEVELS: 25 levels ≈ 20.2 dB. */
static void
check_denoised (const char *noisy_name, const char *output,
                int x, int y, int w, int h)
{
  Image *clean = must_load ("photo.png"), *noisy = must_load (noisy_name);

  if (clean && noisy)
    g_assert_cmpfloat (fabs (psnr (clean, noisy, x, y, w, h)
                             - 20.0 * log10 (255.0 / NOISE_LEVELS)), <, 1.0);
  image_free (clean);
  image_free (noisy);
  check_denoised_against ("photo.png", noisy_name, output, x, y, w, h,
                          MIN_PSNR_GAIN);
}

static void
check_same (const char *a_name, const char *b_name)
{
  Image *a = must_load (a_name), *b = must_load (b_name);

  if (a && b)
    {
      Comparison c = compare (a, b, 0, 0, 0, 0, TRUE);

      g_assert_cmpuint (c.changed, ==, 0);
      g_assert_cmpuint (c.alpha_changed, ==, 0);
    }
  image_free (a);
  image_free (b);
}

static void
test_denoise_given (void)
{
  check_denoised ("noisy.png", "denoised.png", 0, 0, 0, 0);
}

static void
test_denoise_last_values (void)
{
  /* Same values: the same image, bit for bit. */
  check_same ("denoised.png", "denoised-last.png");
}

static void
test_denoise_auto (void)
{
  check_denoised ("noisy.png", "denoised-auto.png", 0, 0, 0, 0);
  /* Any σ <= 0 means "estimate it". */
  check_same ("denoised-auto.png", "denoised-auto-negative.png");
}

static void
test_denoise_selection (void)
{
  Image *in = must_load ("noisy.png"), *out = must_load ("denoised-selection.png");

  if (in && out)
    {
      Comparison outside = compare (in, out, 16, 20, 24, 28, FALSE);
      Comparison inside = compare (in, out, 16, 20, 24, 28, TRUE);

      g_assert_cmpuint (outside.changed, ==, 0);
      g_assert_cmpuint (outside.alpha_changed, ==, 0);
      g_assert_cmpuint (inside.changed, >, inside.pixels / 2);
    }
  image_free (in);
  image_free (out);
  check_denoised ("noisy.png", "denoised-selection.png", 16, 20, 24, 28);
}

static void
test_denoise_alpha (void)
{
  Image *in = must_load ("noisy-alpha.png"), *out = must_load ("denoised-alpha.png");

  if (in && out)
    {
      Comparison c = compare (in, out, 0, 0, 0, 0, TRUE);

      g_assert_cmpuint (c.alpha_changed, ==, 0);
      g_assert_cmpuint (c.changed, >, c.pixels / 2);
    }
  image_free (in);
  image_free (out);
  check_denoised ("noisy-alpha.png", "denoised-alpha.png", 0, 0, 0, 0);
}

static void
test_denoise_gray (void)
{
  Image *out = must_load ("denoised-gray.png");

  if (out)
    {
      gboolean gray = TRUE;

      for (gsize i = 0; i < (gsize) out->width * out->height; i++)
        gray &= out->rgba[i * 4] == out->rgba[i * 4 + 1]
                && out->rgba[i * 4] == out->rgba[i * 4 + 2];
      g_assert_true (gray);
    }
  image_free (out);
  /* Less to gain: the luma carries less noise, and the colour model has
   * never seen a gray picture (measured: 22.9 → 25.4 dB). */
  check_denoised_against ("gray-clean.png", "noisy-gray.png", "denoised-gray.png",
                          0, 0, 0, 0, 1.0);
}

static void
test_denoise_float (void)
{
  Image *u8 = must_load ("denoised.png"), *f = must_load ("denoised-float.png");

  if (u8 && f)
    {
      Comparison c = compare (u8, f, 0, 0, 0, 0, TRUE);

      g_test_message ("denoise, float vs 8-bit: max difference %.0f, "
                      "correlation %.4f", c.max_diff, c.correlation);
      g_assert_cmpfloat (c.correlation, >, 0.99);
    }
  image_free (u8);
  image_free (f);
}

static void
test_denoise_missing_model (void)
{
  check_same ("noisy.png", "denoised-missing.png");
  g_assert_true (log_contains ("The model file “/nonexistent/denoise-missing.safetensors” "
                               "does not exist."));
}

static void
test_denoise_bad_argument (void)
{
  gchar *never = g_build_filename (work_dir, "never-sigma.png", NULL);

  g_assert_false (g_file_test (never, G_FILE_TEST_EXISTS));
  g_assert_true (log_contains ("Procedure execution of plug-in-ddpm-denoise failed "
                               "on invalid input arguments: The noise level must be "
                               "at most 1 on the 0–1 pixel scale (25/255 ≈ 0.098 "
                               "for noise of 25 levels), or 0 to estimate it, "
                               "not 1.5."));
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

          g_test_message ("%s: correlation %.3f", names[i], c.correlation);
          g_assert_cmpuint (c.changed, >, 0);
          g_assert_cmpuint (c.alpha_changed, ==, 0);
          g_assert_cmpfloat (c.correlation, >, 0.25);
        }
      image_free (in);
      image_free (out);
      g_free (in_name);
      g_free (out_name);
    }
  g_free (example);
}

/* ------------------------------------------------------------- precision */

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

/* `name` has exactly the pixels of `oracle`. */
static void
assert_same_pixels (const char *name, const char *oracle)
{
  Image *a = must_load (name), *b = must_load (oracle);

  if (a && b)
    {
      Comparison c = compare (a, b, 0, 0, 0, 0, TRUE);

      g_test_message ("%s vs %s: %" G_GSIZE_FORMAT " of %" G_GSIZE_FORMAT
                      " pixels differ", name, oracle, c.changed, c.pixels);
      g_assert_cmpuint (c.changed, ==, 0);
    }
  image_free (a);
  image_free (b);
}

/* The same pixels as `ddpm renoise` with the same values (8-bit RGB):
 * GIMP 3's plug-in is held to the same oracle by tests/gimp3, so the
 * same Script-Fu gives the same pixels in both GIMPs. */
static void
test_renoise_same_as_cli (void)
{
  assert_same_pixels ("s05.png", "cli-auto.png");
}

/* The precision argument reaches the engine: fp32 and bf16 give the
 * CLI's pixels for --precision fp32 and bf16, which differ (slightly)
 * where the CPU runs bf16; a value that is none is refused. */
static void
test_renoise_precision (void)
{
  gchar *never = g_build_filename (work_dir, "never-precision.png", NULL);
  Image *a = must_load ("s05-fp32.png"), *b = must_load ("s05-bf16.png");

  assert_same_pixels ("s05-fp32.png", "cli-fp32.png");
  assert_same_pixels ("s05-bf16.png", "cli-bf16.png");
  if (a && b)
    {
      Comparison c = compare (a, b, 0, 0, 0, 0, TRUE);

      g_test_message ("fp32 vs bf16: %" G_GSIZE_FORMAT " of %" G_GSIZE_FORMAT
                      " pixels differ (max %.0f); CPU bf16: %d", c.changed,
                      c.pixels, c.max_diff, cpu_has_bf16 ());
      if (cpu_has_bf16 ())
        {
          g_assert_cmpuint (c.changed, >, 0);
          g_assert_cmpfloat (c.correlation, >, 0.95);  /* rounding, not noise */
        }
      else
        g_assert_cmpuint (c.changed, ==, 0);
    }
  g_assert_false (g_file_test (never, G_FILE_TEST_EXISTS));
  g_assert_true (log_contains ("Unknown precision 7."));
  image_free (a);
  image_free (b);
  g_free (never);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  /* Every check runs and reports, even after one fails. */
  g_test_set_nonfatal_assertions ();

  work_dir = g_build_filename (g_getenv ("G_TEST_BUILDDIR"), "work", NULL);
  test_remove_tree (work_dir);
  g_assert_cmpint (g_mkdir_with_parents (work_dir, 0755), ==, 0);
  model_path = g_build_filename (work_dir, "xdg", "gimp-ddpm", "models",
                                 "default.safetensors", NULL);
  trained_path = g_build_filename (work_dir, "trained.safetensors", NULL);
  run_session ();

  g_test_add_func ("/gimp/install-user", test_install_user);
  g_test_add_func ("/gimp/registration", test_registration);
  g_test_add_func ("/gimp/default-model", test_default_model);
  g_test_add_func ("/gimp/train", test_train);
  g_test_add_func ("/gimp/renoise/strength-zero", test_strength_zero);
  g_test_add_func ("/gimp/renoise/strength-half", test_strength_half);
  g_test_add_func ("/gimp/renoise/last-values", test_last_values);
  g_test_add_func ("/gimp/renoise/same-as-cli", test_renoise_same_as_cli);
  g_test_add_func ("/gimp/renoise/precision", test_renoise_precision);
  g_test_add_func ("/gimp/renoise/selection", test_selection);
  g_test_add_func ("/gimp/renoise/alpha", test_alpha);
  g_test_add_func ("/gimp/renoise/gray", test_gray);
  g_test_add_func ("/gimp/renoise/float", test_float);
  g_test_add_func ("/gimp/generate/new-image", test_generate);
  g_test_add_func ("/gimp/generate/selection", test_generate_selection);
  g_test_add_func ("/gimp/denoise/given-sigma", test_denoise_given);
  g_test_add_func ("/gimp/denoise/last-values", test_denoise_last_values);
  g_test_add_func ("/gimp/denoise/auto-sigma", test_denoise_auto);
  g_test_add_func ("/gimp/denoise/selection", test_denoise_selection);
  g_test_add_func ("/gimp/denoise/alpha", test_denoise_alpha);
  g_test_add_func ("/gimp/denoise/gray", test_denoise_gray);
  g_test_add_func ("/gimp/denoise/float", test_denoise_float);
  g_test_add_func ("/gimp/denoise/missing-model", test_denoise_missing_model);
  g_test_add_func ("/gimp/denoise/bad-argument", test_denoise_bad_argument);
  g_test_add_func ("/gimp/errors/missing-model", test_missing_model);
  g_test_add_func ("/gimp/errors/corrupt-model", test_corrupt_model);
  g_test_add_func ("/gimp/errors/bad-argument", test_bad_argument);
  g_test_add_func ("/gimp/readme-example", test_readme_example);

  return g_test_run ();
}
