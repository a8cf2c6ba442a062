"""fcgikit side by side with uWSGI, flup and gunicorn, behind one nginx, in one run.

    benchmarks/run                         installs what it needs, then runs this
    python3 benchmarks/run.py --quick      with what is installed already

One nginx (one worker) fronts every backend, each backend is one app process serving
``apps:application`` (see apps.py), and wrk (``-t1``) loads nginx over loopback TCP. For each
round, each workload (app x ``fastcgi_keep_conn`` on/off x connections) is measured on every
backend in turn, the order rotating from round to round, so that a noisy neighbour hits every
backend alike; the table reports the median of the rounds. Nothing is slept on: a backend is
ready when its socket accepts, nginx when its port does.

The FastCGI backends (fcgikit, uWSGI ``--fastcgi-socket``, flup) are reached through
``fastcgi_pass`` to a unix socket; gunicorn (sync worker) through ``proxy_pass`` to a unix
socket, its natural deployment. "keep on" means an upstream ``keepalive`` pool as big as the
most connections a cell of the run opens (so nginx, one worker, keeps a connection for every
request it may have in flight, as docs/deploy/nginx.rst advises) plus ``fastcgi_keep_conn on``
(HTTP/1.1 and an empty Connection header for gunicorn, whose sync worker closes every
connection anyway); "keep on32" is the same with the pool of 32 the runs before used (at 256
connections nginx then closes most idle connections and opens new ones); "keep off" opens one
connection per request. The ``nginx`` row is nginx answering ``return 200`` itself: the
ceiling of this machine.

The memory checks start a separate fcgikit process serving ``apps:plain_application`` (no
Flask), reset its peak RSS through ``/proc/PID/clear_refs`` and read ``VmHWM`` and ``VmRSS``
from ``/proc/PID/status``: a 1 GiB upload and a 1 GiB streamed download through nginx (with
request and response buffering off, so backpressure is exercised, not nginx's temp files),
and 1,000 keep-conn connections opened straight to fcgikit's socket, each having served one
request, then held idle.

``--profile`` samples the fcgikit process with py-spy while wrk loads it and prints where
the time goes (self and inclusive, per function), writing the raw stacks next to the results.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import http.client
import importlib.util
import itertools
import json
import os
import platform
import re
import resource
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
HOST = "127.0.0.1"
STARTUP_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB

# --------------------------------------------------------------------------- what is measured


@dataclass(frozen=True)
class App:
    name: str
    path: str
    title: str
    method: str = "GET"
    body_size: int = 0  # request body wrk sends
    expect_size: int | None = None  # response body length the sanity check wants

    @property
    def needs_flask(self) -> bool:
        return self.name == "flask"


APPS = {
    app.name: app
    for app in (
        App("hello", "/hello", "plain WSGI hello", expect_size=13),
        App("flask", "/flask", "Flask hello", expect_size=13),
        App("64k", "/64k", "64 KiB response", expect_size=64 * KiB),
        App("echo", "/echo", "1 MiB POST echoed", "POST", body_size=MiB, expect_size=MiB),
    )
}
#: the upstream keepalive pool of each keep mode: None = one for every request in flight
KEEP_MODES: dict[str, int | None] = {"on": None, "off": 0, "on32": 32}


@dataclass(frozen=True)
class Backend:
    name: str
    protocol: str  # "fastcgi", "http" (proxy_pass) or "static" (nginx answers itself)
    #: argv to start it, given (python, socket path, threads, work dir); None for nginx itself
    command: Callable[[str, Path, int, Path], list[str]] | None
    #: why it cannot run here, or None
    unavailable: Callable[[], str | None]
    apps: frozenset[str] = frozenset(APPS)
    keep_modes: frozenset[str] = frozenset(KEEP_MODES)
    #: import fcgikit from this directory instead (a ``--variant`` with ``path=``)
    pythonpath: Path | None = None
    #: a ``--variant``'s ``threads=``
    threads: int | None = None
    #: environment variables to start it with (a ``--variant`` with ``pure=1``)
    env: Mapping[str, str] = field(default_factory=dict)


def _bin(name: str) -> str | None:
    """A console script of this interpreter's environment (the venv), else from PATH."""
    local = Path(sys.executable).parent / name
    return str(local) if local.exists() else shutil.which(name)


def _module_missing(module: str, install: str) -> Callable[[], str | None]:
    def check() -> str | None:
        if importlib.util.find_spec(module) is None:
            return f"python module {module} not installed ({install}; benchmarks/run does it)"
        return None

    return check


def _fcgikit(python: str, sock: Path, threads: int, workdir: Path) -> list[str]:
    return [
        python, "-m", "fcgikit", "serve", "apps:application",
        "--bind", f"unix:{sock}", "--threads", str(threads), "--log-level", "warning",
    ]  # fmt: skip


def _uwsgi(python: str, sock: Path, threads: int, workdir: Path) -> list[str]:
    uwsgi = _bin("uwsgi")
    assert uwsgi is not None
    # One process, no master, uWSGI's default single thread (its fastest mode for these
    # apps); --die-on-term so SIGTERM stops it, --disable-logging as the others log nothing
    # per request, a listen queue as deep as fcgikit's so 256 connections are not refused.
    return [
        uwsgi, "--fastcgi-socket", str(sock), "--module", "apps:application",
        "--pythonpath", str(BENCH_DIR), "--processes", "1", "--die-on-term",
        "--disable-logging", "--listen", "1024", "--need-app", "--buffer-size", "32768",
    ]  # fmt: skip


FLUP_LAUNCHER = """\
import sys
sys.path.insert(0, {bench_dir!r})
from flup.server.fcgi import WSGIServer
import apps
WSGIServer(apps.application, bindAddress={sock!r}, umask=0).run()
"""


def _flup(python: str, sock: Path, threads: int, workdir: Path) -> list[str]:
    launcher = workdir / "flup_launcher.py"
    launcher.write_text(FLUP_LAUNCHER.format(bench_dir=str(BENCH_DIR), sock=str(sock)))
    # flup's own defaults (a thread pool that grows as needed), as its users run it.
    return [python, str(launcher)]


def _gunicorn(python: str, sock: Path, threads: int, workdir: Path) -> list[str]:
    return [
        python, "-m", "gunicorn", "--workers", "1", "--worker-class", "sync",
        "--bind", f"unix:{sock}", "--backlog", "1024", "--log-level", "warning",
        "--chdir", str(BENCH_DIR), "apps:application",
    ]  # fmt: skip


