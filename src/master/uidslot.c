/* uidslot.c -- which uid each worker gets, and ending everything a uid runs (see
 * uidslot.h). */
#include "master/uidslot.h"

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/err.h"
#include "common/xalloc.h"

#define KILLER_STACK_SIZE (64 * 1024)

static struct {
    long base;      /* 0: off */
    unsigned count; /* uids base + 1 .. base + count */
    bool *taken;    /* count entries; never freed (one per server) */
    unsigned next;  /* where the search for a free one starts */
} slots;

unsigned uidslot_count(long workers)
{
    return (unsigned)(workers > 0 ? workers : 1) * 2 + 2;
}

/* True when [first, last] lies within one line of /proc/self/uid_map ("inside outside
 * count"); a kernel without user namespaces has no such file and maps every uid. */
static bool uids_mapped(unsigned long first, unsigned long last)
{
    if (last > UINT32_MAX - 1)
        return false;
    FILE *f = fopen("/proc/self/uid_map", "r");
    if (f == NULL)
        return errno == ENOENT;
    unsigned long inside, outside, count;
    bool mapped = false;
    /* The kernel writes uid_map: scanf has no conversion error to miss. */
    // NOLINTNEXTLINE(cert-err34-c)
    while (!mapped && fscanf(f, "%lu %lu %lu", &inside, &outside, &count) == 3)
        mapped = first >= inside && last - inside < count;
    fclose(f);
    return mapped;
}

/* No account has a uid in [first, last]: 0, or -1 with err naming it. */
static int no_account_in(unsigned long first, unsigned long last, char *err, size_t errlen)
{
    setpwent();
    struct passwd *pw;
    /* getpwent_r would need a buffer sized by guess; the master is one thread and reads
     * the accounts once, at start. */
    int rc = 0;
    // cppcheck-suppress getpwentCalled
    while (rc == 0 && (pw = getpwent()) != NULL) {
        if (pw->pw_uid >= first && pw->pw_uid <= last) {
            snprintf(err, errlen, "uid %u belongs to account %s", (unsigned)pw->pw_uid,
                     pw->pw_name);
            rc = -1;
        }
    }
    endpwent();
    return rc;
}

/* The lock directory, made if missing; it must be root's and nobody else's. -1 with err. */
static int lock_dir(char *err, size_t errlen)
{
    if (mkdir(UIDSLOT_LOCK_DIR, 0700) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "cannot create %s: %s", UIDSLOT_LOCK_DIR, strerror(errno));
        return -1;
    }
    struct stat st;
    if (lstat(UIDSLOT_LOCK_DIR, &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != 0 ||
        (st.st_mode & 0022) != 0) {
        snprintf(err, errlen, "%s is not a directory that only root can write", UIDSLOT_LOCK_DIR);
        return -1;
    }
    return 0;
}

/* Locks the units of [first, last]: each fd goes to fds (UIDSLOT_UNIT-aligned units).
 * 1 when all were taken, 0 when another server holds one (those taken are released),
 * -1 with err. */
static int lock_units(unsigned long first, unsigned long last, int *fds, char *err, size_t errlen)
{
    unsigned n = 0;
    for (unsigned long unit = first / UIDSLOT_UNIT; unit <= last / UIDSLOT_UNIT; unit++) {
        char path[128];
        snprintf(path, sizeof(path), "%s/%lu", UIDSLOT_LOCK_DIR, unit * UIDSLOT_UNIT);
        int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
        int busy = 0;
        if (fd < 0 || (flock(fd, LOCK_EX | LOCK_NB) != 0 && !(busy = (errno == EWOULDBLOCK)))) {
            snprintf(err, errlen, "cannot lock %s: %s", path, strerror(errno));
            busy = -1;
        }
        if (busy != 0) {
            if (fd >= 0)
                (void)close(fd);
            while (n > 0)
                (void)close(fds[--n]);
            return busy < 0 ? -1 : 0;
        }
        fds[n++] = fd;
    }
    return 1;
}

