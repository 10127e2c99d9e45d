/* ui-test.c: see ui-test.h.  Every step runs from a timeout of the
 * dialog's own main loop, so the plan line has been updated (it follows
 * the config's notify signal synchronously) and the dialog drawn. */
#include "config.h"

#include <libgimp/gimpui.h>

#include "ui-test.h"

typedef struct
{
  GtkWidget           *dialog;
  GtkWidget           *plan;
  GimpProcedureConfig *config;
  gchar               *name;
  GFile               *model;   /* as the dialog opened */
  gint                 step;
} UiTest;

static void
record (UiTest *t)
{
  const gchar *dir = g_getenv ("DDPM_UI3_OUT");
  GtkWidget *ok = gtk_dialog_get_widget_for_response (GTK_DIALOG (t->dialog),
                                                      GTK_RESPONSE_OK);
  gchar *path = g_build_filename (dir, "report.txt", NULL);
  gchar *png = g_strdup_printf ("%s/%s-%d.png", dir, t->name, t->step);
  GtkAllocation a;
  cairo_surface_t *surface;
  cairo_t *cr;
  FILE *f;

  f = fopen (path, "a");
  if (f != NULL)
    {
      fprintf (f, "%s %d ok=%d plan=%s\n", t->name, t->step,
               gtk_widget_get_sensitive (ok),
               gtk_label_get_text (GTK_LABEL (t->plan)));
      fclose (f);
    }
  /* Drawn by GTK itself, independent of what the X server shows. */
  gtk_widget_get_allocation (t->dialog, &a);
  surface = cairo_image_surface_create (CAIRO_FORMAT_ARGB32, a.width, a.height);
  cr = cairo_create (surface);
  gtk_widget_draw (t->dialog, cr);
  cairo_destroy (cr);
  cairo_surface_write_to_png (surface, png);
  cairo_surface_destroy (surface);
  g_free (png);
  g_free (path);
}

static gboolean
step (gpointer data)
{
  UiTest *t = data;

  record (t);
  switch (t->step++)
    {
    case 0:
      if (g_object_class_find_property (G_OBJECT_GET_CLASS (t->config), "strength"))
        g_object_set (t->config, "strength", 0.25, "steps", 10, NULL);
      else
        g_object_set (t->config, "steps", 10, NULL);
      return G_SOURCE_CONTINUE;
    case 1:
      {
        GFile *bad = g_file_new_for_path (g_getenv ("DDPM_UI3_BAD_MODEL"));

        g_object_set (t->config, "model", bad, NULL);
        g_object_unref (bad);
      }
      return G_SOURCE_CONTINUE;
    case 2:
      g_object_set (t->config, "model", t->model, NULL);
      return G_SOURCE_CONTINUE;
    default:
      gtk_dialog_response (GTK_DIALOG (t->dialog), GTK_RESPONSE_OK);
      g_clear_object (&t->model);
      g_free (t->name);
      g_free (t);
      return G_SOURCE_REMOVE;
    }
}

void
ui_test_attach (GtkWidget           *dialog,
                GtkWidget           *plan,
                GimpProcedureConfig *config,
                const gchar         *name)
{
  UiTest *t = g_new0 (UiTest, 1);

  t->dialog = dialog;
  t->plan = plan;
  t->config = config;
  t->name = g_strdup (name);
  g_object_get (config, "model", &t->model, NULL);
  g_timeout_add (1500, step, t);
}
