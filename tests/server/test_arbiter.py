"""The prefork master: its pieces in-process, and the whole thing as real processes and signals.

Process tests start ``python -m fcgikit serve ... --workers`` on a unix socket in a temp dir and
wait for what it logs (never a sleep). Requests go over a plain socket with the sans-I/O
:class:`~fcgikit.protocol.ClientConnection`, one connection per request, like nginx without
``fastcgi_keep_conn``.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import fcgikit
from fcgikit.errors import ConfigError
from fcgikit.protocol import ACCELERATED, ClientConnection, RequestEnded, StdoutData
from fcgikit.server.arbiter import Arbiter
from fcgikit.server.scoreboard import Scoreboard, WorkerState
from fcgikit.server.settings import PoolSettings, ServerSettings
from fcgikit.server.status import DIRECT_CLIENT_PARAM, StatusPage, parse_allow
from fcgikit.server.worker import RequestTracker, request_label
from tests.integration.harness import missing
from tests.processes import Backend
from tests.server.test_keeper import gone, slot_left

APP_SOURCE = """
import os, sys, time

def say(text):
    sys.stderr.write(text + "\\n")  # one write: the workers share the pipe


while os.path.exists("hold-import"):  # a test keeps the worker from becoming ready
    time.sleep(0.01)
say(f"app imported in {os.getpid()}")

