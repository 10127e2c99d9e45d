/* plugin.c: the GIMP 2.10 plug-in: registers the Filters ▸ Diffusion
 * procedures, runs them in the three run modes, and adapts GIMP to the
 * engine (pixels in, pixels out, progress, errors as translated messages).
 *
 *   plug-in-ddpm-renoise   noise the layer (or selection) to t0 = strength·T
 *                          and denoise it back (SDEdit, Meng et al. 2021)
 *   plug-in-ddpm-generate  the same at strength 1: a new sample, or an
 *                          inpainted selection
 *   plug-in-ddpm-denoise   remove Gaussian noise of a known or estimated
 *                          level (plugin/denoise.c, through the same
 *                          render, plugin_render_job)
 *   plug-in-ddpm-train     train (or resume) a model on the layer's pixels
 *
 * HOW A RENDER WORKS (plugin_render_job, for renoise, generate, denoise)
 *
 * The target is the selection's bounds on the drawable (or the preview's
 * visible rectangle).  With a selection, the engine is given a margin of
 * context around it, with mask 0 there, so that what it generates agrees
 * with the surroundings: at every step the unselected pixels are held at
 * the forward-noised original.  The engine returns
 *     final = m·generated + (1 − m)·original,
 * but GIMP applies the selection itself when the shadow buffer is merged
 * (and the drawable preview does the same when drawing), so we hand GIMP
 *     generated = (final − (1 − m)·original) / m        (m > 0)
 * and a feathered edge is blended once, not twice.  Pixels outside the
 * selection are never written: merge_shadow leaves them bit for bit.
 * Strength 0 (or a denoise that finds no noise) is no work at all, so the
 * drawable stays bit for bit too.
 */
#include "config.h"

#include <errno.h>
#include <string.h>

#include <glib/gstdio.h>

#include "ddpm.h"
#include "pixels.h"
#include "plugin.h"
#include "ui.h"

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

static const PluginRenoiseValues renoise_defaults =
{
  "",                /* model: the default one */
  0.5,               /* strength */
  20,                /* steps */
  0,                 /* seed */
  TRUE,              /* random_seed */
  DDPM_SAMPLER_DDIM, /* sampler */
};

static const PluginTrainValues train_defaults =
{
  "",                /* output: filled in for the dialog */
  "tiny",            /* preset */
  1000,              /* iterations */
  32,                /* patch_size */
  0,                 /* seed */
  "",                /* resume: a fresh model */
};

MAIN ()

