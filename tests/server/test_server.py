"""The server end to end over a real unix socket, driven by our own FastCGI client."""

from __future__ import annotations

import hashlib
import logging
import os
import re
import socket
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from fcgikit.addresses import UnixAddress
from fcgikit.errors import RemoteProtocolError
from fcgikit.protocol import (
    ClientConnection,
    ProtocolStatus,
    RequestEnded,
    Role,
    StderrData,
    StdoutData,
)
from fcgikit.protocol.constants import COPY_MAX
from fcgikit.server.reply import overload_log
from fcgikit.server.server import Server
from fcgikit.server.settings import ServerSettings
from tests.server.test_hostile import begin, pack_header, pack_records, params, peer, wait_until

Environ = dict[str, Any]


class LogWaiter(logging.Handler):
    """Wake a test when a log line containing ``text`` is emitted, from whatever thread."""

    def __init__(self, text: str) -> None:
        super().__init__(logging.DEBUG)
        self.text = text
        self.seen = threading.Event()
        self.logger = logging.getLogger("fcgikit.server")

    def emit(self, record: logging.LogRecord) -> None:
        if self.text in record.getMessage():
            self.seen.set()

    def __enter__(self) -> LogWaiter:
        self.logger.addHandler(self)
        self.previous_level = self.logger.level
        self.logger.setLevel(logging.DEBUG)
        return self

    def __exit__(self, *exc: object) -> None:
        self.logger.removeHandler(self)
        self.logger.setLevel(self.previous_level)


def hello(environ: Environ, start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"Hello World!"]


def holding_app(body: bytes) -> tuple[Any, threading.Event, threading.Event]:
    """An app whose every request sets ``entered``, then waits for ``release`` (10 s at
    most) before it answers ``body``: a request the test holds running."""
    entered = threading.Event()
    release = threading.Event()

    def app(environ: Environ, start_response: Any) -> list[bytes]:
        entered.set()
        release.wait(10)
        start_response("200 OK", [])
        return [body]

    return app, entered, release


def echo_environ(environ: Environ, start_response: Any) -> list[bytes]:
    keys = [
        "SCRIPT_NAME",
        "PATH_INFO",
        "QUERY_STRING",
        "wsgi.url_scheme",
        "FCGI_ROLE",
        "CONTENT_LENGTH",
        "REQUEST_METHOD",
    ]
    lines = [f"{k}={environ.get(k, '<absent>')}" for k in keys]
    lines.append(f"dups={sorted(environ.get('fcgikit.duplicate_params', ()))}")
    lines.append(f"types={sorted({type(v).__name__ for k, v in environ.items() if k.isupper()})}")
    start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])
    return ["\n".join(lines).encode("utf-8")]


def body_digest(environ: Environ, start_response: Any) -> list[bytes]:
    stream = environ["wsgi.input"]
    digest = hashlib.sha256()
    total = 0
    while chunk := stream.read(65536):
        digest.update(chunk)
        total += len(chunk)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [f"{total} {digest.hexdigest()}".encode()]


def test_hello_world_with_content_length(serve: Any) -> None:
    running = serve(hello)
    response = running.client().request("GET", "/")
    assert response.status == 200
    assert response.body == b"Hello World!"
    assert response.header("Content-Length") == "12"
    assert response.protocol_status == ProtocolStatus.REQUEST_COMPLETE


def test_environ_is_pep3333_text_and_decodes_latin1(serve: Any) -> None:
    running = serve(echo_environ)
    raw = [
        (b"REQUEST_METHOD", b"GET"),
        (b"SCRIPT_NAME", b"/foo/bar"),
        (b"SCRIPT_NAME", b""),  # nginx's guide recipe: the second one wins
        (b"PATH_INFO", "/caf\u00e9".encode()),
        (b"QUERY_STRING", b"x=1&y=a%20b"),
        (b"CONTENT_LENGTH", b""),
        (b"HTTPS", b"on"),
    ]
    response = running.client().request(raw_params=raw)
    text = response.body.decode("utf-8")
    assert "SCRIPT_NAME=\n" in text
    # UTF-8 bytes arrive as their latin-1 reading, the PEP 3333 rule
    assert "PATH_INFO=/caf\u00c3\u00a9" in text
    assert "QUERY_STRING=x=1&y=a%20b" in text
    assert "wsgi.url_scheme=https" in text
    assert "CONTENT_LENGTH=<absent>" in text
    assert "FCGI_ROLE=RESPONDER" in text
    assert "dups=['SCRIPT_NAME']" in text
    assert "types=['str']" in text


def test_request_scheme_sets_url_scheme(serve: Any) -> None:
    running = serve(echo_environ)
    response = running.client().request(params={"REQUEST_SCHEME": "https"})
    assert b"wsgi.url_scheme=https" in response.body


@pytest.mark.parametrize("size", [0, 1, 65535, 65536, 3 * 1024 * 1024 + 7])
def test_post_body_arrives_byte_exact(serve: Any, size: int) -> None:
    running = serve(body_digest, spool_threshold=1024 * 1024)
    body = os.urandom(size)
    response = running.client().request("POST", "/upload", body=body)
    assert response.body.decode() == f"{size} {hashlib.sha256(body).hexdigest()}"


