/* unet.c: the DDPM UNet (Ho et al. 2020, appendix B), forward and
 * backward, on the layers of layers/.
 *
 * HOW IT WORKS
 *
 * The architecture is that of the project's reference
 * ../shared/bench/torch_unet.py (itself the diffusion_tf model):
 *
 *   temb = Linear(4ch, 4ch)(SiLU(Linear(ch, 4ch)(sinusoid_ch(t))))
 *   h = conv_in(x)                                    → pushed on the skips
 *   for level l = 0..L−1:
 *     num_res_blocks × [ResBlock (+ AttnBlock at attention levels)] → pushed
 *     Down (pad right/bottom by one, 3×3 stride 2), except at l = L−1 → pushed
 *   mid: ResBlock, AttnBlock, ResBlock
 *   for level l = L−1..0:
 *     (num_res_blocks + 1) × [ResBlock on [h, skips.pop()] (+ AttnBlock)]
 *     Up (nearest ×2, 3×3 conv), except at l = 0
 *   out = conv_out(SiLU(GroupNorm(h)))
 *
 *   ResBlock(x):  h = conv1(SiLU(norm1(x))) + time_emb_proj(SiLU(temb))
 *                 h = conv2(dropout(SiLU(norm2(h))))
 *                 out = shortcut(x) + h     (1×1 conv when channels change)
 *   AttnBlock(x): n = GroupNorm(x); q, k, v = 1×1 convs of n
 *                 out = x + proj(attention(q, k, v))
 *
 * GroupNorm has 32 groups and ε = 1e-6 everywhere.  Attention is tied to a
 * depth level: resolution r at training size S is level round(log2(S/r)),
 * so a larger input keeps it at the same depth.
 *
 * The network is a flat list of nodes (conv_in, the blocks above, the
 * output head), each with the offsets of its parameters and of its
 * activations.  Node i reads node i−1's output; an up-path ResBlock also
 * reads the output of the node whose skip it pops.  The backward pass walks
 * the list in reverse with two ping-pong gradient buffers for the main
 * chain and one gradient buffer per skip output, which collects the
 * up-path contribution until the down path reaches that node.
 *
 * Memory: a training forward saves, per ResBlock, norm1's and norm2's
 * outputs and statistics, h after the time embedding, the dropout mask and
 * the output; SiLU outputs are recomputed in backward (cheap, and two
 * fewer tensors per block).  An inference forward keeps only the node
 * outputs; the internals of one node live in a region every node reuses.
 */
#include <math.h>
#include <string.h>

#include "unet.h"
#include "layers/layers.h"

#define GN_GROUPS DDPM_UNET_GROUPS
#define GN_EPS 1e-6f
#define ALIGN_FLOATS 16  /* 64-byte alignment of every activation tensor */

/* ------------------------------------------------------------------- nodes */

typedef enum
{
  NODE_IN,    /* conv_in */
  NODE_RES,
  NODE_ATTN,
  NODE_DOWN,
  NODE_UP,
  NODE_HEAD   /* conv_norm_out, SiLU, conv_out */
} NodeKind;

/* -------------------------------------------------------------- parameters */

/* Each block kind's parameters by name, with their shapes: c_in and c_out
 * are the node's channels, C an attention block's, tdim = 4·ch.  The
 * fields point into the ONE parameter allocation u->params; the same
 * structs pointing into u->grads name the gradients (a node's p and d).
 *
 * The fields are declared in the order of the tensor table (weight before
 * bias), which is the order of the flat parameter vector that model files,
 * checkpoints, Adam's moments and the EMA hold: build() registers each
 * block's tensors field by field and checks that order, and
 * point_params() sets a block's pointers from the table's offsets. */

typedef struct
{
  float *l1_w;      /* (tdim, ch)          time_embedding.linear_1 */
  float *l1_b;      /* (tdim) */
  float *l2_w;      /* (tdim, tdim)        time_embedding.linear_2 */
  float *l2_b;      /* (tdim) */
} TembParams;

/* conv_in, a down-sampler's conv (3×3 stride 2) or an up-sampler's conv */
typedef struct
{
  float *w;         /* (c_out, c_in, 3, 3) */
  float *b;         /* (c_out) */
} ConvParams;

typedef struct
{
  float *norm1_w;   /* (c_in)              GroupNorm γ */
  float *norm1_b;   /* (c_in)              GroupNorm β */
  float *conv1_w;   /* (c_out, c_in, 3, 3) */
  float *conv1_b;   /* (c_out) */
  float *temb_w;    /* (c_out, tdim)       time_emb_proj */
  float *temb_b;    /* (c_out) */
  float *norm2_w;   /* (c_out) */
  float *norm2_b;   /* (c_out) */
  float *conv2_w;   /* (c_out, c_out, 3, 3) */
  float *conv2_b;   /* (c_out) */
  float *skip_w;    /* (c_out, c_in, 1, 1) conv_shortcut; NULL when c_in = c_out */
  float *skip_b;    /* (c_out)             NULL when c_in = c_out */
} ResParams;

/* query, key, value and proj_attn are Linear (C, C): 1×1 conv weights */
typedef struct
{
  float *norm_w;    /* (C)                 group_norm */
  float *norm_b;    /* (C) */
  float *q_w;       /* (C, C)              query */
  float *q_b;       /* (C) */
  float *k_w;       /* (C, C)              key */
  float *k_b;       /* (C) */
  float *v_w;       /* (C, C)              value */
  float *v_b;       /* (C) */
  float *proj_w;    /* (C, C)              proj_attn */
  float *proj_b;    /* (C) */
} AttnParams;

typedef struct
{
  float *norm_w;    /* (c_in)              conv_norm_out */
  float *norm_b;    /* (c_in) */
  float *conv_w;    /* (c_out, c_in, 3, 3) conv_out */
  float *conv_b;    /* (c_out) */
} HeadParams;

#define N_PFIELDS 12  /* the most tensors of a block (ResParams) */

/* A block's parameter pointers: the struct of its kind, or t, the same
 * pointers as an array in field order (how point_params sets them). */
typedef union
{
  float      *t[N_PFIELDS];
  TembParams  temb;
  ConvParams  conv;    /* NODE_IN, NODE_DOWN, NODE_UP */
  ResParams   res;
  AttnParams  attn;
  HeadParams  head;
} Params;

G_STATIC_ASSERT (sizeof (ResParams) == N_PFIELDS * sizeof (float *));
G_STATIC_ASSERT (sizeof (Params) == N_PFIELDS * sizeof (float *));

/* Activation slots, by node kind (A_Y, the output, is common). */
enum { A_Y,
       A_X = 1,                                               /* IN: copy of x */
       A_CAT = 1, A_N1, A_MEAN1, A_RSTD1, A_H1, A_N2, A_MEAN2, A_RSTD2, A_MASK, /* RES */
       A_N = 1, A_MEAN, A_RSTD, A_Q, A_K, A_V, A_P, A_O,      /* ATTN, HEAD */
       A_U = 1,                                               /* UP */
       A_DSKIP = 10 };  /* gradient of the output, if it is a skip (training) */
#define N_ASLOTS 11

typedef struct
{
  NodeKind kind;
  int      level;     /* depth of the input: spatial size (H, W) >> level */
  int      c_in;      /* input channels, the skip included (up ResBlocks) */
  int      c_out;
  int      c_skip;    /* up ResBlocks: channels of the concatenated skip */
  int      skip_src;  /* up ResBlocks: node whose output is the skip; else −1 */
  gboolean is_skip;   /* its output is pushed on the skip stack */
  int      tensor0;   /* its tensors: table entries tensor0 .. tensor0 + n_tensors − 1 */
  int      n_tensors;
  Params   p;         /* parameters, in u->params */
  Params   d;         /* their gradients: the same fields, in u->grads */
  gsize    a[N_ASLOTS];
} Node;

