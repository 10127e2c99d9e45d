/* torch-pickle.c: PyTorch `.pt` checkpoints, read by a restricted
 * unpickler that runs nothing.
 *
 * HOW IT WORKS
 *
 * Opening maps the file and hands it to libzip as a memory source (libzip
 * checks the directory against the local headers, ZIP_CHECKCONS).  A file
 * that is not a zip but starts like a pickle is the legacy pre-1.6 format:
 * refused with the one-line re-save recipe.  The archive's top folder is
 * found as the prefix of its single "…/data.pkl"; a "byteorder" record, if
 * there is one, must say "little".  data.pkl (at most 64 MB) is read whole,
 * which makes libzip verify its CRC, and unpickled.
 *
 * The unpickler is Python's stack machine (Lib/pickle.py, _Unpickler)
 * reduced to what a state_dict needs.  Values live in an arena freed after
 * parsing, so the object graph needs no reference counts and may even be
 * cyclic (a list appended to itself) without leaking; nothing ever walks
 * it recursively.  A MARK records the stack height, and an opcode may pop
 * only down to the newest mark, as in Python 3.  The memo is a hash table
 * (LONG_BINPUT indices are 32 bits: no array sized by them).  Memory is
 * bounded by counting every value and every container slot against
 * DDPM_TORCH_MAX_OBJECTS, and the stack and MARK nesting separately.
 *
 * GLOBAL and STACK_GLOBAL are where a malicious pickle gets its power
 * (`posix.system`, `builtins.eval`): the name is checked against an allow
 * list at the moment it is NAMED, not called, so anything else stops the
 * parse there.  The allowed names are not Python callables but markers:
 * REDUCE on collections.OrderedDict makes an empty dict,
 * torch._utils._rebuild_tensor_v2 makes a tensor description after
 * checking its storage, offset, shape and strides, and
 * _rebuild_parameter unwraps one.  A storage class (torch.FloatStorage …)
 * may appear only inside a persistent id:
 *
 *   BINPERSID ('storage', torch.FloatStorage, key, location, numel)
 *
 * which names the record <top>/data/<key>.  Its size must be exactly
 * numel × element size (torch writes exactly that), and a key seen twice
 * must agree with itself.  location ('cpu', 'cuda:0') is ignored: all data
 * comes to the CPU.
 *
 * BUILD on a dict is the OrderedDict's __dict__ (nn.Module.state_dict()
 * attaches `_metadata`, the per-module version numbers): accepted and
 * dropped.  Tensors are checked when they are built: at most 8 dims, no
 * negative size or stride, numel in 63 bits, and the last element
 * offset + Σ (shape_d − 1)·stride_d inside the storage; a broadcast view
 * (stride 0) may have more elements than its storage only up to 2^24, so
 * that no file makes a reader allocate more than its data justifies.
 *
 * Reading a tensor reads the bytes its view spans (the first read of a
 * storage streams the whole record so that libzip verifies its CRC; see
 * load_storage_range) and gathers the view: a plain conversion loop when
 * the tensor is contiguous, an index odometer otherwise.  F16 and BF16 are
 * widened exactly, F64 and I64 rounded.
 *
 * Byte order: torch writes the host's order and every host we build for is
 * little-endian; the check below stops a big-endian build.
 */
#include <inttypes.h>
#include <string.h>

#include <zip.h>

#include "intl.h"
#include "torch-pickle.h"

#if G_BYTE_ORDER != G_LITTLE_ENDIAN
#error "torch-pickle.c reads little-endian storages as is: port it (byte swaps) before building on a big-endian host"
#endif

/* In pickle-only mode (no zip) a storage exists with the size the pickle
 * declares, up to this. */
#define PICKLE_ONLY_MAX_STORAGE_BYTES ((guint64) 1 << 20)
/* A broadcast view (stride 0) may have more elements than its storage
 * only up to this many. */
#define MAX_BROADCAST_NUMEL ((guint64) 1 << 24)
/* The byteorder record is one word. */
#define MAX_BYTEORDER_BYTES 64

/* ------------------------------------------------------------------ dtypes */

static const struct
{
  const char *name;
  const char *storage;    /* the torch class in persistent ids */
  gsize       size;
} dtype_info[DDPM_TORCH_DTYPE_COUNT] = {
  [DDPM_TORCH_DTYPE_F32]  = { "F32", "FloatStorage", 4 },
  [DDPM_TORCH_DTYPE_F16]  = { "F16", "HalfStorage", 2 },
  [DDPM_TORCH_DTYPE_BF16] = { "BF16", "BFloat16Storage", 2 },
  [DDPM_TORCH_DTYPE_F64]  = { "F64", "DoubleStorage", 8 },
  [DDPM_TORCH_DTYPE_I64]  = { "I64", "LongStorage", 8 },
};

const char *
ddpm_torch_dtype_name (DdpmTorchDtype dtype)
{
  g_return_val_if_fail (dtype < DDPM_TORCH_DTYPE_COUNT, NULL);
  return dtype_info[dtype].name;
}

gsize
ddpm_torch_dtype_size (DdpmTorchDtype dtype)
{
  g_return_val_if_fail (dtype < DDPM_TORCH_DTYPE_COUNT, 0);
  return dtype_info[dtype].size;
}

/* IEEE 754 binary16 → binary32, exactly (every half is a float). */
static inline float
half_to_float (guint16 h)
{
  guint32 sign = (guint32) (h & 0x8000u) << 16;
  guint32 exponent = (h >> 10) & 0x1f, mantissa = h & 0x3ff, bits;
  float f;

  if (exponent == 0)
    {
      /* zero or subnormal: mantissa · 2^−24, exact in float */
      f = (float) mantissa * 0x1p-24f;
      memcpy (&bits, &f, 4);
      bits |= sign;
    }
  else if (exponent == 31)
    bits = sign | 0x7f800000u | (mantissa << 13);   /* inf, NaN (payload kept) */
  else
    bits = sign | ((exponent + 127 - 15) << 23) | (mantissa << 13);
  memcpy (&f, &bits, 4);
  return f;
}

/* bfloat16 is the top half of a float32. */
static inline float
bf16_to_float (guint16 h)
{
  guint32 bits = (guint32) h << 16;
  float f;

  memcpy (&f, &bits, 4);
  return f;
}

void
ddpm_f16_to_f32 (float *dst, const void *src, gsize n)
{
  const guint8 *p = src;

  for (gsize i = 0; i < n; i++)
    {
      guint16 v = (guint16) (p[2 * i] | p[2 * i + 1] << 8);
      dst[i] = half_to_float (v);
    }
}

void
ddpm_bf16_to_f32 (float *dst, const void *src, gsize n)
{
  const guint8 *p = src;

  for (gsize i = 0; i < n; i++)
    {
      guint16 v = (guint16) (p[2 * i] | p[2 * i + 1] << 8);
      dst[i] = bf16_to_float (v);
    }
}

/* Element i of a storage as float.  The storage is a byte buffer that
 * need not be aligned: memcpy, never a cast pointer. */
static inline float
element_f32 (const guint8 *data, DdpmTorchDtype dtype, guint64 i)
{
  switch (dtype)
    {
    case DDPM_TORCH_DTYPE_F32:
      {
        float v;
        memcpy (&v, data + i * 4, 4);
        return v;
      }
    case DDPM_TORCH_DTYPE_F16:
      {
        guint16 v;
        memcpy (&v, data + i * 2, 2);
        return half_to_float (v);
      }
    case DDPM_TORCH_DTYPE_BF16:
      {
        guint16 v;
        memcpy (&v, data + i * 2, 2);
        return bf16_to_float (v);
      }
    case DDPM_TORCH_DTYPE_F64:
      {
        double v;
        memcpy (&v, data + i * 8, 8);
        return (float) v;
      }
    case DDPM_TORCH_DTYPE_I64:
      {
        gint64 v;
        memcpy (&v, data + i * 8, 8);
        return (float) v;
      }
    default:
      g_assert_not_reached ();
    }
  return 0;
}

/* ------------------------------------------------------------- checkpoint */

typedef struct
{
  char          *key;
  DdpmTorchDtype dtype;
  guint64        numel;
  guint64        n_bytes;
  zip_uint64_t   index;     /* its record in the zip (unused pickle-only) */
  gboolean       verified;  /* its CRC has been checked */
} Storage;

struct _DdpmTorchCheckpoint
{
  char         *display_name;
  GBytes       *bytes;           /* the file; NULL pickle-only */
  zip_t        *zip;             /* NULL pickle-only */
  char         *prefix;          /* <top> */
  char         *state_dict_key;  /* NULL, "state_dict" or "model" */
  GPtrArray    *storages;        /* of Storage*, owned */
  GHashTable   *storage_by_key;  /* key → Storage* (borrowed) */
  GPtrArray    *tensors;         /* of DdpmTorchTensor*, owned, in order */
  GHashTable   *by_name;         /* name → DdpmTorchTensor* (borrowed) */
};

static void
storage_free (gpointer p)
{
  Storage *s = p;

  g_free (s->key);
  g_free (s);
}

static void
tensor_free (gpointer p)
{
  DdpmTorchTensor *t = p;

  g_free ((char *) t->name);
  g_free (t);
}

static DdpmTorchCheckpoint *
checkpoint_new (const char *display_name)
{
  DdpmTorchCheckpoint *ckpt = g_new0 (DdpmTorchCheckpoint, 1);

  ckpt->display_name = g_strdup (display_name);
  ckpt->prefix = g_strdup ("");
  ckpt->storages = g_ptr_array_new_with_free_func (storage_free);
  ckpt->storage_by_key = g_hash_table_new (g_str_hash, g_str_equal);
  ckpt->tensors = g_ptr_array_new_with_free_func (tensor_free);
  ckpt->by_name = g_hash_table_new (g_str_hash, g_str_equal);
  return ckpt;
}

