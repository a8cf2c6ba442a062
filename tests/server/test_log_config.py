"""``--log-config``: an operator's logging configuration instead of fcgikit's defaults, as a
dictConfig dictionary in JSON or TOML, or an ini file for fileConfig. Real ``fcgikit serve``
processes, one and a pool, with an app that sets up logging of its own: each line lands
where the file (or the app) sends it, once."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from fcgikit.client import FastCGIClient
from tests.processes import Backend, fcgikit_command
from tests.server.test_logs import APP_SOURCE, lines_with

#: fcgikit's lines to one file, its access lines to another, with formats of the operator's
DICT_CONFIG: dict[str, Any] = {
    "version": 1,
    "formatters": {
        "ops": {"format": "OPS %(name)s %(levelname)s %(message)s"},
        "bare": {"format": "%(message)s"},
    },
    "handlers": {
        "ops": {
            "class": "logging.FileHandler",
            "filename": "{dir}/fcgikit.log",
            "formatter": "ops",
        },
        "access": {
            "class": "logging.FileHandler",
            "filename": "{dir}/access.log",
            "formatter": "bare",
        },
    },
    "loggers": {
        "fcgikit": {"handlers": ["ops"], "level": "INFO"},
        "fcgikit.access": {"handlers": ["access"], "level": "INFO"},
    },
}

TOML_CONFIG = """\
version = 1

[formatters.ops]
format = "OPS %(name)s %(levelname)s %(message)s"

[formatters.bare]
format = "%(message)s"

[handlers.ops]
class = "logging.FileHandler"
filename = "{dir}/fcgikit.log"
formatter = "ops"

[handlers.access]
class = "logging.FileHandler"
filename = "{dir}/access.log"
formatter = "bare"

[loggers.fcgikit]
handlers = ["ops"]
level = "INFO"

[loggers."fcgikit.access"]
handlers = ["access"]
level = "INFO"
"""

INI_CONFIG = """\
[loggers]
keys = root, fcgikit, access

[handlers]
keys = ops, access

[formatters]
keys = ops, bare

[logger_root]
level = WARNING
handlers =

[logger_fcgikit]
level = INFO
handlers = ops
qualname = fcgikit

[logger_access]
level = INFO
handlers = access
qualname = fcgikit.access

[handler_ops]
class = FileHandler
args = ('{dir}/fcgikit.log',)
formatter = ops

[handler_access]
class = FileHandler
args = ('{dir}/access.log',)
formatter = bare

[formatter_ops]
format = OPS %(name)s %(levelname)s %(message)s

[formatter_bare]
format = %(message)s
"""


def write_config(directory: Path, kind: str) -> Path:
    if kind == "json":
        text = json.dumps(DICT_CONFIG).replace("{dir}", str(directory))
    else:
        text = (TOML_CONFIG if kind == "toml" else INI_CONFIG).replace("{dir}", str(directory))
    path = directory / f"logging.{kind}"
    path.write_text(text)
    return path


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    (tmp_path / "logapp.py").write_text(APP_SOURCE)
    return tmp_path


def wait_for_line(path: Path, needle: str, count: int = 1) -> str:
    """The file's text once ``needle`` is in it ``count`` times (another process writes it)."""
    deadline = time.monotonic() + 30
    while True:
        text = path.read_text() if path.exists() else ""
        if text.count(needle) >= count:
            return text
        assert time.monotonic() < deadline, f"{needle!r} x{count} not in {path}:\n{text}"
        time.sleep(0.01)  # polling a file another process writes, with a deadline


def serve_with_config(directory: Path, config: Path, *options: str, setup: str) -> Backend:
    sock = directory / "app.sock"
    command = fcgikit_command("serve", "logapp:app", "--bind", f"unix:{sock}")
    command += ["--log-config", str(config), *options]
    env = {"APP_LOG_SETUP": setup, "APP_LOG_FILE": str(directory / "app.log")}
    return Backend(command, cwd=directory, env=env)


def request(directory: Path, path: str = "/x", **params: str) -> None:
    with FastCGIClient(f"unix:{directory / 'app.sock'}") as client:
        assert client.request("GET", path, params=params).body == b"logged"


@pytest.mark.parametrize(
    ("kind", "mode"),
    [
        ("json", "serve"),
        ("json", "workers"),
        ("toml", "serve"),
        ("ini", "serve"),
        ("ini", "workers"),
    ],
)
def test_the_operators_file_decides_where_each_line_goes_once(
    app_dir: Path, kind: str, mode: str
) -> None:
    config = write_config(app_dir, kind)
    workers = ["--workers", "2"] if mode == "workers" else []
    # the app configures the root logger itself (Flask's documented dictConfig, to stderr)
    backend = serve_with_config(app_dir, config, *workers, setup="dictconfig")
    servers = 2 if workers else 1
    try:
        wait_for_line(app_dir / "fcgikit.log", "ready (" if workers else "listening on", servers)
        for _ in range(3):
            request(app_dir)
    finally:
        assert backend.stop(signal.SIGTERM) == 0
    ops = (app_dir / "fcgikit.log").read_text()
    access = (app_dir / "access.log").read_text().splitlines()
    # fcgikit's lines: in the operator's file, in its format, once, and nowhere else
    assert len(lines_with(ops, "listening on")) == servers  # one a worker
    assert all(line.startswith("OPS fcgikit") for line in ops.splitlines()), ops
    assert "listening on" not in backend.stderr and "fcgikit[" not in backend.stderr
    # the access log: one line a request, where the file sends fcgikit.access, only there
    assert len(access) == 3 and all('"GET /x" 200 6 ' in line for line in access), access
    assert '"GET /x"' not in ops and '"GET /x"' not in backend.stderr
    # the app's lines: where the app sent them (stderr), once, not in the operator's file
    assert lines_with(backend.stderr, "app warning") == ["APP WARNING app warning /x"] * 3
    assert "app warning" not in ops


