/* main.c -- pyrt: a Python function runtime. The sub-command table. */
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"
#include "common/version.h"
#include "proto/zygote.h"

typedef struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary; /* NULL: internal, not listed */
} command_t;

static const command_t commands[] = {
    {"build", cmd_build, "prepare a function folder: runtime-env, dependencies, bytecode"},
    {"pack", cmd_pack, "archive a built folder as a tar.gz"},
    {"launch", cmd_launch, "extract an archive safely, then serve it"},
    {"serve", cmd_serve, "serve a built function folder over HTTP"},
    {"run", cmd_run, "run a function once, locally, and print its answer"},
    {"call", cmd_call, "send one execution request to a running server"},
    {ZYGOTE_COMMAND, cmd_zygote, NULL},
    {NULL, NULL, NULL},
};

static void usage(FILE *out)
{
    fprintf(out, "usage: pyrt COMMAND [options]\n\ncommands:\n");
    for (const command_t *c = commands; c->name; c++)
        if (c->summary)
            fprintf(out, "  %-8s %s\n", c->name, c->summary);
    fprintf(out, "\n`pyrt help COMMAND` or `pyrt COMMAND --help` for a command's options.\n");
}

static const command_t *find(const char *name)
{
    for (const command_t *c = commands; c->name; c++)
        if (strcmp(c->name, name) == 0)
            return c;
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *name = argv[1];
    if (strcmp(name, "--version") == 0 || strcmp(name, "version") == 0) {
        printf("pyrt %s (Python %s)\n", PYRT_VERSION, PYRT_PYTHON_VERSION);
        return 0;
    }
    if (strcmp(name, "help") == 0 || strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0) {
        if (argc >= 3 && find(argv[2]) && find(argv[2])->summary) {
            char help_flag[] = "--help";
            char *args[] = {help_flag, NULL};
            return find(argv[2])->run(1, args);
        }
        usage(stdout);
        return 0;
    }
    const command_t *c = find(name);
    if (c == NULL) {
        fprintf(stderr, "pyrt: unknown command '%s'\n\n", name);
        usage(stderr);
        return 2;
    }
    return c->run(argc - 2, argv + 2);
}
