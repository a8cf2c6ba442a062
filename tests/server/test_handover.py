"""A body its app reads as it arrives is read from the connection by the app's own thread
(fcgikit.server.handover), through a live server over a real socket: the loop's poller lets
go of the connection meanwhile, no spool file holds what the app has not read yet, and
everything that can happen during a body (its end, a stall, an abort, EOF, a stop, the next
request on a kept connection) ends as it always did."""

from __future__ import annotations

import hashlib
import os
import threading
from typing import Any

import pytest

from fcgikit.errors import RequestBodyError
from fcgikit.protocol import ProtocolStatus
from fcgikit.protocol.records import pack_header, pack_records
from tests.server.test_hostile import (
    ABORT,
    STDIN,
    Log,
    assert_settled,
    begin,
    expected,
    params,
    peer,
    request_bytes,
    wait_until,
)

Environ = dict[str, Any]


@pytest.fixture
def log(caplog: pytest.LogCaptureFixture) -> Log:
    return Log(caplog)


def handed_over(running: Any) -> bool:
    """The server's one connection is read by a request's thread, out of the loop's poller."""
    channels = list(running.server.channels)
    if len(channels) != 1:
        return False
    channel = channels[0]
    in_poller = channel.fileno in running.server.loop.poller._targets
    return getattr(channel, "handed_to", None) is not None and not in_poller


def head(rid: int, length: int, path: str = "/up", keep_conn: bool = False) -> bytes:
    pairs = {
        b"REQUEST_METHOD": b"POST",
        b"PATH_INFO": path.encode(),
        b"CONTENT_LENGTH": str(length).encode(),
    }
    return begin(rid, keep_conn=keep_conn) + params(rid, pairs)


@pytest.mark.parametrize("threads", [1, 8])
def test_an_upload_read_as_it_arrives_is_read_by_the_apps_thread_unspooled(
    serve: Any, threads: int
) -> None:
    """4 MiB through a 256 KiB spool threshold, the app reading it in small pieces while the
    peer sends it: the connection is the app thread's meanwhile, nothing goes to a spool
    file, the body is byte-exact, and the kept connection serves its next request."""
    seen: list[tuple[bool, bool]] = []

    def app(environ: Environ, start_response: Any) -> list[bytes]:
        body = environ["wsgi.input"]
        digest = hashlib.sha256()
        size = 0
        during = False
        while chunk := body.read(4096):
            digest.update(chunk)
            size += len(chunk)
            during = during or handed_over(running)
        seen.append((during, body.spooled))
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [f"{environ['PATH_INFO']} {size} {digest.hexdigest()}".encode()]

    running = serve(app, spool_threshold=256 * 1024, threads=threads)
    data = os.urandom(4 << 20)
    with peer(running) as p:
        p.send(head(1, len(data), keep_conn=True))
        # the app waits for its first byte: the loop hands the connection over at it
        wait_until(lambda: any(c.handover_wanted for c in list(running.server.channels)))
        p.send(pack_records(STDIN, 1, data) + pack_header(STDIN, 1, 0))
        reply = p.read_end(1)
        assert reply.bodies(1) == [expected("/up", data)]
        assert seen == [(True, False)]
        # the connection is the loop's again: its next request is served
        p.send(request_bytes(2, "/next", b"after", keep_conn=True))
        reply = p.read_end(2)
        assert reply.bodies(2) == [expected("/next", b"after")]


@pytest.mark.parametrize("size", [200_000, -1])
def test_reads_larger_than_what_the_apps_thread_reads_at_a_time_keep_every_byte(
    serve: Any, size: int
) -> None:
    """The app's reads each take in several of its thread's reads of the socket (64 KiB at
    this spool threshold, into a buffer written again at every other one): every byte
    arrives, in order, unspooled."""
    seen: list[tuple[int, bool]] = []

    def app(environ: Environ, start_response: Any) -> list[bytes]:
        body = environ["wsgi.input"]
        digest = hashlib.sha256()
        total = 0
        while chunk := body.read(size):
            digest.update(chunk)
            total += len(chunk)
        seen.append((total, body.spooled))
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [f"{environ['PATH_INFO']} {total} {digest.hexdigest()}".encode()]

    running = serve(app, spool_threshold=128 * 1024)
    data = os.urandom(3 << 20)
    with peer(running) as p:
        p.send(head(1, len(data)))
        wait_until(lambda: any(c.handover_wanted for c in list(running.server.channels)))
        p.send(pack_records(STDIN, 1, data) + pack_header(STDIN, 1, 0))
        reply = p.read_end(1)
    assert reply.bodies(1) == [expected("/up", data)]
    assert seen == [(len(data), False)]


class CountsEmptyReads:
    """A connection's socket that notes each read that finds nothing (all else as it is)."""

    def __init__(self, sock: Any, empty_reads: list[int]) -> None:
        self._sock = sock
        self._empty_reads = empty_reads

    def recv_into(self, buffer: memoryview, /) -> int:
        try:
            return int(self._sock.recv_into(buffer))
        except BlockingIOError:
            self._empty_reads.append(len(buffer))
            raise

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


