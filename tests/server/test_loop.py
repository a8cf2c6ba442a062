"""The loop's sweep: what it closes, and how often it says so."""

from __future__ import annotations

from typing import Any

import pytest

from tests.server.test_hostile import (
    Log,
    Peer,
    assert_serves,
    assert_settled,
    begin,
    digest_app,
)


def test_idle_connections_are_closed_after_idle_connection_timeout(
    serve: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """A connection that sends nothing (or stops half-way through a record) while no request
    is running is closed after idle_connection_timeout, with one log line; a busy one is not."""
    log = Log(caplog)
    running = serve(digest_app, idle_connection_timeout=0.5)
    quiet = [Peer(running.path) for _ in range(20)]
    half = Peer(running.path).send(begin(1)[:5])
    try:
        for p in [*quiet, half]:
            assert p.read_until_closed(timeout=10).closed
        # one line per sweep that closed any, never one per connection
        lines = log.wait_for_some("idle")
        assert 1 <= len(lines) <= 3 and "idle" in lines[0].getMessage()
        assert_serves(running)
    finally:
        for p in [*quiet, half]:
            p.close()
    assert_settled(running)
