/* fcgikit.protocol._speedups: the fast lanes for an ordinary request arriving whole, and for
 * the end of a small response. fcgikit/protocol/lanes.py lists each with its Python twin and
 * the property test that holds the two together.
 *
 * Nearly every request a web server sends is the same shape: FCGI_BEGIN_REQUEST for the
 * Responder role, its FCGI_PARAMS records, the empty one that ends them, and (for a GET, or a
 * small POST) its FCGI_STDIN records up to the empty one, all in one read. Cutting that into
 * records and decoding the name-value pairs is mostly CPython object traffic in Python (a
 * memoryview slice and a callback per record, a bytes object per name); scan_request() does
 * the same in one pass over the buffer.
 *
 * It is a fast lane, not a second protocol implementation: it changes no state and raises
 * nothing for bad input. Whenever the input is anything but the ordinary shape, complete and
 * well-formed (another role, a record for another id, a version that is not 1, a length that
 * does not add up, params over the cap, more pairs than the connection decodes at once,
 * malformed pairs, a record cut short, anything after the end of FCGI_STDIN), it returns
 * None, and the Python parses the same bytes (ServerConnection, record by record, which is
 * the spec, errors included). Its twin, whole_request.scan_request_py, says exactly which
 * input is ordinary.
 *
 * Peer input: every length is checked against what is left of the buffer before it is used.
 *
 * frame_end() is the same idea on the way out: a small response's last stdout, the ends of its
 * streams and FCGI_END_REQUEST, written into one bytes object (output.RequestOutput does the
 * bookkeeping; it declines pieces that are not bytes, or COPY_MAX bytes or more, which
 * output.frame_end_py frames).
 *
 * The numbers come from Python: lanes.py calls configure() at import with the record types,
 * the role, the flag and COPY_MAX, and the lanes refuse to run before. The layouts below
 * write a header, a BEGIN_REQUEST body and an END_REQUEST body byte by byte: configure()
 * checks that Python's sizes for them are these.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stddef.h>
#include <string.h>
#include <structmember.h>

/* the sizes this file lays out byte by byte (put_header, the bodies): checked by configure() */
#define HEADER_LEN 8
#define BEGIN_REQUEST_BODY_LEN 8
#define END_REQUEST_BODY_LEN 8

/* Given by configure(), from fcgikit/protocol/constants.py, records.py and name_value_pairs.py. */
static int configured = 0;
static long version_1, keep_conn_flag;
static long type_begin_request, type_end_request, type_params, type_stdin, type_stdout,
    type_stderr;
static long role_responder, long_length_flag, copy_max;

/* --- configure: the numbers, from Python ---------------------------------------------- */

static int
check_configured(void)
{
    if (!configured) {
        PyErr_SetString(PyExc_RuntimeError,
                        "fcgikit.protocol._speedups: configure() was not called "
                        "(fcgikit.protocol.lanes does it at import)");
    }
    return configured;
}

/* constants[name] as a C long; 0 with an exception set when it is missing or no int. */
static int
constant(PyObject *constants, const char *name, long *out)
{
    PyObject *value = PyMapping_GetItemString(constants, name);
    if (value == NULL) {
        return 0;
    }
    *out = PyLong_AsLong(value);
    Py_DECREF(value);
    return !(*out == -1 && PyErr_Occurred());
}

/* Python's size of something this file lays out byte by byte must be this file's. */
static int
same_layout(PyObject *constants, const char *name, long laid_out)
{
    long given;
    if (!constant(constants, name, &given)) {
        return 0;
    }
    if (given != laid_out) {
        PyErr_Format(PyExc_ValueError,
                     "fcgikit.protocol._speedups lays out %s as %ld bytes, Python says %ld",
                     name, laid_out, given);
        return 0;
    }
    return 1;
}

PyDoc_STRVAR(configure_doc,
"configure(constants, /)\n--\n\n"
"Take the numbers the lanes work with from ``constants`` (lanes.C_CONSTANTS, a mapping of\n"
"name to int), and check the sizes this module lays out itself against it. The lanes raise\n"
"RuntimeError until this is called.");

static PyObject *
configure(PyObject *module, PyObject *constants)
{
    (void)module;
    long values[11];
    const char *names[11] = {"FCGI_VERSION_1", "FCGI_MAX_CONTENT_LEN", "FCGI_KEEP_CONN",
                             "BEGIN_REQUEST",  "END_REQUEST",          "PARAMS",
                             "STDIN",          "STDOUT",               "STDERR",
                             "RESPONDER",      "LONG_LENGTH_FLAG"};
    long copy_max_given;
    for (int i = 0; i < 11; i++) {
        if (!constant(constants, names[i], &values[i])) {
            return NULL;
        }
    }
    if (!same_layout(constants, "FCGI_HEADER_LEN", HEADER_LEN) ||
        !same_layout(constants, "BEGIN_REQUEST_BODY_LEN", BEGIN_REQUEST_BODY_LEN) ||
        !same_layout(constants, "END_REQUEST_BODY_LEN", END_REQUEST_BODY_LEN) ||
        !constant(constants, "COPY_MAX", &copy_max_given)) {
        return NULL;
    }
    if (copy_max_given < 0 || copy_max_given > values[1]) {
        /* what frame_end joins must fit one record */
        PyErr_SetString(PyExc_ValueError, "COPY_MAX must be 0 to FCGI_MAX_CONTENT_LEN");
        return NULL;
    }
    version_1 = values[0];
    keep_conn_flag = values[2];
    type_begin_request = values[3];
    type_end_request = values[4];
    type_params = values[5];
    type_stdin = values[6];
    type_stdout = values[7];
    type_stderr = values[8];
    role_responder = values[9];
    long_length_flag = values[10];
    copy_max = copy_max_given;
    configured = 1;
    Py_RETURN_NONE;
}

