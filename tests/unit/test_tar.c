/* test_tar.c -- the function archive: the symlink check, pack/extract round trips on a
 * temporary folder, and each kind of member that extraction must refuse. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* cmocka.h needs the headers above first: its own block, so that it stays last. */
#include <cmocka.h>

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/buf.h"
#include "tar/tar.h"

/* ------------------------------------------------------------ tar_link_target_inside */

typedef struct link_case {
    const char *link;   /* the symlink's member path */
    const char *target; /* its text */
    int inside;
} link_case_t;

static const link_case_t link_cases[] = {
    {"a", "b", 1},           {"a", ".", 1},
    {"a", "./b", 1},         {"a", "b/../c", 1},
    {"a", "b//c/", 1},       {"d/a", "..", 1},
    {"d/a", "../b", 1},      {"d/e/a", "../../b", 1},
    {"./d/a", "../b", 1},                        /* "." components add no depth */
    {"d//a", "../b", 1},                         /* nor do empty ones */
    {"d/./a", "../b", 1},    {"a", "", 0},       /* points nowhere */
    {"a", "/etc/passwd", 0}, {"d/a", "/d/b", 0}, /* absolute, even if it names a member */
    {"a", "..", 0},          {"a", "../a", 0},
    {"a", "b/../..", 0},     {"a", "b//..//..", 0},
    {"d/a", "../../b", 0},   {"d/a", "../b/../../c", 0},
    {"./a", "../b", 0},      {"d/e/a", "../../../b", 0},
    {"a", "./../b", 0},
};

static void test_link_target_inside_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(link_cases) / sizeof(link_cases[0]); i++) {
        const link_case_t *c = &link_cases[i];
        int got = tar_link_target_inside(c->link, c->target);
        if (got != c->inside)
            fail_msg("%s -> %s: inside=%d, expected %d", c->link, c->target, got, c->inside);
    }
}

/* ------------------------------------------------------------ a temporary folder */

typedef struct tmp {
    char root[PATH_MAX]; /* mkdtemp'd; removed by teardown */
} tmp_t;

