/* zygote.c -- `pyrt __zygote`: Python initialised once, workers forked from it.
 *
 * The master starts the zygote by fork + exec of pyrt itself, with an environment
 * that never held INTERNAL_RUNTIME_KEY, so no worker's memory ever holds the key. The
 * zygote initialises CPython, imports pyrt's runtime (and with --preload the entry
 * point), says ZYGOTE_READY, then waits for SPAWN frames on fd 3. Each brings the new
 * worker's channel and output pipes (SCM_RIGHTS); the zygote forks and answers SPAWNED
 * with the pid.
 *
 * The fork is clone(CLONE_PARENT): the worker becomes the master's child, not ours, so
 * the master gets SIGCHLD and the real exit status (a signal 11, say) with no relay,
 * and a worker outlives a zygote crash. It is a raw clone, not glibc's fork(), so
 * pthread_atfork handlers do not run; the zygote runs no other threads, so no lock is
 * held across it, and CPython's own fork hooks are called as os.fork() calls them:
 * PyOS_BeforeFork / PyOS_AfterFork_Child / PyOS_AfterFork_Parent.
 *
 * Where workers share one uid (--worker-namespaces), the clone also makes a user and a
 * PID namespace for each (worker/sandbox.h), if a test clone at start showed the kernel
 * allows it. The worker is PID 1 there: it knows the pid the master knows from /proc,
 * not getpid(), and its parent (outside) has no pid it can see. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/log.h"
#include "common/num.h"
#include "proto/proto.h"
#include "proto/zygote.h"
#include "worker/pyembed.h"
#include "worker/sandbox.h"
#include "worker/tmpdir.h"
#include "worker/worker.h"
#include "worker/zygote.h"

#define SPAWN_FDS_ROOM 8 /* more than a SPAWN carries: a malformed one is seen whole */

/* The master's arguments (proto/zygote.h), and the user they name. */
static struct {
    zygote_args_t a;
    bool switch_user;
    uid_t uid;
    gid_t gid;
    bool namespaces;         /* each worker is cloned into namespaces of its own */
    char no_namespaces[256]; /* why not, when --worker-namespaces asked for them */
    const char *read_only;   /* the served folder, when namespaces can mount it read-only */
} zc;

static int send_frame(const buf_t *b)
{
    ssize_t n;
    do
        n = send(ZYGOTE_CONTROL_FD, b->data, b->len, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    return n == (ssize_t)b->len ? 0 : -1;
}

static void send_spawned(uint32_t id, pid_t pid, const char *error)
{
    buf_t b = BUF_INIT;
    size_t start = proto_frame_begin(&b, PROTO_MSG_SPAWNED);
    proto_put_u32(&b, id);
    proto_put_u32(&b, (uint32_t)(pid > 0 ? pid : 0));
    proto_put_bytes(&b, error ? error : "", error ? strlen(error) : 0);
    proto_put_u32(&b, zc.namespaces ? ZYGOTE_FLAG_NAMESPACES : 0);
    proto_frame_end(&b, start, 0);
    if (send_frame(&b) < 0)
        _exit(0); /* the master is gone */
    buf_free(&b);
}

static int resolve_user(const char *user, char *err, size_t errlen)
{
    struct passwd *pw = getpwnam(user);
    if (pw == NULL) {
        long uid;
        if (num_parse_long(user, &uid) == 0 && uid >= 0) {
            pw = getpwuid((uid_t)uid);
            if (pw == NULL) {
                zc.uid = (uid_t)uid;
                zc.gid = (gid_t)uid;
                zc.switch_user = true;
                return 0;
            }
        } else {
            snprintf(err, errlen, "--user %s: no such user", user);
            return -1;
        }
    }
    zc.uid = pw->pw_uid;
    zc.gid = pw->pw_gid;
    zc.switch_user = true;
    return 0;
}

/* Before Python starts in the zygote, so that no user code -- a --preload import
 * included -- runs as root or with a capability workers must not have (sandbox.c).
 * With worker uids, the zygote becomes --user, or else the first uid of the range, and
 * keeps only what it takes to give each worker its own uid. Changing the uid clears the
 * parent-death signal: set it again. 0, or -1 with err. */
static int drop_privileges(char *err, size_t errlen)
{
    bool worker_uids = zc.a.worker_uid_base > 0;
    if (worker_uids && !zc.switch_user) {
        zc.uid = (uid_t)zc.a.worker_uid_base;
        zc.gid = (gid_t)zc.a.worker_uid_base;
        zc.switch_user = true;
    }
    if (sandbox_zygote(zc.switch_user, zc.uid, zc.gid, worker_uids, err, errlen) < 0)
        return -1;
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0 || getppid() != (pid_t)zc.a.master_pid) {
        snprintf(err, errlen, "the master is gone");
        return -1;
    }
    return 0;
}