def app(environ, start_response):
    path, query = environ["PATH_INFO"], environ["QUERY_STRING"]
    if path == "/sleep":
        say(f"sleeping in {os.getpid()}: {query}")
        time.sleep(float(query))
    elif path == "/hold":
        say(f"holding in {os.getpid()}")
        while not os.path.exists(query):
            time.sleep(0.01)
    elif path == "/uid":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [f"{os.getuid()}:{os.getgid()}".encode()]
    elif path == "/log":  # into the server's log, where a WSGI app may write
        environ["wsgi.errors"].write(f"app log line from {os.getpid()}\\n")
    elif path == "/crash":
        os._exit(3)
    elif path == "/policy":  # the scheduling policy of the thread that runs the request
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [str(os.sched_getscheduler(0)).encode()]
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(os.getpid()).encode()]
"""

POOL_TIMEOUT = 20.0


# --- a FastCGI request over a fresh connection ---------------------------------------------


@dataclass
class Reply:
    status: int | None  # None: the connection ended without FCGI_END_REQUEST
    body: bytes
    headers: dict[str, str]


def get_request(
    client: ClientConnection,
    path: str,
    query: str = "",
    remote: str = "127.0.0.1",
    extra: dict[bytes, bytes] | None = None,
) -> bytes:
    """A whole GET request, as nginx sends it (request id 1, no keep-conn)."""
    params = {
        b"REQUEST_METHOD": b"GET",
        b"SCRIPT_NAME": b"",
        b"PATH_INFO": path.encode(),
        b"QUERY_STRING": query.encode(),
        b"REQUEST_URI": (path + ("?" + query if query else "")).encode(),
        b"REMOTE_ADDR": remote.encode(),
        **(extra or {}),
    }
    return client.start_request(1, params) + client.end_stdin(1)


def fcgi_get(
    address: str,
    path: str,
    query: str = "",
    remote: str = "127.0.0.1",
    extra: dict[bytes, bytes] | None = None,
) -> Reply:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(POOL_TIMEOUT)
    try:
        sock.connect(address)
        client = ClientConnection()
        sock.sendall(get_request(client, path, query, remote, extra))
        output = b""
        while data := sock.recv(65536):
            for event in client.receive_data(data):
                if isinstance(event, StdoutData):
                    output += event.data
                elif isinstance(event, RequestEnded):
                    head, _, body = output.partition(b"\r\n\r\n")
                    lines = head.decode("latin-1").split("\r\n")
                    headers = dict(line.split(": ", 1) for line in lines)
                    return Reply(int(headers["Status"][:3]), body, headers)
        return Reply(None, output, {})
    except (ConnectionError, TimeoutError) as exc:
        return Reply(None, str(exc).encode(), {})
    finally:
        sock.close()


class Load:
    """Clients sending requests back to back until stopped, keeping every reply."""

    def __init__(self, address: str, clients: int = 4, path: str = "/") -> None:
        self.address = address
        self.path = path
        self.replies: list[Reply] = []
        self._cond = threading.Condition()
        self._done = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(clients)]

    def _run(self) -> None:
        while not self._done.is_set():
            reply = fcgi_get(self.address, self.path)
            with self._cond:
                self.replies.append(reply)
                self._cond.notify_all()

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        for thread in self._threads:
            thread.join(POOL_TIMEOUT)

    def wait_for_count(self, count: int) -> None:
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.replies) >= count, POOL_TIMEOUT):
                raise AssertionError(f"only {len(self.replies)} replies, wanted {count}")

    def failures(self) -> list[Reply]:
        with self._cond:
            return [r for r in self.replies if r.status != 200]


# --- the pool as a process -----------------------------------------------------------------


def close(backend: Backend) -> None:
    """Kill what is left of the process group and close the pipes (no ResourceWarning)."""
    backend.kill()
    for stream in (backend.proc.stdout, backend.proc.stderr):
        if stream is not None:
            stream.close()


class Pool(Backend):
    def __init__(self, directory: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.directory = directory
        self.address = str(directory / "pool.sock")
        command = [sys.executable, "-m", "fcgikit", "serve", "prefork_app:app", *args]
        if not any(arg.startswith("--bind") for arg in args):
            command += ["--bind", f"unix:{self.address}"]
        super().__init__(command, cwd=directory, env=env)

    def wait_count(self, pattern: str, count: int, timeout: float = POOL_TIMEOUT) -> None:
        self.wait_for(pattern, timeout, count=count)

    def get(self, path: str, query: str = "", remote: str = "127.0.0.1") -> Reply:
        return fcgi_get(self.address, path, query, remote)

    def status(self) -> dict[str, Any]:
        """The status page, asked for as ``fcgikit status`` does."""
        direct = {DIRECT_CLIENT_PARAM.encode(): b"fcgikit status"}
        reply = fcgi_get(self.address, "/fcgikit-status", "json", extra=direct)
        assert reply.status == 200, reply
        result: dict[str, Any] = json.loads(reply.body)
        return result

    def wait_status(self, predicate: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        deadline = time.monotonic() + POOL_TIMEOUT
        while not predicate(status := self.status()):
            assert time.monotonic() < deadline, f"status never matched: {status}"
            time.sleep(0.02)  # polling shared state with a deadline
        return status


@pytest.fixture
def start_pool(tmp_path: Path) -> Iterator[Callable[..., Pool]]:
    (tmp_path / "prefork_app.py").write_text(APP_SOURCE)
    pools: list[Pool] = []

    def start(*args: str, ready: int | None = None, env: dict[str, str] | None = None) -> Pool:
        pool = Pool(tmp_path, "--status-path", "/fcgikit-status", *args, env=env)
        pools.append(pool)
        if ready:
            pool.wait_count(r"worker \d+ ready", ready)
        return pool

    yield start
    for pool in pools:
        close(pool)


# --- settings and pieces, in-process -------------------------------------------------------


def test_status_allow_normalises_addresses() -> None:
    assert str(parse_allow(["127.0.0.1,::ffff:10.0.0.1", "::1"])) == "127.0.0.1, 10.0.0.1, ::1"
    with pytest.raises(ConfigError, match="IP addresses"):
        parse_allow(["localhost"])


def test_tracker_records_requests_and_retires_at_max_requests() -> None:
    board = Scoreboard(slots=2, threads=2)
    board.reset(1, generation=3)
    slot = board.slot(1)
    slot.set_pid(1234)
    slot.set_state(WorkerState.READY)
    pokes: list[str] = []
    tracker = RequestTracker(slot, 2, max_requests=2, notify=lambda: pokes.append("!"))
    environ = {"REQUEST_METHOD": "GET", "REQUEST_URI": "/a?b", "fcgikit.request_id": 7}
    assert request_label(environ) == "#7 GET /a?b"

    cell = tracker.begin(environ)
    view = board.read(1)
    assert view.busy == 1 and [r.label for r in view.running] == ["#7 GET /a?b"]
    tracker.end(cell)
    view = board.read(1)
    assert (view.busy, view.requests, view.running, view.state) == (0, 1, (), WorkerState.READY)

    tracker.end(tracker.begin(environ))
    assert board.read(1).busy == 0
    assert board.read(1).state == WorkerState.RETIRING
    assert pokes == ["!"]  # the master is told once
    snapshot = board.snapshot()
    assert snapshot.accepted == 2 and [w.pid for w in snapshot.workers] == [1234]


def test_a_workers_busy_threads_requests_and_last_end_are_read_from_its_cells() -> None:
    """What the status page and the master's --timeout and idle checks read of a worker,
    with requests on both of its threads."""
    board = Scoreboard(slots=1, threads=2)
    board.reset(0, generation=1)
    board.slot(0).set_pid(1234)
    booted = board.read(0).last_active

    tracker = RequestTracker(board.slot(0), 2)
    first = tracker.begin({"REQUEST_METHOD": "GET", "REQUEST_URI": "/a", "fcgikit.request_id": 1})
    second = tracker.begin({"REQUEST_METHOD": "POST", "REQUEST_URI": "/b", "fcgikit.request_id": 2})
    view = board.read(0)
    assert (view.busy, view.requests, view.last_active) == (2, 2, booted)
    assert sorted(r.label for r in view.running) == ["#1 GET /a", "#2 POST /b"]
    tracker.end(first)
    tracker.end(first)  # a second end gives no cell back twice
    view = board.read(0)
    assert (view.busy, view.requests) == (1, 2) and len(tracker._free_cells) == 1
    assert [r.label for r in view.running] == ["#2 POST /b"]
    assert view.last_active > booted
    ended = view.last_active
    tracker.end(second)
    third = tracker.begin({"REQUEST_METHOD": "GET", "REQUEST_URI": "/c", "fcgikit.request_id": 3})
    view = board.read(0)
    assert (view.busy, view.requests) == (1, 3)
    assert [r.label for r in view.running] == ["#3 GET /c"]
    tracker.end(third)
    view = board.read(0)
    assert (view.busy, view.requests, view.running) == (0, 3, ())
    assert view.last_active > ended
    assert board.snapshot().accepted == 3


def test_slow_requests_are_reported_once() -> None:
    board = Scoreboard(slots=1, threads=1)
    board.reset(0, generation=1)
    tracker = RequestTracker(board.slot(0), 1)
    cell = tracker.begin({"REQUEST_METHOD": "GET", "REQUEST_URI": "/slow", "fcgikit.request_id": 1})
    later = time.monotonic() + 10
    assert [r.label for r in tracker.slow_requests(5, later)] == ["#1 GET /slow"]
    assert tracker.slow_requests(5, later) == []
    assert board.read(0).slow == 1
    tracker.end(cell)
    assert tracker.slow_requests(5, later) == []


@pytest.mark.parametrize(
    ("remote", "path", "answered"),
    [
        pytest.param("127.0.0.1", "/fcgikit-status", True, id="allowed"),
        pytest.param("::ffff:127.0.0.1", "/fcgikit-status", True, id="mapped-ipv4"),
        pytest.param("203.0.113.9", "/fcgikit-status", False, id="not-allowed"),
        pytest.param("127.0.0.1", "/other", False, id="other-path"),
    ],
)
def test_status_page_only_for_allowed_addresses(remote: str, path: str, answered: bool) -> None:
    page = StatusPage(Scoreboard(1, 1), "/fcgikit-status", parse_allow(["127.0.0.1"]))
    environ = {"REMOTE_ADDR": remote, "SCRIPT_NAME": "", "PATH_INFO": path}
    assert page.wants(environ) is answered


# --- what the master does when no worker can load the app -----------------------------------


def test_an_app_that_no_worker_can_load_stops_the_master(caplog: pytest.LogCaptureFixture) -> None:
    """A master's decision, without its processes: nothing is bound or forked."""
    caplog.set_level(logging.INFO, logger="fcgikit.arbiter")
    master = Arbiter("app:app", None, ServerSettings(), PoolSettings(workers_min=2, workers_max=2))
    master.keeper.exited(gone(), 3, slot_left(WorkerState.FAILED))
    assert master.stopping.exit_code == 3
    assert "worker 4242 failed to start and no worker ever could; stopping" in caplog.text


