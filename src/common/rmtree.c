/* rmtree.c -- removing a folder tree without following symlinks, at any depth (see
 * rmtree.h). */
#include "common/rmtree.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PASSES_MAX 16 /* readdir passes over one folder: a folder changed under us ends */

typedef struct walk {
    int top;             /* the folder being emptied: deep folders move up to it */
    dev_t dev;           /* its filesystem: nothing on another one is entered */
    unsigned long moved; /* folders moved up so far (and their names' counter) */
    int error;           /* errno of the first failure; 0: none */
} walk_t;

static void fail(walk_t *w, int error)
{
    if (w->error == 0)
        w->error = error;
}

/* u+rwx on a folder the caller owns but left without them (root without
 * CAP_DAC_OVERRIDE, a worker's, needs them as much as any owner). */
static void let_owner_in(int fd, const struct stat *st)
{
    if (st->st_uid == geteuid() && (st->st_mode & S_IRWXU) != S_IRWXU)
        (void)fchmod(fd, (st->st_mode & 07777) | S_IRWXU);
}

/* Opens the folder `name` in dirfd: not through a symlink, on the walk's filesystem,
 * and writable by its owner the caller. -1 with errno. */
static int open_dir(walk_t *w, int dirfd, const char *name)
{
    int flags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
    int fd = openat(dirfd, name, flags);
    /* Mode 0 on a folder of the caller's: it may chmod it. fchmodat follows a symlink,
     * but a caller gets EACCES only without CAP_DAC_OVERRIDE, and then it can chmod
     * nothing it does not own. */
    if (fd < 0 && errno == EACCES && fchmodat(dirfd, name, S_IRWXU, 0) == 0)
        fd = openat(dirfd, name, flags);
    if (fd < 0)
        return -1;
    struct stat st;
    if (fstat(fd, &st) != 0 || st.st_dev != w->dev) {
        int saved = st.st_dev != w->dev ? EXDEV : errno;
        (void)close(fd);
        errno = saved;
        return -1;
    }
    let_owner_in(fd, &st);
    return fd;
}

/* A folder too deep to open here moves up to the top, to be emptied from there. */
static bool move_to_top(walk_t *w, int dirfd, const char *name)
{
    for (int tries = 0; tries < 64; tries++) {
        char moved[48];
        snprintf(moved, sizeof(moved), ".pyrt-rm-%lu", w->moved++);
        int rc = renameat2(dirfd, name, w->top, moved, RENAME_NOREPLACE);
        if (rc != 0 && errno == EINVAL) {
            /* A filesystem without RENAME_NOREPLACE: nothing else writes in the tree
             * while it is removed, so a check first does the same. */
            struct stat st;
            if (fstatat(w->top, moved, &st, AT_SYMLINK_NOFOLLOW) == 0)
                continue;
            rc = renameat(dirfd, name, w->top, moved);
        }
        if (rc == 0)
            return true;
        if (errno != EEXIST) {
            fail(w, errno);
            return false;
        }
    }
    fail(w, EEXIST);
    return false;
}

static void empty_dir(walk_t *w, int fd, int depth);

/* Removes one entry of the folder open as dirfd: true when it is gone from there. */
static bool remove_entry(walk_t *w, int dirfd, const char *name, int depth)
{
    struct stat st;
    if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
        return errno == ENOENT;
    if (S_ISDIR(st.st_mode)) {
        if (depth + 1 >= RMTREE_DEPTH_MAX)
            return move_to_top(w, dirfd, name);
        int fd = open_dir(w, dirfd, name);
        if (fd < 0) {
            fail(w, errno);
            return false;
        }
        empty_dir(w, fd, depth + 1); /* closes fd */
    }
    if (unlinkat(dirfd, name, S_ISDIR(st.st_mode) ? AT_REMOVEDIR : 0) == 0 || errno == ENOENT)
        return true;
    fail(w, errno);
    return false;
}

/* Empties the folder open as fd (taken: closed here), `depth` folders below the top.
 * Pass after pass while entries go: a pass that removes nothing ends it. The top gets
 * one more pass for each folder moved up to it. */
static void empty_dir(walk_t *w, int fd, int depth)
{
    DIR *dir = fdopendir(fd);
    if (dir == NULL) {
        fail(w, errno);
        (void)close(fd);
        return;
    }
    for (unsigned long pass = 0; pass < PASSES_MAX + (depth == 0 ? w->moved : 0); pass++) {
        unsigned long removed = 0;
        rewinddir(dir);
        struct dirent *e;
        errno = 0;
        while ((e = readdir(dir)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            if (remove_entry(w, dirfd(dir), e->d_name, depth))
                removed++;
            errno = 0;
        }
        if (errno != 0)
            fail(w, errno);
        if (removed == 0)
            break;
    }
    (void)closedir(dir);
}

int rmtree_contents(int dirfd)
{
    struct stat st;
    if (fstat(dirfd, &st) != 0)
        return -1;
    walk_t w = {.top = dirfd, .dev = st.st_dev};
    let_owner_in(dirfd, &st);
    int fd = fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    empty_dir(&w, fd, 0);
    if (w.error != 0) {
        errno = w.error;
        return -1;
    }
    return 0;
}

int rmtree_at(int parentfd, const char *name)
{
    struct stat st;
    if (fstatat(parentfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
        return errno == ENOENT ? 0 : -1;
    if (S_ISDIR(st.st_mode)) {
        walk_t w = {.dev = st.st_dev};
        int fd = open_dir(&w, parentfd, name);
        if (fd < 0)
            return -1;
        int rc = rmtree_contents(fd);
        int saved = errno;
        (void)close(fd);
        if (rc != 0) {
            errno = saved;
            return -1;
        }
    }
    if (unlinkat(parentfd, name, S_ISDIR(st.st_mode) ? AT_REMOVEDIR : 0) != 0 && errno != ENOENT)
        return -1;
    return 0;
}
