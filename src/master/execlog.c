/* execlog.c -- the v5 contract's per-execution log files (see execlog.h). */
#include "master/execlog.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/writev.h"
#include "master/reqid.h"

#define ID_MASK ((UINT64_C(1) << 48) - 1)

static const char native_note[] =
    "Native logs detected. Use context.log() or context.error() for better experience.";
static const char *const suffixes[2] = {"_logs.log", "_errors.log"};

static int dir_fd = -1;
static uint64_t id_seed;
static uint64_t id_counter;

/* mkdir -p: each missing component of an absolute or relative path. */
static int make_dirs(const char *path)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof(tmp), "%s", path) >= (int)sizeof(tmp)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    return mkdir(tmp, 0755) != 0 && errno != EEXIST ? -1 : 0;
}

int execlog_open_dir(const char *dir, char *err, size_t errlen)
{
    if (getrandom(&id_seed, sizeof(id_seed), 0) != (ssize_t)sizeof(id_seed))
        id_seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
    if (make_dirs(dir) != 0) {
        snprintf(err, errlen, "logs folder %s: cannot create it: %s (--logs-dir moves it)", dir,
                 strerror(errno));
        return -1;
    }
    dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir_fd < 0) {
        snprintf(err, errlen, "logs folder %s: %s (--logs-dir moves it)", dir, strerror(errno));
        return -1;
    }
    return 0;
}

bool execlog_id_valid(const char *id, size_t len)
{
    if (!reqid_valid(id, len))
        return false;
    return !(len == 1 && id[0] == '.') && !(len == 2 && id[0] == '.' && id[1] == '.');
}

void execlog_generate_id(char out[EXECLOG_ID_MAX + 1])
{
    /* Each step is a bijection of 48-bit words: distinct counters, distinct ids. */
    uint64_t z = (id_seed + ++id_counter) & ID_MASK;
    z = (z * UINT64_C(0x9E3779B97F4B)) & ID_MASK;
    z ^= z >> 24;
    z = (z * UINT64_C(0xBF58476D1CE5)) & ID_MASK;
    z ^= z >> 20;
    snprintf(out, EXECLOG_ID_MAX + 1, "%08llx%012llx",
             (unsigned long long)((uint64_t)time(NULL) & 0xffffffffu), (unsigned long long)z);
}

void execlog_begin(execlog_t *el, const char *id)
{
    snprintf(el->id, sizeof(el->id), "%s", id ? id : "");
    el->fd[0] = el->fd[1] = -1;
    el->native_seen = false;
}

/* The stream's fd, the file opened (made) first if need be; -1 when logging is off or
 * the file cannot be opened (said in the log when `quiet` is false). */
static int open_file(execlog_t *el, execlog_stream_t stream, bool quiet)
{
    if (el->fd[stream] >= 0 || !el->id[0] || dir_fd < 0)
        return el->fd[stream];
    char name[EXECLOG_ID_MAX + 16];
    snprintf(name, sizeof(name), "%s%s", el->id, suffixes[stream]);
    el->fd[stream] =
        openat(dir_fd, name, O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (el->fd[stream] < 0 && !quiet)
        log_msg(LOG_WARN, "log file %s: %s", name, strerror(errno));
    return el->fd[stream];
}

static int file_fd(execlog_t *el, execlog_stream_t stream)
{
    return open_file(el, stream, false);
}

void execlog_prepare(execlog_t *el)
{
    (void)open_file(el, EXECLOG_LOGS, true); /* a failure is tried again, and said, later */
    (void)open_file(el, EXECLOG_ERRORS, true);
}

void execlog_line(execlog_t *el, execlog_stream_t stream, const char *text, size_t len)
{
    int fd = file_fd(el, stream);
    if (fd < 0)
        return;
    struct iovec iov[2] = {{(void *)text, len}, {(void *)"\n", 1}};
    (void)writev_fully(fd, iov, 2); /* a full disk: the line is lost, the execution is not */
}

void execlog_native(execlog_t *el, const char *text, size_t len)
{
    if (!el->id[0])
        return;
    if (!el->native_seen) {
        el->native_seen = true;
        execlog_line(el, EXECLOG_LOGS, native_note, sizeof(native_note) - 1);
    }
    execlog_line(el, EXECLOG_LOGS, text, len);
}

void execlog_complete(execlog_t *el)
{
    (void)file_fd(el, EXECLOG_LOGS);
    (void)file_fd(el, EXECLOG_ERRORS);
}

void execlog_end(execlog_t *el)
{
    for (int s = 0; s < 2; s++) {
        if (el->fd[s] >= 0)
            (void)close(el->fd[s]);
        el->fd[s] = -1;
    }
    el->id[0] = '\0'; /* ended: later lines (a late pipe read) are dropped */
}