/* Whether the master is still this worker's parent. In namespaces of its own, the
 * parent is outside them and getppid() says 0 whatever happened: a master gone before
 * the parent-death signal was set is seen as the channel's EOF instead. */
static bool master_is_parent(void)
{
    return getppid() == (zc.namespaces ? 0 : (pid_t)zc.a.master_pid);
}

/* The worker's pid as the master knows it: /proc is the master's PID namespace's, so
 * /proc/self names it so even from a namespace where getpid() is 1. */
static pid_t master_visible_pid(void)
{
    if (!zc.namespaces)
        return getpid();
    char link[32];
    ssize_t n = readlink("/proc/self", link, sizeof(link) - 1);
    long pid = 0;
    if (n > 0) {
        link[n] = '\0';
        if (num_parse_long(link, &pid) < 0)
            pid = 0;
    }
    return pid > 0 ? (pid_t)pid : getpid();
}

static void become_worker(int fds[SPAWN_FDS], uid_t uid, uid_t zygote_uid, gid_t zygote_gid)
    __attribute__((noreturn));

/* In the new worker: its own fds, its uid (or namespaces) and no capabilities, the
 * master as the parent it dies with. */
static void become_worker(int fds[SPAWN_FDS], uid_t uid, uid_t zygote_uid, gid_t zygote_gid)
{
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0 || !master_is_parent())
        _exit(1); /* the master is already gone: nobody reads this status */
    /* Whatever the execution starts stays below the worker, even a double-forked
     * daemon, so that the master can kill the whole tree at a deadline. */
    if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0)
        _exit(WORKER_EXIT_SUBREAPER);
    if (dup2(fds[SPAWN_FD_STDOUT], STDOUT_FILENO) < 0 ||
        dup2(fds[SPAWN_FD_STDERR], STDERR_FILENO) < 0 ||
        dup2(fds[SPAWN_FD_CHANNEL], WORKER_CHANNEL_FD) < 0)
        _exit(WORKER_EXIT_FDS);
    gate_t *gate = mmap(NULL, GATE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fds[SPAWN_FD_GATE], 0);
    if (gate == MAP_FAILED)
        _exit(WORKER_EXIT_GATE);
    /* Everything else goes: the zygote's control socket was fd 3, now the channel. */
    if (close_range(WORKER_CHANNEL_FD + 1, ~0U, 0) != 0)
        for (int fd = WORKER_CHANNEL_FD + 1; fd < 1024; fd++)
            (void)close(fd);
    log_init("worker", log_min_level);
    pid_t pid = master_visible_pid();
    log_set_pid(pid);
    (void)prctl(PR_SET_NAME, "pyrt-worker", 0, 0, 0);
    /* Before any Python runs: no user code ever runs with the zygote's CAP_SETUID, nor
     * with the capabilities a new user namespace gives. */
    char err[PYRT_ERR_LEN];
    if (zc.namespaces &&
        sandbox_enter_namespaces(zygote_uid, zygote_gid, zc.read_only, err, sizeof(err)) < 0) {
        log_msg(LOG_ERROR, "cannot set up the worker's namespaces: %s", err);
        _exit(WORKER_EXIT_SANDBOX);
    }
    if (sandbox_worker(uid, zc.gid, err, sizeof(err)) < 0) {
        log_msg(LOG_ERROR, "cannot sandbox the worker: %s", err);
        _exit(WORKER_EXIT_SANDBOX);
    }
    /* A new uid cleared the parent-death signal. */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0 || !master_is_parent())
        _exit(1);
    /* As the worker's uid, before any user code: the folder holds nothing of another's. */
    char tmp[PATH_MAX] = "";
    if (zc.a.tmp_dir &&
        worker_tmpdir_prepare(zc.a.tmp_dir, uid, tmp, sizeof(tmp), err, sizeof(err)) < 0) {
        log_msg(LOG_ERROR, "cannot prepare the worker's private TMPDIR: %s", err);
        _exit(WORKER_EXIT_SANDBOX);
    }
    if (zc.a.max_body)
        worker_limit_body(zc.a.max_body);
    if (worker_limit_memory(zc.a.max_memory_mib) != 0) {
        log_msg(LOG_ERROR, "cannot limit memory to %ld MiB: %s", zc.a.max_memory_mib,
                strerror(errno));
        _exit(WORKER_EXIT_MEMORY_SETUP);
    }
    const char *after_fork_args[] = {tmp[0] ? tmp : NULL};
    if (pyembed_call("after_fork", 1, after_fork_args) < 0)
        _exit(WORKER_EXIT_AFTER_FORK);
    worker_run(WORKER_CHANNEL_FD, gate, pid);
}

