/* fcgikit.server._speedups_cells: RequestCells, the C lane of a prefork worker's request cells
 * (fcgikit/server/cells.py; RequestCellsPy is its twin and spec).
 *
 * A prefork worker writes each request's label (``#id METHOD URI``), its count, its thread and
 * its start into its scoreboard cell for the status page, the master's --timeout message and
 * the slow log, and the negated end over the start when it ends. Built in Python, the label is
 * a str made from three environ look-ups and then encoded to be copied into the cell, and each
 * word is a call. Here the bytes go straight from the environ's strs into the cell, and the
 * words and the clock are read and written in place, one call each way.
 *
 * A RequestCells takes the board's buffer once, when it is made, and holds it (an mmap cannot
 * close while it lives): a request's call only finds its cell. The environ's three keys are
 * found where they were in the last environ (a server builds every environ in the same order)
 * and by identity with the key object found there: a dict look-up of an equal but distinct
 * str compares the two strs, which costs more than the rest of the label.
 *
 * Only the ordinary case: an exact dict holding an exact int request id (0 to 65535, as
 * FastCGI's are) and exact, ASCII REQUEST_METHOD and non-empty REQUEST_URI strs, and a
 * CLOCK_MONOTONIC (time.monotonic's clock on Linux). Anything else answers None, and the
 * twin writes the cell.
 *
 * The cell, as cells.py lays it out: the start (a double; the end negated while the cell is
 * free), the word (the cell's requests << 16 | the label's length), the thread, the label.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#define START_AT 0
#define WORD_AT 8
#define THREAD_AT 16
#define LABEL_AT 24
#define LENGTH_BITS 16

/* The environ's keys of the label, in the order of RequestCells.keys. */
enum { KEY_ID, KEY_METHOD, KEY_URI, KEYS };
static const char *const key_names[KEYS] = {"fcgikit.request_id", "REQUEST_METHOD", "REQUEST_URI"};

typedef struct {
    PyObject_HEAD
    Py_buffer view;    /* the board's memory, held while this object lives */
    char *first;       /* the first cell */
    Py_ssize_t count;  /* cells */
    Py_ssize_t cell_size;
    Py_ssize_t label_size;
    /* each key as the last environ held it (a str equal to key_names[i]; the name itself
     * until an environ is seen), and where: its position for PyDict_Next */
    PyObject *keys[KEYS];
    Py_ssize_t positions[KEYS];
} RequestCells;

/* environ[keys[k]], borrowed, or NULL (no exception) when it has no such key. */
static PyObject *
environ_item(RequestCells *self, PyObject *environ, int k)
{
    Py_ssize_t position = self->positions[k];
    PyObject *key, *value;
    /* the ordinary case: the key object the last environ held, where it held it */
    if (PyDict_Next(environ, &position, &key, &value) && key == self->keys[k]) {
        return value;
    }
    /* another server's order, or the key's str made anew: find it, and remember it */
    position = 0;
    while (PyDict_Next(environ, &position, &key, &value)) {
        if (key == self->keys[k] ||
            (PyUnicode_CheckExact(key) && PyUnicode_CompareWithASCIIString(key, key_names[k]) == 0)) {
            Py_SETREF(self->keys[k], Py_NewRef(key));
            self->positions[k] = position - 1;
            return value;
        }
    }
    return NULL;
}

/* The environ's item at ``k`` if it is an exact, ASCII str, else NULL. */
static PyObject *
ascii_item(RequestCells *self, PyObject *environ, int k)
{
    PyObject *value = environ_item(self, environ, k);
    if (value == NULL || !PyUnicode_CheckExact(value) || !PyUnicode_IS_ASCII(value)) {
        return NULL;
    }
    return value;
}

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
 * whose start is positive as written; see cells.py on torn reads). */
static void
store_start(char *cell, double start)
{
    __atomic_thread_fence(__ATOMIC_RELEASE);
    memcpy(cell + START_AT, &start, sizeof start);
}

