/* tmpdirs.c -- the per-server folder of the workers' private TMPDIRs (see tmpdirs.h). */
#include "master/tmpdirs.h"

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/log.h"
#include "common/num.h"
#include "common/rmtree.h"
#include "master/uidslot.h"
#include "proto/zygote.h"

#define BASE_MODE 0511 /* the master's; workers pass through, never list nor write */

static char *base_path; /* NULL: none made (or removed) */

/* The master's own TMPDIR when it names a folder, else /tmp. */
static const char *parent_dir(void)
{
    const char *tmp = getenv("TMPDIR");
    struct stat st;
    return tmp && tmp[0] == '/' && stat(tmp, &st) == 0 && S_ISDIR(st.st_mode) ? tmp : "/tmp";
}

/* The uid all workers share when they have none of their own: --user's (a name, else a
 * number, as the zygote reads it), else pyrt's. */
static uid_t shared_uid(const char *user)
{
    if (user == NULL)
        return geteuid();
    struct passwd *pw = getpwnam(user);
    long uid = 0;
    if (pw != NULL)
        return pw->pw_uid;
    return num_parse_long(user, &uid) == 0 && uid >= 0 ? (uid_t)uid : geteuid();
}

/* A folder in fd, 0700, for `uid`: -1 with err. */
static int make_owned(int fd, const char *name, uid_t uid, char *err, size_t errlen)
{
    if (mkdirat(fd, name, 0700) != 0 ||
        (uid != geteuid() && fchownat(fd, name, uid, (gid_t)-1, AT_SYMLINK_NOFOLLOW) != 0)) {
        snprintf(err, errlen, "cannot make %s for uid %u: %s", name, (unsigned)uid,
                 strerror(errno));
        return -1;
    }
    return 0;
}

/* The folders the workers use, in the new per-server folder open as fd. -1 with err. */
static int fill(int fd, const serve_config_t *cfg, char *err, size_t errlen)
{
    if (cfg->worker_uid_base <= 0)
        return make_owned(fd, TMPDIR_SHARED_NAME, shared_uid(cfg->user), err, errlen);
    unsigned count = uidslot_count(cfg->workers);
    for (unsigned i = 1; i <= count; i++) {
        uid_t uid = (uid_t)(cfg->worker_uid_base + (long)i);
        char name[16];
        snprintf(name, sizeof(name), "%u", (unsigned)uid);
        if (make_owned(fd, name, uid, err, errlen) < 0)
            return -1;
    }
    return 0;
}

const char *tmpdirs_create(const serve_config_t *cfg)
{
    buf_t path = BUF_INIT;
    buf_appendf(&path, "%s/pyrt-workers-XXXXXX", parent_dir());
    char *dir = buf_steal(&path);
    char err[PYRT_ERR_LEN] = "";
    int fd = -1;
    if (mkdtemp(dir) == NULL) {
        snprintf(err, sizeof(err), "mkdtemp %s: %s", dir, strerror(errno));
        free(dir);
        dir = NULL; /* nothing made: nothing to remove */
    } else if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0) {
        snprintf(err, sizeof(err), "cannot open %s: %s", dir, strerror(errno));
    } else if (fill(fd, cfg, err, sizeof(err)) == 0 && fchmod(fd, BASE_MODE) != 0) {
        snprintf(err, sizeof(err), "chmod %s: %s", dir, strerror(errno));
    }
    if (fd >= 0)
        (void)close(fd);
    if (err[0] == '\0') {
        base_path = dir;
        log_msg(LOG_INFO, "the workers' private TMPDIRs are in %s", dir);
        return dir;
    }
    log_msg(LOG_WARN,
            "cannot make the workers' private TMPDIRs (%s): workers keep the inherited "
            "TMPDIR (%s), which they all share",
            err, getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    base_path = dir; /* whatever was made goes (NULL: nothing) */
    tmpdirs_remove();
    return NULL;
}

void tmpdirs_remove(void)
{
    if (base_path == NULL)
        return;
    char *slash =
        strrchr(base_path, '/'); /* there is one: the path is parent/pyrt-workers-XXXXXX */
    *slash = '\0';
    int parent = open(*base_path ? base_path : "/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    *slash = '/';
    if (parent < 0 || rmtree_at(parent, slash + 1) != 0)
        log_msg(LOG_WARN, "cannot remove the workers' TMPDIRs in %s: %s", base_path,
                strerror(errno));
    if (parent >= 0)
        (void)close(parent);
    free(base_path);
    base_path = NULL;
}