void
ddpm_torch_checkpoint_free (DdpmTorchCheckpoint *ckpt)
{
  if (ckpt == NULL)
    return;
  if (ckpt->zip)
    zip_discard (ckpt->zip);   /* read-only: nothing to write back */
  g_hash_table_unref (ckpt->by_name);
  g_ptr_array_unref (ckpt->tensors);
  g_hash_table_unref (ckpt->storage_by_key);
  g_ptr_array_unref (ckpt->storages);
  if (ckpt->bytes)
    g_bytes_unref (ckpt->bytes);
  g_free (ckpt->state_dict_key);
  g_free (ckpt->prefix);
  g_free (ckpt->display_name);
  g_free (ckpt);
}

/* "NAME is damaged: REASON" */
static void G_GNUC_PRINTF (3, 4)
set_damaged (GError **error, const DdpmTorchCheckpoint *ckpt, const char *format, ...)
{
  va_list ap;

  va_start (ap, format);
  char *reason = g_strdup_vprintf (format, ap);
  va_end (ap);
  g_set_error (error, DDPM_ERROR, DDPM_ERROR_CORRUPT_FILE, _("%s is damaged: %s"),
               ckpt->display_name, reason);
  g_free (reason);
}

/* A string from the file, made safe and short for a message: printable
 * ASCII kept, anything else escaped, at most ~80 characters. */
static char *
quote (const char *s, gsize len)
{
  GString *out = g_string_new (NULL);

  for (gsize i = 0; i < len; i++)
    {
      if (out->len >= 80)
        {
          g_string_append (out, "…");
          break;
        }
      guint8 c = (guint8) s[i];
      if (c >= 0x20 && c < 0x7f && c != '\\' && c != '\'')
        g_string_append_c (out, (char) c);
      else
        g_string_append_printf (out, "\\x%02x", c);
    }
  return g_string_free (out, FALSE);
}

/* -------------------------------------------------------------- unpickler */

typedef enum
{
  V_NONE, V_BOOL, V_INT, V_FLOAT, V_STR, V_TUPLE, V_LIST, V_DICT,
  V_GLOBAL, V_STORAGE, V_TENSOR
} Kind;

static const char *const kind_names[] = {
  "None", "bool", "int", "float", "str", "tuple", "list", "dict",
  "function or class", "storage", "tensor",
};

/* The allowed globals. */
typedef enum
{
  G_ORDERED_DICT,      /* collections.OrderedDict */
  G_REBUILD_TENSOR,    /* torch._utils._rebuild_tensor_v2 */
  G_REBUILD_PARAMETER, /* torch._utils._rebuild_parameter */
  G_STORAGE,           /* torch.FloatStorage …, with its dtype */
} GlobalKind;

static const char *const global_names[] = {
  "collections.OrderedDict", "torch._utils._rebuild_tensor_v2",
  "torch._utils._rebuild_parameter", "a torch storage class",
};

typedef struct Value Value;
struct Value
{
  Kind kind;
  union
  {
    gint64  i;          /* V_BOOL, V_INT */
    double  f;          /* V_FLOAT */
    char   *s;          /* V_STR: UTF-8 without NUL */
    GPtrArray *items;   /* V_TUPLE, V_LIST: of Value* (borrowed) */
    struct
    {
      GPtrArray  *keys, *values;   /* of Value* (borrowed), in insertion order */
      GHashTable *index;           /* canonical key → position + 1 */
    } dict;
    struct
    {
      GlobalKind     kind;
      DdpmTorchDtype dtype;        /* G_STORAGE */
    } global;
    Storage         *storage;      /* V_STORAGE (owned by the checkpoint) */
    DdpmTorchTensor *tensor;       /* V_TENSOR (owned here; name unset) */
  } u;
};

static void
value_free (gpointer p)
{
  Value *v = p;

  switch (v->kind)
    {
    case V_STR:
      g_free (v->u.s);
      break;
    case V_TUPLE:
    case V_LIST:
      g_ptr_array_unref (v->u.items);
      break;
    case V_DICT:
      g_ptr_array_unref (v->u.dict.keys);
      g_ptr_array_unref (v->u.dict.values);
      g_hash_table_unref (v->u.dict.index);
      break;
    case V_TENSOR:
      g_free (v->u.tensor);
      break;
    default:
      break;
    }
  g_free (v);
}

typedef struct
{
  DdpmTorchCheckpoint *ckpt;
  const guint8 *start, *p, *end;
  gsize         op_at;      /* offset of the opcode being run */
  GPtrArray    *stack;      /* of Value* (borrowed) */
  GArray       *marks;      /* of guint: stack heights at each MARK */
  GHashTable   *memo;       /* index → Value* (borrowed) */
  GPtrArray    *arena;      /* owns every Value */
  guint64       n_objects;
} Unpickler;

/* "NAME is damaged: its pickle (data.pkl, byte N) REASON" for code
 * DDPM_ERROR_CORRUPT_FILE, "NAME cannot be read: its pickle (…) REASON"
 * for DDPM_ERROR_UNSUPPORTED. */
static void G_GNUC_PRINTF (4, 5)
pickle_error (GError **error, const Unpickler *u, int code, const char *format, ...)
{
  va_list ap;

  va_start (ap, format);
  char *reason = g_strdup_vprintf (format, ap);
  va_end (ap);
  if (code == DDPM_ERROR_CORRUPT_FILE)
    g_set_error (error, DDPM_ERROR, code, _("%s is damaged: its pickle (data.pkl, byte %zu) %s"),
                 u->ckpt->display_name, u->op_at, reason);
  else
    g_set_error (error, DDPM_ERROR, code,
                 _("%s cannot be read: its pickle (data.pkl, byte %zu) %s"),
                 u->ckpt->display_name, u->op_at, reason);
  g_free (reason);
}

static gboolean
count_objects (Unpickler *u, guint64 n, GError **error)
{
  u->n_objects += n;
  if (u->n_objects > DDPM_TORCH_MAX_OBJECTS)
    {
      pickle_error (error, u, DDPM_ERROR_UNSUPPORTED, "builds more than %" G_GUINT64_FORMAT
                    " objects, far more than a state_dict has", DDPM_TORCH_MAX_OBJECTS);
      return FALSE;
    }
  return TRUE;
}

static Value *
value_new (Unpickler *u, Kind kind, GError **error)
{
  if (!count_objects (u, 1, error))
    return NULL;

  Value *v = g_new0 (Value, 1);
  v->kind = kind;
  g_ptr_array_add (u->arena, v);
  return v;
}

static Value *
dict_new (Unpickler *u, GError **error)
{
  Value *v = value_new (u, V_DICT, error);

  if (v)
    {
      v->u.dict.keys = g_ptr_array_new ();
      v->u.dict.values = g_ptr_array_new ();
      v->u.dict.index = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
    }
  return v;
}

/* Python's equality on the keys a dict of ours may hold: str, int, bool
 * (True == 1) and None.  Anything else is not a state_dict's key. */
static char *
canonical_key (const Value *key)
{
  switch (key->kind)
    {
    case V_STR:  return g_strconcat ("s", key->u.s, NULL);
    case V_INT:
    case V_BOOL: return g_strdup_printf ("i%" G_GINT64_FORMAT, key->u.i);
    case V_NONE: return g_strdup ("n");
    default:     return NULL;
    }
}

static gboolean
dict_set (Unpickler *u, Value *dict, Value *key, Value *value, GError **error)
{
  if (dict->kind != V_DICT)
    {
      pickle_error (error, u, DDPM_ERROR_CORRUPT_FILE, "sets an item of a %s",
                    kind_names[dict->kind]);
      return FALSE;
    }

  char *k = canonical_key (key);
  if (k == NULL)
    {
      pickle_error (error, u, DDPM_ERROR_UNSUPPORTED, "uses a %s as a dict key",
                    kind_names[key->kind]);
      return FALSE;
    }

  guint pos = GPOINTER_TO_UINT (g_hash_table_lookup (dict->u.dict.index, k));
  if (pos > 0)
    {
      /* As Python: the first key object stays, the value is replaced. */
      dict->u.dict.values->pdata[pos - 1] = value;
      g_free (k);
      return TRUE;
    }
  if (!count_objects (u, 2, error))
    {
      g_free (k);
      return FALSE;
    }
  g_ptr_array_add (dict->u.dict.keys, key);
  g_ptr_array_add (dict->u.dict.values, value);
  g_hash_table_insert (dict->u.dict.index, k, GUINT_TO_POINTER (dict->u.dict.keys->len));
  return TRUE;
}

static Value *
dict_get (const Value *dict, const char *str_key)
{
  char *k = g_strconcat ("s", str_key, NULL);
  guint pos = GPOINTER_TO_UINT (g_hash_table_lookup (dict->u.dict.index, k));

  g_free (k);
  return pos > 0 ? dict->u.dict.values->pdata[pos - 1] : NULL;
}

static gboolean
push (Unpickler *u, Value *v, GError **error)
{
  if (u->stack->len >= DDPM_TORCH_MAX_STACK)
    {
      pickle_error (error, u, DDPM_ERROR_UNSUPPORTED, "stacks more than %u values",
                    DDPM_TORCH_MAX_STACK);
      return FALSE;
    }
  g_ptr_array_add (u->stack, v);
  return TRUE;
}

/* The stack height below which the current opcode may not pop. */
static guint
stack_floor (const Unpickler *u)
{
  return u->marks->len ? g_array_index (u->marks, guint, u->marks->len - 1) : 0;
}

static Value *
pop (Unpickler *u, const char *op, GError **error)
{
  if (u->stack->len <= stack_floor (u))
    {
      pickle_error (error, u, DDPM_ERROR_CORRUPT_FILE, "runs %s on an empty stack", op);
      return NULL;
    }
  return g_ptr_array_steal_index (u->stack, u->stack->len - 1);
}

static Value *
top (Unpickler *u, const char *op, GError **error)
{
  if (u->stack->len <= stack_floor (u))
    {
      pickle_error (error, u, DDPM_ERROR_CORRUPT_FILE, "runs %s on an empty stack", op);
      return NULL;
    }
  return u->stack->pdata[u->stack->len - 1];
}

