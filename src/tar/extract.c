/* extract.c -- extracting the function archive safely (see tar.h). */
#include "tar/tar.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/buf.h"

#define EXTRACT_FLAGS                                                                              \
    (ARCHIVE_EXTRACT_SECURE_SYMLINKS | ARCHIVE_EXTRACT_SECURE_NODOTDOT |                           \
     ARCHIVE_EXTRACT_SECURE_NOABSOLUTEPATHS | ARCHIVE_EXTRACT_PERM | ARCHIVE_EXTRACT_TIME)

/* Lexically resolves `rel` (relative, '/'-separated) and says whether it stays inside:
 * the depth never goes below zero. */
static bool stays_inside(const char *rel, int start_depth)
{
    int depth = start_depth;
    const char *p = rel;
    while (*p) {
        const char *slash = strchr(p, '/');
        size_t len = slash ? (size_t)(slash - p) : strlen(p);
        if (len == 2 && p[0] == '.' && p[1] == '.')
            depth--;
        else if (len > 0 && !(len == 1 && p[0] == '.'))
            depth++;
        if (depth < 0)
            return false;
        p += len + (slash ? 1 : 0);
    }
    return true;
}

static int depth_of_parent(const char *member)
{
    int depth = 0;
    const char *p = member;
    while (*p) {
        const char *slash = strchr(p, '/');
        size_t len = slash ? (size_t)(slash - p) : strlen(p);
        if (slash == NULL)
            break; /* the last component is the link itself */
        if (len > 0 && !(len == 1 && p[0] == '.'))
            depth++;
        p = slash + 1;
    }
    return depth;
}

int tar_link_target_inside(const char *link, const char *target)
{
    if (target[0] == '\0' || target[0] == '/')
        return 0;
    return stays_inside(target, depth_of_parent(link)) ? 1 : 0;
}

/* The member's path without leading "./"; "" for the folder itself. NULL when it is
 * absolute or climbs with "..". */
static const char *member_path(const char *name)
{
    if (name[0] == '/')
        return NULL;
    while (name[0] == '.' && name[1] == '/')
        name += 2;
    while (name[0] == '/')
        name++;
    if (strcmp(name, ".") == 0)
        return "";
    if (!stays_inside(name, 0))
        return NULL;
    for (const char *p = name; (p = strstr(p, "..")) != NULL; p += 2) {
        bool starts = p == name || p[-1] == '/';
        bool ends = p[2] == '\0' || p[2] == '/';
        if (starts && ends)
            return NULL;
    }
    return name;
}

/* Refuses what libarchive's flags let through. */
static int check_entry(struct archive_entry *e, const char *path, char *err, size_t errlen)
{
    const char *name = archive_entry_pathname(e);
    mode_t type = archive_entry_filetype(e);
    if (type == AE_IFCHR || type == AE_IFBLK || type == AE_IFIFO || type == AE_IFSOCK) {
        snprintf(err, errlen, "archive member %s is a device file, FIFO or socket: refused", name);
        return -1;
    }
    if (type == AE_IFLNK) {
        const char *target = archive_entry_symlink(e);
        if (target == NULL || !tar_link_target_inside(path, target)) {
            snprintf(err, errlen,
                     "archive member %s is a symlink to %s, outside the folder: refused", name,
                     target ? target : "(nothing)");
            return -1;
        }
    }
    const char *hard = archive_entry_hardlink(e);
    if (hard) {
        const char *target = member_path(hard);
        struct stat st;
        if (target == NULL || *target == '\0' || lstat(target, &st) != 0 || !S_ISREG(st.st_mode)) {
            snprintf(err, errlen,
                     "archive member %s is a hardlink to %s, not a file extracted before it: "
                     "refused",
                     name, hard);
            return -1;
        }
        archive_entry_set_hardlink(e, target);
    }
    /* No setuid, setgid or sticky bit survives extraction. */
    archive_entry_set_perm(e, archive_entry_perm(e) & 0777);
    archive_entry_set_pathname(e, path);
    return 0;
}

static int copy_data(struct archive *in, struct archive *out)
{
    const void *block;
    size_t size;
    la_int64_t offset;
    for (;;) {
        int r = archive_read_data_block(in, &block, &size, &offset);
        if (r == ARCHIVE_EOF)
            return ARCHIVE_OK;
        if (r != ARCHIVE_OK)
            return r;
        if (archive_write_data_block(out, block, size, offset) != ARCHIVE_OK)
            return ARCHIVE_FATAL;
    }
}

