"""The C fast lanes of the protocol (fcgikit/protocol/_speedups.c) against their Python twins.

fcgikit/protocol/lanes.py lists each lane with its twin and the test here that holds the two
together (tests/protocol/test_lanes.py walks that table). Each test feeds both the same
generated input, built around the ordinary case and then bent every way a peer can bend it:
the lane must decline (None) or answer exactly what its twin answers.

``ServerConnection.receive_data`` also hands an idle connection's input to ``scan_request``
first; there the lane must give what the record-by-record path gives: the same events, the
same state after (what the app may send, what a later record does), the same replies.
scripts/test runs this file in both passes; tests/native.py loads the lane in the
pure-Python pass too, where it is held to the interpreted Python.
"""

from __future__ import annotations

import dataclasses
import sys
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fcgikit.errors import LocalProtocolError, RemoteProtocolError
from fcgikit.protocol import (
    ClientConnection,
    RequestReceived,
    Role,
    ServerConnection,
    lanes,
    output,
    server_connection,
    whole_request,
)
from fcgikit.protocol.constants import COPY_MAX
from fcgikit.protocol.events import TextParams
from fcgikit.protocol.lanes import (
    FIELD_NAMES,
    TEXT_PARAMS_SLOTS,
    ScanRequest,
    ScanRequestText,
    request_received_py,
    text_params_py,
)
from fcgikit.protocol.output import frame_end_py
from fcgikit.protocol.record_reader import cut_run_py
from fcgikit.protocol.records import encode_pairs, pack_header
from fcgikit.protocol.text_scan import scan_request_text_py, text_params
from fcgikit.protocol.whole_request import scan_request_py
from tests.native import PURE_PYTHON_PASS, load_lane
from tests.protocol.peer_streams import GET_PARAMS, PIECES, nginx_get, streams


@pytest.fixture(scope="module")
def lane() -> ModuleType:
    return load_lane("fcgikit.protocol._speedups")


@pytest.fixture(scope="module", params=["lane", "python-twin"])
def scan(request: pytest.FixtureRequest) -> ScanRequest:
    """The C ``scan_request``, or its Python twin plugged in where the lane would be: the
    twin runs where no lane was built (the pure wheel), so the seam runs in every pass."""
    if request.param == "lane":
        return request.getfixturevalue("lane").scan_request  # type: ignore[no-any-return]
    return scan_request_py


@pytest.fixture(scope="module", params=["lane", "python-twin"])
def scan_text(request: pytest.FixtureRequest) -> ScanRequestText:
    """The C ``scan_request_text``, or its Python twin (the pure build's)."""
    if request.param == "lane":
        return request.getfixturevalue("lane").scan_request_text  # type: ignore[no-any-return]
    return scan_request_text_py


