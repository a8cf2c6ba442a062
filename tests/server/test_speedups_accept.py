"""The C fast lane of the accept path (fcgikit/server/_speedups_accept.c) against its Python.

``accept_connection`` is accept.py's ``accept_connection_py`` without the exception for an
empty queue, and with a non-blocking descriptor; ``Connection`` is ``connection_py``'s socket
without the socket object. Each is held to its twin here, in both passes (tests/native.py
loads the lane in the pure-Python pass too).
"""

from __future__ import annotations

import _socket
import contextlib
import errno
import os
import signal
import socket
import struct
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from fcgikit.addresses import TcpAddress
from fcgikit.client import FastCGIClient
from fcgikit.server import accept
from fcgikit.server.reply import send_all_buffers
from tests.native import (
    PURE_PYTHON_PASS,
    Call,
    assert_calls_leave_nothing_behind,
    load_lane,
)
from tests.server.test_hostile import wait_until


@pytest.fixture(scope="module")
def lane() -> ModuleType:
    return load_lane("fcgikit.server._speedups_accept")


def test_the_lane_is_on_exactly_when_the_pass_says(lane: ModuleType) -> None:
    if PURE_PYTHON_PASS:
        with pytest.raises(ImportError):
            import fcgikit.server._speedups_accept  # noqa: F401
        assert accept.accept_connection is None
        assert accept.Connection is None
        return
    assert accept.accept_connection is lane.accept_connection
    assert accept.Connection is lane.Connection


# --- accepting --------------------------------------------------------------------------


def listening(family: int) -> socket.socket:
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.bind(("::1" if family == socket.AF_INET6 else "127.0.0.1", 0))
    listener.listen(8)
    listener.setblocking(False)
    return listener


FAMILIES = [socket.AF_INET] + ([socket.AF_INET6] if socket.has_ipv6 else [])


@pytest.mark.parametrize("family", FAMILIES, ids=lambda f: socket.AddressFamily(f).name)
def test_accept_connection_is_the_python_without_the_exception(
    lane: ModuleType, family: int
) -> None:
    try:
        listener = listening(family)
    except OSError as exc:  # no IPv6 loopback on this machine (a container)
        assert family == socket.AF_INET6, exc
        return
    with listener:
        # Nothing waiting: None from both, where socket.accept() raises BlockingIOError.
        assert lane.accept_connection(listener.fileno()) is None
        assert accept.accept_connection_py(listener) is None
        with pytest.raises(BlockingIOError):
            listener.accept()
        clients = [socket.create_connection(listener.getsockname()[:2]) for _ in range(2)]
        fd, peer = lane.accept_connection(listener.fileno())
        accepted_py = accept.accept_connection_py(listener)
        assert accepted_py is not None
        python_fd, python_peer = accepted_py
        try:
            # The peer as socket.accept() gives it (the first client, then the second).
            assert peer == clients[0].getsockname()
            assert python_peer == clients[1].getsockname()
            assert type(peer) is type(python_peer) and len(peer) == len(python_peer)
            # Non-blocking and close-on-exec, so no setblocking() is needed after it.
            assert os.get_blocking(fd) is False
            assert os.get_inheritable(fd) is False
            assert os.get_inheritable(python_fd) is False
            # The server wraps it as non-blocking: no ioctl, and it reads without waiting.
            sock = _socket.socket(family, socket.SOCK_STREAM | socket.SOCK_NONBLOCK, 0, fd)
            assert sock.gettimeout() == 0.0
            with pytest.raises(BlockingIOError):
                sock.recv(1)
            clients[0].sendall(b"ping")
            assert sock.recv(4) == b"ping"
            sock.close()
        finally:
            os.close(python_fd)
            for client in clients:
                client.close()


def test_accept_connection_gives_a_unix_peer_as_none(lane: ModuleType, tmp_path: Path) -> None:
    path = str(tmp_path / "fcgi.sock")
    with socket.socket(socket.AF_UNIX) as listener, socket.socket(socket.AF_UNIX) as client:
        listener.bind(path)
        listener.listen(1)
        client.connect(path)
        fd, peer = lane.accept_connection(listener.fileno())
        os.close(fd)
        assert peer is None  # the server labels it "unix socket" and never filters it


def test_accept_connection_raises_what_accept_raises(lane: ModuleType) -> None:
    with socket.socket() as not_listening:
        with pytest.raises(OSError) as lane_error:
            lane.accept_connection(not_listening.fileno())
        with pytest.raises(OSError) as python_error:
            accept.accept_connection_py(not_listening)
    assert lane_error.value.errno == python_error.value.errno == errno.EINVAL
    with pytest.raises(ValueError):
        lane.accept_connection(-1)
    with pytest.raises(TypeError):
        lane.accept_connection(not_listening.fileno(), True)


