/* pool_internal.h -- what the pool's files share: the worker, the pool's one state,
 * and the calls between them. Only the pool's files include it (see pool.h for the
 * pool's callers):
 *
 *   pool.c      worker life (new, kill, exit, free) and the pool's public API
 *   spawn.c     the zygote (start, exit, restart) and SPAWN: a new worker's fds and gate
 *   channel.c   a worker's channel: frames in (READY, RESULT, LOG), CALL and GO out
 *   result.c    a RESULT frame checked, byte by byte (pure)
 *   output.c    a worker's stdout and stderr: read, cut into lines, capped, routed
 *   lines.c     a byte stream cut into lines of bounded length (pure)
 *   dispatch.c  which worker runs which job: dispatch, prefetch, take-back
 *   deadline.c  a job whose deadline passed: queued, prefetched or running
 *   backoff.c   restart storms and the back-off between worker starts (pure)
 *   tasks.c     --async-slots: executions side by side on a worker's event loop
 *   shutdown.c  the pool's end: finish or stop what runs, stop the children */
#ifndef PYRT_POOL_INTERNAL_H
#define PYRT_POOL_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "common/buf.h"
#include "master/config.h"
#include "master/job.h"
#include "master/metrics.h"
#include "master/pool.h"
#include "master/queue.h"
#include "proto/gate.h"
#include "proto/proto.h"
#include "proto/zygote.h"

#define OUTPUT_LINE_MAX (64 * 1024)       /* longer output lines are split */
#define OUTPUT_CAP_PER_EXEC (1024 * 1024) /* log bytes one execution may produce */
#define CHANNEL_EOF_GRACE_MS 200          /* EOF without exit: kill after this */
#define CHANNEL_FRAME_SLACK (1024 * 1024) /* a RESULT's frame: the body limit plus this */
#define STOP_GRACE_MS 3000                /* shutdown: SIGKILL what has not exited */
#define BACKOFF_BASE_MS 50
#define BACKOFF_CAP_MS 5000 /* also the retry delay of a failed zygote start */
#define UNCLAIMED_MAX 32    /* exits reaped before their SPAWNED came */
#define STORM_ANSWER_AT                                                                            \
    2                    /* a function's workers dead in a row before its requests get the error   \
                          */
#define STORM_TARGETS 16 /* functions whose storms are remembered */
#define PREFETCH_MAX_BODY (256 * 1024)  /* larger bodies wait in the queue */
#define ZYGOTE_FRAME_MAX (64 * 1024)    /* the zygote sends only small frames */
#define SPAWN_INFLIGHT_MAX 64           /* SPAWNs unanswered at once: well within its socket */
#define SPAWN_TIMEOUT_MS 3000           /* a zygote that answers no SPAWN this long is replaced */
#define ORPHAN_DELAY_MS 20              /* kill_orphans() walks this long after the first exit */
#define READ_CHUNK (64 * 1024)          /* one read of a worker's or the zygote's fd */
#define ERROR_TEXT_MAX 256              /* the last error kept for answers and health */
#define CALL_TIMEOUT_MS_MAX 4000000000u /* a CALL's u32 timeout field */
#define RESULT_HEADERS_MAX 1000
#define RESULT_HEADER_NAME_MAX 256
#define TASK_CANCEL_GRACE_MS 1000 /* a cancelled task's RESULT must come within this */
#define ASYNC_TARGETS 64          /* functions remembered as having a coroutine main */
#define QUEUE_SCAN_MAX 64         /* queued jobs looked at behind one that must wait */

/* In the master's child before it execs the zygote. */
#define ZYGOTE_EXEC_EXIT_FD 126   /* the control socket could not become its fd */
#define ZYGOTE_EXEC_EXIT_EXEC 127 /* execve() failed */

/* ------------------------------------------------------------- backoff.c ---- */

/* Restart storms, per function: how many workers in a row died running it before
 * answering anything. During back-off, requests for a function at STORM_ANSWER_AT get
 * its last error at once; requests for other functions wait for the next worker. */
typedef struct storm {
    char target[JOB_TARGET_MAX];
    unsigned deaths;
    char error[ERROR_TEXT_MAX];
} storm_t;

typedef struct backoff {
    unsigned streak; /* workers dead in a row before they answered anything */
    unsigned waited; /* the streak whose wait is over */
    bool active;     /* waiting: no worker starts until backoff_end() */
    storm_t storms[STORM_TARGETS];
    unsigned storm_next; /* the slot a new function takes (the oldest) */
} backoff_t;

