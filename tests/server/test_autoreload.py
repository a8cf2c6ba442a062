"""``fcgikit serve --reload`` as real processes: edit a file in a temp app directory and see
the new answer, over FastCGI (fcgikit's client) and over ``--http``, with requests going on
all the while and none failing. Every wait is for something the process says or answers,
with a deadline; a saved file gets a later mtime explicitly, so the mtime's granularity
cannot hide it from the poller."""

from __future__ import annotations

import http.client
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from fcgikit.client import FastCGIClient
from tests.processes import ROOT, Backend, fcgikit_command

APP = """import os

def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"{version} " + str(os.getpid()).encode()]
"""
DEADLINE = 60.0

#: A module that shadows the installed watchfiles: the reloader as it runs without it.
NO_WATCHFILES = "raise ImportError('watchfiles is not installed (a test pretends)')\n"


def save(path: Path, text: str) -> None:
    """Save as editors do (a new file renamed into place), with a later modification time."""
    before = path.stat().st_mtime_ns if path.exists() else 0
    temporary = path.with_name(f".{path.name}.swp")
    temporary.write_text(text)
    os.utime(temporary, ns=(before + 2_000_000_000, before + 2_000_000_000))
    os.replace(temporary, path)


class Traffic:
    """Clients sending requests back to back while the app is reloaded, keeping every
    answer (or the exception that replaced it). Bounded in count and time: each client
    stops after ``limit`` requests or :data:`DEADLINE` seconds, if the test has not stopped
    it before."""

    def __init__(self, get: Callable[[], bytes], clients: int = 3, limit: int = 20000) -> None:
        self.get = get
        self.limit = limit
        self.answers: list[bytes] = []
        self.versions: Counter[bytes] = Counter()
        self.failures: list[BaseException] = []
        self.finished = 0
        self.cond = threading.Condition()
        self.done = threading.Event()
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(clients)]

    def _run(self) -> None:
        deadline = time.monotonic() + DEADLINE
        try:
            for _ in range(self.limit):
                if self.done.is_set() or time.monotonic() > deadline:
                    return
                try:
                    answer = self.get()
                except Exception as exc:
                    with self.cond:
                        self.failures.append(exc)
                    continue
                with self.cond:
                    self.answers.append(answer)
                    self.versions[answer.split()[0]] += 1
                    self.cond.notify_all()
        finally:
            with self.cond:
                self.finished += 1
                self.cond.notify_all()

    def __enter__(self) -> Traffic:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        for thread in self.threads:
            thread.join(DEADLINE)

    def wait_for(self, version: str, count: int = 20) -> None:
        """Until ``count`` answers came from ``version`` of the app."""
        key = version.encode()
        with self.cond:
            self.cond.wait_for(
                lambda: self.versions[key] >= count or self.finished == len(self.threads),
                DEADLINE,
            )
            if self.versions[key] < count:
                raise AssertionError(
                    f"{version} served {self.versions[key]} times in {len(self.answers)} "
                    f"answers ({dict(self.versions)}); failures: {self.failures[:3]}"
                )


def fastcgi_get(sock: Path) -> Callable[[], bytes]:
    def get() -> bytes:
        response = FastCGIClient(f"unix:{sock}", timeout=DEADLINE).request("GET", "/")
        assert response.status == 200, response
        return response.body

    return get


def http_get(port: int) -> Callable[[], bytes]:
    def get() -> bytes:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=DEADLINE)
        try:
            connection.request("GET", "/")
            reply = connection.getresponse()
            body = reply.read()
        finally:
            connection.close()
        assert reply.status == 200, (reply.status, body)
        return body

    return get


@pytest.fixture
def app_dir(tmp_path: Path) -> Iterator[Path]:
    save(tmp_path / "reload_app.py", APP.format(version="v1"))
    yield tmp_path


def start(app_dir: Path, *args: str, env: dict[str, str] | None = None) -> Backend:
    command = fcgikit_command("serve", "reload_app:app", "--reload", *args)
    return Backend(command, cwd=app_dir, env=env)


def stop(backend: Backend) -> str:
    """SIGTERM to the reloader stops everything: exit status 0, no process left behind."""
    try:
        assert backend.stop(signal.SIGTERM) == 0, backend.stderr
        backend.wait_for(r"fcgikit master \d+: stopped")
    finally:
        backend.kill()
    return backend.stderr


