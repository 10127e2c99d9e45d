/* test-schedule.c: every table against its closed form, computed here
 * independently (loops and formulas written out again, in long double where
 * products accumulate). */
#include <math.h>
#include <string.h>

#include "ddpm.h"

static DdpmSchedule *
schedule (DdpmScheduleKind kind, int T)
{
  GError *error = NULL;
  DdpmSchedule *s = ddpm_schedule_new (kind, T, &error);

  g_assert_no_error (error);
  g_assert_nonnull (s);
  return s;
}

/* Ho et al. 2020, §4: β_1 = 1e-4, β_T = 0.02, linear between; ᾱ_1000 is
 * ∏(1 − β_t) ≈ 4.04e-5. */
static void
test_linear_endpoints (void)
{
  DdpmSchedule *s = schedule (DDPM_SCHEDULE_LINEAR, 1000);

  g_assert_cmpfloat_with_epsilon (s->beta[1], 1e-4, 1e-15);
  g_assert_cmpfloat_with_epsilon (s->beta[1000], 0.02, 1e-15);
  g_assert_cmpfloat_with_epsilon (s->beta[500], 1e-4 + (0.02 - 1e-4) * 499 / 999, 1e-15);
  for (int t = 2; t <= 1000; t++)
    g_assert_cmpfloat_with_epsilon (s->beta[t] - s->beta[t - 1], (0.02 - 1e-4) / 999, 1e-14);

  long double prod = 1;
  for (int t = 1; t <= 1000; t++)
    prod *= 1.0L - (1e-4L + (0.02L - 1e-4L) * (t - 1) / 999);
  g_assert_cmpfloat (fabs (s->alpha_bar[1000] - (double) prod) / (double) prod, <, 1e-12);
  g_assert_cmpfloat (fabs (s->alpha_bar[1000] - 4.0358e-5), <, 1e-8);
  g_assert_cmpint (s->timestep[1000], ==, 1000);
  ddpm_schedule_free (s);
}

/* ᾱ_t = ∏_{s≤t} α_s and every derived table from its definition, for all
 * schedules and several T. */
static void
test_derived_tables (void)
{
  const int Ts[] = { 1, 2, 10, 1000, 4000 };

  for (int k = 0; k < DDPM_SCHEDULE_COUNT; k++)
    for (gsize j = 0; j < G_N_ELEMENTS (Ts); j++)
      {
        int T = Ts[j];
        DdpmSchedule *s = schedule ((DdpmScheduleKind) k, T);
        long double prod = 1;

        g_assert_cmpfloat (s->alpha_bar[0], ==, 1.0);
        for (int t = 1; t <= T; t++)
          {
            double b = s->beta[t], a = 1 - b;
            prod *= a;
            double ab = (double) prod, ab_prev = s->alpha_bar[t - 1];

            g_assert_cmpfloat (b, >, 0.0);
            g_assert_cmpfloat (b, <=, 0.999);
            g_assert_cmpfloat (fabs (s->alpha_bar[t] - ab), <=, 1e-12 * ab);
            g_assert_cmpfloat_with_epsilon (s->alpha[t], a, 1e-15);
            g_assert_cmpfloat (fabs (s->sqrt_alpha_bar[t] * s->sqrt_alpha_bar[t] - ab), <=, 1e-12 * ab);
            g_assert_cmpfloat_with_epsilon (s->sqrt_one_minus_alpha_bar[t],
                                            sqrt (1 - s->alpha_bar[t]), 1e-14);
            g_assert_cmpfloat (fabs (s->sqrt_recip_alpha_bar[t] * s->sqrt_alpha_bar[t] - 1), <, 1e-13);
            g_assert_cmpfloat (fabs (s->sqrt_recipm1_alpha_bar[t] - sqrt ((1 - ab) / ab)), <=,
                               1e-9 * s->sqrt_recipm1_alpha_bar[t]);
            /* β̃_t = (1 − ᾱ_{t−1})/(1 − ᾱ_t)·β_t */
            double pv = (1 - ab_prev) / (1 - s->alpha_bar[t]) * b;
            g_assert_cmpfloat (fabs (s->posterior_variance[t] - pv), <=, 1e-12 * b);
            g_assert_cmpfloat (s->posterior_variance[t], <=, b * (1 + 1e-12));
            g_assert_cmpfloat_with_epsilon (s->posterior_mean_coef_x0[t],
                                            sqrt (ab_prev) * b / (1 - s->alpha_bar[t]), 1e-12);
            g_assert_cmpfloat_with_epsilon (s->posterior_mean_coef_xt[t],
                                            sqrt (a) * (1 - ab_prev) / (1 - s->alpha_bar[t]), 1e-12);
            if (t >= 2)
              g_assert_cmpfloat_with_epsilon (s->posterior_log_variance_clipped[t], log (pv), 1e-9);
          }
        /* β̃_1 = 0, its log clipped to log β̃_2 */
        g_assert_cmpfloat (s->posterior_variance[1], ==, 0.0);
        if (T >= 2)
          g_assert_cmpfloat (s->posterior_log_variance_clipped[1], ==,
                             s->posterior_log_variance_clipped[2]);
        g_assert_true (isfinite (s->posterior_log_variance_clipped[1]));
        ddpm_schedule_free (s);
      }
}