/* Time-embedding activations. */
enum { TA_EMB, TA_L1, TA_S1, TA_TEMB, TA_ST };

/* Scratch regions of the activation allocation. */
enum
{
  S_CONV,    /* im2col columns */
  S_A,       /* SiLU outputs (forward), recomputed SiLU / gradients (backward) */
  S_B,
  S_TP,      /* (B, max c_out) time projections / their gradients */
  /* training only */
  S_G1, S_G2, S_G3,
  S_DCUR, S_DNEXT,
  S_DST, S_DTEMB, S_DS1, S_DL1,
  S_PSCRATCH,
  S_DX,
  N_SCRATCH
};

struct _DdpmUNet
{
  DdpmUNetConfig config;

  GArray  *tensors;     /* DdpmParamInfo, names in `names` */
  GStringChunk *names;
  gsize    n_params;
  float   *params;      /* (n_params) */
  float   *grads;       /* (n_params), on demand */

  Node    *nodes;
  int      n_nodes;
  Params   temb_p;      /* .temb: the time embedding's parameters (tensors 0 to 3) */
  Params   temb_d;      /* and their gradients */

  /* activations: offsets (in floats) into `acts`, for the layout below */
  float   *acts;
  gsize    acts_capacity;
  gsize    ta[5];
  gsize    scratch[N_SCRATCH];
  int      lay_B, lay_H, lay_W;   /* the shape the offsets are laid out for */
  gboolean lay_training;

  /* the last forward */
  gboolean saved;               /* it was a training forward */
  int      B, H, W;
  float    dropout_p;
  guint64  dropout_seed;
};

/* ------------------------------------------------------------ construction */

static gsize
add_tensor (DdpmUNet   *u,
            const char *name,
            int         ndim,
            gint64      d0,
            gint64      d1,
            gint64      d2,
            gint64      d3)
{
  DdpmParamInfo info = { 0 };
  const gint64 dims[4] = { d0, d1, d2, d3 };

  info.name = g_string_chunk_insert (u->names, name);
  info.ndim = ndim;
  info.numel = 1;
  for (int i = 0; i < ndim; i++)
    {
      info.shape[i] = dims[i];
      info.numel *= dims[i];
    }
  info.offset = u->n_params;
  u->n_params += info.numel;
  g_array_append_val (u->tensors, info);
  return info.offset;
}

/* prefix.weight and prefix.bias of a conv (k > 0), a linear (k = 0) or a
 * GroupNorm / attention Linear (k = −1: weight (co) when ci = 0), the next
 * two tensors of a block whose parameters are p and which has *count
 * tensors so far.  w is the field of p that will point to the weight, the
 * bias's being the next one: checked to be field *count, so that every
 * Params struct lists its fields in table order. */
static void
add_layer (DdpmUNet   *u,
           Params     *p,
           int        *count,
           float     **w,
           const char *prefix,
           int         co,
           int         ci,
           int         k)
{
  char *name = g_strconcat (prefix, ".weight", NULL);

  g_assert (*count + 2 <= N_PFIELDS && w == &p->t[*count]);
  if (k > 0)
    add_tensor (u, name, 4, co, ci, k, k);
  else if (ci > 0)
    add_tensor (u, name, 2, co, ci, 0, 0);
  else
    add_tensor (u, name, 1, co, 0, 0, 0);
  g_free (name);
  name = g_strconcat (prefix, ".bias", NULL);
  add_tensor (u, name, 1, co, 0, 0, 0);
  g_free (name);
  *count += 2;
}

static Node *
add_node (DdpmUNet *u, NodeKind kind, int level, int c_in, int c_out)
{
  Node *n = &u->nodes[u->n_nodes++];

  memset (n, 0, sizeof *n);
  n->kind = kind;
  n->level = level;
  n->c_in = c_in;
  n->c_out = c_out;
  n->skip_src = -1;
  n->tensor0 = (int) u->tensors->len;
  return n;
}

static void
add_res (DdpmUNet *u, const char *prefix, int level, int c_in, int c_out, int skip_src, int c_skip)
{
  const int tdim = 4 * u->config.ch;
  Node *n = add_node (u, NODE_RES, level, c_in, c_out);
  ResParams *r = &n->p.res;
  int *k = &n->n_tensors;
  char *s;

  n->skip_src = skip_src;
  n->c_skip = c_skip;
#define SUB(name) (g_free (s), s = g_strconcat (prefix, name, NULL))
  s = NULL;
  add_layer (u, &n->p, k, &r->norm1_w, SUB (".norm1"), c_in, 0, -1);
  add_layer (u, &n->p, k, &r->conv1_w, SUB (".conv1"), c_out, c_in, 3);
  add_layer (u, &n->p, k, &r->temb_w, SUB (".time_emb_proj"), c_out, tdim, 0);
  add_layer (u, &n->p, k, &r->norm2_w, SUB (".norm2"), c_out, 0, -1);
  add_layer (u, &n->p, k, &r->conv2_w, SUB (".conv2"), c_out, c_out, 3);
  if (c_in != c_out)
    add_layer (u, &n->p, k, &r->skip_w, SUB (".conv_shortcut"), c_out, c_in, 1);
  g_free (s);
}

/* The old diffusers AttentionBlock (google/ddpm-cifar10-32): query, key,
 * value and proj_attn are Linear (C, C), i.e. 1×1 conv weights squeezed,
 * which is how the 1×1 convs here read them. */
static void
add_attn (DdpmUNet *u, const char *prefix, int level, int c)
{
  Node *n = add_node (u, NODE_ATTN, level, c, c);
  AttnParams *a = &n->p.attn;
  int *k = &n->n_tensors;
  char *s = NULL;

  add_layer (u, &n->p, k, &a->norm_w, SUB (".group_norm"), c, 0, -1);
  add_layer (u, &n->p, k, &a->q_w, SUB (".query"), c, c, 0);
  add_layer (u, &n->p, k, &a->k_w, SUB (".key"), c, c, 0);
  add_layer (u, &n->p, k, &a->v_w, SUB (".value"), c, c, 0);
  add_layer (u, &n->p, k, &a->proj_w, SUB (".proj_attn"), c, c, 0);
  g_free (s);
#undef SUB
}

