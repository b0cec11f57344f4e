/* cmd_launch.c -- `pyrt launch`: extract the archive safely, then serve it.
 *
 * Takes --archive FILE (default /tmp/code.tar.gz, env PYRT_ARCHIVE) and --extract-only
 * (extract, then exit: the image's start script times the two steps apart) out of the
 * arguments; everything else is `pyrt serve`'s, --code-dir (default /usr/code)
 * included, which is also where the archive goes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "cli/contract.h"
#include "cli/opts.h"
#include "common/xalloc.h"
#include "tar/tar.h"

static const char *value_of(int argc, char **argv, int i, const char *name, int *consumed)
{
    size_t n = strlen(name);
    if (strncmp(argv[i], name, n) != 0)
        return NULL;
    if (argv[i][n] == '=') {
        *consumed = 1;
        return argv[i] + n + 1;
    }
    if (argv[i][n] == '\0' && i + 1 < argc) {
        *consumed = 2;
        return argv[i + 1];
    }
    return NULL;
}

int cmd_launch(int argc, char **argv)
{
    const char *archive = getenv("PYRT_ARCHIVE");
    const char *code_dir = getenv("PYRT_CODE_DIR");
    if (archive == NULL || *archive == '\0')
        archive = "/tmp/code.tar.gz";
    if (code_dir == NULL || *code_dir == '\0')
        code_dir = "/usr/code";

    char **rest = xcalloc((size_t)argc + 3, sizeof(char *));
    int nrest = 0;
    bool code_dir_given = false;
    bool extract_only = false;
    const char *contract_flag = getenv("PYRT_CONTRACT");
    for (int i = 0; i < argc; i++) {
        int consumed = 0;
        const char *v;
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            printf("usage: pyrt launch [--archive FILE] [--code-dir DIR] [--extract-only]\n"
                   "                   [serve options]\n\n"
                   "Extracts FILE (default /tmp/code.tar.gz; gzip or plain tar) into DIR\n"
                   "(default /usr/code), refusing members that would land outside it, then\n"
                   "serves DIR exactly as `pyrt serve` does (--extract-only: stops there).\n"
                   "Serve options:\n\n");
            char help[] = "--help";
            char *args[] = {help, NULL};
            free(rest);
            return cmd_serve(1, args);
        }
        if (strcmp(argv[i], "--extract-only") == 0) {
            extract_only = true;
            continue;
        }
        if ((v = value_of(argc, argv, i, "--archive", &consumed)) != NULL) {
            archive = v;
            i += consumed - 1;
            continue;
        }
        if ((v = value_of(argc, argv, i, "--contract", &consumed)) != NULL)
            contract_flag = v; /* also passed on to serve */
        if ((v = value_of(argc, argv, i, "--code-dir", &consumed)) != NULL) {
            code_dir = v;
            code_dir_given = true;
        }
        rest[nrest++] = argv[i];
    }
    /* The secret is checked before anything is extracted; `serve` takes it. */
    char err[PYRT_ERR_LEN];
    contract_t contract;
    if (!extract_only && (contract_resolve(contract_flag, &contract, err, sizeof(err)) < 0 ||
                          contract_check_secret(contract, err, sizeof(err)) < 0)) {
        fprintf(stderr, "pyrt launch: %s\n", err);
        free(rest);
        return 1;
    }
    if (tar_extract(archive, code_dir, err, sizeof(err)) < 0) {
        fprintf(stderr, "pyrt launch: %s\n", err);
        free(rest);
        return 1;
    }
    if (extract_only) {
        free(rest);
        return 0;
    }
    char *code_dir_arg = NULL;
    if (!code_dir_given) {
        size_t n = strlen(code_dir) + 16;
        code_dir_arg = xmalloc(n);
        snprintf(code_dir_arg, n, "--code-dir=%s", code_dir);
        rest[nrest++] = code_dir_arg;
    }
    int rc = cmd_serve(nrest, rest);
    free(code_dir_arg);
    free(rest);
    return rc;
}
