/* fcgikit.server._speedups_accept: the C fast lane of fcgikit/server/accept.py, for the
 * server loop's accept and the connections it makes.
 *
 * accept_connection() is the loop's accept: accept4() with SOCK_NONBLOCK (no setblocking()
 * ioctl afterwards), and None when no connection waits, where socket.accept() raises
 * BlockingIOError (CPython formats its strerror, and the caught exception builds a
 * traceback) when a round of accepts meets the end of the queue (accept.py asks poll()
 * first where it expects none: backlog_probe). Its Python twin is accept.py's
 * accept_connection_py.
 *
 * Connection is what the server holds for an accepted descriptor in place of a socket
 * object (its twin: accept.py's connection_py, a non-blocking socket); read_ready() is a
 * Connection's first read, -1 where recv_into raises BlockingIOError (its twin:
 * accept.py's read_ready_py); send_stdout() frames a streamed response's block as
 * FCGI_STDOUT records and sends them whole (its twin: accept.py's send_stdout_py).
 *
 * Each releases the GIL around its system calls; only send_stdout waits in them (for room in
 * the socket, up to the send timeout, as its twin's poll does). The module is optional: when it is not built, or with FCGIKIT_PURE_PYTHON=1, accept.py runs
 * its Python (see setup.py).
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

/* --- accept_connection ------------------------------------------------------------ */

/* accept4() with its flags: Linux and the BSDs. Elsewhere (macOS) the module has no
 * accept_connection and the server accepts the Python way. */
#if defined(SOCK_NONBLOCK) && defined(SOCK_CLOEXEC)
#define HAVE_ACCEPT_CONNECTION 1

/* (host, port) for IPv4, (host, port, flowinfo, scope_id) for IPv6, as socket.accept() gives
 * them (the host through getnameinfo(NI_NUMERICHOST), as CPython does); None for any other
 * family: the server needs a unix peer's address for nothing. */
static PyObject *
peer_address(const struct sockaddr_storage *address, socklen_t length)
{
    char host[NI_MAXHOST];
    if (address->ss_family != AF_INET && address->ss_family != AF_INET6) {
        Py_RETURN_NONE;
    }
    int error = getnameinfo((const struct sockaddr *)address, length, host, sizeof(host),
                            NULL, 0, NI_NUMERICHOST);
    if (error != 0) {
        PyErr_Format(PyExc_OSError, "getnameinfo: %s", gai_strerror(error));
        return NULL;
    }
    if (address->ss_family == AF_INET) {
        const struct sockaddr_in *v4 = (const struct sockaddr_in *)address;
        return Py_BuildValue("(si)", host, (int)ntohs(v4->sin_port));
    }
    const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)address;
    return Py_BuildValue("(siII)", host, (int)ntohs(v6->sin6_port),
                         (unsigned int)ntohl(v6->sin6_flowinfo), (unsigned int)v6->sin6_scope_id);
}

PyDoc_STRVAR(accept_connection_doc,
"accept_connection(listener_fd, /)\n--\n\n"
"accept4() a connection, non-blocking and close-on-exec, as (fd, peer); None when none is\n"
"waiting (or a signal interrupted the call), without raising; OSError for anything else.");

static PyObject *
accept_connection(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 1) {
        PyErr_SetString(PyExc_TypeError, "accept_connection() takes exactly 1 argument");
        return NULL;
    }
    long listener_fd = PyLong_AsLong(args[0]);
    if (listener_fd == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (listener_fd < 0 || listener_fd > INT_MAX) {
        PyErr_SetString(PyExc_ValueError, "accept_connection(): not a file descriptor");
        return NULL;
    }
    struct sockaddr_storage address;
    socklen_t length = sizeof(address);
    memset(&address, 0, sizeof(address));
    int fd = accept4((int)listener_fd, (struct sockaddr *)&address, &length,
                     SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
            Py_RETURN_NONE;
        }
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    PyObject *peer = peer_address(&address, length);
    if (peer == NULL) {
        close(fd);
        return NULL;
    }
    PyObject *result = Py_BuildValue("(iN)", fd, peer);
    if (result == NULL) {
        close(fd);
    }
    return result;
}
#endif /* SOCK_NONBLOCK && SOCK_CLOEXEC */

/* --- Connection ------------------------------------------------------------------- */