def test_large_body_is_spooled_to_an_unnamed_temp_file(serve: Any) -> None:
    seen: dict[str, Any] = {}

    def app(environ: Environ, start_response: Any) -> list[bytes]:
        stream = environ["wsgi.input"]
        data = stream.read()
        seen["spooled"] = stream.spooled
        links = []
        for fd in os.listdir("/proc/self/fd"):
            try:
                links.append(os.readlink(f"/proc/self/fd/{fd}"))
            except OSError:  # closed meanwhile by another thread
                continue
        seen["spool_links"] = [link for link in links if "fcgikit-body" in link or "#" in link]
        start_response("200 OK", [])
        return [str(len(data)).encode()]

    running = serve(app, spool_threshold=64 * 1024)
    response = running.client().request("POST", "/", body=b"x" * (2 * 1024 * 1024))
    assert response.body == b"2097152"
    assert seen["spooled"] is True
    # the spool has no name on disk: nothing to clean up even after kill -9
    assert seen["spool_links"] and all(link.endswith("(deleted)") for link in seen["spool_links"])


def test_readline_and_iteration(serve: Any) -> None:
    def app(environ: Environ, start_response: Any) -> list[bytes]:
        stream = environ["wsgi.input"]
        first = stream.readline()
        rest = list(stream)
        start_response("200 OK", [])
        return [b"|".join([first, *rest])]

    running = serve(app)
    response = running.client().request("POST", "/", body=b"a\nbb\nccc")
    assert response.body == b"a\n|bb\n|ccc"


def test_streaming_response_goes_out_in_order(serve: Any) -> None:
    def app(environ: Environ, start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        for i in range(200):
            yield bytes([i]) * 10_000

    running = serve(app)
    response = running.client().request()
    assert response.body == b"".join(bytes([i]) * 10_000 for i in range(200))
    assert response.header("Content-Length") is None


def test_a_body_iterable_with_its_content_length_goes_out_in_one_write(serve: Any) -> None:
    """Flask's responses: one chunk, as long as Content-Length says. The web server gets the
    headers, the body and END_REQUEST in one write (one wake-up, not two)."""

    def app(environ: Environ, start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "5")])
        yield b"hello"
        if environ["PATH_INFO"] == "/more":
            yield b" and more than it said"  # the app's mistake: passed on, not dropped

    running = serve(app)
    sock = socket.socket(socket.AF_UNIX)
    sock.connect(running.path)
    client = ClientConnection()
    sock.sendall(client.start_request(1, {b"PATH_INFO": b"/"}) + client.end_stdin(1))
    events = client.receive_data(sock.recv(65536))
    assert [type(event).__name__ for event in events] == ["StdoutData", "RequestEnded"]
    assert events[0].data.endswith(b"\r\n\r\nhello")
    sock.close()
    assert running.client().request(path="/more").body == b"hello and more than it said"


def test_write_callable_and_close_is_called(serve: Any) -> None:
    closed = threading.Event()

    class Result:
        def __iter__(self) -> Iterator[bytes]:
            yield b" world"

        def close(self) -> None:
            closed.set()

    def app(environ: Environ, start_response: Any) -> Result:
        write = start_response("200 OK", [])
        write(b"hello")
        return Result()

    running = serve(app)
    assert running.client().request().body == b"hello world"
    assert closed.is_set()


def test_app_that_raises_gets_500_without_traceback(
    serve: Any, caplog: pytest.LogCaptureFixture
) -> None:
    def app(environ: Environ, start_response: Any) -> list[bytes]:
        raise RuntimeError("secret database password")

    running = serve(app)
    with caplog.at_level(logging.ERROR, logger="fcgikit.server"):
        response = running.client().request("GET", "/boom")
        follow_up = running.client().request("GET", "/")
    assert response.status == 500
    assert b"secret" not in response.body and b"Traceback" not in response.body
    assert follow_up.status == 500  # still serving
    errors = [r for r in caplog.records if "RuntimeError" in r.getMessage()]
    assert len(errors) == 2 and "GET" in errors[0].getMessage()


def test_debug_puts_the_traceback_in_the_page(serve: Any) -> None:
    def app(environ: Environ, start_response: Any) -> list[bytes]:
        raise RuntimeError("visible <b>only</b> in debug")

    response = serve(app, debug=True).client().request()
    assert response.status == 500
    assert b"Traceback" in response.body
    assert b"visible &lt;b&gt;only&lt;/b&gt; in debug" in response.body