/* --- scan_request ----------------------------------------------------------------- */

/* Names repeat on every request (REQUEST_METHOD, PATH_INFO, ...): keep one bytes object per
 * name and hand it out again. That saves an allocation per pair, and a name object that was
 * hashed once keeps its hash, so the WSGI layer's look-ups of it are cheaper too. Bytes are
 * immutable, so sharing them is safe; the table is only touched with the GIL held. */
#define NAME_BITS 8
#define NAME_SLOTS (1 << NAME_BITS)
#define NAME_MAX_CACHED 64
static PyObject *name_cache[NAME_SLOTS];

/* The verdict the caller's names table gave each slot's name (scan_request_text): one
 * look-up in the table a name, not one a pair, while the table is the dict the verdicts came
 * from and unchanged since. A dict's version tag tells: every change to any dict gives it a
 * new one, never given before (CPython 3.11; 3.12 deprecated the tag, and there every pair
 * is looked up). The verdicts are borrowed from the table, which holds them while it is
 * unchanged; the table is held so that its address is never another dict's. */
#if PY_VERSION_HEX < 0x030C0000
#define VERDICTS_KEPT 1
static PyObject *verdicts_from;
static uint64_t verdicts_version;
static PyObject *verdicts[NAME_SLOTS];
#endif

static inline void
forget_verdict(Py_ssize_t slot_index)
{
#ifdef VERDICTS_KEPT
    verdicts[slot_index] = NULL;
#else
    (void)slot_index;
#endif
}

/* Whether the length bytes at a and b are the same: a name or value is a few bytes, which
 * two overlapping loads compare without a call to memcmp. */
static inline Py_ALWAYS_INLINE int
same_bytes(const unsigned char *a, const unsigned char *b, Py_ssize_t length)
{
    if (length >= 8 && length <= 16) {
        uint64_t a_head, b_head, a_tail, b_tail;
        memcpy(&a_head, a, 8);
        memcpy(&b_head, b, 8);
        memcpy(&a_tail, a + length - 8, 8);
        memcpy(&b_tail, b + length - 8, 8);
        return ((a_head ^ b_head) | (a_tail ^ b_tail)) == 0;
    }
    if (length >= 4 && length < 8) {
        uint32_t a_head, b_head, a_tail, b_tail;
        memcpy(&a_head, a, 4);
        memcpy(&b_head, b, 4);
        memcpy(&a_tail, a + length - 4, 4);
        memcpy(&b_tail, b + length - 4, 4);
        return ((a_head ^ b_head) | (a_tail ^ b_tail)) == 0;
    }
    return memcmp(a, b, (size_t)length) == 0;
}

/* A new reference to the bytes object for name, the one made before if in its slot
 * (*slot_index, or -1 for a name too long to keep). */
static inline Py_ALWAYS_INLINE PyObject *
name_object(const unsigned char *name, Py_ssize_t length, Py_ssize_t *slot_index)
{
    if (length > NAME_MAX_CACHED) {
        *slot_index = -1;
        return PyBytes_FromStringAndSize((const char *)name, length);
    }
    /* The slot from the length and the first and last eight bytes: CGI names that share a
     * length differ at one end (HTTP_ACCEPT_ENCODING / _LANGUAGE, SERVER_NAME / _PORT).
     * A byte-by-byte hash (FNV-1a) cost far more: one multiply a byte, each waiting for
     * the last. A collision only costs a fresh bytes object. */
    uint64_t head = 0, tail = 0;
    if (length >= 8) {
        memcpy(&head, name, 8);
        memcpy(&tail, name + length - 8, 8);
    }
    else {
        memcpy(&head, name, (size_t)length);
    }
    uint64_t mixed =
        ((head ^ (uint64_t)length) * 0x9E3779B97F4A7C15u) ^ (tail * 0xC2B2AE3D27D4EB4Fu);
    *slot_index = (Py_ssize_t)(mixed >> (64 - NAME_BITS));
    PyObject **slot = &name_cache[*slot_index];
    PyObject *cached = *slot;
    if (cached != NULL && PyBytes_GET_SIZE(cached) == length &&
        same_bytes((const unsigned char *)PyBytes_AS_STRING(cached), name, length)) {
        Py_INCREF(cached);
        return cached;
    }
    PyObject *fresh = PyBytes_FromStringAndSize((const char *)name, length);
    if (fresh == NULL) {
        return NULL;
    }
    Py_INCREF(fresh);
    Py_XSETREF(*slot, fresh);
    forget_verdict(*slot_index);
    return fresh;
}

/* Values repeat as well (GET, HTTP/1.1, the web server's own address, the Host): the str
 * decoded last under a name's slot is handed out again while the value's bytes are the same
 * (latin-1 decodes a byte to a character, so its characters are those bytes), instead of a
 * new str a value and its deallocation after the request. str is immutable, so sharing it
 * is safe; a slot two names share only costs a fresh str. With the GIL held only. */
#define VALUE_MAX_CACHED 64
static PyObject *value_cache[NAME_SLOTS];

