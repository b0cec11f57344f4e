/* cmd_serve.c -- `pyrt serve`: options to a serve_config_t, then the master. */
#include <errno.h>
#include <limits.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "build/build.h"
#include "cli/commands.h"
#include "cli/contract.h"
#include "cli/opts.h"
#include "cli/serve_setup.h"
#include "common/log.h"
#include "common/num.h"
#include "common/sysinfo.h"
#include "master/config.h"
#include "master/master.h"
#include "master/uidslot.h"

static bool is_file(const char *dir, const char *name)
{
    char path[PATH_MAX];
    struct stat st;
    if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path))
        return false;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* --user: a user that exists, and one this process may become (root can become any). */
static int check_user(const char *user, char *err, size_t errlen)
{
    struct passwd *pw = getpwnam(user);
    char *end = NULL;
    errno = 0;
    long uid = strtol(user, &end, 10);
    bool numeric = *user && end && *end == '\0' && errno == 0 && uid >= 0;
    if (pw == NULL && !numeric) {
        snprintf(err, errlen, "--user %s: no such user", user);
        return -1;
    }
    uid_t want = pw ? pw->pw_uid : (uid_t)uid;
    if (geteuid() != 0 && want != geteuid()) {
        snprintf(err, errlen, "--user %s: switching users needs root (pyrt runs as uid %d)", user,
                 (int)geteuid());
        return -1;
    }
    return 0;
}

static long default_workers(void);

/* With a uid per worker, the code folder must be readable by a uid that owns nothing:
 * each folder on its path searchable by others (or by the workers' group), the folder
 * itself readable too. Said at start, rather than as a worker's import error. */
static int check_code_reachable(const char *code_dir, gid_t gid, char *err, size_t errlen)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s", code_dir);
    for (char *end = path + strlen(path); end > path; end = strrchr(path, '/')) {
        *end = '\0';
        const char *dir = *path ? path : "/";
        struct stat st;
        mode_t need = dir == path && strcmp(dir, code_dir) == 0 ? 05 : 01;
        if (stat(dir, &st) != 0)
            continue; /* serve_config_finish saw it: a race, not ours to report */
        mode_t have = (st.st_mode & 07) | (st.st_gid == gid ? (st.st_mode >> 3) & 07 : 0);
        if ((have & need) != need) {
            snprintf(err, errlen,
                     "code directory %s: workers with a uid of their own cannot %s %s "
                     "(mode %04o): make it readable by other users (chmod o+rx)",
                     code_dir, need == 05 ? "read" : "enter", dir, (unsigned)(st.st_mode & 07777));
            return -1;
        }
        if (end == path)
            break;
    }
    return 0;
}

/* --worker-uid-base: by default, a uid per worker whenever pyrt runs as root (with or
 * without --user), so that no worker can reach the master, the zygote or a sibling.
 * When the code folder is where other users cannot go (a checkout in /root, a
 * `mktemp -d`), the default falls back to workers sharing the zygote's uid, with a
 * warning that says what that gives up: serving the folder one was given beats
 * refusing to start. A base given explicitly is kept, and such a folder refused. */
static int worker_uids_finish(serve_config_t *cfg, char *err, size_t errlen)
{
    bool fixed = cfg->worker_uid_base >= 0;
    if (cfg->worker_uid_base < 0)
        cfg->worker_uid_base = geteuid() == 0 ? UIDSLOT_DEFAULT_BASE : 0;
    if (cfg->worker_uid_base == 0)
        return 0;
    if (geteuid() != 0) {
        snprintf(err, errlen,
                 "--worker-uid-base %ld: giving workers uids needs root (pyrt "
                 "runs as uid %d)",
                 cfg->worker_uid_base, (int)geteuid());
        return -1;
    }
    /* Without --user the workers' gid is the range's own, which owns nothing. */
    gid_t gid = (gid_t)-1;
    struct passwd *pw = cfg->user ? getpwnam(cfg->user) : NULL;
    if (pw)
        gid = pw->pw_gid;
    else if (cfg->user)
        gid = (gid_t)strtol(cfg->user, NULL, 10); /* numeric: check_user said so */
    if (check_code_reachable(cfg->code_dir, gid, err, errlen) < 0) {
        if (fixed)
            return -1; /* --worker-uid-base 0 serves it, with one uid for every worker */
        log_msg(LOG_WARN,
                "%s; until then the workers share one uid: they can signal each "
                "other and the zygote (docs/operating.md, \"The sandbox\")",
                err);
        cfg->worker_uid_base = 0;
        return 0;
    }
    if (cfg->workers <= 0)
        cfg->workers = default_workers();
    return uidslot_reserve(&cfg->worker_uid_base, uidslot_count(cfg->workers), fixed, err, errlen);
}

