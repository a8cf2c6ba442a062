/* fcgikit.server._speedups_watcher: LoopWatch, the C implementation of the watcher's side of
 * the pool's loop thread (fcgikit/server/watcher.py; its Python twin is watcher.py's
 * PythonLoopWatch, and both answer to the LoopWatch interface there).
 *
 * The watcher is the thread that looks every few milliseconds whether a request has held
 * the loop's thread too long. In Python each look takes the GIL, and the busy loop thread
 * holds it but for its socket calls: the watcher spent most of each tick waiting for it, and
 * every GIL release of the loop thread (each send, recv, close) signalled it, a futex wake
 * and a wake-up IPI for nothing (benchmarks/RESULTS.md, "The watcher without the GIL").
 * Here the watcher reads two atomics and takes the GIL only to report a request that
 * overstayed, for a signal's handler, and every few hundred milliseconds to see whether the
 * loop is over.
 *
 * Only LoopWatch.wait releases the GIL. The module is optional: when it is not built, or
 * with FCGIKIT_PURE_PYTHON=1, the watcher uses the Python twin (see setup.py).
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <time.h>
#include <unistd.h>
#ifndef __STDC_NO_ATOMICS__
#include <stdatomic.h>
#endif

/* --- LoopWatch -------------------------------------------------------------------- */

/* C11 atomics and poll(): every POSIX compiler fcgikit builds with. Without them the module
 * has no LoopWatch and the watcher uses its Python twin. */
#ifndef __STDC_NO_ATOMICS__
#define HAVE_LOOP_WATCH 1

typedef struct {
    PyObject_HEAD
    /* requests begun on the loop's thread so far; the one running now is number `seq` */
    atomic_ullong seq;
    /* a request runs on the loop's thread now */
    atomic_int running;
    /* the thread that began the latest request (PyThread_get_thread_ident): the watcher
     * asks the kernel whether it ran before it rescues its request */
    atomic_ulong thread;
    /* the watcher sleeps until began() or wake(): nothing ran for a while */
    atomic_int parked;
    /* began() (when parked) and wake() write a byte here; wait() polls the read end */
    int wake_read;
    int wake_write;
    /* what the last look of the last wait() saw, and how many looks in a row saw nothing
     * run: the next wait() goes on from there, so a watcher whose waits return every few
     * ticks still parks (only wait() touches them, on the one watcher thread) */
    unsigned long long seen;
    int seen_running;
    long quiet;
} LoopWatch;

static void
loop_watch_poke(LoopWatch *self)
{
    char byte = 0;
    /* a full pipe already holds a wake-up: nothing is lost when this write fails */
    ssize_t written = write(self->wake_write, &byte, 1);
    (void)written;
}

static void
loop_watch_drain(LoopWatch *self)
{
    char buffer[64];
    while (read(self->wake_read, buffer, sizeof(buffer)) > 0) {
    }
}

static int
loop_watch_init(PyObject *op, PyObject *args, PyObject *kwargs)
{
    LoopWatch *self = (LoopWatch *)op;
    static char *keywords[] = {NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, ":LoopWatch", keywords)) {
        return -1;
    }
    if (self->wake_read >= 0) {
        PyErr_SetString(PyExc_RuntimeError, "LoopWatch.__init__ called twice");
        return -1;
    }
    int fds[2];
    if (pipe(fds) != 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    for (int i = 0; i < 2; i++) {
        if (fcntl(fds[i], F_SETFL, O_NONBLOCK) != 0 || fcntl(fds[i], F_SETFD, FD_CLOEXEC) != 0) {
            PyErr_SetFromErrno(PyExc_OSError);
            close(fds[0]);
            close(fds[1]);
            return -1;
        }
    }
    self->wake_read = fds[0];
    self->wake_write = fds[1];
    return 0;
}