/* Nodes and tensor table for u->config (valid); no parameters allocated. */
static void
build (DdpmUNet *u)
{
  const DdpmUNetConfig *c = &u->config;
  const int L = c->n_levels, ch = c->ch, nrb = c->num_res_blocks;
  gboolean has_attn[DDPM_MAX_LEVELS] = { FALSE };
  int stack[2 + DDPM_MAX_LEVELS * 17], sp = 0;   /* skip sources (node index) */
  int cur, n_temb = 0;
  char name[96];

  for (int i = 0; i < c->n_attn; i++)
    has_attn[ddpm_unet_config_attn_level (c, i)] = TRUE;

  /* at most: conv_in, L·nrb·2 + (L−1) down, 3 mid, L·(nrb+1)·2 + (L−1) up, head */
  u->nodes = g_new0 (Node, 2 + 4 * L * (nrb + 1) + 2 * L + 3);
  u->tensors = g_array_new (FALSE, TRUE, sizeof (DdpmParamInfo));
  u->names = g_string_chunk_new (4096);
  u->n_params = 0;

  add_layer (u, &u->temb_p, &n_temb, &u->temb_p.temb.l1_w, "time_embedding.linear_1",
             4 * ch, ch, 0);
  add_layer (u, &u->temb_p, &n_temb, &u->temb_p.temb.l2_w, "time_embedding.linear_2",
             4 * ch, 4 * ch, 0);

  Node *n = add_node (u, NODE_IN, 0, c->in_channels, ch);
  add_layer (u, &n->p, &n->n_tensors, &n->p.conv.w, "conv_in", ch, c->in_channels, 3);
  n->is_skip = TRUE;
  stack[sp++] = 0;
  cur = ch;

  for (int l = 0; l < L; l++)
    {
      for (int j = 0; j < nrb; j++)
        {
          g_snprintf (name, sizeof name, "down_blocks.%d.resnets.%d", l, j);
          add_res (u, name, l, cur, ch * c->ch_mult[l], -1, 0);
          cur = ch * c->ch_mult[l];
          if (has_attn[l])
            {
              g_snprintf (name, sizeof name, "down_blocks.%d.attentions.%d", l, j);
              add_attn (u, name, l, cur);
            }
          u->nodes[u->n_nodes - 1].is_skip = TRUE;
          stack[sp++] = u->n_nodes - 1;
        }
      if (l != L - 1)
        {
          n = add_node (u, NODE_DOWN, l, cur, cur);
          g_snprintf (name, sizeof name, "down_blocks.%d.downsamplers.0.conv", l);
          add_layer (u, &n->p, &n->n_tensors, &n->p.conv.w, name, cur, cur, 3);
          n->is_skip = TRUE;
          stack[sp++] = u->n_nodes - 1;
        }
    }

  add_res (u, "mid_block.resnets.0", L - 1, cur, cur, -1, 0);
  add_attn (u, "mid_block.attentions.0", L - 1, cur);
  add_res (u, "mid_block.resnets.1", L - 1, cur, cur, -1, 0);

  for (int l = L - 1; l >= 0; l--)
    {
      int i = L - 1 - l;  /* diffusers' up_blocks.0 is the deepest */

      for (int j = 0; j < nrb + 1; j++)
        {
          int src = stack[--sp];
          int c_skip = u->nodes[src].c_out;

          g_snprintf (name, sizeof name, "up_blocks.%d.resnets.%d", i, j);
          add_res (u, name, l, cur + c_skip, ch * c->ch_mult[l], src, c_skip);
          cur = ch * c->ch_mult[l];
          if (has_attn[l])
            {
              g_snprintf (name, sizeof name, "up_blocks.%d.attentions.%d", i, j);
              add_attn (u, name, l, cur);
            }
        }
      if (l != 0)
        {
          n = add_node (u, NODE_UP, l, cur, cur);
          g_snprintf (name, sizeof name, "up_blocks.%d.upsamplers.0.conv", i);
          add_layer (u, &n->p, &n->n_tensors, &n->p.conv.w, name, cur, cur, 3);
        }
    }
  g_assert (sp == 0);

  n = add_node (u, NODE_HEAD, 0, cur, c->out_channels);
  add_layer (u, &n->p, &n->n_tensors, &n->p.head.norm_w, "conv_norm_out", cur, 0, -1);
  add_layer (u, &n->p, &n->n_tensors, &n->p.head.conv_w, "conv_out", c->out_channels, cur, 3);
}

/* Sets a block's n pointers into base (u->params or u->grads) from the
 * table's offsets of its tensors, first to first + n − 1. */
static void
point_block (const DdpmUNet *u, Params *p, int first, int n, float *base)
{
  for (int k = 0; k < n; k++)
    p->t[k] = base + g_array_index (u->tensors, DdpmParamInfo, first + k).offset;
}

/* Every block's parameter pointers (p) or, once u->grads is allocated,
 * gradient pointers (d). */
static void
point_params (DdpmUNet *u, gboolean grads)
{
  float *base = grads ? u->grads : u->params;

  point_block (u, grads ? &u->temb_d : &u->temb_p, 0, 4, base);
  for (int i = 0; i < u->n_nodes; i++)
    {
      Node *n = &u->nodes[i];
      point_block (u, grads ? &n->d : &n->p, n->tensor0, n->n_tensors, base);
    }
}

static void
unbuild (DdpmUNet *u)
{
  g_free (u->nodes);
  if (u->tensors != NULL)
    g_array_unref (u->tensors);
  if (u->names != NULL)
    g_string_chunk_free (u->names);
}

gsize
ddpm_unet_config_n_params (const DdpmUNetConfig *config)
{
  DdpmUNet skeleton = { 0 };

  g_return_val_if_fail (config != NULL, 0);
  if (!ddpm_unet_config_validate (config, NULL))
    return 0;
  skeleton.config = *config;
  build (&skeleton);
  unbuild (&skeleton);
  return skeleton.n_params;
}

