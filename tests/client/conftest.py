"""The client's tests each get a socket path and a TinyResponder to start on it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .responder import Handler, StartResponder, TinyResponder, echo, unix_listener


@pytest.fixture
def socket_path(tmp_path: Path) -> Path:
    return tmp_path / "app.sock"


@pytest.fixture
def start_responder(socket_path: Path) -> Iterator[StartResponder]:
    """Start a TinyResponder on ``socket_path``; stopped, and its errors raised, at the end."""
    started: list[TinyResponder] = []

    def start(handler: Handler = echo, answer_at: str = "input") -> TinyResponder:
        responder = TinyResponder(unix_listener(socket_path), handler, answer_at)
        started.append(responder)
        return responder

    yield start
    for responder in started:
        responder.close()
        assert responder.errors == []


@pytest.fixture
def address(socket_path: Path) -> str:
    return f"unix:{socket_path}"
