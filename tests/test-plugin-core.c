/* test-plugin-core.c: the plug-in's core (plugin/core) without any GIMP:
 * values and their validation, model paths, the model cache and its
 * messages, the plans and the dialogs' plan lines, the progress texts,
 * and the train and render jobs on small float planes.
 *
 * The model is trained here through the core's own train job (two
 * optimizer steps of the tiny preset: a model that runs, not one that is
 * good).  The render job's oracle is the engine called directly: the same
 * ddpm_img2img with the same parameters and mask, whose composite
 * m·generated + (1 − m)·original the job's output must reproduce (the job
 * hands back `generated`, for GIMP's selection-aware merge).
 *
 * The environment is private: XDG_DATA_HOME and DDPM_MODEL_DIR point into
 * a temporary folder, so no installed model is found by accident. */
#include "config.h"

#include <math.h>
#include <string.h>

#include <glib.h>
#include <glib/gstdio.h>

#include "plugin-core.h"

#define SIZE 32   /* the training picture's side */

static gchar *tmp_dir;
static gchar *model_dir;   /* $DDPM_MODEL_DIR: no default model in it */
static gchar *model_file;  /* trained by /plugin/core/train/job */

/* ------------------------------------------------------------- recording */

/* What a job reported through its PluginProgressFunc. */
typedef struct
{
  gint     n_begin;
  gchar   *title;
  gint     n_steps;
  gchar   *last_text;
  gdouble  last_fraction;
  gboolean cancel;   /* answer FALSE to the steps */
} Progress;

static gboolean
record_progress (const gchar *text,
                 gdouble      fraction,
                 gboolean     begin,
                 gpointer     user_data)
{
  Progress *p = user_data;

  if (begin)
    {
      p->n_begin++;
      g_free (p->title);
      p->title = g_strdup (text);
      g_assert_cmpfloat (fraction, ==, 0.0);
      return TRUE;
    }
  p->n_steps++;
  g_free (p->last_text);
  p->last_text = g_strdup (text);
  p->last_fraction = fraction;
  return !p->cancel;
}

static void
progress_clear (Progress *p)
{
  g_free (p->title);
  g_free (p->last_text);
  memset (p, 0, sizeof *p);
}

/* A smooth colour picture (3, h, w) in [−1, 1] with some texture. */
static float *
make_planes (gint h, gint w)
{
  float *planes = g_new (float, 3 * h * w);

  for (gint c = 0; c < 3; c++)
    for (gint y = 0; y < h; y++)
      for (gint x = 0; x < w; x++)
        planes[(c * h + y) * w + x] =
          0.6f * sinf (0.3f * x + 0.7f * c) * cosf (0.2f * y - 0.4f * c);
  return planes;
}

/* ----------------------------------------------------------------- values */

