/* config.h -- what `pyrt serve` runs with, filled by the CLI, read by everything else. */
#ifndef PYRT_CONFIG_H
#define PYRT_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "common/contract.h"

typedef struct serve_config {
    contract_t contract;
    const char *code_dir;   /* absolute and resolved */
    const char *entrypoint; /* relative to code_dir; NULL when there is no default */
    const char *host;
    long port;
    long workers;
    double default_timeout;
    double max_timeout;
    size_t max_body;
    long max_queue;
    long max_memory_mib; /* 0: unlimited */
    double read_timeout;
    double idle_timeout;
    long max_connections;
    bool preload;
    const char *user;          /* NULL: the invoking user */
    long worker_uid_base;      /* root: workers get uids above it (master/uidslot.h); 0: they
                                  share the zygote's; -1: serve_config_finish decides */
    bool no_worker_namespaces; /* --no-worker-namespaces: workers that share a uid get no
                                  user and PID namespace of their own */
    const char *log_level;
    const char *log_format;     /* text or json (NULL: text on a terminal, else json) */
    bool no_metrics;            /* --no-metrics: no GET /__metrics */
    long async_slots;           /* --async-slots: executions of a coroutine main one worker
                                   runs at once (0 until serve_config_finish decides) */
    long max_requests;          /* --max-requests: replace a worker after about this many
                                   executions (0: never) */
    double drain_delay;         /* SIGTERM: seconds of not-ready serving before closing */
    double shutdown_timeout;    /* then: seconds for what runs (0: each its own deadline) */
    const char *logs_dir;       /* v5: where {id}_logs.log and {id}_errors.log go */
    const char *telemetry_file; /* v5: what GET /__opr/timings answers */
    const char *worker_tmp_dir; /* set by master_run: the per-server folder of the workers'
                                   private TMPDIRs (master/tmpdirs.h); NULL: none */
} serve_config_t;

#endif