# --- the pool as real processes ------------------------------------------------------------


def test_static_pool_serves_and_reports_status(start_pool: Callable[..., Pool]) -> None:
    pool = start_pool("--workers", "2", "--threads", "2", ready=2)
    pids = {int(pool.get("/").body) for _ in range(20)}
    status = pool.status()
    assert status["pool_mode"] == "static"
    assert status["total_workers"] == 2 and status["idle_workers"] == 2
    assert status["accepted_requests"] == 20
    assert pids <= {w["pid"] for w in status["workers"]}
    master = pool.proc.pid
    assert pool.count(r"app imported in \d+") == 2  # once per worker, never in the master
    assert pool.count(rf"app imported in {master}$") == 0
    # From an address not in --status-allow the path goes to the app like any other.
    assert pool.get("/fcgikit-status", "json", remote="203.0.113.9").body.isdigit()
    assert pool.stop() == 0
    assert not os.path.exists(pool.address)


def test_workers_run_as_batch_processes_and_the_master_as_it_was_started(
    start_pool: Callable[..., Pool],
) -> None:
    """A worker woken by the web server's connect must not take the CPU from it before it
    has written the request: the workers and their request threads run SCHED_BATCH."""
    pool = start_pool("--workers", "2", "--threads", "2", ready=2)
    assert {pool.get("/policy").body for _ in range(10)} == {str(os.SCHED_BATCH).encode()}
    assert os.sched_getscheduler(pool.proc.pid) == os.SCHED_OTHER
    assert pool.stop() == 0


