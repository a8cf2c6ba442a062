"""A streamed response's block on FCGI_STDOUT: the C lane ``_speedups_accept.send_stdout``
against its twin ``accept.send_stdout_py``, and reply.py's send_stdout, which sends a block
whole with either (from wherever the lane stopped)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest

from fcgikit.protocol.constants import RecordType
from fcgikit.protocol.records import pack_records
from fcgikit.server import accept, reply
from tests.native import PURE_PYTHON_PASS, load_lane

#: around a record's 65,535 bytes, and more records than the lane frames in one call (21)
SIZES = [1, 7, 8, 8191, 8192, 65535, 65536, 65537, 200 * 1024, 21 * 65535, 21 * 65535 + 9]
REQUEST_IDS = [0, 1, 258, 65535]


@pytest.fixture(scope="module")
def lane() -> ModuleType:
    return load_lane("fcgikit.server._speedups_accept")


def block(size: int) -> bytes:
    return (bytes(range(251)) * (size // 251 + 1))[:size]


@pytest.fixture(params=["C", "Python"])
def connected(request: pytest.FixtureRequest, lane: ModuleType) -> Iterator[tuple[Any, Any]]:
    """Our end of a socket pair (non-blocking) as the C Connection or as its twin's socket,
    and the web server's end."""
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    fd = ours.detach()
    if request.param == "C":
        connection = lane.Connection(fd)
    else:
        connection = accept.connection_py(fd, (socket.AF_UNIX, socket.SOCK_STREAM, 0))
    yield connection, theirs
    connection.close()
    theirs.close()


def send_once(lane: ModuleType, connection: Any, request_id: int, data: bytes) -> int | None:
    """One send as reply.send_stdout makes it: the lane, else (it answered None) the twin."""
    left = lane.send_stdout(connection, request_id, data)
    if left is None:
        assert type(connection) is not lane.Connection
        return accept.send_stdout_py(connection, request_id, data)
    return int(left)


def receive(web_server: socket.socket, size: int) -> bytes:
    received = bytearray()
    while len(received) < size:
        chunk = web_server.recv(size - len(received))
        assert chunk
        received += chunk
    return bytes(received)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("request_id", REQUEST_IDS)
def test_send_stdout_puts_the_python_records_on_the_wire(
    lane: ModuleType, connected: tuple[Any, socket.socket], size: int, request_id: int
) -> None:
    connection, web_server = connected
    data = block(size)
    expected = pack_records(int(RecordType.STDOUT), request_id, data)
    left = send_once(lane, connection, request_id, data)
    assert left is not None and 0 <= left < len(expected)
    if size <= 65537:
        assert left == 0  # the socket has room for a block this size: all of it went
    assert receive(web_server, len(expected) - left) == expected[: len(expected) - left]


def test_send_stdout_declines_all_but_a_connection_and_bytes(lane: ModuleType) -> None:
    ours, theirs = socket.socketpair()
    connection = lane.Connection(ours.detach())
    try:
        assert lane.send_stdout(connection, 1, b"") is None
        assert lane.send_stdout(connection, 1, bytearray(b"data")) is None
        assert lane.send_stdout(connection, -1, b"data") is None
        assert lane.send_stdout(connection, 1 << 16, b"data") is None
        assert lane.send_stdout(theirs, 1, b"data") is None
        theirs.close()
        # A failed send: None, and the caller's own send says what failed.
        assert lane.send_stdout(connection, 1, b"data") is None
        assert accept.send_stdout_py(connection, 1, b"data") is None
        with pytest.raises(reply.WebServerGone):
            reply.send_stdout(connection, 1, b"data", 1.0)
    finally:
        connection.close()
        theirs.close()


def test_the_lane_sends_exactly_when_the_build_has_it(lane: ModuleType) -> None:
    expected = None if PURE_PYTHON_PASS else lane.send_stdout
    assert accept.send_stdout is expected
    assert reply._stdout_lane is expected


@pytest.mark.parametrize("size", SIZES)
def test_a_block_arrives_whole_from_send_stdout_through_a_full_socket(
    connected: tuple[Any, socket.socket], size: int
) -> None:
    # Blocks larger than the socket takes at once: the lane's partial send, the twin after it.
    connection, web_server = connected
    data = block(size)
    expected = pack_records(int(RecordType.STDOUT), 7, data) * 3
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(receive(web_server, len(expected))))
    reader.start()
    for _ in range(3):
        reply.send_stdout(connection, 7, data, 10.0)
    reader.join()
    assert received == [expected]
