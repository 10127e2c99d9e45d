/* ui-test.c: the hook through which tests/ui3 drives a shown dialog, in
 * the plug-in's test build only (gimp-ddpm-uitest, -DPLUGIN_UI_TEST).
 *
 * Once the dialog is shown, a step runs every STEP_MS from the dialog's
 * own main loop (so the plan line has followed the config's notify and
 * a preview invalidated by the previous step has rendered: the render is
 * synchronous, 200 ms after the change).  Each step records into
 * $DDPM_UI3_OUT/report.txt a line "<procedure> <step> ok=<0|1>
 * plan=<text>" and facts as "<procedure> fact <key>=<value>", saves
 * screenshots <procedure>-<step>.png, and changes the config the way a
 * user would.  The hook observes and records: tests/ui3 asserts.
 *
 * The preview is checked by its pixels: with the preview's "update" off
 * GimpPreview draws the layer as it is; on again, the render draws its
 * result; the two snapshots of the preview area must differ.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include <libgimp/gimpui.h>

#include "plugin-core.h"
#include "ui-gtk3-private.h"

#define STEP_MS 1500

typedef struct
{
  UiDialog        *d;
  GFile           *model;     /* as the dialog opened */
  GFile           *output;    /* train: as the dialog opened */
  cairo_surface_t *original;  /* the preview area without the render */
  gint             step;
} UiTest;

static void
report (UiTest      *t,
        const gchar *format,
        ...) G_GNUC_PRINTF (2, 3);

static void
report (UiTest      *t,
        const gchar *format,
        ...)
{
  gchar *path = g_build_filename (g_getenv ("DDPM_UI3_OUT"), "report.txt",
                                  NULL);
  FILE *f = fopen (path, "a");
  va_list args;

  if (f != NULL)
    {
      va_start (args, format);
      vfprintf (f, format, args);
      va_end (args);
      fputc ('\n', f);
      fclose (f);
    }
  g_free (path);
}

/* A widget drawn by GTK itself, independent of what the X server shows. */
static cairo_surface_t *
snapshot (GtkWidget *widget)
{
  GtkAllocation a;
  cairo_surface_t *surface;
  cairo_t *cr;

  gtk_widget_get_allocation (widget, &a);
  surface = cairo_image_surface_create (CAIRO_FORMAT_ARGB32,
                                        MAX (a.width, 1), MAX (a.height, 1));
  cr = cairo_create (surface);
  gtk_widget_draw (widget, cr);
  cairo_destroy (cr);
  cairo_surface_flush (surface);
  return surface;
}

/* Pixels in which two snapshots of one widget differ by more than 2 in a
 * channel; *n the pixels compared. */
static gint
pixels_differing (cairo_surface_t *a,
                  cairo_surface_t *b,
                  gint            *n)
{
  gint w = MIN (cairo_image_surface_get_width (a), cairo_image_surface_get_width (b));
  gint h = MIN (cairo_image_surface_get_height (a), cairo_image_surface_get_height (b));
  gint differing = 0;

  for (gint y = 0; y < h; y++)
    {
      const guchar *pa = cairo_image_surface_get_data (a)
                         + y * cairo_image_surface_get_stride (a);
      const guchar *pb = cairo_image_surface_get_data (b)
                         + y * cairo_image_surface_get_stride (b);

      for (gint x = 0; x < w * 4; x += 4)
        for (gint c = 0; c < 4; c++)
          if (ABS (pa[x + c] - pb[x + c]) > 2)
            {
              differing++;
              break;
            }
    }
  *n = w * h;
  return differing;
}

/* A number as C writes it, whatever the session's language. */
static void
report_double (UiTest      *t,
               const gchar *key,
               gdouble      value)
{
  gchar buf[G_ASCII_DTOSTR_BUF_SIZE];

  report (t, "%s fact %s=%s", t->d->name, key,
          g_ascii_formatd (buf, sizeof buf, "%.6f", value));
}

