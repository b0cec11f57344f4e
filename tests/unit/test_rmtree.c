/* test_rmtree.c -- removing a tree untrusted code wrote: symlinks not followed, any
 * depth, folders left without permissions. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* cmocka.h needs the headers above first: its own block, so that it stays last. */
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/rmtree.h"

static char root[64];

static int setup(void **state)
{
    (void)state;
    snprintf(root, sizeof(root), "/tmp/pyrt-test-rmtree-XXXXXX");
    return mkdtemp(root) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    int fd = open("/tmp", O_RDONLY | O_DIRECTORY);
    int rc = rmtree_at(fd, root + strlen("/tmp/"));
    close(fd);
    return rc;
}

static int open_root(void)
{
    int fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    assert_true(fd >= 0);
    return fd;
}

static void write_at(int dirfd, const char *name)
{
    int fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "x", 1), 1);
    close(fd);
}

/* A new folder `name` in dirfd, 0700, open (the caller closes it). */
static int new_dir(int dirfd, const char *name)
{
    assert_int_equal(mkdirat(dirfd, name, 0700), 0);
    int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    assert_true(fd >= 0);
    return fd;
}

static int entries(int dirfd)
{
    int fd = fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
    DIR *d = fdopendir(fd);
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(d);
    return n;
}

static void test_empties_files_and_folders_and_keeps_the_top(void **state)
{
    (void)state;
    int top = open_root();
    int box = new_dir(top, "box");
    write_at(box, "a");
    int sub = new_dir(box, "sub");
    write_at(sub, "b");
    assert_int_equal(mkfifoat(sub, "fifo", 0600), 0);
    close(sub);
    assert_int_equal(rmtree_contents(box), 0);
    assert_int_equal(entries(box), 0);
    close(box);
    struct stat st;
    assert_int_equal(fstatat(top, "box", &st, 0), 0); /* the top itself stays */
    close(top);
}

static void test_symlinks_are_removed_not_followed(void **state)
{
    (void)state;
    int top = open_root();
    int outside = new_dir(top, "outside");
    write_at(outside, "precious");
    int box = new_dir(top, "box");
    char target[128];
    snprintf(target, sizeof(target), "%s/outside", root);
    assert_int_equal(symlinkat(target, box, "link"), 0);
    assert_int_equal(symlinkat("/", box, "slash"), 0);
    assert_int_equal(rmtree_contents(box), 0);
    assert_int_equal(entries(box), 0);
    assert_int_equal(entries(outside), 1); /* what the link named is untouched */
    close(box);
    close(outside);
    close(top);
}

/* Far deeper than RMTREE_DEPTH_MAX: emptied with the fds the walk may use. */
static void test_a_deep_tree_is_removed(void **state)
{
    (void)state;
    int top = open_root();
    int fd = fcntl(top, F_DUPFD_CLOEXEC, 0);
    for (int i = 0; i < 20 * RMTREE_DEPTH_MAX; i++) {
        assert_int_equal(mkdirat(fd, "d", 0700), 0);
        write_at(fd, "f");
        int next = openat(fd, "d", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        assert_true(next >= 0);
        close(fd);
        fd = next;
    }
    close(fd);
    int probe = dup(0); /* the lowest free fd */
    close(probe);
    assert_int_equal(rmtree_contents(top), 0);
    assert_int_equal(entries(top), 0);
    int after = dup(0);
    assert_int_equal(after, probe); /* no fd left open */
    close(after);
    close(top);
}

#define NOBODY 65534

/* Folders their owner closed (mode 0, 0500) are opened and emptied all the same, by
 * their owner: as root, the tree is given to nobody and emptied by a child as nobody. */
static void test_folders_without_permissions(void **state)
{
    (void)state;
    int top = open_root();
    int ro = new_dir(top, "ro");
    write_at(ro, "f");
    assert_int_equal(mkdirat(ro, "inner", 0700), 0);
    assert_int_equal(fchmodat(ro, "inner", 0, 0), 0);
    close(ro);
    assert_int_equal(fchmodat(top, "ro", 0500, 0), 0);
    assert_int_equal(mkdirat(top, "none", 0), 0);
    bool as_root = geteuid() == 0;
    if (as_root) {
        const char *mine[] = {"", "ro", "ro/f", "ro/inner", "none"};
        for (size_t i = 0; i < sizeof(mine) / sizeof(mine[0]); i++)
            assert_int_equal(fchownat(top, mine[i], NOBODY, NOBODY, AT_EMPTY_PATH), 0);
    }
    pid_t pid = as_root ? fork() : 0;
    assert_true(pid >= 0);
    if (pid == 0) {
        if (as_root && setresuid(NOBODY, NOBODY, NOBODY) != 0)
            _exit(2);
        int rc = rmtree_contents(top);
        if (as_root)
            _exit(rc == 0 ? 0 : 1);
        assert_int_equal(rc, 0);
    } else {
        int status = -1;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
    }
    assert_int_equal(entries(top), 0);
    close(top);
}

static void test_rmtree_at_removes_the_folder_and_a_missing_one_is_fine(void **state)
{
    (void)state;
    int top = open_root();
    int gone = new_dir(top, "gone");
    write_at(gone, "f");
    close(gone);
    write_at(top, "file");
    assert_int_equal(rmtree_at(top, "gone"), 0);
    assert_int_equal(rmtree_at(top, "file"), 0);
    assert_int_equal(rmtree_at(top, "never-was"), 0);
    assert_int_equal(entries(top), 0);
    close(top);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_empties_files_and_folders_and_keeps_the_top, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_symlinks_are_removed_not_followed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_deep_tree_is_removed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_folders_without_permissions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rmtree_at_removes_the_folder_and_a_missing_one_is_fine,
                                        setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