@contextmanager
def framing_with(frame_end: object) -> Iterator[None]:
    """Output framed with ``frame_end`` (the C lane, or None for the Python alone)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(output, "frame_end", frame_end)
        yield


def test_the_lane_is_on_exactly_when_the_pass_says(lane: ModuleType) -> None:
    users = (server_connection.scan_request, whole_request.scan_request, output.frame_end)
    if PURE_PYTHON_PASS:
        assert (lanes.scan_request, lanes.frame_end) == (None, None)
        assert users == (None, None, None)
        assert lanes.request_received is request_received_py
        with pytest.raises(ImportError):
            import fcgikit.protocol._speedups  # noqa: F401
        return
    assert (lanes.scan_request, lanes.frame_end) == (lane.scan_request, lane.frame_end)
    assert users == (lane.scan_request, lane.scan_request, lane.frame_end)
    assert ServerConnection()._scan_request is lane.scan_request
    assert type(lanes.request_received) is lane.SlotsFactory
    # It takes what nginx sends for a GET: otherwise every test here would pass by declining.
    assert lane.scan_request(nginx_get(), 1 << 20, 128) is not None


def test_the_lanes_refuse_to_run_with_numbers_that_are_not_theirs(lane: ModuleType) -> None:
    """The C takes its numbers from Python (lanes.C_CONSTANTS) and checks the sizes it lays
    out itself; given wrong ones it refuses, and keeps the right ones."""
    wrong = {**lanes.C_CONSTANTS, "FCGI_HEADER_LEN": 16}
    with pytest.raises(ValueError, match="FCGI_HEADER_LEN as 8 bytes, Python says 16"):
        lane.configure(wrong)
    with pytest.raises(ValueError, match="COPY_MAX"):
        lane.configure({**lanes.C_CONSTANTS, "COPY_MAX": 70_000})
    missing = {name: value for name, value in lanes.C_CONSTANTS.items() if name != "STDIN"}
    with pytest.raises(KeyError, match="STDIN"):
        lane.configure(missing)
    assert lane.scan_request(nginx_get(), 1 << 20, 128) is not None


# --- an idle connection's input -----------------------------------------------------------

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
    scan: ScanRequest, stream: tuple[bytes, int], options: dict[str, object], then: bytes
) -> None:
    data, max_params_size = stream
    with_lane = ServerConnection(max_params_size=max_params_size, **options)  # type: ignore[arg-type]
    without = ServerConnection(max_params_size=max_params_size, **options)  # type: ignore[arg-type]
    if Role.RESPONDER in with_lane._roles:
        with_lane._scan_request = scan  # the pure-Python pass imports no lane
    without._scan_request = None
    assert observe(with_lane, data, then) == observe(without, data, then)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    streams(),
    st.sampled_from([128, 128, 0, 1, 2, 3]),
    st.sampled_from([bytes, bytearray, memoryview]),
)
def test_scan_request_answers_what_its_python_twin_answers(
    lane: ModuleType, stream: tuple[bytes, int], max_decoded_pairs: int, kind: type
) -> None:
    data, max_params_size = stream
    found = lane.scan_request(kind(data), max_params_size, max_decoded_pairs)
    twin = scan_request_py(kind(data), max_params_size, max_decoded_pairs)
    assert joined_body(found) == joined_body(twin)


#: a caller's verdicts on some of the names peer_streams sends: each name's own text, None
#: (left out), or no verdict (the scan declines)
NAME_TABLES = st.dictionaries(
    st.sampled_from([b"REQUEST_METHOD", b"PATH_INFO", b"HTTP_X", b"", b"N" * 200, b"\xff"]),
    st.booleans(),
).map(lambda verdicts: {n: n.decode("latin-1") if keep else None for n, keep in verdicts.items()})


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(streams(), st.sampled_from([128, 128, 0, 1, 2, 3]), NAME_TABLES, st.integers(0, 30))
def test_scan_request_text_answers_what_its_python_twin_answers(
    lane: ModuleType,
    stream: tuple[bytes, int],
    max_decoded_pairs: int,
    names: dict[bytes, str | None],
    room: int,
) -> None:
    data, max_params_size = stream
    found = lane.scan_request_text(data, max_params_size, max_decoded_pairs, names, room)
    twin = scan_request_text_py(data, max_params_size, max_decoded_pairs, names, room)
    assert joined_body(found) == joined_body(twin)
    if found is not None:  # in the dict's order too: the environ's keys come in it
        assert list(found[2][1].items()) == list(twin[2][1].items())
    # What it answers is what scan_request answers, its params read the same way.
    as_bytes = lane.scan_request(data, max_params_size, max_decoded_pairs)
    if found is not None:
        encoded, text = found[2]
        assert dict(TextParams(encoded, text)) == as_bytes[2]
        assert text == text_params(as_bytes[2], names)
        assert (*found[:2], *found[3:]) == (*as_bytes[:2], *as_bytes[3:])
    elif as_bytes is not None:  # declined only for a name it has no verdict on
        assert any(name not in names for name in as_bytes[2])


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(streams(), st.sampled_from([128, 128, 0, 1, 2, 3]), NAME_TABLES)
def test_the_one_pass_twin_takes_what_the_record_by_record_reading_takes(
    stream: tuple[bytes, int], max_decoded_pairs: int, names: dict[bytes, str | None]
) -> None:
    """scan_request_text_py walks the buffer itself (the pure build's one pass): it must
    take exactly the requests a ServerConnection's reading takes, params as text_params
    makes them of that reading's dict, and decline the rest."""
    data, max_params_size = stream
    spec = scan_request_py(data, max_params_size, max_decoded_pairs)
    found = scan_request_text_py(data, max_params_size, max_decoded_pairs, names, 0)
    text = None if spec is None else text_params(spec[2], names)
    if spec is None or text is None:
        assert found is None
        return
    assert found is not None
    encoded, found_text = found[2]
    assert list(found_text.items()) == list(text.items())
    assert dict(TextParams(encoded, found_text)) == spec[2]
    assert joined_body((*found[:2], None, *found[3:])) == joined_body((*spec[:2], None, *spec[3:]))


def joined_body(found: tuple[object, ...] | None) -> tuple[object, ...] | None:
    """A scan's answer with its body's chunks joined: where the body is cut is not part of
    the answer (the lane keeps records apart, the twin has a read's records in one)."""
    if found is None:
        return None
    chunks = found[4]
    assert isinstance(chunks, list)
    return (*found[:4], b"".join(chunks), *found[5:])


def test_the_lane_takes_ordinary_requests_and_declines_the_rest(scan: ScanRequest) -> None:
    def scanned(data: bytes | memoryview, max_params_size: int, max_pairs: int = 128) -> object:
        return scan(data, max_params_size, max_pairs)

    whole = nginx_get()
    begin_and_params = whole[: -len(pack_header(5, 1, 0))]
    assert scanned(whole, 1 << 20) is not None
    assert scanned(begin_and_params, 1 << 20) is not None  # the body comes later: still ordinary
    assert scanned(memoryview(bytearray(whole)), 1 << 20) is not None  # the loop's recv buffer
    assert scanned(whole[:-1], 1 << 20) is None  # a record cut short
    assert scanned(whole + whole, 1 << 20) is None  # anything after the end of FCGI_STDIN
    params_size = len(encode_pairs(GET_PARAMS))
    assert scanned(whole, params_size) is not None  # at the cap: allowed
    assert scanned(whole, params_size - 1) is None  # over it: the ordinary path says so
    assert scanned(whole, 1 << 20, len(GET_PARAMS)) is not None  # as many pairs as it decodes
    assert scanned(whole, 1 << 20, len(GET_PARAMS) - 1) is None  # more: kept encoded
    authorizer = ClientConnection().start_request(1, {b"A": b"1"}, role=Role.AUTHORIZER)
    assert scanned(authorizer, 1 << 20) is None


#: a verdict on each name nginx_get sends: the table a WSGI server has after a request
GET_NAMES = {name: name.decode("latin-1") for name, _ in GET_PARAMS}


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    streams(),
    CONNECTION_SETTINGS,
    st.one_of(NAME_TABLES, st.just(GET_NAMES)),
    st.sampled_from([b"", nginx_get(1), nginx_get(2)]),
)
def test_the_text_lane_gives_what_the_record_by_record_path_gives(
    scan_text: ScanRequestText,
    stream: tuple[bytes, int],
    options: dict[str, object],
    names: dict[bytes, str | None],
    then: bytes,
) -> None:
    """A connection given a table of names (a kept connection's, in the server) reads a
    whole request in one pass, its params as text; what a caller sees is what the record
    path gives, the params read as bytes the same, the text what text_params makes of them."""
    data, max_params_size = stream
    with_lane = ServerConnection(max_params_size=max_params_size, names=names, **options)  # type: ignore[arg-type]
    without = ServerConnection(max_params_size=max_params_size, **options)  # type: ignore[arg-type]
    if with_lane._scan_text is not None:
        with_lane._scan_text = scan_text  # the pure-Python pass imports no lane
    without._scan_request = None
    seen = observe(with_lane, data, then)
    assert seen == observe(without, data, then)
    for event in seen[0][1] if type(seen[0][1]) is list else ():
        params = getattr(event, "params", None)
        if type(params) is TextParams:
            assert params.text == text_params(dict(params), names)