static void
record (UiTest *t)
{
  UiDialog *d = t->d;
  GtkWidget *ok = gtk_dialog_get_widget_for_response (GTK_DIALOG (d->dialog),
                                                      GTK_RESPONSE_OK);
  gchar *png = g_strdup_printf ("%s/%s-%d.png", g_getenv ("DDPM_UI3_OUT"),
                                d->name, t->step);
  cairo_surface_t *surface;

  report (t, "%s %d ok=%d plan=%s", d->name, t->step,
          gtk_widget_get_sensitive (ok),
          gtk_label_get_text (GTK_LABEL (d->plan)));
  surface = snapshot (d->dialog);
  cairo_surface_write_to_png (surface, png);
  cairo_surface_destroy (surface);
  g_free (png);
}

static GtkWidget *
dialog_widget (UiDialog    *d,
               const gchar *id)
{
  return gimp_procedure_dialog_get_widget (GIMP_PROCEDURE_DIALOG (d->dialog),
                                           id, G_TYPE_NONE);
}

static void
set_file (GimpProcedureConfig *config,
          const gchar         *name,
          const gchar         *path)
{
  GFile *file = path ? g_file_new_for_path (path) : NULL;

  g_object_set (config, name, file, NULL);
  g_clear_object (&file);
}

static void
test_free (UiTest *t)
{
  g_clear_object (&t->model);
  g_clear_object (&t->output);
  g_clear_pointer (&t->original, cairo_surface_destroy);
  g_free (t);
}

/* Renoise, generate, denoise. */
static gboolean
filter_step (gpointer data)
{
  UiTest *t = data;
  UiDialog *d = t->d;
  GimpPreview *preview = GIMP_PREVIEW (d->preview);

  record (t);
  switch (t->step++)
    {
    case 0:
      {
        GtkWidget *precision = dialog_widget (d, "precision");
        gchar *nick = NULL;

        g_object_get (d->config, "precision", &nick, NULL);
        report (t, "%s fact preview=%s", d->name, G_OBJECT_TYPE_NAME (preview));
        report (t, "%s fact precision_widget=%s", d->name,
                precision ? G_OBJECT_TYPE_NAME (precision) : "none");
        report (t, "%s fact precision_initial=%s", d->name, nick);
        report (t, "%s fact renders_initial=%d", d->name, d->n_renders);
        g_free (nick);
        if (d->kind == PLUGIN_RENDER_DENOISE)
          {
            gboolean estimate;
            gdouble levels, sigma;

            g_object_get (d->config, "estimate", &estimate,
                          "sigma-levels", &levels, "sigma", &sigma, NULL);
            report (t, "%s fact estimate_initial=%d", d->name, estimate);
            report_double (t, "levels_initial", levels);
            report_double (t, "sigma_initial", sigma);
            report (t, "%s fact levels_sensitive_initial=%d", d->name,
                    gtk_widget_is_sensitive (dialog_widget (d, "sigma-levels")));
          }
        /* The layer as it is, drawn by GimpPreview itself. */
        gimp_preview_set_update (preview, FALSE);
      }
      return G_SOURCE_CONTINUE;
    case 1:
      t->original = snapshot (gimp_preview_get_area (preview));
      gimp_preview_set_update (preview, TRUE);  /* renders again */
      return G_SOURCE_CONTINUE;
    case 2:
      {
        cairo_surface_t *rendered = snapshot (gimp_preview_get_area (preview));
        gint n = 0, changed = pixels_differing (t->original, rendered, &n);

        report (t, "%s fact preview_changed=%d", d->name, changed);
        report (t, "%s fact preview_pixels=%d", d->name, n);
        report (t, "%s fact preview_error=%s", d->name,
                gtk_widget_get_visible (d->preview_error)
                ? gtk_label_get_text (GTK_LABEL (d->preview_error)) : "");
        report (t, "%s fact renders=%d", d->name, d->n_renders);
        cairo_surface_destroy (rendered);
      }
      if (d->kind == PLUGIN_RENDER_DENOISE)
        {
          gdouble sigma, levels;

          /* "Estimate" off: σ is what the levels show (the estimate). */
          g_object_set (d->config, "estimate", FALSE, NULL);
          g_object_get (d->config, "sigma", &sigma, "sigma-levels", &levels,
                        NULL);
          report_double (t, "sigma_manual", sigma);
          report_double (t, "levels_manual", levels);
          report (t, "%s fact levels_sensitive_manual=%d", d->name,
                  gtk_widget_is_sensitive (dialog_widget (d, "sigma-levels")));
          /* 25 levels typed: σ = 25/255 on the procedure's scale. */
          g_object_set (d->config, "sigma-levels", 25.0, "steps", 10, NULL);
          g_object_get (d->config, "sigma", &sigma, NULL);
          report_double (t, "sigma_25", sigma);
        }
      else if (d->kind == PLUGIN_RENDER_RENOISE)
        g_object_set (d->config, "strength", 0.25, "steps", 10, NULL);
      else
        g_object_set (d->config, "steps", 10, NULL);
      /* fp32 from the precision combo's choice, kept for Repeat. */
      g_object_set (d->config, "precision", "fp32", NULL);
      return G_SOURCE_CONTINUE;
    case 3:
      set_file (d->config, "model", g_getenv ("DDPM_UI3_BAD_MODEL"));
      return G_SOURCE_CONTINUE;
    case 4:
      g_object_set (d->config, "model", t->model, NULL);
      return G_SOURCE_CONTINUE;
    default:
      gtk_dialog_response (GTK_DIALOG (d->dialog), GTK_RESPONSE_OK);
      test_free (t);
      return G_SOURCE_REMOVE;
    }
}

