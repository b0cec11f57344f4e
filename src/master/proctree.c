/* proctree.c -- killing a process tree, in a walker process of its own (see proctree.h). */
#include "master/proctree.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "common/xalloc.h"

#define MAX_ROUNDS 64   /* walks of /proc per phase, in a walker process */
#define ORPHAN_ROUNDS 4 /* the same for orphans, on the caller's loop */

typedef struct proc_entry {
    pid_t pid, ppid;
    char state; /* /proc/PID/stat's: 'T' stopped, 'Z' zombie, ... */
} proc_entry_t;

/* The parent of every process, from /proc/PID/stat (the field after the command,
 * which may itself contain spaces and parentheses: parse from the last ')'). */
static proc_entry_t *read_processes(size_t *count)
{
    DIR *d = opendir("/proc");
    size_t n = 0, cap = 256;
    proc_entry_t *list = xmalloc(cap * sizeof(*list));
    if (d == NULL) {
        *count = 0;
        return list;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        char *end;
        long pid = strtol(e->d_name, &end, 10);
        if (*end != '\0' || pid <= 0)
            continue;
        char path[64], stat[512];
        snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
        FILE *f = fopen(path, "r");
        if (f == NULL)
            continue;
        size_t len = fread(stat, 1, sizeof(stat) - 1, f);
        fclose(f);
        stat[len] = '\0';
        char *paren = strrchr(stat, ')');
        char state;
        int ppid;
        /* The kernel writes these fields: scanf has no conversion error to miss. */
        // NOLINTNEXTLINE(cert-err34-c)
        if (paren == NULL || sscanf(paren + 1, " %c %d", &state, &ppid) != 2)
            continue;
        if (n == cap) {
            cap *= 2;
            list = xrealloc(list, cap * sizeof(*list));
        }
        list[n].pid = (pid_t)pid;
        list[n].ppid = (pid_t)ppid;
        list[n].state = state;
        n++;
    }
    closedir(d);
    *count = n;
    return list;
}

/* Whether a process in `state` is still to get `sig`: not dead, not already stopped. */
static bool to_signal(char state, int sig)
{
    return state != 'Z' && state != 'X' && !(sig == SIGSTOP && (state == 'T' || state == 't'));
}

/* The state letter of pid (0: gone). */
static char read_state(pid_t pid)
{
    char path[64], stat[512];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    size_t len = fread(stat, 1, sizeof(stat) - 1, f);
    fclose(f);
    stat[len] = '\0';
    char *paren = strrchr(stat, ')');
    char state = 0;
    if (paren == NULL || sscanf(paren + 1, " %c", &state) != 1)
        return 0;
    return state;
}

/* Appends pid's children (from each of its threads' /proc/PID/task/TID/children) to
 * *list. False when the kernel has no such files (CONFIG_PROC_CHILDREN). */
static bool append_children(pid_t pid, pid_t **list, size_t *n, size_t *cap)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
    DIR *tasks = opendir(path);
    if (tasks == NULL)
        return true; /* gone: no children */
    bool supported = true;
    struct dirent *e;
    while ((e = readdir(tasks)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char file[96];
        snprintf(file, sizeof(file), "/proc/%d/task/%.20s/children", (int)pid, e->d_name);
        FILE *f = fopen(file, "r");
        if (f == NULL) {
            supported = supported && errno != ENOENT;
            continue;
        }
        long child;
        // NOLINTNEXTLINE(cert-err34-c)
        while (fscanf(f, "%ld", &child) == 1) {
            if (*n == *cap) {
                *cap *= 2;
                *list = xrealloc(*list, *cap * sizeof(pid_t));
            }
            (*list)[(*n)++] = (pid_t)child;
        }
        fclose(f);
    }
    closedir(tasks);
    return supported;
}

/* Sends `sig` to every descendant of root still to get it (to_signal); how many, or -1
 * when the kernel lists no children (then the caller walks all of /proc). Reads only
 * the tree's own files: a pid-hopper's newest pid is its subreaper's child, found in
 * microseconds, where a walk of a busy machine's /proc takes long enough to miss it. */
static int signal_tree_once(pid_t root, int sig)
{
    size_t n = 0, cap = 64;
    pid_t *tree = xmalloc(cap * sizeof(pid_t));
    int signalled = 0;
    bool supported = append_children(root, &tree, &n, &cap);
    for (size_t i = 0; supported && i < n; i++) {
        if (to_signal(read_state(tree[i]), sig)) {
            (void)kill(tree[i], sig);
            signalled++;
        }
        supported = append_children(tree[i], &tree, &n, &cap);
    }
    free(tree);
    return supported ? signalled : -1;
}

