"""RateLimitedLog: a line that can come in floods is logged once per interval, with a count."""

from __future__ import annotations

import logging

import pytest

from fcgikit.server import logs
from fcgikit.server.logs import RateLimitedLog


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(logs.time, "monotonic", clock)
    return clock


class Label:
    """An argument that says when it was formatted."""

    def __init__(self, formatted: list[int], number: int) -> None:
        self.formatted = formatted
        self.number = number

    def __str__(self) -> str:
        self.formatted.append(self.number)
        return f"#{self.number}"


def test_a_flood_is_one_line_per_interval_with_the_count(
    clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    logger = logging.getLogger("fcgikit.test.flood")
    flood = RateLimitedLog(logger, 5.0, "%d more refused")
    formatted: list[int] = []
    with caplog.at_level(logging.WARNING, logger="fcgikit.test.flood"):
        for number in range(100):  # within one interval
            flood.warning("request %s refused", Label(formatted, number))
            clock.now += 0.01
        flood.flush()  # the interval is not over: nothing yet
        clock.now += 5
        flood.flush()
        flood.flush()  # said once
        clock.now += 60  # a quiet minute, then one more: logged at once
        flood.warning("request %s refused", Label(formatted, 100))
    lines = [record.getMessage() for record in caplog.records]
    assert lines == ["request #0 refused", "99 more refused in the last 5s", "request #100 refused"]
    assert set(formatted) == {0, 100}  # the lines left out were never formatted


def test_a_line_after_the_interval_says_first_how_many_were_left_out(
    clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    logger = logging.getLogger("fcgikit.test.flood")
    flood = RateLimitedLog(logger, 5.0, "%d more refused")
    with caplog.at_level(logging.WARNING, logger="fcgikit.test.flood"):
        flood.warning("first")
        flood.warning("second")
        clock.now += 6
        flood.warning("third")  # no flush came between: the count goes first
        flood.warning("fourth")
    lines = [record.getMessage() for record in caplog.records]
    assert lines == ["first", "1 more refused in the last 5s", "third"]
