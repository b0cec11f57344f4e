/* execlog.h -- the v5 contract's log files: one pair per execution.
 *
 * The executor mounts a folder (/mnt/logs; --logs-dir moves it), reads the answer's
 * x-open-runtimes-log-id, then reads and deletes {id}_logs.log and {id}_errors.log.
 * So the master writes both files itself -- what the function printed (from its
 * worker's pipes), its context.log / context.error lines (LOG frames), and pyrt's own
 * reasons for an error answer -- and they are complete before the answer leaves.
 *
 * Ids come from the request (checked: they name files), else "dev" in development,
 * else 20 generated characters. Files are opened relative to the folder's fd with
 * O_NOFOLLOW, so neither the id nor a symlink planted in the folder leads elsewhere. */
#ifndef PYRT_EXECLOG_H
#define PYRT_EXECLOG_H

#include <stdbool.h>
#include <stddef.h>

#define EXECLOG_ID_MAX 128
#define EXECLOG_ID_GENERATED_LEN 20

typedef enum execlog_stream { EXECLOG_LOGS = 0, EXECLOG_ERRORS = 1 } execlog_stream_t;

/* One execution's files. Embedded in its job; execlog_end() closes what is open. */
typedef struct execlog {
    char id[EXECLOG_ID_MAX + 1]; /* "" when logging is disabled */
    int fd[2];                   /* by execlog_stream_t; -1 until first written */
    bool native_seen;            /* the "Native logs detected" line is written */
} execlog_t;

/* The folder, opened once at start (created if missing). 0, or -1 with err. */
int execlog_open_dir(const char *dir, char *err, size_t errlen);

/* 1-128 characters of A-Za-z0-9._-, and neither "." nor "..". */
bool execlog_id_valid(const char *id, size_t len);

/* 20 characters: 8 hex digits of the time in seconds, then 12 of a bijective mix of a
 * per-process random seed and a counter, so ids never repeat within a process. */
void execlog_generate_id(char out[EXECLOG_ID_MAX + 1]);

/* Starts an execution's log; `id` NULL or "" disables it (nothing is written). */
void execlog_begin(execlog_t *el, const char *id);

/* One line (a newline is added) to the execution's logs or errors file. Lines are cut
 * before they come here: context.log's at 8,000 characters (in the worker), output's
 * at 64 KiB, and all of an execution's at the output cap (output.c). */
void execlog_line(execlog_t *el, execlog_stream_t stream, const char *text, size_t len);

/* A line the function wrote to fd 1 or 2: preceded, once per execution, by a note that
 * native logs were seen. */
void execlog_native(execlog_t *el, const char *text, size_t len);

/* Opens (makes) both files now, if logging is on: called once the execution is on its
 * way to a worker, so that the files are made while the function runs, not on the
 * answer's path. A file that cannot be opened now is tried again when written or
 * completed. */
void execlog_prepare(execlog_t *el);

/* Both files exist (the executor expects both), holding everything written so far:
 * called before the answer leaves. */
void execlog_complete(execlog_t *el);

/* Closes the files (execlog_complete made them); later lines are dropped. Called after
 * the answer has been handed to the client's connection (the bytes are in the files). */
void execlog_end(execlog_t *el);

#endif
