/* main.c: the GIMP 3.0 plug-in gimp-ddpm: a GimpPlugIn subclass that
 * registers the four Filters ▸ Diffusion procedures under the same names
 * as the GIMP 2.10 plug-in (plugin/gimp2), and binds our translations.
 */
#include "plugin-gimp3.h"

#include <libintl.h>

#define DDPM_TYPE_PLUG_IN (ddpm_plug_in_get_type ())
G_DECLARE_FINAL_TYPE (DdpmPlugIn, ddpm_plug_in, DDPM, PLUG_IN, GimpPlugIn)

struct _DdpmPlugIn
{
  GimpPlugIn parent_instance;
};

G_DEFINE_TYPE (DdpmPlugIn, ddpm_plug_in, GIMP_TYPE_PLUG_IN)

static GList *
ddpm_query_procedures (GimpPlugIn *plug_in)
{
  GList *list = NULL;

  list = g_list_append (list, g_strdup (RENOISE_PROC));
  list = g_list_append (list, g_strdup (GENERATE_PROC));
  list = g_list_append (list, g_strdup (DENOISE_PROC));
  list = g_list_append (list, g_strdup (TRAIN_PROC));
  return list;
}

static GimpProcedure *
ddpm_create_procedure (GimpPlugIn  *plug_in,
                       const gchar *name)
{
  if (g_strcmp0 (name, RENOISE_PROC) == 0)
    return plugin_renoise_create (plug_in, FALSE);
  if (g_strcmp0 (name, GENERATE_PROC) == 0)
    return plugin_renoise_create (plug_in, TRUE);
  if (g_strcmp0 (name, DENOISE_PROC) == 0)
    return plugin_denoise_create (plug_in);
  if (g_strcmp0 (name, TRAIN_PROC) == 0)
    return plugin_train_create (plug_in);
  return NULL;
}

/* Our own binding rather than GIMP's "catalogue under the plug-in's
 * folder": the same place as the 2.10 plug-in's (plugin_locale_dir:
 * tools/install-user's user data folder, else the installed LOCALEDIR).
 * libgimp calls this before create_procedure and before every run, so
 * labels, blurbs and messages all come translated. */
static gboolean
ddpm_set_i18n (GimpPlugIn   *plug_in,
               const gchar  *procedure_name,
               gchar       **gettext_domain,
               gchar       **catalog_dir)
{
  bindtextdomain (GETTEXT_PACKAGE, plugin_locale_dir ());
  bind_textdomain_codeset (GETTEXT_PACKAGE, "UTF-8");
  textdomain (GETTEXT_PACKAGE);
  return FALSE;
}

static void
ddpm_plug_in_class_init (DdpmPlugInClass *klass)
{
  GimpPlugInClass *plug_in_class = GIMP_PLUG_IN_CLASS (klass);

  plug_in_class->query_procedures = ddpm_query_procedures;
  plug_in_class->create_procedure = ddpm_create_procedure;
  plug_in_class->set_i18n = ddpm_set_i18n;
}

static void
ddpm_plug_in_init (DdpmPlugIn *self)
{
}

GimpChoice *
plugin_sampler_choice (void)
{
  return gimp_choice_new_with_values ("ddpm", DDPM_SAMPLER_DDPM,
                                      _("DDPM (ancestral, stochastic)"), NULL,
                                      "ddim", DDPM_SAMPLER_DDIM,
                                      _("DDIM (deterministic)"), NULL,
                                      "dpm++2m", DDPM_SAMPLER_DPM_2M,
                                      _("DPM-Solver++ (deterministic, 10–20 steps)"),
                                      NULL,
                                      NULL);
}

GimpChoice *
plugin_precision_choice (void)
{
  GimpChoice *choice = gimp_choice_new ();

  /* "auto" says what it means on this CPU (the dialog's combo). */
  for (gint i = 0; i < plugin_n_precision_choices; i++)
    {
      const PluginPrecisionChoice *c = &plugin_precision_choices[i];

      gimp_choice_add (choice, c->name, c->value,
                       c->value == DDPM_PRECISION_AUTO
                       ? plugin_precision_auto_label () : _(c->label),
                       NULL);
    }
  return choice;
}

GimpDrawable *
plugin_single_drawable (GimpDrawable **drawables,
                        GError       **error)
{
  gint n = 0;

  while (drawables != NULL && drawables[n] != NULL)
    n++;
  if (n != 1)
    {
      g_set_error_literal (error, DDPM_ERROR, DDPM_ERROR_INVALID_ARGUMENT,
                           _("Select exactly one layer."));
      return NULL;
    }
  return drawables[0];
}

gboolean
plugin_file_to_path (GFile        *file,
                     gchar        *dest,
                     gsize         size,
                     const gchar  *name,
                     GError      **error)
{
  const gchar *path = file ? g_file_peek_path (file) : NULL;

  return plugin_copy_string (dest, size, path ? path : "", name, error);
}

GIMP_MAIN (DDPM_TYPE_PLUG_IN)
