"""A ClientConnection and a ServerConnection talking to each other, no network; client errors."""

from __future__ import annotations

import pytest

from fcgikit.errors import LocalProtocolError, RemoteProtocolError
from fcgikit.protocol import (
    ClientConnection,
    ClientEvent,
    FilterData,
    FilterDataEnded,
    ProtocolStatus,
    RequestAborted,
    RequestEnded,
    RequestReceived,
    Role,
    ServerConnection,
    ServerEvent,
    StderrData,
    StdinData,
    StdinEnded,
    StdoutData,
    UnknownTypeReply,
    ValuesResult,
)
from fcgikit.protocol.records import encode_pairs

from . import wire


class Wire:
    """Both ends of one connection; what one side sends, the other receives at once."""

    def __init__(self, server: ServerConnection | None = None) -> None:
        self.client = ClientConnection()
        self.server = server or ServerConnection()

    def to_server(self, data: bytes) -> list[ServerEvent]:
        events = self.server.receive_data(data)
        self.replies = self.client.receive_data(self.server.data_to_send())
        return events

    def to_client(self, data: bytes) -> list[ClientEvent]:
        return self.client.receive_data(data)


def test_responder_round_trip() -> None:
    link = Wire()
    params = {b"REQUEST_METHOD": b"POST", b"PATH_INFO": "/caf\u00e9".encode(), b"X": b"y" * 500}
    body = bytes(range(256)) * 1000
    events = link.to_server(
        link.client.start_request(1, params)
        + link.client.send_stdin(1, body)
        + link.client.end_stdin(1)
    )
    size = len(encode_pairs(params.items()))
    assert events[0] == RequestReceived(1, Role.RESPONDER, False, params, frozenset(), size)
    assert b"".join(e.data for e in events if isinstance(e, StdinData)) == body
    assert events[-1] == StdinEnded(1)

    response = b"Status: 201 Created\r\nContent-Type: text/plain\r\n\r\n" + b"z" * 100_000
    out = link.server.send_stdout(1, response) + link.server.send_stderr(1, b"log line\n")
    out += link.server.end_request(1, 0)
    events_back = link.to_client(out)
    assert b"".join(e.data for e in events_back if isinstance(e, StdoutData)) == response
    assert [e for e in events_back if isinstance(e, StderrData)] == [StderrData(1, b"log line\n")]
    assert events_back[-1] == RequestEnded(1, 0, ProtocolStatus.REQUEST_COMPLETE)
    assert link.server.should_close
    assert link.client.active_request_ids == frozenset()


def test_keep_conn_runs_requests_one_after_another() -> None:
    link = Wire()
    for _ in range(3):
        events = link.to_server(
            link.client.start_request(1, {b"A": b"1"}, keep_conn=True) + link.client.end_stdin(1)
        )
        assert [type(e) for e in events] == [RequestReceived, StdinEnded]
        assert link.to_client(link.server.end_request(1, stdout=b"ok"))[-1] == RequestEnded(
            1, 0, ProtocolStatus.REQUEST_COMPLETE
        )
    assert not link.server.should_close


def test_multiplexed_requests_interleave() -> None:
    link = Wire(ServerConnection(multiplexed=True))
    client, server = link.client, link.server
    stream = client.start_request(1, {b"N": b"1"}, keep_conn=True)
    stream += client.start_request(2, {b"N": b"2"}, keep_conn=True)
    stream += client.send_stdin(2, b"two") + client.send_stdin(1, b"one")
    stream += client.end_stdin(1) + client.end_stdin(2)
    events = link.to_server(stream)
    assert [(type(e).__name__, e.request_id) for e in events] == [
        ("RequestReceived", 1),
        ("RequestReceived", 2),
        ("StdinData", 2),
        ("StdinData", 1),
        ("StdinEnded", 1),
        ("StdinEnded", 2),
    ]
    back = link.to_client(
        server.send_stdout(2, b"B") + server.send_stdout(1, b"A") + server.end_request(2)
    )
    assert back == [
        StdoutData(2, b"B"),
        StdoutData(1, b"A"),
        RequestEnded(2, 0, ProtocolStatus.REQUEST_COMPLETE),
    ]
    assert client.active_request_ids == {1}


def test_filter_round_trip() -> None:
    link = Wire(ServerConnection(roles=[Role.FILTER]))
    client = link.client
    stream = client.start_request(3, {b"FCGI_DATA_LENGTH": b"4"}, role=Role.FILTER)
    stream += client.send_stdin(3, b"form") + client.end_stdin(3)
    stream += client.send_data(3, b"file") + client.end_data(3)
    events = link.to_server(stream)
    assert events[1:] == [
        StdinData(3, b"form"),
        StdinEnded(3),
        FilterData(3, b"file"),
        FilterDataEnded(3),
    ]
    assert events[0].role is Role.FILTER  # type: ignore[union-attr]


def test_authorizer_round_trip_without_stdin() -> None:
    link = Wire(ServerConnection(roles=[Role.AUTHORIZER]))
    events = link.to_server(
        link.client.start_request(1, {b"REMOTE_USER": b"me"}, role=Role.AUTHORIZER)
    )
    assert [type(e) for e in events] == [RequestReceived, StdinEnded]
    back = link.to_client(
        link.server.end_request(1, stdout=b"Status: 200\r\nVariable-X: 1\r\n\r\n")
    )
    assert isinstance(back[-1], RequestEnded)