static long clone_worker(int fds[SPAWN_FDS], uid_t uid)
{
    unsigned long flags = CLONE_PARENT | SIGCHLD;
    if (zc.namespaces)
        flags |= CLONE_NEWUSER | CLONE_NEWPID;
    /* Taken here: in a new user namespace, the child sees its own ids as 65534 until
     * it maps them. */
    uid_t zygote_uid = geteuid();
    gid_t zygote_gid = getegid();
    PyOS_BeforeFork();
    long pid = syscall(SYS_clone, flags, NULL, NULL, NULL, NULL);
    if (pid == 0) {
        PyOS_AfterFork_Child();
        become_worker(fds, uid, zygote_uid, zygote_gid);
    }
    int saved = errno;
    PyOS_AfterFork_Parent();
    errno = saved;
    return pid;
}

static void spawn(uint32_t id, uid_t uid, int fds[SPAWN_FDS])
{
    long pid = clone_worker(fds, uid);
    int saved = errno;
    for (int i = 0; i < SPAWN_FDS; i++)
        (void)close(fds[i]);
    if (pid < 0) {
        char msg[128];
        snprintf(msg, sizeof(msg), "clone(CLONE_PARENT%s): %s",
                 zc.namespaces ? " | CLONE_NEWUSER | CLONE_NEWPID" : "", strerror(saved));
        send_spawned(id, 0, msg);
        return;
    }
    send_spawned(id, (pid_t)pid, NULL);
}

/* One SPAWN frame and its fds. 0 on success, -1 when the master closed the socket. */
static int receive_spawn(void)
{
    uint8_t data[64];
    union {
        char space[CMSG_SPACE(SPAWN_FDS_ROOM * sizeof(int))];
        struct cmsghdr align;
    } control;
    struct iovec iov = {data, sizeof(data)};
    struct msghdr msg = {0};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.space;
    msg.msg_controllen = sizeof(control.space);
    ssize_t n;
    Py_BEGIN_ALLOW_THREADS
    do
        n = recvmsg(ZYGOTE_CONTROL_FD, &msg, MSG_CMSG_CLOEXEC);
    while (n < 0 && errno == EINTR);
    Py_END_ALLOW_THREADS
    if (n <= 0)
        return -1;

    int fds[SPAWN_FDS_ROOM] = {0}; /* only the first nfds are ever read */
    int nfds = 0;
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm)) {
        if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS) {
            int count = (int)((cm->cmsg_len - CMSG_LEN(0)) / sizeof(int));
            for (int i = 0; i < count && nfds < SPAWN_FDS_ROOM; i++)
                memcpy(&fds[nfds++], CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
        }
    }
    uint32_t type = 0, length = 0;
    if (n >= PROTO_HEADER_SIZE)
        proto_header_decode(data, &type, &length);
    proto_reader_t r;
    proto_reader_init(&r, data + PROTO_HEADER_SIZE,
                      n >= PROTO_HEADER_SIZE ? (size_t)n - PROTO_HEADER_SIZE : 0);
    uint32_t id = proto_get_u32(&r);
    uint32_t uid = proto_get_u32(&r);
    /* A uid of its own exactly when the master gives workers uids, and never the
     * zygote's own or root. */
    bool uid_ok =
        zc.a.worker_uid_base > 0 ? uid > (uint32_t)zc.a.worker_uid_base && uid != zc.uid : uid == 0;
    if (type != PROTO_MSG_SPAWN || r.error || nfds != SPAWN_FDS || !uid_ok) {
        log_msg(LOG_ALERT, "malformed SPAWN request (type %u, %d fds, uid %u)", type, nfds, uid);
        for (int i = 0; i < nfds; i++)
            (void)close(fds[i]);
        return 0;
    }
    spawn(id, (uid_t)uid, fds);
    return 0;
}