static inline Py_ALWAYS_INLINE PyObject *
text_value(const unsigned char *value, Py_ssize_t length, Py_ssize_t slot_index)
{
    if (length == 0 || length > VALUE_MAX_CACHED || slot_index < 0) {
        return PyUnicode_DecodeLatin1((const char *)value, length, NULL);
    }
    PyObject *cached = value_cache[slot_index];
    if (cached != NULL && PyUnicode_GET_LENGTH(cached) == length &&
        same_bytes(PyUnicode_1BYTE_DATA(cached), value, length)) {
        return Py_NewRef(cached);
    }
    PyObject *fresh = PyUnicode_DecodeLatin1((const char *)value, length, NULL);
    if (fresh != NULL) {
        /* one byte a character: the compare above reads its data as the bytes it came from */
        assert(PyUnicode_KIND(fresh) == PyUnicode_1BYTE_KIND);
        Py_XSETREF(value_cache[slot_index], Py_NewRef(fresh));
    }
    return fresh;
}

#ifdef VERDICTS_KEPT
/* Whether the verdicts kept are names' at version, which names still is. */
static inline int
verdicts_are_for(PyObject *names, uint64_t version)
{
    return verdicts_from == names && verdicts_version == version &&
           ((PyDictObject *)names)->ma_version_tag == version;
}
#endif

/* What names says of name, the object name_object gave for slot_index (borrowed); NULL
 * for no verdict, with an error set if the look-up failed. A look-up can run code (a key's
 * __eq__, freeing the table before), which can change names or the verdicts kept: they are
 * only read and kept while verdicts_are_for says so. */
static PyObject *
verdict(PyObject *names, PyObject *name, Py_ssize_t slot_index)
{
#ifdef VERDICTS_KEPT
    if (slot_index < 0) {
        return PyDict_GetItemWithError(names, name);
    }
    uint64_t version = ((PyDictObject *)names)->ma_version_tag;
    if (!verdicts_are_for(names, version)) {
        memset(verdicts, 0, sizeof(verdicts));
        PyObject *before = verdicts_from;
        verdicts_from = Py_NewRef(names);
        verdicts_version = version;
        Py_XDECREF(before);
        if (!verdicts_are_for(names, version)) {
            return PyDict_GetItemWithError(names, name);
        }
    }
    PyObject *known = verdicts[slot_index];
    if (known == NULL) {
        known = PyDict_GetItemWithError(names, name);
        if (known != NULL && verdicts_are_for(names, version)) {
            verdicts[slot_index] = known;
        }
    }
    return known;
#else
    (void)slot_index;
    return PyDict_GetItemWithError(names, name);
#endif
}

/* Read one pair length at *offset; -1 when the buffer ends first. */
static inline Py_ALWAYS_INLINE Py_ssize_t
pair_length(const unsigned char *data, Py_ssize_t end, Py_ssize_t *offset)
{
    Py_ssize_t at = *offset;
    if (at >= end) {
        return -1;
    }
    if (!(data[at] & long_length_flag)) {
        *offset = at + 1;
        return data[at];
    }
    if (end - at < 4) {
        return -1;
    }
    *offset = at + 4;
    return (Py_ssize_t)(((uint32_t)(data[at] & ~long_length_flag & 0xFF) << 24) |
                        ((uint32_t)data[at + 1] << 16) |
                        ((uint32_t)data[at + 2] << 8) | (uint32_t)data[at + 3]);
}

/* How many name-value pairs data holds, up to max_pairs + 1 (their lengths only: nothing
 * is made for pairs the ordinary path will parse); -1 when a length runs past the end. */
static Py_ssize_t
count_pairs(const unsigned char *data, Py_ssize_t end, Py_ssize_t max_pairs)
{
    Py_ssize_t offset = 0, count = 0;
    while (offset < end && count <= max_pairs) {
        Py_ssize_t name_length = pair_length(data, end, &offset);
        Py_ssize_t value_length = name_length < 0 ? -1 : pair_length(data, end, &offset);
        if (value_length < 0 || name_length > end - offset ||
            value_length > end - offset - name_length) {
            return -1;
        }
        offset += name_length + value_length;
        count++;
    }
    return count;
}

/* Decode the pair_count pairs of data, which count_pairs found whole, into params (last
 * value wins) and the names seen twice into *duplicates (created on the first one). 0 when
 * done, -1 on error. */
static int
decode_params(const unsigned char *data, Py_ssize_t end, Py_ssize_t pair_count,
              PyObject *params, PyObject **duplicates)
{
    Py_ssize_t offset = 0;
    for (Py_ssize_t count = 0; count < pair_count; count++) {
        Py_ssize_t name_length = pair_length(data, end, &offset);
        Py_ssize_t value_length = pair_length(data, end, &offset);
        Py_ssize_t slot_index;
        PyObject *name = name_object(data + offset, name_length, &slot_index);
        if (name == NULL) {
            return -1;
        }
        PyObject *value = PyBytes_FromStringAndSize(
            (const char *)data + offset + name_length, value_length);
        if (value == NULL) {
            Py_DECREF(name);
            return -1;
        }
        /* A name seen before replaces its value and leaves the size as it was: one look-up
         * in the dict instead of a PyDict_Contains and then the store. */
        Py_ssize_t size = PyDict_GET_SIZE(params);
        int failed = PyDict_SetItem(params, name, value) < 0;
        if (!failed && PyDict_GET_SIZE(params) == size) {
            if (*duplicates == NULL) {
                *duplicates = PySet_New(NULL);
            }
            failed = *duplicates == NULL || PySet_Add(*duplicates, name) < 0;
        }
        Py_DECREF(name);
        Py_DECREF(value);
        if (failed) {
            return -1;
        }
        offset += name_length + value_length;
    }
    return 0;
}

