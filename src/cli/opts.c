/* opts.c -- GNU-style command-line options with environment fallback (see opts.h). */
#include "cli/opts.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/num.h"

static int parse_flag_text(const char *text, bool *out)
{
    static const char *const yes[] = {"1", "true", "yes", "on"};
    static const char *const no[] = {"0", "false", "no", "off", ""};
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
        if (strcasecmp(text, yes[i]) == 0)
            return *out = true, 0;
    for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
        if (strcasecmp(text, no[i]) == 0)
            return *out = false, 0;
    return -1;
}

/* Stores `value` into the option's target; `source` names where it came from in the
 * error message ("--port" or "PORT"). */
static int apply(const opt_spec_t *s, const char *value, const char *source, char *err)
{
    switch (s->kind) {
    case OPT_FLAG:
        if (parse_flag_text(value, s->target) < 0) {
            snprintf(err, PYRT_ERR_LEN, "%s: expected a boolean (1/0, true/false), got '%s'",
                     source, value);
            return -1;
        }
        return 0;
    case OPT_STRING: *(const char **)s->target = value; return 0;
    case OPT_MULTI: {
        opt_list_t *list = s->target;
        if (list->count >= (int)(sizeof(list->items) / sizeof(list->items[0]))) {
            snprintf(err, PYRT_ERR_LEN, "%s: given too many times", source);
            return -1;
        }
        list->items[list->count++] = value;
        return 0;
    }
    case OPT_LONG: {
        long v;
        if (num_parse_long(value, &v) < 0 || (double)v < s->min || (double)v > s->max) {
            snprintf(err, PYRT_ERR_LEN, "%s: expected an integer from %.0f to %.0f, got '%s'",
                     source, s->min, s->max, value);
            return -1;
        }
        *(long *)s->target = v;
        return 0;
    }
    case OPT_DOUBLE: {
        double v;
        if (num_parse_double(value, &v) < 0 || v < s->min || v > s->max) {
            snprintf(err, PYRT_ERR_LEN, "%s: expected a number from %g to %g, got '%s'", source,
                     s->min, s->max, value);
            return -1;
        }
        *(double *)s->target = v;
        return 0;
    }
    case OPT_SIZE: {
        size_t v;
        if (num_parse_size(value, &v) < 0 || (double)v < s->min || (double)v > s->max) {
            snprintf(err, PYRT_ERR_LEN,
                     "%s: expected a size in bytes (suffix K, M or G allowed) from %.0f to %.0f, "
                     "got '%s'",
                     source, s->min, s->max, value);
            return -1;
        }
        *(size_t *)s->target = v;
        return 0;
    }
    }
    return -1;
}

static const opt_spec_t *find_long(const opt_spec_t *specs, const char *name, size_t len)
{
    for (const opt_spec_t *s = specs; s->name; s++)
        if (strlen(s->name) == len && strncmp(s->name, name, len) == 0)
            return s;
    return NULL;
}

static const opt_spec_t *find_short(const opt_spec_t *specs, char c)
{
    for (const opt_spec_t *s = specs; s->name; s++)
        if (s->short_name && s->short_name == c)
            return s;
    return NULL;
}

/* Where what is not one of `specs` goes: positional arguments (opts_parse), or, in
 * order, every argument not taken (opts_parse_known). */
typedef struct others {
    const char **positional;
    int max_positional;
    int *positional_count;
    char **rest;     /* opts_parse_known: non-NULL */
    int *rest_count; /* both counts always point somewhere */
} others_t;