def test_a_scheduling_policy_the_operator_chose_is_kept(tmp_path: Path) -> None:
    """``chrt --idle 0 fcgikit serve ...``: the workers stay SCHED_IDLE."""
    (tmp_path / "prefork_app.py").write_text(APP_SOURCE)
    address = str(tmp_path / "idle.sock")
    launcher = (
        "import os, sys\n"
        "os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))\n"
        "os.execv(sys.executable, [sys.executable, '-m', 'fcgikit', 'serve', 'prefork_app:app',"
        f" '--workers', '2', '--bind', 'unix:{address}'])\n"
    )
    backend = Backend([sys.executable, "-c", launcher], cwd=tmp_path)
    try:
        backend.wait_for(r"static pool of 2 workers x \d+ threads on unix:" + re.escape(address))
        assert fcgi_get(address, "/policy").body == str(os.SCHED_IDLE).encode()
        assert backend.stop(signal.SIGTERM) == 0
    finally:
        close(backend)


def test_sighup_three_times_under_load_every_response_200(start_pool: Callable[..., Pool]) -> None:
    pool = start_pool("--workers", "2", "--threads", "4", ready=2)
    first = {w["pid"] for w in pool.status()["workers"]}
    with Load(pool.address, clients=6) as load:
        for reloads in range(1, 4):
            load.wait_for_count(40 * reloads)
            pool.proc.send_signal(signal.SIGHUP)
            pool.wait_count(r"reload complete: 2 workers", reloads)
        load.wait_for_count(160)
    assert load.failures() == [], load.failures()[:3]
    last = {w["pid"] for w in pool.status()["workers"]}
    assert len(last) == 2 and not last & first
    assert pool.count("app imported in") == 2 * 4  # each generation imports it afresh
    assert pool.stop() == 0


