/* plugin-gimp3.h: what the GIMP 3.0 glue's files (plugin/gimp3) share:
 * each procedure's registration and run function, and the GIMP side of a
 * render (the drawable's region through GEGL buffers, shadow buffer,
 * undo, progress).  The procedures' values, plans, jobs and pixel
 * conversion are the core's (plugin-core.h), shared with GIMP 2.10.
 */
#ifndef DDPM_PLUGIN_GIMP3_H
#define DDPM_PLUGIN_GIMP3_H

#include "config.h"

#include <glib/gi18n.h>
#include <libgimp/gimp.h>
#include <libgimp/gimpui.h>

#include "ddpm.h"
#include "plugin-core.h"

G_BEGIN_DECLS

/* ------------------------------------------------------------- procedures */

/* Each procedure's file makes its GimpProcedure (arguments with the
 * 2.10 plug-in's names, ranges and defaults, menu label, Filters ▸
 * Diffusion) for the GimpPlugIn's create_procedure. */
GimpProcedure *plugin_renoise_create  (GimpPlugIn  *plug_in,
                                       gboolean     generate);
GimpProcedure *plugin_denoise_create  (GimpPlugIn  *plug_in);
GimpProcedure *plugin_train_create    (GimpPlugIn  *plug_in);

/* What every procedure shares (renoise.c): image types, sensitivity,
 * menu label and path (Filters ▸ Diffusion), documentation. */
void           plugin_procedure_common (GimpProcedure *procedure,
                                        const gchar   *label,
                                        const gchar   *blurb,
                                        const gchar   *help);
/* The rendering procedures' arguments: "model" (a GFile, none = the
 * default model), and "steps", "seed" (int, 0..G_MAXINT), "sampler" (a
 * GimpChoice) with the aux boolean "random-seed". */
void           plugin_add_model_argument     (GimpProcedure *procedure);
void           plugin_add_sampling_arguments (GimpProcedure *procedure,
                                              gint           default_steps,
                                              gint           default_sampler);

/* The sampler as a GimpChoice: nicks "ddpm", "ddim" and "dpm++2m" (the
 * CLI's --sampler names), ids DdpmSamplerKind. */
GimpChoice    *plugin_sampler_choice  (void);

/* The precision as a GimpChoice: nicks "auto", "fp32", "bf16" (the CLI's
 * --precision names), ids DdpmPrecision (plugin_precision_choices). */
GimpChoice    *plugin_precision_choice (void);

/* The one drawable a procedure works on, or NULL with the caller's error
 * when there is not exactly one. */
GimpDrawable  *plugin_single_drawable (GimpDrawable **drawables,
                                       GError       **error);

/* A GFile argument as a values path: NULL, or a GFile without a local
 * path (Script-Fu's ""), is "" (the default model).  FALSE (error set)
 * when it does not fit. */
gboolean       plugin_file_to_path    (GFile        *file,
                                       gchar        *dest,
                                       gsize         size,
                                       const gchar  *name,
                                       GError      **error);

/* ----------------------------------------------------------------- render */

/* The core's render job on a drawable, the one render function of both
 * the dialogs' previews and the apply: the selection's bounds (preview:
 * its visible area), with the core's context margin, read through GEGL
 * at float precision, the job run.  preview NULL: with GIMP's progress
 * bar, the result written into the drawable's shadow buffer and merged
 * through the selection as one undo step; else drawn into the
 * GimpDrawablePreview (which shows it through the selection).  On
 * failure FALSE with a translated message, the drawable untouched. */
gboolean plugin_render_drawable (GimpDrawable          *drawable,
                                 const PluginRenderJob *job,
                                 GimpPreview           *preview,
                                 GError               **error);

/* The noise level of the drawable's selected part on the [0, 1] scale
 * (Donoho's estimator on its own colour channels); 0 when there is
 * nothing (or too little) to look at. */
gboolean plugin_estimate_drawable (GimpDrawable *drawable,
                                   gdouble      *sigma,
                                   GError      **error);

/* Train the core's train job on the drawable's selected part. */
gboolean plugin_train_drawable  (GimpDrawable            *drawable,
                                 const PluginTrainValues *vals,
                                 GError                 **error);

/* The core's PluginProgressFunc on GIMP's progress bar.  It never
 * cancels: GIMP's Cancel ends the plug-in, the shadow never merged. */
gboolean plugin_gimp_progress   (const gchar *text,
                                 gdouble      fraction,
                                 gboolean     begin,
                                 gpointer     user_data);

G_END_DECLS

#endif /* DDPM_PLUGIN_GIMP3_H */
