"""The status page: who may see it, and what it shows of the requests in flight."""

from __future__ import annotations

import json
from typing import Any

import pytest

from fcgikit.errors import ConfigError
from fcgikit.networks import TrustedNetworks
from fcgikit.server.scoreboard import Scoreboard, WorkerState
from fcgikit.server.settings import ServerSettings
from fcgikit.server.status import DIRECT_CLIENT_PARAM, StatusPage, parse_allow, render_text

#: --status-allow's default: nobody over HTTP
NOBODY = ServerSettings().status_allow


def page(allow: TrustedNetworks = NOBODY, **options: Any) -> StatusPage:
    board = Scoreboard(slots=1, threads=2)
    board.reset(0, generation=1)
    slot = board.slot(0)
    slot.set_pid(4242)
    slot.set_state(WorkerState.READY)
    slot.begin(0, "#7 GET /reset-password?token=s3cret&user=ann", 1)
    slot.begin(1, "#8 POST /upload", 1)
    return StatusPage(board, "/fcgikit-status", allow, **options)


def status_environ(remote: str = "127.0.0.1", **params: str) -> dict[str, Any]:
    return {
        "REMOTE_ADDR": remote,
        "SCRIPT_NAME": "",
        "PATH_INFO": "/fcgikit-status",
        "REQUEST_URI": "/fcgikit-status",
        **params,
    }


def body(status_page: StatusPage, query: str = "") -> str:
    answered: list[str] = []
    environ = {**status_environ(), "QUERY_STRING": query}
    chunks = status_page(environ, lambda status, headers, exc_info=None: answered.append(status))
    assert answered == ["200 OK"]
    return b"".join(chunks).decode()


@pytest.mark.parametrize("remote", ["127.0.0.1", "::1", "::ffff:127.0.0.1", "203.0.113.9", ""])
def test_no_http_client_is_trusted_by_default_loopback_included(remote: str) -> None:
    # Behind a TLS terminator or a tunnel on the same host, every client is 127.0.0.1.
    assert not page().wants(status_environ(remote))


def test_http_clients_in_status_allow_see_it() -> None:
    allowed = page(parse_allow(["192.0.2.10"]))
    assert allowed.wants(status_environ("192.0.2.10"))
    assert not allowed.wants(status_environ("127.0.0.1"))


@pytest.mark.parametrize(
    ("remote", "shown"),
    [
        pytest.param("192.0.2.10", True, id="the monitoring host"),
        pytest.param("10.20.30.40", True, id="in 10.0.0.0/8"),
        pytest.param("::ffff:10.0.0.1", True, id="v4-mapped, in 10.0.0.0/8"),
        pytest.param("fd00:1::9", True, id="in fd00::/8"),
        pytest.param("127.0.0.1", False, id="loopback, not listed"),
        pytest.param("192.0.2.11", False, id="next to the host"),
        pytest.param("unix:", False, id="a client on a unix socket"),
    ],
)
def test_status_allow_takes_networks(remote: str, shown: bool) -> None:
    allowed = page(parse_allow(["192.0.2.10", "10.0.0.0/8,fd00::/8"]))
    assert allowed.wants(status_environ(remote)) is shown


def test_a_bad_status_allow_entry_names_the_flag() -> None:
    with pytest.raises(ConfigError, match=r"--status-allow: 'localhost' is not an IP address"):
        parse_allow(["10.0.0.0/8", "localhost"])


@pytest.mark.parametrize("remote", ["127.0.0.1", "203.0.113.9", ""])
def test_a_direct_fastcgi_client_sees_it_whatever_its_remote_addr(remote: str) -> None:
    assert page().wants(status_environ(remote, **{DIRECT_CLIENT_PARAM: "fcgikit status"}))


def test_what_an_http_client_can_make_a_web_server_send_does_not_count() -> None:
    # Request headers arrive as HTTP_* params: the one name no web server makes of them.
    forged = status_environ(
        **{f"HTTP_{DIRECT_CLIENT_PARAM}": "1", f"HTTP_X_{DIRECT_CLIENT_PARAM}": "1"}
    )
    assert not page().wants(forged)
    assert not page().wants(status_environ(**{DIRECT_CLIENT_PARAM: ""}))


def test_other_paths_are_the_apps() -> None:
    environ = status_environ(**{DIRECT_CLIENT_PARAM: "fcgikit status"}, PATH_INFO="/other")
    environ["REQUEST_URI"] = "/other"
    assert not page().wants(environ)


def test_query_strings_are_not_shown_by_default() -> None:
    text = body(page())
    assert "#7 GET /reset-password (" in text and "#8 POST /upload (" in text
    assert "s3cret" not in text and "token" not in text
    as_json = json.loads(body(page(), "json"))
    shown = [r["request"] for r in as_json["workers"][0]["current_requests"]]
    assert sorted(shown) == ["#7 GET /reset-password", "#8 POST /upload"]


def test_query_strings_are_shown_when_asked_for() -> None:
    assert "#7 GET /reset-password?token=s3cret&user=ann (" in body(page(show_query=True))


def test_render_text_takes_what_as_dict_gives() -> None:
    board = Scoreboard(slots=1, threads=1)
    board.reset(0, generation=1)
    board.slot(0).set_pid(1)
    board.slot(0).set_state(WorkerState.READY)
    board.slot(0).begin(0, "#1 GET /a?b=c", 1)
    assert "#1 GET /a (" in render_text(board.snapshot().as_dict())
    assert "#1 GET /a?b=c (" in render_text(board.snapshot().as_dict(queries=True))