static void
test_values (void)
{
  PluginRenoiseValues renoise = plugin_renoise_defaults;
  PluginDenoiseValues denoise = plugin_denoise_defaults;
  gchar field[8];
  GError *error = NULL;

  /* The defaults are valid; generate differs by its strength only. */
  g_assert_true (plugin_renoise_values_validate (&renoise, &error));
  g_assert_no_error (error);
  g_assert_cmpfloat (plugin_generate_defaults.strength, ==, 1.0);
  g_assert_cmpint (plugin_generate_defaults.steps, ==, renoise.steps);
  g_assert_cmpint (plugin_denoise_defaults.steps, ==, 5);
  g_assert_cmpstr (plugin_train_defaults.preset, ==, "tiny");

  renoise.strength = 1.5;
  g_assert_false (plugin_renoise_values_validate (&renoise, &error));
  g_assert_error (error, DDPM_ERROR, DDPM_ERROR_INVALID_ARGUMENT);
  g_assert_cmpstr (error->message, ==,
                   "The strength must be between 0 and 1, not 1.5.");
  g_clear_error (&error);

  /* The precision: the three choices pass, in the dialog's order, with
   * the CLI's names; anything else is refused for renoise and denoise
   * alike (the GIMP 2.10 PDB argument is a plain integer). */
  renoise.strength = 0.5;
  g_assert_cmpint (plugin_n_precision_choices, ==, 3);
  for (gint i = 0; i < plugin_n_precision_choices; i++)
    {
      static const gchar *const names[] = { "auto", "fp32", "bf16" };

      g_assert_cmpstr (plugin_precision_choices[i].name, ==, names[i]);
      renoise.precision = plugin_precision_choices[i].value;
      g_assert_true (plugin_renoise_values_validate (&renoise, &error));
      g_assert_no_error (error);
    }
  g_assert_cmpint (plugin_renoise_defaults.precision, ==, DDPM_PRECISION_AUTO);
  for (gint bad = -1; bad <= 7; bad += 8)
    {
      gchar *expected = g_strdup_printf ("Unknown precision %d.", bad);

      renoise.precision = bad;
      g_assert_false (plugin_renoise_values_validate (&renoise, &error));
      g_assert_error (error, DDPM_ERROR, DDPM_ERROR_INVALID_ARGUMENT);
      g_assert_cmpstr (error->message, ==, expected);
      g_clear_error (&error);
      denoise.precision = bad;
      g_assert_false (plugin_denoise_values_validate (&denoise, &error));
      g_assert_cmpstr (error->message, ==, expected);
      g_clear_error (&error);
      g_free (expected);
    }
  renoise.precision = DDPM_PRECISION_AUTO;
  denoise.precision = DDPM_PRECISION_AUTO;
  /* "auto" says what it means on this CPU */
  g_assert_true (strstr (plugin_precision_auto_label (),
                         ddpm_precision_resolve (DDPM_PRECISION_AUTO) == DDPM_PRECISION_BF16
                         ? "bf16" : "fp32") != NULL);

  renoise.strength = 0.0;
  renoise.steps = 0;
  g_assert_false (plugin_renoise_values_validate (&renoise, &error));
  g_assert_cmpstr (error->message, ==,
                   "The number of steps must be at least 1, not 0.");
  g_clear_error (&error);

  /* Denoise: a negative σ means "estimate" and becomes 0. */
  denoise.sigma = -0.3;
  g_assert_true (plugin_denoise_values_validate (&denoise, &error));
  g_assert_cmpfloat (denoise.sigma, ==, 0.0);
  denoise.sigma = 1.5;
  g_assert_false (plugin_denoise_values_validate (&denoise, &error));
  g_assert_true (g_str_has_prefix (error->message,
                                   "The noise level must be at most 1"));
  g_assert_true (g_str_has_suffix (error->message, "not 1.5."));
  g_clear_error (&error);
  denoise.sigma = NAN;
  g_assert_false (plugin_denoise_values_validate (&denoise, &error));
  g_clear_error (&error);
  denoise.sigma = 0.1;
  denoise.steps = -2;
  g_assert_false (plugin_denoise_values_validate (&denoise, &error));
  g_assert_cmpstr (error->message, ==,
                   "The number of steps must be at least 1, not -2.");
  g_clear_error (&error);

  g_assert_true (plugin_copy_string (field, sizeof field, "seven", "model", &error));
  g_assert_cmpstr (field, ==, "seven");
  g_assert_true (plugin_copy_string (field, sizeof field, NULL, "model", &error));
  g_assert_cmpstr (field, ==, "");
  g_assert_false (plugin_copy_string (field, sizeof field, "eight ch", "model", &error));
  g_assert_cmpstr (error->message, ==,
                   "The argument “model” is too long (at most 7 bytes).");
  g_clear_error (&error);

  plugin_set_region_error (&error, 30000, 20000);
  g_assert_error (error, DDPM_ERROR, DDPM_ERROR_NO_MEMORY);
  g_assert_cmpstr (error->message, ==,
                   "Not enough memory for a 30000 × 20000 region: select a "
                   "smaller part of the layer.");
  g_clear_error (&error);
}

/* ------------------------------------------------------------------ paths */

static void
test_paths (void)
{
  gchar *user = plugin_user_model_path ("my-model");
  gchar *expected = g_build_filename (tmp_dir, "xdg", "gimp-ddpm", "models",
                                      "my-model.safetensors", NULL);
  gchar *installed = g_build_filename (model_dir, "default.safetensors", NULL);
  gchar *path;

  g_assert_cmpstr (user, ==, expected);

  /* None exists: the last place looked, so that an error can name it. */
  path = plugin_default_model_path ();
  g_assert_cmpstr (path, ==, installed);
  g_free (path);

  /* No locale folder for the user: the installed one. */
  g_assert_cmpstr (plugin_locale_dir (), ==, LOCALEDIR);

  g_free (installed);
  g_free (expected);
  g_free (user);
}

/* ------------------------------------------------------------- model cache */

