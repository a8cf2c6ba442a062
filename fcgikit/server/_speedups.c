/* fcgikit.server._speedups: a C fast lane for two steps of every request in
 * fcgikit/server/wsgi.py, building the environ and encoding the response head, and for
 * the accept of fcgikit/server/server.py.
 *
 * Why it exists: mypyc compiles wsgi.py, but for these two steps its output still
 * goes through CPython's generic object protocol (a method call per decode, a
 * regex match per header, an f-string and a join per head). Here the head is
 * checked and then written into one bytes object, and each parameter name is
 * decoded once per process instead of once per request.
 *
 * The Python in wsgi.py is the spec: _environ_from_params_py and _encode_head_py.
 * This module must give the same results, and tests/server/test_speedups.py uses
 * hypothesis to check it. encode_head answers None for anything except the
 * ordinary case: a status, header or length that is invalid, or of an unusual
 * type (a str subclass, a list subclass, a huge int). wsgi.py then runs the
 * Python, which does the full work and raises its precise error, so this file
 * never has to reproduce an error message.
 * environ_from_params has one such case: a param named like the keys only the
 * server and the middleware set (wsgi.*, fcgikit.*), which the Python drops and
 * logs. Every byte string decodes as latin-1. It raises TypeError only when its own
 * caller (wsgi.py) passes the wrong types.
 *
 * accept_connection() is the server loop's accept: accept4() with SOCK_NONBLOCK (no
 * setblocking() ioctl afterwards), and None when no connection waits. socket.accept()
 * raises BlockingIOError there, which costs ~4.5 us (CPython formats its strerror, and the
 * caught exception builds a traceback): once per round of accepts, on a quiet server once
 * per connection. With probe, it asks poll() first (see accept_connection).
 *
 * LoopWatch is the pool's watcher (fcgikit/server/pool.py) without the GIL: the thread that
 * looks every few milliseconds whether a request has held the loop's thread too long. In
 * Python each look takes the GIL, and the busy loop thread holds it but for its socket
 * calls: the watcher spent most of each tick waiting for it, and every GIL release of the
 * loop thread (each send, recv, close) signalled it, a futex wake and a wake-up IPI for
 * nothing. perf, Flask hello through nginx without keep_conn: 76 samples in futex of 2,012
 * and 51 on the watcher's thread; with LoopWatch none and 7. Here the watcher reads two
 * atomics and takes the GIL only to report a request that overstayed, for a signal's
 * handler, and every few hundred milliseconds to see whether the loop is over.
 *
 * Only LoopWatch.wait releases the GIL (accept4 on a non-blocking listener does not wait).
 * The module is optional: when it is not built, or with FCGIKIT_PURE_PYTHON=1, wsgi.py,
 * server.py and pool.py run their Python (see setup.py).
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>
#ifndef __STDC_NO_ATOMICS__
#include <stdatomic.h>
#endif

/* Parameter names decoded once: bytes name -> str, or None for a dropped name.
 * A web server sends the same few dozen names with every request. The cache makes
 * each one cost a dict lookup and no set lookup, and the str it hands out again
 * keeps its hash, so inserting it into the environ hashes nothing. The keys are
 * not interned: the peer chooses the names, and the interpreter's table of
 * interned strings would grow to the largest set of them alive at once (every
 * name of a 1 MiB FCGI_PARAMS) and stay that size. Interning would only save the
 * app's look-ups a short memcmp.
 * The peer chooses the names (HTTP_* comes from its request headers), so the
 * cache is bounded. Long names are never cached. A full cache is cleared, which
 * lets the common names come back after a flood of one-off names.
 * The verdicts hold for one frozenset of dropped names: wsgi.py always passes
 * the same one, and another one clears the cache. */
#define NAME_CACHE_ENTRIES 512
#define NAME_CACHE_MAX_LENGTH 64

typedef struct {
    PyObject *name_cache;   /* dict: bytes -> str, or None when dropped */
    PyObject *cached_drops; /* the frozenset of dropped names the verdicts are for */
} module_state;

