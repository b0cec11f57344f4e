/* metrics.c -- the master's counters and their Prometheus exposition (see metrics.h). */
#include "master/metrics.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define MAX_BUCKETS 24
#define STATUS_CLASSES 5 /* 1xx .. 5xx */

typedef struct histogram {
    uint64_t counts[MAX_BUCKETS + 1]; /* per bucket, not cumulative; the last is +Inf */
    double sum;
    uint64_t count;
} histogram_t;

static const char *const outcome_names[METRICS_OUTCOMES] = {
    [METRICS_OK] = "ok",
    [METRICS_ERROR] = "error",
    [METRICS_TIMEOUT] = "timeout",
    [METRICS_CRASH] = "crash",
    [METRICS_MEMORY] = "memory",
    [METRICS_REJECTED_BUSY] = "rejected_busy",
    [METRICS_UNAUTHORIZED] = "unauthorized",
    [METRICS_BAD_REQUEST] = "bad_request",
    [METRICS_CLIENT_GONE] = "client_gone",
};

/* The class an outcome's series shows at 0 before it first happens, so that every
 * outcome is there from the first scrape. */
static const int usual_class[METRICS_OUTCOMES] = {
    [METRICS_OK] = 2,           [METRICS_ERROR] = 5,       [METRICS_TIMEOUT] = 5,
    [METRICS_CRASH] = 5,        [METRICS_MEMORY] = 5,      [METRICS_REJECTED_BUSY] = 5,
    [METRICS_UNAUTHORIZED] = 4, [METRICS_BAD_REQUEST] = 4, [METRICS_CLIENT_GONE] = 4,
};

static const char *const replacement_names[METRICS_REPLACEMENTS] = {
    [METRICS_REPLACED_TIMEOUT] = "timeout",   [METRICS_REPLACED_CRASH] = "crash",
    [METRICS_REPLACED_MEMORY] = "memory",     [METRICS_REPLACED_RECYCLE] = "max_requests",
    [METRICS_REPLACED_PROTOCOL] = "protocol",
};

static struct {
    double bounds[MAX_BUCKETS];
    int nbounds;
    uint64_t executions[METRICS_OUTCOMES][STATUS_CLASSES];
    histogram_t duration, queue_wait;
    uint64_t replacements[METRICS_REPLACEMENTS];
    uint64_t bytes_in, bytes_out;
    char version[64], python[32], contract[16];
    double start_time;
} m;

void metrics_reset(void)
{
    double bounds[MAX_BUCKETS];
    int n = m.nbounds;
    memcpy(bounds, m.bounds, sizeof(bounds));
    char version[64], python[32], contract[16];
    memcpy(version, m.version, sizeof(version));
    memcpy(python, m.python, sizeof(python));
    memcpy(contract, m.contract, sizeof(contract));
    double start = m.start_time;
    memset(&m, 0, sizeof(m));
    memcpy(m.bounds, bounds, sizeof(bounds));
    m.nbounds = n;
    memcpy(m.version, version, sizeof(version));
    memcpy(m.python, python, sizeof(python));
    memcpy(m.contract, contract, sizeof(contract));
    m.start_time = start;
}

void metrics_init(double max_timeout, const char *version, const char *python_version,
                  const char *contract)
{
    /* From 1 ms up, roughly x2.5 a step, to the longest timeout there can be. */
    static const double steps[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
                                   2.5,   5,      10,    25,   50,    100,  250, 500,  1000};
    memset(&m, 0, sizeof(m));
    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]) && m.nbounds < MAX_BUCKETS - 1; i++)
        if (steps[i] < max_timeout)
            m.bounds[m.nbounds++] = steps[i];
    m.bounds[m.nbounds++] = max_timeout;
    snprintf(m.version, sizeof(m.version), "%s", version);
    snprintf(m.python, sizeof(m.python), "%s", python_version);
    snprintf(m.contract, sizeof(m.contract), "%s", contract);
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    m.start_time = (double)now.tv_sec + (double)now.tv_nsec / 1e9;
}

static void observe(histogram_t *h, double v)
{
    int i = 0;
    while (i < m.nbounds && v > m.bounds[i])
        i++;
    h->counts[i]++;
    h->sum += v;
    h->count++;
}

void metrics_request(metrics_outcome_t outcome, int status, double seconds, double queue_wait,
                     size_t bytes_in, size_t bytes_out)
{
    if ((unsigned)outcome >= METRICS_OUTCOMES)
        return;
    int cls = status / 100;
    if (cls < 1 || cls > STATUS_CLASSES)
        cls = 5;
    m.executions[outcome][cls - 1]++;
    m.bytes_in += bytes_in;
    m.bytes_out += bytes_out;
    if (outcome == METRICS_UNAUTHORIZED || outcome == METRICS_BAD_REQUEST)
        return; /* never queued nor run: no latency to speak of */
    observe(&m.duration, seconds);
    observe(&m.queue_wait, queue_wait);
}

void metrics_replaced(metrics_replacement_t why)
{
    if ((unsigned)why < METRICS_REPLACEMENTS)
        m.replacements[why]++;
}

int metrics_outcome_of(const char *outcome, int status)
{
    (void)status;
    static const struct {
        const char *name;
        metrics_outcome_t outcome;
    } names[] = {
        {"ok", METRICS_OK},
        {"error", METRICS_ERROR},
        {"timeout", METRICS_TIMEOUT},
        {"crash", METRICS_CRASH},
        {"memory", METRICS_MEMORY},
        {"busy", METRICS_REJECTED_BUSY},
        {"unauthorized", METRICS_UNAUTHORIZED},
        {"rejected", METRICS_BAD_REQUEST},
        {"client_gone", METRICS_CLIENT_GONE},
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strcmp(outcome, names[i].name) == 0)
            return (int)names[i].outcome;
    return -1; /* "health" and the like: service requests */
}