static void
test_model_cache_errors (void)
{
  gchar *corrupt = g_build_filename (tmp_dir, "corrupt.safetensors", NULL);
  gchar *missing_default = g_build_filename (model_dir, "default.safetensors", NULL);
  GError *error = NULL;

  g_assert_true (g_file_set_contents (corrupt, "not a model", -1, NULL));

  /* What a render says. */
  g_assert_null (plugin_model_get ("", &error));
  g_assert_error (error, DDPM_ERROR, DDPM_ERROR_IO);
  g_assert_true (g_str_has_prefix (error->message,
                                   "No diffusion model is installed.  Looked for:\n  "));
  g_assert_nonnull (strstr (error->message, missing_default));
  g_clear_error (&error);

  g_assert_null (plugin_model_get ("/nonexistent/x.safetensors", &error));
  g_assert_cmpstr (error->message, ==,
                   "The model file “/nonexistent/x.safetensors” does not exist.");
  g_clear_error (&error);

  g_assert_null (plugin_model_get (corrupt, &error));
  g_assert_true (g_str_has_prefix (error->message,
                                   "The diffusion model could not be loaded: "));
  g_clear_error (&error);

  /* What a dialog's plan line says. */
  g_assert_null (plugin_model_get_schedule (missing_default, TRUE, &error));
  g_assert_cmpstr (error->message, ==,
                   "No diffusion model is installed yet: choose a model file, "
                   "or train one with Filters ▸ Diffusion ▸ Train Model.");
  g_clear_error (&error);

  g_assert_null (plugin_model_get_schedule (corrupt, FALSE, &error));
  g_assert_true (g_str_has_prefix (error->message,
                                   "Cannot use the model “corrupt.safetensors”: "));
  g_clear_error (&error);

  g_free (missing_default);
  g_free (corrupt);
}

/* ------------------------------------------------------------------- plan */

static void
test_renoise_plan_text (void)
{
  DdpmSchedule *s = ddpm_schedule_new (DDPM_SCHEDULE_LINEAR, 1000, NULL);
  GError *error = NULL;
  gchar *text;

  text = plugin_renoise_plan_text (s, FALSE, 0.4, 20, &error);
  g_assert_cmpstr (text, ==, "Noise to t = 400 of 1000, then 20 denoising steps");
  g_free (text);
  text = plugin_renoise_plan_text (s, FALSE, 0.4, 1, &error);
  g_assert_cmpstr (text, ==, "Noise to t = 400 of 1000, then 1 denoising step");
  g_free (text);
  /* At most t0 distinct steps below t0. */
  text = plugin_renoise_plan_text (s, FALSE, 0.01, 20, &error);
  g_assert_cmpstr (text, ==, "Noise to t = 10 of 1000, then 10 denoising steps");
  g_free (text);
  text = plugin_renoise_plan_text (s, FALSE, 0.0, 20, &error);
  g_assert_cmpstr (text, ==, "Strength 0: the layer stays unchanged");
  g_free (text);
  /* Generate ignores the strength. */
  text = plugin_renoise_plan_text (s, TRUE, 0.3, 50, &error);
  g_assert_cmpstr (text, ==,
                   "Start from pure noise at t = 1000 of 1000, then 50 denoising steps");
  g_free (text);
  g_assert_no_error (error);

  g_assert_null (plugin_renoise_plan_text (s, FALSE, 0.5, 0, &error));
  g_assert_error (error, DDPM_ERROR, DDPM_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);
  ddpm_schedule_free (s);
}