def test_a_connection_with_names_reads_a_whole_request_as_text(
    scan_text: ScanRequestText,
) -> None:
    """The lane is taken for nginx's GET on an idle connection, first or after others."""
    server = ServerConnection(names=GET_NAMES)
    server._scan_text = scan_text
    for request_id in (1, 2, 1):
        received, _ = server.receive_data(nginx_get(request_id))
        assert isinstance(received, RequestReceived)
        assert type(received.params) is TextParams
        assert received.params.text == {name.decode(): value.decode() for name, value in GET_PARAMS}
        assert dict(received.params) == dict(GET_PARAMS)
        server.end_request(request_id, 0)
    # a name it has no verdict on: the record path, params as bytes
    client = ClientConnection()
    other = client.start_request(3, [(b"HTTP_NEW", b"1")]) + client.end_stdin(3)
    received, _ = server.receive_data(other)
    assert received.params == {b"HTTP_NEW": b"1"}  # type: ignore[union-attr]
    assert type(received.params) is dict  # type: ignore[union-attr]


def test_a_name_left_out_and_sent_twice_is_a_duplicate_in_every_lane(
    scan_text: ScanRequestText,
) -> None:
    client = ClientConnection()
    pairs = [(b"HTTP_X", b"1"), (b"PATH_INFO", b"/"), (b"HTTP_X", b"2")]
    data = client.start_request(1, pairs) + client.end_stdin(1)
    names: dict[bytes, str | None] = {b"HTTP_X": None, b"PATH_INFO": "PATH_INFO"}
    found = scan_text(data, 1 << 20, 128, names, 0)
    assert found is not None
    assert found[2][1] == {"PATH_INFO": "/"}
    assert found[3] == {b"HTTP_X"}