/* A connected socket's descriptor with only the calls the server makes on a connection
 * (fcgikit/server/direct.py and channel.py). socket.socket(fileno=fd) first asks the kernel
 * for the descriptor's address (getsockname) to check that it is a socket, and parses its
 * arguments the keyword way, for a descriptor that accept4() made a socket.
 * Like a socket object it forgets its descriptor when it closes, so a late shutdown() or
 * close() (the server stopping, from another thread) fails with EBADF instead of reaching a
 * descriptor the process has reused. Each call releases the GIL around its system call, as
 * the socket module does. For non-blocking descriptors: a call that would wait raises
 * BlockingIOError, as a socket with a timeout of 0 does. */

#ifndef MSG_NOSIGNAL
#define MSG_NOSIGNAL 0
#endif
/* buffers sendmsg() passes in one call; the rest go in the caller's next call */
#define CONNECTION_IOV_MAX 64

typedef struct {
    PyObject_HEAD
    int fd;
} Connection;

/* An int argument (PyLong_AsInt is 3.13's): 0, or -1 with OverflowError or TypeError. */
static int
int_argument(PyObject *object, int *value)
{
    long wide = PyLong_AsLong(object);
    if (wide == -1 && PyErr_Occurred()) {
        return -1;
    }
    if (wide < INT_MIN || wide > INT_MAX) {
        PyErr_SetString(PyExc_OverflowError, "Python int too large to convert to C int");
        return -1;
    }
    *value = (int)wide;
    return 0;
}

static PyObject *
connection_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    if ((kwargs != NULL && PyDict_GET_SIZE(kwargs) != 0) || PyTuple_GET_SIZE(args) != 1) {
        PyErr_SetString(PyExc_TypeError, "Connection() takes exactly one argument, the fd");
        return NULL;
    }
    int fd;
    if (int_argument(PyTuple_GET_ITEM(args, 0), &fd) < 0) {
        return NULL;
    }
    if (fd < 0) {
        PyErr_SetString(PyExc_ValueError, "Connection(): not a file descriptor");
        return NULL;
    }
    Connection *self = (Connection *)type->tp_alloc(type, 0);
    if (self != NULL) {
        self->fd = fd;
    }
    return (PyObject *)self;
}

static void
connection_dealloc(PyObject *op)
{
    Connection *self = (Connection *)op;
    PyTypeObject *type = Py_TYPE(op);
    if (self->fd >= 0) {
        close(self->fd);
    }
    type->tp_free(op);
    Py_DECREF(type);
}

/* The OSError (BlockingIOError, BrokenPipeError...) for errno; NULL. */
static PyObject *
connection_error(void)
{
    return PyErr_SetFromErrno(PyExc_OSError);
}

PyDoc_STRVAR(connection_fileno_doc, "fileno()\n--\n\nThe descriptor; -1 once closed.");

static PyObject *
connection_fileno(PyObject *op, PyObject *Py_UNUSED(ignored))
{
    return PyLong_FromLong(((Connection *)op)->fd);
}

enum connection_io { CALL_RECV, CALL_SEND, CALL_SENDMSG };

/* One system call on the connection's fd, without the GIL; again after EINTR, once the
 * signal handlers ran. The byte count it returned, or NULL with the OSError for errno
 * (EBADF once closed). data and length: the buffer (recv, send) or the msghdr (sendmsg). */
static PyObject *
connection_call(Connection *self, enum connection_io call, void *data, size_t length)
{
    for (;;) {
        int fd = self->fd;
        ssize_t done;
        Py_BEGIN_ALLOW_THREADS
        if (fd < 0) {
            errno = EBADF;
            done = -1;
        }
        else if (call == CALL_RECV) {
            done = recv(fd, data, length, 0);
        }
        else if (call == CALL_SEND) {
            done = send(fd, data, length, MSG_NOSIGNAL);
        }
        else {
            done = sendmsg(fd, (struct msghdr *)data, MSG_NOSIGNAL);
        }
        Py_END_ALLOW_THREADS
        if (done >= 0) {
            return PyLong_FromSsize_t(done);
        }
        if (errno != EINTR) {
            return connection_error();
        }
        if (PyErr_CheckSignals() < 0) {
            return NULL;
        }
    }
}

PyDoc_STRVAR(connection_recv_into_doc,
"recv_into(buffer, /)\n--\n\nsocket.recv_into(buffer): the bytes received into buffer.");

/* The writable buffer a read fills; -1 with socket.recv_into's TypeError for a read-only
 * one. */
