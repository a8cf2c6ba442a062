"""The C fast lane for an ordinary request (fcgikit/protocol/_speedups.c).

``ServerConnection.receive_data`` hands an idle connection's input to ``scan_request``
first; the lane must either decline (None) or give exactly what the record-by-record path
gives: the same events, the same state after (what the app may send, what a later record
does), the same replies. The equivalence is checked against a connection with the lane
switched off, on streams built around the ordinary shape and then bent every way a peer can
bend them. scripts/test runs this file in both passes; tests/native.py loads the lane in the
pure-Python pass too, where it is held to the interpreted record-by-record path.
"""

from __future__ import annotations

import dataclasses
import sys
import tracemalloc
from collections.abc import Callable
from types import ModuleType
from typing import TypeVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fcgikit.errors import LocalProtocolError, RemoteProtocolError
from fcgikit.protocol import (
    ClientConnection,
    RequestReceived,
    Role,
    ServerConnection,
    StdinData,
    StdinEnded,
)
from fcgikit.protocol import connection as connection_module
from fcgikit.protocol.connection import WholeRequest
from fcgikit.protocol.records import encode_pairs, pack_header
from tests.native import PURE_PYTHON_PASS, load_lane


@pytest.fixture(scope="module")
def lane() -> ModuleType:
    return load_lane("fcgikit.protocol._speedups")


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


def test_the_lane_is_on_exactly_when_the_pass_says(lane: ModuleType) -> None:
    if PURE_PYTHON_PASS:
        assert connection_module.scan_request is None
        assert connection_module._request_received is connection_module._request_received_py
        with pytest.raises(ImportError):
            import fcgikit.protocol._speedups  # noqa: F401
        return
    assert connection_module.scan_request is lane.scan_request
    assert ServerConnection()._scan_request is lane.scan_request
    assert type(connection_module._request_received) is lane.SlotsFactory
    # It takes what nginx sends for a GET: otherwise every test here would pass by declining.
    assert lane.scan_request(nginx_get(), 1 << 20, 128) is not None


# --- streams around the ordinary shape -----------------------------------------------------

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
    )
    if rarely(draw, False, True):
        out = out[: draw(st.integers(0, len(out)))]
    max_params_size = rarely(draw, 1 << 20, len(encoded), max(0, len(encoded) - 1), 0)
    return out, max_params_size


CONNECTION_SETTINGS = st.fixed_dictionaries(
    {
        "roles": st.sampled_from(
            [(Role.RESPONDER,), (Role.RESPONDER, Role.AUTHORIZER, Role.FILTER), (Role.FILTER,)]
        ),
        "multiplexed": st.booleans(),
        # the lane declines params of more pairs, which the ordinary path keeps encoded
        "max_decoded_pairs": st.sampled_from([128, 128, 0, 1, 2, 3]),
    }
)


def observe(server: ServerConnection, data: bytes, then: bytes) -> list[object]:
    """Everything a caller can see: events or the error, replies, and what comes after."""
    seen: list[object] = []

    def attempt(action: str, call: object) -> None:
        try:
            seen.append((action, call()))  # type: ignore[operator]
        except (RemoteProtocolError, LocalProtocolError) as error:
            seen.append((action, type(error).__name__, str(error)))

    attempt("receive", lambda: server.receive_data(data))
    attempt("replies", server.data_to_send)
    seen.append(("state", sorted(server.active_request_ids), server.should_close))
    for request_id in sorted(server.active_request_ids):
        attempt("stdout", lambda rid=request_id: server.send_stdout(rid, b"out"))
    attempt("more", lambda: server.receive_data(then))
    attempt("replies", server.data_to_send)
    for request_id in sorted(server.active_request_ids):
        attempt("end", lambda rid=request_id: server.end_request(rid, 3))
    attempt("eof", server.receive_eof)
    seen.append(("closing", server.should_close, server.stray_records))
    return seen


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(streams(), CONNECTION_SETTINGS, st.sampled_from([b"", nginx_get(1), nginx_get(2)]))
def test_the_lane_gives_what_the_record_by_record_path_gives(
    lane: ModuleType, stream: tuple[bytes, int], options: dict[str, object], then: bytes
) -> None:
    data, max_params_size = stream
    with_lane = ServerConnection(max_params_size=max_params_size, **options)  # type: ignore[arg-type]
    without = ServerConnection(max_params_size=max_params_size, **options)  # type: ignore[arg-type]
    if Role.RESPONDER in with_lane._roles:
        with_lane._scan_request = lane.scan_request  # the pure-Python pass imports no lane
    without._scan_request = None
    assert observe(with_lane, data, then) == observe(without, data, then)


