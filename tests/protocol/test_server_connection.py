"""ServerConnection beyond the state matrix: refusals, management records, abort, caps, EOF."""

from __future__ import annotations

import dataclasses
import itertools
import tracemalloc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fcgikit.errors import LocalProtocolError, RemoteProtocolError
from fcgikit.protocol import (
    RequestAborted,
    RequestReceived,
    Role,
    ServerConnection,
    StdinData,
    StdinEnded,
    WholeRequest,
    input_events,
)

from . import wire

COMPLETE, CANT_MPX_CONN, OVERLOADED, UNKNOWN_ROLE = 0, 1, 2, 3


def receive_request(
    server: ServerConnection, request_id: int = 1, *, keep_conn: bool = False
) -> None:
    events = server.receive_data(
        wire.begin(request_id, keep_conn=keep_conn) + wire.params(request_id)
    )
    assert [type(event) for event in events] == [RequestReceived]


# --- refusals ------------------------------------------------------------------------------


def test_unknown_role_is_refused_and_the_id_stays_inactive() -> None:
    server = ServerConnection()  # RESPONDER only
    assert server.receive_data(wire.begin(1, wire.FILTER, keep_conn=True)) == []
    assert server.data_to_send() == wire.end_request(1, 0, UNKNOWN_ROLE)
    assert server.active_request_ids == frozenset()
    assert server.receive_data(wire.params(1, {b"A": b"1"}) + wire.record(wire.STDIN, 1)) == []
    assert not server.should_close


def test_role_number_no_role_names_is_refused() -> None:
    server = ServerConnection(roles=list(Role))
    server.receive_data(wire.begin(1, role=0x1234, keep_conn=True))
    assert server.data_to_send() == wire.end_request(1, 0, UNKNOWN_ROLE)


def test_refused_request_without_keep_conn_asks_to_close() -> None:
    server = ServerConnection()
    server.receive_data(wire.begin(1, wire.AUTHORIZER, keep_conn=False))
    assert server.should_close


def test_second_request_on_unmultiplexed_connection_gets_cant_mpx_conn() -> None:
    server = ServerConnection()
    receive_request(server, 1, keep_conn=True)
    assert server.receive_data(wire.begin(2, keep_conn=True) + wire.params(2)) == []
    assert server.data_to_send() == wire.end_request(2, 0, CANT_MPX_CONN)
    assert server.active_request_ids == {1}
    assert server.receive_data(wire.record(wire.STDIN, 1, b"ok")) == [StdinData(1, b"ok")]


def test_the_stdin_records_of_one_read_arrive_as_one_event_per_run() -> None:
    # A web server streams a large body in many records (nginx: 32 KiB each); one event per
    # read, not per record, is one hand-off of the bytes to the app that waits for them.
    server = ServerConnection(multiplexed=True)
    receive_request(server, 1, keep_conn=True)
    receive_request(server, 2, keep_conn=True)
    stream = (
        wire.record(wire.STDIN, 1, b"ab")
        + wire.record(wire.STDIN, 1, b"cd")
        + wire.record(wire.STDIN, 1, b"e")
        + wire.record(wire.STDIN, 2, b"xy")
        + wire.record(wire.STDIN, 1, b"fg")
        + wire.record(wire.STDIN, 1)
        + wire.record(wire.STDIN, 2, b"z")
    )
    assert server.receive_data(stream) == [
        StdinData(1, b"abcde"),
        StdinData(2, b"xy"),
        StdinData(1, b"fg"),
        StdinEnded(1),
        StdinData(2, b"z"),
    ]
    # the next read starts a run of its own
    assert server.receive_data(wire.record(wire.STDIN, 2, b"w")) == [StdinData(2, b"w")]


def test_a_read_of_body_records_is_copied_out_of_the_read_once() -> None:
    """A streamed upload's read holds several records of one body: the event's bytes are
    made from the read in one copy (the records' contents are not copied first, then
    joined), and nothing else of the read is kept."""
    server = ServerConnection()
    receive_request(server, 1, keep_conn=True)
    contents = [bytes([n]) * 32760 for n in range(8)]
    read = bytearray(b"".join(wire.record(wire.STDIN, 1, content) for content in contents))
    # the last record ends in the next read: what came of its content comes now, the rest
    # with the next read (a body is a stream: not kept until the record is whole)
    read += wire.record(wire.STDIN, 1, b"next")[:10]
    body = sum(map(len, contents))
    tracemalloc.start()
    try:
        events = server.receive_data(read)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert events == [StdinData(1, b"".join(contents) + b"ne")]
    assert peak < body + body // 4, f"{peak} bytes at the peak for a body of {body}"
    assert server.receive_data(wire.record(wire.STDIN, 1, b"next")[10:]) == [StdinData(1, b"xt")]