/* Namespaces for the workers, with the served folder read-only in them; else without
 * that mount (a filesystem or a policy that refuses it: said in the log), else none. */
static void probe_namespaces(void)
{
    char why[256];
    if (sandbox_probe_namespaces(zc.a.code_dir, why, sizeof(why)) == 0) {
        zc.namespaces = true;
        zc.read_only = zc.a.code_dir;
        return;
    }
    zc.namespaces = sandbox_probe_namespaces(NULL, zc.no_namespaces, sizeof(zc.no_namespaces)) == 0;
    if (zc.namespaces)
        log_msg(LOG_WARN, "workers: the served folder stays writable in their namespaces (%s)",
                why);
}

int zygote_main(const zygote_args_t *args)
{
    zc.a = *args;
    char err[PYRT_ERR_LEN];
    log_level_t level = LOG_INFO;
    (void)log_level_parse(zc.a.log_level, &level);
    log_init("zygote", level);
    log_format_t format = LOG_FORMAT_TEXT;
    if (zc.a.log_format)
        (void)log_format_parse(zc.a.log_format, &format);
    log_set_format(format); /* the workers it forks keep it */
    (void)prctl(PR_SET_NAME, "pyrt-zygote", 0, 0, 0);

    /* Die with the master; if it is already gone, do not start. */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0 || getppid() != (pid_t)zc.a.master_pid)
        return 1;
    signal(SIGPIPE, SIG_IGN);
    int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (devnull < 0 || dup2(devnull, STDIN_FILENO) < 0 || dup2(STDERR_FILENO, STDOUT_FILENO) < 0) {
        log_msg(LOG_ERROR, "cannot set up stdin/stdout: %s", strerror(errno));
        return 1;
    }
    (void)close(devnull);
    if ((zc.a.user && resolve_user(zc.a.user, err, sizeof(err)) < 0) ||
        drop_privileges(err, sizeof(err)) < 0) {
        log_msg(LOG_ERROR, "%s", err);
        return 1;
    }
    /* Decided once, before Python starts (one thread, nothing to fork-protect): a spawn
     * that fails later fails, rather than give a worker less than its siblings. */
    if (zc.a.worker_namespaces)
        probe_namespaces();
    if (pyembed_init(zc.a.code_dir, err, sizeof(err)) < 0) {
        log_msg(LOG_ERROR, "cannot start Python: %s", err);
        return 1;
    }
    const char *configure_args[] = {zc.a.code_dir, zc.a.entrypoint, zc.a.contract};
    if (pyembed_call("configure", 3, configure_args) < 0)
        return 1;
    if (zc.a.preload && pyembed_call("preload", 0, NULL) < 0)
        log_msg(LOG_WARN, "--preload: importing %s failed; workers will import it themselves",
                zc.a.entrypoint ? zc.a.entrypoint : "(no entry point)");

    buf_t ready = BUF_INIT;
    size_t start = proto_frame_begin(&ready, PROTO_MSG_ZYGOTE_READY);
    proto_put_u32(&ready, zc.namespaces ? ZYGOTE_FLAG_NAMESPACES : 0);
    const char *why = zc.a.worker_namespaces && !zc.namespaces ? zc.no_namespaces : "";
    proto_put_bytes(&ready, why, strlen(why));
    proto_frame_end(&ready, start, 0);
    if (send_frame(&ready) < 0)
        return 0;
    buf_free(&ready);

    while (receive_spawn() == 0)
        ;
    return 0; /* the master closed the control socket */
}