static int
writable_buffer(PyObject *buffer, Py_buffer *view)
{
    if (PyObject_GetBuffer(buffer, view, PyBUF_WRITABLE) < 0) {
        if (PyErr_ExceptionMatches(PyExc_BufferError)) { /* read-only: socket's TypeError */
            PyErr_Format(PyExc_TypeError, "recv_into() needs a writable buffer, not %.100s",
                         Py_TYPE(buffer)->tp_name);
        }
        return -1;
    }
    return 0;
}

static PyObject *
connection_recv_into(PyObject *op, PyObject *buffer)
{
    Connection *self = (Connection *)op;
    Py_buffer view;
    if (writable_buffer(buffer, &view) < 0) {
        return NULL;
    }
    PyObject *result = connection_call(self, CALL_RECV, view.buf, (size_t)view.len);
    PyBuffer_Release(&view);
    return result;
}

PyDoc_STRVAR(connection_send_doc,
"send(data, /)\n--\n\nsocket.send(data): the number of bytes sent.");

static PyObject *
connection_send(PyObject *op, PyObject *data)
{
    Connection *self = (Connection *)op;
    Py_buffer view;
    if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    PyObject *result = connection_call(self, CALL_SEND, view.buf, (size_t)view.len);
    PyBuffer_Release(&view);
    return result;
}

PyDoc_STRVAR(connection_sendmsg_doc,
"sendmsg(buffers, /)\n--\n\n"
"socket.sendmsg(buffers): the number of bytes sent, from the first buffers of the list.");

static PyObject *
connection_sendmsg(PyObject *op, PyObject *buffers)
{
    Connection *self = (Connection *)op;
    PyObject *items = PySequence_Fast(buffers, "sendmsg() takes a sequence of buffers");
    if (items == NULL) {
        return NULL;
    }
    Py_ssize_t count = PySequence_Fast_GET_SIZE(items);
    if (count > CONNECTION_IOV_MAX) {
        count = CONNECTION_IOV_MAX;
    }
    Py_buffer views[CONNECTION_IOV_MAX];
    struct iovec vectors[CONNECTION_IOV_MAX];
    Py_ssize_t held = 0;
    PyObject *result = NULL;
    for (; held < count; held++) {
        if (PyObject_GetBuffer(PySequence_Fast_GET_ITEM(items, held), &views[held],
                               PyBUF_SIMPLE) < 0) {
            goto done;
        }
        vectors[held].iov_base = views[held].buf;
        vectors[held].iov_len = (size_t)views[held].len;
    }
    struct msghdr message;
    memset(&message, 0, sizeof(message));
    message.msg_iov = vectors;
    message.msg_iovlen = (size_t)count;
    result = connection_call(self, CALL_SENDMSG, &message, 0);
done:
    while (held > 0) {
        PyBuffer_Release(&views[--held]);
    }
    Py_DECREF(items);
    return result;
}

PyDoc_STRVAR(connection_shutdown_doc, "shutdown(how, /)\n--\n\nsocket.shutdown(how).");

static PyObject *
connection_shutdown(PyObject *op, PyObject *how_object)
{
    int how;
    if (int_argument(how_object, &how) < 0) {
        return NULL;
    }
    int fd = ((Connection *)op)->fd;
    int failed;
    Py_BEGIN_ALLOW_THREADS
    failed = fd < 0 ? (errno = EBADF, -1) : shutdown(fd, how);
    Py_END_ALLOW_THREADS
    if (failed < 0) {
        return connection_error();
    }
    Py_RETURN_NONE;
}

PyDoc_STRVAR(connection_close_doc,
"close()\n--\n\nsocket.close(): close the descriptor once; nothing the second time.");

static PyObject *
connection_close(PyObject *op, PyObject *Py_UNUSED(ignored))
{
    Connection *self = (Connection *)op;
    int fd = self->fd;
    if (fd < 0) {
        Py_RETURN_NONE;
    }
    self->fd = -1;
    int failed;
    Py_BEGIN_ALLOW_THREADS
    failed = close(fd);
    Py_END_ALLOW_THREADS
    /* As socket.close(): a peer that reset the connection is no error of the close. */
    if (failed < 0 && errno != ECONNRESET) {
        return connection_error();
    }
    Py_RETURN_NONE;
}

