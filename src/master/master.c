/* master.c -- the master process: listener, signals, shutdown (see master.h).
 *
 * Start-up order matters: the key is taken out of the environment first (before
 * anything can copy the environment), then the port is bound (so "Address already in
 * use" fails fast), then the zygote is started with the cleaned environment. */
#include "master/master.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>
#include <uv.h>

#include "common/log.h"
#include "common/proc.h"
#include "common/sysinfo.h"
#include "common/version.h"
#include "common/xalloc.h"
#include "master/execlog.h"
#include "master/http.h"
#include "master/listener.h"
#include "master/metrics.h"
#include "master/pool.h"
#include "master/reqid.h"
#include "master/secret.h"
#include "master/tmpdirs.h"

static uv_loop_t *loop;
static const serve_config_t *config;
static uv_signal_t sig_term, sig_int, sig_hup, sig_chld;
static uv_check_t log_flusher;
static uv_timer_t log_timer;
static uv_timer_t drain_timer;    /* --drain-delay: from SIGTERM to closing the listener */
static uv_timer_t shutdown_timer; /* --shutdown-timeout: from closing it to stopping */
static bool stopping;
static int stop_signal;

/* File descriptors bound the connections: raise the soft limit to the hard one and keep
 * a reserve for workers, pipes and the zygote. */
static void fit_connection_limit(serve_config_t *cfg)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            (void)getrlimit(RLIMIT_NOFILE, &rl);
    }
    long reserve = 64 + 8 * cfg->workers;
    long room = rl.rlim_cur == RLIM_INFINITY ? 1L << 20 : (long)rl.rlim_cur - reserve;
    if (room < 16)
        room = 16;
    if (cfg->max_connections > room) {
        log_msg(LOG_WARN,
                "--max-connections %ld exceeds what %llu file descriptors allow; using %ld",
                cfg->max_connections, (unsigned long long)rl.rlim_cur, room);
        cfg->max_connections = room;
    }
}

/* Log lines wait at most LOG_FLUSH_MS, or until 16 KiB are there: under load one
 * write carries the lines of many loop iterations. */
#define LOG_FLUSH_MS 5
#define LOG_FLUSH_BYTES (16 * 1024)

static void on_log_timer(uv_timer_t *t)
{
    (void)t;
    log_flush();
}

static void on_loop_iteration(uv_check_t *h)
{
    (void)h;
    if (log_pending() >= LOG_FLUSH_BYTES) {
        (void)uv_timer_stop(&log_timer); /* always 0 */
        log_flush();
    } else if (log_pending() > 0 && !uv_is_active((uv_handle_t *)&log_timer)) {
        (void)uv_timer_start(&log_timer, on_log_timer, LOG_FLUSH_MS, 0); /* 0: not closing */
    }
}

static void on_pool_stopped(void)
{
    http_close();
    uv_close((uv_handle_t *)&log_flusher, NULL);
    uv_close((uv_handle_t *)&log_timer, NULL);
    uv_close((uv_handle_t *)&drain_timer, NULL);
    uv_close((uv_handle_t *)&shutdown_timer, NULL);
    uv_close((uv_handle_t *)&sig_term, NULL);
    uv_close((uv_handle_t *)&sig_int, NULL);
    uv_close((uv_handle_t *)&sig_hup, NULL);
    uv_close((uv_handle_t *)&sig_chld, NULL);
    log_msg(LOG_INFO, "stopped");
}

static void on_shutdown_timeout(uv_timer_t *t)
{
    (void)t;
    log_msg(LOG_WARN, "--shutdown-timeout passed: stopping what still runs");
    pool_stop_now("pyrt is stopping: --shutdown-timeout passed");
}

/* The listener closes; what is in flight and queued is finished (each within its own
 * deadline, or --shutdown-timeout), then pyrt exits. */
static void begin_stop(uv_timer_t *t)
{
    (void)t;
    log_msg(LOG_INFO, "%s: not accepting connections; finishing executions",
            strsignal(stop_signal));
    listener_close();
    http_drain();
    if (config->shutdown_timeout > 0)
        (void)uv_timer_start(&shutdown_timer, on_shutdown_timeout,
                             (uint64_t)(config->shutdown_timeout * 1000.0 + 0.5), 0);
    pool_shutdown(on_pool_stopped);
}

