/* safetensors.c: the model file format, reader and writer (atomic, through
 * atomic-file.c).
 *
 * HOW IT WORKS
 *
 * Reading maps the file (GMappedFile: a checkpoint with Adam moments can be
 * hundreds of megabytes, and mapping costs no copy) and validates all of it
 * before returning: the 8-byte header length against the file size and a
 * 100 MB cap; the header's JSON nesting depth BEFORE handing it to
 * json-glib (its recursive-descent parser overflows the stack on a few
 * hundred thousand '['); then every entry: a known dtype, a shape of at
 * most 8 non-negative integers whose product does not overflow, and
 * data_offsets [begin, end] inside the data section spanning exactly
 * numel × element size bytes; finally no two non-empty tensors overlap
 * (entries sorted by begin).  After that a read is a shape check and a
 * memcpy, so no later call can touch memory outside the file.
 *
 * json-glib reads integers through a 64-bit unsigned scanner and casts:
 * anything beyond 2^63 − 1 arrives negative, which the non-negativity
 * checks reject.  Duplicate keys in the header keep the last value (as
 * the reference implementation's map does); the bounds checks still hold.
 *
 * Byte order: the format is little-endian and so is every host we build
 * for (x86-64, arm64); the compile-time check below stops a big-endian
 * build rather than silently reading swapped weights.  The data section
 * is 8-byte aligned by our writer (the header is padded with spaces, as
 * the format recommends) but other writers need not align, so reads go
 * through memcpy and never cast a pointer into the file.
 */
#include <inttypes.h>
#include <string.h>

#include <json-glib/json-glib.h>

#include "intl.h"
#include "atomic-file.h"
#include "safetensors.h"
#include "torch-pickle.h"

#if G_BYTE_ORDER != G_LITTLE_ENDIAN
#error "safetensors.c copies little-endian tensor data as is: port it (byte swaps) before building on a big-endian host"
#endif

/* Real headers nest three deep ({ "name": { "shape": [ ] } }). */
#define MAX_JSON_DEPTH 64

/* ------------------------------------------------------------------ dtypes */

static const struct
{
  const char *name;
  gsize       size;
} dtype_info[DDPM_DTYPE_COUNT] = {
  [DDPM_DTYPE_F32] = { "F32", 4 },
  [DDPM_DTYPE_F64] = { "F64", 8 },
  [DDPM_DTYPE_I64] = { "I64", 8 },
  [DDPM_DTYPE_U64] = { "U64", 8 },
  [DDPM_DTYPE_U8]  = { "U8", 1 },
  [DDPM_DTYPE_F16] = { "F16", 2 },
  [DDPM_DTYPE_BF16] = { "BF16", 2 },
};

/* Valid safetensors dtypes that we do not read: a file using one is not
 * damaged, just beyond us (DDPM_ERROR_UNSUPPORTED). */
static const char *const foreign_dtypes[] = {
  "F8_E4M3", "F8_E5M2", "I8", "I16", "I32", "U16", "U32", "BOOL",
};

const char *
ddpm_dtype_name (DdpmDtype dtype)
{
  g_return_val_if_fail (dtype < DDPM_DTYPE_COUNT, NULL);
  return dtype_info[dtype].name;
}

gsize
ddpm_dtype_size (DdpmDtype dtype)
{
  g_return_val_if_fail (dtype < DDPM_DTYPE_COUNT, 0);
  return dtype_info[dtype].size;
}

static char *
dtype_list (void)
{
  GString *s = g_string_new (NULL);

  for (int i = 0; i < DDPM_DTYPE_COUNT; i++)
    g_string_append_printf (s, "%s%s", i ? ", " : "", dtype_info[i].name);
  return g_string_free (s, FALSE);
}

gboolean
ddpm_dtype_from_string (const char  *name,
                        DdpmDtype   *dtype,
                        GError     **error)
{
  g_return_val_if_fail (name != NULL, FALSE);

  for (int i = 0; i < DDPM_DTYPE_COUNT; i++)
    if (strcmp (name, dtype_info[i].name) == 0)
      {
        if (dtype)
          *dtype = (DdpmDtype) i;
        return TRUE;
      }

  char *valid = dtype_list ();
  g_set_error (error, DDPM_ERROR, DDPM_ERROR_INVALID_ARGUMENT,
               _("Unknown tensor dtype '%s' (supported: %s)"), name, valid);
  g_free (valid);
  return FALSE;
}

/* "[32, 3, 3, 3]" */
static char *
shape_string (int ndim, const gint64 *shape)
{
  GString *s = g_string_new ("[");

  for (int i = 0; i < ndim; i++)
    g_string_append_printf (s, "%s%" G_GINT64_FORMAT, i ? ", " : "", shape[i]);
  g_string_append_c (s, ']');
  return g_string_free (s, FALSE);
}