/* Decode the pair_count pairs of data, which count_pairs found whole, as text: each name is
 * looked up in names (the caller's: bytes -> the str to store its value under, or None to
 * leave the pair out) and its value decoded latin-1 into params; the names seen twice go
 * into *duplicates as bytes, as decode_params does. 1 when done, 0 for a name names does
 * not hold (the caller's to decide: the scan declines), -1 on error. */
static int
decode_text_params(const unsigned char *data, Py_ssize_t end, Py_ssize_t pair_count,
                   PyObject *names, PyObject *params, PyObject **duplicates)
{
    Py_ssize_t offset = 0;
    PyObject *left_out = NULL; /* the names left out so far, to tell one sent twice */
    int result = 1;
    for (Py_ssize_t count = 0; count < pair_count && result == 1; count++) {
        Py_ssize_t name_length = pair_length(data, end, &offset);
        Py_ssize_t value_length = pair_length(data, end, &offset);
        Py_ssize_t slot_index;
        PyObject *name = name_object(data + offset, name_length, &slot_index);
        if (name == NULL) {
            result = -1;
            break;
        }
        PyObject *key = verdict(names, name, slot_index); /* borrowed */
        int seen_twice = 0;
        if (key == NULL) {
            result = PyErr_Occurred() ? -1 : 0;
        }
        else if (key == Py_None) {
            if (left_out == NULL && (left_out = PySet_New(NULL)) == NULL) {
                result = -1;
            }
            else {
                Py_ssize_t size = PySet_GET_SIZE(left_out);
                result = PySet_Add(left_out, name) < 0 ? -1 : 1;
                seen_twice = PySet_GET_SIZE(left_out) == size;
            }
        }
        else {
            Py_INCREF(key); /* storing can run code that changes names */
            PyObject *value = text_value(data + offset + name_length, value_length, slot_index);
            Py_ssize_t size = PyDict_GET_SIZE(params);
            result = value == NULL || PyDict_SetItem(params, key, value) < 0 ? -1 : 1;
            seen_twice = result == 1 && PyDict_GET_SIZE(params) == size;
            Py_XDECREF(value);
            Py_DECREF(key);
        }
        if (seen_twice) {
            if (*duplicates == NULL) {
                *duplicates = PySet_New(NULL);
            }
            result = *duplicates == NULL || PySet_Add(*duplicates, name) < 0 ? -1 : 1;
        }
        Py_DECREF(name);
        offset += name_length + value_length;
    }
    Py_XDECREF(left_out);
    return result;
}

typedef struct {
    int version;
    int type;
    int request_id;
    Py_ssize_t content_start;
    Py_ssize_t content_length;
    Py_ssize_t record_end;
} Record;

/* The record at offset, if it is whole and version 1; 0 if not. */
static inline Py_ALWAYS_INLINE int
read_record(const unsigned char *data, Py_ssize_t end, Py_ssize_t offset, Record *record)
{
    if (end - offset < HEADER_LEN || data[offset] != version_1) {
        return 0;
    }
    record->type = data[offset + 1];
    record->request_id = data[offset + 2] << 8 | data[offset + 3];
    record->content_length = data[offset + 4] << 8 | data[offset + 5];
    record->content_start = offset + HEADER_LEN;
    Py_ssize_t padding = data[offset + 6];
    if (end - record->content_start < record->content_length + padding) {
        return 0;
    }
    record->record_end = record->content_start + record->content_length + padding;
    return 1;
}

/* The params spread over several records, joined (one record: no copy). */
typedef struct {
    const unsigned char *first;
    Py_ssize_t first_length;
    unsigned char *joined; /* PyMem_Malloc'd once a second record comes */
    Py_ssize_t length;
    Py_ssize_t capacity;
} Params;

