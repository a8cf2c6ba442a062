from __future__ import annotations

import sys
from typing import Any

import pytest

from fcgikit.middleware import (
    HeaderFix,
    Normalize,
    ProxyFix,
    StdoutGuard,
    StdoutRestrictedError,
    wrap,
)

from .helpers import Recorder, call, environ


def layers(app: Any) -> list[type]:
    found = []
    while not isinstance(app, Recorder):
        found.append(type(app))
        app = app.app
    return found


def test_default_stack() -> None:
    assert layers(wrap(Recorder())) == [StdoutGuard, Normalize]


def test_full_stack_order() -> None:
    app = wrap(Recorder(), mount="/p", proxy=True, headers={"host": "X-FHOST"})
    assert layers(app) == [StdoutGuard, Normalize, ProxyFix, HeaderFix]


def test_nothing_but_the_path_fix() -> None:
    app = wrap(Recorder(), guard_stdout=False)
    assert layers(app) == [Normalize]


def test_stack_behaviour() -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        print("seen by", environ["REMOTE_ADDR"])
        start_response("200 OK", [])
        text = f"{environ['SCRIPT_NAME']}|{environ['PATH_INFO']}|{environ['HTTP_HOST']}"
        return [text.encode()]

    stack = wrap(app, mount="/p", proxy={"x_for": 1, "x_prefix": 1}, headers={"host": "X-FHOST"})
    env = environ(
        REQUEST_URI="/p/a/../b",
        HTTP_X_FORWARDED_FOR="203.0.113.9",
        HTTP_X_FORWARDED_PREFIX="/public",
        HTTP_X_FHOST="example.com",
    )
    assert call(stack, env) == ("200 OK", b"/public|/b|example.com")
    assert env["wsgi.errors"].getvalue() == "seen by 203.0.113.9\n"
    # Two layers changed SCRIPT_NAME; the original kept is what the server sent.
    assert env["fcgikit.orig"]["SCRIPT_NAME"] == ""


def test_strict_stdout() -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        sys.stdout.write("x")
        return []

    with pytest.raises(StdoutRestrictedError):
        call(wrap(app, mount="", strict_stdout=True), environ(REQUEST_URI="/"))


def test_encoded_slash_is_passed_on() -> None:
    app = Recorder()
    call(
        wrap(app, mount="", encoded_slash="decode", guard_stdout=False),
        environ(REQUEST_URI="/a%2Fb"),
    )
    assert app.split == ("", "/a/b")


@pytest.mark.parametrize(
    ("remote", "seen"),
    [
        pytest.param("10.9.8.7", "203.0.113.9", id="from the trusted network"),
        pytest.param("192.0.2.1", "192.0.2.1", id="from anywhere else"),
    ],
)
def test_proxy_takes_the_trusted_networks(remote: str, seen: str) -> None:
    app = Recorder()
    stack = wrap(app, mount="", proxy={"x_for": 1, "trusted": ["10.0.0.0/8", "fd00::/8"]})
    call(stack, environ(REQUEST_URI="/", REMOTE_ADDR=remote, HTTP_X_FORWARDED_FOR="203.0.113.9"))
    assert app.environ is not None and app.environ["REMOTE_ADDR"] == seen
