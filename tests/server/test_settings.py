"""Server settings from the command line: the memory the requests waiting may hold."""

from __future__ import annotations

import argparse

import pytest

from fcgikit.errors import ConfigError
from fcgikit.server.settings import ServerSettings, add_server_arguments, server_settings_from_args


def parse(*argv: str) -> ServerSettings:
    parser = argparse.ArgumentParser()
    add_server_arguments(parser)
    return server_settings_from_args(parser.parse_args(argv))


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
    assert parse("--max-queued-memory", text).max_queued_memory == size


def test_max_queued_memory_defaults_to_64_mib() -> None:
    assert parse().max_queued_memory == ServerSettings().max_queued_memory == 64 << 20


@pytest.mark.parametrize("text", ["lots", "64T", "-1M", "1.5M", ""])
def test_a_size_that_is_not_one_says_what_is(text: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse(f"--max-queued-memory={text}")
    assert "say 65536, 512K, 64M or 1G" in capsys.readouterr().err


def test_a_negative_budget_is_refused() -> None:
    with pytest.raises(ConfigError, match="max_queued_memory cannot be negative"):
        ServerSettings(max_queued_memory=-1)