int uidslot_reserve(long *base, unsigned count, bool fixed, char *err, size_t errlen)
{
    char why[PYRT_ERR_LEN];
    if (lock_dir(why, sizeof(why)) < 0) {
        snprintf(err, errlen, "cannot reserve the workers' uids: %s", why);
        return -1;
    }
    /* Never freed: the locks are held as long as this process lives. */
    int *fds = xcalloc(count / UIDSLOT_UNIT + 2, sizeof(int));
    for (unsigned long first = (unsigned long)*base;; first += UIDSLOT_UNIT) {
        unsigned long last = first + count;
        if (first == 0 || last > UINT32_MAX - 1 || !uids_mapped(first, last)) {
            snprintf(err, errlen,
                     "--worker-uid-base %ld: no free range of %u uids %s is mapped in this "
                     "user namespace (/proc/self/uid_map) and unused by another pyrt; choose "
                     "another base, or 0 to run workers as one user",
                     *base, count + 1, fixed ? "there" : "from there up");
            free(fds);
            return -1;
        }
        int locked = lock_units(first, last, fds, why, sizeof(why));
        if (locked < 0) {
            snprintf(err, errlen, "cannot reserve the workers' uids: %s", why);
            free(fds);
            return -1;
        }
        if (locked == 1 && no_account_in(first, last, why, sizeof(why)) < 0) {
            snprintf(err, errlen, "--worker-uid-base %lu: %s; choose a range no account uses",
                     first, why);
            free(fds);
            return -1;
        }
        if (locked == 1) {
            *base = (long)first;
            return 0;
        }
        if (fixed) {
            snprintf(err, errlen,
                     "--worker-uid-base %ld: uids %lu-%lu are in use by another "
                     "pyrt (%s)",
                     *base, first, last, UIDSLOT_LOCK_DIR);
            free(fds);
            return -1;
        }
    }
}

void uidslot_init(long base, unsigned count)
{
    slots.base = base;
    slots.count = count;
    if (base > 0 && slots.taken == NULL)
        slots.taken = xcalloc(count, sizeof(bool));
}

bool uidslot_enabled(void)
{
    return slots.base > 0;
}

uid_t uidslot_take(void)
{
    for (unsigned i = 0; slots.base > 0 && i < slots.count; i++) {
        unsigned k = (slots.next + i) % slots.count;
        if (!slots.taken[k]) {
            slots.taken[k] = true;
            /* The next search starts past it: a uid just released rests a while. */
            slots.next = (k + 1) % slots.count;
            return (uid_t)(slots.base + 1 + (long)k);
        }
    }
    return 0;
}

void uidslot_release(uid_t uid)
{
    long k = (long)uid - slots.base - 1;
    if (slots.base > 0 && uid != 0 && k >= 0 && k < (long)slots.count)
        slots.taken[k] = false;
}

/* The killer: in a child that shares our memory (CLONE_VM) and runs while we wait
 * (CLONE_VFORK). Raw syscalls only: glibc's setresuid() would change every thread of
 * the master (its set*id broadcast), and the uid must change for this child alone. */
static int kill_as(void *arg)
{
    uid_t uid = *(const uid_t *)arg;
    if (syscall(SYS_setresuid, uid, uid, uid) != 0)
        return 1;
    /* One is enough (the kernel signals every process of the uid under the task list
     * lock, and a fork in flight fails); the second costs nothing. */
    (void)syscall(SYS_kill, -1, SIGKILL);
    (void)syscall(SYS_kill, -1, SIGKILL);
    return 0;
}

int uidslot_kill(uid_t uid)
{
    static _Alignas(16) char stack[KILLER_STACK_SIZE];
    if (uid == 0) {
        errno = EINVAL;
        return -1;
    }
    uid_t arg = uid;
    pid_t pid = clone(kill_as, stack + sizeof(stack), CLONE_VM | CLONE_VFORK | SIGCHLD, &arg);
    if (pid < 0)
        return -1;
    int status;
    pid_t got;
    do
        got = waitpid(pid, &status, 0);
    while (got < 0 && errno == EINTR);
    if (got != pid)
        return -1;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        errno = EPERM; /* the child could not become the uid */
        return -1;
    }
    return 0;
}