/* Pop the newest MARK: the values above it are stack[*first …]. */
static gboolean
pop_mark (Unpickler *u, const char *op, guint *first, GError **error)
{
  if (u->marks->len == 0)
    {
      pickle_error (error, u, DDPM_ERROR_CORRUPT_FILE, "runs %s without a MARK", op);
      return FALSE;
    }
  *first = g_array_index (u->marks, guint, u->marks->len - 1);
  g_array_set_size (u->marks, u->marks->len - 1);
  return TRUE;
}

/* n bytes of operand, or an error if the pickle ends first. */
static const guint8 *
take (Unpickler *u, gsize n, const char *op, GError **error)
{
  if ((gsize) (u->end - u->p) < n)
    {
      pickle_error (error, u, DDPM_ERROR_CORRUPT_FILE, "ends inside a %s (truncated)", op);
      return NULL;
    }
  const guint8 *at = u->p;
  u->p += n;
  return at;
}

static guint64
read_le (const guint8 *p, int n)
{
  guint64 v = 0;

  for (int i = n - 1; i >= 0; i--)
    v = (v << 8) | p[i];
  return v;
}

static Value *
int_new (Unpickler *u, gint64 i, GError **error)
{
  Value *v = value_new (u, V_INT, error);

  if (v)
    v->u.i = i;
  return v;
}

static Value *
str_new (Unpickler *u, const guint8 *s, gsize n, GError **error)
{
  /* With a length, g_utf8_validate also refuses NUL bytes, which would cut
   * a name short in C. */
  if (!g_utf8_validate ((const char *) s, (gssize) n, NULL))
    {
      pickle_error (error, u, DDPM_ERROR_CORRUPT_FILE,
                    "holds a string that is not UTF-8 or contains a NUL character");
      return NULL;
    }
  Value *v = value_new (u, V_STR, error);
  if (v)
    v->u.s = g_strndup ((const char *) s, n);
  return v;
}

static Value *
tuple_new (Unpickler *u, Value **items, guint n, GError **error)
{
  if (!count_objects (u, n, error))
    return NULL;
  Value *v = value_new (u, V_TUPLE, error);
  if (v == NULL)
    return NULL;
  v->u.items = g_ptr_array_sized_new (n);
  for (guint i = 0; i < n; i++)
    g_ptr_array_add (v->u.items, items[i]);
  return v;
}

/* ---------------------------------------------------------------- globals */

/* module.name → an allowed global, or the error that refuses it. */
static Value *
find_global (Unpickler *u, const char *module, gsize mlen, const char *name, gsize nlen,
             GError **error)
{
  GlobalKind kind;
  DdpmTorchDtype dtype = DDPM_TORCH_DTYPE_F32;

#define IS(m, n) (mlen == strlen (m) && memcmp (module, m, mlen) == 0 \
                  && nlen == strlen (n) && memcmp (name, n, nlen) == 0)
  if (IS ("collections", "OrderedDict"))
    kind = G_ORDERED_DICT;
  else if (IS ("torch._utils", "_rebuild_tensor_v2"))
    kind = G_REBUILD_TENSOR;
  else if (IS ("torch._utils", "_rebuild_parameter"))
    kind = G_REBUILD_PARAMETER;
  else
    {
      int found = -1;
      for (int d = 0; d < DDPM_TORCH_DTYPE_COUNT && found < 0; d++)
        if (IS ("torch", dtype_info[d].storage))
          found = d;
      char *m = quote (module, mlen), *n = quote (name, nlen);
      if (found < 0 && mlen == 5 && memcmp (module, "torch", 5) == 0
          && nlen > 7 && memcmp (name + nlen - 7, "Storage", 7) == 0)
        pickle_error (error, u, DDPM_ERROR_UNSUPPORTED,
                      "holds a storage of type torch.%s, which this program does not read "
                      "(it reads FloatStorage, HalfStorage, BFloat16Storage, DoubleStorage "
                      "and LongStorage)", n);
      else if (found < 0)
        g_set_error (error, DDPM_ERROR, DDPM_ERROR_UNSUPPORTED,
                     _("%s was refused: its pickle (data.pkl, byte %zu) names "
                       "%s.%s, which no PyTorch state_dict needs (one needs only "
                       "collections.OrderedDict, torch._utils._rebuild_tensor_v2 and "
                       "_rebuild_parameter, and torch storage types) and through which "
                       "torch.load could run code.  Nothing in the file was run.  If it holds "
                       "a whole pickled model, save its state_dict instead: "
                       "torch.save(model.state_dict(), path)"),
                     u->ckpt->display_name, u->op_at, m, n);
      g_free (m);
      g_free (n);
      if (found < 0)
        return NULL;
      kind = G_STORAGE;
      dtype = (DdpmTorchDtype) found;
    }
#undef IS

  Value *v = value_new (u, V_GLOBAL, error);
  if (v)
    {
      v->u.global.kind = kind;
      v->u.global.dtype = dtype;
    }
  return v;
}

/* ---------------------------------------------------------------- storage */

/* The record of a storage key: <top>/data/<key>. */
static char *
record_name (const DdpmTorchCheckpoint *ckpt, const char *key)
{
  return *ckpt->prefix ? g_strconcat (ckpt->prefix, "/data/", key, NULL)
                       : g_strconcat ("data/", key, NULL);
}

/* BINPERSID ('storage', storage class, key, location, numel). */
static Value *
persistent_load (Unpickler *u, Value *pid, GError **error)
{
  GPtrArray *f = pid->kind == V_TUPLE ? pid->u.items : NULL;
  DdpmTorchCheckpoint *ckpt = u->ckpt;

  if (f == NULL || f->len != 5
      || ((Value *) f->pdata[0])->kind != V_STR
      || strcmp (((Value *) f->pdata[0])->u.s, "storage") != 0)
    {
      pickle_error (error, u, DDPM_ERROR_UNSUPPORTED, "holds a persistent id that is not "
                    "a tuple ('storage', type, key, location, size)");
      return NULL;
    }
  Value *type = f->pdata[1], *key = f->pdata[2], *location = f->pdata[3], *size = f->pdata[4];
  if (type->kind != V_GLOBAL || type->u.global.kind != G_STORAGE
      || key->kind != V_STR || location->kind != V_STR
      || size->kind != V_INT || size->u.i < 0)
    {
      pickle_error (error, u, DDPM_ERROR_CORRUPT_FILE, "holds a storage id whose type, key, "
                    "location or size is not what torch writes");
      return NULL;
    }

  DdpmTorchDtype dtype = type->u.global.dtype;
  guint64 numel = (guint64) size->u.i, n_bytes;
  char *k = quote (key->u.s, strlen (key->u.s));
  Storage *s = g_hash_table_lookup (ckpt->storage_by_key, key->u.s);

  if (s != NULL)
    {
      /* Tensors sharing a storage name it again: it must agree. */
      if (s->dtype != dtype || s->numel != numel)
        {
          pickle_error (error, u, DDPM_ERROR_CORRUPT_FILE, "declares storage '%s' twice, as %"
                        G_GUINT64_FORMAT " %s and %" G_GUINT64_FORMAT " %s elements", k,
                        s->numel, dtype_info[s->dtype].name, numel, dtype_info[dtype].name);
          g_free (k);
          return NULL;
        }
      goto done;
    }

  if (!g_uint64_checked_mul (&n_bytes, numel, dtype_info[dtype].size)
      || n_bytes > (guint64) G_MAXINT64)
    {
      pickle_error (error, u, DDPM_ERROR_CORRUPT_FILE, "declares storage '%s' of %"
                    G_GUINT64_FORMAT " elements, too large to address", k, numel);
      g_free (k);
      return NULL;
    }

  zip_uint64_t index = 0;
  if (ckpt->zip)
    {
      char *record = record_name (ckpt, key->u.s);
      zip_int64_t i = zip_name_locate (ckpt->zip, record, ZIP_FL_ENC_RAW);
      zip_stat_t st;
      char *r = quote (record, strlen (record));

      g_free (record);
      zip_stat_init (&st);
      if (i < 0)
        {
          set_damaged (error, ckpt, "storage '%s' has no record %s in the archive", k, r);
          g_free (r);
          g_free (k);
          return NULL;
        }
      if (zip_stat_index (ckpt->zip, (zip_uint64_t) i, 0, &st) != 0
          || !(st.valid & ZIP_STAT_SIZE) || st.size != n_bytes)
        {
          set_damaged (error, ckpt, "record %s holds %" G_GUINT64_FORMAT " bytes, but its "
                       "pickle describes a storage of %" G_GUINT64_FORMAT " %s elements (%"
                       G_GUINT64_FORMAT " bytes)", r, (guint64) st.size, numel,
                       dtype_info[dtype].name, n_bytes);
          g_free (r);
          g_free (k);
          return NULL;
        }
      g_free (r);
      index = (zip_uint64_t) i;
    }
  else if (n_bytes > PICKLE_ONLY_MAX_STORAGE_BYTES)
    {
      pickle_error (error, u, DDPM_ERROR_UNSUPPORTED, "declares storage '%s' of %"
                    G_GUINT64_FORMAT " bytes, more than a pickle without its archive may "
                    "have", k, n_bytes);
      g_free (k);
      return NULL;
    }

  if (!count_objects (u, 1, error))
    {
      g_free (k);
      return NULL;
    }
  s = g_new0 (Storage, 1);
  s->key = g_strdup (key->u.s);
  s->dtype = dtype;
  s->numel = numel;
  s->n_bytes = n_bytes;
  s->index = index;
  g_ptr_array_add (ckpt->storages, s);
  g_hash_table_insert (ckpt->storage_by_key, s->key, s);

done:
  g_free (k);
  Value *v = value_new (u, V_STORAGE, error);
  if (v)
    v->u.storage = s;
  return v;
}

/* ----------------------------------------------------------------- tensors */

