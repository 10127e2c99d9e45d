/* unet.h: the DDPM UNet, forward and backward (internal to libddpm).
 *
 * The network of Ho et al. 2020, appendix B, exactly as the project's
 * reference ../shared/bench/torch_unet.py builds it (see unet.c for the
 * layer order).  Parameters, gradients and activations each live in ONE
 * allocation; the parameter table names every tensor as diffusers'
 * UNet2DModel does for converted DDPM checkpoints (google/ddpm-cifar10-32
 * layout: attention as query/key/value/proj_attn Linear (C, C)), so the
 * model files can be read by, and written for, that ecosystem.  (Newer
 * diffusers releases call the same attention tensors to_q, to_k, to_v and
 * to_out.0; the shapes are the same, a file importer only renames.)  The
 * table was checked name by name and shape by shape against the reference
 * PyTorch model in tests/make-unet-fixtures.py, which maps its modules to
 * these names as diffusers' scripts/convert_ddpm_original_checkpoint_to_
 * diffusers.py maps diffusion_tf's.
 *
 * Typical training step:
 *
 *   DdpmUNet *u = ddpm_unet_new (&config, &error);
 *   ddpm_unet_init (u, seed);
 *   ddpm_unet_zero_grads (u);
 *   ddpm_unet_forward (u, eps_pred, x_t, t, B, H, W, TRUE, step, &error);
 *   ... dpred = d loss / d eps_pred ...
 *   ddpm_unet_backward (u, dpred);    // += into ddpm_unet_grads (u)
 *   ... optimizer on ddpm_unet_params (u) with ddpm_unet_grads (u) ...
 *   ddpm_unet_free (u);
 */
#ifndef DDPM_UNET_H
#define DDPM_UNET_H

#include <glib.h>

#include "ddpm.h"

G_BEGIN_DECLS

/* One parameter tensor: its diffusers name ("down_blocks.0.resnets.0.conv1
 * .weight"), shape (ndim entries used), and place in the parameter (and
 * gradient) array. */
typedef struct
{
  const char *name;
  int         ndim;
  gint64      shape[4];
  gsize       offset;   /* in floats */
  gsize       numel;
} DdpmParamInfo;

typedef struct _DdpmUNet DdpmUNet;

/* ------------------------------------------------------------------ config */

/* The configuration's presets, checks and resizing are in unet-config.c,
 * declared in ddpm.h; these two are shared with the network. */

/* GroupNorm's group count, everywhere in the network: ch must be a
 * multiple of it. */
#define DDPM_UNET_GROUPS 32

/* The depth level of config->attn_resolutions[i]: round(log2(S/r)) for
 * resolution r at training size S, or −1 when r is not S halved a whole
 * number of times. */
int                   ddpm_unet_config_attn_level (const DdpmUNetConfig *config,
                                                   int                   i);

/* The heads of an attention block of `channels` channels (up: on the way
 * up, where num_heads_upsample applies), or 0 when they do not divide. */
int                   ddpm_unet_config_heads (const DdpmUNetConfig *config,
                                              int                   channels,
                                              gboolean              up);

/* TRUE when the config uses none of the ADM fields (the network of our
 * presets and of every file written before them): what training takes. */
gboolean              ddpm_unet_config_is_adm_feature_free (const DdpmUNetConfig *config);

/* ----------------------------------------------------------------- network */

/* A UNet for a valid config (checked: the error names the bad field), its
 * parameters allocated and zero.  Free with ddpm_unet_free. */
DdpmUNet             *ddpm_unet_new        (const DdpmUNetConfig *config,
                                            GError              **error);
void                  ddpm_unet_free       (DdpmUNet *unet);
const DdpmUNetConfig *ddpm_unet_get_config (const DdpmUNet *unet);

/* Parameters and gradients: one array each of ddpm_unet_n_params floats,
 * laid out as the tensor table says.  The gradients are allocated (zero)
 * on the first backward or on the first call here; NULL only when that
 * allocation fails. */
gsize                 ddpm_unet_n_params   (const DdpmUNet *unet);
/* Floats of the inference activations for B images of H × W (limits.c). */
gsize ddpm_unet_config_activation_floats (const DdpmUNetConfig *config, int B, int H, int W);
/* ddpm_unet_params: the weights, to read or write; it drops the packs
 * kept by ddpm_unet_keep_bf16_packs. */