static void
test_denoise_plan (void)
{
  DdpmSchedule *s = ddpm_schedule_new (DDPM_SCHEDULE_LINEAR, 1000, NULL);
  double sigma = 25.0 / 255.0;
  int t_engine = ddpm_denoise_sigma_to_t (s, sigma, NULL);
  double highest = s->sqrt_recipm1_alpha_bar[s->T] / 2.0;
  gboolean is_error;
  GError *error = NULL;
  gint t, n_steps;
  gchar *text, *expected;

  g_assert_cmpint (t_engine, >, 5);

  /* The plan: the engine's t, steps capped at it. */
  g_assert_true (plugin_denoise_plan (s, sigma, 5, &t, &n_steps, &error));
  g_assert_cmpint (t, ==, t_engine);
  g_assert_cmpint (n_steps, ==, 5);
  g_assert_true (plugin_denoise_plan (s, sigma, 5000, &t, &n_steps, &error));
  g_assert_cmpint (n_steps, ==, t_engine);
  g_assert_true (plugin_denoise_plan (s, 0.0, 5, &t, &n_steps, &error));
  g_assert_cmpint (n_steps, ==, 0);
  g_assert_no_error (error);
  g_assert_false (plugin_denoise_plan (s, sigma, 0, &t, &n_steps, &error));
  g_assert_cmpstr (error->message, ==,
                   "The number of steps must be at least 1, not 0.");
  g_clear_error (&error);

  /* The plan line. */
  text = plugin_denoise_plan_text (s, sigma, FALSE, NULL, 5, &is_error);
  expected = g_strdup_printf ("Start at t = %d of 1000, then 5 denoising steps",
                              t_engine);
  g_assert_cmpstr (text, ==, expected);
  g_assert_false (is_error);
  g_free (expected);
  g_free (text);

  text = plugin_denoise_plan_text (s, 0.0, FALSE, NULL, 5, &is_error);
  g_assert_cmpstr (text, ==, "Set a noise level above 0, or estimate it from the layer.");
  g_assert_true (is_error);
  g_free (text);

  text = plugin_denoise_plan_text (s, 0.0, TRUE, NULL, 5, &is_error);
  g_assert_cmpstr (text, ==, "No noise found in the layer: it stays unchanged");
  g_assert_false (is_error);
  g_free (text);

  text = plugin_denoise_plan_text (s, sigma, TRUE, "too small", 5, &is_error);
  g_assert_cmpstr (text, ==, "Cannot estimate the noise: too small");
  g_assert_true (is_error);
  g_free (text);

  text = plugin_denoise_plan_text (s, 2.0 * highest, FALSE, NULL, 5, &is_error);
  expected = g_strdup_printf ("The noise level %.1f (of 255) is more than this "
                              "model can remove (at most %.1f).",
                              2.0 * highest * 255.0, highest * 255.0);
  g_assert_cmpstr (text, ==, expected);
  g_assert_true (is_error);
  g_free (expected);
  g_free (text);

  ddpm_schedule_free (s);
}

/* --------------------------------------------------------------- train job */

/* Train model_file through the core's train job: two steps of the tiny
 * preset on 16-pixel patches of a SIZE² picture. */
static void
train_model (Progress *progress)
{
  PluginTrainValues vals = plugin_train_defaults;
  DdpmTrainParams params;
  float *planes = make_planes (SIZE, SIZE);
  GError *error = NULL;

  g_strlcpy (vals.output, model_file, sizeof vals.output);
  vals.patch_size = 16;
  vals.iterations = 2;
  vals.seed = 5;
  g_assert_true (plugin_train_job_prepare (&vals, 3, SIZE, SIZE, &params, &error));
  g_assert_no_error (error);
  g_assert_cmpint (params.config.in_channels, ==, 3);
  g_assert_cmpint (params.config.image_size, ==, 16);
  g_assert_cmpint (params.steps, ==, 2);
  g_assert_cmpstr (params.out_path, ==, model_file);
  g_assert_null (params.resume_path);

  params.batch = 2;    /* a model that runs, quickly */
  params.warmup = 1;
  g_assert_true (plugin_train_job_run (&params, planes, 3, SIZE, SIZE,
                                       progress ? record_progress : NULL,
                                       progress, &error));
  g_assert_no_error (error);
  g_assert_true (g_file_test (model_file, G_FILE_TEST_IS_REGULAR));
  g_free (planes);
}

/* The tests that run a model train it first if /plugin/core/train/job has
 * not (GLib runs the tests grouped by path). */
static void
need_model (void)
{
  if (!g_file_test (model_file, G_FILE_TEST_IS_REGULAR))
    train_model (NULL);
}

