/* linear.c: the fully connected layer (PyTorch nn.Linear layout), forward
 * and backward, on OpenBLAS.
 *
 *   forward:  Y = X·Wᵀ + b             X (B, IC), W (OC, IC), Y (B, OC)
 *   backward: dX += dY·W,  dW += dYᵀ·X,  db += Σ_rows dY
 *
 * In the DDPM UNet it carries the timestep embedding: the two-layer MLP
 * and each residual block's projection onto its channels.
 */
#include <string.h>

#include "layers.h"

void
ddpm_linear_forward (float       *out,
                     const float *inp,
                     const float *weight,
                     const float *bias,
                     int B, int IC, int OC)
{
  g_return_if_fail (out != NULL && inp != NULL && weight != NULL);
  g_return_if_fail (B > 0 && IC > 0 && OC > 0);

  float beta = 0.0f;
  if (bias != NULL)
    {
      for (int b = 0; b < B; b++)
        memcpy (out + (gsize) b * OC, bias, sizeof (float) * OC);
      beta = 1.0f;
    }
  ddpm_sgemm (FALSE, TRUE,
              B, OC, IC,
              1.0f, inp, IC, weight, IC,
              beta, out, OC);
}

void
ddpm_linear_backward (float       *dinp,
                      float       *dweight,
                      float       *dbias,
                      const float *dout,
                      const float *inp,
                      const float *weight,
                      int B, int IC, int OC)
{
  g_return_if_fail (dout != NULL && inp != NULL && weight != NULL);
  g_return_if_fail (B > 0 && IC > 0 && OC > 0);

  if (dinp != NULL)
    ddpm_sgemm (FALSE, FALSE,
                B, IC, OC,
                1.0f, dout, OC, weight, IC,
                1.0f, dinp, IC);
  if (dweight != NULL)
    ddpm_sgemm (TRUE, FALSE,
                OC, IC, B,
                1.0f, dout, OC, inp, IC,
                1.0f, dweight, IC);
  if (dbias != NULL)
    for (int o = 0; o < OC; o++)
      {
        double sum = 0;
        for (int b = 0; b < B; b++)
          sum += dout[(gsize) b * OC + o];
        dbias[o] += (float) sum;
      }
}