/* RFC 9110 tchar: what _TOKEN in wsgi.py accepts in a header name. Filled once at
 * import. The contents never change, so sharing the table between interpreters
 * is harmless. */
static unsigned char TOKEN_CHAR[256];

static void
fill_token_table(void)
{
    const char *punctuation = "!#$%&'*+-.^_`|~";
    for (const char *c = punctuation; *c; c++) {
        TOKEN_CHAR[(unsigned char)*c] = 1;
    }
    for (int c = '0'; c <= '9'; c++) {
        TOKEN_CHAR[c] = 1;
    }
    for (int c = 'a'; c <= 'z'; c++) {
        TOKEN_CHAR[c] = 1;
        TOKEN_CHAR[c - 'a' + 'A'] = 1;
    }
}

static int
check_nargs(const char *function, Py_ssize_t nargs, Py_ssize_t expected)
{
    if (nargs != expected) {
        PyErr_Format(PyExc_TypeError, "%s() takes exactly %zd arguments (%zd given)",
                     function, expected, nargs);
        return -1;
    }
    return 0;
}

/* --- environ_from_params ------------------------------------------------------- */

static PyObject *
decode_latin1(PyObject *bytes)
{
    return PyUnicode_DecodeLatin1(PyBytes_AS_STRING(bytes), PyBytes_GET_SIZE(bytes), NULL);
}

/* Whether a param name starts with one of the prefixes only the server and the
 * middleware may use for environ keys, in any case: wsgi.RESERVED_PREFIXES, which
 * tests/server/test_speedups.py holds this to. Such a name makes environ_from_params
 * decline, and the Python drops it (and says so in the log). */
static int
is_reserved_name(const char *name, Py_ssize_t length)
{
    static const char *const prefixes[] = {"wsgi.", "fcgikit."};
    for (size_t p = 0; p < sizeof(prefixes) / sizeof(prefixes[0]); p++) {
        const char *prefix = prefixes[p];
        Py_ssize_t i = 0;
        for (; prefix[i] != '\0' && i < length; i++) {
            char c = name[i];
            if (c >= 'A' && c <= 'Z') {
                c += 'a' - 'A';
            }
            if (c != prefix[i]) {
                break;
            }
        }
        if (prefix[i] == '\0') {
            return 1;
        }
    }
    return 0;
}

/* The environ key for a param name: 1 with *key a new reference (None when the name is
 * in dropped), 0 for a reserved name (is_reserved_name; no key), -1 with an exception.
 * Reserved names are never cached, so a cached name costs no prefix test. */
static int
environ_key(module_state *state, PyObject *dropped, PyObject *name, PyObject **key)
{
    if (!PyBytes_Check(name)) {
        PyErr_Format(PyExc_TypeError, "param names must be bytes, not %.100s",
                     Py_TYPE(name)->tp_name);
        return -1;
    }
    /* Only exact bytes go in the cache: hashing and comparing them runs no Python
     * code, and a subclass could be unequal to the bytes it holds. */
    int cacheable =
        PyBytes_CheckExact(name) && PyBytes_GET_SIZE(name) <= NAME_CACHE_MAX_LENGTH;
    if (cacheable) {
        PyObject *cached = PyDict_GetItemWithError(state->name_cache, name);
        if (cached != NULL) {
            *key = Py_NewRef(cached);
            return 1;
        }
        if (PyErr_Occurred()) {
            return -1;
        }
    }
    if (is_reserved_name(PyBytes_AS_STRING(name), PyBytes_GET_SIZE(name))) {
        return 0;
    }
    PyObject *decoded = decode_latin1(name);
    if (decoded == NULL) {
        return -1;
    }
    int is_dropped = PySet_Contains(dropped, decoded);
    if (is_dropped < 0) {
        Py_DECREF(decoded);
        return -1;
    }
    if (is_dropped) {
        Py_SETREF(decoded, Py_NewRef(Py_None));
    }
    if (cacheable) {
        if (PyDict_GET_SIZE(state->name_cache) >= NAME_CACHE_ENTRIES) {
            PyDict_Clear(state->name_cache);
        }
        if (PyDict_SetItem(state->name_cache, name, decoded) < 0) {
            Py_DECREF(decoded);
            return -1;
        }
    }
    *key = decoded;
    return 1;
}