def test_declining_the_first_read_of_an_upload_copies_none_of_it(scan: ScanRequest) -> None:
    """An upload's first read ends in a cut FCGI_STDIN record: the lane must say no before
    copying the body it holds (the ordinary path copies it once, as it must)."""
    client = ClientConnection()
    upload = client.start_request(1, GET_PARAMS) + client.send_stdin(1, b"u" * 300_000)
    first_read = upload[: 256 * 1024]
    tracemalloc.start()
    try:
        assert scan(first_read, 1 << 20, 128) is None
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16 * 1024


def test_a_large_request_across_many_records_and_reads(scan: ScanRequest) -> None:
    """Params of 200 KiB (four PARAMS records) and a body streamed in its own reads."""
    client = ClientConnection()
    params = [(b"HTTP_X_%d" % n, b"v" * 1000) for n in range(200)] + [(b"HTTP_X_1", b"last")]
    head = client.start_request(7, params, keep_conn=True)
    body = client.send_stdin(7, b"b" * 100_000) + client.end_stdin(7)
    with_lane, without = ServerConnection(), ServerConnection()
    with_lane._scan_request = scan
    without._scan_request = None
    for server in (with_lane, without):
        events = server.receive_data(head) + server.receive_data(body)
        received = events[0]
        assert received.params[b"HTTP_X_1"] == b"last"  # type: ignore[union-attr]
        assert received.duplicate_names == frozenset({b"HTTP_X_1"})  # type: ignore[union-attr]
        assert b"".join(e.data for e in events[1:-1]) == b"b" * 100_000  # type: ignore[union-attr]
    assert observe(with_lane, b"", nginx_get(8)) == observe(without, b"", nginx_get(8))


# --- the end of a response -----------------------------------------------------------------


@settings(max_examples=1000, deadline=None)
@given(
    pieces=PIECES,
    request_id=st.sampled_from([1, 2, 0xFFFF]),
    app_status=st.sampled_from([0, 1, 0xFFFFFFFF]),
    protocol_status=st.sampled_from([0, 1, 2, 3]),
    close_stdout=st.booleans(),
    close_stderr=st.booleans(),
    as_list=st.booleans(),
)
def test_frame_end_frames_what_its_python_twin_frames(
    lane: ModuleType,
    pieces: list[bytes | memoryview],
    request_id: int,
    app_status: int,
    protocol_status: int,
    close_stdout: bool,
    close_stderr: bool,
    as_list: bool,
) -> None:
    stdout = list(pieces) if as_list else tuple(pieces)
    fields = (request_id, stdout, app_status, protocol_status, close_stdout, close_stderr)
    framed = lane.frame_end(*fields)
    twin = frame_end_py(*fields)
    small_bytes = all(type(piece) is bytes for piece in pieces)
    small_bytes = small_bytes and sum(len(piece) for piece in pieces) < COPY_MAX
    # It answers the ordinary case (small bytes), exactly as the twin does; else it declines.
    assert (framed is not None) == small_bytes
    if framed is not None:
        assert [framed] == twin


