/* layers.h: the network layers, forward and backward side by side (internal
 * to libddpm; the UNet in unet.c is their only user besides the tests).
 *
 * Conventions (llm.c): outputs first, then inputs, then sizes.  Tensors are
 * float, NCHW, contiguous; shapes in the comments.  Backward functions
 * ACCUMULATE into their gradient outputs (+=); the caller zeroes them.  A
 * NULL gradient pointer means "not needed" (e.g. dinp of the first layer).
 * No function allocates large buffers: scratch space comes from the
 * caller, sized by the matching _scratch_size() function, so a training
 * step touches no new pages.  (The GroupNorm backward passes take a few
 * KB per part of the thread team from malloc, which reuses them.)  The
 * heavy products go through cblas_sgemm; every layer also has a naive
 * reference kernel (…_reference) that the tests use as an oracle.
 */
#ifndef DDPM_LAYERS_H
#define DDPM_LAYERS_H

#include <string.h>

#include <glib.h>

#include "ddpm.h"

G_BEGIN_DECLS

/* ---------------------------------------------------------------- parallel */

/* The engine's thread team (parallel.c): func over [0, n) split into a
 * few contiguous parts per thread, of at least `grain` items each, run by
 * ddpm_parallel_threads () threads (the caller among them); returns when
 * every part is done.
 * ddpm_parallel_set_threads (n) sets the team size (0 = all cores) and
 * keeps OpenBLAS single-threaded: OpenBLAS only runs inside the team's
 * parts (ddpm_sgemm), so the process never runs more than n busy threads. */
typedef void (*DdpmRangeFunc) (gsize begin, gsize end, gpointer data);

void  ddpm_parallel_set_threads (int threads);
int   ddpm_parallel_threads (void);
void  ddpm_parallel_for     (gsize n, gsize grain, DdpmRangeFunc func, gpointer data);

/* Row-major C = alpha·op(A)·op(B) + beta·C (cblas_sgemm's meaning, C
 * being M×N), split over the thread team (gemm.c).  The split never
 * changes the result. */
void  ddpm_sgemm (gboolean trans_a, gboolean trans_b, int M, int N, int K,
                  float alpha, const float *A, int lda, const float *B, int ldb,
                  float beta, float *C, int ldc);

/* e^x in float for x in [−87.3, 88.3] within 2 ulp (e^−87.3 below that
 * range, +inf from 88.4 on, as expf overflows at 88.72), as
 * a branch-free inline function that gcc vectorises (layers.h so SiLU and
 * softmax share it).  Cephes expf: x = n·ln2 + r, |r| ≤ ln2/2,
 * e^r by a degree-6 polynomial, 2^n through the exponent bits. */
static inline float
ddpm_fast_expf (float x)
{
  union { float f; gint32 i; } bits;
  float n, r, r2, p;

  /* Written so that NaN, which fails every comparison, takes the lower
   * clamp (exp(NaN) comes out ≈ 1e-38): with `x < -87.3f ? -87.3f : x` it
   * passed through both clamps and (gint32) NaN made the shift below
   * shift a negative number (undefined; UBSan reports it).  The network's
   * NaN is caught where it matters, at ε (img2img.c) and at loading
   * (model.c).  Still two min/max a lane: vectorised as before. */
  x = x > -87.3f ? x : -87.3f;
  x = x < 88.7f ? x : 88.7f;   /* n = 128 gives the +inf bit pattern */
  /* round to nearest by the 1.5·2²³ trick: floorf would be a libm call
   * that stops gcc from vectorising the caller's loop */
  n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  r = x - n * 0.693359375f;
  r = r + n * 2.12194440e-4f;
  r2 = r * r;
  p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r2 + r + 1.0f;
  bits.i = ((gint32) n + 127) << 23;
  return p * bits.f;
}

/* Σ of n floats, in 16 float lanes (vectorised; meant for planes, a few
 * hundred terms a lane) totalled in double: the per-channel sums of the
 * bias gradients.  One double accumulator is a serial chain. */
static inline double
ddpm_sum_plane (const float *restrict x, int n)
{
  float lane[16] = { 0 };
  double sum = 0;
  int i = 0;

  for (; i + 16 <= n; i += 16)
    for (int l = 0; l < 16; l++)
      lane[l] += x[i + l];
  for (; i < n; i++)
    lane[i % 16] += x[i];
  for (int l = 0; l < 16; l++)
    sum += lane[l];
  return sum;
}