/* OPEN_RUNTIMES_CPUS (the executor's share, rounded up) when set, else the CPUs this
 * process may use (affinity, cgroup quota). */
static long default_workers(void)
{
    const char *cpus = getenv("OPEN_RUNTIMES_CPUS");
    double n;
    if (cpus && *cpus && num_parse_double(cpus, &n) == 0 && n > 0 && n <= 1024) {
        long w = (long)n;
        return (double)w < n ? w + 1 : w;
    }
    return sys_usable_cpus();
}

int serve_config_finish(serve_config_t *cfg, const char *contract, const char *entrypoint,
                        char code_dir[PATH_MAX], char *err, size_t errlen)
{
    if (contract_resolve(contract, &cfg->contract, err, errlen) < 0)
        return -1;
    if (cfg->logs_dir == NULL || *cfg->logs_dir == '\0')
        cfg->logs_dir = "/mnt/logs";
    if (cfg->telemetry_file == NULL || *cfg->telemetry_file == '\0')
        cfg->telemetry_file = "/mnt/telemetry/timings.txt";
    if (entrypoint == NULL || *entrypoint == '\0')
        entrypoint = contract_entrypoint_from_env();
    if (realpath(cfg->code_dir, code_dir) == NULL) {
        snprintf(err, errlen, "code directory %s: %s", cfg->code_dir, strerror(errno));
        return -1;
    }
    struct stat st;
    if (stat(code_dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "code directory %s is not a directory", code_dir);
        return -1;
    }
    cfg->code_dir = code_dir;
    if (cfg->user && check_user(cfg->user, err, errlen) < 0)
        return -1;
    if (worker_uids_finish(cfg, err, errlen) < 0)
        return -1;
    if (build_check_runtime_env(code_dir, err, errlen) < 0)
        return -1;
    if (entrypoint && *entrypoint)
        cfg->entrypoint = entrypoint;
    else if (is_file(code_dir, "main.py"))
        cfg->entrypoint = "main.py";
    else if (is_file(code_dir, "index.py"))
        cfg->entrypoint = "index.py";
    if (cfg->entrypoint && !is_file(code_dir, cfg->entrypoint))
        log_msg(LOG_WARN, "entry point %s/%s does not exist (yet)", code_dir, cfg->entrypoint);
    if (cfg->workers <= 0)
        cfg->workers = default_workers();
    if (cfg->default_timeout <= 0)
        cfg->default_timeout =
            cfg->contract == CONTRACT_V2 ? cfg->max_timeout : SERVE_DEFAULT_TIMEOUT;
    if (cfg->default_timeout > cfg->max_timeout)
        cfg->default_timeout = cfg->max_timeout;
    if (cfg->async_slots <= 0)
        cfg->async_slots = cfg->contract == CONTRACT_SEED ? 1 : SERVE_DEFAULT_ASYNC_SLOTS;
    return 0;
}