PyDoc_STRVAR(read_ready_doc,
"read_ready(connection, buffer, /)\n--\n\n"
"The bytes a Connection received into buffer; -1 when none came yet, -2 when the read\n"
"failed (the errno is dropped: the channel reads again and says what failed). None for\n"
"anything but a Connection.");

/* accept.py's read_ready_py without the exception: a connection accepted before its first
 * bytes came is no error, and raising BlockingIOError (the OSError subclass looked up from
 * errno, its strerror formatted, the traceback and the except clause) costs the loop many
 * times the recv() that found the socket empty. */
static PyObject *
read_ready(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "read_ready() takes a connection and a buffer");
        return NULL;
    }
    if (Py_TYPE(args[0])->tp_dealloc != connection_dealloc) {
        Py_RETURN_NONE;  /* a socket: the Python reads it */
    }
    Connection *self = (Connection *)args[0];
    Py_buffer view;
    if (writable_buffer(args[1], &view) < 0) {
        return NULL;
    }
    ssize_t done;
    for (;;) {
        int fd = self->fd;
        Py_BEGIN_ALLOW_THREADS
        if (fd < 0) {
            errno = EBADF;
            done = -1;
        }
        else {
            done = recv(fd, view.buf, (size_t)view.len, 0);
        }
        Py_END_ALLOW_THREADS
        if (done >= 0 || errno != EINTR) {
            break;
        }
        if (PyErr_CheckSignals() < 0) {
            PyBuffer_Release(&view);
            return NULL;
        }
    }
    PyBuffer_Release(&view);
    if (done < 0) {
        done = errno == EAGAIN || errno == EWOULDBLOCK ? -1 : -2;
    }
    return PyLong_FromSsize_t(done);
}

PyDoc_STRVAR(send_stdout_doc,
"send_stdout(connection, request_id, data, send_timeout, /)\n--\n\n"
"data (non-empty bytes) framed as FCGI_STDOUT records and sent whole on a Connection,\n"
"waiting for room up to send_timeout seconds at a time: 0 when all went, the bytes of the\n"
"records still to send when a wait found no room; OSError for a failed send. None for\n"
"anything else, nothing sent: not a Connection, not bytes, empty, an id or a timeout out of\n"
"range, more records than one call frames (the Python twin sends those).");

/* FCGI_STDOUT records: version 1, type 6; content at most 65,535 bytes a record, padded to
 * a multiple of 8 (records.py's frame_records, the spec of these bytes). */
#define STDOUT_RECORD_MAX 65535
/* records one call frames: three buffers each (header, content, padding) */
#define STDOUT_RECORDS_A_SEND (CONNECTION_IOV_MAX / 3)

static const unsigned char stdout_padding[8];

/* Milliseconds from now to deadline, rounded up, at least 0 (poll()'s timeout). */
static int
milliseconds_to(const struct timespec *deadline)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    long long left = (long long)(deadline->tv_sec - now.tv_sec) * 1000000000LL
                     + (deadline->tv_nsec - now.tv_nsec);
    return left <= 0 ? 0 : (int)((left + 999999) / 1000000);
}

/* Drop the first sent bytes of the vectors from *first on. */
static void
drop_sent(struct iovec *vectors, size_t *first, size_t sent)
{
    while (sent >= vectors[*first].iov_len && sent) {
        sent -= vectors[*first].iov_len;
        (*first)++;
    }
    vectors[*first].iov_base = (char *)vectors[*first].iov_base + sent;
    vectors[*first].iov_len -= sent;
}

/* The FCGI_STDOUT records of data (at most STDOUT_RECORDS_A_SEND) as vectors: headers in
 * headers, the content where it lies, static padding; the number of vectors. */
static size_t
frame_stdout_records(struct iovec *vectors, unsigned char (*headers)[8], long request_id,
                     const char *data, Py_ssize_t length)
{
    Py_ssize_t records = (length + STDOUT_RECORD_MAX - 1) / STDOUT_RECORD_MAX;
    Py_ssize_t last = length - (records - 1) * STDOUT_RECORD_MAX;
    size_t count = 0;
    for (Py_ssize_t record = 0; record < records; record++) {
        size_t content = record == records - 1 ? (size_t)last : STDOUT_RECORD_MAX;
        size_t padding = (8 - (content & 7)) & 7;
        unsigned char *header = headers[record];
        header[0] = 1;
        header[1] = 6;
        header[2] = (unsigned char)(request_id >> 8);
        header[3] = (unsigned char)request_id;
        header[4] = (unsigned char)(content >> 8);
        header[5] = (unsigned char)content;
        header[6] = (unsigned char)padding;
        header[7] = 0;
        vectors[count].iov_base = header;
        vectors[count++].iov_len = 8;
        vectors[count].iov_base = (void *)(data + record * STDOUT_RECORD_MAX);
        vectors[count++].iov_len = content;
        if (padding) {
            vectors[count].iov_base = (void *)stdout_padding;
            vectors[count++].iov_len = padding;
        }
    }
    return count;
}

