"""An ordinary request read whole in one pass, its params decoded as text on the way.

:func:`scan_request_text_py` is the Python twin of the C lane ``scan_request_text``
(lanes.py): the same walk over the buffer, record by record and pair by pair, taking exactly
what :func:`~fcgikit.protocol.whole_request.scan_request_py` takes (a ServerConnection's
ordinary request, which the property tests hold both lanes to), and decoding each value
once, latin-1, into the dict the caller will make its own (a WSGI server: its environ). Where
the C lane was not built, the pure-Python server runs this instead of a ServerConnection's
record-by-record reading and a second pass over the params.

The caller decides what each name becomes, in its :data:`~fcgikit.protocol.lanes.NameTable`;
a name it has no verdict on makes the scan decline, and the caller reads the request the
ordinary way (and then has one).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from fcgikit.protocol.constants import (
    FCGI_HEADER_LEN,
    FCGI_KEEP_CONN,
    FCGI_VERSION_1,
    RecordType,
    Role,
)
from fcgikit.protocol.lanes import NameTable, ScannedText
from fcgikit.protocol.name_value_pairs import LONG_LENGTH_FLAG

__all__ = ["scan_request_text_py", "text_params"]

_BEGIN_REQUEST: Final = int(RecordType.BEGIN_REQUEST)
_PARAMS: Final = int(RecordType.PARAMS)
_STDIN: Final = int(RecordType.STDIN)
_RESPONDER: Final = int(Role.RESPONDER)
#: the first byte of a length in its four-byte form has this bit (spec 3.4)
_LONG_FORM: Final = LONG_LENGTH_FLAG >> 24
#: FCGI_BEGIN_REQUEST's body: role (2 bytes), flags, 5 reserved
_BEGIN_BODY_LEN: Final = 8


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


def _records_end(raw: bytes, offset: int) -> tuple[int, int, int, int] | None:
    """The record at ``offset``, whole and version 1, as (type, request id, content length,
    where it ends with its padding); None if not."""
    if len(raw) - offset < FCGI_HEADER_LEN or raw[offset] != FCGI_VERSION_1:
        return None
    length = raw[offset + 4] << 8 | raw[offset + 5]
    end = offset + FCGI_HEADER_LEN + length + raw[offset + 6]
    if end > len(raw):
        return None
    return raw[offset + 1], raw[offset + 2] << 8 | raw[offset + 3], length, end


def _text_pairs(
    encoded: bytes, max_pairs: int, names: NameTable
) -> tuple[dict[str, str], set[bytes] | None] | None:
    """The pairs of ``encoded`` as text by ``names``, and the names sent twice; None when
    they are malformed, more than ``max_pairs``, or a name has no verdict."""
    text: dict[str, str] = {}
    decoded = encoded.decode("latin-1")  # values sliced from it: one decode for all
    duplicates: set[bytes] | None = None
    left_out: set[bytes] | None = None
    end = len(encoded)
    offset = count = 0
    while offset < end:
        lengths = [0, 0]
        for which in (0, 1):
            if offset >= end:
                return None
            length = encoded[offset]
            if length & _LONG_FORM:
                if end - offset < 4:
                    return None
                length = int.from_bytes(encoded[offset : offset + 4], "big") & ~LONG_LENGTH_FLAG
                offset += 4
            else:
                offset += 1
            lengths[which] = length
        name_length, value_length = lengths
        value_start = offset + name_length
        value_end = value_start + value_length
        if value_end > end:
            return None
        count += 1
        if count > max_pairs:
            return None
        name = encoded[offset:value_start]
        offset = value_end
        if name not in names:
            return None
        key = names[name]
        if key is None:
            if left_out is None:
                left_out = set()
            seen_twice = name in left_out
            left_out.add(name)
        else:
            seen_twice = key in text
            text[key] = decoded[value_start:value_end]
        if seen_twice:
            if duplicates is None:
                duplicates = set()
            duplicates.add(name)
    return text, duplicates


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
    twin of the C lane ``scan_request_text``, in one pass as it is."""
    raw = data if type(data) is bytes else bytes(data)
    begin = _records_end(raw, 0)
    if begin is None:
        return None
    record_type, request_id, length, offset = begin
    if (
        record_type != _BEGIN_REQUEST
        or request_id == 0
        or length != _BEGIN_BODY_LEN
        or (raw[FCGI_HEADER_LEN] << 8 | raw[FCGI_HEADER_LEN + 1]) != _RESPONDER
    ):
        return None
    keep_conn = bool(raw[FCGI_HEADER_LEN + 2] & FCGI_KEEP_CONN)
    contents: list[bytes] = []
    params_size = 0
    while True:
        record = _records_end(raw, offset)
        if record is None or record[0] != _PARAMS or record[1] != request_id:
            return None
        length = record[2]
        if length == 0:
            offset = record[3]
            break
        if length > max_params_size - params_size:
            return None
        contents.append(raw[offset + FCGI_HEADER_LEN : offset + FCGI_HEADER_LEN + length])
        params_size += length
        offset = record[3]
    stdin_chunks: list[bytes] = []
    stdin_ended = False
    while offset < len(raw):
        record = _records_end(raw, offset)
        if stdin_ended or record is None or record[0] != _STDIN or record[1] != request_id:
            return None
        if record[2]:
            stdin_chunks.append(
                raw[offset + FCGI_HEADER_LEN : offset + FCGI_HEADER_LEN + record[2]]
            )
        stdin_ended = record[2] == 0
        offset = record[3]
    encoded = contents[0] if len(contents) == 1 else b"".join(contents)
    found = _text_pairs(encoded, max_decoded_pairs, names)
    if found is None:
        return None
    text, duplicates = found
    return (
        request_id,
        keep_conn,
        (encoded, text),
        duplicates,
        stdin_chunks,
        stdin_ended,
        params_size,
    )