/* numel of a shape, FALSE on overflow or a negative dim. */
static gboolean
shape_n_elements (int ndim, const gint64 *shape, guint64 *numel)
{
  guint64 n = 1;

  for (int i = 0; i < ndim; i++)
    {
      if (shape[i] < 0 || !g_uint64_checked_mul (&n, n, (guint64) shape[i]))
        return FALSE;
    }
  *numel = n;
  return TRUE;
}

/* ------------------------------------------------------------------ reader */

typedef struct
{
  char     *name;
  DdpmDtype dtype;
  int       ndim;
  gint64    shape[DDPM_TENSOR_MAX_DIMS];
  guint64   numel;
  guint64   begin, end;   /* bytes, relative to the data section */
} TensorEntry;

struct _DdpmTensorFile
{
  char         *display_name;
  GBytes       *bytes;      /* the whole file */
  const guint8 *data;       /* the data section, inside bytes */
  gsize         data_size;
  GPtrArray    *entries;    /* of TensorEntry*, header order */
  GHashTable   *by_name;    /* name → TensorEntry* (borrowed) */
  GHashTable   *metadata;   /* string → string */
};

static void
tensor_entry_free (gpointer p)
{
  TensorEntry *e = p;

  g_free (e->name);
  g_free (e);
}

void
ddpm_tensor_file_free (DdpmTensorFile *file)
{
  if (file == NULL)
    return;
  g_hash_table_unref (file->by_name);
  g_hash_table_unref (file->metadata);
  g_ptr_array_unref (file->entries);
  g_bytes_unref (file->bytes);
  g_free (file->display_name);
  g_free (file);
}

/* "NAME is not a safetensors model file (REASON)": the file is foreign or
 * damaged beyond recognition. */
static void G_GNUC_PRINTF (3, 4)
set_foreign (GError **error, const DdpmTensorFile *file, const char *format, ...)
{
  va_list ap;

  va_start (ap, format);
  char *reason = g_strdup_vprintf (format, ap);
  va_end (ap);
  g_set_error (error, DDPM_ERROR, DDPM_ERROR_CORRUPT_FILE,
               _("%s is not a safetensors model file (%s)"), file->display_name, reason);
  g_free (reason);
}

/* "NAME is damaged: tensor 'x' …": a well-formed header describing
 * impossible data. */
static void G_GNUC_PRINTF (4, 5)
set_damaged (GError **error, const DdpmTensorFile *file, const char *tensor,
             const char *format, ...)
{
  va_list ap;

  va_start (ap, format);
  char *reason = g_strdup_vprintf (format, ap);
  va_end (ap);
  if (tensor)
    g_set_error (error, DDPM_ERROR, DDPM_ERROR_CORRUPT_FILE,
                 _("%s is damaged: tensor '%s' %s"), file->display_name, tensor, reason);
  else
    g_set_error (error, DDPM_ERROR, DDPM_ERROR_CORRUPT_FILE,
                 _("%s is damaged: %s"), file->display_name, reason);
  g_free (reason);
}

/* The deepest nesting of [ and { outside strings, stopping early once it
 * exceeds `limit`; also rejects NUL bytes, which JSON text cannot hold. */
static gboolean
json_depth_ok (const char *text, gsize n, int limit, const char **problem)
{
  int depth = 0;
  gboolean in_string = FALSE, escaped = FALSE;

  for (gsize i = 0; i < n; i++)
    {
      char c = text[i];

      if (c == '\0')
        {
          *problem = "its header contains a NUL byte";
          return FALSE;
        }
      if (in_string)
        {
          if (escaped)
            escaped = FALSE;
          else if (c == '\\')
            escaped = TRUE;
          else if (c == '"')
            in_string = FALSE;
        }
      else if (c == '"')
        in_string = TRUE;
      else if (c == '[' || c == '{')
        {
          if (++depth > limit)
            {
              *problem = "its header nests too deeply";
              return FALSE;
            }
        }
      else if (c == ']' || c == '}')
        depth--;
    }
  return TRUE;
}

/* A non-negative JSON integer, or FALSE. */
static gboolean
json_get_count (JsonNode *node, gint64 *value)
{
  if (node == NULL || !JSON_NODE_HOLDS_VALUE (node)
      || json_node_get_value_type (node) != G_TYPE_INT64)
    return FALSE;
  *value = json_node_get_int (node);
  return *value >= 0;
}