BACKENDS = {
    backend.name: backend
    for backend in (
        Backend("fcgikit", "fastcgi", _fcgikit, _module_missing("fcgikit", "pip install -e .")),
        Backend(
            "uwsgi",
            "fastcgi",
            _uwsgi,
            lambda: None if _bin("uwsgi") else "uwsgi not installed (pip install uwsgi)",
        ),
        Backend("flup", "fastcgi", _flup, _module_missing("flup", "pip install flup")),
        Backend("gunicorn", "http", _gunicorn, _module_missing("gunicorn", "pip install gunicorn")),
        Backend(
            "nginx",
            "static",
            None,
            lambda: None,
            apps=frozenset({"hello"}),
            keep_modes=frozenset({"on"}),
        ),
    )
}

# --------------------------------------------------------------------------- processes


class Process:
    """A child in its own session; stderr goes to a file kept for the error report."""

    def __init__(self, name: str, argv: Sequence[str], workdir: Path, **popen: Any) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = workdir / f"{name}.log"
        with self.log_path.open("wb") as log:
            self.popen = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                **popen,
            )
        self.pid = self.popen.pid

    def log_tail(self, limit: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-limit:]
        except OSError:
            return ""

    def fail(self, message: str) -> RuntimeError:
        return RuntimeError(
            f"{self.name}: {message}\n  command: {shlex.join(self.argv)}\n"
            f"  its output ({self.log_path}):\n{self.log_tail()}"
        )

    def wait_until(self, connect: Callable[[], socket.socket], what: str) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            try:
                connect().close()
                return
            except OSError:
                pass
            if self.popen.poll() is not None:
                raise self.fail(f"exited with status {self.popen.returncode} before {what}")
            if time.monotonic() > deadline:
                raise self.fail(f"not ready after {STARTUP_TIMEOUT:g}s ({what})")
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout=0.05)  # doubles as the exit check

    def wait_for_unix_socket(self, path: Path) -> None:
        def connect() -> socket.socket:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.connect(str(path))
            except OSError:
                sock.close()
                raise
            return sock

        self.wait_until(connect, f"{path} accepted a connection")

    def wait_for_port(self, port: int) -> None:
        self.wait_until(
            lambda: socket.create_connection((HOST, port), timeout=1), f"port {port} accepted"
        )

    def stop(self) -> None:
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pid, signal.SIGKILL)
                self.popen.wait(timeout=STOP_TIMEOUT)
        # gunicorn's worker (and anything else the backend forked) shares its process group.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)


def find_binary(name: str) -> str | None:
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/local/sbin:/sbin")


#: the ports free_port gave out in this run
_PORTS_GIVEN: set[int] = set()


def free_port() -> int:
    """A port nothing listens on, and not one given out before in this run: the kernel may
    hand a port it just released out again, and nginx refuses two sites on one port."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((HOST, 0))
            port = int(sock.getsockname()[1])
        if port not in _PORTS_GIVEN:
            _PORTS_GIVEN.add(port)
            return port


# --------------------------------------------------------------------------- nginx


FASTCGI_PARAMS = """\
        fastcgi_param QUERY_STRING $query_string;
        fastcgi_param REQUEST_METHOD $request_method;
        fastcgi_param CONTENT_TYPE $content_type;
        fastcgi_param CONTENT_LENGTH $content_length;
        fastcgi_param SCRIPT_NAME "";
        fastcgi_param PATH_INFO $uri;
        fastcgi_param REQUEST_URI $request_uri;
        fastcgi_param DOCUMENT_URI $document_uri;
        fastcgi_param SERVER_PROTOCOL $server_protocol;
        fastcgi_param REQUEST_SCHEME $scheme;
        fastcgi_param GATEWAY_INTERFACE CGI/1.1;
        fastcgi_param SERVER_SOFTWARE nginx/$nginx_version;
        fastcgi_param REMOTE_ADDR $remote_addr;
        fastcgi_param REMOTE_PORT $remote_port;
        fastcgi_param SERVER_ADDR $server_addr;
        fastcgi_param SERVER_PORT $server_port;
        fastcgi_param SERVER_NAME $server_name;
