/* train.h: the trainer's pieces (internal to libddpm; the tests use them
 * directly): the optimizer on flat arrays (adam.c), the step-level helpers
 * of the training loop (train.c), batch sampling from a dataset
 * (dataset.c), and the model/checkpoint files (model.c).
 *
 * Conventions as in llm.c: parameters, gradients, Adam moments and EMA
 * weights are each ONE flat float array of n_params elements in the UNet's
 * tensor order; every function here works on those arrays in place and
 * allocates nothing.
 */
#ifndef DDPM_TRAIN_H
#define DDPM_TRAIN_H

#include <glib.h>

#include "ddpm.h"
#include "unet.h"

G_BEGIN_DECLS

/* ---------------------------------------------------------------- adam.c */

/* Adam (Kingma & Ba 2015, Algorithm 1) with decoupled weight decay
 * (AdamW, Loshchilov & Hutter 2019, Algorithm 2), as torch.optim.AdamW:
 *   p ← p·(1 − lr·wd)
 *   m ← β1·m + (1 − β1)·g,   v ← β2·v + (1 − β2)·g²
 *   p ← p − lr·(m/(1 − β1^t)) / (√(v/(1 − β2^t)) + eps)
 * `step` is the 1-based number of this update (for the bias corrections).
 * weight_decay = 0 is plain Adam. */
void   ddpm_adam_step (float       *params,  /* (n) updated in place */
                       float       *m,       /* (n) first moment */
                       float       *v,       /* (n) second moment */
                       const float *grads,   /* (n) */
                       gsize        n,
                       double       lr,
                       double       beta1,
                       double       beta2,
                       double       eps,
                       double       weight_decay,
                       gint64       step);

/* --------------------------------------------------------------- train.c */

/* Linear warm-up (Ho et al. 2020, appendix B: 5000 steps on CIFAR-10):
 * lr·min(1, step/warmup) for the 1-based step; warmup ≤ 0 disables it. */
double ddpm_train_warmup_lr (double lr, int warmup, gint64 step);

/* Global-norm clipping (Pascanu et al. 2013; torch.nn.utils.clip_grad_norm_):
 * when ‖g‖₂ > max_norm, scale g by max_norm/(‖g‖₂ + 1e-6).  Returns the
 * norm before clipping.  max_norm ≤ 0 only measures. */
double ddpm_train_clip_grad_norm (float *grads, gsize n, double max_norm);

/* The EMA decay used at a 1-based step: min(decay, (1 + step)/(10 + step)),
 * the warm-up of tf.train.ExponentialMovingAverage(num_updates), so that a
 * short CPU training is not dominated by the random initialisation. */
double ddpm_train_ema_decay (double decay, gint64 step);

/* ema ← d·ema + (1 − d)·params (Polyak averaging; Ho et al. 2020 use
 * d = 0.9999). */
void   ddpm_train_ema_update (float *ema, const float *params, gsize n, double d);

/* L_simple (Ho et al. 2020, eq. 14): returns mean((pred − eps)²) over n
 * elements and writes its gradient dout = 2·(pred − eps)/n. */
double ddpm_train_mse_loss (float       *dout,  /* (n) or NULL */
                            const float *pred,
                            const float *eps,
                            gsize        n);

/* One share of that mean: returns the SUM of (pred − eps)² over its n
 * elements and writes dout = 2·(pred − eps)/n_total, so that the shares of
 * a batch of n_total elements (one per process) add up to the loss and
 * gradient of the whole batch. */
double ddpm_train_mse_sum  (float       *dout,  /* (n) or NULL */
                            const float *pred,
                            const float *eps,
                            gsize        n,
                            gsize        n_total);

/* ------------------------------------------------------------- dataset.c */

/* The position of the data stream, saved in checkpoints so that a resumed
 * training sees exactly the batches it would have seen. */
typedef struct
{
  DdpmRng rng;      /* crops and flips */
  guint64 cursor;   /* samples drawn so far: epoch = cursor / n_images */
} DdpmDataCursor;

/* An empty dataset, and adding an image to it (dataset-folder.c); the
 * dataset takes `name` and `pixels` (C, H, W in [−1, 1]), both g_malloc'ed. */
DdpmDataset *ddpm_dataset_new_empty (void);
void         ddpm_dataset_add_image (DdpmDataset *dataset,
                                     char        *name,
                                     float       *pixels,
                                     int          C,
                                     int          H,
                                     int          W);

int      ddpm_dataset_n_images   (const DdpmDataset *dataset);
/* Convert every image to `channels` (gray ⇄ RGB, ddpm_rgb_to_gray) and upscale
 * any image whose short side is below `size` to exactly `size`, so that
 * every crop fits.  Idempotent. */
gboolean ddpm_dataset_prepare    (DdpmDataset *dataset,
                                  int          channels,
                                  int          size,
                                  GError     **error);
/* Fill out (B, C, size, size) with random crops, in [−1, 1]: images in a
 * new random order each epoch (a permutation keyed by seed and epoch),
 * crop corners uniform, each crop flipped left-right with probability ½
 * when hflip.  The dataset must have been prepared for C and size. */
void     ddpm_dataset_sample     (DdpmDataset    *dataset,
                                  float          *out,
                                  int             B,
                                  int             size,
                                  gboolean        hflip,
                                  guint64         seed,
                                  DdpmDataCursor *cursor);

/* --------------------------------------------------------------- model.c */

/* Training state stored in a checkpoint next to the weights. */
typedef struct
{
  gint64         step;       /* optimizer steps done */
  guint64        seed;       /* the training's seed */
  DdpmRng        t_rng;      /* timestep draws */
  DdpmDataCursor data;       /* crops, flips, epoch order */
  double         loss;       /* last raw loss */
  double         loss_ema;   /* smoothed loss reported to progress */
} DdpmTrainState;

/* Write a model file: `weights` (the EMA weights) under their diffusers
 * names, config and schedule in __metadata__, with the step and smoothed
 * loss of `state` (may be NULL) as training info.  With `params` non-NULL
 * it is a checkpoint: the raw weights and Adam moments under
 * "train.params.", "train.adam_m.", "train.adam_v." + name, and the state
 * as I64/U64/F64 tensors "train.state.*".  Written atomically. */
gboolean ddpm_model_file_write (const char            *path,
                                const DdpmUNet        *unet,
                                const float           *weights,
                                DdpmScheduleKind       schedule,
                                int                    T,
                                const float           *params,  /* checkpoint only */
                                const float           *adam_m,
                                const float           *adam_v,
                                const DdpmTrainState  *state,
                                GError               **error);

/* Read a checkpoint back: config, schedule, and (into the caller's arrays of
 * ddpm_unet_config_n_params elements) raw weights, moments and EMA.  Pass
 * NULL arrays to read only the config (to size them first). */
gboolean ddpm_checkpoint_read  (const char        *path,
                                DdpmUNetConfig    *config,
                                DdpmScheduleKind  *schedule,
                                int               *T,
                                const DdpmUNet    *unet,   /* NULL with NULL arrays */
                                float             *params,
                                float             *adam_m,
                                float             *adam_v,
                                float             *ema,
                                DdpmTrainState    *state,
                                GError           **error);

/* The UNet inside a model (for the trainer's tests). */
DdpmUNet   *ddpm_model_get_unet     (DdpmModel *model);

G_END_DECLS

#endif /* DDPM_TRAIN_H */
