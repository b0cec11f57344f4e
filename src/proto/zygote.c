/* zygote.c -- the zygote's command line and the worker exit statuses (see zygote.h). */
#include "proto/zygote.h"

#include <stdio.h>

#include "common/buf.h"
#include "common/xalloc.h"

#define ZYGOTE_ARGV_MAX 24 /* room for every option, and a few to come */

static char *option(const char *name, const char *value)
{
    buf_t b = BUF_INIT;
    buf_appendf(&b, "--%s=%s", name, value);
    return buf_steal(&b);
}

char **zygote_args_argv(const zygote_args_t *a)
{
    char num[32];
    int n = 0;
    char **argv = xcalloc(ZYGOTE_ARGV_MAX, sizeof(char *));
    argv[n++] = xstrdup("pyrt");
    argv[n++] = xstrdup(ZYGOTE_COMMAND);
    argv[n++] = option(ZYGOTE_OPT_CODE_DIR, a->code_dir);
    if (a->entrypoint)
        argv[n++] = option(ZYGOTE_OPT_ENTRYPOINT, a->entrypoint);
    snprintf(num, sizeof(num), "%ld", a->master_pid);
    argv[n++] = option(ZYGOTE_OPT_MASTER_PID, num);
    snprintf(num, sizeof(num), "%ld", a->max_memory_mib);
    argv[n++] = option(ZYGOTE_OPT_MAX_MEMORY, num);
    snprintf(num, sizeof(num), "%zu", a->max_body);
    argv[n++] = option(ZYGOTE_OPT_MAX_BODY, num);
    argv[n++] = option(ZYGOTE_OPT_LOG_LEVEL, a->log_level);
    if (a->log_format)
        argv[n++] = option(ZYGOTE_OPT_LOG_FORMAT, a->log_format);
    argv[n++] = option(ZYGOTE_OPT_CONTRACT, a->contract);
    if (a->user)
        argv[n++] = option(ZYGOTE_OPT_USER, a->user);
    if (a->worker_uid_base > 0) {
        snprintf(num, sizeof(num), "%ld", a->worker_uid_base);
        argv[n++] = option(ZYGOTE_OPT_WORKER_UID_BASE, num);
    }
    if (a->tmp_dir)
        argv[n++] = option(ZYGOTE_OPT_TMP_DIR, a->tmp_dir);
    if (a->preload)
        argv[n++] = xstrdup("--" ZYGOTE_OPT_PRELOAD);
    if (a->worker_namespaces)
        argv[n++] = xstrdup("--" ZYGOTE_OPT_WORKER_NAMESPACES);
    argv[n] = NULL;
    return argv;
}

const char *worker_exit_name(int status)
{
    switch ((worker_exit_t)status) {
    case WORKER_EXIT_PROTOCOL: return "protocol error with the master";
    case WORKER_EXIT_FDS: return "fd setup failed";
    case WORKER_EXIT_AFTER_FORK: return "Python's after-fork step failed";
    case WORKER_EXIT_SUBREAPER: return "subreaper setup failed";
    case WORKER_EXIT_MEMORY_SETUP: return "memory limit setup failed";
    case WORKER_EXIT_GATE: return "gate setup failed";
    case WORKER_EXIT_SANDBOX: return "sandbox setup failed";
    }
    return NULL;
}
