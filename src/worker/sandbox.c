/* sandbox.c -- the zygote's and each worker's uid, capabilities, no_new_privs and
 * process cap, and the end of what an execution leaves running (see sandbox.h).
 *
 * The uid changes are raw syscalls: a worker is a raw clone of the zygote, and glibc's
 * setresuid() would walk a thread list that clone did not update. Either process runs
 * one thread when it changes uid, so the raw call covers all of it. */
#include "worker/sandbox.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/capability.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CAP_LAST_POSSIBLE 63 /* PR_CAPBSET_DROP says EINVAL past the kernel's last */
#define REAP_WAIT_MS 2000    /* SIGKILLed processes exit within this, or are left */

static uid_t own_uid;   /* the worker's own uid (sandbox_worker), 0: it shares one */
static bool own_pid_ns; /* the worker is PID 1 of a namespace of its own */

/* The capability sets: effective and permitted to `keep` (bits of the first 32
 * capabilities), inheritable empty. -1 with errno. */
static int set_capabilities(uint32_t keep)
{
    struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2];
    memset(data, 0, sizeof(data));
    data[0].effective = keep;
    data[0].permitted = keep;
    return (int)syscall(SYS_capset, &hdr, data);
}

/* True when effective, permitted and inheritable hold nothing. */
static bool has_no_capabilities(void)
{
    struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2];
    if (syscall(SYS_capget, &hdr, data) != 0)
        return false;
    for (int i = 0; i < 2; i++)
        if (data[i].effective || data[i].permitted || data[i].inheritable)
            return false;
    return true;
}

/* Empties the bounding set, so that no executed file can bring a capability back.
 * Needs CAP_SETPCAP: a process without it has none to lose (no_new_privs covers exec). */
static int drop_bounding_set(char *err, size_t errlen)
{
    for (int cap = 0; cap <= CAP_LAST_POSSIBLE; cap++) {
        if (prctl(PR_CAPBSET_READ, cap, 0, 0, 0) <= 0)
            continue; /* not in the set, or past the kernel's last capability */
        if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0) {
            snprintf(err, errlen, "prctl(PR_CAPBSET_DROP, %d): %s", cap, strerror(errno));
            return -1;
        }
    }
    return 0;
}

static int no_new_privs(char *err, size_t errlen)
{
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL) {
        snprintf(err, errlen, "prctl(PR_CAP_AMBIENT_CLEAR_ALL): %s", strerror(errno));
        return -1;
    }
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
        snprintf(err, errlen, "prctl(PR_SET_NO_NEW_PRIVS): %s", strerror(errno));
        return -1;
    }
    return 0;
}

static int switch_ids(uid_t uid, gid_t gid, char *err, size_t errlen)
{
    if (syscall(SYS_setgroups, 1, &gid) != 0 || syscall(SYS_setresgid, gid, gid, gid) != 0 ||
        syscall(SYS_setresuid, uid, uid, uid) != 0) {
        snprintf(err, errlen, "cannot switch to uid %u gid %u: %s", (unsigned)uid, (unsigned)gid,
                 strerror(errno));
        return -1;
    }
    return 0;
}

int sandbox_zygote(bool switch_user, uid_t uid, gid_t gid, bool keep_setid, char *err,
                   size_t errlen)
{
    bool root = geteuid() == 0;
    if (root && drop_bounding_set(err, errlen) < 0)
        return -1;
    /* Keep the permitted set across the switch away from uid 0, to trim it after. */
    if (keep_setid && prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0) {
        snprintf(err, errlen, "prctl(PR_SET_KEEPCAPS): %s", strerror(errno));
        return -1;
    }
    if (switch_user && switch_ids(uid, gid, err, errlen) < 0)
        return -1;
    uint32_t keep = keep_setid ? (1u << CAP_SETUID) | (1u << CAP_SETGID) : 0;
    if ((root || keep_setid) && set_capabilities(keep) != 0) {
        snprintf(err, errlen, "capset: %s", strerror(errno));
        return -1;
    }
    if (keep_setid && prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) != 0) {
        snprintf(err, errlen, "prctl(PR_SET_KEEPCAPS, 0): %s", strerror(errno));
        return -1;
    }
    return no_new_privs(err, errlen);
}