/* Nichol & Dhariwal 2021, eq. 17: ᾱ_t = f(t)/f(0), wherever β is below
 * its 0.999 clip (everywhere but the last step at T = 1000). */
static void
test_cosine_formula (void)
{
  const int T = 1000;
  DdpmSchedule *s = schedule (DDPM_SCHEDULE_COSINE, T);
  const double sh = 0.008;
  double f0 = pow (cos (sh / (1 + sh) * G_PI / 2), 2);
  int clipped = 0;

  for (int t = 1; t <= T; t++)
    {
      double ft = pow (cos (((double) t / T + sh) / (1 + sh) * G_PI / 2), 2);
      if (s->beta[t] >= 0.999)
        {
          clipped++;
          continue;
        }
      g_assert_cmpfloat (fabs (s->alpha_bar[t] - ft / f0), <=, 1e-10 * (ft / f0) + 1e-15);
    }
  g_assert_cmpint (clipped, <=, 1);
  g_assert_cmpfloat (s->beta[T], ==, 0.999);
  ddpm_schedule_free (s);
}

/* The other named schedules: their T = 1000 endpoints, and scaling by
 * 1000/T that keeps ᾱ_T of the same order for smaller T. */
static void
test_other_schedules (void)
{
  DdpmSchedule *sl = schedule (DDPM_SCHEDULE_SCALED_LINEAR, 1000);
  g_assert_cmpfloat_with_epsilon (sl->beta[1], 0.00085, 1e-15);
  g_assert_cmpfloat_with_epsilon (sl->beta[1000], 0.012, 1e-15);
  g_assert_cmpfloat_with_epsilon (sqrt (sl->beta[501]) - sqrt (sl->beta[500]),
                                  (sqrt (0.012) - sqrt (0.00085)) / 999, 1e-14);
  ddpm_schedule_free (sl);

  DdpmSchedule *sg = schedule (DDPM_SCHEDULE_SIGMOID, 1000);
  g_assert_cmpfloat_with_epsilon (sg->beta[1], 1e-4 + (0.02 - 1e-4) / (1 + exp (6.0)), 1e-15);
  /* σ(x) + σ(−x) = 1, so β_t + β_{T+1−t} = 2·1e-4 + (0.02 − 1e-4) */
  for (int t = 1; t <= 1000; t++)
    g_assert_cmpfloat_with_epsilon (sg->beta[t] + sg->beta[1001 - t], 1e-4 + 0.02, 1e-13);
  ddpm_schedule_free (sg);

  DdpmSchedule *l100 = schedule (DDPM_SCHEDULE_LINEAR, 100);
  DdpmSchedule *l1000 = schedule (DDPM_SCHEDULE_LINEAR, 1000);
  g_assert_cmpfloat_with_epsilon (l100->beta[100], 0.2, 1e-15);
  /* same order of magnitude: within a factor e */
  g_assert_cmpfloat (fabs (log (l100->alpha_bar[100]) - log (l1000->alpha_bar[1000])), <, 1.0);
  ddpm_schedule_free (l100);
  ddpm_schedule_free (l1000);
}

static void
test_names_and_errors (void)
{
  for (int k = 0; k < DDPM_SCHEDULE_COUNT; k++)
    {
      DdpmScheduleKind back;
      g_assert_true (ddpm_schedule_kind_from_string (ddpm_schedule_kind_name (k), &back, NULL));
      g_assert_cmpint (back, ==, k);
    }
  for (int k = 0; k < DDPM_SPACING_COUNT; k++)
    {
      DdpmSpacing back;
      g_assert_true (ddpm_spacing_from_string (ddpm_spacing_name (k), &back, NULL));
      g_assert_cmpint (back, ==, k);
    }

  GError *error = NULL;
  DdpmScheduleKind kind;
  g_assert_false (ddpm_schedule_kind_from_string ("quadratic", &kind, &error));
  g_assert_error (error, DDPM_ERROR, DDPM_ERROR_INVALID_ARGUMENT);
  g_assert_nonnull (strstr (error->message, "cosine")); /* lists the valid names */
  g_clear_error (&error);

  g_assert_null (ddpm_schedule_new (DDPM_SCHEDULE_LINEAR, 0, &error));
  g_assert_error (error, DDPM_ERROR, DDPM_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);

  /* explicit ᾱ must decrease strictly inside (0, 1) */
  const double bad[] = { 1.0, 0.9, 0.95, 0.5 };
  g_assert_null (ddpm_schedule_new_from_alpha_bar (DDPM_SCHEDULE_LINEAR, bad, NULL, 3, 3, &error));
  g_assert_error (error, DDPM_ERROR, DDPM_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);
}