def test_max_requests_under_load_every_response_200(start_pool: Callable[..., Pool]) -> None:
    pool = start_pool(
        *("--workers", "2", "--threads", "2"),
        *("--max-requests", "25", "--max-requests-jitter", "5"),
        ready=2,
    )
    with Load(pool.address, clients=4) as load:
        pool.wait_count(r"exited \(retiring\)", 4)
    assert load.failures() == [], load.failures()[:3]
    assert len(load.replies) > 100
    assert pool.count(r"served \d+ requests \(--max-requests\)") >= 4
    assert pool.stop() == 0


def test_kill_9_fails_only_that_request_and_refills_the_pool(
    start_pool: Callable[..., Pool],
) -> None:
    # One thread per worker, as in php-fpm: the victim runs nothing but the stuck request.
    pool = start_pool("--workers", "2", "--threads", "1", ready=2)
    replies: list[Reply] = []
    stuck = threading.Thread(target=lambda: replies.append(pool.get("/sleep", "30")))
    stuck.start()
    victim = int(pool.wait_for(r"sleeping in (\d+): 30").group(1))
    with Load(pool.address, clients=2) as load:
        load.wait_for_count(10)
        killed_at = time.monotonic()
        os.kill(victim, signal.SIGKILL)
        pool.wait_for(rf"worker {victim} killed by SIGKILL while serving #1 GET /sleep")
        pool.wait_count(r"worker \d+ ready", 3)
        refilled = time.monotonic() - killed_at
        load.wait_for_count(len(load.replies) + 10)
    stuck.join(POOL_TIMEOUT)
    assert replies[0].status is None  # the web server sees the connection end: a 502
    assert refilled < 1.0
    assert load.failures() == [], load.failures()[:3]
    assert pool.status()["total_workers"] == 2
    assert pool.stop() == 0


def test_requests_nobody_waits_for_are_not_run_by_a_fresh_worker(
    start_pool: Callable[..., Pool], tmp_path: Path
) -> None:
    """No worker is ready (the only one died, its replacement is still importing the app),
    and the web server gives up on the requests it sent meanwhile: it closes their
    connections (nginx, once its client went away) or aborts them (FCGI_ABORT_REQUEST).
    They wait in the listen backlog, request and EOF; the fresh worker must not run them:
    here each would kill it, and the next one, and so on."""
    pool = start_pool("--workers", "1", "--threads", "2", ready=1)
    victim = int(pool.get("/").body)
    (tmp_path / "hold-import").touch()
    os.kill(victim, signal.SIGKILL)
    pool.wait_for(rf"worker {victim} killed by SIGKILL while idle; starting a replacement")
    for _ in range(4):
        with socket.socket(socket.AF_UNIX) as closed:
            closed.connect(pool.address)
            closed.sendall(get_request(ClientConnection(), "/crash"))
    aborted = socket.socket(socket.AF_UNIX)
    aborted.settimeout(POOL_TIMEOUT)
    aborted.connect(pool.address)
    client = ClientConnection()
    aborted.sendall(get_request(client, "/crash") + client.abort_request(1))
    (tmp_path / "hold-import").unlink()
    with aborted:
        events = []
        while not any(isinstance(event, RequestEnded) for event in events):
            data = aborted.recv(65536)
            assert data, "closed without FCGI_END_REQUEST"
            events += client.receive_data(data)
    assert not [event for event in events if isinstance(event, StdoutData)]  # it never ran
    pool.wait_count("not run: the web server closed the connection or aborted", 5)
    reply = pool.get("/")
    assert reply.status == 200
    # the fresh worker lives on (the master logs it ready once it hears, which may be after
    # the worker served)
    pool.wait_count(r"worker \d+ ready", 2)
    assert pool.count(r"worker \d+ ready") == 2
    assert "while serving" not in pool.stderr
    assert pool.stop() == 0