/* The wait before start number `failures` of something that keeps failing: none for the
 * first retry, then BACKOFF_BASE_MS doubling up to BACKOFF_CAP_MS. */
unsigned backoff_ms(unsigned failures);

/* A worker died before it answered anything (or could not be forked); `target` is the
 * function it was running (NULL: none; "" is a function too, v5's one) and `error` why. */
void backoff_death(backoff_t *b, const char *target, const char *error);

/* A worker answered for `target`: the streak and that function's storm are over. */
void backoff_answered(backoff_t *b, const char *target);

/* How long to wait before the next worker starts: 0 when the streak's wait is over. */
unsigned backoff_due(const backoff_t *b);

/* The wait begins (the caller runs the timer) and ends. */
void backoff_begin(backoff_t *b);
void backoff_end(backoff_t *b);

/* The error to answer a request for `target` with at once, or NULL to let it wait. */
const char *backoff_storm_error(const backoff_t *b, const char *target);

/* --------------------------------------------------------------- lines.c ---- */

typedef void (*lines_emit_fn)(void *ctx, const char *line, size_t len);

/* Appends `data` to `partial` and emits each complete line (without its newline); a
 * line of `max` bytes or more goes out in pieces of `max`. What is left is the
 * unfinished line, kept in `partial`. */
void lines_split(buf_t *partial, const char *data, size_t len, size_t max, lines_emit_fn emit,
                 void *ctx);

/* Emits the unfinished line, if any, as it is, and empties `partial`. */
void lines_flush(buf_t *partial, lines_emit_fn emit, void *ctx);

/* -------------------------------------------------------------- result.c ---- */

/* A RESULT frame, checked. Every pointer points into the payload it came from except
 * `headers`, which result_parse() fills and result_free() frees. */
typedef struct result {
    uint32_t seq;
    uint32_t status;
    uint32_t flags; /* as read, also when the frame is invalid (0 past its end) */
    buf_t headers;  /* "Name: value\r\n" lines */
    const uint8_t *body;
    uint32_t body_len;
} result_t;

/* Reads a RESULT payload. Everything in it is checked -- user code can write to the
 * channel, so a worker is trusted with nothing that could break the client's framing:
 * status 200-599, at most RESULT_HEADERS_MAX headers, names that are HTTP tokens and
 * not the ones the master writes itself, values without CR, LF or NUL, nothing after
 * the body. NULL when it is valid, else what is wrong; `out` is filled either way (free
 * it with result_free). The seq is the caller's to check. */
const char *result_parse(const uint8_t *payload, size_t len, result_t *out);
void result_free(result_t *r);

/* ------------------------------------------------------------ the worker ---- */

/* An execution running as a task beside others on a worker's event loop (tasks.c). */
typedef struct task {
    job_t *job; /* the pool's; NULL once answered at its deadline (its RESULT awaited) */
    uint32_t seq;
    uint64_t cancel_by;  /* uv_now() by which the worker must have read its CANCEL */
    bool acked;          /* the worker read the CANCEL (CANCELLED came) */
    size_t output_bytes; /* against OUTPUT_CAP_PER_EXEC */
    bool output_cut;
    char id[REQID_MAX + 1]; /* its request id, kept after the job is answered */
} task_t;

enum worker_state {
    W_SPAWNING, /* SPAWN sent, the zygote has not said the pid yet */
    W_STARTING, /* forked, READY not received */
    W_IDLE,
    W_BUSY,
    W_DYING, /* killed or lost: waiting for exit and for its handles to close */
};

/* One of a worker's output pipes (output.c). */
typedef struct output {
    uv_pipe_t pipe;
    worker_t *worker; /* the one it belongs to (it is embedded there) */
    const char *name; /* "stdout" or "stderr", static */
    buf_t partial;    /* an unfinished line; freed by output_close() */
    buf_t held;       /* read, not yet attributed: the channel is read first (on_output) */
    bool open;
} output_t;

/* A worker: made by worker_new() when its SPAWN is sent, freed by worker_free() once
 * its four handles (channel, timer, two pipes) have closed -- never directly. */
