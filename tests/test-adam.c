/* test-adam.c: the Adam/AdamW optimizer step, against a hand computation
 * and torch.optim.AdamW (values printed by
 * PyTorch 1.13 in double, for the script below):
 *
 *   p = torch.nn.Parameter(torch.tensor([0.5, -1.25, 2.0, 0.0], dtype=torch.float64))
 *   opt = torch.optim.AdamW([p], lr=0.01, betas=(0.9, 0.999), eps=1e-8, weight_decay=wd)
 *   for g in [[0.1, -0.2, 0.3, 0.0], [-0.4, 0.05, 0.3, 1e-3], [0.2, 0.2, -0.1, 0.5]]:
 *       p.grad = torch.tensor(g, dtype=torch.float64); opt.step()
 */
#include <math.h>
#include <string.h>

#include "train.h"

static const float p0[4] = { 0.5f, -1.25f, 2.0f, 0.0f };
static const float grads[3][4] = {
  { 0.1f, -0.2f, 0.3f, 0.0f },
  { -0.4f, 0.05f, 0.3f, 1e-3f },
  { 0.2f, 0.2f, -0.1f, 0.5f },
};

/* Step 1 from zero moments, by hand: m̂ = g and v̂ = g², so every
 * parameter moves by lr·g/(|g| + eps), i.e. lr against the gradient's sign. */
static void
test_first_step (void)
{
  float p[4], m[4] = { 0 }, v[4] = { 0 };

  memcpy (p, p0, sizeof p);
  ddpm_adam_step (p, m, v, grads[0], 4, 0.01, 0.9, 0.999, 1e-8, 0, 1);
  for (int i = 0; i < 4; i++)
    {
      double g = grads[0][i];
      double expected = p0[i] - 0.01 * g / (fabs (g) + 1e-8);
      g_assert_cmpfloat_with_epsilon (p[i], expected, 1e-6);
      g_assert_cmpfloat_with_epsilon (m[i], 0.1 * g, 1e-8);
      g_assert_cmpfloat_with_epsilon (v[i], 0.001 * g * g, 1e-11);
    }
}

static void
run_three_steps (double wd, float p[4], float m[4], float v[4])
{
  memcpy (p, p0, 4 * sizeof (float));
  memset (m, 0, 4 * sizeof (float));
  memset (v, 0, 4 * sizeof (float));
  for (int s = 0; s < 3; s++)
    ddpm_adam_step (p, m, v, grads[s], 4, 0.01, 0.9, 0.999, 1e-8, wd, s + 1);
}

static void
test_matches_torch_adam (void)
{
  static const double p_ref[4] = { 0.496696772346, -1.23715221492, 1.97394302148,
                                   -0.0138408846574 };
  static const double m_ref[4] = { -0.0079, 0.0083, 0.0413, 0.05009 };
  static const double v_ref[4] = { 0.00020982001, 8.241754e-05, 0.00018973009,
                                   0.000250000999 };
  float p[4], m[4], v[4];

  run_three_steps (0, p, m, v);
  for (int i = 0; i < 4; i++)
    {
      g_assert_cmpfloat_with_epsilon (p[i], p_ref[i], 2e-6);
      g_assert_cmpfloat_with_epsilon (m[i], m_ref[i], 1e-8);
      g_assert_cmpfloat_with_epsilon (v[i], v_ref[i], 1e-10);
    }
}

/* AdamW: decoupled decay changes the parameters but not the moments. */
static void
test_matches_torch_adamw (void)
{
  static const double p_ref[4] = { 0.49521266681, -1.23343064835, 1.96797900948,
                                   -0.0138334433944 };
  float p[4], m[4], v[4];

  run_three_steps (0.1, p, m, v);
  for (int i = 0; i < 4; i++)
    g_assert_cmpfloat_with_epsilon (p[i], p_ref[i], 2e-6);

  /* One step with a zero gradient and zero moments: pure decay
   * p·(1 − lr·wd) (the Adam term is 0/(0 + eps) = 0). */
  float q[2] = { 3.0f, -2.0f }, zero[2] = { 0 }, mq[2] = { 0 }, vq[2] = { 0 };
  ddpm_adam_step (q, mq, vq, zero, 2, 0.5, 0.9, 0.999, 1e-8, 0.2, 1);
  g_assert_cmpfloat_with_epsilon (q[0], 3.0 * 0.9, 1e-6);
  g_assert_cmpfloat_with_epsilon (q[1], -2.0 * 0.9, 1e-6);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/engine/adam/first-step", test_first_step);
  g_test_add_func ("/engine/adam/torch-adam", test_matches_torch_adam);
  g_test_add_func ("/engine/adam/torch-adamw", test_matches_torch_adamw);
  return g_test_run ();
}