/* The vectors sent whole on the Connection, waiting for room up to timeout milliseconds at a
 * time (send_stdout's answer: 0, the bytes left when a wait found none, NULL with OSError). */
static PyObject *
send_waiting(PyObject *connection, struct iovec *vectors, size_t count, size_t left, int timeout)
{
    struct msghdr message;
    memset(&message, 0, sizeof(message));
    size_t first = 0;
    int waiting = 0;
    struct timespec deadline = {0, 0};
    for (;;) {
        /* read with the GIL held each time, as the socket module does: a close on another
         * thread makes it -1 (EBADF), never a number the process has reused */
        int fd = ((Connection *)connection)->fd;
        int failure = 0;
        int ready = 1;
        ssize_t sent = 0;
        message.msg_iov = vectors + first;
        message.msg_iovlen = count - first;
        Py_BEGIN_ALLOW_THREADS
        if (waiting) {
            struct pollfd room = {.fd = fd, .events = POLLOUT, .revents = 0};
            ready = fd < 0 ? (errno = EBADF, -1) : poll(&room, 1, milliseconds_to(&deadline));
            if (ready < 0) {
                failure = errno;
            }
        }
        if (ready > 0) {
            waiting = 0;
            sent = fd < 0 ? (errno = EBADF, -1) : sendmsg(fd, &message, MSG_NOSIGNAL);
            if (sent < 0) {
                failure = errno == EAGAIN || errno == EWOULDBLOCK ? 0 : errno;
                sent = 0;
            }
        }
        Py_END_ALLOW_THREADS
        if (failure == EINTR) {
            /* PEP 475, as the socket module: the handlers run, then the same call again */
            if (PyErr_CheckSignals() < 0) {
                return NULL;
            }
            continue;
        }
        if (failure) {
            errno = failure;
            return PyErr_SetFromErrno(PyExc_OSError);
        }
        if (ready == 0) {
            return PyLong_FromSize_t(left); /* no room for send_timeout */
        }
        left -= (size_t)sent;
        if (left == 0) {
            return PyLong_FromLong(0);
        }
        drop_sent(vectors, &first, (size_t)sent);
        /* the socket took all it had room for: a send now would only find it full */
        waiting = 1;
        clock_gettime(CLOCK_MONOTONIC, &deadline);
        deadline.tv_sec += timeout / 1000;
        deadline.tv_nsec += (long)(timeout % 1000) * 1000000L;
        if (deadline.tv_nsec >= 1000000000L) {
            deadline.tv_sec++;
            deadline.tv_nsec -= 1000000000L;
        }
    }
}

/* accept.py's send_stdout_py, without a Python object for the headers, the slices of data
 * or the list of buffers: the FCGI_STDOUT records of a streamed response's block (an app's
 * yield of 64 KiB, say) from headers on the stack and data where it lies, sent whole. After
 * a send the socket took in part (the web server reads slower than the app writes, as in
 * every large download) it waits for room in poll() and sends the rest, with the GIL
 * released and no Python between: what a blocking write does, the send timeout its twin's. */