static int
params_add(Params *params, const unsigned char *content, Py_ssize_t length)
{
    if (params->length == 0) {
        params->first = content;
        params->first_length = length;
        params->length = length;
        return 0;
    }
    if (params->joined == NULL || params->length + length > params->capacity) {
        Py_ssize_t capacity = (params->length + length) * 2;
        unsigned char *grown = PyMem_Realloc(params->joined, (size_t)capacity);
        if (grown == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        if (params->joined == NULL) {
            memcpy(grown, params->first, (size_t)params->first_length);
        }
        params->joined = grown;
        params->capacity = capacity;
    }
    memcpy(params->joined + params->length, content, (size_t)length);
    params->length += length;
    return 0;
}

PyDoc_STRVAR(scan_request_doc,
"scan_request(data, max_params_size, max_decoded_pairs, /)\n--\n\n"
"``data`` holding exactly one whole ordinary Responder request's input (BEGIN_REQUEST,\n"
"PARAMS to its end, with at most max_decoded_pairs pairs, then FCGI_STDIN records,\n"
"possibly to its end) as ``(request_id, keep_conn, params, duplicate_names, stdin_chunks,\n"
"stdin_ended, params_size)``; None for anything else, which the caller then parses the\n"
"ordinary way. Its Python twin: fcgikit.protocol.whole_request.scan_request_py.");

PyDoc_STRVAR(scan_request_text_doc,
"scan_request_text(data, max_params_size, max_decoded_pairs, names, room, /)\n--\n\n"
"What scan_request answers, its params as ``(encoded, text)``: the pairs' bytes, and a dict\n"
"(with room for ``room`` more keys) of each value decoded latin-1 under the str that\n"
"``names`` (a dict: bytes name -> str, or None to leave the pair out) gives its name; None\n"
"as well for a name ``names`` does not hold. Its Python twin:\n"
"fcgikit.protocol.whole_request.scan_request_text_py.");

/* scan_request, and with names (not NULL) scan_request_text. */
static PyObject *
scan(PyObject *const *args, PyObject *names, Py_ssize_t room)
{
    if (!check_configured()) {
        return NULL;
    }
    Py_ssize_t max_params_size = PyLong_AsSsize_t(args[1]);
    if (max_params_size == -1 && PyErr_Occurred()) {
        return NULL;
    }
    Py_ssize_t max_pairs = PyLong_AsSsize_t(args[2]);
    if (max_pairs == -1 && PyErr_Occurred()) {
        return NULL;
    }
    Py_buffer buffer;
    if (PyObject_GetBuffer(args[0], &buffer, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    const unsigned char *data = buffer.buf;
    Py_ssize_t end = buffer.len;
    PyObject *result = NULL, *params = NULL, *duplicates = NULL, *stdin_chunks = NULL;
    Params joined = {NULL, 0, NULL, 0, 0};
    Record record;

    /* FCGI_BEGIN_REQUEST, for a Responder, with a real request id and an 8-byte body */
    if (!read_record(data, end, 0, &record) || record.type != type_begin_request ||
        record.request_id == 0 || record.content_length != BEGIN_REQUEST_BODY_LEN ||
        (data[record.content_start] << 8 | data[record.content_start + 1]) != role_responder) {
        goto ordinary_path;
    }
    int request_id = record.request_id;
    int keep_conn = (data[record.content_start + 2] & keep_conn_flag) != 0;
    Py_ssize_t offset = record.record_end;

    /* FCGI_PARAMS up to its empty record */
    for (;;) {
        if (!read_record(data, end, offset, &record) || record.type != type_params ||
            record.request_id != request_id) {
            goto ordinary_path;
        }
        offset = record.record_end;
        if (record.content_length == 0) {
            break;
        }
        if (record.content_length > max_params_size - joined.length) {
            goto ordinary_path; /* over the cap: the ordinary path says so */
        }
        if (params_add(&joined, data + record.content_start, record.content_length) < 0) {
            goto done;
        }
    }

    /* FCGI_STDIN records, all whole; the empty one, if here, must be the last bytes. Checked
     * before anything is copied: the first read of a large upload is a cut record, and
     * copying its 256 KiB only to decline would cost the ordinary path a second copy. */
    Py_ssize_t stdin_start = offset;
    int stdin_ended = 0;
    while (offset < end) {
        if (stdin_ended || !read_record(data, end, offset, &record) || record.type != type_stdin ||
            record.request_id != request_id) {
            goto ordinary_path;
        }
        offset = record.record_end;
        stdin_ended = record.content_length == 0;
    }
    stdin_chunks = PyList_New(0);
    if (stdin_chunks == NULL) {
        goto done;
    }
    for (offset = stdin_start; offset < end; offset = record.record_end) {
        read_record(data, end, offset, &record);
        if (record.content_length == 0) {
            continue;
        }
        PyObject *chunk = PyBytes_FromStringAndSize(
            (const char *)data + record.content_start, record.content_length);
        if (chunk == NULL || PyList_Append(stdin_chunks, chunk) < 0) {
            Py_XDECREF(chunk);
            goto done;
        }
        Py_DECREF(chunk);
    }

    const unsigned char *pairs = joined.joined != NULL ? joined.joined : joined.first;
    Py_ssize_t pair_count = count_pairs(pairs, joined.length, max_pairs);
    if (pair_count < 0 || pair_count > max_pairs) {
        goto ordinary_path; /* malformed, or too many: the ordinary path says so */
    }
    /* Sized for its pairs at once (see _speedups_wsgi_codec.c for _PyDict_NewPresized):
     * PyDict_New() would grow it twice for nginx's 18 params. */
    params = _PyDict_NewPresized(pair_count + room);
    if (params == NULL) {
        goto done;
    }
    if (names == NULL) {
        if (decode_params(pairs, joined.length, pair_count, params, &duplicates) < 0) {
            goto done;
        }
    }
    else {
        int decoded =
            decode_text_params(pairs, joined.length, pair_count, names, params, &duplicates);
        if (decoded <= 0) {
            if (decoded == 0) {
                goto ordinary_path; /* a name the caller has no verdict for */
            }
            goto done;
        }
        PyObject *encoded = PyBytes_FromStringAndSize((const char *)pairs, joined.length);
        if (encoded == NULL) {
            goto done;
        }
        PyObject *pair = PyTuple_New(2);
        if (pair == NULL) {
            Py_DECREF(encoded);
            goto done;
        }
        PyTuple_SET_ITEM(pair, 0, encoded);
        PyTuple_SET_ITEM(pair, 1, params);
        params = pair;
    }
    /* The tuple filled directly: Py_BuildValue parses its format string at every call, and
     * PyTuple_Pack walks its varargs. */
    PyObject *id = PyLong_FromLong(request_id);
    PyObject *params_size = PyLong_FromSsize_t(joined.length);
    result = id != NULL && params_size != NULL ? PyTuple_New(7) : NULL;
    if (result == NULL) {
        Py_XDECREF(id);
        Py_XDECREF(params_size);
        goto done;
    }
    PyTuple_SET_ITEM(result, 0, id);
    PyTuple_SET_ITEM(result, 1, Py_NewRef(keep_conn ? Py_True : Py_False));
    PyTuple_SET_ITEM(result, 2, Py_NewRef(params));
    PyTuple_SET_ITEM(result, 3, Py_NewRef(duplicates != NULL ? duplicates : Py_None));
    PyTuple_SET_ITEM(result, 4, Py_NewRef(stdin_chunks));
    PyTuple_SET_ITEM(result, 5, Py_NewRef(stdin_ended ? Py_True : Py_False));
    PyTuple_SET_ITEM(result, 6, params_size);
    goto done;

ordinary_path:
    result = Py_NewRef(Py_None);
done:
    PyMem_Free(joined.joined);
    Py_XDECREF(params);
    Py_XDECREF(duplicates);
    Py_XDECREF(stdin_chunks);
    PyBuffer_Release(&buffer);
    return result;
}

static PyObject *
scan_request(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError,
                        "scan_request() takes data, max_params_size and max_decoded_pairs");
        return NULL;
    }
    return scan(args, NULL, 0);
}

static PyObject *
scan_request_text(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 5) {
        PyErr_SetString(PyExc_TypeError, "scan_request_text() takes data, max_params_size, "
                                         "max_decoded_pairs, names and room");
        return NULL;
    }
    if (!PyDict_CheckExact(args[3])) {
        PyErr_SetString(PyExc_TypeError, "scan_request_text(): names must be a dict");
        return NULL;
    }
    Py_ssize_t room = PyLong_AsSsize_t(args[4]);
    if (room < 0) {
        if (!PyErr_Occurred()) {
            PyErr_SetString(PyExc_ValueError, "scan_request_text(): room must be 0 or more");
        }
        return NULL;
    }
    return scan(args, args[3], room);
}

