/* silu.c: the SiLU (swish) activation, forward and backward.
 *
 * SiLU(x) = x·σ(x), σ(x) = 1/(1 + e^−x) (Elfwing et al. 2018; Ramachandran
 * et al. 2017 "swish"), the nonlinearity of every DDPM residual block.
 * Its derivative: d/dx x·σ(x) = σ(x)·(1 + x·(1 − σ(x))).
 * For x → −∞, e^−x saturates at ~2e38 and σ goes to 0, the right limit.
 * e^x is ddpm_fast_expf (vectorised); the loops run on the layers' team.
 */
#include "layers.h"

/* Elements per part of the thread team: below ~64K a part is shorter
 * than waking a thread. */
#define GRAIN 32768

typedef struct
{
  float       *out;
  const float *dout;
  const float *inp;
} SiluJob;

static void
silu_forward_range (gsize begin, gsize end, gpointer data)
{
  const SiluJob *j = data;
  float *restrict out = j->out;
  const float *restrict inp = j->inp;

  for (gsize i = begin; i < end; i++)
    {
      float x = inp[i];
      out[i] = x / (1.0f + ddpm_fast_expf (-x));
    }
}

void
ddpm_silu_forward (float *out, const float *inp, gsize n)
{
  g_return_if_fail (n == 0 || (out != NULL && inp != NULL));

  SiluJob j = { out, NULL, inp };
  ddpm_parallel_for (n, GRAIN, silu_forward_range, &j);
}

static void
silu_backward_range (gsize begin, gsize end, gpointer data)
{
  const SiluJob *j = data;
  float *restrict dinp = j->out;
  const float *restrict dout = j->dout, *restrict inp = j->inp;

  for (gsize i = begin; i < end; i++)
    {
      float x = inp[i];
      float sig = 1.0f / (1.0f + ddpm_fast_expf (-x));
      dinp[i] += dout[i] * sig * (1.0f + x * (1.0f - sig));
    }
}

void
ddpm_silu_backward (float *dinp, const float *dout, const float *inp, gsize n)
{
  g_return_if_fail (n == 0 || (dout != NULL && inp != NULL));

  if (dinp == NULL)
    return;
  SiluJob j = { dinp, dout, inp };
  ddpm_parallel_for (n, GRAIN, silu_backward_range, &j);
}
