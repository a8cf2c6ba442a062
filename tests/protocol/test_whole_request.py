"""WholeRequest: a connection that brought one ordinary request whole, and nothing more.

Its parse is a ServerConnection's (whole_request.scan_request_py, or the C lane held to it
in test_speedups.py), so in either build a request it takes must be what a ServerConnection
makes of the same bytes, and its answer the bytes a ServerConnection sends.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fcgikit.errors import LocalProtocolError
from fcgikit.protocol import (
    ClientConnection,
    RequestReceived,
    Role,
    ServerConnection,
    StdinData,
    StdinEnded,
    WholeRequest,
    whole_request,
)
from fcgikit.protocol.events import TextParams
from fcgikit.protocol.lanes import ScanRequest
from fcgikit.protocol.records import encode_pairs
from tests.native import load_lane
from tests.protocol.peer_streams import GET_PARAMS, PIECES, nginx_get, streams
from tests.protocol.test_speedups import framing_with


@pytest.fixture(scope="module")
def lane() -> ModuleType:
    return load_lane("fcgikit.protocol._speedups")


@pytest.fixture(scope="module", params=["lane", "python-twin"])
def scan(request: pytest.FixtureRequest) -> ScanRequest:
    """The C ``scan_request``, or its Python twin where the lane would be (the pure wheel
    has no lane): either way the parse takes the scan's answer as it takes the lane's."""
    if request.param == "lane":
        return request.getfixturevalue("lane").scan_request  # type: ignore[no-any-return]
    return whole_request.scan_request_py


def test_a_whole_request_without_keep_conn_is_recognised_in_either_build() -> None:
    whole = WholeRequest.parse(nginx_get(7, keep_conn=False), 1 << 20)
    assert whole is not None
    size = len(encode_pairs(GET_PARAMS))
    expected = RequestReceived(7, Role.RESPONDER, False, dict(GET_PARAMS), frozenset(), size)
    assert whole.event == expected
    assert whole.stdin == []
    client = ClientConnection()
    upload = client.start_request(3, GET_PARAMS) + client.send_stdin(3, b"a" * 70_000)
    whole = WholeRequest.parse(memoryview(bytearray(upload + client.end_stdin(3))), 1 << 20)
    assert whole is not None and b"".join(whole.stdin) == b"a" * 70_000
    # A keep-conn connection may bring more requests: taken only when the caller asks (the
    # server keeps the connection after it); a body still to come is not whole.
    assert WholeRequest.parse(nginx_get(7, keep_conn=True), 1 << 20) is None
    kept = WholeRequest.parse(nginx_get(7, keep_conn=True), 1 << 20, keep_conn=True)
    assert kept is not None
    assert kept.event == RequestReceived(
        7, Role.RESPONDER, True, dict(GET_PARAMS), frozenset(), size
    )
    assert WholeRequest.parse(upload, 1 << 20) is None
    assert WholeRequest.parse(ClientConnection().start_request(1, GET_PARAMS), 1 << 20) is None


def test_a_whole_request_with_a_name_the_table_has_no_verdict_on_is_taken_as_bytes() -> None:
    """A server's first requests bring names its table of verdicts does not hold yet: the
    request is still whole, taken with its params as bytes (the caller decodes them, and
    so learns its verdicts), not left to a connection's record-by-record reading."""
    names: dict[bytes, str | None] = {b"REQUEST_METHOD": "REQUEST_METHOD"}
    whole = WholeRequest.parse(nginx_get(7, keep_conn=False), 1 << 20, names=names, room=3)
    assert whole is not None
    size = len(encode_pairs(GET_PARAMS))
    expected = RequestReceived(7, Role.RESPONDER, False, dict(GET_PARAMS), frozenset(), size)
    assert whole.event == expected
    assert type(whole.event.params) is dict
    # every name has its verdict: the params decoded as text in the same pass
    names.update((name, name.decode()) for name, _ in GET_PARAMS)
    whole = WholeRequest.parse(nginx_get(7, keep_conn=False), 1 << 20, names=names, room=3)
    assert whole is not None and type(whole.event.params) is TextParams
    # what is not one whole ordinary request is declined as before
    assert WholeRequest.parse(nginx_get(7, keep_conn=True), 1 << 20, names={}) is None


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(streams(), st.booleans())
def test_a_whole_request_is_what_a_server_connection_makes_of_the_same_bytes(
    scan: ScanRequest, stream: tuple[bytes, int], with_lane: bool
) -> None:
    data, max_params_size = stream
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(whole_request, "scan_request", scan if with_lane else None)
        whole = WholeRequest.parse(data, max_params_size)
    if whole is None:
        return  # declined: a ServerConnection takes these bytes, as before
    server = ServerConnection(max_params_size=max_params_size)
    server._scan_request = None  # record by record: the spec
    events = server.receive_data(data)
    assert events == [
        whole.event,
        # (a read's STDIN records make one event; the lane keeps them apart, which is the
        # same body)
        *([StdinData(whole.event.request_id, b"".join(whole.stdin))] if whole.stdin else []),
        StdinEnded(whole.event.request_id),
    ]
    assert server.data_to_send() == b""
    server.end_request(whole.event.request_id)
    assert server.should_close  # nothing more comes: no FCGI_KEEP_CONN


@settings(max_examples=300, deadline=None)
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
    (received, *_) = server.receive_data(nginx_get(5, keep_conn=False))
    assert isinstance(received, RequestReceived)
    whole = WholeRequest(received, [])

    def answer(
        send_stdout: Callable[[bytes], list[bytes | memoryview]],
        send_stderr: Callable[[bytes], bytes],
        end: Callable[[], list[bytes | memoryview]],
    ) -> bytes:
        out = b"".join(b"".join(send_stdout(block)) for block in streamed)
        if stderr_before:
            out += send_stderr(b"oops")
        return out + b"".join(end())

    with framing_with(lane.frame_end if with_lane else None):
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
