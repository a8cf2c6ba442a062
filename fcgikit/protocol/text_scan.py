"""An ordinary request read whole in one pass, its params decoded as text on the way.

:func:`scan_request_text_py` is the Python twin of the C lane ``scan_request_text``
(lanes.py): one walk over the buffer's records, taking exactly what
:func:`~fcgikit.protocol.whole_request.scan_request_py` takes (a ServerConnection's ordinary
request, which the property tests hold both lanes to), its params decoded once, latin-1,
into the dict the caller will make its own (a WSGI server: its environ). Where the C lane
was not built, the pure-Python server runs this instead of a ServerConnection's
record-by-record reading: for a connection's first request (the direct lane) and for each
that follows on a kept connection
(:class:`~fcgikit.protocol.server_connection.ServerConnection`'s ``names``).

The caller decides what each name becomes, in its :data:`~fcgikit.protocol.lanes.NameTable`;
a name it has no verdict on makes the scan decline, and the caller reads the request the
ordinary way (and then has one).
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from typing import Final

from fcgikit.errors import RemoteProtocolError
from fcgikit.protocol.constants import (
    FCGI_HEADER_LEN,
    FCGI_KEEP_CONN,
    FCGI_VERSION_1,
    RecordType,
    Role,
)
from fcgikit.protocol.lanes import NameTable, ScannedText
from fcgikit.protocol.name_value_pairs import decode_pairs, decode_params
from fcgikit.protocol.records import BEGIN_REQUEST_BODY, HEADER

__all__ = ["scan_request_text_py", "text_params"]

_BEGIN_REQUEST: Final = int(RecordType.BEGIN_REQUEST)
_PARAMS: Final = int(RecordType.PARAMS)
_STDIN: Final = int(RecordType.STDIN)
_RESPONDER: Final = int(Role.RESPONDER)
#: FCGI_BEGIN_REQUEST's body: role (2 bytes), flags, 5 reserved
_BEGIN_BODY_LEN: Final = 8
#: a record's header, read in one call
_read_header: Final = HEADER.unpack_from
#: FCGI_BEGIN_REQUEST and the header of the record after it: the least a request can be
_BEGIN_AND_HEADER: Final = 2 * FCGI_HEADER_LEN + _BEGIN_BODY_LEN
#: the first record's header, its FCGI_BEGIN_REQUEST body (role, flags) and the next
#: record's header, in one call
_read_begin_and_header: Final = struct.Struct(
    HEADER.format + BEGIN_REQUEST_BODY.format[1:] + HEADER.format[1:]
).unpack_from
#: two records' headers in one call: what ends a GET's params, in the usual GET
_read_two_headers: Final = struct.Struct(HEADER.format + HEADER.format[1:]).unpack_from
_TWO_HEADERS_LEN: Final = 2 * FCGI_HEADER_LEN


def text_params(params: Mapping[bytes, bytes], names: NameTable) -> dict[str, str] | None:
    """Each value of ``params`` decoded latin-1 under the str ``names`` gives its name, the
    pairs it gives None left out; None when it has no verdict on a name."""
    try:
        keys = list(map(names.__getitem__, params))
    except KeyError:
        return None
    # All values in one decode: NUL, the separator, may only be in a peer's mischief, and
    # then the pieces are more than the values.
    values = b"\0".join(params.values()).decode("latin-1").split("\0")
    if len(values) != len(keys):
        values = [value.decode("latin-1") for value in params.values()]
    text: dict[str | None, str] = dict(zip(keys, values, strict=True))
    text.pop(None, None)  # the pairs left out, all under one key
    return text  # type: ignore[return-value]


def _walk_records(
    data: bytes | bytearray | memoryview, max_params_size: int
) -> tuple[int, bool, bytes, list[bytes], bool] | None:
    """Request id, keep_conn, the FCGI_PARAMS stream's bytes, the body's chunks and whether
    it ended, of the ordinary request ``data`` holds as whole records; None if it is not one.
    Each header is read where it lies, and only what is kept is copied: an upload's first
    read, which ends in a cut record, is declined having copied none of its body."""
    end = len(data)
    if end < _BEGIN_AND_HEADER:
        return None
    # FCGI_BEGIN_REQUEST and the first FCGI_PARAMS header in one call (interpreted, a call
    # and its tuple cost more than the fields' checks)
    (
        version,
        record_type,
        request_id,
        length,
        begin_padding,
        role,
        flags,
        params_version,
        params_type,
        params_id,
        params_length,
        params_padding,
    ) = _read_begin_and_header(data, 0)
    if (
        version != FCGI_VERSION_1
        or record_type != _BEGIN_REQUEST
        or request_id == 0
        or length != _BEGIN_BODY_LEN
        or role != _RESPONDER
    ):
        return None
    offset = FCGI_HEADER_LEN + _BEGIN_BODY_LEN + begin_padding
    if begin_padding:  # (no web server pads it: the body is 8 bytes) the header is further
        if end - offset < FCGI_HEADER_LEN:
            return None
        params_version, params_type, params_id, params_length, params_padding = _read_header(
            data, offset
        )
    keep_conn = bool(flags & FCGI_KEEP_CONN)
    # The usual GET: its params in one record, then the stream's end and an empty
    # FCGI_STDIN, the two headers read and checked in one call and one comparison.
    start = offset + FCGI_HEADER_LEN
    offset = start + params_length + params_padding
    if (
        end - offset == _TWO_HEADERS_LEN
        and 0 < params_length <= max_params_size
        and params_version == FCGI_VERSION_1
        and params_type == _PARAMS
        and params_id == request_id
        and _read_two_headers(data, offset)
        == (FCGI_VERSION_1, _PARAMS, request_id, 0, 0, FCGI_VERSION_1, _STDIN, request_id, 0, 0)
    ):
        return request_id, keep_conn, bytes(data[start : start + params_length]), [], True
    pieces: list[bytes] = []
    params_size = 0
    while True:  # FCGI_PARAMS up to its empty record
        if (
            offset > end
            or params_version != FCGI_VERSION_1
            or params_type != _PARAMS
            or params_id != request_id
        ):
            return None
        if not params_length:
            break
        params_size += params_length
        if params_size > max_params_size:
            return None
        pieces.append(bytes(data[start : start + params_length]))
        if end - offset < FCGI_HEADER_LEN:
            return None
        params_version, params_type, params_id, params_length, params_padding = _read_header(
            data, offset
        )
        start = offset + FCGI_HEADER_LEN
        offset = start + params_length + params_padding
    body: list[tuple[int, int]] = []
    stdin_ended = False
    while offset < end:  # then FCGI_STDIN, maybe up to its empty record, and nothing more
        if stdin_ended or end - offset < FCGI_HEADER_LEN:
            return None
        version, record_type, record_id, length, padding = _read_header(data, offset)
        start = offset + FCGI_HEADER_LEN
        offset = start + length + padding
        if (
            offset > end
            or version != FCGI_VERSION_1
            or record_type != _STDIN
            or record_id != request_id
        ):
            return None
        if length:
            body.append((start, start + length))
        else:
            stdin_ended = True
    encoded = pieces[0] if len(pieces) == 1 else b"".join(pieces)
    # (a GET's body is empty: no comprehension, which is a call of its own, interpreted)
    chunks = [bytes(data[start:stop]) for start, stop in body] if body else []
    return request_id, keep_conn, encoded, chunks, stdin_ended


def _ascii_text_pairs(
    encoded: bytes, max_pairs: int, names: NameTable
) -> tuple[dict[str | None, str], int] | None:
    """The pairs of ``encoded``, an ASCII stream (so every length is the one-byte form), as
    text by ``names``, with how many pairs there were; None when they are malformed, more
    than ``max_pairs``, or a name has no verdict. The pairs ``names`` leaves out are all
    under the key None (the caller's to drop). Each value is sliced from one decode of the
    whole stream, and no dict of bytes is made."""
    decoded = encoded.decode("latin-1")
    # each pair's value length at its name length's index: an add less a pair (an int add
    # allocates once offsets pass 256)
    value_lengths = encoded[1:]
    text: dict[str | None, str] = {}
    end = len(encoded)
    offset = count = 0
    try:
        while offset < end:
            name_start = offset + 2
            value_start = name_start + encoded[offset]
            offset = value_start + value_lengths[offset]
            # stored under the name's verdict, None too: no local and no test a pair
            # (interpreted, each is a step of every pair; the left-out share one key)
            text[names[encoded[name_start:value_start]]] = decoded[value_start:offset]
            count += 1
    except (IndexError, KeyError):
        return None
    if offset != end or count > max_pairs:  # cut short (the slices stopped at the end)
        return None
    return text, count


def _text_and_duplicates(
    encoded: bytes, max_pairs: int, names: NameTable
) -> tuple[dict[str, str], set[bytes] | None] | None:
    """The pairs of ``encoded``, a stream with a byte over 127 (a four-byte length, or a
    value's non-ASCII text), as text by ``names``, and the names sent twice; None when they
    are malformed, more than ``max_pairs``, or a name has no verdict."""
    try:
        pairs, count = decode_params(encoded)
    except RemoteProtocolError:
        return None
    text = text_params(pairs, names) if count <= max_pairs else None
    if text is None:
        return None
    return text, (None if len(pairs) == count else _sent_twice(encoded))


def _ascii_sent_twice(encoded: bytes) -> set[bytes]:
    """The names an ASCII stream's pairs (well-formed, so every length is the one-byte
    form) hold more than once, by a walk of the names alone. nginx's usual configuration
    sends one (``include fastcgi_params`` names SCRIPT_NAME, and the location names it
    again), so this runs a request there, where a whole decode would double the scan."""
    seen: set[bytes] = set()
    duplicates: set[bytes] = set()
    value_lengths = encoded[1:]
    end = len(encoded)
    offset = 0
    while offset < end:
        name_start = offset + 2
        value_start = name_start + encoded[offset]
        name = encoded[name_start:value_start]
        (duplicates if name in seen else seen).add(name)
        offset = value_start + value_lengths[offset]
    return duplicates


def _sent_twice(encoded: bytes) -> set[bytes]:
    """The names the pairs of ``encoded`` (well-formed) hold more than once."""
    seen: set[bytes] = set()
    duplicates: set[bytes] = set()
    for name, _ in decode_pairs(encoded):
        (duplicates if name in seen else seen).add(name)
    return duplicates


def scan_request_text_py(
    data: bytes | bytearray | memoryview,
    max_params_size: int,
    max_decoded_pairs: int,
    names: NameTable,
    room: int,
) -> ScannedText | None:
    """What :func:`~fcgikit.protocol.whole_request.scan_request_py` answers, its params as
    ``(encoded, text)``: the FCGI_PARAMS stream's bytes and its pairs as
    :func:`text_params` makes them; None as well for a name ``names`` has no verdict on.
    ``room`` is for the C lane, which sizes its dict for that many more keys. The Python
    twin of the C lane ``scan_request_text``: one pass over the records, then one over the
    pairs, each value decoded as text on the way."""
    found = _walk_records(data, max_params_size)
    if found is None:
        return None
    request_id, keep_conn, encoded, stdin_chunks, stdin_ended = found
    if encoded.isascii():  # what web servers send: one loop, no dict of bytes
        ascii_pairs = _ascii_text_pairs(encoded, max_decoded_pairs, names)
        if ascii_pairs is None:
            return None
        kept, count = ascii_pairs
        # A key a pair: no name twice. Fewer: a name twice, or two names left out (under
        # None both); the walk of the names says which (none, for the latter).
        duplicates = None if len(kept) == count else (_ascii_sent_twice(encoded) or None)
        if None in kept:
            del kept[None]
        text: dict[str, str] = kept  # type: ignore[assignment]  # (no None key left)
    else:
        pairs = _text_and_duplicates(encoded, max_decoded_pairs, names)
        if pairs is None:
            return None
        text, duplicates = pairs
    return (
        request_id,
        keep_conn,
        (encoded, text),
        duplicates,
        stdin_chunks,
        stdin_ended,
        len(encoded),
    )