/* Zeroes the border of a zero-bordered (H + 2, W + 2) plane — the layout
 * the direct 3×3 kernels read in place — for writers that fill only the
 * interior. */
static inline void
ddpm_zero_border (float *plane, int H, int W)
{
  const int Wp = W + 2;

  memset (plane, 0, sizeof (float) * Wp);
  for (int y = 1; y <= H; y++)
    {
      plane[(gsize) y * Wp] = 0.0f;
      plane[(gsize) y * Wp + W + 1] = 0.0f;
    }
  memset (plane + (gsize) (H + 1) * Wp, 0, sizeof (float) * Wp);
}

/* ------------------------------------------------------------------ conv2d */

/* 2-D convolution, square kernel k (1 or 3), stride 1 or 2, with explicit
 * padding: pad_begin rows/columns of zeros on the top/left and pad_end on
 * the bottom/right.  "same" 3×3: (1, 1); the DDPM down-sampling conv: pad
 * right/bottom by one then 3×3 stride 2, i.e. (0, 1); 1×1: (0, 0).
 * Output size: H_out = (H + pad_begin + pad_end − k)/stride + 1. */
typedef struct
{
  int B, C_in, H, W;     /* input (B, C_in, H, W) */
  int C_out, k, stride;  /* weight (C_out, C_in, k, k), bias (C_out) */
  int pad_begin, pad_end;
} DdpmConvShape;

int   ddpm_conv2d_out_size      (int size, int k, int stride, int pad_begin, int pad_end);
/* Floats of scratch that forward and backward need (im2col columns of one
 * image).  0 for a 1×1 stride-1 unpadded conv, whose scratch may be NULL. */
gsize ddpm_conv2d_scratch_size  (const DdpmConvShape *shape);

void  ddpm_conv2d_forward       (float               *out,     /* (B, C_out, H_out, W_out) */
                                 const float         *inp,     /* (B, C_in, H, W) */
                                 const float         *weight,  /* (C_out, C_in, k, k) */
                                 const float         *bias,    /* (C_out) or NULL */
                                 const DdpmConvShape *shape,
                                 float               *scratch);
void  ddpm_conv2d_backward      (float               *dinp,    /* (B, C_in, H, W) or NULL */
                                 float               *dweight, /* (C_out, C_in, k, k) */
                                 float               *dbias,   /* (C_out) or NULL */
                                 const float         *dout,    /* (B, C_out, H_out, W_out) */
                                 const float         *inp,
                                 const float         *weight,
                                 const DdpmConvShape *shape,
                                 float               *scratch);
/* The same for a same-padded 3×3 conv the direct kernels take
 * (ddpm_conv3x3_direct_ok), whose input the caller holds zero-bordered,
 * (B, C_in, H + 2, W + 2), as ddpm_silu_forward_padded writes it: the
 * weight gradient reads it in place instead of copying it.  dinp is
 * written, not added to (the callers' buffers are fresh: no clearing
 * pass); dweight and dbias are added to, as above. */
void  ddpm_conv2d_backward_padded (float               *dinp,
                                   float               *dweight,
                                   float               *dbias,
                                   const float         *dout,
                                   const float         *padded,
                                   const float         *weight,
                                   const DdpmConvShape *shape,
                                   float               *scratch);
/* Whether the CPU has the AVX-512 (F and DQ) the direct kernels need. */
gboolean ddpm_layers_have_avx512    (void);

/* The same-3×3 fast path (conv3x3.c, AVX-512): whether it takes the
 * shape (W a multiple of 16, or 8 with H even; any channel counts; the CPU
 * has AVX-512) for all three passes, the scratch it needs for groups of
 * `images` images, and the passes, g images at a time. */
gboolean ddpm_conv3x3_direct_ok     (const DdpmConvShape *shape);
gsize    ddpm_conv3x3_scratch_size  (const DdpmConvShape *shape, int images);
void     ddpm_conv3x3_forward       (float *out, const float *inp, const float *weight,
                                     const float *bias, const DdpmConvShape *shape, int g,
                                     float *scratch);
/* The down-sampling conv (3×3, stride 2, padding (0, 1), even H and W,
 * output rows as above), forward only, g images at
 * a time in the scratch of ddpm_conv3x3_scratch_size. */
gboolean ddpm_conv3x3_stride2_ok    (const DdpmConvShape *shape);
void     ddpm_conv3x3_forward_stride2 (float *out, const float *inp, const float *weight,
                                       const float *bias, const DdpmConvShape *shape, int g,
                                       float *scratch);
