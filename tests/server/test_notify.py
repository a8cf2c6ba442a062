"""systemd's notify protocol: what a real ``fcgikit serve`` (one process, a pool) tells a real
datagram socket as it starts, reloads and stops; and under a real systemd where there is one."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from fcgikit.client import FastCGIClient
from fcgikit.server.notify import SystemdNotifier
from fcgikit.server.settings import ServerSettings
from tests.integration.harness import missing
from tests.processes import ROOT, Backend, fcgikit_command

APP = """\
def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"hello"]
"""

MODES = [pytest.param([], id="single-process"), pytest.param(["--workers", "2"], id="pool")]
#: what a service systemd starts must inherit from the suite (the pure-Python pass)
PASSED = ("FCGIKIT_PURE_PYTHON",)

#: the threads of a server started with the default settings, as its STATUS= line counts them
THREADS = ServerSettings().threads


class Systemd:
    """The service manager's end: a datagram socket that collects what fcgikit says."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(b"\0" + address[1:].encode() if address.startswith("@") else address)
        self.messages: list[dict[str, str]] = []

    def next(self, timeout: float = 30) -> dict[str, str]:
        self.sock.settimeout(timeout)
        data = self.sock.recv(65536).decode()
        message = dict(line.split("=", 1) for line in data.split("\n"))
        self.messages.append(message)
        return message

    def wait_for(self, name: str, timeout: float = 30) -> dict[str, str]:
        """The next message that says ``name`` (READY, RELOADING, ...), the others kept."""
        return self.wait_until(lambda message: name in message, name, timeout)

    def wait_until(
        self, wanted: Callable[[dict[str, str]], bool], what: str, timeout: float = 30
    ) -> dict[str, str]:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {what} in {timeout}s; got {self.messages}")
            message = self.next(left)
            if wanted(message):
                return message

    def status_seen(self, text: str, timeout: float = 30) -> None:
        """Until a STATUS= that says ``text`` came (maybe already)."""
        if not any(text in message.get("STATUS", "") for message in self.messages):
            self.wait_until(lambda message: text in message.get("STATUS", ""), text, timeout)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture(params=["path", "abstract"])
def systemd(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Systemd]:
    if request.param == "path":
        address = str(tmp_path / "notify.sock")
    else:
        address = f"@fcgikit-test-{uuid.uuid4().hex}"
    manager = Systemd(address)
    try:
        yield manager
    finally:
        manager.close()


def start(
    tmp_path: Path, mode: list[str], env: dict[str, str], app: str = APP
) -> tuple[Backend, str]:
    (tmp_path / "app.py").write_text(app)
    path = str(tmp_path / "app.sock")
    argv = fcgikit_command("serve", "app:app", "--bind", f"unix:{path}", *mode)
    return Backend([*argv, "--chdir", str(tmp_path)], env=env), path


