"""Peer input generated around the ordinary request, for the tests that hold a fast lane to
its Python twin (test_speedups.py) and a WholeRequest to a ServerConnection
(test_whole_request.py): about half of it ordinary, the rest bent in one way or a few.
"""

from __future__ import annotations

from typing import TypeVar

from hypothesis import strategies as st

from fcgikit.protocol import ClientConnection
from fcgikit.protocol.records import encode_pairs, pack_header

GET_PARAMS = [
    (b"REQUEST_METHOD", b"GET"),
    (b"SCRIPT_NAME", b""),
    (b"PATH_INFO", b"/hello"),
    (b"QUERY_STRING", b"a=1"),
    (b"HTTP_HOST", b"example.org"),
]


def nginx_get(request_id: int = 1, keep_conn: bool = True) -> bytes:
    client = ClientConnection()
    data = client.start_request(request_id, GET_PARAMS, keep_conn=keep_conn)
    return data + client.end_stdin(request_id)


NAMES = st.sampled_from([b"REQUEST_METHOD", b"PATH_INFO", b"HTTP_X", b"", b"N" * 200, b"\xff"])
VALUES = st.one_of(st.sampled_from([b"", b"GET", b"/a/b", b"\x00\xff"]), st.binary(max_size=300))


def record(version: int, record_type: int, request_id: int, content: bytes, padding: int) -> bytes:
    header = pack_header(record_type, request_id, len(content), padding)
    return bytes([version]) + header[1:] + content + bytes(padding)


T = TypeVar("T")


def rarely(draw: st.DrawFn, ordinary: T, *odd: T) -> T:
    """``ordinary`` eleven times in twelve, else one of ``odd``: about half the streams stay
    ordinary (the lane's work), the rest are bent in one way or a few."""
    return draw(st.sampled_from(odd)) if draw(st.integers(0, 11)) == 0 else ordinary


@st.composite
def streams(draw: st.DrawFn) -> tuple[bytes, int]:
    """(bytes, max_params_size): ordinary requests, some of them bent."""
    request_id = draw(st.sampled_from([1, 2, 0xFFFF]))
    request_id = rarely(draw, request_id, 0)
    role = rarely(draw, 1, 2, 3, 9)
    flags = draw(st.sampled_from([0, 1, 0xFF]))
    other_id = rarely(draw, request_id, request_id ^ 1, 0)
    version = rarely(draw, 1, 0, 2)
    begin_length = rarely(draw, 8, 7, 9, 0)
    begin_body = (role.to_bytes(2, "big") + bytes([flags]) + bytes(5) + b"\x00")[:begin_length]
    out = record(1, 1, request_id, begin_body, draw(st.integers(0, 3)))

    pairs = draw(st.lists(st.tuples(NAMES, VALUES), max_size=6))
    encoded = encode_pairs(pairs)
    if rarely(draw, False, True):  # malformed pairs: cut, or garbage at the end
        encoded = encoded[: draw(st.integers(0, len(encoded)))] + draw(st.binary(max_size=5))
    cuts = sorted(draw(st.lists(st.integers(0, len(encoded)), max_size=3)))
    pieces = [encoded[a:b] for a, b in zip([0, *cuts], [*cuts, len(encoded)], strict=True)]
    for piece in pieces:
        if piece:
            out += record(1, 4, request_id, piece, draw(st.integers(0, 9)))
    if rarely(draw, True, False):  # the empty PARAMS record that ends them
        out += record(version, 4, other_id, b"", draw(st.integers(0, 9)))

    for chunk in draw(st.lists(st.binary(min_size=1, max_size=50), max_size=3)):
        out += record(1, 5, request_id, chunk, draw(st.integers(0, 7)))
    if draw(st.booleans()):
        out += record(1, 5, request_id, b"", 0)
    out += rarely(
        draw,
        b"",
        record(1, 5, request_id, b"late", 4),  # STDIN after its end
        record(1, 9, 0, encode_pairs([(b"FCGI_MPXS_CONNS", b"")]), 0),
        record(1, 2, request_id, b"", 0),  # ABORT_REQUEST
        record(1, 1, (request_id % 0xFFFF) + 1, b"\x00\x01\x01" + bytes(5), 0),
        record(1, 3, request_id, bytes(8), 0),  # END_REQUEST: never from a web server
        record(1, 8, request_id, b"filter", 2),  # DATA
        record(1, 5, request_id, b"cut", 0)[:-2],  # a record cut short
        record(1, 5, (request_id % 0xFFFF) + 1, b"stray", 0),  # for an id never begun
        record(1, 12, 0, b"", 0),  # a management type FastCGI 1.0 does not define
    )
    if rarely(draw, False, True):
        out = out[: draw(st.integers(0, len(out)))]
    max_params_size = rarely(draw, 1 << 20, len(encoded), max(0, len(encoded) - 1), 0)
    return out, max_params_size


#: a response's last stdout, in pieces: small and large, bytes and memoryviews
PIECES = st.lists(
    st.one_of(
        st.binary(max_size=100),
        st.sampled_from([b"h" * 8000, b"b" * 8191, b"x" * 8192, b"y" * 70_000]),
        st.binary(max_size=20).map(memoryview),
    ),
    max_size=3,
)