def test_multiplexed_connection_overloads_past_max_active_requests() -> None:
    server = ServerConnection(multiplexed=True, max_active_requests=2)
    receive_request(server, 1, keep_conn=True)
    receive_request(server, 2, keep_conn=True)
    assert server.receive_data(wire.begin(3, keep_conn=True)) == []
    assert server.data_to_send() == wire.end_request(3, 0, OVERLOADED)
    assert server.active_request_ids == {1, 2}
    server.end_request(1)
    server.receive_data(wire.begin(3, keep_conn=True))
    assert server.data_to_send() == b""
    assert server.active_request_ids == {2, 3}


def test_begin_for_an_active_id_is_an_error() -> None:
    server = ServerConnection(multiplexed=True)
    receive_request(server, 5)
    with pytest.raises(RemoteProtocolError, match="request 5, which is already active"):
        server.receive_data(wire.begin(5))


def test_begin_with_request_id_0_is_an_error() -> None:
    with pytest.raises(RemoteProtocolError, match="request id 0"):
        ServerConnection().receive_data(wire.begin(0))


@pytest.mark.parametrize("length", [0, 7, 9, 16])
def test_begin_body_must_be_8_bytes(length: int) -> None:
    with pytest.raises(RemoteProtocolError, match=f"{length} bytes of content"):
        ServerConnection().receive_data(wire.record(wire.BEGIN, 1, bytes(length)))


# --- management records --------------------------------------------------------------------


def test_get_values_answers_known_names_only() -> None:
    server = ServerConnection(multiplexed=True, max_conns=7, max_reqs=50)
    query = b"".join(
        wire.pair(name, b"")
        for name in (b"FCGI_MAX_CONNS", b"NO_SUCH_VALUE", b"FCGI_MAX_REQS", b"FCGI_MPXS_CONNS")
    )
    assert server.receive_data(wire.record(wire.GET_VALUES, 0, query)) == []
    [(record_type, request_id, content, _)] = wire.split_records(server.data_to_send())
    assert (record_type, request_id) == (wire.GET_VALUES_RESULT, 0)
    assert content == (
        wire.pair(b"FCGI_MAX_CONNS", b"7")
        + wire.pair(b"FCGI_MAX_REQS", b"50")
        + wire.pair(b"FCGI_MPXS_CONNS", b"1")
    )


def test_get_values_with_no_known_names_gets_an_empty_result() -> None:
    server = ServerConnection()
    server.receive_data(wire.record(wire.GET_VALUES, 0, wire.pair(b"X", b"")))
    assert server.data_to_send() == wire.record(wire.GET_VALUES_RESULT, 0)


def test_get_values_does_not_disturb_a_running_request() -> None:
    server = ServerConnection()
    receive_request(server)
    server.receive_data(wire.record(wire.GET_VALUES, 0, wire.pair(b"FCGI_MPXS_CONNS", b"")))
    assert server.data_to_send() == wire.padded(
        wire.GET_VALUES_RESULT, 0, wire.pair(b"FCGI_MPXS_CONNS", b"0")
    )
    assert server.active_request_ids == {1}


@pytest.mark.parametrize(
    "record_type",
    [0, wire.ABORT, wire.PARAMS, wire.STDIN, wire.DATA, wire.GET_VALUES_RESULT, 11, 12, 255],
)
def test_other_management_types_get_unknown_type(record_type: int) -> None:
    server = ServerConnection()
    assert server.receive_data(wire.record(record_type, 0, b"whatever")) == []
    assert server.data_to_send() == wire.record(
        wire.UNKNOWN_TYPE, 0, bytes([record_type]) + bytes(7)
    )


@pytest.mark.parametrize("record_type", [wire.END, wire.STDOUT, wire.STDERR])
def test_output_types_from_the_web_server_are_errors(record_type: int) -> None:
    for request_id in (0, 1):
        with pytest.raises(RemoteProtocolError, match="never sends it"):
            ServerConnection().receive_data(wire.record(record_type, request_id))


@pytest.mark.parametrize("record_type", [wire.GET_VALUES, 10, 11])
def test_management_type_with_a_request_id_is_an_error(record_type: int) -> None:
    with pytest.raises(RemoteProtocolError, match="must have request id 0"):
        ServerConnection().receive_data(wire.record(record_type, 1))