static void
query (void)
{
  static const GimpParamDef renoise_args[] =
  {
    { GIMP_PDB_INT32,    "run-mode", "The run mode { RUN-INTERACTIVE (0), RUN-NONINTERACTIVE (1), RUN-WITH-LAST-VALS (2) }" },
    { GIMP_PDB_IMAGE,    "image",    "Input image" },
    { GIMP_PDB_DRAWABLE, "drawable", "Input drawable" },
    { GIMP_PDB_STRING,   "model",    "Model file (.safetensors); \"\" for the default model" },
    { GIMP_PDB_FLOAT,    "strength", "How far to noise before denoising, 0..1 (0: unchanged, 1: a new image)" },
    { GIMP_PDB_INT32,    "steps",    "Denoising steps to run (>= 1)" },
    { GIMP_PDB_INT32,    "seed",     "Random seed" },
    { GIMP_PDB_INT32,    "sampler",  "Sampler { DDPM (0), DDIM (1) }" },
  };
  static const GimpParamDef generate_args[] =
  {
    { GIMP_PDB_INT32,    "run-mode", "The run mode { RUN-INTERACTIVE (0), RUN-NONINTERACTIVE (1), RUN-WITH-LAST-VALS (2) }" },
    { GIMP_PDB_IMAGE,    "image",    "Input image" },
    { GIMP_PDB_DRAWABLE, "drawable", "Input drawable" },
    { GIMP_PDB_STRING,   "model",    "Model file (.safetensors); \"\" for the default model" },
    { GIMP_PDB_INT32,    "steps",    "Denoising steps to run (>= 1)" },
    { GIMP_PDB_INT32,    "seed",     "Random seed" },
    { GIMP_PDB_INT32,    "sampler",  "Sampler { DDPM (0), DDIM (1) }" },
  };
  static const GimpParamDef denoise_args[] =
  {
    { GIMP_PDB_INT32,    "run-mode", "The run mode { RUN-INTERACTIVE (0), RUN-NONINTERACTIVE (1), RUN-WITH-LAST-VALS (2) }" },
    { GIMP_PDB_IMAGE,    "image",    "Input image" },
    { GIMP_PDB_DRAWABLE, "drawable", "Input drawable" },
    { GIMP_PDB_STRING,   "model",    "Model file (.safetensors); \"\" for the default model" },
    { GIMP_PDB_FLOAT,    "sigma",    "Standard deviation of the noise on the 0..1 pixel scale (25/255 = 0.098 for noise of 25 levels); 0 or negative: estimate it from the layer" },
    { GIMP_PDB_INT32,    "steps",    "Denoising steps to run (>= 1; at most the starting timestep are run)" },
    { GIMP_PDB_INT32,    "seed",     "Random seed (used by the DDPM sampler)" },
    { GIMP_PDB_INT32,    "sampler",  "Sampler { DDPM (0), DDIM (1) }" },
  };
  static const GimpParamDef train_args[] =
  {
    { GIMP_PDB_INT32,    "run-mode",   "The run mode { RUN-INTERACTIVE (0), RUN-NONINTERACTIVE (1), RUN-WITH-LAST-VALS (2) }" },
    { GIMP_PDB_IMAGE,    "image",      "Input image" },
    { GIMP_PDB_DRAWABLE, "drawable",   "The layer to learn from (its selection bounds, if any)" },
    { GIMP_PDB_STRING,   "output",     "Model file to write (.safetensors)" },
    { GIMP_PDB_STRING,   "preset",     "Model size { \"tiny\", \"small\", \"cifar\" } (ignored when resuming)" },
    { GIMP_PDB_INT32,    "iterations", "Optimizer steps in all, those of a resumed checkpoint included (>= 1)" },
    { GIMP_PDB_INT32,    "patch-size", "Training patch side in pixels (a multiple of 8, at most the layer's size; ignored when resuming)" },
    { GIMP_PDB_INT32,    "seed",       "Random seed" },
    { GIMP_PDB_STRING,   "resume",     "Checkpoint to continue from; \"\" to start a new model" },
  };

  gimp_plugin_domain_register (GETTEXT_PACKAGE, plugin_locale_dir ());

  gimp_install_procedure (RENOISE_PROC,
                          N_("Partially noise the layer and denoise it back with a diffusion model"),
                          "Forward-noises the layer (or selection) to "
                          "t0 = strength·T and runs the model's reverse process "
                          "back to t = 0 (SDEdit).  strength 0 leaves the "
                          "pixels unchanged, 1 generates a new image.  Pixels "
                          "outside the selection are kept and used as context.",
                          "GIMP DDPM authors",
                          "GIMP DDPM authors",
                          "2026",
                          N_("_Renoise…"),
                          "RGB*, GRAY*",
                          GIMP_PLUGIN,
                          G_N_ELEMENTS (renoise_args), 0,
                          renoise_args, NULL);
  /* The submenu's label, translated like the items in it. */
  gimp_plugin_menu_branch_register ("<Image>/Filters", N_("Diffusion"));
  gimp_plugin_menu_register (RENOISE_PROC, "<Image>/Filters/Diffusion");

  gimp_install_procedure (DENOISE_PROC,
                          N_("Remove Gaussian noise from the layer with a diffusion model"),
                          "Removes white Gaussian noise of standard deviation "
                          "sigma (on the 0..1 pixel scale: 25/255 = 0.098 for "
                          "noise of 25 levels) from the layer or selection: "
                          "the noisy pixels are the model's diffusion state "
                          "at the timestep of that noise level, from which "
                          "its reverse process runs to t = 0 without adding "
                          "noise.  sigma 0 or negative estimates the level "
                          "from the layer (Donoho's wavelet estimator).  "
                          "Pixels outside the selection are kept and used as "
                          "context.",
                          "GIMP DDPM authors",
                          "GIMP DDPM authors",
                          "2026",
                          N_("_Denoise…"),
                          "RGB*, GRAY*",
                          GIMP_PLUGIN,
                          G_N_ELEMENTS (denoise_args), 0,
                          denoise_args, NULL);
  gimp_plugin_menu_register (DENOISE_PROC, "<Image>/Filters/Diffusion");

  gimp_install_procedure (GENERATE_PROC,
                          N_("Fill the layer or selection with a new image from a diffusion model"),
                          "Samples a new image from the model into the layer; "
                          "with a selection, only the selection is generated "
                          "(inpainting) and it agrees with its surroundings.",
                          "GIMP DDPM authors",
                          "GIMP DDPM authors",
                          "2026",
                          N_("_Generate…"),
                          "RGB*, GRAY*",
                          GIMP_PLUGIN,
                          G_N_ELEMENTS (generate_args), 0,
                          generate_args, NULL);
  gimp_plugin_menu_register (GENERATE_PROC, "<Image>/Filters/Diffusion");

  gimp_install_procedure (TRAIN_PROC,
                          N_("Train a diffusion model on the layer's pixels"),
                          "Trains a new model (or continues a checkpoint) on "
                          "random patches of the layer or of the selection's "
                          "bounds, and writes it as a .safetensors file.  "
                          "Checkpoints are written along the way, so a "
                          "cancelled run keeps the last one.",
                          "GIMP DDPM authors",
                          "GIMP DDPM authors",
                          "2026",
                          N_("_Train Model…"),
                          "RGB*, GRAY*",
                          GIMP_PLUGIN,
                          G_N_ELEMENTS (train_args), 0,
                          train_args, NULL);
  gimp_plugin_menu_register (TRAIN_PROC, "<Image>/Filters/Diffusion");
}