static void
test_train_job (void)
{
  PluginTrainValues vals = plugin_train_defaults;
  DdpmTrainParams params;
  Progress progress = { 0 };
  GError *error = NULL;

  /* What cannot run says why, before anything is written. */
  g_assert_false (plugin_train_job_prepare (&vals, 3, SIZE, SIZE, &params, &error));
  g_assert_cmpstr (error->message, ==, "No output file given for the model.");
  g_clear_error (&error);

  g_strlcpy (vals.output, model_file, sizeof vals.output);
  g_assert_false (plugin_train_job_prepare (&vals, 3, 0, 0, &params, &error));
  g_assert_cmpstr (error->message, ==,
                   "The selection does not touch this layer: there are no "
                   "pixels to learn from.");
  g_clear_error (&error);

  /* A layer beyond the engine's limits, before any pixel is read. */
  g_assert_false (plugin_train_job_prepare (&vals, 3, 9000, 8000, &params, &error));
  g_assert_error (error, DDPM_ERROR, DDPM_ERROR_UNSUPPORTED);
  g_assert_nonnull (strstr (error->message, "9000 × 8000"));
  g_clear_error (&error);

  vals.patch_size = 40;
  g_assert_false (plugin_train_job_prepare (&vals, 3, SIZE, SIZE, &params, &error));
  g_assert_cmpstr (error->message, ==,
                   "The patch size 40 does not fit: the pixels to learn from "
                   "are 32 × 32, so it must be between 8 and 32.");
  g_clear_error (&error);

  train_model (&progress);
  g_assert_cmpint (progress.n_begin, ==, 1);
  g_assert_cmpstr (progress.title, ==, "Training a diffusion model");
  g_assert_cmpint (progress.n_steps, >=, 1);
  g_assert_true (g_str_has_prefix (progress.last_text, "Training: step 2 of 2, loss "));
  g_assert_true (g_str_has_suffix (progress.last_text, " s left"));
  g_assert_cmpfloat (progress.last_fraction, ==, 1.0);

  progress_clear (&progress);
}

static void
test_model_cache (void)
{
  GError *error = NULL;
  DdpmModel *model, *again;
  DdpmSchedule *schedule;

  need_model ();

  /* Loaded once: the dialog's schedule and the renders share it. */
  model = plugin_model_get (model_file, &error);
  g_assert_no_error (error);
  g_assert_nonnull (model);
  schedule = plugin_model_get_schedule (model_file, FALSE, &error);
  g_assert_no_error (error);
  again = plugin_model_get (model_file, &error);
  g_assert_true (again == model);

  /* The schedule is a copy of the model's. */
  g_assert_true (schedule != ddpm_model_get_schedule (model));
  g_assert_cmpint (schedule->T, ==, ddpm_model_get_schedule (model)->T);
  g_assert_cmpfloat (schedule->alpha_bar[schedule->T], ==,
                     ddpm_model_get_schedule (model)->alpha_bar[schedule->T]);
  ddpm_schedule_free (schedule);

  /* A failed load leaves the cached model in place. */
  g_assert_null (plugin_model_get ("/nonexistent/x.safetensors", &error));
  g_clear_error (&error);
  g_assert_true (plugin_model_get (model_file, &error) == model);
}

/* -------------------------------------------------------------- render job */

static void
test_render_context (void)
{
  PluginRenderPlan plan = { 0 };
  PluginRect target = { 8, 4, 10, 10 };
  PluginRect context;
  GError *error = NULL;

  plan.margin = 8;
  plan.channels = 3;
  g_assert_true (plugin_render_context (&plan, &target, 40, 30, TRUE, &context, &error));
  g_assert_no_error (error);
  g_assert_cmpint (context.x, ==, 0);
  g_assert_cmpint (context.y, ==, 0);
  g_assert_cmpint (context.width, ==, 26);   /* 8 + 10 + 8 */
  g_assert_cmpint (context.height, ==, 22);  /* 4 + 10 + 8 */

  /* Clipped to the layer on the far side too. */
  target = (PluginRect) { 30, 20, 10, 10 };
  g_assert_true (plugin_render_context (&plan, &target, 40, 30, TRUE, &context, &error));
  g_assert_cmpint (context.x, ==, 22);
  g_assert_cmpint (context.y, ==, 12);
  g_assert_cmpint (context.width, ==, 18);
  g_assert_cmpint (context.height, ==, 18);

  /* No selection: the target alone. */
  g_assert_true (plugin_render_context (&plan, &target, 40, 30, FALSE, &context, &error));
  g_assert_cmpmem (&context, sizeof context, &target, sizeof target);
  g_assert_no_error (error);
}

/* A region beyond the engine's pixel budget (DDPM_IMAGE_MAX_PIXELS = 2^26)
 * is refused with the limits' error when its context is decided, before
 * the front end reads (allocates) a single pixel; the largest allowed one
 * passes.  Only sizes are handled here: nothing of that size is made. */
