/* proctree.c -- killing a process tree (see proctree.h). */
#include "master/proctree.h"

#include <dirent.h>
#include <stdbool.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/xalloc.h"

#define MAX_ROUNDS 16

typedef struct proc_entry {
    pid_t pid, ppid;
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
        if (paren == NULL || sscanf(paren + 1, " %c %d", &state, &ppid) != 2)
            continue;
        if (n == cap) {
            cap *= 2;
            list = xrealloc(list, cap * sizeof(*list));
        }
        list[n].pid = (pid_t)pid;
        list[n].ppid = (pid_t)ppid;
        n++;
    }
    closedir(d);
    *count = n;
    return list;
}

static int kill_descendants_once(pid_t root)
{
    size_t n;
    proc_entry_t *procs = read_processes(&n);
    pid_t *tree = xmalloc((n + 1) * sizeof(pid_t));
    size_t found = 0;
    tree[found++] = root;
    /* Breadth-first over the parent links: each pass adds children of the tree. */
    for (size_t i = 0; i < found; i++)
        for (size_t k = 0; k < n; k++)
            if (procs[k].ppid == tree[i] && procs[k].pid != root)
                tree[found++] = procs[k].pid;
    for (size_t i = 1; i < found; i++)
        (void)kill(tree[i], SIGKILL);
    free(tree);
    free(procs);
    return (int)found - 1;
}

int proctree_kill(pid_t root)
{
    int total = 0;
    for (int round = 0; round < MAX_ROUNDS; round++) {
        int killed = kill_descendants_once(root);
        total += killed;
        if (killed == 0)
            break;
    }
    (void)kill(root, SIGKILL);
    return total;
}

int proctree_kill_orphans(const pid_t *keep, int nkeep)
{
    size_t n;
    proc_entry_t *procs = read_processes(&n);
    pid_t self = getpid();
    int killed = 0;
    for (size_t i = 0; i < n; i++) {
        if (procs[i].ppid != self)
            continue;
        bool kept = false;
        for (int k = 0; k < nkeep && !kept; k++)
            kept = keep[k] == procs[i].pid;
        if (!kept) {
            killed += 1 + proctree_kill(procs[i].pid);
        }
    }
    free(procs);
    return killed;
}
