/* build.h -- `pyrt build`: a function folder made ready to serve and to pack.
 *
 *  1. Symlinks of the user's that leave the folder are refused (launch would be).
 *  2. runtime-env: a venv of the very Python pyrt embeds, with copies, not symlinks,
 *     of the interpreter; requirements.txt installed with its pip. A digest of the
 *     requirements (and the files they name with -r/-c) and of the interpreter is
 *     kept in runtime-env/.pyrt-build: when it matches, nothing is installed and pip
 *     does not even start. When it does not, the venv is made anew, so that it holds
 *     exactly what the requirements say.
 *  3. The entry point is checked in a child process run by that venv's python.
 *  4. Code is byte-compiled with hash-based .pyc files (unchecked-hash), so packing's
 *     fixed timestamps and a read-only folder never make the server recompile. */
#ifndef PYRT_BUILD_H
#define PYRT_BUILD_H

#include <stdbool.h>
#include <stddef.h>

typedef struct build_options {
    const char *dir;
    const char *entrypoint;      /* NULL: main.py, else index.py */
    bool force;                  /* make runtime-env anew */
    const char *user;            /* started as root: run user code (pip, the install command,
                                    the entry point's import) as this user, never as root */
    const char *install_command; /* run instead of pip install -r requirements.txt */
} build_options_t;

int build_run(const build_options_t *opts, char *err, size_t errlen);

/* Is code_dir's runtime-env (if any) made by the Python pyrt embeds? 0 when it is or
 * there is none; -1 with err naming both interpreters. `serve` refuses such a folder;
 * `build` makes the env anew. */
int build_check_runtime_env(const char *code_dir, char *err, size_t errlen);

/* FNV-1a, 64 bits: the requirements digest (change detection, not security). */
unsigned long long build_digest(unsigned long long h, const void *data, size_t len);

#endif