const gchar *
plugin_locale_dir (void)
{
  static gchar *dir = NULL;

  if (dir == NULL)
    {
      dir = g_build_filename (g_get_user_data_dir (), "gimp-ddpm", "locale", NULL);
      if (!g_file_test (dir, G_FILE_TEST_IS_DIR))
        {
          g_free (dir);
          dir = g_strdup (LOCALEDIR);
        }
    }
  return dir;
}

/* ------------------------------------------------------------------ models */

static gchar *
user_model_dir (void)
{
  return g_build_filename (g_get_user_data_dir (), "gimp-ddpm", "models", NULL);
}

gchar *
plugin_user_model_path (const gchar *name)
{
  gchar *dir = user_model_dir ();
  gchar *file = g_strconcat (name, ".safetensors", NULL);
  gchar *path = g_build_filename (dir, file, NULL);

  g_free (file);
  g_free (dir);
  return path;
}

/* The places the default model may be, in the order they are tried:
 * $DDPM_MODEL_DIR (GIMP passes its environment on to plug-ins), the user's
 * own data directory (where tools/install-user puts it), the installed
 * data directory.  NULL-terminated, newly allocated. */
static gchar **
default_model_candidates (void)
{
  GPtrArray *paths = g_ptr_array_new ();
  const gchar *env = g_getenv ("DDPM_MODEL_DIR");

  if (env != NULL && *env != '\0')
    g_ptr_array_add (paths, g_build_filename (env, "default.safetensors", NULL));
  g_ptr_array_add (paths, plugin_user_model_path ("default"));
  g_ptr_array_add (paths, ddpm_model_default_path ());
  g_ptr_array_add (paths, NULL);
  return (gchar **) g_ptr_array_free (paths, FALSE);
}

gchar *
plugin_default_model_path (void)
{
  gchar **paths = default_model_candidates ();
  guint n = g_strv_length (paths);
  gchar *found = NULL;

  for (guint i = 0; i < n && found == NULL; i++)
    if (g_file_test (paths[i], G_FILE_TEST_IS_REGULAR))
      found = g_strdup (paths[i]);
  if (found == NULL)
    found = g_strdup (paths[n - 1]);
  g_strfreev (paths);
  return found;
}

/* The model for `name` ("" = the default), loaded once per process: the
 * dialog's preview renders many times with the same model.  A file that
 * changed on disk (retrained) is loaded again.  Owned by the cache. */