@pytest.mark.parametrize(
    "headers",
    [
        [("X-Bad", "a\r\nSet-Cookie: evil=1")],
        [("X-Bad", "caf\u00e9\u20ac")],
        [("Bad Name", "x")],
        # RFC 9110 5.5: no control character in a field value but HTAB; nginx passes
        # these on to the HTTP client as they are
        [("X-Bad", "a\x0bb")],
        [("X-Bad", "a\x0cb")],
        [("X-Bad", "a\x7fb")],
        [("X-Bad", "\x1b[31mred")],
        [("X-Bad", "a\x01b")],
    ],
    ids=["crlf-injection", "not-latin1", "space-in-name", "VT", "FF", "DEL", "ESC", "SOH"],
)
def test_invalid_headers_become_500(
    serve: Any, headers: list[tuple[str, str]], caplog: pytest.LogCaptureFixture
) -> None:
    def app(environ: Environ, start_response: Any) -> list[bytes]:
        start_response("200 OK", headers)
        return [b"never sent"]

    with caplog.at_level(logging.ERROR, logger="fcgikit.server"):
        response = serve(app).client().request()
    assert response.status == 500
    assert response.header("Set-Cookie") is None
    assert b"never sent" not in response.body
    assert len([r for r in caplog.records if "invalid response" in r.getMessage()]) == 1


def test_exc_info_replaces_headers_before_they_are_sent(serve: Any) -> None:
    def app(environ: Environ, start_response: Any) -> list[bytes]:
        start_response("200 OK", [("X-First", "1")])
        try:
            raise ValueError("late problem")
        except ValueError:
            import sys

            start_response("503 Service Unavailable", [("X-Second", "2")], sys.exc_info())
        return [b"sorry"]

    response = serve(app).client().request()
    assert response.status == 503
    assert response.header("X-First") is None and response.header("X-Second") == "2"


def test_error_after_headers_drops_the_connection_so_the_truncation_shows(serve: Any) -> None:
    # nginx ignores END_REQUEST's appStatus: a normal END_REQUEST would hand the client a
    # complete-looking partial page. Closing without it makes nginx cut the client off.
    def app(environ: Environ, start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [])
        if environ["PATH_INFO"] == "/fine":
            yield b"fine"
            return
        yield b"partial"
        raise RuntimeError("mid-stream")

    running = serve(app)
    with pytest.raises(RemoteProtocolError, match="without ending request"):
        running.client().request()
    assert running.client().request("GET", "/fine").body == b"fine"  # the server kept going


def test_wsgi_errors_reach_fcgi_stderr(serve: Any) -> None:
    def app(environ: Environ, start_response: Any) -> list[bytes]:
        environ["wsgi.errors"].write("something odd\n")
        start_response("200 OK", [])
        return [b"ok"]

    response = serve(app).client().request()
    assert response.stderr == b"something odd\n"
    assert response.body == b"ok"


def test_keep_conn_serves_many_requests_on_one_connection(serve: Any) -> None:
    running = serve(hello)
    client = running.client(keep_conn=True)
    for _ in range(5):
        assert client.request().body == b"Hello World!"


def test_get_values(serve: Any) -> None:
    running = serve(hello, threads=4, max_queued=6)
    values = running.client().get_values([b"FCGI_MAX_CONNS", b"FCGI_MPXS_CONNS", b"NOPE"])
    assert values == {b"FCGI_MAX_CONNS": b"10", b"FCGI_MPXS_CONNS": b"0"}


def _raw_exchange(
    client: ClientConnection, path: str, data: bytes, until_ended: Iterable[int]
) -> dict[Any, Any]:
    """Send raw records, collect events until every id in until_ended got END_REQUEST."""
    waiting = set(until_ended)
    out: dict[int, Any] = {}
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(10)
        sock.connect(path)
        sock.sendall(data)
        while waiting:
            chunk = sock.recv(65536)
            assert chunk, f"connection closed while waiting for {waiting}"
            for event in client.receive_data(chunk):
                if isinstance(event, RequestEnded):
                    out[event.request_id] = event
                    waiting.discard(event.request_id)
                elif isinstance(event, StdoutData):
                    out.setdefault(("stdout", event.request_id), b"")
                    out[("stdout", event.request_id)] += event.data
    return out


def test_overloaded_when_no_thread_is_free(serve: Any, caplog: pytest.LogCaptureFixture) -> None:
    app, entered, release = holding_app(b"slow")
    running = serve(app, threads=1, max_queued=0)
    result: list[Any] = []
    first = threading.Thread(target=lambda: result.append(running.client().request()))
    first.start()
    assert entered.wait(10)
    client = ClientConnection()
    params = {b"REQUEST_METHOD": b"GET", b"REQUEST_URI": b"/refused"}
    request = client.start_request(1, params) + client.end_stdin(1)
    with caplog.at_level(logging.DEBUG, logger="fcgikit.server"):
        events = _raw_exchange(client, running.path, request, [1])
    assert events[1].protocol_status == ProtocolStatus.OVERLOADED
    # the rate-limited line says why; the request itself is named at debug level
    refused = [r.getMessage() for r in caplog.records if "refused (OVERLOADED)" in r.getMessage()]
    assert "request #1 GET /refused refused (OVERLOADED): all threads busy" in refused[0]
    release.set()
    first.join(10)
    assert result[0].body == b"slow"


