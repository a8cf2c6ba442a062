"""Normalize's detection rules, one environ at a time (the captures cover the real servers)."""

from __future__ import annotations

from typing import Any

import pytest

from fcgikit.middleware import Normalize

from .helpers import ABSENT, Recorder, call, environ

DUP_SN = {"fcgikit.duplicate_params": frozenset({"SCRIPT_NAME"})}


def normalized(**env: Any) -> tuple[str, tuple[str, str], str | None]:
    app = Recorder()
    status, _ = call(Normalize(app), environ(**env))
    if app.environ is None:
        return status, ("", ""), None
    return status, app.split, app.environ["fcgikit.normalize"]


@pytest.mark.parametrize(
    ("env", "split", "rule"),
    [
        pytest.param(
            {"SCRIPT_NAME": "", "PATH_INFO": "/a", "REQUEST_URI": "/a", **DUP_SN},
            ("", "/a"),
            "duplicate SCRIPT_NAME",
            id="nginx recipe at the root",
        ),
        pytest.param(
            {
                "SCRIPT_NAME": "/blog/index.py",
                "PATH_INFO": "/post/1",
                "SCRIPT_FILENAME": "/srv/www/blog/index.py",
                "REQUEST_URI": "/blog/post/1",
            },
            ("/blog", "/post/1"),
            "script file rewrite",
            id=".htaccess in a subdirectory",
        ),
        pytest.param(
            {
                "SCRIPT_NAME": "/blog/app.fcgi",
                "PATH_INFO": "/post/1",
                "SCRIPT_FILENAME": "/srv/www/blog/app.fcgi",
                "REQUEST_URI": "/blog/app.fcgi/post/1",
            },
            ("/blog/app.fcgi", "/post/1"),
            "server split",
            id="script asked for directly: its name stays in URLs",
        ),
        pytest.param(
            {
                "SCRIPT_NAME": "/p/a b",
                "PATH_INFO": ABSENT,
                "REQUEST_URI": "/p/a%20b",
                "SCRIPT_FILENAME": "proxy:unix:/run/app.sock|fcgi://localhost/a%20b",
            },
            ("/p", "/a b"),
            "mod_proxy_fcgi",
            id="ProxyPass to a unix socket",
        ),
        pytest.param(
            {
                "SCRIPT_NAME": "/p/x",
                "PATH_INFO": ABSENT,
                "REQUEST_URI": "/p//x",
                "SCRIPT_FILENAME": "//x",
            },
            ("/p", "/x"),
            "mod_proxy_fcgi",
            id="GENERIC backend in a Location",
        ),
        pytest.param(
            {
                "SCRIPT_NAME": "/p",
                "PATH_INFO": "/foo",
                "REQUEST_URI": "/p/foo",
                "SCRIPT_FILENAME": "proxy:fcgi://localhost/srv/www/p",
            },
            ("/p", "/foo"),
            "server split",
            id="SetHandler: the tail is a file path",
        ),
        pytest.param(
            {
                "SCRIPT_NAME": "/x",
                "PATH_INFO": ABSENT,
                "REQUEST_URI": "/x",
                "SCRIPT_FILENAME": "proxy:fcgi://localhost/x%00",
            },
            ("/x", ""),
            "server split",
            id="unreadable proxy tail",
        ),
        pytest.param(
            {
                "SCRIPT_NAME": "/a/b",
                "PATH_INFO": ABSENT,
                "DOCUMENT_URI": "/a/b",
                "REQUEST_URI": ABSENT,
            },
            ("", "/a/b"),
            "no PATH_INFO at all",
            id="nginx stock params, no REQUEST_URI",
        ),
        pytest.param(
            {
                "SCRIPT_NAME": "/a/b",
                "PATH_INFO": "",
                "DOCUMENT_URI": "/a/b",
                "REQUEST_URI": "/a/b?c",
                "fcgikit.missing_params": frozenset({"PATH_INFO"}),
            },
            ("", "/a/b"),
            "no PATH_INFO at all",
            id="nginx stock params under fcgikit's server, which put in PATH_INFO ''",
        ),
        pytest.param(
            {
                "SCRIPT_NAME": "/p/x",
                "PATH_INFO": "",
                "REQUEST_URI": "/p/x",
                "SCRIPT_FILENAME": "/x",
                "fcgikit.missing_params": frozenset({"PATH_INFO", "SERVER_NAME"}),
            },
            ("/p", "/x"),
            "mod_proxy_fcgi",
            id="GENERIC backend under fcgikit's server",
        ),
        pytest.param(
            {
                "SCRIPT_NAME": "/a/b",
                "PATH_INFO": "",
                "DOCUMENT_URI": "/a/b",
                "REQUEST_URI": "/a/b",
            },
            ("/a/b", ""),
            "server split",
            id="an empty PATH_INFO that was sent is not a missing one",
        ),
        pytest.param(
            {"SCRIPT_NAME": "", "PATH_INFO": "/x", "REQUEST_URI": "/p/x"},
            ("/p", "/x"),
            "prefix stripped",
            id="Caddy handle_path",
        ),
        pytest.param(
            {"SCRIPT_NAME": "/p", "PATH_INFO": "", "REQUEST_URI": "/p/x/y"},
            ("/p", "/x/y"),
            "server split",
            id="nginx try_files empties PATH_INFO",
        ),
        pytest.param(
            {"SCRIPT_NAME": "", "PATH_INFO": "/x/../admin", "REQUEST_URI": "/x/../admin"},
            ("", "/admin"),
            "server split",
            id="Caddy does not resolve dot-dot",
        ),
        pytest.param(
            {"SCRIPT_NAME": "/p", "PATH_INFO": "/x", "REQUEST_URI": "/x"},
            ("/p", "/x"),
            "none",
            id="lighttpd strip-request-uri: left alone",
        ),
        pytest.param(
            {"SCRIPT_NAME": "", "PATH_INFO": "/x", "REQUEST_URI": "/y"},
            ("", "/x"),
            "none",
            id="internal rewrite: left alone",
        ),
        pytest.param(
            {"SCRIPT_NAME": "relative", "PATH_INFO": "/x", "REQUEST_URI": "/relative/x", **DUP_SN},
            ("relative", "/x"),
            "none",
            id="unusable SCRIPT_NAME",
        ),
        pytest.param(
            {"SCRIPT_NAME": "/a", "PATH_INFO": "/x", "REQUEST_URI": ABSENT},
            ("/a", "/x"),
            "none",
            id="no REQUEST_URI, nothing to check",
        ),
        pytest.param(
            {
                "SCRIPT_NAME": "/yourapplication.fcgi",
                "PATH_INFO": "/a",
                "QUERY_STRING": "b",
                "SCRIPT_FILENAME": "/srv/www/yourapplication.fcgi",
                "REQUEST_URI": "/a%3Fb",
            },
            ("", "/a?b"),
            "script file rewrite",
            id="mod_rewrite cut PATH_INFO at %3F",
        ),
    ],
)
def test_rules(env: dict[str, Any], split: tuple[str, str], rule: str) -> None:
    status, got, fired = normalized(**env)
    assert (status, got, fired) == ("200 OK", split, rule)