static PyObject *
loop_watch_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    LoopWatch *self = (LoopWatch *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    atomic_init(&self->seq, 0);
    atomic_init(&self->running, 0);
    atomic_init(&self->parked, 0);
    atomic_init(&self->thread, 0);
    self->wake_read = -1;
    self->wake_write = -1;
    self->seen = 0;
    self->seen_running = 0;
    self->quiet = 0;
    return (PyObject *)self;
}

static void
loop_watch_dealloc(PyObject *op)
{
    LoopWatch *self = (LoopWatch *)op;
    PyTypeObject *type = Py_TYPE(op);
    if (self->wake_read >= 0) {
        close(self->wake_read);
        close(self->wake_write);
    }
    type->tp_free(op);
    Py_DECREF(type); /* a heap type: each instance holds a reference to it */
}

static int
loop_watch_ready(LoopWatch *self)
{
    if (self->wake_read < 0) {
        PyErr_SetString(PyExc_RuntimeError, "LoopWatch not initialized");
        return 0;
    }
    return 1;
}

PyDoc_STRVAR(loop_watch_began_doc,
"began(self, /)\n--\n\n"
"A request starts on the loop's thread; its number (1, 2, ...). Wakes a parked watcher.");

static PyObject *
loop_watch_began(PyObject *op, PyObject *Py_UNUSED(ignored))
{
    LoopWatch *self = (LoopWatch *)op;
    if (!loop_watch_ready(self)) {
        return NULL;
    }
    atomic_store(&self->thread, PyThread_get_thread_ident());
    unsigned long long number = atomic_fetch_add(&self->seq, 1) + 1;
    atomic_store(&self->running, 1);
    /* after the seq: a watcher that parks re-reads the seq once parked, so either it sees
     * this request or this sees it parked (both sequentially consistent) */
    if (atomic_exchange(&self->parked, 0)) {
        loop_watch_poke(self);
    }
    return PyLong_FromUnsignedLongLong(number);
}

PyDoc_STRVAR(loop_watch_ended_doc,
"ended(self, /)\n--\n\n"
"The request on the loop's thread is over (or no longer on the loop's thread).");

static PyObject *
loop_watch_ended(PyObject *op, PyObject *Py_UNUSED(ignored))
{
    LoopWatch *self = (LoopWatch *)op;
    atomic_store(&self->running, 0);
    Py_RETURN_NONE;
}

PyDoc_STRVAR(loop_watch_wake_doc,
"wake(self, /)\n--\n\n"
"End a wait() now (it returns 0): the loop is over. Safe from any thread.");

static PyObject *
loop_watch_wake(PyObject *op, PyObject *Py_UNUSED(ignored))
{
    LoopWatch *self = (LoopWatch *)op;
    if (!loop_watch_ready(self)) {
        return NULL;
    }
    loop_watch_poke(self);
    Py_RETURN_NONE;
}

static double
monotonic_seconds(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)now.tv_sec + (double)now.tv_nsec / 1e9;
}

/* What one look found; the GIL is not held. */
enum wait_outcome { WAIT_TIMEOUT, WAIT_WOKEN, WAIT_SIGNAL, WAIT_STUCK, WAIT_ERROR };

PyDoc_STRVAR(loop_watch_wait_doc,
"wait(self, tick, park_after, timeout, /)\n--\n\n"
"Watch without the GIL: look every `tick` seconds. Return the number of a request that\n"
"has run on the loop's thread through a whole tick (it overstayed); 0 after `timeout`\n"
"seconds, on wake(), or when a signal arrived. Either way the Python handlers of the signals\n"
"that arrived meanwhile run first (their exception propagates).\n"
"After `park_after` looks in a row that saw no request (counted across waits, so that\n"
"waits that return every few ticks still park), sleep until began() instead of looking.");