def test_a_request_whose_web_server_left_while_it_waited_for_a_thread_is_not_run(
    serve: Any,
) -> None:
    """Every thread busy, the next request waits for one; its web server gives up meanwhile
    (nginx closes the connection once its client went away). Nobody waits for its answer:
    it must not run. On the direct lane its connection is not read again, so only a look
    before it runs can tell (WSGIRequest.waited)."""
    release = threading.Event()
    entered = threading.Event()
    ran: list[str] = []

    def app(environ: Environ, start_response: Any) -> list[bytes]:
        ran.append(environ["PATH_INFO"])
        if environ["PATH_INFO"] == "/hold":
            entered.set()
            release.wait(10)
        start_response("200 OK", [])
        return [b"done"]

    running = serve(app, threads=1)
    client = ClientConnection()
    hold = client.start_request(1, {b"PATH_INFO": b"/hold"}) + client.end_stdin(1)
    first: list[Any] = []
    thread = threading.Thread(
        target=lambda: first.append(_raw_exchange(client, running.path, hold, [1]))
    )
    thread.start()
    assert entered.wait(10)
    with LogWaiter("not run: the web server closed the connection") as waiter:
        with socket.socket(socket.AF_UNIX) as gone:
            gone.connect(running.path)
            other = ClientConnection()
            gone.sendall(other.start_request(1, {b"PATH_INFO": b"/gone"}) + other.end_stdin(1))
            wait_until(lambda: running.server.pool.in_flight == 2, what="it to wait in the queue")
        release.set()
        assert waiter.seen.wait(10)
    thread.join(10)
    assert first[0][("stdout", 1)].endswith(b"done")
    assert ran == ["/hold"]


def test_multiplexed_requests_on_one_connection(serve: Any) -> None:
    running = serve(echo_environ, multiplexed=True)
    client = ClientConnection()
    data = b""
    for rid in (1, 2, 3):
        data += client.start_request(rid, {b"PATH_INFO": f"/r{rid}".encode()}, keep_conn=True)
    for rid in (3, 1, 2):
        data += client.end_stdin(rid)
    events = _raw_exchange(client, running.path, data, [1, 2, 3])
    for rid in (1, 2, 3):
        assert events[rid].protocol_status == ProtocolStatus.REQUEST_COMPLETE
        assert f"PATH_INFO=/r{rid}\n".encode() in events[("stdout", rid)]


def test_second_request_without_multiplexing_is_refused(serve: Any) -> None:
    release = threading.Event()

    def app(environ: Environ, start_response: Any) -> list[bytes]:
        release.wait(10)
        start_response("200 OK", [])
        return [b"first"]

    running = serve(app)
    client = ClientConnection()
    data = client.start_request(1, {}, keep_conn=True) + client.start_request(2, {}, keep_conn=True)
    events = _raw_exchange(client, running.path, data, [2])
    assert events[2].protocol_status == ProtocolStatus.CANT_MPX_CONN
    release.set()


def test_abort_before_params_end_is_answered_at_once(serve: Any) -> None:
    running = serve(hello)
    client = ClientConnection()
    begin = client.start_request(1, {b"A": b"B"})
    # drop the empty PARAMS record that ends the stream (the last 8 bytes)
    data = begin[:-8] + client.abort_request(1)
    events = _raw_exchange(client, running.path, data, [1])
    assert events[1].protocol_status == ProtocolStatus.REQUEST_COMPLETE


def test_unknown_role_is_refused(serve: Any) -> None:
    running = serve(hello)
    client = ClientConnection()
    data = client.start_request(1, {}, role=Role.AUTHORIZER)
    events = _raw_exchange(client, running.path, data, [1])
    assert events[1].protocol_status == ProtocolStatus.UNKNOWN_ROLE


def test_filter_role_exposes_fcgi_data(serve: Any) -> None:
    def app(environ: Environ, start_response: Any) -> list[bytes]:
        data = environ["fcgikit.filter_data"].read()
        start_response("200 OK", [])
        return [environ["FCGI_ROLE"].encode() + b":" + data.upper()]

    running = serve(app, roles=frozenset({Role.FILTER}))
    response = running.client().request(
        role=Role.FILTER, data=b"file contents", params={"FCGI_DATA_LENGTH": "13"}
    )
    assert response.body == b"FILTER:FILE CONTENTS"


def test_garbage_closes_only_that_connection(serve: Any, caplog: pytest.LogCaptureFixture) -> None:
    running = serve(hello)
    with (
        caplog.at_level(logging.WARNING, logger="fcgikit.server"),
        socket.socket(socket.AF_UNIX) as sock,
    ):
        sock.settimeout(10)
        sock.connect(running.path)
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert sock.recv(100) == b""  # closed on us
    assert any("protocol error" in r.getMessage() for r in caplog.records)
    assert running.client().request().body == b"Hello World!"


def test_client_vanishing_mid_response_leaves_server_serving(serve: Any) -> None:
    sent = threading.Event()

    def app(environ: Environ, start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [])
        for _ in range(1000):
            yield b"x" * 65536
        sent.set()

    running = serve(app)
    client = ClientConnection()
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(running.path)
        sock.sendall(client.start_request(1, {}) + client.end_stdin(1))
        sock.recv(1000)
    # the abandoned response does not block others
    assert running.client().request().body.startswith(b"x")


