"""Records built by hand for the protocol tests, independently of fcgikit's own packer.

Only ``struct`` is used here, so a bug in :mod:`fcgikit.protocol.records` cannot hide itself
by being on both sides of an assertion.
"""

from __future__ import annotations

import struct

BEGIN, ABORT, END, PARAMS, STDIN, STDOUT, STDERR, DATA = 1, 2, 3, 4, 5, 6, 7, 8
GET_VALUES, GET_VALUES_RESULT, UNKNOWN_TYPE = 9, 10, 11
RESPONDER, AUTHORIZER, FILTER = 1, 2, 3


def record(record_type: int, request_id: int, content: bytes = b"", padding: int = 0) -> bytes:
    """One version-1 record; the padding bytes are 0xAA so a reader that uses them shows."""
    header = struct.pack(">BBHHBB", 1, record_type, request_id, len(content), padding, 0)
    return header + content + b"\xaa" * padding


def padded(record_type: int, request_id: int, content: bytes = b"") -> bytes:
    """One record padded with zeros to a multiple of 8 bytes, the way fcgikit writes them."""
    padding = -len(content) % 8
    header = struct.pack(">BBHHBB", 1, record_type, request_id, len(content), padding, 0)
    return header + content + bytes(padding)


def begin(request_id: int = 1, role: int = RESPONDER, keep_conn: bool = False) -> bytes:
    return record(BEGIN, request_id, struct.pack(">HB5x", role, 1 if keep_conn else 0))


def end_request(request_id: int = 1, app_status: int = 0, protocol_status: int = 0) -> bytes:
    return record(END, request_id, struct.pack(">IB3x", app_status, protocol_status))


def pair(name: bytes, value: bytes) -> bytes:
    """One name-value pair, choosing the one- or four-byte length form like the spec."""

    def length(n: int) -> bytes:
        return bytes([n]) if n < 128 else struct.pack(">I", n | 0x80000000)

    return length(len(name)) + length(len(value)) + name + value


def params(request_id: int = 1, pairs: dict[bytes, bytes] | None = None) -> bytes:
    """A whole FCGI_PARAMS stream: one record of pairs (if any), then the empty one."""
    body = b"".join(pair(name, value) for name, value in (pairs or {}).items())
    return (record(PARAMS, request_id, body) if body else b"") + record(PARAMS, request_id)


def split_records(data: bytes) -> list[tuple[int, int, bytes, int]]:
    """(type, request id, content, padding length) of each record in ``data``, strictly."""
    records = []
    offset = 0
    while offset < len(data):
        version, record_type, request_id, length, padding, _ = struct.unpack_from(
            ">BBHHBB", data, offset
        )
        assert version == 1
        start = offset + 8
        records.append((record_type, request_id, data[start : start + length], padding))
        offset = start + length + padding
    assert offset == len(data)
    return records