static int parse(const opt_spec_t *specs, int argc, char **argv, const others_t *o,
                 bool *help_requested, char *err)
{
    size_t nspecs = 0;
    while (specs[nspecs].name)
        nspecs++;
    bool given[nspecs + 1];
    memset(given, 0, sizeof(given));
    *o->rest_count = 0;
    *o->positional_count = 0;
    *help_requested = false;
    bool options_done = false;

    for (int i = 0; i < argc; i++) {
        char *arg = argv[i];
        const opt_spec_t *s = NULL;
        const char *value = NULL;
        char source[80];

        bool ends_options = strcmp(arg, "--") == 0;
        if (o->rest && (options_done || ends_options || arg[0] != '-' || arg[1] == '\0')) {
            o->rest[(*o->rest_count)++] = arg; /* after `--`, all of it is the other's */
            options_done = options_done || ends_options;
            continue;
        }
        if (options_done || arg[0] != '-' || arg[1] == '\0') {
            if (*o->positional_count >= o->max_positional) {
                snprintf(err, PYRT_ERR_LEN, "unexpected argument '%s'", arg);
                return -1;
            }
            o->positional[(*o->positional_count)++] = arg;
            continue;
        }
        if (strcmp(arg, "--") == 0) {
            options_done = true;
            continue;
        }
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            *help_requested = true;
            continue;
        }
        if (arg[1] == '-') {
            const char *name = arg + 2;
            const char *eq = strchr(name, '=');
            size_t len = eq ? (size_t)(eq - name) : strlen(name);
            s = find_long(specs, name, len);
            if (s == NULL && o->rest) {
                o->rest[(*o->rest_count)++] = arg;
                continue;
            }
            if (s == NULL) {
                snprintf(err, PYRT_ERR_LEN, "unknown option '--%.*s'", (int)len, name);
                return -1;
            }
            snprintf(source, sizeof(source), "--%s", s->name);
            if (eq)
                value = eq + 1;
        } else {
            s = find_short(specs, arg[1]);
            if (s == NULL && o->rest) {
                o->rest[(*o->rest_count)++] = arg;
                continue;
            }
            if (s == NULL) {
                snprintf(err, PYRT_ERR_LEN, "unknown option '%s'", arg);
                return -1;
            }
            snprintf(source, sizeof(source), "-%c", s->short_name);
            if (arg[2] != '\0')
                value = arg + 2;
        }

        if (s->kind == OPT_FLAG) {
            if (value == NULL)
                value = "1";
        } else if (value == NULL) {
            if (i + 1 >= argc) {
                snprintf(err, PYRT_ERR_LEN, "option '%s' needs a value", source);
                return -1;
            }
            value = argv[++i];
        }
        if (apply(s, value, source, err) < 0)
            return -1;
        given[s - specs] = true;
    }

    for (size_t k = 0; k < nspecs; k++) {
        const opt_spec_t *s = &specs[k];
        if (given[k] || s->env == NULL)
            continue;
        const char *value = getenv(s->env);
        if (value == NULL || (*value == '\0' && s->kind != OPT_STRING))
            continue;
        if (apply(s, value, s->env, err) < 0)
            return -1;
    }
    return 0;
}

int opts_parse(const opt_spec_t *specs, int argc, char **argv, const char **positional,
               int max_positional, int *positional_count, bool *help_requested, char *err)
{
    int unused = 0; /* nothing goes to `rest` */
    others_t o = {positional, max_positional, positional_count, NULL, &unused};
    return parse(specs, argc, argv, &o, help_requested, err);
}

int opts_parse_known(const opt_spec_t *specs, int argc, char **argv, char **rest, int *rest_count,
                     bool *help_requested, char *err)
{
    int none = 0; /* no positional: they go to `rest` */
    others_t o = {NULL, 0, &none, rest, rest_count};
    return parse(specs, argc, argv, &o, help_requested, err);
}

void opts_print_help(const opt_spec_t *specs)
{
    for (const opt_spec_t *s = specs; s->name; s++) {
        char left[64];
        if (s->short_name)
            snprintf(left, sizeof(left), "-%c, --%s%s%s", s->short_name, s->name,
                     s->metavar ? " " : "", s->metavar ? s->metavar : "");
        else
            snprintf(left, sizeof(left), "    --%s%s%s", s->name, s->metavar ? " " : "",
                     s->metavar ? s->metavar : "");
        printf("  %-28s %s", left, s->help ? s->help : "");
        if (s->env)
            printf(" [env %s]", s->env);
        printf("\n");
    }
}
