"""What each signal does to a real ``fcgikit serve``, one process and a pool, checked against
what ``--help``, the README and docs/operations.rst say (one sentence, word for word)."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from fcgikit.cli import SIGNALS_HELP
from fcgikit.client import FastCGIClient, FastCGIResponse
from tests.processes import ROOT, Backend, fcgikit_command

APP = """\
import sys, time

def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path.startswith("/slow/"):
        print(f"app: started {path}", file=sys.stderr, flush=True)
        time.sleep(float(path.rsplit("/", 1)[1]))
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [f"done {path}".encode()]
"""

MODES = [pytest.param([], id="single-process"), pytest.param(["--workers", "1"], id="workers")]


def normalized(text: str) -> str:
    return " ".join(text.split())


def test_help_readme_and_operations_say_the_same_about_signals() -> None:
    help_text = subprocess.run(
        fcgikit_command("serve", "--help"), capture_output=True, text=True, check=True
    ).stdout
    for where, text in [
        ("fcgikit serve --help", help_text),
        ("README.md", (ROOT / "README.md").read_text()),
        ("docs/operations.rst", (ROOT / "docs" / "operations.rst").read_text()),
    ]:
        assert normalized(SIGNALS_HELP) in normalized(text), where


class Serving:
    """``fcgikit serve app:app`` on a unix socket, one process or a pool of one worker."""

    def __init__(self, tmp_path: Path, mode: list[str], options: Sequence[str] = ()) -> None:
        (tmp_path / "app.py").write_text(APP)
        self.path = str(tmp_path / "app.sock")
        self.pool = bool(mode)
        argv = fcgikit_command("serve", "app:app", "--bind", f"unix:{self.path}", *mode)
        self.backend = Backend([*argv, *options, "--chdir", str(tmp_path)])
        self.wait_ready()

    def wait_ready(self, count: int = 1) -> None:
        self.backend.wait_for(r"worker \d+ ready" if self.pool else "listening on", count=count)

    def get(self, path: str) -> FastCGIResponse:
        return FastCGIClient(f"unix:{self.path}", timeout=30).request("GET", path)

    def signal(self, signum: int) -> None:
        self.backend.proc.send_signal(signum)

    def slow_request(self, seconds: float) -> tuple[threading.Thread, list[object]]:
        """A request that runs ``seconds`` in the app, started and seen running."""
        outcome: list[object] = []

        def run() -> None:
            try:
                outcome.append(self.get(f"/slow/{seconds}"))
            except Exception as exc:
                outcome.append(exc)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        self.backend.wait_for(f"app: started /slow/{seconds}")
        return thread, outcome


@pytest.fixture
def serving(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Serving]:
    running = Serving(tmp_path, request.param)
    try:
        yield running
    finally:
        running.backend.kill()


@pytest.mark.parametrize("serving", MODES, indirect=True)
def test_sigterm_lets_the_running_request_finish_then_exits_0(serving: Serving) -> None:
    thread, outcome = serving.slow_request(0.5)
    serving.signal(signal.SIGTERM)
    assert serving.backend.stop(signal.SIGTERM) == 0
    thread.join(30)
    response = outcome[0]
    assert isinstance(response, FastCGIResponse), outcome
    assert response.status == 200
    assert response.body == b"done /slow/0.5"
    assert not os.path.exists(serving.path)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGQUIT])
@pytest.mark.parametrize("serving", MODES, indirect=True)
def test_sigint_and_sigquit_stop_at_once_and_cleanly(serving: Serving, signum: int) -> None:
    thread, outcome = serving.slow_request(600)
    assert serving.backend.stop(signum) == 0  # not after 600 s: Backend.stop waits 30
    thread.join(30)
    assert outcome and not isinstance(outcome[0], FastCGIResponse), outcome  # cut off
    name = signal.Signals(signum).name
    if serving.pool:
        assert f"{name}: stopping now" in serving.backend.stderr
    else:
        said = serving.backend.wait_for(f"received {name}; stopping at once: (\\d+) running")
        assert said.group(1) == "1"
    assert not os.path.exists(serving.path)
    assert "Traceback" not in serving.backend.stderr


@pytest.mark.parametrize("serving", MODES, indirect=True)
def test_sighup_reloads_on_the_same_socket(serving: Serving) -> None:
    pid, inode = serving.backend.proc.pid, os.stat(serving.path).st_ino
    serving.signal(signal.SIGHUP)
    if serving.pool:
        serving.backend.wait_for("reload complete")
    else:
        serving.wait_ready(count=2)  # the same process, re-executed, listening again
    assert serving.get("/after").body == b"done /after"
    assert serving.backend.proc.poll() is None and serving.backend.proc.pid == pid
    assert os.stat(serving.path).st_ino == inode  # the very socket, never removed
    assert serving.backend.stop(signal.SIGTERM) == 0
    assert not os.path.exists(serving.path)


@pytest.mark.parametrize("serving", MODES, indirect=True)
def test_sigusr1_reopens_the_logs_and_ttin_ttou_resize_only_a_pool(serving: Serving) -> None:
    serving.signal(signal.SIGUSR1)
    serving.backend.wait_for("SIGUSR1: reopened")
    serving.signal(signal.SIGTTIN)
    if serving.pool:
        serving.backend.wait_for("SIGTTIN: 2 workers wanted")
        serving.wait_ready(count=2)
    else:
        serving.backend.wait_for("SIGTTIN ignored")
    serving.signal(signal.SIGTTOU)
    if serving.pool:
        serving.backend.wait_for("SIGTTOU: 1 workers wanted")
    else:
        serving.backend.wait_for("SIGTTOU ignored")
    assert serving.get("/still").body == b"done /still"
    assert serving.backend.stop(signal.SIGTERM) == 0
    assert "Traceback" not in serving.backend.stderr
