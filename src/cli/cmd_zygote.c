/* cmd_zygote.c -- `pyrt __zygote`: started by the master (fork + exec of pyrt itself),
 * never by hand. Parses the arguments the master built (proto/zygote.h) and runs the
 * zygote (worker/zygote.c). */
#include <stdio.h>

#include "cli/commands.h"
#include "cli/opts.h"
#include "proto/zygote.h"
#include "worker/zygote.h"

int cmd_zygote(int argc, char **argv)
{
    zygote_args_t a = {.log_level = "info", .contract = "seed"};
    const opt_spec_t specs[] = {
        {ZYGOTE_OPT_CODE_DIR, 0, OPT_STRING, &a.code_dir, NULL, 0, 0, NULL, NULL},
        {ZYGOTE_OPT_ENTRYPOINT, 0, OPT_STRING, &a.entrypoint, NULL, 0, 0, NULL, NULL},
        {ZYGOTE_OPT_MASTER_PID, 0, OPT_LONG, &a.master_pid, NULL, 1, 1 << 30, NULL, NULL},
        {ZYGOTE_OPT_MAX_MEMORY, 0, OPT_LONG, &a.max_memory_mib, NULL, 0, 1 << 22, NULL, NULL},
        {ZYGOTE_OPT_MAX_BODY, 0, OPT_SIZE, &a.max_body, NULL, 1, 1e12, NULL, NULL},
        {ZYGOTE_OPT_USER, 0, OPT_STRING, &a.user, NULL, 0, 0, NULL, NULL},
        {ZYGOTE_OPT_LOG_LEVEL, 0, OPT_STRING, &a.log_level, NULL, 0, 0, NULL, NULL},
        {ZYGOTE_OPT_LOG_FORMAT, 0, OPT_STRING, &a.log_format, NULL, 0, 0, NULL, NULL},
        {ZYGOTE_OPT_WORKER_UID_BASE, 0, OPT_LONG, &a.worker_uid_base, NULL, 0, 1L << 31, NULL,
         NULL},
        {ZYGOTE_OPT_TMP_DIR, 0, OPT_STRING, &a.tmp_dir, NULL, 0, 0, NULL, NULL},
        {ZYGOTE_OPT_PRELOAD, 0, OPT_FLAG, &a.preload, NULL, 0, 0, NULL, NULL},
        {ZYGOTE_OPT_WORKER_NAMESPACES, 0, OPT_FLAG, &a.worker_namespaces, NULL, 0, 0, NULL, NULL},
        {ZYGOTE_OPT_CONTRACT, 0, OPT_STRING, &a.contract, NULL, 0, 0, NULL, NULL},
        {0},
    };
    char err[PYRT_ERR_LEN];
    const char *positional[1];
    int npos = 0;
    bool help;
    if (opts_parse(specs, argc, argv, positional, 0, &npos, &help, err) < 0 || a.code_dir == NULL ||
        a.master_pid == 0) {
        fprintf(stderr, "pyrt " ZYGOTE_COMMAND " is started by `pyrt serve`, not by hand (%s)\n",
                a.code_dir ? err : "no --" ZYGOTE_OPT_CODE_DIR);
        return 2;
    }
    return zygote_main(&a);
}
