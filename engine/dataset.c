/* dataset.c: training images and the random crops the trainer draws.
 *
 * A dataset is a list of images held as float (C, H, W) in [−1, 1]: the
 * images of a folder (PNG/JPEG, any size: dataset-folder.c, kept apart so
 * that the plug-in, which has its pixels from GIMP, links no image codecs)
 * or one image (single-image training on its patches).  Before training, ddpm_dataset_prepare()
 * converts them to the model's channels and upscales any image smaller
 * than a crop; ddpm_dataset_sample() then fills a batch with random crops.
 *
 * HOW THE RANDOMNESS WORKS: every draw comes from the counter-based Philox
 * generator.  Image order: each epoch visits every image once, in a
 * permutation (Fisher–Yates) keyed by (seed, epoch); the position in that
 * order is the cursor.  Crop corners and flips: a sequential DdpmRng.
 * Both live in a DdpmDataCursor that checkpoints save, so a resumed
 * training draws exactly the crops the uninterrupted one would have.
 */
#include <string.h>

#include "intl.h"
#include "train.h"

/* The epoch permutations' streams: DATASET_STREAM_SHUFFLE + epoch. */
#define DATASET_STREAM_SHUFFLE (G_GUINT64_CONSTANT (0x5348554646) << 24)

typedef struct
{
  char  *name;    /* file name, for messages */
  int    C, H, W;
  float *pixels;  /* (C, H, W) in [−1, 1] */
} DatasetImage;

struct _DdpmDataset
{
  GPtrArray *images;      /* DatasetImage */
  guint32   *perm;        /* (n_images) this epoch's order */
  guint64    perm_epoch;  /* which epoch perm holds */
  guint64    perm_seed;
  gboolean   perm_valid;
};

static void
dataset_image_free (gpointer data)
{
  DatasetImage *image = data;

  g_free (image->name);
  g_free (image->pixels);
  g_free (image);
}

DdpmDataset *
ddpm_dataset_new_empty (void)
{
  DdpmDataset *dataset = g_new0 (DdpmDataset, 1);

  dataset->images = g_ptr_array_new_with_free_func (dataset_image_free);
  return dataset;
}

void
ddpm_dataset_add_image (DdpmDataset *dataset, char *name, float *pixels, int C, int H, int W)
{
  DatasetImage *image = g_new0 (DatasetImage, 1);

  image->name = name;
  image->pixels = pixels;
  image->C = C;
  image->H = H;
  image->W = W;
  g_ptr_array_add (dataset->images, image);
}

