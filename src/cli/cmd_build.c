/* cmd_build.c -- `pyrt build [DIR] [--entrypoint FILE] [--force]`. */
#include <stdio.h>

#include "build/build.h"
#include "cli/commands.h"
#include "cli/contract.h"
#include "cli/opts.h"

int cmd_build(int argc, char **argv)
{
    build_options_t o = {.dir = "."};
    const opt_spec_t specs[] = {
        {"entrypoint", 0, OPT_STRING, &o.entrypoint, "ENTRYPOINT_NAME", 0, 0, "FILE",
         "the file that defines main (default: OPEN_RUNTIMES_ENTRYPOINT, "
         "INTERNAL_RUNTIME_ENTRYPOINT, main.py, index.py)"},
        {"force", 'f', OPT_FLAG, &o.force, "PYRT_FORCE", 0, 0, NULL,
         "make runtime-env anew even if the requirements did not change"},
        {"user", 'u', OPT_STRING, &o.user, "PYRT_USER", 0, 0, "NAME|UID",
         "started as root: run user code (pip, the install command, the entry point's "
         "import) as this user"},
        {"install-command", 0, OPT_STRING, &o.install_command, "PYRT_INSTALL_COMMAND", 0, 0, "CMD",
         "run CMD (sh -c, in DIR, runtime-env active) instead of pip install -r "
         "requirements.txt"},
        {0},
    };
    char err[PYRT_ERR_LEN * 16];
    const char *positional[1];
    int npos = 0;
    bool help;
    if (opts_parse(specs, argc, argv, positional, 1, &npos, &help, err) < 0) {
        fprintf(stderr, "pyrt build: %s\n", err);
        return 2;
    }
    if (help) {
        printf("usage: pyrt build [DIR] [options]\n\n"
               "Prepares a function folder (default .): DIR/runtime-env, a venv of the Python\n"
               "pyrt embeds, with requirements.txt installed; bytecode; a checked entry point.\n"
               "A second build with unchanged requirements does not run pip.\n\n"
               "options:\n");
        opts_print_help(specs);
        return 0;
    }
    if (npos)
        o.dir = positional[0];
    if (o.entrypoint == NULL || *o.entrypoint == '\0')
        o.entrypoint = contract_entrypoint_from_env();
    if (build_run(&o, err, sizeof(err)) < 0) {
        fprintf(stderr, "pyrt build: %s\n", err);
        return 1;
    }
    return 0;
}