static PyObject *
loop_watch_wait(PyObject *op, PyObject *const *args, Py_ssize_t nargs)
{
    LoopWatch *self = (LoopWatch *)op;
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "wait() takes exactly 3 arguments");
        return NULL;
    }
    double tick = PyFloat_AsDouble(args[0]);
    if (tick == -1.0 && PyErr_Occurred()) {
        return NULL;
    }
    long park_after = PyLong_AsLong(args[1]);
    if (park_after == -1 && PyErr_Occurred()) {
        return NULL;
    }
    double timeout = PyFloat_AsDouble(args[2]);
    if (timeout == -1.0 && PyErr_Occurred()) {
        return NULL;
    }
    if (!(tick > 0.0) || !(timeout >= 0.0) || park_after < 1) {
        PyErr_SetString(PyExc_ValueError, "wait(): tick > 0, park_after >= 1, timeout >= 0");
        return NULL;
    }
    if (!loop_watch_ready(self)) {
        return NULL;
    }
    double tick_ms = tick * 1000.0 < 1.0 ? 1.0 : tick * 1000.0;
    int tick_timeout = tick_ms > (double)INT_MAX ? INT_MAX : (int)tick_ms;
    enum wait_outcome outcome = WAIT_TIMEOUT;
    unsigned long long stuck = 0;
    int saved_errno = 0;

    Py_BEGIN_ALLOW_THREADS
    double deadline = monotonic_seconds() + timeout;
    unsigned long long seen = self->seen;
    int seen_running = self->seen_running;
    long quiet = self->quiet;
    struct pollfd wake = {.fd = self->wake_read, .events = POLLIN};
    for (;;) {
        double left = deadline - monotonic_seconds();
        if (left <= 0.0) {
            outcome = WAIT_TIMEOUT;
            break;
        }
        int wait_ms = tick_timeout;
        if (quiet >= park_after) {
            atomic_store(&self->parked, 1);
            if (atomic_load(&self->seq) != seen) {
                atomic_store(&self->parked, 0); /* began() came in between */
                quiet = 0;
                continue;
            }
            wait_ms = -1; /* until began(), wake() or the deadline */
        }
        double left_ms = left * 1000.0 + 1.0;
        if (wait_ms < 0 || (double)wait_ms > left_ms) {
            wait_ms = left_ms > (double)INT_MAX ? INT_MAX : (int)left_ms;
        }
        int ready = poll(&wake, 1, wait_ms);
        if (ready < 0) {
            if (errno == EINTR) {
                outcome = WAIT_SIGNAL;
            } else {
                outcome = WAIT_ERROR;
                saved_errno = errno;
            }
            break;
        }
        if (ready > 0) {
            loop_watch_drain(self);
            if (quiet >= park_after && atomic_load(&self->seq) != seen) {
                /* began() unparked us: watch that request from here */
                seen = atomic_load(&self->seq);
                seen_running = atomic_load(&self->running);
                quiet = 0;
                continue;
            }
            atomic_store(&self->parked, 0);
            outcome = WAIT_WOKEN;
            break;
        }
        if (quiet >= park_after) {
            continue; /* parked and nothing came: the deadline check ends it */
        }
        unsigned long long now_seq = atomic_load(&self->seq);
        int now_running = atomic_load(&self->running);
        if (now_running && seen_running && now_seq == seen) {
            outcome = WAIT_STUCK;
            stuck = now_seq;
            break;
        }
        quiet = (now_seq == seen && !now_running) ? quiet + 1 : 0;
        seen = now_seq;
        seen_running = now_running;
    }
    atomic_store(&self->parked, 0);
    self->seen = seen;
    self->seen_running = seen_running;
    self->quiet = quiet;
    Py_END_ALLOW_THREADS

    if (outcome == WAIT_ERROR) {
        errno = saved_errno;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    /* Run the handlers of the signals that arrived meanwhile: the one that interrupted the
     * poll (WAIT_SIGNAL), and one the kernel gave another thread, whose handler Python
     * runs only here, on the main thread, and only when something asks (compiled callers
     * never run the interpreter's loop, which would). */
    if (PyErr_CheckSignals() < 0) {
        return NULL;
    }
    if (outcome == WAIT_STUCK) {
        return PyLong_FromUnsignedLongLong(stuck);
    }
    return PyLong_FromLong(0);
}