def test_slow_log_writes_the_stack_once(start_pool: Callable[..., Pool]) -> None:
    pool = start_pool("--workers", "1", "--threads", "1", "--slow-log", "0.2", ready=1)
    reply = pool.get("/sleep", "0.8")
    assert reply.status == 200
    pid = int(reply.body)
    pool.wait_for(rf"slow request #1 GET /sleep\?0.8 on worker {pid}: running for")
    stack = pool.stderr.partition("its stack:")[2]
    assert "prefork_app.py" in stack and "time.sleep(float(query))" in stack
    assert "pool.py" not in stack  # only the app's frames
    assert pool.count("slow request") == 1
    assert pool.status()["slow_requests"] == 1
    assert pool.stop() == 0


def test_sigterm_lets_running_requests_finish(start_pool: Callable[..., Pool]) -> None:
    pool = start_pool("--workers", "2", "--threads", "1", ready=2)
    replies: list[Reply] = []
    thread = threading.Thread(target=lambda: replies.append(pool.get("/sleep", "0.5")))
    thread.start()
    pool.wait_for("sleeping in")
    assert pool.stop(signal.SIGTERM) == 0
    thread.join(POOL_TIMEOUT)
    assert replies[0].status == 200
    pool.wait_for("stopped")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGQUIT])
def test_fast_stop(start_pool: Callable[..., Pool], signum: int) -> None:
    pool = start_pool("--workers", "2", ready=2)
    threading.Thread(target=pool.get, args=("/sleep", "30"), daemon=True).start()
    pool.wait_for("sleeping in")
    started = time.monotonic()
    assert pool.stop(signum) == 0
    assert time.monotonic() - started < 5


def test_ttin_and_ttou_change_the_pool(start_pool: Callable[..., Pool]) -> None:
    pool = start_pool("--workers", "1", ready=1)
    pool.proc.send_signal(signal.SIGTTIN)
    pool.wait_count(r"worker \d+ ready", 2)
    assert pool.status()["total_workers"] == 2
    pool.proc.send_signal(signal.SIGTTOU)
    pool.wait_for(r"exited \(fewer workers wanted\)")
    assert pool.wait_status(lambda s: s["total_workers"] == 1)["target_workers"] == 1
    assert pool.stop() == 0


def test_dead_worker_is_replaced_and_a_crash_loop_backs_off(
    start_pool: Callable[..., Pool],
) -> None:
    pool = start_pool("--workers", "1", ready=1)
    victim = int(pool.get("/").body)
    os.kill(victim, signal.SIGKILL)
    pool.wait_count(r"worker \d+ ready", 2)
    # From now on every new worker dies while importing the app.
    (pool.directory / "prefork_app.py").write_text("import os\nos._exit(9)\n")
    pool.proc.send_signal(signal.SIGHUP)
    pool.wait_for(r"backing off: next start in 0.5s")
    pool.wait_for(r"backing off: next start in 1.0s")
    assert pool.get("/").status == 200  # the old worker still serves
    assert pool.count(r"failed to start: exited with status 9 before it was ready") <= 4
    assert pool.stop() == 0


def test_preload_imports_the_app_once_in_the_master(start_pool: Callable[..., Pool]) -> None:
    pool = start_pool("--workers", "2", "--preload", ready=2)
    assert pool.count(rf"app imported in {pool.proc.pid}$") == 1
    assert pool.count(r"app imported in") == 1
    pool.proc.send_signal(signal.SIGHUP)
    pool.wait_for("its code is not re-imported")
    pool.wait_count(r"reload complete: 2 workers", 1)
    assert pool.get("/").status == 200
    assert pool.stop() == 0


