/* torch-pickle.h: reading PyTorch checkpoints (`.pt` files) without running
 * them (internal to libddpm; the importer of published models uses it).
 *
 * The format torch.save writes since PyTorch 1.6 is a zip archive:
 *
 *   <top>/data.pkl      the pickled object: here a state_dict, an
 *                       OrderedDict mapping parameter names to tensors
 *   <top>/data/<key>    the raw bytes of one storage (little-endian)
 *   <top>/version       the format version ("3")
 *   <top>/byteorder     "little" (PyTorch ≥ 2.1; absent means little)
 *
 * <top> is whatever PyTorch took from the file name at save time, so it is
 * found, not assumed: the one record named "data.pkl" or ending in
 * "/data.pkl".  Each tensor in the pickle names its storage through a
 * persistent id ('storage', torch.FloatStorage, key, location, numel) and
 * views it with a shape, strides and an offset, so two tensors may share
 * one storage and a tensor need not be contiguous.
 *
 * A pickle is a program: torch.load runs it, and a malicious one runs
 * anything (os.system, eval).  This reader runs nothing.  It interprets
 * only the pickle opcodes a state_dict uses and knows only the few Python
 * names a state_dict refers to (collections.OrderedDict,
 * torch._utils._rebuild_tensor_v2 and _rebuild_parameter, the storage
 * classes); any other name or opcode is refused with an error naming it.
 * Every size, shape, stride and offset is checked against the storage it
 * views, so reading a tensor cannot touch memory outside its storage.
 *
 * WORKED EXAMPLE: every weight of a published checkpoint as float32.
 *
 *   GError *error = NULL;
 *   DdpmTorchCheckpoint *ckpt =
 *     ddpm_torch_checkpoint_open ("256x256_diffusion_uncond.pt", &error);
 *   if (ckpt == NULL)
 *     … show error->message …
 *   for (guint i = 0; i < ddpm_torch_checkpoint_get_n_tensors (ckpt); i++)
 *     {
 *       const DdpmTorchTensor *t = ddpm_torch_checkpoint_get_tensor (ckpt, i);
 *       float *w = g_new (float, t->numel);
 *       if (!ddpm_torch_checkpoint_read_f32 (ckpt, t, w, t->numel, &error))
 *         … a damaged storage …
 *       … use t->name, t->ndim, t->shape, w …
 *       g_free (w);
 *     }
 *   ddpm_torch_checkpoint_free (ckpt);
 *
 * What is read as the state_dict: the unpickled object must be a dict.  If
 * every value in it is a tensor, that dict is the state_dict (what
 * guided-diffusion, improved-diffusion and model.state_dict() save).
 * Otherwise the dict is taken as a training checkpoint wrapping one: its
 * entry "state_dict" (PyTorch Lightning), else "model", must be a dict of
 * tensors, and every other entry (optimizer state, step counters) is
 * parsed under the same rules but ignored.  Anything else is refused with
 * the keys found, so that a user sees what the file holds.
 *
 * A checkpoint is not thread-safe: read its tensors from one thread at a
 * time.
 */
#ifndef DDPM_TORCH_PICKLE_H
#define DDPM_TORCH_PICKLE_H

#include <glib.h>

#include "ddpm.h"
#include "safetensors.h"   /* DDPM_TENSOR_MAX_DIMS */

G_BEGIN_DECLS

/* Limits: each is a hundred times what a real checkpoint needs or more
 * (guided-diffusion's 552 M-parameter UNet has ~700 tensors, a data.pkl of
 * ~100 kB and a few tens of thousands of pickle objects); beyond them a
 * file is refused rather than allowed to take the machine's memory. */
#define DDPM_TORCH_MAX_PICKLE_BYTES ((gsize) 64 << 20)   /* data.pkl */
#define DDPM_TORCH_MAX_OBJECTS      ((guint64) 1 << 21)  /* values + container slots */
#define DDPM_TORCH_MAX_STACK        ((guint) 1 << 20)    /* unpickler stack entries */
#define DDPM_TORCH_MAX_MARKS        64                   /* nested MARKs (real: 3) */