@settings(max_examples=300, deadline=None)
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
        with framing_with(frame_end):
            server = ServerConnection()
            server.receive_data(nginx_get(5, keep_conn=keep_conn))
            before = b""
            if stdout_before:
                before += server.send_stdout(5, b"early")
            if stderr_before:
                before += server.send_stderr(5, b"oops")
            stdout = list(pieces) if as_list else tuple(pieces)
            buffers = server.end_request_buffers(5, app_status, protocol_status, stdout=stdout)
        ends.append((before + b"".join(buffers), len(buffers), server.should_close))
        # What the web server reads: the body whole, then the end of the request.
        client = ClientConnection()
        client.start_request(5, {}, keep_conn=keep_conn)
        events = client.receive_data(ends[-1][0])
        body = b"".join(e.data for e in events if type(e).__name__ == "StdoutData")  # type: ignore[attr-defined]
        assert body == (b"early" if stdout_before else b"") + b"".join(pieces)
        assert type(events[-1]).__name__ == "RequestEnded"
    assert ends[0] == ends[1]


# --- SlotsFactory: RequestReceived without its __init__ ------------------------------------

FIELDS = tuple(field.name for field in dataclasses.fields(RequestReceived))


def test_the_factory_makes_the_event_its_python_twin_makes(lane: ModuleType) -> None:
    assert FIELD_NAMES == FIELDS
    make = lane.SlotsFactory(RequestReceived, FIELDS)
    params = {b"REQUEST_METHOD": b"GET"}
    names = frozenset({b"X"})
    expected = RequestReceived(7, Role.FILTER, True, params, names, 20)
    for event in (
        make(7, Role.FILTER, True, params, names, 20),
        request_received_py(7, Role.FILTER, True, params, names, 20),
    ):
        assert type(event) is RequestReceived
        assert event == expected and repr(event) == repr(expected)
        assert event.params is params and event.duplicate_names is names
        with pytest.raises(dataclasses.FrozenInstanceError):
            event.role = Role.RESPONDER  # type: ignore[misc]
    # TextParams, laid out on EncodedParams' slots too (make_text_params)
    make_text = lane.SlotsFactory(TextParams, TEXT_PARAMS_SLOTS)
    encoded = encode_pairs([(b"PATH_INFO", b"/"), (b"HTTP_X", b"1")])
    for made in (
        make_text(encoded, None, {"PATH_INFO": "/"}),
        text_params_py(encoded, None, {"PATH_INFO": "/"}),
    ):
        assert type(made) is TextParams
        assert made.text == {"PATH_INFO": "/"} and made.encoded == encoded
        assert dict(made) == {b"PATH_INFO": b"/", b"HTTP_X": b"1"} and made[b"HTTP_X"] == b"1"
        assert repr(made) == repr(TextParams(encoded, {}))
    event = make(7, Role.FILTER, True, params, names, 20)
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


def test_a_value_seen_before_under_a_name_and_a_different_one_both_read_as_sent(
    scan_text: ScanRequestText,
) -> None:
    """Values repeat from request to request (the lane hands out the str it decoded last for
    the same bytes): a different value, one of another length, a latin-1 one, an empty
    one, all read as they came, request after request."""
    names: dict[bytes, str | None] = {b"REQUEST_METHOD": "REQUEST_METHOD", b"HTTP_X": "HTTP_X"}
    for method, x in [
        (b"GET", b"caf\xe9"),
        (b"GET", b"caf\xe9"),
        (b"PUT", b"cafe"),
        (b"POST", b""),
        (b"GET", b"caf\xe9"),
        (b"G" * 65, b"\xff" * 64),
        (b"G" * 65, b"\xff" * 64),
    ]:
        client = ClientConnection()
        pairs = [(b"REQUEST_METHOD", method), (b"HTTP_X", x)]
        data = client.start_request(1, pairs) + client.end_stdin(1)
        found = scan_text(data, 1 << 20, 128, names, 0)
        assert found is not None
        text = {"REQUEST_METHOD": method.decode("latin-1"), "HTTP_X": x.decode("latin-1")}
        assert found[2][1] == text


