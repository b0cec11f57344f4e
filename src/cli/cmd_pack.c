/* cmd_pack.c -- `pyrt pack [DIR] [-o FILE]`: the folder as a deterministic tar.gz. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/commands.h"
#include "cli/opts.h"
#include "common/buf.h"
#include "tar/tar.h"

int cmd_pack(int argc, char **argv)
{
    const char *output = NULL;
    bool plain = false;
    const opt_spec_t specs[] = {
        {"output", 'o', OPT_STRING, &output, NULL, 0, 0, "FILE",
         "the archive to write (default DIR/code.tar.gz)"},
        {"no-gzip", 0, OPT_FLAG, &plain, "PYRT_NO_GZIP", 0, 0, NULL,
         "a plain tar (extraction tells the two apart by their bytes, not the name)"},
        {0},
    };
    char err[PYRT_ERR_LEN];
    const char *positional[1] = {"."};
    int npos = 0;
    bool help;
    if (opts_parse(specs, argc, argv, positional, 1, &npos, &help, err) < 0) {
        fprintf(stderr, "pyrt pack: %s\n", err);
        return 2;
    }
    if (help) {
        printf("usage: pyrt pack [DIR] [-o FILE] [--no-gzip]\n\n"
               "Writes a gzip tar of DIR's contents (runtime-env included), members ./...,\n"
               "in a fixed order with fixed times: the same folder gives the same bytes.\n\n"
               "options:\n");
        opts_print_help(specs);
        return 0;
    }
    const char *dir = npos ? positional[0] : ".";
    buf_t out = BUF_INIT;
    if (output)
        buf_append_str(&out, output);
    else
        buf_appendf(&out, "%s/code.tar.gz", dir);
    int rc = tar_pack(dir, out.data, plain, err, sizeof(err));
    if (rc < 0)
        fprintf(stderr, "pyrt pack: %s\n", err);
    else if (isatty(STDERR_FILENO))
        fprintf(stderr, "pyrt pack: wrote %s\n", out.data);
    buf_free(&out);
    return rc < 0 ? 1 : 0;
}