static void
test_render_context_limits (void)
{
  PluginRenderPlan plan = { 0 };
  PluginRect target, context;
  GError *error = NULL;

  plan.margin = 8;
  plan.channels = 3;

  /* A whole 8192 × 8192 layer: exactly the budget. */
  target = (PluginRect) { 0, 0, 8192, 8192 };
  g_assert_true (plugin_render_context (&plan, &target, 8192, 8192, FALSE, &context, &error));
  g_assert_no_error (error);

  /* A 9000 × 8000 layer, no selection. */
  target = (PluginRect) { 0, 0, 9000, 8000 };
  g_assert_false (plugin_render_context (&plan, &target, 9000, 8000, FALSE, &context, &error));
  g_assert_error (error, DDPM_ERROR, DDPM_ERROR_UNSUPPORTED);
  g_assert_nonnull (strstr (error->message, "The area to work on is 9000 × 8000 pixels"));
  g_clear_error (&error);

  /* An 8192² selection inside a larger layer: its margin takes it over. */
  target = (PluginRect) { 100, 100, 8192, 8192 };
  g_assert_false (plugin_render_context (&plan, &target, 20000, 20000, TRUE, &context, &error));
  g_assert_error (error, DDPM_ERROR, DDPM_ERROR_UNSUPPORTED);
  g_assert_nonnull (strstr (error->message, "8208 × 8208"));
  g_clear_error (&error);

  /* A selection at the far end of a layer of the largest size GIMP
   * allows: the margin arithmetic does not wrap. */
  target = (PluginRect) { G_MAXINT - 12, 0, 10, 10 };
  g_assert_true (plugin_render_context (&plan, &target, G_MAXINT, 100, TRUE, &context, &error));
  g_assert_no_error (error);
  g_assert_cmpint (context.x, ==, G_MAXINT - 20);
  g_assert_cmpint (context.width, ==, 20);   /* clipped at the layer's edge */

  /* The check the other procedures ask before reading a layer. */
  g_assert_true (plugin_region_check (8192, 8192, 1, &error));
  g_assert_no_error (error);
  g_assert_false (plugin_region_check (8193, 8192, 1, &error));
  g_assert_error (error, DDPM_ERROR, DDPM_ERROR_UNSUPPORTED);
  g_clear_error (&error);
}

static void
test_render_jobs (void)
{
  PluginRenoiseValues renoise = plugin_renoise_defaults;
  PluginDenoiseValues denoise = plugin_denoise_defaults;
  PluginRenderJob job;
  PluginRenderPlan plan;
  GError *error = NULL;

  need_model ();
  g_strlcpy (renoise.model, model_file, sizeof renoise.model);
  g_strlcpy (denoise.model, model_file, sizeof denoise.model);

  /* Renoise keeps the colour of a gray model's change, generate does not. */
  plugin_render_job_init_renoise (&job, &renoise, FALSE);
  g_assert_cmpint (job.kind, ==, PLUGIN_RENDER_RENOISE);
  g_assert_cmpfloat (job.strength, ==, 0.5);
  g_assert_true (job.keep_chroma);
  g_assert_cmpstr (job.progress_title, ==, "Renoising");
  g_assert_true (plugin_render_job_plan (&job, &plan, &error));
  g_assert_no_error (error);
  g_assert_cmpint (plan.n_steps, ==, 20);
  g_assert_cmpint (plan.channels, ==, 3);
  g_assert_cmpint (plan.margin, ==, 8);      /* half the 16-pixel tile */

  plugin_render_job_init_renoise (&job, &renoise, TRUE);
  g_assert_cmpint (job.kind, ==, PLUGIN_RENDER_GENERATE);
  g_assert_cmpfloat (job.strength, ==, 1.0);
  g_assert_false (job.keep_chroma);
  g_assert_cmpstr (job.progress_title, ==, "Generating");

  /* Strength 0, and a denoise with no noise: nothing to do. */
  renoise.strength = 0.0;
  plugin_render_job_init_renoise (&job, &renoise, FALSE);
  g_assert_true (plugin_render_job_plan (&job, &plan, &error));
  g_assert_cmpint (plan.n_steps, ==, 0);
  plugin_render_job_init_denoise (&job, &denoise, 0.0);
  g_assert_cmpint (job.kind, ==, PLUGIN_RENDER_DENOISE);
  g_assert_cmpstr (job.progress_title, ==, "Denoising");
  g_assert_true (plugin_render_job_plan (&job, &plan, &error));
  g_assert_cmpint (plan.n_steps, ==, 0);
  plugin_render_job_init_denoise (&job, &denoise, 0.1);
  g_assert_true (plugin_render_job_plan (&job, &plan, &error));
  g_assert_cmpint (plan.n_steps, ==, 5);
  g_assert_no_error (error);

  /* Every sampler a dialog offers runs, DPM-Solver++ included. */
  g_assert_cmpint (plugin_n_sampler_choices, ==, DDPM_SAMPLER_COUNT);
  for (gint k = 0; k < plugin_n_sampler_choices; k++)
    {
      g_assert_cmpint (plugin_sampler_choices[k].value, ==, k);
      renoise.sampler = plugin_sampler_choices[k].value;
      plugin_render_job_init_renoise (&job, &renoise, FALSE);
      g_assert_true (plugin_render_job_check (&job, &error));
      g_assert_true (plugin_renoise_values_validate (&renoise, &error));
      g_assert_no_error (error);
    }

  /* What cannot run. */
  renoise.sampler = 7;
  plugin_render_job_init_renoise (&job, &renoise, FALSE);
  g_assert_false (plugin_render_job_check (&job, &error));
  g_assert_cmpstr (error->message, ==,
                   "Unknown sampler 7: use 0 (DDPM), 1 (DDIM) or 2 (DPM-Solver++).");
  g_clear_error (&error);
  renoise.model[0] = '\0';  /* the default: there is none */
  g_assert_false (plugin_render_job_plan (&job, &plan, &error));
  g_assert_error (error, DDPM_ERROR, DDPM_ERROR_IO);
  g_clear_error (&error);
}

