/* greetermodule.c - the `greeter` C extension module.
 *
 *     >>> import greeter
 *     >>> greeter.greet("world")
 *     'Hello, world! (from libgreet 1.0)'
 *
 * All the work is done by libgreet.so.1, an external shared library.
 * That dependency is the point of the example: the built wheel only works
 * where libgreet.so.1 can be found (here: LD_LIBRARY_PATH), which is
 * exactly what `auditwheel show` / `wheelvet show` report.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "greet.h"

/* greeter.greet(name: str) -> str */
static PyObject *greeter_greet(PyObject *self, PyObject *arg)
{
    (void)self;
    if (!PyUnicode_Check(arg)) {
        PyErr_Format(PyExc_TypeError, "greet() argument must be str, not %s",
                     Py_TYPE(arg)->tp_name);
        return NULL;
    }
    const char *name = PyUnicode_AsUTF8(arg);
    if (name == NULL) /* e.g. lone surrogates cannot be encoded */
        return NULL;

    char *message = greet_message(name); /* <- call into libgreet */
    if (message == NULL)
        return PyErr_NoMemory();

    PyObject *result = PyUnicode_FromString(message);
    greet_free(message);
    return result;
}

static PyMethodDef greeter_methods[] = {
    {"greet", greeter_greet, METH_O,
     "greet(name) -> str\n\nReturn a greeting built by libgreet."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef greeter_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "greeter",
    .m_doc = "Example extension that depends on the external libgreet.so.1.",
    .m_size = -1,
    .m_methods = greeter_methods,
};

PyMODINIT_FUNC PyInit_greeter(void)
{
    return PyModule_Create(&greeter_module);
}
