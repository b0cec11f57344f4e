/* zygote.h -- what the master and the zygote agree on outside the frames: the zygote's
 * command line, the fds it and its workers find, and what a worker's exit status means
 * when pyrt's own code chose it.
 *
 * The master builds the argv with zygote_args_argv(); `pyrt __zygote` (cli/cmd_zygote.c)
 * parses it back with the same option names. */
#ifndef PYRT_PROTO_ZYGOTE_H
#define PYRT_PROTO_ZYGOTE_H

#include <stdbool.h>
#include <stddef.h>

#define ZYGOTE_COMMAND "__zygote"

/* The zygote's control socket (SOCK_SEQPACKET: SPAWN in, ZYGOTE_READY and SPAWNED out). */
#define ZYGOTE_CONTROL_FD 3
/* In a worker, its channel to the master takes the control socket's place. */
#define WORKER_CHANNEL_FD 3

/* The fds a SPAWN frame carries (SCM_RIGHTS), in this order. */
enum spawn_fd {
    SPAWN_FD_CHANNEL, /* the worker's end of its channel socketpair */
    SPAWN_FD_STDOUT,  /* the write ends of its output pipes */
    SPAWN_FD_STDERR,
    SPAWN_FD_GATE, /* its gate page, a memfd (gate.h) */
    SPAWN_FDS,
};

/* The options, each given as --NAME=VALUE (a flag as --NAME). */
#define ZYGOTE_OPT_CODE_DIR "code-dir"
#define ZYGOTE_OPT_ENTRYPOINT "entrypoint"
#define ZYGOTE_OPT_MASTER_PID "master-pid"
#define ZYGOTE_OPT_MAX_MEMORY "max-memory" /* MiB, 0: unlimited */
#define ZYGOTE_OPT_MAX_BODY "max-body"     /* bytes */
#define ZYGOTE_OPT_LOG_LEVEL "log-level"
#define ZYGOTE_OPT_LOG_FORMAT "log-format" /* text or json */
#define ZYGOTE_OPT_CONTRACT "contract"     /* seed, v5 or v2 */
#define ZYGOTE_OPT_USER "user"             /* the one workers run as */
#define ZYGOTE_OPT_PRELOAD "preload"       /* a flag: import the entry point in the zygote */
#define ZYGOTE_OPT_WORKER_UID_BASE "worker-uid-base" /* each worker a uid above it; 0: none */
#define ZYGOTE_OPT_TMP_DIR "tmp-dir" /* the per-server folder of the workers' TMPDIRs */
#define ZYGOTE_OPT_WORKER_NAMESPACES                                                               \
    "worker-namespaces" /* a flag: each worker its own user                                        \
                            and PID namespace, if allowed */

/* In the per-server folder (master/tmpdirs.c), each worker's private TMPDIR is, with a
 * uid of its own, the folder named by that uid (made by the master, emptied by the
 * worker); else a folder the worker makes in TMPDIR_SHARED_NAME (worker/tmpdir.c). */
#define TMPDIR_SHARED_NAME "shared"

typedef struct zygote_args {
    const char *code_dir;
    const char *entrypoint; /* NULL: none */
    long master_pid;
    long max_memory_mib;
    size_t max_body;
    const char *log_level;
    const char *log_format;
    const char *contract;
    const char *user; /* NULL: the master's */
    bool preload;
    long worker_uid_base;   /* 0: workers keep the zygote's uid */
    const char *tmp_dir;    /* NULL: workers keep the inherited TMPDIR */
    bool worker_namespaces; /* clone each worker into namespaces of its own (worker/sandbox.h) */
} zygote_args_t;

/* ZYGOTE_READY's u32 and SPAWNED's u32 flags (proto.h): workers (this one) run in a user
 * and a PID namespace of their own. */
#define ZYGOTE_FLAG_NAMESPACES 1u

/* The argv of `pyrt __zygote` for these arguments, NULL-terminated; the caller owns the
 * array and each string. */
char **zygote_args_argv(const zygote_args_t *a);

/* Exit statuses of a worker that pyrt's own code chose, before or around the user's
 * code (which may exit with any status: these are named, not proven). */
typedef enum worker_exit {
    WORKER_EXIT_PROTOCOL = 70,     /* the master sent what a worker cannot take */
    WORKER_EXIT_FDS = 71,          /* its channel and pipes could not take their fds */
    WORKER_EXIT_AFTER_FORK = 73,   /* Python's after-fork step failed */
    WORKER_EXIT_SUBREAPER = 74,    /* it could not become its children's reaper */
    WORKER_EXIT_MEMORY_SETUP = 75, /* the memory limit could not be set */
    WORKER_EXIT_GATE = 76,         /* its gate page could not be mapped */
    WORKER_EXIT_SANDBOX = 77,      /* its uid, capabilities or limits could not be set */
} worker_exit_t;

/* "memory limit setup failed" for WORKER_EXIT_MEMORY_SETUP; NULL for a status pyrt
 * does not use. */
const char *worker_exit_name(int status);

#endif
