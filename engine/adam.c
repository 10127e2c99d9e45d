/* adam.c: the Adam / AdamW update on flat parameter arrays.
 *
 * One loop over all n parameters (they live in one allocation), the
 * per-step scalars computed once in double, the per-element work in float
 * so gcc vectorises it.  The order of operations follows
 * torch.optim.AdamW (decay first, then the moment update) so that results
 * can be compared with PyTorch to rounding.
 */
#include <math.h>

#include "train.h"
#include "layers/layers.h"

/* sqrtf of a second moment (never negative) cannot fail, but by default
 * gcc must keep errno semantics and so calls libm's sqrtf one element at a
 * time.  Without them the loop vectorises: 2.5× faster on 9M parameters
 * (50 → 20 ms, about the memory bandwidth), with identical results. */
#if defined (__GNUC__) && !defined (__clang__)
#define ADAM_NO_MATH_ERRNO __attribute__ ((optimize ("no-math-errno")))
#else
#define ADAM_NO_MATH_ERRNO
#endif

typedef struct
{
  float       *params, *m, *v;
  const float *grads;
  float        decay, b1, c1, b2, c2, step_size, inv_sqrt_bias2, eps;
} AdamJob;

static ADAM_NO_MATH_ERRNO void
adam_range (gsize begin, gsize end, gpointer data)
{
  const AdamJob *j = data;
  float *restrict params = j->params, *restrict m = j->m, *restrict v = j->v;
  const float *restrict grads = j->grads;

  for (gsize i = begin; i < end; i++)
    {
      float g = grads[i];
      float mi = j->b1 * m[i] + j->c1 * g;
      float vi = j->b2 * v[i] + j->c2 * g * g;

      m[i] = mi;
      v[i] = vi;
      params[i] = params[i] * j->decay
                  - j->step_size * mi / (sqrtf (vi) * j->inv_sqrt_bias2 + j->eps);
    }
}

/* Kingma & Ba 2015, Algorithm 1; decoupled weight decay: Loshchilov &
 * Hutter 2019, Algorithm 2 (line 12, with the schedule multiplier η = 1).
 * Elementwise, so it runs on the layers' thread team: on one thread the
 * other core sat idle for the ~3 ms it takes on a million parameters
 * (memory-bound), and its worker went to sleep. */
void
ddpm_adam_step (float       *params,
                float       *m,
                float       *v,
                const float *grads,
                gsize        n,
                double       lr,
                double       beta1,
                double       beta2,
                double       eps,
                double       weight_decay,
                gint64       step)
{
  g_return_if_fail (step >= 1);

  const double bias1 = 1.0 - pow (beta1, (double) step);
  const double bias2 = 1.0 - pow (beta2, (double) step);
  AdamJob j = {
    .params = params, .m = m, .v = v, .grads = grads,
    .decay = (float) (1.0 - lr * weight_decay),
    .b1 = (float) beta1, .c1 = (float) (1.0 - beta1),
    .b2 = (float) beta2, .c2 = (float) (1.0 - beta2),
    .step_size = (float) (lr / bias1),
    .inv_sqrt_bias2 = (float) (1.0 / sqrt (bias2)),
    .eps = (float) eps,
  };

  ddpm_parallel_for (n, 32768, adam_range, &j);
}
