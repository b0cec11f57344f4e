/* run.c -- one execution without HTTP (see run.h).
 *
 * The flow is the server's with the connection taken out: start the pool, and once a
 * worker is ready (so that start-up does not count against the function's timeout),
 * admit the request as http.c does (admit.h), submit one job, take its answer, shut the pool down.
 * Ctrl-C needs no handler: the zygote and the workers die with us (PDEATHSIG). */
#include "master/run.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>
#include <uv.h>

#include "common/json.h"
#include "common/log.h"
#include "common/proc.h"
#include "common/xalloc.h"
#include "master/admit.h"
#include "master/body.h"
#include "master/job.h"
#include "master/pool.h"
#include "master/secret.h"

static uv_loop_t *loop;
static uv_signal_t sig_chld;
static const serve_config_t *config;
static const run_request_t *request;
static run_answer_t *answer;
static bool answered;
static uint64_t submitted_ns;

/* The pool is shut down on the loop turn after the answer: an answer never re-enters
 * the pool (it comes from inside it). */
static uv_timer_t shutdown_later;

static void on_pool_stopped(void)
{
    uv_close((uv_handle_t *)&sig_chld, NULL);
}

static void shutdown_pool(uv_timer_t *t)
{
    uv_close((uv_handle_t *)t, NULL);
    pool_shutdown(on_pool_stopped);
}

static void take_answer(int status, const char *headers, size_t headers_len, const char *body,
                        size_t body_len, pid_t pid)
{
    answer->status = status;
    buf_append(&answer->headers, headers, headers_len);
    buf_append(&answer->body, body, body_len);
    answer->worker_pid = pid;
    answer->ms = submitted_ns ? (double)(uv_hrtime() - submitted_ns) / 1e6 : 0;
    answered = true;
    (void)uv_timer_start(&shutdown_later, shutdown_pool, 0, 0); /* 0: it has a callback */
}

static void on_answer(job_t *job, const job_answer_t *a)
{
    job->client = NULL;
    take_answer(a->status, a->headers, a->headers_len, a->body, a->body_len, a->worker_pid);
}

static void answer_error(int status, const char *message)
{
    buf_t headers = BUF_INIT, body = BUF_INIT;
    error_answer_format(config->contract, status, message, true, &headers, &body);
    take_answer(status, headers.data, headers.len, body.data ? body.data : "", body.len, 0);
    buf_free(&headers);
    buf_free(&body);
}

/* The job for the request, once admitted as http.c admits one (admit.h). */
static void submit(const admit_t *admit)
{
    job_t *job = job_new(loop, config->contract, answer, on_answer, answer->id, admit->timeout);
    memcpy(job->target, admit->target, sizeof(job->target));
    if (config->contract == CONTRACT_V5)
        buf_append(&job->head, request->head.data ? request->head.data : "", request->head.len);
    buf_append(&job->body, request->body.data ? request->body.data : "", request->body.len);
    submitted_ns = uv_hrtime();
    pool_submit(job);
}

/* Once a worker is ready: the checks http.c makes once a request is complete, then the
 * job. v5: the request as given, its log lines to stderr (no log files, no id). */
static void on_pool_ready(void)
{
    admit_t admit;
    if (config->contract == CONTRACT_V5) {
        admit_v5(config, request->timeout > 0, request->timeout, &admit);
        submit(&admit);
        return;
    }
    const buf_t *request_body = &request->body;
    body_check_t *check = request_body->len > 0 ? body_check_new() : NULL;
    if (check != NULL)
        body_check_feed(check, request_body->data, request_body->len);
    admit_json(config, check, request_body->len, &admit);
    if (admit.status != 0)
        answer_error(admit.status, admit.message);
    else
        submit(&admit);
    body_check_free(check);
}

static void on_sigchld(uv_signal_t *h, int signum)
{
    (void)h;
    (void)signum;
    pool_reap();
}

int master_run_once(const serve_config_t *cfg, const run_request_t *req, run_answer_t *out,
                    char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    buf_init(&out->headers);
    buf_init(&out->body);
    config = cfg;
    request = req;
    answer = out;

    /* No key is needed, but none reaches user code either. */
    const char *key = getenv("INTERNAL_RUNTIME_KEY");
    if (key && *key && secret_take(CONTRACT_SEED, err, errlen) < 0)
        return -1;
    (void)unsetenv("INTERNAL_RUNTIME_KEY");
    (void)unsetenv("OPEN_RUNTIMES_SECRET");
    char **zygote_env = proc_copy_environ();
    if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0)
        log_msg(LOG_WARN, "prctl(PR_SET_CHILD_SUBREAPER): %s", strerror(errno));
    signal(SIGPIPE, SIG_IGN);
    reqid_seed();
    reqid_generate(out->id);

    loop = uv_default_loop();
    (void)uv_timer_init(loop, &shutdown_later); /* 0 on Unix: it only fills the handle */
    int rc = uv_signal_init(loop, &sig_chld);
    if (rc == 0)
        rc = uv_signal_start(&sig_chld, on_sigchld, SIGCHLD);
    if (rc != 0) {
        snprintf(err, errlen, "cannot watch SIGCHLD: %s", uv_strerror(rc));
        return -1;
    }
    pool_on_ready(on_pool_ready);
    if (pool_start(loop, cfg, zygote_env, err, errlen) < 0)
        return -1;
    (void)uv_run(loop, UV_RUN_DEFAULT); /* returns once every handle has closed */
    (void)uv_loop_close(loop);
    if (!answered) {
        snprintf(err, errlen, "the execution ended without an answer");
        return -1;
    }
    return 0;
}

void run_answer_free(run_answer_t *a)
{
    buf_free(&a->headers);
    buf_free(&a->body);
}