/* A tuple of non-negative ints of at most DDPM_TENSOR_MAX_DIMS entries. */
static gboolean
get_dims (const Value *v, gint64 out[DDPM_TENSOR_MAX_DIMS], int *n)
{
  if (v->kind != V_TUPLE || v->u.items->len > DDPM_TENSOR_MAX_DIMS)
    return FALSE;
  for (guint d = 0; d < v->u.items->len; d++)
    {
      const Value *x = v->u.items->pdata[d];
      if (x->kind != V_INT || x->u.i < 0)
        return FALSE;
      out[d] = x->u.i;
    }
  *n = (int) v->u.items->len;
  return TRUE;
}

/* _rebuild_tensor_v2 (storage, storage_offset, size, stride, requires_grad,
 * backward_hooks[, metadata]) (torch/_utils.py). */
static Value *
rebuild_tensor (Unpickler *u, const GPtrArray *a, GError **error)
{
  DdpmTorchTensor t = { 0 };
  int n_stride = -1;

  if (a->len != 6 && a->len != 7)
    {
      pickle_error (error, u, DDPM_ERROR_CORRUPT_FILE, "calls _rebuild_tensor_v2 with %u "
                    "arguments (torch passes 6 or 7)", a->len);
      return NULL;
    }
  const Value *storage = a->pdata[0], *offset = a->pdata[1], *size = a->pdata[2];
  const Value *stride = a->pdata[3], *grad = a->pdata[4], *hooks = a->pdata[5];
  const Value *meta = a->len == 7 ? a->pdata[6] : NULL;
  if (storage->kind != V_STORAGE || offset->kind != V_INT || offset->u.i < 0
      || grad->kind != V_BOOL || hooks->kind != V_DICT
      || (meta && meta->kind != V_NONE && meta->kind != V_DICT))
    {
      pickle_error (error, u, DDPM_ERROR_CORRUPT_FILE, "calls _rebuild_tensor_v2 with "
                    "arguments of the wrong types");
      return NULL;
    }
  if (size->kind == V_TUPLE && size->u.items->len > DDPM_TENSOR_MAX_DIMS)
    {
      pickle_error (error, u, DDPM_ERROR_UNSUPPORTED, "builds a tensor of %u dimensions "
                    "(at most %d are supported)", size->u.items->len, DDPM_TENSOR_MAX_DIMS);
      return NULL;
    }
  if (!get_dims (size, t.shape, &t.ndim) || !get_dims (stride, t.stride, &n_stride)
      || n_stride != t.ndim)
    {
      pickle_error (error, u, DDPM_ERROR_CORRUPT_FILE, "builds a tensor whose size and "
                    "stride are not tuples of as many non-negative integers");
      return NULL;
    }

  const Storage *s = storage->u.storage;
  guint64 numel = 1, last = (guint64) offset->u.i;
  gboolean ok = TRUE;
  for (int d = 0; d < t.ndim && ok; d++)
    ok = g_uint64_checked_mul (&numel, numel, (guint64) t.shape[d]) && numel <= G_MAXINT64;
  if (!ok)
    {
      pickle_error (error, u, DDPM_ERROR_CORRUPT_FILE, "builds a tensor with too many "
                    "elements to address");
      return NULL;
    }
  if (numel > 0)
    {
      /* The last element viewed: offset + Σ (shape_d − 1)·stride_d. */
      for (int d = 0; d < t.ndim && ok; d++)
        {
          guint64 span;
          ok = g_uint64_checked_mul (&span, (guint64) (t.shape[d] - 1), (guint64) t.stride[d])
               && g_uint64_checked_add (&last, last, span);
        }
      if (!ok || last >= s->numel)
        {
          char *k = quote (s->key, strlen (s->key));
          pickle_error (error, u, DDPM_ERROR_CORRUPT_FILE, "builds a tensor that reaches "
                        "beyond the %" G_GUINT64_FORMAT " elements of its storage '%s'",
                        s->numel, k);
          g_free (k);
          return NULL;
        }
      if (numel > s->numel && numel > MAX_BROADCAST_NUMEL)
        {
          pickle_error (error, u, DDPM_ERROR_UNSUPPORTED, "builds a broadcast tensor of %"
                        G_GUINT64_FORMAT " elements over a storage of %" G_GUINT64_FORMAT,
                        numel, s->numel);
          return NULL;
        }
    }

  Value *v = value_new (u, V_TENSOR, error);
  if (v == NULL)
    return NULL;
  t.dtype = s->dtype;
  t.storage_offset = offset->u.i;
  t.numel = numel;
  t.storage_key = s->key;
  t.storage_numel = s->numel;
  v->u.tensor = g_memdup2 (&t, sizeof t);
  return v;
}

/* REDUCE: callable(*args), for the allowed callables only. */
static Value *
reduce (Unpickler *u, Value *callable, Value *args, GError **error)
{
  if (callable->kind != V_GLOBAL)
    {
      pickle_error (error, u, DDPM_ERROR_CORRUPT_FILE, "calls a %s",
                    kind_names[callable->kind]);
      return NULL;
    }
  GlobalKind g = callable->u.global.kind;
  if (args->kind != V_TUPLE)
    {
      pickle_error (error, u, DDPM_ERROR_CORRUPT_FILE, "calls %s with arguments in a %s",
                    global_names[g], kind_names[args->kind]);
      return NULL;
    }
  const GPtrArray *a = args->u.items;

  switch (g)
    {
    case G_ORDERED_DICT:
      /* Protocol 2 pickles an OrderedDict as OrderedDict() + SETITEMS. */
      if (a->len != 0)
        {
          pickle_error (error, u, DDPM_ERROR_UNSUPPORTED,
                        "calls collections.OrderedDict with arguments");
          return NULL;
        }
      return dict_new (u, error);
    case G_REBUILD_TENSOR:
      return rebuild_tensor (u, a, error);
    case G_REBUILD_PARAMETER:
      /* _rebuild_parameter (data, requires_grad, backward_hooks): the
       * tensor is all we keep. */
      if (a->len != 3 || ((Value *) a->pdata[0])->kind != V_TENSOR
          || ((Value *) a->pdata[1])->kind != V_BOOL || ((Value *) a->pdata[2])->kind != V_DICT)
        {
          pickle_error (error, u, DDPM_ERROR_CORRUPT_FILE, "calls _rebuild_parameter with "
                        "arguments other than (tensor, bool, dict)");
          return NULL;
        }
      return a->pdata[0];
    case G_STORAGE:
    default:
      pickle_error (error, u, DDPM_ERROR_UNSUPPORTED, "calls a torch storage class, "
                    "which torch.save never does");
      return NULL;
    }
}

/* ---------------------------------------------------------------- opcodes */

/* Every opcode of pickle protocols 0–5 (Lib/pickletools.py), so that an
 * error can name the one it will not run. */
static const char *
opcode_name (guint8 op)
{
  switch (op)
    {
    case '(': return "MARK";
    case '.': return "STOP";
    case '0': return "POP";
    case '1': return "POP_MARK";
    case '2': return "DUP";
    case 'F': return "FLOAT";
    case 'I': return "INT";
    case 'J': return "BININT";
    case 'K': return "BININT1";
    case 'L': return "LONG";
    case 'M': return "BININT2";
    case 'N': return "NONE";
    case 'P': return "PERSID";
    case 'Q': return "BINPERSID";
    case 'R': return "REDUCE";
    case 'S': return "STRING";
    case 'T': return "BINSTRING";
    case 'U': return "SHORT_BINSTRING";
    case 'V': return "UNICODE";
    case 'X': return "BINUNICODE";
    case 'a': return "APPEND";
    case 'b': return "BUILD";
    case 'c': return "GLOBAL";
    case 'd': return "DICT";
    case '}': return "EMPTY_DICT";
    case 'e': return "APPENDS";
    case 'g': return "GET";
    case 'h': return "BINGET";
    case 'i': return "INST";
    case 'j': return "LONG_BINGET";
    case 'l': return "LIST";
    case ']': return "EMPTY_LIST";
    case 'o': return "OBJ";
    case 'p': return "PUT";
    case 'q': return "BINPUT";
    case 'r': return "LONG_BINPUT";
    case 's': return "SETITEM";
    case 't': return "TUPLE";
    case ')': return "EMPTY_TUPLE";
    case 'u': return "SETITEMS";
    case 'G': return "BINFLOAT";
    case 'B': return "BINBYTES";
    case 'C': return "SHORT_BINBYTES";
    case 0x80: return "PROTO";
    case 0x81: return "NEWOBJ";
    case 0x82: return "EXT1";
    case 0x83: return "EXT2";
    case 0x84: return "EXT4";
    case 0x85: return "TUPLE1";
    case 0x86: return "TUPLE2";
    case 0x87: return "TUPLE3";
    case 0x88: return "NEWTRUE";
    case 0x89: return "NEWFALSE";
    case 0x8a: return "LONG1";
    case 0x8b: return "LONG4";
    case 0x8c: return "SHORT_BINUNICODE";
    case 0x8d: return "BINUNICODE8";
    case 0x8e: return "BINBYTES8";
    case 0x8f: return "EMPTY_SET";
    case 0x90: return "ADDITEMS";
    case 0x91: return "FROZENSET";
    case 0x92: return "NEWOBJ_EX";
    case 0x93: return "STACK_GLOBAL";
    case 0x94: return "MEMOIZE";
    case 0x95: return "FRAME";
    case 0x96: return "BYTEARRAY8";
    case 0x97: return "NEXT_BUFFER";
    case 0x98: return "READONLY_BUFFER";
    default:   return NULL;
    }
}