static gboolean
train_step (gpointer data)
{
  UiTest *t = data;
  UiDialog *d = t->d;

  record (t);
  switch (t->step++)
    {
    case 0:
      {
        gchar *path = t->output ? g_file_get_path (t->output) : NULL;

        report (t, "%s fact output=%s", d->name, path ? path : "");
        g_free (path);
      }
      g_object_set (d->config, "preset", "cifar", NULL);
      return G_SOURCE_CONTINUE;
    case 1:
      set_file (d->config, "output", NULL);
      return G_SOURCE_CONTINUE;
    case 2:
      g_object_set (d->config, "output", t->output, "resume-enabled", TRUE,
                    NULL);
      return G_SOURCE_CONTINUE;
    case 3:
      report (t, "%s fact preset_sensitive_resuming=%d", d->name,
              gtk_widget_is_sensitive (dialog_widget (d, "preset")));
      report (t, "%s fact resume_sensitive_resuming=%d", d->name,
              gtk_widget_is_sensitive (dialog_widget (d, "resume")));
      g_object_set (d->config, "resume-enabled", FALSE, "preset", "tiny",
                    NULL);
      return G_SOURCE_CONTINUE;
    default:
      report (t, "%s fact preset_sensitive=%d", d->name,
              gtk_widget_is_sensitive (dialog_widget (d, "preset")));
      /* Cancel: training is the gimp3 suite's, not the dialog's. */
      gtk_dialog_response (GTK_DIALOG (d->dialog), GTK_RESPONSE_CANCEL);
      test_free (t);
      return G_SOURCE_REMOVE;
    }
}

void
ui_test_attach (UiDialog *d)
{
  UiTest *t = g_new0 (UiTest, 1);

  t->d = d;
  if (d->kind < 0)
    {
      g_object_get (d->config, "output", &t->output, NULL);
      g_timeout_add (STEP_MS, train_step, t);
    }
  else
    {
      g_object_get (d->config, "model", &t->model, NULL);
      g_timeout_add (STEP_MS, filter_step, t);
    }
}