/* The cell ``index`` (a Python int), or NULL with an IndexError. */
static char *
cell_at(RequestCells *self, PyObject *index)
{
    Py_ssize_t cell = PyLong_AsSsize_t(index);
    if (cell == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (cell < 0 || cell >= self->count) {
        PyErr_Format(PyExc_IndexError, "no cell %zd", cell);
        return NULL;
    }
    return self->first + cell * self->cell_size;
}

static PyObject *
request_cells_begin(PyObject *op, PyObject *const *args, Py_ssize_t nargs)
{
    RequestCells *self = (RequestCells *)op;
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "begin takes a cell and an environ");
        return NULL;
    }
    char *cell = cell_at(self, args[0]);
    if (cell == NULL) {
        return NULL;
    }
    PyObject *environ = args[1];
    if (!PyDict_CheckExact(environ)) {
        Py_RETURN_NONE;
    }
    PyObject *id = environ_item(self, environ, KEY_ID);
    PyObject *method = ascii_item(self, environ, KEY_METHOD);
    PyObject *uri = ascii_item(self, environ, KEY_URI);
    if (id == NULL || !PyLong_CheckExact(id) || method == NULL || uri == NULL ||
        PyUnicode_GET_LENGTH(uri) == 0) {
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

    char *out = cell + LABEL_AT;
    Py_ssize_t at = 0, size = self->label_size;
    append(out, &at, size, start, end - start);
    append(out, &at, size, (const char *)PyUnicode_DATA(method), PyUnicode_GET_LENGTH(method));
    append(out, &at, size, " ", 1);
    append(out, &at, size, (const char *)PyUnicode_DATA(uri), PyUnicode_GET_LENGTH(uri));
    uint64_t word;
    memcpy(&word, cell + WORD_AT, sizeof word);
    word = ((word >> LENGTH_BITS) + 1) << LENGTH_BITS | (uint64_t)at;
    memcpy(cell + WORD_AT, &word, sizeof word);
    uint64_t thread = PyThread_get_thread_ident();
    memcpy(cell + THREAD_AT, &thread, sizeof thread);
    store_start(cell, started);
    Py_RETURN_TRUE;
}

static PyObject *
request_cells_end(PyObject *op, PyObject *const *args, Py_ssize_t nargs)
{
    RequestCells *self = (RequestCells *)op;
    if (nargs != 1) {
        PyErr_SetString(PyExc_TypeError, "end takes a cell");
        return NULL;
    }
    char *cell = cell_at(self, args[0]);
    if (cell == NULL) {
        return NULL;
    }
    double started;
    memcpy(&started, cell + START_AT, sizeof started);
    if (started <= 0.0) {
        Py_RETURN_FALSE;
    }
    double ended = monotonic_now();
    if (ended <= 0.0) {
        Py_RETURN_NONE;
    }
    store_start(cell, -ended);
    Py_RETURN_TRUE;
}

static PyObject *
request_cells_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    PyObject *buffer;
    Py_ssize_t offset, count, cell_size, label_size;
    if (kwargs != NULL && PyDict_GET_SIZE(kwargs) != 0) {
        PyErr_SetString(PyExc_TypeError, "RequestCells takes no keyword arguments");
        return NULL;
    }
    if (!PyArg_ParseTuple(args, "Onnnn:RequestCells", &buffer, &offset, &count, &cell_size,
                          &label_size)) {
        return NULL;
    }
    if (offset < 0 || count < 0 || label_size < 0 || label_size >= 1 << LENGTH_BITS ||
        LABEL_AT + label_size > cell_size) {
        PyErr_SetString(PyExc_ValueError, "no such cells");
        return NULL;
    }
    RequestCells *self = (RequestCells *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    for (int k = 0; k < KEYS; k++) {
        self->keys[k] = PyUnicode_InternFromString(key_names[k]);
        if (self->keys[k] == NULL) {
            Py_DECREF(self);
            return NULL;
        }
    }
    if (PyObject_GetBuffer(buffer, &self->view, PyBUF_WRITABLE) < 0) {
        Py_DECREF(self);
        return NULL;
    }
    if (offset > self->view.len || count > (self->view.len - offset) / cell_size) {
        Py_DECREF(self);
        PyErr_SetString(PyExc_ValueError, "the cells are outside the buffer");
        return NULL;
    }
    self->first = (char *)self->view.buf + offset;
    self->count = count;
    self->cell_size = cell_size;
    self->label_size = label_size;
    return (PyObject *)self;
}