/* environ[name decoded] = value decoded, unless the name is dropped: 1, or 0 for a
 * reserved name (nothing added), -1 with an exception. */
static int
add_param(module_state *state, PyObject *environ, PyObject *dropped, PyObject *name,
          PyObject *value)
{
    PyObject *key;
    int found = environ_key(state, dropped, name, &key);
    if (found <= 0) {
        return found;
    }
    if (key == Py_None) {
        Py_DECREF(key);
        return 1;
    }
    if (!PyBytes_Check(value)) {
        PyErr_Format(PyExc_TypeError, "param values must be bytes, not %.100s",
                     Py_TYPE(value)->tp_name);
        Py_DECREF(key);
        return -1;
    }
    PyObject *text = decode_latin1(value);
    if (text == NULL) {
        Py_DECREF(key);
        return -1;
    }
    int result = PyDict_SetItem(environ, key, text);
    Py_DECREF(key);
    Py_DECREF(text);
    return result < 0 ? -1 : 1;
}

/* The keys build_environ adds after the params (wsgi.*, FCGI_ROLE, the CGI
 * defaults...). With room for them from the start, the dict never grows. */
#define ENVIRON_EXTRA_KEYS 24

/* dict(base), with room for the params and the keys added later. */
static PyObject *
new_environ(PyObject *base, Py_ssize_t param_count)
{
    /* settings.base_environ is a Mapping, usually an empty mappingproxy. For
     * anything other than a dict or a mappingproxy, call dict() itself, so the
     * behaviour stays the same as Python's. */
    if (!PyDict_CheckExact(base) && !Py_IS_TYPE(base, &PyDictProxy_Type)) {
        return PyObject_CallOneArg((PyObject *)&PyDict_Type, base);
    }
    Py_ssize_t base_size = PyObject_Size(base);
    if (base_size < 0) {
        return NULL;
    }
    /* _PyDict_NewPresized is private, but it is exported, and its declaration
     * is still in 3.14's headers. PyDict_New() would grow the dict three times
     * for the usual 18 params and 20 extra keys. */
    PyObject *environ = _PyDict_NewPresized(base_size + param_count + ENVIRON_EXTRA_KEYS);
    if (environ == NULL) {
        return NULL;
    }
    /* The same merge dict(base) does for a dict or a mapping. */
    if (base_size > 0 && PyDict_Merge(environ, base, 1) < 0) {
        Py_DECREF(environ);
        return NULL;
    }
    return environ;
}

PyDoc_STRVAR(environ_from_params_doc,
"environ_from_params(base, params, dropped, /)\n--\n\n"
"dict(base) plus each param of the dict params (bytes: bytes), name and value\n"
"decoded latin-1, in order, except the names in the frozenset dropped; None when\n"
"a name is reserved (wsgi.*, fcgikit.*, any case): the Python then drops it.\n"
"wsgi._environ_from_params_py is the spec.");