def test_after_a_read_that_emptied_the_socket_the_apps_thread_waits_before_reading(
    serve: Any,
) -> None:
    """A body sent in pieces, each read by the app before the next comes: after a read that
    took all the socket had, the app's thread waits for bytes before it reads again, instead
    of first making a read that finds nothing (a system call and a BlockingIOError each
    time the socket runs dry: hundreds a large upload); every byte arrives."""
    empty_reads: list[int] = []
    received: list[int] = []

    def app(environ: Environ, start_response: Any) -> list[bytes]:
        (channel,) = running.server.channels
        channel.sock = CountsEmptyReads(channel.sock, empty_reads)
        body = environ["wsgi.input"]
        digest = hashlib.sha256()
        while chunk := body.read(4096):
            digest.update(chunk)
            received.append(len(chunk))
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [f"{environ['PATH_INFO']} {sum(received)} {digest.hexdigest()}".encode()]

    running = serve(app)
    piece = 3 * 4096  # (a read of 4096 returns once it has them all)
    data = os.urandom(20 * piece)
    with peer(running) as p:
        p.send(head(1, len(data)))
        wait_until(lambda: any(c.handover_wanted for c in list(running.server.channels)))
        for end in range(piece, len(data) + 1, piece):
            p.send(pack_records(STDIN, 1, data[end - piece : end]))
            wait_until(lambda end=end: sum(received) == end, what="the app to read the piece")
        p.send(pack_header(STDIN, 1, 0))
        reply = p.read_end(1)
    assert reply.bodies(1) == [expected("/up", data)]
    assert empty_reads == []


def echo_app(environ: Environ, start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [environ["PATH_INFO"].encode() + b" " + environ["wsgi.input"].read()]


def failures_app(failures: list[str]) -> Any:
    """Reads its body; a failure to read it is noted, then raised on (as an app would)."""

    def app(environ: Environ, start_response: Any) -> list[bytes]:
        try:
            data = environ["wsgi.input"].read()
        except RequestBodyError as exc:
            failures.append(f"{type(exc).__name__}: {exc}")
            raise
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [expected(environ["PATH_INFO"], data)]

    return app


def test_a_body_that_stops_arriving_times_out_as_before(serve: Any, log: Log) -> None:
    failures: list[str] = []
    running = serve(failures_app(failures), body_timeout=0.5)
    with peer(running) as p:
        p.send(head(1, 100_000) + pack_records(STDIN, 1, b"x" * 1000))
        wait_until(
            lambda: any(c.handover_wanted or c.handed_to for c in list(running.server.channels))
        )
        p.send(pack_records(STDIN, 1, b"y" * 1000))  # handed over at these; then nothing
        reply = p.read_until_closed()
    assert b"408" in reply.stdout(1)
    assert failures == ["RequestBodyTimeout: no byte of the request body arrived for 0.5s"]
    log.wait_for_one("answering 408")
    assert_settled(running)


def hand_over_a_body(running: Any, p: Any) -> None:
    """Begin request 1 with a body that has not all come, and wait until its app's thread
    reads it from the socket itself."""
    p.send(head(1, 100_000) + pack_records(STDIN, 1, b"x" * 1000))
    wait_until(lambda: any(c.handover_wanted for c in list(running.server.channels)))
    p.send(pack_records(STDIN, 1, b"y" * 1000))
    wait_until(lambda: handed_over(running), what="the app's thread to read its body")


def test_an_abort_during_the_body_is_answered_and_fails_the_read(serve: Any, log: Log) -> None:
    failures: list[str] = []
    running = serve(failures_app(failures))
    with peer(running) as p:
        hand_over_a_body(running, p)
        p.send(pack_header(ABORT, 1, 0))
        reply = p.read(lambda r: bool(r.ends(1)) or r.closed)
    assert reply.ends(1) == [ProtocolStatus.REQUEST_COMPLETE]
    wait_until(lambda: bool(failures), what="the app's read to fail")
    assert failures == ["RequestBodyError: the web server aborted the request"]
    log.wait_for_one("aborted by the web server")
    assert_settled(running)


def test_eof_during_the_body_fails_the_read_as_before(serve: Any) -> None:
    failures: list[str] = []
    running = serve(failures_app(failures))
    with peer(running) as p:
        hand_over_a_body(running, p)
    wait_until(lambda: bool(failures), what="the app's read to fail")
    assert failures == ["RequestBodyError: the web server closed the connection"]
    assert_settled(running)


def test_a_stop_during_an_upload_ends_the_apps_wait(serve: Any) -> None:
    """Bodies wait for ever (body_timeout 0): only the stop, its grace period over, ends the
    app thread's wait on the socket."""
    failures: list[str] = []
    running = serve(failures_app(failures), body_timeout=None, graceful_timeout=0.2)
    with peer(running) as p:
        hand_over_a_body(running, p)
        running.stop()
        wait_until(lambda: bool(failures), what="the app's read to fail")
    assert failures == ["RequestBodyError: the server is stopping"]


def test_a_body_that_arrived_whole_is_not_handed_over(serve: Any) -> None:
    running = serve(echo_app)
    with peer(running) as p:
        p.send(request_bytes(1, "/whole", b"all of it", keep_conn=True))
        assert p.read_end(1).bodies(1) == [b"/whole all of it"]
    assert not any(getattr(c, "handed_to", None) for c in list(running.server.channels))


def test_many_uploads_on_many_threads_stay_byte_exact(serve: Any) -> None:
    running = serve(failures_app([]), threads=4)
    bodies = [os.urandom(300_000 + i) for i in range(8)]
    results: list[bool] = []

    def one(i: int) -> None:
        client = running.client(timeout=10)
        response = client.request("POST", f"/m{i}", body=bodies[i])
        results.append(response.body == expected(f"/m{i}", bodies[i]))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert results == [True] * 8
