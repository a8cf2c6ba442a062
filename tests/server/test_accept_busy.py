"""A prefork worker of one thread (``fcgikit serve --workers N --threads 1``, for an app that
is not thread-safe): busy with one request, and what that costs its ordinary requests.

Such a worker has as much work as threads from its first request on, so its loop accepts
no more; the connections wait in the shared backlog for a sibling. The listener need only
leave the worker's poller when the loop waits while a request still runs (a connect wakes
one process waiting on a shared listener): not around a request the loop's own thread runs,
which waits on nothing meanwhile, and the kernel passes the connect on to a sibling that
does. Taken out and put back around each request, it cost the ordinary request two epoll_ctl
calls and a wake-up of the loop, written and read back.
"""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from fcgikit.addresses import UnixAddress
from fcgikit.client import FastCGIClient
from fcgikit.server import Server, ServerSettings, watcher
from fcgikit.server.server import admit
from tests.server.test_accept import answer, hello, naming_app, shared_listener
from tests.server.test_accept_late import connect, epoll_set, request, run_arrived


def test_a_worker_of_one_thread_keeps_its_listener_in_the_poller_around_its_requests(
    tmp_path: Path,
) -> None:
    """Each ordinary request (sent with the connect, in one write, as nginx does) runs on the
    direct lane, on the loop's thread, the listener in the poller throughout, and no wake-up
    of the loop is owed when it ends. The loop's steps are taken on the test's thread (as in
    test_accept_late), so that every request comes with its connect. (The first request,
    whose param names the process may not have met yet, may take a Channel: it teaches the
    direct lane them.)"""
    path = str(tmp_path / "shared.sock")
    settings = ServerSettings(
        binds=(UnixAddress(path),), handle_signals=False, share_listeners=True, threads=1
    )
    seen: list[tuple[set[int], int]] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        seen.append((epoll_set(epoll_fd), len(server.direct)))
        return hello(environ, start_response)

    server = Server(app, settings)
    server.acceptor.listen()
    server.pool._leader = threading.get_ident()  # this thread holds the loop role
    server.loop.start()
    server.loop.next_sweep = time.monotonic() + 3600
    epoll_fd = server.loop.poller._epoll.fileno()  # type: ignore[union-attr]
    watched = {server.listeners[0].fileno(), server.loop.wake_r.fileno()}
    try:
        for number in range(4):
            with connect(path) as client:
                client.sendall(request(f"/{number}".encode()))
                while not server.arrived:
                    assert not server.loop.poll()
                run_arrived(server)
                assert answer(client).endswith(b"\r\n\r\nhello /%d" % number)
            with pytest.raises(BlockingIOError):  # no wake-up written for the next round
                server.loop.wake_r.recv(1, socket.MSG_PEEK)
            assert epoll_set(epoll_fd) == watched
    finally:
        server._close_everything()
    assert [listened for listened, _ in seen] == [watched] * 4
    assert [direct for _, direct in seen[1:]] == [1] * 3


