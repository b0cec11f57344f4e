/* log.h -- one line per event on stderr: time, level, role, pid, message.
 *
 *   2026-12-01T20:15:39.123Z [info] master 1234: listening on 0.0.0.0:3000
 *
 * `[alert]` marks a bug or an impossible state; the end-to-end tests fail on it.
 * log_msg() skips the formatting below the current level (as Redis' serverLog does),
 * and every line is written with a single write(2), so lines from the master, the
 * zygote and the workers never interleave mid-line. */
#ifndef PYRT_LOG_H
#define PYRT_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>
#include <sys/types.h>

typedef enum log_level {
    LOG_DEBUG = 0,
    LOG_INFO,
    LOG_WARN,
    LOG_ERROR,
    LOG_ALERT,
} log_level_t;

extern log_level_t log_min_level;

void log_init(const char *role, log_level_t min_level);
/* The pid each line carries from now on, in place of getpid(): a worker that is PID 1 of
 * its own namespace logs the pid the master knows it by. */
void log_set_pid(pid_t pid);
const char *log_level_name(log_level_t level);
int log_level_parse(const char *name, log_level_t *out);

/* --log-format: text lines as above, or one JSON object per line with stable keys:
 *   {"time": "2026-12-01T20:15:39.123Z", "level": "info", "role": "master", "pid": 1234,
 *    "message": "..."}                       (log_write)
 *   {..., "event": "output", "request_id": "...", "stream": "stdout", "message": "..."}
 *   {..., "event": "access", ...}            (log_event: the caller's fields)
 * Any byte is escaped so that the line stays one valid JSON object (json.h). */
typedef enum log_format { LOG_FORMAT_TEXT, LOG_FORMAT_JSON } log_format_t;

void log_set_format(log_format_t format);
bool log_is_json(void);
/* "text" or "json": 0, else -1. */
int log_format_parse(const char *name, log_format_t *out);

void log_write(log_level_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A message already built (no format string; `text` need not be NUL-terminated), for
 * lines written per request: the access line. */
void log_text(log_level_t level, const char *text, size_t len);

/* A line on behalf of another process (the master writes the workers' output). `text`
 * need not be NUL-terminated and is written as is, after `prefix`. */
void log_write_as(log_level_t level, const char *role, pid_t pid, const char *prefix,
                  const char *text, size_t len);

/* A line a worker's execution wrote (`stream`: "stdout", "stderr", ...), logged on the
 * worker's behalf. Text: "req=ID stream: text". */
void log_output(const char *role, pid_t pid, const char *request_id, const char *stream,
                const char *text, size_t len);

/* One field of a structured record: a string (str set, len bytes), else an integer, or a
 * number when `real`. */
typedef struct log_field {
    const char *key;
    const char *str;
    size_t len;
    long long num;
    double real;
    bool is_real;
} log_field_t;

#define LOG_FIELD_STR(k, s) ((log_field_t){(k), (s), strlen(s), 0, 0, false})
#define LOG_FIELD_INT(k, n) ((log_field_t){(k), NULL, 0, (long long)(n), 0, false})
#define LOG_FIELD_REAL(k, x) ((log_field_t){(k), NULL, 0, 0, (double)(x), true})

/* A structured record, `event` and its fields. JSON: the fields as keys. Text: "event
 * key=value ..." (values as they are: callers with a text line of their own write it
 * with log_write instead). */
void log_event(log_level_t level, const char *event, const log_field_t *fields, size_t count);

/* Batching (the master): lines collect in memory and log_flush() writes them with one
 * write(2) (the master: at most LOG_FLUSH_MS after the first, or once 16 KiB wait); at
 * tens of thousands of access lines a second, a write per line costs more than the
 * line. Warnings and worse are written at once (after what waits, in order), and so is
 * everything at exit. */
void log_set_batching(int on);
void log_flush(void);
size_t log_pending(void); /* bytes waiting for log_flush() */

#define log_msg(level, ...)                                                                        \
    do {                                                                                           \
        if ((level) >= log_min_level)                                                              \
            log_write((level), __VA_ARGS__);                                                       \
    } while (0)

#endif
