"""Connections accepted before their first bytes came (accept.Waiting).

A prefork worker woken by the web server's connect accepts before the web server has
written. Such a connection waits for its bytes in the poller, as it is: a whole request then
takes the direct lane, and the connection never costs a Channel. One that waits past a sweep,
or into a stop, becomes a Channel, which the loop's housekeeping knows. The tests drive the
loop's steps on the test's thread (as benchmarks/workercost.py does), so each step's outcome
is certain: the accept, the client's send, the next round.
"""

from __future__ import annotations

import os
import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fcgikit.addresses import UnixAddress
from fcgikit.protocol import ClientConnection
from fcgikit.server import Server, ServerSettings
from fcgikit.server.server import admit
from tests.server.test_accept import answer, hello


def epoll_set(epoll_fd: int) -> set[int]:
    """The descriptors registered in this process's epoll set ``epoll_fd``, as the kernel
    lists them."""
    info = Path(f"/proc/self/fdinfo/{epoll_fd}").read_text()
    return {int(fd) for fd in re.findall(r"^tfd:\s+(\d+)", info, re.MULTILINE)}


def request(path_info: bytes) -> bytes:
    client = ClientConnection()
    return client.start_request(1, {b"PATH_INFO": path_info}) + client.end_stdin(1)


@pytest.fixture
def stepped(tmp_path: Path) -> Iterator[tuple[Server, str]]:
    """A server whose loop's steps the test takes, on its own thread, and its address."""
    path = str(tmp_path / "late.sock")
    server = Server(hello, ServerSettings(binds=(UnixAddress(path),), handle_signals=False))
    server.acceptor.listen()
    server.pool._leader = threading.get_ident()  # this thread holds the loop role
    server.loop.next_sweep = time.monotonic() + 3600  # the tests sweep when they mean to
    yield server, path
    server._close_everything()


def connect(path: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX)
    sock.settimeout(10)
    sock.connect(path)
    return sock


def accept_late(server: Server, path: str) -> socket.socket:
    """A client connected and accepted with nothing sent yet."""
    sock = connect(path)
    server.acceptor.accept(server.listeners[0])
    assert not server.arrived  # nothing to read yet
    return sock


def run_arrived(server: Server) -> None:
    """The rest of the loop's round: the requests that arrived run, on this thread."""
    arrived, server.arrived = server.arrived, []
    admit(arrived, server.pool)
    server.pool.run_ready()


def test_a_connection_accepted_before_its_request_came_takes_the_direct_lane_without_a_channel(
    stepped: tuple[Server, str],
) -> None:
    """It waits in the poller; when its bytes come the request runs on the direct lane, the
    connection out of the poller, and no Channel was made at any step; it counts among the
    server's connections throughout."""
    server, path = stepped
    epoll_fd = server.loop.poller._epoll.fileno()  # type: ignore[union-attr]
    with accept_late(server, path) as sock:
        assert not server.channels and server.connection_count() == 1  # no Channel made
        (fd,) = server.acceptor.waiting
        assert fd in epoll_set(epoll_fd)
        sock.sendall(request(b"/late"))
        assert not server.loop.poll()  # the poller reports its bytes
        assert len(server.arrived) == 1 and not server.channels  # on the direct lane
        assert server.connection_count() == 1 and not server.acceptor.waiting
        assert fd not in epoll_set(epoll_fd)
        run_arrived(server)
        assert answer(sock).endswith(b"hello /late")
    assert server.connection_count() == 0