@pytest.mark.parametrize(
    ("request_uri", "status"),
    [("/a%00", "400 Bad Request"), ("/a%2Fb", "404 Not Found")],
)
def test_bad_paths_are_refused_before_detection(request_uri: str, status: str) -> None:
    assert normalized(SCRIPT_NAME="", PATH_INFO="/a", REQUEST_URI=request_uri)[0] == status


def test_detected_mount_can_still_refuse_a_path() -> None:
    # The admin set SCRIPT_NAME to /p, but nginx's "location /p" also matched /pq.
    status, _, _ = normalized(SCRIPT_NAME="/p", PATH_INFO="q", REQUEST_URI="/pq", **DUP_SN)
    assert status == "404 Not Found"


def test_orig_says_a_filled_in_path_info_was_not_sent() -> None:
    app = Recorder()
    env = environ(
        SCRIPT_NAME="/a",
        PATH_INFO="",
        DOCUMENT_URI="/a",
        REQUEST_URI="/a",
        **{"fcgikit.missing_params": frozenset({"PATH_INFO", "SERVER_PORT"})},
    )
    call(Normalize(app), env)
    assert app.environ is not None
    assert app.environ["fcgikit.orig"] == {"SCRIPT_NAME": "/a", "PATH_INFO": None}
    # PATH_INFO is Normalize's now, no default of the server's any more
    assert app.environ["fcgikit.missing_params"] == {"SERVER_PORT"}


def test_explicit_mount() -> None:
    app = Recorder()
    env = environ(SCRIPT_NAME="/foo", PATH_INFO="/bar", REQUEST_URI="/foo/bar")
    call(Normalize(app, mount=""), env)
    assert app.split == ("", "/foo/bar")
    assert app.environ is not None
    assert app.environ["fcgikit.normalize"] == "explicit mount"


def test_explicit_mount_refuses_paths_outside() -> None:
    env = environ(REQUEST_URI="/elsewhere")
    assert call(Normalize(Recorder(), mount="/app"), env)[0] == "404 Not Found"


def test_options_are_checked() -> None:
    with pytest.raises(ValueError, match="encoded_slash"):
        Normalize(Recorder(), encoded_slash="no")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="mount"):
        Normalize(Recorder(), mount="app")
