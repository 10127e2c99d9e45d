/* test-respace.c: respaced schedules (Nichol & Dhariwal 2021, §4) keep the
 * base marginals: the cumulative product of the respaced α' equals the base
 * ᾱ at every kept timestep. */
#include <math.h>

#include "ddpm.h"

static void
check_respaced (const DdpmSchedule *base, int t_max, int n, DdpmSpacing spacing)
{
  GError *error = NULL;
  DdpmSchedule *s = ddpm_schedule_respace (base, t_max, n, spacing, &error);

  g_assert_no_error (error);
  g_assert_cmpint (s->T, ==, n);
  g_assert_cmpint (s->T_base, ==, base->T);
  g_assert_cmpint (s->timestep[0], ==, 0);

  long double prod = 1;
  for (int i = 1; i <= n; i++)
    {
      int t = s->timestep[i];
      g_assert_cmpint (t, >, s->timestep[i - 1]);
      g_assert_cmpint (t, <=, t_max);
      /* multiply the respaced α' afresh, independently of the stored ᾱ' */
      prod *= s->alpha[i];
      g_assert_cmpfloat (fabs ((double) prod - base->alpha_bar[t]), <=, 1e-12 * base->alpha_bar[t]);
      g_assert_cmpfloat (fabs (s->alpha[i] + s->beta[i] - 1), <=, 1e-15);
      g_assert_cmpfloat (s->alpha_bar[i], ==, base->alpha_bar[t]);
      /* β'_i = 1 − ᾱ_{t_i}/ᾱ_{t_{i−1}} ≥ β_{t_i}: a jump adds more noise */
      g_assert_cmpfloat (s->beta[i], >=, base->beta[t] * (1 - 1e-12));
    }
  switch (spacing)
    {
    case DDPM_SPACING_TRAILING:
      g_assert_cmpint (s->timestep[n], ==, t_max);
      break;
    case DDPM_SPACING_LEADING:
      g_assert_cmpint (s->timestep[1], ==, 1);
      break;
    case DDPM_SPACING_LINSPACE:
      g_assert_cmpint (s->timestep[n], ==, t_max);
      if (n > 1)
        g_assert_cmpint (s->timestep[1], ==, 1);
      break;
    case DDPM_SPACING_KARRAS:
      g_assert_cmpint (s->timestep[n], ==, t_max);
      if (n > 1)
        g_assert_cmpint (s->timestep[1], ==, 1);
      break;
    default:
      g_assert_not_reached ();
    }
  ddpm_schedule_free (s);
}

static void
test_cumulative_product (void)
{
  const struct { int t_max, n; } cases[] = {
    { 1000, 1000 }, { 1000, 50 }, { 1000, 20 }, { 1000, 7 }, { 1000, 1 },
    { 400, 20 }, { 401, 33 }, { 3, 3 }, { 999, 998 },
  };

  for (int k = 0; k < DDPM_SCHEDULE_COUNT; k++)
    {
      DdpmSchedule *base = ddpm_schedule_new ((DdpmScheduleKind) k, 1000, NULL);

      for (gsize c = 0; c < G_N_ELEMENTS (cases); c++)
        for (int sp = 0; sp < DDPM_SPACING_COUNT; sp++)
          check_respaced (base, cases[c].t_max, cases[c].n, (DdpmSpacing) sp);
      ddpm_schedule_free (base);
    }
}

/* The spacings on small cases worked out by hand. */
static void
test_spacing_values (void)
{
  int out[11];

  g_assert_true (ddpm_spacing_timesteps (out, 1000, 10, DDPM_SPACING_TRAILING, NULL));
  for (int i = 1; i <= 10; i++)
    g_assert_cmpint (out[i], ==, 100 * i);
  g_assert_true (ddpm_spacing_timesteps (out, 1000, 10, DDPM_SPACING_LEADING, NULL));
  for (int i = 1; i <= 10; i++)
    g_assert_cmpint (out[i], ==, 1 + 100 * (i - 1));
  g_assert_true (ddpm_spacing_timesteps (out, 10, 4, DDPM_SPACING_LINSPACE, NULL));
  g_assert_cmpint (out[1], ==, 1);
  g_assert_cmpint (out[2], ==, 4);
  g_assert_cmpint (out[3], ==, 7);
  g_assert_cmpint (out[4], ==, 10);
  g_assert_true (ddpm_spacing_timesteps (out, 10, 4, DDPM_SPACING_TRAILING, NULL));
  g_assert_cmpint (out[1], ==, 3); /* round(2.5) away from zero */
  g_assert_cmpint (out[2], ==, 5);
  g_assert_cmpint (out[3], ==, 8);
  g_assert_cmpint (out[4], ==, 10);
}

/* n = T reproduces the base schedule; more steps than timesteps is an error. */
static void
test_identity_and_errors (void)
{
  DdpmSchedule *base = ddpm_schedule_new (DDPM_SCHEDULE_COSINE, 200, NULL);
  DdpmSchedule *same = ddpm_schedule_respace (base, 200, 200, DDPM_SPACING_TRAILING, NULL);
  GError *error = NULL;

  for (int t = 1; t <= 200; t++)
    {
      g_assert_cmpfloat (fabs (same->beta[t] - base->beta[t]), <=, 1e-12);
      g_assert_cmpfloat (fabs (same->posterior_variance[t] - base->posterior_variance[t]), <=, 1e-12);
    }

  /* respacing a respaced schedule maps back to the base timesteps */
  DdpmSchedule *twice = ddpm_schedule_respace (same, 100, 10, DDPM_SPACING_TRAILING, NULL);
  g_assert_cmpint (twice->timestep[10], ==, 100);
  g_assert_cmpint (twice->T_base, ==, 200);

  g_assert_null (ddpm_schedule_respace (base, 10, 11, DDPM_SPACING_TRAILING, &error));
  g_assert_error (error, DDPM_ERROR, DDPM_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);
  g_assert_null (ddpm_schedule_respace (base, 201, 10, DDPM_SPACING_TRAILING, &error));
  g_assert_error (error, DDPM_ERROR, DDPM_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);
  g_assert_null (ddpm_schedule_respace (base, 100, 0, DDPM_SPACING_TRAILING, &error));
  g_assert_error (error, DDPM_ERROR, DDPM_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);

  ddpm_schedule_free (twice);
  ddpm_schedule_free (same);
  ddpm_schedule_free (base);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/engine/respace/cumulative-product", test_cumulative_product);
  g_test_add_func ("/engine/respace/spacing-values", test_spacing_values);
  g_test_add_func ("/engine/respace/identity-and-errors", test_identity_and_errors);
  return g_test_run ();
}
