/* cli.h: the subcommands of the `ddpm` command and what they share. */
#ifndef DDPM_CLI_H
#define DDPM_CLI_H

#include <glib.h>

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

/* Print "ddpm COMMAND: message" to stderr and return `code`. */
int cli_fail (const char *command, int code, const char *format, ...) G_GNUC_PRINTF (3, 4);

/* Parse argv with `context`; on failure print the reason and a hint. */
gboolean cli_parse (GOptionContext *context, const char *command,
                    int *argc, char ***argv);

/* A double in the C locale, shortest form that reads back exactly. */
const char *cli_format_double (char buf[G_ASCII_DTOSTR_BUF_SIZE], double v);

#endif /* DDPM_CLI_H */