DdpmUNet *
ddpm_unet_new (const DdpmUNetConfig *config,
               GError              **error)
{
  DdpmUNet *u;

  g_return_val_if_fail (config != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  if (!ddpm_unet_config_validate (config, error))
    return NULL;
  u = g_new0 (DdpmUNet, 1);
  u->config = *config;
  build (u);
  u->params = g_try_malloc0_n (u->n_params, sizeof (float));
  if (u->params == NULL)
    {
      g_set_error (error, DDPM_ERROR, DDPM_ERROR_NO_MEMORY,
                   "Not enough memory for the %" G_GSIZE_FORMAT " parameters of the UNet",
                   u->n_params);
      ddpm_unet_free (u);
      return NULL;
    }
  point_params (u, FALSE);
  return u;
}

void
ddpm_unet_free (DdpmUNet *unet)
{
  if (unet == NULL)
    return;
  unbuild (unet);
  g_free (unet->params);
  g_free (unet->grads);
  g_free (unet->acts);
  g_free (unet);
}

const DdpmUNetConfig *
ddpm_unet_get_config (const DdpmUNet *unet)
{
  g_return_val_if_fail (unet != NULL, NULL);
  return &unet->config;
}

gsize
ddpm_unet_n_params (const DdpmUNet *unet)
{
  g_return_val_if_fail (unet != NULL, 0);
  return unet->n_params;
}

float *
ddpm_unet_params (DdpmUNet *unet)
{
  g_return_val_if_fail (unet != NULL, NULL);
  return unet->params;
}

float *
ddpm_unet_grads (DdpmUNet *unet)
{
  g_return_val_if_fail (unet != NULL, NULL);
  if (unet->grads == NULL)
    {
      unet->grads = g_try_malloc0_n (unet->n_params, sizeof (float));
      if (unet->grads != NULL)
        point_params (unet, TRUE);
    }
  return unet->grads;
}

/* On the team: a serial clear of the gradients left the other core idle
 * (and its worker asleep) at the start of every step. */
static void
zero_range (gsize begin, gsize end, gpointer data)
{
  memset ((float *) data + begin, 0, (end - begin) * sizeof (float));
}

void
ddpm_unet_zero_grads (DdpmUNet *unet)
{
  g_return_if_fail (unet != NULL);
  if (unet->grads != NULL)
    ddpm_parallel_for (unet->n_params, 65536, zero_range, unet->grads);
}

int
ddpm_unet_n_tensors (const DdpmUNet *unet)
{
  g_return_val_if_fail (unet != NULL, 0);
  return (int) unet->tensors->len;
}

const DdpmParamInfo *
ddpm_unet_tensor (const DdpmUNet *unet,
                  int             index)
{
  g_return_val_if_fail (unet != NULL, NULL);
  g_return_val_if_fail (index >= 0 && (guint) index < unet->tensors->len, NULL);
  return &g_array_index (unet->tensors, DdpmParamInfo, index);
}

int
ddpm_unet_find_tensor (const DdpmUNet *unet,
                       const char     *name)
{
  g_return_val_if_fail (unet != NULL && name != NULL, -1);
  for (guint i = 0; i < unet->tensors->len; i++)
    if (strcmp (g_array_index (unet->tensors, DdpmParamInfo, i).name, name) == 0)
      return (int) i;
  return -1;
}

/* PyTorch's reset_parameters for Conv2d and Linear: kaiming_uniform with
 * a = √5 gives the weights U(±1/√fan_in), and the biases get the same
 * bound.  diffusion_tf (Ho et al.'s code) initialises the last conv of each
 * residual block, the attention output and conv_out with init_scale = 0. */
void
ddpm_unet_init (DdpmUNet *unet,
                guint64   seed)
{
  g_return_if_fail (unet != NULL);

  double u[256];

  for (guint i = 0; i < unet->tensors->len; i++)
    {
      const DdpmParamInfo *t = &g_array_index (unet->tensors, DdpmParamInfo, i);
      float *p = unet->params + t->offset;
      const char *leaf = strrchr (t->name, '.');
      gboolean is_weight = strcmp (leaf, ".weight") == 0;
      gboolean is_norm = strstr (t->name, "norm") != NULL;
      gboolean is_zero = strstr (t->name, ".conv2.") != NULL
                         || strstr (t->name, ".proj_attn.") != NULL
                         || g_str_has_prefix (t->name, "conv_out.");

      if (is_norm || is_zero)
        {
          float v = is_norm && is_weight ? 1.0f : 0.0f;
          for (gsize j = 0; j < t->numel; j++)
            p[j] = v;
          continue;
        }
      /* the bias's fan_in is its weight's (the tensor just before it) */
      const DdpmParamInfo *w = is_weight ? t : t - 1;
      double fan_in = (double) w->numel / (double) w->shape[0];
      double bound = 1.0 / sqrt (fan_in);

      for (gsize first = 0; first < t->numel; first += G_N_ELEMENTS (u))
        {
          gsize m = MIN (G_N_ELEMENTS (u), t->numel - first);
          ddpm_rng_uniform_fill (u, m, seed, i, first);
          for (gsize j = 0; j < m; j++)
            p[first + j] = (float) ((2.0 * u[j] - 1.0) * bound);
        }
    }
}

/* ------------------------------------------------------------------ layout */

/* Offsets of every activation for (B, H, W).  Training: every saved tensor
 * has its own place, plus the backward buffers.  Inference: node outputs
 * have their own place (the up path reads them as skips); a node's
 * internals go to a region at the start that every node reuses. */
typedef struct
{
  gboolean training;
  gsize    off;    /* next persistent offset */
  gsize    toff;   /* next offset in the reused region */
  gsize    tmax;   /* size of the reused region */
} Layout;

static gsize
round_up (gsize n)
{
  return (n + ALIGN_FLOATS - 1) / ALIGN_FLOATS * ALIGN_FLOATS;
}

static gsize
place (Layout *l, gsize n, gboolean saved)
{
  gsize at;

  if (saved || l->training)
    {
      at = l->off;
      l->off += round_up (n);
    }
  else
    {
      at = l->toff;
      l->toff += round_up (n);
      l->tmax = MAX (l->tmax, l->toff);
    }
  return at;
}

static DdpmConvShape
conv_shape (int B, int C_in, int H, int W, int C_out, int k, int stride, int pb, int pe)
{
  DdpmConvShape s = { B, C_in, H, W, C_out, k, stride, pb, pe };
  return s;
}

static gsize
layout_pass (DdpmUNet *u, Layout *l, int B, int H, int W)
{
  const int ch = u->config.ch, tdim = 4 * ch;
  gsize max_t = 0, max_conv = 0, max_nn = 0, max_padded = 0;
  int max_c = 0;

  l->toff = 0;
  u->ta[TA_EMB] = place (l, (gsize) B * ch, FALSE);
  u->ta[TA_L1] = place (l, (gsize) B * tdim, FALSE);
  u->ta[TA_S1] = place (l, (gsize) B * tdim, FALSE);
  u->ta[TA_TEMB] = place (l, (gsize) B * tdim, FALSE);
  u->ta[TA_ST] = place (l, (gsize) B * tdim, TRUE);

  for (int i = 0; i < u->n_nodes; i++)
    {
      Node *n = &u->nodes[i];
      const int h = H >> n->level, w = W >> n->level;
      const gsize hw = (gsize) h * w;
      const gsize nin = (gsize) B * n->c_in * hw, nout = (gsize) B * n->c_out * hw;
      const gsize stats = (gsize) B * GN_GROUPS;
      DdpmConvShape cs;

      l->toff = 0;
      memset (n->a, 0, sizeof n->a);
      max_c = MAX (max_c, n->c_out);
      switch (n->kind)
        {
        case NODE_IN:
          n->a[A_X] = place (l, nin, FALSE);
          n->a[A_Y] = place (l, nout, TRUE);
          cs = conv_shape (B, n->c_in, h, w, n->c_out, 3, 1, 1, 1);
          max_conv = MAX (max_conv, ddpm_conv2d_scratch_size (&cs));
          max_t = MAX (max_t, MAX (nin, nout));
          break;
        case NODE_RES:
          if (n->skip_src >= 0)
            n->a[A_CAT] = place (l, nin, FALSE);
          n->a[A_N1] = place (l, nin, FALSE);
          n->a[A_MEAN1] = place (l, stats, FALSE);
          n->a[A_RSTD1] = place (l, stats, FALSE);
          n->a[A_H1] = place (l, nout, FALSE);
          n->a[A_N2] = place (l, nout, FALSE);
          n->a[A_MEAN2] = place (l, stats, FALSE);
          n->a[A_RSTD2] = place (l, stats, FALSE);
          if (l->training && u->config.dropout > 0.0f)
            n->a[A_MASK] = place (l, (nout + sizeof (float) - 1) / sizeof (float), FALSE);
          n->a[A_Y] = place (l, nout, TRUE);
          cs = conv_shape (B, n->c_in, h, w, n->c_out, 3, 1, 1, 1);
          max_conv = MAX (max_conv, ddpm_conv2d_scratch_size (&cs));
          cs = conv_shape (B, n->c_out, h, w, n->c_out, 3, 1, 1, 1);
          max_conv = MAX (max_conv, ddpm_conv2d_scratch_size (&cs));
          max_t = MAX (max_t, MAX (nin, nout));
          max_padded = MAX (max_padded, (gsize) B * MAX (n->c_in, n->c_out) * (h + 2) * (w + 2));
          break;
        case NODE_ATTN:
          n->a[A_N] = place (l, nout, FALSE);
          n->a[A_MEAN] = place (l, stats, FALSE);
          n->a[A_RSTD] = place (l, stats, FALSE);
          n->a[A_Q] = place (l, nout, FALSE);
          n->a[A_K] = place (l, nout, FALSE);
          n->a[A_V] = place (l, nout, FALSE);
          n->a[A_P] = place (l, (gsize) B * hw * hw, FALSE);
          n->a[A_O] = place (l, nout, FALSE);
          n->a[A_Y] = place (l, nout, TRUE);
          max_nn = MAX (max_nn, (gsize) B * hw * hw);
          max_t = MAX (max_t, nout);
          break;
        case NODE_DOWN:
          n->a[A_Y] = place (l, nout / 4, TRUE);
          cs = conv_shape (B, n->c_in, h, w, n->c_out, 3, 2, 0, 1);
          max_conv = MAX (max_conv, ddpm_conv2d_scratch_size (&cs));
          max_t = MAX (max_t, nin);
          break;
        case NODE_UP:
          cs = conv_shape (B, n->c_in, 2 * h, 2 * w, n->c_out, 3, 1, 1, 1);
          /* zero-bordered for the direct kernel (node_forward) */
          n->a[A_U] = place (l, ddpm_conv3x3_direct_ok (&cs)
                                  ? (gsize) B * n->c_in * (2 * h + 2) * (2 * w + 2)
                                  : 4 * nin,
                             FALSE);
          n->a[A_Y] = place (l, 4 * nout, TRUE);
          max_conv = MAX (max_conv, ddpm_conv2d_scratch_size (&cs));
          max_t = MAX (max_t, 4 * nin);
          break;
        case NODE_HEAD:
          n->a[A_N] = place (l, nin, FALSE);
          n->a[A_MEAN] = place (l, stats, FALSE);
          n->a[A_RSTD] = place (l, stats, FALSE);
          cs = conv_shape (B, n->c_in, h, w, n->c_out, 3, 1, 1, 1);
          max_conv = MAX (max_conv, ddpm_conv2d_scratch_size (&cs));
          max_t = MAX (max_t, MAX (nin, nout));
          max_padded = MAX (max_padded, (gsize) B * n->c_in * (h + 2) * (w + 2));
          break;
        }
      if (l->training && n->is_skip)
        {
          /* the skip's gradient: the output's size */
          gsize ny = n->kind == NODE_DOWN ? nout / 4 : nout;
          n->a[A_DSKIP] = place (l, ny, TRUE);
        }
    }

  memset (u->scratch, 0, sizeof u->scratch);
  u->scratch[S_CONV] = place (l, MAX (max_conv, 1), TRUE);
  /* and the zero-bordered planes of norm_silu_conv and silu_conv_backward */
  u->scratch[S_A] = place (l, MAX (max_t, max_padded), TRUE);
  u->scratch[S_B] = place (l, max_t, TRUE);
  u->scratch[S_TP] = place (l, (gsize) B * max_c, TRUE);
  if (l->training)
    {
      u->scratch[S_G1] = place (l, max_t, TRUE);
      u->scratch[S_G2] = place (l, max_t, TRUE);
      u->scratch[S_G3] = place (l, max_t, TRUE);
      u->scratch[S_DCUR] = place (l, max_t, TRUE);
      u->scratch[S_DNEXT] = place (l, max_t, TRUE);
      u->scratch[S_DST] = place (l, (gsize) B * tdim, TRUE);
      u->scratch[S_DTEMB] = place (l, (gsize) B * tdim, TRUE);
      u->scratch[S_DS1] = place (l, (gsize) B * tdim, TRUE);
      u->scratch[S_DL1] = place (l, (gsize) B * tdim, TRUE);
      u->scratch[S_PSCRATCH] = place (l, MAX (max_nn, 1), TRUE);
      u->scratch[S_DX] = place (l, (gsize) B * u->config.in_channels * H * W, TRUE);
    }
  return l->off;
}

/* Lays the activations out for (B, H, W, training) and makes sure the
 * allocation holds them. */
static gboolean
layout (DdpmUNet *u, int B, int H, int W, gboolean training, GError **error)
{
  Layout l = { training, 0, 0, 0 };
  gsize need;

  if (u->acts != NULL && u->lay_B == B && u->lay_H == H && u->lay_W == W
      && u->lay_training == training)
    return TRUE;

  /* first pass: the size of the reused region; second: persistent
   * tensors after it */
  layout_pass (u, &l, B, H, W);
  l.off = round_up (l.tmax);
  l.tmax = 0;
  need = layout_pass (u, &l, B, H, W);

  if (need > u->acts_capacity)
    {
      g_free (u->acts);
      u->acts_capacity = 0;
      u->acts = g_try_malloc_n (need, sizeof (float));
      if (u->acts == NULL)
        {
          u->lay_B = 0;
          g_set_error (error, DDPM_ERROR, DDPM_ERROR_NO_MEMORY,
                       "Not enough memory for the UNet on %d images of %d×%d "
                       "(%" G_GSIZE_FORMAT " MB): use a smaller batch or tile",
                       B, W, H, need * sizeof (float) >> 20);
          return FALSE;
        }
      u->acts_capacity = need;
    }
  u->lay_B = B;
  u->lay_H = H;
  u->lay_W = W;
  u->lay_training = training;
  return TRUE;
}

/* ----------------------------------------------------------------- forward */

#define ACT(n, slot) (u->acts + (n)->a[slot])
#define SCR(slot) (u->acts + u->scratch[slot])

static const float *
node_input (const DdpmUNet *u, int i)
{
  const Node *n = &u->nodes[i];
  return n->kind == NODE_IN ? ACT (n, A_X) : ACT (&u->nodes[i - 1], A_Y);
}

/* a = SiLU (GroupNorm (x)).  Training keeps the normalised values (in
 * norm) for the backward pass; inference does both in one pass. */
static void
norm_silu (gboolean training, float *a, float *norm, float *mean, float *rstd,
           const float *x, const float *gamma, const float *beta, int B, int C, int HW)
{
  if (training)
    {
      ddpm_groupnorm_forward (norm, mean, rstd, x, gamma, beta, B, C, HW, GN_GROUPS, GN_EPS);
      ddpm_silu_forward (a, norm, (gsize) B * C * HW);
    }
  else
    ddpm_groupnorm_silu_forward (a, mean, rstd, x, gamma, beta, B, C, HW, GN_GROUPS,
                                 GN_EPS);
}

/* out = conv3×3 (SiLU (GroupNorm (x))) as the res blocks and the head
 * compute it.  When the direct kernel takes the shape, the SiLU's planes
 * are written zero-bordered and the convolution reads them as they are
 * (no padded copy: 6 % of a forward pass), GroupNorm and SiLU in one
 * pass, which in training also keeps the normalised values (norm) for the
 * backward pass.  The scratch a is S_A, sized for the padded planes. */
static void
norm_silu_conv (DdpmUNet *u, gboolean training, float *out, float *norm, float *mean,
                float *rstd, const float *x, const float *gamma, const float *beta,
                const float *weight, const float *bias, const DdpmConvShape *cs)
{
  float *a = SCR (S_A);

  if (ddpm_conv3x3_direct_ok (cs))
    {
      ddpm_groupnorm_silu_forward_padded (a, training ? norm : NULL, mean, rstd, x, gamma, beta,
                                          cs->B, cs->C_in, cs->H, cs->W, GN_GROUPS, GN_EPS);
      ddpm_conv3x3_forward_padded (out, a, weight, bias, cs, SCR (S_CONV));
      return;
    }
  norm_silu (training, a, norm, mean, rstd, x, gamma, beta, cs->B, cs->C_in, cs->H * cs->W);
  ddpm_conv2d_forward (out, a, weight, bias, cs, SCR (S_CONV));
}

static void
res_forward (DdpmUNet *u, int i, gboolean training, int B, int h, int w)
{
  Node *n = &u->nodes[i];
  const int HW = h * w, tdim = 4 * u->config.ch;
  const gsize nout = (gsize) B * n->c_out * HW;
  const ResParams *p = &n->p.res;
  const float *x = node_input (u, i);
  float *a = SCR (S_A), *tp = SCR (S_TP), *y = ACT (n, A_Y);
  DdpmConvShape cs;

  if (n->skip_src >= 0)
    {
      ddpm_concat_forward (ACT (n, A_CAT), x, ACT (&u->nodes[n->skip_src], A_Y),
                           B, n->c_in - n->c_skip, n->c_skip, HW);
      x = ACT (n, A_CAT);
    }
  cs = conv_shape (B, n->c_in, h, w, n->c_out, 3, 1, 1, 1);
  norm_silu_conv (u, training, ACT (n, A_H1), ACT (n, A_N1), ACT (n, A_MEAN1), ACT (n, A_RSTD1),
                  x, p->norm1_w, p->norm1_b, p->conv1_w,
                  p->conv1_b, &cs);
  ddpm_linear_forward (tp, u->acts + u->ta[TA_ST], p->temb_w, p->temb_b,
                       B, tdim, n->c_out);
  ddpm_add_channel_bias_forward (ACT (n, A_H1), ACT (n, A_H1), tp, B, n->c_out, HW);
  cs = conv_shape (B, n->c_out, h, w, n->c_out, 3, 1, 1, 1);
  if (training && u->dropout_p > 0.0f)
    {
      norm_silu (training, a, ACT (n, A_N2), ACT (n, A_MEAN2), ACT (n, A_RSTD2),
                 ACT (n, A_H1), p->norm2_w, p->norm2_b, B, n->c_out, HW);
      ddpm_dropout_forward (a, (guint8 *) ACT (n, A_MASK), a, nout, u->dropout_p,
                            u->dropout_seed, (guint64) i);
      ddpm_conv2d_forward (y, a, p->conv2_w, p->conv2_b, &cs, SCR (S_CONV));
    }
  else
    norm_silu_conv (u, training, y, ACT (n, A_N2), ACT (n, A_MEAN2), ACT (n, A_RSTD2),
                    ACT (n, A_H1), p->norm2_w, p->norm2_b, p->conv2_w,
                    p->conv2_b, &cs);
  if (n->c_in != n->c_out)
    {
      cs = conv_shape (B, n->c_in, h, w, n->c_out, 1, 1, 0, 0);
      ddpm_conv2d_forward (SCR (S_B), x, p->skip_w, p->skip_b, &cs, NULL);
      ddpm_add_forward (y, y, SCR (S_B), nout);
    }
  else
    ddpm_add_forward (y, y, x, nout);
}

static void
attn_forward (DdpmUNet *u, int i, int B, int h, int w)
{
  Node *n = &u->nodes[i];
  const int C = n->c_in, N = h * w;
  const AttnParams *p = &n->p.attn;
  const float *x = node_input (u, i);
  DdpmConvShape cs = conv_shape (B, C, h, w, C, 1, 1, 0, 0);

  ddpm_groupnorm_forward (ACT (n, A_N), ACT (n, A_MEAN), ACT (n, A_RSTD), x,
                          p->norm_w, p->norm_b, B, C, N, GN_GROUPS, GN_EPS);
  ddpm_conv2d_forward (ACT (n, A_Q), ACT (n, A_N), p->q_w, p->q_b, &cs, NULL);
  ddpm_conv2d_forward (ACT (n, A_K), ACT (n, A_N), p->k_w, p->k_b, &cs, NULL);
  ddpm_conv2d_forward (ACT (n, A_V), ACT (n, A_N), p->v_w, p->v_b, &cs, NULL);
  ddpm_attention_forward (ACT (n, A_O), ACT (n, A_P), ACT (n, A_Q), ACT (n, A_K), ACT (n, A_V),
                          B, C, N);
  ddpm_conv2d_forward (ACT (n, A_Y), ACT (n, A_O), p->proj_w, p->proj_b, &cs,
                       NULL);
  ddpm_add_forward (ACT (n, A_Y), ACT (n, A_Y), x, (gsize) B * C * N);
}

static void
node_forward (DdpmUNet *u, int i, float *out, gboolean training, int B, int H, int W)
{
  Node *n = &u->nodes[i];
  const int h = H >> n->level, w = W >> n->level;
  const float *x = node_input (u, i);
  DdpmConvShape cs;

  switch (n->kind)
    {
    case NODE_IN:
      cs = conv_shape (B, n->c_in, h, w, n->c_out, 3, 1, 1, 1);
      ddpm_conv2d_forward (ACT (n, A_Y), x, n->p.conv.w, n->p.conv.b, &cs,
                           SCR (S_CONV));
      break;
    case NODE_RES:
      res_forward (u, i, training, B, h, w);
      break;
    case NODE_ATTN:
      attn_forward (u, i, B, h, w);
      break;
    case NODE_DOWN:
      /* TF 'SAME' for stride 2: pad right and bottom only */
      cs = conv_shape (B, n->c_in, h, w, n->c_out, 3, 2, 0, 1);
      ddpm_conv2d_forward (ACT (n, A_Y), x, n->p.conv.w, n->p.conv.b, &cs,
                           SCR (S_CONV));
      break;
    case NODE_UP:
      cs = conv_shape (B, n->c_in, 2 * h, 2 * w, n->c_out, 3, 1, 1, 1);
      if (ddpm_conv3x3_direct_ok (&cs))
        {
          /* as norm_silu_conv: up-sample straight into padded planes,
           * which the backward pass's weight gradient reads too */
          ddpm_upsample2x_forward_padded (ACT (n, A_U), x, B, n->c_in, h, w);
          ddpm_conv3x3_forward_padded (ACT (n, A_Y), ACT (n, A_U), n->p.conv.w,
                                       n->p.conv.b, &cs, SCR (S_CONV));
          break;
        }
      ddpm_upsample2x_forward (ACT (n, A_U), x, B, n->c_in, h, w);
      ddpm_conv2d_forward (ACT (n, A_Y), ACT (n, A_U), n->p.conv.w, n->p.conv.b,
                           &cs, SCR (S_CONV));
      break;
    case NODE_HEAD:
      cs = conv_shape (B, n->c_in, h, w, n->c_out, 3, 1, 1, 1);
      norm_silu_conv (u, training, out, ACT (n, A_N), ACT (n, A_MEAN), ACT (n, A_RSTD), x,
                      n->p.head.norm_w, n->p.head.norm_b, n->p.head.conv_w,
                      n->p.head.conv_b, &cs);
      break;
    }
}

/* The time embedding (Ho et al. 2020, appendix B):
 * temb = linear_2(SiLU(linear_1(sinusoid(t)))), and SiLU(temb), which
 * every residual block projects: computed once. */
static void
temb_forward (DdpmUNet *u, const int *t, int B)
{
  const TembParams *p = &u->temb_p.temb;
  const int ch = u->config.ch, tdim = 4 * ch;

  ddpm_timestep_embedding (u->acts + u->ta[TA_EMB], t, B, ch);
  ddpm_linear_forward (u->acts + u->ta[TA_L1], u->acts + u->ta[TA_EMB],
                       p->l1_w, p->l1_b, B, ch, tdim);
  ddpm_silu_forward (u->acts + u->ta[TA_S1], u->acts + u->ta[TA_L1], (gsize) B * tdim);
  ddpm_linear_forward (u->acts + u->ta[TA_TEMB], u->acts + u->ta[TA_S1],
                       p->l2_w, p->l2_b, B, tdim, tdim);
  ddpm_silu_forward (u->acts + u->ta[TA_ST], u->acts + u->ta[TA_TEMB], (gsize) B * tdim);
}

gboolean
ddpm_unet_forward (DdpmUNet    *unet,
                   float       *out,
                   const float *x,
                   const int   *t,
                   int          B,
                   int          H,
                   int          W,
                   gboolean     training,
                   guint64      dropout_seed,
                   GError     **error)
{
  DdpmUNet *u = unet;
  int mult;

  g_return_val_if_fail (unet != NULL && out != NULL && x != NULL && t != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  mult = 1 << (u->config.n_levels - 1);
  if (B < 1 || H < 1 || W < 1 || H % mult != 0 || W % mult != 0
      || (gint64) B * H * W > G_MAXINT32)
    {
      g_set_error (error, DDPM_ERROR, DDPM_ERROR_INVALID_ARGUMENT,
                   "The UNet cannot run on %d images of %d×%d: width and height "
                   "must be positive multiples of %d",
                   B, W, H, mult);
      return FALSE;
    }
  u->saved = FALSE;
  if (!layout (u, B, H, W, training, error))
    return FALSE;
  u->B = B;
  u->H = H;
  u->W = W;
  u->dropout_p = training ? u->config.dropout : 0.0f;
  u->dropout_seed = dropout_seed;

  temb_forward (u, t, B);
  memcpy (ACT (&u->nodes[0], A_X), x, sizeof (float) * B * u->config.in_channels * H * W);
  for (int i = 0; i < u->n_nodes; i++)
    node_forward (u, i, out, training, B, H, W);
  u->saved = training;
  return TRUE;
}

/* ---------------------------------------------------------------- backward */

static void
zero (float *p, gsize n)
{
  memset (p, 0, n * sizeof (float));
}

/* Applies the saved dropout mask again: the input of conv2 as the forward
 * pass saw it (same scaling as ddpm_dropout_forward). */
static void
apply_mask (float *a, const guint8 *mask, gsize n, float p)
{
  const float scale = 1.0f / (1.0f - p);

  for (gsize k = 0; k < n; k++)
    a[k] = mask[k] ? a[k] * scale : 0.0f;
}

/* The backward pass of conv3×3 (SiLU (norm)) down to the SiLU's output:
 * the forward did not keep a = SiLU (norm), so it is recomputed (into
 * S_A, zero-bordered when the direct kernel takes the shape, which then
 * reads it in place), and da = ∂L/∂a (written, not added to). */
static void
silu_conv_backward (DdpmUNet *u, float *da, float *dweight, float *dbias, const float *dy,
                    const float *norm, const float *weight, const DdpmConvShape *cs)
{
  const gsize n = (gsize) cs->B * cs->C_in * cs->H * cs->W;
  float *a = SCR (S_A);

  if (ddpm_conv3x3_direct_ok (cs))
    {
      ddpm_silu_forward_padded (a, norm, (gsize) cs->B * cs->C_in, cs->H, cs->W);
      ddpm_conv2d_backward_padded (da, dweight, dbias, dy, a, weight, cs, SCR (S_CONV));
      return;
    }
  ddpm_silu_forward (a, norm, n);
  zero (da, n);
  ddpm_conv2d_backward (da, dweight, dbias, dy, a, weight, cs, SCR (S_CONV));
}

/* dx += ∂L/∂x of the main input (and of the skip, for up blocks). */
static void
res_backward (DdpmUNet *u, int i, float *dx, const float *dy, int B, int h, int w)
{
  Node *n = &u->nodes[i];
  const int HW = h * w, tdim = 4 * u->config.ch;
  const gsize nin = (gsize) B * n->c_in * HW, nout = (gsize) B * n->c_out * HW;
  const ResParams *p = &n->p.res, *d = &n->d.res;   /* parameters, gradients */
  const float *x = n->skip_src >= 0 ? ACT (n, A_CAT) : node_input (u, i);
  float *dxin = n->skip_src >= 0 ? SCR (S_G3) : dx;
  float *a = SCR (S_A), *b = SCR (S_B), *g1 = SCR (S_G1), *g2 = SCR (S_G2);
  float *dtp = SCR (S_TP);
  DdpmConvShape cs;

  if (n->skip_src >= 0)
    zero (dxin, nin);

  /* out = shortcut(x) + h */
  if (n->c_in != n->c_out)
    {
      cs = conv_shape (B, n->c_in, h, w, n->c_out, 1, 1, 0, 0);
      ddpm_conv2d_backward (dxin, d->skip_w, d->skip_b, dy, x,
                            p->skip_w, &cs, NULL);
    }
  else
    ddpm_add_forward (dxin, dxin, dy, nout);

  /* h = conv2(dropout(SiLU(norm2(h1)))) */
  cs = conv_shape (B, n->c_out, h, w, n->c_out, 3, 1, 1, 1);
  if (u->dropout_p > 0.0f)
    {
      zero (g1, nout);
      ddpm_silu_forward (a, ACT (n, A_N2), nout);
      apply_mask (a, (const guint8 *) ACT (n, A_MASK), nout, u->dropout_p);
      ddpm_conv2d_backward (g1, d->conv2_w, d->conv2_b, dy, a,
                            p->conv2_w, &cs, SCR (S_CONV));
      zero (g2, nout);
      ddpm_dropout_backward (g2, g1, (const guint8 *) ACT (n, A_MASK), nout, u->dropout_p);
      float *tmp = g1;  /* g1 = ∂L/∂SiLU(norm2(h1)) */
      g1 = g2;
      g2 = tmp;
    }
  else
    silu_conv_backward (u, g1, d->conv2_w, d->conv2_b, dy, ACT (n, A_N2),
                        p->conv2_w, &cs);
  zero (g2, nout);
  ddpm_groupnorm_silu_backward (g2, d->norm2_w, d->norm2_b, g1, ACT (n, A_N2),
                                ACT (n, A_H1), ACT (n, A_MEAN2), ACT (n, A_RSTD2),
                                p->norm2_w, B, n->c_out, HW, GN_GROUPS);

  /* h1 = conv1(SiLU(norm1(x))) + time_emb_proj(SiLU(temb)); g2 = ∂L/∂h1 */
  zero (dtp, (gsize) B * n->c_out);
  ddpm_add_channel_bias_backward (dtp, g2, B, n->c_out, HW);
  ddpm_linear_backward (SCR (S_DST), d->temb_w, d->temb_b, dtp,
                        u->acts + u->ta[TA_ST], p->temb_w, B, tdim, n->c_out);
  /* conv1's bias gradient is Σ_b of the per-image sums just taken */
  for (int c = 0; c < n->c_out; c++)
    {
      double sum = 0;
      for (int bi = 0; bi < B; bi++)
        sum += dtp[(gsize) bi * n->c_out + c];
      d->conv1_b[c] += (float) sum;
    }
  cs = conv_shape (B, n->c_in, h, w, n->c_out, 3, 1, 1, 1);
  silu_conv_backward (u, b, d->conv1_w, NULL, g2, ACT (n, A_N1), p->conv1_w,
                      &cs);
  ddpm_groupnorm_silu_backward (dxin, d->norm1_w, d->norm1_b, b, ACT (n, A_N1),
                                x, ACT (n, A_MEAN1), ACT (n, A_RSTD1), p->norm1_w,
                                B, n->c_in, HW, GN_GROUPS);

  /* x = [h, skip] */
  if (n->skip_src >= 0)
    ddpm_concat_backward (dx, ACT (&u->nodes[n->skip_src], A_DSKIP), dxin,
                          B, n->c_in - n->c_skip, n->c_skip, HW);
}

static void
attn_backward (DdpmUNet *u, int i, float *dx, const float *dy, int B, int h, int w)
{
  Node *n = &u->nodes[i];
  const int C = n->c_in, N = h * w;
  const gsize nt = (gsize) B * C * N;
  const AttnParams *p = &n->p.attn, *d = &n->d.attn;   /* parameters, gradients */
  const float *x = node_input (u, i);
  float *g1 = SCR (S_G1), *dq = SCR (S_G2), *dk = SCR (S_A), *dv = SCR (S_B);
  DdpmConvShape cs = conv_shape (B, C, h, w, C, 1, 1, 0, 0);

  /* y = x + proj(o) */
  ddpm_add_forward (dx, dx, dy, nt);
  zero (g1, nt);
  ddpm_conv2d_backward (g1, d->proj_w, d->proj_b, dy, ACT (n, A_O),
                        p->proj_w, &cs, NULL);
  zero (dq, nt);
  zero (dk, nt);
  zero (dv, nt);
  ddpm_attention_backward (dq, dk, dv, g1, ACT (n, A_P), ACT (n, A_Q), ACT (n, A_K),
                           ACT (n, A_V), B, C, N, SCR (S_PSCRATCH));
  /* q, k, v = 1×1 convs of n = GroupNorm(x) */
  zero (g1, nt);
  ddpm_conv2d_backward (g1, d->q_w, d->q_b, dq, ACT (n, A_N),
                        p->q_w, &cs, NULL);
  ddpm_conv2d_backward (g1, d->k_w, d->k_b, dk, ACT (n, A_N),
                        p->k_w, &cs, NULL);
  ddpm_conv2d_backward (g1, d->v_w, d->v_b, dv, ACT (n, A_N),
                        p->v_w, &cs, NULL);
  ddpm_groupnorm_backward (dx, d->norm_w, d->norm_b, g1, x, ACT (n, A_MEAN),
                           ACT (n, A_RSTD), p->norm_w, B, C, N, GN_GROUPS);
}

/* dx += ∂L/∂(node i's input), given dy = ∂L/∂(its output). */
static void
node_backward (DdpmUNet *u, int i, float *dx, const float *dy, int B, int H, int W)
{
  Node *n = &u->nodes[i];
  const int h = H >> n->level, w = W >> n->level;
  const gsize nin = (gsize) B * n->c_in * h * w;
  const float *x = node_input (u, i);
  DdpmConvShape cs;

  switch (n->kind)
    {
    case NODE_IN:
      cs = conv_shape (B, n->c_in, h, w, n->c_out, 3, 1, 1, 1);
      ddpm_conv2d_backward (dx, n->d.conv.w, n->d.conv.b, dy, x,
                            n->p.conv.w, &cs, SCR (S_CONV));
      break;
    case NODE_RES:
      res_backward (u, i, dx, dy, B, h, w);
      break;
    case NODE_ATTN:
      attn_backward (u, i, dx, dy, B, h, w);
      break;
    case NODE_DOWN:
      cs = conv_shape (B, n->c_in, h, w, n->c_out, 3, 2, 0, 1);
      ddpm_conv2d_backward (dx, n->d.conv.w, n->d.conv.b, dy, x,
                            n->p.conv.w, &cs, SCR (S_CONV));
      break;
    case NODE_UP:
      cs = conv_shape (B, n->c_in, 2 * h, 2 * w, n->c_out, 3, 1, 1, 1);
      if (ddpm_conv3x3_direct_ok (&cs))
        ddpm_conv2d_backward_padded (SCR (S_G1), n->d.conv.w, n->d.conv.b, dy,
                                     ACT (n, A_U), n->p.conv.w, &cs, SCR (S_CONV));
      else
        {
          zero (SCR (S_G1), 4 * nin);
          ddpm_conv2d_backward (SCR (S_G1), n->d.conv.w, n->d.conv.b, dy,
                                ACT (n, A_U), n->p.conv.w, &cs, SCR (S_CONV));
        }
      ddpm_upsample2x_backward (dx, SCR (S_G1), B, n->c_in, h, w);
      break;
    case NODE_HEAD:
      cs = conv_shape (B, n->c_in, h, w, n->c_out, 3, 1, 1, 1);
      silu_conv_backward (u, SCR (S_G1), n->d.head.conv_w, n->d.head.conv_b, dy, ACT (n, A_N),
                          n->p.head.conv_w, &cs);
      ddpm_groupnorm_silu_backward (dx, n->d.head.norm_w, n->d.head.norm_b,
                                    SCR (S_G1), ACT (n, A_N), x, ACT (n, A_MEAN),
                                    ACT (n, A_RSTD), n->p.head.norm_w,
                                    B, n->c_in, h * w, GN_GROUPS);
      break;
    }
}

/* Backward of temb_forward, from S_DST = ∂L/∂SiLU(temb) (which every
 * residual block's backward added to). */
static void
temb_backward (DdpmUNet *u, int B)
{
  const TembParams *p = &u->temb_p.temb, *d = &u->temb_d.temb;   /* parameters, gradients */
  const int ch = u->config.ch, tdim = 4 * ch;

  zero (SCR (S_DTEMB), (gsize) B * tdim);
  ddpm_silu_backward (SCR (S_DTEMB), SCR (S_DST), u->acts + u->ta[TA_TEMB], (gsize) B * tdim);
  zero (SCR (S_DS1), (gsize) B * tdim);
  ddpm_linear_backward (SCR (S_DS1), d->l2_w, d->l2_b,
                        SCR (S_DTEMB), u->acts + u->ta[TA_S1], p->l2_w,
                        B, tdim, tdim);
  zero (SCR (S_DL1), (gsize) B * tdim);
  ddpm_silu_backward (SCR (S_DL1), SCR (S_DS1), u->acts + u->ta[TA_L1], (gsize) B * tdim);
  ddpm_linear_backward (NULL, d->l1_w, d->l1_b,
                        SCR (S_DL1), u->acts + u->ta[TA_EMB], p->l1_w,
                        B, ch, tdim);
}

void
ddpm_unet_backward (DdpmUNet    *unet,
                    const float *dout)
{
  DdpmUNet *u = unet;

  g_return_if_fail (unet != NULL && dout != NULL);
  /* the activations of a training forward are needed, and they are gone
   * after an inference forward (its layout reuses them) */
  g_return_if_fail (unet->saved);
  if (ddpm_unet_grads (unet) == NULL)
    {
      g_critical ("ddpm_unet_backward: no memory for the %" G_GSIZE_FORMAT " gradients",
                  unet->n_params);
      return;
    }

  const int B = u->B, H = u->H, W = u->W, ch = u->config.ch, tdim = 4 * ch;
  float *dcur = SCR (S_DCUR), *dnext = SCR (S_DNEXT);

  for (int i = 0; i < u->n_nodes; i++)
    if (u->nodes[i].is_skip)
      {
        const Node *n = &u->nodes[i];
        const int l = n->kind == NODE_DOWN ? n->level + 1 : n->level;
        zero (ACT (n, A_DSKIP), (gsize) B * n->c_out * (H >> l) * (W >> l));
      }
  zero (SCR (S_DST), (gsize) B * tdim);

  for (int i = u->n_nodes - 1; i >= 0; i--)
    {
      const Node *n = &u->nodes[i];
      const float *dy = n->kind == NODE_HEAD ? dout : dcur;
      const gsize nin = (gsize) B * n->c_in * (H >> n->level) * (W >> n->level);
      const gsize nprev = n->skip_src >= 0 ? nin / n->c_in * (n->c_in - n->c_skip) : nin;
      float *dx = i == 0 ? SCR (S_DX) : dnext;

      zero (dx, nprev);
      node_backward (u, i, dx, dy, B, H, W);
      /* the previous node's output also fed an up block as a skip */
      if (i > 0 && u->nodes[i - 1].is_skip)
        ddpm_add_forward (dx, dx, ACT (&u->nodes[i - 1], A_DSKIP), nprev);
      dnext = dcur;
      dcur = dx;
    }
  temb_backward (u, B);
}

const float *
ddpm_unet_input_grad (const DdpmUNet *unet)
{
  const DdpmUNet *u = unet;

  g_return_val_if_fail (unet != NULL && unet->saved, NULL);
  return SCR (S_DX);
}

gsize
ddpm_unet_activation_bytes (const DdpmUNet *unet)
{
  g_return_val_if_fail (unet != NULL, 0);
  return unet->acts_capacity * sizeof (float);
}