/* Sends `sig` to every descendant of root still to get it (to_signal); how many. */
static int signal_descendants_once(pid_t root, int sig)
{
    int fast = signal_tree_once(root, sig);
    if (fast >= 0)
        return fast;
    size_t n;
    proc_entry_t *procs = read_processes(&n);
    size_t *tree = xmalloc((n + 1) * sizeof(size_t)); /* indices into procs */
    size_t found = 0;
    int signalled = 0;
    /* Breadth-first over the parent links: each pass adds children of the tree. */
    for (size_t i = 0; i <= found; i++) {
        pid_t parent = i == 0 ? root : procs[tree[i - 1]].pid;
        for (size_t k = 0; k < n; k++)
            if (procs[k].ppid == parent && procs[k].pid != root)
                tree[found++] = k;
    }
    for (size_t i = 0; i < found; i++) {
        if (to_signal(procs[tree[i]].state, sig)) {
            (void)kill(procs[tree[i]].pid, sig);
            signalled++;
        }
    }
    free(tree);
    free(procs);
    return signalled;
}

/* The tree is stopped first, a round at a time until no process in it runs: a stopped
 * process cannot fork, so a pid-hopper (a process that forks and exits, again and
 * again) is caught within a few rounds where killing alone keeps missing its newest
 * pid. Then everything is killed. Slow (each round reads /proc), so it runs in a walker
 * (proctree_kill_async), off the master's loop. */
int proctree_kill(pid_t root)
{
    for (int round = 0; round < MAX_ROUNDS; round++)
        if (signal_descendants_once(root, SIGSTOP) == 0)
            break;
    int total = 0;
    for (int round = 0; round < MAX_ROUNDS; round++) {
        int killed = signal_descendants_once(root, SIGKILL);
        total += killed;
        if (killed == 0)
            break;
    }
    (void)kill(root, SIGKILL);
    return total;
}

#define WALKERS_MAX 16 /* walkers remembered, so that kill_orphans spares them */

static pid_t walkers[WALKERS_MAX];
static unsigned walkers_next;

static bool is_walker(pid_t pid)
{
    for (unsigned i = 0; i < WALKERS_MAX; i++)
        if (walkers[i] == pid)
            return true;
    return false;
}

/* Runs `walk` in a walker (a child of ours, remembered in `walkers`), or here if none
 * can be forked. */
static void in_walker(void (*walk)(pid_t parent, const void *arg), const void *arg)
{
    pid_t parent = getpid();
    pid_t walker = fork();
    if (walker == 0) {
        /* It dies with the master, and is not the master's own tree's to outlive. */
        if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0 || getppid() != parent)
            _exit(0);
        walk(parent, arg);
        _exit(0);
    }
    if (walker < 0) {
        walk(parent, arg);
        return;
    }
    walkers[walkers_next] = walker;
    walkers_next = (walkers_next + 1) % WALKERS_MAX;
}

static void walk_tree(pid_t parent, const void *arg)
{
    (void)parent;
    (void)proctree_kill(*(const pid_t *)arg);
}

void proctree_kill_async(pid_t root)
{
    in_walker(walk_tree, &root);
}

typedef struct keep_list {
    const pid_t *pids;
    int count;
} keep_list_t;

/* Sends `sig` to each child of `parent` (the master) that is not kept, a walker or
 * this walker -- and not already stopped (SIGSTOP) or dead -- and to its tree; how many
 * it signalled. */
static int signal_orphans_once(pid_t parent, const keep_list_t *keep, int sig)
{
    size_t n;
    proc_entry_t *procs = read_processes(&n);
    pid_t self = getpid();
    int signalled = 0;
    for (size_t i = 0; i < n; i++) {
        if (procs[i].ppid != parent || procs[i].pid == self || is_walker(procs[i].pid))
            continue;
        bool kept = false;
        for (int k = 0; k < keep->count && !kept; k++)
            kept = keep->pids[k] == procs[i].pid;
        if (kept)
            continue;
        signalled += signal_descendants_once(procs[i].pid, sig);
        if (to_signal(procs[i].state, sig)) {
            (void)kill(procs[i].pid, sig);
            signalled++;
        }
    }
    free(procs);
    return signalled;
}

int proctree_kill_orphans(const pid_t *keep, int nkeep)
{
    keep_list_t list = {keep, nkeep};
    pid_t self = getpid();
    /* Like proctree_kill, a round takes a fresh look (a hopper re-parents each new pid
     * to us), but few rounds: this runs on the caller's loop. */
    for (int round = 0; round < ORPHAN_ROUNDS; round++)
        if (signal_orphans_once(self, &list, SIGSTOP) == 0)
            break;
    int killed = 0;
    for (int round = 0; round < ORPHAN_ROUNDS; round++) {
        int n = signal_orphans_once(self, &list, SIGKILL);
        killed += n;
        if (n == 0)
            break;
    }
    return killed;
}
