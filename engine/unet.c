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
 * output head), each with its parameters, their gradients and its
 * activations as named pointers (ResParams, ResActs, ...) into the three
 * allocations: parameters, gradients, activations.  Node i reads node
 * i−1's output; an up-path ResBlock also
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

#include "intl.h"

#include "unet.h"
#include "layers/layers.h"

#define GN_GROUPS DDPM_UNET_GROUPS
#define GN_EPS 1e-6f
#define ALIGN_FLOATS 16  /* 64-byte alignment of every activation tensor */

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
  float *cls_w;     /* (num_classes, tdim) class_embedding: class-conditional only */
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

/* ------------------------------------------------------------- activations */

/* Each block kind's activations by name, with their shapes: B images, c_in
 * and c_out the node's channels, (h, w) its input's size (H, W) >> level,
 * N = h·w, G = 32 groups.  The fields point into the ONE activation
 * allocation u->acts, laid out by layout() for the forward's (B, H, W):
 *
 *   training: every field has its own place, kept for the backward pass;
 *   inference: the node outputs (Node.y) and SiLU(temb) have their own
 *     places, as the up path reads the outputs as skips; every other field
 *     of every node, and of the time embedding, points into ONE region at
 *     the start of the allocation that each node in turn reuses (memory
 *     shared on purpose: in inference no node needs another's internals).
 *
 * Fields marked (training) are written by a training forward only; an
 * inference layout still gives them room in the reused region. */

typedef struct
{
  float *emb;       /* (B, ch)              sinusoidal embedding of t */
  float *l1;        /* (B, tdim)            linear_1 */
  float *s1;        /* (B, tdim)            SiLU(l1) */
  float *temb;      /* (B, tdim)            linear_2: temb */
  float *st;        /* (B, tdim)            SiLU(temb), every res block's input: own place
                                            in inference too */
} TembActs;

typedef struct
{
  float *x;         /* (B, c_in, H, W)      copy of the network's input */
} InActs;

typedef struct
{
  float  *cat;      /* (B, c_in, h, w)      [x, skip]: up-path blocks only, else NULL */
  float  *xr;       /* (B, c_in, h', w')    resampled x for the shortcut: resampling
                                            blocks only (resblock_updown), else NULL */
  float  *n1;       /* (B, c_in, h, w)      norm1(x), kept for the backward (training) */
  float  *mean1;    /* (B, G) */
  float  *rstd1;    /* (B, G) */
  float  *h1;       /* (B, c_out, h, w)     conv1(SiLU(n1)) + time_emb_proj(SiLU(temb)) */
  float  *n2;       /* (B, c_out, h, w)     norm2(h1) (training) */
  float  *mean2;    /* (B, G) */
  float  *rstd2;    /* (B, G) */
  guint8 *mask;     /* (B, c_out, h, w)     bytes: dropout's keep mask; a training
                                            layout with dropout only, else NULL */
} ResActs;

typedef struct
{
  float *n;         /* (B, C, N)            group_norm(x) */
  float *mean;      /* (B, G) */
  float *rstd;      /* (B, G) */
  float *q;         /* (B, C, N) */
  float *k;         /* (B, C, N) */
  float *v;         /* (B, C, N) */
  float *p;         /* (B, N, N)            softmax_j(q_i·k_j/√C) */
  float *o;         /* (B, C, N)            attention output, before proj_attn */
} AttnActs;

typedef struct
{
  float *u;         /* (B, c_in, 2h + 2, 2w + 2) up-sampled x, zero-bordered for the
                                            direct 3×3 kernel; else (B, c_in, 2h, 2w) */
} UpActs;

typedef struct
{
  float *n;         /* (B, c_in, h, w)      conv_norm_out(x) (training) */
  float *mean;      /* (B, G) */
  float *rstd;      /* (B, G) */
} HeadActs;

/* A node's internals, by kind (a down-sampler has none: its conv reads the
 * previous output and writes y). */
typedef union
{
  InActs   in;
  ResActs  res;
  AttnActs attn;
  UpActs   up;
  HeadActs head;
} Acts;

/* The buffers every node shares, in the same allocation after the
 * persistent tensors, each sized for its largest use (C, h, w: over all
 * nodes).  Named for their first use; the other uses of each are listed,
 * as the storage is reused on purpose: a block's forward or backward is
 * done with a buffer before the next one writes it. */
typedef struct
{
  float *conv;      /* (max conv scratch)   im2col columns, the direct kernels' packed
                                            weights: ddpm_conv2d_scratch_size */
  float *a;         /* (B, C, h + 2, w + 2) SiLU(GroupNorm) before a 3×3 conv (forward,
                                            zero-bordered for the direct kernel; the
                                            backward recomputes it here); attention
                                            backward: ∂L/∂k */
  float *b;         /* (B, C, h, w)         the shortcut conv's output (forward); res
                                            backward: ∂L/∂SiLU(n1); attention: ∂L/∂v */
  float *tp;        /* (B, max c_out)       time_emb_proj's output / its gradient (twice
                                            c_out with scale_shift: scale, shift) */
  float *gb;        /* (2·max c_out)        one image's GroupNorm γ·(1 + scale) and
                                            β·(1 + scale) + shift (scale_shift) */
  /* training only, else NULL */
  float *g1;        /* (B, C, h, w)         gradients inside a block */
  float *g2;        /* (B, C, h, w)         same; attention backward: ∂L/∂q */
  float *g3;        /* (B, C, h, w)         an up res block's ∂L/∂[x, skip] */
  float *dcur;      /* (B, C, h, w)         ∂L/∂(node output) along the chain, ping-pong */
  float *dnext;     /* (B, C, h, w)         with dcur */
  float *dst;       /* (B, tdim)            ∂L/∂SiLU(temb), summed over the res blocks */
  float *dtemb;     /* (B, tdim)            ∂L/∂temb */
  float *ds1;       /* (B, tdim)            ∂L/∂s1 */
  float *dl1;       /* (B, tdim)            ∂L/∂l1 */
  float *dp;        /* (B, N, N)            attention backward's scratch (∂L/∂p, ∂L/∂(qᵀk)) */
  float *dx;        /* (B, in_channels, H, W) ∂L/∂x: ddpm_unet_input_grad */
} Scratch;

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

typedef struct
{
  NodeKind kind;
  int      level;     /* depth of the input: spatial size (H, W) >> level */
  int      c_in;      /* input channels, the skip included (up ResBlocks) */
  int      c_out;
  int      c_skip;    /* up ResBlocks: channels of the concatenated skip */
  int      resample;  /* ResBlocks: −1 halves the size (ADM resblock_updown down-
                         sampler), +1 doubles it (up-sampler), 0 keeps it */
  int      heads;     /* attention blocks: heads (channels / heads each) */
  int      skip_src;  /* up ResBlocks: node whose output is the skip; else −1 */
  gboolean is_skip;   /* its output is pushed on the skip stack */
  int      tensor0;   /* its tensors: table entries tensor0 .. tensor0 + n_tensors − 1 */
  int      n_tensors;
  Params   p;         /* parameters, in u->params */
  Params   d;         /* their gradients: the same fields, in u->grads */
  Acts     a;         /* internals, in u->acts */
  float   *y;         /* (B, c_out, h', w') its output: (h', w') = (h, w), halved by a
                         down-sampler, doubled by an up-sampler; the head's is the
                         caller's `out` (NULL here) */
  float   *dy_skip;   /* (like y) training, skip outputs: ∂L/∂y from the up path,
                         collected until the backward pass reaches this node; else NULL */
} Node;

struct _DdpmUNet
{
  DdpmUNetConfig config;
  float    gn_eps;      /* GroupNorm's ε, by style */
  float    t_scale;     /* ADM timesteps × this (rescale_timesteps); 1 */

  GArray  *tensors;     /* DdpmParamInfo, names in `names` */
  GStringChunk *names;
  gsize    n_params;
  float   *params;      /* (n_params) */
  gboolean packs_kept;  /* bf16 packs of params kept (conv-bf16.c) */
  float   *grads;       /* (n_params), on demand */

  Node    *nodes;
  int      n_nodes;
  Params   temb_p;      /* .temb: the time embedding's parameters (tensors 0 to 3) */
  Params   temb_d;      /* and their gradients */

  /* activations: the nodes' Acts, y and dy_skip, temb_a and scratch point
   * into `acts`, laid out for (lay_B, lay_H, lay_W, lay_training) */
  float   *acts;
  gsize    acts_capacity;
  TembActs temb_a;
  Scratch  scratch;
  int      lay_B, lay_H, lay_W;
  gboolean lay_training;

  /* the last forward */
  gboolean saved;               /* it was a training forward */
  int      B, H, W;
  float    dropout_p;
  guint64  dropout_seed;
};

/* ------------------------------------------------------------ construction */

/* The next tensor of the table, right after the previous one in the flat
 * parameter vector. */