static gboolean
parse_metadata (DdpmTensorFile *file, JsonNode *node, GError **error)
{
  if (!JSON_NODE_HOLDS_OBJECT (node))
    {
      set_damaged (error, file, NULL, "its __metadata__ is not a JSON object");
      return FALSE;
    }

  JsonObject *object = json_node_get_object (node);
  GList *members = json_object_get_members (object);
  gboolean ok = TRUE;

  for (GList *l = members; l != NULL; l = l->next)
    {
      const char *key = l->data;
      JsonNode *value = json_object_get_member (object, key);

      if (!JSON_NODE_HOLDS_VALUE (value) || json_node_get_value_type (value) != G_TYPE_STRING)
        {
          set_damaged (error, file, NULL, "its __metadata__ entry '%s' is not a string", key);
          ok = FALSE;
          break;
        }
      g_hash_table_insert (file->metadata, g_strdup (key), g_strdup (json_node_get_string (value)));
    }
  g_list_free (members);
  return ok;
}

/* One header entry → a validated TensorEntry (or NULL and error). */
static TensorEntry *
parse_entry (DdpmTensorFile *file, const char *name, JsonNode *node, GError **error)
{
  if (!JSON_NODE_HOLDS_OBJECT (node))
    {
      set_damaged (error, file, name, "is not described by a JSON object");
      return NULL;
    }

  JsonObject *object = json_node_get_object (node);
  JsonNode *dtype_node = json_object_get_member (object, "dtype");
  JsonNode *shape_node = json_object_get_member (object, "shape");
  JsonNode *offsets_node = json_object_get_member (object, "data_offsets");
  TensorEntry e = { 0 };

  /* dtype */
  if (dtype_node == NULL || !JSON_NODE_HOLDS_VALUE (dtype_node)
      || json_node_get_value_type (dtype_node) != G_TYPE_STRING)
    {
      set_damaged (error, file, name, "has no dtype string");
      return NULL;
    }
  const char *dtype = json_node_get_string (dtype_node);
  if (!ddpm_dtype_from_string (dtype, &e.dtype, NULL))
    {
      for (gsize i = 0; i < G_N_ELEMENTS (foreign_dtypes); i++)
        if (strcmp (dtype, foreign_dtypes[i]) == 0)
          {
            char *valid = dtype_list ();
            g_set_error (error, DDPM_ERROR, DDPM_ERROR_UNSUPPORTED,
                         _("%s: tensor '%s' has dtype %s, which this program does not read "
                           "(supported: %s)"), file->display_name, name, dtype, valid);
            g_free (valid);
            return NULL;
          }
      set_damaged (error, file, name, "has an unknown dtype '%s'", dtype);
      return NULL;
    }

  /* shape */
  if (shape_node == NULL || !JSON_NODE_HOLDS_ARRAY (shape_node))
    {
      set_damaged (error, file, name, "has no shape array");
      return NULL;
    }
  JsonArray *shape = json_node_get_array (shape_node);
  guint ndim = json_array_get_length (shape);
  if (ndim > DDPM_TENSOR_MAX_DIMS)
    {
      set_damaged (error, file, name, "has %u dimensions (at most %d are supported)",
                   ndim, DDPM_TENSOR_MAX_DIMS);
      return NULL;
    }
  e.ndim = (int) ndim;
  for (guint i = 0; i < ndim; i++)
    if (!json_get_count (json_array_get_element (shape, i), &e.shape[i]))
      {
        set_damaged (error, file, name, "has a shape whose dimension %u is not a "
                     "non-negative integer", i);
        return NULL;
      }
  if (!shape_n_elements (e.ndim, e.shape, &e.numel))
    {
      char *s = shape_string (e.ndim, e.shape);
      set_damaged (error, file, name, "has shape %s, too large to address", s);
      g_free (s);
      return NULL;
    }

  /* data_offsets */
  gint64 begin, end;
  if (offsets_node == NULL || !JSON_NODE_HOLDS_ARRAY (offsets_node)
      || json_array_get_length (json_node_get_array (offsets_node)) != 2
      || !json_get_count (json_array_get_element (json_node_get_array (offsets_node), 0), &begin)
      || !json_get_count (json_array_get_element (json_node_get_array (offsets_node), 1), &end))
    {
      set_damaged (error, file, name, "has no data_offsets pair of non-negative integers");
      return NULL;
    }
  if (begin > end)
    {
      set_damaged (error, file, name, "has data_offsets [%" G_GINT64_FORMAT ", %"
                   G_GINT64_FORMAT "] that end before they begin", begin, end);
      return NULL;
    }
  if ((guint64) end > file->data_size)
    {
      g_set_error (error, DDPM_ERROR, DDPM_ERROR_CORRUPT_FILE,
                   _("%s is truncated or damaged: tensor '%s' ends at byte %" PRId64
                     " of the data, which holds only %zu bytes"),
                   file->display_name, name, end, file->data_size);
      return NULL;
    }
  guint64 n_bytes;
  if (!g_uint64_checked_mul (&n_bytes, e.numel, dtype_info[e.dtype].size)
      || n_bytes != (guint64) (end - begin))
    {
      char *s = shape_string (e.ndim, e.shape);
      set_damaged (error, file, name, "has %" G_GINT64_FORMAT " bytes of data, but shape %s "
                   "of %s needs %" G_GUINT64_FORMAT " elements of %" G_GSIZE_FORMAT " bytes",
                   end - begin, s, dtype, e.numel, dtype_info[e.dtype].size);
      g_free (s);
      return NULL;
    }
  e.begin = (guint64) begin;
  e.end = (guint64) end;
  e.name = g_strdup (name);
  return g_memdup2 (&e, sizeof e);
}

