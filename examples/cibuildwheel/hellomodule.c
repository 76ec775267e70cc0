/* The extension module: answer() returns what libhello says. */
#include <Python.h>

int hello_answer(void);

static PyObject *answer(PyObject *self, PyObject *args) { return PyLong_FromLong(hello_answer()); }

static PyMethodDef methods[] = {{"answer", answer, METH_NOARGS, "libhello's answer"}, {NULL, NULL, 0, NULL}};
static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "hello", NULL, -1, methods};

PyMODINIT_FUNC PyInit_hello(void) { return PyModule_Create(&module); }
