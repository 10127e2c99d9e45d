/* ui-gtk3-private.h: what dialogs.c shares with its test hook (ui-test.c,
 * in the plug-in's test build only): the widgets of a shown dialog. */
#ifndef DDPM_UI_GTK3_PRIVATE_H
#define DDPM_UI_GTK3_PRIVATE_H

#include "ui-gtk3.h"

G_BEGIN_DECLS

typedef struct
{
  GtkWidget           *dialog;
  GtkWidget           *plan;            /* the plan line (a GtkLabel) */
  GtkWidget           *preview;         /* GimpDrawablePreview, or NULL */
  GtkWidget           *preview_error;   /* why the preview failed */
  GtkWidget           *params;          /* train: "1.2 million parameters" */
  GimpProcedureConfig *config;
  GimpDrawable        *drawable;
  const gchar         *name;            /* the procedure's */
  gint                 kind;            /* PluginRenderKind; -1: train */
  UiPreviewFunc        render;
  gpointer             render_data;
  gdouble              estimate;        /* denoise: the layer's σ */
  const gchar         *estimate_error;
  gboolean             syncing;         /* denoise: keeping σ in step */
  gint                 n_renders;       /* previews drawn without error */
} UiDialog;

/* The test build's hook (ui-test.c): drives the shown dialog. */
void ui_test_attach (UiDialog *d);

G_END_DECLS

#endif /* DDPM_UI_GTK3_PRIVATE_H */