static void
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
add_res (DdpmUNet *u, const char *prefix, int level, int c_in, int c_out, int skip_src, int c_skip,
         int resample)
{
  const int tdim = 4 * u->config.ch;
  /* AdaGN's scale and shift, both from time_emb_proj (diffusers'
   * time_embedding_norm "scale_shift", ADM's emb_layers) */
  const int temb_out = u->config.scale_shift ? 2 * c_out : c_out;
  Node *n = add_node (u, NODE_RES, level, c_in, c_out);
  ResParams *r = &n->p.res;
  int *k = &n->n_tensors;
  char *s;

  n->skip_src = skip_src;
  n->c_skip = c_skip;
  n->resample = resample;
#define SUB(name) (g_free (s), s = g_strconcat (prefix, name, NULL))
  s = NULL;
  add_layer (u, &n->p, k, &r->norm1_w, SUB (".norm1"), c_in, 0, -1);
  add_layer (u, &n->p, k, &r->conv1_w, SUB (".conv1"), c_out, c_in, 3);
  add_layer (u, &n->p, k, &r->temb_w, SUB (".time_emb_proj"), temb_out, tdim, 0);
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
add_attn (DdpmUNet *u, const char *prefix, int level, int c, gboolean up)
{
  Node *n = add_node (u, NODE_ATTN, level, c, c);

  n->heads = ddpm_unet_config_heads (&u->config, c, up);
  g_assert (n->heads >= 1);   /* ddpm_unet_config_validate checked it */
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

/* conv_in, or a down- or up-sampler: one 3×3 conv called `name` */
static void
add_conv (DdpmUNet *u, NodeKind kind, const char *name, int level, int c_in, int c_out)
{
  Node *n = add_node (u, kind, level, c_in, c_out);

  add_layer (u, &n->p, &n->n_tensors, &n->p.conv.w, name, c_out, c_in, 3);
}

/* build()'s state along the network: where attention goes, the skip
 * stack, and the channels of the output so far. */
typedef struct
{
  gboolean has_attn[DDPM_MAX_LEVELS];
  int      stack[2 + DDPM_MAX_LEVELS * 17];   /* skip sources (node index) */
  int      sp;
  int      cur;
} Builder;

/* The last node's output is a skip: an up-path ResBlock will pop it. */
static void
push_skip (DdpmUNet *u, Builder *b)
{
  u->nodes[u->n_nodes - 1].is_skip = TRUE;
  b->stack[b->sp++] = u->n_nodes - 1;
}

/* Level l of the down path: num_res_blocks × [ResBlock (+ AttnBlock)],
 * each output a skip, then a down-sampler (its output a skip too) except
 * at the deepest level. */
static void
build_down_level (DdpmUNet *u, Builder *b, int l)
{
  const DdpmUNetConfig *c = &u->config;
  char name[96];

  for (int j = 0; j < c->num_res_blocks; j++)
    {
      g_snprintf (name, sizeof name, "down_blocks.%d.resnets.%d", l, j);
      add_res (u, name, l, b->cur, c->ch * c->ch_mult[l], -1, 0, 0);
      b->cur = c->ch * c->ch_mult[l];
      if (b->has_attn[l])
        {
          g_snprintf (name, sizeof name, "down_blocks.%d.attentions.%d", l, j);
          add_attn (u, name, l, b->cur, FALSE);
        }
      push_skip (u, b);
    }
  if (l != c->n_levels - 1 && c->resblock_updown)
    {
      /* diffusers' ResnetDownsampleBlock2D names it so */
      g_snprintf (name, sizeof name, "down_blocks.%d.downsamplers.0", l);
      add_res (u, name, l, b->cur, b->cur, -1, 0, -1);
      push_skip (u, b);
    }
  else if (l != c->n_levels - 1)
    {
      g_snprintf (name, sizeof name, "down_blocks.%d.downsamplers.0.conv", l);
      add_conv (u, NODE_DOWN, name, l, b->cur, b->cur);
      push_skip (u, b);
    }
}

/* Level l of the up path: (num_res_blocks + 1) × [ResBlock on [h, the
 * skip popped] (+ AttnBlock)], then an up-sampler except at the top. */
static void
build_up_level (DdpmUNet *u, Builder *b, int l)
{
  const DdpmUNetConfig *c = &u->config;
  const int i = c->n_levels - 1 - l;  /* diffusers' up_blocks.0 is the deepest */
  char name[96];

  for (int j = 0; j < c->num_res_blocks + 1; j++)
    {
      int src = b->stack[--b->sp];
      int c_skip = u->nodes[src].c_out;

      g_snprintf (name, sizeof name, "up_blocks.%d.resnets.%d", i, j);
      add_res (u, name, l, b->cur + c_skip, c->ch * c->ch_mult[l], src, c_skip, 0);
      b->cur = c->ch * c->ch_mult[l];
      if (b->has_attn[l])
        {
          g_snprintf (name, sizeof name, "up_blocks.%d.attentions.%d", i, j);
          add_attn (u, name, l, b->cur, TRUE);
        }
    }
  if (l != 0 && c->resblock_updown)
    {
      g_snprintf (name, sizeof name, "up_blocks.%d.upsamplers.0", i);
      add_res (u, name, l, b->cur, b->cur, -1, 0, +1);
    }
  else if (l != 0)
    {
      g_snprintf (name, sizeof name, "up_blocks.%d.upsamplers.0.conv", i);
      add_conv (u, NODE_UP, name, l, b->cur, b->cur);
    }
}

/* Nodes and tensor table for u->config (valid), in the forward's order
 * (unet.h: the tensor table); no parameters allocated. */
static void
build (DdpmUNet *u)
{
  const DdpmUNetConfig *c = &u->config;
  const int L = c->n_levels, ch = c->ch, nrb = c->num_res_blocks;
  /* ADM's conv_in gives the first level's channels; diffusion_tf's gives ch */
  const int c0 = c->style == DDPM_UNET_STYLE_ADM ? ch * c->ch_mult[0] : ch;
  Builder b = { .sp = 0 };
  int n_temb = 0;
  Node *n;

  for (int i = 0; i < c->n_attn; i++)
    b.has_attn[ddpm_unet_config_attn_level (c, i)] = TRUE;

  /* at most: conv_in, L·nrb·2 + (L−1) down, 3 mid, L·(nrb+1)·2 + (L−1) up, head */
  u->gn_eps = c->style == DDPM_UNET_STYLE_ADM ? 1e-5f : GN_EPS;
  u->t_scale = 1.0f;
  u->nodes = g_new0 (Node, 2 + 4 * L * (nrb + 1) + 2 * L + 3);
  u->tensors = g_array_new (FALSE, TRUE, sizeof (DdpmParamInfo));
  u->names = g_string_chunk_new (4096);
  u->n_params = 0;

  add_layer (u, &u->temb_p, &n_temb, &u->temb_p.temb.l1_w, "time_embedding.linear_1",
             4 * ch, ch, 0);
  add_layer (u, &u->temb_p, &n_temb, &u->temb_p.temb.l2_w, "time_embedding.linear_2",
             4 * ch, 4 * ch, 0);
  if (c->num_classes > 0)
    {
      /* an nn.Embedding: a weight and no bias */
      add_tensor (u, "class_embedding.weight", 2, c->num_classes, 4 * ch, 0, 0);
      n_temb++;
    }

  add_conv (u, NODE_IN, "conv_in", 0, c->in_channels, c0);
  push_skip (u, &b);
  b.cur = c0;
  for (int l = 0; l < L; l++)
    build_down_level (u, &b, l);

  add_res (u, "mid_block.resnets.0", L - 1, b.cur, b.cur, -1, 0, 0);
  add_attn (u, "mid_block.attentions.0", L - 1, b.cur, FALSE);
  add_res (u, "mid_block.resnets.1", L - 1, b.cur, b.cur, -1, 0, 0);

  for (int l = L - 1; l >= 0; l--)
    build_up_level (u, &b, l);
  g_assert (b.sp == 0);

  n = add_node (u, NODE_HEAD, 0, b.cur, c->out_channels);
  add_layer (u, &n->p, &n->n_tensors, &n->p.head.norm_w, "conv_norm_out", b.cur, 0, -1);
  add_layer (u, &n->p, &n->n_tensors, &n->p.head.conv_w, "conv_out", c->out_channels, b.cur,
             3);
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

  point_block (u, grads ? &u->temb_d : &u->temb_p, 0,
               u->config.num_classes > 0 ? 5 : 4, base);
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

/* A config function (ddpm.h), here rather than in unet-config.c: the
 * count is that of the network build() makes. */
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
      ddpm_set_error_no_memory (error, u->n_params * sizeof (float),
                                /* TRANSLATORS: completes "Not enough memory
                                 * for %s". */
                                _("the %lu parameters of the network"),
                                (unsigned long) u->n_params);
      ddpm_unet_free (u);
      return NULL;
    }
  point_params (u, FALSE);
  return u;
}

/* Drop the kept bf16 packs of the weights (ddpm_unet_keep_bf16_packs)
 * before anything may change them. */
static void
forget_packs (DdpmUNet *u)
{
  if (!u->packs_kept)
    return;
  ddpm_bf16_forget_packs (u->params, u->params + u->n_params);
  u->packs_kept = FALSE;
}

void
ddpm_unet_free (DdpmUNet *unet)
{
  if (unet == NULL)
    return;
  forget_packs (unet);
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
  /* the caller may write the weights: kept bf16 packs would go stale */
  forget_packs (unet);
  return unet->params;
}

/* Packs of more than this are not kept (the 552 M-parameter ADM model's
 * would be 1.1 GB on top of its 2.2 GB): such a model rounds each layer
 * per call, as every model did before. */
#define KEEP_PACKS_MAX_BYTES ((gsize) 512 << 20)

gboolean
ddpm_unet_keep_bf16_packs (DdpmUNet *unet)
{
  gsize bytes = 0;

  g_return_val_if_fail (unet != NULL, FALSE);
  forget_packs (unet);
  if (!ddpm_cpu_has_avx512_bf16 ())
    return FALSE;
  for (int pass = 0; pass < 2; pass++)
    for (guint i = 0; i < unet->tensors->len; i++)
      {
        const DdpmParamInfo *info = &g_array_index (unet->tensors, DdpmParamInfo, i);
        const int T = info->ndim == 4 ? (int) (info->shape[2] * info->shape[3]) : 1;

        /* the weights the bf16 convolutions take: 3×3 and 1×1 convs, and
         * the attention projections (run as 1×1 convs) */
        if (!g_str_has_suffix (info->name, ".weight") || (info->ndim != 4 && info->ndim != 2)
            || (T != 1 && T != 9))
          continue;
        if (pass == 0)
          bytes += ddpm_bf16_pack_bytes ((int) info->shape[0], (int) info->shape[1], T);
        else if (!ddpm_bf16_keep_pack (unet->params + info->offset, (int) info->shape[0],
                                       (int) info->shape[1], T))
          {
            forget_packs (unet);
            return FALSE;
          }
        if (pass == 0 && bytes > KEEP_PACKS_MAX_BYTES)
          return FALSE;
      }
  unet->packs_kept = TRUE;
  return TRUE;
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

  forget_packs (unet);

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

/* Where every activation goes for (B, H, W), in two passes of the same
 * walk: the first measures (base NULL: no pointers yet), the second, once
 * the allocation holds the total, points every field into it.
 * Training: every saved tensor has its own place, then the backward
 * buffers.  Inference: node outputs have their own place (the up path
 * reads them as skips); a node's internals go to a region at the start
 * that every node reuses.  Along the walk it notes the largest needs of
 * the nodes, for the shared buffers (Scratch) placed after them. */
typedef struct
{
  float   *base;       /* u->acts when pointing; NULL when measuring */
  gboolean training;
  gsize    off;        /* next persistent offset */
  gsize    toff;       /* next offset in the reused region */
  gsize    tmax;       /* size of the reused region */
  /* the largest need of any node, in floats, for the Scratch buffers */
  gsize    max_t;      /* a node's input or output */
  gsize    max_conv;   /* a conv's scratch */
  gsize    max_nn;     /* attention probabilities (B, N, N) */
  gsize    max_padded; /* zero-bordered planes before a res block's or the head's conv */
  int      max_c;      /* output channels */
} Layout;

static gsize
round_up (gsize n)
{
  return (n + ALIGN_FLOATS - 1) / ALIGN_FLOATS * ALIGN_FLOATS;
}

/* n floats: their own place (saved, or a training layout), or in the
 * region the current node reuses.  NULL when measuring. */
static float *
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
  return l->base != NULL ? l->base + at : NULL;
}

static DdpmConvShape
conv_shape (int B, int C_in, int H, int W, int C_out, int k, int stride, int pb, int pe)
{
  DdpmConvShape s = { B, C_in, H, W, C_out, k, stride, pb, pe };
  return s;
}

/* The down-sampling conv: 3×3 stride 2, padded right and bottom (TF
 * 'SAME', diffusion_tf) or by one all round (ADM's padding = 1; for an
 * even size the bottom and right padding is never read, so the output
 * size is the same). */
static DdpmConvShape
down_shape (const DdpmUNet *u, int B, int C_in, int h, int w, int C_out)
{
  return u->config.style == DDPM_UNET_STYLE_ADM
         ? conv_shape (B, C_in, h, w, C_out, 3, 2, 1, 1)
         : conv_shape (B, C_in, h, w, C_out, 3, 2, 0, 1);
}

static void
need_conv (Layout *l, DdpmConvShape cs)
{
  l->max_conv = MAX (l->max_conv, ddpm_conv2d_scratch_size (&cs));
}

static void
layout_temb (DdpmUNet *u, Layout *l, int B)
{
  TembActs *a = &u->temb_a;
  const gsize tdim = 4 * u->config.ch;

  a->emb = place (l, (gsize) B * u->config.ch, FALSE);
  a->l1 = place (l, B * tdim, FALSE);
  a->s1 = place (l, B * tdim, FALSE);
  a->temb = place (l, B * tdim, FALSE);
  a->st = place (l, B * tdim, TRUE);
}

static void
layout_res (Node *n, Layout *l, gboolean dropout, gboolean scale_shift, int B, int h, int w)
{
  ResActs *a = &n->a.res;
  /* a resampling block's input is at (h, w), all the rest at (ho, wo) */
  const int ho = n->resample > 0 ? 2 * h : n->resample < 0 ? h / 2 : h;
  const int wo = n->resample > 0 ? 2 * w : n->resample < 0 ? w / 2 : w;
  const gsize stats = (gsize) B * GN_GROUPS;
  const gsize nin = (gsize) B * n->c_in * h * w, nout = (gsize) B * n->c_out * ho * wo;
  const gsize nin_o = (gsize) B * n->c_in * ho * wo;

  a->cat = n->skip_src >= 0 ? place (l, nin, FALSE) : NULL;
  a->xr = n->resample != 0 ? place (l, nin_o, FALSE) : NULL;
  a->n1 = place (l, nin, FALSE);
  a->mean1 = place (l, stats, FALSE);
  a->rstd1 = place (l, stats, FALSE);
  a->h1 = place (l, nout, FALSE);
  a->n2 = place (l, nout, FALSE);
  a->mean2 = place (l, stats, FALSE);
  a->rstd2 = place (l, stats, FALSE);
  a->mask = l->training && dropout
            ? (guint8 *) place (l, (nout + sizeof (float) - 1) / sizeof (float), FALSE)
            : NULL;
  n->y = place (l, nout, TRUE);
  need_conv (l, conv_shape (B, n->c_in, ho, wo, n->c_out, 3, 1, 1, 1));
  need_conv (l, conv_shape (B, n->c_out, ho, wo, n->c_out, 3, 1, 1, 1));
  l->max_t = MAX (l->max_t, MAX (MAX (nin, nin_o), nout));
  l->max_padded = MAX (l->max_padded,
                       (gsize) B * MAX (n->c_in, n->c_out) * (ho + 2) * (wo + 2));
  l->max_c = MAX (l->max_c, scale_shift ? 2 * n->c_out : n->c_out);
}

static void
layout_attn (Node *n, Layout *l, int B, int h, int w)
{
  AttnActs *a = &n->a.attn;
  const gsize N = (gsize) h * w, nout = B * n->c_out * N;

  a->n = place (l, nout, FALSE);
  a->mean = place (l, (gsize) B * GN_GROUPS, FALSE);
  a->rstd = place (l, (gsize) B * GN_GROUPS, FALSE);
  a->q = place (l, nout, FALSE);
  a->k = place (l, nout, FALSE);
  a->v = place (l, nout, FALSE);
  a->p = place (l, B * N * N, FALSE);
  a->o = place (l, nout, FALSE);
  n->y = place (l, nout, TRUE);
  l->max_nn = MAX (l->max_nn, B * N * N);
  l->max_t = MAX (l->max_t, nout);
}

/* conv_in, a down-sampler and an up-sampler: one conv each */
static void
layout_conv (const DdpmUNet *u, Node *n, Layout *l, int B, int h, int w)
{
  const gsize nin = (gsize) B * n->c_in * h * w, nout = (gsize) B * n->c_out * h * w;
  DdpmConvShape cs;

  switch (n->kind)
    {
    case NODE_IN:
      n->a.in.x = place (l, nin, FALSE);
      n->y = place (l, nout, TRUE);
      need_conv (l, conv_shape (B, n->c_in, h, w, n->c_out, 3, 1, 1, 1));
      l->max_t = MAX (l->max_t, MAX (nin, nout));
      break;
    case NODE_DOWN:
      n->y = place (l, nout / 4, TRUE);
      need_conv (l, down_shape (u, B, n->c_in, h, w, n->c_out));
      l->max_t = MAX (l->max_t, nin);
      break;
    case NODE_UP:
      cs = conv_shape (B, n->c_in, 2 * h, 2 * w, n->c_out, 3, 1, 1, 1);
      /* zero-bordered for the direct kernel (node_forward) */
      n->a.up.u = place (l, ddpm_conv3x3_direct_ok (&cs)
                              ? (gsize) B * n->c_in * (2 * h + 2) * (2 * w + 2)
                              : 4 * nin,
                         FALSE);
      n->y = place (l, 4 * nout, TRUE);
      need_conv (l, cs);
      l->max_t = MAX (l->max_t, 4 * nin);
      break;
    default:
      g_assert_not_reached ();
    }
}

static void
layout_head (Node *n, Layout *l, int B, int h, int w)
{
  HeadActs *a = &n->a.head;
  const gsize nin = (gsize) B * n->c_in * h * w, nout = (gsize) B * n->c_out * h * w;

  a->n = place (l, nin, FALSE);
  a->mean = place (l, (gsize) B * GN_GROUPS, FALSE);
  a->rstd = place (l, (gsize) B * GN_GROUPS, FALSE);
  n->y = NULL;   /* the caller's out */
  need_conv (l, conv_shape (B, n->c_in, h, w, n->c_out, 3, 1, 1, 1));
  l->max_t = MAX (l->max_t, MAX (nin, nout));
  l->max_padded = MAX (l->max_padded, (gsize) B * n->c_in * (h + 2) * (w + 2));
}

/* Node n's internals and output, and in training the gradient of a skip
 * output; its internals reuse the region from its start (inference). */
static void
layout_node (DdpmUNet *u, Node *n, Layout *l, int B, int H, int W)
{
  const int h = H >> n->level, w = W >> n->level;

  l->toff = 0;
  memset (&n->a, 0, sizeof n->a);
  l->max_c = MAX (l->max_c, n->c_out);
  switch (n->kind)
    {
    case NODE_RES:
      layout_res (n, l, u->config.dropout > 0.0f, u->config.scale_shift, B, h, w);
      break;
    case NODE_ATTN:
      layout_attn (n, l, B, h, w);
      break;
    case NODE_HEAD:
      layout_head (n, l, B, h, w);
      break;
    default:
      layout_conv (u, n, l, B, h, w);
      break;
    }
  n->dy_skip = NULL;
  if (l->training && n->is_skip)
    {
      /* the skip's gradient: the output's size */
      gsize ny = (gsize) B * n->c_out * h * w;
      n->dy_skip = place (l, n->kind == NODE_DOWN ? ny / 4 : ny, TRUE);
    }
}

/* The shared buffers, after the nodes' tensors. */
static void
layout_scratch (DdpmUNet *u, Layout *l, int B, int H, int W)
{
  Scratch *s = &u->scratch;
  const gsize tdim = 4 * u->config.ch;

  memset (s, 0, sizeof *s);
  s->conv = place (l, MAX (l->max_conv, 1), TRUE);
  /* and the zero-bordered planes of norm_silu_conv and silu_conv_backward */
  s->a = place (l, MAX (l->max_t, l->max_padded), TRUE);
  s->b = place (l, l->max_t, TRUE);
  s->tp = place (l, (gsize) B * l->max_c, TRUE);
  s->gb = place (l, 2 * (gsize) l->max_c, TRUE);
  if (!l->training)
    return;
  s->g1 = place (l, l->max_t, TRUE);
  s->g2 = place (l, l->max_t, TRUE);
  s->g3 = place (l, l->max_t, TRUE);
  s->dcur = place (l, l->max_t, TRUE);
  s->dnext = place (l, l->max_t, TRUE);
  s->dst = place (l, B * tdim, TRUE);
  s->dtemb = place (l, B * tdim, TRUE);
  s->ds1 = place (l, B * tdim, TRUE);
  s->dl1 = place (l, B * tdim, TRUE);
  s->dp = place (l, MAX (l->max_nn, 1), TRUE);
  s->dx = place (l, (gsize) B * u->config.in_channels * H * W, TRUE);
}

/* One walk over the network: every field's place (Layout's comment). */
static void
layout_pass (DdpmUNet *u, Layout *l, int B, int H, int W)
{
  l->toff = 0;
  layout_temb (u, l, B);
  for (int i = 0; i < u->n_nodes; i++)
    layout_node (u, &u->nodes[i], l, B, H, W);
  layout_scratch (u, l, B, H, W);
}

/* The floats of the activations for B images of H × W at inference, as
 * layout() would allocate them, without allocating (for limits.c). */
gsize
ddpm_unet_config_activation_floats (const DdpmUNetConfig *config, int B, int H, int W)
{
  DdpmUNet skeleton = { 0 };
  Layout l = { .base = NULL, .training = FALSE };

  g_return_val_if_fail (config != NULL && B > 0 && H > 0 && W > 0, 0);
  if (!ddpm_unet_config_validate (config, NULL))
    return 0;
  skeleton.config = *config;
  build (&skeleton);
  layout_pass (&skeleton, &l, B, H, W);
  unbuild (&skeleton);
  return round_up (l.tmax) + l.off;
}

/* Lays the activations out for (B, H, W, training) and makes sure the
 * allocation holds them. */
static gboolean
layout (DdpmUNet *u, int B, int H, int W, gboolean training, GError **error)
{
  Layout l = { .base = NULL, .training = training };
  gsize start, need;

  if (u->acts != NULL && u->lay_B == B && u->lay_H == H && u->lay_W == W
      && u->lay_training == training)
    return TRUE;

  /* measure: the reused region first, the persistent tensors after it */
  layout_pass (u, &l, B, H, W);
  start = round_up (l.tmax);
  need = start + l.off;

  if (need > u->acts_capacity)
    {
      g_free (u->acts);
      u->acts_capacity = 0;
      u->acts = g_try_malloc_n (need, sizeof (float));
      if (u->acts == NULL)
        {
          u->lay_B = 0;
          ddpm_set_error_no_memory (error, need * sizeof (float),
                                    /* TRANSLATORS: completes "Not enough
                                     * memory for %s". */
                                    _("the network on %d images of %d × %d "
                                      "(use a smaller batch or tile)"),
                                    B, W, H);
          return FALSE;
        }
      u->acts_capacity = need;
    }

  /* point: the same walk, persistent tensors from `start` on */
  l = (Layout) { .base = u->acts, .training = training, .off = start };
  layout_pass (u, &l, B, H, W);
  g_assert (l.off == need);
  u->lay_B = B;
  u->lay_H = H;
  u->lay_W = W;
  u->lay_training = training;
  return TRUE;
}

/* ----------------------------------------------------------------- forward */

static const float *
node_input (const DdpmUNet *u, int i)
{
  const Node *n = &u->nodes[i];
  return n->kind == NODE_IN ? n->a.in.x : u->nodes[i - 1].y;
}

/* a = SiLU (GroupNorm (x)).  Training keeps the normalised values (in
 * norm) for the backward pass; inference does both in one pass. */
static void
norm_silu (gboolean training, float eps, float *a, float *norm, float *mean, float *rstd,
           const float *x, const float *gamma, const float *beta, int B, int C, int HW)
{
  if (training)
    {
      ddpm_groupnorm_forward (norm, mean, rstd, x, gamma, beta, B, C, HW, GN_GROUPS, eps);
      ddpm_silu_forward (a, norm, (gsize) B * C * HW);
    }
  else
    ddpm_groupnorm_silu_forward (a, mean, rstd, x, gamma, beta, B, C, HW, GN_GROUPS, eps);
}

/* out = conv3×3 (SiLU (GroupNorm (x))) as the res blocks and the head
 * compute it.  When the direct kernel takes the shape, the SiLU's planes
 * are written zero-bordered and the convolution reads them as they are
 * (no padded copy: 6 % of a forward pass), GroupNorm and SiLU in one
 * pass, which in training also keeps the normalised values (norm) for the
 * backward pass.  The SiLU goes to scratch.a, sized for the padded
 * planes.
 *
 * bias_stride and residual are for bf16 inference only (res_forward
 * passes them only there): a bias per image (bias + b·bias_stride) and a
 * residual added to the output, both folded into the bf16 conv
 * (ddpm_conv3x3_forward_pairs_bf16_fused) so that they cost no pass of
 * their own.  If that conv cannot run (its workspace), the fp32 conv
 * runs into scratch.b and the residual is added after it. */
static void
norm_silu_conv (DdpmUNet *u, gboolean training, float *out, float *norm, float *mean,
                float *rstd, const float *x, const float *gamma, const float *beta,
                const float *weight, const float *bias, gsize bias_stride,
                const float *residual, const DdpmConvShape *cs)
{
  const Scratch *s = &u->scratch;
  float *dst = residual != NULL ? s->b : out;

  g_return_if_fail (bias_stride == 0 || (!training && ddpm_layers_use_bf16 ()));
  /* bf16 inference: the SiLU written straight as the conv's bf16 pairs
   * (fp32 below if the conv's workspace cannot be had) */
  if (!training && ddpm_layers_use_bf16 () && ddpm_conv3x3_direct_ok (cs))
    {
      ddpm_groupnorm_silu_forward_pairs ((guint32 *) s->a, mean, rstd, x, gamma, beta, cs->B,
                                         cs->C_in, cs->H, cs->W, GN_GROUPS, u->gn_eps);
      if (ddpm_conv3x3_forward_pairs_bf16_fused (out, (const guint32 *) s->a, weight, bias,
                                                 bias_stride, residual, cs))
        return;
    }
  if (ddpm_conv3x3_direct_ok (cs))
    {
      ddpm_groupnorm_silu_forward_padded (s->a, training ? norm : NULL, mean, rstd, x, gamma,
                                          beta, cs->B, cs->C_in, cs->H, cs->W, GN_GROUPS,
                                          u->gn_eps);
      ddpm_conv3x3_forward_padded (dst, s->a, weight, bias_stride == 0 ? bias : NULL, cs,
                                   s->conv);
    }
  else
    {
      norm_silu (training, u->gn_eps, s->a, norm, mean, rstd, x, gamma, beta, cs->B, cs->C_in,
                 cs->H * cs->W);
      ddpm_conv2d_forward (dst, s->a, weight, bias_stride == 0 ? bias : NULL, cs, s->conv);
    }
  if (bias_stride != 0)
    {
      const gsize HW = (gsize) cs->H * cs->W;

      for (int b = 0; b < cs->B; b++)
        ddpm_add_channel_bias_forward (dst + (gsize) b * cs->C_out * HW,
                                       dst + (gsize) b * cs->C_out * HW,
                                       bias + (gsize) b * bias_stride, 1, cs->C_out, (int) HW);
    }
  if (residual != NULL)
    ddpm_add_forward (out, residual, dst, (gsize) cs->B * cs->C_out * cs->H * cs->W);
}

/* ADM's resampling without a conv (its Upsample and Downsample with
 * use_conv = False): nearest ×2 (dir > 0) or the mean of 2×2 blocks
 * (dir < 0, avg_pool2d's sum then ÷ 4) of B·C planes of h × w, written
 * zero-bordered when `padded` (the direct 3×3 kernel's input). */
static void
resample_planes (int dir, float *out, const float *inp, int B, int C, int h, int w,
                 gboolean padded)
{
  if (dir > 0)
    {
      if (padded)
        ddpm_upsample2x_forward_padded (out, inp, B, C, h, w);
      else
        ddpm_upsample2x_forward (out, inp, B, C, h, w);
      return;
    }

  const int ho = h / 2, wo = w / 2, pw = padded ? wo + 2 : wo, ph = padded ? ho + 2 : ho;

  for (gsize q = 0; q < (gsize) B * C; q++)
    {
      const float *src = inp + q * h * w;
      float *dst = out + q * ph * pw;

      if (padded)
        {
          memset (dst, 0, (gsize) ph * pw * sizeof (float));
          dst += pw + 1;
        }
      for (int y = 0; y < ho; y++)
        {
          const float *r0 = src + (gsize) 2 * y * w, *r1 = r0 + w;
          for (int x = 0; x < wo; x++)
            dst[(gsize) y * pw + x] = (r0[2 * x] + r0[2 * x + 1] + r1[2 * x] + r1[2 * x + 1])
                                      * 0.25f;
        }
    }
}

/* SiLU (norm2 (h1)·(1 + scale) + shift), AdaGN (Dhariwal & Nichol 2021,
 * §3): with scale and shift per image and channel, GroupNorm's affine map
 * γ·x̂ + β becomes γ(1 + scale)·x̂ + β(1 + scale) + shift, so the fused
 * GroupNorm + SiLU kernel runs it image by image with those γ and β, into
 * scratch.a as the conv reads it: padded planes (direct), bf16 pairs
 * (pairs) or plain planes. */
static void
scale_shift_norm (DdpmUNet *u, const Node *n, const float *tp, const DdpmConvShape *cs,
                  gboolean direct, gboolean pairs)
{
  const ResParams *p = &n->p.res;
  const ResActs *act = &n->a.res;
  const Scratch *s = &u->scratch;
  const int C = cs->C_in, H = cs->H, W = cs->W;
  const gsize plane = direct ? (gsize) (H + 2) * (W + 2) : (gsize) H * W;
  float *gamma = s->gb, *beta = s->gb + C;

  for (int b = 0; b < cs->B; b++)
    {
      const float *scale = tp + (gsize) b * 2 * C, *shift = scale + C;
      float *a = s->a + (gsize) b * C * plane;
      const float *h1 = act->h1 + (gsize) b * C * H * W;
      float *mean = act->mean2 + b * GN_GROUPS, *rstd = act->rstd2 + b * GN_GROUPS;

      for (int c = 0; c < C; c++)
        {
          gamma[c] = p->norm2_w[c] * (1.0f + scale[c]);
          beta[c] = p->norm2_b[c] * (1.0f + scale[c]) + shift[c];
        }
      if (pairs)
        ddpm_groupnorm_silu_forward_pairs ((guint32 *) s->a + (gsize) b * ((C + 1) / 2) * plane,
                                           mean, rstd, h1, gamma, beta, 1, C, H, W, GN_GROUPS,
                                           u->gn_eps);
      else if (direct)
        ddpm_groupnorm_silu_forward_padded (a, NULL, mean, rstd, h1, gamma, beta, 1, C, H, W,
                                            GN_GROUPS, u->gn_eps);
      else
        ddpm_groupnorm_silu_forward (a, mean, rstd, h1, gamma, beta, 1, C, H * W, GN_GROUPS,
                                     u->gn_eps);
    }
}

/* out = conv2 (scale_shift_norm (h1)) + residual (if not NULL; it may
 * be out), the conv taking the batch (inference only: no dropout); in
 * bf16 the norm writes the conv's pairs and the conv adds the residual
 * (res_forward passes one only in bf16), else the conv goes to scratch.b
 * and the residual is added after it. */
static void
scale_shift_conv (DdpmUNet *u, float *out, const Node *n, const float *tp,
                  const float *residual, const DdpmConvShape *cs)
{
  const ResParams *p = &n->p.res;
  const Scratch *s = &u->scratch;
  const gboolean direct = ddpm_conv3x3_direct_ok (cs);

  if (direct && ddpm_layers_use_bf16 ())
    {
      scale_shift_norm (u, n, tp, cs, TRUE, TRUE);
      if (ddpm_conv3x3_forward_pairs_bf16_fused (out, (const guint32 *) s->a, p->conv2_w,
                                                 p->conv2_b, 0, residual, cs))
        return;
    }
  float *dst = residual != NULL ? s->b : out;

  scale_shift_norm (u, n, tp, cs, direct, FALSE);
  if (direct)
    ddpm_conv3x3_forward_padded (dst, s->a, p->conv2_w, p->conv2_b, cs, s->conv);
  else
    ddpm_conv2d_forward (dst, s->a, p->conv2_w, p->conv2_b, cs, s->conv);
  if (residual != NULL)
    ddpm_add_forward (out, residual, dst, (gsize) cs->B * cs->C_out * cs->H * cs->W);
}

/* ResBlock (Ho et al. 2020, App. B; ADM's with scale_shift and
 * resampling): y = skip (x) + conv2 (SiLU (norm2 (h1))), h1 = conv1 (SiLU
 * (norm1 (x))) + temb_proj (SiLU (temb)).
 *
 * bf16 inference folds the block's elementwise passes (each a pass over
 * planes that do not fit in L2) into its convs: the time-embedding
 * projection into conv1's bias (a bias per image, conv1_b + tp[b]), and
 * the skip into conv2's sums (conv2 adds x itself, or the 1×1 skip conv
 * runs into y first and conv2 adds y onto itself).  The up path's blocks
 * also skip the concatenation of x and the down path's output: GroupNorm
 * + SiLU and the 1×1 skip conv read the two in place.  For the tiny
 * model's 96 → 32 block at 64², batch 8, two threads, this took the
 * block from ~7.9 to ~7.1 ms (medians): the copy (0.7 ms) went and the
 * 1×1 conv lost its own input pass (1.35 → 1.0 ms), while the residual
 * read inside conv2 cost about what the separate add had (0.2 ms).  The bias per image sums in
 * another order than the fp32 path (conv1_b + tp first); the residual is
 * added last, as before.  Each output is still summed in a fixed order;
 * fp32 and training are as they were. */
static void
res_forward (DdpmUNet *u, int i, gboolean training, int B, int h, int w)
{
  Node *n = &u->nodes[i];
  const ResParams *p = &n->p.res;
  const ResActs *act = &n->a.res;
  const Scratch *s = &u->scratch;
  const int ho = n->resample > 0 ? 2 * h : n->resample < 0 ? h / 2 : h;
  const int wo = n->resample > 0 ? 2 * w : n->resample < 0 ? w / 2 : w;
  const int HW = ho * wo, tdim = 4 * u->config.ch;
  const int temb_out = u->config.scale_shift ? 2 * n->c_out : n->c_out;
  const gsize nout = (gsize) B * n->c_out * HW;
  const gboolean bf16 = !training && ddpm_layers_use_bf16 ();
  const float *x = node_input (u, i);
  const float *residual = NULL;   /* what conv2 adds, in bf16 */
  const gboolean fold_temb = bf16 && !u->config.scale_shift && n->resample == 0;
  gboolean temb_done = FALSE, conv1_done = FALSE, skip_done = FALSE;
  float *y = n->y, *bias1 = NULL;
  DdpmConvShape cs = conv_shape (B, n->c_in, ho, wo, n->c_out, 3, 1, 1, 1);
  DdpmConvShape ks = conv_shape (B, n->c_in, ho, wo, n->c_out, 1, 1, 0, 0);

  /* first: in bf16 conv1 takes it as its bias */
  ddpm_linear_forward (s->tp, u->temb_a.st, p->temb_w, p->temb_b, B, tdim, temb_out);
  if (fold_temb)
    {
      bias1 = g_new (float, (gsize) B * n->c_out);
      for (int b = 0; b < B; b++)
        for (int c = 0; c < n->c_out; c++)
          bias1[(gsize) b * n->c_out + c] = p->conv1_b[c] + s->tp[(gsize) b * n->c_out + c];
    }
  if (n->skip_src >= 0 && bf16 && n->resample == 0 && n->c_in != n->c_out
      && ddpm_conv3x3_direct_ok (&cs) && ddpm_conv1x1_direct_ok (&ks))
    {
      /* no concatenated copy: norm1 and the skip conv read both halves */
      const float *sk = u->nodes[n->skip_src].y;
      const int ca = n->c_in - n->c_skip;

      ddpm_groupnorm_silu_forward_pairs_cat ((guint32 *) s->a, act->mean1, act->rstd1, x, ca,
                                             sk, p->norm1_w, p->norm1_b, B, n->c_in, ho, wo,
                                             GN_GROUPS, u->gn_eps);
      conv1_done = ddpm_conv3x3_forward_pairs_bf16_fused (act->h1, (const guint32 *) s->a,
                                                          p->conv1_w,
                                                          fold_temb ? bias1 : p->conv1_b,
                                                          fold_temb ? n->c_out : 0, NULL, &cs)
                   && ddpm_conv1x1_forward_bf16_cat (y, x, ca, sk, p->skip_w, p->skip_b, 0,
                                                     NULL, &ks);
      temb_done = fold_temb && conv1_done;
      skip_done = conv1_done;
    }
  if (n->skip_src >= 0 && !conv1_done)
    {
      ddpm_concat_forward (act->cat, x, u->nodes[n->skip_src].y,
                           B, n->c_in - n->c_skip, n->c_skip, h * w);
      x = act->cat;
    }
  if (conv1_done)
    ;
  else if (n->resample != 0)
    {
      /* ADM's up/down block: h = conv1 (resample (SiLU (norm1 (x)))), and
       * the shortcut adds resample (x) (inference only) */
      gboolean direct = ddpm_conv3x3_direct_ok (&cs);

      ddpm_groupnorm_silu_forward (act->n1, act->mean1, act->rstd1, x, p->norm1_w, p->norm1_b,
                                   B, n->c_in, h * w, GN_GROUPS, u->gn_eps);
      resample_planes (n->resample, s->a, act->n1, B, n->c_in, h, w, direct);
      if (direct)
        ddpm_conv3x3_forward_padded (act->h1, s->a, p->conv1_w, p->conv1_b, &cs, s->conv);
      else
        ddpm_conv2d_forward (act->h1, s->a, p->conv1_w, p->conv1_b, &cs, s->conv);
      resample_planes (n->resample, act->xr, x, B, n->c_in, h, w, FALSE);
      x = act->xr;
    }
  else if (fold_temb)
    {
      norm_silu_conv (u, training, act->h1, act->n1, act->mean1, act->rstd1, x, p->norm1_w,
                      p->norm1_b, p->conv1_w, bias1, n->c_out, NULL, &cs);
      temb_done = TRUE;
    }
  else
    norm_silu_conv (u, training, act->h1, act->n1, act->mean1, act->rstd1, x,
                    p->norm1_w, p->norm1_b, p->conv1_w, p->conv1_b, 0, NULL, &cs);
  g_free (bias1);
  if (bf16)
    {
      /* conv2 adds the skip: x, or the 1×1 conv's output, which goes into
       * y now (conv2 then reads and writes each output in one tile) */
      if (n->c_in != n->c_out)
        {
          if (!skip_done)
            ddpm_conv2d_forward (y, x, p->skip_w, p->skip_b, &ks, NULL);
          residual = y;
        }
      else
        residual = x;
    }
  cs = conv_shape (B, n->c_out, ho, wo, n->c_out, 3, 1, 1, 1);
  if (u->config.scale_shift)
    scale_shift_conv (u, y, n, s->tp, residual, &cs);
  else
    {
      if (!temb_done)
        ddpm_add_channel_bias_forward (act->h1, act->h1, s->tp, B, n->c_out, HW);
      if (training && u->dropout_p > 0.0f)
        {
          norm_silu (training, u->gn_eps, s->a, act->n2, act->mean2, act->rstd2, act->h1,
                     p->norm2_w, p->norm2_b, B, n->c_out, HW);
          ddpm_dropout_forward (s->a, act->mask, s->a, nout, u->dropout_p,
                                u->dropout_seed, (guint64) i);
          ddpm_conv2d_forward (y, s->a, p->conv2_w, p->conv2_b, &cs, s->conv);
        }
      else
        norm_silu_conv (u, training, y, act->n2, act->mean2, act->rstd2, act->h1,
                        p->norm2_w, p->norm2_b, p->conv2_w, p->conv2_b, 0, residual, &cs);
    }
  if (residual != NULL)
    return;   /* conv2 added it */
  if (n->c_in != n->c_out)
    {
      ddpm_conv2d_forward (s->b, x, p->skip_w, p->skip_b, &ks, NULL);
      ddpm_add_forward (y, y, s->b, nout);
    }
  else
    ddpm_add_forward (y, y, x, nout);
}

static void
attn_forward (DdpmUNet *u, int i, int B, int h, int w)
{
  Node *n = &u->nodes[i];
  const AttnParams *p = &n->p.attn;
  const AttnActs *act = &n->a.attn;
  const int C = n->c_in, N = h * w;
  const float *x = node_input (u, i);
  DdpmConvShape cs = conv_shape (B, C, h, w, C, 1, 1, 0, 0);

  ddpm_groupnorm_forward (act->n, act->mean, act->rstd, x, p->norm_w, p->norm_b,
                          B, C, N, GN_GROUPS, u->gn_eps);
  ddpm_conv2d_forward (act->q, act->n, p->q_w, p->q_b, &cs, NULL);
  ddpm_conv2d_forward (act->k, act->n, p->k_w, p->k_b, &cs, NULL);
  ddpm_conv2d_forward (act->v, act->n, p->v_w, p->v_b, &cs, NULL);
  if (n->heads == 1)
    ddpm_attention_forward (act->o, act->p, act->q, act->k, act->v, B, C, N);
  else
    {
      /* head j is channels [j·d, (j + 1)·d) of q, k and v (diffusers'
       * layout; the importer puts ADM's interleaved qkv rows so), each a
       * contiguous (d, N) block of an image: softmax(q·k/√d) per head */
      const int d = C / n->heads;
      for (int b = 0; b < B; b++)
        for (int j = 0; j < n->heads; j++)
          {
            const gsize off = ((gsize) b * C + (gsize) j * d) * N;
            ddpm_attention_forward (act->o + off, act->p, act->q + off, act->k + off,
                                    act->v + off, 1, d, N);
          }
    }
  ddpm_conv2d_forward (n->y, act->o, p->proj_w, p->proj_b, &cs, NULL);
  ddpm_add_forward (n->y, n->y, x, (gsize) B * C * N);
}

/* Nearest ×2, then the 3×3 conv. */
static void
up_forward (DdpmUNet *u, int i, int B, int h, int w)
{
  Node *n = &u->nodes[i];
  const ConvParams *p = &n->p.conv;
  const float *x = node_input (u, i);
  float *up = n->a.up.u, *conv = u->scratch.conv;
  DdpmConvShape cs = conv_shape (B, n->c_in, 2 * h, 2 * w, n->c_out, 3, 1, 1, 1);

  if (ddpm_conv3x3_direct_ok (&cs))
    {
      /* as norm_silu_conv: up-sample straight into padded planes,
       * which the backward pass's weight gradient reads too */
      ddpm_upsample2x_forward_padded (up, x, B, n->c_in, h, w);
      ddpm_conv3x3_forward_padded (n->y, up, p->w, p->b, &cs, conv);
      return;
    }
  ddpm_upsample2x_forward (up, x, B, n->c_in, h, w);
  ddpm_conv2d_forward (n->y, up, p->w, p->b, &cs, conv);
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
      ddpm_conv2d_forward (n->y, x, n->p.conv.w, n->p.conv.b, &cs, u->scratch.conv);
      break;
    case NODE_RES:
      res_forward (u, i, training, B, h, w);
      break;
    case NODE_ATTN:
      attn_forward (u, i, B, h, w);
      break;
    case NODE_DOWN:
      cs = down_shape (u, B, n->c_in, h, w, n->c_out);
      ddpm_conv2d_forward (n->y, x, n->p.conv.w, n->p.conv.b, &cs, u->scratch.conv);
      break;
    case NODE_UP:
      up_forward (u, i, B, h, w);
      break;
    case NODE_HEAD:
      {
        /* in fp32 whatever the precision: its rounding would go straight
         * into ε (with the input conv, which ddpm_conv2d_forward keeps in
         * fp32 too, the first and last layers stay exact, as in mixed
         * precision generally); it costs < 1 % of a forward (C_out = 3
         * or 6) */
        const DdpmPrecision old = ddpm_layers_set_precision (DDPM_PRECISION_FP32);

        cs = conv_shape (B, n->c_in, h, w, n->c_out, 3, 1, 1, 1);
        norm_silu_conv (u, training, out, n->a.head.n, n->a.head.mean, n->a.head.rstd, x,
                        n->p.head.norm_w, n->p.head.norm_b, n->p.head.conv_w,
                        n->p.head.conv_b, 0, NULL, &cs);
        ddpm_layers_set_precision (old);
      }
      break;
    }
}

