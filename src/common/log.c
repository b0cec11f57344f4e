/* log.c -- one line per event on stderr (see log.h). */
#include "common/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/json.h"

log_level_t log_min_level = LOG_INFO;
static log_format_t log_format = LOG_FORMAT_TEXT;

static char log_role[32] = "pyrt";
static pid_t log_pid;

static const char *const level_names[] = {"debug", "info", "warn", "error", "alert"};

void log_init(const char *role, log_level_t min_level)
{
    snprintf(log_role, sizeof(log_role), "%s", role);
    log_pid = getpid();
    log_min_level = min_level;
}

void log_set_pid(pid_t pid)
{
    log_pid = pid;
}

void log_set_format(log_format_t format)
{
    log_format = format;
}

bool log_is_json(void)
{
    return log_format == LOG_FORMAT_JSON;
}

int log_format_parse(const char *name, log_format_t *out)
{
    if (strcmp(name, "text") == 0)
        *out = LOG_FORMAT_TEXT;
    else if (strcmp(name, "json") == 0)
        *out = LOG_FORMAT_JSON;
    else
        return -1;
    return 0;
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
    size_t n = strlen(cached);
    if (n + 6 > size)
        return 0;
    long ms = ts.tv_nsec / 1000000;
    memcpy(out, cached, n);
    out[n] = '.';
    out[n + 1] = (char)('0' + ms / 100);
    out[n + 2] = (char)('0' + ms / 10 % 10);
    out[n + 3] = (char)('0' + ms % 10);
    out[n + 4] = 'Z';
    out[n + 5] = '\0';
    return n + 5;
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

/* Text: "TIME [level] role pid: "; JSON: the object's first keys, up to a comma. */
static void start_line(buf_t *line, log_level_t level, const char *role, pid_t pid)
{
    char ts[48];
    size_t n = format_time(ts, sizeof(ts));
    if (log_format == LOG_FORMAT_JSON) {
        buf_append_str(line, "{\"time\":\"");
        buf_append(line, ts, n);
        buf_append_str(line, "\",\"level\":\"");
        buf_append_str(line, level_names[level]);
        buf_append_str(line, "\",\"role\":");
        json_append_text(line, role, strlen(role));
        buf_append_str(line, ",\"pid\":");
        buf_append_int(line, pid);
        buf_append(line, ",", 1);
        return;
    }
    buf_append(line, ts, n);
    buf_append_str(line, " [");
    buf_append_str(line, level_names[level]);
    buf_append_str(line, "] ");
    buf_append_str(line, role);
    buf_append(line, " ", 1);
    buf_append_int(line, pid);
    buf_append_str(line, ": ");
}

/* The message: as it is in text; the last key and the closing brace in JSON. */
static void put_message(buf_t *line, const char *text, size_t len)
{
    if (log_format == LOG_FORMAT_JSON) {
        buf_append_str(line, "\"message\":");
        json_append_text(line, text, len);
        buf_append(line, "}", 1);
    } else {
        buf_append(line, text, len);
    }
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
    size_t len = n <= 0 ? 0 : (size_t)n < sizeof(msg) ? (size_t)n : sizeof(msg) - 1;
    put_message(&line, msg, len);
    emit_level(&line, level);
    buf_free(&line);
    errno = saved_errno;
}

void log_text(log_level_t level, const char *text, size_t len)
{
    if (level < log_min_level)
        return;
    buf_t line = BUF_INIT;
    buf_reserve(&line, len + 128);
    start_line(&line, level, log_role, log_pid);
    put_message(&line, text, len);
    emit_level(&line, level);
    buf_free(&line);
}

void log_write_as(log_level_t level, const char *role, pid_t pid, const char *prefix,
                  const char *text, size_t len)
{
    buf_t line = BUF_INIT;
    buf_reserve(&line, len + 128);
    start_line(&line, level, role, pid);
    if (log_format == LOG_FORMAT_JSON) {
        buf_t joined = BUF_INIT;
        buf_append_str(&joined, prefix);
        buf_append(&joined, text, len);
        put_message(&line, joined.data, joined.len);
        buf_free(&joined);
    } else {
        buf_append_str(&line, prefix);
        buf_append(&line, text, len);
    }
    emit_level(&line, level);
    buf_free(&line);
}

void log_output(const char *role, pid_t pid, const char *request_id, const char *stream,
                const char *text, size_t len)
{
    if (LOG_INFO < log_min_level)
        return;
    if (log_format == LOG_FORMAT_TEXT) {
        char prefix[256];
        snprintf(prefix, sizeof(prefix), "req=%s %s: ", request_id, stream);
        log_write_as(LOG_INFO, role, pid, prefix, text, len);
        return;
    }
    buf_t line = BUF_INIT;
    buf_reserve(&line, len + 192);
    start_line(&line, LOG_INFO, role, pid);
    buf_append_str(&line, "\"event\":\"output\",\"request_id\":");
    json_append_text(&line, request_id, strlen(request_id));
    buf_append_str(&line, ",\"stream\":");
    json_append_text(&line, stream, strlen(stream));
    buf_append(&line, ",", 1);
    put_message(&line, text, len);
    emit_level(&line, LOG_INFO);
    buf_free(&line);
}

void log_event(log_level_t level, const char *event, const log_field_t *fields, size_t count)
{
    if (level < log_min_level)
        return;
    buf_t line = BUF_INIT;
    buf_reserve(&line, 256);
    start_line(&line, level, log_role, log_pid);
    bool json = log_format == LOG_FORMAT_JSON;
    if (json) {
        buf_append_str(&line, "\"event\":");
        json_append_text(&line, event, strlen(event));
    } else {
        buf_append_str(&line, event);
    }
    for (size_t i = 0; i < count; i++) {
        const log_field_t *f = &fields[i];
        if (json) {
            buf_append(&line, ",", 1);
            json_append_text(&line, f->key, strlen(f->key));
            buf_append(&line, ":", 1);
        } else {
            buf_append(&line, " ", 1);
            buf_append_str(&line, f->key);
            buf_append(&line, "=", 1);
        }
        if (f->str && json)
            json_append_text(&line, f->str, f->len);
        else if (f->str)
            buf_append(&line, f->str, f->len);
        else if (f->is_real) /* NaN and infinities are not JSON: 0 */
            buf_append_fixed(&line, f->real, 3);
        else
            buf_append_int(&line, f->num);
    }
    if (json)
        buf_append(&line, "}", 1);
    emit_level(&line, level);
    buf_free(&line);
}