"""


@dataclass(frozen=True)
class Site:
    """One nginx ``server``: a backend in one keep mode on its own port."""

    backend: str
    keep: str
    port: int
    socket: Path | None
    #: stream request and response bodies instead of buffering them (the memory checks)
    streaming: bool = False
    #: "fastcgi" or "http" for a site whose backend is not in BACKENDS (scenarios.py)
    protocol: str | None = None
    #: more ``fastcgi_param`` lines (php-fpm's SCRIPT_FILENAME)
    extra_params: str = ""

    @property
    def upstream(self) -> str:
        return f"{self.backend.replace('-', '_')}_{self.keep}_{self.port}"


def nginx_config(workdir: Path, sites: Sequence[Site], in_flight: int, workers: str = "1") -> str:
    """The one nginx of a run; ``in_flight``: the most requests a cell has in flight at once,
    the size of the keep-on sites' pool of idle connections; ``workers``: its
    ``worker_processes``, a number or ``auto`` (one per core). The pool and
    ``worker_connections`` are per worker, so with several workers a pool still holds every
    connection its worker has in flight, and none is closed to open another."""
    temp = workdir / "nginx-temp"
    upstreams = []
    servers = []
    for site in sites:
        pool = KEEP_MODES[site.keep]
        keep = pool != 0
        if site.socket is not None:
            keepalive = (
                f"keepalive {pool or in_flight}; keepalive_requests 1000000; "
                "keepalive_timeout 600s;"
            )
            upstreams.append(
                f"    upstream {site.upstream} {{ server unix:{site.socket}; "
                f"{keepalive if keep else ''} }}\n"
            )
        backend = BACKENDS.get(site.backend)
        protocol = site.protocol or (backend.protocol if backend else "fastcgi")
        if protocol == "static":
            body = '        default_type text/plain;\n        return 200 "Hello, World!";\n'
        elif protocol == "http":
            body = f"        proxy_pass http://{site.upstream};\n"
            if keep:
                body += '        proxy_http_version 1.1;\n        proxy_set_header Connection "";\n'
            body += "        proxy_buffer_size 16k;\n        proxy_buffers 64 16k;\n"
            if site.streaming:
                body += "        proxy_request_buffering off;\n        proxy_buffering off;\n"
        else:
            body = FASTCGI_PARAMS + site.extra_params
            body += f"        fastcgi_pass {site.upstream};\n"
            body += f"        fastcgi_keep_conn {'on' if keep else 'off'};\n"
            body += "        fastcgi_buffer_size 16k;\n        fastcgi_buffers 64 16k;\n"
            if site.streaming:
                body += "        fastcgi_request_buffering off;\n        fastcgi_buffering off;\n"
                body += "        fastcgi_read_timeout 600s;\n        fastcgi_send_timeout 600s;\n"
        servers.append(
            f"    server {{\n        listen {HOST}:{site.port} reuseport backlog=4096;\n"
            f"        location / {{\n{body}        }}\n    }}\n"
        )
    user = "user root root;\n" if os.geteuid() == 0 else ""
    return (
        f"{user}worker_processes {workers};\ndaemon off;\npid {workdir}/nginx.pid;\n"
        f"error_log {workdir}/nginx-error.log warn;\nworker_rlimit_nofile 65536;\n"
        "events { worker_connections 16384; }\n"
        "http {\n    access_log off;\n    keepalive_requests 1000000;\n"
        "    client_max_body_size 0;\n    client_body_buffer_size 2m;\n"
        f"    client_body_temp_path {temp}/body;\n    fastcgi_temp_path {temp}/fastcgi;\n"
        f"    proxy_temp_path {temp}/proxy;\n    uwsgi_temp_path {temp}/uwsgi;\n"
        f"    scgi_temp_path {temp}/scgi;\n" + "".join(upstreams) + "".join(servers) + "}\n"
    )


# --------------------------------------------------------------------------- wrk


@dataclass
class WrkResult:
    rps: float
    p50_ms: float | None
    p99_ms: float | None
    requests: int
    errors: int  # socket errors + non-2xx/3xx responses

    @classmethod
    def parse(cls, output: str) -> WrkResult:
        rps_match = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.M)
        requests_match = re.search(r"^\s*(\d+) requests in", output, re.M)
        percentiles = {
            int(p): _duration_ms(float(v), unit)
            for p, v, unit in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s|m)\s*$", output, re.M)
        }
        errors = sum(
            int(n)
            for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", output)
            + re.findall(r"Non-2xx or 3xx responses: (\d+)", output)
        )
        return cls(
            rps=float(rps_match.group(1)) if rps_match else 0.0,
            p50_ms=percentiles.get(50),
            p99_ms=percentiles.get(99),
            requests=int(requests_match.group(1)) if requests_match else 0,
            errors=errors,
        )


def _duration_ms(value: float, unit: str) -> float:
    return value * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


#: a line of a backend's own log that reports a failure
ERROR_LINE = re.compile(r"\bERROR\b|\berror\b|Broken pipe|reset by peer")

POST_SCRIPT = """\
wrk.method = "POST"
wrk.body = string.rep("x", {size})
wrk.headers["Content-Type"] = "application/octet-stream"
"""


class Wrk:
    def __init__(self, binary: str, workdir: Path, threads: int) -> None:
        self.binary = binary
        self.workdir = workdir
        self.threads = threads

    def argv(self, app: App, port: int, connections: int, duration: float) -> list[str]:
        argv = [
            self.binary, "-t", str(min(self.threads, connections)), "-c", str(connections),
            "-d", f"{max(1, round(duration))}s", "--latency", "--timeout", "5s",
        ]  # fmt: skip
        if app.method == "POST":
            script = self.workdir / f"post-{app.body_size}.lua"
            if not script.exists():
                script.write_text(POST_SCRIPT.format(size=app.body_size))
            argv += ["-s", str(script)]
        return [*argv, f"http://{HOST}:{port}{app.path}"]

    def run(self, app: App, port: int, connections: int, duration: float) -> WrkResult:
        argv = self.argv(app, port, connections, duration)
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=duration + 60, stdin=subprocess.DEVNULL
        )
        if done.returncode != 0:
            raise RuntimeError(f"wrk failed ({shlex.join(argv)}):\n{done.stdout}{done.stderr}")
        return WrkResult.parse(done.stdout)


# --------------------------------------------------------------------------- the run


@dataclass
class Cell:
    app: str
    keep: str
    connections: int
    backend: str
    runs: list[WrkResult] = field(default_factory=list)
    #: new lines in nginx's error log about this backend, and errors in the backend's log
    upstream_errors: int = 0
    #: the backend's CPU time (user + system, its children included) per request, per round
    cpu_us_per_request: list[float] = field(default_factory=list)

    def median(self, attribute: str) -> float | None:
        values = [getattr(run, attribute) for run in self.runs]
        present = [value for value in values if value is not None]
        return statistics.median(present) if present else None

    @property
    def errors(self) -> int:
        return sum(run.errors for run in self.runs)

    def summary(self) -> dict[str, Any]:
        return {
            "app": self.app,
            "keep_conn": self.keep,
            "connections": self.connections,
            "backend": self.backend,
            "rps": self.median("rps"),
            "p50_ms": self.median("p50_ms"),
            "p99_ms": self.median("p99_ms"),
            "errors": self.errors,
            "upstream_errors": self.upstream_errors,
            "cpu_us_per_request": (
                statistics.median(self.cpu_us_per_request) if self.cpu_us_per_request else None
            ),
            "rounds": [asdict(run) for run in self.runs],
        }


def http_request(
    port: int, method: str, path: str, body: bytes | None = None, timeout: float = 30
) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        headers = {"Content-Type": "application/octet-stream"} if body is not None else {}
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def download(port: int, size: int, digest: Any | None = None) -> tuple[int, int]:
    """GET ``/download`` of ``size`` bytes, read in 1 MiB blocks (fed to ``digest`` if
    given): the status and the bytes received."""
    conn = http.client.HTTPConnection(HOST, port, timeout=600)
    received = 0
    try:
        conn.request("GET", f"/download?bytes={size}")
        response = conn.getresponse()
        while block := response.read(MiB):
            received += len(block)
            if digest is not None:
                digest.update(block)
        return response.status, received
    finally:
        conn.close()


def sanity_check(site: Site, app: App) -> str | None:
    """None when ``site`` answers ``app`` right, else what is wrong (that cell is skipped)."""
    body = b"x" * app.body_size if app.method == "POST" else None
    try:
        status, data = http_request(site.port, app.method, app.path, body)
    except (OSError, http.client.HTTPException) as exc:
        return f"request failed: {exc}"
    if status != 200:
        return f"status {status}: {data[:200]!r}"
    if app.expect_size is not None and len(data) != app.expect_size:
        return f"{len(data)} bytes, expected {app.expect_size}"
    if body is not None and data != body:
        return "the echoed body differs from the one sent"
    return None


class Bench:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.processes: list[Process] = []
        self.sites: dict[tuple[str, str], Site] = {}
        self.memory_site: Site | None = None
        self.memory_socket = workdir / "fcgikit-memory.sock"
        self.backend_pids: dict[str, int] = {}
        self.notes: list[str] = []
        #: the ``--variant`` backends (fcgikit-NAME): where each imports fcgikit from, and
        #: its --threads
        self.variants: dict[str, tuple[Path | None, int | None]] = {}

    # -- setup ---------------------------------------------------------------------------

    @property
    def in_flight(self) -> int:
        """The most requests one of this run's cells has in flight through nginx at once."""
        args = self.args
        counts = (getattr(args, f"{name}_connections", 0) for name in ("procs", "mix"))
        return max(*args.connections, *counts)

    def start(self, backends: Sequence[str], keep_modes: Sequence[str], memory: bool) -> None:
        (self.workdir / "nginx-temp").mkdir(exist_ok=True)
        sites = []
        for name in backends:
            backend = BACKENDS[name]
            sock = None if backend.command is None else self.workdir / f"{name}.sock"
            for keep in keep_modes:
                if keep in backend.keep_modes:
                    site = Site(name, keep, free_port(), sock)
                    self.sites[name, keep] = site
                    sites.append(site)
        if memory:
            self.memory_site = Site("fcgikit-memory", "on", free_port(), self.memory_socket, True)
            sites.append(self.memory_site)
        conf = self.workdir / "nginx.conf"
        conf.write_text(nginx_config(self.workdir, sites, self.in_flight))
        nginx = self.spawn("nginx", [self.args.nginx, "-c", str(conf), "-p", str(self.workdir)])
        for name in backends:
            backend = BACKENDS[name]
            if backend.command is None:
                continue
            sock = self.workdir / f"{name}.sock"
            process = self.spawn(
                name,
                backend.command(sys.executable, sock, self.args.threads, self.workdir),
                env=dict(backend.env),
                pythonpath=backend.pythonpath,
            )
            process.wait_for_unix_socket(sock)
            self.backend_pids[name] = process.pid
        for site in sites:
            nginx.wait_for_port(site.port)

    def spawn(
        self,
        name: str,
        argv: Sequence[str],
        env: dict[str, str] | None = None,
        pythonpath: Path | None = None,
        workdir: Path | None = None,
    ) -> Process:
        env = {**os.environ, **(env or {})}
        paths = [str(BENCH_DIR), env.get("PYTHONPATH")]
        fcgikit_path = pythonpath or self.args.fcgikit_path
        if fcgikit_path is not None:
            paths.insert(0, str(fcgikit_path.resolve()))
        env["PYTHONPATH"] = os.pathsep.join(filter(None, paths))
        # Bytecode goes to this run's own cache, not next to the sources: the trees measured
        # stay as they are (a variant's may be read-only), and a process started twice (the
        # start-up scenario) reads its modules compiled, as an installed package does,
        # instead of compiling every one that has no __pycache__ at each start.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env.setdefault("PYTHONPYCACHEPREFIX", str(self.workdir / "pycache"))
        process = Process(name, argv, workdir or self.workdir, cwd=BENCH_DIR, env=env)
        self.processes.append(process)
        return process

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()

    # -- throughput --------------------------------------------------------------------

    def measure(
        self, backends: Sequence[str], apps: Sequence[str], keep_modes: Sequence[str]
    ) -> list[Cell]:
        args = self.args
        wrk = Wrk(args.wrk, self.workdir, args.wrk_threads)
        cells: dict[tuple[str, str, int, str], Cell] = {}
        plan: list[tuple[App, str, int, list[str]]] = []
        for app_name in apps:
            app = APPS[app_name]
            for keep in keep_modes:
                for connections in args.connections:
                    usable = []
                    for name in backends:
                        site = self.sites.get((name, keep))
                        if site is None or app.name not in BACKENDS[name].apps:
                            continue
                        problem = sanity_check(site, app)
                        if problem is not None:
                            self.note(f"{name} {app.name} keep {keep}: skipped, {problem}")
                            continue
                        usable.append(name)
                        cells[app.name, keep, connections, name] = Cell(
                            app.name, keep, connections, name
                        )
                    if usable:
                        plan.append((app, keep, connections, usable))
        if args.warmup > 0:
            warmed = set()
            for app, keep, _, usable in plan:
                for name in usable:
                    if (name, app.name) not in warmed:
                        warmed.add((name, app.name))
                        wrk.run(app, self.sites[name, keep].port, 16, args.warmup)
        total = args.rounds * sum(len(usable) for *_, usable in plan)
        done = 0
        started = time.monotonic()
        for round_number in range(args.rounds):
            for app, keep, connections, usable in plan:
                shift = round_number % len(usable)
                for name in usable[shift:] + usable[:shift]:
                    marks = self.log_marks(name)
                    pid = self.backend_pids.get(name)
                    cpu_before = cpu_seconds(pid) if pid else None
                    result = wrk.run(app, self.sites[name, keep].port, connections, args.duration)
                    cell = cells[app.name, keep, connections, name]
                    cell.runs.append(result)
                    if pid and cpu_before is not None and result.requests:
                        used = cpu_seconds(pid) - cpu_before
                        cell.cpu_us_per_request.append(used / result.requests * 1e6)
                    cell.upstream_errors += self.count_log_errors(name, marks)
                    done += 1
                    eta = (time.monotonic() - started) / done * (total - done)
                    print(
                        f"  round {round_number + 1}/{args.rounds}  {app.name:5} keep {keep:3} "
                        f"c={connections:<3} {name:8} {result.rps:9.0f} req/s  "
                        f"p99 {_fmt_ms(result.p99_ms):>8}"
                        f"{f'  ERRORS {result.errors}' if result.errors else ''}"
                        f"{f'  log errors {cell.upstream_errors}' if cell.upstream_errors else ''}"
                        f"   [{done}/{total}, ~{eta:.0f}s left]",
                        file=sys.stderr,
                        flush=True,
                    )
        return list(cells.values())

    def _logs(self, backend: str) -> dict[Path, str | None]:
        """The logs to watch for ``backend``, each with the text that marks its lines."""
        return {
            self.workdir / "nginx-error.log": f"/{backend}.sock",
            self.workdir / f"{backend}.log": None,
        }

    def log_marks(self, backend: str) -> dict[Path, int]:
        marks = {}
        for path in self._logs(backend):
            try:
                marks[path] = path.stat().st_size
            except OSError:
                marks[path] = 0
        return marks

    def count_log_errors(self, backend: str, marks: dict[Path, int]) -> int:
        """Errors logged since ``marks``: a response wrk counted as fine may still have
        cost a retry (nginx logs a reset upstream), and a request that never ended is
        seen only in the backend's own log."""
        count = 0
        for path, needle in self._logs(backend).items():
            try:
                with path.open("rb") as log:
                    log.seek(marks.get(path, 0))
                    text = log.read().decode("utf-8", "replace")
            except OSError:
                continue
            for line in text.splitlines():
                if needle is not None:
                    count += needle in line
                else:
                    count += bool(ERROR_LINE.search(line))
        return count

    def note(self, text: str) -> None:
        print(f"note: {text}", file=sys.stderr)
        self.notes.append(text)

    # -- memory ------------------------------------------------------------------------

    def memory_checks(self) -> dict[str, Any]:
        assert self.memory_site is not None
        process = self.spawn(
            "fcgikit-memory",
            env={"FCGIKIT_BENCH_PLAIN": "1"},
            argv=
            [
                sys.executable, "-m", "fcgikit", "serve", "apps:plain_application",
                "--bind", f"unix:{self.memory_socket}", "--threads", str(self.args.threads),
                "--log-level", "warning",
            ],
        )  # fmt: skip
        process.wait_for_unix_socket(self.memory_socket)
        port = self.memory_site.port
        # Warm up every path once, so what is measured is growth, not first-use allocation.
        for method, path, body in (
            ("GET", "/hello", None),
            ("POST", "/upload", bytes(4 * MiB)),
            ("GET", f"/download?bytes={4 * MiB}", None),
        ):
            status, _ = http_request(port, method, path, body)
            if status != 200:
                raise process.fail(f"warm-up {method} {path} answered {status}")
        results: dict[str, Any] = {"pid": process.pid, "size": self.args.memory_size}
        results["upload"] = self._with_peak(process.pid, lambda: self._upload(port))
        results["download"] = self._with_peak(process.pid, lambda: self._download(port))
        results["idle"] = self._idle_connections(process.pid, port)
        process.stop()
        return results

    def _with_peak(self, pid: int, action: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        reset = reset_peak_rss(pid)
        before = read_status(pid)
        sampler = RssSampler(pid)
        with sampler:
            started = time.monotonic()
            outcome = action()
            seconds = time.monotonic() - started
        after = read_status(pid)
        baseline = before["VmRSS"] if reset else before["VmHWM"]
        peak = max(after["VmHWM"], sampler.peak)
        return {
            **outcome,
            "seconds": round(seconds, 2),
            "mib_per_s": round(self.args.memory_size / MiB / seconds, 1),
            "rss_before_mib": round(before["VmRSS"] / MiB, 1),
            "peak_rss_mib": round(peak / MiB, 1),
            "peak_growth_mib": round((peak - baseline) / MiB, 1),
            "peak_reset": reset,
        }

    def _upload(self, port: int) -> dict[str, Any]:
        size = self.args.memory_size
        conn = http.client.HTTPConnection(HOST, port, timeout=600)
        try:
            conn.putrequest("POST", "/upload")
            conn.putheader("Content-Type", "application/octet-stream")
            conn.putheader("Content-Length", str(size))
            conn.endheaders()
            block = bytes(MiB)
            left = size
            while left > 0:
                piece = block if left >= MiB else block[:left]
                conn.send(piece)
                left -= len(piece)
            response = conn.getresponse()
            body = response.read()
        finally:
            conn.close()
        return {"status": response.status, "ok": response.status == 200 and body == b"%d" % size}

    def _download(self, port: int) -> dict[str, Any]:
        size = self.args.memory_size
        status, received = download(port, size)
        return {"status": status, "ok": status == 200 and received == size}

    def _idle_connections(self, pid: int, port: int) -> dict[str, Any]:
        from fcgikit.protocol import ClientConnection, RequestEnded

        count = self.args.idle_connections
        before = read_status(pid)
        held: list[socket.socket] = []
        served = 0
        try:
            for _ in range(count):
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                held.append(sock)
                sock.settimeout(30)
                sock.connect(str(self.memory_socket))
                client = ClientConnection()
                params = {
                    b"REQUEST_METHOD": b"GET",
                    b"SCRIPT_NAME": b"",
                    b"PATH_INFO": b"/hello",
                    b"QUERY_STRING": b"",
                    b"SERVER_NAME": b"localhost",
                    b"SERVER_PORT": b"80",
                    b"SERVER_PROTOCOL": b"HTTP/1.1",
                }
                sock.sendall(client.start_request(1, params, keep_conn=True) + client.end_stdin(1))
                ended = False
                while not ended:
                    data = sock.recv(65536)
                    if not data:
                        break
                    ended = any(isinstance(e, RequestEnded) for e in client.receive_data(data))
                served += ended
            time.sleep(0.5)  # let the server settle after the last reply
            after = read_status(pid)
            open_fds = len(os.listdir(f"/proc/{pid}/fd"))
            status, _ = http_request(port, "GET", "/hello")  # still serving with them held
            return {
                "connections": count,
                "served_one_request_each": served,
                "server_fds": open_fds,
                "rss_before_mib": round(before["VmRSS"] / MiB, 1),
                "rss_after_mib": round(after["VmRSS"] / MiB, 1),
                "rss_growth_mib": round((after["VmRSS"] - before["VmRSS"]) / MiB, 1),
                "threads": after["Threads"],
                "still_serving": status == 200,
            }
        finally:
            for sock in held:
                sock.close()

    # -- profile -----------------------------------------------------------------------

    def profile(self, apps: Sequence[str], out: Path) -> dict[str, Any]:
        py_spy = _bin("py-spy")
        if py_spy is None:
            raise SystemExit("--profile needs py-spy (pip install py-spy; benchmarks/run has it)")
        site = self.sites["fcgikit", "on"]
        pid = self.backend_pids["fcgikit"]
        wrk = Wrk(self.args.wrk, self.workdir, self.args.wrk_threads)
        summaries = {}
        for app_name in apps:
            app = APPS[app_name]
            raw = out / f"profile-{app_name}.txt"
            load = subprocess.Popen(
                wrk.argv(app, site.port, 16, self.args.duration + 3),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            try:
                time.sleep(1)  # py-spy should see steady load, not the ramp-up
                subprocess.run(
                    [
                        py_spy, "record", "--pid", str(pid), "--duration",
                        str(max(1, round(self.args.duration))), "--rate", "200",
                        "--format", "raw", "--output", str(raw), "--gil",
                    ],
                    check=True, capture_output=True, timeout=self.args.duration + 60,
                )  # fmt: skip
            finally:
                output, _ = load.communicate(timeout=self.args.duration + 60)
            under_profile = WrkResult.parse(output)
            summaries[app_name] = summarize_profile(raw.read_text())
            summaries[app_name]["rps_under_py_spy"] = under_profile.rps
        return summaries


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and its live descendants (gunicorn's worker)."""
    return sum(cpu_times(pid))


def cpu_times(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of ``pid`` and its live descendants."""
    user = system = 0.0
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            user += int(fields[11]) / _CLOCK_TICKS  # utime
            system += int(fields[12]) / _CLOCK_TICKS  # stime
        except (OSError, IndexError, ValueError):
            continue
        pending += children(current)
    return user, system


def context_switches(pid: int) -> tuple[int, int]:
    """(voluntary, involuntary) context switches of every thread of ``pid`` and its live
    descendants: a request handed between threads shows as voluntary ones, a thread
    preempted as involuntary ones."""
    voluntary = involuntary = 0
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            for task in Path(f"/proc/{current}/task").iterdir():
                for line in (task / "status").read_text().splitlines():
                    if line.startswith("voluntary_ctxt_switches:"):
                        voluntary += int(line.split()[1])
                    elif line.startswith("nonvoluntary_ctxt_switches:"):
                        involuntary += int(line.split()[1])
        except (OSError, ValueError):
            continue
        pending += children(current)
    return voluntary, involuntary


def children(pid: int) -> list[int]:
    """The live child processes of ``pid`` (nginx's workers, a prefork server's)."""
    found = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            found += [int(child) for child in (task / "children").read_text().split()]
    except (OSError, ValueError):
        pass
    return found


def reset_peak_rss(pid: int) -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False where that is not allowed."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def read_status(pid: int) -> dict[str, int]:
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        parts = rest.split()
        if name in ("VmRSS", "VmHWM") and parts:
            values[name] = int(parts[0]) * KiB
        elif name == "Threads" and parts:
            values[name] = int(parts[0])
    return values


class RssSampler:
    """Samples VmRSS every 20 ms in a thread: a second witness next to VmHWM."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            with contextlib.suppress(OSError, KeyError):
                self.peak = max(self.peak, read_status(self.pid)["VmRSS"])

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


# --------------------------------------------------------------------------- profiles


def summarize_profile(raw: str, top: int = 25) -> dict[str, Any]:
    """Self and inclusive sample counts per function from py-spy's collapsed stacks.

    Each line is ``frame;frame;...;frame COUNT``, outermost first; a frame reads
    ``function (file:line)``. Line numbers are dropped so a function is counted once.
    """
    self_counts: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_frame_name(frame) for frame in stack.split(";")]
        frames = [frame for frame in frames if not frame.startswith("thread ")]
        if not frames:
            continue
        total += count
        self_counts[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count

    def ranked(counter: collections.Counter[str]) -> list[dict[str, Any]]:
        return [
            {"function": name, "samples": n, "percent": round(100 * n / total, 1)}
            for name, n in counter.most_common(top)
        ]

    return {"samples": total, "self": ranked(self_counts), "inclusive": ranked(inclusive)}


def _frame_name(frame: str) -> str:
    match = re.match(r"(.*) \((.*?)(?::\d+)?\)$", frame.strip())
    if not match:
        return frame.strip()
    function, path = match.groups()
    for prefix in (str(REPO_ROOT) + "/", "/usr/lib/python3", str(Path(sys.prefix)) + "/"):
        if path.startswith(prefix):
            path = path[len(prefix) :]
    for marker in ("site-packages/", "lib/python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{path}:{function}"


# --------------------------------------------------------------------------- reporting


def _fmt_ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value * 1000:.0f} us" if value < 1 else f"{value:.2f} ms"


def markdown_table(cells: Sequence[Cell]) -> str:
    lines = [
        "| app | keep_conn | conns | backend | req/s | p50 | p99 | req/s vs fcgikit "
        "| CPU µs/req | wrk errors | logged errors |",
        "|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    by_key = {(c.app, c.keep, c.connections, c.backend): c for c in cells}
    for cell in cells:
        reference = by_key.get((cell.app, cell.keep, cell.connections, "fcgikit"))
        rps = cell.median("rps") or 0.0
        ref_rps = reference.median("rps") if reference else None
        ratio = f"{rps / ref_rps:.2f}x" if ref_rps else "-"
        cpu = statistics.median(cell.cpu_us_per_request) if cell.cpu_us_per_request else None
        lines.append(
            f"| {APPS[cell.app].title} | {cell.keep} | {cell.connections} | {cell.backend} "
            f"| {rps:,.0f} | {_fmt_ms(cell.median('p50_ms'))} | {_fmt_ms(cell.median('p99_ms'))} "
            f"| {ratio} | {f'{cpu:.0f}' if cpu else '-'} "
            f"| {cell.errors or ''} | {cell.upstream_errors or ''} |"
        )
    return "\n".join(lines)


@dataclass
class Target:
    text: str
    measured: str
    met: bool | None  # None: not measured in this run


def evaluate_targets(cells: Sequence[Cell], memory: dict[str, Any] | None) -> list[Target]:
    """The issue's targets, judged on this run's medians (keep_conn on and off alike)."""
    by_key = {(c.app, c.keep, c.connections, c.backend): c for c in cells}
    targets: list[Target] = []

    def ratio(app: str, keep: str, conns: int, other: str, what: str = "rps") -> float | None:
        ours = by_key.get((app, keep, conns, "fcgikit"))
        theirs = by_key.get((app, keep, conns, other))
        if ours is None or theirs is None:
            return None
        a, b = ours.median(what), theirs.median(what)
        return a / b if a and b else None

    def add(text: str, values: list[tuple[str, float | None]], ok: Callable[[float], bool]) -> None:
        present = [(label, v) for label, v in values if v is not None]
        if not present:
            targets.append(Target(text, "not measured", None))
            return
        measured = ", ".join(f"{label}: {v:.2f}x" for label, v in present)
        targets.append(Target(text, measured, all(ok(v) for _, v in present)))

    keeps = sorted({c.keep for c in cells}, reverse=True)
    conns = sorted({c.connections for c in cells})
    combos = [(k, n) for k in keeps for n in conns]

    def label(k: str, n: int) -> str:
        return f"keep {k} c{n}"

    add(
        "Flask hello req/s >= 1.0x uWSGI",
        [(label(k, n), ratio("flask", k, n, "uwsgi")) for k, n in combos],
        lambda v: v >= 1.0,
    )
    add(
        "plain hello req/s >= 0.7x uWSGI",
        [(label(k, n), ratio("hello", k, n, "uwsgi")) for k, n in combos],
        lambda v: v >= 0.7,
    )
    for app in ("hello", "flask"):
        add(
            f"{APPS[app].title} req/s >= 5x flup",
            [(label(k, n), ratio(app, k, n, "flup")) for k, n in combos],
            lambda v: v >= 5.0,
        )
    for app in ("hello", "flask"):
        add(
            f"{APPS[app].title} p99 <= 1.5x uWSGI's",
            [(label(k, n), ratio(app, k, n, "uwsgi", "p99_ms")) for k, n in combos],
            lambda v: v <= 1.5,
        )
    if memory:
        size = f"{memory['size'] / GiB:g} GiB"
        for kind in ("upload", "download"):
            result = memory[kind]
            targets.append(
                Target(
                    f"{size} {kind} through nginx: peak RSS growth < 32 MiB",
                    f"{result['peak_growth_mib']} MiB (peak {result['peak_rss_mib']} MiB, "
                    f"{result['mib_per_s']} MiB/s, {'correct' if result['ok'] else 'WRONG'})",
                    result["ok"] and result["peak_growth_mib"] < 32,
                )
            )
        idle = memory["idle"]
        targets.append(
            Target(
                f"{idle['connections']} idle keep-conn connections: RSS < 64 MiB",
                f"{idle['rss_after_mib']} MiB (+{idle['rss_growth_mib']} MiB; "
                f"{idle['served_one_request_each']} served, {idle['server_fds']} fds)",
                idle["rss_after_mib"] < 64
                and idle["served_one_request_each"] == idle["connections"],
            )
        )
    return targets


def targets_table(targets: Sequence[Target]) -> str:
    lines = ["| target | measured (fcgikit / other) | met |", "|---|---|---|"]
    for target in targets:
        met = {True: "yes", False: "**no**", None: "-"}[target.met]
        lines.append(f"| {target.text} | {target.measured} | {met} |")
    return "\n".join(lines)


def write_chart(cells: Sequence[Cell], path: Path) -> str | None:
    """A bar chart, one panel per app; returns why it was not written, or None."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed: no chart (benchmarks/run installs it)"
    apps = [name for name in APPS if any(c.app == name for c in cells)]
    backends = [name for name in BACKENDS if any(c.backend == name for c in cells)]
    palette = ["#d62728", "#1f77b4", "#7f7f7f", "#2ca02c", "#bcbd22", "#ff9896", "#9467bd"]
    colors = dict(zip(BACKENDS, itertools.cycle(palette), strict=False))
    figure, axes = plt.subplots(
        len(apps), 1, figsize=(10, 3.2 * len(apps)), squeeze=False, constrained_layout=True
    )
    for axis, app in zip(axes[:, 0], apps, strict=True):
        groups = sorted(
            {(c.keep, c.connections) for c in cells if c.app == app},
            key=lambda g: (g[0] != "on", g[1]),
        )
        width = 0.8 / max(1, len(backends))
        for index, backend in enumerate(backends):
            xs, heights = [], []
            for position, (keep, conns) in enumerate(groups):
                for cell in cells:
                    if (cell.app, cell.keep, cell.connections, cell.backend) == (
                        app,
                        keep,
                        conns,
                        backend,
                    ):
                        xs.append(position + (index - (len(backends) - 1) / 2) * width)
                        heights.append(cell.median("rps") or 0)
            if xs:
                bars = axis.bar(xs, heights, width, label=backend, color=colors[backend])
                axis.bar_label(bars, fmt="{:,.0f}", fontsize=6, rotation=90, padding=2)
        axis.set_xticks(range(len(groups)), [f"keep_conn {k}, {n} conns" for k, n in groups])
        axis.set_ylabel("req/s (median)")
        axis.set_title(APPS[app].title)
        axis.margins(y=0.2)
        axis.legend(fontsize=7, loc="upper right")
    figure.suptitle("fcgikit vs uWSGI vs flup vs gunicorn behind nginx (1 worker), wrk -t1")
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return None


def git_state() -> str:
    """The checkout's commit, and whether fcgikit/ had uncommitted changes when measured."""
    try:
        head = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "status", "--porcelain", "--", "fcgikit"],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{head} + uncommitted changes in fcgikit/" if dirty else head


def load_average() -> list[float]:
    """1, 5 and 15 minute load averages: above 0 means something else wanted the CPUs."""
    try:
        return [float(part) for part in Path("/proc/loadavg").read_text().split()[:3]]
    except (OSError, ValueError):
        return []


def machine_description(args: argparse.Namespace) -> dict[str, str]:
    def first_line(argv: list[str]) -> str:
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=20)
        except (OSError, subprocess.TimeoutExpired):
            return "not found"
        lines = (done.stdout + done.stderr).strip().splitlines()
        return lines[0] if lines else "?"  # wrk --version exits 1

    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    versions = {}
    for package in ("fcgikit", "uwsgi", "flup", "gunicorn", "flask"):
        with contextlib.suppress(Exception):
            from importlib.metadata import version

            versions[package] = version(package)
    return {
        "cpus": str(os.cpu_count()),
        "cpu": cpu,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "nginx": first_line([args.nginx, "-v"]),
        "wrk": first_line([args.wrk, "--version"]),
        **{f"{name} version": value for name, value in versions.items()},
    }


# --------------------------------------------------------------------------- command line


def _csv(choices: Sequence[str]) -> Callable[[str], list[str]]:
    def parse(text: str) -> list[str]:
        names = [name.strip() for name in text.split(",") if name.strip()]
        unknown = [name for name in names if name not in choices]
        if unknown or not names:
            raise argparse.ArgumentTypeError(f"pick from {', '.join(choices)}")
        return names

    return parse


def _connections(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError("a comma-separated list of numbers, e.g. 16,256") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError("at least one number, each 1 or more")
    return values


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="fcgikit vs uWSGI vs flup vs gunicorn behind nginx.",
        epilog="benchmarks/README.md explains the setup and how to read the results.",
    )
    parser.add_argument("--rounds", type=int, default=3, help="rounds; medians are reported")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per wrk run")
    parser.add_argument("--connections", type=_connections, default=[16, 256], metavar="N,N")
    parser.add_argument(
        "--only", type=_csv(list(BACKENDS)), metavar="BACKENDS", help="e.g. fcgikit,uwsgi"
    )
    parser.add_argument("--apps", type=_csv(list(APPS)), default=list(APPS), metavar="APPS")
    parser.add_argument("--keep", type=_csv(list(KEEP_MODES)), default=["on", "off"])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="one 2 s round of hello and Flask at 16 connections, keep_conn on, "
        "no memory checks (explicit options still win)",
    )
    parser.add_argument("--threads", type=int, default=16, help="fcgikit's --threads")
    parser.add_argument("--wrk-threads", type=int, default=1)
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds per backend and app")
    parser.add_argument(
        "--memory", action=argparse.BooleanOptionalAction, default=True, help="the RSS checks"
    )
    parser.add_argument("--memory-only", action="store_true", help="skip the throughput runs")
    parser.add_argument("--memory-size", type=int, default=GiB, help="upload/download bytes")
    parser.add_argument("--idle-connections", type=int, default=1000)
    parser.add_argument(
        "--profile", action="store_true", help="py-spy fcgikit under load, for each of --apps"
    )
    parser.add_argument(
        "--fcgikit-path",
        type=Path,
        metavar="DIR",
        help="import fcgikit from DIR/fcgikit instead (e.g. a patched copy, to compare)",
    )
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME:KEY=VALUE,...",
        help="one more fcgikit backend, fcgikit-NAME, measured in the same run: keys "
        "threads=N, path=DIR (import fcgikit from DIR/fcgikit) and pure=1 (the pure-Python "
        "build: FCGIKIT_PURE_PYTHON=1); e.g. t4:threads=4",
    )
    import scenarios

    scenarios.add_arguments(parser)
    parser.add_argument("--out", type=Path, default=BENCH_DIR, help="where results.* go")
    parser.add_argument("--keep-workdir", action="store_true", help="keep configs and logs")
    parser.add_argument("--nginx", default=find_binary("nginx"), help=argparse.SUPPRESS)
    parser.add_argument("--wrk", default=find_binary("wrk"), help=argparse.SUPPRESS)
    return parser


def add_variant(text: str) -> str:
    """Register ``fcgikit-NAME`` from ``NAME:threads=N,path=DIR,pure=1``; returns its name."""
    name, _, options = text.partition(":")
    settings = dict(item.split("=", 1) for item in options.split(",") if "=" in item)
    unknown = set(settings) - {"threads", "path", "pure"}
    if not name.isidentifier() or unknown or settings.get("pure", "1") not in ("0", "1"):
        raise SystemExit(f"--variant {text!r}: NAME:threads=N,path=DIR,pure=1 (unknown: {unknown})")
    threads = int(settings["threads"]) if "threads" in settings else None
    path = Path(settings["path"]) if "path" in settings else None
    env = {"FCGIKIT_PURE_PYTHON": "1"} if settings.get("pure") == "1" else {}

    def command(python: str, sock: Path, default_threads: int, workdir: Path) -> list[str]:
        return _fcgikit(python, sock, threads or default_threads, workdir)

    backend_name = f"fcgikit-{name}"
    BACKENDS[backend_name] = Backend(
        backend_name, "fastcgi", command, _module_missing("fcgikit", "pip install -e ."),
        pythonpath=path, threads=threads, env=env,
    )  # fmt: skip
    return backend_name


def apply_quick(args: argparse.Namespace, argv: Sequence[str]) -> None:
    given = {arg.split("=", 1)[0] for arg in argv if arg.startswith("--")}
    defaults = {
        "--rounds": ("rounds", 1),
        "--duration": ("duration", 2.0),
        "--connections": ("connections", [16]),
        "--apps": ("apps", ["hello", "flask"]),
        "--keep": ("keep", ["on"]),
        "--warmup": ("warmup", 0.0),
    }
    for option, (name, value) in defaults.items():
        if option not in given:
            setattr(args, name, value)
    if "--memory" not in given:
        args.memory = False
    if "--scenarios" not in given:
        args.scenarios = "none"


def raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 65536 if hard == resource.RLIM_INFINITY else min(hard, 65536)
    if soft < wanted:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


@contextlib.contextmanager
def work_directory(keep: bool) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="fcgikit-bench-"))
    os.chmod(path, 0o755)
    try:
        yield path
    finally:
        if keep:
            print(f"configs and logs kept in {path}", file=sys.stderr)
        else:
            shutil.rmtree(path, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    if args.quick:
        apply_quick(args, argv)
    missing_tools = [
        f"{name} (Debian package {package})"
        for name, package, path in (("nginx", "nginx-light", args.nginx), ("wrk", "wrk", args.wrk))
        if not path
    ]
    if missing_tools:
        print(f"missing: {', '.join(missing_tools)}; benchmarks/run installs them", file=sys.stderr)
        return 2
    import scenarios

    scenario_names = scenarios.chosen(args.scenarios)
    variants = [add_variant(text) for text in args.variant]
    backends = [*(args.only or [n for n in BACKENDS if n not in variants]), *variants]
    if "fcgikit" in backends:  # the reference every ratio is taken against goes first
        backends.remove("fcgikit")
        backends.insert(0, "fcgikit")
    for name in list(backends):
        problem = BACKENDS[name].unavailable()
        if problem is not None:
            if args.only:
                print(f"{name}: {problem}", file=sys.stderr)
                return 2
            print(f"note: leaving out {name}: {problem}", file=sys.stderr)
            backends.remove(name)
    apps = list(args.apps)
    if "flask" in apps and importlib.util.find_spec("flask") is None:
        print("note: leaving out the Flask app: flask is not installed", file=sys.stderr)
        apps.remove("flask")
    memory = args.memory and "fcgikit" in backends
    raise_fd_limit()
    args.out.mkdir(parents=True, exist_ok=True)

    machine = machine_description(args)
    print("machine: " + "; ".join(f"{k} {v}" for k, v in machine.items()), file=sys.stderr)
    load_at_start = load_average()
    if load_at_start and load_at_start[0] > (os.cpu_count() or 1) / 2:
        print(
            f"note: load average {load_at_start[0]:.1f} before starting: something else is "
            "running, and req/s will be lower than on a quiet machine (ratios still hold "
            "roughly, CPU µs/req best)",
            file=sys.stderr,
        )
    cells: list[Cell] = []
    memory_results = None
    profiles = None
    scenario_cells: list[dict[str, Any]] = []
    with work_directory(args.keep_workdir) as workdir:
        bench = Bench(args, workdir)
        bench.variants = {
            name: (BACKENDS[name].pythonpath, BACKENDS[name].threads) for name in variants
        }
        try:
            matrix = args.matrix and not args.memory_only
            bench.start(backends if matrix else [], args.keep, memory)
            if matrix:
                cells = bench.measure(backends, apps, args.keep)
            if args.profile and "fcgikit" in backends:
                profiles = bench.profile(apps, args.out)
            if memory:
                print("  memory checks ...", file=sys.stderr, flush=True)
                memory_results = bench.memory_checks()
            if scenario_names and not args.memory_only:
                scenario_cells = scenarios.run_scenarios(bench, scenario_names)
        finally:
            bench.stop()
        notes = bench.notes

    table = markdown_table(cells)
    targets = evaluate_targets(cells, memory_results)
    settings = {
        "rounds": args.rounds,
        "duration_s": args.duration,
        "connections": args.connections,
        "wrk": f"wrk -t{args.wrk_threads} --latency (median of rounds)",
        "fcgikit_threads": args.threads,
        "fcgikit_source": str(args.fcgikit_path or REPO_ROOT),
        "git": git_state(),
        "load_average_at_start": load_at_start,
        "load_average_at_end": load_average(),
        "backends": backends,
    }
    if cells or memory_results:
        print(f"\n{table}\n")
        print(targets_table(targets))
    if scenario_cells:
        print(scenarios.scenario_tables(scenario_cells))
    if memory_results:
        print("\nmemory: " + json.dumps(memory_results))
    if profiles:
        for app, summary in profiles.items():
            print(f"\nprofile of fcgikit, {APPS[app].title} ({summary['samples']} samples):")
            for row in summary["self"][:15]:
                print(f"  self {row['percent']:5.1f}%  {row['function']}")
    chart_problem = write_chart(cells, args.out / "results.png") if cells else "no cells"
    if chart_problem:
        notes.append(chart_problem)
        print(f"note: {chart_problem}", file=sys.stderr)
    results = {
        "generated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine,
        "settings": settings,
        "results": [cell.summary() for cell in cells],
        "memory": memory_results,
        "scenarios": scenario_cells,
        "targets": [asdict(target) for target in targets],
        "profiles": profiles,
        "notes": notes,
        "table_markdown": table,
    }
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwrote {args.out / 'results.json'}" + ("" if chart_problem else " and results.png"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