/* After extraction: every symlink must resolve inside the folder (a chain of links,
 * each inside on its own, can still climb out: a -> "s/..", s -> "."). */
static const char *walk_root;
static char walk_error[PATH_MAX + 128];

static int check_symlink(const char *fpath, const struct stat *sb, int typeflag, struct FTW *ftw)
{
    (void)sb;
    (void)ftw;
    if (typeflag != FTW_SL && typeflag != FTW_SLN)
        return 0;
    char resolved[PATH_MAX];
    if (realpath(fpath, resolved) == NULL)
        return 0; /* dangling: its text was checked lexically */
    size_t n = strlen(walk_root);
    if (strncmp(resolved, walk_root, n) == 0 && (resolved[n] == '\0' || resolved[n] == '/'))
        return 0;
    snprintf(walk_error, sizeof(walk_error),
             "archive member %s is a symlink that resolves to %s, "
             "outside the folder: refused",
             fpath + n + 1, resolved);
    return 1;
}

int tar_extract(const char *archive_path, const char *dir, char *err, size_t errlen)
{
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "cannot create %s: %s", dir, strerror(errno));
        return -1;
    }
    char root[PATH_MAX];
    if (realpath(dir, root) == NULL) {
        snprintf(err, errlen, "cannot resolve %s: %s", dir, strerror(errno));
        return -1;
    }
    struct stat ast;
    if (stat(archive_path, &ast) != 0) {
        snprintf(err, errlen, "cannot open archive %s: %s", archive_path, strerror(errno));
        return -1;
    }
    struct archive *in = archive_read_new();
    archive_read_support_filter_all(in);
    archive_read_support_format_tar(in);
    archive_read_support_format_gnutar(in);
    if (archive_read_open_filename(in, archive_path, 64 * 1024) != ARCHIVE_OK) {
        snprintf(err, errlen, "cannot open archive %s: %s", archive_path, archive_error_string(in));
        archive_read_free(in);
        return -1;
    }
    int cwd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (cwd < 0 || chdir(root) != 0) {
        snprintf(err, errlen, "cannot enter %s: %s", root, strerror(errno));
        if (cwd >= 0)
            (void)close(cwd);
        archive_read_free(in);
        return -1;
    }
    struct archive *out = archive_write_disk_new();
    archive_write_disk_set_options(out, EXTRACT_FLAGS);

    int rc = 0;
    unsigned members = 0;
    for (;;) {
        struct archive_entry *e;
        int r = archive_read_next_header(in, &e);
        if (r == ARCHIVE_EOF)
            break;
        if (r != ARCHIVE_OK && r != ARCHIVE_WARN) {
            snprintf(err, errlen, "archive %s is corrupt or not a tar.gz: %s", archive_path,
                     archive_error_string(in));
            rc = -1;
            break;
        }
        members++;
        const char *name = archive_entry_pathname(e);
        const char *path = name ? member_path(name) : NULL;
        if (path == NULL) {
            snprintf(err, errlen,
                     "archive member %s has an absolute path or climbs with '..': "
                     "refused",
                     name ? name : "(no name)");
            rc = -1;
            break;
        }
        if (*path == '\0')
            continue; /* "./": the folder itself */
        char path_copy[PATH_MAX];
        snprintf(path_copy, sizeof(path_copy), "%s", path);
        if (check_entry(e, path_copy, err, errlen) < 0) {
            rc = -1;
            break;
        }
        if (archive_write_header(out, e) != ARCHIVE_OK ||
            (archive_entry_size(e) > 0 && copy_data(in, out) != ARCHIVE_OK) ||
            archive_write_finish_entry(out) != ARCHIVE_OK) {
            snprintf(err, errlen, "cannot extract archive member %s: %s", name,
                     archive_error_string(out) ? archive_error_string(out)
                                               : archive_error_string(in));
            rc = -1;
            break;
        }
    }
    if (rc == 0 && members == 0) {
        snprintf(err, errlen, "archive %s holds no files", archive_path);
        rc = -1;
    }
    archive_write_free(out);
    archive_read_free(in);
    if (fchdir(cwd) != 0 && rc == 0) {
        snprintf(err, errlen, "cannot return to the working folder: %s", strerror(errno));
        rc = -1;
    }
    (void)close(cwd);
    if (rc == 0) {
        walk_root = root;
        if (nftw(root, check_symlink, 32, FTW_PHYS) != 0) {
            snprintf(err, errlen, "%s", walk_error);
            rc = -1;
        }
        walk_root = NULL; /* it pointed at this frame's `root` */
    }
    return rc;
}
