/* fuzz_tar_extract.c -- tar_extract() on any archive bytes: nothing written outside its folder.
 *
 * Fuzzes tar/extract.c with libarchive behind it: the bytes are written to a temporary
 * file and extracted into TMP/d1/d2/out, TMP being a folder of this process's own that
 * is removed at exit. Asserts, whatever the archive and whether or not it is refused:
 * TMP holds exactly what it held (the archive, d1, d1/d2, d1/d2/out, a victim file whose
 * bytes, mode and link count stay the same), and the working folder is unchanged. When
 * it is accepted: no device, FIFO or socket, no setuid, setgid or sticky bit, and every
 * symlink in out resolves inside out (or nowhere). out is emptied after each input.
 * A plain tar's header checksums are set right before it is written (fix_checksums), or
 * nearly every mutation would stop at libarchive's first header. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz.h"
#include "tar/tar.h"

static const char victim_text[] = "outside the folder: never to be touched\n";
static char root[PATH_MAX];    /* TMP */
static char out_dir[PATH_MAX]; /* TMP/d1/d2/out */
static char out_real[PATH_MAX];
static char archive[PATH_MAX];
static char victim[PATH_MAX];

static int remove_one(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
    (void)sb;
    (void)type;
    (void)ftw;
    (void)remove(path);
    return 0;
}

/* Folders extracted with mode 0 still have to be emptied (when not root). */
static int open_up(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
    (void)sb;
    (void)ftw;
    if (type == FTW_D || type == FTW_DNR)
        (void)chmod(path, 0700);
    return 0;
}

static void remove_tree(const char *path)
{
    (void)nftw(path, open_up, 16, FTW_PHYS);
    (void)nftw(path, remove_one, 16, FTW_PHYS | FTW_DEPTH);
}

static void remove_root(void)
{
    if (root[0])
        remove_tree(root);
}

/* The names in `dir`, sorted, '/'-joined, into out. */
static void listing(const char *dir, char *out, size_t size)
{
    struct dirent **names;
    int n = scandir(dir, &names, NULL, alphasort);
    out[0] = '\0';
    for (int i = 0; i < n; i++) {
        if (strcmp(names[i]->d_name, ".") && strcmp(names[i]->d_name, ".."))
            snprintf(out + strlen(out), size - strlen(out), "%s/", names[i]->d_name);
        free(names[i]);
    }
    if (n >= 0)
        free(names);
}

static void expect_listing(const char *dir, const char *want)
{
    char got[4096];
    listing(dir, got, sizeof(got));
    FUZZ_CHECK(strcmp(got, want) == 0, "%s now holds '%s', expected '%s'", dir, got, want);
}

static int check_member(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
    (void)ftw;
    FUZZ_CHECK(!S_ISCHR(sb->st_mode) && !S_ISBLK(sb->st_mode) && !S_ISFIFO(sb->st_mode) &&
                   !S_ISSOCK(sb->st_mode),
               "%s: a device, FIFO or socket was extracted", path);
    FUZZ_CHECK(type == FTW_SL || (sb->st_mode & 07000) == 0, "%s: mode %o", path,
               (unsigned)sb->st_mode);
    if (type == FTW_SL) {
        char resolved[PATH_MAX];
        if (realpath(path, resolved) != NULL) {
            size_t n = strlen(out_real);
            FUZZ_CHECK(strncmp(resolved, out_real, n) == 0 &&
                           (resolved[n] == '\0' || resolved[n] == '/'),
                       "%s: a symlink that resolves to %s", path, resolved);
        }
    }
    return 0;
}

/* Walks a plain tar's headers (each followed by its data, rounded up to 512 bytes) and
 * writes each one's checksum; stops at anything that is not a header. */
