/* schedule.c: noise schedules β_1..β_T and the tables derived from them.
 *
 * Everything is computed in double.  The named schedules produce β_t; the
 * cumulative product ᾱ_t follows; then one function derives every other
 * table from (β, ᾱ), so named, explicit-ᾱ and respaced schedules share it.
 */
#include <math.h>
#include <string.h>

#include "intl.h"
#include "ddpm.h"
#include "names.h"

#define DDPM_T_MAX 100000
#define BETA_MAX 0.999 /* Nichol & Dhariwal 2021: avoid singularities at t = T */

static const char *const schedule_names[DDPM_SCHEDULE_COUNT] = {
  [DDPM_SCHEDULE_LINEAR] = "linear",
  [DDPM_SCHEDULE_COSINE] = "cosine",
  [DDPM_SCHEDULE_SCALED_LINEAR] = "scaled-linear",
  [DDPM_SCHEDULE_SIGMOID] = "sigmoid",
};

static const char *const spacing_names[DDPM_SPACING_COUNT] = {
  [DDPM_SPACING_TRAILING] = "trailing",
  [DDPM_SPACING_LEADING] = "leading",
  [DDPM_SPACING_LINSPACE] = "linspace",
  [DDPM_SPACING_KARRAS] = "karras",
};

const char *
ddpm_schedule_kind_name (DdpmScheduleKind kind)
{
  g_return_val_if_fail (kind >= 0 && kind < DDPM_SCHEDULE_COUNT, NULL);
  return schedule_names[kind];
}

gboolean
ddpm_schedule_kind_from_string (const char        *name,
                                DdpmScheduleKind  *kind,
                                GError           **error)
{
  int value;

  if (!ddpm_name_lookup (schedule_names, DDPM_SCHEDULE_COUNT, "schedule",
                    name, &value, error))
    return FALSE;
  *kind = (DdpmScheduleKind) value;
  return TRUE;
}

const char *
ddpm_spacing_name (DdpmSpacing spacing)
{
  g_return_val_if_fail (spacing >= 0 && spacing < DDPM_SPACING_COUNT, NULL);
  return spacing_names[spacing];
}

gboolean
ddpm_spacing_from_string (const char   *name,
                          DdpmSpacing  *spacing,
                          GError      **error)
{
  int value;

  if (!ddpm_name_lookup (spacing_names, DDPM_SPACING_COUNT, "timestep spacing",
                    name, &value, error))
    return FALSE;
  *spacing = (DdpmSpacing) value;
  return TRUE;
}

/* ------------------------------------------------------------ allocation */

enum { N_TABLES = 12 };

static DdpmSchedule *
schedule_alloc (DdpmScheduleKind kind, int T, int T_base)
{
  DdpmSchedule *s = g_new0 (DdpmSchedule, 1);
  gsize len = (gsize) T + 1;
  double *block = g_new0 (double, N_TABLES * len);

  s->kind = kind;
  s->T = T;
  s->T_base = T_base;
  s->timestep = g_new0 (int, len);
  /* One allocation, named pointers into it (freed through s->beta). */
  s->beta = block;
  s->alpha = block + 1 * len;
  s->alpha_bar = block + 2 * len;
  s->sqrt_alpha_bar = block + 3 * len;
  s->sqrt_one_minus_alpha_bar = block + 4 * len;
  s->sqrt_recip_alpha_bar = block + 5 * len;
  s->sqrt_recipm1_alpha_bar = block + 6 * len;
  s->posterior_variance = block + 7 * len;
  s->posterior_log_variance_clipped = block + 8 * len;
  s->posterior_mean_coef_x0 = block + 9 * len;
  s->posterior_mean_coef_xt = block + 10 * len;
  s->log_beta = block + 11 * len;
  return s;
}

DdpmSchedule *
ddpm_schedule_copy (const DdpmSchedule *schedule)
{
  g_return_val_if_fail (schedule != NULL, NULL);

  DdpmSchedule *s = schedule_alloc (schedule->kind, schedule->T, schedule->T_base);
  gsize len = (gsize) schedule->T + 1;

  /* The tables are one block starting at beta (schedule_alloc). */
  memcpy (s->beta, schedule->beta, N_TABLES * len * sizeof (double));
  memcpy (s->timestep, schedule->timestep, len * sizeof (int));
  return s;
}

void
ddpm_schedule_free (DdpmSchedule *schedule)
{
  if (schedule == NULL)
    return;
  g_free (schedule->beta);
  g_free (schedule->timestep);
  g_free (schedule);
}

/* Given β_1..β_T and ᾱ_1..ᾱ_T (entry 0 is set here), fill every derived
 * table.  Ho et al. 2020, eqs. 4, 6, 7. */
