/* fcgikit.server._speedups_wsgi_codec: the C fast lane of fcgikit/server/wsgi_codec.py for
 * two steps of every request: building the environ and encoding the response head.
 *
 * Why it exists: mypyc compiles wsgi_codec.py, but for these two steps its output still
 * goes through CPython's generic object protocol (a method call per decode, a
 * regex match per header, an f-string and a join per head). Here the head is
 * checked and then written into one bytes object, and each parameter name is
 * decoded once per process instead of once per request.
 *
 * The Python in wsgi_codec.py is the spec: environ_from_params_py and encode_head_py.
 * This module must give the same results, and tests/server/test_speedups_wsgi_codec.py uses
 * hypothesis to check it. encode_head answers None for anything except the
 * ordinary case: a status, header or length that is invalid, or of an unusual
 * type (a str subclass, a list subclass, a huge int). wsgi.py then runs the
 * Python, which does the full work and raises its precise error, so this file
 * never has to reproduce an error message.
 * environ_from_params has one such case: a param named like the keys only the
 * server and the middleware set (wsgi.*, fcgikit.*), which the Python drops and
 * logs. Every byte string decodes as latin-1. It raises TypeError only when its own
 * caller (wsgi.py's WSGIRequest) passes the wrong types.
 *
 * The rules themselves (which characters make a header name, which ones a value may not
 * hold, the reserved prefixes) are wsgi_codec.py's: it hands them over once, at import, with
 * _set_header_rules. Until then both functions answer None, so this file holds no copy of a
 * rule that could drift from the Python's.
 *
 * The module is optional: when it is not built, or with FCGIKIT_PURE_PYTHON=1, wsgi.py runs
 * the Python of wsgi_codec.py (see setup.py).
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

/* Parameter names decoded once: bytes name -> str, or None for a dropped name.
 * A web server sends the same few dozen names with every request. The cache makes
 * each one cost a dict lookup and no set lookup, and the str it hands out again
 * keeps its hash, so inserting it into the environ hashes nothing. The keys are
 * not interned: the peer chooses the names, and the interpreter's table of
 * interned strings would grow to the largest set of them alive at once (every
 * name of a 1 MiB FCGI_PARAMS) and stay that size. A name of wsgi_codec.KNOWN_NAMES
 * (a fixed list: the CGI variables, the common headers) is given that table's str instead,
 * the very object the app's code and ours hold as a constant: the environ's look-ups of it
 * find it by identity, with no compare of the characters.
 * The peer chooses the names (HTTP_* comes from its request headers), so the
 * cache is bounded. Long names are never cached. A full cache is cleared, which
 * lets the common names come back after a flood of one-off names.
 * The verdicts hold for one frozenset of dropped names: wsgi.py always passes
 * the same one, and another one clears the cache. */
#define NAME_CACHE_ENTRIES 512
#define NAME_CACHE_MAX_LENGTH 64

typedef struct {
    PyObject *name_cache;        /* dict: bytes -> str, or None when dropped */
    PyObject *cached_drops;      /* the frozenset of dropped names the verdicts are for */
    PyObject *reserved_prefixes; /* tuple of lowercase bytes; NULL until _set_header_rules */
    PyObject *known_names;       /* dict: str -> the equal str to use as the key; or NULL */
    /* 1 for each latin-1 character wsgi_codec.TOKEN_CHARS holds: a header name's characters */
    unsigned char token_char[256];
    /* 1 for each one in wsgi_codec.FIELD_CONTROLS: what a value or a reason phrase must not hold */
    unsigned char field_control[256];
} module_state;

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

/* --- the rules, from wsgi_codec.py ------------------------------------------------ */

/* table[c] = 1 for each byte c of the bytes object chars (the table cleared first). */
static int
fill_table(unsigned char table[256], PyObject *chars, const char *what)
{
    if (!PyBytes_CheckExact(chars)) {
        PyErr_Format(PyExc_TypeError, "%s must be bytes, not %.100s", what,
                     Py_TYPE(chars)->tp_name);
        return -1;
    }
    memset(table, 0, 256);
    const unsigned char *data = (const unsigned char *)PyBytes_AS_STRING(chars);
    for (Py_ssize_t i = 0; i < PyBytes_GET_SIZE(chars); i++) {
        table[data[i]] = 1;
    }
    return 0;
}

PyDoc_STRVAR(set_header_rules_doc,
"_set_header_rules(token_chars, field_controls, reserved_prefixes, known_names=None, /)\n--\n\n"
"wsgi_codec.py's rules, latin-1 encoded: the characters of a header name (bytes), the ones a\n"
"header value and a reason phrase must not hold (bytes), and the lowercase prefixes of\n"
"the names a param may not have (a tuple of bytes); and KNOWN_NAMES (a dict: str -> the\n"
"equal str an environ key of that name is to be). Until this is called, every call\n"
"answers None.");

