/* plugin.h: what the plug-in (plugin/) and its dialogs (ui/) share: the
 * procedure names, the values structs that gimp_get_data/gimp_set_data
 * remember between runs, and the one render function that serves both the
 * dialog's preview and the real apply (GIMP 2.10 plug-ins/common style).
 */
#ifndef DDPM_PLUGIN_H
#define DDPM_PLUGIN_H

#include "config.h"

#include <libintl.h>
#include <glib/gi18n.h>
#include <libgimp/gimp.h>
#include <libgimp/gimpui.h>

G_BEGIN_DECLS

#define PLUG_IN_BINARY "gimp-ddpm"
#define PLUG_IN_ROLE   "gimp-ddpm"
#define RENOISE_PROC   "plug-in-ddpm-renoise"
#define GENERATE_PROC  "plug-in-ddpm-generate"
#define TRAIN_PROC     "plug-in-ddpm-train"
#define DENOISE_PROC   "plug-in-ddpm-denoise"   /* reserved for a later issue; don't register now */

/* GIMP's own plug-ins get this from libgimp/stdplugins-intl.h, which is not
 * installed: bind our catalogue (po/) and make it the default domain. */
#define INIT_I18N()                                                     \
  G_STMT_START {                                                        \
    bindtextdomain (GETTEXT_PACKAGE, plugin_locale_dir ());             \
    bind_textdomain_codeset (GETTEXT_PACKAGE, "UTF-8");                 \
    textdomain (GETTEXT_PACKAGE);                                       \
  } G_STMT_END

/* Where the translations are: <user data dir>/gimp-ddpm/locale when
 * tools/install-user put them there, else the installed LOCALEDIR. */
const gchar *plugin_locale_dir (void);

typedef struct
{
  gchar    model[1024];   /* a .safetensors file; "" = the default model */
  gdouble  strength;      /* 0..1; generate ignores it (always 1) */
  gint     steps;         /* denoising steps actually run */
  guint32  seed;
  gboolean random_seed;   /* the dialog draws a new seed on each run */
  gint     sampler;       /* DdpmSamplerKind: 0 = ddpm, 1 = ddim */
} PluginRenoiseValues;

typedef struct
{
  gchar    output[1024];  /* the model file to write */
  gchar    preset[32];    /* "tiny", "small", "cifar" */
  gint     iterations;    /* optimizer steps in all (when resuming too) */
  gint     patch_size;    /* training patch side, the model's tile size */
  guint32  seed;
  gchar    resume[1024];  /* a checkpoint to continue; "" = fresh */
} PluginTrainValues;

/* ONE render function serving both preview and apply (GIMP 2.10
 * plug-ins/common style).  preview == NULL: apply to the drawable through
 * the shadow buffer with progress, as one undo step; else render into the
 * GimpPreview (a GimpDrawablePreview) region only.  generate = TRUE:
 * strength 1.  On failure returns FALSE with a translated message in error
 * and leaves the drawable untouched. */
gboolean plugin_render (gint32                     drawable_id,
                        const PluginRenoiseValues *vals,
                        gboolean                   generate,
                        GimpPreview               *preview,
                        GError                   **error);

/* The model file that vals->model == "" stands for: the first of
 * $DDPM_MODEL_DIR/default.safetensors, <user data dir>/gimp-ddpm/models/
 * default.safetensors and the installed default that exists; if none
 * does, the installed path (so that an error names it).  Newly allocated.
 * For the dialog's model chooser too. */
gchar   *plugin_default_model_path (void);

/* Where the train dialog proposes to write a new model:
 * <user data dir>/gimp-ddpm/models/<name>.safetensors.  Newly allocated. */
gchar   *plugin_user_model_path    (const gchar *name);

G_END_DECLS

#endif /* DDPM_PLUGIN_H */
