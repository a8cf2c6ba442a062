"""What a request's WSGI side does with what the app and the web server hand it, through the
live server on a unix socket: a BaseException from the app (``sys.exit()``,
KeyboardInterrupt, a broken iterable's GeneratorExit), an app that breaks a WSGI rule, and a
body that stops arriving. What the params become in the environ: test_wsgi_codec.py."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import pytest

from fcgikit.errors import RemoteProtocolError
from fcgikit.protocol import ProtocolStatus
from fcgikit.protocol.records import pack_header, pack_records
from tests.server.test_hostile import (
    ABORT,
    STDIN,
    Log,
    assert_settled,
    begin,
    params,
    peer,
    wait_until,
)

Environ = dict[str, Any]

#: long enough for any machine, short enough that a request left unanswered fails the test
#: rather than hang it
ANSWER_WITHIN = 10.0


def ok(environ: Environ, start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"still serving"]


class Closing:
    """A response iterable whose close() raises ``exc``."""

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc

    def __iter__(self) -> Iterator[bytes]:
        yield b"the whole body"

    def close(self) -> None:
        raise self.exc


class Broken:
    """An iterable whose iterator raises GeneratorExit, as a generator misused can."""

    def __iter__(self) -> Broken:
        return self

    def __next__(self) -> bytes:
        raise GeneratorExit


def exits(environ: Environ, start_response: Any) -> Iterable[bytes]:
    """``/<where>``: the app leaves with a BaseException from its call, its iteration (before
    or after the headers went out) or its close()."""
    where = environ["PATH_INFO"]
    if where == "/ok":
        return ok(environ, start_response)
    if where == "/call-exit":
        sys.exit(3)
    if where == "/call-interrupt":
        raise KeyboardInterrupt
    start_response("200 OK", [("Content-Type", "text/plain")])
    if where == "/iterate-broken":
        return Broken()
    if where == "/close-exit":
        return Closing(SystemExit(0))

    def body() -> Iterator[bytes]:
        if where == "/iterate-after-headers":
            yield b"the first part"
        raise SystemExit("from the body")

    return body()


BEFORE_HEADERS = [
    pytest.param("/call-exit", "SystemExit", id="sys.exit() in the call"),
    pytest.param("/call-interrupt", "KeyboardInterrupt", id="KeyboardInterrupt in the call"),
    pytest.param("/iterate-exit", "SystemExit", id="SystemExit from the body"),
    pytest.param("/iterate-broken", "GeneratorExit", id="a broken iterable"),
]
KEEP_CONN = [pytest.param(False, id="a connection per request"), pytest.param(True, id="kept")]


def error_lines(caplog: pytest.LogCaptureFixture, path: str) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.levelno >= logging.WARNING and path in record.getMessage()
    ]


@pytest.mark.parametrize("keep_conn", KEEP_CONN)
@pytest.mark.parametrize(("path", "name"), BEFORE_HEADERS)
def test_a_base_exception_from_the_app_is_a_500_and_the_server_serves_on(
    serve: Any, caplog: pytest.LogCaptureFixture, path: str, name: str, keep_conn: bool
) -> None:
    running = serve(exits)
    client = running.client(keep_conn=keep_conn, timeout=ANSWER_WITHIN)
    with caplog.at_level(logging.INFO, logger="fcgikit.server"):
        response = client.request("GET", path)
    assert response.status == 500
    assert response.protocol_status == ProtocolStatus.REQUEST_COMPLETE
    (line,) = error_lines(caplog, path)
    assert name in line
    # The same connection when it is kept, and the server as a whole: still serving.
    assert client.request("GET", "/ok").body == b"still serving"
    assert running.thread.is_alive()


@pytest.mark.parametrize("keep_conn", KEEP_CONN)
def test_a_base_exception_after_the_headers_cuts_the_connection_before_end_request(
    serve: Any, caplog: pytest.LogCaptureFixture, keep_conn: bool
) -> None:
    # Too late for a 500: only a connection closed before END_REQUEST makes nginx cut the
    # client off (see test_server's RuntimeError twin of this test).
    running = serve(exits)
    with (
        caplog.at_level(logging.INFO, logger="fcgikit.server"),
        pytest.raises(RemoteProtocolError, match="without ending request"),
    ):
        running.client(keep_conn=keep_conn, timeout=ANSWER_WITHIN).request(
            "GET", "/iterate-after-headers"
        )
    (line,) = error_lines(caplog, "/iterate-after-headers")
    assert "SystemExit" in line
    assert running.client(keep_conn=keep_conn).request("GET", "/ok").status == 200


def test_a_base_exception_from_close_is_logged_and_the_response_goes_out(
    serve: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # close() runs once the body is produced: the response is whole, as for any exception.
    running = serve(exits)
    with caplog.at_level(logging.INFO, logger="fcgikit.server"):
        response = running.client(keep_conn=True, timeout=ANSWER_WITHIN).request(
            "GET", "/close-exit"
        )
    assert (response.status, response.body) == (200, b"the whole body")
    (line,) = error_lines(caplog, "/close-exit")
    assert "close() raised" in line
    assert running.client().request("GET", "/ok").status == 200


def test_a_debug_page_shows_the_exit(serve: Any) -> None:
    response = serve(exits, debug=True).client(timeout=ANSWER_WITHIN).request("GET", "/call-exit")
    assert response.status == 500
    assert b"SystemExit: 3" in response.body


class Unreadable(Mapping[str, object]):
    """A base environ that cannot be read: a fault of the server's side, not the app's."""

    def __getitem__(self, key: str) -> object:
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        raise RuntimeError("cannot build the environ")

    def __len__(self) -> int:
        return 1


def test_a_fault_of_the_server_closes_the_connection_instead_of_leaving_it_waiting(
    serve: Any, caplog: pytest.LogCaptureFixture
) -> None:
    running = serve(ok, base_environ=Unreadable())
    with (
        caplog.at_level(logging.INFO, logger="fcgikit.server"),
        pytest.raises(RemoteProtocolError, match="without ending request"),
    ):
        running.client(keep_conn=True, timeout=ANSWER_WITHIN).request("GET", "/fault")
    (line,) = error_lines(caplog, "/fault")
    assert "unexpected error" in line


# --- an app that breaks a WSGI rule ----------------------------------------------------------


def rule_breaker(environ: Environ, start_response: Any) -> Iterable[Any]:
    """``/<rule>``: an app that breaks that rule of PEP 3333 (before any byte goes out)."""
    rule = environ["PATH_INFO"]
    if rule == "/no-start-response":
        return [b"nobody called start_response"]
    if rule == "/start-response-twice":
        start_response("200 OK", [])
        start_response("200 OK", [])
        return [b"twice"]
    write = start_response("200 OK", [("Content-Length", "4")])
    if rule == "/str-in-a-list":
        return ["text"]
    if rule == "/str-to-write":
        write("text")
        return []
    assert rule == "/str-as-the-whole-body"
    return iter(["text"])  # as long as the Content-Length says: the whole body


@pytest.mark.parametrize(
    ("rule", "error"),
    [
        ("/no-start-response", "returned without calling start_response()"),
        ("/start-response-twice", "start_response called a second time without exc_info"),
        # (compiled, the server's own type checks say it in their words: "bytes object
        # expected; got str")
        ("/str-in-a-list", "TypeError"),
        ("/str-to-write", "TypeError"),
        ("/str-as-the-whole-body", "TypeError"),
    ],
)
def test_an_app_that_breaks_a_wsgi_rule_gets_a_500_that_names_it(
    serve: Any, caplog: pytest.LogCaptureFixture, rule: str, error: str
) -> None:
    running = serve(rule_breaker)
    with caplog.at_level(logging.INFO, logger="fcgikit.server"):
        response = running.client(keep_conn=True, timeout=ANSWER_WITHIN).request("GET", rule)
    assert response.status == 500
    (line,) = error_lines(caplog, rule)
    assert error in line
    if error == "TypeError":
        assert "bytes" in line and "str" in line


def late_error(environ: Environ, start_response: Any) -> Iterable[bytes]:
    """``/late``: an error after the first part went out, reported to start_response with
    exc_info."""
    if environ["PATH_INFO"] != "/late":
        return ok(environ, start_response)
    start_response("200 OK", [("Content-Type", "text/plain")])

    def body() -> Iterator[bytes]:
        yield b"the first part"
        try:
            raise ValueError("the database went away")
        except ValueError:
            start_response("500 Internal Server Error", [], sys.exc_info())
        yield b"never sent"

    return body()


def test_exc_info_after_the_headers_went_out_cuts_the_response(
    serve: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # PEP 3333: start_response re-raises the error once the headers are sent; too late for
    # a 500, the response is cut (the connection closes before END_REQUEST).
    running = serve(late_error)
    with (
        caplog.at_level(logging.INFO, logger="fcgikit.server"),
        pytest.raises(RemoteProtocolError, match="without ending request"),
    ):
        running.client(keep_conn=True, timeout=ANSWER_WITHIN).request("GET", "/late")
    (line,) = error_lines(caplog, "/late")
    assert "ValueError: the database went away" in line
    assert running.client().request("GET", "/ok").status == 200


# --- a body that stops arriving --------------------------------------------------------------


def reads_its_body(environ: Environ, start_response: Any) -> Iterable[bytes]:
    """``/call``: reads the body in the call; ``/iterate``: in its response, before its first
    part; ``/after-first-part``: after it."""
    where = environ["PATH_INFO"]
    body = environ["wsgi.input"]
    if where == "/call":
        body.read()
    start_response("200 OK", [("Content-Type", "text/plain")])

    def response() -> Iterator[bytes]:
        if where == "/after-first-part":
            yield b"the first part"
        yield body.read()

    return response()


STALLS = [
    pytest.param("/call", 408, id="read by the app's call"),
    pytest.param("/iterate", 408, id="read by its response"),
    pytest.param("/after-first-part", None, id="read after its first part went out"),
]


@pytest.mark.parametrize(("where", "status"), STALLS)
def test_a_body_that_stops_arriving_is_answered_408_or_cut_and_the_connection_closed(
    serve: Any, caplog: pytest.LogCaptureFixture, where: str, status: int | None
) -> None:
    running = serve(reads_its_body, body_timeout=0.2)
    head = begin(1, keep_conn=True) + params(
        1, {b"PATH_INFO": where.encode(), b"CONTENT_LENGTH": b"1000"}
    )
    with caplog.at_level(logging.INFO, logger="fcgikit.server"), peer(running) as p:
        p.send(head + pack_records(STDIN, 1, b"only ten b"))
        reply = p.read_until_closed()
    (line,) = error_lines(caplog, where)
    assert "answering 408, closing the connection" in line
    assert reply.closed
    answered = reply.stdout(1)
    if status is None:  # too late for a 408: the request ends with what went out
        assert answered.endswith(b"\r\n\r\nthe first part")
        assert reply.ends(1) == [ProtocolStatus.REQUEST_COMPLETE]
    else:
        assert answered.startswith(b"Status: 408 Request Timeout\r\n")


def test_an_abort_while_the_response_reads_the_body_is_quiet(
    serve: Any, caplog: pytest.LogCaptureFixture
) -> None:
    log = Log(caplog)
    running = serve(reads_its_body)
    head = begin(1, keep_conn=True) + params(
        1, {b"PATH_INFO": b"/iterate", b"CONTENT_LENGTH": b"1000"}
    )
    with peer(running) as p:
        p.send(head + pack_records(STDIN, 1, b"only ten b"))
        wait_until(lambda: running.server.pool.running == 1, what="the app to read its body")
        p.send(pack_header(ABORT, 1, 0))
        assert p.read_end(1).ends(1) == [ProtocolStatus.REQUEST_COMPLETE]
    log.wait_for_one("aborted by the web server")
    assert not [r for r in log.new() if r.levelno >= logging.WARNING]
    assert_settled(running)
