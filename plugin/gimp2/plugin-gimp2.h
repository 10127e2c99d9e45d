/* plugin-gimp2.h: what the GIMP 2.10 glue's files (plugin/gimp2) share:
 * each procedure's registration and run, and the GIMP side of a render
 * (the drawable's region, shadow buffer, undo, progress bar, preview).
 * The procedures' values, plans and jobs are the core's (plugin-core.h);
 * the dialogs are ui/gimp2's (ui.h).
 */
#ifndef DDPM_PLUGIN_GIMP2_H
#define DDPM_PLUGIN_GIMP2_H

#include "config.h"

#include <libintl.h>
#include <glib/gi18n.h>
#include <libgimp/gimp.h>
#include <libgimp/gimpui.h>

#include "ddpm.h"
#include "plugin-core.h"

G_BEGIN_DECLS

/* GIMP's own plug-ins get this from libgimp/stdplugins-intl.h, which is not
 * installed: bind our catalogue (po/) and make it the default domain. */
#define INIT_I18N()                                                     \
  G_STMT_START {                                                        \
    bindtextdomain (GETTEXT_PACKAGE, plugin_locale_dir ());             \
    bind_textdomain_codeset (GETTEXT_PACKAGE, "UTF-8");                 \
    textdomain (GETTEXT_PACKAGE);                                       \
  } G_STMT_END

/* ------------------------------------------------------------- procedures */

/* Each procedure's file (renoise.c, generate.c, denoise.c, train.c):
 * _query registers it and its menu item (under Filters ▸ Diffusion, whose
 * label main.c registers), _run runs it in `run_mode` with the PDB's
 * arguments; on failure the status says which kind of failure and error
 * why (translated).  main.c checked that there are at least the three
 * standard arguments (run mode, image, drawable). */
void              plugin_renoise_query  (void);
GimpPDBStatusType plugin_renoise_run    (GimpRunMode      run_mode,
                                         gint             nparams,
                                         const GimpParam *param,
                                         GError         **error);
void              plugin_generate_query (void);
GimpPDBStatusType plugin_generate_run   (GimpRunMode      run_mode,
                                         gint             nparams,
                                         const GimpParam *param,
                                         GError         **error);
void              plugin_denoise_query  (void);
GimpPDBStatusType plugin_denoise_run    (GimpRunMode      run_mode,
                                         gint             nparams,
                                         const GimpParam *param,
                                         GError         **error);
void              plugin_train_query    (void);
GimpPDBStatusType plugin_train_run      (GimpRunMode      run_mode,
                                         gint             nparams,
                                         const GimpParam *param,
                                         GError         **error);

/* What renoise and generate share (renoise.c): their run modes, starting
 * from `defaults`; generate takes no strength argument. */
GimpPDBStatusType
plugin_renoise_run_procedure (const gchar               *name,
                              gboolean                   generate,
                              const PluginRenoiseValues *defaults,
                              GimpRunMode                run_mode,
                              gint                       nparams,
                              const GimpParam           *param,
                              GError                   **error);

/* The rendering procedures' last argument: the engine's arithmetic
 * (DdpmPrecision; plugin_precision_choices). */
#define PLUGIN_PRECISION_PARAM_DEF                                      \
  { GIMP_PDB_INT32, "precision",                                        \
    "Arithmetic of the network { AUTO (0): bf16 where the CPU has "     \
    "AVX512_BF16, else fp32; FP32 (1); BF16 (2) }" }

/* nparams is what the procedure `name` takes (expected); else FALSE with
 * the error a non-interactive caller sees. */
gboolean plugin_check_nparams (const gchar *name,
                               gint         expected,
                               gint         nparams,
                               GError     **error);

/* ----------------------------------------------------------------- render */

/* The core's render job (plugin-core.h) on a drawable, serving both
 * preview and apply (GIMP 2.10 plug-ins/common style): preview == NULL
 * applies to the drawable through the shadow buffer with progress, as one
 * undo step; else it renders into the GimpPreview (a GimpDrawablePreview)
 * region only.  On failure returns FALSE with a translated message in
 * error and leaves the drawable untouched. */
gboolean plugin_render_drawable (gint32                 drawable_id,
                                 const PluginRenderJob *job,
                                 GimpPreview           *preview,
                                 GError               **error);

/* The region a run works on: the selection's bounds on the drawable, or
 * the preview's visible area; FALSE when it is empty (nothing to do). */
gboolean plugin_render_target   (gint32                 drawable_id,
                                 GimpPreview           *preview,
                                 GeglRectangle         *target);

/* The core's PluginProgressFunc on GIMP's progress bar.  It never
 * cancels: a Cancel in GIMP ends the plug-in process instead, so the
 * shadow buffer is never merged, and training has its last checkpoint on
 * disk. */
gboolean plugin_gimp_progress   (const gchar           *text,
                                 gdouble                fraction,
                                 gboolean               begin,
                                 gpointer               user_data);

G_END_DECLS

#endif /* DDPM_PLUGIN_GIMP2_H */
