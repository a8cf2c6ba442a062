"""The process pool's settings: --workers, and PoolSettings' own checks."""

from __future__ import annotations

import re
from typing import Any

import pytest

from fcgikit.errors import ConfigError
from fcgikit.server.settings import PoolSettings, parse_workers


@pytest.mark.parametrize(
    ("text", "expected"),
    [("4", (4, 4)), ("2:8", (2, 8)), ("1:1", (1, 1))],
)
def test_parse_workers(text: str, expected: tuple[int, int]) -> None:
    assert parse_workers(text) == expected


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param({"workers_min": 0}, "at least one worker", id="no-workers"),
        pytest.param({"workers_min": 4, "workers_max": 2}, "MIN:MAX", id="max-below-min"),
        pytest.param({"timeout": 0}, "--timeout must be positive", id="zero-timeout"),
        pytest.param({"slow_log": -1}, "--slow-log must be positive", id="negative-slow-log"),
        pytest.param({"max_requests": -1}, "cannot be negative", id="negative-max-requests"),
    ],
)
def test_pool_settings_are_validated(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        PoolSettings(**kwargs)


def test_parse_workers_rejects_garbage() -> None:
    with pytest.raises(ConfigError, match="N or MIN:MAX"):
        parse_workers("lots")