/* The time embedding (Ho et al. 2020, appendix B):
 * temb = linear_2(SiLU(linear_1(sinusoid(t)))), and SiLU(temb), which
 * every residual block projects: computed once. */
/* guided-diffusion's timestep_embedding (nn.py): half = dim/2,
 * f_i = exp(−ln(10000)·i/half), out = [cos(t·f), sin(t·f)], in float in
 * PyTorch's order as layers/embedding.c does for diffusion_tf's. */
static void
adm_timestep_embedding (float *out, const int *t, float t_scale, int B, int dim)
{
  const int half = dim / 2;
  const float neg_log_10000 = (float) -log (10000.0);

  for (int b = 0; b < B; b++)
    {
      float *row = out + (gsize) b * dim;
      const float tf = (float) t[b] * t_scale;

      for (int i = 0; i < half; i++)
        {
          float f = expf ((neg_log_10000 * (float) i) / (float) half);
          float arg = tf * f;
          row[i] = cosf (arg);
          row[half + i] = sinf (arg);
        }
      if (dim % 2 == 1)
        row[dim - 1] = 0.0f;
    }
}

static void
temb_forward (DdpmUNet *u, const int *t, const int *y, int B)
{
  const TembParams *p = &u->temb_p.temb;
  const TembActs *act = &u->temb_a;
  const int ch = u->config.ch, tdim = 4 * ch;

  if (u->config.style == DDPM_UNET_STYLE_ADM)
    adm_timestep_embedding (act->emb, t, u->t_scale, B, ch);
  else
    ddpm_timestep_embedding (act->emb, t, B, ch);
  ddpm_linear_forward (act->l1, act->emb, p->l1_w, p->l1_b, B, ch, tdim);
  ddpm_silu_forward (act->s1, act->l1, (gsize) B * tdim);
  ddpm_linear_forward (act->temb, act->s1, p->l2_w, p->l2_b, B, tdim, tdim);
  /* a class-conditional network adds its label's embedding (ADM's
   * label_emb, diffusers' class_embedding) to the time embedding */
  if (u->config.num_classes > 0)
    for (int b = 0; b < B; b++)
      ddpm_add_forward (act->temb + (gsize) b * tdim, act->temb + (gsize) b * tdim,
                        p->cls_w + (gsize) y[b] * tdim, tdim);
  ddpm_silu_forward (act->st, act->temb, (gsize) B * tdim);
}

