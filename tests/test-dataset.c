/* test-dataset.c: the training data (crops, flips, channels, epochs,
 * folders), as the trainer draws it: every crop must be a window of its
 * image, flipped or not, in the requested channels. */
#include <math.h>
#include <string.h>

#include <gio/gio.h>
#include <glib/gstdio.h>

#include "ddpm.h"
#include "train.h"

/* ---------------------------------------------------------------- dataset */

/* A (C, H, W) image whose every value is distinct and in [−1, 1], so a crop
 * tells where it came from. */
static float *
coded_image (int C, int H, int W)
{
  gsize n = (gsize) C * H * W;
  float *p = g_new (float, n);

  for (gsize i = 0; i < n; i++)
    p[i] = -1.0f + 2.0f * (float) i / (float) (n - 1);
  return p;
}

/* Does crop (C, S, S) equal the window of img at (y0, x0), flipped or not? */
static gboolean
crop_matches (const float *crop, const float *img, int C, int H, int W, int S,
              int y0, int x0, gboolean flip)
{
  for (int c = 0; c < C; c++)
    for (int y = 0; y < S; y++)
      for (int x = 0; x < S; x++)
        {
          int sx = flip ? x0 + S - 1 - x : x0 + x;
          if (crop[(c * S + y) * S + x] != img[(c * H + y0 + y) * W + sx])
            return FALSE;
        }
  return TRUE;
}

static void
check_crops (gboolean hflip)
{
  const int C = 3, H = 20, W = 24, S = 8, B = 200;
  float *img = coded_image (C, H, W);
  float *batch = g_new (float, (gsize) B * C * S * S);
  GError *error = NULL;
  DdpmDataset *d = ddpm_dataset_new_from_pixels (img, C, H, W, &error);
  DdpmDataCursor cursor = { { 0 }, 0 };
  int flips = 0, min_x = W, max_x = -1, min_y = H, max_y = -1;

  g_assert_no_error (error);
  g_assert_true (ddpm_dataset_prepare (d, C, S, &error));
  g_assert_no_error (error);
  ddpm_rng_init (&cursor.rng, 5, 77);
  ddpm_dataset_sample (d, batch, B, S, hflip, 5, &cursor);
  g_assert_cmpuint (cursor.cursor, ==, B);

  for (int b = 0; b < B; b++)
    {
      const float *crop = batch + (gsize) b * C * S * S;
      int found = 0;

      for (int y0 = 0; y0 <= H - S; y0++)
        for (int x0 = 0; x0 <= W - S; x0++)
          for (int f = 0; f < 2; f++)
            if (crop_matches (crop, img, C, H, W, S, y0, x0, f))
              {
                found++;
                flips += f;
                min_x = MIN (min_x, x0);
                max_x = MAX (max_x, x0);
                min_y = MIN (min_y, y0);
                max_y = MAX (max_y, y0);
              }
      g_assert_cmpint (found, ==, 1);
      for (int i = 0; i < C * S * S; i++)
        g_assert_true (crop[i] >= -1 && crop[i] <= 1);
    }
  if (hflip)
    {
      /* Binomial(200, ½): outside [60, 140] has probability < 1e-8. */
      g_assert_cmpint (flips, >, 60);
      g_assert_cmpint (flips, <, 140);
    }
  else
    g_assert_cmpint (flips, ==, 0);
  /* Corners uniform over 13 × 17 positions: both ends are reached. */
  g_assert_cmpint (min_x, ==, 0);
  g_assert_cmpint (max_x, ==, W - S);
  g_assert_cmpint (min_y, ==, 0);
  g_assert_cmpint (max_y, ==, H - S);

  ddpm_dataset_free (d);
  g_free (batch);
  g_free (img);
}

static void
test_crops (void)
{
  check_crops (TRUE);
  check_crops (FALSE);
}