/* The forward pass on an input already padded to (B, C_in, H + 2, W + 2)
 * with zero borders (ddpm_groupnorm_silu_forward_padded writes it), so it
 * skips the copy; scratch holds C_in·C_out·9 floats (the packed weights). */
void     ddpm_conv3x3_forward_padded (float *out, const float *padded, const float *weight,
                                      const float *bias, const DdpmConvShape *shape,
                                      float *scratch);
/* dinp += the input gradient (accumulate) or dinp = it. */
void     ddpm_conv3x3_input_grad    (float *dinp, const float *dout, const float *weight,
                                     const DdpmConvShape *shape, int g, gboolean accumulate,
                                     float *scratch);
/* dweight += the weight gradient. */
void     ddpm_conv3x3_weight_grad   (float *dweight, const float *dout, const float *inp,
                                     const DdpmConvShape *shape, int g, float *scratch);
/* The same on an input held zero-bordered, (B, C_in, H + 2, W + 2). */
void     ddpm_conv3x3_weight_grad_padded (float *dweight, const float *dout,
                                          const float *padded, const DdpmConvShape *shape,
                                          int g);

/* The 1×1 fast path of the forward pass (conv1x1.c, AVX-512): C_out a
 * multiple of 8, H·W a multiple of 16. */
gboolean ddpm_conv1x1_direct_ok     (const DdpmConvShape *shape);
void     ddpm_conv1x1_forward       (float *out, const float *inp, const float *weight,
                                     const float *bias, const DdpmConvShape *shape);
/* dinp += the input gradient of a 1×1 conv, the batch in one pass: C_in a
 * multiple of 8, H·W a multiple of 16 (_ok). */
gboolean ddpm_conv1x1_input_grad_ok (const DdpmConvShape *shape);
void     ddpm_conv1x1_input_grad    (float *dinp, const float *dout, const float *weight,
                                     const DdpmConvShape *shape);

/* bf16 inference. */

/* The precision the inference layers use on the calling thread
 * (cpu-features.c): set for a run, returns the previous setting.  A thread
 * starts at fp32.  ddpm_layers_use_bf16: the setting is not fp32 and the
 * CPU has AVX512_BF16.  ddpm_cpu_set_bf16_disabled (TRUE) makes the CPU
 * count as one without it (the tests' way to the fallback path). */
DdpmPrecision ddpm_layers_set_precision  (DdpmPrecision precision);
gboolean      ddpm_layers_use_bf16       (void);
void          ddpm_cpu_set_bf16_disabled (gboolean disabled);

/* fp32 → bf16, round to nearest even (as vcvtneps2bf16; NaN stays NaN),
 * and back: the rounding the bf16 kernels apply, for the tests. */
static inline guint16
ddpm_float_to_bf16 (float f)
{
  union { float f; guint32 u; } b = { f };

  if ((b.u & 0x7fffffffu) > 0x7f800000u)
    return (guint16) ((b.u >> 16) | 0x40);   /* quiet NaN */
  return (guint16) ((b.u + 0x7fffu + ((b.u >> 16) & 1)) >> 16);
}

static inline float
ddpm_bf16_to_float (guint16 h)
{
  union { guint32 u; float f; } b = { (guint32) h << 16 };
  return b.f;
}

/* The bf16 forms of the inference convolutions (conv-bf16.c), which ddpm_conv3x3_forward_padded and
 * ddpm_conv1x1_forward call when ddpm_layers_use_bf16 (); same arguments
 * and conditions (_ok) as those.  Weights and inputs are rounded to bf16
 * (into a per-thread workspace: no persistent copy), the products summed
 * in fp32 by vdpbf16ps, bias added in fp32.  FALSE, nothing written,
 * when the workspace cannot be allocated (the caller then runs fp32). */
gboolean ddpm_conv3x3_forward_padded_bf16 (float *out, const float *padded,
                                           const float *weight, const float *bias,
                                           const DdpmConvShape *shape);
gboolean ddpm_conv1x1_forward_bf16        (float *out, const float *inp, const float *weight,
                                           const float *bias, const DdpmConvShape *shape);
/* The same 3×3 conv on an input already rounded and paired (B, ⌈C_in/2⌉,
 * H + 2, W + 2), as ddpm_groupnorm_silu_forward_pairs writes it. */