def test_the_lane_takes_ordinary_requests_and_declines_the_rest(lane: ModuleType) -> None:
    def scan(data: bytes | memoryview, max_params_size: int, max_pairs: int = 128) -> object:
        return lane.scan_request(data, max_params_size, max_pairs)

    whole = nginx_get()
    begin_and_params = whole[: -len(pack_header(5, 1, 0))]
    assert scan(whole, 1 << 20) is not None
    assert scan(begin_and_params, 1 << 20) is not None  # the body comes later: still ordinary
    assert scan(memoryview(bytearray(whole)), 1 << 20) is not None  # the loop's recv buffer
    assert scan(whole[:-1], 1 << 20) is None  # a record cut short
    assert scan(whole + whole, 1 << 20) is None  # anything after the end of FCGI_STDIN
    params_size = len(encode_pairs(GET_PARAMS))
    assert scan(whole, params_size) is not None  # at the cap: allowed
    assert scan(whole, params_size - 1) is None  # over it: the ordinary path says so
    assert scan(whole, 1 << 20, len(GET_PARAMS)) is not None  # as many pairs as it decodes
    assert scan(whole, 1 << 20, len(GET_PARAMS) - 1) is None  # more: kept encoded
    authorizer = ClientConnection().start_request(1, {b"A": b"1"}, role=Role.AUTHORIZER)
    assert scan(authorizer, 1 << 20) is None


def test_declining_the_first_read_of_an_upload_copies_none_of_it(lane: ModuleType) -> None:
    """An upload's first read ends in a cut FCGI_STDIN record: the lane must say no before
    copying the body it holds (the ordinary path copies it once, as it must)."""
    client = ClientConnection()
    upload = client.start_request(1, GET_PARAMS) + client.send_stdin(1, b"u" * 300_000)
    first_read = upload[: 256 * 1024]
    tracemalloc.start()
    try:
        assert lane.scan_request(first_read, 1 << 20, 128) is None
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16 * 1024


def test_a_large_request_across_many_records_and_reads(lane: ModuleType) -> None:
    """Params of 200 KiB (four PARAMS records) and a body streamed in its own reads."""
    client = ClientConnection()
    params = [(b"HTTP_X_%d" % n, b"v" * 1000) for n in range(200)] + [(b"HTTP_X_1", b"last")]
    head = client.start_request(7, params, keep_conn=True)
    body = client.send_stdin(7, b"b" * 100_000) + client.end_stdin(7)
    with_lane, without = ServerConnection(), ServerConnection()
    with_lane._scan_request = lane.scan_request
    without._scan_request = None
    for server in (with_lane, without):
        events = server.receive_data(head) + server.receive_data(body)
        received = events[0]
        assert received.params[b"HTTP_X_1"] == b"last"  # type: ignore[union-attr]
        assert received.duplicate_names == frozenset({b"HTTP_X_1"})  # type: ignore[union-attr]
        assert b"".join(e.data for e in events[1:-1]) == b"b" * 100_000  # type: ignore[union-attr]
    assert observe(with_lane, b"", nginx_get(8)) == observe(without, b"", nginx_get(8))


# --- the end of a response -----------------------------------------------------------------

PIECES = st.lists(
    st.one_of(
        st.binary(max_size=100),
        st.sampled_from([b"h" * 8000, b"b" * 8191, b"x" * 8192, b"y" * 70_000]),
        st.binary(max_size=20).map(memoryview),
    ),
    max_size=3,
)