static PyObject *
environ_from_params(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (check_nargs("environ_from_params", nargs, 3) < 0) {
        return NULL;
    }
    PyObject *base = args[0], *params = args[1], *dropped = args[2];
    /* Exactly a dict: a subclass could have its own items(). */
    if (!PyDict_CheckExact(params)) {
        PyErr_Format(PyExc_TypeError, "params must be exactly a dict, not %.100s",
                     Py_TYPE(params)->tp_name);
        return NULL;
    }
    /* Exactly a frozenset: the cached verdicts rely on it never changing. */
    if (!PyFrozenSet_CheckExact(dropped)) {
        PyErr_Format(PyExc_TypeError, "dropped must be exactly a frozenset, not %.100s",
                     Py_TYPE(dropped)->tp_name);
        return NULL;
    }
    module_state *state = PyModule_GetState(module);
    if (state->cached_drops != dropped) {
        PyDict_Clear(state->name_cache);
        Py_XSETREF(state->cached_drops, Py_NewRef(dropped));
    }
    PyObject *environ = new_environ(base, PyDict_GET_SIZE(params));
    if (environ == NULL) {
        return NULL;
    }
    Py_ssize_t position = 0;
    PyObject *name, *value;
    while (PyDict_Next(params, &position, &name, &value)) {
        /* PyDict_Next lends them. Setting an item in environ can run Python code
         * (the __eq__ of a key, or the __del__ of a value it replaces), and that
         * code could change params. So hold our own references. */
        Py_INCREF(name);
        Py_INCREF(value);
        int result = add_param(state, environ, dropped, name, value);
        Py_DECREF(name);
        Py_DECREF(value);
        if (result <= 0) {
            Py_DECREF(environ);
            if (result == 0) {
                Py_RETURN_NONE; /* a reserved name: the Python's to drop and log */
            }
            return NULL;
        }
    }
    return environ;
}

/* --- encode_head ----------------------------------------------------------------- */

/* The latin-1 bytes of an exact str, or NULL (no exception set) when it is a
 * subclass or holds a character above U+00FF. CPython stores a str in the
 * narrowest kind that fits its largest character, so a 1-byte kind is exactly
 * "encodable as latin-1". */
static const Py_UCS1 *
latin1_data(PyObject *text, Py_ssize_t *length)
{
    if (!PyUnicode_CheckExact(text)) {
        return NULL;
    }
#if PY_VERSION_HEX < 0x030C0000
    if (PyUnicode_READY(text) < 0) {
        PyErr_Clear(); /* only MemoryError; the Python path will meet it again */
        return NULL;
    }
#endif
    if (PyUnicode_KIND(text) != PyUnicode_1BYTE_KIND) {
        return NULL;
    }
    *length = PyUnicode_GET_LENGTH(text);
    return PyUnicode_1BYTE_DATA(text);
}

/* _BAD_VALUE: a control character other than HTAB, [\x00-\x08\x0a-\x1f\x7f] */
static int
has_bad_value_char(const Py_UCS1 *data, Py_ssize_t length)
{
    for (Py_ssize_t i = 0; i < length; i++) {
        Py_UCS1 c = data[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f) {
            return 1;
        }
    }
    return 0;
}

/* _STATUS: [1-9][0-9][0-9](?: [^\x00-\x08\x0a-\x1f\x7f]*)?\Z */
static int
is_valid_status(const Py_UCS1 *data, Py_ssize_t length)
{
    if (length < 3 || data[0] < '1' || data[0] > '9' || data[1] < '0' || data[1] > '9'
        || data[2] < '0' || data[2] > '9') {
        return 0;
    }
    if (length == 3) {
        return 1;
    }
    return data[3] == ' ' && !has_bad_value_char(data + 4, length - 4);
}

/* _TOKEN: [!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z */
static int
is_token(const Py_UCS1 *data, Py_ssize_t length)
{
    if (length == 0) {
        return 0;
    }
    for (Py_ssize_t i = 0; i < length; i++) {
        if (!TOKEN_CHAR[data[i]]) {
            return 0;
        }
    }
    return 1;
}

/* name.lower() == "content-length". The name is a token, so it is ASCII. */
static int
is_content_length(const Py_UCS1 *data, Py_ssize_t length)
{
    static const char wanted[] = "content-length";
    if (length != (Py_ssize_t)(sizeof(wanted) - 1)) {
        return 0;
    }
    for (Py_ssize_t i = 0; i < length; i++) {
        Py_UCS1 c = data[i];
        if (c >= 'A' && c <= 'Z') {
            c += 'a' - 'A';
        }
        if (c != (Py_UCS1)wanted[i]) {
            return 0;
        }
    }
    return 1;
}