static DdpmModel *
plugin_model_get (const gchar *name,
                  GError     **error)
{
  static DdpmModel *cached = NULL;
  static gchar *cached_path = NULL;
  static gint64 cached_mtime = 0;
  static goffset cached_size = 0;
  gchar *path;
  GStatBuf st;
  GError *local = NULL;
  DdpmModel *model;

  path = (name != NULL && *name != '\0') ? g_strdup (name)
                                         : plugin_default_model_path ();

  if (g_stat (path, &st) != 0)
    {
      if (name == NULL || *name == '\0')
        {
          gchar **paths = default_model_candidates ();
          gchar *list = g_strjoinv ("\n  ", paths);

          g_set_error (error, DDPM_ERROR, DDPM_ERROR_IO,
                       _("No diffusion model is installed.  Looked for:\n  %s\n"
                         "Train one with Filters ▸ Diffusion ▸ Train Model, "
                         "or choose a model file."), list);
          g_free (list);
          g_strfreev (paths);
        }
      else
        g_set_error (error, DDPM_ERROR, DDPM_ERROR_IO,
                     _("The model file “%s” does not exist."), path);
      g_free (path);
      return NULL;
    }

  if (cached != NULL && g_strcmp0 (path, cached_path) == 0
      && (gint64) st.st_mtime == cached_mtime && st.st_size == cached_size)
    {
      g_free (path);
      return cached;
    }

  model = ddpm_model_load (path, &local);
  if (model == NULL)
    {
      g_propagate_prefixed_error (error, local,
                                  _("The diffusion model could not be loaded: "));
      g_free (path);
      return NULL;
    }

  ddpm_model_free (cached);
  g_free (cached_path);
  cached = model;
  cached_path = path;
  cached_mtime = st.st_mtime;
  cached_size = st.st_size;
  return cached;
}

/* ---------------------------------------------------------------- progress */

typedef struct
{
  gboolean training;
  gint64   last_update;   /* µs, monotonic */
} ProgressState;

/* "2 min left", "40 s left", "1 h 5 min left": a training ETA. */
static gchar *
format_remaining (double seconds)
{
  int s = (int) (seconds + 0.5);

  if (s < 60)
    return g_strdup_printf (ngettext ("%d s left", "%d s left", s), s);
  if (s < 3600)
    {
      int m = (s + 30) / 60;
      return g_strdup_printf (ngettext ("%d min left", "%d min left", m), m);
    }
  return g_strdup_printf (_("%d h %d min left"), s / 3600, (s % 3600) / 60);
}

/* The engine's progress callback: GIMP's progress bar and its text.  At
 * most ten updates a second (each is a round trip to GIMP), always the
 * last.  A cancel in GIMP ends the plug-in process, so this never asks the
 * engine to stop: the shadow buffer is then never merged, and training has
 * its last checkpoint on disk. */
static gboolean
plugin_progress (const DdpmProgress *progress,
                 gpointer            user_data)
{
  ProgressState *state = user_data;
  gint64 now = g_get_monotonic_time ();
  gchar *text;

  if (progress->step < progress->n_steps
      && now - state->last_update < G_USEC_PER_SEC / 10)
    return TRUE;
  state->last_update = now;

  if (state->training)
    {
      gchar *left = format_remaining (progress->remaining);

      text = g_strdup_printf (ngettext ("Training: step %d of %d, loss %.3f, %s",
                                        "Training: step %d of %d, loss %.3f, %s",
                                        progress->n_steps),
                              progress->step, progress->n_steps,
                              progress->loss, left);
      g_free (left);
    }
  else
    text = g_strdup_printf (ngettext ("Denoising: step %d of %d",
                                      "Denoising: step %d of %d",
                                      progress->n_steps),
                            progress->step, progress->n_steps);

  gimp_progress_set_text (text);
  gimp_progress_update ((gdouble) progress->step / MAX (progress->n_steps, 1));
  g_free (text);
  return TRUE;
}

/* ------------------------------------------------------------------ render */

static void
draw_preview (GimpPreview        *preview,
              const PluginPixels *pixels)
{
  guchar *u8 = plugin_pixels_to_u8 (pixels);

  gimp_preview_draw_buffer (preview, u8,
                            pixels->rect.width * pixels->n_components);
  g_free (u8);
}