@pytest.mark.parametrize("record_type", [0, 12, 200])
def test_undefined_type_with_a_request_id_is_an_error(record_type: int) -> None:
    with pytest.raises(RemoteProtocolError, match="no such record type"):
        ServerConnection().receive_data(wire.record(record_type, 1))


# --- abort ---------------------------------------------------------------------------------


def test_abort_before_params_end_answers_at_once_without_an_event() -> None:
    server = ServerConnection()
    stream = wire.begin(1, keep_conn=True) + wire.record(wire.PARAMS, 1, wire.pair(b"A", b"1"))
    assert server.receive_data(stream + wire.record(wire.ABORT, 1)) == []
    assert server.data_to_send() == wire.end_request(1)
    assert server.active_request_ids == frozenset()
    assert server.receive_data(wire.params(1) + wire.record(wire.STDIN, 1)) == []
    with pytest.raises(LocalProtocolError):
        server.end_request(1)
    assert not server.should_close


def test_abort_after_params_tells_the_app_and_drops_its_output() -> None:
    server = ServerConnection()
    receive_request(server, 1, keep_conn=False)
    assert server.receive_data(wire.record(wire.ABORT, 1)) == [RequestAborted(1)]
    assert server.data_to_send() == wire.end_request(1)
    assert server.should_close
    assert server.active_request_ids == frozenset()
    assert server.receive_data(wire.record(wire.STDIN, 1, b"late")) == []
    assert server.send_stdout(1, b"too late") == b""
    assert server.send_stderr(1, b"too late") == b""
    assert server.end_request(1, stdout=b"too late") == b""
    with pytest.raises(LocalProtocolError):
        server.end_request(1)  # now forgotten


def test_abort_closes_the_output_streams_the_app_opened() -> None:
    server = ServerConnection()
    receive_request(server)
    server.send_stdout(1, b"partial")
    server.send_stderr(1, b"warning")
    server.receive_data(wire.record(wire.ABORT, 1))
    assert server.data_to_send() == (
        wire.record(wire.STDOUT, 1) + wire.record(wire.STDERR, 1) + wire.end_request(1)
    )


def test_second_abort_is_ignored() -> None:
    server = ServerConnection()
    receive_request(server)
    server.receive_data(wire.record(wire.ABORT, 1))
    server.data_to_send()
    assert server.receive_data(wire.record(wire.ABORT, 1)) == []
    assert server.data_to_send() == b""


def test_id_of_an_aborted_request_still_running_is_not_reused() -> None:
    server = ServerConnection(multiplexed=True)
    receive_request(server, 1, keep_conn=True)
    server.receive_data(wire.record(wire.ABORT, 1))
    server.data_to_send()
    # The web server may reuse id 1 now, but the app has not let go of it yet.
    server.receive_data(wire.begin(1, keep_conn=True))
    assert server.data_to_send() == wire.end_request(1, 0, OVERLOADED)
    assert server.end_request(1) == b""
    receive_request(server, 1, keep_conn=True)
    assert server.active_request_ids == {1}


def test_after_abort_and_end_a_plain_connection_takes_the_next_request() -> None:
    server = ServerConnection()
    receive_request(server, 1, keep_conn=True)
    server.receive_data(wire.record(wire.ABORT, 1))
    server.receive_data(wire.begin(2, keep_conn=True))
    assert server.data_to_send() == wire.end_request(1) + wire.end_request(2, 0, CANT_MPX_CONN)
    server.end_request(1)
    receive_request(server, 2)


# --- params --------------------------------------------------------------------------------


def test_duplicate_params_last_value_wins_and_are_listed() -> None:
    body = (
        wire.pair(b"SCRIPT_NAME", b"/first")
        + wire.pair(b"PATH_INFO", b"/x")
        + wire.pair(b"SCRIPT_NAME", b"/second")
        + wire.pair(b"Q", b"1")
        + wire.pair(b"Q", b"2")
        + wire.pair(b"Q", b"3")
    )
    server = ServerConnection()
    [received] = server.receive_data(
        wire.begin() + wire.record(wire.PARAMS, 1, body) + wire.record(wire.PARAMS, 1)
    )
    assert isinstance(received, RequestReceived)
    assert received.params == {b"SCRIPT_NAME": b"/second", b"PATH_INFO": b"/x", b"Q": b"3"}
    assert received.duplicate_names == {b"SCRIPT_NAME", b"Q"}