struct worker {
    unsigned id; /* the SPAWN's: how the zygote's SPAWNED names it */
    pid_t pid;   /* 0 until SPAWNED */
    uid_t uid;   /* its own (uidslot.h), released by worker_free(); 0: the zygote's */
    bool own_ns; /* in a user and PID namespace of its own (SPAWNED said): killing it
                    kills everything it started */
    enum worker_state state;
    uv_pipe_t chan;
    uv_timer_t timer; /* the grace after its channel's EOF */
    output_t out, err;
    int open_handles; /* worker_free() when it reaches 0 */
    bool chan_open;
    proto_decoder_t dec; /* the channel's frames; freed by worker_free() */
    job_t *job;          /* the execution it runs (CALL seq_running); the pool's job */
    job_t *prefetched;   /* sent behind it (CALL next_seq), not known to run; likewise */
    uint32_t seq_running;
    uint32_t next_seq;
    uint32_t seq_sent;           /* the last CALL's */
    bool prefetch_used;          /* a CALL went out behind `job`, taken back or not */
    gate_t *gate;                /* shared with the worker (gate.h); unmapped by worker_free() */
    char last_id[REQID_MAX + 1]; /* tags output, also after the execution answered */
    size_t output_bytes;         /* this execution's, against OUTPUT_CAP_PER_EXEC (in tasks
                                    mode: its unattributed output's, until it falls idle) */
    bool output_cut;
    bool exited;
    bool answered;                      /* sent at least one RESULT */
    bool ready_early;                   /* READY came before the zygote's SPAWNED (its pid) */
    bool expected_exit;                 /* we killed or stopped it */
    const char *kill_reason;            /* static; overrides the exit status in the answer */
    metrics_replacement_t replaced_for; /* why its replacement is counted (default: crash) */
    long executions;                    /* RESULTs it sent */
    long recycle_after;                 /* --max-requests with its jitter; 0: never */
    bool tasks_mode;                    /* it took a CALL flagged TASK: it runs tasks from now on */
    task_t *tasks;            /* --async-slots of them once in tasks mode; worker_free frees */
    unsigned task_count;      /* running, or cancelled and not yet ended */
    unsigned cancels_pending; /* CANCELs the worker has not read yet (CANCELLED not come) */
    bool draining;            /* to be replaced: takes no more tasks, goes when they end */
    bool reserved;            /* takes no more tasks: an execution to run alone waits for it */
    bool output_mixed;        /* several executions ran at once since it was last idle: its
                                 pipes' output is nobody's (output.c) */
    uv_timer_t cancel_timer;  /* the grace of cancelled tasks (TASK_CANCEL_GRACE_MS) */
    worker_t *prev, *next;    /* pool.workers */
};

/* ------------------------------------------------------------ the state ---- */

typedef struct zygote {
    pid_t pid; /* 0: none */
    uv_pipe_t chan;
    bool chan_open;
    bool ready; /* said ZYGOTE_READY, and SPAWN can reach it */
    proto_decoder_t dec;
    unsigned failures; /* exits in a row before it was ready */
    uv_timer_t restart_timer;
    char last_error[ERROR_TEXT_MAX];
    unsigned spawns_pending; /* SPAWNs sent, not answered */
    bool send_blocked;       /* its socket was full: no SPAWN until it answers one */
    uint64_t progress_ms;    /* the last answer, or the first SPAWN after a quiet time */
    uv_timer_t spawn_timer;  /* spawn_watch(): SPAWN_TIMEOUT_MS without progress */
    char **argv;             /* built once by pool_start(), kept for every restart (never freed) */
    char **env;              /* the caller's (pool_start) */
    int namespaces_said;     /* what the log said of worker namespaces: -1 nothing yet, 0
                                off, 1 on (a new zygote's READY is logged if it differs) */
} zygote_t;

typedef struct pool_state {
    uv_loop_t *loop;
    const serve_config_t *config; /* the caller's */
    zygote_t zygote;
    worker_t *workers; /* every worker until worker_free() */
    unsigned next_worker_id;
    job_queue_t queue; /* jobs waiting for a worker; each is the pool's */
    backoff_t backoff;
    uv_timer_t backoff_timer;
    char last_worker_error[ERROR_TEXT_MAX];
    bool shutting_down; /* pool_shutdown() was called */
    bool stopping;      /* nothing left to run: the children are being stopped */
    void (*shutdown_done)(void);
    uv_timer_t stop_timer;
    void (*ready_hook)(void);
    pool_output_fn output_sink;
    struct {
        pid_t pid;
        int status;
    } unclaimed[UNCLAIMED_MAX]; /* exits reaped before their SPAWNED came (a ring) */
    unsigned unclaimed_next;
    bool orphans_pending; /* kill_orphans() waits for a spawning worker's pid */
    char async_targets[ASYNC_TARGETS][JOB_TARGET_MAX]; /* functions seen with a coroutine
                                                          main (a ring; "" is v5's one) */
    bool async_target_used[ASYNC_TARGETS];
    unsigned async_target_next;
    uv_timer_t orphan_timer;   /* kill_orphans(): one walk for a burst of exits */
    char io_chunk[READ_CHUNK]; /* one read at a time: every read lands here */
} pool_state_t;

