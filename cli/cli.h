/* cli.h: the subcommands of the `ddpm` command and what they share.  The
 * command uses libddpm through its public header ddpm.h only. */
#ifndef DDPM_CLI_H
#define DDPM_CLI_H

#include <glib.h>

#include "ddpm.h"

/* Exit codes: 0 success, 1 the work failed, 2 the command line was wrong. */
enum { CLI_EXIT_OK = 0, CLI_EXIT_FAILURE = 1, CLI_EXIT_USAGE = 2 };

typedef int (*CliCommandFunc) (int argc, char **argv);

typedef struct
{
  const char     *name;
  const char     *summary;
  CliCommandFunc  run;
} CliCommand;

int cli_schedule (int argc, char **argv);
int cli_train (int argc, char **argv);
int cli_info (int argc, char **argv);
int cli_renoise (int argc, char **argv);
int cli_sample (int argc, char **argv);
int cli_eval (int argc, char **argv);
int cli_import (int argc, char **argv);
int cli_forward (int argc, char **argv);

/* Print "ddpm COMMAND: message" to stderr and return `code`. */
int cli_fail (const char *command, int code, const char *format, ...) G_GNUC_PRINTF (3, 4);

/* Parse argv with `context`; on failure print the reason and a hint. */
gboolean cli_parse (GOptionContext *context, const char *command,
                    int *argc, char ***argv);

/* A double in the C locale, shortest form that reads back exactly. */
const char *cli_format_double (char buf[G_ASCII_DTOSTR_BUF_SIZE], double v);

/* Progress lines (progress.c): pass cli_progress_report as the engine's
 * DdpmProgressFunc with a CliProgress as its data; it cancels the work
 * once Ctrl-C was pressed (after cli_catch_interrupt). */
typedef struct
{
  const char *unit;          /* "step" */
  gboolean    tty;
  gint64      last_print_us;
  int         last_step;
} CliProgress;

void     cli_progress_init   (CliProgress *progress, const char *unit);
gboolean cli_progress_report (const DdpmProgress *p, gpointer user_data);
void     cli_catch_interrupt (void);
gboolean cli_was_interrupted (void);
void     cli_format_duration (char *buf, gsize size, double seconds);

/* Sampler options shared by `renoise`, `sample`, `denoise` and
 * `denoise-eval` (sampling.c).  cli_sample_options_add starts `params`
 * from ddpm_sample_params_init and parses the numbers and switches
 * straight into it, so an option not given keeps the engine's default;
 * the names are read into it by cli_sample_options_resolve. */
typedef struct
{
  DdpmSampleParams params;
  char            *model;
  char            *sampler;
  char            *variance;
  char            *spacing;
  char            *precision;
} CliSampleOptions;

void       cli_sample_options_add     (GOptionContext *context, CliSampleOptions *options);
void       cli_sample_options_clear   (CliSampleOptions *options);
/* Check the options and fill params: options->params with the sampler,
 * variance, spacing and precision names read. */
gboolean   cli_sample_options_resolve (const CliSampleOptions *options,
                                       DdpmSampleParams       *params,
                                       GError                **error);
/* The model at path, or the default model when path is NULL or "". */
DdpmModel *cli_load_model             (const char *path, GError **error);
/* Run img2img on image ([0, 1] pixels, in place; alpha untouched) in the
 * model's channels; mask (H, W) in [0, 1] or NULL. */
gboolean   cli_run_img2img            (DdpmModel              *model,
                                       DdpmImage              *image,
                                       const float            *mask,
                                       const DdpmSampleParams *params,
                                       GError                **error);

/* The same for ddpm_denoise with noise level sigma ([0, 1] pixel scale). */
gboolean   cli_run_denoise            (DdpmModel              *model,
                                       DdpmImage              *image,
                                       const float            *mask,
                                       double                  sigma,
                                       const DdpmSampleParams *params,
                                       GError                **error);

/* `ddpm denoise` and `ddpm denoise-eval` (denoise.c). */
int cli_denoise (int argc, char **argv);
int cli_denoise_eval (int argc, char **argv);

/* IN OUT commands (renoise, denoise): after parsing, argv holds exactly the
 * command and two files, --bit-depth is 8 or 16 and OUT is a PNG name
 * (cli_check_png_out); else print why. */
gboolean   cli_check_in_out           (const char *command, int argc, char **argv,
                                       int bit_depth);
/* An output we write: PNG only, so a name with another extension (.jpg)
 * is refused with a message; else TRUE. */
gboolean   cli_check_png_out          (const char *command, const char *path);

#endif /* DDPM_CLI_H */