/* total += amount. Returns 0 when the sum would overflow; the caller then
 * declines, and the Python path meets the same impossible size. */
static int
grow(Py_ssize_t *total, Py_ssize_t amount)
{
    if (amount > PY_SSIZE_T_MAX - *total) {
        return 0;
    }
    *total += amount;
    return 1;
}

static char *
put(char *out, const void *data, Py_ssize_t length)
{
    memcpy(out, data, (size_t)length);
    return out + length;
}

#define STATUS_PREFIX "Status: "
#define LENGTH_PREFIX "Content-Length: "
#define LITERAL_LENGTH(literal) ((Py_ssize_t)(sizeof(literal) - 1))

PyDoc_STRVAR(encode_head_doc,
"encode_head(status, headers, content_length, /)\n--\n\n"
"The CGI head (Status line, headers, Content-Length when content_length is\n"
"not None and the headers have none, blank line) as latin-1 bytes, or None\n"
"when anything is invalid or unusual: wsgi._encode_head_py then decides.");

static PyObject *
encode_head(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (check_nargs("encode_head", nargs, 3) < 0) {
        return NULL;
    }
    PyObject *status = args[0], *headers = args[1], *content_length = args[2];

    Py_ssize_t status_length;
    const Py_UCS1 *status_data = latin1_data(status, &status_length);
    if (status_data == NULL || !is_valid_status(status_data, status_length)) {
        Py_RETURN_NONE;
    }
    /* Exact lists and tuples only: iterating a subclass could run its __iter__. */
    if (!PyList_CheckExact(headers) && !PyTuple_CheckExact(headers)) {
        Py_RETURN_NONE;
    }
    char length_text[24]; /* a long long in decimal, sign included */
    Py_ssize_t length_text_size = -1;
    if (content_length != Py_None) {
        if (!PyLong_CheckExact(content_length)) {
            Py_RETURN_NONE; /* a bool prints as "True" in Python: let it */
        }
        int overflow;
        long long value = PyLong_AsLongLongAndOverflow(content_length, &overflow);
        if (overflow || (value == -1 && PyErr_Occurred())) {
            PyErr_Clear();
            Py_RETURN_NONE;
        }
        length_text_size = (Py_ssize_t)PyOS_snprintf(length_text, sizeof(length_text), "%lld",
                                                     value);
    }

    /* First pass: validate everything and compute the size. Python code cannot
     * run between this pass and the second one, because every object is an exact
     * built-in type and the only allocation is a bytes object, which the garbage
     * collector does not track. So the headers are the same in both passes. */
    PyObject **items = PySequence_Fast_ITEMS(headers);
    Py_ssize_t count = PySequence_Fast_GET_SIZE(headers);
    Py_ssize_t total = LITERAL_LENGTH(STATUS_PREFIX) + status_length + 2;
    int has_length = 0;
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *item = items[i];
        if (!PyTuple_CheckExact(item) || PyTuple_GET_SIZE(item) != 2) {
            Py_RETURN_NONE;
        }
        Py_ssize_t name_length, value_length;
        const Py_UCS1 *name = latin1_data(PyTuple_GET_ITEM(item, 0), &name_length);
        if (name == NULL || !is_token(name, name_length)) {
            Py_RETURN_NONE;
        }
        const Py_UCS1 *value = latin1_data(PyTuple_GET_ITEM(item, 1), &value_length);
        if (value == NULL || has_bad_value_char(value, value_length)) {
            Py_RETURN_NONE;
        }
        has_length = has_length || is_content_length(name, name_length);
        if (!grow(&total, name_length) || !grow(&total, value_length)
            || !grow(&total, 4)) { /* ": " and "\r\n" */
            Py_RETURN_NONE;
        }
    }
    int add_length = length_text_size >= 0 && !has_length;
    if (add_length
        && !grow(&total, LITERAL_LENGTH(LENGTH_PREFIX) + length_text_size + 2)) {
        Py_RETURN_NONE;
    }
    if (!grow(&total, 2)) {
        Py_RETURN_NONE;
    }

    /* Second pass: fill. */
    PyObject *head = PyBytes_FromStringAndSize(NULL, total);
    if (head == NULL) {
        return NULL;
    }
    char *out = PyBytes_AS_STRING(head);
    out = put(out, STATUS_PREFIX, LITERAL_LENGTH(STATUS_PREFIX));
    out = put(out, status_data, status_length);
    out = put(out, "\r\n", 2);
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *name = PyTuple_GET_ITEM(items[i], 0);
        PyObject *value = PyTuple_GET_ITEM(items[i], 1);
        out = put(out, PyUnicode_1BYTE_DATA(name), PyUnicode_GET_LENGTH(name));
        out = put(out, ": ", 2);
        out = put(out, PyUnicode_1BYTE_DATA(value), PyUnicode_GET_LENGTH(value));
        out = put(out, "\r\n", 2);
    }
    if (add_length) {
        out = put(out, LENGTH_PREFIX, LITERAL_LENGTH(LENGTH_PREFIX));
        out = put(out, length_text, length_text_size);
        out = put(out, "\r\n", 2);
    }
    out = put(out, "\r\n", 2);
    assert(out == PyBytes_AS_STRING(head) + total);
    return head;
}

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
"accept_connection(listener_fd, probe, /)\n--\n\n"
"accept4() a connection, non-blocking and close-on-exec, as (fd, peer); None when none is\n"
"waiting (or a signal interrupted the call), without raising; OSError for anything else.\n"
"probe: ask poll() first whether one waits, and return None at once if none does.");