/* A render with a selection: the job's output, composited by the mask as
 * GIMP's merge does, is the engine's own composite, and the unselected
 * pixels are the original bit for bit. */
static void
test_render_selection (void)
{
  const gint H = 20, W = 24;   /* more than a 16-pixel tile: tiled */
  const gsize n = (gsize) H * W;
  PluginRenoiseValues vals = plugin_renoise_defaults;
  PluginRenderJob job;
  PluginRenderPlan plan;
  DdpmSampleParams params;
  Progress progress = { 0 };
  float *planes, *original, *oracle, *mask;
  gsize n_changed = 0;
  GError *error = NULL;

  need_model ();

  g_strlcpy (vals.model, model_file, sizeof vals.model);
  vals.strength = 0.3;
  vals.steps = 4;
  vals.seed = 1234;
  vals.sampler = DDPM_SAMPLER_DDPM;
  plugin_render_job_init_renoise (&job, &vals, FALSE);
  g_assert_true (plugin_render_job_check (&job, &error));
  g_assert_true (plugin_render_job_plan (&job, &plan, &error));
  g_assert_no_error (error);
  g_assert_cmpint (plan.n_steps, ==, 4);

  planes = make_planes (H, W);
  original = g_new (float, 3 * n);
  oracle = g_new (float, 3 * n);
  memcpy (original, planes, 3 * n * sizeof (float));
  memcpy (oracle, planes, 3 * n * sizeof (float));
  /* Unselected on the left, feathered in the middle, selected right. */
  mask = g_new (float, n);
  for (gint y = 0; y < H; y++)
    for (gint x = 0; x < W; x++)
      mask[y * W + x] = x < 8 ? 0.0f : x < 12 ? 0.25f * (x - 7) : 1.0f;

  g_assert_true (plugin_render_job_run (&job, &plan, planes, original, mask,
                                        H, W, record_progress, &progress,
                                        &error));
  g_assert_no_error (error);
  g_assert_cmpint (progress.n_begin, ==, 1);
  g_assert_cmpstr (progress.title, ==, "Renoising");
  g_assert_cmpstr (progress.last_text, ==, "Denoising: step 4 of 4");
  g_assert_cmpfloat (progress.last_fraction, ==, 1.0);

  /* The oracle: the engine itself, with the same parameters. */
  ddpm_sample_params_init (&params);
  params.sampler = DDPM_SAMPLER_DDPM;
  params.steps = 4;
  params.seed = 1234;
  params.strength = 0.3;
  g_assert_true (ddpm_img2img (oracle, mask, 3, H, W, plan.schedule,
                               &plan.denoiser, &params, &error));
  g_assert_no_error (error);

  for (gsize k = 0; k < 3 * n; k++)
    {
      float m = mask[k % n];

      if (m == 0.0f)
        g_assert_cmpfloat (planes[k], ==, original[k]);
      else
        g_assert_cmpfloat_with_epsilon (m * planes[k] + (1.0f - m) * original[k],
                                        oracle[k], 1e-5);
      if (fabsf (planes[k] - original[k]) > 1e-3f)
        n_changed++;
    }
  /* The model did something to the selected part. */
  g_assert_cmpuint (n_changed, >, n);

  /* Cancelled from the progress callback: an error, the planes as read. */
  memcpy (planes, original, 3 * n * sizeof (float));
  progress_clear (&progress);
  progress.cancel = TRUE;
  g_assert_false (plugin_render_job_run (&job, &plan, planes, original, mask,
                                         H, W, record_progress, &progress,
                                         &error));
  g_assert_error (error, DDPM_ERROR, DDPM_ERROR_CANCELLED);
  g_clear_error (&error);
  g_assert_cmpmem (planes, 3 * n * sizeof (float), original, 3 * n * sizeof (float));

  progress_clear (&progress);
  g_free (mask);
  g_free (oracle);
  g_free (original);
  g_free (planes);
}