static int on_remove(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int setup(void **state)
{
    tmp_t *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return -1;
    snprintf(t->root, sizeof(t->root), "%s/pyrt-test-tar-XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (mkdtemp(t->root) == NULL) {
        free(t);
        return -1;
    }
    *state = t;
    return 0;
}

static int teardown(void **state)
{
    tmp_t *t = *state;
    int rc = nftw(t->root, on_remove, 16, FTW_DEPTH | FTW_PHYS);
    free(t);
    return rc;
}

/* root/rel, in a static buffer per slot (so that a call may use two). */
static const char *at(const tmp_t *t, const char *rel)
{
    static char paths[4][PATH_MAX + 64];
    static int next;
    char *p = paths[next++ % 4];
    snprintf(p, sizeof(paths[0]), "%s/%s", t->root, rel);
    return p;
}

static void write_text(const char *path, const char *text, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    size_t len = strlen(text);
    assert_int_equal(write(fd, text, len), (ssize_t)len);
    assert_int_equal(close(fd), 0);
    assert_int_equal(chmod(path, mode), 0); /* whatever the umask */
}

static void assert_file(const char *path, const char *text, mode_t mode)
{
    buf_t b = BUF_INIT;
    assert_int_equal(buf_read_file(&b, path, SIZE_MAX), 0);
    assert_int_equal(b.len, strlen(text));
    assert_memory_equal(b.data ? b.data : "", text, b.len);
    buf_free(&b);
    struct stat st;
    assert_int_equal(lstat(path, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    assert_int_equal(st.st_mode & 07777, mode);
}

/* A function folder: nested files, an executable, an empty file and a symlink. */
static void make_tree(const tmp_t *t)
{
    assert_int_equal(mkdir(at(t, "src"), 0755), 0);
    assert_int_equal(mkdir(at(t, "src/pkg"), 0755), 0);
    write_text(at(t, "src/index.py"), "def main(req, res):\n    return res.send('hi')\n", 0644);
    write_text(at(t, "src/pkg/__init__.py"), "", 0644);
    write_text(at(t, "src/pkg/run.sh"), "#!/bin/sh\necho run\n", 0755);
    assert_int_equal(symlink("pkg/run.sh", at(t, "src/link")), 0);
}

static void test_round_trip(void **state)
{
    tmp_t *t = *state;
    char err[512] = "";
    make_tree(t);
    for (int plain = 0; plain <= 1; plain++) {
        const char *out = at(t, plain ? "fn.tar" : "fn.tar.gz");
        const char *dest = at(t, plain ? "plain" : "gzip");
        if (tar_pack(at(t, "src"), out, plain, err, sizeof(err)) != 0)
            fail_msg("tar_pack: %s", err);
        if (tar_extract(out, dest, err, sizeof(err)) != 0)
            fail_msg("tar_extract: %s", err);
        char path[PATH_MAX + 64];
        snprintf(path, sizeof(path), "%s/index.py", dest);
        assert_file(path, "def main(req, res):\n    return res.send('hi')\n", 0644);
        snprintf(path, sizeof(path), "%s/pkg/__init__.py", dest);
        assert_file(path, "", 0644);
        snprintf(path, sizeof(path), "%s/pkg/run.sh", dest);
        assert_file(path, "#!/bin/sh\necho run\n", 0755);
        char target[PATH_MAX];
        snprintf(path, sizeof(path), "%s/link", dest);
        ssize_t n = readlink(path, target, sizeof(target) - 1);
        assert_true(n > 0);
        target[n] = '\0';
        assert_string_equal(target, "pkg/run.sh");
    }
}

static void test_pack_is_deterministic_and_leaves_out_itself(void **state)
{
    tmp_t *t = *state;
    char err[512] = "";
    make_tree(t);
    /* The archive is written inside the folder it packs, twice: the second pack must
     * leave out both the file being written and the first archive at that path. */
    const char *out = at(t, "src/fn.tar.gz");
    assert_int_equal(tar_pack(at(t, "src"), out, false, err, sizeof(err)), 0);
    buf_t first = BUF_INIT, second = BUF_INIT;
    assert_int_equal(buf_read_file(&first, out, SIZE_MAX), 0);
    assert_int_equal(tar_pack(at(t, "src"), out, false, err, sizeof(err)), 0);
    assert_int_equal(buf_read_file(&second, out, SIZE_MAX), 0);
    assert_int_equal(first.len, second.len);
    assert_memory_equal(first.data, second.data, first.len);
    buf_free(&first);
    buf_free(&second);
    assert_int_equal(tar_extract(out, at(t, "dest"), err, sizeof(err)), 0);
    struct stat st;
    assert_int_equal(lstat(at(t, "dest/index.py"), &st), 0);
    assert_int_not_equal(lstat(at(t, "dest/fn.tar.gz"), &st), 0);
}

static void test_pack_refuses_what_is_not_a_folder(void **state)
{
    tmp_t *t = *state;
    char err[512] = "";
    write_text(at(t, "file"), "x", 0644);
    assert_int_equal(tar_pack(at(t, "file"), at(t, "out.tar.gz"), false, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "is not a folder"));
    assert_int_equal(mkdir(at(t, "src"), 0755), 0);
    assert_int_equal(mkfifo(at(t, "src/fifo"), 0644), 0);
    assert_int_equal(tar_pack(at(t, "src"), at(t, "out.tar.gz"), false, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "fifo is a device, FIFO or socket"));
    struct stat st;
    assert_int_not_equal(stat(at(t, "out.tar.gz"), &st), 0); /* nothing left behind */
}

/* ------------------------------------------------------------ archives that must be refused */

typedef struct member {
    const char *path;
    mode_t type; /* AE_IFREG, AE_IFDIR, AE_IFLNK, AE_IFIFO; 0 for a hardlink */
    mode_t perm;
    const char *data; /* a file's bytes, a symlink's or hardlink's target */
} member_t;

/* Writes a gzip'd tar of `members` to path, as a hostile packer could. */
static void write_archive(const char *path, const member_t *members, size_t n)
{
    struct archive *a = archive_write_new();
    assert_int_equal(archive_write_add_filter_gzip(a), ARCHIVE_OK);
    assert_int_equal(archive_write_set_format_pax_restricted(a), ARCHIVE_OK);
    assert_int_equal(archive_write_open_filename(a, path), ARCHIVE_OK);
    for (size_t i = 0; i < n; i++) {
        const member_t *m = &members[i];
        struct archive_entry *e = archive_entry_new();
        archive_entry_set_pathname(e, m->path);
        archive_entry_set_perm(e, m->perm);
        if (m->type == 0) {
            archive_entry_set_filetype(e, AE_IFREG);
            archive_entry_set_hardlink(e, m->data);
        } else {
            archive_entry_set_filetype(e, m->type);
            if (m->type == AE_IFLNK)
                archive_entry_set_symlink(e, m->data);
            if (m->type == AE_IFREG)
                archive_entry_set_size(e, (la_int64_t)strlen(m->data));
        }
        assert_int_equal(archive_write_header(a, e), ARCHIVE_OK);
        if (m->type == AE_IFREG && *m->data)
            assert_int_equal(archive_write_data(a, m->data, strlen(m->data)),
                             (la_ssize_t)strlen(m->data));
        archive_entry_free(e);
    }
    assert_int_equal(archive_write_close(a), ARCHIVE_OK);
    archive_write_free(a);
}

/* Extracting members into t/dest fails with an error containing `says`, and nothing
 * is written beside dest. */
static void expect_refused(const tmp_t *t, const member_t *members, size_t n, const char *says)
{
    char err[512] = "";
    write_archive(at(t, "bad.tar.gz"), members, n);
    assert_int_equal(mkdir(at(t, "dest"), 0755), 0);
    assert_int_equal(tar_extract(at(t, "bad.tar.gz"), at(t, "dest"), err, sizeof(err)), -1);
    if (strstr(err, says) == NULL)
        fail_msg("error \"%s\" does not say \"%s\"", err, says);
    struct stat st;
    assert_int_not_equal(lstat(at(t, "outside"), &st), 0);
    assert_int_not_equal(lstat(at(t, "evil"), &st), 0);
}

#define REFUSED(t, says, ...)                                                                      \
    do {                                                                                           \
        const member_t ms[] = {__VA_ARGS__};                                                       \
        expect_refused(t, ms, sizeof(ms) / sizeof(ms[0]), says);                                   \
    } while (0)

static void test_refuses_dotdot(void **state)
{
    REFUSED(*state, "climbs with '..'", {"../evil", AE_IFREG, 0644, "x"});
}

static void test_refuses_dotdot_inside_a_path(void **state)
{
    REFUSED(*state, "climbs with '..'", {"./a/../../evil", AE_IFREG, 0644, "x"});
}

static void test_refuses_absolute_path(void **state)
{
    tmp_t *t = *state;
    char abs[PATH_MAX + 64];
    snprintf(abs, sizeof(abs), "%s/evil", t->root);
    REFUSED(t, "has an absolute path", {abs, AE_IFREG, 0644, "x"});
}

static void test_refuses_symlink_out(void **state)
{
    REFUSED(*state, "is a symlink to ../outside, outside the folder",
            {"./link", AE_IFLNK, 0777, "../outside"});
}

static void test_refuses_absolute_symlink(void **state)
{
    REFUSED(*state, "is a symlink to /etc, outside the folder", {"./link", AE_IFLNK, 0777, "/etc"});
}

static void test_refuses_a_chain_of_symlinks_that_climbs_out(void **state)
{
    /* Each link is inside on its own; together a -> s/.. -> ./.. leaves the folder. */
    REFUSED(*state, "resolves to", {"./s", AE_IFLNK, 0777, "."}, {"./a", AE_IFLNK, 0777, "s/.."});
}

static void test_refuses_writing_through_a_symlink(void **state)
{
    /* d points inside, yet a member below it would be written through the link
     * (libarchive's SECURE_SYMLINKS). */
    REFUSED(*state, "Cannot extract through symlink", {"./sub", AE_IFDIR, 0755, ""},
            {"./d", AE_IFLNK, 0777, "sub"}, {"./d/file", AE_IFREG, 0644, "x"});
}

static void test_refuses_hardlink_to_outside(void **state)
{
    REFUSED(*state, "is a hardlink to /etc/passwd", {"./h", 0, 0644, "/etc/passwd"});
}

static void test_refuses_hardlink_to_nothing_before_it(void **state)
{
    REFUSED(*state, "not a file extracted before it", {"./h", 0, 0644, "./later"},
            {"./later", AE_IFREG, 0644, "x"});
}

static void test_refuses_fifo(void **state)
{
    REFUSED(*state, "is a device file, FIFO or socket", {"./fifo", AE_IFIFO, 0644, ""});
}

static void test_refuses_an_empty_archive(void **state)
{
    tmp_t *t = *state;
    char err[512] = "";
    write_archive(at(t, "empty.tar.gz"), NULL, 0);
    assert_int_equal(tar_extract(at(t, "empty.tar.gz"), at(t, "dest"), err, sizeof(err)), -1);
    assert_non_null(strstr(err, "holds no files"));
}

static void test_refuses_what_is_not_an_archive(void **state)
{
    tmp_t *t = *state;
    char err[512] = "";
    write_text(at(t, "junk.tar.gz"), "this is not a tar file, gzip'd or not\n", 0644);
    assert_int_equal(tar_extract(at(t, "junk.tar.gz"), at(t, "dest"), err, sizeof(err)), -1);
    assert_non_null(strstr(err, "junk.tar.gz"));
    assert_int_equal(tar_extract(at(t, "missing.tar.gz"), at(t, "dest"), err, sizeof(err)), -1);
    assert_non_null(strstr(err, "cannot open archive"));
}

static void test_drops_setuid_setgid_sticky_and_keeps_a_hardlink_inside(void **state)
{
    tmp_t *t = *state;
    char err[512] = "";
    const member_t ms[] = {
        {"./suid", AE_IFREG, 04755, "s"},
        {"./sgid", AE_IFREG, 02755, "g"},
        {"./dir", AE_IFDIR, 01777, ""},
        {"./dir/hard", 0, 0755, "./suid"},
    };
    write_archive(at(t, "ok.tar.gz"), ms, sizeof(ms) / sizeof(ms[0]));
    if (tar_extract(at(t, "ok.tar.gz"), at(t, "dest"), err, sizeof(err)) != 0)
        fail_msg("tar_extract: %s", err);
    assert_file(at(t, "dest/suid"), "s", 0755);
    assert_file(at(t, "dest/sgid"), "g", 0755);
    assert_file(at(t, "dest/dir/hard"), "s", 0755);
    struct stat st, hard;
    assert_int_equal(lstat(at(t, "dest/dir"), &st), 0);
    assert_int_equal(st.st_mode & 07777, 0777);
    assert_int_equal(lstat(at(t, "dest/suid"), &st), 0);
    assert_int_equal(lstat(at(t, "dest/dir/hard"), &hard), 0);
    assert_int_equal(st.st_ino, hard.st_ino);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_link_target_inside_table),
        cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pack_is_deterministic_and_leaves_out_itself, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_pack_refuses_what_is_not_a_folder, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refuses_dotdot, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refuses_dotdot_inside_a_path, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refuses_absolute_path, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refuses_symlink_out, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refuses_absolute_symlink, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refuses_a_chain_of_symlinks_that_climbs_out, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_refuses_writing_through_a_symlink, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refuses_hardlink_to_outside, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refuses_hardlink_to_nothing_before_it, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_refuses_fifo, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refuses_an_empty_archive, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refuses_what_is_not_an_archive, setup, teardown),
        cmocka_unit_test_setup_teardown(test_drops_setuid_setgid_sticky_and_keeps_a_hardlink_inside,
                                        setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
