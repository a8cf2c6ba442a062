"""Where settings come from: precedence, and errors that say where a wrong value was."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from fcgikit.errors import ConfigError
from fcgikit.server.settings import SERVE_SETTINGS
from fcgikit.server.settings.declaration import settings_of
from fcgikit.server.settings.sources import (
    NOT_SETTINGS,
    NOT_SETTINGS_PREFIXES,
    toml_value,
)
from tests.processes import ROOT
from tests.server.settings.helpers import serve_settings


def config_file(tmp_path: Path, text: str, name: str = "fcgikit.toml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


# --- precedence: command line > environment > file > default ---------------------------


@pytest.mark.parametrize(
    ("argv", "environ", "in_file", "value", "origin"),
    [
        pytest.param([], {}, None, 64, "default", id="default"),
        pytest.param([], {}, 2, 2, "file", id="file"),
        pytest.param([], {"FCGIKIT_THREADS": "3"}, 2, 3, "env:FCGIKIT_THREADS", id="env>file"),
        pytest.param(["--threads", "4"], {}, 2, 4, "command line", id="argv>file"),
        pytest.param(
            ["--threads", "4"], {"FCGIKIT_THREADS": "3"}, 2, 4, "command line", id="argv>all"
        ),
        pytest.param(
            ["--threads", "4"], {"FCGIKIT_THREADS": "3"}, None, 4, "command line", id="argv>env"
        ),
    ],
)
def test_precedence(
    tmp_path: Path,
    argv: list[str],
    environ: dict[str, str],
    in_file: int | None,
    value: int,
    origin: str,
) -> None:
    if in_file is not None:
        argv = [*argv, "--config", config_file(tmp_path, f"[serve]\nthreads = {in_file}\n")]
    settings = serve_settings(*argv, environ=environ)
    assert settings["threads"] == value
    expected = f"file:{tmp_path / 'fcgikit.toml'}" if origin == "file" else origin
    assert settings.origin("threads") == expected


@pytest.mark.parametrize(
    ("argv", "environ", "allowed", "origin"),
    [
        pytest.param(
            [],
            {"FCGI_WEB_SERVER_ADDRS": "10.0.0.1"},
            {"10.0.0.1"},
            "env:FCGI_WEB_SERVER_ADDRS",
            id="spec-variable",
        ),
        pytest.param(
            [],
            {"FCGI_WEB_SERVER_ADDRS": "10.0.0.1", "FCGIKIT_WEB_SERVER_ADDRS": "10.0.0.2"},
            {"10.0.0.2"},
            "env:FCGIKIT_WEB_SERVER_ADDRS",
            id="fcgikit-variable-first",
        ),
        pytest.param(
            ["--web-server-addrs", "10.0.0.3"],
            {"FCGI_WEB_SERVER_ADDRS": "10.0.0.1"},
            {"10.0.0.3"},
            "command line",
            id="argv-first",
        ),
        pytest.param(
            [],
            {"FCGI_WEB_SERVER_ADDRS": ""},
            None,
            "env:FCGI_WEB_SERVER_ADDRS",
            id="empty-is-anyone",
        ),
    ],
)
def test_fcgi_web_server_addrs_is_its_settings_other_variable(
    tmp_path: Path,
    argv: list[str],
    environ: dict[str, str],
    allowed: set[str] | None,
    origin: str,
) -> None:
    config = config_file(tmp_path, '[serve]\nweb-server-addrs = ["10.0.0.9"]\n')
    settings = serve_settings(*argv, "--config", config, environ=environ)
    allows = settings["web_server_addrs"]
    assert (None if allows is None else set(allows.entries())) == allowed
    assert settings.origin("web_server_addrs") == origin


def test_the_config_file_may_come_from_the_environment(tmp_path: Path) -> None:
    config = config_file(tmp_path, '[serve]\napp = "yourapplication:app"\nworkers = 4\n')
    settings = serve_settings(environ={"FCGIKIT_CONFIG": config})
    assert (settings["app"], settings["workers"]) == ("yourapplication:app", (4, 4))
    other = config_file(tmp_path, "[serve]\nworkers = 2\n", name="other.toml")
    assert serve_settings("--config", other, environ={"FCGIKIT_CONFIG": config})["app"] is None


def test_keys_may_be_written_with_underscores_or_dashes(tmp_path: Path) -> None:
    config = config_file(tmp_path, "[serve]\nmax_queued = 5\nmax-requests = 6\n")
    settings = serve_settings("--config", config)
    assert (settings["max_queued"], settings["max_requests"]) == (5, 6)


def test_a_flag_given_on_the_command_line_can_turn_off_what_the_file_turns_on(
    tmp_path: Path,
) -> None:
    config = config_file(tmp_path, "[serve]\ndebug = true\npreload = true\n")
    settings = serve_settings("--config", config, "--no-debug")
    assert (settings["debug"], settings["preload"]) == (False, True)


def test_lists_from_every_source(tmp_path: Path) -> None:
    by_argv = serve_settings("--bind", "unix:/a.sock", "-b", "127.0.0.1:1,[::1]:2")
    assert [str(a) for a in by_argv["binds"]] == ["unix:/a.sock", "127.0.0.1:1", "[::1]:2"]
    by_env = serve_settings(environ={"FCGIKIT_STATUS_ALLOW": " 10.0.0.1 ,::ffff:10.0.0.2,"})
    assert by_env["status_allow"].entries() == ["10.0.0.1", "10.0.0.2"]
    config = config_file(tmp_path, '[serve]\nbind = "unix:/b.sock"\n')
    assert [str(a) for a in serve_settings("--config", config)["binds"]] == ["unix:/b.sock"]


# --- errors name the source, the key and what is accepted -------------------------------


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        pytest.param(
            {"FCGIKIT_THREADS": "many"},
            "the environment variable FCGIKIT_THREADS takes a whole number of at least 1, "
            "not 'many'",
            id="not-a-number",
        ),
        pytest.param(
            {"FCGIKIT_THREADS": "0"},
            "the environment variable FCGIKIT_THREADS must be at least 1, not 0",
            id="too-small",
        ),
        pytest.param(
            {"FCGIKIT_DEBUG": "maybe"},
            "FCGIKIT_DEBUG takes true or false (1/0, yes/no, on/off), not 'maybe'",
            id="not-a-flag",
        ),
        pytest.param(
            {"FCGIKIT_BIND": "localhost"},
            "FCGIKIT_BIND: cannot read address 'localhost': expected unix:PATH, HOST:PORT",
            id="address",
        ),
        pytest.param(
            {"FCGIKIT_SOCKET_MODE": "777"},
            "FCGIKIT_SOCKET_MODE 777 lets every local user connect",
            id="checked-value",
        ),
        pytest.param(
            {"FCGIKIT_THREAD": "8"},
            "the environment variable FCGIKIT_THREAD names no setting of fcgikit serve "
            "(did you mean FCGIKIT_THREADS?)",
            id="unknown-variable",
        ),
        pytest.param(
            {"FCGIKIT_THREADS": "8", "FCGI_WEB_SERVER_ADDRS": "10.0.0.0/8,localhost"},
            "FCGI_WEB_SERVER_ADDRS: 'localhost' is not an IP address or network",
            id="spec-variable",
        ),
    ],
)
def test_a_wrong_variable_is_named_with_what_it_takes(
    environ: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        serve_settings("--threads", "8", environ=environ)


def test_variables_that_are_not_settings_are_left_alone() -> None:
    environ = {"FCGIKIT_PURE_PYTHON": "1", "FCGIKIT_TEST_BACKEND": "x", "FCGIKIT_BENCH_PLAIN": "1"}
    assert serve_settings(environ=environ)["threads"] == 64


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param(
            "[serve]\nthreads = 'many'\n",
            "[serve] threads takes a whole number",
            id="text-for-a-number",
        ),
        pytest.param(
            "[serve]\nthreads = true\n",
            "[serve] threads takes a whole number",
            id="bool-is-no-number",
        ),
        pytest.param(
            "[serve]\nthreads = 0\n", "[serve] threads must be at least 1, not 0", id="too-small"
        ),
        pytest.param(
            "[serve]\nsocket-mode = 660\n",
            "[serve] socket-mode takes an octal mode like 660 (in a config file as text: "
            '"660"), not 660',
            id="octal-as-number",
        ),
        pytest.param(
            "[serve]\nbind = [9000]\n", "[serve] bind takes unix:PATH", id="list-of-numbers"
        ),
        pytest.param(
            "[serve]\nthread = 8\n",
            "[serve] has no setting 'thread' (did you mean threads?)",
            id="unknown-key",
        ),
        pytest.param(
            "[server]\nthreads = 8\n",
            "'server' is not a table fcgikit reads: the settings of fcgikit serve go "
            "in a [serve] table",
            id="unknown-table",
        ),
        pytest.param(
            "threads = 8\n", "'threads' is not a table fcgikit reads", id="outside-the-table"
        ),
        pytest.param(
            "[serve]\nmax_queued = 1\nmax-queued = 2\n",
            "[serve] sets max-queued twice ('max_queued', 'max-queued')",
            id="twice",
        ),
        pytest.param("[serve]\nthreads = \n", "is not TOML: ", id="not-toml"),
    ],
)
def test_a_wrong_config_file_names_itself_the_key_and_what_it_takes(
    tmp_path: Path, text: str, message: str
) -> None:
    config = config_file(tmp_path, text)
    with pytest.raises(ConfigError, match=re.escape(message)) as error:
        serve_settings("--config", config)
    assert str(error.value).startswith(f"{config}: ") or "is not TOML" in str(error.value)
    assert config in str(error.value)


def test_a_missing_config_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cannot read the config file .*nope\.toml: No such"):
        serve_settings("--config", str(tmp_path / "nope.toml"))


def test_a_wrong_command_line_value_says_what_is_accepted() -> None:
    with pytest.raises(ConfigError, match=re.escape("--workers takes N or MIN:MAX, not 'x'")):
        serve_settings("--workers", "x")
    with pytest.raises(ConfigError, match=re.escape("--workers 4:2: the maximum is below")):
        serve_settings("--workers", "4:2")
    with pytest.raises(ConfigError, match=re.escape("--http: --http takes HOST:PORT")):
        serve_settings("--http", "unix:/x.sock")


# --- --print-config ---------------------------------------------------------------------


def test_print_config_is_a_config_file_of_the_same_settings(tmp_path: Path) -> None:
    config = config_file(tmp_path, '[serve]\napp = "a:app"\nthreads = 2\nmount = ""\n')
    environ = {"FCGIKIT_SOCKET_OWNER": ":www-data", "FCGI_WEB_SERVER_ADDRS": "::1"}
    settings = serve_settings(
        "--config", config, "--bind", 'unix:/x "y".sock', "--body-timeout", "0", environ=environ
    )
    text = settings.as_toml()
    lines = dict(
        (line.split(" = ")[0], line.rsplit("# ", 1)[1])
        for line in text.splitlines()
        if " = " in line
    )
    assert lines["threads"] == f"file:{config}"
    assert lines["socket-owner"] == "env:FCGIKIT_SOCKET_OWNER"
    assert lines["web-server-addrs"] == "env:FCGI_WEB_SERVER_ADDRS"
    assert lines["bind"] == lines["body-timeout"] == "command line"
    assert lines["max-queued"] == "default"
    assert "# timeout is not set" in text
    again = serve_settings("--config", config_file(tmp_path, text, name="printed.toml"))
    for declared in (d for cls in SERVE_SETTINGS for d in settings_of(cls)):
        assert again[declared.field] == settings[declared.field], declared.name


@pytest.mark.parametrize(
    "text", ["plain", 'quote " and \\ backslash', "tab\tnew\nline\x7f\x00", "caf\u00e9 \U0001f600"]
)
def test_toml_strings_read_back(text: str) -> None:
    assert tomllib.loads(f"key = {toml_value(text)}")["key"] == text
    assert tomllib.loads(f"key = {toml_value([text, 'b'])}")["key"] == [text, "b"]


# --- the one list of FCGIKIT_ variables that are not settings ---------------------------


#: files that name wrong variables on purpose
WRONG_ON_PURPOSE = {
    Path(__file__),
    ROOT / "tests" / "test_compat.py",
    ROOT / "tests" / "test_cli_config.py",
}


def test_every_fcgikit_variable_in_the_code_is_a_setting_or_listed() -> None:
    settings = {declared.env for cls in SERVE_SETTINGS for declared in settings_of(cls)}
    paths = [ROOT / "README.md"]
    for directory in ("fcgikit", "tests", "benchmarks", "scripts", "docs", "fuzz", ".ci"):
        paths += [path for path in (ROOT / directory).rglob("*") if path.suffix in SOURCES]
    found = {
        name
        for path in paths
        if path.is_file() and path not in WRONG_ON_PURPOSE
        for name in re.findall(r"\bFCGIKIT_[A-Z0-9_]*[A-Z0-9]\b", path.read_text(errors="replace"))
    }
    unlisted = {
        name
        for name in found - settings - NOT_SETTINGS
        if not name.startswith(NOT_SETTINGS_PREFIXES)
    }
    assert not unlisted, (
        f"{sorted(unlisted)}: a FCGIKIT_ variable that is not a setting goes in NOT_SETTINGS "
        "(fcgikit/server/settings/sources.py), or fcgikit serve refuses it as a misspelt one"
    )


SOURCES = {"", ".py", ".rst", ".md", ".toml", ".c", ".h", ".sh", ".ini", ".conf"}
