/* imported-util.c: see imported-util.h. */
#include "imported-util.h"

#include <math.h>
#include <string.h>

#include <png.h>

gboolean
imported_run (const char *dir, const char *const *argv)
{
  gchar *out = NULL, *err = NULL;
  int status = -1;
  GError *error = NULL;
  gboolean ok;

  ok = g_spawn_sync (dir, (char **) argv, NULL, G_SPAWN_DEFAULT, NULL, NULL,
                     &out, &err, &status, &error)
       && g_spawn_check_wait_status (status, NULL);
  if (!ok)
    g_test_message ("%s %s failed: %s%s%s", argv[0], argv[1] ? argv[1] : "",
                    error ? error->message : "", out ? out : "", err ? err : "");
  g_clear_error (&error);
  g_free (out);
  g_free (err);
  return ok;
}

gboolean
imported_import_fixture (const char *out)
{
  gchar *dir = g_build_filename (g_getenv ("DDPM_SOURCE_ROOT"), "tests", "fixtures",
                                 "adm", NULL);
  gchar *pt = g_build_filename (dir, IMPORTED_FIXTURE ".pt", NULL);
  gchar *flags_path = g_build_filename (dir, IMPORTED_FIXTURE ".flags", NULL);
  gchar *flags = NULL, **words;
  GPtrArray *argv = g_ptr_array_new ();
  gboolean ok;

  g_assert_true (g_file_get_contents (flags_path, &flags, NULL, NULL));
  /* As a user pastes them: one line of guided-diffusion's flags. */
  words = g_strsplit_set (g_strstrip (flags), " \t", -1);
  g_ptr_array_add (argv, (gpointer) g_getenv ("DDPM_CLI"));
  g_ptr_array_add (argv, "import");
  g_ptr_array_add (argv, pt);
  g_ptr_array_add (argv, "--out");
  g_ptr_array_add (argv, (gpointer) out);
  for (gchar **w = words; *w; w++)
    if (**w)
      g_ptr_array_add (argv, *w);
  g_ptr_array_add (argv, NULL);
  ok = imported_run (NULL, (const char *const *) argv->pdata);
  g_ptr_array_free (argv, TRUE);
  g_strfreev (words);
  g_free (flags);
  g_free (flags_path);
  g_free (pt);
  g_free (dir);
  return ok;
}

static guint8
ramp_alpha (int x, int y)
{
  return (guint8) (96 + 159 * (x + y) / (IMPORTED_WIDTH + IMPORTED_HEIGHT - 2));
}

void
imported_write_inputs (const char *dir)
{
  const int W = IMPORTED_WIDTH, H = IMPORTED_HEIGHT;
  guint8 *rgba = g_new (guint8, W * H * 4);

  for (int alpha = 0; alpha < 2; alpha++)
    {
      gchar *path = g_build_filename (dir, alpha ? "input-alpha.png" : "input.png", NULL);
      png_image png;

      for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
          {
            guint8 *p = rgba + ((gsize) y * W + x) * 4;
            int dx = x - W / 2, dy = y - H / 2;
            gboolean ring = ((dx * dx + dy * dy) / 400) % 2;

            p[0] = (guint8) (30 + 190 * x / (W - 1));
            p[1] = (guint8) (40 + 170 * y / (H - 1));
            p[2] = ring ? 200 : 60;
            p[3] = alpha ? ramp_alpha (x, y) : 255;
          }
      memset (&png, 0, sizeof png);
      png.version = PNG_IMAGE_VERSION;
      png.width = W;
      png.height = H;
      png.format = PNG_FORMAT_RGBA;
      g_assert_true (png_image_write_to_file (&png, path, 0, rgba, 0, NULL));
      g_free (path);
    }
  g_free (rgba);
}

ImportedImage *
imported_image_load (const char *path)
{
  png_image png;
  ImportedImage *image;

  memset (&png, 0, sizeof png);
  png.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_file (&png, path))
    {
      g_test_message ("cannot read %s (%s)", path, png.message);
      return NULL;
    }
  png.format = PNG_FORMAT_RGBA;
  image = g_new0 (ImportedImage, 1);
  image->width = png.width;
  image->height = png.height;
  image->rgba = g_malloc (PNG_IMAGE_SIZE (png));
  if (!png_image_finish_read (&png, NULL, image->rgba, 0, NULL))
    g_error ("%s: %s", path, png.message);
  return image;
}

void
imported_image_free (ImportedImage *image)
{
  if (image != NULL)
    g_free (image->rgba);
  g_free (image);
}

ImportedDiff
imported_diff (const ImportedImage *a, const ImportedImage *b,
               int x0, int y0, int w, int h)
{
  ImportedDiff d = { 0 };
  double sa = 0, sb = 0, saa = 0, sbb = 0, sab = 0;
  gsize n = 0;

  g_assert_cmpint (b->width, ==, a->width);
  g_assert_cmpint (b->height, ==, a->height);
  for (int y = y0; y < y0 + h; y++)
    for (int x = x0; x < x0 + w; x++)
      {
        const guint8 *pa = a->rgba + ((gsize) y * a->width + x) * 4;
        const guint8 *pb = b->rgba + ((gsize) y * a->width + x) * 4;

        if (memcmp (pa, pb, 3) != 0)
          d.changed++;
        if (pa[3] != pb[3])
          d.alpha_changed++;
        for (int c = 0; c < 3; c++)
          {
            double e = fabs ((double) pa[c] - pb[c]);

            d.mean_abs += e;
            d.max_abs = MAX (d.max_abs, e);
            sa += pa[c];
            sb += pb[c];
            saa += (double) pa[c] * pa[c];
            sbb += (double) pb[c] * pb[c];
            sab += (double) pa[c] * pb[c];
            n++;
          }
      }
  d.mean_abs /= n;
  d.b_mean = sb / n;
  {
    double cov = sab - sa * sb / n, va = saa - sa * sa / n, vb = sbb - sb * sb / n;

    d.correlation = va > 0 && vb > 0 ? cov / sqrt (va * vb) : 0.0;
  }
  return d;
}
