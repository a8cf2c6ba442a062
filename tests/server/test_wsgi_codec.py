"""What the params become in the environ (fcgikit/server/wsgi_codec.py), through the live
server on a unix socket: params with the names only the server and the middleware may set
(``wsgi.*``, ``fcgikit.*``) are dropped, and the CGI variables the web server did not send are
filled in and named. The C lane against its Python: test_speedups_wsgi_codec.py."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from fcgikit.middleware import Normalize, ProxyFix
from fcgikit.server import wsgi_codec
from fcgikit.server.wsgi_codec import (
    DROPPED_PARAMS,
    InvalidResponse,
    encode_head_py,
    environ_from_params_py,
    url_scheme,
)
from tests.server.test_wsgi import Environ

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


def test_a_param_name_seen_before_goes_in_or_is_dropped_as_the_first_time() -> None:
    # The Python decodes a name it has seen before from memory: the same environ, in the
    # same order, the dropped and the reserved names dropped again.
    params = {
        b"PATH_INFO": b"/caf\xe9",
        b"HTTP_PROXY": b"http://evil",
        b"wsgi.input": b"forged",
        b"HTTP_X_NAME": b"\xe9t\xe9",
    }
    expected = {"PATH_INFO": "/café", "HTTP_X_NAME": "été"}
    for _ in range(3):
        environ = environ_from_params_py({}, dict(params), DROPPED_PARAMS)
        assert environ == expected
        assert list(environ) == list(expected)
    # every name known, one of them dropped (the fast path looks for it in the result)
    del params[b"wsgi.input"]
    for _ in range(2):
        environ = environ_from_params_py({}, dict(params), DROPPED_PARAMS)
        assert list(environ.items()) == list(expected.items())
    plain = {b"PATH_INFO": b"/", b"HTTP_X_NAME": b"x"}
    assert environ_from_params_py({"base": 1}, plain, DROPPED_PARAMS) == {
        "base": 1,
        "PATH_INFO": "/",
        "HTTP_X_NAME": "x",
    }


# --- the head ----------------------------------------------------------------------------


class Posing(str):
    """Valid text that hashes as ``posing_as`` and says it equals any str: a table of the
    checked ones that kept it would take an invalid ``posing_as`` for it."""

    posing_as = ""

    def __eq__(self, other: object) -> bool:
        return True

    def __hash__(self) -> int:
        return hash(self.posing_as)


def test_a_status_or_header_name_seen_before_is_checked_as_the_first_time() -> None:
    # The Python remembers the status lines and the header names that passed their pattern:
    # each is judged by its own pattern, a valid name is no valid status, and what was
    # refused once is refused again.
    headers = [("Content-Type", "text/plain"), ("X-Count", "3")]
    for _ in range(3):
        assert encode_head_py("200 OK", headers, None) == (
            b"Status: 200 OK\r\nContent-Type: text/plain\r\nX-Count: 3\r\n\r\n"
        )
    status_posing = Posing("201 Created")
    status_posing.posing_as = "2xx"
    name_posing = Posing("X-Fine")
    name_posing.posing_as = "X Y"
    assert encode_head_py(status_posing, [(name_posing, "v")], None)
    for status in ("Content-Type", "X-Count", "2000 OK", "200 O\nK", "2xx"):
        for _ in range(2):
            with pytest.raises(InvalidResponse, match="bad status line"):
                encode_head_py(status, [], None)
    assert encode_head_py("404", [("404", "x")], 0).startswith(b"Status: 404\r\n404: x\r\n")
    for name in ("200 OK", "Bad Name", "X-Count:", "X Y"):
        for _ in range(2):
            with pytest.raises(InvalidResponse, match="bad header name"):
                encode_head_py("200 OK", [(name, "v")], None)
    # a value's check: printable ones, and those the pattern takes (HTAB, latin-1's C1)
    assert encode_head_py("200 OK", [("X-A", "a\tb\x85")], None).endswith(b"X-A: a\tb\x85\r\n\r\n")
    for value in ("a\r\nX-Evil: 1", "a\nb", "\x00", "\x7f"):
        with pytest.raises(InvalidResponse, match="bad value"):
            encode_head_py("200 OK", [("X-A", value)], None)


class Loud(str):
    """A str subclass whose f-string is not its text (as test_speedups_wsgi_codec's Shouting)."""

    def __str__(self) -> str:
        return self.upper()


def test_a_head_made_before_is_the_head_the_checks_make() -> None:
    # The Python keeps the heads it made: the same head again, a head with one header changed
    # is made anew, more heads than the table holds are all still right, and what was refused
    # once is refused again (never stored).
    headers = [("Content-Type", "text/plain"), ("Content-Length", "5")]
    first = encode_head_py("200 OK", headers, None)
    assert first == b"Status: 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\n"
    assert encode_head_py("200 OK", list(headers), None) == first
    assert encode_head_py("200 OK", [("Content-Type", "text/plain")], 7).endswith(
        b"Content-Length: 7\r\n\r\n"
    )
    assert encode_head_py("200 OK", [("Content-Type", "text/plain")], 8).endswith(
        b"Content-Length: 8\r\n\r\n"
    )
    for n in range(wsgi_codec.HEADS_CACHED + 3):
        assert encode_head_py("200 OK", [("X-N", str(n))], None) == (
            f"Status: 200 OK\r\nX-N: {n}\r\n\r\n".encode()
        )
    assert encode_head_py("200 OK", headers, None) == first
    for _ in range(2):
        with pytest.raises(InvalidResponse, match="bad value"):
            encode_head_py("200 OK", [("X-A", "a\nb")], None)
        with pytest.raises(InvalidResponse, match="must be a"):
            encode_head_py("200 OK", [["X-A", "b"]], None)
    # A str subclass's head (its f-string, interpreted; its text, compiled) is not kept for
    # the plain text it equals.
    assert encode_head_py(Loud("200 ok"), [(Loud("x-a"), Loud("b"))], None)
    assert encode_head_py("200 ok", [("x-a", "b")], None) == b"Status: 200 ok\r\nx-a: b\r\n\r\n"
    assert encode_head_py("200 OK", [], True)  # a bool's head is not kept for 1's
    assert encode_head_py("200 OK", [], 1) == b"Status: 200 OK\r\nContent-Length: 1\r\n\r\n"


# --- wsgi.url_scheme ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sent", "scheme"),
    [
        ({}, "http"),
        ({"REQUEST_SCHEME": "http"}, "http"),
        ({"REQUEST_SCHEME": "https"}, "https"),
        ({"REQUEST_SCHEME": "HTTPS"}, "https"),
        ({"REQUEST_SCHEME": " https"}, "http"),
        ({"REQUEST_SCHEME": "ftp"}, "http"),
        ({"REQUEST_SCHEME": ""}, "http"),
        ({"REQUEST_SCHEME": None}, "http"),
        ({"HTTPS": "on", "REQUEST_SCHEME": "http"}, "https"),
        ({"HTTPS": "ON"}, "https"),
        ({"HTTPS": "1"}, "https"),
        ({"HTTPS": "yes"}, "https"),
        ({"HTTPS": "True"}, "https"),
        ({"HTTPS": 1}, "https"),
        ({"HTTPS": "", "REQUEST_SCHEME": "https"}, "https"),
        ({"HTTPS": "off", "REQUEST_SCHEME": "Https"}, "https"),
        ({"HTTPS": "off"}, "http"),
        ({"HTTPS": 0}, "http"),
    ],
)
def test_url_scheme_comes_from_https_then_request_scheme(
    sent: dict[str, object], scheme: str
) -> None:
    # HTTPS says https when it is on/1/yes/true in any case; else REQUEST_SCHEME, in any
    # case, when it is http or https; else http. The usual values take a shorter way there.
    assert url_scheme(sent) == scheme