def test_graceful_stop_lets_running_request_finish_and_closes_idle_keepconn(serve: Any) -> None:
    entered = threading.Event()
    release = threading.Event()

    def app(environ: Environ, start_response: Any) -> list[bytes]:
        if environ["PATH_INFO"] == "/slow":
            entered.set()
            release.wait(10)
        start_response("200 OK", [])
        return [b"done " + environ["PATH_INFO"].encode()]

    running = serve(app)
    idle = running.client(keep_conn=True)
    assert idle.request("GET", "/warm").body == b"done /warm"  # now an idle keep-conn connection
    result: list[Any] = []
    worker = threading.Thread(
        target=lambda: result.append(running.client().request("GET", "/slow"))
    )
    worker.start()
    assert entered.wait(10)
    running.server.stop("test")
    # the idle keep-conn connection is closed by the server (EOF), not left to hang shutdown
    assert idle._socket().recv(10) == b""
    idle.close()  # as nginx does when its idle upstream connection sees EOF
    release.set()
    worker.join(10)
    running.thread.join(10)
    assert not running.thread.is_alive()
    assert result[0].body == b"done /slow"
    assert running.returned == [False]
    assert not os.path.exists(running.path)  # our socket file is cleaned up


def test_a_keep_conn_request_running_as_the_server_stops_is_answered_then_closed(
    serve: Any,
) -> None:
    """A keep-conn request on a new connection (the direct lane) that is still running when a
    graceful stop begins gets its answer, then our close right behind it, as one on a kept
    connection does: the server does not keep a connection it is about to leave."""
    app, entered, release = holding_app(b"done")
    running = serve(app)
    client = running.client(keep_conn=True)
    result: list[Any] = []
    worker = threading.Thread(target=lambda: result.append(client.request("GET", "/slow")))
    worker.start()
    assert entered.wait(10)
    with LogWaiter("finishing running requests") as draining:
        running.server.stop("test")
        assert draining.seen.wait(10)
    release.set()
    worker.join(10)
    assert result[0].body == b"done"
    assert client._socket().recv(10) == b""  # closed behind the answer
    running.thread.join(10)
    assert not running.thread.is_alive()


def test_backpressure_stalls_the_app_and_send_timeout_gives_up(serve: Any) -> None:
    produced: list[int] = []
    stopped = threading.Event()

    def app(environ: Environ, start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [])
        if environ["PATH_INFO"] == "/small":
            yield b"small"
            return
        try:
            for i in range(16 * 1024):  # 1 GiB if nothing held it back
                produced.append(i)
                yield b"x" * 65536
        finally:
            stopped.set()

    running = serve(app, send_timeout=1.0)
    client = ClientConnection()
    with LogWaiter("did not read for 1s") as gave_up, socket.socket(socket.AF_UNIX) as sock:
        sock.connect(running.path)
        sock.sendall(client.start_request(1, {}) + client.end_stdin(1))
        # a web server that never reads: the generator must stall, then be closed
        assert gave_up.seen.wait(30)
        assert stopped.is_set()
    # only what fits in the socket buffers was produced, not the whole gigabyte
    assert len(produced) < 200
    assert running.client().request("GET", "/small").body == b"small"  # others still served


class ChannelHost:
    """The little a Channel needs from its server, for driving one by hand."""

    def __init__(self, app: Any) -> None:
        self.settings = ServerSettings()
        self.app = app
        self.recv_buffer = memoryview(bytearray(65536))
        self.arrived: list[Any] = []
        self.overloads = overload_log()

    def unregister(self, channel: Any) -> None:
        channel.registered = False

    def want_write(self, channel: Any) -> None:
        pass

    def request_finished(self) -> None:
        pass

    def set_aside(self, channel: Any) -> None:
        pass

    def take_back(self, channel: Any) -> None:
        pass

    def channel_closed(self, channel: Any) -> None:
        channel.registered = False


def run_to_the_end(request: Any) -> None:
    """Run ``request`` as a pool's queued thread does: its reply sent, and then it ends."""
    reply = request.run()
    if reply is not None:
        reply.send()
        reply.done(on_loop=False)


def test_keep_conn_reused_request_id_survives_the_previous_request() -> None:
    """nginx reuses request id 1 as soon as it reads END_REQUEST. The order that once let the
    old request's thread end the new one: END_REQUEST out, the next request (same id) in,
    and only then the old thread's request_done."""
    from fcgikit.server.channel import Channel

    host = ChannelHost(echo_environ)
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    theirs.settimeout(10)
    channel = Channel(host, ours, "test")  # type: ignore[arg-type]
    client = ClientConnection()

    def send_request(path: bytes) -> Any:
        theirs.sendall(
            client.start_request(1, {b"PATH_INFO": path}, keep_conn=True) + client.end_stdin(1)
        )
        channel.on_readable()
        ((_, request),) = host.arrived
        host.arrived.clear()
        return request

    def response() -> bytes:
        stdout = b""
        while True:
            for event in client.receive_data(theirs.recv(65536)):
                if isinstance(event, StdoutData):
                    stdout += event.data
                elif isinstance(event, RequestEnded):
                    return stdout

    first = send_request(b"/first")
    # the app ran and END_REQUEST went out; the request is not over
    first._respond(first.build_environ(), first.app).send()
    assert b"PATH_INFO=/first\n" in response()
    second = send_request(b"/second")
    channel.request_done(first, on_loop=False)  # late: the id is already the second request's
    assert channel.requests == {1: second}
    run_to_the_end(second)
    assert b"PATH_INFO=/second\n" in response()
    assert not channel.requests
    ours.close()
    theirs.close()


