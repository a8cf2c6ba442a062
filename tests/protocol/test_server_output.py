"""What the application sends through a ServerConnection (server_output.py): output only for
requests it may answer, statuses checked, the generic ``send``, and when to close."""

from __future__ import annotations

import pytest

from fcgikit.errors import LocalProtocolError
from fcgikit.protocol import (
    ProtocolStatus,
    RequestAborted,
    RequestEnded,
    ServerConnection,
    StderrData,
    StdoutData,
)

from . import wire
from .test_server_connection import OVERLOADED, receive_request


def test_send_stdout_of_nothing_sends_nothing() -> None:
    server = ServerConnection()
    receive_request(server)
    assert server.send_stdout(1, b"") == b""
    assert server.send_stderr(1, b"") == b""
    # ...and did not count as having used stderr.
    assert server.end_request(1) == wire.record(wire.STDOUT, 1) + wire.end_request(1)


def test_sending_for_inactive_or_unreceived_requests_is_a_local_error() -> None:
    server = ServerConnection()
    with pytest.raises(LocalProtocolError, match="not active"):
        server.send_stdout(1, b"x")
    server.receive_data(wire.begin())
    with pytest.raises(LocalProtocolError, match="FCGI_PARAMS have not all arrived"):
        server.send_stderr(1, b"x")
    with pytest.raises(LocalProtocolError):
        server.end_request(1)
    server.receive_data(wire.params(1))
    server.end_request(1)
    with pytest.raises(LocalProtocolError, match="not active"):
        server.end_request(1)


@pytest.mark.parametrize("app_status", [-1, 1 << 32])
def test_app_status_must_fit_32_bits(app_status: int) -> None:
    server = ServerConnection()
    receive_request(server)
    with pytest.raises(LocalProtocolError, match="32 bits"):
        server.end_request(1, app_status)
    assert server.active_request_ids == {1}


def test_refusal_after_some_stdout_still_ends_the_stream() -> None:
    server = ServerConnection()
    receive_request(server)
    server.send_stdout(1, b"x")
    assert server.end_request(1, 0, ProtocolStatus.OVERLOADED) == (
        wire.record(wire.STDOUT, 1) + wire.end_request(1, 0, OVERLOADED)
    )


def test_refusal_with_final_stdout_ends_the_stream() -> None:
    server = ServerConnection()
    receive_request(server)
    sent = server.end_request(1, 0, ProtocolStatus.OVERLOADED, stdout=b"busy")
    assert wire.split_records(sent) == [
        (wire.STDOUT, 1, b"busy", 4),
        (wire.STDOUT, 1, b"", 0),
        (wire.END, 1, bytes([0, 0, 0, 0, OVERLOADED, 0, 0, 0]), 0),
    ]


def test_send_is_the_generic_form() -> None:
    server = ServerConnection()
    receive_request(server, keep_conn=True)
    assert server.send(StdoutData(1, b"o")) == wire.padded(wire.STDOUT, 1, b"o")
    assert server.send(StderrData(1, b"e")) == wire.padded(wire.STDERR, 1, b"e")
    assert server.send(RequestEnded(1, 3, ProtocolStatus.REQUEST_COMPLETE)) == (
        wire.record(wire.STDOUT, 1) + wire.record(wire.STDERR, 1) + wire.end_request(1, 3)
    )
    with pytest.raises(LocalProtocolError):
        server.send(RequestAborted(1))  # type: ignore[arg-type]


def test_should_close_follows_keep_conn() -> None:
    server = ServerConnection()
    receive_request(server, keep_conn=True)
    server.end_request(1)
    assert not server.should_close
    receive_request(server, keep_conn=False)
    assert not server.should_close
    server.end_request(1)
    assert server.should_close
