/* dataset-folder.c: a training set from a folder of PNG/JPEG images (the
 * command line's `ddpm train DIR`).  Images are read with image.c,
 * converted to the requested channels, optionally resized so that their
 * short side has a given length, and scaled from [0, 1] to [−1, 1].  The
 * files are taken in sorted name order, so the dataset (and a training
 * over it) does not depend on the order the file system lists them in.
 */
#include <string.h>

#include "intl.h"

#include "ddpm.h"
#include "train.h"

static gboolean
is_image_name (const char *name)
{
  char *lower = g_ascii_strdown (name, -1);
  gboolean yes = g_str_has_suffix (lower, ".png") || g_str_has_suffix (lower, ".jpg")
                 || g_str_has_suffix (lower, ".jpeg");

  g_free (lower);
  return yes;
}

static int
compare_names (gconstpointer a, gconstpointer b)
{
  return strcmp (*(const char *const *) a, *(const char *const *) b);
}

GPtrArray *
ddpm_folder_image_names (const char *path, GError **error)
{
  GDir *dir = g_dir_open (path, 0, error);
  if (!dir)
    return NULL;

  GPtrArray *names = g_ptr_array_new_with_free_func (g_free);
  const char *entry;
  while ((entry = g_dir_read_name (dir)) != NULL)
    {
      if (entry[0] == '.' || !is_image_name (entry))  /* hidden: "._x.png" forks */
        continue;
      /* A folder (or device, socket, …) named x.png is no image: skip it
       * rather than fail the whole training on it.  Symbolic links to
       * regular files count (g_file_test follows them). */
      char *full = g_build_filename (path, entry, NULL);
      gboolean regular = g_file_test (full, G_FILE_TEST_IS_REGULAR);
      g_free (full);
      if (regular)
        g_ptr_array_add (names, g_strdup (entry));
    }
  g_dir_close (dir);
  g_ptr_array_sort (names, compare_names);
  return names;
}

/* Load one file as (channels, h, w) in [−1, 1], its short side resized to
 * resize_short when that is > 0. */
static gboolean
load_image (DdpmDataset *dataset,
            const char  *path,
            const char  *name,
            int          channels,
            int          resize_short,
            GError     **error)
{
  DdpmImage *image = ddpm_image_load (path, error);

  if (!image)
    return FALSE;
  if (image->channels != channels)
    {
      DdpmImage *converted = ddpm_image_convert_channels (image, channels);
      ddpm_image_free (image);
      image = converted;
    }
  if (resize_short > 0)
    {
      int w = image->width, h = image->height;
      int short_side = MIN (w, h);

      if (short_side != resize_short)
        {
          int nw = MAX (1, (int) ((gint64) w * resize_short / short_side));
          int nh = MAX (1, (int) ((gint64) h * resize_short / short_side));
          if (w <= h)
            nw = resize_short;
          else
            nh = resize_short;
          DdpmImage *resized = ddpm_image_resize (image, nw, nh);
          ddpm_image_free (image);
          image = resized;
        }
    }

  gsize n = (gsize) image->channels * image->height * image->width;
  float *pixels = g_try_new (float, n);
  if (!pixels)
    {
      ddpm_set_error_no_memory (error, n * sizeof (float),
                                /* TRANSLATORS: completes "Not enough memory
                                 * for %s": width × height, then the file. */
                                _("the %d × %d image %s"),
                                image->width, image->height, name);
      ddpm_image_free (image);
      return FALSE;
    }
  for (gsize i = 0; i < n; i++)
    pixels[i] = 2.0f * image->pixels[i] - 1.0f;
  ddpm_dataset_add_image (dataset, g_strdup (name), pixels, image->channels, image->height,
               image->width);
  ddpm_image_free (image);
  return TRUE;
}

DdpmDataset *
ddpm_dataset_new_from_folder (const char  *path,
                              int          channels,
                              int          resize_short,
                              GError     **error)
{
  g_return_val_if_fail (path != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  if (channels != 1 && channels != 3)
    {
      g_set_error (error, DDPM_ERROR, DDPM_ERROR_INVALID_ARGUMENT,
                   _("Training images must be converted to 1 (gray) or 3 (RGB) "
                     "channels, not %d"), channels);
      return NULL;
    }
  if (resize_short < 0)
    {
      g_set_error (error, DDPM_ERROR, DDPM_ERROR_INVALID_ARGUMENT,
                   _("The resize size must be positive (or 0 for none), not %d"),
                   resize_short);
      return NULL;
    }

  GPtrArray *names = ddpm_folder_image_names (path, error);
  if (!names)
    return NULL;
  if (names->len == 0)
    {
      g_set_error (error, DDPM_ERROR, DDPM_ERROR_INVALID_ARGUMENT,
                   _("%s: no PNG or JPEG images in this folder"), path);
      g_ptr_array_free (names, TRUE);
      return NULL;
    }

  DdpmDataset *dataset = ddpm_dataset_new_empty ();
  for (guint i = 0; i < names->len; i++)
    {
      const char *name = g_ptr_array_index (names, i);
      char *file = g_build_filename (path, name, NULL);
      gboolean ok = load_image (dataset, file, name, channels, resize_short, error);

      g_free (file);
      if (!ok)
        {
          ddpm_dataset_free (dataset);
          g_ptr_array_free (names, TRUE);
          return NULL;
        }
    }
  g_ptr_array_free (names, TRUE);
  return dataset;
}