@settings(max_examples=500, deadline=None)
@given(
    pieces=PIECES,
    app_status=st.sampled_from([0, 1, 0xFFFFFFFF]),
    protocol_status=st.sampled_from([0, 1, 2, 3]),
    stdout_before=st.booleans(),
    stderr_before=st.booleans(),
    keep_conn=st.booleans(),
    as_list=st.booleans(),
)
def test_the_end_of_a_response_is_the_same_with_the_lane(
    lane: ModuleType,
    pieces: list[bytes | memoryview],
    app_status: int,
    protocol_status: int,
    stdout_before: bool,
    stderr_before: bool,
    keep_conn: bool,
    as_list: bool,
) -> None:
    ends = []
    for frame_end in (lane.frame_end, None):
        server = ServerConnection()
        server._frame_end = frame_end
        server.receive_data(nginx_get(5, keep_conn=keep_conn))
        before = b""
        if stdout_before:
            before += server.send_stdout(5, b"early")
        if stderr_before:
            before += server.send_stderr(5, b"oops")
        stdout = list(pieces) if as_list else tuple(pieces)
        buffers = server.end_request_buffers(5, app_status, protocol_status, stdout=stdout)
        ends.append((before + b"".join(buffers), server.should_close, server.active_request_ids))
        # What the web server reads: the body whole, then the end of the request.
        client = ClientConnection()
        client.start_request(5, {}, keep_conn=keep_conn)
        events = client.receive_data(ends[-1][0])
        body = b"".join(e.data for e in events if type(e).__name__ == "StdoutData")  # type: ignore[attr-defined]
        assert body == (b"early" if stdout_before else b"") + b"".join(pieces)
        assert type(events[-1]).__name__ == "RequestEnded"
    assert ends[0] == ends[1]


def test_a_hello_world_response_ends_in_one_buffer(lane: ModuleType) -> None:
    server = ServerConnection()
    server._frame_end = lane.frame_end
    server.receive_data(nginx_get(1))
    head = b"Status: 200 OK\r\nContent-Length: 5\r\n\r\n"
    (framed,) = server.end_request_buffers(1, 0, stdout=(head, b"hello"))
    assert framed[:8] == pack_header(6, 1, len(head) + 5, -(len(head) + 5) & 7)  # FCGI_STDOUT
    assert framed[-16:] == pack_header(3, 1, 8) + bytes(8)  # END_REQUEST, status 0, complete
    big = b"z" * 10_000  # large: framed where it lies, for sendmsg, not copied
    server.receive_data(nginx_get(2))
    buffers = server.end_request_buffers(2, 0, stdout=(head, big))
    assert any(buffer is big for buffer in buffers)


# --- WholeRequest: a connection that brought one whole request and nothing more -------------


def test_a_whole_request_is_recognised_only_with_the_lane_and_without_keep_conn() -> None:
    whole = WholeRequest.parse(nginx_get(7, keep_conn=False), 1 << 20)
    if PURE_PYTHON_PASS:
        assert whole is None  # no lane: every connection gets a ServerConnection
        return
    assert whole is not None
    size = len(encode_pairs(GET_PARAMS))
    expected = RequestReceived(7, Role.RESPONDER, False, dict(GET_PARAMS), frozenset(), size)
    assert whole.event == expected
    assert whole.stdin == []
    # A keep-conn connection may bring more requests; a body still to come is not whole.
    assert WholeRequest.parse(nginx_get(7, keep_conn=True), 1 << 20) is None
    client = ClientConnection()
    assert WholeRequest.parse(client.start_request(1, GET_PARAMS), 1 << 20) is None


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(streams())
def test_a_whole_request_is_what_a_server_connection_makes_of_the_same_bytes(
    stream: tuple[bytes, int],
) -> None:
    data, max_params_size = stream
    whole = WholeRequest.parse(data, max_params_size)
    if whole is None:
        return  # declined: a ServerConnection takes these bytes, as before
    server = ServerConnection(max_params_size=max_params_size)
    server._scan_request = None  # record by record: the spec
    events = server.receive_data(data)
    assert events == [
        whole.event,
        *(StdinData(whole.event.request_id, chunk) for chunk in whole.stdin),
        StdinEnded(whole.event.request_id),
    ]
    assert server.data_to_send() == b""
    server.end_request(whole.event.request_id)
    assert server.should_close  # nothing more comes: no FCGI_KEEP_CONN