static int
compare_begin (gconstpointer a, gconstpointer b)
{
  const TensorEntry *x = *(const TensorEntry *const *) a;
  const TensorEntry *y = *(const TensorEntry *const *) b;

  if (x->begin != y->begin)
    return x->begin < y->begin ? -1 : 1;
  return x->end < y->end ? -1 : x->end > y->end;
}

/* No byte of the data belongs to two tensors (empty tensors own none). */
static gboolean
check_overlaps (DdpmTensorFile *file, GError **error)
{
  /* Not g_ptr_array_copy: the copy would inherit the free function. */
  GPtrArray *sorted = g_ptr_array_sized_new (file->entries->len);
  const TensorEntry *last = NULL;   /* the non-empty tensor ending furthest */
  gboolean ok = TRUE;

  for (guint i = 0; i < file->entries->len; i++)
    g_ptr_array_add (sorted, file->entries->pdata[i]);
  g_ptr_array_sort (sorted, compare_begin);
  for (guint i = 0; i < sorted->len && ok; i++)
    {
      const TensorEntry *e = sorted->pdata[i];

      if (e->begin == e->end)
        continue;
      if (last != NULL && e->begin < last->end)
        {
          set_damaged (error, file, NULL, "tensors '%s' [%" G_GUINT64_FORMAT ", %"
                       G_GUINT64_FORMAT ") and '%s' [%" G_GUINT64_FORMAT ", %"
                       G_GUINT64_FORMAT ") share bytes", last->name, last->begin,
                       last->end, e->name, e->begin, e->end);
          ok = FALSE;
        }
      if (last == NULL || e->end > last->end)
        last = e;
    }
  g_ptr_array_unref (sorted);
  return ok;
}

static gboolean
parse_file (DdpmTensorFile *file, GError **error)
{
  gsize size = 0;
  const guint8 *bytes = g_bytes_get_data (file->bytes, &size);

  if (size < 8)
    {
      set_foreign (error, file, "%" G_GSIZE_FORMAT " bytes is too short for the "
                   "8-byte header length", size);
      return FALSE;
    }

  guint64 header_len;
  memcpy (&header_len, bytes, 8);
  header_len = GUINT64_FROM_LE (header_len);
  if (header_len > size - 8)
    {
      set_foreign (error, file, "header length %" G_GUINT64_FORMAT " exceeds the "
                   "file size %" G_GSIZE_FORMAT, header_len, size);
      return FALSE;
    }
  if (header_len > DDPM_TENSOR_FILE_MAX_HEADER)
    {
      set_foreign (error, file, "header length %" G_GUINT64_FORMAT " exceeds the "
                   "limit of %" G_GUINT64_FORMAT " bytes", header_len,
                   DDPM_TENSOR_FILE_MAX_HEADER);
      return FALSE;
    }
  if (header_len < 2)
    {
      set_foreign (error, file, "header length %" G_GUINT64_FORMAT " is too short "
                   "for a JSON object", header_len);
      return FALSE;
    }

  const char *header = (const char *) bytes + 8;
  file->data = bytes + 8 + header_len;
  file->data_size = size - 8 - (gsize) header_len;

  const char *problem = NULL;
  if (!json_depth_ok (header, header_len, MAX_JSON_DEPTH, &problem))
    {
      set_foreign (error, file, "%s", problem);
      return FALSE;
    }

  JsonParser *parser = json_parser_new_immutable ();
  GError *json_error = NULL;
  gboolean ok = FALSE;

  if (!json_parser_load_from_data (parser, header, (gssize) header_len, &json_error))
    {
      set_foreign (error, file, "its header is not valid JSON: %s", json_error->message);
      g_error_free (json_error);
      goto out;
    }
  JsonNode *root = json_parser_get_root (parser);
  if (root == NULL || !JSON_NODE_HOLDS_OBJECT (root))
    {
      set_foreign (error, file, "its header is not a JSON object");
      goto out;
    }

  JsonObject *object = json_node_get_object (root);
  GList *members = json_object_get_members (object);
  ok = TRUE;
  for (GList *l = members; l != NULL && ok; l = l->next)
    {
      const char *name = l->data;
      JsonNode *node = json_object_get_member (object, name);

      if (strcmp (name, "__metadata__") == 0)
        ok = parse_metadata (file, node, error);
      else
        {
          TensorEntry *e = parse_entry (file, name, node, error);

          if (e == NULL)
            ok = FALSE;
          else
            {
              g_ptr_array_add (file->entries, e);
              g_hash_table_insert (file->by_name, e->name, e);
            }
        }
    }
  g_list_free (members);
  if (ok)
    ok = check_overlaps (file, error);

out:
  g_object_unref (parser);
  return ok;
}

