/* silu.c: the SiLU (swish) activation, forward and backward.
 *
 * SiLU(x) = x·σ(x), σ(x) = 1/(1 + e^−x) (Elfwing et al. 2018; Ramachandran
 * et al. 2017 "swish"), the nonlinearity of every DDPM residual block.
 * Its derivative: d/dx x·σ(x) = σ(x)·(1 + x·(1 − σ(x))).
 * For x → −∞, e^−x overflows to +∞ and σ to 0, the right limit.
 */
#include <math.h>

#include "layers.h"

void
ddpm_silu_forward (float *out, const float *inp, gsize n)
{
  g_return_if_fail (n == 0 || (out != NULL && inp != NULL));

  for (gsize i = 0; i < n; i++)
    {
      float x = inp[i];
      out[i] = x / (1.0f + expf (-x));
    }
}

void
ddpm_silu_backward (float *dinp, const float *dout, const float *inp, gsize n)
{
  g_return_if_fail (n == 0 || (dout != NULL && inp != NULL));

  if (dinp == NULL)
    return;
  for (gsize i = 0; i < n; i++)
    {
      float x = inp[i];
      float sig = 1.0f / (1.0f + expf (-x));
      dinp[i] += dout[i] * sig * (1.0f + x * (1.0f - sig));
    }
}