def test_a_file_for_the_root_logger_alone_gets_fcgikits_lines_and_no_access_log(
    app_dir: Path,
) -> None:
    config = app_dir / "root.json"
    config.write_text(
        json.dumps(
            {
                "version": 1,
                "formatters": {"ops": {"format": "ROOT %(name)s %(message)s"}},
                "handlers": {
                    "file": {
                        "class": "logging.FileHandler",
                        "filename": str(app_dir / "all.log"),
                        "formatter": "ops",
                    }
                },
                "root": {"handlers": ["file"], "level": "INFO"},
            }
        )
    )
    # the app logs to its own file and leaves the root logger to the operator
    backend = serve_with_config(app_dir, config, setup="own-file")
    try:
        wait_for_line(app_dir / "all.log", "listening on")
        request(app_dir)
    finally:
        assert backend.stop(signal.SIGTERM) == 0
    all_lines = (app_dir / "all.log").read_text()
    assert lines_with(all_lines, "listening on") == [
        line
        for line in all_lines.splitlines()
        if line.startswith("ROOT fcgikit.server fcgikit: listening on")
    ]
    assert len(lines_with(all_lines, "listening on")) == 1
    # the app's own logger propagates to the root too: the operator's file has its lines once
    assert lines_with(all_lines, "app warning") == ["ROOT yourapp app warning /x"]
    assert (app_dir / "app.log").read_text().count("app warning") == 1
    # no --access-log, and the file names no fcgikit.access: no access log at all
    assert '"GET /x"' not in all_lines and '"GET /x"' not in backend.stderr


def test_log_level_given_with_a_config_sets_fcgikits_loggers_over_the_file(
    app_dir: Path,
) -> None:
    config = write_config(app_dir, "json")
    backend = serve_with_config(app_dir, config, "--log-level", "debug", setup="none")
    try:
        wait_for_line(app_dir / "fcgikit.log", "listening on")
        request(app_dir, **{"wsgi.sneaky": "1"})  # a reserved name: dropped, at DEBUG
        wait_for_line(app_dir / "fcgikit.log", "reserved name")
    finally:
        assert backend.stop(signal.SIGTERM) == 0
    assert (
        "OPS fcgikit.server DEBUG dropped 1 param(s) with a reserved name"
        in (app_dir / "fcgikit.log").read_text()
    )


@pytest.mark.parametrize(
    ("files", "options", "message"),
    [
        pytest.param(
            {"logging.json": "{not json"},
            [],
            r"--log-config .*logging\.json is not JSON",
            id="not-json",
        ),
        pytest.param(
            {"logging.toml": "version = "},
            [],
            r"--log-config .*logging\.toml is not TOML",
            id="not-toml",
        ),
        pytest.param(
            {"logging.json": '{"version": 1, "handlers": {"h": {"class": "no.such.Handler"}}}'},
            [],
            r"--log-config .*logging\.json: Unable to configure handler 'h'",
            id="no-such-handler",
        ),
        pytest.param(
            {"logging.ini": "[loggers]\nkeys = root\n"},
            [],
            r"--log-config .*logging\.ini",
            id="incomplete-ini",
        ),
        pytest.param({}, [], r"--log-config .*logging\.json: .*No such file", id="missing"),
        pytest.param(
            {"logging.json": '{"version": 1}'},
            ["--log-file", "fcgikit.log"],
            r"--log-file and --log-config",
            id="with-log-file",
        ),
        pytest.param(
            {"logging.json": json.dumps(DICT_CONFIG)},
            ["--access-log", "-"],
            r"--access-log and .*logging\.json, which configures the fcgikit.access logger",
            id="access-log-twice",
        ),
    ],
)
def test_a_log_config_that_cannot_be_used_is_refused_with_a_clear_line(
    tmp_path: Path, files: dict[str, str], options: list[str], message: str
) -> None:
    for name, text in files.items():
        (tmp_path / name).write_text(text.replace("{dir}", str(tmp_path)))
    config = next(iter(files), "logging.json")
    result = subprocess.run(
        fcgikit_command(
            "serve", "app:app", "--bind", f"unix:{tmp_path}/s", "--log-config", config, *options
        ),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert result.returncode == 2, result
    [line] = result.stderr.splitlines()
    assert line.startswith("fcgikit: --")
    assert re.search(message, line), line
    # the socket listened before the logging was set up; no server will serve it now
    assert not (tmp_path / "s").exists()
