/* progress.c: progress lines and Ctrl-C for the long-running commands.
 *
 * On a terminal, one line rewritten in place; otherwise (a log file, a
 * pipe) a plain line every 10 units or 2 seconds and at the end.  SIGINT
 * only raises a flag, which the progress callback turns into a cancel, so
 * the engine stops at a safe point (a training run writes its checkpoint).
 */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <unistd.h>

#include "cli.h"

static volatile sig_atomic_t interrupted = 0;

static void
on_sigint (int signum)
{
  interrupted = 1;
}

void
cli_catch_interrupt (void)
{
  struct sigaction action = { 0 };

  action.sa_handler = on_sigint;
  sigemptyset (&action.sa_mask);
  sigaction (SIGINT, &action, NULL);
}

gboolean
cli_was_interrupted (void)
{
  return interrupted != 0;
}

void
cli_format_duration (char *buf, gsize size, double seconds)
{
  if (!isfinite (seconds) || seconds < 0)
    g_snprintf (buf, size, "?");
  else if (seconds < 3600)
    g_snprintf (buf, size, "%d:%02d", (int) seconds / 60, (int) seconds % 60);
  else
    g_snprintf (buf, size, "%d:%02d:%02d", (int) seconds / 3600,
                ((int) seconds / 60) % 60, (int) seconds % 60);
}

void
cli_progress_init (CliProgress *progress, const char *unit)
{
  progress->unit = unit;
  progress->tty = isatty (STDERR_FILENO);
  progress->last_print_us = 0;
  progress->last_step = 0;
}

gboolean
cli_progress_report (const DdpmProgress *p, gpointer user_data)
{
  CliProgress *state = user_data;
  gint64 now = g_get_monotonic_time ();
  gboolean last = p->step == p->n_steps;
  char eta[32], loss[32] = "";

  cli_format_duration (eta, sizeof eta, p->remaining);
  if (!isnan (p->loss))
    g_snprintf (loss, sizeof loss, "  loss %.4f", p->loss);
  if (state->tty)
    {
      fprintf (stderr, "\r%s %d/%d%s  %.2f %s/s  ETA %s   ", state->unit,
               p->step, p->n_steps, loss, p->per_second, state->unit, eta);
      if (last)
        fputc ('\n', stderr);
      fflush (stderr);
    }
  else if (last || p->step - state->last_step >= 10
           || now - state->last_print_us >= 2 * G_USEC_PER_SEC)
    {
      fprintf (stderr, "%s %d/%d%s  %.2f %s/s  ETA %s\n", state->unit,
               p->step, p->n_steps, loss, p->per_second, state->unit, eta);
      state->last_step = p->step;
      state->last_print_us = now;
    }
  return !cli_was_interrupted ();
}