def test_the_backlog_probe_says_whether_a_connection_waits() -> None:
    with listening(socket.AF_INET) as listener, socket.socket() as not_listening:
        probe = accept.backlog_probe(listener)
        assert not probe.poll(0)  # nothing waits: the round of accepts ends without accept()
        with socket.create_connection(listener.getsockname()[:2]):
            assert probe.poll(0)
            assert accept.accept_connection_py(listener) is not None
            assert not probe.poll(0)  # asked again, after the accept
        # poll() reports a socket that is not listening as hung up: the probe lets accept()
        # say what is wrong rather than take it for an empty queue
        assert accept.backlog_probe(not_listening).poll(0)


# --- Connection: the accepted socket -------------------------------------------------------

MakeConnection = Callable[[int], Any]


def python_connection(fd: int) -> Any:
    return accept.connection_py(fd, (socket.AF_UNIX, socket.SOCK_STREAM, 0))


@pytest.fixture(params=["C", "Python"])
def make_connection(request: pytest.FixtureRequest) -> MakeConnection:
    """The C ``Connection``, or its twin ``connection_py``: each test holds both to it (the
    twin where no lane was built, too)."""
    if request.param == "C":
        return request.getfixturevalue("lane").Connection  # type: ignore[no-any-return]
    return python_connection


@pytest.fixture
def connected(make_connection: MakeConnection) -> Iterator[tuple[Any, socket.socket]]:
    """A connection on one end of a socket pair (non-blocking, as the server makes them),
    and the other end as the web server's socket."""
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    connection = make_connection(ours.detach())
    yield connection, theirs
    connection.close()
    theirs.close()


def test_a_connection_receives_and_sends_as_a_socket_does(
    connected: tuple[Any, socket.socket],
) -> None:
    connection, web_server = connected
    buffer = memoryview(bytearray(64))
    with pytest.raises(BlockingIOError):  # nothing sent yet: a non-blocking socket's answer
        connection.recv_into(buffer)
    web_server.sendall(b"request")
    assert connection.recv_into(buffer) == 7
    assert buffer[:7] == b"request"
    assert connection.send(b"head") == 4
    pieces = [b"one ", memoryview(b"xtwo ")[1:], bytearray(b"three")]
    assert connection.sendmsg(pieces) == 13
    assert web_server.recv(64) == b"headone two three"
    connection.shutdown(socket.SHUT_WR)
    assert web_server.recv(64) == b""  # the web server sees the response end


def read_ready(lane: ModuleType, connection: Any, buffer: memoryview) -> int:
    """A connection's first read the way the server makes it: the lane for a C Connection
    (it answers None for a socket), else the twin."""
    size = lane.read_ready(connection, buffer)
    if size is None:
        return accept.read_ready_py(connection, buffer)
    assert type(connection) is lane.Connection
    return int(size)


def test_read_ready_says_none_yet_without_an_exception_as_its_twin_does(
    lane: ModuleType, connected: tuple[Any, socket.socket]
) -> None:
    connection, web_server = connected
    buffer = memoryview(bytearray(64))
    assert read_ready(lane, connection, buffer) == -1  # accepted before its bytes came
    web_server.sendall(b"request")
    assert read_ready(lane, connection, buffer) == 7
    assert buffer[:7] == b"request"
    web_server.shutdown(socket.SHUT_WR)
    assert read_ready(lane, connection, buffer) == 0  # the web server's end
    connection.close()
    assert read_ready(lane, connection, buffer) == -2  # failed: the channel says what


def test_read_ready_leaves_a_socket_to_the_python(lane: ModuleType) -> None:
    ours, theirs = socket.socketpair()
    with ours, theirs:
        assert lane.read_ready(ours, memoryview(bytearray(8))) is None
        with pytest.raises(TypeError):
            lane.read_ready(ours)


def test_send_all_buffers_sends_more_buffers_than_one_sendmsg_takes(
    connected: tuple[Any, socket.socket],
) -> None:
    connection, web_server = connected
    buffers: list[bytes | memoryview] = [b"%03d," % i for i in range(200)]
    expected = b"".join(buffers)
    send_all_buffers(connection, list(buffers), 5.0)
    received = b""
    while len(received) < len(expected):
        received += web_server.recv(65536)
    assert received == expected


def test_a_closed_connection_fails_like_a_closed_socket(
    connected: tuple[Any, socket.socket],
) -> None:
    connection, web_server = connected
    connection.close()
    connection.close()  # twice is nothing, as for a socket
    assert web_server.recv(1) == b""  # the descriptor was really closed
    assert connection.fileno() == -1
    # A late call (the server stopping, on another thread) never reaches a reused fd.
    for call, argument in [
        (connection.shutdown, socket.SHUT_RDWR),
        (connection.send, b"late"),
        (connection.sendmsg, [b"late"]),
        (connection.recv_into, bytearray(1)),
    ]:
        with pytest.raises(OSError) as failure:
            call(argument)
        assert failure.value.errno == errno.EBADF


