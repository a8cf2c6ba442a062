"""The ordinary ``fcgikit serve`` command line, read without argparse: the namespace argparse
makes of it, or None (argparse reads it), never anything else."""

from __future__ import annotations

import argparse
import contextlib
import io

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fcgikit.cli import SERVE_SWITCHES, SERVE_VALUE_OPTIONS, _build_parser, parse_arguments
from fcgikit.server.settings import SERVE_SETTINGS
from fcgikit.server.settings.command_line import read_ordinary


def read(argv: list[str]) -> dict[str, object] | None:
    found = read_ordinary(argv, SERVE_SETTINGS, values=SERVE_VALUE_OPTIONS, switches=SERVE_SWITCHES)
    return None if found is None else vars(found)


def argparse_reads(argv: list[str]) -> dict[str, object] | None:
    """What argparse makes of ``argv``, None where it refuses it (or prints --help)."""
    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        try:
            return vars(_build_parser(argv).parse_args(argv))
        except SystemExit:
            return None


def _option_strings() -> list[str]:
    parser = _build_parser(["serve"])
    [commands] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return sorted(
        {*parser._option_string_actions, *commands.choices["serve"]._option_string_actions}
    )


OPTIONS = _option_strings()
#: an option as it may be written: whole, shortened, with "=VALUE", misspelt
OPTION_WORDS = st.one_of(
    st.sampled_from(OPTIONS),
    st.builds(
        lambda option, cut: option[: max(2, len(option) - cut)],
        st.sampled_from(OPTIONS),
        st.integers(1, 4),
    ),
    st.builds(
        lambda option, value: f"{option}={value}",
        st.sampled_from(OPTIONS),
        st.text("ab-=1 ", max_size=3),
    ),
    st.sampled_from(["--", "-", "--bindd", "--no-threads", "-x"]),
)
VALUE_WORDS = st.one_of(
    st.sampled_from(
        ["app:application", "unix:/run/app.sock", "8", "warning", "-1", "", "a b", "--"]
    ),
    st.text("ab:-=", max_size=4),
)
#: mostly what the reader must decline
ANY_LINES = st.builds(
    lambda first, rest: [first, *rest],
    st.sampled_from(["serve", "serve", "serve", "check", "--version", "-h"]),
    st.lists(st.one_of(OPTION_WORDS, VALUE_WORDS), max_size=8),
)
#: mostly what it reads: options written out whole, each with a value (a flag's is then the
#: positional argument, or a second one)
ORDINARY_LINES = st.builds(
    lambda pairs: ["serve", *(word for pair in pairs for word in pair)],
    st.lists(st.tuples(st.sampled_from(OPTIONS), VALUE_WORDS), max_size=5),
)
COMMAND_LINES = st.one_of(ANY_LINES, ORDINARY_LINES)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(COMMAND_LINES)
def test_a_command_line_read_without_argparse_is_read_as_argparse_reads_it(argv: list[str]) -> None:
    found = read(argv)
    if found is not None:
        assert found == argparse_reads(argv)


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(["serve", "app:application", "--bind", "unix:/run/app.sock"], id="bind"),
        pytest.param(
            ["serve", "--bind=127.0.0.1:9000", "--bind", "unix:/a", "--threads", "8", "app"],
            id="repeated-list",
        ),
        pytest.param(
            ["serve", "app", "--reload", "--no-reload", "--log-level", "warning"], id="flags"
        ),
        pytest.param(
            ["serve", "--config", "/etc/fcgikit.toml", "--print-config"], id="own-options"
        ),
        pytest.param(["serve", "--workers", "2", "--bind", "unix:/a", "app"], id="option-first"),
        pytest.param(["serve"], id="nothing"),
    ],
)
def test_an_ordinary_command_line_needs_no_argparse(argv: list[str]) -> None:
    """What a unit file or a spawner passes: long options written out whole."""
    found = read(argv)
    assert found is not None
    assert found == argparse_reads(argv)


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(["serve", "-w", "2", "app"], id="short-option"),
        pytest.param(["serve", "--thread", "2", "app"], id="shortened"),
        pytest.param(["serve", "--threads", "-1"], id="value-with-dash"),
        pytest.param(["serve", "a", "b"], id="two-apps"),
        pytest.param(["serve", "--help"], id="help"),
        pytest.param(["serve", "--reload=yes"], id="flag-with-value"),
        # argparse drops a "--" even after "=": the option gets an empty list
        pytest.param(["serve", "--access-log=--"], id="value-dashes"),
        pytest.param(["status", "unix:/a"], id="other-command"),
    ],
)
def test_anything_else_is_left_to_argparse(argv: list[str]) -> None:
    assert read(argv) is None


def test_a_wrong_command_line_still_gets_argparse_s_message(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exited:
        parse_arguments(["serve", "app", "--threads"])
    assert exited.value.code == 2
    assert "--threads: expected one argument" in capsys.readouterr().err