static void on_stop_signal(uv_signal_t *h, int signum)
{
    (void)h;
    if (stopping) {
        log_msg(LOG_INFO, "%s again: still finishing executions", strsignal(signum));
        return;
    }
    stopping = true;
    stop_signal = signum;
    if (config->drain_delay > 0) {
        /* Load balancers without a preStop hook: /__ready says 503 now, and pyrt goes on
         * serving what still comes until they have noticed. */
        log_msg(LOG_INFO, "%s: not ready; serving for %g s more (--drain-delay)", strsignal(signum),
                config->drain_delay);
        http_stopping_soon();
        (void)uv_timer_start(&drain_timer, begin_stop,
                             (uint64_t)(config->drain_delay * 1000.0 + 0.5), 0);
        return;
    }
    begin_stop(NULL);
}

/* The first worker is ready (or the zygote failed twice): a lifecycle record, and, in
 * v5, open-runtimes' start line on stdout (their start script times the start by it):
 * once the port is bound and a worker can take an execution. */
static void on_ready(void)
{
    if (!pool_ready())
        return; /* the zygote failed: no worker, no start */
    log_field_t fields[] = {LOG_FIELD_INT("workers", config->workers)};
    log_event(LOG_INFO, "ready", fields, 1);
    if (config->contract != CONTRACT_V5)
        return;
    static const char line[] = "HTTP server successfully started!\n";
    ssize_t n;
    do
        n = write(STDOUT_FILENO, line, sizeof(line) - 1);
    while (n < 0 && errno == EINTR);
}

/* The start: the effective configuration -- never a secret. */
static void log_start(const serve_config_t *cfg)
{
    if (!log_is_json()) {
        log_msg(LOG_INFO, "listening on %s:%ld, %ld worker%s, code in %s, contract %s", cfg->host,
                cfg->port, cfg->workers, cfg->workers == 1 ? "" : "s", cfg->code_dir,
                contract_name(cfg->contract));
        return;
    }
    log_field_t fields[] = {
        LOG_FIELD_STR("version", PYRT_VERSION),
        LOG_FIELD_STR("python", PYRT_PYTHON_VERSION),
        LOG_FIELD_STR("contract", contract_name(cfg->contract)),
        LOG_FIELD_STR("host", cfg->host),
        LOG_FIELD_INT("port", cfg->port),
        LOG_FIELD_STR("code_dir", cfg->code_dir),
        LOG_FIELD_STR("entrypoint", cfg->entrypoint ? cfg->entrypoint : ""),
        LOG_FIELD_INT("workers", cfg->workers),
        LOG_FIELD_REAL("default_timeout", cfg->default_timeout),
        LOG_FIELD_REAL("max_timeout", cfg->max_timeout),
        LOG_FIELD_INT("max_body", cfg->max_body),
        LOG_FIELD_INT("max_queue", cfg->max_queue),
        LOG_FIELD_INT("max_memory_mib", cfg->max_memory_mib),
        LOG_FIELD_INT("max_requests", cfg->max_requests),
        LOG_FIELD_INT("max_connections", cfg->max_connections),
        LOG_FIELD_INT("memory_limit_bytes", sys_memory_limit()), /* the cgroup's; 0: none */
        LOG_FIELD_STR("user", cfg->user ? cfg->user : ""),
        LOG_FIELD_INT("metrics", !cfg->no_metrics),
        LOG_FIELD_INT("secret_check", !secret_disabled()),
    };
    log_event(LOG_INFO, "start", fields, sizeof(fields) / sizeof(fields[0]));
}

static void on_sigchld(uv_signal_t *h, int signum)
{
    (void)h;
    (void)signum;
    pool_reap();
}