static PyObject *
send_stdout(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError,
                        "send_stdout() takes a connection, an id, data and a timeout");
        return NULL;
    }
    if (Py_TYPE(args[0])->tp_dealloc != connection_dealloc || !PyBytes_CheckExact(args[2])
        || !PyLong_CheckExact(args[1]) || !PyFloat_CheckExact(args[3])) {
        Py_RETURN_NONE;
    }
    long request_id = PyLong_AsLong(args[1]);
    if (request_id == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        Py_RETURN_NONE;
    }
    /* as select.poll().poll(int(send_timeout * 1000)) takes it */
    double milliseconds = PyFloat_AS_DOUBLE(args[3]) * 1000;
    Py_ssize_t length = PyBytes_GET_SIZE(args[2]);
    Py_ssize_t records = (length + STDOUT_RECORD_MAX - 1) / STDOUT_RECORD_MAX;
    if (request_id < 0 || request_id > 0xFFFF || length == 0 || records > STDOUT_RECORDS_A_SEND
        || !(milliseconds >= 0 && milliseconds < INT_MAX)) {
        Py_RETURN_NONE;
    }
    int timeout = (int)milliseconds;
    const char *data = PyBytes_AS_STRING(args[2]);
    Py_ssize_t last = length - (records - 1) * STDOUT_RECORD_MAX;
    /* every full record has 1 byte of padding, the last one -last & 7 */
    size_t left = (size_t)(length + 8 * records + (records - 1) + ((8 - (last & 7)) & 7));
    unsigned char headers[STDOUT_RECORDS_A_SEND][8];
    struct iovec vectors[CONNECTION_IOV_MAX];
    size_t count = frame_stdout_records(vectors, headers, request_id, data, length);
    return send_waiting(args[0], vectors, count, left, timeout);
}

static PyMethodDef connection_methods[] = {
    {"fileno", connection_fileno, METH_NOARGS, connection_fileno_doc},
    {"recv_into", connection_recv_into, METH_O, connection_recv_into_doc},
    {"send", connection_send, METH_O, connection_send_doc},
    {"sendmsg", connection_sendmsg, METH_O, connection_sendmsg_doc},
    {"shutdown", connection_shutdown, METH_O, connection_shutdown_doc},
    {"close", connection_close, METH_NOARGS, connection_close_doc},
    {NULL, NULL, 0, NULL},
};

PyDoc_STRVAR(connection_doc,
"Connection(fd)\n--\n\n"
"A connected, non-blocking socket's descriptor, with the socket calls the server makes on\n"
"a connection (fcgikit.server.direct and .channel); it owns the descriptor and closes it.");

static PyType_Slot connection_slots[] = {
    {Py_tp_new, connection_new},
    {Py_tp_dealloc, connection_dealloc},
    {Py_tp_methods, connection_methods},
    {Py_tp_doc, (void *)connection_doc},
    {0, NULL},
};

static PyType_Spec connection_spec = {
    .name = "fcgikit.server._speedups_accept.Connection",
    .basicsize = sizeof(Connection),
    .flags = Py_TPFLAGS_DEFAULT,
    .slots = connection_slots,
};
/* --- the module ------------------------------------------------------------------- */

static PyMethodDef speedups_methods[] = {
#ifdef HAVE_ACCEPT_CONNECTION
    {"accept_connection", (PyCFunction)(void (*)(void))accept_connection, METH_FASTCALL,
     accept_connection_doc},
#endif
    {"read_ready", (PyCFunction)(void (*)(void))read_ready, METH_FASTCALL, read_ready_doc},
    {"send_stdout", (PyCFunction)(void (*)(void))send_stdout, METH_FASTCALL, send_stdout_doc},
    {NULL, NULL, 0, NULL},
};

static int
speedups_exec(PyObject *module)
{
    PyObject *connection_type = PyType_FromModuleAndSpec(module, &connection_spec, NULL);
    if (connection_type == NULL) {
        return -1;
    }
    if (PyModule_AddObject(module, "Connection", connection_type) < 0) {
        Py_DECREF(connection_type);
        return -1;
    }
    return 0;
}

static PyModuleDef_Slot speedups_slots[] = {
    {Py_mod_exec, speedups_exec},
#ifdef Py_mod_gil
    /* Free-threaded CPython (3.13t+) must keep the GIL on for this module: a Connection is
       used by the loop's thread and by the request's, and nothing here locks its fd against
       a close on the other (the Python around it relies on the GIL for that, as it does). */
    {Py_mod_gil, Py_MOD_GIL_USED},
#endif
    {0, NULL},
};

PyDoc_STRVAR(speedups_doc,
"The C fast lane of fcgikit.server.accept (accepting, and the accepted connection).\n"
"Optional: the Python in accept.py is the spec and the fallback.");

static struct PyModuleDef speedups_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "fcgikit.server._speedups_accept",
    .m_doc = speedups_doc,
    .m_size = 0,
    .m_methods = speedups_methods,
    .m_slots = speedups_slots,
};

PyMODINIT_FUNC
PyInit__speedups_accept(void)
{
    return PyModuleDef_Init(&speedups_module);
}