DdpmTensorFile *
ddpm_tensor_file_open_bytes_named (GBytes      *bytes,
                                   const char  *display_name,
                                   GError     **error)
{
  g_return_val_if_fail (bytes != NULL, NULL);
  g_return_val_if_fail (display_name != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  DdpmTensorFile *file = g_new0 (DdpmTensorFile, 1);
  file->display_name = g_strdup (display_name);
  file->bytes = g_bytes_ref (bytes);
  file->entries = g_ptr_array_new_with_free_func (tensor_entry_free);
  file->by_name = g_hash_table_new (g_str_hash, g_str_equal);
  file->metadata = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);

  if (!parse_file (file, error))
    {
      ddpm_tensor_file_free (file);
      return NULL;
    }
  return file;
}

DdpmTensorFile *
ddpm_tensor_file_open_bytes (GBytes *bytes, GError **error)
{
  return ddpm_tensor_file_open_bytes_named (bytes, "The model data", error);
}

DdpmTensorFile *
ddpm_tensor_file_open (const char *path, GError **error)
{
  g_return_val_if_fail (path != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  char *display = g_filename_display_name (path);
  GError *local = NULL;
  DdpmTensorFile *file = NULL;

  if (g_file_test (path, G_FILE_TEST_IS_DIR))
    {
      g_set_error (error, DDPM_ERROR, DDPM_ERROR_IO,
                   _("Could not read model file %s: it is a folder"), display);
      g_free (display);
      return NULL;
    }

  GMappedFile *mapped = g_mapped_file_new (path, FALSE, &local);
  if (mapped == NULL)
    {
      g_set_error (error, DDPM_ERROR, DDPM_ERROR_IO,
                   _("Could not read model file %s: %s"), display, local->message);
      g_error_free (local);
      g_free (display);
      return NULL;
    }

  /* The GBytes keeps the mapping alive for as long as the file lives. */
  GBytes *bytes = g_mapped_file_get_bytes (mapped);
  g_mapped_file_unref (mapped);
  file = ddpm_tensor_file_open_bytes_named (bytes, display, error);
  g_bytes_unref (bytes);
  g_free (display);
  return file;
}

const char *
ddpm_tensor_file_get_display_name (const DdpmTensorFile *file)
{
  g_return_val_if_fail (file != NULL, NULL);
  return file->display_name;
}

const char *
ddpm_tensor_file_get_metadata (const DdpmTensorFile *file, const char *key)
{
  g_return_val_if_fail (file != NULL, NULL);
  g_return_val_if_fail (key != NULL, NULL);
  return g_hash_table_lookup (file->metadata, key);
}

static int
compare_strings (gconstpointer a, gconstpointer b, G_GNUC_UNUSED gpointer user_data)
{
  return strcmp (*(const char *const *) a, *(const char *const *) b);
}

const char **
ddpm_tensor_file_list_metadata (const DdpmTensorFile *file)
{
  g_return_val_if_fail (file != NULL, NULL);

  const char **keys = (const char **) g_hash_table_get_keys_as_array (file->metadata, NULL);
  g_qsort_with_data (keys, (gint) g_hash_table_size (file->metadata), sizeof *keys,
                     compare_strings, NULL);
  return keys;
}

gboolean
ddpm_tensor_file_has (const DdpmTensorFile *file, const char *name)
{
  g_return_val_if_fail (file != NULL, FALSE);
  g_return_val_if_fail (name != NULL, FALSE);
  return g_hash_table_contains (file->by_name, name);
}

GPtrArray *
ddpm_tensor_file_list (const DdpmTensorFile *file)
{
  g_return_val_if_fail (file != NULL, NULL);

  GPtrArray *names = g_ptr_array_sized_new (file->entries->len);
  for (guint i = 0; i < file->entries->len; i++)
    g_ptr_array_add (names, ((TensorEntry *) file->entries->pdata[i])->name);
  return names;
}

gboolean
ddpm_tensor_file_get_shape (const DdpmTensorFile *file,
                            const char           *name,
                            DdpmDtype            *dtype,
                            int                  *ndim,
                            gint64                shape[DDPM_TENSOR_MAX_DIMS])
{
  g_return_val_if_fail (file != NULL, FALSE);
  g_return_val_if_fail (name != NULL, FALSE);

  const TensorEntry *e = g_hash_table_lookup (file->by_name, name);
  if (e == NULL)
    return FALSE;
  if (dtype)
    *dtype = e->dtype;
  if (ndim)
    *ndim = e->ndim;
  if (shape)
    for (int i = 0; i < DDPM_TENSOR_MAX_DIMS; i++)
      shape[i] = i < e->ndim ? e->shape[i] : 0;
  return TRUE;
}

guint64
ddpm_tensor_file_get_n_elements (const DdpmTensorFile *file, const char *name)
{
  g_return_val_if_fail (file != NULL, 0);
  g_return_val_if_fail (name != NULL, 0);

  const TensorEntry *e = g_hash_table_lookup (file->by_name, name);
  return e ? e->numel : 0;
}

gsize
ddpm_tensor_file_get_n_bytes (const DdpmTensorFile *file, const char *name)
{
  g_return_val_if_fail (file != NULL, 0);
  g_return_val_if_fail (name != NULL, 0);

  const TensorEntry *e = g_hash_table_lookup (file->by_name, name);
  return e ? (gsize) (e->end - e->begin) : 0;
}

/* The entry `name` with dtype `dtype`, or NULL and an error. */
static const TensorEntry *
lookup_typed (const DdpmTensorFile *file, const char *name, DdpmDtype dtype, GError **error)
{
  const TensorEntry *e = g_hash_table_lookup (file->by_name, name);

  if (e == NULL)
    {
      g_set_error (error, DDPM_ERROR, DDPM_ERROR_CORRUPT_FILE,
                   _("%s has no tensor '%s'"), file->display_name, name);
      return NULL;
    }
  if (e->dtype != dtype)
    {
      g_set_error (error, DDPM_ERROR, DDPM_ERROR_CORRUPT_FILE,
                   _("%s: tensor '%s' has dtype %s, expected %s"), file->display_name,
                   name, dtype_info[e->dtype].name, dtype_info[dtype].name);
      return NULL;
    }
  return e;
}

gboolean
ddpm_tensor_file_read_f32 (const DdpmTensorFile *file,
                           const char           *name,
                           float                *dst,
                           int                   ndim,
                           const gint64         *shape,
                           GError              **error)
{
  g_return_val_if_fail (file != NULL, FALSE);
  g_return_val_if_fail (name != NULL, FALSE);
  g_return_val_if_fail (ndim >= 0 && ndim <= DDPM_TENSOR_MAX_DIMS, FALSE);
  g_return_val_if_fail (shape != NULL || ndim == 0, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  const TensorEntry *e = g_hash_table_lookup (file->by_name, name);
  if (e == NULL || (e->dtype != DDPM_DTYPE_F16 && e->dtype != DDPM_DTYPE_BF16))
    e = lookup_typed (file, name, DDPM_DTYPE_F32, error);
  if (e == NULL)
    return FALSE;

  gboolean same = e->ndim == ndim;
  for (int i = 0; same && i < ndim; i++)
    same = e->shape[i] == shape[i];
  if (!same)
    {
      char *have = shape_string (e->ndim, e->shape), *want = shape_string (ndim, shape);
      g_set_error (error, DDPM_ERROR, DDPM_ERROR_CORRUPT_FILE,
                   _("%s: tensor '%s' has shape %s, expected %s"), file->display_name,
                   name, have, want);
      g_free (have);
      g_free (want);
      return FALSE;
    }
  g_return_val_if_fail (dst != NULL || e->numel == 0, FALSE);
  /* half-precision files (diffusers publishes fp16 variants) are widened
   * here, so every reader of weights takes them */
  if (e->dtype == DDPM_DTYPE_F16)
    ddpm_f16_to_f32 (dst, file->data + e->begin, e->numel);
  else if (e->dtype == DDPM_DTYPE_BF16)
    ddpm_bf16_to_f32 (dst, file->data + e->begin, e->numel);
  else if (e->end > e->begin)
    memcpy (dst, file->data + e->begin, e->end - e->begin);
  return TRUE;
}

gboolean
ddpm_tensor_file_read_raw (const DdpmTensorFile *file,
                           const char           *name,
                           DdpmDtype             dtype,
                           void                 *dst,
                           gsize                 n_bytes,
                           GError              **error)
{
  g_return_val_if_fail (file != NULL, FALSE);
  g_return_val_if_fail (name != NULL, FALSE);
  g_return_val_if_fail (dtype < DDPM_DTYPE_COUNT, FALSE);
  g_return_val_if_fail (dst != NULL || n_bytes == 0, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  const TensorEntry *e = lookup_typed (file, name, dtype, error);
  if (e == NULL)
    return FALSE;
  if (e->end - e->begin != n_bytes)
    {
      char *have = shape_string (e->ndim, e->shape);
      g_set_error (error, DDPM_ERROR, DDPM_ERROR_CORRUPT_FILE,
                   _("%s: tensor '%s' (shape %s) holds %" PRIu64 " bytes, "
                     "expected %zu"), file->display_name, name, have,
                   e->end - e->begin, n_bytes);
      g_free (have);
      return FALSE;
    }
  if (n_bytes > 0)
    memcpy (dst, file->data + e->begin, n_bytes);
  return TRUE;
}

/* ------------------------------------------------------------------ writer */

typedef struct
{
  char       *name;
  DdpmDtype   dtype;
  const void *data;        /* borrowed */
  int         ndim;
  gint64      shape[DDPM_TENSOR_MAX_DIMS];
  guint64     n_bytes;
} WriterEntry;

struct _DdpmTensorWriter
{
  GPtrArray  *entries;      /* of WriterEntry*, in order added */
  GHashTable *names;        /* set of entry names (borrowed) */
  GPtrArray  *meta_keys;    /* of char*, in order set */
  GHashTable *metadata;     /* key (borrowed from meta_keys) → value */
  char       *problem;      /* the first bad add, reported by write */
};

static void
writer_entry_free (gpointer p)
{
  WriterEntry *e = p;

  g_free (e->name);
  g_free (e);
}

DdpmTensorWriter *
ddpm_tensor_writer_new (void)
{
  DdpmTensorWriter *writer = g_new0 (DdpmTensorWriter, 1);

  writer->entries = g_ptr_array_new_with_free_func (writer_entry_free);
  writer->names = g_hash_table_new (g_str_hash, g_str_equal);
  writer->meta_keys = g_ptr_array_new_with_free_func (g_free);
  writer->metadata = g_hash_table_new_full (g_str_hash, g_str_equal, NULL, g_free);
  return writer;
}

void
ddpm_tensor_writer_free (DdpmTensorWriter *writer)
{
  if (writer == NULL)
    return;
  g_hash_table_unref (writer->metadata);
  g_ptr_array_unref (writer->meta_keys);
  g_hash_table_unref (writer->names);
  g_ptr_array_unref (writer->entries);
  g_free (writer->problem);
  g_free (writer);
}

void
ddpm_tensor_writer_set_metadata (DdpmTensorWriter *writer,
                                 const char       *key,
                                 const char       *value)
{
  g_return_if_fail (writer != NULL);
  g_return_if_fail (key != NULL && g_utf8_validate (key, -1, NULL));
  g_return_if_fail (value != NULL && g_utf8_validate (value, -1, NULL));

  if (!g_hash_table_contains (writer->metadata, key))
    {
      char *k = g_strdup (key);
      g_ptr_array_add (writer->meta_keys, k);
      g_hash_table_insert (writer->metadata, k, g_strdup (value));
    }
  else  /* the table keeps its own key (owned by meta_keys) */
    g_hash_table_insert (writer->metadata, (gpointer) key, g_strdup (value));
}

static void G_GNUC_PRINTF (2, 3)
writer_problem (DdpmTensorWriter *writer, const char *format, ...)
{
  va_list ap;

  if (writer->problem != NULL)
    return;
  va_start (ap, format);
  writer->problem = g_strdup_vprintf (format, ap);
  va_end (ap);
}

void
ddpm_tensor_writer_add (DdpmTensorWriter *writer,
                        const char       *name,
                        DdpmDtype         dtype,
                        const void       *data,
                        int               ndim,
                        const gint64     *shape)
{
  g_return_if_fail (writer != NULL);
  g_return_if_fail (name != NULL);

  if (!g_utf8_validate (name, -1, NULL) || strcmp (name, "__metadata__") == 0)
    {
      writer_problem (writer, "'%s' cannot name a tensor", name);
      return;
    }
  if (g_hash_table_contains (writer->names, name))
    {
      writer_problem (writer, "tensor '%s' was added twice", name);
      return;
    }
  if (dtype >= DDPM_DTYPE_COUNT)
    {
      writer_problem (writer, "tensor '%s' has an invalid dtype %d", name, (int) dtype);
      return;
    }
  if (ndim < 0 || ndim > DDPM_TENSOR_MAX_DIMS || (ndim > 0 && shape == NULL))
    {
      writer_problem (writer, "tensor '%s' has %d dimensions (0 to %d are supported)",
                      name, ndim, DDPM_TENSOR_MAX_DIMS);
      return;
    }

  WriterEntry *e = g_new0 (WriterEntry, 1);
  guint64 numel;
  e->dtype = dtype;
  e->data = data;
  e->ndim = ndim;
  if (ndim > 0)
    memcpy (e->shape, shape, (gsize) ndim * sizeof *shape);
  if (!shape_n_elements (ndim, e->shape, &numel)
      || !g_uint64_checked_mul (&e->n_bytes, numel, dtype_info[dtype].size))
    {
      char *s = shape_string (ndim, e->shape);
      writer_problem (writer, "tensor '%s' has an impossible shape %s", name, s);
      g_free (s);
      g_free (e);
      return;
    }
  if (e->n_bytes > 0 && data == NULL)
    {
      writer_problem (writer, "tensor '%s' has no data", name);
      g_free (e);
      return;
    }
  e->name = g_strdup (name);
  g_ptr_array_add (writer->entries, e);
  g_hash_table_add (writer->names, e->name);
}

/* The JSON header, padded with spaces so that 8 + its length is a
 * multiple of 8 (the data section then starts 8-byte aligned). */
static char *
writer_header (DdpmTensorWriter *writer, gsize *length)
{
  JsonBuilder *b = json_builder_new_immutable ();
  guint64 offset = 0;

  json_builder_begin_object (b);
  if (writer->meta_keys->len > 0)
    {
      json_builder_set_member_name (b, "__metadata__");
      json_builder_begin_object (b);
      for (guint i = 0; i < writer->meta_keys->len; i++)
        {
          const char *key = writer->meta_keys->pdata[i];
          json_builder_set_member_name (b, key);
          json_builder_add_string_value (b, g_hash_table_lookup (writer->metadata, key));
        }
      json_builder_end_object (b);
    }
  for (guint i = 0; i < writer->entries->len; i++)
    {
      const WriterEntry *e = writer->entries->pdata[i];

      json_builder_set_member_name (b, e->name);
      json_builder_begin_object (b);
      json_builder_set_member_name (b, "dtype");
      json_builder_add_string_value (b, dtype_info[e->dtype].name);
      json_builder_set_member_name (b, "shape");
      json_builder_begin_array (b);
      for (int d = 0; d < e->ndim; d++)
        json_builder_add_int_value (b, e->shape[d]);
      json_builder_end_array (b);
      json_builder_set_member_name (b, "data_offsets");
      json_builder_begin_array (b);
      json_builder_add_int_value (b, (gint64) offset);
      json_builder_add_int_value (b, (gint64) (offset + e->n_bytes));
      json_builder_end_array (b);
      json_builder_end_object (b);
      offset += e->n_bytes;
    }
  json_builder_end_object (b);

  JsonGenerator *gen = json_generator_new ();
  JsonNode *root = json_builder_get_root (b);
  json_generator_set_root (gen, root);
  gsize n = 0;
  char *text = json_generator_to_data (gen, &n);
  json_node_unref (root);
  g_object_unref (gen);
  g_object_unref (b);

  GString *s = g_string_new_len (text, (gssize) n);
  g_free (text);
  while ((8 + s->len) % 8 != 0)
    g_string_append_c (s, ' ');
  *length = s->len;
  return g_string_free (s, FALSE);
}

gboolean
ddpm_tensor_writer_write (DdpmTensorWriter *writer, const char *path, GError **error)
{
  g_return_val_if_fail (writer != NULL, FALSE);
  g_return_val_if_fail (path != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (writer->problem != NULL)
    {
      char *display = g_filename_display_name (path);
      g_set_error (error, DDPM_ERROR, DDPM_ERROR_INVALID_ARGUMENT,
                   _("Could not write %s: %s"), display, writer->problem);
      g_free (display);
      return FALSE;
    }

  gsize header_len;
  char *header = writer_header (writer, &header_len);
  DdpmAtomicFile *file = ddpm_atomic_file_new (path, error);
  if (file == NULL)
    {
      g_free (header);
      return FALSE;
    }

  guint64 len_le = GUINT64_TO_LE ((guint64) header_len);
  gboolean ok = ddpm_atomic_file_write (file, &len_le, 8, error)
                && ddpm_atomic_file_write (file, header, header_len, error);
  for (guint i = 0; ok && i < writer->entries->len; i++)
    {
      const WriterEntry *e = writer->entries->pdata[i];
      ok = ddpm_atomic_file_write (file, e->data, (gsize) e->n_bytes, error);
    }
  g_free (header);
  if (!ok)
    {
      ddpm_atomic_file_abort (file);
      return FALSE;
    }
  return ddpm_atomic_file_commit (file, error);
}