ENGINES = [
    pytest.param([], {}, "watchfiles", id="auto: watchfiles"),
    pytest.param(["--reload-engine", "poll"], {}, "polling every 1s", id="poll"),
    pytest.param([], {"hide": "yes"}, "polling every 1s; pip install", id="auto, no watchfiles"),
]


@pytest.mark.parametrize(("args", "options", "described"), ENGINES)
def test_an_edit_is_served_without_a_failed_request(
    app_dir: Path, args: list[str], options: dict[str, str], described: str
) -> None:
    env = None
    if options:
        (app_dir / "stub").mkdir()
        (app_dir / "stub" / "watchfiles.py").write_text(NO_WATCHFILES)
        env = {"PYTHONPATH": str(app_dir / "stub")}
    sock = app_dir / "app.sock"
    backend = start(app_dir, "--bind", f"unix:{sock}", *args, env=env)
    try:
        backend.wait_for(r"worker \d+ ready")
        watching = backend.wait_for(r"fcgikit reload: watching (.*) \((.*)\)")
        assert watching.group(1) == str(app_dir)
        assert watching.group(2).startswith(described)
        with Traffic(fastcgi_get(sock)) as traffic:
            traffic.wait_for("v1")
            save(app_dir / "reload_app.py", APP.format(version="v2"))
            traffic.wait_for("v2")
        assert traffic.failures == []
        assert {answer.split()[0] for answer in traffic.answers} <= {b"v1", b"v2"}
        backend.wait_for("reload_app.py changed; reloading the app")
    finally:
        stop(backend)
    assert not sock.exists()


def test_edit_save_refresh_over_http(app_dir: Path) -> None:
    backend = start(app_dir, "--http", "127.0.0.1:0")
    try:
        port = int(backend.wait_for(r"development front on http://127\.0\.0\.1:(\d+)").group(1))
        backend.wait_for(r"worker \d+ ready")
        backend.wait_for("fcgikit reload: watching")
        with Traffic(http_get(port)) as traffic:
            traffic.wait_for("v1")
            save(app_dir / "reload_app.py", APP.format(version="v2"))
            traffic.wait_for("v2")
            save(app_dir / "reload_app.py", APP.format(version="v3"))
            traffic.wait_for("v3")
        assert traffic.failures == []
    finally:
        text = stop(backend)
    dev_socket = re.search(r"-> unix:(\S+)", text)
    assert dev_socket is not None and not Path(dev_socket.group(1)).parent.exists()


def test_a_syntax_error_is_logged_once_and_the_old_app_keeps_serving(app_dir: Path) -> None:
    sock = app_dir / "app.sock"
    get = fastcgi_get(sock)
    backend = start(app_dir, "--bind", f"unix:{sock}", "--log-level", "debug")
    broken = APP.format(version="v2").replace("def app(environ, start_response):", "def app(:")
    try:
        backend.wait_for(r"worker \d+ ready")
        backend.wait_for("fcgikit reload: watching")
        save(app_dir / "reload_app.py", broken)
        line = backend.wait_for(r"ERROR fcgikit reload: (.*)").group(1)
        assert line == (
            "reload_app.py:3: invalid syntax; the app keeps running the code it had until the "
            "file compiles"
        )
        assert get().startswith(b"v1 ")
        save(app_dir / "reload_app.py", broken + "\n")  # saved again, still broken
        # The end of that save's check, not its "changed:" line (said before the file is
        # read): v3, saved while that check had yet to read the file, would be read by it
        # and again by its own check: two reloads, generation 3 overtaking generation 2.
        backend.wait_for(r"not reloading: reload_app\.py does not compile", count=2)
        assert get().startswith(b"v1 ")
        assert backend.count("ERROR fcgikit reload") == 1
        assert backend.count("reloading the app") == 0
        save(app_dir / "reload_app.py", APP.format(version="v3"))
        backend.wait_for(r"reload complete: 1 workers of generation 2")
        assert get().startswith(b"v3 ")
        assert backend.count("ERROR") == 1  # no worker failed to import it either
    finally:
        stop(backend)