static void usage(const opt_spec_t *specs)
{
    printf(
        "usage: pyrt serve [--code-dir DIR] [options]\n\n"
        "Serves an already built function folder. Contracts (--contract):\n"
        "  seed  every POST with x-internal-challenge = INTERNAL_RUNTIME_KEY runs main(req, res)\n"
        "  v5    open-runtimes v5: every method and path runs main(context); the secret is\n"
        "        OPEN_RUNTIMES_SECRET (x-open-runtimes-secret); logs go to --logs-dir\n"
        "  v2    the open-runtimes executor's v2: {\"variables\", \"payload\"} in, an\n"
        "        envelope out; key INTERNAL_RUNTIME_KEY\n\n"
        "options:\n");
    opts_print_help(specs);
}

int cmd_serve(int argc, char **argv)
{
    serve_config_t cfg = {
        .code_dir = "/usr/code",
        .host = "0.0.0.0",
        .port = 3000,
        .workers = 0,
        .default_timeout = 0, /* not given: serve_config_finish decides */
        .max_timeout = 900,
        .max_body = 20 * 1024 * 1024,
        .max_queue = 1024,
        .max_memory_mib = 0,
        .read_timeout = 30,
        .idle_timeout = 75,
        .max_connections = 4096,
        .log_level = "info",
        .worker_uid_base = -1,
    };
    const char *entrypoint = NULL;
    const char *contract = NULL;
    const opt_spec_t specs[] = {
        SERVE_CONTRACT_OPTS(&contract, &cfg),
        {"code-dir", 0, OPT_STRING, &cfg.code_dir, "PYRT_CODE_DIR", 0, 0, "DIR",
         "the built function folder (default /usr/code)"},
        {"entrypoint", 0, OPT_STRING, &entrypoint, "ENTRYPOINT_NAME", 0, 0, "FILE",
         "file run when a request names none (default main.py, else index.py)"},
        {"host", 0, OPT_STRING, &cfg.host, "PYRT_HOST", 0, 0, "ADDR",
         "address to listen on (default 0.0.0.0)"},
        {"port", 'p', OPT_LONG, &cfg.port, "PORT", 0, 65535, "PORT", "port (default 3000)"},
        {"workers", 'w', OPT_LONG, &cfg.workers, "PYRT_WORKERS", 1, 1024, "N",
         "worker processes (default: the CPUs this process may use)"},
        {"default-timeout", 0, OPT_DOUBLE, &cfg.default_timeout, "PYRT_DEFAULT_TIMEOUT", 0.001, 1e9,
         "S", "execution timeout when a request gives none (default 15; v2: --max-timeout)"},
        {"max-timeout", 0, OPT_DOUBLE, &cfg.max_timeout, "PYRT_MAX_TIMEOUT", 0.001, 1e9, "S",
         "cap on any execution's timeout (default 900)"},
        {"max-body", 0, OPT_SIZE, &cfg.max_body, "PYRT_MAX_BODY", 1, 1024.0 * 1024 * 1024, "BYTES",
         "largest request or response body (default 20M)"},
        {"max-queue", 0, OPT_LONG, &cfg.max_queue, "PYRT_MAX_QUEUE", 0, 1e9, "N",
         "executions waiting for a worker before 503 (default 1024)"},
        {"max-memory", 0, OPT_LONG, &cfg.max_memory_mib, "PYRT_MAX_MEMORY", 0, 1 << 22, "MIB",
         "memory one execution may allocate (default 0: unlimited)"},
        {"read-timeout", 0, OPT_DOUBLE, &cfg.read_timeout, "PYRT_READ_TIMEOUT", 0.001, 1e6, "S",
         "a request's head and body must arrive within S of its first byte (default 30)"},
        {"idle-timeout", 0, OPT_DOUBLE, &cfg.idle_timeout, "PYRT_IDLE_TIMEOUT", 0.001, 1e6, "S",
         "close a keep-alive connection idle this long (default 75)"},
        {"max-connections", 0, OPT_LONG, &cfg.max_connections, "PYRT_MAX_CONNECTIONS", 1, 1e7, "N",
         "open client connections; more wait in the backlog (default 4096)"},
        {"preload", 0, OPT_FLAG, &cfg.preload, "PYRT_PRELOAD", 0, 0, NULL,
         "import the entry point in the zygote, shared by all workers"},
        {"user", 'u', OPT_STRING, &cfg.user, "PYRT_USER", 0, 0, "NAME|UID",
         "started as root: run the zygote as this user, each worker as its own uid"},
        {"worker-uid-base", 0, OPT_LONG, &cfg.worker_uid_base, "PYRT_WORKER_UID_BASE", 0, 4e9,
         "UID",
         "started as root: workers get uids UID+1.. (2 per --workers, plus 2; default: the "
         "first free range from 50000; 0: all share one)"},
        {"no-worker-namespaces", 0, OPT_FLAG, &cfg.no_worker_namespaces,
         "PYRT_NO_WORKER_NAMESPACES", 0, 0, NULL,
         "workers that share a uid get no user and PID namespace each (default: they do, "
         "where the kernel allows it)"},
        {"log-format", 0, OPT_STRING, &cfg.log_format, "PYRT_LOG_FORMAT", 0, 0, "FORMAT",
         "text or json: one JSON object per line (default: text on a terminal, else json)"},
        {"no-metrics", 0, OPT_FLAG, &cfg.no_metrics, "PYRT_NO_METRICS", 0, 0, NULL,
         "no GET /__metrics (Prometheus text format; on by default)"},
        {"drain-delay", 0, OPT_DOUBLE, &cfg.drain_delay, "PYRT_DRAIN_DELAY", 0, 1e6, "S",
         "on SIGTERM: /__ready 503 at once, keep serving S seconds, then close (default 0)"},
        {"shutdown-timeout", 0, OPT_DOUBLE, &cfg.shutdown_timeout, "PYRT_SHUTDOWN_TIMEOUT", 0, 1e6,
         "S",
         "after the listener closes, stop what still runs after S (default 0: each "
         "execution's own deadline)"},
        {"async-slots", 0, OPT_LONG, &cfg.async_slots, "PYRT_ASYNC_SLOTS", 1, 100000, "N",
         "executions of an async def main one worker runs at once (default 1; v5 and v2: "
         "1000)"},
        {"max-requests", 0, OPT_LONG, &cfg.max_requests, "PYRT_MAX_REQUESTS", 0, 1e9, "N",
         "replace each worker after N executions, plus up to 10% at random (default 0: "
         "never)"},
        {"log-level", 0, OPT_STRING, &cfg.log_level, "PYRT_LOG_LEVEL", 0, 0, "LEVEL",
         "debug, info, warn or error (default info)"},
        {0},
    };

    char err[PYRT_ERR_LEN];
    const char *positional[1];
    int npos = 0;
    bool help = false;
    if (opts_parse(specs, argc, argv, positional, 0, &npos, &help, err) < 0) {
        fprintf(stderr, "pyrt serve: %s\n", err);
        return 2;
    }
    if (help) {
        usage(specs);
        return 0;
    }
    log_level_t level;
    if (log_level_parse(cfg.log_level, &level) < 0) {
        fprintf(stderr, "pyrt serve: --log-level: expected debug, info, warn or error, got '%s'\n",
                cfg.log_level);
        return 2;
    }
    log_init("master", level);
    log_format_t format = isatty(STDERR_FILENO) ? LOG_FORMAT_TEXT : LOG_FORMAT_JSON;
    if (cfg.log_format && log_format_parse(cfg.log_format, &format) < 0) {
        fprintf(stderr, "pyrt serve: --log-format: expected text or json, got '%s'\n",
                cfg.log_format);
        return 2;
    }
    log_set_format(format);
    cfg.log_format = format == LOG_FORMAT_JSON ? "json" : "text";

    char code_dir[PATH_MAX];
    if (serve_config_finish(&cfg, contract, entrypoint, code_dir, err, sizeof(err)) < 0) {
        fprintf(stderr, "pyrt serve: %s\n", err);
        return 1;
    }

    if (master_run(&cfg, err, sizeof(err)) < 0) {
        fprintf(stderr, "pyrt serve: %s\n", err);
        return 1;
    }
    return 0;
}
