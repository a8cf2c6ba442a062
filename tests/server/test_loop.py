"""The loop's sweep: what it closes, and how often it says so; its wake-ups."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from fcgikit.addresses import UnixAddress
from fcgikit.server import Server, ServerSettings
from tests.server.test_accept import answer, hello
from tests.server.test_accept_late import connect, request, run_arrived
from tests.server.test_hostile import (
    Log,
    Peer,
    assert_serves,
    assert_settled,
    begin,
    digest_app,
)


def test_idle_connections_are_closed_after_idle_connection_timeout(
    serve: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """A connection that sends nothing (or stops half-way through a record) while no request
    is running is closed after idle_connection_timeout, with one log line; a busy one is not."""
    log = Log(caplog)
    running = serve(digest_app, idle_connection_timeout=0.5)
    quiet = [Peer(running.path) for _ in range(20)]
    half = Peer(running.path).send(begin(1)[:5])
    try:
        for p in [*quiet, half]:
            assert p.read_until_closed(timeout=10).closed
        # one line per sweep that closed any, never one per connection
        lines = log.wait_for_some("idle")
        assert 1 <= len(lines) <= 3 and "idle" in lines[0].getMessage()
        assert_serves(running)
    finally:
        for p in [*quiet, half]:
            p.close()
    assert_settled(running)


def test_a_paused_worker_is_woken_once_for_the_requests_it_finished_itself(
    tmp_path: Path,
) -> None:
    """A prefork worker with every thread busy stops accepting; the requests it then runs
    on the loop's own thread each make room, but one wake-up of the loop's next round is
    enough to accept again: not two a request (one for its end, one for its connection's
    close), each a system call, and a round to read them back. The loop's steps are taken
    on the test's thread (as in test_accept_late)."""
    path = str(tmp_path / "shared.sock")
    settings = ServerSettings(
        binds=(UnixAddress(path),), handle_signals=False, share_listeners=True, threads=2
    )
    server = Server(hello, settings)
    server.acceptor.listen()
    server.pool._leader = threading.get_ident()  # this thread holds the loop role
    server.loop.start()
    server.loop.next_sweep = time.monotonic() + 3600
    clients = [connect(path) for _ in range(4)]
    try:
        for number, client in enumerate(clients):
            client.sendall(request(f"/{number}".encode()))
        server.acceptor.accept(server.listeners[0])
        assert server.connection_count() == 2 and server.acceptor.paused
        run_arrived(server)
        # what the loop's next round finds on its wake-up socket
        woken = server.loop.wake_r.recv(4096, socket.MSG_PEEK)
        assert len(woken) == 1
        while len(server.arrived) < 2:  # woken, it accepts the other two
            assert not server.loop.poll()
        run_arrived(server)
        for number, client in enumerate(clients):
            assert answer(client).endswith(b"\r\n\r\nhello /%d" % number)
    finally:
        for client in clients:
            client.close()
        server._close_everything()