/* Run one opcode.  *result is set by STOP. */
static gboolean
step (Unpickler *u, Value **result, GError **error)
{
  u->op_at = (gsize) (u->p - u->start);
  guint8 op = *u->p++;
  const char *name = opcode_name (op);
  const guint8 *arg;
  Value *v = NULL, *w, *x;
  guint first;

  switch (op)
    {
    case 0x80:   /* PROTO version */
      if (!(arg = take (u, 1, name, error)))
        return FALSE;
      if (arg[0] > 5)
        {
          pickle_error (error, u, DDPM_ERROR_UNSUPPORTED, "has pickle protocol %d (this "
                        "program reads protocols up to 5)", arg[0]);
          return FALSE;
        }
      return TRUE;

    case 0x95:   /* FRAME length: a hint for buffering; the bytes follow as usual */
      if (!(arg = take (u, 8, name, error)))
        return FALSE;
      if (read_le (arg, 8) > (guint64) (u->end - u->p))
        {
          pickle_error (error, u, DDPM_ERROR_CORRUPT_FILE, "has a frame longer than the "
                        "rest of the pickle (truncated)");
          return FALSE;
        }
      return TRUE;

    case '.':    /* STOP */
      if (!(*result = pop (u, name, error)))
        return FALSE;
      return TRUE;

    case '(':    /* MARK */
      if (u->marks->len >= DDPM_TORCH_MAX_MARKS)
        {
          pickle_error (error, u, DDPM_ERROR_UNSUPPORTED, "nests MARKs more than %d deep",
                        DDPM_TORCH_MAX_MARKS);
          return FALSE;
        }
      g_array_append_val (u->marks, u->stack->len);
      return TRUE;

    case 'N':    /* NONE */
      v = value_new (u, V_NONE, error);
      break;

    case 0x88:   /* NEWTRUE */
    case 0x89:   /* NEWFALSE */
      if ((v = value_new (u, V_BOOL, error)))
        v->u.i = op == 0x88;
      break;

    case 'K':    /* BININT1: u8 */
    case 'M':    /* BININT2: u16 */
      if ((arg = take (u, op == 'K' ? 1 : 2, name, error)))
        v = int_new (u, (gint64) read_le (arg, op == 'K' ? 1 : 2), error);
      break;

    case 'J':    /* BININT: s32 */
      if ((arg = take (u, 4, name, error)))
        v = int_new (u, (gint32) (guint32) read_le (arg, 4), error);
      break;

    case 0x8a:   /* LONG1: n, then n bytes of two's complement, little-endian */
      {
        if (!(arg = take (u, 1, name, error)))
          return FALSE;
        gsize n = arg[0];
        if (n > 8)
          {
            pickle_error (error, u, DDPM_ERROR_UNSUPPORTED, "holds an integer wider than "
                          "64 bits");
            return FALSE;
          }
        if (!(arg = take (u, n, name, error)))
          return FALSE;
        guint64 bits = read_le (arg, (int) n);
        if (n > 0 && n < 8 && (arg[n - 1] & 0x80))
          bits |= G_MAXUINT64 << (8 * n);    /* sign-extend */
        v = int_new (u, (gint64) bits, error);
      }
      break;

    case 'G':    /* BINFLOAT: big-endian double (an optimizer's lr, …) */
      if ((arg = take (u, 8, name, error)) && (v = value_new (u, V_FLOAT, error)))
        {
          guint64 bits = 0;
          for (int i = 0; i < 8; i++)
            bits = (bits << 8) | arg[i];
          memcpy (&v->u.f, &bits, 8);
        }
      break;

    case 'X':    /* BINUNICODE: u32 length */
    case 0x8c:   /* SHORT_BINUNICODE: u8 length */
    case 0x8d:   /* BINUNICODE8: u64 length */
      {
        int width = op == 'X' ? 4 : op == 0x8c ? 1 : 8;
        if (!(arg = take (u, (gsize) width, name, error)))
          return FALSE;
        guint64 n = read_le (arg, width);
        if (n > (guint64) (u->end - u->p))
          {
            pickle_error (error, u, DDPM_ERROR_CORRUPT_FILE, "holds a string longer than "
                          "the rest of the pickle (truncated)");
            return FALSE;
          }
        arg = take (u, (gsize) n, name, error);
        v = str_new (u, arg, (gsize) n, error);
      }
      break;

    case '}':    /* EMPTY_DICT */
      v = dict_new (u, error);
      break;

    case ']':    /* EMPTY_LIST */
      if ((v = value_new (u, V_LIST, error)))
        v->u.items = g_ptr_array_new ();
      break;

    case ')':    /* EMPTY_TUPLE */
      v = tuple_new (u, NULL, 0, error);
      break;

    case 't':    /* TUPLE: the values above the newest MARK */
      if (!pop_mark (u, name, &first, error))
        return FALSE;
      v = tuple_new (u, (Value **) u->stack->pdata + first, u->stack->len - first, error);
      g_ptr_array_set_size (u->stack, first);
      break;

    case 0x85:   /* TUPLE1 */
    case 0x86:   /* TUPLE2 */
    case 0x87:   /* TUPLE3 */
      {
        guint n = op - 0x84u;
        if (u->stack->len < stack_floor (u) + n)
          {
            pickle_error (error, u, DDPM_ERROR_CORRUPT_FILE, "runs %s on a stack of fewer "
                          "than %u values", name, n);
            return FALSE;
          }
        first = u->stack->len - n;
        v = tuple_new (u, (Value **) u->stack->pdata + first, n, error);
        g_ptr_array_set_size (u->stack, first);
      }
      break;

    case 'q':    /* BINPUT: u8 index */
    case 'r':    /* LONG_BINPUT: u32 index */
    case 0x94:   /* MEMOIZE: the next index */
      {
        guint64 index;
        if (op == 0x94)
          index = g_hash_table_size (u->memo);
        else if ((arg = take (u, op == 'q' ? 1 : 4, name, error)))
          index = read_le (arg, op == 'q' ? 1 : 4);
        else
          return FALSE;
        if (!(w = top (u, name, error)))
          return FALSE;
        if (!g_hash_table_contains (u->memo, GUINT_TO_POINTER ((guint) index))
            && !count_objects (u, 1, error))
          return FALSE;
        g_hash_table_insert (u->memo, GUINT_TO_POINTER ((guint) index), w);
      }
      return TRUE;

    case 'h':    /* BINGET: u8 index */
    case 'j':    /* LONG_BINGET: u32 index */
      if (!(arg = take (u, op == 'h' ? 1 : 4, name, error)))
        return FALSE;
      {
        guint index = (guint) read_le (arg, op == 'h' ? 1 : 4);
        if (!(v = g_hash_table_lookup (u->memo, GUINT_TO_POINTER (index))))
          {
            pickle_error (error, u, DDPM_ERROR_CORRUPT_FILE, "gets memo entry %u, which was "
                          "never put", index);
            return FALSE;
          }
      }
      break;

    case 'c':    /* GLOBAL "module\nname\n" */
      {
        const guint8 *module = u->p;
        const guint8 *nl = memchr (module, '\n', (gsize) (u->end - module));
        const guint8 *gname = nl ? nl + 1 : NULL;
        const guint8 *nl2 = nl ? memchr (gname, '\n', (gsize) (u->end - gname)) : NULL;
        if (nl2 == NULL)
          {
            pickle_error (error, u, DDPM_ERROR_CORRUPT_FILE, "ends inside a GLOBAL "
                          "(truncated)");
            return FALSE;
          }
        u->p = nl2 + 1;
        v = find_global (u, (const char *) module, (gsize) (nl - module),
                         (const char *) gname, (gsize) (nl2 - gname), error);
      }
      break;

    case 0x93:   /* STACK_GLOBAL: module and name from the stack */
      if (!(w = pop (u, name, error)) || !(x = pop (u, name, error)))
        return FALSE;
      if (w->kind != V_STR || x->kind != V_STR)
        {
          pickle_error (error, u, DDPM_ERROR_CORRUPT_FILE, "runs STACK_GLOBAL on values "
                        "that are not strings");
          return FALSE;
        }
      v = find_global (u, x->u.s, strlen (x->u.s), w->u.s, strlen (w->u.s), error);
      break;

    case 'Q':    /* BINPERSID */
      if (!(w = pop (u, name, error)))
        return FALSE;
      v = persistent_load (u, w, error);
      break;

    case 'R':    /* REDUCE: callable, args → callable(*args) */
      if (!(w = pop (u, name, error)) || !(x = pop (u, name, error)))
        return FALSE;
      v = reduce (u, x, w, error);
      break;

    case 'b':    /* BUILD: obj, state → obj.__setstate__(state) */
      if (!(w = pop (u, name, error)) || !(x = top (u, name, error)))
        return FALSE;
      /* An OrderedDict's attributes (state_dict()'s _metadata): dropped. */
      if (x->kind != V_DICT || (w->kind != V_DICT && w->kind != V_NONE && w->kind != V_TUPLE))
        {
          pickle_error (error, u, DDPM_ERROR_UNSUPPORTED, "sets the state of a %s from a "
                        "%s, which a state_dict never does", kind_names[x->kind],
                        kind_names[w->kind]);
          return FALSE;
        }
      return TRUE;

    case 's':    /* SETITEM: dict, key, value */
      if (!(w = pop (u, name, error)) || !(x = pop (u, name, error))
          || !(v = top (u, name, error)))
        return FALSE;
      return dict_set (u, v, x, w, error);

    case 'u':    /* SETITEMS: dict, MARK, key, value, key, value … */
      {
        if (!pop_mark (u, name, &first, error))
          return FALSE;
        guint n = u->stack->len - first;
        if (n % 2 != 0 || first <= stack_floor (u))
          {
            pickle_error (error, u, DDPM_ERROR_CORRUPT_FILE, "runs SETITEMS on %s",
                          n % 2 ? "an odd number of values" : "an empty stack");
            return FALSE;
          }
        Value *dict = u->stack->pdata[first - 1];
        for (guint i = first; i < u->stack->len; i += 2)
          if (!dict_set (u, dict, u->stack->pdata[i], u->stack->pdata[i + 1], error))
            return FALSE;
        g_ptr_array_set_size (u->stack, first);
      }
      return TRUE;

    case 'a':    /* APPEND: list, value */
    case 'e':    /* APPENDS: list, MARK, values … */
      {
        Value *list;
        guint n;
        if (op == 'a')
          {
            if (!(w = pop (u, name, error)) || !(list = top (u, name, error)))
              return FALSE;
            first = u->stack->len;
            n = 1;
          }
        else
          {
            if (!pop_mark (u, name, &first, error))
              return FALSE;
            if (first <= stack_floor (u))
              {
                pickle_error (error, u, DDPM_ERROR_CORRUPT_FILE, "runs APPENDS on an "
                              "empty stack");
                return FALSE;
              }
            list = u->stack->pdata[first - 1];
            n = u->stack->len - first;
            w = NULL;
          }
        if (list->kind != V_LIST)
          {
            pickle_error (error, u, DDPM_ERROR_CORRUPT_FILE, "appends to a %s",
                          kind_names[list->kind]);
            return FALSE;
          }
        if (!count_objects (u, n, error))
          return FALSE;
        if (w)
          g_ptr_array_add (list->u.items, w);
        else
          {
            for (guint i = first; i < u->stack->len; i++)
              g_ptr_array_add (list->u.items, u->stack->pdata[i]);
            g_ptr_array_set_size (u->stack, first);
          }
      }
      return TRUE;

    default:
      if (name)
        pickle_error (error, u, DDPM_ERROR_UNSUPPORTED, "uses the opcode %s, which a "
                      "PyTorch state_dict does not need", name);
      else
        pickle_error (error, u, DDPM_ERROR_CORRUPT_FILE, "holds the byte 0x%02x where an "
                      "opcode should be", op);
      return FALSE;
    }

  return v != NULL && push (u, v, error);
}

