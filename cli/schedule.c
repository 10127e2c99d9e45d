/* schedule.c: `ddpm schedule`: print a noise schedule's tables, as a
 * readable table or as CSV, optionally respaced to fewer steps. */
#include <stdio.h>

#include "ddpm.h"
#include "cli.h"

/* The tables of p, one row per step t = 1..p->T: aligned columns under a
 * title line, or CSV with a header row. */
static void
print_schedule (const DdpmSchedule *p, gboolean respaced, gboolean csv)
{
  static const char *const header[] = {
    "t", "timestep", "beta", "alpha", "alpha_bar", "sqrt_alpha_bar",
    "sqrt_one_minus_alpha_bar", "posterior_variance",
    "posterior_log_variance_clipped", "posterior_mean_coef_x0",
    "posterior_mean_coef_xt",
  };

  if (!csv)
    printf ("# schedule %s, T = %d%s\n", ddpm_schedule_kind_name (p->kind), p->T_base,
            respaced ? ", respaced" : "");
  for (gsize i = 0; i < G_N_ELEMENTS (header); i++)
    printf (csv ? "%s%s" : "%s%-14s", i ? (csv ? "," : " ") : "", header[i]);
  printf ("\n");
  for (int t = 1; t <= p->T; t++)
    {
      const double row[] = {
        p->beta[t], p->alpha[t], p->alpha_bar[t], p->sqrt_alpha_bar[t],
        p->sqrt_one_minus_alpha_bar[t], p->posterior_variance[t],
        p->posterior_log_variance_clipped[t], p->posterior_mean_coef_x0[t],
        p->posterior_mean_coef_xt[t],
      };
      char buf[G_ASCII_DTOSTR_BUF_SIZE];

      printf (csv ? "%d,%d" : "%-14d %-14d", t, p->timestep[t]);
      for (gsize i = 0; i < G_N_ELEMENTS (row); i++)
        printf (csv ? ",%s" : " %-14s", cli_format_double (buf, row[i]));
      printf ("\n");
    }
}

int
cli_schedule (int argc, char **argv)
{
  DdpmTrainParams train_defaults;
  DdpmSampleParams sample_defaults;
  char *schedule_name = NULL, *spacing_name = NULL;
  int T, steps = 0;
  gboolean csv = FALSE;
  GOptionEntry entries[] = {
    { "schedule", 's', 0, G_OPTION_ARG_STRING, &schedule_name,
      "linear, cosine, scaled-linear or sigmoid (default linear)", "NAME" },
    { "timesteps", 'T', 0, G_OPTION_ARG_INT, &T,
      "number of diffusion steps T (default 1000)", "T" },
    { "steps", 'n', 0, G_OPTION_ARG_INT, &steps,
      "respace to this many sampling steps (default: no respacing)", "N" },
    { "spacing", 0, 0, G_OPTION_ARG_STRING, &spacing_name,
      "trailing, leading or linspace (default trailing)", "NAME" },
    { "csv", 0, 0, G_OPTION_ARG_NONE, &csv, "print CSV with a header row", NULL },
    { NULL }
  };
  GOptionContext *context = g_option_context_new ("- print a noise schedule");
  DdpmScheduleKind kind;
  DdpmSpacing spacing;
  DdpmSchedule *base = NULL, *s = NULL;
  GError *error = NULL;
  int status = CLI_EXIT_USAGE;

  /* The engine's defaults: the schedule `ddpm train` makes, respaced as
   * the samplers do. */
  ddpm_train_params_init (&train_defaults);
  ddpm_sample_params_init (&sample_defaults);
  kind = train_defaults.schedule;
  T = train_defaults.T;
  spacing = sample_defaults.spacing;

  g_option_context_add_main_entries (context, entries, NULL);
  if (!cli_parse (context, "schedule", &argc, &argv))
    goto out;
  if (argc > 1)
    {
      cli_fail ("schedule", CLI_EXIT_USAGE, "unexpected argument “%s”", argv[1]);
      goto out;
    }
  if ((schedule_name && !ddpm_schedule_kind_from_string (schedule_name, &kind, &error))
      || (spacing_name && !ddpm_spacing_from_string (spacing_name, &spacing, &error))
      || !(base = ddpm_schedule_new (kind, T, &error)))
    goto out;
  if (steps > 0)
    {
      if (!(s = ddpm_schedule_respace (base, T, steps, spacing, &error)))
        goto out;
    }
  else if (steps < 0)
    {
      cli_fail ("schedule", CLI_EXIT_USAGE, "--steps must be positive, not %d", steps);
      goto out;
    }
  print_schedule (s ? s : base, s != NULL, csv);
  status = CLI_EXIT_OK;

out:
  if (error)
    {
      status = cli_fail ("schedule", CLI_EXIT_USAGE, "%s", error->message);
      g_error_free (error);
    }
  ddpm_schedule_free (s);
  ddpm_schedule_free (base);
  g_option_context_free (context);
  g_free (schedule_name);
  g_free (spacing_name);
  return status;
}
