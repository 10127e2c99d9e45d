/* test-image-fuzz.c: a mutation fuzzer for the image decoders (PNG and
 * JPEG through ddpm_image_load), run as an ordinary test (GLib `fuzzing/`
 * style: a target function and a plain deterministic driver; tools/fuzz
 * runs the same driver for minutes under AddressSanitizer and UBSan with
 * a random seed).
 *
 * Seeds are small files made here: PNG 8-bit RGB with alpha, 16-bit gray
 * and 8-bit gray (ddpm_image_save_png), JPEG baseline RGB, gray, CMYK and
 * progressive (libjpeg).  Mutations: bit flips, interesting bytes,
 * big-endian 16/32-bit fields overwritten (PNG's IHDR sizes, JPEG's SOF
 * sizes and segment lengths), truncation, deleted and duplicated chunks;
 * PNG chunk CRCs are usually fixed up afterwards so that libpng looks past
 * them.  The target (fuzz_one) writes the bytes to a file and calls
 * ddpm_image_load.  The property: it fails with a GError, or returns an
 * image whose sizes are sane and whose pixels are finite and in [0, 1].
 *
 * DDPM_FUZZ_CASES (default 20000, a few seconds), DDPM_FUZZ_SEED
 * (default 1), DDPM_FUZZ_FIRST, DDPM_FUZZ_VERBOSE and
 * DDPM_FUZZ_CASE_TIMEOUT as in test-model-fuzz.c.  Width and height
 * fields are kept at most 4096 unless DDPM_FUZZ_BIG=1 (the size limits
 * are the engine's resource-limit work).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <glib/gstdio.h>
#include <jpeglib.h>

#include "ddpm.h"

#define DEFAULT_CASES 20000

typedef struct
{
  guint8 *data;
  gsize   len;
  gboolean png;
} Buf;

static GPtrArray *seeds;     /* of GBytes* */
static char      *tmp_dir;

/* ------------------------------------------------------------------ seeds */

static void
add_file (const char *path)
{
  char *contents;
  gsize len;

  g_assert_true (g_file_get_contents (path, &contents, &len, NULL));
  g_ptr_array_add (seeds, g_bytes_new_take (contents, len));
  g_unlink (path);
}

static void
add_png (int W, int H, int C, gboolean alpha, int bits)
{
  DdpmImage *img = ddpm_image_new (W, H, C, alpha);
  char *path = g_build_filename (tmp_dir, "seed.png", NULL);
  GError *error = NULL;

  for (gsize i = 0; i < (gsize) W * H * C; i++)
    img->pixels[i] = (float) ((i * 29) % 256) / 255.0f;
  if (alpha)
    for (gsize i = 0; i < (gsize) W * H; i++)
      img->alpha[i] = (float) (i % 3) / 2.0f;
  g_assert_true (ddpm_image_save_png (img, path, bits, &error));
  g_assert_no_error (error);
  add_file (path);
  g_free (path);
  ddpm_image_free (img);
}

static void
add_jpeg (int W, int H, int comps, J_COLOR_SPACE space, gboolean progressive)
{
  struct jpeg_compress_struct cinfo;
  struct jpeg_error_mgr jerr;
  char *path = g_build_filename (tmp_dir, "seed.jpg", NULL);
  FILE *fp = fopen (path, "wb");
  guint8 *data = g_malloc ((gsize) W * H * comps);

  for (gsize i = 0; i < (gsize) W * H * comps; i++)
    data[i] = (guint8) ((i * 53) % 251);
  g_assert_nonnull (fp);
  cinfo.err = jpeg_std_error (&jerr);
  jpeg_create_compress (&cinfo);
  jpeg_stdio_dest (&cinfo, fp);
  cinfo.image_width = W;
  cinfo.image_height = H;
  cinfo.input_components = comps;
  cinfo.in_color_space = space;
  jpeg_set_defaults (&cinfo);
  jpeg_set_quality (&cinfo, 80, TRUE);
  if (progressive)
    jpeg_simple_progression (&cinfo);
  jpeg_start_compress (&cinfo, TRUE);
  while (cinfo.next_scanline < cinfo.image_height)
    {
      JSAMPROW row = (JSAMPROW) data + (gsize) cinfo.next_scanline * W * comps;
      jpeg_write_scanlines (&cinfo, &row, 1);
    }
  jpeg_finish_compress (&cinfo);
  jpeg_destroy_compress (&cinfo);
  fclose (fp);
  g_free (data);
  add_file (path);
  g_free (path);
}