static int listen_on(serve_config_t *cfg, char *err, size_t errlen)
{
    union {
        struct sockaddr sa;
        struct sockaddr_in in4;
        struct sockaddr_in6 in6;
    } addr;
    int rc = strchr(cfg->host, ':') ? uv_ip6_addr(cfg->host, (int)cfg->port, &addr.in6)
                                    : uv_ip4_addr(cfg->host, (int)cfg->port, &addr.in4);
    if (rc != 0) {
        snprintf(err, errlen, "--host %s: not an IP address", cfg->host);
        return -1;
    }
    static const listener_calls_t calls = {http_has_room, http_accepted};
    return listener_open(loop, &addr.sa, cfg->host, cfg->port, 4096, &calls, err, errlen);
}

int master_run(serve_config_t *cfg, char *err, size_t errlen)
{
    config = cfg; /* first: the signal handlers read it */
    if (secret_take(cfg->contract, err, errlen) < 0)
        return -1;
    if (cfg->contract == CONTRACT_V5) {
        if (secret_disabled())
            log_msg(LOG_WARN, "OPEN_RUNTIMES_SECRET is empty: every request is let in without "
                              "a secret (open-runtimes' development mode)");
        if (execlog_open_dir(cfg->logs_dir, err, errlen) < 0)
            return -1;
    }
    char **zygote_env = proc_copy_environ();

    /* Orphans of user code (a double-forked daemon) come to us, not to init, so they
     * are reaped and never outlive pyrt unnoticed. */
    if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0)
        log_msg(LOG_WARN, "prctl(PR_SET_CHILD_SUBREAPER): %s", strerror(errno));
    signal(SIGPIPE, SIG_IGN);
    fit_connection_limit(cfg);
    reqid_seed();

    loop = uv_default_loop();
    http_init(loop, cfg);
    if (listen_on(cfg, err, errlen) < 0)
        return -1;
    /* SIGHUP: the terminal went away (or a supervisor's habit): stop as cleanly as on
     * SIGTERM. */
    const struct {
        uv_signal_t *handle;
        uv_signal_cb cb;
        int signum;
    } signals[] = {
        {&sig_chld, on_sigchld, SIGCHLD},
        {&sig_term, on_stop_signal, SIGTERM},
        {&sig_int, on_stop_signal, SIGINT},
        {&sig_hup, on_stop_signal, SIGHUP},
    };
    for (size_t i = 0; i < sizeof(signals) / sizeof(signals[0]); i++) {
        int rc = uv_signal_init(loop, signals[i].handle);
        if (rc == 0)
            rc = uv_signal_start(signals[i].handle, signals[i].cb, signals[i].signum);
        if (rc != 0) {
            snprintf(err, errlen, "cannot watch %s: %s", strsignal(signals[i].signum),
                     uv_strerror(rc));
            return -1;
        }
    }

    metrics_init(cfg->max_timeout, PYRT_VERSION, PYRT_PYTHON_VERSION, contract_name(cfg->contract));
    pool_on_ready(on_ready);
    cfg->worker_tmp_dir = tmpdirs_create(cfg);
    if (pool_start(loop, cfg, zygote_env, err, errlen) < 0) {
        tmpdirs_remove();
        return -1;
    }
    /* The zygote is exec'd: from here on, lines may wait for the loop's next turn. */
    /* Each returns 0 on Unix: they only fill and queue the handle. */
    (void)uv_check_init(loop, &log_flusher);
    (void)uv_check_start(&log_flusher, on_loop_iteration);
    uv_unref((uv_handle_t *)&log_flusher);
    (void)uv_timer_init(loop, &log_timer);
    uv_unref((uv_handle_t *)&log_timer);
    (void)uv_timer_init(loop, &drain_timer); /* 0 on Unix, as the two above */
    (void)uv_timer_init(loop, &shutdown_timer);
    log_set_batching(1);
    log_start(cfg);

    (void)uv_run(loop, UV_RUN_DEFAULT); /* returns once every handle has closed */
    log_set_batching(0);
    (void)uv_loop_close(loop);
    /* Only now, with nothing served and every worker gone: a big tree delays the exit,
     * never an answer. */
    tmpdirs_remove();
    return 0;
}
