/* opts.h -- GNU-style command-line options with environment fallback.
 *
 * Options and positional arguments may come in any order; `--name value`,
 * `--name=value` and `-o value` (for options with a short name) all work; `--` ends
 * the options. An option not given on the command line is read from its environment
 * variable, if it has one: flags win over the environment, which wins over defaults. */
#ifndef PYRT_OPTS_H
#define PYRT_OPTS_H

#include <stdbool.h>
#include <stddef.h>

#include "common/err.h" /* PYRT_ERR_LEN, for every command's err buffer */

typedef enum opt_kind {
    OPT_FLAG,   /* bool *            no value; env: 1/true/yes/on or 0/false/no/off */
    OPT_STRING, /* const char **     points into argv or the environment */
    OPT_LONG,   /* long *            integer within [min, max] */
    OPT_DOUBLE, /* double *          finite number within [min, max] */
    OPT_SIZE,   /* size_t *          bytes, with an optional K, M or G suffix (1024-based) */
    OPT_MULTI,  /* opt_list_t *      may repeat; each value is appended */
} opt_kind_t;

typedef struct opt_list {
    const char *items[64];
    int count;
} opt_list_t;

typedef struct opt_spec {
    const char *name; /* long name, without the leading dashes */
    char short_name;  /* 0 for none */
    opt_kind_t kind;
    void *target;
    const char *env;     /* environment variable, or NULL for none */
    double min, max;     /* bounds for OPT_LONG / OPT_DOUBLE / OPT_SIZE */
    const char *metavar; /* for help: --port PORT */
    const char *help;
} opt_spec_t;

/* Parses argv[0..argc) (argv[0] is the first argument, not the program). Positional
 * arguments go to `positional` (at most max_positional, else an error). Returns 0, or
 * -1 with a message in err naming the option. `--help`/`-h` sets *help_requested. */
int opts_parse(const opt_spec_t *specs, int argc, char **argv, const char **positional,
               int max_positional, int *positional_count, bool *help_requested, char *err);

/* For a command that passes what it does not know on to another (`pyrt launch` to
 * `serve`): as opts_parse, but every argument that is not one of `specs` (an unknown
 * option, a value, a positional, `--` and all after it) goes to `rest`, in order. `rest`
 * has room for argc entries. */
int opts_parse_known(const opt_spec_t *specs, int argc, char **argv, char **rest, int *rest_count,
                     bool *help_requested, char *err);

/* Writes the options' help, one per line, to stdout. */
void opts_print_help(const opt_spec_t *specs);

#endif