def test_an_app_object_is_served_by_forked_workers(tmp_path: Path) -> None:
    """The path of flup's ``while WSGIServer(app, multiprocess=True).run(): os.execv(...)``:
    an app object, not a module name, and SIGHUP stops so that the script re-executes."""
    (tmp_path / "prefork_app.py").write_text(APP_SOURCE)
    address = str(tmp_path / "object.sock")
    script = (
        "import logging, sys\n"
        "from fcgikit.addresses import UnixAddress\n"
        "from fcgikit.server.arbiter import Arbiter\n"
        "from fcgikit.server.logs import configure_logging\n"
        "from fcgikit.server.settings import PoolSettings, ServerSettings\n"
        "from prefork_app import app\n"
        "configure_logging(logging.INFO, None)\n"
        "settings = ServerSettings(binds=(UnixAddress(sys.argv[1]),), threads=2)\n"
        "pool = PoolSettings(workers_min=2, workers_max=2)\n"
        "arbiter = Arbiter(None, app, settings, pool, stop_on_hup=True)\n"
        "code = arbiter.run()\n"
        "sys.stderr.write(f'restart requested: {arbiter.restart_requested}\\n')\n"
        "sys.exit(code)\n"
    )
    backend = Backend([sys.executable, "-c", script, address], cwd=tmp_path)
    try:
        backend.wait_for(r"worker \d+ ready", POOL_TIMEOUT, count=2)
        assert {int(fcgi_get(address, "/").body) for _ in range(10)} != {backend.proc.pid}
        assert backend.stop(signal.SIGHUP) == 0
        assert "restart requested: True" in backend.stderr
    finally:
        close(backend)


def test_workers_stop_when_the_master_is_killed(start_pool: Callable[..., Pool]) -> None:
    pool = start_pool("--workers", "2", ready=2)
    os.kill(pool.proc.pid, signal.SIGKILL)  # the master only; the workers are orphaned
    pool.wait_count("the master is gone; stopping", 2)


def test_app_that_cannot_be_imported_stops_the_master(tmp_path: Path) -> None:
    pool = Pool(tmp_path, "--workers", "2")  # no prefork_app.py in tmp_path
    assert pool.proc.wait(POOL_TIMEOUT) == 3
    close(pool)
    assert "cannot import 'prefork_app'" in pool.stderr
    assert "the app cannot be loaded" in pool.stderr


def test_app_that_exits_while_it_loads_stops_the_master(tmp_path: Path) -> None:
    """``sys.exit()`` at import (a setting missing, say) is an app that cannot load, not a
    crash to retry with a back-off for ever."""
    (tmp_path / "prefork_app.py").write_text("import sys\nsys.exit('DATABASE_URL is not set')\n")
    pool = Pool(tmp_path, "--workers", "2")
    assert pool.proc.wait(POOL_TIMEOUT) == 3
    close(pool)
    assert "could not load the app: it called sys.exit('DATABASE_URL is not set')" in pool.stderr
    assert "the app cannot be loaded" in pool.stderr


def test_pidfile_several_binds_and_sigusr1(start_pool: Callable[..., Pool], tmp_path: Path) -> None:
    second = tmp_path / "second.sock"
    log_file = tmp_path / "fcgikit.log"
    pidfile = tmp_path / "fcgikit.pid"
    pool = start_pool(
        *("--workers", "2", "--pidfile", str(pidfile), "--log-file", str(log_file)),
        *("--bind", f"unix:{tmp_path / 'pool.sock'}", "--bind", f"unix:{second}"),
    )
    deadline = time.monotonic() + POOL_TIMEOUT
    while log_file.read_text().count(" ready ") < 2 if log_file.exists() else True:
        assert time.monotonic() < deadline, "workers never became ready"
        time.sleep(0.02)  # the log goes to a file here, not to a pipe we can wait on
    assert int(pidfile.read_text()) == pool.proc.pid
    assert fcgi_get(str(second), "/").status == 200
    assert pool.get("/").status == 200
    log_file.rename(tmp_path / "fcgikit.log.1")  # what logrotate does
    pool.proc.send_signal(signal.SIGUSR1)
    while not log_file.exists() or "app log line" not in log_file.read_text():
        assert time.monotonic() < deadline, "no new log file"
        pool.get("/log")
    assert "SIGUSR1: reopened log files" in log_file.read_text()
    assert pool.stop() == 0
    assert not pidfile.exists() and not second.exists()