static void fix_checksums(uint8_t *t, size_t len)
{
    for (size_t off = 0; len - off >= 512;) {
        uint8_t *h = t + off;
        bool zero = true;
        for (size_t i = 0; i < 512 && zero; i++)
            zero = h[i] == 0;
        if (zero)
            return;
        memset(h + 148, ' ', 8);
        unsigned sum = 0;
        for (size_t i = 0; i < 512; i++)
            sum += h[i];
        char field[9];
        snprintf(field, sizeof(field), "%06o", sum & 0777777);
        memcpy(h + 148, field, 7); /* six digits, NUL, and the space stays */
        unsigned long long size = 0;
        for (size_t i = 124; i < 136 && h[i] >= '0' && h[i] <= '7'; i++)
            size = size * 8 + (h[i] - '0');
        if (size > len)
            return;
        off += 512 + (size_t)((size + 511) / 512 * 512);
        if (off > len)
            return;
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    umask(022);
    snprintf(root, sizeof(root), "/tmp/pyrt-fuzz-tar.XXXXXX");
    FUZZ_CHECK(mkdtemp(root) != NULL, "mkdtemp: %s", strerror(errno));
    atexit(remove_root);
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/d1", root);
    FUZZ_CHECK(mkdir(path, 0755) == 0, "mkdir %s", path);
    snprintf(path, sizeof(path), "%s/d1/d2", root);
    FUZZ_CHECK(mkdir(path, 0755) == 0, "mkdir %s", path);
    snprintf(out_dir, sizeof(out_dir), "%s/d1/d2/out", root);
    snprintf(archive, sizeof(archive), "%s/archive", root);
    snprintf(victim, sizeof(victim), "%s/victim", root);
    int fd = open(victim, O_WRONLY | O_CREAT | O_EXCL, 0644);
    FUZZ_CHECK(fd >= 0 && write(fd, victim_text, sizeof(victim_text) - 1) ==
                              (ssize_t)sizeof(victim_text) - 1,
               "writing %s", victim);
    close(fd);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
    uint8_t *bytes = malloc(len ? len : 1);
    memcpy(bytes, data, len);
    if (len < 2 || bytes[0] != 0x1f || bytes[1] != 0x8b)
        fix_checksums(bytes, len);
    int fd = open(archive, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    FUZZ_CHECK(fd >= 0 && write(fd, bytes, len) == (ssize_t)len, "writing the archive");
    close(fd);
    free(bytes);
    char cwd[PATH_MAX], cwd_after[PATH_MAX];
    FUZZ_CHECK(getcwd(cwd, sizeof(cwd)) != NULL, "getcwd");

    char err[512];
    memset(err, 'x', sizeof(err));
    int rc = tar_extract(archive, out_dir, err, sizeof(err));

    FUZZ_CHECK(rc == 0 || rc == -1, "rc %d", rc);
    FUZZ_CHECK(rc == 0 || memchr(err, '\0', sizeof(err)) != NULL, "err not terminated");
    FUZZ_CHECK(getcwd(cwd_after, sizeof(cwd_after)) && strcmp(cwd, cwd_after) == 0,
               "the working folder moved to %s", cwd_after);
    /* Nothing outside out: not a name more, not a byte of the victim. */
    expect_listing(root, "archive/d1/victim/");
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/d1", root);
    expect_listing(path, "d2/");
    snprintf(path, sizeof(path), "%s/d1/d2", root);
    expect_listing(path, "out/");
    struct stat st;
    FUZZ_CHECK(lstat(victim, &st) == 0 && S_ISREG(st.st_mode) && st.st_nlink == 1 &&
                   (st.st_mode & 07777) == 0644 && st.st_size == sizeof(victim_text) - 1,
               "the victim file changed: mode %o, %lu links, %lld bytes", (unsigned)st.st_mode,
               (unsigned long)st.st_nlink, (long long)st.st_size);
    char text[sizeof(victim_text)] = "";
    fd = open(victim, O_RDONLY);
    FUZZ_CHECK(fd >= 0 && read(fd, text, sizeof(text)) == sizeof(victim_text) - 1 &&
                   memcmp(text, victim_text, sizeof(victim_text) - 1) == 0,
               "the victim file's bytes changed");
    close(fd);

    if (rc == 0) {
        FUZZ_CHECK(realpath(out_dir, out_real) != NULL, "realpath %s", out_dir);
        (void)nftw(out_dir, check_member, 16, FTW_PHYS);
    }
    remove_tree(out_dir);
    return 0;
}