void
ddpm_unet_set_timestep_scale (DdpmUNet *unet, float scale)
{
  g_return_if_fail (unet != NULL && scale > 0.0f);
  unet->t_scale = scale;
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
  return ddpm_unet_forward_class (unet, out, x, t, NULL, B, H, W, training, dropout_seed,
                                  error);
}

gboolean
ddpm_unet_forward_class (DdpmUNet    *unet,
                         float       *out,
                         const float *x,
                         const int   *t,
                         const int   *y,
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

  if (training && !ddpm_unet_config_is_adm_feature_free (&u->config))
    {
      g_set_error (error, DDPM_ERROR, DDPM_ERROR_UNSUPPORTED,
                   _("Training is not available for this network: it uses the "
                     "published (ADM) architecture's features, which run for "
                     "inference only."));
      return FALSE;
    }
  if (u->config.num_classes > 0)
    {
      if (y == NULL)
        {
          g_set_error (error, DDPM_ERROR, DDPM_ERROR_INVALID_ARGUMENT,
                       _("This model is class-conditional: give a class label "
                         "between 0 and %d."), u->config.num_classes - 1);
          return FALSE;
        }
      for (int b = 0; b < B; b++)
        if (y[b] < 0 || y[b] >= u->config.num_classes)
          {
            g_set_error (error, DDPM_ERROR, DDPM_ERROR_INVALID_ARGUMENT,
                         _("Class label %d is outside the model's 0 to %d."),
                         y[b], u->config.num_classes - 1);
            return FALSE;
          }
    }

  mult = 1 << (u->config.n_levels - 1);
  if (B < 1 || H < 1 || W < 1 || H % mult != 0 || W % mult != 0
      || (gint64) B * H * W > G_MAXINT32)
    {
      g_set_error (error, DDPM_ERROR, DDPM_ERROR_INVALID_ARGUMENT,
                   _("The UNet cannot run on %d images of %d×%d: width and height "
                     "must be positive multiples of %d"),
                   B, W, H, mult);
      return FALSE;
    }
  u->saved = FALSE;
  if (training)
    forget_packs (u);   /* a training step is about to change the weights */
  if (!layout (u, B, H, W, training, error))
    return FALSE;
  u->B = B;
  u->H = H;
  u->W = W;
  u->dropout_p = training ? u->config.dropout : 0.0f;
  u->dropout_seed = dropout_seed;

  /* training is fp32, whatever the run around it set (cpu-features.c) */
  const DdpmPrecision precision
    = training ? ddpm_layers_set_precision (DDPM_PRECISION_FP32) : DDPM_PRECISION_COUNT;

  temb_forward (u, t, y, B);
  memcpy (u->nodes[0].a.in.x, x, sizeof (float) * B * u->config.in_channels * H * W);
  for (int i = 0; i < u->n_nodes; i++)
    node_forward (u, i, out, training, B, H, W);
  if (training)
    ddpm_layers_set_precision (precision);
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
 * scratch.a, zero-bordered when the direct kernel takes the shape, which
 * then reads it in place), and da = ∂L/∂a (written, not added to). */
