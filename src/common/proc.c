/* proc.c -- running a helper program (see proc.h). */
#include "common/proc.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/xalloc.h"

extern char **environ;

#define CAPTURE_MAX (1024 * 1024)

int proc_read_all_capability(void)
{
    /* Docker's and podman's default capability sets leave CAP_DAC_READ_SEARCH out, and
     * keep CAP_DAC_OVERRIDE: then that is the one there is. */
    static const int caps[] = {CAP_DAC_READ_SEARCH, CAP_DAC_OVERRIDE};
    struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2];
    if (syscall(SYS_capget, &hdr, data) != 0)
        return -1;
    for (size_t i = 0; i < sizeof(caps) / sizeof(caps[0]); i++)
        if (prctl(PR_CAPBSET_READ, caps[i], 0, 0, 0) == 1 &&
            (data[0].permitted & (1u << caps[i]))) /* both < 32: in the first word */
            return caps[i];
    return -1;
}

/* In a child about to exec: become `user`. With read_all, the permitted set survives
 * the uid change (KEEPCAPS), is cut down to the one capability of
 * proc_read_all_capability(), and that one is raised as an ambient capability, which
 * execve keeps for a program that is not set-uid. 0, or -1 with errno. */
static int become(const proc_user_t *user)
{
    if (user->uid == PROC_SAME_USER)
        return 0;
    int cap = user->read_all ? proc_read_all_capability() : -1;
    if (user->read_all && (cap < 0 || prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0)) {
        errno = cap < 0 ? EPERM : errno;
        return -1;
    }
    if (setgroups(1, &user->gid) != 0 || setgid(user->gid) != 0 || setuid(user->uid) != 0)
        return -1;
    if (!user->read_all)
        return 0;
    struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2];
    memset(data, 0, sizeof(data));
    uint32_t bit = 1u << cap;
    data[0].effective = data[0].permitted = data[0].inheritable = bit;
    if (syscall(SYS_capset, &hdr, data) != 0)
        return -1;
    return prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0);
}

bool proc_user_can(const proc_user_t *user, const char *path, int mode)
{
    pid_t pid = fork();
    if (pid < 0)
        return false;
    if (pid == 0)
        _exit(become(user) == 0 && faccessat(AT_FDCWD, path, mode, AT_EACCESS) == 0 ? 0 : 1);
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return false;
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

int proc_run(char *const argv[], const char *cwd, buf_t *capture, uid_t uid, gid_t gid, char *err,
             size_t errlen)
{
    proc_user_t user = {uid, gid, false, NULL};
    return proc_run_as(argv, cwd, capture, &user, err, errlen);
}

int proc_run_as(char *const argv[], const char *cwd, buf_t *capture, const proc_user_t *user,
                char *err, size_t errlen)
{
    int out[2] = {-1, -1};
    if (capture && pipe2(out, O_CLOEXEC) != 0) {
        snprintf(err, errlen, "pipe: %s", strerror(errno));
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(err, errlen, "fork for %s: %s", argv[0], strerror(errno));
        if (capture) {
            (void)close(out[0]);
            (void)close(out[1]);
        }
        return -1;
    }
    if (pid == 0) {
        if (capture && (dup2(out[1], STDOUT_FILENO) < 0 || dup2(out[1], STDERR_FILENO) < 0))
            _exit(126);
        if (become(user) != 0) {
            fprintf(stderr, "pyrt: cannot switch to uid %d for %s: %s\n", (int)user->uid, argv[0],
                    strerror(errno));
            _exit(126);
        }
        if (cwd && chdir(cwd) != 0) {
            fprintf(stderr, "pyrt: cannot enter %s as uid %d: %s\n", cwd, (int)getuid(),
                    strerror(errno));
            _exit(126);
        }
        for (char *const *e = user->env; e && *e; e++)
            if (putenv(*e) != 0)
                _exit(126);
        execv(argv[0], argv);
        fprintf(stderr, "pyrt: cannot run %s as uid %d: %s\n", argv[0], (int)getuid(),
                strerror(errno));
        _exit(127);
    }
    if (capture) {
        (void)close(out[1]);
        char chunk[16 * 1024];
        for (;;) {
            ssize_t n = read(out[0], chunk, sizeof(chunk));
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                break;
            buf_append(capture, chunk, (size_t)n);
            if (capture->len > CAPTURE_MAX)
                buf_consume(capture, capture->len - CAPTURE_MAX);
        }
        (void)close(out[0]);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            snprintf(err, errlen, "waitpid for %s: %s", argv[0], strerror(errno));
            return -1;
        }
    }
    if (WIFSIGNALED(status))
        return 128 + WTERMSIG(status);
    return WEXITSTATUS(status);
}

char **proc_copy_environ(void)
{
    size_t n = 0;
    while (environ[n])
        n++;
    char **env = xcalloc(n + 1, sizeof(char *));
    for (size_t i = 0; i < n; i++)
        env[i] = xstrdup(environ[i]);
    return env;
}