@settings(max_examples=500, deadline=None)
@given(
    pieces=PIECES,
    app_status=st.sampled_from([0, 1, 0xFFFFFFFF]),
    protocol_status=st.sampled_from([0, 1, 2, 3]),
    streamed=st.lists(st.binary(min_size=1, max_size=70_000), max_size=2),
    stderr_before=st.booleans(),
    with_lane=st.booleans(),
)
def test_a_whole_request_answers_with_the_bytes_a_server_connection_sends(
    lane: ModuleType,
    pieces: list[bytes | memoryview],
    app_status: int,
    protocol_status: int,
    streamed: list[bytes],
    stderr_before: bool,
    with_lane: bool,
) -> None:
    server = ServerConnection()
    server._frame_end = lane.frame_end if with_lane else None
    (received, *_) = server.receive_data(nginx_get(5, keep_conn=False))
    assert isinstance(received, RequestReceived)
    whole = WholeRequest(received, [])
    whole._frame_end = server._frame_end

    def answer(
        send_stdout: Callable[[bytes], list[bytes | memoryview]],
        send_stderr: Callable[[bytes], bytes],
        end: Callable[[], list[bytes | memoryview]],
    ) -> bytes:
        out = b"".join(b"".join(send_stdout(block)) for block in streamed)
        if stderr_before:
            out += send_stderr(b"oops")
        return out + b"".join(end())

    by_connection = answer(
        lambda block: server.send_stdout_buffers(5, (block,)),
        lambda data: server.send_stderr(5, data),
        lambda: server.end_request_buffers(5, app_status, protocol_status, stdout=pieces),
    )
    by_whole = answer(
        lambda block: whole.send_stdout_buffers((block,)),
        whole.send_stderr,
        lambda: whole.end_request_buffers(app_status, protocol_status, stdout=pieces),
    )
    assert by_whole == by_connection


def test_a_whole_request_ends_once_and_checks_its_statuses_as_a_connection_does() -> None:
    event = RequestReceived(3, Role.RESPONDER, False, {}, frozenset())
    whole = WholeRequest(event, [])
    with pytest.raises(LocalProtocolError, match="32 bits"):
        whole.end_request_buffers(1 << 32)
    with pytest.raises(LocalProtocolError, match="is not a ProtocolStatus"):
        whole.end_request_buffers(0, 9)
    assert whole.send_stderr(b"") == b""  # nothing to say opens no stream
    whole.end_request_buffers(0, stdout=(b"Status: 204\r\n\r\n",))
    for late in (
        lambda: whole.send_stdout_buffers((b"late",)),
        lambda: whole.send_stderr(b"late"),
        lambda: whole.end_request_buffers(),
    ):
        with pytest.raises(LocalProtocolError, match="request 3: it has ended"):
            late()


# --- SlotsFactory: RequestReceived without its __init__ ------------------------------------

FIELDS = tuple(field.name for field in dataclasses.fields(RequestReceived))


def test_the_factory_makes_the_event_the_dataclass_makes(lane: ModuleType) -> None:
    make = lane.SlotsFactory(RequestReceived, FIELDS)
    params = {b"REQUEST_METHOD": b"GET"}
    names = frozenset({b"X"})
    event = make(7, Role.FILTER, True, params, names, 20)
    expected = RequestReceived(7, Role.FILTER, True, params, names, 20)
    assert type(event) is RequestReceived
    assert event == expected and repr(event) == repr(expected)
    assert event.params is params and event.duplicate_names is names
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.role = Role.RESPONDER  # type: ignore[misc]
    # Each value is held once more, and let go with the event: nothing leaks.
    counts = [sys.getrefcount(params), sys.getrefcount(names)]
    made = [make(1, Role.RESPONDER, False, params, names, 20) for _ in range(1000)]
    assert sys.getrefcount(params) == counts[0] + 1000
    del made
    assert [sys.getrefcount(params), sys.getrefcount(names)] == counts


class Plain:
    pass


class Slotted:
    __slots__ = ("a", "b")


class SlottedChild(Slotted):
    __slots__ = ("c",)


def test_the_factory_refuses_what_could_leave_a_field_unset(lane: ModuleType) -> None:
    make = lane.SlotsFactory
    for cls, names in [
        (RequestReceived, FIELDS[:-1]),  # a slot no value would fill
        (RequestReceived, (*FIELDS[:-1], FIELDS[0])),  # one given twice
        (RequestReceived, (*FIELDS[:-1], "nonsense")),
        (RequestReceived, (*FIELDS[:-1], 5)),
        (Plain, ()),  # a __dict__, not slots
        (SlottedChild, ("c",)),  # its base's slots would stay empty
        ("not a class", ()),
    ]:
        with pytest.raises(TypeError):
            make(cls, names)
    factory = make(Slotted, ("b", "a"))
    made = factory(1, 2)
    assert (made.a, made.b) == (2, 1)  # by name, whatever order the slots were laid out in
    with pytest.raises(TypeError):
        factory(1)
    with pytest.raises(TypeError):
        factory(1, b=2)
