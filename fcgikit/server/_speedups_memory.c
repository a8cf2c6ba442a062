/* fcgikit.server._speedups_memory: mallopt, glibc's mallopt(3) for fcgikit/server/memory.py,
 * whose Python twin (memory._mallopt_py) reaches the same function through ctypes.
 *
 * Every start of a server sets glibc's malloc thresholds (memory.tune_malloc), and importing
 * ctypes to make that one call cost more than any other module fcgikit imports for itself
 * alone (benchmarks/RESULTS.md, "Start-up"). Here it is a plain call. On a C library other
 * than glibc it answers None, and the Python decides (it leaves malloc alone there).
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <limits.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

static PyObject *
speedups_mallopt(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "mallopt takes a parameter and a value");
        return NULL;
    }
    long param = PyLong_AsLong(args[0]);
    if (param == -1 && PyErr_Occurred()) {
        return NULL;
    }
    long value = PyLong_AsLong(args[1]);
    if (value == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (param < INT_MIN || param > INT_MAX || value < INT_MIN || value > INT_MAX) {
        PyErr_SetString(PyExc_OverflowError, "mallopt's parameter and value are C ints");
        return NULL;
    }
#ifdef __GLIBC__
    return PyLong_FromLong(mallopt((int)param, (int)value));
#else
    Py_RETURN_NONE;
#endif
}

static PyMethodDef speedups_methods[] = {
    {"mallopt", (PyCFunction)(void (*)(void))speedups_mallopt, METH_FASTCALL,
     "mallopt(param, value): glibc's mallopt(3), 1 when it took the value, 0 when not;\n"
     "None on another C library."},
    {NULL, NULL, 0, NULL},
};

static PyModuleDef_Slot speedups_slots[] = {
#ifdef Py_mod_gil
    /* Free-threaded CPython (3.13t+): mallopt takes malloc's own lock. */
    {Py_mod_gil, Py_MOD_GIL_NOT_USED},
#endif
    {0, NULL},
};

PyDoc_STRVAR(speedups_doc,
"glibc's mallopt for fcgikit.server.memory. Optional: memory._mallopt_py is the spec and\n"
"the fallback.");

static struct PyModuleDef speedups_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "fcgikit.server._speedups_memory",
    .m_doc = speedups_doc,
    .m_size = 0,
    .m_methods = speedups_methods,
    .m_slots = speedups_slots,
};

PyMODINIT_FUNC
PyInit__speedups_memory(void)
{
    return PyModuleDef_Init(&speedups_module);
}
