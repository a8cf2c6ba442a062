"""Where log lines land: fcgikit's on its own ``fcgikit`` logger, the app's where the app sent
them, each once. Real processes: ``fcgikit serve`` (one process and a pool), the guide's
``.fcgi`` file with ``WSGIServer(app).run()``, and that file run as plain CGI."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from fcgikit.client import FastCGIClient
from fcgikit.server.logs import (
    access_log,
    configure_access_log,
    configure_logging,
    fcgikit_log,
    reopen_log_files,
)
from tests.processes import ROOT, Backend, fcgikit_command

APP_SOURCE = """
import logging, logging.config, os

setup = os.environ["APP_LOG_SETUP"]
if setup == "own-file":
    # the app's own logger, to its own file; the root logger is left alone
    handler = logging.FileHandler(os.environ["APP_LOG_FILE"])
    handler.setFormatter(logging.Formatter("APP %(levelname)s %(message)s"))
    logging.getLogger("yourapp").addHandler(handler)
    logging.getLogger("yourapp").setLevel(logging.INFO)
elif setup == "dictconfig":
    # Flask's documentation: the root logger to stderr, existing loggers disabled (the default)
    logging.config.dictConfig({
        "version": 1,
        "formatters": {"default": {"format": "APP %(levelname)s %(message)s"}},
        "handlers": {"wsgi": {"class": "logging.StreamHandler", "formatter": "default"}},
        "root": {"level": "INFO", "handlers": ["wsgi"]},
    })

log = logging.getLogger("yourapp")

def app(environ, start_response):
    log.info("app info %s", environ["PATH_INFO"])
    log.warning("app warning %s", environ["PATH_INFO"])
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"logged"]
"""

FCGI_FILE = """#!{python}
import sys
sys.path.insert(0, {directory!r})
from fcgikit import WSGIServer
from logapp import app

if __name__ == '__main__':
    WSGIServer(app{args}).run()