def run_through_a_slow_reader(
    app: Any, *, sndbuf: int, rcvbuf: int | None, read_size: int
) -> tuple[bytes, RequestEnded]:
    """Run ``app`` on a Channel whose socket takes little at a time (``sndbuf``), with a web
    server reading ``read_size`` bytes at a time: (the stdout stream, its END_REQUEST)."""
    from fcgikit.server.channel import Channel

    host = ChannelHost(app)
    ours, theirs = socket.socketpair()
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
    if rcvbuf is not None:
        theirs.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    ours.setblocking(False)
    theirs.settimeout(10)
    channel = Channel(host, ours, "test")  # type: ignore[arg-type]
    client = ClientConnection()
    theirs.sendall(client.start_request(1, {}, keep_conn=True) + client.end_stdin(1))
    channel.on_readable()
    ((_, request),) = host.arrived
    runner = threading.Thread(target=run_to_the_end, args=(request,))
    runner.start()
    stdout = b""
    ended = None
    while ended is None:
        for event in client.receive_data(theirs.recv(read_size)):
            if isinstance(event, StdoutData):
                stdout += event.data
            elif isinstance(event, RequestEnded):
                ended = event
    runner.join(10)
    assert not runner.is_alive()
    ours.close()
    theirs.close()
    return stdout, ended