static void
schedule_derive (DdpmSchedule *s)
{
  const int T = s->T;

  s->beta[0] = 0.0;
  s->alpha_bar[0] = 1.0;
  for (int t = 0; t <= T; t++)
    {
      double ab = s->alpha_bar[t];

      /* α_t from the ratio, not 1 − β_t: after respacing β' can be within
       * 1e-9 of 1 and 1 − β' would keep only a few digits of α'. */
      s->alpha[t] = t > 0 ? ab / s->alpha_bar[t - 1] : 1.0;
      s->sqrt_alpha_bar[t] = sqrt (ab);
      s->sqrt_one_minus_alpha_bar[t] = sqrt (1.0 - ab);
      s->sqrt_recip_alpha_bar[t] = 1.0 / sqrt (ab);
      s->sqrt_recipm1_alpha_bar[t] = sqrt (1.0 / ab - 1.0);
      s->log_beta[t] = t > 0 ? log (s->beta[t]) : -INFINITY;
    }

  s->posterior_variance[0] = 0.0;
  s->posterior_mean_coef_x0[0] = 1.0;
  s->posterior_mean_coef_xt[0] = 0.0;
  for (int t = 1; t <= T; t++)
    {
      double ab = s->alpha_bar[t], ab_prev = s->alpha_bar[t - 1];

      s->posterior_variance[t] = s->beta[t] * (1.0 - ab_prev) / (1.0 - ab);
      s->posterior_mean_coef_x0[t] = sqrt (ab_prev) * s->beta[t] / (1.0 - ab);
      s->posterior_mean_coef_xt[t] = sqrt (s->alpha[t]) * (1.0 - ab_prev) / (1.0 - ab);
    }

  /* β̃_1 = 0 (x_0 is known exactly given x_1 and x_0), so its log is −∞;
   * the reference code uses β̃_2 there.  With T = 1 there is no β̃_2 and we
   * fall back on β_1. */
  double log_first = T >= 2 ? log (s->posterior_variance[2]) : log (s->beta[1]);
  s->posterior_log_variance_clipped[0] = log_first;
  s->posterior_log_variance_clipped[1] = log_first;
  for (int t = 2; t <= T; t++)
    s->posterior_log_variance_clipped[t] = log (s->posterior_variance[t]);
}

static gboolean
check_T (int T, GError **error)
{
  if (T < 1 || T > DDPM_T_MAX)
    {
      g_set_error (error, DDPM_ERROR, DDPM_ERROR_INVALID_ARGUMENT,
                   _("The number of timesteps must be between 1 and %d, not %d"),
                   DDPM_T_MAX, T);
      return FALSE;
    }
  return TRUE;
}

/* np.linspace(a, b, n)[i] */
static double
linspace (double a, double b, int n, int i)
{
  return n > 1 ? a + (b - a) * i / (n - 1) : a;
}

/* β_1..β_T of a named schedule into beta[1..T]. */
static void
named_betas (double *beta, DdpmScheduleKind kind, int T)
{
  /* The β endpoints are those of the T = 1000 originals; scaling them by
   * 1000/T keeps ᾱ_T near the same value for any T (improved DDPM,
   * get_named_beta_schedule). */
  const double scale = 1000.0 / T;

  for (int t = 1; t <= T; t++)
    {
      double b = 0.0;

      switch (kind)
        {
        case DDPM_SCHEDULE_LINEAR:
          b = linspace (scale * 1e-4, scale * 0.02, T, t - 1);
          break;
        case DDPM_SCHEDULE_SCALED_LINEAR:
          b = linspace (sqrt (scale * 0.00085), sqrt (scale * 0.012), T, t - 1);
          b = b * b;
          break;
        case DDPM_SCHEDULE_SIGMOID:
          {
            double x = linspace (-6.0, 6.0, T, t - 1);
            b = scale * (1e-4 + (0.02 - 1e-4) / (1.0 + exp (-x)));
          }
          break;
        case DDPM_SCHEDULE_COSINE:
          {
            /* Nichol & Dhariwal 2021, eq. 17: ᾱ(t) = f(t)/f(0),
             * f(t) = cos²((t/T + s)/(1 + s)·π/2), β_t = 1 − ᾱ(t)/ᾱ(t−1). */
            const double s = 0.008;
            double f_t = cos (((double) t / T + s) / (1.0 + s) * G_PI_2);
            double f_p = cos (((double) (t - 1) / T + s) / (1.0 + s) * G_PI_2);
            b = 1.0 - (f_t * f_t) / (f_p * f_p);
          }
          break;
        case DDPM_SCHEDULE_COUNT:
        default:
          g_assert_not_reached ();
        }
      beta[t] = MIN (b, BETA_MAX);
    }
}

DdpmSchedule *
ddpm_schedule_new (DdpmScheduleKind   kind,
                   int                T,
                   GError           **error)
{
  if (kind < 0 || kind >= DDPM_SCHEDULE_COUNT)
    {
      g_set_error (error, DDPM_ERROR, DDPM_ERROR_INVALID_ARGUMENT,
                   _("Unknown schedule kind %d"), (int) kind);
      return NULL;
    }
  if (!check_T (T, error))
    return NULL;

  DdpmSchedule *s = schedule_alloc (kind, T, T);

  named_betas (s->beta, kind, T);
  s->alpha_bar[0] = 1.0;
  for (int t = 1; t <= T; t++)
    {
      s->alpha_bar[t] = s->alpha_bar[t - 1] * (1.0 - s->beta[t]);
      s->timestep[t] = t;
    }
  schedule_derive (s);
  return s;
}

