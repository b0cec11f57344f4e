/* _fast.c -- the smallest useful CPython extension: proves compiled packages load. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

static PyObject *fast_add(PyObject *self, PyObject *args)
{
    (void)self;
    long long a, b;
    if (!PyArg_ParseTuple(args, "LL", &a, &b))
        return NULL;
    return PyLong_FromLongLong(a + b);
}

static PyObject *fast_compiled_with(PyObject *self, PyObject *args)
{
    (void)self;
    (void)args;
    return PyUnicode_FromString(PY_VERSION);
}

static PyMethodDef fast_methods[] = {
    {"add", fast_add, METH_VARARGS, "add(a, b) -> a + b, computed in C"},
    {"compiled_with", fast_compiled_with, METH_NOARGS, "the Python headers' version"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef fast_module = {
    PyModuleDef_HEAD_INIT, "fastsum._fast", NULL, -1, fast_methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__fast(void)
{
    return PyModule_Create(&fast_module);
}