def test_a_connection_closes_its_fd_when_dropped(lane: ModuleType) -> None:
    ours, theirs = socket.socketpair()
    with theirs:
        lane.Connection(ours.detach())  # dropped at once (a socket would warn, and close)
        assert theirs.recv(1) == b""


def test_a_connection_whose_web_server_left_raises_broken_pipe(lane: ModuleType) -> None:
    ours, web_server = socket.socketpair()
    connection = lane.Connection(ours.detach())
    web_server.close()
    previous = signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    try:  # with SIGPIPE's default action, only MSG_NOSIGNAL keeps this process alive
        with pytest.raises(BrokenPipeError):
            connection.send(b"response")
        with pytest.raises(BrokenPipeError):
            connection.sendmsg([b"response"])
    finally:
        signal.signal(signal.SIGPIPE, previous)
        connection.close()


def test_a_connection_refuses_what_is_not_a_descriptor(lane: ModuleType) -> None:
    with pytest.raises(ValueError):
        lane.Connection(-1)
    with pytest.raises(TypeError):
        lane.Connection("3")
    with pytest.raises(TypeError):
        lane.Connection()
    with pytest.raises(TypeError):
        lane.Connection(3, 4)
    with pytest.raises(OverflowError):
        lane.Connection(2**40)


# --- a server, with the lane and without ------------------------------------------------------


@pytest.fixture(params=["C", "Python"])
def either_lane(
    request: pytest.FixtureRequest, lane: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    """accept.py with its C lane plugged in, or with none, in both passes."""
    plugged = request.param == "C"
    monkeypatch.setattr(accept, "accept_connection", lane.accept_connection if plugged else None)
    monkeypatch.setattr(accept, "Connection", lane.Connection if plugged else None)


def hello(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"hello " + environ["PATH_INFO"].encode()]


@pytest.mark.parametrize("bind", ["unix", "tcp"])
def test_a_server_accepts_and_answers_the_same_with_the_lane_and_without(
    serve: Any, either_lane: None, bind: str
) -> None:
    if bind == "tcp":
        running = serve(hello, binds=(TcpAddress("127.0.0.1", 0),))
        host, port = running.server.listeners[0].getsockname()
        address = f"{host}:{port}"
    else:
        running = serve(hello)
        address = running.address
    for keep_conn in (False, True):
        client = FastCGIClient(address, keep_conn=keep_conn, timeout=10)
        try:
            for path in ("/one", "/two"):
                assert client.request("GET", path).body == f"hello {path}".encode()
        finally:
            client.close()


def test_a_connection_reset_before_it_is_accepted_is_closed_and_the_server_serves_on(
    serve: Any, either_lane: None
) -> None:
    listener = listening(socket.AF_INET)
    address = listener.getsockname()
    # Reset while it waits in the backlog: the server's first read fails (ECONNRESET).
    with socket.create_connection(address) as doomed:
        doomed.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    running = serve(hello, listeners=[listener])
    client = FastCGIClient(f"{address[0]}:{address[1]}", timeout=10)
    try:
        assert client.request("GET", "/after").body == b"hello /after"
    finally:
        client.close()
    wait_until(lambda: not running.server.channels, what="both connections closed")


# --- no leaks -------------------------------------------------------------------------------


def calls(lane: ModuleType, listener: socket.socket) -> Iterator[Call]:
    """Calls through the lane's paths that make no descriptor (100,000 would run out)."""
    yield lane.Connection, ("not an fd",)
    # Every call below fails before its system call: a socket with no peer will do (not a
    # dup of fd 0, which a CI runner may have closed).
    ours, theirs = socket.socketpair()
    theirs.close()
    connection = lane.Connection(ours.detach())
    yield connection.recv_into, (b"read-only",)
    # The third buffer fails after two are held: both must be released.
    yield connection.sendmsg, ([b"held", bytearray(b"held too"), "not a buffer"],)
    yield connection.send, ("not bytes",)
    yield lane.read_ready, (connection, bytearray(8))  # the peer left: 0
    yield lane.read_ready, (connection, b"read-only")
    yield lane.read_ready, (ours, bytearray(8))  # detached: not a Connection

    def send_stdout_to_a_peer_gone(*args: Any) -> None:
        with contextlib.suppress(BrokenPipeError):
            lane.send_stdout(*args)

    yield send_stdout_to_a_peer_gone, (connection, 1, b"x" * 70_000, 1.0)  # the OSError
    yield lane.send_stdout, (connection, 1 << 16, b"x", 1.0)  # no request id
    yield lane.send_stdout, (ours, 1, b"x", 1.0)  # not a Connection
    yield lane.accept_connection, (listener.fileno(),)  # nothing waits
    connection.close()


def test_calls_leave_no_reference_and_no_memory_behind(lane: ModuleType) -> None:
    with listening(socket.AF_INET) as listener:
        assert_calls_leave_nothing_behind(calls(lane, listener))