extern pool_state_t pool;

/* ---------------------------------------------------------------- pool.c ---- */

/* Takes ownership of the three fds (closed on failure) and of `gate`, links the worker
 * into pool.workers. *rc is 0 or the libuv error of an fd that could not be opened: the
 * worker is then to be killed (its handles close as usual). */
worker_t *worker_new(unsigned id, int chan_fd, int out_fd, int err_fd, gate_t *gate, int *rc);

/* One of the worker's handles has closed; after the last one, the worker is freed. */
void worker_handle_closed(worker_t *w);

/* The worker is gone or going: close its channel and timer (the pipes close at EOF). */
void worker_release(worker_t *w);

void worker_kill(worker_t *w, const char *reason);
void worker_exited(worker_t *w, int status);

/* The worker's executions (its job, a prefetched one, its tasks) cannot be answered by
 * it: each gets `what`. */
void worker_lost_job(worker_t *w, const char *what);

/* "worker exited with status 75 (memory limit setup failed)": `who` and what its wait
 * status says; for a worker, with the name of an exit status pyrt's worker code uses
 * (proto/zygote.h). */
void describe_exit(const char *who, bool worker, int status, char *out, size_t size);

void finish_job_error(job_t *job, int status, const char *message, const char *outcome, pid_t pid);
unsigned live_workers(void);
void call_ready_hook(void);
/* Kills what exited workers left (without per-worker uids): soon, once for a burst;
 * kill_orphans_now() at once (the pool's end). */
void kill_orphans(void);
void kill_orphans_now(void);

/* Starts the zygote or workers that are missing, answers what can no longer wait, and
 * completes a shutdown: called after anything that may change what is needed. */
void pool_maintain(void);

/* ------------------------------------------------------------ shutdown.c ---- */

/* pool_maintain() during a shutdown: the children are stopped once nothing runs, and
 * the caller hears when they are all gone. */
void shutdown_maintain(void);

/* ------------------------------------------------------------ dispatch.c ---- */

void dispatch(void);
worker_t *idle_worker(void);
size_t waiting(void);

/* Takes back the worker's prefetched job, which it will not run: first in the queue
 * again, or answered with `what` if the worker had started it. */
void requeue_prefetched(worker_t *w, const char *what);

/* ------------------------------------------------------------ deadline.c ---- */

/* The job's deadline passed (job_deadline_start's callback). */
void deadline_passed(job_t *job);

/* ------------------------------------------------------------- channel.c ---- */

/* Starts reading the worker's channel. 0, or a libuv error. */
int channel_start(worker_t *w);
void channel_close(worker_t *w);

/* Closes the channel of a worker that is to exit at its EOF; if it has not exited
 * within STOP_GRACE_MS (its loop is busy, say), it is killed. */
void channel_close_expecting_exit(worker_t *w);

/* Frames already in the channel, read and handled now. */
void channel_drain(worker_t *w);

typedef enum call_kind {
    CALL_RUN,      /* the worker's one execution, now */
    CALL_PREFETCH, /* behind the one it runs (gate.h) */
    CALL_TASK,     /* beside the others on its event loop (tasks.c) */
} call_kind_t;

/* Sends the job to the worker. */
void channel_send_call(worker_t *w, job_t *job, call_kind_t kind);

/* A frame of one u32 (GO, CANCEL) to the worker. */
void channel_send_u32(worker_t *w, uint32_t type, uint32_t value);

/* The client's answer from a checked RESULT (the body limit checked here), and the job
 * freed. `memory`: the worker hit --max-memory (the outcome says so). */
void channel_answer(job_t *job, const result_t *res, pid_t pid, bool memory);

/* After an answer: does the worker go (it hit --max-memory: `res_flags` says, or
 * --max-requests)? Counts the execution and sets what its replacement is counted as. */
bool channel_recycle_due(worker_t *w, uint32_t res_flags);

/* Reads what is already in a stream's fd, without waiting, handing each chunk to feed:
 * the reads libuv would do on the next turn, done now because order matters (output
 * before the answer it belongs to; a RESULT before the exit that follows it). */
void read_available(uv_handle_t *h, void (*feed)(void *ctx, const char *data, size_t len),
                    void *ctx);

/* libuv's alloc callback for every read of the pool: pool.io_chunk. */
void pool_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b);

/* -------------------------------------------------------------- output.c ---- */

/* Opens the pipe on `fd` for the worker's `name` ("stdout", "stderr"). 0, or a libuv
 * error (the fd is closed then). */