gboolean
plugin_render_target (gint32         drawable_id,
                      GimpPreview   *preview,
                      GeglRectangle *target)
{
  if (preview != NULL)
    {
      gimp_preview_get_position (preview, &target->x, &target->y);
      gimp_preview_get_size (preview, &target->width, &target->height);
    }
  else if (!gimp_drawable_mask_intersect (drawable_id, &target->x, &target->y,
                                          &target->width, &target->height))
    return FALSE;  /* the selection misses this layer */
  return target->width > 0 && target->height > 0;
}

gboolean
plugin_render_job (gint32                 drawable_id,
                   const PluginRenderJob *job,
                   GimpPreview           *preview,
                   GError               **error)
{
  gint32 image_id = gimp_item_get_image (drawable_id);
  GeglRectangle target, context;
  DdpmModel *model;
  const DdpmSchedule *schedule;
  DdpmDenoiser denoiser;
  DdpmSampleParams params;
  ProgressState progress = { FALSE, 0 };
  PluginPixels *pixels = NULL, *out = NULL;
  float *tensor = NULL, *original = NULL, *mask = NULL;
  int n_steps, C;
  gsize n;
  gboolean ok = FALSE;

  g_return_val_if_fail (job != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (job->sampler < 0 || job->sampler >= DDPM_SAMPLER_COUNT)
    {
      g_set_error (error, DDPM_ERROR, DDPM_ERROR_INVALID_ARGUMENT,
                   _("Unknown sampler %d: use 0 (DDPM) or 1 (DDIM)."),
                   job->sampler);
      return FALSE;
    }

  if (!plugin_render_target (drawable_id, preview, &target))
    return TRUE;  /* nothing to do */

  model = plugin_model_get (job->model, error);
  if (model == NULL)
    return FALSE;
  schedule = ddpm_model_get_schedule (model);
  if (!job->plan (schedule, job->steps, job->data, &n_steps, error))
    return FALSE;

  if (n_steps == 0)
    {
      /* No work (strength 0, no noise found): the result is the input, so
       * leave the drawable alone (bit for bit, whatever its precision). */
      if (preview != NULL)
        {
          pixels = plugin_pixels_read (drawable_id, &target, error);
          if (pixels == NULL)
            return FALSE;
          draw_preview (preview, pixels);
          plugin_pixels_free (pixels);
        }
      return TRUE;
    }

  ddpm_model_get_denoiser (model, 0, &denoiser);
  C = denoiser.channels;

  /* With a selection, give the engine context around it (see the top). */
  context = target;
  if (!gimp_selection_is_empty (image_id))
    {
      int margin = denoiser.tile_size > 0 ? denoiser.tile_size / 2 : 16;
      GeglRectangle bounds = { 0, 0, gimp_drawable_width (drawable_id),
                               gimp_drawable_height (drawable_id) };

      context.x -= margin;
      context.y -= margin;
      context.width += 2 * margin;
      context.height += 2 * margin;
      gegl_rectangle_intersect (&context, &context, &bounds);
    }

  pixels = plugin_pixels_read (drawable_id, &context, error);
  if (pixels == NULL)
    goto out;
  n = (gsize) context.width * context.height;
  tensor = plugin_pixels_to_tensor (pixels, C);
  original = tensor ? g_try_new (float, n * C) : NULL;
  if (original == NULL)
    {
      g_set_error (error, DDPM_ERROR, DDPM_ERROR_NO_MEMORY,
                   _("Not enough memory for a %d × %d region: select a "
                     "smaller part of the layer."),
                   context.width, context.height);
      goto out;
    }
  memcpy (original, tensor, n * C * sizeof (float));
  mask = plugin_selection_read (drawable_id, &context);

  ddpm_sample_params_init (&params);
  params.sampler = job->sampler;
  params.steps = job->steps;
  params.seed = job->seed;
  if (preview == NULL)
    {
      params.progress = plugin_progress;
      params.progress_data = &progress;
      gimp_progress_init (job->progress_title);
    }

  if (!job->run (tensor, mask, C, context.height, context.width,
                 schedule, &denoiser, &params, job->data, error))
    goto out;

  if (mask != NULL)
    for (int c = 0; c < C; c++)
      for (gsize i = 0; i < n; i++)
        {
          float m = mask[i];
          gsize k = c * n + i;

          tensor[k] = m > 0.0f ? (tensor[k] - (1.0f - m) * original[k]) / m
                               : original[k];
        }

  plugin_pixels_from_tensor (pixels, tensor, original, C, job->keep_chroma);
  out = plugin_pixels_crop (pixels, &target);

  if (preview != NULL)
    draw_preview (preview, out);
  else
    {
      gimp_image_undo_group_start (image_id);
      plugin_pixels_write_shadow (drawable_id, out);
      gimp_drawable_merge_shadow (drawable_id, TRUE);
      gimp_drawable_update (drawable_id, target.x, target.y,
                            target.width, target.height);
      gimp_image_undo_group_end (image_id);
      gimp_progress_update (1.0);
    }
  ok = TRUE;

out:
  plugin_pixels_free (out);
  plugin_pixels_free (pixels);
  g_free (tensor);
  g_free (original);
  g_free (mask);
  return ok;
}

/* Renoise and generate: SDEdit to t0 = strength·T (Meng et al. 2021);
 * `data` points to the strength. */
static gboolean
renoise_plan (const DdpmSchedule *schedule,
              gint                steps,
              gpointer            data,
              int                *n_steps,
              GError            **error)
{
  int t0;

  return ddpm_img2img_plan (schedule, *(const double *) data, steps,
                            &t0, n_steps, error);
}

static gboolean
renoise_run (float                  *image,
             const float            *mask,
             int                     C,
             int                     H,
             int                     W,
             const DdpmSchedule     *schedule,
             const DdpmDenoiser     *denoiser,
             const DdpmSampleParams *params,
             gpointer                data,
             GError                **error)
{
  DdpmSampleParams p = *params;

  p.strength = *(const double *) data;
  return ddpm_img2img (image, mask, C, H, W, schedule, denoiser, &p, error);
}

gboolean
plugin_render (gint32                     drawable_id,
               const PluginRenoiseValues *vals,
               gboolean                   generate,
               GimpPreview               *preview,
               GError                   **error)
{
  double strength = generate ? 1.0 : vals->strength;
  PluginRenderJob job = { 0 };

  g_return_val_if_fail (vals != NULL, FALSE);

  job.model = vals->model;
  job.sampler = vals->sampler;
  job.steps = vals->steps;
  job.seed = vals->seed;
  job.keep_chroma = !generate;
  job.progress_title = generate ? _("Generating") : _("Renoising");
  job.plan = renoise_plan;
  job.run = renoise_run;
  job.data = &strength;
  return plugin_render_job (drawable_id, &job, preview, error);
}

/* ------------------------------------------------------------------- train */

static gboolean
plugin_train (gint32                   drawable_id,
              const PluginTrainValues *vals,
              GError                 **error)
{
  GeglRectangle rect;
  PluginPixels *pixels = NULL;
  float *tensor = NULL;
  DdpmDataset *dataset = NULL;
  DdpmTrainParams params;
  ProgressState progress = { TRUE, 0 };
  gboolean resume = vals->resume[0] != '\0';
  gchar *dir;
  gboolean ok = FALSE;

  if (vals->output[0] == '\0')
    {
      g_set_error_literal (error, DDPM_ERROR, DDPM_ERROR_INVALID_ARGUMENT,
                           _("No output file given for the model."));
      return FALSE;
    }
  if (vals->iterations < 1)
    {
      g_set_error (error, DDPM_ERROR, DDPM_ERROR_INVALID_ARGUMENT,
                   _("Iterations must be at least 1, not %d."), vals->iterations);
      return FALSE;
    }
  if (!gimp_drawable_mask_intersect (drawable_id, &rect.x, &rect.y,
                                     &rect.width, &rect.height))
    {
      g_set_error_literal (error, DDPM_ERROR, DDPM_ERROR_INVALID_ARGUMENT,
                           _("The selection does not touch this layer: there "
                             "are no pixels to learn from."));
      return FALSE;
    }
  /* (Resuming, the checkpoint's size applies; the engine checks it.) */
  if (!resume
      && (vals->patch_size < 8 || vals->patch_size > MIN (rect.width, rect.height)))
    {
      g_set_error (error, DDPM_ERROR, DDPM_ERROR_INVALID_ARGUMENT,
                   _("The patch size %d does not fit: the pixels to learn "
                     "from are %d × %d, so it must be between 8 and %d."),
                   vals->patch_size, rect.width, rect.height,
                   MIN (rect.width, rect.height));
      return FALSE;
    }

  ddpm_train_params_init (&params);
  if (!resume)
    {
      if (!ddpm_unet_config_from_preset (vals->preset,
                                         gimp_drawable_is_rgb (drawable_id) ? 3 : 1,
                                         &params.config, error))
        return FALSE;
      ddpm_unet_config_set_image_size (&params.config, vals->patch_size);
      if (!ddpm_unet_config_validate (&params.config, error))
        return FALSE;
    }
  params.steps = vals->iterations;
  params.seed = vals->seed;
  params.out_path = vals->output;
  params.resume_path = resume ? vals->resume : NULL;
  /* About ten checkpoints a run: a cancel loses at most a tenth. */
  params.checkpoint_every = CLAMP (vals->iterations / 10, 10, 1000);
  params.progress = plugin_progress;
  params.progress_data = &progress;

  dir = g_path_get_dirname (vals->output);
  if (g_mkdir_with_parents (dir, 0755) != 0)
    {
      g_set_error (error, DDPM_ERROR, DDPM_ERROR_IO,
                   _("Could not create the folder “%s” for the model: %s"),
                   dir, g_strerror (errno));
      g_free (dir);
      return FALSE;
    }
  g_free (dir);

  pixels = plugin_pixels_read (drawable_id, &rect, error);
  if (pixels == NULL)
    goto out;
  tensor = plugin_pixels_to_tensor (pixels, pixels->n_color);
  if (tensor == NULL)
    {
      g_set_error (error, DDPM_ERROR, DDPM_ERROR_NO_MEMORY,
                   _("Not enough memory for a %d × %d region: select a "
                     "smaller part of the layer."), rect.width, rect.height);
      goto out;
    }
  dataset = ddpm_dataset_new_from_pixels (tensor, pixels->n_color,
                                          rect.height, rect.width, error);
  if (dataset == NULL)
    goto out;

  gimp_progress_init (_("Training a diffusion model"));
  ok = ddpm_train (&params, dataset, error);
  if (ok)
    gimp_progress_update (1.0);

out:
  ddpm_dataset_free (dataset);
  g_free (tensor);
  plugin_pixels_free (pixels);
  return ok;
}

/* -------------------------------------------------------------------- run */

gboolean
plugin_copy_string (gchar       *dest,
                    gsize        size,
                    const gchar *src,
                    const gchar *name,
                    GError     **error)
{
  if (src == NULL)
    src = "";
  if (g_strlcpy (dest, src, size) >= size)
    {
      g_set_error (error, DDPM_ERROR, DDPM_ERROR_INVALID_ARGUMENT,
                   _("The argument “%s” is too long (at most %d bytes)."),
                   name, (int) size - 1);
      return FALSE;
    }
  return TRUE;
}

static GimpPDBStatusType
run_renoise (const gchar     *name,
             GimpRunMode      run_mode,
             gint             nparams,
             const GimpParam *param,
             GError         **error)
{
  gboolean generate = strcmp (name, GENERATE_PROC) == 0;
  gint32 drawable_id = param[2].data.d_drawable;
  PluginRenoiseValues vals = renoise_defaults;
  int p = 3;

  if (generate)
    vals.strength = 1.0;
  gimp_get_data (name, &vals);

  switch (run_mode)
    {
    case GIMP_RUN_INTERACTIVE:
      if (!ui_renoise_dialog (drawable_id, &vals, generate))
        return GIMP_PDB_CANCEL;
      break;

    case GIMP_RUN_NONINTERACTIVE:
      if (nparams != (generate ? 7 : 8))
        {
          g_set_error (error, DDPM_ERROR, DDPM_ERROR_INVALID_ARGUMENT,
                       _("%s takes %d arguments, not %d."),
                       name, generate ? 7 : 8, nparams);
          return GIMP_PDB_CALLING_ERROR;
        }
      if (!plugin_copy_string (vals.model, sizeof vals.model,
                               param[p++].data.d_string, "model", error))
        return GIMP_PDB_CALLING_ERROR;
      if (!generate)
        vals.strength = param[p++].data.d_float;
      vals.steps = param[p++].data.d_int32;
      vals.seed = (guint32) param[p++].data.d_int32;
      vals.random_seed = FALSE;
      vals.sampler = param[p++].data.d_int32;
      if (vals.strength < 0.0 || vals.strength > 1.0)
        {
          g_set_error (error, DDPM_ERROR, DDPM_ERROR_INVALID_ARGUMENT,
                       _("The strength must be between 0 and 1, not %g."),
                       vals.strength);
          return GIMP_PDB_CALLING_ERROR;
        }
      if (vals.steps < 1)
        {
          g_set_error (error, DDPM_ERROR, DDPM_ERROR_INVALID_ARGUMENT,
                       _("The number of steps must be at least 1, not %d."),
                       vals.steps);
          return GIMP_PDB_CALLING_ERROR;
        }
      break;

    case GIMP_RUN_WITH_LAST_VALS:
      if (vals.random_seed)
        vals.seed = g_random_int ();
      break;
    }

  if (!plugin_render (drawable_id, &vals, generate, NULL, error))
    return GIMP_PDB_EXECUTION_ERROR;

  gimp_set_data (name, &vals, sizeof vals);
  if (run_mode != GIMP_RUN_NONINTERACTIVE)
    gimp_displays_flush ();
  return GIMP_PDB_SUCCESS;
}

static GimpPDBStatusType
run_train (GimpRunMode      run_mode,
           gint             nparams,
           const GimpParam *param,
           GError         **error)
{
  gint32 drawable_id = param[2].data.d_drawable;
  PluginTrainValues vals = train_defaults;

  gimp_get_data (TRAIN_PROC, &vals);

  switch (run_mode)
    {
    case GIMP_RUN_INTERACTIVE:
      if (vals.output[0] == '\0')
        {
          gchar *path = plugin_user_model_path ("my-model");

          g_strlcpy (vals.output, path, sizeof vals.output);
          g_free (path);
        }
      if (!ui_train_dialog (drawable_id, &vals))
        return GIMP_PDB_CANCEL;
      break;

    case GIMP_RUN_NONINTERACTIVE:
      if (nparams != 9)
        {
          g_set_error (error, DDPM_ERROR, DDPM_ERROR_INVALID_ARGUMENT,
                       _("%s takes %d arguments, not %d."), TRAIN_PROC, 9, nparams);
          return GIMP_PDB_CALLING_ERROR;
        }
      if (!plugin_copy_string (vals.output, sizeof vals.output,
                               param[3].data.d_string, "output", error)
          || !plugin_copy_string (vals.preset, sizeof vals.preset,
                                  param[4].data.d_string, "preset", error)
          || !plugin_copy_string (vals.resume, sizeof vals.resume,
                                  param[8].data.d_string, "resume", error))
        return GIMP_PDB_CALLING_ERROR;
      vals.iterations = param[5].data.d_int32;
      vals.patch_size = param[6].data.d_int32;
      vals.seed = (guint32) param[7].data.d_int32;
      break;

    case GIMP_RUN_WITH_LAST_VALS:
      break;
    }

  if (!plugin_train (drawable_id, &vals, error))
    return GIMP_PDB_EXECUTION_ERROR;

  gimp_set_data (TRAIN_PROC, &vals, sizeof vals);
  if (run_mode == GIMP_RUN_INTERACTIVE)
    {
      gchar *text = g_strdup_printf (_("The model was written to “%s”."),
                                     vals.output);

      gimp_message (text);
      g_free (text);
    }
  return GIMP_PDB_SUCCESS;
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
  GimpPDBStatusType status;
  GError *error = NULL;

  INIT_I18N ();
  gegl_init (NULL, NULL);

  *nreturn_vals = 1;
  *return_vals = values;

  if (nparams < 3)
    status = GIMP_PDB_CALLING_ERROR;
  else if (strcmp (name, RENOISE_PROC) == 0 || strcmp (name, GENERATE_PROC) == 0)
    status = run_renoise (name, run_mode, nparams, param, &error);
  else if (strcmp (name, DENOISE_PROC) == 0)
    status = plugin_denoise_run (run_mode, nparams, param, &error);
  else if (strcmp (name, TRAIN_PROC) == 0)
    status = run_train (run_mode, nparams, param, &error);
  else
    status = GIMP_PDB_CALLING_ERROR;

  values[0].type = GIMP_PDB_STATUS;
  values[0].data.d_status = status;

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
