"""The ping path (--ping-path): which requests it takes, what it answers, and when 503."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from fcgikit.addresses import UnixAddress
from fcgikit.client import FastCGIClient, FastCGIResponse
from fcgikit.errors import ConfigError
from fcgikit.protocol.events import EncodedParams
from fcgikit.protocol.input_events import MAX_DECODED_PAIRS
from fcgikit.protocol.records import encode_pairs
from fcgikit.server import Server, ServerSettings
from fcgikit.server.health import DRAINING_BODY, Health

from .conftest import RunningServer


class CountingApp:
    """An app that says which path it was called for, and counts its calls."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        self.calls.append(environ["PATH_INFO"])
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [f"app {environ['PATH_INFO']}".encode()]


def pinger(path: str = "/ping") -> Health:
    return Health(path, "pong", lambda: False)


@pytest.mark.parametrize(
    ("params", "is_ping"),
    [
        pytest.param({b"REQUEST_URI": b"/ping"}, True, id="request-uri"),
        pytest.param({b"REQUEST_URI": b"/ping?full=1"}, True, id="with-a-query"),
        # the URL the client asked for, wherever the app is mounted
        pytest.param(
            {b"REQUEST_URI": b"/ping", b"SCRIPT_NAME": b"/app", b"PATH_INFO": b""},
            True,
            id="beside-a-mounted-app",
        ),
        pytest.param(
            {b"REQUEST_URI": b"/app/ping", b"SCRIPT_NAME": b"/app", b"PATH_INFO": b"/ping"},
            False,
            id="the-apps-own-ping-under-its-mount",
        ),
        pytest.param({b"REQUEST_URI": b"/pingx"}, False, id="a-longer-path"),
        pytest.param({b"REQUEST_URI": b"/ping/"}, False, id="a-trailing-slash"),
        pytest.param({b"REQUEST_URI": b"/"}, False, id="the-root"),
        # no REQUEST_URI: the path the CGI variables make
        pytest.param({b"SCRIPT_NAME": b"/ping"}, True, id="nginx-stock-params"),
        pytest.param({b"SCRIPT_NAME": b"", b"PATH_INFO": b"/ping"}, True, id="path-info"),
        pytest.param({b"SCRIPT_NAME": b"/pi", b"PATH_INFO": b"ng"}, True, id="split-anywhere"),
        pytest.param({b"PATH_INFO": b"/other"}, False, id="another-path"),
        pytest.param({}, False, id="no-path-at-all"),
    ],
)
def test_which_requests_are_the_ping(params: dict[bytes, bytes], is_ping: bool) -> None:
    assert pinger().is_ping(params) is is_ping
    # the same when the params are many and kept encoded
    many = {**{f"HTTP_X_{i}".encode(): b"v" for i in range(MAX_DECODED_PAIRS)}, **params}
    assert pinger().is_ping(EncodedParams(encode_pairs(many.items()))) is is_ping


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("ping", "must start with '/'"),
        ("/ping?x=1", "must be a plain URL path"),
        ("/pi ng", "must be a plain URL path"),
    ],
)
def test_a_ping_path_that_cannot_match_is_refused(path: str, message: str) -> None:
    with pytest.raises(ConfigError, match=f"--ping-path {message}"):
        ServerSettings(ping_path=path)


def test_the_ping_path_and_the_status_path_must_differ() -> None:
    """Else the status page could never be reached: the ping would answer its requests."""
    with pytest.raises(ConfigError, match="--ping-path and --status-path are both /health"):
        ServerSettings(ping_path="/health", status_path="/health")


def get(running: RunningServer, path: str, **kwargs: Any) -> FastCGIResponse:
    return running.client().request("GET", path, **kwargs)


def test_the_ping_is_answered_without_the_app(serve: Callable[..., RunningServer]) -> None:
    app = CountingApp()
    running = serve(app, ping_path="/ping")
    response = get(running, "/ping")
    assert (response.status, response.body) == (200, b"pong")
    assert response.header("Content-Type") == "text/plain; charset=utf-8"
    assert app.calls == []
    assert get(running, "/other").body == b"app /other"
    assert app.calls == ["/other"]