static void
silu_conv_backward (DdpmUNet *u, float *da, float *dweight, float *dbias, const float *dy,
                    const float *norm, const float *weight, const DdpmConvShape *cs)
{
  const gsize n = (gsize) cs->B * cs->C_in * cs->H * cs->W;
  const Scratch *s = &u->scratch;

  if (ddpm_conv3x3_direct_ok (cs))
    {
      ddpm_silu_forward_padded (s->a, norm, (gsize) cs->B * cs->C_in, cs->H, cs->W);
      ddpm_conv2d_backward_padded (da, dweight, dbias, dy, s->a, weight, cs, s->conv);
      return;
    }
  ddpm_silu_forward (s->a, norm, n);
  zero (da, n);
  ddpm_conv2d_backward (da, dweight, dbias, dy, s->a, weight, cs, s->conv);
}

/* The second half of a res block backward: from dy = ∂L/∂h (the conv2
 * branch's output) to g = ∂L/∂h1, through conv2, dropout (its mask
 * applied again), SiLU and norm2.  Uses scratch.a, g1 and g2; returns the
 * one of g1, g2 that holds ∂L/∂h1. */
static float *
res_conv2_backward (DdpmUNet *u, const Node *n, const float *dy, int B, int h, int w)
{
  const ResParams *p = &n->p.res, *d = &n->d.res;   /* parameters, gradients */
  const ResActs *act = &n->a.res;
  const Scratch *s = &u->scratch;
  const int HW = h * w;
  const gsize nout = (gsize) B * n->c_out * HW;
  float *g1 = s->g1, *g2 = s->g2;
  DdpmConvShape cs = conv_shape (B, n->c_out, h, w, n->c_out, 3, 1, 1, 1);

  if (u->dropout_p > 0.0f)
    {
      zero (g1, nout);
      ddpm_silu_forward (s->a, act->n2, nout);
      apply_mask (s->a, act->mask, nout, u->dropout_p);
      ddpm_conv2d_backward (g1, d->conv2_w, d->conv2_b, dy, s->a, p->conv2_w, &cs, s->conv);
      zero (g2, nout);
      ddpm_dropout_backward (g2, g1, act->mask, nout, u->dropout_p);
      float *tmp = g1;  /* g1 = ∂L/∂SiLU(norm2(h1)) */
      g1 = g2;
      g2 = tmp;
    }
  else
    silu_conv_backward (u, g1, d->conv2_w, d->conv2_b, dy, act->n2, p->conv2_w, &cs);
  zero (g2, nout);
  ddpm_groupnorm_silu_backward (g2, d->norm2_w, d->norm2_b, g1, act->n2, act->h1,
                                act->mean2, act->rstd2, p->norm2_w, B, n->c_out, HW,
                                GN_GROUPS);
  return g2;
}