static PyObject *
set_header_rules(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4 && check_nargs("_set_header_rules", nargs, 3) < 0) {
        return NULL;
    }
    PyObject *known = nargs == 4 && args[3] != Py_None ? args[3] : NULL;
    if (known != NULL && !PyDict_CheckExact(known)) {
        PyErr_Format(PyExc_TypeError, "known_names must be a dict, not %.100s",
                     Py_TYPE(known)->tp_name);
        return NULL;
    }
    PyObject *prefixes = args[2];
    if (!PyTuple_CheckExact(prefixes)) {
        PyErr_Format(PyExc_TypeError, "reserved_prefixes must be a tuple, not %.100s",
                     Py_TYPE(prefixes)->tp_name);
        return NULL;
    }
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(prefixes); i++) {
        PyObject *prefix = PyTuple_GET_ITEM(prefixes, i);
        if (!PyBytes_CheckExact(prefix) || PyBytes_GET_SIZE(prefix) == 0) {
            PyErr_SetString(PyExc_TypeError, "reserved_prefixes must hold non-empty bytes");
            return NULL;
        }
    }
    module_state *state = PyModule_GetState(module);
    /* Refuse every call while the tables change (a failure halfway leaves them refused). */
    Py_CLEAR(state->reserved_prefixes);
    if (fill_table(state->token_char, args[0], "token_chars") < 0
        || fill_table(state->field_control, args[1], "field_controls") < 0) {
        return NULL;
    }
    /* The verdicts cached so far were reached under the old rules. */
    PyDict_Clear(state->name_cache);
    Py_XSETREF(state->known_names, Py_XNewRef(known));
    state->reserved_prefixes = Py_NewRef(prefixes);
    Py_RETURN_NONE;
}


/* --- environ_from_params ------------------------------------------------------- */

static PyObject *
decode_latin1(PyObject *bytes)
{
    return PyUnicode_DecodeLatin1(PyBytes_AS_STRING(bytes), PyBytes_GET_SIZE(bytes), NULL);
}

/* Whether a param name starts with one of the prefixes only the server and the
 * middleware may use for environ keys (wsgi_codec.RESERVED_PREFIXES), in any case. Such a name
 * makes environ_from_params decline, and the Python drops it (and says so in the log). */