/* Does every value of `dict` hold a tensor under a string key? */
static gboolean
is_state_dict (const Value *dict)
{
  if (dict == NULL || dict->kind != V_DICT)
    return FALSE;
  for (guint i = 0; i < dict->u.dict.keys->len; i++)
    if (((Value *) dict->u.dict.keys->pdata[i])->kind != V_STR
        || ((Value *) dict->u.dict.values->pdata[i])->kind != V_TENSOR)
      return FALSE;
  return TRUE;
}

/* The unpickled object → the checkpoint's tensors (see the header for
 * the rule). */
static gboolean
take_state_dict (DdpmTorchCheckpoint *ckpt, const Value *root, GError **error)
{
  static const char *const wrappers[] = { "state_dict", "model" };
  const Value *sd = NULL;

  if (root->kind != V_DICT)
    {
      g_set_error (error, DDPM_ERROR, DDPM_ERROR_UNSUPPORTED,
                   _("%s holds a %s, not a state_dict (a dict of tensors)"),
                   ckpt->display_name, kind_names[root->kind]);
      return FALSE;
    }
  if (is_state_dict (root))
    sd = root;
  for (gsize w = 0; w < G_N_ELEMENTS (wrappers) && sd == NULL; w++)
    if (is_state_dict (dict_get (root, wrappers[w])))
      {
        sd = dict_get (root, wrappers[w]);
        ckpt->state_dict_key = g_strdup (wrappers[w]);
      }
  if (sd == NULL)
    {
      GString *keys = g_string_new (NULL);
      guint n = root->u.dict.keys->len;
      for (guint i = 0; i < MIN (n, 8u); i++)
        {
          const Value *k = root->u.dict.keys->pdata[i], *v = root->u.dict.values->pdata[i];
          char *q = k->kind == V_STR ? quote (k->u.s, strlen (k->u.s)) : NULL;
          g_string_append_printf (keys, "%s'%s': %s", i ? ", " : "",
                                  q ? q : kind_names[k->kind], kind_names[v->kind]);
          g_free (q);
        }
      if (n > 8)
        g_string_append_printf (keys, " and %u more", n - 8);
      g_set_error (error, DDPM_ERROR, DDPM_ERROR_UNSUPPORTED,
                   _("%s holds no state_dict: its dict is not one of tensors, nor does it have "
                     "a 'state_dict' or 'model' entry that is (it holds %s)"),
                   ckpt->display_name, keys->str);
      g_string_free (keys, TRUE);
      return FALSE;
    }

  for (guint i = 0; i < sd->u.dict.keys->len; i++)
    {
      const Value *k = sd->u.dict.keys->pdata[i], *v = sd->u.dict.values->pdata[i];
      DdpmTorchTensor *t = g_memdup2 (v->u.tensor, sizeof *t);

      t->name = g_strdup (k->u.s);
      g_ptr_array_add (ckpt->tensors, t);
      g_hash_table_insert (ckpt->by_name, (char *) t->name, t);
    }
  return TRUE;
}

static gboolean
unpickle (DdpmTorchCheckpoint *ckpt, const guint8 *data, gsize size, GError **error)
{
  Unpickler u = {
    .ckpt = ckpt,
    .start = data,
    .p = data,
    .end = data + size,
    .stack = g_ptr_array_new (),
    .marks = g_array_new (FALSE, FALSE, sizeof (guint)),
    .memo = g_hash_table_new (NULL, NULL),
    .arena = g_ptr_array_new_with_free_func (value_free),
  };
  Value *result = NULL;
  gboolean ok = TRUE;

  while (ok && result == NULL)
    {
      if (u.p >= u.end)
        {
          u.op_at = size;
          pickle_error (error, &u, DDPM_ERROR_CORRUPT_FILE, "ends before its STOP opcode "
                        "(truncated)");
          ok = FALSE;
        }
      else
        ok = step (&u, &result, error);
    }
  if (ok)
    ok = take_state_dict (ckpt, result, error);

  g_ptr_array_unref (u.arena);
  g_hash_table_unref (u.memo);
  g_array_unref (u.marks);
  g_ptr_array_unref (u.stack);
  return ok;
}

/* -------------------------------------------------------------------- zip */

/* Read record `index` (`size` bytes by the directory) whole, to its end so
 * that libzip checks its CRC.  NULL and error if it cannot. */
static guint8 *
read_record (DdpmTorchCheckpoint *ckpt, zip_uint64_t index, guint64 size, GError **error)
{
  const char *name = zip_get_name (ckpt->zip, index, ZIP_FL_ENC_RAW);
  char *display = quote (name ? name : "?", name ? strlen (name) : 1);
  guint8 *buf = size < G_MAXSIZE ? g_try_malloc ((gsize) MAX (size, 1)) : NULL;
  zip_file_t *zf = NULL;
  guint64 got = 0;

  if (buf == NULL)
    {
      g_set_error (error, DDPM_ERROR, DDPM_ERROR_NO_MEMORY,
                   _("Not enough memory to read %s of %s (%" PRIu64 " bytes)"),
                   display, ckpt->display_name, size);
      goto fail;
    }
  zf = zip_fopen_index (ckpt->zip, index, 0);
  if (zf == NULL)
    {
      set_damaged (error, ckpt, "its record %s cannot be opened (%s)", display,
                   zip_strerror (ckpt->zip));
      goto fail;
    }
  while (got < size)
    {
      zip_int64_t n = zip_fread (zf, buf + got, size - got);
      if (n <= 0)
        {
          set_damaged (error, ckpt, "its record %s cannot be read (%s)", display,
                       n < 0 ? zip_file_strerror (zf) : "it ends early");
          goto fail;
        }
      got += (guint64) n;
    }
  /* One more read reaches the end, where libzip compares the CRC. */
  guint8 extra;
  zip_int64_t n = zip_fread (zf, &extra, 1);
  if (n != 0)
    {
      set_damaged (error, ckpt, "its record %s cannot be read (%s)", display,
                   n < 0 ? zip_file_strerror (zf) : "it is longer than its directory says");
      goto fail;
    }
  zip_fclose (zf);
  g_free (display);
  return buf;

fail:
  if (zf)
    zip_fclose (zf);
  g_free (buf);
  g_free (display);
  return NULL;
}