DdpmDataset *
ddpm_dataset_new_from_pixels (const float *pixels,
                              int          C,
                              int          H,
                              int          W,
                              GError     **error)
{
  g_return_val_if_fail (pixels != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  if (C != 1 && C != 3)
    {
      g_set_error (error, DDPM_ERROR, DDPM_ERROR_INVALID_ARGUMENT,
                   _("Training images must have 1 (gray) or 3 (RGB) channels, not %d"), C);
      return NULL;
    }
  if (H < 1 || W < 1)
    {
      g_set_error (error, DDPM_ERROR, DDPM_ERROR_INVALID_ARGUMENT,
                   _("Training image has no pixels (%d×%d)"), W, H);
      return NULL;
    }

  DdpmDataset *dataset = ddpm_dataset_new_empty ();
  gsize n = (gsize) C * H * W;
  ddpm_dataset_add_image (dataset, g_strdup ("image"), g_memdup2 (pixels, n * sizeof (float)), C, H, W);
  return dataset;
}

void
ddpm_dataset_free (DdpmDataset *dataset)
{
  if (!dataset)
    return;
  g_ptr_array_free (dataset->images, TRUE);
  g_free (dataset->perm);
  g_free (dataset);
}

int
ddpm_dataset_n_images (const DdpmDataset *dataset)
{
  g_return_val_if_fail (dataset != NULL, 0);
  return (int) dataset->images->len;
}

/* Gray ⇄ RGB on [−1, 1] data, as ddpm_image_convert_channels does it for
 * files: RGB → gray is ddpm_rgb_to_gray, on the [0, 1] scale it is defined
 * on (it is not linear, so the scales do not commute). */
static float *
convert_channels (const float *in, int C_in, int C_out, gsize hw)
{
  float *out = g_new (float, (gsize) C_out * hw);

  if (C_in == 1 && C_out == 3)
    for (int c = 0; c < 3; c++)
      memcpy (out + c * hw, in, hw * sizeof (float));
  else
    for (gsize i = 0; i < hw; i++)
      out[i] = 2.0f * ddpm_rgb_to_gray (0.5f * (in[i] + 1.0f),
                                        0.5f * (in[hw + i] + 1.0f),
                                        0.5f * (in[2 * hw + i] + 1.0f)) - 1.0f;
  return out;
}

/* Bilinear resampling with pixel centres aligned (torch's
 * align_corners=False), for upscaling images smaller than a crop. */
static float *
resize_bilinear (const float *in, int C, int H, int W, int H2, int W2)
{
  float *out = g_new (float, (gsize) C * H2 * W2);

  for (int y = 0; y < H2; y++)
    {
      double sy = CLAMP ((y + 0.5) * H / H2 - 0.5, 0, H - 1);
      int y0 = (int) sy, y1 = MIN (y0 + 1, H - 1);
      float fy = (float) (sy - y0);

      for (int x = 0; x < W2; x++)
        {
          double sx = CLAMP ((x + 0.5) * W / W2 - 0.5, 0, W - 1);
          int x0 = (int) sx, x1 = MIN (x0 + 1, W - 1);
          float fx = (float) (sx - x0);

          for (int c = 0; c < C; c++)
            {
              const float *p = in + (gsize) c * H * W;
              float top = p[y0 * W + x0] * (1 - fx) + p[y0 * W + x1] * fx;
              float bottom = p[y1 * W + x0] * (1 - fx) + p[y1 * W + x1] * fx;
              out[((gsize) c * H2 + y) * W2 + x] = top * (1 - fy) + bottom * fy;
            }
        }
    }
  return out;
}

gboolean
ddpm_dataset_prepare (DdpmDataset *dataset, int channels, int size, GError **error)
{
  g_return_val_if_fail (dataset != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (channels != 1 && channels != 3)
    {
      g_set_error (error, DDPM_ERROR, DDPM_ERROR_INVALID_ARGUMENT,
                   _("The model must have 1 or 3 channels, not %d"), channels);
      return FALSE;
    }
  if (size < 1)
    {
      g_set_error (error, DDPM_ERROR, DDPM_ERROR_INVALID_ARGUMENT,
                   _("The crop size must be positive, not %d"), size);
      return FALSE;
    }
  if (dataset->images->len == 0)
    {
      g_set_error (error, DDPM_ERROR, DDPM_ERROR_INVALID_ARGUMENT,
                   _("The training set has no images"));
      return FALSE;
    }

  for (guint i = 0; i < dataset->images->len; i++)
    {
      DatasetImage *image = g_ptr_array_index (dataset->images, i);

      if (image->C != channels)
        {
          float *p = convert_channels (image->pixels, image->C, channels,
                                       (gsize) image->H * image->W);
          g_free (image->pixels);
          image->pixels = p;
          image->C = channels;
        }
      if (image->H < size || image->W < size)
        {
          /* Scale so that the short side is exactly `size`. */
          int short_side = MIN (image->H, image->W);
          int H2 = MAX (size, (int) ((gint64) image->H * size / short_side));
          int W2 = MAX (size, (int) ((gint64) image->W * size / short_side));
          float *p = resize_bilinear (image->pixels, image->C, image->H, image->W, H2, W2);
          g_free (image->pixels);
          image->pixels = p;
          image->H = H2;
          image->W = W2;
        }
    }
  return TRUE;
}

/* This epoch's image order, a Fisher–Yates shuffle keyed by (seed, epoch). */
static void
dataset_ensure_permutation (DdpmDataset *dataset, guint64 seed, guint64 epoch)
{
  guint32 n = dataset->images->len;
  DdpmRng rng;

  if (dataset->perm_valid && dataset->perm_epoch == epoch && dataset->perm_seed == seed)
    return;
  if (!dataset->perm)
    dataset->perm = g_new (guint32, n);
  for (guint32 i = 0; i < n; i++)
    dataset->perm[i] = i;
  ddpm_rng_init (&rng, seed, DATASET_STREAM_SHUFFLE + epoch);
  for (guint32 i = n - 1; i > 0; i--)
    {
      guint32 j = ddpm_rng_next_below (&rng, i + 1);
      guint32 tmp = dataset->perm[i];
      dataset->perm[i] = dataset->perm[j];
      dataset->perm[j] = tmp;
    }
  dataset->perm_epoch = epoch;
  dataset->perm_seed = seed;
  dataset->perm_valid = TRUE;
}

void
ddpm_dataset_sample (DdpmDataset    *dataset,
                     float          *out,
                     int             B,
                     int             size,
                     gboolean        hflip,
                     guint64         seed,
                     DdpmDataCursor *cursor)
{
  guint32 n = dataset->images->len;

  g_return_if_fail (n > 0);

  for (int b = 0; b < B; b++)
    {
      guint64 epoch = cursor->cursor / n;
      dataset_ensure_permutation (dataset, seed, epoch);
      const DatasetImage *image =
        g_ptr_array_index (dataset->images, dataset->perm[cursor->cursor % n]);
      cursor->cursor++;

      g_return_if_fail (image->H >= size && image->W >= size);
      int y0 = (int) ddpm_rng_next_below (&cursor->rng, (guint32) (image->H - size + 1));
      int x0 = (int) ddpm_rng_next_below (&cursor->rng, (guint32) (image->W - size + 1));
      gboolean flip = hflip && ddpm_rng_next_below (&cursor->rng, 2) == 1;
      int C = image->C;

      for (int c = 0; c < C; c++)
        for (int y = 0; y < size; y++)
          {
            const float *row = image->pixels + ((gsize) c * image->H + y0 + y) * image->W + x0;
            float *dst = out + (((gsize) b * C + c) * size + y) * size;

            if (flip)
              for (int x = 0; x < size; x++)
                dst[x] = row[size - 1 - x];
            else
              memcpy (dst, row, size * sizeof (float));
          }
    }
}