static unsigned char *
put_header(unsigned char *out, long type, int request_id, Py_ssize_t length, int padding)
{
    out[0] = (unsigned char)version_1;
    out[1] = (unsigned char)type;
    out[2] = (unsigned char)(request_id >> 8);
    out[3] = (unsigned char)request_id;
    out[4] = (unsigned char)(length >> 8);
    out[5] = (unsigned char)length;
    out[6] = (unsigned char)padding;
    out[7] = 0;
    return out + HEADER_LEN;
}

PyDoc_STRVAR(frame_end_doc,
"frame_end(request_id, pieces, app_status, protocol_status, close_stdout, close_stderr, /)\n"
"--\n\n"
"The bytes that end a request: ``pieces`` (bytes, fewer than COPY_MAX in all) as one\n"
"FCGI_STDOUT record, the empty FCGI_STDOUT (if there was stdout, or ``close_stdout``),\n"
"the empty FCGI_STDERR (if ``close_stderr``), FCGI_END_REQUEST. None for other pieces.\n"
"Its Python twin: fcgikit.protocol.output.frame_end_py (which answers a list of that one\n"
"buffer, and frames the other pieces too).");

static PyObject *
frame_end(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (!check_configured()) {
        return NULL;
    }
    if (nargs != 6) {
        PyErr_SetString(PyExc_TypeError, "frame_end() takes 6 arguments");
        return NULL;
    }
    long request_id = PyLong_AsLong(args[0]);
    unsigned long app_status = PyLong_AsUnsignedLong(args[2]);
    long protocol_status = PyLong_AsLong(args[3]);
    int close_stdout = PyObject_IsTrue(args[4]);
    int close_stderr = PyObject_IsTrue(args[5]);
    if (PyErr_Occurred() || close_stdout < 0 || close_stderr < 0) {
        return NULL;
    }
    if (request_id < 1 || request_id > 0xFFFF || app_status > 0xFFFFFFFFul ||
        protocol_status < 0 || protocol_status > 0xFF) {
        PyErr_SetString(PyExc_ValueError, "frame_end(): a field out of range");
        return NULL;
    }
    PyObject *pieces = args[1];
    if (!PyTuple_CheckExact(pieces) && !PyList_CheckExact(pieces)) {
        Py_RETURN_NONE;
    }
    Py_ssize_t count = PySequence_Fast_GET_SIZE(pieces);
    PyObject **items = PySequence_Fast_ITEMS(pieces);
    Py_ssize_t total = 0;
    for (Py_ssize_t i = 0; i < count; i++) {
        if (!PyBytes_CheckExact(items[i])) {
            Py_RETURN_NONE;
        }
        total += PyBytes_GET_SIZE(items[i]);
        if (total >= copy_max) {
            Py_RETURN_NONE;
        }
    }
    int padding = (int)(-total & 7);
    if (total) {
        close_stdout = 1;
    }
    Py_ssize_t size = (total ? HEADER_LEN + total + padding : 0) +
                      (close_stdout ? HEADER_LEN : 0) + (close_stderr ? HEADER_LEN : 0) +
                      2 * HEADER_LEN;
    PyObject *framed = PyBytes_FromStringAndSize(NULL, size);
    if (framed == NULL) {
        return NULL;
    }
    unsigned char *out = (unsigned char *)PyBytes_AS_STRING(framed);
    if (total) {
        out = put_header(out, type_stdout, (int)request_id, total, padding);
        for (Py_ssize_t i = 0; i < count; i++) {
            Py_ssize_t length = PyBytes_GET_SIZE(items[i]);
            memcpy(out, PyBytes_AS_STRING(items[i]), (size_t)length);
            out += length;
        }
        memset(out, 0, (size_t)padding);
        out += padding;
    }
    if (close_stdout) {
        out = put_header(out, type_stdout, (int)request_id, 0, 0);
    }
    if (close_stderr) {
        out = put_header(out, type_stderr, (int)request_id, 0, 0);
    }
    out = put_header(out, type_end_request, (int)request_id, END_REQUEST_BODY_LEN, 0);
    out[0] = (unsigned char)(app_status >> 24);
    out[1] = (unsigned char)(app_status >> 16);
    out[2] = (unsigned char)(app_status >> 8);
    out[3] = (unsigned char)app_status;
    out[4] = (unsigned char)protocol_status;
    memset(out + 5, 0, 3);
    return framed;
}

