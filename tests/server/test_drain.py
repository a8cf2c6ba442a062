"""--shutdown-delay and --ping-path on a real ``fcgikit serve``, one process and a pool: after
SIGTERM it serves on while the ping answers 503, then stops gracefully."""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from fcgikit.client import FastCGIClient, FastCGIResponse
from fcgikit.server.status import DIRECT_CLIENT_PARAM
from tests.processes import Backend, fcgikit_command
from tests.server.test_signals import APP, Serving

MODES = [pytest.param([], id="single-process"), pytest.param(["--workers", "2"], id="pool")]
#: the line each says when SIGTERM starts a drain
DRAINING = r"serving on for|SIGTERM: draining"


class Draining(Serving):
    """``fcgikit serve app:app --ping-path /ping --shutdown-delay ...`` on a unix socket."""

    def __init__(self, tmp_path: Path, mode: list[str], delay: float) -> None:
        super().__init__(tmp_path, mode, ["--ping-path", "/ping", "--shutdown-delay", str(delay)])
        if self.pool:
            self.wait_ready(count=2)

    def probe(self) -> tuple[int, str]:
        """``fcgikit request --fail`` for the ping: its exit status and what it printed."""
        command = fcgikit_command("request", "--fail", f"unix:{self.path}", "/ping")
        done = subprocess.run(command, capture_output=True, text=True, timeout=60)
        return done.returncode, done.stdout.strip()


@pytest.fixture
def serving(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Draining]:
    mode, delay = request.param
    running = Draining(tmp_path, mode, delay)
    try:
        yield running
    finally:
        running.backend.kill()


def _with_delay(delay: float) -> list[object]:
    return [pytest.param((mode.values[0], delay), id=mode.id) for mode in MODES]


@pytest.mark.parametrize("serving", _with_delay(600), indirect=True)
def test_sigterm_drains_the_ping_says_503_and_requests_are_still_served(
    serving: Draining,
) -> None:
    assert serving.get("/ping").body == b"pong"
    assert serving.probe() == (0, "pong")
    thread, outcome = serving.slow_request(0.5)
    serving.backend.proc.send_signal(signal.SIGTERM)
    serving.backend.wait_for(DRAINING)
    # a pool's workers all read the master's word: each ping, wherever it lands, is 503
    pings = [serving.get("/ping") for _ in range(8)]
    assert [(p.status, p.body) for p in pings] == [(503, b"draining\n")] * 8
    # what a Kubernetes readiness probe runs (docs/deploy/k8s): not ready any more
    assert serving.probe() == (22, "draining")
    # still accepting, still serving
    assert serving.get("/during-the-drain").body == b"done /during-the-drain"
    assert serving.backend.proc.poll() is None
    # a second SIGTERM ends the wait (600 s here): the running request still finishes
    assert serving.backend.stop(signal.SIGTERM) == 0
    thread.join(30)
    response = outcome[0]
    assert isinstance(response, FastCGIResponse), outcome
    assert response.body == b"done /slow/0.5"


@pytest.mark.parametrize("serving", _with_delay(0.5), indirect=True)
def test_after_the_delay_it_stops_gracefully_by_itself(serving: Draining) -> None:
    thread, outcome = serving.slow_request(1.5)
    serving.backend.proc.send_signal(signal.SIGTERM)
    serving.backend.wait_for(DRAINING)
    assert serving.backend.proc.wait(30) == 0
    thread.join(30)
    response = outcome[0]
    assert isinstance(response, FastCGIResponse), outcome
    assert response.body == b"done /slow/1.5"
    stderr = serving.backend.stderr
    if serving.pool:
        assert "drained; stopping gracefully" in stderr
    else:
        assert "received SIGTERM; finishing running requests" in stderr


POOL_WITHOUT_DELAY = [pytest.param((["--workers", "2"], 0), id="pool")]


@pytest.mark.parametrize("serving", POOL_WITHOUT_DELAY, indirect=True)
def test_a_reload_never_fails_the_ping(serving: Draining) -> None:
    """The old workers a reload replaces stop on their own, not as a drain: the pool serves
    on, so a health check must not take it out of rotation."""
    serving.backend.proc.send_signal(signal.SIGHUP)
    statuses = []
    while not serving.backend.count("reload complete") and len(statuses) < 10_000:
        statuses.append(serving.get("/ping").status)
    serving.backend.wait_for("reload complete")
    statuses.append(serving.get("/ping").status)
    assert set(statuses) == {200}


def test_a_pools_pings_are_not_the_apps_requests(tmp_path: Path) -> None:
    """A worker answers pings beside the app: they do not show on the status page, and do
    not count towards --max-requests (the worker's count of the app's requests)."""
    (tmp_path / "app.py").write_text(APP)
    path = str(tmp_path / "app.sock")
    argv = fcgikit_command("serve", "app:app", "--bind", f"unix:{path}", "--workers", "1")
    options = ["--max-requests", "3", "--ping-path", "/ping", "--status-path", "/status"]
    backend = Backend([*argv, *options, "--chdir", str(tmp_path)])
    try:
        backend.wait_for(r"worker \d+ ready")
        client = FastCGIClient(f"unix:{path}", timeout=30)
        for _ in range(10):
            assert client.request("GET", "/ping").body == b"pong"
        assert client.request("GET", "/app").body == b"done /app"
        direct = {DIRECT_CLIENT_PARAM: "fcgikit status"}
        reply = client.request("GET", "/status", query="json", params=direct)
        status = json.loads(reply.body)
        assert status["accepted_requests"] == 1
        assert [worker["requests"] for worker in status["workers"]] == [1]
        assert backend.count("--max-requests") == 0
    finally:
        assert backend.stop() == 0


@pytest.mark.parametrize(
    "serving", [pytest.param((["--workers", "2"], 600), id="pool")], indirect=True
)
def test_a_reload_asked_while_the_pool_drains_is_ignored(serving: Draining) -> None:
    """SIGHUP during the drain would start workers that answer their pings 200 again."""
    serving.backend.proc.send_signal(signal.SIGTERM)
    serving.backend.wait_for(DRAINING)
    serving.backend.proc.send_signal(signal.SIGHUP)
    serving.backend.wait_for("SIGHUP ignored: the pool is draining")
    assert serving.get("/ping").status == 503
    assert serving.get("/still").body == b"done /still"
    assert serving.backend.stop(signal.SIGTERM) == 0
    assert serving.backend.count(r"worker \d+ ready") == 2  # no new generation
