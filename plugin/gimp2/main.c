/* main.c: the GIMP 2.10 plug-in gimp-ddpm: registers the Filters ▸
 * Diffusion procedures and sends each call to its procedure's file.
 *
 *   plug-in-ddpm-renoise   noise the layer (or selection) to t0 = strength·T
 *                          and denoise it back (SDEdit, Meng et al. 2021)
 *                          renoise.c
 *   plug-in-ddpm-denoise   remove Gaussian noise of a known or estimated
 *                          level                                denoise.c
 *   plug-in-ddpm-generate  the same as renoise at strength 1: a new sample,
 *                          or an inpainted selection           generate.c
 *   plug-in-ddpm-train     train (or resume) a model on the layer's pixels
 *                          train.c
 *
 * The procedures adapt GIMP to the plug-in's core (plugin/core: values,
 * render and train jobs over float planes) through render.c and pixels.c;
 * their dialogs are ui/gimp2's.  A failed run's error becomes the
 * procedure's second return value (GIMP_PDB_STRING), which Script-Fu shows,
 * and in INTERACTIVE mode a message.
 */
#include "plugin-gimp2.h"

#include <string.h>

#ifdef PLUGIN_UI_TEST
#include "ui-test.h"
#endif

static void query (void);
static void run   (const gchar      *name,
                   gint              nparams,
                   const GimpParam  *param,
                   gint             *nreturn_vals,
                   GimpParam       **return_vals);

const GimpPlugInInfo PLUG_IN_INFO =
{
  NULL,  /* init_proc  */
  NULL,  /* quit_proc  */
  query, /* query_proc */
  run,   /* run_proc   */
};

#ifdef PLUGIN_UI_TEST
/* gimp-ddpm-uitest, the test build tests/ui runs (plugin/gimp2/meson.build):
 * the same plug-in, whose dialogs hand their widgets to ui/gimp2/ui-test.c
 * once shown.  The installed gimp-ddpm has no such hooks. */
int
main (int   argc,
      char *argv[])
{
  ui_test_install ();
  return gimp_main (&PLUG_IN_INFO, argc, argv);
}
#else
MAIN ()
#endif

static void
query (void)
{
  gimp_plugin_domain_register (GETTEXT_PACKAGE, plugin_locale_dir ());

  /* The submenu's label, translated like the items in it. */
  gimp_plugin_menu_branch_register ("<Image>/Filters", N_("Diffusion"));

  plugin_renoise_query ();
  plugin_denoise_query ();
  plugin_generate_query ();
  plugin_train_query ();
}

gboolean
plugin_check_nparams (const gchar *name,
                      gint         expected,
                      gint         nparams,
                      GError     **error)
{
  if (nparams != expected)
    {
      g_set_error (error, DDPM_ERROR, DDPM_ERROR_INVALID_ARGUMENT,
                   _("%s takes %d arguments, not %d."),
                   name, expected, nparams);
      return FALSE;
    }
  return TRUE;
}

static GimpPDBStatusType
run_procedure (const gchar     *name,
               GimpRunMode      run_mode,
               gint             nparams,
               const GimpParam *param,
               GError         **error)
{
  if (nparams < 3)
    return GIMP_PDB_CALLING_ERROR;
  if (strcmp (name, RENOISE_PROC) == 0)
    return plugin_renoise_run (run_mode, nparams, param, error);
  if (strcmp (name, GENERATE_PROC) == 0)
    return plugin_generate_run (run_mode, nparams, param, error);
  if (strcmp (name, DENOISE_PROC) == 0)
    return plugin_denoise_run (run_mode, nparams, param, error);
  if (strcmp (name, TRAIN_PROC) == 0)
    return plugin_train_run (run_mode, nparams, param, error);
  return GIMP_PDB_CALLING_ERROR;
}

static void
run (const gchar      *name,
     gint              nparams,
     const GimpParam  *param,
     gint             *nreturn_vals,
     GimpParam       **return_vals)
{
  static GimpParam values[2];
  static gchar *message = NULL;
  GimpRunMode run_mode = param[0].data.d_int32;
  GError *error = NULL;

  INIT_I18N ();
  gegl_init (NULL, NULL);

  *nreturn_vals = 1;
  *return_vals = values;

  values[0].type = GIMP_PDB_STATUS;
  values[0].data.d_status = run_procedure (name, run_mode, nparams, param,
                                           &error);

  if (error != NULL)
    {
      /* The error string of the procedure: Script-Fu and Python-Fu show it
       * ("Procedure execution of … failed: <message>"). */
      g_free (message);
      message = g_strdup (error->message);
      *nreturn_vals = 2;
      values[1].type = GIMP_PDB_STRING;
      values[1].data.d_string = message;
      if (run_mode == GIMP_RUN_INTERACTIVE)
        gimp_message (error->message);
      g_error_free (error);
    }

  gegl_exit ();
}
