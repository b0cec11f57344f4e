/* Unit tests for master/metrics.c: the Prometheus text exposition (format 0.0.4). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* cmocka.h needs the headers above first: its own block, so that it stays last. */
#include <cmocka.h>

#include "common/buf.h"
#include "master/metrics.h"

static const metrics_gauges_t gauges = {
    .workers_busy = 1,
    .workers_idle = 2,
    .workers_total = 4,
    .in_flight = 1,
    .queued = 3,
    .max_queue = 1024,
    .connections = 7,
};

static char *render(void)
{
    buf_t out = BUF_INIT;
    metrics_render(&out, &gauges);
    return buf_steal(&out);
}

static int setup(void **state)
{
    (void)state;
    metrics_init(900, "0.1.0", "3.11.2", "v5");
    return 0;
}

static void assert_has(const char *text, const char *line)
{
    if (strstr(text, line) == NULL)
        fail_msg("missing line: %s\n--- in ---\n%s", line, text);
}

/* Every line: a # HELP or # TYPE comment, or `name{labels} value` with a name of
 * [a-zA-Z_:][a-zA-Z0-9_:]* and a value that strtod reads whole (or +Inf). */
static void assert_well_formed(const char *text)
{
    const char *line = text;
    int samples = 0;
    while (*line) {
        const char *end = strchr(line, '\n');
        assert_non_null(end); /* every line ends with \n, the last one too */
        size_t len = (size_t)(end - line);
        char *copy = strndup(line, len);
        assert_non_null(copy);
        if (copy[0] == '#') {
            assert_true(strncmp(copy, "# HELP ", 7) == 0 || strncmp(copy, "# TYPE ", 7) == 0);
        } else {
            char *p = copy;
            assert_true((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '_');
            while ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                   (*p >= '0' && *p <= '9') || *p == '_' || *p == ':')
                p++;
            if (*p == '{') {
                char *close = strstr(p, "} ");
                assert_non_null(close);
                p = close + 1;
            }
            assert_int_equal(*p, ' ');
            char *num_end;
            (void)strtod(p + 1, &num_end);
            assert_true(*num_end == '\0');
            samples++;
        }
        free(copy);
        line = end + 1;
    }
    assert_true(samples > 40);
}

static void test_every_outcome_from_the_start(void **state)
{
    (void)state;
    metrics_reset();
    char *text = render();
    assert_well_formed(text);
    assert_has(text, "# TYPE pyrt_executions_total counter\n");
    assert_has(text, "pyrt_executions_total{outcome=\"ok\",status_class=\"2xx\"} 0\n");
    assert_has(text, "pyrt_executions_total{outcome=\"timeout\",status_class=\"5xx\"} 0\n");
    assert_has(text, "pyrt_executions_total{outcome=\"unauthorized\",status_class=\"4xx\"} 0\n");
    assert_has(text, "pyrt_executions_total{outcome=\"rejected_busy\",status_class=\"5xx\"} 0\n");
    assert_has(text, "pyrt_worker_replacements_total{reason=\"max_requests\"} 0\n");
    assert_has(text, "pyrt_build_info{version=\"0.1.0\",python=\"3.11.2\",contract=\"v5\"} 1\n");
    assert_has(text, "pyrt_workers{state=\"starting\"} 1\n");
    assert_has(text, "pyrt_executions_queued 3\n");
    assert_has(text, "pyrt_executions_queued_max 1024\n");
    assert_has(text, "pyrt_connections_open 7\n");
    free(text);
}

