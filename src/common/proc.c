/* proc.c -- running a helper program (see proc.h). */
#include "common/proc.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/xalloc.h"

extern char **environ;

#define CAPTURE_MAX (1024 * 1024)

int proc_run(char *const argv[], const char *cwd, buf_t *capture, uid_t uid, gid_t gid,
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
        if (cwd && chdir(cwd) != 0)
            _exit(126);
        if (uid != PROC_SAME_USER &&
            (setgroups(1, &gid) != 0 || setgid(gid) != 0 || setuid(uid) != 0))
            _exit(126);
        execv(argv[0], argv);
        fprintf(stderr, "pyrt: cannot run %s: %s\n", argv[0], strerror(errno));
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