def test_a_verdict_changed_in_the_table_is_the_one_the_next_scan_follows(
    scan_text: ScanRequestText,
) -> None:
    """The lane keeps the table's verdicts from scan to scan while the table is unchanged: a
    verdict changed, a name taken out, a table emptied and filled again, another table, each
    read as the table says at the time of the scan."""
    client = ClientConnection()
    pairs = [(b"REQUEST_METHOD", b"GET"), (b"HTTP_X", b"1")]
    data = client.start_request(1, pairs) + client.end_stdin(1)
    names: dict[bytes, str | None] = {b"REQUEST_METHOD": "REQUEST_METHOD", b"HTTP_X": "HTTP_X"}
    other: dict[bytes, str | None] = {b"REQUEST_METHOD": "METHOD", b"HTTP_X": "X"}

    def text(table: dict[bytes, str | None]) -> dict[str, str] | None:
        found = scan_text(data, 1 << 20, 128, table, 0)
        return None if found is None else found[2][1]

    assert text(names) == {"REQUEST_METHOD": "GET", "HTTP_X": "1"}
    assert text(names) == {"REQUEST_METHOD": "GET", "HTTP_X": "1"}
    names[b"HTTP_X"] = None
    assert text(names) == {"REQUEST_METHOD": "GET"}
    names[b"HTTP_X"] = "HTTP_Y"
    assert text(names) == {"REQUEST_METHOD": "GET", "HTTP_Y": "1"}
    assert text(other) == {"METHOD": "GET", "X": "1"}
    assert text(names) == {"REQUEST_METHOD": "GET", "HTTP_Y": "1"}
    del names[b"HTTP_X"]
    assert text(names) is None  # no verdict on HTTP_X: declined
    names.clear()
    names.update({b"REQUEST_METHOD": "M", b"HTTP_X": "HTTP_X"})
    assert text(names) == {"M": "GET", "HTTP_X": "1"}


# --- a run of a body's records -------------------------------------------------------------

#: a record as the run cutter sees it: version, type, request id, content, padding; the
#: ordinary one is a version-1 FCGI_STDIN record for request 1, with content
RUN_RECORDS = st.tuples(
    st.sampled_from([1, 1, 1, 1, 2]),
    st.sampled_from([5, 5, 5, 5, 4, 6]),
    st.sampled_from([1, 1, 1, 1, 2, 0x0101]),
    st.binary(max_size=40) | st.sampled_from([b"", b"x" * 300]),
    st.integers(0, 9),
)


@settings(max_examples=1500, deadline=None)
@given(
    records=st.lists(RUN_RECORDS, max_size=8),
    cut_at=st.integers(0, 2000),
    offset=st.integers(0, 60),
    record_type=st.sampled_from([5, 4]),
    request_id=st.sampled_from([1, 0x0101]),
)
def test_cut_run_cuts_what_its_python_twin_cuts(
    lane: ModuleType,
    records: list[tuple[int, int, int, bytes, int]],
    cut_at: int,
    offset: int,
    record_type: int,
    request_id: int,
) -> None:
    stream = b"".join(
        bytes(
            [version, type_, rid >> 8, rid & 0xFF, len(content) >> 8, len(content) & 0xFF, pad, 0]
        )
        + content
        + bytes(pad)
        for version, type_, rid, content, pad in records
    )
    data = memoryview(stream)[: min(cut_at, len(stream))]
    start = min(offset, len(data))
    runs: list[list[memoryview]] = [[], []]
    cut = lane.cut_run(data, start, record_type, request_id, runs[0])
    twin = cut_run_py(data, start, record_type, request_id, runs[1])
    assert cut == twin
    assert [bytes(view) for view in runs[0]] == [bytes(view) for view in runs[1]]
    # views of the caller's bytes, not copies
    assert all(view.obj is stream for view in runs[0])


def test_cut_run_declines_a_view_it_cannot_cut_in_bytes(lane: ModuleType) -> None:
    record = pack_header(5, 1, 8) + b"12345678"
    views: list[memoryview] = []
    assert lane.cut_run(memoryview(record).cast("H"), 0, 5, 1, views) is None
    assert lane.cut_run(memoryview(record), 17, 5, 1, views) is None
    assert views == []
    assert lane.cut_run(memoryview(record), 0, 5, 1, views) == 16
    assert [bytes(view) for view in views] == [b"12345678"]
