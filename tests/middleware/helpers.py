"""Fake environs and a recording app, shared by the middleware tests."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from werkzeug.test import create_environ

from fcgikit.protocol import ClientConnection, RequestReceived, ServerConnection
from fcgikit.server.settings import ServerSettings
from fcgikit.server.wsgi import WSGIRequest

CAPTURES_PATH = Path(__file__).parents[1] / "data" / "captured-environs.json"
CAPTURES: dict[str, dict[str, dict[str, Any]]] = json.loads(CAPTURES_PATH.read_text())

ABSENT = object()


def environ(**values: Any) -> dict[str, Any]:
    """A complete WSGI environ for ``GET /`` with ``values`` applied; ``ABSENT`` deletes."""
    env = create_environ("/")
    env["wsgi.errors"] = io.StringIO()
    for key, value in values.items():
        if value is ABSENT:
            env.pop(key, None)
        else:
            env[key] = value
    return env


class _NoResponse:
    """The response sink of a request that is only asked for its environ."""

    def send_output(self, request: WSGIRequest, data: bytes) -> None:
        raise AssertionError("not run")

    send_stderr = send_output

    def finish(self, request: WSGIRequest, head: bytes, body: bytes, app_status: int) -> None:
        raise AssertionError("not run")

    def request_done(self, request: WSGIRequest, *, on_loop: bool) -> None:
        raise AssertionError("not run")


def environ_from_params(params: list[list[str]], body: bytes = b"") -> dict[str, Any]:
    """The environ fcgikit's own server builds from these FastCGI params, sent in this order
    (duplicates too): the protocol parses the records, and the server's WSGIRequest builds
    the environ, so the fixers are tested against what they meet under ``fcgikit serve``."""
    pairs = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in params]
    client, server = ClientConnection(), ServerConnection()
    (event,) = server.receive_data(client.start_request(1, pairs))
    assert isinstance(event, RequestReceived)
    request = WSGIRequest(_NoResponse(), event, _never_called, ServerSettings())
    request.body.feed(body)
    request.body.finish()
    return request.build_environ()


def _never_called(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    raise AssertionError("not run")


class Recorder:
    """A WSGI app that keeps a copy of the environ it was called with."""

    def __init__(self, body: bytes = b"ok") -> None:
        self.environ: dict[str, Any] | None = None
        self.body = body

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        self.environ = dict(environ)
        start_response(
            "200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(self.body)))]
        )
        return [self.body]

    @property
    def split(self) -> tuple[str, str]:
        assert self.environ is not None, "the app was not called"
        return self.environ.get("SCRIPT_NAME", ""), self.environ.get("PATH_INFO", "")


def call(app: Callable[..., Iterable[bytes]], env: dict[str, Any]) -> tuple[str, bytes]:
    """Run one request; return the status line and the body."""
    statuses: list[str] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        statuses.append(status)
        return lambda data: None

    result = app(env, start_response)
    try:
        body = b"".join(result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    return statuses[0], body