/* A copy equals its original bit for bit, table after table, and owns its
 * memory (a copy of a copy still reads after the first copy is freed). */
static void
test_copy (void)
{
  DdpmSchedule *base = schedule (DDPM_SCHEDULE_COSINE, 1000);
  DdpmSchedule *respaced = ddpm_schedule_respace (base, 700, 9, DDPM_SPACING_LINSPACE, NULL);
  DdpmSchedule *originals[] = { base, respaced };

  for (gsize k = 0; k < G_N_ELEMENTS (originals); k++)
    {
      const DdpmSchedule *o = originals[k];
      DdpmSchedule *c = ddpm_schedule_copy (o);
      const gsize len = (gsize) o->T + 1;
      const double *tables_o[] = {
        o->beta, o->alpha, o->alpha_bar, o->sqrt_alpha_bar, o->sqrt_one_minus_alpha_bar,
        o->sqrt_recip_alpha_bar, o->sqrt_recipm1_alpha_bar, o->posterior_variance,
        o->posterior_log_variance_clipped, o->posterior_mean_coef_x0,
        o->posterior_mean_coef_xt, o->log_beta,
      };
      const double *tables_c[] = {
        c->beta, c->alpha, c->alpha_bar, c->sqrt_alpha_bar, c->sqrt_one_minus_alpha_bar,
        c->sqrt_recip_alpha_bar, c->sqrt_recipm1_alpha_bar, c->posterior_variance,
        c->posterior_log_variance_clipped, c->posterior_mean_coef_x0,
        c->posterior_mean_coef_xt, c->log_beta,
      };

      g_assert_cmpint (c->kind, ==, o->kind);
      g_assert_cmpint (c->T, ==, o->T);
      g_assert_cmpint (c->T_base, ==, o->T_base);
      g_assert_cmpmem (c->timestep, len * sizeof (int), o->timestep, len * sizeof (int));
      for (gsize i = 0; i < G_N_ELEMENTS (tables_o); i++)
        {
          g_assert_true (tables_c[i] != tables_o[i]);
          g_assert_cmpmem (tables_c[i], len * sizeof (double), tables_o[i], len * sizeof (double));
        }

      /* independent of the original */
      DdpmSchedule *again = ddpm_schedule_copy (c);
      ddpm_schedule_free (c);
      g_assert_cmpmem (again->alpha_bar, len * sizeof (double), o->alpha_bar, len * sizeof (double));
      ddpm_schedule_free (again);
    }
  ddpm_schedule_free (respaced);
  ddpm_schedule_free (base);
}

/* g_autoptr frees a schedule when its scope ends (ddpm.h declares the
 * cleanup for every public type with a _free): run under
 * MALLOC_PERTURB_ and valgrind/ASan, a missing cleanup shows as a leak. */
static void
test_autoptr (void)
{
  g_autoptr (DdpmSchedule) s = ddpm_schedule_new (DDPM_SCHEDULE_COSINE, 50, NULL);
  g_autoptr (DdpmSchedule) copy = NULL;

  g_assert_nonnull (s);
  copy = ddpm_schedule_copy (s);
  g_assert_cmpint (copy->T, ==, 50);
  g_assert_cmpfloat (copy->alpha_bar[50], ==, s->alpha_bar[50]);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/engine/schedule/linear-endpoints", test_linear_endpoints);
  g_test_add_func ("/engine/schedule/derived-tables", test_derived_tables);
  g_test_add_func ("/engine/schedule/cosine-formula", test_cosine_formula);
  g_test_add_func ("/engine/schedule/other-schedules", test_other_schedules);
  g_test_add_func ("/engine/schedule/names-and-errors", test_names_and_errors);
  g_test_add_func ("/engine/schedule/copy", test_copy);
  g_test_add_func ("/engine/schedule/autoptr", test_autoptr);
  return g_test_run ();
}