/* ------------------------------------------------------------------ output ---- */

static void header(buf_t *out, const char *name, const char *type, const char *help)
{
    buf_appendf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A label value: backslash, double quote and newline escaped, as the format says. */
static void label_value(buf_t *out, const char *v)
{
    for (; *v; v++) {
        if (*v == '\\' || *v == '"')
            buf_appendf(out, "\\%c", *v);
        else if (*v == '\n')
            buf_append_str(out, "\\n");
        else
            buf_append(out, v, 1);
    }
}

/* A float as Prometheus reads it (Go's ParseFloat): shortest round-trip form. */
static void number(buf_t *out, double v)
{
    if (isinf(v))
        buf_append_str(out, v > 0 ? "+Inf" : "-Inf");
    else
        buf_appendf(out, "%.17g", v);
}

static void histogram(buf_t *out, const char *name, const char *help, const histogram_t *h)
{
    header(out, name, "histogram", help);
    uint64_t cumulative = 0;
    for (int i = 0; i <= m.nbounds; i++) {
        cumulative += h->counts[i];
        buf_appendf(out, "%s_bucket{le=\"", name);
        number(out, i < m.nbounds ? m.bounds[i] : INFINITY);
        buf_appendf(out, "\"} %llu\n", (unsigned long long)cumulative);
    }
    buf_appendf(out, "%s_sum ", name);
    number(out, h->sum);
    buf_appendf(out, "\n%s_count %llu\n", name, (unsigned long long)h->count);
}

static void gauge(buf_t *out, const char *name, const char *help, long value)
{
    header(out, name, "gauge", help);
    buf_appendf(out, "%s %ld\n", name, value);
}

void metrics_render(buf_t *out, const metrics_gauges_t *g)
{
    header(out, "pyrt_executions_total", "counter",
           "Execution requests answered, by outcome and status class.");
    for (int o = 0; o < METRICS_OUTCOMES; o++) {
        bool any = false;
        for (int c = 0; c < STATUS_CLASSES; c++)
            any |= m.executions[o][c] > 0;
        for (int c = 0; c < STATUS_CLASSES; c++) {
            if (m.executions[o][c] == 0 && (any || c + 1 != usual_class[o]))
                continue;
            buf_appendf(out, "pyrt_executions_total{outcome=\"%s\",status_class=\"%dxx\"} %llu\n",
                        outcome_names[o], c + 1, (unsigned long long)m.executions[o][c]);
        }
    }
    histogram(out, "pyrt_execution_duration_seconds",
              "Time from a request's last byte to its answer, queue included.", &m.duration);
    histogram(out, "pyrt_queue_wait_seconds", "Time an execution waited for a worker.",
              &m.queue_wait);
    gauge(out, "pyrt_executions_in_flight", "Executions running now.", g->in_flight);
    gauge(out, "pyrt_executions_queued", "Executions waiting for a worker.", g->queued);
    gauge(out, "pyrt_async_slots",
          "--async-slots of the workers that run tasks (async def "
          "main side by side).",
          g->async_slots);
    gauge(out, "pyrt_async_slots_busy", "Tasks running on those workers.", g->async_slots_busy);
    gauge(out, "pyrt_executions_queued_max",
          "--max-queue: waiting executions past which "
          "requests are answered 503.",
          g->max_queue);
    header(out, "pyrt_workers", "gauge", "Worker processes, by state.");
    long starting = g->workers_total - g->workers_busy - g->workers_idle;
    buf_appendf(out,
                "pyrt_workers{state=\"busy\"} %ld\npyrt_workers{state=\"idle\"} %ld\n"
                "pyrt_workers{state=\"starting\"} %ld\n",
                g->workers_busy, g->workers_idle, starting < 0 ? 0 : starting);
    header(out, "pyrt_worker_replacements_total", "counter", "Workers replaced, by reason.");
    for (int r = 0; r < METRICS_REPLACEMENTS; r++)
        buf_appendf(out, "pyrt_worker_replacements_total{reason=\"%s\"} %llu\n",
                    replacement_names[r], (unsigned long long)m.replacements[r]);
    header(out, "pyrt_request_body_bytes_total", "counter", "Bytes of request bodies read.");
    buf_appendf(out, "pyrt_request_body_bytes_total %llu\n", (unsigned long long)m.bytes_in);
    header(out, "pyrt_response_body_bytes_total", "counter", "Bytes of response bodies sent.");
    buf_appendf(out, "pyrt_response_body_bytes_total %llu\n", (unsigned long long)m.bytes_out);
    gauge(out, "pyrt_connections_open", "Client connections open now.", g->connections);
    header(out, "pyrt_build_info", "gauge", "pyrt's version, its Python and the contract.");
    buf_append_str(out, "pyrt_build_info{version=\"");
    label_value(out, m.version);
    buf_append_str(out, "\",python=\"");
    label_value(out, m.python);
    buf_append_str(out, "\",contract=\"");
    label_value(out, m.contract);
    buf_append_str(out, "\"} 1\n");
    header(out, "process_start_time_seconds", "gauge",
           "Start time of the process since the Unix epoch, in seconds.");
    buf_append_str(out, "process_start_time_seconds ");
    number(out, m.start_time);
    buf_append_str(out, "\n");
}