/* Open the archive, find <top>/data.pkl and check the byte order. */
static gboolean
open_zip (DdpmTorchCheckpoint *ckpt, zip_int64_t *pkl_index, GError **error)
{
  gsize size = 0;
  const guint8 *data = g_bytes_get_data (ckpt->bytes, &size);

  if (size == 0)
    {
      g_set_error (error, DDPM_ERROR, DDPM_ERROR_CORRUPT_FILE,
                   _("%s is not a PyTorch checkpoint: it is empty"), ckpt->display_name);
      return FALSE;
    }
  /* Before 1.6 (or with _use_new_zipfile_serialization=False) torch.save
   * wrote a bare pickle stream (starting with PROTO, 0x80), and before
   * 0.4 or so a tar archive. */
  if (data[0] == 0x80 || (size > 262 && memcmp (data + 257, "ustar", 5) == 0))
    {
      g_set_error (error, DDPM_ERROR, DDPM_ERROR_UNSUPPORTED,
                   _("%s is in PyTorch's legacy checkpoint format (from before PyTorch 1.6, "
                     "or saved with _use_new_zipfile_serialization=False), which this program "
                     "does not read.  Re-save it with PyTorch 1.6 or newer: "
                     "torch.save(torch.load(\"old.pt\"), \"new.pt\")"), ckpt->display_name);
      return FALSE;
    }

  zip_error_t ze;
  zip_error_init (&ze);
  zip_source_t *src = zip_source_buffer_create (data, size, 0, &ze);
  if (src != NULL)
    {
      ckpt->zip = zip_open_from_source (src, ZIP_RDONLY | ZIP_CHECKCONS, &ze);
      if (ckpt->zip == NULL)
        zip_source_free (src);
    }
  if (ckpt->zip == NULL)
    {
      int code = zip_error_code_zip (&ze);
      if (code == ZIP_ER_MEMORY)
        g_set_error (error, DDPM_ERROR, DDPM_ERROR_NO_MEMORY,
                     _("Not enough memory to open %s"), ckpt->display_name);
      else if (code == ZIP_ER_NOZIP)
        g_set_error (error, DDPM_ERROR, DDPM_ERROR_CORRUPT_FILE,
                     _("%s is not a PyTorch checkpoint: it is not a zip archive, or a "
                       "truncated one"), ckpt->display_name);
      else
        set_damaged (error, ckpt, "its zip archive is unreadable (%s)",
                     zip_error_strerror (&ze));
      zip_error_fini (&ze);
      return FALSE;
    }
  zip_error_fini (&ze);

  /* <top>/data.pkl, whatever <top> is. */
  zip_int64_t n = zip_get_num_entries (ckpt->zip, 0);
  zip_int64_t found = -1;
  guint n_found = 0;
  for (zip_int64_t i = 0; i < n; i++)
    {
      const char *name = zip_get_name (ckpt->zip, (zip_uint64_t) i, ZIP_FL_ENC_RAW);
      gsize len = name ? strlen (name) : 0;
      if (name && (strcmp (name, "data.pkl") == 0
                   || (len > 9 && strcmp (name + len - 9, "/data.pkl") == 0)))
        {
          if (n_found++ == 0)
            {
              found = i;
              g_free (ckpt->prefix);
              ckpt->prefix = g_strndup (name, len > 9 ? len - 9 : 0);
            }
        }
    }
  if (n_found != 1)
    {
      g_set_error (error, DDPM_ERROR, DDPM_ERROR_CORRUPT_FILE,
                   n_found == 0 ? "%s is not a PyTorch checkpoint: its zip archive has no "
                                  "data.pkl"
                                : "%s is not a PyTorch checkpoint: its zip archive has "
                                  "several data.pkl", ckpt->display_name);
      return FALSE;
    }
  *pkl_index = found;

  /* PyTorch ≥ 2.1 records the byte order of the storages. */
  char *bo_name = g_strconcat (ckpt->prefix, *ckpt->prefix ? "/" : "", "byteorder", NULL);
  zip_int64_t bo = zip_name_locate (ckpt->zip, bo_name, ZIP_FL_ENC_RAW);
  g_free (bo_name);
  if (bo >= 0)
    {
      zip_stat_t st;
      zip_stat_init (&st);
      if (zip_stat_index (ckpt->zip, (zip_uint64_t) bo, 0, &st) != 0
          || !(st.valid & ZIP_STAT_SIZE) || st.size > MAX_BYTEORDER_BYTES)
        {
          set_damaged (error, ckpt, "its byteorder record is not a word");
          return FALSE;
        }
      guint8 *order = read_record (ckpt, (zip_uint64_t) bo, st.size, error);
      if (order == NULL)
        return FALSE;
      char *text = g_strstrip (g_strndup ((const char *) order, (gsize) st.size));
      gboolean little = strcmp (text, "little") == 0;
      char *q = quote (text, strlen (text));
      if (!little)
        g_set_error (error, DDPM_ERROR, DDPM_ERROR_UNSUPPORTED,
                     _("%s holds storages in '%s' byte order; this program reads only "
                       "little-endian checkpoints"), ckpt->display_name, q);
      g_free (q);
      g_free (text);
      g_free (order);
      if (!little)
        return FALSE;
    }
  return TRUE;
}

