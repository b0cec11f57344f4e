/* metrics.h -- what the master counts, and GET /__metrics: Prometheus' text format 0.0.4.
 *
 * Counters and histograms live here, updated by the master as requests are answered and
 * workers replaced; gauges (workers, queue, connections) are read from their owners at
 * scrape time and handed to metrics_render(). No label carries a path, an id or any
 * value a client chooses: every label value comes from a fixed list, so the number of
 * series is bounded. Names follow Prometheus' conventions: the pyrt_ prefix, base units
 * (seconds, bytes), _total for counters. */
#ifndef PYRT_METRICS_H
#define PYRT_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"

/* How an HTTP request ended, as counted (service requests -- health, metrics -- are not
 * executions and are not counted here). */
typedef enum metrics_outcome {
    METRICS_OK,            /* the function answered (any status it chose) */
    METRICS_ERROR,         /* the function raised, or answered something pyrt refused */
    METRICS_TIMEOUT,       /* stopped at its deadline */
    METRICS_CRASH,         /* its worker died */
    METRICS_MEMORY,        /* it went past --max-memory */
    METRICS_REJECTED_BUSY, /* the queue was full: 503 */
    METRICS_UNAUTHORIZED,  /* a wrong or missing key or secret */
    METRICS_BAD_REQUEST,   /* refused before it ran: framing, limits, a bad body */
    METRICS_CLIENT_GONE,   /* its client left before the answer (access status 499) */
    METRICS_OUTCOMES
} metrics_outcome_t;

/* Why a worker was replaced. */
typedef enum metrics_replacement {
    METRICS_REPLACED_TIMEOUT,  /* killed at a deadline */
    METRICS_REPLACED_CRASH,    /* it died */
    METRICS_REPLACED_MEMORY,   /* it hit --max-memory */
    METRICS_REPLACED_RECYCLE,  /* --max-requests */
    METRICS_REPLACED_PROTOCOL, /* it broke the protocol (user code wrote to the channel) */
    METRICS_REPLACEMENTS
} metrics_replacement_t;

/* Read at scrape time from the parts that own them. */
typedef struct metrics_gauges {
    long workers_busy, workers_idle, workers_total;
    long in_flight;        /* executions running, tasks among them */
    long async_slots;      /* --async-slots of the workers that run tasks */
    long async_slots_busy; /* their tasks running now */
    long queued;           /* waiting for a worker */
    long max_queue;        /* --max-queue */
    long connections;
} metrics_gauges_t;

/* Once, at start: the histograms' last finite bucket is max_timeout (seconds); the
 * build-info labels. */
void metrics_init(double max_timeout, const char *version, const char *python_version,
                  const char *contract);

/* An answered request: its outcome, HTTP status, seconds from its last byte to the
 * answer, seconds it waited for a worker (0: none), and bytes of body in and out. */
void metrics_request(metrics_outcome_t outcome, int status, double seconds, double queue_wait,
                     size_t bytes_in, size_t bytes_out);

void metrics_replaced(metrics_replacement_t why);

/* The outcome an access record names ("ok", "timeout", "busy", "unauthorized",
 * "rejected", ...), as counted; -1 for service requests (health, metrics), which are not
 * executions. */
int metrics_outcome_of(const char *outcome, int status);

/* Appends the whole exposition. */
void metrics_render(buf_t *out, const metrics_gauges_t *gauges);

/* For the unit tests: everything back to zero. */
void metrics_reset(void);

#endif