def test_a_worker_running_a_request_on_its_loop_thread_leaves_a_connect_to_a_sibling(
    serve: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The busy worker's listener stays in its poller while its one thread runs a request on
    the loop's thread (not rescued: the watcher's tick is made long); a connection that
    arrives then wakes the idle sibling, which serves it, not the busy worker."""
    monkeypatch.setattr(watcher, "TICK", 60.0)
    listener, address = shared_listener(tmp_path)
    entered = threading.Event()
    release = threading.Event()
    # queued with its request before the busy worker starts: accepted with its bytes
    blocking_client = connect(address.removeprefix("unix:"))
    blocking_client.sendall(request(b"/block"))
    busy = serve(
        naming_app("busy", entered, release), listeners=[listener], share_listeners=True, threads=1
    )
    blocked: list[bytes] = []
    blocking = threading.Thread(target=lambda: blocked.append(answer(blocking_client)))
    blocking.start()
    try:
        assert entered.wait(10)
        sibling = naming_app("sibling", entered, release)
        serve(sibling, listeners=[listener.dup()], share_listeners=True, threads=1)
        epoll_fd = busy.server.loop.poller._epoll.fileno()
        assert listener.fileno() in epoll_set(epoll_fd)  # not paused
        with FastCGIClient(address, timeout=10) as client:
            assert client.request(path="/quick").body == b"sibling"
        assert busy.server.pool.rescues == 0 and busy.server.connection_count() == 1
    finally:
        release.set()
        blocking.join(10)
        blocking_client.close()
    assert len(blocked) == 1 and blocked[0].endswith(b"\r\n\r\nbusy")


def test_a_worker_of_one_thread_stops_looking_at_its_backlog_after_its_first_second(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A new worker looks, before running it, whether the web server gave up on a
    connection it accepted (one may have waited in the backlog since before the worker
    started), until an accept finds the backlog empty. One thread stops its every round at
    its first request, with the next still queued, so it never finds it empty: it stops
    looking once PAUSE_CHECKED_AFTER has passed. Three connections whose web server closed
    them after sending their request, one a round of the loop (the loop's steps taken here,
    the clock the test's): the first two, accepted within the first second, are not run;
    the third, accepted after it, is."""
    now = [100.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    path = str(tmp_path / "shared.sock")
    ran: list[str] = []
    server = worker_of_one_thread(path, ran, now[0])
    clients = [connect(path) for _ in range(4)]
    try:
        for number, client in enumerate(clients[:3]):
            client.sendall(request(f"/{number}".encode()))
            client.close()  # the web server gave up on it
        clients[3].sendall(request(b"/3"))  # keeps the backlog from running empty
        for at in (0.5, 1.5, 1.6):  # seconds after the worker started
            now[0] = 100.0 + at
            assert one_round_of_the_loop(server) == 1  # stopped at its first: saturated
    finally:
        server._close_everything()
        clients[3].close()
    assert ran == ["/2"]


def test_a_worker_of_one_thread_that_finds_its_backlog_empty_stops_looking_at_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The look before a request runs lasts until an accept finds the backlog empty, in a
    worker of one thread too: its first request fills it, and the round that took it asks
    the backlog before it stops, so a request accepted later in its first second runs
    without the look (here a connection whose web server closed it after sending its
    request: looked at, it would not run)."""
    now = [100.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    path = str(tmp_path / "shared.sock")
    ran: list[str] = []
    server = worker_of_one_thread(path, ran, now[0])
    first = connect(path)
    try:
        first.sendall(request(b"/0"))
        for at, late in ((0.1, False), (0.5, True)):  # seconds after the worker started
            now[0] = 100.0 + at
            if late:
                second = connect(path)
                second.sendall(request(b"/1"))
                second.close()  # the web server gave up on it
            assert one_round_of_the_loop(server) == 1
    finally:
        server._close_everything()
        first.close()
    assert ran == ["/0", "/1"]


def worker_of_one_thread(path: str, ran: list[str], now: float) -> Server:
    """A prefork worker of one thread on ``path``, listening, this thread its loop's, its
    app noting each request's path in ``ran``; no sweep before an hour after ``now``."""
    settings = ServerSettings(
        binds=(UnixAddress(path),), handle_signals=False, share_listeners=True, threads=1
    )

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        ran.append(environ["PATH_INFO"])
        return hello(environ, start_response)

    server = Server(app, settings)
    server.acceptor.listen()
    server.pool._leader = threading.get_ident()  # this thread holds the loop role
    server.loop.next_sweep = now + 3600
    return server


def one_round_of_the_loop(server: Server) -> int:
    """The loop's steps, as Loop.lead takes them: accept, admit, run; how many arrived."""
    server.acceptor.accept(server.listeners[0])
    arrived, server.arrived = server.arrived, []
    admit(arrived, server.pool, waited=server.acceptor.accepted_late)
    server.acceptor.accepted_late = False
    server.pool.run_ready()
    return len(arrived)