/* dx += ∂L/∂x of the main input (and of the skip, for up blocks). */
static void
res_backward (DdpmUNet *u, int i, float *dx, const float *dy, int B, int h, int w)
{
  Node *n = &u->nodes[i];
  const ResParams *p = &n->p.res, *d = &n->d.res;   /* parameters, gradients */
  const ResActs *act = &n->a.res;
  const Scratch *s = &u->scratch;
  const int HW = h * w, tdim = 4 * u->config.ch;
  const gsize nin = (gsize) B * n->c_in * HW, nout = (gsize) B * n->c_out * HW;
  const float *x = n->skip_src >= 0 ? act->cat : node_input (u, i);
  float *dxin = n->skip_src >= 0 ? s->g3 : dx;
  float *dh1, *dtp = s->tp;
  DdpmConvShape cs;

  if (n->skip_src >= 0)
    zero (dxin, nin);

  /* out = shortcut(x) + h */
  if (n->c_in != n->c_out)
    {
      cs = conv_shape (B, n->c_in, h, w, n->c_out, 1, 1, 0, 0);
      ddpm_conv2d_backward (dxin, d->skip_w, d->skip_b, dy, x, p->skip_w, &cs, NULL);
    }
  else
    ddpm_add_forward (dxin, dxin, dy, nout);

  /* h = conv2(dropout(SiLU(norm2(h1)))) */
  dh1 = res_conv2_backward (u, n, dy, B, h, w);

  /* h1 = conv1(SiLU(norm1(x))) + time_emb_proj(SiLU(temb)) */
  zero (dtp, (gsize) B * n->c_out);
  ddpm_add_channel_bias_backward (dtp, dh1, B, n->c_out, HW);
  ddpm_linear_backward (s->dst, d->temb_w, d->temb_b, dtp, u->temb_a.st, p->temb_w,
                        B, tdim, n->c_out);
  /* conv1's bias gradient is Σ_b of the per-image sums just taken */
  for (int c = 0; c < n->c_out; c++)
    {
      double sum = 0;
      for (int bi = 0; bi < B; bi++)
        sum += dtp[(gsize) bi * n->c_out + c];
      d->conv1_b[c] += (float) sum;
    }
  cs = conv_shape (B, n->c_in, h, w, n->c_out, 3, 1, 1, 1);
  silu_conv_backward (u, s->b, d->conv1_w, NULL, dh1, act->n1, p->conv1_w, &cs);
  ddpm_groupnorm_silu_backward (dxin, d->norm1_w, d->norm1_b, s->b, act->n1, x,
                                act->mean1, act->rstd1, p->norm1_w,
                                B, n->c_in, HW, GN_GROUPS);

  /* x = [h, skip] */
  if (n->skip_src >= 0)
    ddpm_concat_backward (dx, u->nodes[n->skip_src].dy_skip, dxin,
                          B, n->c_in - n->c_skip, n->c_skip, HW);
}