def test_pairs_may_be_split_across_params_records() -> None:
    body = wire.pair(b"NAME", b"v" * 300) + wire.pair(b"OTHER", b"1")
    stream = wire.begin() + b"".join(
        wire.record(wire.PARAMS, 1, body[start : start + 7]) for start in range(0, len(body), 7)
    )
    [received] = ServerConnection().receive_data(stream + wire.record(wire.PARAMS, 1))
    assert received.params == {b"NAME": b"v" * 300, b"OTHER": b"1"}  # type: ignore[union-attr]


def test_params_over_the_cap_are_an_error_naming_size_and_cap() -> None:
    body = wire.pair(b"N", b"v" * 97)
    assert len(body) == 100
    at_cap = ServerConnection(max_params_size=100)
    assert (
        len(at_cap.receive_data(wire.begin() + wire.record(wire.PARAMS, 1, body) + wire.params(1)))
        == 1
    )
    over = ServerConnection(max_params_size=100)
    stream = wire.begin() + wire.record(wire.PARAMS, 1, body) + wire.record(wire.PARAMS, 1, b"x")
    with pytest.raises(RemoteProtocolError, match=r"101 bytes.*cap of 100 bytes"):
        over.receive_data(stream)


def test_empty_params_stream_gives_empty_params() -> None:
    [received] = ServerConnection().receive_data(wire.begin() + wire.params(1))
    assert received == RequestReceived(1, Role.RESPONDER, False, {}, frozenset())


def test_request_received_is_the_frozen_event_however_the_request_came() -> None:
    # The server builds it without the dataclass's __init__ (a cheaper way to the same
    # object): on each path it must still be the event an app would build itself.
    params = {b"REQUEST_METHOD": b"GET", b"PATH_INFO": b"/a"}
    data = wire.begin(3) + wire.params(3, params) + wire.record(wire.STDIN, 3)
    expected = RequestReceived(3, Role.RESPONDER, False, params, frozenset(), 32)
    record_by_record = ServerConnection()
    record_by_record._scan_request = None
    made = [
        ServerConnection().receive_data(data)[0],  # the C lane where it is built
        record_by_record.receive_data(data)[0],
    ]
    whole = WholeRequest.parse(data, 1 << 20)
    assert whole is not None
    made.append(whole.event)
    for event in made:
        assert event == expected
        assert repr(event) == repr(expected)
        assert dataclasses.replace(event, request_id=4).request_id == 4
        with pytest.raises(dataclasses.FrozenInstanceError):
            event.request_id = 5  # type: ignore[misc]


def test_stdin_ended_is_shared_per_id_and_the_ids_kept_are_bounded() -> None:
    # One frozen StdinEnded serves every request with its id; the peer picks the ids, so
    # the events kept for that are capped.
    server = ServerConnection(multiplexed=True, max_active_requests=400)
    record_by_record = ServerConnection(multiplexed=True, max_active_requests=400)
    record_by_record._scan_request = None
    for request_id in range(1, 301):
        data = (
            wire.begin(request_id) + wire.params(request_id) + wire.record(wire.STDIN, request_id)
        )
        for receiver in (server, record_by_record):
            assert receiver.receive_data(data)[-1] == StdinEnded(request_id)
    assert len(input_events._STDIN_ENDED) <= input_events.STDIN_ENDED_CACHED
    assert input_events.stdin_ended_event(1) is input_events.stdin_ended_event(1)


# --- end of input and failure --------------------------------------------------------------


def test_eof_between_records_is_clean() -> None:
    server = ServerConnection()
    receive_request(server)
    server.receive_eof()
    assert server.should_close


@pytest.mark.parametrize("cut", [1, 7, 8, 12])
def test_eof_inside_a_record_is_an_error(cut: int) -> None:
    server = ServerConnection()
    server.receive_data(wire.begin()[:cut])
    with pytest.raises(RemoteProtocolError, match="middle of a record"):
        server.receive_eof()
    assert server.should_close


def test_data_after_eof_is_a_local_error() -> None:
    server = ServerConnection()
    server.receive_eof()
    assert server.receive_data(b"") == []
    with pytest.raises(LocalProtocolError):
        server.receive_data(wire.begin())


def test_a_failed_connection_stays_failed() -> None:
    server = ServerConnection()
    with pytest.raises(RemoteProtocolError):
        server.receive_data(b"\x09" + bytes(7))
    with pytest.raises(RemoteProtocolError, match="already failed"):
        server.receive_data(wire.begin())