"""


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    (tmp_path / "logapp.py").write_text(APP_SOURCE)
    return tmp_path


def fcgi_file(directory: Path, args: str = "") -> Path:
    path = directory / "logapp.fcgi"
    path.write_text(FCGI_FILE.format(python=sys.executable, directory=str(directory), args=args))
    path.chmod(0o755)
    return path


def served_stderr(directory: Path, mode: str, setup: str) -> str:
    """Start the app in ``mode``, send it one request for /x, stop it; all it wrote to stderr."""
    sock = directory / "app.sock"
    env = {"APP_LOG_SETUP": setup, "APP_LOG_FILE": str(directory / "app.log")}
    if mode == "cgi":
        cgi = {"REQUEST_METHOD": "GET", "PATH_INFO": "/x", "SERVER_NAME": "h", "SERVER_PORT": "80"}
        result = subprocess.run(
            [str(fcgi_file(directory))],
            capture_output=True,
            timeout=60,
            env={**os.environ, "PYTHONPATH": str(ROOT), **env, **cgi},
            stdin=subprocess.DEVNULL,
        )
        assert result.stdout.endswith(b"logged"), result
        return result.stderr.decode()
    if mode == "fcgi":
        command = [str(fcgi_file(directory, f", bindAddress={str(sock)!r}"))]
    else:
        command = fcgikit_command("serve", "logapp:app", "--bind", f"unix:{sock}")
        command += ["--workers", "1"] if mode == "workers" else []
    backend = Backend(command, cwd=directory, env=env)
    try:
        backend.wait_for("ready" if mode == "workers" else "listening on")
        assert FastCGIClient(f"unix:{sock}").request("GET", "/x").body == b"logged"
    finally:
        assert backend.stop(signal.SIGTERM) == 0
    return backend.stderr


MODES = ["serve", "workers", "fcgi", "cgi"]


def lines_with(text: str, needle: str) -> list[str]:
    return [line for line in text.splitlines() if needle in line]


@pytest.mark.parametrize("mode", MODES)
def test_an_app_without_logging_set_up_keeps_pythons_defaults(app_dir: Path, mode: str) -> None:
    stderr = served_stderr(app_dir, mode, "none")
    # Python's own default for an unconfigured app: warnings and above, bare, on stderr;
    # fcgikit neither lowers the level to INFO nor puts its prefix on the app's lines.
    assert lines_with(stderr, "app info") == []
    assert lines_with(stderr, "app warning") == ["app warning /x"]
    if mode != "cgi":
        assert all(line.startswith("fcgikit[") for line in lines_with(stderr, "listening on"))


@pytest.mark.parametrize("mode", ["serve", "workers", "fcgi"])
def test_an_app_logging_to_its_own_file_logs_there_once(app_dir: Path, mode: str) -> None:
    stderr = served_stderr(app_dir, mode, "own-file")
    assert (app_dir / "app.log").read_text().splitlines() == [
        "APP INFO app info /x",
        "APP WARNING app warning /x",
    ]
    assert lines_with(stderr, "app info") == lines_with(stderr, "app warning") == []
    assert lines_with(stderr, "listening on")  # fcgikit's own lines still reach stderr


@pytest.mark.parametrize("mode", MODES)
def test_an_app_configuring_the_root_logger_gets_each_line_once(app_dir: Path, mode: str) -> None:
    stderr = served_stderr(app_dir, mode, "dictconfig")
    assert lines_with(stderr, "app info") == ["APP INFO app info /x"]
    assert lines_with(stderr, "app warning") == ["APP WARNING app warning /x"]
    if mode != "cgi":
        # dictConfig disabled every logger that existed, fcgikit's too: fcgikit's lines
        # must still be there, once, in fcgikit's format and not through the app's handler
        listening = lines_with(stderr, "listening on")
        assert len(listening) == 1 and listening[0].startswith("fcgikit["), stderr
    # and nothing of fcgikit's went through the app's handler
    assert [line for line in stderr.splitlines() if line.startswith("APP ")] == [
        "APP INFO app info /x",
        "APP WARNING app warning /x",
    ]


def test_log_file_dash_means_stderr(tmp_path: Path) -> None:
    (tmp_path / "logapp.py").write_text(APP_SOURCE)
    sock = tmp_path / "app.sock"
    command = fcgikit_command("serve", "logapp:app", "--bind", f"unix:{sock}", "--log-file", "-")
    backend = Backend(command, cwd=tmp_path, env={"APP_LOG_SETUP": "none"})
    try:
        backend.wait_for(r"^fcgikit\[\d+\] INFO fcgikit: listening on unix:")
    finally:
        assert backend.stop() == 0
    assert not (tmp_path / "-").exists()


# --- configure_logging itself, in this process -----------------------------------------------


@pytest.fixture
def fresh_fcgikit_logger() -> Iterator[logging.Logger]:
    saved = (list(fcgikit_log.handlers), fcgikit_log.level, fcgikit_log.propagate)
    root_handlers, root_level = list(logging.root.handlers), logging.root.level
    for handler in saved[0]:
        fcgikit_log.removeHandler(handler)
    yield fcgikit_log
    for handler in list(fcgikit_log.handlers):
        fcgikit_log.removeHandler(handler)
        handler.close()
    for handler in saved[0]:
        fcgikit_log.addHandler(handler)
    fcgikit_log.setLevel(saved[1])
    fcgikit_log.propagate = saved[2]
    assert (logging.root.handlers, logging.root.level) == (root_handlers, root_level)


def test_configure_logging_touches_only_the_fcgikit_logger(
    fresh_fcgikit_logger: logging.Logger, tmp_path: Path
) -> None:
    root_handlers, root_level = list(logging.root.handlers), logging.root.level
    configure_logging(logging.WARNING, str(tmp_path / "fcgikit.log"))
    configure_logging(logging.DEBUG, str(tmp_path / "fcgikit.log"))  # replaces, not adds
    assert (logging.root.handlers, logging.root.level) == (root_handlers, root_level)
    assert len(fresh_fcgikit_logger.handlers) == 1
    assert (fresh_fcgikit_logger.level, fresh_fcgikit_logger.propagate) == (logging.DEBUG, False)
    logging.getLogger("fcgikit.server").debug("a debug line")
    fresh_fcgikit_logger.handlers[0].flush()
    assert (tmp_path / "fcgikit.log").read_text().endswith("DEBUG a debug line\n")


def test_a_handler_the_app_gave_the_fcgikit_logger_is_kept(
    fresh_fcgikit_logger: logging.Logger,
) -> None:
    mine = logging.NullHandler()
    fresh_fcgikit_logger.addHandler(mine)
    fresh_fcgikit_logger.setLevel(logging.ERROR)
    configure_logging(logging.INFO, None)
    assert fresh_fcgikit_logger.handlers == [mine]
    assert (fresh_fcgikit_logger.level, fresh_fcgikit_logger.propagate) == (logging.ERROR, True)


def test_a_log_file_that_cannot_be_reopened_keeps_the_old_one_and_says_so(
    fresh_fcgikit_logger: logging.Logger, tmp_path: Path
) -> None:
    # logrotate moved the file away, and its directory is gone (or no longer ours)
    directory = tmp_path / "logs"
    directory.mkdir()
    configure_logging(logging.INFO, str(directory / "fcgikit.log"))
    (directory / "fcgikit.log").rename(tmp_path / "fcgikit.log.1")
    directory.rmdir()
    reopen_log_files()
    logging.getLogger("fcgikit.server").warning("after the failed reopen")
    fresh_fcgikit_logger.handlers[0].flush()
    lines = (tmp_path / "fcgikit.log.1").read_text().splitlines()
    assert "cannot reopen" in lines[-2] and "still logging to the old file" in lines[-2]
    assert lines[-1].endswith("after the failed reopen")


def test_the_access_log_goes_where_it_was_last_sent(tmp_path: Path) -> None:
    try:
        configure_access_log(str(tmp_path / "first.log"))
        configure_access_log(str(tmp_path / "second.log"))  # replaces the first
        access_log.info("one request")
        for handler in access_log.handlers:
            handler.flush()
        assert (tmp_path / "second.log").read_text() == "one request\n"
        assert (tmp_path / "first.log").read_text() == ""
    finally:
        configure_access_log(None)
    assert access_log.handlers == []
