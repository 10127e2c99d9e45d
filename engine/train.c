/* train.c: the DDPM training loop (Ho et al. 2020, Algorithm 1).
 *
 *   repeat
 *     x_0 ~ q(x_0)                       random crops of the dataset
 *     t ~ Uniform({1, …, T})             the UNet sees t − 1
 *     ε ~ N(0, I)
 *     take a gradient step on ‖ε − ε_θ(√ᾱ_t·x_0 + √(1−ᾱ_t)·ε, t)‖²
 *   until converged
 *
 * with Adam/AdamW, linear warm-up, global-norm gradient clipping and an EMA
 * of the weights (what a model file holds and sampling uses).
 *
 * MEMORY: parameters and gradients are the UNet's own two allocations; the
 * Adam moments m, v and the EMA weights are one allocation each; the batch
 * buffers are allocated once.  A step allocates nothing.
 *
 * DETERMINISM: every random number comes from Philox keyed by the seed: the
 * noise of step s is a pure function of (seed, s), timestep draws and crops
 * come from sequential generators whose counters a checkpoint saves, and
 * dropout is keyed by (seed, s).  So for a given seed and thread count,
 * N steps + checkpoint + resume + N steps gives the same bits as 2N steps.
 *
 * SEVERAL PROCESSES (params->comm, DdpmTrainComm in ddpm.h): every process
 * draws the whole batch's crops and timesteps (the sequential streams
 * advance exactly as in one process, so a checkpoint does not depend on
 * the number of processes and resumes with any) and the noise of its own
 * examples (a counter-based stream: element i of the global batch), runs
 * its share of the batch through the UNet, and the gradients of the
 * shares — each already scaled by the GLOBAL element count — are summed
 * in rank order (comm->sum_floats).  The sum is the gradient of the whole
 * batch up to float rounding (the shares' sums are grouped differently),
 * and every process holds the same bits, so the same AdamW/EMA update
 * keeps the weights identical everywhere.  Only rank 0 writes files.
 * Dropout masks are keyed by the position in the process's share, so with
 * dropout > 0 different process counts draw different (equally
 * distributed) masks.
 */
#include <inttypes.h>
#include <math.h>
#include <string.h>

#include "intl.h"

#include "layers/layers.h"

#include "train.h"

/* Random streams of the training (all under the training seed). */
#define TRAIN_STREAM_NOISE   G_GUINT64_CONSTANT (0x747261696e01)
#define TRAIN_STREAM_T       G_GUINT64_CONSTANT (0x747261696e02)
#define TRAIN_STREAM_DATA    G_GUINT64_CONSTANT (0x747261696e03)
#define TRAIN_STREAM_DROPOUT G_GUINT64_CONSTANT (0x747261696e04)

/* Smoothing of the loss that progress reports (a ~20-step window). */
#define LOSS_EMA_DECAY 0.95

void
ddpm_train_params_init (DdpmTrainParams *params)
{
  g_return_if_fail (params != NULL);

  memset (params, 0, sizeof *params);
  ddpm_unet_config_from_preset ("tiny", 3, &params->config, NULL);
  params->schedule = DDPM_SCHEDULE_LINEAR;
  params->T = 1000;
  params->steps = 1000;
  params->batch = 16;
  params->lr = 2e-4;
  params->beta1 = 0.9;
  params->beta2 = 0.999;
  params->weight_decay = 0;
  params->warmup = 100;
  params->grad_clip = 1.0;
  params->ema_decay = 0.999;
  params->hflip = TRUE;
  params->seed = 0;
  params->threads = 0;
}

double
ddpm_train_warmup_lr (double lr, int warmup, gint64 step)
{
  if (warmup <= 0 || step >= warmup)
    return lr;
  return lr * (double) step / warmup;
}

/* The elementwise passes over the parameters (clipping, EMA) run on the
 * layers' thread team: serial, they left the other core idle for a few
 * milliseconds a step.  The squared norm is summed in fixed blocks, then
 * the blocks in order, so it does not depend on the thread count. */
#define PARAM_BLOCK 16384

typedef struct
{
  float       *dst;
  const float *src;
  double      *partial;   /* clip: one sum of squares per block */
  float        a, b;
} ParamJob;