def test_the_ping_answers_its_response_text(serve: Callable[..., RunningServer]) -> None:
    running = serve(CountingApp(), ping_path="/healthz", ping_response="OK, all good")
    assert get(running, "/healthz").body == b"OK, all good"
    assert get(running, "/ping").body == b"app /ping"


def test_a_ping_with_many_params_is_the_ping_too(serve: Callable[..., RunningServer]) -> None:
    app = CountingApp()
    running = serve(app, ping_path="/ping")
    headers = [(f"X-Header-{i}", "v") for i in range(MAX_DECODED_PAIRS + 10)]
    assert get(running, "/ping", headers=headers).body == b"pong"
    assert app.calls == []


def test_without_a_ping_path_every_path_is_the_apps(serve: Callable[..., RunningServer]) -> None:
    app = CountingApp()
    running = serve(app)
    assert running.server.health is None
    assert get(running, "/ping").body == b"app /ping"


@pytest.fixture
def unstarted(tmp_path: Path) -> Iterator[list[tuple[Server, threading.Thread]]]:
    """Servers a test builds itself (Server's own arguments), run on a thread, stopped after."""
    started: list[tuple[Server, threading.Thread]] = []
    yield started
    for server, thread in started:
        server.stop("test over", at_once=True)
        thread.join(10)


def run(
    started: list[tuple[Server, threading.Thread]],
    path: str,
    app: Any,
    settings: ServerSettings,
    **options: Any,
) -> Server:
    server = Server(app, replace(settings, binds=(UnixAddress(path),)), **options)
    thread = threading.Thread(target=server.serve, daemon=True)
    thread.start()
    assert server.ready.wait(10)
    started.append((server, thread))
    return server


def test_a_drain_serves_on_with_the_ping_at_503_then_stops(
    tmp_path: Path, unstarted: list[tuple[Server, threading.Thread]]
) -> None:
    """server.stop(drain=True), what SIGTERM asks: the ping answers 503 at once, new
    connections are still accepted and served, and the server stops once the delay is over
    (here a long one, ended by a second stop, as a second SIGTERM does)."""
    app = CountingApp()
    path = str(tmp_path / "s.sock")
    settings = ServerSettings(handle_signals=False, ping_path="/ping", shutdown_delay=600)
    server = run(unstarted, path, app, settings)
    assert FastCGIClient(f"unix:{path}").request("GET", "/ping").status == 200
    server.stop("SIGTERM", drain=True)
    draining = FastCGIClient(f"unix:{path}").request("GET", "/ping")
    assert (draining.status, draining.body) == (503, DRAINING_BODY)
    assert FastCGIClient(f"unix:{path}").request("GET", "/during").body == b"app /during"
    [(_, thread)] = unstarted
    assert thread.is_alive()
    server.stop("SIGTERM again")
    thread.join(10)
    assert not thread.is_alive()


def test_a_pool_worker_pings_as_its_master_says(
    tmp_path: Path, unstarted: list[tuple[Server, threading.Thread]]
) -> None:
    """A worker asked to stop on its own (replaced by a reload, --max-requests) answers its
    pings 200: the pool serves on. Only the master's drain, which the worker reads through
    ``draining`` (the scoreboard), makes them 503. (The worker's stop here waits, as a drain
    does, so that new connections still reach it.)"""
    master_drains = threading.Event()
    path = str(tmp_path / "s.sock")
    settings = ServerSettings(handle_signals=False, ping_path="/ping", shutdown_delay=600)
    server = run(unstarted, path, CountingApp(), settings, draining=master_drains.is_set)
    server.stop("worker: replaced", drain=True)
    assert FastCGIClient(f"unix:{path}").request("GET", "/ping").status == 200
    master_drains.set()
    assert FastCGIClient(f"unix:{path}").request("GET", "/ping").status == 503
