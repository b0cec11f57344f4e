/* build.c -- `pyrt build` (see build.h). */
#include "build/build.h"

#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <linux/capability.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/proc.h"
#include "common/xalloc.h"
#include "tar/tar.h"

#define STATE_FILE "runtime-env/.pyrt-build"
#define MAX_INCLUDE_DEPTH 8

extern const char pyrt_src_validate[];
extern const char pyrt_src_function_types[];

typedef struct build {
    const build_options_t *opts;
    char dir[PATH_MAX];
    const char *entry;
    bool progress; /* a terminal: one line per step */
    struct timespec started;
    /* Who runs user code -- pip or the install command (packages' build scripts), and
     * the entry point's import: --user, else ourselves. Never root when --user is given;
     * read_all when that user cannot enter the folder on its own. */
    proc_user_t user;
    char *err;
    size_t errlen;
} build_t;

static double elapsed(const build_t *b)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - b->started.tv_sec) +
           (double)(now.tv_nsec - b->started.tv_nsec) / 1e9;
}

static void step(const build_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void step(const build_t *b, const char *fmt, ...)
{
    if (!b->progress)
        return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "pyrt build [%5.1fs] ", elapsed(b));
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
}

static bool is_file(const char *dir, const char *name)
{
    char path[PATH_MAX];
    struct stat st;
    return snprintf(path, sizeof(path), "%s/%s", dir, name) < (int)sizeof(path) &&
           stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

unsigned long long build_digest(unsigned long long h, const void *data, size_t len)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

/* ------------------------------------------------------------ symlinks ---- */

/* nftw() passes its callback no pointer of ours: the build being checked, during the
 * walk only (check_symlinks sets it and clears it). */
static build_t *walk_build;

static int check_link(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
    (void)sb;
    build_t *b = walk_build;
    size_t n = strlen(b->dir);
    const char *rel = path[n] == '/' ? path + n + 1 : path + n;
    if (type == FTW_D && strcmp(rel, "runtime-env") == 0)
        return FTW_SKIP_SUBTREE;
    if (type != FTW_SL && type != FTW_SLN)
        return FTW_CONTINUE;
    (void)ftw;
    char resolved[PATH_MAX];
    bool inside;
    if (realpath(path, resolved) != NULL) {
        inside = strncmp(resolved, b->dir, n) == 0 && (resolved[n] == '\0' || resolved[n] == '/');
    } else {
        char target[PATH_MAX];
        ssize_t len = readlink(path, target, sizeof(target) - 1);
        target[len > 0 ? len : 0] = '\0';
        inside = len > 0 && tar_link_target_inside(rel, target);
        snprintf(resolved, sizeof(resolved), "%s", target);
    }
    if (inside)
        return FTW_CONTINUE;
    snprintf(b->err, b->errlen,
             "symlink %s points outside %s (to %s): `pyrt launch` would refuse it; copy the "
             "file in instead",
             rel, b->dir, resolved);
    return FTW_STOP;
}

static int check_symlinks(build_t *b)
{
    walk_build = b;
    int rc = nftw(b->dir, check_link, 32, FTW_PHYS | FTW_ACTIONRETVAL);
    walk_build = NULL; /* `b` may be on the caller's stack: no pointer to it outlives the walk */
    return rc == 0 ? 0 : -1;
}

/* -------------------------------------------------------- requirements ---- */

/* The digest of a requirements file and, recursively, of the files it names with
 * -r/--requirement and -c/--constraint (relative to its own folder, as pip reads them). */
static int digest_requirements(build_t *b, const char *path, int depth, unsigned long long *h)
{
    buf_t text = BUF_INIT;
    if (depth > MAX_INCLUDE_DEPTH || buf_read_file(&text, path, SIZE_MAX) < 0) {
        snprintf(b->err, b->errlen, "cannot read requirements file %s: %s", path,
                 depth > MAX_INCLUDE_DEPTH ? "-r/-c nested too deeply" : strerror(errno));
        buf_free(&text);
        return -1;
    }
    *h = build_digest(*h, path, strlen(path) + 1);
    *h = build_digest(*h, text.data ? text.data : "", text.len);
    int rc = 0;
    char *save = NULL;
    for (char *line = text.len ? strtok_r(text.data, "\n", &save) : NULL; line && rc == 0;
         line = strtok_r(NULL, "\n", &save)) {
        while (*line == ' ' || *line == '\t')
            line++;
        const char *name = NULL;
        static const char *const flags[] = {"--requirement", "--constraint", "-r", "-c"};
        for (size_t i = 0; i < 4 && name == NULL; i++) {
            size_t n = strlen(flags[i]);
            if (strncmp(line, flags[i], n) == 0) {
                name = line + n;
                while (*name == ' ' || *name == '=' || *name == '\t')
                    name++;
            }
        }
        if (name == NULL || *name == '\0')
            continue;
        char *end = (char *)name + strcspn(name, " \t\r#");
        *end = '\0';
        buf_t included = BUF_INIT;
        if (name[0] == '/') {
            buf_append_str(&included, name);
        } else {
            const char *slash = strrchr(path, '/');
            buf_append(&included, path, slash ? (size_t)(slash - path) : 0);
            buf_appendf(&included, "%s%s", slash ? "/" : "", name);
        }
        rc = digest_requirements(b, included.data, depth + 1, h);
        buf_free(&included);
    }
    buf_free(&text);
    return rc;
}

/* ------------------------------------------------------------ runtime-env ---- */

/* "MAJOR.MINOR[.anything]", as pyvenv.cfg's version and PYRT_PYTHON_VERSION give it:
 * 0 and the two numbers, or -1. */
static int major_minor(const char *text, long *major, long *minor)
{
    char *end;
    errno = 0;
    *major = strtol(text, &end, 10);
    if (errno != 0 || end == text || *end != '.')
        return -1;
    const char *rest = end + 1;
    *minor = strtol(rest, &end, 10);
    if (errno != 0 || end == rest || (*end != '\0' && *end != '.'))
        return -1;
    return 0;
}

/* A runtime-env made by another Python than the one pyrt embeds would not import its
 * compiled packages: refuse it at start, naming both. 0 when fine or absent. */
int build_check_runtime_env(const char *code_dir, char *err, size_t errlen)
{
    buf_t path = BUF_INIT;
    buf_appendf(&path, "%s/runtime-env/pyvenv.cfg", code_dir);
    FILE *f = fopen(path.data, "r");
    buf_free(&path);
    if (f == NULL)
        return 0;
    char line[PATH_MAX + 64], home[PATH_MAX] = "", version[PATH_MAX] = "";
    while (fgets(line, sizeof(line), f)) {
        char key[16], value[PATH_MAX];
        if (sscanf(line, " %15[a-z_] = %4095[^\r\n]", key, value) != 2)
            continue;
        if (strcmp(key, "home") == 0)
            snprintf(home, sizeof(home), "%s", value);
        else if (strcmp(key, "version") == 0)
            snprintf(version, sizeof(version), "%s", value);
    }
    fclose(f);

    long major = 0, minor = 0, want_major = 0, want_minor = 0;
    bool same_version = major_minor(version, &major, &minor) == 0 &&
                        major_minor(PYRT_PYTHON_VERSION, &want_major, &want_minor) == 0 &&
                        major == want_major && minor == want_minor;
    char want_home[PATH_MAX];
    snprintf(want_home, sizeof(want_home), "%s", PYRT_PYTHON);
    char *slash = strrchr(want_home, '/');
    if (slash)
        *slash = '\0';
    char home_real[PATH_MAX], want_real[PATH_MAX];
    bool same_home = realpath(home, home_real) && realpath(want_home, want_real) &&
                     strcmp(home_real, want_real) == 0;
    if (same_version && same_home)
        return 0;
    snprintf(err, errlen,
             "runtime-env was made by Python %s in %s, but pyrt embeds Python %s (%s): rebuild "
             "it with `pyrt build --force`",
             version[0] ? version : "(unknown version)", home[0] ? home : "(unknown folder)",
             PYRT_PYTHON_VERSION, PYRT_PYTHON);
    return -1;
}

static int remove_entry(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
    (void)sb;
    (void)ftw;
    return (type == FTW_DP ? rmdir(path) : unlink(path)) == 0 ? 0 : -1;
}

/* pip's output when a package had to be compiled and no C compiler was there: say so,
 * rather than leave the reader to find it in the middle of a traceback. */
static const char *compiler_hint(const buf_t *output)
{
    static const char *const signs[] = {"error: command 'gcc' failed",
                                        "error: command 'cc' failed",
                                        "gcc: not found",
                                        "unable to execute 'gcc'",
                                        "command 'x86_64-linux-gnu-gcc' failed",
                                        "No such file or directory: 'gcc'"};
    if (output->data == NULL)
        return "";
    for (size_t i = 0; i < sizeof(signs) / sizeof(signs[0]); i++)
        if (strstr(output->data, signs[i]))
            return "\npyrt build: a requirement had to be compiled from source and there is no C "
                   "compiler here: install one (pyrt's image: run this step with the image "
                   "built by `docker build --target toolchain`, see docs/container.md)";
    return "";
}

static int run(build_t *b, char *const argv[], const char *what, bool as_user)
{
    buf_t output = BUF_INIT;
    char perr[256];
    proc_user_t self = {PROC_SAME_USER, 0, false, NULL};
    int rc = proc_run_as(argv, b->dir, &output, as_user ? &b->user : &self, perr, sizeof(perr));
    if (rc != 0) {
        if (rc < 0)
            snprintf(b->err, b->errlen, "%s: %s", what, perr);
        else
            snprintf(b->err, b->errlen, "%s (exit status %d):\n%s%s", what, rc,
                     output.data ? output.data : "", compiler_hint(&output));
    }
    buf_free(&output);
    return rc == 0 ? 0 : -1;
}

/* When user code runs as another user who may not write the folder (a folder of root's,
 * say), runtime-env is made here and given to that user: it writes there and nowhere
 * else in the folder. */
static int give_env_to_user(build_t *b, const char *env)
{
    if (b->user.uid == PROC_SAME_USER || proc_user_can(&b->user, b->dir, W_OK | X_OK))
        return 0;
    if (mkdir(env, 0755) != 0 || chown(env, b->user.uid, b->user.gid) != 0) {
        snprintf(b->err, b->errlen, "cannot make %s for uid %d: %s", env, (int)b->user.uid,
                 strerror(errno));
        return -1;
    }
    return 0;
}

static int make_env(build_t *b, bool has_requirements)
{
    char env[PATH_MAX + 16], python[PATH_MAX + 48];
    snprintf(env, sizeof(env), "%s/runtime-env", b->dir);
    snprintf(python, sizeof(python), "%s/bin/python", env);
    struct stat st;
    if (lstat(env, &st) == 0 && nftw(env, remove_entry, 32, FTW_DEPTH | FTW_PHYS) != 0) {
        snprintf(b->err, b->errlen, "cannot remove the old %s: %s", env, strerror(errno));
        return -1;
    }
    if (give_env_to_user(b, env) < 0)
        return -1;
    const char *install = b->opts->install_command;
    bool with_pip = has_requirements || install;
    step(b, "creating runtime-env with %s", PYRT_PYTHON);
    char *venv[] = {
        PYRT_PYTHON,           "-m", "venv", "--copies", with_pip ? env : "--without-pip",
        with_pip ? NULL : env, NULL};
    if (run(b, venv, "creating runtime-env failed", true) < 0)
        return -1;
    if (!with_pip)
        return 0;

    if (install) {
        /* The platform's own command, run as its docs say: in the folder, with the venv
         * active (VIRTUAL_ENV, its bin first on PATH). */
        step(b, "running the install command: %s", install);
        const char *path = getenv("PATH");
        buf_t virtual_env = BUF_INIT, search = BUF_INIT;
        buf_appendf(&virtual_env, "VIRTUAL_ENV=%s", env);
        buf_appendf(&search, "PATH=%s/bin:%s", env, path ? path : "/usr/bin:/bin");
        char *vars[] = {virtual_env.data, search.data, NULL, NULL};
        if (b->user.env)
            vars[2] = b->user.env[0]; /* HOME, for another user */
        char *const *saved = b->user.env;
        b->user.env = vars;
        /* Its output is the build log the platform shows: it goes out as it comes. */
        char *sh[] = {"/bin/sh", "-c", (char *)install, NULL};
        char perr[256];
        int rc = proc_run_as(sh, b->dir, NULL, &b->user, perr, sizeof(perr));
        b->user.env = saved;
        if (rc < 0)
            snprintf(b->err, b->errlen, "the install command could not start: %s", perr);
        else if (rc != 0)
            snprintf(b->err, b->errlen, "the install command failed (exit status %d): %s", rc,
                     install);
        buf_free(&virtual_env);
        buf_free(&search);
        if (rc != 0)
            return -1;
    } else {
        step(b, "installing requirements.txt");
        char *pip[] = {python,
                       "-m",
                       "pip",
                       "install",
                       "--no-compile",
                       "--disable-pip-version-check",
                       "--no-warn-script-location",
                       "-r",
                       "requirements.txt",
                       NULL};
        if (run(b, pip, "pip could not install requirements.txt", true) < 0)
            return -1;
    }
    step(b, "compiling runtime-env");
    char lib[PATH_MAX + 32];
    snprintf(lib, sizeof(lib), "%s/lib", env);
    char *compile[] = {
        python,           "-m", "compileall", "-q", "-f", "-j", "0", "--invalidation-mode",
        "unchecked-hash", lib,  NULL};
    return run(b, compile, "compiling runtime-env failed", true);
}

static int write_state(build_t *b, const char *state)
{
    char path[PATH_MAX + 32];
    snprintf(path, sizeof(path), "%s/%s", b->dir, STATE_FILE);
    FILE *f = fopen(path, "w");
    if (f == NULL || fputs(state, f) < 0 || fclose(f) != 0) {
        snprintf(b->err, b->errlen, "cannot write %s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

/* -------------------------------------------------------- validation ---- */

static int validate(build_t *b)
{
    char types[] = "/tmp/pyrt-build-XXXXXX";
    if (mkdtemp(types) == NULL) {
        snprintf(b->err, b->errlen, "mkdtemp: %s", strerror(errno));
        return -1;
    }
    char pkg[sizeof(types) + 32], init[sizeof(types) + 64];
    snprintf(pkg, sizeof(pkg), "%s/function_types", types);
    snprintf(init, sizeof(init), "%s/__init__.py", pkg);
    FILE *f = NULL;
    int rc = -1;
    if (mkdir(pkg, 0755) == 0 && (f = fopen(init, "w")) != NULL &&
        fputs(pyrt_src_function_types, f) >= 0 && fclose(f) == 0) {
        f = NULL;
        (void)chmod(types, 0755);
        step(b, "checking %s", b->entry);
        char python[PATH_MAX + 32];
        snprintf(python, sizeof(python), "%s/runtime-env/bin/python", b->dir);
        char *argv[] = {python,           "-I",  "-B", "-c", (char *)pyrt_src_validate, b->dir,
                        (char *)b->entry, types, NULL};
        buf_t output = BUF_INIT;
        char perr[256];
        int status = proc_run_as(argv, b->dir, &output, &b->user, perr, sizeof(perr));
        bool ok_marker = output.data && strstr(output.data, "pyrt-validate: ok\n") != NULL;
        if (status == 0 && ok_marker) {
            rc = 0;
        } else if (status < 0) {
            snprintf(b->err, b->errlen, "cannot check the entry point: %s", perr);
        } else if (status == 0) {
            snprintf(b->err, b->errlen,
                     "%s/%s: importing it ended the process (exit status 0) before main "
                     "could be checked",
                     b->dir, b->entry);
        } else if (status > 128) {
            snprintf(b->err, b->errlen, "%s/%s: importing it killed python with signal %d (%s)",
                     b->dir, b->entry, status - 128, strsignal(status - 128));
        } else if (output.len == 0) {
            snprintf(b->err, b->errlen, "%s/%s: importing it exited with status %d", b->dir,
                     b->entry, status);
        } else {
            const char *text = output.data ? output.data : "";
            size_t n = output.data ? output.len : 0;
            while (n > 0 && text[n - 1] == '\n')
                n--;
            snprintf(b->err, b->errlen, "%.*s", (int)n, text);
        }
        buf_free(&output);
    } else {
        snprintf(b->err, b->errlen, "cannot write %s: %s", init, strerror(errno));
    }
    if (f)
        fclose(f);
    (void)unlink(init);
    (void)rmdir(pkg);
    (void)rmdir(types);
    return rc;
}

static int compile_code(build_t *b)
{
    step(b, "compiling the code");
    char python[PATH_MAX + 32];
    snprintf(python, sizeof(python), "%s/runtime-env/bin/python", b->dir);
    char *argv[] = {python,
                    "-I",
                    "-c",
                    "import compileall, py_compile, re, sys\n"
                    "d = sys.argv[1]\n"
                    "ok = compileall.compile_dir(d, quiet=1, force=True, workers=0,\n"
                    "    rx=re.compile(re.escape(d + '/runtime-env') + '(/|$)'),\n"
                    "    invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)\n"
                    "sys.exit(0 if ok else 1)\n",
                    b->dir,
                    NULL};
    return run(b, argv, "byte-compiling the code failed", false);
}

/* The user cannot enter the folder (0700 root, say): it gets the one capability that
 * lets it read there (proc.h), and the build says which. */
static int grant_read_all(build_t *b)
{
    int cap = proc_read_all_capability();
    b->user.read_all = cap >= 0;
    if (cap < 0 || !proc_user_can(&b->user, b->dir, R_OK | X_OK)) {
        snprintf(b->err, b->errlen,
                 "uid %d cannot read %s, and pyrt has no capability to let it "
                 "(CAP_DAC_READ_SEARCH or CAP_DAC_OVERRIDE): make the folder readable to "
                 "that user, or build as its owner",
                 (int)b->user.uid, b->dir);
        return -1;
    }
    fprintf(stderr,
            "pyrt build: uid %d cannot enter %s on its own: user code runs as uid %d with %s "
            "(%s)\n",
            (int)b->user.uid, b->dir, (int)b->user.uid,
            cap == CAP_DAC_READ_SEARCH ? "CAP_DAC_READ_SEARCH" : "CAP_DAC_OVERRIDE",
            cap == CAP_DAC_READ_SEARCH
                ? "it reads and searches any file, and writes only where its uid may"
                : "the container has no CAP_DAC_READ_SEARCH: it reads and writes past file "
                  "modes, and is not root");
    return 0;
}

/* ------------------------------------------------------------------ run ---- */

int build_run(const build_options_t *opts, char *err, size_t errlen)
{
    build_t b = {
        .opts = opts, .err = err, .errlen = errlen, .user = {PROC_SAME_USER, 0, false, NULL}};
    clock_gettime(CLOCK_MONOTONIC, &b.started);
    b.progress = isatty(STDERR_FILENO);
    struct stat st;
    if (realpath(opts->dir, b.dir) == NULL || stat(b.dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "%s is not a folder", opts->dir);
        return -1;
    }
    if (opts->entrypoint && *opts->entrypoint)
        b.entry = opts->entrypoint;
    else if (is_file(b.dir, "main.py"))
        b.entry = "main.py";
    else if (is_file(b.dir, "index.py"))
        b.entry = "index.py";
    else {
        snprintf(err, errlen,
                 "no entry point in %s: neither main.py nor index.py exists (name one with "
                 "--entrypoint or ENTRYPOINT_NAME)",
                 b.dir);
        return -1;
    }
    if (opts->user) {
        struct passwd *pw = getpwnam(opts->user);
        char *end;
        long id = strtol(opts->user, &end, 10);
        if (pw == NULL && (*end != '\0' || id < 0)) {
            snprintf(err, errlen, "--user %s: no such user", opts->user);
            return -1;
        }
        b.user.uid = pw ? pw->pw_uid : (uid_t)id;
        b.user.gid = pw ? pw->pw_gid : (gid_t)id;
        /* Another user's HOME may not exist (pyrt's has none; a host uid has no passwd
         * entry here): pip and the like get a writable one. HOME is the only entry. */
        static char *other_home[] = {"HOME=/tmp", NULL};
        b.user.env = other_home;
        if (geteuid() != 0 || b.user.uid == 0)
            b.user.uid = PROC_SAME_USER; /* only root can switch; root is ourselves */
        else if (!proc_user_can(&b.user, b.dir, R_OK | X_OK) && grant_read_all(&b) < 0)
            return -1;
    }
    if (check_symlinks(&b) < 0)
        return -1;

    bool has_requirements = is_file(b.dir, "requirements.txt");
    unsigned long long h = build_digest(0xcbf29ce484222325ULL, "pyrt-build-1", 12);
    h = build_digest(h, PYRT_PYTHON, strlen(PYRT_PYTHON) + 1);
    h = build_digest(h, PYRT_PYTHON_VERSION, strlen(PYRT_PYTHON_VERSION) + 1);
    if (opts->install_command)
        h = build_digest(h, opts->install_command, strlen(opts->install_command) + 1);
    if (has_requirements) {
        char req[PATH_MAX + 32];
        snprintf(req, sizeof(req), "%s/requirements.txt", b.dir);
        if (digest_requirements(&b, req, 0, &h) < 0)
            return -1;
    }
    char state[128];
    snprintf(state, sizeof(state), "digest %016llx\npython %s %s\n", h, PYRT_PYTHON,
             PYRT_PYTHON_VERSION);
    buf_t old = BUF_INIT;
    char state_path[PATH_MAX + 32], python[PATH_MAX + 32];
    snprintf(state_path, sizeof(state_path), "%s/%s", b.dir, STATE_FILE);
    snprintf(python, sizeof(python), "%s/runtime-env/bin/python", b.dir);
    char venv_err[256];
    /* Up to date only if the user who runs the code can run its python: one made by
     * root under umask 077, say, is rebuilt for --user, not reused. */
    bool current = !opts->force && buf_read_file(&old, state_path, SIZE_MAX) == 0 && old.data &&
                   strcmp(old.data, state) == 0 && proc_user_can(&b.user, python, X_OK) &&
                   build_check_runtime_env(b.dir, venv_err, sizeof(venv_err)) == 0;
    buf_free(&old);
    if (current) {
        step(&b, "runtime-env is up to date");
    } else {
        if (make_env(&b, has_requirements) < 0 || write_state(&b, state) < 0)
            return -1;
    }
    if (validate(&b) < 0 || compile_code(&b) < 0)
        return -1;
    step(&b, "done");
    return 0;
}