@pytest.mark.parametrize("streamed", [False, True], ids=["list", "streamed-64k-blocks"])
def test_a_large_body_sent_in_pieces_arrives_whole_through_a_small_socket_buffer(
    streamed: bool,
) -> None:
    """A body of 1 MiB goes out with sendmsg, framed in place (a list body at the end, or each
    streamed block); a web server that reads slowly makes each sendmsg take only part of
    it, which must resume at the right byte."""
    body = bytes(range(251)) * (1024 * 1024 // 251)  # no period of 8 or 65535 bytes
    assert len(body) > COPY_MAX

    def app(environ: Environ, start_response: Any) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        if streamed:
            return (body[start : start + 65536] for start in range(0, len(body), 65536))
        return [body]

    stdout, ended = run_through_a_slow_reader(app, sndbuf=16384, rcvbuf=None, read_size=4096)
    head, _, received = stdout.partition(b"\r\n\r\n")
    assert (f"Content-Length: {len(body)}".encode() in head) is not streamed
    assert received == body
    assert (ended.app_status, ended.protocol_status) == (0, 0)


@pytest.mark.parametrize("chunks", [1, 40], ids=["one-piece", "written-in-40"])
def test_a_small_response_sent_in_pieces_arrives_whole_through_a_tiny_socket_buffer(
    chunks: int,
) -> None:
    """A response under COPY_MAX goes out as one joined buffer with send(); when the
    socket takes only part of it (or nothing, EAGAIN), the rest must follow from the right
    byte. Through ``write()`` each chunk takes that path on its own."""
    body = bytes(range(251)) * 30  # 7,530 bytes: one send(), bigger than the buffer
    assert len(body) < COPY_MAX

    def app(environ: Environ, start_response: Any) -> Iterable[bytes]:
        write = start_response("200 OK", [("Content-Type", "application/octet-stream")])
        if chunks == 1:
            return [body]
        size = len(body) // chunks + 1
        for start in range(0, len(body), size):
            write(body[start : start + size])
        return []

    # 1 KiB: the kernel's minimum
    stdout, ended = run_through_a_slow_reader(app, sndbuf=1024, rcvbuf=1024, read_size=512)
    assert stdout.partition(b"\r\n\r\n")[2] == body
    assert (ended.app_status, ended.protocol_status) == (0, 0)


def test_access_log_has_one_documented_line_per_request(serve: Any, tmp_path: Path) -> None:
    log_path = tmp_path / "access.log"
    running = serve(echo_environ, access_log=str(log_path))
    client = running.client()
    client.request("GET", "/a b", query="x=1")
    client.request("POST", "/post", body=b"12345")
    running.stop()  # the lines are written when each request is over; stop waits for that
    lines = log_path.read_text().splitlines()
    assert len(lines) == 2
    # in the order the requests ended, which need not be the replies' (test_access_log.py)
    (get,) = [line for line in lines if '"GET ' in line]
    first = re.fullmatch(
        r'(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) 127\.0\.0\.1 "GET (\S+ ?\S*)" 200 (\d+) '
        r"([\d.]+)ms (\d+)",
        get,
    )
    assert first, get
    assert int(first.group(3)) > 0 and int(first.group(5)) == os.getpid()
    assert [line for line in lines if ' "POST /post" 200 ' in line], lines


def test_stopping_answers_a_request_sent_on_an_idle_keep_conn_connection(serve: Any) -> None:
    """nginx may take an idle keep-conn connection from its cache for its next request as
    the server begins to stop (a reload or --max-requests replaces the worker): that request
    is answered, and our FIN follows its END_REQUEST; it is never dropped (nginx: 502)."""
    entered, release = threading.Event(), threading.Event()

    def app(environ: Environ, start_response: Any) -> list[bytes]:
        if environ["PATH_INFO"] == "/slow":
            entered.set()
            release.wait(10)
        start_response("200 OK", [])
        return [b"done " + environ["PATH_INFO"].encode()]

    running = serve(app)
    idle = running.client(keep_conn=True)
    assert idle.request("GET", "/warm").body == b"done /warm"
    slow: list[Any] = []
    worker = threading.Thread(target=lambda: slow.append(running.client().request("GET", "/slow")))
    worker.start()
    assert entered.wait(10)
    with LogWaiter("finishing running requests") as draining:
        running.server.stop("test")
        assert draining.seen.wait(10)  # the server is draining now
    try:
        response = idle.request("GET", "/next")  # what nginx sends on its cached connection
    finally:
        release.set()
        worker.join(10)
    assert response.body == b"done /next"
    assert idle._socket().recv(10) == b""  # then our FIN
    assert slow[0].body == b"done /slow"


def test_a_connection_per_request_is_closed_as_soon_as_it_is_answered(serve: Any) -> None:
    """nginx without fastcgi_keep_conn: nothing more comes after the request, so the server
    closes at once instead of waiting for the web server's EOF (no lingering close)."""
    running = serve(hello)
    sock = socket.socket(socket.AF_UNIX)
    sock.connect(running.path)
    client = ClientConnection()
    sock.sendall(client.start_request(1, {b"PATH_INFO": b"/"}) + client.end_stdin(1))
    reply = b""
    while chunk := sock.recv(65536):
        reply += chunk
    assert [type(event).__name__ for event in client.receive_data(reply)][-1] == "RequestEnded"
    # our side is still open: the server let go of the connection by itself
    wait_until(
        lambda: not running.server.channels and not running.server.direct,
        what="the server to close the connection",
    )
    sock.close()


@pytest.mark.parametrize(
    ("keep_conn", "sent"),
    [
        (False, "whole before the accept"),
        (True, "whole before the accept"),
        (False, "body after the first read"),
        (False, "whole after the accept"),
        (True, "whole after the accept"),
    ],
)
def test_only_a_request_that_arrives_whole_takes_the_direct_lane(
    tmp_path: Path, keep_conn: bool, sent: str
) -> None:
    """nginx's default (a connection per request, sent whole) runs without a Channel, also
    when the server accepted the connection before its bytes came (a worker woken by the
    connect); so does a keep-conn request on a new connection (nginx's keepalive cache
    empty), whose connection then stays open for the next request, on a Channel. Every
    request gets the same answer whichever way it went."""
    lanes: list[tuple[int, int]] = []

    def app(environ: Environ, start_response: Any) -> list[bytes]:
        lanes.append((len(server.direct), len(server.channels)))
        body = environ["wsgi.input"].read()
        environ["wsgi.errors"].write("note\n")
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"got ", body]

    path = str(tmp_path / "s.sock")
    server = Server(app, ServerSettings(binds=(UnixAddress(path),), handle_signals=False))
    client = ClientConnection()
    head = client.start_request(
        1, {b"REQUEST_METHOD": b"POST", b"CONTENT_LENGTH": b"4"}, keep_conn=keep_conn
    )
    tail = client.send_stdin(1, b"data") + client.end_stdin(1)
    thread = threading.Thread(target=server.serve, daemon=True)
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(10)
        # Connected (and what is sent before the accept sent) before the server serves, so
        # that its first read of the connection has it, and nothing else decides the lane.
        sock.connect(path)
        if sent == "whole before the accept":
            sock.sendall(head + tail)
        elif sent == "body after the first read":
            sock.sendall(head)
        thread.start()
        if sent != "whole before the accept":
            wait_until(lambda: server.connection_count() > 0, what="the accept, its first read")
            sock.sendall(tail if sent == "body after the first read" else head + tail)
        events: list[Any] = []
        while not events or not isinstance(events[-1], RequestEnded):
            chunk = sock.recv(65536)
            assert chunk, "closed before END_REQUEST"
            events += client.receive_data(chunk)
        if not keep_conn:
            assert sock.recv(65536) == b""  # closed right behind END_REQUEST
        else:  # kept: the next request on it is answered too
            sock.sendall(
                client.start_request(
                    1, {b"REQUEST_METHOD": b"POST", b"CONTENT_LENGTH": b"4"}, keep_conn=True
                )
                + client.send_stdin(1, b"data")
                + client.end_stdin(1)
            )
            more: list[Any] = []
            while not more or not isinstance(more[-1], RequestEnded):
                chunk = sock.recv(65536)
                assert chunk, "closed before the second END_REQUEST"
                more += client.receive_data(chunk)
            assert b"".join(e.data for e in more if isinstance(e, StdoutData)).endswith(b"got data")
    server.stop("test over")
    thread.join(10)
    assert not thread.is_alive()
    direct = sent != "body after the first read"
    assert lanes[0] == ((1, 0) if direct else (0, 1))
    assert lanes[1:] == ([(0, 1)] if keep_conn else [])  # the kept connection: a Channel
    stdout = b"".join(e.data for e in events if isinstance(e, StdoutData))
    assert stdout.endswith(b"\r\n\r\ngot data")
    assert b"".join(e.data for e in events if isinstance(e, StderrData)) == b"note\n"
    ended = events[-1]
    assert (ended.app_status, ended.protocol_status) == (0, ProtocolStatus.REQUEST_COMPLETE)