/* ------------------------------------------------------------------ dtypes */

/* The storage types read.  Every one is read as float32; F64 and I64 are
 * accepted (and rounded) because real state_dicts carry the odd buffer in
 * them (BatchNorm's num_batches_tracked is a LongStorage), and refusing a
 * whole model for one counter would help nobody.  Any other storage type
 * (IntStorage, ByteStorage, BoolStorage, complex …) is refused. */
typedef enum
{
  DDPM_TORCH_DTYPE_F32,    /* torch.FloatStorage */
  DDPM_TORCH_DTYPE_F16,    /* torch.HalfStorage: IEEE binary16 */
  DDPM_TORCH_DTYPE_BF16,   /* torch.BFloat16Storage: float32's top 16 bits */
  DDPM_TORCH_DTYPE_F64,    /* torch.DoubleStorage: rounded to float32 */
  DDPM_TORCH_DTYPE_I64,    /* torch.LongStorage: rounded to float32 */
  DDPM_TORCH_DTYPE_COUNT
} DdpmTorchDtype;

/* The safetensors spelling ("F32", "F16", "BF16", "F64", "I64"). */
const char *ddpm_torch_dtype_name (DdpmTorchDtype dtype);
/* Bytes per element. */
gsize       ddpm_torch_dtype_size (DdpmTorchDtype dtype);

/* ----------------------------------------------------------------- reader */

typedef struct _DdpmTorchCheckpoint DdpmTorchCheckpoint;

/* One tensor of the state_dict.  Owned by its checkpoint; every field has
 * been validated: ndim ≤ DDPM_TENSOR_MAX_DIMS, numel = Π shape fits in 63
 * bits, and if numel > 0 every element offset + Σ index_d·stride[d] lies
 * inside the storage's storage_numel elements. */
typedef struct
{
  const char     *name;            /* the state_dict key (UTF-8) */
  DdpmTorchDtype  dtype;
  int             ndim;            /* 0 for a scalar */
  gint64          shape[DDPM_TENSOR_MAX_DIMS];
  gint64          stride[DDPM_TENSOR_MAX_DIMS];   /* in elements, ≥ 0 */
  gint64          storage_offset;  /* in elements */
  guint64         numel;           /* Π shape (1 for a scalar) */
  const char     *storage_key;     /* its bytes are <top>/data/<key> */
  guint64         storage_numel;   /* elements in that storage */
} DdpmTorchTensor;

/* Map and check the checkpoint at `path`: the zip directory, data.pkl
 * (parsed completely) and the size of every storage it names; storage
 * contents are read only by ddpm_torch_checkpoint_read_f32.  Errors, each
 * naming the file:
 *   DDPM_ERROR_IO            the file cannot be read;
 *   DDPM_ERROR_CORRUPT_FILE  not a zip, truncated, damaged, or inconsistent
 *                            (a storage of the wrong size, a view beyond its
 *                            storage);
 *   DDPM_ERROR_UNSUPPORTED   a readable file this reader will not take: the
 *                            legacy pre-1.6 format (the message says how to
 *                            re-save it), a pickle naming anything outside
 *                            the allowed globals (nothing is run), an opcode
 *                            or storage type it does not read, a big-endian
 *                            file, a limit above exceeded, or an object that
 *                            is no state_dict. */
DdpmTorchCheckpoint *ddpm_torch_checkpoint_open        (const char   *path,
                                                        GError      **error);
/* The same on the bytes of a file; keeps a reference to them. */
DdpmTorchCheckpoint *ddpm_torch_checkpoint_open_bytes  (GBytes       *bytes,
                                                        const char   *display_name,
                                                        GError      **error);
/* data.pkl alone, without its zip (tests and fuzzing): each storage the
 * pickle names exists with the size the pickle declares (up to 1 MiB each)
 * and reads as a fixed pattern of bytes. */