static void
make_seeds (void)
{
  seeds = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
  add_png (16, 12, 3, TRUE, 8);
  add_png (9, 7, 1, FALSE, 16);
  add_png (8, 8, 1, TRUE, 8);
  add_jpeg (16, 16, 3, JCS_RGB, FALSE);
  add_jpeg (17, 9, 1, JCS_GRAYSCALE, FALSE);
  add_jpeg (8, 8, 4, JCS_CMYK, FALSE);
  add_jpeg (24, 16, 3, JCS_RGB, TRUE);
}

/* -------------------------------------------------------------- mutations */

static guint32 crc_table[256];

static void
crc_init (void)
{
  for (guint32 n = 0; n < 256; n++)
    {
      guint32 c = n;
      for (int k = 0; k < 8; k++)
        c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
      crc_table[n] = c;
    }
}

static guint32
crc32_of (const guint8 *p, gsize n)
{
  guint32 c = 0xffffffffu;
  for (gsize i = 0; i < n; i++)
    c = crc_table[(c ^ p[i]) & 0xff] ^ (c >> 8);
  return c ^ 0xffffffffu;
}

static guint32
get_be32 (const guint8 *p)
{
  return (guint32) p[0] << 24 | (guint32) p[1] << 16 | (guint32) p[2] << 8 | p[3];
}

static void
put_be32 (guint8 *p, guint32 v)
{
  p[0] = v >> 24; p[1] = v >> 16; p[2] = v >> 8; p[3] = v;
}

/* Recompute every PNG chunk's CRC that lies wholly inside the buffer. */
static void
fix_png_crcs (Buf *b)
{
  gsize p = 8;
  while (p + 12 <= b->len)
    {
      guint32 n = get_be32 (b->data + p);
      if (n > b->len - p - 12)
        break;
      put_be32 (b->data + p + 8 + n, crc32_of (b->data + p + 4, 4 + (gsize) n));
      p += 12 + (gsize) n;
    }
}

/* PNG IHDR width/height and JPEG SOF height/width: the size fields. */
static gboolean
is_size_field (const Buf *b, gsize p, int width)
{
  if (b->png)
    return p >= 16 && p < 24;
  (void) width;
  for (gsize q = 2; q + 9 < b->len; q++)
    if (b->data[q] == 0xff && b->data[q + 1] >= 0xc0 && b->data[q + 1] <= 0xc2)
      return p + width > q + 5 && p < q + 9;
  return FALSE;
}

static gsize
pick (DdpmRng *rng, gsize n)
{
  return n ? ddpm_rng_next_below (rng, (guint32) MIN (n, G_MAXUINT32)) : 0;
}

static void
splice (Buf *b, gsize at, gsize del, const guint8 *ins, gsize ins_len)
{
  gsize n = b->len - del + ins_len;
  guint8 *out = g_malloc (n ? n : 1);

  memcpy (out, b->data, at);
  if (ins_len)   /* a deletion passes NULL, which memcpy must not get */
    memcpy (out + at, ins, ins_len);
  memcpy (out + at + ins_len, b->data + at + del, b->len - at - del);
  g_free (b->data);
  b->data = out;
  b->len = n;
}

static const guint8 interesting_bytes[] = {
  0x00, 0x01, 0x02, 0x03, 0x04, 0x06, 0x07, 0x08, 0x0f, 0x10, 0x7f, 0x80, 0xc0, 0xc2,
  0xc4, 0xd8, 0xd9, 0xda, 0xdb, 0xdd, 0xfe, 0xff,
};

