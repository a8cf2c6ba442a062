"""What a request's WSGI side does with what the app and the web server hand it, through the
live server on a unix socket: a BaseException from the app (``sys.exit()``,
KeyboardInterrupt, a broken iterable's GeneratorExit), params with the names only the server
and the middleware may set (``wsgi.*``, ``fcgikit.*``), and the CGI variables the server
fills in because the web server did not send them."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import pytest

from fcgikit.errors import RemoteProtocolError
from fcgikit.middleware import Normalize, ProxyFix
from fcgikit.protocol import ProtocolStatus

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


# --- the keys only the server and the middleware set ------------------------------------

FORGED = {
    "fcgikit.duplicate_params": "HTTP_X_FORWARDED_FOR",
    "FCGIKIT.orig": "{}",
    "fcgikit.normalize": "explicit mount",
    "Fcgikit.Missing_Params": "PATH_INFO",
    "wsgi.custom": "x",
    "WSGI.input": "not the body",
    "Wsgi.Url_Scheme": "https",
}


def show_environ(environ: Environ, start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    lines = [f"{key}={environ[key]!r}" for key in sorted(environ) if "." in key]
    lines.append(f"input={type(environ['wsgi.input']).__name__}")
    lines.append(f"REMOTE_ADDR={environ['REMOTE_ADDR']}")
    return ["\n".join(lines).encode()]


def test_params_named_like_the_servers_own_keys_are_dropped(
    serve: Any, caplog: pytest.LogCaptureFixture
) -> None:
    running = serve(show_environ)
    with caplog.at_level(logging.DEBUG, logger="fcgikit.server"):
        response = running.client().request(
            "POST", "/", body=b"the body", params={**FORGED, "HTTP_X_FINE": "kept"}
        )
    text = response.body.decode()
    for name in FORGED:
        assert f"\n{name}=" not in f"\n{text}", text
    assert "wsgi.url_scheme='http'" in text and "input=RequestBody" in text
    (line,) = [r.getMessage() for r in caplog.records if "reserved" in r.getMessage()]
    assert "dropped 7 param(s)" in line


def test_a_forged_duplicate_params_key_cannot_make_proxy_fix_refuse(serve: Any) -> None:
    running = serve(ProxyFix(show_environ, x_for=1))
    response = running.client().request(
        "GET",
        "/",
        headers={"X-Forwarded-For": "203.0.113.5"},
        params={"fcgikit.duplicate_params": "HTTP_X_FORWARDED_FOR"},
    )
    assert response.status == 200, response.body
    assert "REMOTE_ADDR=203.0.113.5" in response.body.decode()


# --- what the web server did not send ---------------------------------------------------

#: what nginx's stock fastcgi_params send for GET /blog/post%201?x=1: no PATH_INFO, the whole
#: path in SCRIPT_NAME
STOCK_NGINX = [
    (b"QUERY_STRING", b"x=1"),
    (b"REQUEST_METHOD", b"GET"),
    (b"SCRIPT_NAME", b"/blog/post 1"),
    (b"REQUEST_URI", b"/blog/post%201?x=1"),
    (b"DOCUMENT_URI", b"/blog/post 1"),
    (b"SERVER_PROTOCOL", b"HTTP/1.1"),
    (b"SERVER_NAME", b"example.org"),
    (b"SERVER_PORT", b"443"),
]


def show_split(environ: Environ, start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    missing = sorted(environ.get("fcgikit.missing_params", ()))
    text = f"{environ['SCRIPT_NAME']}|{environ['PATH_INFO']}|{missing}"
    return [text.encode("latin-1")]


def test_the_cgi_variables_filled_in_are_named_in_missing_params(serve: Any) -> None:
    running = serve(show_split)
    sent = running.client().request("GET", "/a", params={"SCRIPT_NAME": "/s"})
    assert sent.body == b"/s|/a|[]"
    stock = running.client().request(raw_params=STOCK_NGINX)
    assert stock.body == b"/blog/post 1||['PATH_INFO']"
    bare = running.client().request(raw_params=[(b"REQUEST_URI", b"/")])
    assert bare.body.endswith(
        b"||['PATH_INFO', 'QUERY_STRING', 'REQUEST_METHOD', 'SCRIPT_NAME', 'SERVER_NAME', "
        b"'SERVER_PORT', 'SERVER_PROTOCOL']"
    )


def test_normalize_without_a_mount_splits_nginx_stock_params_right(serve: Any) -> None:
    running = serve(Normalize(show_split))
    response = running.client().request(raw_params=STOCK_NGINX)
    assert response.body == b"|/blog/post 1|[]"