static void
test_gray_rgb (void)
{
  const int H = 9, W = 9, S = 8;
  float *gray = coded_image (1, H, W);
  float rgb[3 * 9 * 9];
  float out[3 * 8 * 8];
  DdpmDataCursor cursor = { { 0 }, 0 };
  DdpmDataset *d;

  /* Gray → RGB: three equal planes, equal to the gray crop. */
  d = ddpm_dataset_new_from_pixels (gray, 1, H, W, NULL);
  g_assert_true (ddpm_dataset_prepare (d, 3, S, NULL));
  ddpm_rng_init (&cursor.rng, 1, 1);
  ddpm_dataset_sample (d, out, 1, S, FALSE, 1, &cursor);
  gboolean any = FALSE;
  for (int y0 = 0; y0 <= 1; y0++)
    for (int x0 = 0; x0 <= 1; x0++)
      any |= crop_matches (out, gray, 1, H, W, S, y0, x0, FALSE);
  g_assert_true (any);
  for (int i = 0; i < S * S; i++)
    {
      g_assert_cmpfloat (out[i], ==, out[S * S + i]);
      g_assert_cmpfloat (out[i], ==, out[2 * S * S + i]);
    }
  ddpm_dataset_free (d);

  /* RGB → gray: GIMP's own conversion (ddpm_rgb_to_gray) on the [0, 1]
   * scale, where these colours are (1, 0, 0.75); GIMP (babl 0.1.98,
   * R'G'B' → Y') makes 0.5411814 of that. */
  for (int i = 0; i < H * W; i++)
    {
      rgb[i] = 1.0f;                 /* red   */
      rgb[H * W + i] = -1.0f;        /* green */
      rgb[2 * H * W + i] = 0.5f;     /* blue  */
    }
  d = ddpm_dataset_new_from_pixels (rgb, 3, H, W, NULL);
  g_assert_true (ddpm_dataset_prepare (d, 1, S, NULL));
  ddpm_dataset_sample (d, out, 1, S, TRUE, 1, &cursor);
  double expected = 2 * 0.5411814 - 1;
  for (int i = 0; i < S * S; i++)
    g_assert_cmpfloat_with_epsilon (out[i], expected, 4e-6);
  ddpm_dataset_free (d);
  g_free (gray);
}

/* An image smaller than a crop is upscaled (short side to the crop size),
 * staying within the range of its values. */
static void
test_upscale (void)
{
  const int H = 6, W = 10, S = 8;
  float *img = coded_image (1, H, W);
  float out[4 * 8 * 8];
  DdpmDataCursor cursor = { { 0 }, 0 };
  DdpmDataset *d = ddpm_dataset_new_from_pixels (img, 1, H, W, NULL);

  g_assert_true (ddpm_dataset_prepare (d, 1, S, NULL));
  ddpm_rng_init (&cursor.rng, 2, 2);
  ddpm_dataset_sample (d, out, 4, S, TRUE, 2, &cursor);
  for (int i = 0; i < 4 * S * S; i++)
    g_assert_true (out[i] >= -1 && out[i] <= 1);
  /* Values increase down the rows of the coded image, also after
   * bilinear upscaling: the first column of an unflipped crop increases. */
  ddpm_dataset_sample (d, out, 1, S, FALSE, 2, &cursor);
  for (int y = 1; y < S; y++)
    g_assert_cmpfloat (out[y * S], >, out[(y - 1) * S]);
  ddpm_dataset_free (d);
  g_free (img);
}

/* Each epoch visits every image once, in an order that depends on the
 * seed. */
static void
test_epochs (void)
{
  const int n = 7, S = 4;
  GError *error = NULL;
  float img[4 * 4];
  float out[7 * 4 * 4];
  DdpmDataset *d;

  /* An n-image folder: image k is the constant k/10. */
  char *dir = g_dir_make_tmp ("ddpm-epochs-XXXXXX", &error);
  g_assert_no_error (error);
  for (int k = 0; k < n; k++)
    {
      DdpmImage image = { 0 };
      char *path = g_strdup_printf ("%s/img%d.png", dir, k);

      for (int i = 0; i < S * S; i++)
        img[i] = k / 10.0f;
      image.width = S;
      image.height = S;
      image.channels = 1;
      image.pixels = img;
      g_assert_true (ddpm_image_save_png (&image, path, 8, &error));
      g_assert_no_error (error);
      g_free (path);
    }
  d = ddpm_dataset_new_from_folder (dir, 1, 0, &error);
  g_assert_no_error (error);
  g_assert_cmpint (ddpm_dataset_n_images (d), ==, n);
  g_assert_true (ddpm_dataset_prepare (d, 1, S, &error));

  int order[2][7];
  for (int run = 0; run < 2; run++)
    {
      DdpmDataCursor cursor = { { 0 }, 0 };
      ddpm_rng_init (&cursor.rng, 9, 9);
      for (int epoch = 0; epoch < 3; epoch++)
        {
          gboolean seen[7] = { FALSE };
          ddpm_dataset_sample (d, out, n, S, FALSE, 9 + (run == 1 && epoch == 2), &cursor);
          for (int b = 0; b < n; b++)
            {
              /* 8-bit PNG: value k/10 in [0, 1] → round(255·k/10)/255 → [−1, 1]. */
              double v01 = (out[b * S * S] + 1) / 2;
              int k = (int) lround (v01 * 10);
              g_assert_cmpfloat_with_epsilon (v01, k / 10.0, 1.0 / 255);
              g_assert_false (seen[k]);
              seen[k] = TRUE;
              for (int i = 1; i < S * S; i++)
                g_assert_cmpfloat (out[b * S * S + i], ==, out[b * S * S]);
              if (epoch == 2)
                order[run][b] = k;
            }
        }
    }
  /* Epoch 2 under another seed: another order (7! orders; equal with
   * probability 1/5040 for a fixed pair, and this pair is fixed). */
  g_assert_true (memcmp (order[0], order[1], sizeof order[0]) != 0);

  ddpm_dataset_free (d);
  for (int k = 0; k < n; k++)
    {
      char *path = g_strdup_printf ("%s/img%d.png", dir, k);
      g_remove (path);
      g_free (path);
    }
  g_rmdir (dir);
  g_free (dir);
}