def test_user_needs_an_existing_user(tmp_path: Path) -> None:
    pool = Pool(tmp_path, "--user", "no-such-user-fcgikit")
    assert pool.proc.wait(POOL_TIMEOUT) == 2
    close(pool)
    assert "no such user" in pool.stderr or "need the master to start as root" in pool.stderr


#: what the suite's environment may hold that a socket-activated server is to run with too
SUITE_VARIABLES = ("FCGIKIT_PURE_PYTHON", "PYTHONDONTWRITEBYTECODE")

#: the socket-activated server's app: it answers which fcgikit serves it (checkout, build)
WHICH_FCGIKIT_APP = """
import fcgikit
from fcgikit.protocol import ACCELERATED

def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [f"{fcgikit.__file__} {'compiled' if ACCELERATED else 'pure Python'}".encode()]
"""


def test_systemd_socket_activation(tmp_path: Path) -> None:
    if shutil.which("systemd-socket-activate") is None:
        missing("systemd-socket-activate not found: install the Debian package systemd")
    (tmp_path / "activated_app.py").write_text(WHICH_FCGIKIT_APP)
    address = str(tmp_path / "activated.sock")
    # systemd-socket-activate gives the service a fresh environment (PATH, HOME, TERM, USER and
    # LISTEN_*): without the suite's, it would serve whatever checkout pip installed editable
    # (PYTHONPATH names this one, tests/processes.py), in the compiled build in a pure-Python
    # run, and write bytecode into the checkout.
    passed = ["PYTHONPATH", "PYTHONUNBUFFERED"]  # (Backend sets them)
    passed += [name for name in SUITE_VARIABLES if name in os.environ]
    command = [
        *("systemd-socket-activate", "-l", address),
        *(f"--setenv={name}" for name in passed),
        *(sys.executable, "-m", "fcgikit", "serve", "activated_app:app", "--workers", "2"),
    ]
    backend = Backend(command, cwd=tmp_path)
    try:
        backend.wait_for("Listening on")
        # systemd-socket-activate starts the service on the first connection.
        reply = fcgi_get(address, "/")
        # (a service that dies before it serves takes the only listening socket with it, and
        # the kernel resets the connection queued there: its log says why)
        assert reply.status == 200, backend.stderr
        build = "compiled" if ACCELERATED else "pure Python"
        assert reply.body.decode() == f"{fcgikit.__file__} {build}"
        backend.wait_for(r"static pool of 2 workers x \d+ threads on unix:" + re.escape(address))
        assert all(fcgi_get(address, "/").status == 200 for _ in range(10))
        assert backend.stop(signal.SIGTERM) == 0
    finally:
        close(backend)


def test_systemd_socket_activation_emulated(tmp_path: Path) -> None:
    """The same protocol without systemd: a launcher binds, leaves the socket on fd 3, sets
    LISTEN_FDS / LISTEN_PID to its own pid and execs the master (which keeps that pid)."""
    (tmp_path / "prefork_app.py").write_text(APP_SOURCE)
    address = str(tmp_path / "emulated.sock")
    launcher = (
        "import os, socket, sys\n"
        "sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)\n"
        "sock.bind(sys.argv[1]); sock.listen(16)\n"
        "if sock.fileno() == 3:\n"
        "    os.set_inheritable(3, True)\n"
        "else:\n"
        "    os.dup2(sock.fileno(), 3)\n"
        "os.environ.update(LISTEN_FDS='1', LISTEN_PID=str(os.getpid()))\n"
        "os.execv(sys.executable, [sys.executable, '-m', 'fcgikit', 'serve',"
        " 'prefork_app:app', '--workers', '2'])\n"
    )
    backend = Backend([sys.executable, "-c", launcher, address], cwd=tmp_path)
    try:
        backend.wait_for(r"static pool of 2 workers x \d+ threads on unix:" + re.escape(address))
        assert all(fcgi_get(address, "/").status == 200 for _ in range(5))
        assert backend.stop(signal.SIGTERM) == 0
        assert "LISTEN_FDS" not in backend.stderr
    finally:
        close(backend)
