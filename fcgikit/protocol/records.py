"""The FastCGI wire format: record headers, padding, and record framing.

Everything here is stateless; :mod:`fcgikit.protocol.record_reader` cuts a byte stream into
records. What a record *means* (which ones are allowed when) is the business of the state
tables (:mod:`fcgikit.protocol.state`) and the connections that follow them.

Why it looks the way it does:

* Writing splits content at 65,535 bytes (``contentLength`` is 16 bits; fcgiproto forgot this)
  and pads every record to a multiple of 8, as the spec recommends. :func:`frame_records`
  frames content where it lies, as a list of buffers for ``socket.sendmsg``, so a large
  response body is not copied on its way out.
* Peer input can only ever raise :class:`~fcgikit.errors.RemoteProtocolError`.

The name-value pairs that FCGI_PARAMS and FCGI_GET_VALUES carry are encoded and decoded by
:mod:`fcgikit.protocol.name_value_pairs`; its public names stay importable from here too,
where tests, benchmarks and the integration tests' recorder import them.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Final, NamedTuple

from fcgikit.protocol.constants import (
    FCGI_MAX_CONTENT_LEN,
    FCGI_VERSION_1,
    RecordType,
)
from fcgikit.protocol.name_value_pairs import (
    LONG_LENGTH_FLAG,
    decode_pairs,
    decode_params,
    encode_pairs,
    find_pair_value,
)

__all__ = [
    "BEGIN_REQUEST_BODY",
    "END_REQUEST_BODY",
    "HEADER",
    "LONG_LENGTH_FLAG",
    "PADDING",
    "UNKNOWN_TYPE_BODY",
    "RecordHeader",
    "decode_pairs",
    "decode_params",
    "encode_pairs",
    "find_pair_value",
    "frame_records",
    "pack_header",
    "pack_records",
    "record_type_name",
    "unpack_header",
]

#: version, type, requestId, contentLength, paddingLength, reserved (spec 3.3, FCGI_Header).
HEADER = struct.Struct(">BBHHBx")
#: role, flags, 5 reserved (FCGI_BeginRequestBody).
BEGIN_REQUEST_BODY = struct.Struct(">HB5x")
#: appStatus, protocolStatus, 3 reserved (FCGI_EndRequestBody).
END_REQUEST_BODY = struct.Struct(">IB3x")
#: type, 7 reserved (FCGI_UnknownTypeBody).
UNKNOWN_TYPE_BODY = struct.Struct(">B7x")

#: Padding for each possible content length modulo 8, prebuilt so framing never allocates it
#: (records.py and output.py frame records).
PADDING = tuple(bytes(n) for n in range(8))
#: HEADER.pack bound once: frame_records calls it for every record of a streamed response
_PACK_HEADER: Final = HEADER.pack


class RecordHeader(NamedTuple):
    version: int
    record_type: int
    request_id: int
    content_length: int
    padding_length: int


def record_type_name(record_type: int) -> str:
    """``FCGI_STDIN`` for 5, ``record type 42`` for a type the spec does not define."""
    try:
        return f"FCGI_{RecordType(record_type).name}"
    except ValueError:
        return f"record type {record_type}"


def pack_header(
    record_type: int, request_id: int, content_length: int, padding_length: int = 0
) -> bytes:
    """The 8-byte header of one version-1 record."""
    return HEADER.pack(FCGI_VERSION_1, record_type, request_id, content_length, padding_length)


def unpack_header(data: bytes | bytearray | memoryview, offset: int = 0) -> RecordHeader:
    """Read the 8-byte header at ``offset``; the caller makes sure 8 bytes are there."""
    return RecordHeader(*HEADER.unpack_from(data, offset))


def pack_records(
    record_type: int, request_id: int, content: bytes | bytearray | memoryview = b""
) -> bytes:
    """Frame ``content`` as records of one type, padded to multiples of 8 bytes.

    Content longer than 65,535 bytes is split into several records. Empty content gives a
    single empty record, which for a stream type (PARAMS, STDIN, STDOUT, ...) is the
    end-of-stream mark; callers that mean "nothing to send" must not call this.
    """
    length = len(content)
    if length <= FCGI_MAX_CONTENT_LEN:
        padding = -length & 7
        return b"".join(
            (
                HEADER.pack(FCGI_VERSION_1, record_type, request_id, length, padding),
                content,
                PADDING[padding],
            )
        )
    view = memoryview(content)
    parts: list[bytes | memoryview] = []
    for start in range(0, length, FCGI_MAX_CONTENT_LEN):
        chunk = view[start : start + FCGI_MAX_CONTENT_LEN]
        padding = -len(chunk) & 7
        parts.append(HEADER.pack(FCGI_VERSION_1, record_type, request_id, len(chunk), padding))
        parts.append(chunk)
        parts.append(PADDING[padding])
    return b"".join(parts)


def frame_records(
    record_type: int, request_id: int, pieces: Sequence[bytes | memoryview]
) -> list[bytes | memoryview]:
    """Frame the concatenation of ``pieces`` as records of one type, without copying it.

    Returns the buffers to send in order (``b"".join`` of them is what :func:`pack_records`
    returns for the joined content): each record's header, then the pieces, or slices of
    them, that make its content, then its padding. Empty pieces are skipped; if all are
    empty, the result is nothing at all (not the empty end-of-stream record).
    """
    total = 0
    for piece in pieces:
        total += len(piece)
    buffers: list[bytes | memoryview] = []
    if not total:
        return buffers
    if total <= FCGI_MAX_CONTENT_LEN:  # one record (a small response): each piece whole
        padding = -total & 7
        buffers.append(HEADER.pack(FCGI_VERSION_1, record_type, request_id, total, padding))
        buffers.extend(filter(None, pieces))
        if padding:
            buffers.append(PADDING[padding])
        return buffers
    # Each piece is cut where records end: whole where a record holds all of it, else as
    # slices of one view of it. (The module's names as locals: compiled, each use of a
    # global is a look-up in the module's dict.)
    most = FCGI_MAX_CONTENT_LEN
    version = FCGI_VERSION_1
    paddings = PADDING
    room = 0  # content still to come in the record whose header went last
    padding = 0
    for piece in pieces:
        size = len(piece)
        start = 0
        view: memoryview | None = None
        while start < size:
            if not room:
                if padding:
                    buffers.append(paddings[padding])
                room = min(total, most)
                total -= room
                padding = -room & 7
                buffers.append(_PACK_HEADER(version, record_type, request_id, room, padding))
            taken = size - start
            if taken > room:
                taken = room
            if taken == size:
                buffers.append(piece)
            else:
                if view is None:
                    view = memoryview(piece)
                buffers.append(view[start : start + taken])
            start += taken
            room -= taken
    if padding:
        buffers.append(paddings[padding])
    return buffers