DdpmSchedule *
ddpm_schedule_new_from_alpha_bar (DdpmScheduleKind   kind,
                                  const double      *alpha_bar,
                                  const int         *timestep,
                                  int                T,
                                  int                T_base,
                                  GError           **error)
{
  g_return_val_if_fail (alpha_bar != NULL, NULL);
  if (!check_T (T, error))
    return NULL;

  for (int t = 1; t <= T; t++)
    {
      double prev = t > 1 ? alpha_bar[t - 1] : 1.0;

      if (!(alpha_bar[t] > 0.0 && alpha_bar[t] < prev))
        {
          g_set_error (error, DDPM_ERROR, DDPM_ERROR_INVALID_ARGUMENT,
                       _("ᾱ must decrease strictly within (0, 1): ᾱ_%d = %g "
                         "after %g"), t, alpha_bar[t], prev);
          return NULL;
        }
    }

  DdpmSchedule *s = schedule_alloc (kind, T, T_base);

  s->alpha_bar[0] = 1.0;
  for (int t = 1; t <= T; t++)
    {
      /* ᾱ is stored as given (not re-multiplied) so that a respaced chain
       * hits the base ᾱ exactly. */
      s->alpha_bar[t] = alpha_bar[t];
      s->beta[t] = 1.0 - alpha_bar[t] / s->alpha_bar[t - 1];
      s->timestep[t] = timestep ? timestep[t] : t;
    }
  schedule_derive (s);
  return s;
}

gboolean
ddpm_spacing_timesteps (int           *out,
                        int            t_max,
                        int            n_steps,
                        DdpmSpacing    spacing,
                        GError       **error)
{
  if (n_steps < 1 || n_steps > t_max)
    {
      g_set_error (error, DDPM_ERROR, DDPM_ERROR_INVALID_ARGUMENT,
                   _("Cannot run %d steps between t = 1 and t = %d: "
                     "choose between 1 and %d steps"), n_steps, t_max, MAX (t_max, 1));
      return FALSE;
    }

  out[0] = 0;
  for (int i = 1; i <= n_steps; i++)
    {
      switch (spacing)
        {
        case DDPM_SPACING_TRAILING:
          /* step t_max/N ≥ 1, so rounding keeps the sequence increasing */
          out[i] = (int) llround ((double) i * t_max / n_steps);
          break;
        case DDPM_SPACING_LEADING:
          out[i] = 1 + (i - 1) * (t_max / n_steps);
          break;
        case DDPM_SPACING_LINSPACE:
          out[i] = n_steps == 1 ? t_max
                   : (int) llround (linspace (1.0, t_max, n_steps, i - 1));
          break;
        case DDPM_SPACING_KARRAS:
          g_set_error (error, DDPM_ERROR, DDPM_ERROR_INVALID_ARGUMENT,
                       "Karras spacing depends on the noise schedule: use "
                       "ddpm_spacing_karras_timesteps");
          return FALSE;
        case DDPM_SPACING_COUNT:
        default:
          g_set_error (error, DDPM_ERROR, DDPM_ERROR_INVALID_ARGUMENT,
                       _("Unknown timestep spacing %d"), (int) spacing);
          return FALSE;
        }
      g_assert (out[i] > out[i - 1] && out[i] <= t_max);
    }
  return TRUE;
}

DdpmSchedule *
ddpm_schedule_respace (const DdpmSchedule  *base,
                       int                  t_max,
                       int                  n_steps,
                       DdpmSpacing          spacing,
                       GError             **error)
{
  g_return_val_if_fail (base != NULL, NULL);
  if (t_max < 1 || t_max > base->T)
    {
      g_set_error (error, DDPM_ERROR, DDPM_ERROR_INVALID_ARGUMENT,
                   _("The starting timestep must be between 1 and %d, not %d"),
                   base->T, t_max);
      return NULL;
    }

  int *kept = g_new (int, n_steps + 1);
  double *alpha_bar = g_new (double, n_steps + 1);
  int *timestep = g_new (int, n_steps + 1);
  DdpmSchedule *s = NULL;

  if (spacing == DDPM_SPACING_KARRAS
      ? ddpm_spacing_karras_timesteps (kept, base, t_max, n_steps, error)
      : ddpm_spacing_timesteps (kept, t_max, n_steps, spacing, error))
    {
      for (int i = 0; i <= n_steps; i++)
        {
          alpha_bar[i] = base->alpha_bar[kept[i]];
          timestep[i] = base->timestep[kept[i]];
        }
      s = ddpm_schedule_new_from_alpha_bar (base->kind, alpha_bar, timestep,
                                            n_steps, base->T_base, error);
    }
  g_free (kept);
  g_free (alpha_bar);
  g_free (timestep);
  return s;
}