def test_with_workers_the_whole_pool_is_reloaded(app_dir: Path) -> None:
    sock = app_dir / "app.sock"
    backend = start(app_dir, "--bind", f"unix:{sock}", "--workers", "2", "--reload-engine", "poll")
    try:
        backend.wait_for(r"worker \d+ ready", count=2)
        backend.wait_for("fcgikit reload: watching")
        first = set(re.findall(r"worker (\d+) ready", backend.stderr))
        with Traffic(fastcgi_get(sock), clients=4) as traffic:
            traffic.wait_for("v1")
            save(app_dir / "reload_app.py", APP.format(version="v2"))
            backend.wait_for(r"reload complete: 2 workers of generation 2")
            traffic.wait_for("v2")
        assert traffic.failures == []
        now = set(re.findall(r"worker (\d+) ready \(generation 2\)", backend.stderr))
        assert len(now) == 2 and not now & first
        served_after = {a.split()[1].decode() for a in traffic.answers if a.startswith(b"v2")}
        assert served_after <= now
    finally:
        stop(backend)


def test_a_master_whose_reloader_is_killed_stops(app_dir: Path) -> None:
    sock = app_dir / "app.sock"
    backend = start(app_dir, "--bind", f"unix:{sock}")
    try:
        backend.wait_for(r"worker \d+ ready")
        backend.proc.kill()  # the reloader alone, as kill -9 would
        assert backend.proc.wait(DEADLINE) == -signal.SIGKILL  # (so backend.kill spares the rest)
        backend.wait_for(r"SIGTERM: stopping gracefully")
        backend.wait_for(r"fcgikit master \d+: stopped")
    finally:
        backend.kill()
    assert not sock.exists(), backend.stderr


def test_an_app_that_cannot_load_at_start_stops_everything(app_dir: Path) -> None:
    save(app_dir / "reload_app.py", "import module_that_does_not_exist_anywhere\n")
    backend = start(app_dir, "--bind", f"unix:{app_dir / 'app.sock'}")
    try:
        assert backend.proc.wait(DEADLINE) == 3  # as without --reload: fix it, start again
    finally:
        backend.kill()
    assert "no worker ever could" in backend.stderr


def run(app_dir: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = subprocess.run(
        fcgikit_command("serve", "reload_app:app", *args),
        cwd=app_dir,
        capture_output=True,
        text=True,
        timeout=DEADLINE,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), *(env or {}).values()])},
    )
    return result.returncode, result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["--reload", "--preload"], "use one or the other", id="preload"),
        pytest.param(["--reload", "--reload-dir", "nope"], "--reload-dir nope: no such", id="dir"),
        pytest.param(["--reload-dir", "."], "go with --reload", id="dir without --reload"),
        pytest.param(["--reload-engine", "poll"], "go with --reload", id="engine without"),
        pytest.param(["--reload", "--http", "unix:/x"], "--http takes HOST:PORT", id="bad --http"),
        pytest.param(
            ["--reload", "--http", "127.0.0.1:0", "--bind", "127.0.0.1:0"],
            "a port, not 127.0.0.1:0",
            id="--http to a port not known yet",
        ),
    ],
)
def test_refused_at_start(app_dir: Path, args: list[str], message: str) -> None:
    code, stderr = run(app_dir, *args)
    assert code == 2, stderr
    assert message in stderr
    assert "Traceback" not in stderr


def test_asking_for_watchfiles_without_it_says_what_to_install(app_dir: Path) -> None:
    (app_dir / "stub").mkdir()
    (app_dir / "stub" / "watchfiles.py").write_text(NO_WATCHFILES)
    stub = {"PYTHONPATH": str(app_dir / "stub")}
    code, stderr = run(app_dir, "--reload", "--reload-engine", "watchfiles", env=stub)
    assert code == 2
    assert f"watchfiles is not installed in {sys.executable}" in stderr
    assert "pip install 'fcgikit[reload]'" in stderr


def test_the_flags_are_in_serve_help(capsys: pytest.CaptureFixture[str]) -> None:
    from fcgikit.cli import main

    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for words in ("--reload ", "--reload-dir DIR", "--reload-engine {auto,watchfiles,poll}"):
        assert words in text, words
