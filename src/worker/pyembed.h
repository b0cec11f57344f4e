/* pyembed.h -- CPython inside pyrt: initialised once, in the zygote.
 *
 * Isolated configuration (no PYTHON* variables, no signal handlers of Python's, no
 * bytecode written: serving never writes into the code folder), unbuffered stdio (so
 * output reaches the log as it is written), and, when the code folder has a
 * runtime-env, that venv as sys.prefix (as `runtime-env/bin/python` would have it). */
#ifndef PYRT_PYEMBED_H
#define PYRT_PYEMBED_H

#include <stddef.h>

/* Python.h is only included where Python is used; callers get an opaque pointer. */
typedef struct _object pyobject_t;

int pyembed_init(const char *code_dir, char *err, size_t errlen);

/* pyrt's runtime module (python/runtime/pyrt_runtime.py), after pyembed_init. */
pyobject_t *pyembed_runtime(void);

/* Calls runtime.<name>() with nargs (0-3) string arguments (NULL becomes None); logs
 * the Python exception and returns -1 when it raises. */
int pyembed_call(const char *name, int nargs, const char *const args[]);

#endif
