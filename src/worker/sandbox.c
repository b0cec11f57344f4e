/* sandbox.c -- the zygote's and each worker's uid, capabilities, no_new_privs and
 * process cap, and the end of what an execution leaves running (see sandbox.h).
 *
 * The uid changes are raw syscalls: a worker is a raw clone of the zygote, and glibc's
 * setresuid() would walk a thread list that clone did not update. Either process runs
 * one thread when it changes uid, so the raw call covers all of it. */
#include "worker/sandbox.h"

#include <dirent.h>
#include <errno.h>
#include <linux/capability.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CAP_LAST_POSSIBLE 63 /* PR_CAPBSET_DROP says EINVAL past the kernel's last */
#define REAP_WAIT_MS 2000    /* SIGKILLed processes exit within this, or are left */

static uid_t own_uid; /* the worker's own uid (sandbox_worker), 0: it shares one */

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

void sandbox_end_execution(void)
{
    if (own_uid != 0)
        (void)kill(-1, SIGKILL); /* the whole uid at once: forks in flight fail */
    long give_up = now_ms() + REAP_WAIT_MS;
    for (;;) {
        int status;
        pid_t pid = waitpid(-1, &status, WNOHANG | __WALL);
        if (pid > 0)
            continue;
        if (pid < 0 && errno == EINTR)
            continue;
        if (pid < 0 || now_ms() > give_up)
            return; /* ECHILD: nothing left */
        if (own_uid == 0)
            kill_children(); /* grandchildren come to us as their parents die */
        struct timespec pause = {0, 1000000};
        (void)nanosleep(&pause, NULL);
    }
}