int output_open(output_t *o, worker_t *w, const char *name, int fd);
int output_start(output_t *o);

/* Everything written so far: what on_output held back, then what is in the pipe. */
void output_drain(output_t *o);

/* An unfinished line is logged as it is: at the end of its execution (so it keeps that
 * execution's id) and when the pipe closes. */
void output_flush(output_t *o);

/* The worker's running execution ends (answered or timed out): its output so far --
 * what is still in the pipes too, if `drain` -- goes out under its id (into its log
 * file in v5), while w->job is still set. */
void output_end_execution(worker_t *w, bool drain);
void output_close(output_t *o);

/* One line an execution wrote, where it goes: its v5 log file, `pyrt run`'s sink, or
 * the log under `id`. `bytes` and `cut` are the execution's, against
 * OUTPUT_CAP_PER_EXEC. `job` may be NULL (the execution was answered already). */
void output_route(worker_t *w, job_t *job, const char *id, const char *stream, size_t *bytes,
                  bool *cut, const char *text, size_t len);

/* --------------------------------------------------------------- tasks.c ---- */

/* The worker that takes `job` as a task now, or NULL: its function is not known to
 * have a coroutine main, --async-slots is 1, or every worker is full or exclusive. */
worker_t *tasks_worker_for(const job_t *job);

/* The job just went out as task `seq` (channel_send_call). */
void tasks_add(worker_t *w, job_t *job, uint32_t seq);

/* The task `seq` of the worker, or NULL. */
task_t *tasks_find(worker_t *w, uint32_t seq);

/* A checked RESULT for task `t`: the answer, or a cancelled task's end. */
void tasks_result(worker_t *w, task_t *t, const result_t *res);

/* A task's deadline passed: the client gets the timeout now, the task a CANCEL. */
void tasks_deadline(worker_t *w, job_t *job, const char *message, const char *secs);

/* The worker is gone: each task's client gets `what`. */
void tasks_lost(worker_t *w, const char *what);

/* Whose the lines of a LOG or OUTPUT frame for `seq` are: the execution running alone,
 * a task's (also once answered: job NULL, its id kept), or, for a seq no execution has
 * now, nobody's ("unattributed" on a worker that runs tasks, else the last id). `bytes`
 * and `cut` are the owner's, against OUTPUT_CAP_PER_EXEC. */
typedef struct frame_owner {
    job_t *job;
    const char *id;
    size_t *bytes;
    bool *cut;
} frame_owner_t;
void tasks_frame_owner(worker_t *w, uint32_t seq, frame_owner_t *out);

/* An OUTPUT frame (whole lines a task printed). -1 when it is malformed. */
int tasks_output(worker_t *w, const proto_frame_t *f);

/* What a function is, from a RESULT's flags: ASYNC (it may share a worker), SYNC (it
 * runs alone), or neither (main did not run: nothing learned). */
void tasks_learn(const char *target, uint32_t result_flags);

/* A CANCELLED frame: the worker read the CANCEL of task `seq`. -1 when malformed. */
int tasks_cancel_read(worker_t *w, const proto_frame_t *f);

/* Is the function known to have a coroutine main (its executions go as tasks)? */
bool tasks_known_async(const char *target);

/* Can the worker take a task now (idle, or running only tasks, with room)? */
bool tasks_room(const worker_t *w);

/* An execution to run alone waits and no worker is idle: the least loaded one that
 * runs tasks takes no more, so that it falls idle. */
void tasks_reserve_one(void);

/* The worker's pipes: what is in them now belongs to what runs now. Called before a
 * second execution joins a worker's loop, and when its last one has ended. */
void tasks_output_period_ends(worker_t *w);

/* The worker's one task, when it runs one and nothing else (its output on the pipes
 * is then that execution's), else NULL. */
task_t *tasks_sole(worker_t *w);

/* The job's task, or NULL (not a task of this worker). */
task_t *tasks_of_job(worker_t *w, const job_t *job);

/* Executions running on tasks (answered ones not counted), for the gauges. */
long tasks_running(const worker_t *w);

/* --------------------------------------------------------------- spawn.c ---- */

/* Starts the zygote (unless one runs or is being replaced). */
void zygote_start(void);
void zygote_exited(int status);
void zygote_close_channel(void);

/* Asks the zygote for one more worker. 0 (also when the zygote's socket is full: the
 * request waits its turn, see spawn_can_send), or -1 when no SPAWN could go out. */
int spawn_worker(void);

/* Whether another SPAWN may go out now: not too many unanswered, the socket not full. */
bool spawn_can_send(void);

#endif