static const guint32 interesting_words[] = {
  0, 1, 2, 3, 7, 8, 15, 16, 255, 256, 4095, 4096, 65500, 65535, 65536, 0x7fffffff,
  0x80000000u, 0xffffffffu, 0x10000001u, 16385,
};

static void
mutate (DdpmRng *rng, Buf *b, gboolean big, int *kinds)
{
  int kind = (int) ddpm_rng_next_below (rng, 7);

  kinds[kind]++;
  if (b->len == 0)
    return;
  switch (kind)
    {
    case 0:
      b->data[pick (rng, b->len)] ^= (guint8) (1u << ddpm_rng_next_below (rng, 8));
      break;
    case 1:
      b->data[pick (rng, b->len)] = interesting_bytes[pick (rng, sizeof interesting_bytes)];
      break;
    case 2:   /* a big-endian 16- or 32-bit field, mostly in the first bytes */
      {
        int width = ddpm_rng_next_uniform (rng) < 0.5 ? 2 : 4;
        gsize span = ddpm_rng_next_uniform (rng) < 0.7 ? MIN (b->len, 200) : b->len;
        if (span < (gsize) width)
          break;
        gsize p = pick (rng, span - width + 1);
        guint32 v = interesting_words[pick (rng, G_N_ELEMENTS (interesting_words))];
        if (!big && v > 4096 && is_size_field (b, p, width))
          v = 4096;
        if (width == 2)
          {
            b->data[p] = v >> 8;
            b->data[p + 1] = v;
          }
        else
          put_be32 (b->data + p, v);
      }
      break;
    case 3:
      b->len = pick (rng, b->len + 1);
      break;
    case 4:
      {
        gsize p = pick (rng, b->len), n = 1 + pick (rng, MIN (64, b->len - p));
        splice (b, p, n, NULL, 0);
      }
      break;
    case 5:
      {
        gsize p = pick (rng, b->len), n = 1 + pick (rng, MIN (128, b->len - p));
        guint8 *copy = g_memdup2 (b->data + p, n);
        splice (b, pick (rng, b->len + 1), 0, copy, n);
        g_free (copy);
      }
      break;
    default:  /* a run of one byte value (RLE-like corruption) */
      {
        gsize p = pick (rng, b->len), n = 1 + pick (rng, MIN (32, b->len - p));
        memset (b->data + p, interesting_bytes[pick (rng, sizeof interesting_bytes)], n);
      }
      break;
    }
}

/* ------------------------------------------------------------------ target */

typedef struct
{
  guint64 loaded, rejected, pixels;
} Stats;

static void
fuzz_one (const guint8 *data, gsize len, Stats *st)
{
  char *path = g_build_filename (tmp_dir, "fuzz.img", NULL);
  GError *error = NULL;

  g_assert_true (g_file_set_contents (path, (const char *) data, (gssize) len, NULL));
  DdpmImage *img = ddpm_image_load (path, &error);
  g_unlink (path);
  g_free (path);
  if (img == NULL)
    {
      g_assert_nonnull (error);
      g_assert_nonnull (error->message);
      g_clear_error (&error);
      st->rejected++;
      return;
    }
  g_assert_no_error (error);
  g_assert_cmpint (img->width, >=, 1);
  g_assert_cmpint (img->height, >=, 1);
  g_assert_true (img->channels == 1 || img->channels == 3);
  gsize n = (gsize) img->width * img->height;
  g_assert_cmpuint (n, <=, DDPM_IMAGE_MAX_PIXELS);
  for (gsize i = 0; i < n * img->channels; i++)
    g_assert_true (img->pixels[i] >= 0 && img->pixels[i] <= 1);
  if (img->alpha)
    for (gsize i = 0; i < n; i++)
      g_assert_true (img->alpha[i] >= 0 && img->alpha[i] <= 1);
  st->loaded++;
  st->pixels += n;
  ddpm_image_free (img);
}

