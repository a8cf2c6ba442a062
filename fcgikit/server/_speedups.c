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
 * environ_from_params has no such unusual case: every byte string decodes as
 * latin-1. It raises TypeError only when its own caller (wsgi.py) passes the
 * wrong types.
 *
 * accept_connection() is the server loop's accept: accept4() with SOCK_NONBLOCK (no
 * setblocking() ioctl afterwards), and None when no connection waits. socket.accept()
 * raises BlockingIOError there, which costs ~4.5 us (CPython formats its strerror, and the
 * caught exception builds a traceback): once per round of accepts, on a quiet server once
 * per connection.
 *
 * Nothing here releases the GIL (accept4 on a non-blocking listener does not wait). The module is optional: when it is not built,
 * or with FCGIKIT_PURE_PYTHON=1, wsgi.py runs the Python (see setup.py).
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

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

/* The environ key for a param name, or None when the name is in dropped: a new
 * reference, or NULL with an exception. */
static PyObject *
environ_key(module_state *state, PyObject *dropped, PyObject *name)
{
    if (!PyBytes_Check(name)) {
        PyErr_Format(PyExc_TypeError, "param names must be bytes, not %.100s",
                     Py_TYPE(name)->tp_name);
        return NULL;
    }
    /* Only exact bytes go in the cache: hashing and comparing them runs no Python
     * code, and a subclass could be unequal to the bytes it holds. */
    int cacheable =
        PyBytes_CheckExact(name) && PyBytes_GET_SIZE(name) <= NAME_CACHE_MAX_LENGTH;
    if (cacheable) {
        PyObject *key = PyDict_GetItemWithError(state->name_cache, name);
        if (key != NULL) {
            return Py_NewRef(key);
        }
        if (PyErr_Occurred()) {
            return NULL;
        }
    }
    PyObject *key = decode_latin1(name);
    if (key == NULL) {
        return NULL;
    }
    int is_dropped = PySet_Contains(dropped, key);
    if (is_dropped < 0) {
        Py_DECREF(key);
        return NULL;
    }
    if (is_dropped) {
        Py_SETREF(key, Py_NewRef(Py_None));
    }
    if (!cacheable) {
        return key;
    }
    if (PyDict_GET_SIZE(state->name_cache) >= NAME_CACHE_ENTRIES) {
        PyDict_Clear(state->name_cache);
    }
    if (PyDict_SetItem(state->name_cache, name, key) < 0) {
        Py_DECREF(key);
        return NULL;
    }
    return key;
}

/* environ[name decoded] = value decoded, unless the name is dropped. */
static int
add_param(module_state *state, PyObject *environ, PyObject *dropped, PyObject *name,
          PyObject *value)
{
    PyObject *key = environ_key(state, dropped, name);
    if (key == NULL) {
        return -1;
    }
    if (key == Py_None) {
        Py_DECREF(key);
        return 0;
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
    return result;
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
"decoded latin-1, in order, except the names in the frozenset dropped.\n"
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
        if (result < 0) {
            Py_DECREF(environ);
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

static int
has_bad_value_char(const Py_UCS1 *data, Py_ssize_t length)
{
    for (Py_ssize_t i = 0; i < length; i++) {
        Py_UCS1 c = data[i];
        if (c == '\r' || c == '\n' || c == '\0') {
            return 1;
        }
    }
    return 0;
}

/* _STATUS: [1-9][0-9][0-9](?: [^\r\n\x00]*)?\Z */
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
"accept_connection(listener_fd, /)\n--\n\n"
"accept4() a connection, non-blocking and close-on-exec, as (fd, peer); None when none is\n"
"waiting (or a signal interrupted the call), without raising; OSError for anything else.");

static PyObject *
accept_connection(PyObject *Py_UNUSED(module), PyObject *listener)
{
    long listener_fd = PyLong_AsLong(listener);
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

/* --- the module ------------------------------------------------------------------- */

static PyMethodDef speedups_methods[] = {
    {"environ_from_params", (PyCFunction)(void (*)(void))environ_from_params, METH_FASTCALL,
     environ_from_params_doc},
    {"encode_head", (PyCFunction)(void (*)(void))encode_head, METH_FASTCALL, encode_head_doc},
#ifdef HAVE_ACCEPT_CONNECTION
    {"accept_connection", accept_connection, METH_O, accept_connection_doc},
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