def test_a_stop_past_its_grace_period_cuts_off_a_request_still_running(serve: Any) -> None:
    app, entered, release = holding_app(b"too late")
    running = serve(app, graceful_timeout=0.2)
    client = ClientConnection()
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(10)
        sock.connect(running.path)
        sock.sendall(client.start_request(1, {}) + client.end_stdin(1))
        assert entered.wait(10)
        with LogWaiter("went away") as gone:
            running.server.stop("test")
            running.thread.join(10)
            assert not running.thread.is_alive(), "serve() waited past its grace period"
            # The web server sees the connection end without END_REQUEST: a cut response.
            assert sock.recv(65536) == b""
            release.set()
            assert gone.seen.wait(10)  # and the app's late answer is dropped, with a log line
    # and the request's thread lets go of the connection (nothing closes under a later test)
    wait_until(
        lambda: not running.server.direct and not running.server.channels,
        what="the request to close its connection",
    )


@pytest.mark.parametrize("backend", ["epoll", "poll"])
def test_poller_reports_readable_writable_and_forgets_closed_sockets(backend: str) -> None:
    """The loop's poller, with epoll (Linux) and with poll(2) (what other systems get)."""
    from fcgikit.server.poller import READABLE, WRITABLE, Poller

    poller = Poller(epoll=backend == "epoll")
    ours, theirs = socket.socketpair()
    target = object()
    poller.register(ours.fileno(), READABLE, target)
    assert poller.wait(0) == []
    theirs.send(b"x")
    assert poller.wait(1.0) == [(target, READABLE)]
    poller.modify(ours.fileno(), READABLE | WRITABLE)
    assert poller.wait(1.0) == [(target, READABLE | WRITABLE)]
    theirs.close()  # a hang-up wakes both the read and the write side
    assert poller.wait(1.0)[0][1] & READABLE
    fd = ours.fileno()
    ours.close()
    poller.unregister(fd)  # closed already: forgotten, no error
    poller.unregister(fd)
    assert poller.wait(0) == []
    poller.close()


@pytest.mark.parametrize("backend", ["epoll", "poll"])
def test_poller_lets_a_closing_socket_leave_with_its_close(backend: str) -> None:
    """unregister(closing=True) skips epoll_ctl: the close takes the socket out of the epoll
    set. Its fd number, reused at once by the next connection, must register afresh."""
    from fcgikit.server.poller import READABLE, Poller

    poller = Poller(epoll=backend == "epoll")
    ours, theirs = socket.socketpair()
    theirs.send(b"unread")  # left pending: a stale registration would report it
    fd = ours.fileno()
    poller.register(fd, READABLE, "old connection")
    poller.unregister(fd, closing=True)
    ours.close()
    theirs.close()
    if backend == "poll":
        assert poller._poll is not None
        assert poller._poll.poll(0) == []  # poll(2) keeps closed fds: it was removed anyway
    new_ours, new_theirs = socket.socketpair()
    if new_ours.fileno() != fd:  # the next connection gets the same number, as it would
        os.dup2(new_ours.fileno(), fd)
        new_ours.close()
        new_ours = socket.socket(fileno=fd)
    try:
        poller.register(fd, READABLE, "new connection")  # no FileExistsError
        assert poller.wait(0) == []
        new_theirs.send(b"request")
        assert poller.wait(1.0) == [("new connection", READABLE)]
    finally:
        poller.unregister(fd, closing=True)
        new_ours.close()
        new_theirs.close()
        poller.close()


def test_an_app_reading_a_body_as_it_arrives_gets_each_piece_before_the_rest_is_sent(
    serve: Any,
) -> None:
    """A piece of a streamed body the web server sends, then waits on an answer to, reaches
    the app before the rest comes, and the app's answer reaches the web server: whatever
    batches the hand-off of a body to the app's thread (benchmarks/RESULTS.md, "Upload,
    round 4") must keep that."""

    def app(environ: Environ, start_response: Any) -> Iterator[bytes]:
        stream = environ["wsgi.input"]
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield stream.read(5)
        yield stream.read(5)

    running = serve(app)
    STDIN = 5
    pairs = {b"REQUEST_METHOD": b"POST", b"CONTENT_LENGTH": b"10"}
    with peer(running) as web_server:
        web_server.send(begin(1) + params(1, pairs) + pack_records(STDIN, 1, b"hello"))
        web_server.read(lambda reply: reply.stdout(1).endswith(b"hello"))
        web_server.send(pack_records(STDIN, 1, b"world"))  # the app waits for it
        web_server.read(lambda reply: reply.stdout(1).endswith(b"world"))
        web_server.send(pack_header(STDIN, 1, 0))
        reply = web_server.read_end(1)
    assert reply.stdout(1).partition(b"\r\n\r\n")[2] == b"helloworld"
