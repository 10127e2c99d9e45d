/* embedding.c: the sinusoidal timestep embedding of DDPM.
 *
 * Ho et al. 2020, appendix B, after the Transformer's position encoding
 * (Vaswani et al. 2017, §3.5); the exact form of the reference code
 * (diffusion_tf nn.get_timestep_embedding, and our
 * ../shared/bench/torch_unet.py timestep_embedding):
 *
 *   half = dim/2,  f_i = exp(−ln(10000)·i/(half − 1)),  i = 0..half−1
 *   out  = [sin(t·f_0), …, sin(t·f_{half−1}), cos(t·f_0), …, cos(t·f_{half−1})]
 *
 * Evaluated in float in the order PyTorch does (−ln 10000 · i, then / (half
 * − 1), exp, times t), so that a model trained there sees the same inputs to
 * the last bit or two.  An odd dim gets a zero last column, as diffusion_tf
 * pads it.
 */
#include <math.h>

#include "layers.h"

void
ddpm_timestep_embedding (float *out, const int *t, int B, int dim)
{
  g_return_if_fail (out != NULL && t != NULL);
  g_return_if_fail (B > 0 && dim >= 4);

  const int half = dim / 2;
  const float neg_log_10000 = (float) -log (10000.0);

  for (int b = 0; b < B; b++)
    {
      float *row = out + (gsize) b * dim;
      const float tf = (float) t[b];

      for (int i = 0; i < half; i++)
        {
          float f = expf ((neg_log_10000 * (float) i) / (float) (half - 1));
          float arg = tf * f;
          row[i] = sinf (arg);
          row[half + i] = cosf (arg);
        }
      if (dim % 2 == 1)
        row[dim - 1] = 0.0f;
    }
}
