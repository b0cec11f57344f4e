/* job.c -- one execution's memory (see job.h). */
#include "master/job.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"
#include "common/xalloc.h"

double job_timeout(bool given, double seconds, const serve_config_t *cfg)
{
    double t = given ? seconds : cfg->default_timeout;
    return t > cfg->max_timeout ? cfg->max_timeout : t;
}

job_t *job_new(uv_loop_t *loop, contract_t contract, void *client, job_answer_fn answer,
               const char *id, double timeout)
{
    job_t *job = xcalloc(1, sizeof(*job));
    job->contract = contract;
    buf_init(&job->head);
    execlog_begin(&job->log, NULL);
    job->client = client;
    job->answer = answer;
    snprintf(job->id, sizeof(job->id), "%s", id);
    buf_init(&job->body);
    job->timeout = timeout;
    (void)uv_timer_init(loop, &job->deadline); /* 0 on Unix: it only fills the handle */
    job->deadline.data = job;
    return job;
}

static void on_timer_closed(uv_handle_t *handle)
{
    job_t *job = handle->data;
    buf_free(&job->body);
    buf_free(&job->head);
    execlog_end(&job->log);
    free(job);
}

void job_free(job_t *job)
{
    if (job == NULL)
        return;
    (void)uv_timer_stop(&job->deadline); /* always 0 */
    uv_close((uv_handle_t *)&job->deadline, on_timer_closed);
}

#define DEADLINE_MS_MAX 1e12 /* 31 years: past it, "never" */

static void on_deadline(uv_timer_t *t)
{
    job_t *job = t->data;
    job->expired(job);
}

void job_deadline_start(job_t *job, void (*expired)(job_t *job))
{
    double ms = job->timeout * 1000.0;
    uint64_t delay = ms > DEADLINE_MS_MAX ? (uint64_t)DEADLINE_MS_MAX : (uint64_t)(ms + 0.999);
    job->expired = expired;
    /* 0: the timer is not closing (job_free has not run) and has a callback. */
    (void)uv_timer_start(&job->deadline, on_deadline, delay ? delay : 1, 0);
}

/* Seconds from pool_submit to a worker taking the job, or to now if none did. */
static double queue_wait(const job_t *job)
{
    if (job->submitted_ns == 0)
        return 0;
    uint64_t until = job->started_ns ? job->started_ns : uv_hrtime();
    return until > job->submitted_ns ? (double)(until - job->submitted_ns) / 1e9 : 0;
}

void job_answer(job_t *job, const job_answer_t *given)
{
    job->answered = true;
    job_answer_t a = *given;
    a.queue_wait = queue_wait(job);
    const job_answer_t *answer = &a;
    if (job->contract != CONTRACT_V5) {
        if (job->client)
            job->answer(job, answer);
        return;
    }
    /* The executor reads the files as soon as it has the answer: they are complete
     * before it leaves, and closed after (off the answer's path). */
    buf_t headers = BUF_INIT;
    buf_append(&headers, answer->headers, answer->headers_len);
    buf_appendf(&headers, "x-open-runtimes-log-id: %s\r\n", job->log.id);
    execlog_complete(&job->log);
    if (job->client) {
        a.headers = headers.data;
        a.headers_len = headers.len;
        job->answer(job, &a);
    }
    execlog_end(&job->log);
    buf_free(&headers);
}

void error_answer_format(contract_t contract, int status, const char *message, bool public,
                         buf_t *headers, buf_t *body)
{
    switch (contract) {
    case CONTRACT_SEED:
        buf_append_str(headers, "Content-Type: application/json\r\n");
        json_error_body(body, status, message);
        break;
    case CONTRACT_V2:
        buf_append_str(headers, "Content-Type: application/json\r\n");
        buf_append_str(body, "{\"stdout\": \"\", \"stderr\": ");
        json_append_string(body, message, strlen(message));
        buf_append_str(body, "}");
        break;
    case CONTRACT_V5:
        buf_append_str(headers, "content-type: text/plain; charset=utf-8\r\n");
        if (public)
            buf_append_str(body, message);
        break;
    }
}

void job_answer_error(job_t *job, int status, const char *message, const char *outcome,
                      pid_t worker_pid)
{
    job->answered = true;
    if (job->contract == CONTRACT_V5)
        execlog_line(&job->log, EXECLOG_ERRORS, message, strlen(message));
    if (job->client == NULL && job->contract != CONTRACT_V5)
        return;
    buf_t headers = BUF_INIT, body = BUF_INIT;
    error_answer_format(job->contract, status, message, false, &headers, &body);
    job_answer_t a = {status,   headers.data, headers.len, body.data ? body.data : "",
                      body.len, outcome,      worker_pid};
    job_answer(job, &a);
    buf_free(&headers);
    buf_free(&body);
}