static PyObject *
loop_watch_get_parked(PyObject *op, void *Py_UNUSED(closure))
{
    return PyBool_FromLong(atomic_load(&((LoopWatch *)op)->parked));
}

static PyObject *
loop_watch_get_thread(PyObject *op, void *Py_UNUSED(closure))
{
    return PyLong_FromUnsignedLong(atomic_load(&((LoopWatch *)op)->thread));
}

static PyGetSetDef loop_watch_getset[] = {
    {"parked", loop_watch_get_parked, NULL,
     "The watcher sleeps until a request begins (for the tests and the curious).", NULL},
    {"thread", loop_watch_get_thread, NULL,
     "The ident (threading.get_ident) of the thread that began the latest request; 0 before "
     "the first.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMethodDef loop_watch_methods[] = {
    {"began", loop_watch_began, METH_NOARGS, loop_watch_began_doc},
    {"ended", loop_watch_ended, METH_NOARGS, loop_watch_ended_doc},
    {"wake", loop_watch_wake, METH_NOARGS, loop_watch_wake_doc},
    {"wait", (PyCFunction)(void (*)(void))loop_watch_wait, METH_FASTCALL, loop_watch_wait_doc},
    {NULL, NULL, 0, NULL},
};

PyDoc_STRVAR(loop_watch_doc,
"LoopWatch()\n--\n\n"
"Which request runs on the pool's loop thread, for a watcher that looks without the GIL\n"
"(fcgikit.server.pool.WorkerPool.watch).");

static PyType_Slot loop_watch_slots[] = {
    {Py_tp_new, loop_watch_new},
    {Py_tp_init, loop_watch_init},
    {Py_tp_dealloc, loop_watch_dealloc},
    {Py_tp_methods, loop_watch_methods},
    {Py_tp_getset, loop_watch_getset},
    {Py_tp_doc, (void *)loop_watch_doc},
    {0, NULL},
};

static PyType_Spec loop_watch_spec = {
    .name = "fcgikit.server._speedups_watcher.LoopWatch",
    .basicsize = sizeof(LoopWatch),
    .flags = Py_TPFLAGS_DEFAULT,
    .slots = loop_watch_slots,
};
#endif /* !__STDC_NO_ATOMICS__ */
/* --- the module ------------------------------------------------------------------- */

static int
speedups_exec(PyObject *module)
{
#ifdef HAVE_LOOP_WATCH
    PyObject *loop_watch_type = PyType_FromModuleAndSpec(module, &loop_watch_spec, NULL);
    if (loop_watch_type == NULL) {
        return -1;
    }
    if (PyModule_AddObject(module, "LoopWatch", loop_watch_type) < 0) {
        Py_DECREF(loop_watch_type);
        return -1;
    }
#else
    (void)module;
#endif
    return 0;
}

static PyModuleDef_Slot speedups_slots[] = {
    {Py_mod_exec, speedups_exec},
#ifdef Py_mod_gil
    /* Free-threaded CPython (3.13t+): keep the GIL on. The watch's state is shared by the
       loop's thread and the watcher, and has not been checked for running without it. */
    {Py_mod_gil, Py_MOD_GIL_USED},
#endif
    {0, NULL},
};

PyDoc_STRVAR(speedups_doc,
"The C watcher of fcgikit.server.watcher (LoopWatch). Optional: watcher.PythonLoopWatch\n"
"is the spec and the fallback.");

static struct PyModuleDef speedups_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "fcgikit.server._speedups_watcher",
    .m_doc = speedups_doc,
    .m_size = 0,
    .m_slots = speedups_slots,
};

PyMODINIT_FUNC
PyInit__speedups_watcher(void)
{
    return PyModuleDef_Init(&speedups_module);
}
