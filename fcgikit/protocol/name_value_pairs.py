"""FastCGI's name-value pairs (spec 3.4): what FCGI_PARAMS and FCGI_GET_VALUES carry.

Each pair is the name's length, the value's length, then the name and the value; a length
under 128 takes one byte, a longer one four, with the high bit set. Why the codec looks the
way it does:

* Decoding is on every request's path (a web server sends a few dozen params), so
  :func:`decode_params` reads the usual case, both lengths in one byte, without a check per
  byte: a pair cut short shows only at the end, and then :func:`_decode_pairs_checked`
  reads the stream again to say exactly what is wrong.
* Peer input can only ever raise :class:`~fcgikit.errors.RemoteProtocolError`; names and
  values stay ``bytes`` (the WSGI layer decodes them as latin-1, per PEP 3333). Duplicated
  names are kept: what they mean is the caller's business.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

from fcgikit.errors import LocalProtocolError, RemoteProtocolError

__all__ = [
    "LONG_LENGTH_FLAG",
    "decode_pairs",
    "decode_params",
    "encode_pairs",
    "find_pair_value",
]

_LONG_LENGTH = struct.Struct(">I")
#: The high bit of a four-byte name or value length (spec 3.4): a length under 128 takes one
#: byte, whose high bit is clear.
LONG_LENGTH_FLAG = 0x80000000
#: The longest name or value the four-byte length form can describe.
MAX_PAIR_LENGTH = 0x7FFFFFFF


def _encode_length(length: int) -> bytes:
    if length < 0x80:
        return bytes((length,))
    if length > MAX_PAIR_LENGTH:
        raise LocalProtocolError(
            f"a FastCGI name or value can be at most {MAX_PAIR_LENGTH} bytes, not {length}"
        )
    return _LONG_LENGTH.pack(length | LONG_LENGTH_FLAG)


def encode_pairs(pairs: Iterable[tuple[bytes, bytes]]) -> bytes:
    """Encode name-value pairs (spec 3.4): lengths under 128 take one byte, others four.

    Duplicated names are kept, in order: the caller decides what to send.
    """
    parts: list[bytes] = []
    for name, value in pairs:
        parts.append(_encode_length(len(name)))
        parts.append(_encode_length(len(value)))
        parts.append(name)
        parts.append(value)
    return b"".join(parts)


def decode_pairs(data: bytes | bytearray | memoryview) -> list[tuple[bytes, bytes]]:
    """Decode a name-value pair stream into ``(name, value)`` pairs, in order, duplicates kept.

    Raises:
        RemoteProtocolError: a length or a name or value is cut short.
    """
    params, count = decode_params(data)
    if count == len(params):  # no name twice: the dict holds every pair, in order
        return list(params.items())
    return _decode_pairs_checked(data)


def decode_params(data: bytes | bytearray | memoryview) -> tuple[dict[bytes, bytes], int]:
    """A name-value pair stream as a dict (a name sent twice keeps its last value) and how
    many pairs it held, with no tuple or list made a pair. Raises what decode_pairs raises."""
    raw = data if type(data) is bytes else bytes(data)
    end = len(raw)
    offset = count = 0
    params: dict[bytes, bytes] = {}
    try:
        if raw.isascii():
            # No byte has its high bit set, so every length is the one-byte form (what web
            # servers send for an ASCII request): no look at a length's form, pair by pair.
            while offset < end:
                name_start = offset + 2
                value_start = name_start + raw[offset]
                offset = value_start + raw[offset + 1]
                params[raw[name_start:value_start]] = raw[value_start:offset]
                count += 1
        else:
            while offset < end:
                # Both lengths under 128 (one byte each) is what web servers send; a pair cut
                # short shows only at the end, as an offset past it (the slices stop there).
                name_length = raw[offset]
                value_length = raw[offset + 1]
                if (name_length | value_length) < 0x80:
                    name_start = offset + 2
                else:
                    name_start, name_length, value_length = _pair_lengths(raw, offset)
                value_start = name_start + name_length
                offset = value_start + value_length
                params[raw[name_start:value_start]] = raw[value_start:offset]
                count += 1
        if offset == end:
            return params, count
    except (IndexError, struct.error):
        pass
    pairs = _decode_pairs_checked(raw)  # malformed: say exactly what is wrong
    return dict(pairs), len(pairs)


def _pair_lengths(raw: bytes, offset: int) -> tuple[int, int, int]:
    """Where the name of the pair at ``offset`` starts, and its name's and value's lengths,
    each in the one-byte or the four-byte form."""
    name_length, offset = _length_at(raw, offset)
    value_length, offset = _length_at(raw, offset)
    return offset, name_length, value_length


def _length_at(raw: bytes, offset: int) -> tuple[int, int]:
    """The name or value length at ``offset``, and where what follows it starts."""
    length = raw[offset]
    if length < 0x80:
        return length, offset + 1
    return _LONG_LENGTH.unpack_from(raw, offset)[0] & MAX_PAIR_LENGTH, offset + 4


def find_pair_value(data: bytes, name: bytes) -> bytes | None:
    """The value of the last pair named ``name`` in a pair stream :func:`decode_pairs` has
    already accepted, or None; the other pairs are skipped, not decoded (no object is made
    for them)."""
    end = len(data)
    wanted = len(name)
    offset = 0
    found: bytes | None = None
    while offset < end:
        name_start, name_length, value_length = _pair_lengths(data, offset)
        value_start = name_start + name_length
        if name_length == wanted and data.startswith(name, name_start):
            found = data[value_start : value_start + value_length]
        offset = value_start + value_length
    return found


def _decode_pairs_checked(data: bytes | bytearray | memoryview) -> list[tuple[bytes, bytes]]:
    """:func:`decode_pairs`, each length checked as it is read: the precise error."""
    view = memoryview(data)
    end = len(view)
    offset = 0
    pairs: list[tuple[bytes, bytes]] = []
    while offset < end:
        lengths: list[int] = []
        for _ in range(2):
            if offset >= end:
                raise RemoteProtocolError(
                    f"name-value pair cut short at byte {offset} of {end}: a length is missing"
                )
            first = view[offset]
            if first < 0x80:
                lengths.append(first)
                offset += 1
            else:
                if offset + 4 > end:
                    raise RemoteProtocolError(
                        f"name-value pair cut short at byte {offset} of {end}: "
                        "a four-byte length has fewer than four bytes"
                    )
                lengths.append(_LONG_LENGTH.unpack_from(view, offset)[0] & MAX_PAIR_LENGTH)
                offset += 4
        name_length, value_length = lengths
        value_start = offset + name_length
        value_end = value_start + value_length
        if value_end > end:
            raise RemoteProtocolError(
                f"name-value pair at byte {offset} of {end} says its name and value take "
                f"{name_length} + {value_length} bytes, but only {end - offset} are left"
            )
        pairs.append((bytes(view[offset:value_start]), bytes(view[value_start:value_end])))
        offset = value_end
    return pairs