/* The stride-2 3×3 conv (ddpm_conv3x3_forward_stride2's bf16 form) on the
 * input already split into its four phases (B, C_in, 4, H/2 + 1, W/2 + 1)
 * as conv3x3.c lays them out; s is the stride-2 conv's shape (_ok). */
gboolean ddpm_conv3x3_forward_phases_bf16 (float *out, const float *phases,
                                           const float *weight, const float *bias,
                                           const DdpmConvShape *s);
gboolean ddpm_conv3x3_forward_pairs_bf16  (float *out, const guint32 *pairs,
                                           const float *weight, const float *bias,
                                           const DdpmConvShape *shape);
/* The same two with the passes around them folded in (bf16 inference,
 * res blocks): bias is (C_out) when bias_stride is 0, else image b's is
 * bias + b·bias_stride (ResBlock's conv1 bias plus its time-embedding
 * projection); residual, if not NULL, (B, C_out, H, W), is added to the
 * sums (the block's skip), and may be out itself.  Each output is
 * (bias + the products) + residual, summed in a fixed order by one
 * thread. */
gboolean ddpm_conv3x3_forward_pairs_bf16_fused (float *out, const guint32 *pairs,
                                                const float *weight, const float *bias,
                                                gsize bias_stride, const float *residual,
                                                const DdpmConvShape *shape);
gboolean ddpm_conv1x1_forward_bf16_fused       (float *out, const float *inp,
                                                const float *weight, const float *bias,
                                                gsize bias_stride, const float *residual,
                                                const DdpmConvShape *shape);
/* The 1×1 one on the concatenation along channels of inp (B, C1, H, W)
 * and inp2 (B, C_in − C1, H, W), read in place (the up-path res blocks'
 * skip projection without a concatenated copy). */
gboolean ddpm_conv1x1_forward_bf16_cat         (float *out, const float *inp, int C1,
                                                const float *inp2, const float *weight,
                                                const float *bias, gsize bias_stride,
                                                const float *residual,
                                                const DdpmConvShape *shape);
/* dst[i] = (bf16 lo[i], bf16 hi[i]) for i < n, hi NULL counting as zeros:
 * the conv input's pairs, rounded as vcvtne2ps2bf16 (ddpm_float_to_bf16).
 * Needs AVX512_BF16. */
void     ddpm_bf16_pair_rows              (guint32 *dst, const float *lo, const float *hi,
                                           gsize n);
/* The workspace of the calling thread, at least `bytes`, 64-byte aligned;
 * kept for the next call and freed when the thread ends.  NULL if it
 * cannot be had. */
gpointer ddpm_bf16_workspace (gsize bytes);

/* Packs kept between calls for weights that will not change (a loaded
 * model's: ddpm_unet_keep_bf16_packs): the bf16 convolutions use the
 * kept pack of a weight (same address, same shape) instead of rounding
 * it again.  keep: FALSE without AVX512_BF16 or memory.  forget: drops
 * the packs of every weight that starts in [begin, end); whoever changes
 * kept weights must call it first.  pack_bytes: the size of one pack. */
gsize    ddpm_bf16_pack_bytes   (int C_out, int C_in, int T);
gboolean ddpm_bf16_keep_pack    (const float *weight, int C_out, int C_in, int T);
void     ddpm_bf16_forget_packs (const float *begin, const float *end);

/* Direct 7-loop convolution: the oracle. */
void  ddpm_conv2d_forward_reference (float *out, const float *inp, const float *weight,
                                     const float *bias, const DdpmConvShape *shape);

/* --------------------------------------------------------------- groupnorm */

/* GroupNorm (Wu & He 2018): per sample and group of C/G channels, normalise
 * over (C/G, HW), then y = γ·x̂ + β per channel.  Saves mean and 1/σ per
 * (sample, group) for the backward pass. */
void ddpm_groupnorm_forward  (float       *out,   /* (B, C, HW) */
                              float       *mean,  /* (B, G) saved */
                              float       *rstd,  /* (B, G) saved */
                              const float *inp,   /* (B, C, HW) */
                              const float *gamma, /* (C) */
                              const float *beta,  /* (C) */
                              int B, int C, int HW, int G, float eps);
/* out = SiLU (GroupNorm (inp)) in one pass, for inference (no backward:
 * the normalised values are not kept). */
void ddpm_groupnorm_silu_forward (float       *out,   /* (B, C, HW) */
                                  float       *mean,  /* (B, G) */
                                  float       *rstd,  /* (B, G) */
                                  const float *inp,
                                  const float *gamma,
                                  const float *beta,
                                  int B, int C, int HW, int G, float eps);
