/* import.c: `ddpm import SRC --out M.safetensors [FLAGS…]`: a published
 * checkpoint into a model file every command (and the plug-in) loads.
 *
 * FLAGS are guided-diffusion's own (its README's MODEL_FLAGS and
 * DIFFUSION_FLAGS pasted as they are), so they are not options of this
 * command: everything after SRC but --out goes to the engine's importer,
 * which knows their names and defaults. */
#include <stdio.h>
#include <string.h>

#include "ddpm.h"
#include "cli.h"

static void
usage (FILE *out)
{
  fprintf (out,
           "Usage: ddpm import SRC --out MODEL.safetensors [FLAGS…]\n\n"
           "Import a published diffusion model into a model file.\n\n"
           "SRC is a guided-diffusion or improved-diffusion checkpoint (.pt);\n"
           "FLAGS are that project's own, as its README gives them, e.g.\n"
           "  --attention_resolutions 32,16,8 --class_cond False --diffusion_steps 1000\n"
           "  --image_size 256 --learn_sigma True --noise_schedule linear\n"
           "  --num_channels 256 --num_head_channels 64 --num_res_blocks 2\n"
           "  --resblock_updown True --use_fp16 True --use_scale_shift_norm True\n"
           "(--channel_mult 1,1,2,2,4,4 where the README gives it; flags left out\n"
           "take guided_diffusion/script_util.py's defaults).\n\n"
           "SRC may instead be a diffusers model folder (config.json, the weights as\n"
           "diffusion_pytorch_model.safetensors or .bin, scheduler_config.json; or a\n"
           "pipeline folder with unet/ and scheduler/), e.g. google/ddpm-church-256;\n"
           "its settings come from its JSON files, so it takes no FLAGS.\n\n"
           "  -o, --out FILE   the model file to write (replaced atomically)\n"
           "  -h, --help       show this help\n");
}

int
cli_import (int argc, char **argv)
{
  const char *src = NULL, *out = NULL;
  GPtrArray *flags = g_ptr_array_new ();
  GError *error = NULL;
  int code = CLI_EXIT_OK;

  for (int i = 1; i < argc; i++)
    {
      const char *a = argv[i];

      if (strcmp (a, "--help") == 0 || strcmp (a, "-h") == 0)
        {
          usage (stdout);
          g_ptr_array_free (flags, TRUE);
          return CLI_EXIT_OK;
        }
      if (strcmp (a, "--out") == 0 || strcmp (a, "-o") == 0)
        {
          if (i + 1 >= argc)
            {
              g_ptr_array_free (flags, TRUE);
              return cli_fail ("import", CLI_EXIT_USAGE, "%s needs a file name", a);
            }
          out = argv[++i];
        }
      else if (g_str_has_prefix (a, "--out="))
        out = a + strlen ("--out=");
      else if (g_str_has_prefix (a, "--"))
        {
          /* a guided-diffusion flag and, unless given as --name=value, its value */
          g_ptr_array_add (flags, (gpointer) a);
          if (strchr (a, '=') == NULL && i + 1 < argc)
            g_ptr_array_add (flags, argv[++i]);
        }
      else if (src == NULL)
        src = a;
      else
        {
          g_ptr_array_free (flags, TRUE);
          return cli_fail ("import", CLI_EXIT_USAGE,
                           "unexpected “%s”: give one SRC (flags are --name value)", a);
        }
    }
  if (src == NULL || out == NULL)
    {
      g_ptr_array_free (flags, TRUE);
      usage (stderr);
      return cli_fail ("import", CLI_EXIT_USAGE, "expected SRC and --out FILE");
    }

  /* A folder is a diffusers model (config.json and weights; its settings
   * come from its JSON files, so flags make no sense there); a file is a
   * guided-diffusion / improved-diffusion checkpoint with its flags. */
  if (g_file_test (src, G_FILE_TEST_IS_DIR))
    {
      if (flags->len > 0)
        g_set_error (&error, DDPM_ERROR, DDPM_ERROR_INVALID_ARGUMENT,
                     "%s is a diffusers folder: its settings come from its config.json "
                     "and scheduler_config.json, so flags such as %s do not apply",
                     src, (const char *) flags->pdata[0]);
      else
        ddpm_import_diffusers (src, out, &error);
    }
  else
    ddpm_import_guided_diffusion (src, out, (const char * const *) flags->pdata,
                                  (int) flags->len, &error);

  if (error != NULL)
    {
      code = cli_fail ("import", error->code == DDPM_ERROR_INVALID_ARGUMENT
                                 ? CLI_EXIT_USAGE : CLI_EXIT_FAILURE,
                       "%s", error->message);
      g_error_free (error);
    }
  else
    printf ("wrote %s\n", out);
  g_ptr_array_free (flags, TRUE);
  return code;
}
