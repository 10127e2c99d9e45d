/* progress.c: the engine's progress (a DdpmProgress after each step) in
 * the words a front end shows: "Denoising: step 12 of 50", "Training:
 * step 300 of 1000, loss 0.031, 2 min left".  Each update costs the front
 * end something (GIMP: a round trip to the main process), so steps are
 * shown at most ten times a second, the last one always.
 */
#include "core-private.h"

/* "2 min left", "40 s left", "1 h 5 min left": a training ETA. */
static gchar *
format_remaining (double seconds)
{
  int s = (int) (seconds + 0.5);

  if (s < 60)
    return g_strdup_printf (g_dngettext (GETTEXT_PACKAGE, "%d s left",
                                         "%d s left", s), s);
  if (s < 3600)
    {
      int m = (s + 30) / 60;
      return g_strdup_printf (g_dngettext (GETTEXT_PACKAGE, "%d min left",
                                           "%d min left", m), m);
    }
  return g_strdup_printf (_("%d h %d min left"), s / 3600, (s % 3600) / 60);
}

void
plugin_progress_begin (PluginProgress     *state,
                       PluginProgressFunc  func,
                       gpointer            user_data,
                       gboolean            training,
                       const gchar        *title)
{
  state->func = func;
  state->user_data = user_data;
  state->training = training;
  state->last_update = 0;
  /* Nothing has started yet that a cancel could stop: see plugin-core.h. */
  func (title, 0.0, TRUE, user_data);
}

gboolean
plugin_progress_engine (const DdpmProgress *progress,
                        gpointer            user_data)
{
  PluginProgress *state = user_data;
  gint64 now = g_get_monotonic_time ();
  gchar *text;
  gboolean go_on;

  if (progress->step < progress->n_steps
      && now - state->last_update < G_USEC_PER_SEC / 10)
    return TRUE;
  state->last_update = now;

  if (state->training)
    {
      gchar *left = format_remaining (progress->remaining);

      text = g_strdup_printf (g_dngettext (GETTEXT_PACKAGE,
                                           "Training: step %d of %d, loss %.3f, %s",
                                           "Training: step %d of %d, loss %.3f, %s",
                                           progress->n_steps),
                              progress->step, progress->n_steps,
                              progress->loss, left);
      g_free (left);
    }
  else
    text = g_strdup_printf (g_dngettext (GETTEXT_PACKAGE,
                                         "Denoising: step %d of %d",
                                         "Denoising: step %d of %d",
                                         progress->n_steps),
                            progress->step, progress->n_steps);

  go_on = state->func (text,
                       (gdouble) progress->step / MAX (progress->n_steps, 1),
                       FALSE, state->user_data);
  g_free (text);
  return go_on;
}