/* --- SlotsFactory ----------------------------------------------------------------- */

/* Makes instances of a frozen dataclass with __slots__ (RequestReceived: one a request)
 * without its generated __init__, which is interpreted Python setting each field through
 * object.__setattr__; calling each slot descriptor's __set__ instead (its Python twin,
 * lanes.request_received_py) still costs several times what this does. The factory finds
 * the slots' offsets once, by name, in the class's own members, and fills a fresh instance in
 * place: what the descriptors' __set__ would store. It accepts only a class of object whose
 * every slot it fills, so no field is ever left unset; no __init__ or __post_init__ runs,
 * which is why lanes.py uses it only for RequestReceived, whose __init__ only stores its
 * arguments (tests/protocol/test_speedups.py compares the three ways to make one). */

#define FACTORY_MAX_FIELDS 8

typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    PyTypeObject *cls;
    Py_ssize_t count;
    Py_ssize_t offsets[FACTORY_MAX_FIELDS];
} SlotsFactory;

static PyObject *
factory_call(PyObject *op, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    SlotsFactory *self = (SlotsFactory *)op;
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    if ((kwnames != NULL && PyTuple_GET_SIZE(kwnames) != 0) || nargs != self->count) {
        PyErr_Format(PyExc_TypeError, "%.100s factory takes exactly %zd positional arguments",
                     self->cls->tp_name, self->count);
        return NULL;
    }
    PyObject *instance = self->cls->tp_alloc(self->cls, 0);
    if (instance == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = 0; i < nargs; i++) {
        *(PyObject **)((char *)instance + self->offsets[i]) = Py_NewRef(args[i]);
    }
    return instance;
}

static PyObject *
factory_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    PyObject *cls_object, *names;
    if ((kwargs != NULL && PyDict_GET_SIZE(kwargs) != 0) ||
        !PyArg_ParseTuple(args, "O!O!:SlotsFactory", &PyType_Type, &cls_object, &PyTuple_Type,
                          &names)) {
        if (!PyErr_Occurred()) {
            PyErr_SetString(PyExc_TypeError, "SlotsFactory(cls, names) takes no keywords");
        }
        return NULL;
    }
    PyTypeObject *cls = (PyTypeObject *)cls_object;
    Py_ssize_t count = PyTuple_GET_SIZE(names);
    /* The slots of cls and of each base it is laid out on (a base with no slots of its own,
     * as collections.abc's, adds none), down to object: each must be named. */
    Py_ssize_t members = 0;
    int slots_only = 1;
    for (PyTypeObject *base = cls; base != &PyBaseObject_Type; base = base->tp_base) {
        if (base == NULL || base->tp_itemsize != 0 || base->tp_dictoffset != 0) {
            slots_only = 0;
            break;
        }
        for (PyMemberDef *member = base->tp_members; member != NULL && member->name != NULL;
             member++) {
            members++;
        }
    }
    if (!slots_only || count > FACTORY_MAX_FIELDS || count != members) {
        PyErr_Format(PyExc_TypeError,
                     "SlotsFactory: %.100s must be a class with __slots__ and no __dict__, "
                     "as its bases, and names must list each of its %zd slots",
                     cls->tp_name, members);
        return NULL;
    }
    SlotsFactory *self = (SlotsFactory *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->vectorcall = factory_call;
    self->count = count;
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *name = PyTuple_GET_ITEM(names, i);
        const char *text = PyUnicode_Check(name) ? PyUnicode_AsUTF8(name) : NULL;
        PyMemberDef *found = NULL;
        for (PyTypeObject *base = cls; base != &PyBaseObject_Type; base = base->tp_base) {
            for (PyMemberDef *member = base->tp_members;
                 text != NULL && member != NULL && member->name != NULL; member++) {
                if (strcmp(member->name, text) == 0 && member->type == T_OBJECT_EX &&
                    !(member->flags & READONLY)) {
                    found = member;
                }
            }
        }
        for (Py_ssize_t j = 0; found != NULL && j < i; j++) {
            if (self->offsets[j] == found->offset) {
                found = NULL; /* a name given twice would leave another slot unset */
            }
        }
        if (found == NULL) {
            PyErr_Clear();
            PyErr_Format(PyExc_TypeError, "SlotsFactory: %.100s has no writable slot %R",
                         cls->tp_name, name);
            Py_DECREF(self);
            return NULL;
        }
        self->offsets[i] = found->offset;
    }
    self->cls = (PyTypeObject *)Py_NewRef(cls_object);
    return (PyObject *)self;
}

static void
factory_dealloc(PyObject *op)
{
    PyTypeObject *type = Py_TYPE(op);
    Py_XDECREF(((SlotsFactory *)op)->cls);
    type->tp_free(op);
    Py_DECREF(type);
}