@pytest.mark.parametrize("mode", MODES)
def test_ready_reloading_ready_stopping(tmp_path: Path, systemd: Systemd, mode: list[str]) -> None:
    backend, path = start(tmp_path, mode, {"NOTIFY_SOCKET": systemd.address})
    try:
        ready = systemd.wait_for("READY")
        assert ready["READY"] == "1"
        assert ready["MAINPID"] == str(backend.proc.pid)
        # it serves by the time it says so
        assert FastCGIClient(f"unix:{path}").request("GET", "/").body == b"hello"

        backend.proc.send_signal(signal.SIGHUP)
        reloading = systemd.wait_for("RELOADING")
        # Type=notify-reload (systemd 253+) wants the time of the reload's start with it
        assert abs(int(reloading["MONOTONIC_USEC"]) - time.monotonic_ns() // 1000) < 60_000_000
        ready_again = systemd.wait_for("READY")
        # the single process re-executed itself: the same pid, a new process that listens
        assert ready_again["MAINPID"] == str(backend.proc.pid)
        if mode:
            backend.wait_for("reload complete")
        else:
            backend.wait_for("listening on", count=2)
        assert FastCGIClient(f"unix:{path}").request("GET", "/").body == b"hello"

        backend.proc.send_signal(signal.SIGTERM)
        stopping = systemd.wait_for("STOPPING")
        assert "SIGTERM" in stopping["STATUS"]
        assert backend.proc.wait(30) == 0
    finally:
        backend.kill()


@pytest.mark.parametrize("mode", MODES)
def test_watchdog_and_status(tmp_path: Path, mode: list[str]) -> None:
    """WATCHDOG=1 every half of WATCHDOG_USEC, and a STATUS= that follows the requests."""
    systemd = Systemd(str(tmp_path / "notify.sock"))
    env = {"NOTIFY_SOCKET": systemd.address, "WATCHDOG_USEC": "200000"}
    backend, path = start(tmp_path, mode, env)
    try:
        first = systemd.wait_for("WATCHDOG")
        for _ in range(3):
            systemd.wait_for("WATCHDOG", timeout=10)
        assert first["WATCHDOG"] == "1"
        if mode:
            systemd.status_seen("2 workers (0 busy, 0 starting), 0 requests served")
            for _ in range(3):
                FastCGIClient(f"unix:{path}").request("GET", "/")
            systemd.status_seen("3 requests served")
        else:
            systemd.status_seen(f"0 of {THREADS} threads busy, 0 requests waiting, 0 connections")
    finally:
        backend.stop()
        systemd.close()


@pytest.mark.parametrize("mode", MODES)
def test_the_status_says_it_stops_while_it_drains(tmp_path: Path, mode: list[str]) -> None:
    """During --shutdown-delay the server still serves and its STATUS= lines follow what it
    does; they keep saying that it stops (systemctl status)."""
    systemd = Systemd(str(tmp_path / "notify.sock"))
    drain = ["--ping-path", "/ping", "--shutdown-delay", "600", *mode]
    backend, path = start(tmp_path, drain, {"NOTIFY_SOCKET": systemd.address})
    try:
        systemd.wait_for("READY")
        backend.proc.send_signal(signal.SIGTERM)
        assert "SIGTERM" in systemd.wait_for("STOPPING")["STATUS"]
        if mode:
            # a pool: the figures change as requests are served
            for _ in range(3):
                assert FastCGIClient(f"unix:{path}").request("GET", "/").body == b"hello"
            systemd.status_seen("draining, 2 workers (0 busy, 0 starting), 3 requests served")
        else:
            # one process: a connection that stays open changes them
            with socket.socket(socket.AF_UNIX) as idle:
                idle.connect(path)
                idle_line = f"stopping, 0 of {THREADS} threads busy, 0 requests waiting, 1 conn"
                systemd.status_seen(idle_line)
    finally:
        backend.stop()
        systemd.close()


HOLDING_APP = """\
import os, sys, time

def app(environ, start_response):
    print("app: holding", file=sys.stderr, flush=True)
    while os.path.exists("hold"):  # the test removes it to let the request end
        time.sleep(0.01)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"released"]
"""


@pytest.mark.parametrize("mode", MODES)
def test_the_watchdog_goes_on_while_a_stop_waits_for_requests(
    tmp_path: Path, mode: list[str]
) -> None:
    """A graceful stop may wait --graceful-timeout for a request; systemd must not take the
    quiet for a hang (WatchdogSec=) meanwhile."""
    systemd = Systemd(str(tmp_path / "notify.sock"))
    env = {"NOTIFY_SOCKET": systemd.address, "WATCHDOG_USEC": "200000"}
    backend, path = start(tmp_path, mode, env, HOLDING_APP)
    hold = tmp_path / "hold"
    hold.touch()
    outcome: list[object] = []

    def run() -> None:
        try:
            outcome.append(FastCGIClient(f"unix:{path}", timeout=60).request("GET", "/").body)
        except Exception as exc:  # reported by the assertion below
            outcome.append(exc)

    request = threading.Thread(target=run, daemon=True)
    try:
        systemd.wait_for("READY")
        request.start()
        backend.wait_for("app: holding")
        backend.proc.send_signal(signal.SIGTERM)
        systemd.wait_for("STOPPING")
        for _ in range(3):
            systemd.wait_for("WATCHDOG", timeout=10)
        hold.unlink()
        request.join(30)
        assert outcome == [b"released"]
        assert backend.proc.wait(30) == 0
    finally:
        hold.unlink(missing_ok=True)
        backend.kill()
        systemd.close()


def test_serve_help_says_what_systemd_hears() -> None:
    help_text = subprocess.run(
        fcgikit_command("serve", "--help"), capture_output=True, text=True, check=True
    ).stdout
    said = " ".join(help_text.split())
    for message in ("READY=1", "RELOADING=1", "STOPPING=1", "STATUS=", "WATCHDOG=1"):
        assert message in said
    assert "fcgikit config systemd" in said


def test_a_watchdog_meant_for_another_process_is_not_kept() -> None:
    environ = {"NOTIFY_SOCKET": "/run/systemd/notify", "WATCHDOG_USEC": "10000000"}
    own = SystemdNotifier.from_environ({**environ, "WATCHDOG_PID": str(os.getpid())})
    other = SystemdNotifier.from_environ({**environ, "WATCHDOG_PID": "1"})
    assert own is not None and own.watchdog_every == 5.0
    assert other is not None and other.watchdog_every is None
    assert SystemdNotifier.from_environ({}) is None
    assert SystemdNotifier.from_environ({"NOTIFY_SOCKET": "relative/path"}) is None
    for notifier in (own, other):
        notifier.close()


def test_a_manager_that_does_not_listen_costs_one_log_line(tmp_path: Path) -> None:
    backend, path = start(tmp_path, [], {"NOTIFY_SOCKET": str(tmp_path / "nobody.sock")})
    try:
        backend.wait_for("listening on")
        backend.wait_for("cannot tell systemd")
        assert FastCGIClient(f"unix:{path}").request("GET", "/").body == b"hello"
        backend.proc.send_signal(signal.SIGHUP)
        backend.wait_for("listening on", count=2)
        assert FastCGIClient(f"unix:{path}").request("GET", "/").body == b"hello"
    finally:
        assert backend.stop() == 0
    # one line per process (the re-executed one is a new process)
    assert backend.count("cannot tell systemd") == 2


# --------------------------------------------------------------------------- a real systemd


def systemd_runs_here() -> bool:
    try:
        return Path("/proc/1/comm").read_text().strip() == "systemd"
    except OSError:
        return False


def systemctl_show(unit: str, *names: str) -> dict[str, str]:
    shown = subprocess.run(
        ["systemctl", "show", unit, *(f"--property={name}" for name in names)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return dict(line.split("=", 1) for line in shown.splitlines() if "=" in line)


def wait_for_state(unit: str, wanted: dict[str, str], timeout: float = 60) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    while True:
        shown = systemctl_show(unit, *wanted, "StatusText", "MainPID")
        if all(shown.get(name) == value for name, value in wanted.items()):
            return shown
        if time.monotonic() > deadline:
            raise AssertionError(f"{unit}: {shown}, not {wanted}, after {timeout}s")


@pytest.mark.skipif(not systemd_runs_here(), reason="systemd is not PID 1 on this machine")
@pytest.mark.parametrize("mode", MODES)
def test_under_real_systemd(tmp_path: Path, mode: list[str]) -> None:
    """A Type=notify service started by systemd itself: active once fcgikit says READY, a
    reload that systemd waits for, a stop; with the unit's settings ``fcgikit config
    systemd`` writes."""
    for tool in ("systemd-run", "systemctl"):
        if shutil.which(tool) is None:
            missing(f"{tool} not found: install the Debian package systemd")
    if os.geteuid() != 0:
        pytest.fail("the systemd test runs as root, as the suite does in CI")
    (tmp_path / "app.py").write_text(APP)
    tmp_path.chmod(0o755)
    path = str(tmp_path / "app.sock")
    unit = f"fcgikit-test-{uuid.uuid4().hex[:12]}"
    argv = fcgikit_command("serve", "app:app", "--bind", f"unix:{path}", *mode)
    run = [
        "systemd-run",
        f"--unit={unit}",
        "--property=Type=notify",
        "--property=NotifyAccess=main",
        "--property=KillMode=mixed",
        "--property=ExecReload=/bin/kill -HUP $MAINPID",
        f"--property=WorkingDirectory={tmp_path}",
        f"--setenv=PYTHONPATH={ROOT}",
        *[f"--setenv={name}={value}" for name, value in os.environ.items() if name in PASSED],
        *argv,
    ]
    subprocess.run(run, check=True, capture_output=True)
    try:
        shown = wait_for_state(unit, {"ActiveState": "active", "SubState": "running"})
        assert "busy" in shown["StatusText"], shown
        main_pid = shown["MainPID"]
        assert FastCGIClient(f"unix:{path}").request("GET", "/").body == b"hello"
        # systemctl reload returns once fcgikit said READY=1 again
        subprocess.run(["systemctl", "reload", unit], check=True, timeout=60)
        shown = systemctl_show(unit, "ActiveState", "MainPID")
        assert shown == {"ActiveState": "active", "MainPID": main_pid}
        assert FastCGIClient(f"unix:{path}").request("GET", "/").body == b"hello"
        subprocess.run(["systemctl", "stop", unit], check=True, timeout=60)
        shown = systemctl_show(unit, "ActiveState", "Result")
        assert shown["Result"] == "success", shown
    finally:
        subprocess.run(["systemctl", "stop", unit], check=False, capture_output=True)
        subprocess.run(["systemctl", "reset-failed", unit], check=False, capture_output=True)
