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
  int          H, W;      /* padded forward: the plane's size */
} SiluJob;

static inline void
silu_row (float *restrict out, const float *restrict inp, gsize n)
{
  for (gsize i = 0; i < n; i++)
    {
      float x = inp[i];
      out[i] = x / (1.0f + ddpm_fast_expf (-x));
    }
}

static void
silu_forward_range (gsize begin, gsize end, gpointer data)
{
  const SiluJob *j = data;

  silu_row (j->out + begin, j->inp + begin, end - begin);
}

void
ddpm_silu_forward (float *out, const float *inp, gsize n)
{
  g_return_if_fail (n == 0 || (out != NULL && inp != NULL));

  SiluJob j = { out, NULL, inp, 0, 0 };
  ddpm_parallel_for (n, GRAIN, silu_forward_range, &j);
}

/* Planes [begin, end): H rows of W into zero-bordered (H + 2, W + 2). */
static void
silu_forward_padded_range (gsize begin, gsize end, gpointer data)
{
  const SiluJob *j = data;
  const int H = j->H, W = j->W, Wp = W + 2;

  for (gsize p = begin; p < end; p++)
    {
      float *plane = j->out + p * (gsize) (H + 2) * Wp;
      const float *x = j->inp + p * (gsize) H * W;

      ddpm_zero_border (plane, H, W);
      for (int y = 0; y < H; y++)
        silu_row (plane + (gsize) (y + 1) * Wp + 1, x + (gsize) y * W, W);
    }
}

void
ddpm_silu_forward_padded (float *out, const float *inp, gsize planes, int H, int W)
{
  g_return_if_fail (planes == 0 || (out != NULL && inp != NULL && H > 0 && W > 0));

  SiluJob j = { out, NULL, inp, H, W };
  ddpm_parallel_for (planes, MAX (1, GRAIN / ((gsize) H * W)), silu_forward_padded_range, &j);
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
  SiluJob j = { dinp, dout, inp, 0, 0 };
  ddpm_parallel_for (n, GRAIN, silu_backward_range, &j);
}