static void
attn_backward (DdpmUNet *u, int i, float *dx, const float *dy, int B, int h, int w)
{
  Node *n = &u->nodes[i];
  const AttnParams *p = &n->p.attn, *d = &n->d.attn;   /* parameters, gradients */
  const AttnActs *act = &n->a.attn;
  const Scratch *s = &u->scratch;
  const int C = n->c_in, N = h * w;
  const gsize nt = (gsize) B * C * N;
  const float *x = node_input (u, i);
  /* the scratch buffers the res blocks use, free here */
  float *g1 = s->g1, *dq = s->g2, *dk = s->a, *dv = s->b;
  DdpmConvShape cs = conv_shape (B, C, h, w, C, 1, 1, 0, 0);

  /* y = x + proj(o) */
  ddpm_add_forward (dx, dx, dy, nt);
  zero (g1, nt);
  ddpm_conv2d_backward (g1, d->proj_w, d->proj_b, dy, act->o, p->proj_w, &cs, NULL);
  zero (dq, nt);
  zero (dk, nt);
  zero (dv, nt);
  ddpm_attention_backward (dq, dk, dv, g1, act->p, act->q, act->k, act->v, B, C, N, s->dp);
  /* q, k, v = 1×1 convs of n = GroupNorm(x) */
  zero (g1, nt);
  ddpm_conv2d_backward (g1, d->q_w, d->q_b, dq, act->n, p->q_w, &cs, NULL);
  ddpm_conv2d_backward (g1, d->k_w, d->k_b, dk, act->n, p->k_w, &cs, NULL);
  ddpm_conv2d_backward (g1, d->v_w, d->v_b, dv, act->n, p->v_w, &cs, NULL);
  ddpm_groupnorm_backward (dx, d->norm_w, d->norm_b, g1, x, act->mean, act->rstd, p->norm_w,
                           B, C, N, GN_GROUPS);
}