static void
sum_squares_range (gsize begin, gsize end, gpointer data)
{
  const ParamJob *j = data;

  for (gsize blk = begin; blk < end; blk++)
    {
      const float *g = j->src + blk * PARAM_BLOCK;
      double lane[8] = { 0 };

      for (gsize i = 0; i < PARAM_BLOCK; i += 8)
        for (int l = 0; l < 8; l++)
          lane[l] += (double) g[i + l] * g[i + l];
      j->partial[blk] = ((lane[0] + lane[1]) + (lane[2] + lane[3]))
                        + ((lane[4] + lane[5]) + (lane[6] + lane[7]));
    }
}

/* dst = a·dst + b·src, or dst = a·dst without src */
static void
scale_add_range (gsize begin, gsize end, gpointer data)
{
  const ParamJob *j = data;
  float *restrict dst = j->dst;
  const float *restrict src = j->src;

  if (src == NULL)
    for (gsize i = begin; i < end; i++)
      dst[i] *= j->a;
  else
    for (gsize i = begin; i < end; i++)
      dst[i] = j->a * dst[i] + j->b * src[i];
}

double
ddpm_train_clip_grad_norm (float *grads, gsize n, double max_norm)
{
  const gsize blocks = n / PARAM_BLOCK;
  double *partial = g_new (double, MAX (blocks, 1));
  ParamJob sq = { .src = grads, .partial = partial };
  double sum = 0;

  ddpm_parallel_for (blocks, 1, sum_squares_range, &sq);
  for (gsize blk = 0; blk < blocks; blk++)
    sum += partial[blk];
  for (gsize i = blocks * PARAM_BLOCK; i < n; i++)
    sum += (double) grads[i] * grads[i];
  g_free (partial);

  double norm = sqrt (sum);
  if (max_norm > 0 && norm > max_norm)
    {
      ParamJob j = { .dst = grads, .a = (float) (max_norm / (norm + 1e-6)) };
      ddpm_parallel_for (n, 32768, scale_add_range, &j);
    }
  return norm;
}

double
ddpm_train_ema_decay (double decay, gint64 step)
{
  return MIN (decay, (1.0 + step) / (10.0 + step));
}

void
ddpm_train_ema_update (float *ema, const float *params, gsize n, double d)
{
  ParamJob j = { .dst = ema, .src = params, .a = (float) d, .b = (float) (1.0 - d) };

  ddpm_parallel_for (n, 32768, scale_add_range, &j);
}

double
ddpm_train_mse_loss (float *dout, const float *pred, const float *eps, gsize n)
{
  return ddpm_train_mse_sum (dout, pred, eps, n, n) / n;
}

double
ddpm_train_mse_sum (float *dout, const float *pred, const float *eps, gsize n,
                    gsize n_total)
{
  double sum = 0;
  const float scale = (float) (2.0 / n_total);

  for (gsize i = 0; i < n; i++)
    {
      float d = pred[i] - eps[i];
      sum += (double) d * d;
      if (dout)
        dout[i] = scale * d;
    }
  return sum;
}

gboolean
ddpm_train_params_validate (const DdpmTrainParams *p, GError **error)
{
#define FAIL(...) \
  do { g_set_error (error, DDPM_ERROR, DDPM_ERROR_INVALID_ARGUMENT, __VA_ARGS__); \
       return FALSE; } while (0)

  g_return_val_if_fail (p != NULL, FALSE);

  if (p->steps < 1)
    FAIL (_("The number of training steps must be at least 1, not %d."), p->steps);
  if (p->batch < 1)
    FAIL (_("The batch size must be at least 1, not %d."), p->batch);
  if (!(p->lr > 0) || !isfinite (p->lr))
    FAIL (_("The learning rate must be a positive number, not %g."), p->lr);
  if (!(p->beta1 >= 0 && p->beta1 < 1) || !(p->beta2 >= 0 && p->beta2 < 1))
    FAIL (_("Adam's β₁ and β₂ must lie in [0, 1), not %g and %g."), p->beta1, p->beta2);
  if (!(p->weight_decay >= 0))
    FAIL (_("The weight decay must be 0 or more, not %g."), p->weight_decay);
  if (p->warmup < 0)
    FAIL (_("The warm-up must be 0 steps or more, not %d."), p->warmup);
  if (!(p->grad_clip >= 0))
    FAIL (_("The gradient clipping norm must be 0 (no clipping) or more, not %g."),
          p->grad_clip);
  if (!(p->ema_decay >= 0 && p->ema_decay <= 1))
    FAIL (_("The EMA decay must lie in [0, 1], not %g."), p->ema_decay);
  if (p->T < 1)
    FAIL (_("The number of diffusion steps T must be at least 1, not %d."), p->T);
  if (p->checkpoint_every < 0)
    FAIL (_("The checkpoint interval must be 0 (at the end only) or more, not %d."),
          p->checkpoint_every);
  if (p->threads < 0)
    FAIL (_("The number of threads must be 0 (all cores) or more, not %d."), p->threads);
  if (!p->out_path || !*p->out_path)
    FAIL (_("No output file given for the model."));
  if (p->comm && p->batch < p->comm->size)
    FAIL (_("The batch size (%d) must be at least the number of processes (%d): "
            "each process trains on a share of every batch."),
          p->batch, p->comm->size);
  return TRUE;
#undef FAIL
}