/* The same, each plane written into a zero-bordered (H + 2, W + 2) plane:
 * the input ddpm_conv3x3_forward_padded reads; norm, if not NULL, gets
 * GroupNorm's output itself (for training's backward pass) in the same
 * pass. */
void ddpm_groupnorm_silu_forward_padded (float       *out,   /* (B, C, H + 2, W + 2) */
                                         float       *norm,  /* (B, C, H, W) or NULL */
                                         float       *mean,  /* (B, G) */
                                         float       *rstd,  /* (B, G) */
                                         const float *inp,   /* (B, C, H, W) */
                                         const float *gamma,
                                         const float *beta,
                                         int B, int C, int H, int W, int G, float eps);
/* The same for a bf16 inference conv (ddpm_conv3x3_forward_pairs_bf16):
 * the SiLU's output rounded to bf16 and written as that conv's input,
 * channel pairs (2p, 2p + 1) in zero-bordered planes of 32-bit pairs
 * (zero after an odd last channel), the values bit for bit those of
 * ddpm_groupnorm_silu_forward_padded followed by the conv's own rounding
 * (saves the conv a pass over the fp32 planes, and writes half the
 * bytes).  Only where ddpm_layers_use_bf16 (). */
void ddpm_groupnorm_silu_forward_pairs (guint32     *pairs, /* (B, ⌈C/2⌉, H + 2, W + 2) */
                                        float       *mean,  /* (B, G) */
                                        float       *rstd,  /* (B, G) */
                                        const float *inp,   /* (B, C, H, W) */
                                        const float *gamma,
                                        const float *beta,
                                        int B, int C, int H, int W, int G, float eps);
/* The same on the concatenation along channels of inp (B, C1, H, W) and
 * inp2 (B, C − C1, H, W), read in place (bf16 inference of the up-path
 * res blocks: no concatenated copy); the same bits as on the copy. */
void ddpm_groupnorm_silu_forward_pairs_cat (guint32     *pairs,
                                            float       *mean,
                                            float       *rstd,
                                            const float *inp,
                                            int          C1,
                                            const float *inp2,
                                            const float *gamma,
                                            const float *beta,
                                            int B, int C, int H, int W, int G, float eps);
void ddpm_groupnorm_backward (float       *dinp,  /* (B, C, HW) or NULL */
                              float       *dgamma,/* (C) */
                              float       *dbeta, /* (C) */
                              const float *dout,
                              const float *inp,
                              const float *mean,
                              const float *rstd,
                              const float *gamma,
                              int B, int C, int HW, int G);
/* The backward pass of SiLU (GroupNorm (inp)) in one: dout is ∂L/∂SiLU(y)
 * and norm is y (the training forward's GroupNorm output); dinp, dgamma
 * and dbeta get += the gradients, as ddpm_silu_backward followed by
 * ddpm_groupnorm_backward would give them (in float, not double). */
void ddpm_groupnorm_silu_backward (float       *dinp,  /* (B, C, HW) */
                                   float       *dgamma,/* (C) */
                                   float       *dbeta, /* (C) */
                                   const float *dout,  /* (B, C, HW) */
                                   const float *norm,  /* (B, C, HW) */
                                   const float *inp,   /* (B, C, HW) */
                                   const float *mean,
                                   const float *rstd,
                                   const float *gamma,
                                   int B, int C, int HW, int G);

/* -------------------------------------------------------------------- silu */

/* SiLU (swish): y = x·σ(x). */
void ddpm_silu_forward  (float *out, const float *inp, gsize n);
/* The same on `planes` planes of H×W, written zero-bordered to
 * (planes, H + 2, W + 2): the input the 3×3 kernels read in place. */
void ddpm_silu_forward_padded (float *out, const float *inp, gsize planes, int H, int W);
void ddpm_silu_backward (float *dinp, const float *dout, const float *inp, gsize n);

/* ------------------------------------------------------------------ linear */

/* y = x·Wᵀ + b (PyTorch nn.Linear layout). */
void ddpm_linear_forward  (float       *out,    /* (B, OC) */
                           const float *inp,    /* (B, IC) */
                           const float *weight, /* (OC, IC) */
                           const float *bias,   /* (OC) or NULL */
                           int B, int IC, int OC);