static void
up_backward (DdpmUNet *u, int i, float *dx, const float *dy, int B, int h, int w)
{
  Node *n = &u->nodes[i];
  const ConvParams *p = &n->p.conv, *d = &n->d.conv;   /* parameters, gradients */
  const Scratch *s = &u->scratch;
  const gsize nin = (gsize) B * n->c_in * h * w;
  DdpmConvShape cs = conv_shape (B, n->c_in, 2 * h, 2 * w, n->c_out, 3, 1, 1, 1);

  /* s->g1 = ∂L/∂(the up-sampled input) */
  if (ddpm_conv3x3_direct_ok (&cs))
    ddpm_conv2d_backward_padded (s->g1, d->w, d->b, dy, n->a.up.u, p->w, &cs, s->conv);
  else
    {
      zero (s->g1, 4 * nin);
      ddpm_conv2d_backward (s->g1, d->w, d->b, dy, n->a.up.u, p->w, &cs, s->conv);
    }
  ddpm_upsample2x_backward (dx, s->g1, B, n->c_in, h, w);
}

static void
head_backward (DdpmUNet *u, int i, float *dx, const float *dy, int B, int h, int w)
{
  Node *n = &u->nodes[i];
  const HeadParams *p = &n->p.head, *d = &n->d.head;   /* parameters, gradients */
  const HeadActs *act = &n->a.head;
  const Scratch *s = &u->scratch;
  DdpmConvShape cs = conv_shape (B, n->c_in, h, w, n->c_out, 3, 1, 1, 1);

  silu_conv_backward (u, s->g1, d->conv_w, d->conv_b, dy, act->n, p->conv_w, &cs);
  ddpm_groupnorm_silu_backward (dx, d->norm_w, d->norm_b, s->g1, act->n, node_input (u, i),
                                act->mean, act->rstd, p->norm_w, B, n->c_in, h * w,
                                GN_GROUPS);
}

/* dx += ∂L/∂(node i's input), given dy = ∂L/∂(its output). */
static void
node_backward (DdpmUNet *u, int i, float *dx, const float *dy, int B, int H, int W)
{
  Node *n = &u->nodes[i];
  const int h = H >> n->level, w = W >> n->level;
  const float *x = node_input (u, i);
  DdpmConvShape cs;

  switch (n->kind)
    {
    case NODE_IN:
      cs = conv_shape (B, n->c_in, h, w, n->c_out, 3, 1, 1, 1);
      ddpm_conv2d_backward (dx, n->d.conv.w, n->d.conv.b, dy, x, n->p.conv.w, &cs,
                            u->scratch.conv);
      break;
    case NODE_RES:
      res_backward (u, i, dx, dy, B, h, w);
      break;
    case NODE_ATTN:
      attn_backward (u, i, dx, dy, B, h, w);
      break;
    case NODE_DOWN:
      cs = conv_shape (B, n->c_in, h, w, n->c_out, 3, 2, 0, 1);
      ddpm_conv2d_backward (dx, n->d.conv.w, n->d.conv.b, dy, x, n->p.conv.w, &cs,
                            u->scratch.conv);
      break;
    case NODE_UP:
      up_backward (u, i, dx, dy, B, h, w);
      break;
    case NODE_HEAD:
      head_backward (u, i, dx, dy, B, h, w);
      break;
    }
}

/* Backward of temb_forward, from scratch.dst = ∂L/∂SiLU(temb) (which
 * every residual block's backward added to). */
static void
temb_backward (DdpmUNet *u, int B)
{
  const TembParams *p = &u->temb_p.temb, *d = &u->temb_d.temb;   /* parameters, gradients */
  const TembActs *act = &u->temb_a;
  const Scratch *s = &u->scratch;
  const int ch = u->config.ch, tdim = 4 * ch;

  zero (s->dtemb, (gsize) B * tdim);
  ddpm_silu_backward (s->dtemb, s->dst, act->temb, (gsize) B * tdim);
  zero (s->ds1, (gsize) B * tdim);
  ddpm_linear_backward (s->ds1, d->l2_w, d->l2_b, s->dtemb, act->s1, p->l2_w, B, tdim, tdim);
  zero (s->dl1, (gsize) B * tdim);
  ddpm_silu_backward (s->dl1, s->ds1, act->l1, (gsize) B * tdim);
  ddpm_linear_backward (NULL, d->l1_w, d->l1_b, s->dl1, act->emb, p->l1_w, B, ch, tdim);
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

  const int B = u->B, H = u->H, W = u->W, tdim = 4 * u->config.ch;
  float *dcur = u->scratch.dcur, *dnext = u->scratch.dnext;

  for (int i = 0; i < u->n_nodes; i++)
    if (u->nodes[i].is_skip)
      {
        const Node *n = &u->nodes[i];
        const int l = n->kind == NODE_DOWN ? n->level + 1 : n->level;
        zero (n->dy_skip, (gsize) B * n->c_out * (H >> l) * (W >> l));
      }
  zero (u->scratch.dst, (gsize) B * tdim);

  for (int i = u->n_nodes - 1; i >= 0; i--)
    {
      const Node *n = &u->nodes[i];
      const float *dy = n->kind == NODE_HEAD ? dout : dcur;
      const gsize nin = (gsize) B * n->c_in * (H >> n->level) * (W >> n->level);
      const gsize nprev = n->skip_src >= 0 ? nin / n->c_in * (n->c_in - n->c_skip) : nin;
      float *dx = i == 0 ? u->scratch.dx : dnext;

      zero (dx, nprev);
      node_backward (u, i, dx, dy, B, H, W);
      /* the previous node's output also fed an up block as a skip */
      if (i > 0 && u->nodes[i - 1].is_skip)
        ddpm_add_forward (dx, dx, u->nodes[i - 1].dy_skip, nprev);
      dnext = dcur;
      dcur = dx;
    }
  temb_backward (u, B);
}

const float *
ddpm_unet_input_grad (const DdpmUNet *unet)
{
  g_return_val_if_fail (unet != NULL && unet->saved, NULL);
  return unet->scratch.dx;
}

gsize
ddpm_unet_activation_bytes (const DdpmUNet *unet)
{
  g_return_val_if_fail (unet != NULL, 0);
  return unet->acts_capacity * sizeof (float);
}