static PyObject *
accept_connection(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (check_nargs("accept_connection", nargs, 2) < 0) {
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
    int probe = PyObject_IsTrue(args[1]);
    if (probe < 0) {
        return NULL;
    }
    if (probe) {
        /* Linux's accept() makes the new socket (inode, file, dentry) before it looks at the
         * queue, and frees it again when the queue is empty: ~3.5 us for that answer here,
         * against ~0.3 us for poll()'s. Anything but "nothing waits" (an error, a hang-up)
         * goes on to accept4(), which reports it. */
        struct pollfd waiting = {.fd = (int)listener_fd, .events = POLLIN, .revents = 0};
        int ready = poll(&waiting, 1, 0);
        if (ready == 0 || (ready < 0 && errno == EINTR)) {
            Py_RETURN_NONE;
        }
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
 * arguments the keyword way: ~0.6 us a connection, for a descriptor that accept4() made a
 * socket.
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

static PyObject *
connection_recv_into(PyObject *op, PyObject *buffer)
{
    Connection *self = (Connection *)op;
    Py_buffer view;
    if (PyObject_GetBuffer(buffer, &view, PyBUF_WRITABLE) < 0) {
        if (PyErr_ExceptionMatches(PyExc_BufferError)) { /* read-only: socket's TypeError */
            PyErr_Format(PyExc_TypeError, "recv_into() needs a writable buffer, not %.100s",
                         Py_TYPE(buffer)->tp_name);
        }
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
    .name = "fcgikit.server._speedups.Connection",
    .basicsize = sizeof(Connection),
    .flags = Py_TPFLAGS_DEFAULT,
    .slots = connection_slots,
};

/* --- LoopWatch -------------------------------------------------------------------- */

/* C11 atomics and poll(): every POSIX compiler fcgikit builds with. Without them the module
 * has no LoopWatch and the pool watches in Python. */
#ifndef __STDC_NO_ATOMICS__
#define HAVE_LOOP_WATCH 1

typedef struct {
    PyObject_HEAD
    /* requests begun on the loop's thread so far; the one running now is number `seq` */
    atomic_ullong seq;
    /* a request runs on the loop's thread now */
    atomic_int running;
    /* the watcher sleeps until began() or wake(): nothing ran for a while */
    atomic_int parked;
    /* began() (when parked) and wake() write a byte here; wait() polls the read end */
    int wake_read;
    int wake_write;
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
    self->wake_read = -1;
    self->wake_write = -1;
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
"After `park_after` looks that saw no request, sleep until began() instead of looking.");

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
    unsigned long long seen = atomic_load(&self->seq);
    int seen_running = atomic_load(&self->running);
    long quiet = 0;
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

static PyGetSetDef loop_watch_getset[] = {
    {"parked", loop_watch_get_parked, NULL,
     "The watcher sleeps until a request begins (for the tests and the curious).", NULL},
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
    .name = "fcgikit.server._speedups.LoopWatch",
    .basicsize = sizeof(LoopWatch),
    .flags = Py_TPFLAGS_DEFAULT,
    .slots = loop_watch_slots,
};
#endif /* !__STDC_NO_ATOMICS__ */

/* --- the module ------------------------------------------------------------------- */

static PyMethodDef speedups_methods[] = {
    {"environ_from_params", (PyCFunction)(void (*)(void))environ_from_params, METH_FASTCALL,
     environ_from_params_doc},
    {"encode_head", (PyCFunction)(void (*)(void))encode_head, METH_FASTCALL, encode_head_doc},
#ifdef HAVE_ACCEPT_CONNECTION
    {"accept_connection", (PyCFunction)(void (*)(void))accept_connection, METH_FASTCALL,
     accept_connection_doc},
#endif
    {NULL, NULL, 0, NULL},
};

static int
speedups_exec(PyObject *module)
{
    module_state *state = PyModule_GetState(module);
    state->name_cache = PyDict_New();
    if (state->name_cache == NULL) {
        return -1;
    }
    fill_token_table();
    PyObject *connection_type = PyType_FromModuleAndSpec(module, &connection_spec, NULL);
    if (connection_type == NULL) {
        return -1;
    }
    if (PyModule_AddObject(module, "Connection", connection_type) < 0) {
        Py_DECREF(connection_type);
        return -1;
    }
#ifdef HAVE_LOOP_WATCH
    PyObject *loop_watch_type = PyType_FromModuleAndSpec(module, &loop_watch_spec, NULL);
    if (loop_watch_type == NULL) {
        return -1;
    }
    if (PyModule_AddObject(module, "LoopWatch", loop_watch_type) < 0) {
        Py_DECREF(loop_watch_type);
        return -1;
    }
#endif
    return 0;
}

static int
speedups_traverse(PyObject *module, visitproc visit, void *arg)
{
    module_state *state = PyModule_GetState(module);
    if (state != NULL) {
        Py_VISIT(state->name_cache);
        Py_VISIT(state->cached_drops);
    }
    return 0;
}

static int
speedups_clear(PyObject *module)
{
    module_state *state = PyModule_GetState(module);
    if (state != NULL) {
        Py_CLEAR(state->name_cache);
        Py_CLEAR(state->cached_drops);
    }
    return 0;
}

static void
speedups_free(void *module)
{
    speedups_clear((PyObject *)module);
}

static PyModuleDef_Slot speedups_slots[] = {
    {Py_mod_exec, speedups_exec},
#ifdef Py_mod_gil
    /* Free-threaded CPython (3.13t+) must keep the GIL on for this module: name_cache is
       shared by every thread, read with borrowed references (PyDict_GetItemWithError) and
       cleared when full, which without the GIL could free a name another thread is using. */
    {Py_mod_gil, Py_MOD_GIL_USED},
#endif
    {0, NULL},
};

PyDoc_STRVAR(speedups_doc,
"The C fast lane of fcgikit.server.wsgi (environ building, response head\n"
"encoding). Optional: the Python in wsgi.py is the spec and the fallback.");

static struct PyModuleDef speedups_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "fcgikit.server._speedups",
    .m_doc = speedups_doc,
    .m_size = sizeof(module_state),
    .m_methods = speedups_methods,
    .m_slots = speedups_slots,
    .m_traverse = speedups_traverse,
    .m_clear = speedups_clear,
    .m_free = speedups_free,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    return PyModuleDef_Init(&speedups_module);
}