def test_refusals_reach_the_client() -> None:
    link = Wire()
    assert link.to_server(link.client.start_request(1, {}, role=Role.FILTER)) == []
    assert link.replies == [RequestEnded(1, 0, ProtocolStatus.UNKNOWN_ROLE)]
    link.to_server(link.client.start_request(1, {}, keep_conn=True))
    link.to_server(link.client.start_request(2, {}, keep_conn=True))
    assert link.replies == [RequestEnded(2, 0, ProtocolStatus.CANT_MPX_CONN)]


def test_abort_round_trip() -> None:
    link = Wire()
    link.to_server(link.client.start_request(1, {}))
    assert link.to_server(link.client.abort_request(1)) == [RequestAborted(1)]
    assert link.replies == [RequestEnded(1, 0, ProtocolStatus.REQUEST_COMPLETE)]
    assert link.client.active_request_ids == frozenset()


def test_get_values_and_unknown_type_round_trip() -> None:
    link = Wire(ServerConnection(max_conns=3, max_reqs=9))
    link.to_server(link.client.get_values([b"FCGI_MAX_CONNS", b"FCGI_MAX_REQS", b"OTHER"]))
    assert link.replies == [ValuesResult({b"FCGI_MAX_CONNS": b"3", b"FCGI_MAX_REQS": b"9"})]
    link.to_server(wire.record(99, 0))
    assert link.replies == [UnknownTypeReply(99)]


def test_duplicate_params_can_be_sent_as_pairs() -> None:
    link = Wire()
    pairs = [(b"SCRIPT_NAME", b"/a"), (b"SCRIPT_NAME", b"/b")]
    [received] = link.to_server(link.client.start_request(1, pairs))
    assert received.params == {b"SCRIPT_NAME": b"/b"}  # type: ignore[union-attr]
    assert received.duplicate_names == {b"SCRIPT_NAME"}  # type: ignore[union-attr]


# --- the client's own checks ---------------------------------------------------------------


def started_client(role: Role = Role.RESPONDER) -> ClientConnection:
    client = ClientConnection()
    client.start_request(1, {}, role=role)
    return client


@pytest.mark.parametrize("request_id", [0, -1, 65536])
def test_client_refuses_bad_request_ids(request_id: int) -> None:
    with pytest.raises(LocalProtocolError, match="request id"):
        ClientConnection().start_request(request_id, {})


def test_client_misuse_is_a_local_error() -> None:
    client = started_client()
    with pytest.raises(LocalProtocolError, match="already active"):
        client.start_request(1, {})
    with pytest.raises(LocalProtocolError, match="not active"):
        client.send_stdin(2, b"x")
    with pytest.raises(LocalProtocolError, match="not a FILTER"):
        client.send_data(1, b"x")
    assert client.send_stdin(1, b"") == b""
    client.end_stdin(1)
    with pytest.raises(LocalProtocolError, match="already ended"):
        client.send_stdin(1, b"x")
    with pytest.raises(LocalProtocolError, match="16-bit"):
        client.start_request(2, {}, role=70000)


def test_client_filter_data_must_follow_stdin() -> None:
    client = started_client(Role.FILTER)
    with pytest.raises(LocalProtocolError, match="must follow the end of its FCGI_STDIN"):
        client.send_data(1, b"x")
    client.end_stdin(1)
    assert client.send_data(1, b"") == b""
    client.end_data(1)
    with pytest.raises(LocalProtocolError, match="already ended"):
        client.end_data(1)


@pytest.mark.parametrize(
    ("records", "message"),
    [
        pytest.param(wire.record(wire.STDOUT, 2, b"x"), "not active", id="stdout-unknown-id"),
        pytest.param(wire.end_request(2), "not active", id="end-unknown-id"),
        pytest.param(wire.record(wire.END, 1, bytes(7)), "7 bytes", id="end-short"),
        pytest.param(wire.end_request(1, 0, 4), "protocolStatus 4", id="end-bad-status"),
        pytest.param(
            wire.record(wire.STDOUT, 1) + wire.record(wire.STDOUT, 1, b"x"),
            "after its stream ended",
            id="stdout-after-end",
        ),
        pytest.param(
            wire.record(wire.STDERR, 1) + wire.record(wire.STDERR, 1),
            "after its stream ended",
            id="stderr-ended-twice",
        ),
        pytest.param(wire.record(wire.GET_VALUES_RESULT, 1), "request id 0", id="result-id"),
        pytest.param(wire.record(wire.UNKNOWN_TYPE, 0, b"\x05"), "1 bytes", id="unknown-short"),
        pytest.param(wire.record(wire.GET_VALUES_RESULT, 0, b"\x05"), "cut short", id="bad-pairs"),
        pytest.param(wire.begin(1), "never sends it", id="begin-from-app"),
        pytest.param(wire.record(wire.STDIN, 1), "never sends it", id="stdin-from-app"),
        pytest.param(wire.record(12, 0), "never sends it", id="type-12"),
        pytest.param(b"\x00" * 8, "version 0", id="version-0"),
    ],
)
def test_client_refuses_malformed_replies(records: bytes, message: str) -> None:
    with pytest.raises(RemoteProtocolError, match=message):
        started_client().receive_data(records)


def test_client_eof_before_end_request_is_an_error() -> None:
    client = started_client()
    client.receive_data(wire.record(wire.STDOUT, 1, b"partial"))
    with pytest.raises(RemoteProtocolError, match="without ending request"):
        client.receive_eof()


def test_client_eof_mid_record_is_an_error() -> None:
    client = started_client()
    client.receive_data(wire.end_request(1)[:12])
    with pytest.raises(RemoteProtocolError, match="middle of a record"):
        client.receive_eof()


def test_client_clean_eof() -> None:
    client = started_client()
    client.receive_data(wire.end_request(1))
    client.receive_eof()
