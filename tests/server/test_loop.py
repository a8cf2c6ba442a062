"""The loop's sweep: what it closes, and how often it says so; its wake-ups; a connection it
keeps reading while one of its requests falls behind on its body."""

from __future__ import annotations

import hashlib
import random
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fcgikit.addresses import UnixAddress
from fcgikit.server import Server, ServerSettings, loop
from tests.server.test_accept import answer, hello
from tests.server.test_accept_late import connect, request, run_arrived
from tests.server.test_hostile import (
    PARAMS,
    Log,
    Peer,
    assert_serves,
    assert_settled,
    begin,
    digest_app,
    pack_header,
    pack_records,
    params,
    peer,
    request_bytes,
)

STDIN = 5
THRESHOLD = 64 * 1024


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
    """A prefork worker with as much work as threads as its loop waits stops accepting
    (here two connections accepted before their bytes came); the requests it then runs on
    the loop's own thread each make room, but one wake-up of the loop's next round is
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
        server.acceptor.accept(server.listeners[0])
        assert server.connection_count() == 2 and not server.arrived
        for number, client in enumerate(clients):
            client.sendall(request(f"/{number}".encode()))
        while len(server.arrived) < 2:
            assert not server.loop.poll()
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


def streamed(rid: int, path: str, size: int) -> tuple[bytes, bytes]:
    """A request's head with its body's first byte, and the rest of its body (unframed)."""
    body = random.Random(rid).randbytes(size)
    pairs = {b"REQUEST_METHOD": b"POST", b"PATH_INFO": path.encode()}
    pairs[b"CONTENT_LENGTH"] = str(size).encode()
    return begin(rid) + params(rid, pairs) + pack_records(STDIN, rid, body[:1]), body[1:]


def sha(rid: int, size: int) -> bytes:
    return hashlib.sha256(random.Random(rid).randbytes(size)).hexdigest().encode()


def test_a_multiplexed_connection_keeps_being_read_while_one_request_falls_behind(
    serve: Any,
) -> None:
    """On a connection that may carry several requests at once, one request whose app falls
    behind on its body does not stop the reading of the others: its body spools instead.
    (The guard any back-pressure on a connection must pass: benchmarks/RESULTS.md, "Upload,
    round 5".)"""
    small_done = threading.Event()

    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        stream = environ["wsgi.input"]
        if environ["PATH_INFO"] == "/small":
            small_done.set()
            yield b"small"
            return
        digest = hashlib.sha256(stream.read(1))
        yield b"started;"
        assert small_done.wait(10), "the other request never arrived"
        while piece := stream.read(4096):
            digest.update(piece)
        yield digest.hexdigest().encode()

    size = 1 << 20
    running = serve(app, spool_threshold=THRESHOLD, multiplexed=True)
    head, rest = streamed(1, "/big", size)
    with peer(running) as web_server:
        web_server.send(head)
        web_server.read(lambda reply: b"started;" in reply.stdout(1))
        half = len(rest) // 2
        records = (
            pack_records(STDIN, 1, rest[:half])
            + request_bytes(2, "/small")  # behind more than the threshold of the other's
            + pack_records(STDIN, 1, rest[half:])
            + pack_header(STDIN, 1, 0)
        )
        sender = threading.Thread(target=web_server.send, args=(records,))
        sender.start()
        reply = web_server.read(lambda reply: bool(reply.ends(1)) and bool(reply.ends(2)))
        sender.join(10)
    assert reply.bodies(2) == [b"small"]
    assert reply.bodies(1) == [b"started;" + sha(1, size)]


def test_a_round_after_a_big_one_reads_the_connections_in_the_order_their_requests_came(
    tmp_path: Path,
) -> None:
    """Under load (a web server keeping a connection for each request in flight) the loop's
    rounds are big. A connection the last big round read, whose next request came while that
    round's requests ran, is read after a connection whose request came before it: the
    order requests run in is the order they came, and none waits a round more. The loop's
    steps are taken on the test's thread, so the order of the sends is certain."""
    ran: list[str] = []
    during: dict[str, Any] = {}

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        ran.append(environ["PATH_INFO"])
        if (then := during.pop(environ["PATH_INFO"], None)) is not None:
            then()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    path = str(tmp_path / "fair.sock")
    server = Server(app, ServerSettings(binds=(UnixAddress(path),), handle_signals=False))
    server.acceptor.listen()
    server.pool._leader = threading.get_ident()  # this thread holds the loop role
    server.loop.start()
    server.loop.next_sweep = time.monotonic() + 3600
    # the big round's connections (a request each, not whole yet), the one whose request
    # runs in it, and one idle then
    waiting = [Peer(path) for _ in range(loop.FAIR_ROUND)]
    running, idle = Peer(path), Peer(path)
    peers = [*waiting, running, idle]
    try:
        for number, web_server in enumerate(peers):  # each becomes a kept connection
            web_server.send(request_bytes(1, f"/warm{number}", keep_conn=True))
        for _ in peers:  # accepted in one batch, or a few
            if len(server.arrived) == len(peers):
                break
            server.acceptor.accept(server.listeners[0])
        run_arrived(server)
        for web_server in peers:
            web_server.read(lambda reply: len(reply.ends(1)) == 1)
        heads = [kept_head(f"/waiting{number}") for number in range(len(waiting))]
        for web_server, (head, _) in zip(waiting, heads, strict=True):
            web_server.send(head)
        running.send(request_bytes(1, "/running", keep_conn=True))
        # while the round's request runs: a request comes on the idle connection, then the
        # rest of one the round read
        during["/running"] = lambda: (
            idle.send(request_bytes(1, "/idle", keep_conn=True)),
            waiting[0].send(heads[0][1]),
        )
        assert not server.loop.poll()
        assert [request.event.params[b"PATH_INFO"] for _, request in server.arrived] == [
            b"/running"
        ]
        run_arrived(server)
        assert not server.loop.poll()
        run_arrived(server)
        assert ran[-2:] == ["/idle", "/waiting0"]
    finally:
        for web_server in peers:
            web_server.close()
        server._close_everything()


def kept_head(path: str) -> tuple[bytes, bytes]:
    """A keep-conn GET cut before the end of its params, and the rest of it."""
    whole = request_bytes(1, path, keep_conn=True)
    rest = pack_header(PARAMS, 1, 0) + pack_header(STDIN, 1, 0)
    assert whole.endswith(rest)
    return whole[: -len(rest)], rest
