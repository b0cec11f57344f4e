/* pyembed.c -- CPython inside pyrt (see pyembed.h). */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "worker/pyembed.h"

#include <limits.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "worker/worker.h"

extern const char pyrt_src_runtime[];
extern const char pyrt_src_function_types[];

static PyObject *runtime;

static int check(PyStatus status, const char *what, char *err, size_t errlen)
{
    if (!PyStatus_Exception(status))
        return 0;
    snprintf(err, errlen, "%s: %s", what, status.err_msg ? status.err_msg : "failed");
    return -1;
}

static PyObject *load_embedded(const char *name, const char *source, char *err, size_t errlen)
{
    char filename[128];
    snprintf(filename, sizeof(filename), "<pyrt>/%s.py", name);
    PyObject *code = Py_CompileStringExFlags(source, filename, Py_file_input, NULL, -1);
    PyObject *module = code ? PyImport_ExecCodeModuleEx(name, code, filename) : NULL;
    Py_XDECREF(code);
    if (module == NULL) {
        snprintf(err, errlen, "cannot load pyrt's embedded module %s", name);
        PyErr_Print();
    }
    return module;
}

int pyembed_init(const char *code_dir, char *err, size_t errlen)
{
    if (PyImport_AppendInittab("_pyrt_worker", worker_module_init) != 0) {
        snprintf(err, errlen, "cannot register the _pyrt_worker module");
        return -1;
    }
    PyPreConfig pre;
    PyPreConfig_InitIsolatedConfig(&pre);
    pre.utf8_mode = 1;
    if (check(Py_PreInitialize(&pre), "Py_PreInitialize", err, errlen) < 0)
        return -1;

    PyConfig config;
    PyConfig_InitIsolatedConfig(&config);
    config.install_signal_handlers = 0;
    config.write_bytecode = 0;
    config.buffered_stdio = 0;
    config.site_import = 1;
    config.parse_argv = 0;

    /* As NGINX Unit does: with a venv, its python is the program, so getpath reads
     * pyvenv.cfg and site adds the venv's site-packages. */
    char program[PATH_MAX];
    struct stat st;
    if (snprintf(program, sizeof(program), "%s/runtime-env/bin/python", code_dir) <
            (int)sizeof(program) &&
        stat(program, &st) == 0)
        ;
    else
        snprintf(program, sizeof(program), "%s", PYRT_PYTHON);
    int rc = check(PyConfig_SetBytesString(&config, &config.program_name, program),
                   "PyConfig program_name", err, errlen);
    if (rc == 0) {
        char *argv[] = {"pyrt", NULL};
        rc = check(PyConfig_SetBytesArgv(&config, 1, argv), "PyConfig argv", err, errlen);
    }
    if (rc == 0)
        rc = check(Py_InitializeFromConfig(&config), "Py_InitializeFromConfig", err, errlen);
    PyConfig_Clear(&config);
    if (rc < 0)
        return -1;

    PyObject *types = load_embedded("function_types", pyrt_src_function_types, err, errlen);
    if (types == NULL)
        return -1;
    Py_DECREF(types);
    runtime = load_embedded("pyrt_runtime", pyrt_src_runtime, err, errlen);
    return runtime ? 0 : -1;
}

pyobject_t *pyembed_runtime(void)
{
    return runtime;
}

static PyObject *str_or_none(const char *s)
{
    if (s)
        return PyUnicode_FromString(s);
    Py_INCREF(Py_None);
    return Py_None;
}

int pyembed_call(const char *name, int nargs, const char *const args[])
{
    PyObject *fn = PyObject_GetAttrString(runtime, name);
    PyObject *result = NULL;
    PyObject *tuple = fn && nargs >= 0 && nargs <= 3 ? PyTuple_New(nargs) : NULL;
    for (int i = 0; tuple && i < nargs; i++) {
        PyObject *a = str_or_none(args[i]);
        if (a == NULL) {
            Py_CLEAR(tuple);
            break;
        }
        PyTuple_SET_ITEM(tuple, i, a); /* steals the reference */
    }
    if (tuple)
        result = PyObject_CallObject(fn, tuple);
    Py_XDECREF(tuple);
    Py_XDECREF(fn);
    if (result == NULL) {
        log_msg(LOG_ERROR, "pyrt_runtime.%s failed:", name);
        PyErr_Print();
        return -1;
    }
    Py_DECREF(result);
    return 0;
}