DdpmTorchCheckpoint *
ddpm_torch_checkpoint_open_bytes (GBytes      *bytes,
                                  const char  *display_name,
                                  GError     **error)
{
  g_return_val_if_fail (bytes != NULL, NULL);
  g_return_val_if_fail (display_name != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  DdpmTorchCheckpoint *ckpt = checkpoint_new (display_name);
  zip_int64_t pkl = -1;
  zip_stat_t st;
  guint8 *data = NULL;

  ckpt->bytes = g_bytes_ref (bytes);
  if (!open_zip (ckpt, &pkl, error))
    goto fail;

  zip_stat_init (&st);
  if (zip_stat_index (ckpt->zip, (zip_uint64_t) pkl, 0, &st) != 0 || !(st.valid & ZIP_STAT_SIZE))
    {
      set_damaged (error, ckpt, "the size of its data.pkl is unknown");
      goto fail;
    }
  if (st.size > DDPM_TORCH_MAX_PICKLE_BYTES)
    {
      g_set_error (error, DDPM_ERROR, DDPM_ERROR_UNSUPPORTED,
                   _("%s cannot be read: its data.pkl has %" PRIu64 " bytes (a "
                     "state_dict's has far fewer; the limit is %zu)"),
                   ckpt->display_name, (guint64) st.size, DDPM_TORCH_MAX_PICKLE_BYTES);
      goto fail;
    }
  if (!(data = read_record (ckpt, (zip_uint64_t) pkl, st.size, error))
      || !unpickle (ckpt, data, (gsize) st.size, error))
    goto fail;
  g_free (data);
  return ckpt;

fail:
  g_free (data);
  ddpm_torch_checkpoint_free (ckpt);
  return NULL;
}

DdpmTorchCheckpoint *
ddpm_torch_checkpoint_open_pickle (GBytes      *pickle,
                                   const char  *display_name,
                                   GError     **error)
{
  g_return_val_if_fail (pickle != NULL, NULL);
  g_return_val_if_fail (display_name != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  DdpmTorchCheckpoint *ckpt = checkpoint_new (display_name);
  gsize size = 0;
  const guint8 *data = g_bytes_get_data (pickle, &size);

  if (size > DDPM_TORCH_MAX_PICKLE_BYTES)
    {
      g_set_error (error, DDPM_ERROR, DDPM_ERROR_UNSUPPORTED,
                   _("%s cannot be read: its pickle has %zu bytes (the limit "
                     "is %zu)"), display_name, size, DDPM_TORCH_MAX_PICKLE_BYTES);
      ddpm_torch_checkpoint_free (ckpt);
      return NULL;
    }
  if (!unpickle (ckpt, data, size, error))
    {
      ddpm_torch_checkpoint_free (ckpt);
      return NULL;
    }
  return ckpt;
}

DdpmTorchCheckpoint *
ddpm_torch_checkpoint_open (const char *path, GError **error)
{
  g_return_val_if_fail (path != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  char *display = g_filename_display_name (path);
  GError *local = NULL;

  if (g_file_test (path, G_FILE_TEST_IS_DIR))
    {
      g_set_error (error, DDPM_ERROR, DDPM_ERROR_IO,
                   _("Could not read checkpoint %s: it is a folder"), display);
      g_free (display);
      return NULL;
    }
  GMappedFile *mapped = g_mapped_file_new (path, FALSE, &local);
  if (mapped == NULL)
    {
      g_set_error (error, DDPM_ERROR, DDPM_ERROR_IO,
                   _("Could not read checkpoint %s: %s"), display, local->message);
      g_error_free (local);
      g_free (display);
      return NULL;
    }

  /* The GBytes keeps the mapping alive for as long as the checkpoint. */
  GBytes *bytes = g_mapped_file_get_bytes (mapped);
  g_mapped_file_unref (mapped);
  DdpmTorchCheckpoint *ckpt = ddpm_torch_checkpoint_open_bytes (bytes, display, error);
  g_bytes_unref (bytes);
  g_free (display);
  return ckpt;
}

/* ------------------------------------------------------------------ access */

const char *
ddpm_torch_checkpoint_get_display_name (const DdpmTorchCheckpoint *ckpt)
{
  g_return_val_if_fail (ckpt != NULL, NULL);
  return ckpt->display_name;
}

const char *
ddpm_torch_checkpoint_get_prefix (const DdpmTorchCheckpoint *ckpt)
{
  g_return_val_if_fail (ckpt != NULL, NULL);
  return ckpt->prefix;
}

const char *
ddpm_torch_checkpoint_get_state_dict_key (const DdpmTorchCheckpoint *ckpt)
{
  g_return_val_if_fail (ckpt != NULL, NULL);
  return ckpt->state_dict_key;
}

guint
ddpm_torch_checkpoint_get_n_tensors (const DdpmTorchCheckpoint *ckpt)
{
  g_return_val_if_fail (ckpt != NULL, 0);
  return ckpt->tensors->len;
}

const DdpmTorchTensor *
ddpm_torch_checkpoint_get_tensor (const DdpmTorchCheckpoint *ckpt, guint index)
{
  g_return_val_if_fail (ckpt != NULL, NULL);
  g_return_val_if_fail (index < ckpt->tensors->len, NULL);
  return ckpt->tensors->pdata[index];
}

const DdpmTorchTensor *
ddpm_torch_checkpoint_lookup (const DdpmTorchCheckpoint *ckpt, const char *name)
{
  g_return_val_if_fail (ckpt != NULL, NULL);
  g_return_val_if_fail (name != NULL, NULL);
  return g_hash_table_lookup (ckpt->by_name, name);
}

/* Bytes [lo, hi) of a storage: from its record, or in pickle-only mode a
 * pattern (every byte value occurs, so conversions meet NaNs, infinities
 * and subnormals).
 *
 * A record may be huge and shared: guided-diffusion trains in fp16 and
 * saves each weight as a view into one flat float32 master parameter, so
 * its 256×256 checkpoint is ~700 views of two storages of up to 2.2 GB.
 * Reading the whole record per tensor would read the file hundreds of
 * times; instead the first read of a storage streams its record to the
 * end in chunks (libzip checks the CRC there) keeping only [lo, hi), and
 * later reads seek to lo (stored records; a compressed one is skipped
 * through) and read just the range. */
#define STREAM_CHUNK ((gsize) 1 << 20)

static guint8 *
load_storage_range (DdpmTorchCheckpoint *ckpt, Storage *s, guint64 lo, guint64 hi,
                    GError **error)
{
  g_assert (lo <= hi && hi <= s->n_bytes);   /* the view was checked against the storage */
  guint8 *buf = g_try_malloc ((gsize) MAX (hi - lo, 1));
  if (buf == NULL)
    {
      g_set_error (error, DDPM_ERROR, DDPM_ERROR_NO_MEMORY,
                   _("Not enough memory to read %" PRIu64 " bytes of %s"),
                   hi - lo, ckpt->display_name);
      return NULL;
    }
  if (ckpt->zip == NULL)
    {
      for (guint64 i = lo; i < hi; i++)
        buf[i - lo] = (guint8) (i * 151 + 7);
      return buf;
    }

  char *record = record_name (ckpt, s->key);
  char *display = quote (record, strlen (record));
  g_free (record);
  guint8 *scratch = NULL;
  guint64 pos = 0, end = s->verified ? hi : s->n_bytes;
  zip_file_t *zf = zip_fopen_index (ckpt->zip, s->index, 0);

  if (zf != NULL && s->verified && lo > 0)
    {
      if (zip_fseek (zf, (zip_int64_t) lo, SEEK_SET) == 0)
        pos = lo;
      else
        {
          /* Not seekable (compressed): start again and skip through. */
          zip_fclose (zf);
          zf = zip_fopen_index (ckpt->zip, s->index, 0);
        }
    }
  if (zf == NULL)
    {
      set_damaged (error, ckpt, "its record %s cannot be opened (%s)", display,
                   zip_strerror (ckpt->zip));
      goto fail;
    }
  while (pos < end)
    {
      guint8 *to;
      guint64 want;
      if (pos >= lo && pos < hi)
        {
          to = buf + (pos - lo);
          want = hi - pos;
        }
      else
        {
          if (scratch == NULL)
            scratch = g_malloc (STREAM_CHUNK);
          to = scratch;
          want = MIN ((guint64) STREAM_CHUNK, (pos < lo ? lo : end) - pos);
        }
      zip_int64_t n = zip_fread (zf, to, want);
      if (n <= 0)
        {
          set_damaged (error, ckpt, "its record %s cannot be read (%s)", display,
                       n < 0 ? zip_file_strerror (zf) : "it ends early");
          goto fail;
        }
      pos += (guint64) n;
    }
  if (!s->verified)
    {
      /* At the end: one more read is where libzip compares the CRC. */
      guint8 extra;
      zip_int64_t n = zip_fread (zf, &extra, 1);
      if (n != 0)
        {
          set_damaged (error, ckpt, "its record %s cannot be read (%s)", display,
                       n < 0 ? zip_file_strerror (zf) : "it is longer than its directory says");
          goto fail;
        }
      s->verified = TRUE;
    }
  zip_fclose (zf);
  g_free (scratch);
  g_free (display);
  return buf;

fail:
  if (zf)
    zip_fclose (zf);
  g_free (scratch);
  g_free (display);
  g_free (buf);
  return NULL;
}

gboolean
ddpm_torch_checkpoint_read_f32 (DdpmTorchCheckpoint   *ckpt,
                                const DdpmTorchTensor *tensor,
                                float                 *dst,
                                guint64                n_elements,
                                GError               **error)
{
  g_return_val_if_fail (ckpt != NULL, FALSE);
  g_return_val_if_fail (tensor != NULL && tensor->name != NULL, FALSE);
  g_return_val_if_fail (g_hash_table_lookup (ckpt->by_name, tensor->name) == tensor, FALSE);
  g_return_val_if_fail (dst != NULL || n_elements == 0, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (n_elements != tensor->numel)
    {
      g_set_error (error, DDPM_ERROR, DDPM_ERROR_INVALID_ARGUMENT,
                   _("Tensor '%s' of %s has %" PRIu64 " elements, not %"
                     PRIu64), tensor->name, ckpt->display_name, tensor->numel,
                   n_elements);
      return FALSE;
    }
  if (tensor->numel == 0)
    return TRUE;

  Storage *s = g_hash_table_lookup (ckpt->storage_by_key, tensor->storage_key);
  g_assert (s != NULL && s->numel == tensor->storage_numel);

  /* The elements the view spans: first = offset, last = offset +
   * Σ (shape_d − 1)·stride_d, inside the storage (checked when built). */
  int nd = tensor->ndim;
  const gint64 *shape = tensor->shape, *stride = tensor->stride;
  guint64 first = (guint64) tensor->storage_offset, last = first;
  for (int d = 0; d < nd; d++)
    last += (guint64) ((shape[d] - 1) * stride[d]);
  g_assert (last < s->numel);
  gsize esize = dtype_info[tensor->dtype].size;
  guint8 *data = load_storage_range (ckpt, s, first * esize, (last + 1) * esize, error);
  if (data == NULL)
    {
      /* The error named the record; say which tensor it was for. */
      g_prefix_error (error, _("Tensor '%s': "), tensor->name);
      return FALSE;
    }

  gboolean contiguous = TRUE;
  gint64 expect = 1;
  for (int d = nd - 1; d >= 0; d--)
    {
      if (shape[d] != 1 && stride[d] != expect)
        contiguous = FALSE;
      expect *= shape[d];
    }

  /* Positions are relative to `first` from here on. */
  guint64 span = last - first + 1, pos = 0;
  if (contiguous)
    {
      g_assert (tensor->numel == span);
      if (tensor->dtype == DDPM_TORCH_DTYPE_F32)
        memcpy (dst, data, tensor->numel * 4);
      else
        for (guint64 i = 0; i < tensor->numel; i++)
          dst[i] = element_f32 (data, tensor->dtype, i);
    }
  else
    {
      /* An odometer over the index tuple, keeping pos = Σ i_d·stride_d. */
      gint64 index[DDPM_TENSOR_MAX_DIMS] = { 0 };
      for (guint64 i = 0; i < tensor->numel; i++)
        {
          g_assert (pos < span);
          dst[i] = element_f32 (data, tensor->dtype, pos);
          for (int d = nd - 1; d >= 0; d--)
            {
              if (++index[d] < shape[d])
                {
                  pos += (guint64) stride[d];
                  break;
                }
              pos -= (guint64) (stride[d] * (shape[d] - 1));
              index[d] = 0;
            }
        }
    }
  g_free (data);
  return TRUE;
}

/* ---------------------------------------------------------------- fuzzing */

char *
ddpm_torch_checkpoint_fuzz (const guint8        *data,
                            gsize                size,
                            gboolean             pickle_only,
                            DdpmTorchFuzzResult *result)
{
  static const char name[] = "fuzz.pt";
  DdpmTorchFuzzResult r = { 0 };
  GError *error = NULL;
  char *problem = NULL;

  /* Exactly sized, so that AddressSanitizer sees a read one byte past. */
  guint8 *exact = g_malloc (MAX (size, 1));
  if (size)
    memcpy (exact, data, size);
  GBytes *bytes = g_bytes_new_take (exact, size);
  DdpmTorchCheckpoint *ckpt = pickle_only ? ddpm_torch_checkpoint_open_pickle (bytes, name, &error)
                                          : ddpm_torch_checkpoint_open_bytes (bytes, name, &error);

  if (ckpt == NULL)
    {
      if (error == NULL || error->domain != DDPM_ERROR
          || (error->code != DDPM_ERROR_CORRUPT_FILE && error->code != DDPM_ERROR_UNSUPPORTED
              && error->code != DDPM_ERROR_NO_MEMORY)
          || strstr (error->message, name) == NULL
          || !g_utf8_validate (error->message, -1, NULL))
        problem = g_strdup_printf ("open failed with a bad error: %s",
                                   error ? error->message : "(none)");
      else
        r.error_code = error->code;
      g_clear_error (&error);
      goto out;
    }

  r.opened = TRUE;
  for (guint i = 0; i < ddpm_torch_checkpoint_get_n_tensors (ckpt) && !problem; i++)
    {
      const DdpmTorchTensor *t = ddpm_torch_checkpoint_get_tensor (ckpt, i);
      guint64 numel = 1, last = (guint64) t->storage_offset;
      gboolean ok = t->name && g_utf8_validate (t->name, -1, NULL)
                    && ddpm_torch_checkpoint_lookup (ckpt, t->name) == t
                    && t->dtype < DDPM_TORCH_DTYPE_COUNT
                    && t->ndim >= 0 && t->ndim <= DDPM_TENSOR_MAX_DIMS
                    && t->storage_offset >= 0 && t->storage_key != NULL;

      /* The promises of DdpmTorchTensor, checked independently. */
      for (int d = 0; ok && d < t->ndim; d++)
        ok = t->shape[d] >= 0 && t->stride[d] >= 0
             && g_uint64_checked_mul (&numel, numel, (guint64) t->shape[d]);
      if (ok && numel > 0)
        for (int d = 0; ok && d < t->ndim; d++)
          {
            guint64 span;
            ok = g_uint64_checked_mul (&span, (guint64) (t->shape[d] - 1), (guint64) t->stride[d])
                 && g_uint64_checked_add (&last, last, span);
          }
      if (!ok || numel != t->numel || (numel > 0 && last >= t->storage_numel))
        {
          problem = g_strdup_printf ("tensor %u has an inconsistent description", i);
          break;
        }

      /* Big broadcast views are legal but slow to read: not here. */
      if (numel > ((guint64) 1 << 22))
        continue;
      float *dst = g_malloc (MAX (numel, 1) * sizeof (float));
      if (numel > 0 && ddpm_torch_checkpoint_read_f32 (ckpt, t, dst, numel - 1, &error))
        problem = g_strdup_printf ("tensor '%s' read into a buffer too small", t->name);
      g_clear_error (&error);
      if (!problem && !ddpm_torch_checkpoint_read_f32 (ckpt, t, dst, numel, &error))
        {
          /* Only a damaged record may fail (a CRC, a bad deflate stream). */
          if (pickle_only || error->code != DDPM_ERROR_CORRUPT_FILE
              || strstr (error->message, name) == NULL)
            problem = g_strdup_printf ("reading tensor '%s' failed: %s", t->name,
                                       error->message);
          g_clear_error (&error);
        }
      else if (!problem)
        {
          r.n_tensors++;
          r.n_values += numel;
        }
      g_free (dst);
    }
  ddpm_torch_checkpoint_free (ckpt);

out:
  g_bytes_unref (bytes);
  if (result)
    *result = r;
  return problem;
}
