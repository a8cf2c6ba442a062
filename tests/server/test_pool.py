"""The pool runs complete requests on the loop's thread; a slow one must not hold anyone up."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from typing import Any

from fcgikit.client import FastCGIResponse
from fcgikit.protocol import ClientConnection, RequestEnded, StdoutData
from tests.server.conftest import RunningServer
from tests.server.test_hostile import wait_until

Environ = dict[str, Any]
WAIT = 10.0


def one_write_request(path: str, request_id: int = 1) -> bytes:
    """A whole GET in one write, as nginx sends it: params and the empty body arrive in the
    same read, so the server may run it on the loop's thread."""
    client = ClientConnection()
    params = {b"REQUEST_METHOD": b"GET", b"PATH_INFO": path.encode(), b"SERVER_NAME": b"t"}
    return client.start_request(request_id, params) + client.end_stdin(request_id)


def read_response(sock: socket.socket) -> bytes:
    client = ClientConnection()
    client.start_request(1, {})  # only so that it expects request 1's records
    stdout = b""
    while True:
        data = sock.recv(65536)
        assert data, "connection closed before END_REQUEST"
        for event in client.receive_data(data):
            if isinstance(event, StdoutData):
                stdout += event.data
            elif isinstance(event, RequestEnded):
                return stdout


def test_a_request_blocked_on_the_loops_thread_does_not_hold_up_the_next(
    serve: Callable[..., RunningServer],
) -> None:
    entered = threading.Event()
    release = threading.Event()

    def app(environ: Environ, start_response: Any) -> list[bytes]:
        if environ["PATH_INFO"] == "/block":
            entered.set()
            release.wait(WAIT)  # a database query, a slow API: the thread waits
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [environ["PATH_INFO"].encode()]

    running = serve(app, threads=4)
    blocked = socket.socket(socket.AF_UNIX)
    blocked.connect(running.path)
    blocked.sendall(one_write_request("/block"))
    assert entered.wait(WAIT)
    try:
        reply: FastCGIResponse = running.client(timeout=WAIT).request("GET", "/quick")
        assert (reply.status, reply.body) == (200, b"/quick")
    finally:
        release.set()
    assert read_response(blocked).endswith(b"/block")
    blocked.close()
    # /block ran on the loop's thread, and lost the loop to another thread while it waited
    assert running.server.pool.rescues == 1


def test_never_more_requests_at_once_than_threads(serve: Callable[..., RunningServer]) -> None:
    """Also while requests run on the loop's thread and get rescued: an app may size its
    database pool by --threads (and the prefork scoreboard has one cell per thread)."""
    lock = threading.Condition()
    active = started = peak = 0
    total = 12

    def app(environ: Environ, start_response: Any) -> list[bytes]:
        nonlocal active, started, peak
        with lock:
            active += 1
            started += 1
            peak = max(peak, active)
            lock.notify_all()
            # hold each request until it has company (or nobody is left to come), so that
            # the cap is actually reached
            assert lock.wait_for(lambda: active >= 2 or started == total, WAIT)
        with lock:
            active -= 1
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    running = serve(app, threads=2)
    socks = []
    for _ in range(total):
        sock = socket.socket(socket.AF_UNIX)
        sock.connect(running.path)
        socks.append(sock)
    for sock in socks:
        sock.sendall(one_write_request("/"))
    for sock in socks:
        sock.settimeout(WAIT)
        assert read_response(sock).endswith(b"ok")
        sock.close()
    assert peak == 2


def test_a_complete_request_waits_its_turn_when_every_thread_is_busy(
    serve: Callable[..., RunningServer],
) -> None:
    """The loop's thread runs a request itself only while a thread's worth of room is left."""
    lock = threading.Lock()
    active = peak = 0

    def app(environ: Environ, start_response: Any) -> list[bytes]:
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)
        try:
            body = environ["wsgi.input"].read()  # the uploads wait here for their bodies
        finally:
            with lock:
                active -= 1
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"%d" % len(body)]

    running = serve(app, threads=2)
    uploads = []
    for _ in range(2):
        client = ClientConnection()
        sock = socket.socket(socket.AF_UNIX)
        sock.connect(running.path)
        params = {b"REQUEST_METHOD": b"POST", b"CONTENT_LENGTH": b"10", b"SERVER_NAME": b"t"}
        sock.sendall(client.start_request(1, params) + client.send_stdin(1, b"12345"))
        uploads.append((client, sock))
    wait_until(lambda: active == 2, what="both uploads running")
    quick = socket.socket(socket.AF_UNIX)
    quick.connect(running.path)
    quick.sendall(one_write_request("/"))
    wait_until(lambda: running.server.pool.in_flight == 3, what="the GET admitted")
    for client, sock in uploads:
        sock.sendall(client.send_stdin(1, b"67890") + client.end_stdin(1))
    for sock in [quick, *(sock for _, sock in uploads)]:
        sock.settimeout(WAIT)
        assert read_response(sock).endswith(b"0" if sock is quick else b"10")
        sock.close()
    assert peak == 2
