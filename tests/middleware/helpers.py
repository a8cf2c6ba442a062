"""Fake environs and a recording app, shared by the middleware tests."""

from __future__ import annotations

import io
import json
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from werkzeug.test import create_environ

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


def environ_from_params(params: list[list[str]], body: bytes = b"") -> dict[str, Any]:
    """What fcgikit's server builds from FastCGI params: the last of duplicates wins, and
    the names that came more than once are listed in ``fcgikit.duplicate_params``."""
    env: dict[str, Any] = dict(params)
    counts = Counter(name for name, _ in params)
    duplicates = frozenset(name for name, count in counts.items() if count > 1)
    if duplicates:
        env["fcgikit.duplicate_params"] = duplicates
    env.update(
        {
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "https" if env.get("HTTPS") == "on" else "http",
            "wsgi.input": io.BytesIO(body),
            "wsgi.errors": io.StringIO(),
            "wsgi.multithread": False,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
        }
    )
    return env


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