/* Everything one training run holds, allocated once. */
typedef struct
{
  DdpmUNet     *unet;
  DdpmSchedule *schedule;
  DdpmScheduleKind kind;
  int           T;
  gsize         n_params;
  float        *m;       /* (n_params) Adam first moment */
  float        *v;       /* (n_params) Adam second moment */
  float        *ema;     /* (n_params) EMA weights */
  const DdpmTrainComm *comm;  /* NULL: one process */
  int           lo, hi;  /* this process's share of the batch: [lo, hi) */
  float        *x0;      /* (B, C, S, S) clean crops, the whole batch */
  float        *eps;     /* (hi − lo, C, S, S) the noise of the share */
  float        *xt;      /* (hi − lo, C, S, S) the noised share */
  float        *pred;    /* (hi − lo, C, S, S) ε_θ */
  float        *dpred;   /* (hi − lo, C, S, S) ∂L/∂ε_θ */
  int          *tb;      /* (hi − lo) base t − 1 per sample */
  char         *ckpt_path;
  DdpmTrainState state;
} Trainer;

static void
trainer_clear (Trainer *tr)
{
  ddpm_unet_free (tr->unet);
  ddpm_schedule_free (tr->schedule);
  g_free (tr->m);
  g_free (tr->v);
  g_free (tr->ema);
  g_free (tr->x0);
  g_free (tr->eps);
  g_free (tr->xt);
  g_free (tr->pred);
  g_free (tr->dpred);
  g_free (tr->tb);
  g_free (tr->ckpt_path);
}

/* n zeroed floats, or NULL and the out-of-memory error naming `what`
 * (translated). */
static float *
try_alloc (gsize n, const char *what, GError **error)
{
  float *p = g_try_new0 (float, MAX (n, 1));

  if (!p)
    ddpm_set_error_no_memory (error, n * sizeof (float), "%s", what);
  return p;
}

