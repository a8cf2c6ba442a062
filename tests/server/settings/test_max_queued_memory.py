"""--max-queued-memory: the memory the requests waiting for a thread may hold, as a size."""

from __future__ import annotations

import pytest

from fcgikit.errors import ConfigError
from fcgikit.server.settings import ServerSettings
from tests.server.settings.helpers import serve_settings


def budget(*argv: str, environ: dict[str, str] | None = None) -> int:
    return serve_settings(*argv, environ=environ).build(ServerSettings).max_queued_memory


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("65536", 65536),
        ("512K", 512 << 10),
        ("64M", 64 << 20),
        ("64MiB", 64 << 20),
        ("256mb", 256 << 20),
        ("1G", 1 << 30),
    ],
)
def test_max_queued_memory_takes_a_size(text: str, size: int) -> None:
    assert budget("--max-queued-memory", text) == size
    assert budget(environ={"FCGIKIT_MAX_QUEUED_MEMORY": text}) == size


def test_max_queued_memory_defaults_to_64_mib() -> None:
    assert budget() == ServerSettings().max_queued_memory == 64 << 20


@pytest.mark.parametrize("text", ["lots", "64T", "-1M", "1.5M", ""])
def test_a_size_that_is_not_one_says_what_is(text: str) -> None:
    with pytest.raises(ConfigError, match="a size in bytes like 65536, 512K, 64M or 1G"):
        budget(f"--max-queued-memory={text}")


def test_a_negative_budget_is_refused() -> None:
    with pytest.raises(ConfigError, match="--max-queued-memory cannot be negative"):
        ServerSettings(max_queued_memory=-1)
