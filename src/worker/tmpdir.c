/* tmpdir.c -- a worker's private TMPDIR, emptied or made anew before user code runs
 * (see tmpdir.h). */
#include "worker/tmpdir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "common/rmtree.h"
#include "proto/zygote.h"

#define OWN_PREFIX "w." /* a shared-uid worker's folder: w.XXXXXX */
#define MAKE_TRIES 8    /* a new folder swept by another new worker before it was locked */

/* Held open (and locked) for the worker's life: its folder is in use. Never closed. */
static int held_fd = -1;

/* With a uid of its own: base/UID, which the master made for that uid. The base is not
 * the worker's to write, so the name cannot be swapped under it. */
static int prepare_own(const char *base, uid_t uid, char *path, size_t pathlen, char *err,
                       size_t errlen)
{
    if ((size_t)snprintf(path, pathlen, "%s/%u", base, (unsigned)uid) >= pathlen) {
        snprintf(err, errlen, "%s/%u: path too long", base, (unsigned)uid);
        return -1;
    }
    int flags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
    int fd = open(path, flags);
    if (fd < 0 && errno == EACCES && chmod(path, 0700) == 0) /* closed by the last one */
        fd = open(path, flags);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        if (fd >= 0)
            (void)close(fd);
        return -1;
    }
    int rc = -1;
    if (st.st_uid != uid)
        snprintf(err, errlen, "%s belongs to uid %u, not %u", path, (unsigned)st.st_uid,
                 (unsigned)uid);
    else if (fchmod(fd, 0700) != 0 || rmtree_contents(fd) != 0)
        snprintf(err, errlen, "cannot empty %s: %s", path, strerror(errno));
    else
        rc = 0;
    (void)close(fd);
    return rc;
}

/* Removes each folder of the shared area that no live worker holds locked: those of
 * workers gone before. One that cannot be removed now is tried by the next worker. */
static void sweep(int area)
{
    int fd = fcntl(area, F_DUPFD_CLOEXEC, 0);
    DIR *dir = fd >= 0 ? fdopendir(fd) : NULL;
    if (dir == NULL) {
        if (fd >= 0)
            (void)close(fd);
        return;
    }
    struct dirent *e;
    while ((e = readdir(dir)) != NULL) {
        if (strncmp(e->d_name, OWN_PREFIX, strlen(OWN_PREFIX)) != 0)
            continue;
        int flags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
        int old = openat(area, e->d_name, flags);
        /* Closed by its worker (chmod 0): the same uid may open it again. */
        if (old < 0 && errno == EACCES && fchmodat(area, e->d_name, 0700, 0) == 0)
            old = openat(area, e->d_name, flags);
        if (old < 0)
            continue;
        /* Locked while emptied and removed: a new worker that made it meanwhile
         * waits, then sees it gone and makes another (prepare_shared). */
        if (flock(old, LOCK_EX | LOCK_NB) == 0 &&
            (rmtree_contents(old) != 0 || unlinkat(area, e->d_name, AT_REMOVEDIR) != 0))
            log_msg(LOG_WARN, "cannot remove %s, a former worker's TMPDIR: %s", e->d_name,
                    strerror(errno));
        (void)close(old);
    }
    (void)closedir(dir);
}

/* Makes a new folder in the area open as `area`, locks it and checks that no sweeping
 * worker removed it before the lock: 1 (kept in held_fd), 0 to try again, -1. */
static int make_locked(int area, const char *dirpath, char *path, size_t pathlen)
{
    if ((size_t)snprintf(path, pathlen, "%s/" OWN_PREFIX "XXXXXX", dirpath) >= pathlen) {
        errno = ENAMETOOLONG;
        return -1;
    }
    if (mkdtemp(path) == NULL)
        return -1;
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? 0 : -1; /* swept already */
    struct stat mine, there;
    if (flock(fd, LOCK_EX) != 0 || fstat(fd, &mine) != 0) {
        int saved = errno;
        (void)close(fd);
        errno = saved;
        return -1;
    }
    if (fstatat(area, strrchr(path, '/') + 1, &there, AT_SYMLINK_NOFOLLOW) != 0 ||
        there.st_ino != mine.st_ino || there.st_dev != mine.st_dev) {
        (void)close(fd);
        return 0;
    }
    held_fd = fd;
    return 1;
}

/* Without a uid of its own: a new folder in base/TMPDIR_SHARED_NAME. */
static int prepare_shared(const char *base, char *path, size_t pathlen, char *err, size_t errlen)
{
    char area_path[4096];
    if ((size_t)snprintf(area_path, sizeof(area_path), "%s/%s", base, TMPDIR_SHARED_NAME) >=
        sizeof(area_path)) {
        snprintf(err, errlen, "%s/%s: path too long", base, TMPDIR_SHARED_NAME);
        return -1;
    }
    int area = open(area_path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (area < 0) {
        snprintf(err, errlen, "cannot open %s: %s", area_path, strerror(errno));
        return -1;
    }
    sweep(area);
    int made = 0;
    for (int i = 0; i < MAKE_TRIES && made == 0; i++)
        made = make_locked(area, area_path, path, pathlen);
    if (made != 1)
        snprintf(err, errlen, "cannot make a folder in %s: %s", area_path,
                 made < 0 ? strerror(errno) : "removed by other workers, again and again");
    (void)close(area);
    return made == 1 ? 0 : -1;
}

int worker_tmpdir_prepare(const char *base, uid_t own_uid, char *path, size_t pathlen, char *err,
                          size_t errlen)
{
    if (own_uid != 0)
        return prepare_own(base, own_uid, path, pathlen, err, errlen);
    return prepare_shared(base, path, pathlen, err, errlen);
}