/* Folder loading: gray and RGB PNGs of different sizes, converted to the
 * requested channels; pixel 0 → −1, 1 → +1; a folder without images, and a
 * missing folder, are errors. */
static void
test_folder (void)
{
  GError *error = NULL;
  char *dir = g_dir_make_tmp ("ddpm-folder-XXXXXX", &error);
  float gray[12 * 10], rgb[3 * 9 * 16];
  DdpmImage a = { 0 }, b = { 0 };

  for (int i = 0; i < 12 * 10; i++)
    gray[i] = (i % 2) ? 1.0f : 0.0f;
  for (int i = 0; i < 3 * 9 * 16; i++)
    rgb[i] = i < 9 * 16 ? 1.0f : 0.0f;    /* pure red */
  a.width = 10; a.height = 12; a.channels = 1; a.pixels = gray;
  b.width = 16; b.height = 9; b.channels = 3; b.pixels = rgb;
  char *pa = g_build_filename (dir, "a.png", NULL);
  char *pb = g_build_filename (dir, "b.PNG", NULL);
  char *pt = g_build_filename (dir, "notes.txt", NULL);
  g_assert_true (ddpm_image_save_png (&a, pa, 8, &error));
  g_assert_true (ddpm_image_save_png (&b, pb, 8, &error));
  g_assert_true (g_file_set_contents (pt, "not an image", -1, &error));
  /* Hidden files (an editor's or macOS's "._a.png") are not images. */
  char *ph = g_build_filename (dir, "._a.png", NULL);
  g_assert_true (g_file_set_contents (ph, "not an image either", -1, &error));
  /* A folder named like an image is skipped, not an error (issue 15). */
  char *pd = g_build_filename (dir, "folder.png", NULL);
  g_assert_cmpint (g_mkdir (pd, 0700), ==, 0);

  DdpmDataset *d = ddpm_dataset_new_from_folder (dir, 3, 0, &error);
  g_assert_no_error (error);
  g_assert_cmpint (ddpm_dataset_n_images (d), ==, 2);
  g_assert_true (ddpm_dataset_prepare (d, 3, 8, &error));
  float out[2 * 3 * 8 * 8];
  DdpmDataCursor cursor = { { 0 }, 0 };
  ddpm_rng_init (&cursor.rng, 3, 3);
  ddpm_dataset_sample (d, out, 2, 8, TRUE, 3, &cursor);
  int n_red = 0, n_gray = 0;
  for (int k = 0; k < 2; k++)
    {
      const float *c = out + k * 3 * 64;
      if (c[0] == 1.0f && c[64] == -1.0f && c[128] == -1.0f)
        n_red++;
      else
        {
          /* The checkerboard, same in all three channels, exactly ±1. */
          for (int i = 0; i < 64; i++)
            {
              g_assert_true (c[i] == 1.0f || c[i] == -1.0f);
              g_assert_cmpfloat (c[i], ==, c[64 + i]);
            }
          n_gray++;
        }
    }
  g_assert_cmpint (n_red, ==, 1);
  g_assert_cmpint (n_gray, ==, 1);
  ddpm_dataset_free (d);

  /* resize_short: both images get a short side of 20. */
  d = ddpm_dataset_new_from_folder (dir, 1, 20, &error);
  g_assert_no_error (error);
  g_assert_true (ddpm_dataset_prepare (d, 1, 20, &error));
  ddpm_dataset_free (d);

  g_remove (pa);
  g_remove (pb);
  d = ddpm_dataset_new_from_folder (dir, 3, 0, &error);
  g_assert_null (d);
  g_assert_error (error, DDPM_ERROR, DDPM_ERROR_INVALID_ARGUMENT);
  g_assert_nonnull (strstr (error->message, "no PNG or JPEG"));
  g_clear_error (&error);
  g_remove (pt);
  g_remove (ph);
  g_free (ph);
  g_rmdir (pd);
  g_free (pd);
  g_rmdir (dir);

  d = ddpm_dataset_new_from_folder (dir, 3, 0, &error);
  g_assert_null (d);
  g_assert_nonnull (error);
  g_clear_error (&error);

  g_free (pa);
  g_free (pb);
  g_free (pt);
  g_free (dir);
}


int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/engine/dataset/crops", test_crops);
  g_test_add_func ("/engine/dataset/gray-rgb", test_gray_rgb);
  g_test_add_func ("/engine/dataset/upscale", test_upscale);
  g_test_add_func ("/engine/dataset/epochs", test_epochs);
  g_test_add_func ("/engine/dataset/folder", test_folder);
  return g_test_run ();
}
