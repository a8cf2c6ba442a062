"""RateLimitedLog (fcgikit/server/logs.py): a flood of one problem becomes a line per interval."""

from __future__ import annotations

import logging

import pytest

from fcgikit.server.logs import RateLimitedLog


def lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "test.ratelimit"]


@pytest.fixture
def limited(caplog: pytest.LogCaptureFixture) -> RateLimitedLog:
    caplog.set_level(logging.INFO, logger="test.ratelimit")
    logger = logging.getLogger("test.ratelimit")
    return RateLimitedLog(logger, "refused %s", level=logging.WARNING, interval=5.0)


def test_the_first_occurrence_is_logged_at_once(
    limited: RateLimitedLog, caplog: pytest.LogCaptureFixture
) -> None:
    limited.note("10.0.0.1", 100.0)
    assert lines(caplog) == ["refused 10.0.0.1"]
    assert caplog.records[0].levelno == logging.WARNING


def test_a_burst_is_one_more_line_with_its_count_once_the_interval_is_over(
    limited: RateLimitedLog, caplog: pytest.LogCaptureFixture
) -> None:
    for n in range(3000):
        limited.note(f"10.0.0.{n % 3}", 100.0 + n / 3000)
    assert lines(caplog) == ["refused 10.0.0.0"]
    limited.flush(104.0)  # within the interval: nothing yet
    limited.flush(105.0)
    assert lines(caplog)[1:] == ["refused 10.0.0.1, 10.0.0.2, 10.0.0.0; 2999 times in the last 5s"]
    limited.flush(200.0)  # nothing counted since: nothing to say
    assert len(lines(caplog)) == 2


def test_a_steady_trickle_is_one_line_per_interval(
    limited: RateLimitedLog, caplog: pytest.LogCaptureFixture
) -> None:
    for tenth in range(300):  # 30 s, ten a second
        limited.note("Too many open files", 100.0 + tenth / 10)
    assert len(lines(caplog)) == 6
    assert lines(caplog)[1] == "refused Too many open files; 50 times in the last 5s"


def test_details_past_the_first_few_are_counted_not_named(
    limited: RateLimitedLog, caplog: pytest.LogCaptureFixture
) -> None:
    limited.note("first", 0.0)
    for n in range(20):
        limited.note(f"192.0.2.{n}", 1.0)
    limited.flush(10.0)
    last = lines(caplog)[-1]
    assert last.startswith("refused 192.0.2.0, 192.0.2.1,")
    assert last.count("192.0.2.") == RateLimitedLog.MAX_DETAILS
    assert last.endswith(", ...; 20 times in the last 10s")
