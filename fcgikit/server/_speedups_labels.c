/* fcgikit.server._speedups_labels: write_label, the C lane of fcgikit/server/labels.py.
 *
 * A prefork worker writes each request's label (``#id METHOD URI``) into its scoreboard cell
 * for the status page, the master's --timeout message and the slow log. Built in Python, the
 * label is a str made from three environ look-ups and then encoded to be copied into the
 * cell: about half of what the worker adds to a request (benchmarks/RESULTS.md, "Worker-mode
 * CPU"). Here the bytes go straight from the environ's strs into the cell.
 *
 * Only the ordinary case: an exact dict holding an exact int request id (0 to 65535, as
 * FastCGI's are) and exact, ASCII REQUEST_METHOD and non-empty REQUEST_URI strs. Anything
 * else answers None, and the Python twin (labels.write_label_py, the spec) writes the label.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

static PyObject *key_id;
static PyObject *key_method;
static PyObject *key_uri;

/* Copy what fits of ``length`` bytes at ``data`` to ``out`` at ``*at``, ``room`` bytes in all. */
static void
append(char *out, Py_ssize_t *at, Py_ssize_t room, const char *data, Py_ssize_t length)
{
    Py_ssize_t left = room - *at;
    if (length > left) {
        length = left;
    }
    if (length > 0) {
        memcpy(out + *at, data, (size_t)length);
        *at += length;
    }
}

/* The environ's str at ``key`` if it is an exact, ASCII str, else NULL (no exception). */
static PyObject *
ascii_at(PyObject *environ, PyObject *key)
{
    PyObject *value = PyDict_GetItemWithError(environ, key); /* borrowed */
    if (value == NULL || !PyUnicode_CheckExact(value) || !PyUnicode_IS_ASCII(value)) {
        return NULL;
    }
    return value;
}

static PyObject *
speedups_write_label(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "write_label takes a buffer, an offset, a size, an environ");
        return NULL;
    }
    Py_ssize_t offset = PyLong_AsSsize_t(args[1]);
    if (offset == -1 && PyErr_Occurred()) {
        return NULL;
    }
    Py_ssize_t size = PyLong_AsSsize_t(args[2]);
    if (size == -1 && PyErr_Occurred()) {
        return NULL;
    }
    PyObject *environ = args[3];
    if (!PyDict_CheckExact(environ)) {
        Py_RETURN_NONE;
    }
    PyObject *id = PyDict_GetItemWithError(environ, key_id);
    if (id == NULL || !PyLong_CheckExact(id)) {
        if (PyErr_Occurred()) {
            return NULL;
        }
        Py_RETURN_NONE;
    }
    PyObject *method = ascii_at(environ, key_method);
    PyObject *uri = method == NULL ? NULL : ascii_at(environ, key_uri);
    if (uri == NULL || PyUnicode_GET_LENGTH(uri) == 0) {
        if (PyErr_Occurred()) {
            return NULL;
        }
        Py_RETURN_NONE;
    }
    /* FastCGI request ids are 16-bit: a negative or larger one is not the ordinary case */
    long number = PyLong_AsLong(id);
    if (number < 0 || number > 0xFFFF) {
        PyErr_Clear();
        Py_RETURN_NONE;
    }
    char digits[8]; /* "#65535 " (snprintf costs more than the rest of the label) */
    char *end = digits + sizeof digits;
    char *start = end;
    *--start = ' ';
    do {
        *--start = (char)('0' + number % 10);
        number /= 10;
    } while (number != 0);
    *--start = '#';
    Py_ssize_t digits_length = end - start;

    Py_buffer view;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_WRITABLE) < 0) {
        return NULL;
    }
    if (offset < 0 || size < 0 || offset > view.len || size > view.len - offset) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "write_label: the label's area is outside the buffer");
        return NULL;
    }
    char *out = (char *)view.buf + offset;
    Py_ssize_t at = 0;
    append(out, &at, size, start, digits_length);
    append(out, &at, size, (const char *)PyUnicode_DATA(method), PyUnicode_GET_LENGTH(method));
    append(out, &at, size, " ", 1);
    append(out, &at, size, (const char *)PyUnicode_DATA(uri), PyUnicode_GET_LENGTH(uri));
    PyBuffer_Release(&view);
    return PyLong_FromSsize_t(at);
}

static PyMethodDef speedups_methods[] = {
    {"write_label", (PyCFunction)(void (*)(void))speedups_write_label, METH_FASTCALL,
     "write_label(buffer, offset, size, environ): write the request's label, what fits of it\n"
     "in ``size`` bytes, into ``buffer`` at ``offset``; its length in bytes, or None outside\n"
     "the ordinary case (labels.write_label_py writes it then)."},
    {NULL, NULL, 0, NULL},
};

static int
speedups_exec(PyObject *module)
{
    (void)module;
    key_id = PyUnicode_InternFromString("fcgikit.request_id");
    key_method = PyUnicode_InternFromString("REQUEST_METHOD");
    key_uri = PyUnicode_InternFromString("REQUEST_URI");
    return key_id != NULL && key_method != NULL && key_uri != NULL ? 0 : -1;
}

static PyModuleDef_Slot speedups_slots[] = {
    {Py_mod_exec, speedups_exec},
#ifdef Py_mod_gil
    /* Free-threaded CPython (3.13t+): the environ's items are borrowed, and the worker's
     * request path counts on the GIL (tracker.py). */
    {Py_mod_gil, Py_MOD_GIL_USED},
#endif
    {0, NULL},
};

PyDoc_STRVAR(speedups_doc,
"The request label's writer for fcgikit.server.labels. Optional: labels.write_label_py is\n"
"the spec and the fallback.");

static struct PyModuleDef speedups_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "fcgikit.server._speedups_labels",
    .m_doc = speedups_doc,
    .m_size = 0,
    .m_methods = speedups_methods,
    .m_slots = speedups_slots,
};

PyMODINIT_FUNC
PyInit__speedups_labels(void)
{
    return PyModuleDef_Init(&speedups_module);
}
