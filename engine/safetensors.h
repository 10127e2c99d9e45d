/* safetensors.h: reading and writing safetensors model files (internal to
 * libddpm; model.c, train.c, the command line and the tests use it).
 *
 * The format (https://github.com/huggingface/safetensors):
 *
 *   u64 N (little-endian) | N bytes of JSON header | data section
 *
 * The header is a JSON object mapping each tensor name to
 *   {"dtype": "F32", "shape": [32, 3, 3, 3], "data_offsets": [begin, end]}
 * with byte offsets relative to the data section, plus an optional
 * "__metadata__" object of string → string.  Tensors are raw, contiguous,
 * row-major, little-endian.
 *
 * The reader validates the whole file when it is opened, so every later
 * read is a bounds-checked memcpy.  The writer is atomic: a crash or an
 * error never leaves a half-written file at the destination.
 */
#ifndef DDPM_SAFETENSORS_H
#define DDPM_SAFETENSORS_H

#include <glib.h>

#include "ddpm.h"

G_BEGIN_DECLS

/* The largest header we accept (the reference implementation's limit):
 * a real header is a few hundred bytes per tensor. */
#define DDPM_TENSOR_FILE_MAX_HEADER ((guint64) 100 * 1000 * 1000)
/* The most dimensions a tensor may have. */
#define DDPM_TENSOR_MAX_DIMS 8

/* ------------------------------------------------------------------ dtypes */

typedef enum
{
  DDPM_DTYPE_F32,
  DDPM_DTYPE_F64,
  DDPM_DTYPE_I64,
  DDPM_DTYPE_U64,
  DDPM_DTYPE_U8,
  DDPM_DTYPE_F16,   /* IEEE binary16: read_f32 converts (diffusers' fp16 files) */
  DDPM_DTYPE_BF16,  /* bfloat16: read_f32 converts */
  DDPM_DTYPE_COUNT
} DdpmDtype;

/* The safetensors spelling ("F32", …). */
const char *ddpm_dtype_name        (DdpmDtype dtype);
/* Bytes per element. */
gsize       ddpm_dtype_size        (DdpmDtype dtype);
/* FALSE (and error listing the supported names) for anything else. */
gboolean    ddpm_dtype_from_string (const char  *name,
                                    DdpmDtype   *dtype,
                                    GError     **error);

/* ------------------------------------------------------------------ reader */

typedef struct _DdpmTensorFile DdpmTensorFile;

/* Map and validate the file at `path`: DDPM_ERROR_IO if it cannot be
 * read, DDPM_ERROR_CORRUPT_FILE if it is damaged, truncated or not a
 * safetensors file, DDPM_ERROR_UNSUPPORTED if it holds a dtype we do not
 * read (F8_E4M3, I32, …).  Error messages name the file and the problem. */
DdpmTensorFile *ddpm_tensor_file_open       (const char  *path,
                                             GError     **error);
/* The same on bytes in memory (tests, fuzzing).  Keeps a reference. */
DdpmTensorFile *ddpm_tensor_file_open_bytes (GBytes      *bytes,
                                             GError     **error);
/* As above, naming the data `display_name` in error messages. */
DdpmTensorFile *ddpm_tensor_file_open_bytes_named (GBytes      *bytes,
                                                   const char  *display_name,
                                                   GError     **error);
void            ddpm_tensor_file_free       (DdpmTensorFile *file);

/* The file's name as error messages show it (UTF-8). */
const char     *ddpm_tensor_file_get_display_name (const DdpmTensorFile *file);
/* A "__metadata__" value, or NULL if absent.  Owned by the file. */
const char     *ddpm_tensor_file_get_metadata (const DdpmTensorFile *file,
                                               const char           *key);
/* The "__metadata__" keys, sorted; a NULL-terminated array of strings
 * owned by the file (free only the array, with g_free). */
const char    **ddpm_tensor_file_list_metadata (const DdpmTensorFile *file);
gboolean        ddpm_tensor_file_has          (const DdpmTensorFile *file,
                                               const char           *name);

/* Copy tensor `name` (dtype F32, or F16 / BF16 converted to float exactly:
 * every half and bfloat16 is a float) into dst after checking that its
 * shape is exactly shape[0..ndim−1].  The error (DDPM_ERROR_CORRUPT_FILE) names the
 * file, the tensor and what differs: a missing tensor, another dtype, or
 * another shape. */
gboolean        ddpm_tensor_file_read_f32     (const DdpmTensorFile *file,
                                               const char           *name,
                                               float                *dst,
                                               int                   ndim,
                                               const gint64         *shape,
                                               GError              **error);
/* Copy tensor `name` into dst after checking its dtype and that it holds
 * exactly n_bytes. */
gboolean        ddpm_tensor_file_read_raw     (const DdpmTensorFile *file,
                                               const char           *name,
                                               DdpmDtype             dtype,
                                               void                 *dst,
                                               gsize                 n_bytes,
                                               GError              **error);
/* The tensor names in header order: a new array of strings owned by the
 * file (free the array with g_ptr_array_unref). */
GPtrArray      *ddpm_tensor_file_list         (const DdpmTensorFile *file);
/* dtype, rank and dims of `name` (any out pointer may be NULL); FALSE if
 * there is no such tensor. */
gboolean        ddpm_tensor_file_get_shape    (const DdpmTensorFile *file,
                                               const char           *name,
                                               DdpmDtype            *dtype,
                                               int                  *ndim,
                                               gint64                shape[DDPM_TENSOR_MAX_DIMS]);
/* Elements and bytes of `name` (0 if there is no such tensor). */
guint64         ddpm_tensor_file_get_n_elements (const DdpmTensorFile *file,
                                                 const char           *name);
gsize           ddpm_tensor_file_get_n_bytes    (const DdpmTensorFile *file,
                                                 const char           *name);

/* ------------------------------------------------------------------ writer */

typedef struct _DdpmTensorWriter DdpmTensorWriter;

DdpmTensorWriter *ddpm_tensor_writer_new   (void);
void              ddpm_tensor_writer_free  (DdpmTensorWriter *writer);
/* Set (or replace) a "__metadata__" entry; both strings are copied. */
void              ddpm_tensor_writer_set_metadata (DdpmTensorWriter *writer,
                                                   const char       *key,
                                                   const char       *value);
/* Add a tensor: the name and shape are copied, the data is NOT: it must
 * stay valid until ddpm_tensor_writer_write() returns.  data may be NULL
 * when the tensor has no elements.  A bad argument (a name added twice,
 * more than DDPM_TENSOR_MAX_DIMS dims, a negative dim) is reported by
 * the next write. */
void              ddpm_tensor_writer_add   (DdpmTensorWriter *writer,
                                            const char       *name,
                                            DdpmDtype         dtype,
                                            const void       *data,
                                            int               ndim,
                                            const gint64     *shape);
/* Write the file: tensors in the order added, data 8-byte aligned.
 * Atomic (atomic-file.h): on failure the old file at `path`, if any,
 * is untouched and no temporary file is left behind. */
gboolean          ddpm_tensor_writer_write (DdpmTensorWriter *writer,
                                            const char       *path,
                                            GError          **error);

G_END_DECLS

#endif /* DDPM_SAFETENSORS_H */
