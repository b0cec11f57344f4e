/* pack.c -- writing the function archive (see tar.h). */
#include "tar/tar.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/xalloc.h"

/* 1980-01-01T00:00:00Z: a fixed time for every member, old enough to mean "none" yet
 * not the epoch, which some tools warn about. */
#define PACK_MTIME 315532800

/* Files left out by inode: the archive being written, and an older one at the same
 * path (a previous pack). */
typedef struct pack_state {
    struct archive *a;
    struct stat skip[2];
    int nskip;
    char *err;
    size_t errlen;
} pack_state_t;

static bool skipped(const pack_state_t *ps, const struct stat *st)
{
    for (int i = 0; i < ps->nskip; i++)
        if (ps->skip[i].st_dev == st->st_dev && ps->skip[i].st_ino == st->st_ino)
            return true;
    return false;
}

static int compare_names(const void *x, const void *y)
{
    return strcmp(*(char *const *)x, *(char *const *)y);
}

/* The names in a folder, sorted bytewise (not by locale), so the order is the same
 * everywhere. */
static char **sorted_names(const char *path, size_t *count)
{
    DIR *d = opendir(path);
    if (d == NULL)
        return NULL;
    size_t n = 0, cap = 32;
    char **names = xmalloc(cap * sizeof(char *));
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if (n == cap) {
            cap *= 2;
            names = xrealloc(names, cap * sizeof(char *));
        }
        names[n++] = xstrdup(e->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof(char *), compare_names);
    *count = n;
    return names;
}

static int write_member(pack_state_t *ps, const char *path, const char *member,
                        const struct stat *st)
{
    struct archive_entry *e = archive_entry_new();
    archive_entry_set_pathname(e, member);
    archive_entry_set_mtime(e, PACK_MTIME, 0);
    archive_entry_set_uid(e, 0);
    archive_entry_set_gid(e, 0);
    archive_entry_set_perm(e, st->st_mode & 0777);
    int fd = -1;
    if (S_ISDIR(st->st_mode)) {
        archive_entry_set_filetype(e, AE_IFDIR);
    } else if (S_ISLNK(st->st_mode)) {
        char target[PATH_MAX];
        ssize_t n = readlink(path, target, sizeof(target) - 1);
        if (n < 0) {
            snprintf(ps->err, ps->errlen, "readlink %s: %s", path, strerror(errno));
            archive_entry_free(e);
            return -1;
        }
        target[n] = '\0';
        archive_entry_set_filetype(e, AE_IFLNK);
        archive_entry_set_symlink(e, target);
    } else if (S_ISREG(st->st_mode)) {
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            snprintf(ps->err, ps->errlen, "cannot read %s: %s", path, strerror(errno));
            archive_entry_free(e);
            return -1;
        }
        archive_entry_set_filetype(e, AE_IFREG);
        archive_entry_set_size(e, st->st_size);
    } else {
        snprintf(ps->err, ps->errlen,
                 "%s is a device, FIFO or socket: a function folder holds files only", path);
        archive_entry_free(e);
        return -1;
    }
    int rc = 0;
    if (archive_write_header(ps->a, e) != ARCHIVE_OK) {
        snprintf(ps->err, ps->errlen, "writing %s: %s", member, archive_error_string(ps->a));
        rc = -1;
    }
    char chunk[64 * 1024];
    off_t left = st->st_size;
    while (rc == 0 && fd >= 0 && left > 0) {
        ssize_t n = read(fd, chunk, sizeof(chunk));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            snprintf(ps->err, ps->errlen, "%s changed while it was packed", path);
            rc = -1;
            break;
        }
        if ((off_t)n > left)
            n = (ssize_t)left;
        if (archive_write_data(ps->a, chunk, (size_t)n) != n) {
            snprintf(ps->err, ps->errlen, "writing %s: %s", member, archive_error_string(ps->a));
            rc = -1;
        }
        left -= n;
    }
    if (fd >= 0)
        (void)close(fd);
    archive_entry_free(e);
    return rc;
}

static int pack_dir(pack_state_t *ps, const char *path, const char *member_prefix)
{
    size_t n;
    char **names = sorted_names(path, &n);
    if (names == NULL) {
        snprintf(ps->err, ps->errlen, "cannot list %s: %s", path, strerror(errno));
        return -1;
    }
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        buf_t child = BUF_INIT, member = BUF_INIT;
        buf_appendf(&child, "%s/%s", path, names[i]);
        buf_appendf(&member, "%s/%s", member_prefix, names[i]);
        struct stat st;
        if (lstat(child.data, &st) != 0) {
            snprintf(ps->err, ps->errlen, "cannot stat %s: %s", child.data, strerror(errno));
            rc = -1;
        } else if (!skipped(ps, &st)) {
            rc = write_member(ps, child.data, member.data, &st);
            if (rc == 0 && S_ISDIR(st.st_mode))
                rc = pack_dir(ps, child.data, member.data);
        }
        buf_free(&child);
        buf_free(&member);
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return rc;
}

int tar_pack(const char *dir, const char *out, bool plain, char *err, size_t errlen)
{
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "%s is not a folder", dir);
        return -1;
    }
    /* Written under a temporary name, renamed at the end: a failed pack leaves the old
     * archive, and the file being written is recognised (and skipped) by its inode. */
    buf_t tmp = BUF_INIT;
    buf_appendf(&tmp, "%s.tmp-XXXXXX", out);
    int fd = mkstemp(tmp.data);
    if (fd < 0) {
        snprintf(err, errlen, "cannot create %s: %s", tmp.data, strerror(errno));
        buf_free(&tmp);
        return -1;
    }
    (void)fchmod(fd, 0644); /* mkstemp makes it 0600 */
    pack_state_t ps = {.err = err, .errlen = errlen};
    if (fstat(fd, &ps.skip[ps.nskip]) == 0)
        ps.nskip++;
    if (stat(out, &ps.skip[ps.nskip]) == 0)
        ps.nskip++;
    ps.a = archive_write_new();
    int rc = 0;
    if ((!plain && (archive_write_add_filter_gzip(ps.a) != ARCHIVE_OK ||
                    archive_write_set_options(ps.a, "gzip:!timestamp") != ARCHIVE_OK)) ||
        archive_write_set_format_pax_restricted(ps.a) != ARCHIVE_OK ||
        archive_write_open_fd(ps.a, fd) != ARCHIVE_OK) {
        snprintf(err, errlen, "cannot start the archive %s: %s", out, archive_error_string(ps.a));
        rc = -1;
    }
    if (rc == 0)
        rc = pack_dir(&ps, dir, ".");
    if (archive_write_close(ps.a) != ARCHIVE_OK && rc == 0) {
        snprintf(err, errlen, "finishing %s: %s", out, archive_error_string(ps.a));
        rc = -1;
    }
    archive_write_free(ps.a);
    if (close(fd) != 0 && rc == 0) {
        snprintf(err, errlen, "writing %s: %s", out, strerror(errno));
        rc = -1;
    }
    if (rc == 0 && rename(tmp.data, out) != 0) {
        snprintf(err, errlen, "cannot rename %s to %s: %s", tmp.data, out, strerror(errno));
        rc = -1;
    }
    if (rc != 0)
        (void)unlink(tmp.data);
    buf_free(&tmp);
    return rc;
}