float                *ddpm_unet_params     (DdpmUNet *unet);
/* Round the conv and attention weights to bf16 once and keep them (for a
 * model whose weights stay as they are: a loaded model), so that bf16
 * inference stops re-rounding them on every call.  Dropped by
 * ddpm_unet_params, ddpm_unet_init, a training forward and free.  FALSE
 * (nothing kept) without AVX512_BF16, without memory, or when the packs
 * would exceed 512 MiB. */
gboolean              ddpm_unet_keep_bf16_packs (DdpmUNet *unet);
float                *ddpm_unet_grads      (DdpmUNet *unet);
void                  ddpm_unet_zero_grads (DdpmUNet *unet);

/* The tensor table, in a fixed order: the order of the forward pass
 * (time embedding, conv_in, down blocks, mid block, up blocks with
 * diffusers' up_blocks.0 the deepest, conv_norm_out, conv_out); within a
 * residual block norm1, conv1, time_emb_proj, norm2, conv2, conv_shortcut;
 * within an attention block group_norm, query, key, value, proj_attn;
 * .weight before .bias. */
int                   ddpm_unet_n_tensors  (const DdpmUNet *unet);
const DdpmParamInfo  *ddpm_unet_tensor     (const DdpmUNet *unet,
                                            int             index);
/* Index of the tensor called `name`, or −1. */
int                   ddpm_unet_find_tensor (const DdpmUNet *unet,
                                             const char     *name);

/* PyTorch's default initialisation (nn.Conv2d, nn.Linear: weights and
 * biases U(−1/√fan_in, 1/√fan_in)), GroupNorm γ = 1, β = 0, and zero
 * weights and biases for the layers diffusion_tf initialises with
 * init_scale = 0: the second conv of every residual block, the
 * attention output projections (proj_attn) and conv_out, so that every
 * block starts as the identity.  Tensor i draws from stream i of the
 * counter-based generator under `seed`. */
void                  ddpm_unet_init       (DdpmUNet *unet,
                                            guint64   seed);

/* Multiply the timesteps by `scale` before the ADM sinusoid (in float, as
 * improved-diffusion's t.float()·(1000/T) for --rescale_timesteps); 1 by
 * default.  The DDPM style ignores it. */
void                  ddpm_unet_set_timestep_scale (DdpmUNet *unet,
                                                    float     scale);

/* out (B, out_channels, H, W) = ε_θ(x, t) for x (B, in_channels, H, W);
 * H and W multiples of 2^(n_levels−1); t (B) the network's 0-based
 * timesteps.  `training` applies dropout (keyed by dropout_seed, one
 * stream per residual block) and keeps every activation for
 * ddpm_unet_backward.  The activations live in one allocation, made on the
 * first call and grown only when a larger (B, H, W) or a training call
 * needs more; an inference call keeps only the block outputs, so it needs
 * far less.  Fails (DDPM_ERROR_INVALID_ARGUMENT) on a bad size and
 * (DDPM_ERROR_NO_MEMORY) when the activations cannot be allocated. */
gboolean              ddpm_unet_forward    (DdpmUNet    *unet,
                                            float       *out,
                                            const float *x,
                                            const int   *t,
                                            int          B,
                                            int          H,
                                            int          W,
                                            gboolean     training,
                                            guint64      dropout_seed,
                                            GError     **error);

/* The same with class labels y (B) for a class-conditional network
 * (num_classes > 0; each in 0..num_classes − 1; NULL otherwise).  Training
 * (training = TRUE) takes only networks without the ADM features. */
gboolean              ddpm_unet_forward_class (DdpmUNet    *unet,
                                               float       *out,
                                               const float *x,
                                               const int   *t,
                                               const int   *y,
                                               int          B,
                                               int          H,
                                               int          W,
                                               gboolean     training,
                                               guint64      dropout_seed,
                                               GError     **error);

/* Backward of the last forward, which must have been a training one:
 * dout (B, out_channels, H, W) = ∂L/∂out.  ACCUMULATES ∂L/∂θ into the
 * gradients (zero them with ddpm_unet_zero_grads), and OVERWRITES
 * ∂L/∂x, returned by ddpm_unet_input_grad. */
void                  ddpm_unet_backward   (DdpmUNet    *unet,
                                            const float *dout);
/* ∂L/∂x (B, in_channels, H, W) of the last backward; valid until the next
 * forward. */
const float          *ddpm_unet_input_grad (const DdpmUNet *unet);

/* Bytes of the activation allocation as it stands (0 before the first
 * forward): what a training or inference call of the largest shape seen
 * so far needed. */
gsize                 ddpm_unet_activation_bytes (const DdpmUNet *unet);

G_END_DECLS

#endif /* DDPM_UNET_H */