static guint64
env_u64 (const char *name, guint64 fallback)
{
  const char *v = g_getenv (name);
  return v && *v ? g_ascii_strtoull (v, NULL, 10) : fallback;
}

static void
test_fuzz (void)
{
  guint64 n_cases = env_u64 ("DDPM_FUZZ_CASES", DEFAULT_CASES);
  guint64 seed = env_u64 ("DDPM_FUZZ_SEED", 1);
  guint64 first = env_u64 ("DDPM_FUZZ_FIRST", 0);
  gboolean verbose = env_u64 ("DDPM_FUZZ_VERBOSE", 0) != 0;
  gboolean big = env_u64 ("DDPM_FUZZ_BIG", 0) != 0;
  guint case_timeout = (guint) env_u64 ("DDPM_FUZZ_CASE_TIMEOUT", 0);
  GError *error = NULL;
  Stats st = { 0 };
  int kinds[7] = { 0 };
  Buf b = { 0 };

  crc_init ();
  tmp_dir = g_dir_make_tmp ("ddpm-image-fuzz-XXXXXX", &error);
  g_assert_no_error (error);
  make_seeds ();

  /* The seeds themselves load. */
  for (guint k = 0; k < seeds->len; k++)
    {
      gsize len;
      const guint8 *d = g_bytes_get_data (seeds->pdata[k], &len);
      Stats s0 = { 0 };
      fuzz_one (d, len, &s0);
      g_assert_cmpuint (s0.loaded, ==, 1);
    }

  for (guint64 c = first; c < first + n_cases; c++)
    {
      DdpmRng rng;
      ddpm_rng_init (&rng, seed, c);
      GBytes *s = seeds->pdata[c % seeds->len];
      gsize slen;
      const guint8 *sd = g_bytes_get_data (s, &slen);
      g_free (b.data);
      b.data = g_memdup2 (sd, slen);
      b.len = slen;
      b.png = slen >= 8 && memcmp (sd, "\x89PNG", 4) == 0;
      int n_mut = 1;
      while (n_mut < 4 && ddpm_rng_next_uniform (&rng) < 0.35)
        n_mut++;
      for (int m = 0; m < n_mut; m++)
        mutate (&rng, &b, big, kinds);
      if (b.png && ddpm_rng_next_uniform (&rng) < 0.8)
        fix_png_crcs (&b);
      if (verbose)
        {
          printf ("# case seed %" G_GUINT64_FORMAT " index %" G_GUINT64_FORMAT "\n", seed, c);
          fflush (stdout);
        }
      if (case_timeout)
        alarm (case_timeout);
      fuzz_one (b.data, b.len, &st);
    }
  alarm (0);
  g_free (b.data);
  g_ptr_array_unref (seeds);
  g_rmdir (tmp_dir);
  g_free (tmp_dir);

  g_test_message ("%" G_GUINT64_FORMAT " cases: %" G_GUINT64_FORMAT " loaded (%"
                  G_GUINT64_FORMAT " pixels), %" G_GUINT64_FORMAT " rejected",
                  n_cases, st.loaded, st.pixels, st.rejected);
  g_test_message ("mutations: flip %d, byte %d, field %d, truncate %d, delete %d, "
                  "duplicate %d, run %d", kinds[0], kinds[1], kinds[2], kinds[3], kinds[4],
                  kinds[5], kinds[6]);
  printf ("# FUZZ-SUMMARY cases=%" G_GUINT64_FORMAT " loaded=%" G_GUINT64_FORMAT
          " rejected=%" G_GUINT64_FORMAT "\n", n_cases, st.loaded, st.rejected);
  g_assert_cmpuint (st.loaded + st.rejected, ==, n_cases);
  if (n_cases >= 1000)
    {
      g_assert_cmpuint (st.loaded, >, n_cases / 100);
      g_assert_cmpuint (st.rejected, >, n_cases / 10);
    }
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/engine/image-fuzz/mutations", test_fuzz);
  return g_test_run ();
}