int sandbox_worker(uid_t uid, gid_t gid, char *err, size_t errlen)
{
    if (uid != 0) {
        if (switch_ids(uid, gid, err, errlen) < 0)
            return -1;
        /* One cap on the uid's processes: RLIMIT_NPROC counts them all, whoever forks. */
        struct rlimit nproc = {SANDBOX_NPROC_MAX, SANDBOX_NPROC_MAX};
        if (setrlimit(RLIMIT_NPROC, &nproc) != 0) {
            snprintf(err, errlen, "setrlimit(RLIMIT_NPROC, %d): %s", SANDBOX_NPROC_MAX,
                     strerror(errno));
            return -1;
        }
    }
    /* From a non-zero uid to another, the kernel keeps the zygote's CAP_SETUID and
     * CAP_SETGID: drop them (and anything else) by hand, and check. */
    if (set_capabilities(0) != 0 || !has_no_capabilities()) {
        snprintf(err, errlen, "cannot drop every capability: %s", strerror(errno));
        return -1;
    }
    if (no_new_privs(err, errlen) < 0)
        return -1;
    if (uid != 0) {
        if (getuid() != uid || geteuid() != uid) {
            snprintf(err, errlen, "still uid %u after switching to %u", (unsigned)geteuid(),
                     (unsigned)uid);
            return -1;
        }
        own_uid = uid;
        /* What an earlier worker of this uid left, if the master could not end it. */
        (void)kill(-1, SIGKILL);
    }
    return 0;
}

/* Without a uid of its own, a worker cannot kill(-1): it SIGKILLs its children instead
 * (from /proc/self/task/TID/children), which, as a subreaper, is where everything it
 * started ends up once the processes in between are gone. */