static gboolean
trainer_setup (Trainer *tr, const DdpmTrainParams *params, GError **error)
{
  DdpmUNetConfig config = params->config;

  tr->ckpt_path = ddpm_train_checkpoint_path (params->out_path);
  tr->kind = params->schedule;
  tr->T = params->T;

  if (params->resume_path)
    {
      /* First the config alone, to build the UNet and size the arrays. */
      if (!ddpm_checkpoint_read (params->resume_path, &config, &tr->kind, &tr->T,
                                 NULL, NULL, NULL, NULL, NULL, NULL, error))
        return FALSE;
    }
  else if (!ddpm_unet_config_validate (&config, error))
    return FALSE;

  if (!(tr->unet = ddpm_unet_new (&config, error)))
    return FALSE;
  if (!(tr->schedule = ddpm_schedule_new (tr->kind, tr->T, error)))
    return FALSE;
  tr->n_params = ddpm_unet_n_params (tr->unet);
  if (!ddpm_unet_grads (tr->unet))
    {
      ddpm_set_error_no_memory (error, tr->n_params * sizeof (float),
                                /* TRANSLATORS: completes "Not enough memory
                                 * for %s". */
                                "%s", _("the gradients"));
      return FALSE;
    }
  /* TRANSLATORS: these complete "Not enough memory for %s". */
  if (!(tr->m = try_alloc (tr->n_params, _("the Adam optimizer's moments"), error))
      || !(tr->v = try_alloc (tr->n_params, _("the Adam optimizer's moments"), error))
      || !(tr->ema = try_alloc (tr->n_params, _("the averaged (EMA) weights"), error)))
    return FALSE;

  /* the share: as even as can be, in rank order */
  tr->comm = params->comm;
  tr->lo = tr->comm ? (int) ((gint64) params->batch * tr->comm->rank / tr->comm->size) : 0;
  tr->hi = tr->comm ? (int) ((gint64) params->batch * (tr->comm->rank + 1) / tr->comm->size)
                    : params->batch;

  gsize per_image = (gsize) config.in_channels * config.image_size * config.image_size;
  gsize n = (gsize) params->batch * per_image, n_share = (gsize) (tr->hi - tr->lo) * per_image;
  /* TRANSLATORS: completes "Not enough memory for %s". */
  if (!(tr->x0 = try_alloc (n, _("a training batch"), error))
      || !(tr->eps = try_alloc (n_share, _("a training batch"), error))
      || !(tr->xt = try_alloc (n_share, _("a training batch"), error))
      || !(tr->pred = try_alloc (n_share, _("a training batch"), error))
      || !(tr->dpred = try_alloc (n_share, _("a training batch"), error)))
    return FALSE;
  tr->tb = g_new (int, MAX (tr->hi - tr->lo, 1));

  if (params->resume_path)
    {
      if (!ddpm_checkpoint_read (params->resume_path, &config, &tr->kind, &tr->T,
                                 tr->unet, ddpm_unet_params (tr->unet), tr->m, tr->v,
                                 tr->ema, &tr->state, error))
        return FALSE;
    }
  else
    {
      ddpm_unet_init (tr->unet, params->seed);
      memcpy (tr->ema, ddpm_unet_params (tr->unet), tr->n_params * sizeof (float));
      memset (&tr->state, 0, sizeof tr->state);
      tr->state.seed = params->seed;
      ddpm_rng_init (&tr->state.t_rng, params->seed, TRAIN_STREAM_T);
      ddpm_rng_init (&tr->state.data.rng, params->seed, TRAIN_STREAM_DATA);
      tr->state.loss = NAN;
      tr->state.loss_ema = NAN;
    }

  /* Rank 0's start is everyone's: the same checkpoint or initialisation
   * everywhere even where another machine's libm rounds the initial
   * weights differently or reads an older copy of the checkpoint. */
  if (tr->comm)
    {
      const gsize bytes = tr->n_params * sizeof (float);

      if (!tr->comm->broadcast (tr->comm, ddpm_unet_params (tr->unet), bytes, error)
          || !tr->comm->broadcast (tr->comm, tr->m, bytes, error)
          || !tr->comm->broadcast (tr->comm, tr->v, bytes, error)
          || !tr->comm->broadcast (tr->comm, tr->ema, bytes, error)
          || !tr->comm->broadcast (tr->comm, &tr->state, sizeof tr->state, error))
        return FALSE;
    }
  return TRUE;
}

/* The model file and the checkpoint beside it, both atomically. */
static gboolean
trainer_save (Trainer *tr, const DdpmTrainParams *params, GError **error)
{
  /* the others hold the same bits */
  if (tr->comm && tr->comm->rank != 0)
    return TRUE;
  return ddpm_model_file_write (tr->ckpt_path, tr->unet, tr->ema, tr->kind, tr->T,
                                ddpm_unet_params (tr->unet), tr->m, tr->v,
                                &tr->state, error)
         && ddpm_model_file_write (params->out_path, tr->unet, tr->ema, tr->kind, tr->T,
                                   NULL, NULL, NULL, &tr->state, error);
}