static void
test_estimate_noise (void)
{
  const gint H = 64, W = 64;
  float *planes = g_new (float, H * W);
  double oracle;
  gdouble sigma = -1.0;
  GError *error = NULL;

  /* Noise of σ = 0.1 on the [0, 1] scale is 0.2 on [−1, 1]. */
  ddpm_rng_normal_fill (planes, (gsize) H * W, 42, 0, 0);
  for (gint i = 0; i < H * W; i++)
    planes[i] *= 0.2f;
  g_assert_true (ddpm_estimate_noise_sigma (planes, 1, H, W, &oracle, NULL));
  g_assert_true (plugin_estimate_noise (planes, 1, H, W, &sigma, &error));
  g_assert_no_error (error);
  g_assert_cmpfloat (sigma, ==, oracle / 2.0);
  g_assert_cmpfloat_with_epsilon (sigma, 0.1, 0.01);

  /* Too small to say: no noise. */
  g_assert_true (plugin_estimate_noise (planes, 1, 1, W, &sigma, &error));
  g_assert_cmpfloat (sigma, ==, 0.0);
  g_free (planes);
}

/* ------------------------------------------------------------------- main */

int
main (int argc, char **argv)
{
  gchar *xdg;
  int status;

  /* Before GLib reads them (g_get_user_data_dir caches its answer). */
  tmp_dir = g_dir_make_tmp ("test-plugin-core-XXXXXX", NULL);
  g_assert_nonnull (tmp_dir);
  xdg = g_build_filename (tmp_dir, "xdg", NULL);
  model_dir = g_build_filename (tmp_dir, "models", NULL);
  g_mkdir_with_parents (model_dir, 0755);
  g_setenv ("XDG_DATA_HOME", xdg, TRUE);
  g_setenv ("DDPM_MODEL_DIR", model_dir, TRUE);
  model_file = g_build_filename (tmp_dir, "trained", "tiny.safetensors", NULL);

  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/plugin/core/values", test_values);
  g_test_add_func ("/plugin/core/paths", test_paths);
  g_test_add_func ("/plugin/core/model-cache/errors", test_model_cache_errors);
  g_test_add_func ("/plugin/core/plan/renoise-text", test_renoise_plan_text);
  g_test_add_func ("/plugin/core/plan/denoise", test_denoise_plan);
  g_test_add_func ("/plugin/core/train/job", test_train_job);
  g_test_add_func ("/plugin/core/model-cache/shared", test_model_cache);
  g_test_add_func ("/plugin/core/render/context", test_render_context);
  g_test_add_func ("/plugin/core/render/context-limits", test_render_context_limits);
  g_test_add_func ("/plugin/core/render/jobs", test_render_jobs);
  g_test_add_func ("/plugin/core/render/selection", test_render_selection);
  g_test_add_func ("/plugin/core/estimate-noise", test_estimate_noise);

  status = g_test_run ();

  if (status == 0)
    {
      /* Leave the folder for a look when something failed. */
      gchar *argv_rm[] = { "rm", "-rf", tmp_dir, NULL };

      g_spawn_sync (NULL, argv_rm, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL,
                    NULL, NULL, NULL, NULL);
    }
  g_free (model_file);
  g_free (model_dir);
  g_free (xdg);
  g_free (tmp_dir);
  return status;
}