static void kill_children(void)
{
    DIR *tasks = opendir("/proc/self/task");
    if (tasks == NULL)
        return;
    struct dirent *e;
    while ((e = readdir(tasks)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char path[64];
        snprintf(path, sizeof(path), "/proc/self/task/%.20s/children", e->d_name);
        FILE *f = fopen(path, "r");
        if (f == NULL)
            continue;
        long pid;
        /* The kernel writes the pids: scanf has no conversion error to miss. */
        // NOLINTNEXTLINE(cert-err34-c)
        while (fscanf(f, "%ld", &pid) == 1)
            if (pid > 0)
                (void)kill((pid_t)pid, SIGKILL);
        fclose(f);
    }
    closedir(tasks);
}

static long now_ms(void)
{
    struct timespec t;
    (void)clock_gettime(CLOCK_MONOTONIC, &t); /* cannot fail with a valid clock id */
    return (long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* Writes `text` to the file at `path` (a /proc control file: one write). 0, or -1 with
 * errno. */
static int write_control(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    size_t len = strlen(text);
    ssize_t n = write(fd, text, len);
    int saved = errno;
    (void)close(fd);
    if (n == (ssize_t)len)
        return 0;
    errno = n < 0 ? saved : EIO;
    return -1;
}

/* The one line "ID ID 1" of a uid_map or gid_map: the id maps to itself, and nothing
 * else is mapped. */
static int map_one_id(const char *file, unsigned id, char *err, size_t errlen)
{
    char line[64], path[64];
    snprintf(line, sizeof(line), "%u %u 1\n", id, id);
    snprintf(path, sizeof(path), "/proc/self/%s", file);
    if (write_control(path, line) == 0)
        return 0;
    snprintf(err, errlen, "cannot map id %u in %s: %s", id, path, strerror(errno));
    return -1;
}

/* The flags of the mount holding `dir` that the kernel locks in a less privileged mount
 * namespace: a remount must repeat them, or it is refused. */
static unsigned long locked_mount_flags(const char *dir)
{
    struct statvfs st;
    if (statvfs(dir, &st) != 0)
        return 0; /* the remount then says what is wrong */
    static const struct {
        unsigned long st, ms;
    } pairs[] = {{ST_NOSUID, MS_NOSUID},         {ST_NODEV, MS_NODEV},
                 {ST_NOEXEC, MS_NOEXEC},         {ST_NOATIME, MS_NOATIME},
                 {ST_NODIRATIME, MS_NODIRATIME}, {ST_RELATIME, MS_RELATIME}};
    unsigned long flags = 0;
    for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++)
        if (st.f_flag & pairs[i].st)
            flags |= pairs[i].ms;
    return flags;
}

/* `dir` read-only for this process and all it starts: a mount namespace of its own
 * (the user namespace's CAP_SYS_ADMIN allows it), where `dir` is bound onto itself and
 * remounted read-only. Needed because with a shared uid the worker may own the served
 * folder (root's, or pyrt's), and owning a file is enough to write it. */
static int mount_read_only(const char *dir, char *err, size_t errlen)
{
    if (unshare(CLONE_NEWNS) != 0) {
        snprintf(err, errlen, "unshare(CLONE_NEWNS): %s", strerror(errno));
        return -1;
    }
    /* Nothing mounted here is seen outside (a namespace of a less privileged user gets
     * its mounts as slaves already; this says it outright). */
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0 ||
        mount(dir, dir, NULL, MS_BIND | MS_REC, NULL) != 0 ||
        mount(NULL, dir, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | locked_mount_flags(dir), NULL) !=
            0) {
        snprintf(err, errlen, "cannot mount %s read-only: %s", dir, strerror(errno));
        return -1;
    }
    /* A working directory inside `dir` still points into the writable mount under it. */
    char cwd[PATH_MAX];
    if (getcwd(cwd, sizeof(cwd)) != NULL && chdir(cwd) != 0) {
        snprintf(err, errlen, "chdir %s: %s", cwd, strerror(errno));
        return -1;
    }
    return 0;
}

int sandbox_enter_namespaces(uid_t outer_uid, gid_t outer_gid, const char *read_only_dir, char *err,
                             size_t errlen)
{
    /* Its process group was the zygote's: kill(0, sig) would reach the zygote and every
     * sibling, whatever their namespace. A group of its own, not a session: a session
     * is a scheduler autogroup of its own, and measured, a fork bomb in one delayed the
     * master's deadline answers by up to 1.6 s on 2 CPUs (in the server's: 0.26 s). */
    if (setpgid(0, 0) < 0) {
        snprintf(err, errlen, "setpgid: %s", strerror(errno));
        return -1;
    }
    if (write_control("/proc/self/setgroups", "deny") != 0) {
        snprintf(err, errlen, "cannot write /proc/self/setgroups: %s", strerror(errno));
        return -1;
    }
    if (map_one_id("gid_map", (unsigned)outer_gid, err, errlen) < 0)
        return -1;
    /* Mapping uid 0 takes CAP_SETFCAP where the namespace was made; a zygote running as
     * root has none. Unmapped, the uid is still root's outside (the files it owns, the
     * processes it may signal), and shows as 65534 inside. */
    if (map_one_id("uid_map", (unsigned)outer_uid, err, errlen) < 0 &&
        !(outer_uid == 0 && errno == EPERM))
        return -1;
    if (outer_uid != 0) {
        /* Counted in this user namespace (Linux >= 5.14): this worker's processes alone. */
        struct rlimit nproc = {SANDBOX_NPROC_MAX, SANDBOX_NPROC_MAX};
        if (setrlimit(RLIMIT_NPROC, &nproc) != 0) {
            snprintf(err, errlen, "setrlimit(RLIMIT_NPROC, %d): %s", SANDBOX_NPROC_MAX,
                     strerror(errno));
            return -1;
        }
    }
    /* Both best effort, with the capabilities the namespace gives (gone below): a kernel
     * before 6.14 has one pid_max for all, and a read-only /proc/sys refuses both. */
    char pid_max[16];
    snprintf(pid_max, sizeof(pid_max), "%d", SANDBOX_PID_MAX);
    (void)write_control("/proc/sys/kernel/pid_max", pid_max);
    /* User code gets no namespace of its own to hold capabilities in: the kernel code
     * reachable that way is the largest part of what user namespaces expose. */
    (void)write_control("/proc/sys/user/max_user_namespaces", "0");
    if (read_only_dir && mount_read_only(read_only_dir, err, errlen) < 0)
        return -1;
    /* The namespace gave a full bounding set back. */
    if (drop_bounding_set(err, errlen) < 0)
        return -1;
    own_pid_ns = true;
    return 0;
}

int sandbox_probe_namespaces(const char *read_only_dir, char *err, size_t errlen)
{
    int report[2];
    if (pipe2(report, O_CLOEXEC) != 0) {
        snprintf(err, errlen, "pipe2: %s", strerror(errno));
        return -1;
    }
    uid_t uid = geteuid();
    gid_t gid = getegid();
    /* A raw clone, as the zygote's workers are; nothing but syscalls runs in the child. */
    long pid = syscall(SYS_clone, (unsigned long)(CLONE_NEWUSER | CLONE_NEWPID | SIGCHLD), NULL,
                       NULL, NULL, NULL);
    if (pid == 0) {
        (void)close(report[0]);
        char why[256];
        int rc = sandbox_enter_namespaces(uid, gid, read_only_dir, why, sizeof(why));
        if (rc == 0 && set_capabilities(0) != 0) {
            snprintf(why, sizeof(why), "capset: %s", strerror(errno));
            rc = -1;
        }
        if (rc < 0)
            (void)!write(report[1], why, strlen(why));
        _exit(rc < 0 ? 1 : 0);
    }
    int saved = errno;
    (void)close(report[1]);
    if (pid < 0) {
        (void)close(report[0]);
        snprintf(err, errlen, "clone(CLONE_NEWUSER | CLONE_NEWPID): %s", strerror(saved));
        return -1;
    }
    char why[256];
    size_t got = 0;
    ssize_t n;
    while (got < sizeof(why) - 1 && ((n = read(report[0], why + got, sizeof(why) - 1 - got)) > 0 ||
                                     (n < 0 && errno == EINTR)))
        got += n > 0 ? (size_t)n : 0;
    why[got] = '\0';
    (void)close(report[0]);
    int status;
    pid_t waited;
    do
        waited = waitpid((pid_t)pid, &status, 0);
    while (waited < 0 && errno == EINTR);
    if (waited == (pid_t)pid && WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return 0;
    snprintf(err, errlen, "%s", got > 0 ? why : "the namespaces' test process failed");
    return -1;
}

void sandbox_end_execution(void)
{
    /* No child, running or zombie, means nothing the execution started is left: what it
     * started and orphaned came to this process (a subreaper, or its namespace's init),
     * and with a uid of its own, only its descendants have that uid. One cheap call,
     * where kill(-1) visits every process on the host (80 us measured here, more on a
     * busy host) on every execution. */
    int status;
    pid_t first;
    do
        first = waitpid(-1, &status, WNOHANG | __WALL);
    while (first < 0 && errno == EINTR);
    if (first < 0)
        return; /* ECHILD */
    if (own_uid != 0 || own_pid_ns)
        (void)kill(-1, SIGKILL); /* the whole uid, or namespace, at once */
    long give_up = now_ms() + REAP_WAIT_MS;
    for (;;) {
        pid_t pid = waitpid(-1, &status, WNOHANG | __WALL);
        if (pid > 0)
            continue;
        if (pid < 0 && errno == EINTR)
            continue;
        if (pid < 0 || now_ms() > give_up)
            return; /* ECHILD: nothing left */
        if (own_pid_ns)
            (void)kill(-1, SIGKILL); /* PID 1: every other process of the namespace */
        else if (own_uid == 0)
            kill_children(); /* grandchildren come to us as their parents die */
        struct timespec pause = {0, 1000000};
        (void)nanosleep(&pause, NULL);
    }
}