static void
request_cells_dealloc(PyObject *op)
{
    RequestCells *self = (RequestCells *)op;
    PyTypeObject *type = Py_TYPE(op);
    if (self->view.obj != NULL) {
        PyBuffer_Release(&self->view);
    }
    for (int k = 0; k < KEYS; k++) {
        Py_XDECREF(self->keys[k]);
    }
    type->tp_free(op);
    Py_DECREF(type); /* a heap type: each instance holds a reference to it */
}

static PyMethodDef request_cells_methods[] = {
    {"begin", (PyCFunction)(void (*)(void))request_cells_begin, METH_FASTCALL,
     "begin(cell, environ): a request began in the free ``cell``: its label, its count, its\n"
     "thread and its start (now, time.monotonic's clock), the start last; True, or None\n"
     "outside the ordinary case (RequestCellsPy.begin writes the cell then)."},
    {"end", (PyCFunction)(void (*)(void))request_cells_end, METH_FASTCALL,
     "end(cell): the request in ``cell`` ended: its end (now) negated over its start; False\n"
     "when the cell was not running (nothing written), None when the clock cannot be read\n"
     "(RequestCellsPy.end ends it then)."},
    {NULL, NULL, 0, NULL},
};

PyDoc_STRVAR(request_cells_doc,
"RequestCells(buffer, offset, count, cell_size, label_size)\n--\n\n"
"The ``count`` request cells of ``cell_size`` bytes (labels of ``label_size``) at ``offset``\n"
"in the writable ``buffer``, which it holds while it lives (fcgikit.server.cells).");

static PyType_Slot request_cells_slots[] = {
    {Py_tp_new, request_cells_new},
    {Py_tp_dealloc, request_cells_dealloc},
    {Py_tp_methods, request_cells_methods},
    {Py_tp_doc, (void *)request_cells_doc},
    {0, NULL},
};

static PyType_Spec request_cells_spec = {
    .name = "fcgikit.server._speedups_cells.RequestCells",
    .basicsize = sizeof(RequestCells),
    .flags = Py_TPFLAGS_DEFAULT,
    .slots = request_cells_slots,
};

static int
speedups_exec(PyObject *module)
{
    PyObject *type = PyType_FromModuleAndSpec(module, &request_cells_spec, NULL);
    if (type == NULL) {
        return -1;
    }
    if (PyModule_AddObject(module, "RequestCells", type) < 0) {
        Py_DECREF(type);
        return -1;
    }
    return 0;
}

static PyModuleDef_Slot speedups_slots[] = {
    {Py_mod_exec, speedups_exec},
#ifdef Py_mod_gil
    /* Free-threaded CPython (3.13t+): the environ's items are borrowed, the remembered keys
     * are shared by the worker's threads, and the worker's request path counts on the GIL
     * (tracker.py). */
    {Py_mod_gil, Py_MOD_GIL_USED},
#endif
    {0, NULL},
};

PyDoc_STRVAR(speedups_doc,
"The writer of a worker's request cells for fcgikit.server.cells. Optional:\n"
"cells.RequestCellsPy is the spec and the fallback.");

static struct PyModuleDef speedups_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "fcgikit.server._speedups_cells",
    .m_doc = speedups_doc,
    .m_size = 0,
    .m_slots = speedups_slots,
};

PyMODINIT_FUNC
PyInit__speedups_cells(void)
{
    return PyModuleDef_Init(&speedups_module);
}