def test_a_request_written_while_the_acceptor_gives_way_takes_the_direct_lane_at_once(
    stepped: tuple[Server, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker woken by the connect may run before the web server has written (it took
    the web server's CPU): it gives the CPU back once and reads again, so a request written
    meanwhile runs on the direct lane without waiting in the poller for a second wake-up.
    The web server's turn is played where the acceptor gives way, so that it is certain."""
    server, path = stepped
    epoll_fd = server.loop.poller._epoll.fileno()  # type: ignore[union-attr]
    with connect(path) as sock:
        turns: list[set[int]] = []

        def web_servers_turn() -> None:
            turns.append(epoll_set(epoll_fd))
            sock.sendall(request(b"/written-meanwhile"))

        monkeypatch.setattr(os, "sched_yield", web_servers_turn)
        server.acceptor.accept(server.listeners[0])
        monkeypatch.undo()
        assert len(turns) == 1  # it gave way once, its connection in no poller then
        assert not server.acceptor.waiting and not server.channels
        assert len(server.arrived) == 1 and len(server.direct) == 1  # the direct lane
        assert epoll_set(epoll_fd) == turns[0]  # nor after: not one epoll_ctl
        run_arrived(server)
        assert answer(sock).endswith(b"hello /written-meanwhile")
    assert server.connection_count() == 0


def test_a_connection_silent_past_a_sweep_becomes_a_channel_and_is_served(
    stepped: tuple[Server, str],
) -> None:
    """One that waited a sweep for its first bytes is a Channel from then on (the idle
    timeout and the stop know those), and its request is answered the same."""
    server, path = stepped
    with accept_late(server, path) as sock:
        server.loop.sweep(time.monotonic())
        assert not server.acceptor.waiting and len(server.channels) == 1
        sock.sendall(request(b"/later"))
        while not server.arrived:  # the Channel, in the poller as it was, reads the request
            assert not server.loop.poll()
        assert not server.direct
        run_arrived(server)
        reply = sock.recv(65536)
        assert b"hello /later" in reply
    assert not server.loop.poll()  # the Channel reads the client's close, and closes
    assert server.connection_count() == 0


def test_a_stop_answers_a_connection_accepted_before_its_request_came(
    stepped: tuple[Server, str],
) -> None:
    """A stop asked between the accept and the request's bytes: the server does not end
    before it has read and answered the request."""
    server, path = stepped
    with accept_late(server, path) as sock:
        server.stop("test: stopping")
        sock.sendall(request(b"/before-the-stop"))
        while not server.arrived:  # the stop begins; the connection, a Channel now, reads it
            assert not server.loop.poll()
        assert server.stopping.begun
        run_arrived(server)
        assert answer(sock).endswith(b"hello /before-the-stop")  # and closes: it drains
    assert server.loop.poll()  # nothing left: done


def test_a_loop_that_ends_closes_the_connections_accepted_before_their_bytes(
    stepped: tuple[Server, str],
) -> None:
    """The loop ends (an error in ``serve``) between an accept and the next round: the
    connection closes, the web server sees it end, nothing is left open."""
    server, path = stepped
    with accept_late(server, path) as sock:
        server._close_everything()
        assert sock.recv(1) == b""
        assert server.connection_count() == 0


def test_a_worker_counts_a_connection_accepted_before_its_bytes_as_work(
    tmp_path: Path,
) -> None:
    """A server sharing its listener with siblings accepts no more than its threads can
    take: a connection with no request yet is work to come, so with one thread the second
    connection of a burst stays queued for a sibling (accepting pauses as the loop waits)."""
    path = str(tmp_path / "shared.sock")
    settings = ServerSettings(
        binds=(UnixAddress(path),), handle_signals=False, share_listeners=True, threads=1
    )
    server = Server(hello, settings)
    server.acceptor.listen()
    server.pool._leader = threading.get_ident()
    server.loop.next_sweep = time.monotonic() + 3600
    try:
        with connect(path) as first, connect(path) as second:
            server.acceptor.accept(server.listeners[0])
            assert server.connection_count() == 1
            first.sendall(request(b"/first"))
            second.sendall(request(b"/second"))
            while not server.arrived:
                assert not server.loop.poll()
            assert server.acceptor.paused  # before its wait for the first one's bytes
            run_arrived(server)
            assert answer(first).endswith(b"hello /first")
            server.acceptor.resume_if_room(stopping=False)
            server.acceptor.accept(server.listeners[0])  # the second one, bytes and all
            run_arrived(server)
            assert answer(second).endswith(b"hello /second")
    finally:
        server._close_everything()