/* One optimizer step: Ho et al. 2020, Algorithm 1, lines 2–5. */
static gboolean
trainer_step (Trainer               *tr,
              const DdpmTrainParams *params,
              DdpmDataset           *dataset,
              GError               **error)
{
  const DdpmUNetConfig *config = ddpm_unet_get_config (tr->unet);
  const int B = params->batch, C = config->in_channels, S = config->image_size;
  const int lo = tr->lo, B_share = tr->hi - tr->lo;
  const gsize per_image = (gsize) C * S * S, n = B * per_image;
  const gsize n_share = B_share * per_image;
  DdpmTrainState *st = &tr->state;
  const gint64 step = st->step + 1;   /* 1-based number of this update */
  float *weights = ddpm_unet_params (tr->unet);
  float *grads = ddpm_unet_grads (tr->unet);

  ddpm_dataset_sample (dataset, tr->x0, B, S, params->hflip, st->seed, &st->data);
  ddpm_rng_normal_fill (tr->eps, n_share, st->seed, TRAIN_STREAM_NOISE,
                        (guint64) (step - 1) * n + (guint64) lo * per_image);
  for (int b = 0; b < B; b++)
    {
      int t = 1 + (int) ddpm_rng_next_below (&st->t_rng, (guint32) tr->T);
      int i = b - lo;   /* in the share */

      if (i < 0 || i >= B_share)
        continue;
      /* Eq. 4 with the reparameterisation of §3.2. */
      ddpm_q_sample (tr->xt + i * per_image, tr->x0 + b * per_image,
                     tr->eps + i * per_image, per_image, tr->schedule, t);
      tr->tb[i] = t - 1;
    }

  guint64 dropout_seed = (guint64) (ddpm_rng_uniform (st->seed, TRAIN_STREAM_DROPOUT,
                                                      (guint64) step)
                                    * 9007199254740992.0);
  ddpm_unet_zero_grads (tr->unet);
  if (!ddpm_unet_forward (tr->unet, tr->pred, tr->xt, tr->tb, B_share, S, S, TRUE,
                          dropout_seed, error))
    return FALSE;
  /* the share's part of the batch mean, so that the parts add up */
  double loss = ddpm_train_mse_sum (tr->dpred, tr->pred, tr->eps, n_share, n);
  if (tr->comm && !tr->comm->sum_doubles (tr->comm, &loss, 1, error))
    return FALSE;
  loss /= n;
  if (!isfinite (loss))
    {
      g_set_error (error, DDPM_ERROR, DDPM_ERROR_INVALID_ARGUMENT,
                   _("Training diverged at step %" PRId64 " (the loss is %g); "
                     "try a lower learning rate"), step, loss);
      return FALSE;
    }
  ddpm_unet_backward (tr->unet, tr->dpred);
  if (tr->comm && !tr->comm->sum_floats (tr->comm, grads, tr->n_params, error))
    return FALSE;

  ddpm_train_clip_grad_norm (grads, tr->n_params, params->grad_clip);
  ddpm_adam_step (weights, tr->m, tr->v, grads, tr->n_params,
                  ddpm_train_warmup_lr (params->lr, params->warmup, step),
                  params->beta1, params->beta2, 1e-8, params->weight_decay, step);
  ddpm_train_ema_update (tr->ema, weights, tr->n_params,
                         ddpm_train_ema_decay (params->ema_decay, step));

  st->step = step;
  st->loss = loss;
  st->loss_ema = isnan (st->loss_ema) ? loss
                 : LOSS_EMA_DECAY * st->loss_ema + (1 - LOSS_EMA_DECAY) * loss;
  return TRUE;
}

gboolean
ddpm_train (const DdpmTrainParams *params,
            DdpmDataset           *dataset,
            GError               **error)
{
  Trainer tr = { 0 };
  gboolean ok = FALSE;
  int saved_threads = ddpm_parallel_threads ();

  g_return_val_if_fail (params != NULL, FALSE);
  g_return_val_if_fail (dataset != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (!ddpm_train_params_validate (params, error))
    return FALSE;
  ddpm_parallel_set_threads (params->threads);

  if (!trainer_setup (&tr, params, error))
    goto out;

  const DdpmUNetConfig *config = ddpm_unet_get_config (tr.unet);
  if (!ddpm_dataset_prepare (dataset, config->in_channels, config->image_size, error))
    goto out;

  gint64 first = tr.state.step;
  gint64 start_us = g_get_monotonic_time ();
  while (tr.state.step < params->steps)
    {
      if (!trainer_step (&tr, params, dataset, error))
        goto out;

      gint64 step = tr.state.step;
      gboolean stop = FALSE;
      if (params->progress)
        {
          DdpmProgress progress;
          double elapsed = (g_get_monotonic_time () - start_us) / 1e6;

          progress.step = (int) step;
          progress.n_steps = params->steps;
          progress.loss = tr.state.loss_ema;
          progress.elapsed = elapsed;
          progress.per_second = elapsed > 0 ? (step - first) / elapsed : 0;
          progress.remaining = progress.per_second > 0
                               ? (params->steps - step) / progress.per_second : 0;
          stop = !params->progress (&progress, params->progress_data);
        }
      /* a cancel on any process stops them all after the same step */
      if (tr.comm)
        {
          double stops = stop;

          if (!tr.comm->sum_doubles (tr.comm, &stops, 1, error))
            goto out;
          stop = stops > 0;
        }
      if (stop)
        {
          if (!trainer_save (&tr, params, error))
            goto out;
          g_set_error (error, DDPM_ERROR, DDPM_ERROR_CANCELLED,
                       _("Training cancelled after step %" PRId64
                         "; checkpoint saved to %s"), step, tr.ckpt_path);
          goto out;
        }
      if (params->checkpoint_every > 0 && step % params->checkpoint_every == 0
          && step < params->steps && !trainer_save (&tr, params, error))
        goto out;
    }

  ok = trainer_save (&tr, params, error);

out:
  trainer_clear (&tr);
  ddpm_parallel_set_threads (saved_threads);
  return ok;
}