static void test_counts_by_outcome_and_class(void **state)
{
    (void)state;
    metrics_reset();
    metrics_request(METRICS_OK, 200, 0.002, 0, 10, 20);
    metrics_request(METRICS_OK, 404, 0.002, 0, 1, 2);
    metrics_request(METRICS_OK, 201, 0.002, 0, 0, 0);
    metrics_request(METRICS_TIMEOUT, 500, 2.0, 0.5, 0, 0);
    metrics_request(METRICS_UNAUTHORIZED, 401, 0, 0, 0, 0);
    metrics_request(METRICS_UNAUTHORIZED, 500, 0, 0, 0, 0); /* v5's answer */
    metrics_request(METRICS_OK, 999, 0.002, 0, 0, 0);       /* nonsense: counted as 5xx */
    metrics_replaced(METRICS_REPLACED_TIMEOUT);
    char *text = render();
    assert_well_formed(text);
    assert_has(text, "pyrt_executions_total{outcome=\"ok\",status_class=\"2xx\"} 2\n");
    assert_has(text, "pyrt_executions_total{outcome=\"ok\",status_class=\"4xx\"} 1\n");
    assert_has(text, "pyrt_executions_total{outcome=\"ok\",status_class=\"5xx\"} 1\n");
    assert_has(text, "pyrt_executions_total{outcome=\"timeout\",status_class=\"5xx\"} 1\n");
    assert_has(text, "pyrt_executions_total{outcome=\"unauthorized\",status_class=\"4xx\"} 1\n");
    assert_has(text, "pyrt_executions_total{outcome=\"unauthorized\",status_class=\"5xx\"} 1\n");
    assert_has(text, "pyrt_worker_replacements_total{reason=\"timeout\"} 1\n");
    assert_has(text, "pyrt_request_body_bytes_total 11\n");
    assert_has(text, "pyrt_response_body_bytes_total 22\n");
    free(text);
}

static void test_histogram_is_cumulative_up_to_the_max_timeout(void **state)
{
    (void)state;
    metrics_init(2, "v", "p", "seed");                 /* buckets stop at --max-timeout */
    metrics_request(METRICS_OK, 200, 0.0005, 0, 0, 0); /* <= 1 ms */
    metrics_request(METRICS_OK, 200, 0.001, 0, 0, 0);  /* == a bound: in it */
    metrics_request(METRICS_OK, 200, 0.3, 0, 0, 0);
    metrics_request(METRICS_TIMEOUT, 500, 2.0, 1.5, 0, 0);
    metrics_request(METRICS_CRASH, 500, 7.0, 0, 0, 0);       /* past every bound */
    metrics_request(METRICS_BAD_REQUEST, 400, 9.0, 0, 0, 0); /* never ran: not observed */
    char *text = render();
    assert_well_formed(text);
    assert_has(text, "pyrt_execution_duration_seconds_bucket{le=\"0.001\"} 2\n");
    assert_has(text, "pyrt_execution_duration_seconds_bucket{le=\"0.25\"} 2\n");
    assert_has(text, "pyrt_execution_duration_seconds_bucket{le=\"0.5\"} 3\n");
    assert_has(text, "pyrt_execution_duration_seconds_bucket{le=\"2\"} 4\n");
    assert_has(text, "pyrt_execution_duration_seconds_bucket{le=\"+Inf\"} 5\n");
    assert_has(text, "pyrt_execution_duration_seconds_count 5\n");
    assert_has(text, "pyrt_queue_wait_seconds_bucket{le=\"1\"} 4\n");
    assert_has(text, "pyrt_queue_wait_seconds_bucket{le=\"2\"} 5\n");
    assert_null(strstr(text, "le=\"2.5\"")); /* nothing past the max timeout but +Inf */
    free(text);
    metrics_init(900, "0.1.0", "3.11.2", "v5");
}

static void test_label_values_are_escaped(void **state)
{
    (void)state;
    metrics_init(900, "1.0\"x\\y\nz", "3", "seed");
    char *text = render();
    assert_has(text,
               "pyrt_build_info{version=\"1.0\\\"x\\\\y\\nz\",python=\"3\",contract=\"seed\"} 1\n");
    assert_well_formed(text);
    free(text);
    metrics_init(900, "0.1.0", "3.11.2", "v5");
}

static void test_outcome_names(void **state)
{
    (void)state;
    assert_int_equal(metrics_outcome_of("ok", 200), METRICS_OK);
    assert_int_equal(metrics_outcome_of("busy", 503), METRICS_REJECTED_BUSY);
    assert_int_equal(metrics_outcome_of("unauthorized", 401), METRICS_UNAUTHORIZED);
    assert_int_equal(metrics_outcome_of("rejected", 413), METRICS_BAD_REQUEST);
    assert_int_equal(metrics_outcome_of("memory", 500), METRICS_MEMORY);
    assert_int_equal(metrics_outcome_of("health", 200), -1);
    assert_int_equal(metrics_outcome_of("no-such", 200), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_outcome_from_the_start),
        cmocka_unit_test(test_counts_by_outcome_and_class),
        cmocka_unit_test(test_histogram_is_cumulative_up_to_the_max_timeout),
        cmocka_unit_test(test_label_values_are_escaped),
        cmocka_unit_test(test_outcome_names),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
