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


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"threads": 0}, "threads must be at least 1, not 0"),
        ({"max_queued": -1}, "max_queued cannot be negative (-1)"),
        ({"spool_threshold": -1}, "spool_threshold cannot be negative (-1)"),
        ({"max_params_size": 1000}, "max_params_size below 1 KiB (1000) breaks every web server"),
        ({"roles": frozenset()}, "at least one FastCGI role must be accepted"),
        ({"graceful_timeout": -1.0}, "timeouts must be positive"),
        ({"send_timeout": 0.0}, "timeouts must be positive"),
        ({"socket_mode": 0o666}, "lets every local user connect"),
        ({"socket_mode": 0o1660}, "--socket-mode 1660: write permission bits, like 660"),
        ({"body_timeout": 0.0}, "body_timeout must be positive or None, not 0.0"),
        ({"idle_connection_timeout": -5.0}, "idle_connection_timeout must be positive or None"),
    ],
)
def test_settings_that_cannot_work_are_refused_with_what_is_wrong(
    values: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        ServerSettings(**values)  # type: ignore[arg-type]
    assert message in str(raised.value)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--socket-mode", "rw-rw----"], "not an octal mode: 'rw-rw----'"),
        (["--socket-owner", ":"], "--socket-owner takes USER[:GROUP], not ':'"),
    ],
)
def test_an_option_that_is_not_what_it_takes_says_so(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        parse(*argv)
    assert message in capsys.readouterr().err


def test_socket_options_and_timeouts_from_the_command_line() -> None:
    settings = parse(
        "--socket-mode", "660", "--socket-owner", "www-data:www-data", "--body-timeout", "0"
    )
    assert settings.socket_mode == 0o660
    assert str(settings.socket_owner) == "www-data:www-data"
    assert settings.body_timeout is None  # 0: no timeout