DdpmTorchCheckpoint *ddpm_torch_checkpoint_open_pickle (GBytes       *pickle,
                                                        const char   *display_name,
                                                        GError      **error);
void                 ddpm_torch_checkpoint_free        (DdpmTorchCheckpoint *ckpt);

/* The name error messages use (UTF-8). */
const char *ddpm_torch_checkpoint_get_display_name  (const DdpmTorchCheckpoint *ckpt);
/* The archive's top folder, <top> above ("" for data.pkl alone). */
const char *ddpm_torch_checkpoint_get_prefix        (const DdpmTorchCheckpoint *ckpt);
/* NULL if the file is a bare state_dict, else the key of the wrapping dict
 * it came from ("state_dict" or "model"). */
const char *ddpm_torch_checkpoint_get_state_dict_key (const DdpmTorchCheckpoint *ckpt);

/* Tensors in the state_dict's order. */
guint                  ddpm_torch_checkpoint_get_n_tensors (const DdpmTorchCheckpoint *ckpt);
const DdpmTorchTensor *ddpm_torch_checkpoint_get_tensor    (const DdpmTorchCheckpoint *ckpt,
                                                            guint                      index);
/* NULL if there is no tensor called `name`. */
const DdpmTorchTensor *ddpm_torch_checkpoint_lookup        (const DdpmTorchCheckpoint *ckpt,
                                                            const char                *name);

/* Copy `tensor` (one of ckpt's) into dst as contiguous row-major float32:
 * dst[i] for the i-th index tuple in row-major order is the storage
 * element storage_offset + Σ index_d·stride[d], converted from its dtype.
 * n_elements must equal tensor->numel (DDPM_ERROR_INVALID_ARGUMENT
 * otherwise).  Only the bytes the view spans are read and held, but the
 * first read from a storage streams its whole record once so that its
 * checksum is verified (DDPM_ERROR_CORRUPT_FILE naming the file and the
 * tensor if it is damaged); DDPM_ERROR_NO_MEMORY if the span does not fit
 * in memory. */
gboolean ddpm_torch_checkpoint_read_f32 (DdpmTorchCheckpoint   *ckpt,
                                         const DdpmTorchTensor *tensor,
                                         float                 *dst,
                                         guint64                n_elements,
                                         GError               **error);

/* ---------------------------------------------------------------- fuzzing */

typedef struct
{
  gboolean opened;       /* else error_code holds the DdpmError */
  int      error_code;
  guint    n_tensors;    /* tensors read back */
  guint64  n_values;     /* floats read back */
} DdpmTorchFuzzResult;

/* The fuzzing entry (tests/test-torch-pickle-fuzz.c drives it; a libFuzzer
 * LLVMFuzzerTestOneInput can call it as is): open `data` as a checkpoint
 * file, or with pickle_only as data.pkl alone, and read back every tensor
 * into exactly-sized buffers.  Returns NULL when the reader kept its
 * promises: opening failed with a DDPM_ERROR naming the data, or opening
 * succeeded with consistent tensors that all read (a read may fail only as
 * DDPM_ERROR_CORRUPT_FILE, for a storage damaged inside the zip).
 * Otherwise returns what went wrong (free with g_free); the driver should
 * abort on it.  result may be NULL. */
char *ddpm_torch_checkpoint_fuzz (const guint8        *data,
                                  gsize                size,
                                  gboolean             pickle_only,
                                  DdpmTorchFuzzResult *result);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (DdpmTorchCheckpoint, ddpm_torch_checkpoint_free)

/* n IEEE binary16 (F16) or bfloat16 (BF16) values, little-endian and
 * unaligned, into floats, exactly (every one is a float): the one
 * conversion, shared with the safetensors reader. */
void ddpm_f16_to_f32  (float *dst, const void *src, gsize n);
void ddpm_bf16_to_f32 (float *dst, const void *src, gsize n);

G_END_DECLS

#endif /* DDPM_TORCH_PICKLE_H */
