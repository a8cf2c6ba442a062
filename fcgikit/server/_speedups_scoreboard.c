/* fcgikit.server._speedups_scoreboard: begin_cell and end_cell, the C lane of a prefork
 * worker's request cells (fcgikit/server/scoreboard.py: WorkerSlot.begin_request and end).
 *
 * A prefork worker writes each request's label (``#id METHOD URI``), its count and its start
 * into its scoreboard cell for the status page, the master's --timeout message and the slow
 * log, and the negated end over the start when it ends. Built in Python, the label is a str
 * made from three environ look-ups and then encoded to be copied into the cell, and each word
 * is a memoryview item write and each time a call of time.monotonic: most of what the worker
 * adds to a request (benchmarks/RESULTS.md, "Worker-mode CPU"). Here the bytes go straight
 * from the environ's strs into the cell, and the words and the clock are read and written
 * in place.
 *
 * The cell, as scoreboard.py lays it out: the start (a double; the end negated while the cell
 * is free), the word (the cell's requests << 16 | the label's length), then the label.
 *
 * Only the ordinary case: an exact dict holding an exact int request id (0 to 65535, as
 * FastCGI's are) and exact, ASCII REQUEST_METHOD and non-empty REQUEST_URI strs, and a
 * CLOCK_MONOTONIC (time.monotonic's clock on Linux). Anything else answers None, and the
 * Python twins (scoreboard.begin_cell_py and end_cell_py, the spec) write the cell.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

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

/* The cell's head: the start, then the word (scoreboard.py's _CELL_HEAD) and the label. */
#define START_AT 0
#define WORD_AT 8
#define LABEL_AT 16
#define LENGTH_BITS 16

/* time.monotonic's reading, in seconds; 0 when the clock cannot be read. */
static double
monotonic_now(void)
{
#ifdef CLOCK_MONOTONIC
    struct timespec now;
    if (clock_gettime(CLOCK_MONOTONIC, &now) == 0) {
        /* as Python turns its nanoseconds into a float (pytime.c) */
        int64_t ns = (int64_t)now.tv_sec * 1000000000 + now.tv_nsec;
        if (ns % 1000000000 == 0) {
            return (double)(ns / 1000000000);
        }
        return (double)ns / 1e9;
    }
#endif
    return 0.0;
}

/* Store the cell's start after every other write of the cell is done (a reader takes a cell
 * whose start is positive as written; see scoreboard.py on torn reads). */
static void
store_start(char *cell, double start)
{
    __atomic_thread_fence(__ATOMIC_RELEASE);
    memcpy(cell + START_AT, &start, sizeof start);
}

/* The writable cell of ``cell_size`` bytes at ``args[1]`` in the buffer ``args[0]``, or NULL
 * with an exception. */
static char *
cell_at(PyObject *const *args, Py_ssize_t cell_size, Py_buffer *view)
{
    Py_ssize_t offset = PyLong_AsSsize_t(args[1]);
    if (offset == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (PyObject_GetBuffer(args[0], view, PyBUF_WRITABLE) < 0) {
        return NULL;
    }
    if (offset < 0 || offset > view->len || cell_size > view->len - offset) {
        PyBuffer_Release(view);
        PyErr_SetString(PyExc_ValueError, "the cell is outside the buffer");
        return NULL;
    }
    return (char *)view->buf + offset;
}

static PyObject *
speedups_begin_cell(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError,
                        "begin_cell takes a buffer, an offset, a size, an environ");
        return NULL;
    }
    Py_ssize_t size = PyLong_AsSsize_t(args[2]);
    if (size == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (size < 0 || size >= 1 << LENGTH_BITS) {
        PyErr_SetString(PyExc_ValueError, "begin_cell: the label's size does not fit the word");
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
    double started = monotonic_now();
    if (started <= 0.0) {
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
    char *cell = cell_at(args, LABEL_AT + size, &view);
    if (cell == NULL) {
        return NULL;
    }
    char *out = cell + LABEL_AT;
    Py_ssize_t at = 0;
    append(out, &at, size, start, digits_length);
    append(out, &at, size, (const char *)PyUnicode_DATA(method), PyUnicode_GET_LENGTH(method));
    append(out, &at, size, " ", 1);
    append(out, &at, size, (const char *)PyUnicode_DATA(uri), PyUnicode_GET_LENGTH(uri));
    uint64_t word;
    memcpy(&word, cell + WORD_AT, sizeof word);
    word = ((word >> LENGTH_BITS) + 1) << LENGTH_BITS | (uint64_t)at;
    memcpy(cell + WORD_AT, &word, sizeof word);
    store_start(cell, started);
    PyBuffer_Release(&view);
    return PyLong_FromUnsignedLong(PyThread_get_thread_ident());
}

static PyObject *
speedups_end_cell(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "end_cell takes a buffer and an offset");
        return NULL;
    }
    double ended = monotonic_now();
    if (ended <= 0.0) {
        Py_RETURN_NONE;
    }
    Py_buffer view;
    char *cell = cell_at(args, LABEL_AT, &view);
    if (cell == NULL) {
        return NULL;
    }
    double started;
    memcpy(&started, cell + START_AT, sizeof started);
    int running = started > 0.0;
    if (running) {
        store_start(cell, -ended);
    }
    PyBuffer_Release(&view);
    return PyBool_FromLong(running);
}

static PyMethodDef speedups_methods[] = {
    {"begin_cell", (PyCFunction)(void (*)(void))speedups_begin_cell, METH_FASTCALL,
     "begin_cell(buffer, offset, size, environ): a request began in the free cell at\n"
     "``offset``, whose label has ``size`` bytes: its label, its count and its start (now,\n"
     "time.monotonic's clock), the start last; the ident of the calling thread, or None\n"
     "outside the ordinary case (scoreboard.begin_cell_py writes the cell then)."},
    {"end_cell", (PyCFunction)(void (*)(void))speedups_end_cell, METH_FASTCALL,
     "end_cell(buffer, offset): the request in the cell at ``offset`` ended: its end (now)\n"
     "negated over its start; False when the cell was not running (nothing written), None\n"
     "when the clock cannot be read (scoreboard.end_cell_py ends it then)."},
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
"The writer of a worker's request cells for fcgikit.server.scoreboard. Optional:\n"
"scoreboard.begin_cell_py and end_cell_py are the spec and the fallback.");

static struct PyModuleDef speedups_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "fcgikit.server._speedups_scoreboard",
    .m_doc = speedups_doc,
    .m_size = 0,
    .m_methods = speedups_methods,
    .m_slots = speedups_slots,
};

PyMODINIT_FUNC
PyInit__speedups_scoreboard(void)
{
    return PyModuleDef_Init(&speedups_module);
}