static int
is_reserved_name(PyObject *prefixes, const char *name, Py_ssize_t length)
{
    for (Py_ssize_t p = 0; p < PyTuple_GET_SIZE(prefixes); p++) {
        PyObject *prefix = PyTuple_GET_ITEM(prefixes, p);
        const char *wanted = PyBytes_AS_STRING(prefix);
        Py_ssize_t wanted_length = PyBytes_GET_SIZE(prefix);
        if (wanted_length > length) {
            continue;
        }
        Py_ssize_t i = 0;
        for (; i < wanted_length; i++) {
            char c = name[i];
            if (c >= 'A' && c <= 'Z') {
                c += 'a' - 'A';
            }
            if (c != wanted[i]) {
                break;
            }
        }
        if (i == wanted_length) {
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
    if (is_reserved_name(state->reserved_prefixes, PyBytes_AS_STRING(name),
                         PyBytes_GET_SIZE(name))) {
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
    else if (state->known_names != NULL) {
        PyObject *known = PyDict_GetItemWithError(state->known_names, decoded); /* borrowed */
        if (known != NULL) {
            Py_SETREF(decoded, Py_NewRef(known));
        }
        else if (PyErr_Occurred()) {
            Py_DECREF(decoded);
            return -1;
        }
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
PyDoc_STRVAR(name_table_doc,
"_name_table(dropped, /)\n--\n\n"
"The verdicts environ_from_params keeps on the param names it has seen, for the frozenset\n"
"dropped (cleared first if they were for another): a dict of bytes name -> its str key, or\n"
"None for a dropped name; never a reserved name. The C scan of the protocol reads it\n"
"(wsgi_codec.environ_names_py is the spec).");

static PyObject *
name_table(PyObject *module, PyObject *dropped)
{
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
    return Py_NewRef(state->name_cache);
}

PyDoc_STRVAR(environ_from_params_doc,
"environ_from_params(base, params, dropped, /)\n--\n\n"
"dict(base) plus each param of the dict params (bytes: bytes), name and value\n"
"decoded latin-1, in order, except the names in the frozenset dropped; None when\n"
"a name is reserved (wsgi.*, fcgikit.*, any case): the Python then drops it.\n"
"wsgi_codec.environ_from_params_py is the spec.");

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
    if (state->reserved_prefixes == NULL) {
        Py_RETURN_NONE; /* no rules yet: the Python's to do */
    }
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

/* a character in wsgi_codec.FIELD_CONTROLS (head_patterns()'s third) */
static int
has_bad_value_char(const module_state *state, const Py_UCS1 *data, Py_ssize_t length)
{
    for (Py_ssize_t i = 0; i < length; i++) {
        if (state->field_control[data[i]]) {
            return 1;
        }
    }
    return 0;
}

/* a status line (head_patterns()'s second): three digits, the first not 0, then nothing or
   a space and a reason phrase */
static int
is_valid_status(const module_state *state, const Py_UCS1 *data, Py_ssize_t length)
{
    if (length < 3 || data[0] < '1' || data[0] > '9' || data[1] < '0' || data[1] > '9'
        || data[2] < '0' || data[2] > '9') {
        return 0;
    }
    if (length == 3) {
        return 1;
    }
    return data[3] == ' ' && !has_bad_value_char(state, data + 4, length - 4);
}

/* one or more of wsgi_codec.TOKEN_CHARS (head_patterns()'s first) */
static int
is_token(const module_state *state, const Py_UCS1 *data, Py_ssize_t length)
{
    if (length == 0) {
        return 0;
    }
    for (Py_ssize_t i = 0; i < length; i++) {
        if (!state->token_char[data[i]]) {
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

/* value in decimal at out (sign included; 21 bytes at most, no NUL), its length: what
 * "%lld" prints, without PyOS_snprintf's format parsing, a few hundred instructions a
 * response for its Content-Length. */
static Py_ssize_t
decimal(char *out, long long value)
{
    char digits[20];
    Py_ssize_t count = 0, size = 0;
    unsigned long long magnitude =
        value < 0 ? 0ULL - (unsigned long long)value : (unsigned long long)value;
    do {
        digits[count++] = (char)('0' + magnitude % 10);
        magnitude /= 10;
    } while (magnitude != 0);
    if (value < 0) {
        out[size++] = '-';
    }
    while (count > 0) {
        out[size++] = digits[--count];
    }
    return size;
}

PyDoc_STRVAR(encode_head_doc,
"encode_head(status, headers, content_length, /)\n--\n\n"
"The CGI head (Status line, headers, Content-Length when content_length is\n"
"not None and the headers have none, blank line) as latin-1 bytes, or None\n"
"when anything is invalid or unusual: wsgi_codec.encode_head_py then decides.");

static PyObject *
encode_head(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (check_nargs("encode_head", nargs, 3) < 0) {
        return NULL;
    }
    PyObject *status = args[0], *headers = args[1], *content_length = args[2];
    const module_state *state = PyModule_GetState(module);
    if (state->reserved_prefixes == NULL) {
        Py_RETURN_NONE; /* no rules yet: the Python's to do */
    }

    Py_ssize_t status_length;
    const Py_UCS1 *status_data = latin1_data(status, &status_length);
    if (status_data == NULL || !is_valid_status(state, status_data, status_length)) {
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
        length_text_size = decimal(length_text, value);
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
        if (name == NULL || !is_token(state, name, name_length)) {
            Py_RETURN_NONE;
        }
        const Py_UCS1 *value = latin1_data(PyTuple_GET_ITEM(item, 1), &value_length);
        if (value == NULL || has_bad_value_char(state, value, value_length)) {
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

/* --- the module ------------------------------------------------------------------- */

static PyMethodDef speedups_methods[] = {
    {"environ_from_params", (PyCFunction)(void (*)(void))environ_from_params, METH_FASTCALL,
     environ_from_params_doc},
    {"_name_table", name_table, METH_O, name_table_doc},
    {"encode_head", (PyCFunction)(void (*)(void))encode_head, METH_FASTCALL, encode_head_doc},
    {"_set_header_rules", (PyCFunction)(void (*)(void))set_header_rules, METH_FASTCALL,
     set_header_rules_doc},
    {NULL, NULL, 0, NULL},
};

static int
speedups_exec(PyObject *module)
{
    module_state *state = PyModule_GetState(module);
    state->name_cache = PyDict_New();
    return state->name_cache == NULL ? -1 : 0;
}

static int
speedups_traverse(PyObject *module, visitproc visit, void *arg)
{
    module_state *state = PyModule_GetState(module);
    if (state != NULL) {
        Py_VISIT(state->name_cache);
        Py_VISIT(state->cached_drops);
        Py_VISIT(state->reserved_prefixes);
        Py_VISIT(state->known_names);
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
        Py_CLEAR(state->reserved_prefixes);
        Py_CLEAR(state->known_names);
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
"The C fast lane of fcgikit.server.wsgi_codec (environ building, response head\n"
"encoding). Optional: the Python in wsgi_codec.py is the spec and the fallback.");

static struct PyModuleDef speedups_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "fcgikit.server._speedups_wsgi_codec",
    .m_doc = speedups_doc,
    .m_size = sizeof(module_state),
    .m_methods = speedups_methods,
    .m_slots = speedups_slots,
    .m_traverse = speedups_traverse,
    .m_clear = speedups_clear,
    .m_free = speedups_free,
};

PyMODINIT_FUNC
PyInit__speedups_wsgi_codec(void)
{
    return PyModuleDef_Init(&speedups_module);
}
