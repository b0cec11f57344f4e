/* log.c -- one line per event on stderr (see log.h). */
#include "common/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/buf.h"

log_level_t log_min_level = LOG_INFO;

static char log_role[32] = "pyrt";
static pid_t log_pid;

static const char *const level_names[] = {"debug", "info", "warn", "error", "alert"};

void log_init(const char *role, log_level_t min_level)
{
    snprintf(log_role, sizeof(log_role), "%s", role);
    log_pid = getpid();
    log_min_level = min_level;
}

const char *log_level_name(log_level_t level)
{
    return level_names[level];
}

int log_level_parse(const char *name, log_level_t *out)
{
    for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
        if (strcmp(name, level_names[i]) == 0) {
            *out = (log_level_t)i;
            return 0;
        }
    }
    return -1;
}

/* The time prefix is formatted once per second and reused: at tens of thousands of
 * access lines a second, gmtime_r + strftime per line would show in a profile. */
static size_t format_time(char *out, size_t size)
{
    static time_t cached_sec = -1;
    static char cached[32];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (ts.tv_sec != cached_sec) {
        struct tm tm;
        gmtime_r(&ts.tv_sec, &tm);
        strftime(cached, sizeof(cached), "%Y-%m-%dT%H:%M:%S", &tm);
        cached_sec = ts.tv_sec;
    }
    int n = snprintf(out, size, "%s.%03ldZ", cached, ts.tv_nsec / 1000000);
    return n > 0 ? (size_t)n : 0;
}

#define BATCH_FLUSH_AT (64 * 1024)

static int batching;
static buf_t batch = BUF_INIT;

static void write_out(const char *data, size_t len)
{
    size_t off = 0;
    while (off < len) {
        ssize_t n = write(STDERR_FILENO, data + off, len - off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            break; /* nowhere left to report it */
        }
        off += (size_t)n;
    }
}

void log_set_batching(int on)
{
    log_flush();
    batching = on;
}

size_t log_pending(void)
{
    return batch.len;
}

void log_flush(void)
{
    if (batch.len) {
        write_out(batch.data, batch.len);
        buf_clear(&batch);
    }
}

static void emit_level(buf_t *line, log_level_t level)
{
    buf_append(line, "\n", 1);
    if (!batching || level >= LOG_WARN) {
        log_flush();
        write_out(line->data, line->len);
        return;
    }
    buf_append(&batch, line->data, line->len);
    if (batch.len >= BATCH_FLUSH_AT)
        log_flush();
}

static void start_line(buf_t *line, log_level_t level, const char *role, pid_t pid)
{
    char ts[48];
    size_t n = format_time(ts, sizeof(ts));
    buf_append(line, ts, n);
    buf_appendf(line, " [%s] %s %d: ", level_names[level], role, (int)pid);
}

void log_write(log_level_t level, const char *fmt, ...)
{
    int saved_errno = errno;
    buf_t line = BUF_INIT;
    buf_reserve(&line, 256);
    start_line(&line, level, log_role, log_pid);

    /* Messages come from our own format strings; one longer than this is cut. */
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (n > 0)
        buf_append(&line, msg, (size_t)n < sizeof(msg) ? (size_t)n : sizeof(msg) - 1);
    emit_level(&line, level);
    buf_free(&line);
    errno = saved_errno;
}

void log_write_as(log_level_t level, const char *role, pid_t pid, const char *prefix,
                  const char *text, size_t len)
{
    buf_t line = BUF_INIT;
    buf_reserve(&line, len + 128);
    start_line(&line, level, role, pid);
    buf_append_str(&line, prefix);
    buf_append(&line, text, len);
    emit_level(&line, level);
    buf_free(&line);
}