void ddpm_linear_backward (float       *dinp,   /* (B, IC) or NULL */
                           float       *dweight,/* (OC, IC) */
                           float       *dbias,  /* (OC) or NULL */
                           const float *dout,   /* (B, OC) */
                           const float *inp,
                           const float *weight,
                           int B, int IC, int OC);

/* --------------------------------------------------------------- embedding */

/* The sinusoidal timestep embedding of the original DDPM code
 * (diffusion_tf nn.get_timestep_embedding): half = dim/2,
 * f_i = exp(−ln(10000)·i/(half − 1)), out = [sin(t·f), cos(t·f)].
 * t is the network's (0-based) timestep.  No parameters, no backward. */
void ddpm_timestep_embedding (float *out, /* (B, dim) */
                              const int *t, /* (B) */
                              int B, int dim);

/* --------------------------------------------------------------- attention */

/* The core of single-head self-attention over N = H·W positions, with
 * q, k, v given as (B, C, N) (the outputs of the 1×1 projections):
 * P = softmax_j(qᵢ·kⱼ/√C) (B, N, N), out_i = Σ_j P_ij v_j, as (B, C, N).
 * Saves P for the backward pass (in fp32; bf16 inference saves none). */
void ddpm_attention_forward  (float       *out,   /* (B, C, N) */
                              float       *probs, /* (B, N, N) saved */
                              const float *q,     /* (B, C, N) */
                              const float *k,
                              const float *v,
                              int B, int C, int N);
/* The same forward in bf16 (attention-bf16.c) for inference, which
 * ddpm_attention_forward calls when ddpm_layers_use_bf16 (): q, k, v and
 * the softmax's exponentials rounded to bf16, sums in fp32; P is not
 * saved.  FALSE (nothing written) without bf16 or memory for its copies. */
gboolean ddpm_attention_forward_bf16 (float       *out,   /* (B, C, N) */
                                      const float *q,     /* (B, C, N) */
                                      const float *k,
                                      const float *v,
                                      int B, int C, int N);
void ddpm_attention_backward (float       *dq,    /* (B, C, N) */
                              float       *dk,
                              float       *dv,
                              const float *dout,  /* (B, C, N) */
                              const float *probs,
                              const float *q,
                              const float *k,
                              const float *v,
                              int B, int C, int N,
                              float       *scratch); /* B·N·N floats; may be
                                                        NULL if dq, dk are */

/* ------------------------------------------------------ shape and misc ops */

/* Nearest-neighbour ×2 up-sampling. */
void ddpm_upsample2x_forward  (float *out,  /* (B, C, 2H, 2W) */
                               const float *inp, /* (B, C, H, W) */
                               int B, int C, int H, int W);
void ddpm_upsample2x_backward (float *dinp, const float *dout, int B, int C, int H, int W);
void ddpm_upsample2x_forward_padded (float *out,  /* (B, C, 2H + 2, 2W + 2), zero border */
                                     const float *inp, int B, int C, int H, int W);

/* Channel concatenation [a, b] → (B, Ca + Cb, HW), and its split. */
void ddpm_concat_forward  (float *out, const float *a, const float *b,
                           int B, int Ca, int Cb, int HW);
void ddpm_concat_backward (float *da, float *db, const float *dout,
                           int B, int Ca, int Cb, int HW);

/* out = a + b elementwise (residual add); its backward is dout to both. */
void ddpm_add_forward (float *out, const float *a, const float *b, gsize n);

/* out[b, c, :] = inp[b, c, :] + vec[b, c] (the time embedding added to
 * every pixel of a residual block); backward: dvec[b, c] += Σ dout[b, c, :]. */
void ddpm_add_channel_bias_forward  (float *out, const float *inp, const float *vec,
                                     int B, int C, int HW);
void ddpm_add_channel_bias_backward (float *dvec, const float *dout, int B, int C, int HW);

/* Inverted dropout: out = inp·mask/(1−p), mask ∈ {0, 1} drawn from the
 * counter-based RNG (seed, stream) so it is reproducible; p = 0 copies.
 * Element i is dropped when ddpm_rng_uniform (seed, stream, i) < p; mask
 * may be NULL when p = 0, and out may be inp. */
void ddpm_dropout_forward  (float *out, guint8 *mask, const float *inp, gsize n,
                            float p, guint64 seed, guint64 stream);
void ddpm_dropout_backward (float *dinp, const float *dout, const guint8 *mask,
                            gsize n, float p);

G_END_DECLS

#endif /* DDPM_LAYERS_H */