def test_replies_queued_before_an_error_are_kept() -> None:
    server = ServerConnection()
    with pytest.raises(RemoteProtocolError):
        server.receive_data(wire.record(12, 0) + wire.record(12, 1))
    assert server.data_to_send() == wire.record(wire.UNKNOWN_TYPE, 0, b"\x0c" + bytes(7))


@pytest.mark.parametrize(
    "settings",
    [{"roles": ()}, {"max_params_size": -1}, {"max_active_requests": 0}],
)
def test_bad_settings_are_value_errors(settings: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        ServerConnection(**settings)  # type: ignore[arg-type]


# --- between requests (what a reload may hand over) ---------------------------------------


def test_between_requests_only_when_nothing_of_a_request_is_held() -> None:
    server = ServerConnection()
    assert server.between_requests
    request = wire.begin(1, keep_conn=True) + wire.params(1) + wire.record(wire.STDIN, 1)
    server.receive_data(request[:5])  # part of a header
    assert not server.between_requests
    server.receive_data(request[5:])
    assert not server.between_requests  # begun, not ended
    server.end_request(1, stdout=b"Status: 200 OK\r\n\r\n")
    assert server.between_requests  # keep-conn, answered: the next request may come
    server.receive_data(wire.begin(2) + wire.params(2) + wire.record(wire.STDIN, 2))
    server.end_request(2, stdout=b"Status: 200 OK\r\n\r\n")
    assert not server.between_requests  # without keep-conn: to be closed


def test_not_between_requests_after_eof_or_an_error() -> None:
    closed = ServerConnection()
    closed.receive_eof()
    assert not closed.between_requests
    broken = ServerConnection()
    with pytest.raises(RemoteProtocolError):
        broken.receive_data(b"\x02" + bytes(7))  # version 2
    assert not broken.between_requests


# --- a body's runs as views ----------------------------------------------------------------


def stdin_as_received(events: list[object]) -> list[object]:
    """``events`` with each StdinViews as the StdinData receive_data makes of it."""
    return [
        StdinData(e.request_id, b"".join(e.views)) if isinstance(e, input_events.StdinViews) else e
        for e in events
    ]


@settings(max_examples=200, deadline=None)
@given(
    body=st.binary(max_size=3000),
    record_size=st.integers(1, 700),
    padding=st.integers(0, 7),
    cuts=st.lists(st.integers(0, 4000), max_size=8),
    abort=st.booleans(),
)
def test_a_body_received_as_views_is_the_body_received_joined(
    body: bytes, record_size: int, padding: int, cuts: list[int], abort: bool
) -> None:
    """receive_data_keeping_views gives what receive_data gives, read for read, a run of
    FCGI_STDIN contents as views of what it was given instead of one bytes, however the
    stream is cut into reads (records split across reads included)."""
    stream = wire.begin(1, keep_conn=True) + wire.params(1)
    for start in range(0, len(body), record_size):
        stream += wire.record(wire.STDIN, 1, body[start : start + record_size], padding)
    stream += wire.record(wire.ABORT, 1) if abort else wire.record(wire.STDIN, 1)
    joined, viewed = ServerConnection(), ServerConnection()
    bounds = sorted({0, len(stream), *(c for c in cuts if c < len(stream))})
    for start, end in itertools.pairwise(bounds):
        read = bytearray(stream[start:end])  # a buffer its caller may write again
        expected = joined.receive_data(bytes(read))
        events = viewed.receive_data_keeping_views(memoryview(read))
        assert stdin_as_received(events) == expected
        for event in events:
            if isinstance(event, input_events.StdinViews):
                assert all(type(view) is memoryview for view in event.views)
        assert viewed.data_to_send() == joined.data_to_send()


def test_a_body_received_as_views_is_not_copied() -> None:
    """A run of records wholly in a read comes as views of the caller's buffer, not copies:
    the copy is the caller's to make, once."""
    server = ServerConnection()
    receive_request(server)
    read = bytearray(wire.record(wire.STDIN, 1, b"a" * 100) + wire.record(wire.STDIN, 1, b"b" * 50))
    [event] = server.receive_data_keeping_views(memoryview(read))
    assert isinstance(event, input_events.StdinViews)
    assert b"".join(event.views) == b"a" * 100 + b"b" * 50
    read[8:12] = b"zzzz"  # the caller writes its buffer again: the views show it
    assert bytes(event.views[0][:4]) == b"zzzz"