static PyMemberDef factory_members[] = {
    {"__vectorcalloffset__", T_PYSSIZET, offsetof(SlotsFactory, vectorcall), READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

PyDoc_STRVAR(factory_doc,
"SlotsFactory(cls, names)\n--\n\n"
"Calling it with one value per name makes a cls whose slot of each name holds its value,\n"
"without cls's __init__ (its Python twin: fcgikit.protocol.lanes.request_received_py).");

static PyType_Slot factory_slots[] = {
    {Py_tp_new, factory_new},
    {Py_tp_dealloc, factory_dealloc},
    {Py_tp_call, PyVectorcall_Call},
    {Py_tp_members, factory_members},
    {Py_tp_doc, (void *)factory_doc},
    {0, NULL},
};

static PyType_Spec factory_spec = {
    .name = "fcgikit.protocol._speedups.SlotsFactory",
    .basicsize = sizeof(SlotsFactory),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_VECTORCALL,
    .slots = factory_slots,
};

/* --- cut_run: a run of one request's stream records, one view each ------------------- */

PyDoc_STRVAR(cut_run_doc,
"cut_run(view, offset, record_type, request_id, views, /)\n"
"--\n\n"
"From ``offset`` in ``view`` (a 1-D memoryview of bytes), append to ``views`` a slice of\n"
"``view`` for the content of each complete, non-empty, version-1 record of ``record_type``\n"
"for ``request_id``, one after the other; return where the first record that is not one\n"
"of them (another type or id, an empty or incomplete one, a bad version) or the end begins.\n"
"None for a view that is not contiguous bytes, or an offset outside it. Its Python twin:\n"
"fcgikit.protocol.record_reader.cut_run_py.");

static PyObject *
cut_run(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 5) {
        PyErr_SetString(PyExc_TypeError,
                        "cut_run() takes view, offset, record_type, request_id and views");
        return NULL;
    }
    if (!check_configured()) {
        return NULL;
    }
    PyObject *view = args[0], *views = args[4];
    if (!PyMemoryView_Check(view) || !PyList_Check(views)) {
        PyErr_SetString(PyExc_TypeError, "cut_run(): view must be a memoryview, views a list");
        return NULL;
    }
    Py_ssize_t offset = PyLong_AsSsize_t(args[1]);
    if (offset == -1 && PyErr_Occurred()) {
        return NULL;
    }
    long record_type = PyLong_AsLong(args[2]);
    if (record_type == -1 && PyErr_Occurred()) {
        return NULL;
    }
    long request_id = PyLong_AsLong(args[3]);
    if (request_id == -1 && PyErr_Occurred()) {
        return NULL;
    }
    Py_buffer *shape = PyMemoryView_GET_BUFFER(view);
    Py_buffer buffer;
    /* (a released view fails here; its twin raises what slicing it raises) */
    if (shape->ndim != 1 || shape->itemsize != 1 ||
        PyObject_GetBuffer(view, &buffer, PyBUF_SIMPLE) < 0) {
        PyErr_Clear();
        Py_RETURN_NONE;
    }
    const unsigned char *data = buffer.buf;
    Py_ssize_t end = buffer.len;
    if (offset < 0 || offset > end) { /* (never given: the twin's would count from the end) */
        PyBuffer_Release(&buffer);
        Py_RETURN_NONE;
    }
    PyObject *result = NULL;
    while (end - offset >= HEADER_LEN) {
        const unsigned char *header = data + offset;
        Py_ssize_t content_length = (Py_ssize_t)header[4] << 8 | header[5];
        Py_ssize_t content_start = offset + HEADER_LEN;
        Py_ssize_t record_end = content_start + content_length + header[6];
        if (header[0] != version_1 || header[1] != record_type ||
            ((long)header[2] << 8 | header[3]) != request_id || content_length == 0 ||
            record_end > end) {
            break;
        }
        PyObject *content = PySequence_GetSlice(view, content_start,
                                                content_start + content_length);
        if (content == NULL) {
            goto done;
        }
        int appended = PyList_Append(views, content);
        Py_DECREF(content);
        if (appended < 0) {
            goto done;
        }
        offset = record_end;
    }
    result = PyLong_FromSsize_t(offset);
done:
    PyBuffer_Release(&buffer);
    return result;
}

static PyMethodDef methods[] = {
    {"configure", configure, METH_O, configure_doc},
    {"scan_request", (PyCFunction)(void (*)(void))scan_request, METH_FASTCALL, scan_request_doc},
    {"scan_request_text", (PyCFunction)(void (*)(void))scan_request_text, METH_FASTCALL,
     scan_request_text_doc},
    {"frame_end", (PyCFunction)(void (*)(void))frame_end, METH_FASTCALL, frame_end_doc},
    {"cut_run", (PyCFunction)(void (*)(void))cut_run, METH_FASTCALL, cut_run_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "fcgikit.protocol._speedups",
    .m_doc = "The fast lanes for an ordinary request and a small response (see connection.py).",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    PyObject *created = PyModule_Create(&module);
    if (created == NULL) {
        return NULL;
    }
#ifdef Py_GIL_DISABLED
    /* Free-threaded CPython must keep the GIL on for this module: name_cache[] and
       value_cache[] are process-wide arrays that the scans fill without a lock. (A single-phase module
       says so with this call; Py_mod_gil is the slot of multi-phase ones.) */
    if (PyUnstable_Module_SetGIL(created, Py_MOD_GIL_USED) < 0) {
        Py_DECREF(created);
        return NULL;
    }
#endif
    PyObject *factory_type = PyType_FromSpec(&factory_spec);
    if (factory_type == NULL || PyModule_AddObject(created, "SlotsFactory", factory_type) < 0) {
        Py_XDECREF(factory_type);
        Py_DECREF(created);
        return NULL;
    }
    return created;
}
