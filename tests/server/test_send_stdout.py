"""A streamed response's block on FCGI_STDOUT: the C lane ``_speedups_accept.send_stdout``
against its twin ``accept.send_stdout_py``, and reply.py's send_stdout, which sends a block
whole with either."""

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
from fcgikit.server.sink import WebServerGone
from tests.native import PURE_PYTHON_PASS, load_lane

#: around a record's 65,535 bytes, and more records than the lane frames in one call (21:
#: its twin sends those)
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
    left = lane.send_stdout(connection, request_id, data, 10.0)
    if left is None:
        assert type(connection) is not lane.Connection or len(data) > 21 * 65535
        return accept.send_stdout_py(connection, request_id, data, 10.0)
    return int(left)


def receive(web_server: socket.socket, size: int) -> bytes:
    received = bytearray()
    while len(received) < size:
        chunk = web_server.recv(size - len(received))
        assert chunk
        received += chunk
    return bytes(received)


def read_in_a_thread(web_server: socket.socket, size: int) -> tuple[threading.Thread, list[bytes]]:
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(receive(web_server, size)))
    reader.start()
    return reader, received


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("request_id", REQUEST_IDS)
def test_send_stdout_puts_the_python_records_on_the_wire(
    lane: ModuleType, connected: tuple[Any, socket.socket], size: int, request_id: int
) -> None:
    # The larger blocks are more than the socket takes at once: sent whole all the same,
    # each wait for room ending as the reader makes some.
    connection, web_server = connected
    data = block(size)
    expected = pack_records(int(RecordType.STDOUT), request_id, data)
    reader, received = read_in_a_thread(web_server, len(expected))
    left = send_once(lane, connection, request_id, data)
    reader.join()
    assert left == 0
    assert received == [expected]


def test_a_web_server_that_does_not_read_leaves_the_same_bytes_unsent(
    lane: ModuleType, connected: tuple[Any, socket.socket]
) -> None:
    # Nobody reads: the send stops after a wait of the send timeout with what the socket
    # did not take, and reply.send_stdout says the web server is gone.
    connection, web_server = connected
    data = block(4 * 1024 * 1024)[: 20 * 65535]
    expected = pack_records(int(RecordType.STDOUT), 3, data)
    left = lane.send_stdout(connection, 3, data, 0.05)
    if left is None:
        assert type(connection) is not lane.Connection
        left = accept.send_stdout_py(connection, 3, data, 0.05)
    assert 0 < left < len(expected)
    assert receive(web_server, len(expected) - left) == expected[: len(expected) - left]
    with pytest.raises(WebServerGone, match=r"did not read for 0\.05s"):
        reply.send_stdout(connection, 3, data, 0.05)


def test_send_stdout_declines_all_but_a_connection_and_bytes(lane: ModuleType) -> None:
    ours, theirs = socket.socketpair()
    connection = lane.Connection(ours.detach())
    try:
        assert lane.send_stdout(connection, 1, b"", 1.0) is None
        assert lane.send_stdout(connection, 1, bytearray(b"data"), 1.0) is None
        assert lane.send_stdout(connection, -1, b"data", 1.0) is None
        assert lane.send_stdout(connection, 1 << 16, b"data", 1.0) is None
        assert lane.send_stdout(connection, 1, b"data", 1) is None
        assert lane.send_stdout(connection, 1, b"data", -1.0) is None
        assert lane.send_stdout(connection, 1, b"data", 1e10) is None
        assert lane.send_stdout(connection, 1, block(21 * 65535 + 1), 1.0) is None
        assert lane.send_stdout(theirs, 1, b"data", 1.0) is None
        theirs.close()
        # A failed send: the OSError, as the twin's; the caller says the web server is gone.
        with pytest.raises(BrokenPipeError):
            lane.send_stdout(connection, 1, b"data", 1.0)
        with pytest.raises(BrokenPipeError):
            accept.send_stdout_py(connection, 1, b"data", 1.0)
        with pytest.raises(WebServerGone):
            reply.send_stdout(connection, 1, b"data", 1.0)
    finally:
        connection.close()
        theirs.close()


def test_the_lane_sends_exactly_when_the_build_has_it(lane: ModuleType) -> None:
    expected = None if PURE_PYTHON_PASS else lane.send_stdout
    assert reply._stdout_lane is expected


@pytest.mark.parametrize("size", SIZES)
def test_a_block_arrives_whole_from_send_stdout_through_a_full_socket(
    connected: tuple[Any, socket.socket], size: int
) -> None:
    # Blocks larger than the socket takes at once: the lane's (or the twin's) waits for room.
    connection, web_server = connected
    data = block(size)
    expected = pack_records(int(RecordType.STDOUT), 7, data) * 3
    reader, received = read_in_a_thread(web_server, len(expected))
    for _ in range(3):
        reply.send_stdout(connection, 7, data, 10.0)
    reader.join()
    assert received == [expected]
