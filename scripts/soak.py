"""Soak fcgikit behind nginx with mixed load and faults; print the figures. Not run in CI.

    python scripts/soak.py --duration 600            # ten minutes of mixed load and faults
    python scripts/soak.py --aborts 10000            # the issue's 10,000 aborts, then stop
    python scripts/soak.py --big 1024                # 1 GiB up and down, sha256 compared

What runs, all against 127.0.0.1 and unix sockets in a temp dir:

* nginx (Debian's, started with ``-p TMP -c TMP/nginx.conf``) on a free port, in front of
  ``python -m fcgikit serve soak:app`` (this module) on a unix socket. Locations ``/b/``
  (nginx buffers request and response) and ``/s/`` (``fastcgi_request_buffering off`` and
  ``fastcgi_buffering off``: nginx streams both ways, so aborts reach the backend).
* Workers pick, by weight: a good request (small GET, upload with sha256 check, download
  with sha256 check); a client that aborts mid-upload or mid-download (nginx then closes its
  FastCGI connection); a raw FastCGI FCGI_ABORT_REQUEST straight to the backend; an app that
  hangs past nginx's ``fastcgi_read_timeout``; an app that raises after its headers; an
  upload bigger than the backend's spool disk (a small tmpfs when run as root: full disk).
* Every ``--report-every`` seconds a line: requests, failures by cause, backend RSS, file
  descriptors, threads and spool files (fds whose link ends ``(deleted)``). At the end the
  backend is left to settle and compared with its idle baseline: a leaked thread, fd or spool
  makes the exit status 1.

The pieces (the app, :class:`NginxSite`, :class:`ProcessStats`, the HTTP fault clients) are
also what ``tests/server/test_faults.py`` uses with small counts.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import http.client
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from fcgikit.protocol import ClientConnection  # noqa: E402
from tests.processes import Backend, fcgikit_command  # noqa: E402

# --- the backend app ---------------------------------------------------------------------

BLOCK = random.Random(20261121).randbytes(65536)


def pattern(size: int) -> Iterator[bytes]:
    """``size`` bytes of a fixed pseudo-random pattern, in 64 KiB blocks."""
    whole, rest = divmod(size, len(BLOCK))
    for _ in range(whole):
        yield BLOCK
    if rest:
        yield BLOCK[:rest]


def pattern_digest(size: int) -> str:
    digest = hashlib.sha256()
    for block in pattern(size):
        digest.update(block)
    return digest.hexdigest()


class AppFault(Exception):
    pass


def app(environ: dict[str, Any], start_response: Any) -> Any:
    """The soak's app: /ok, /upload, /download?size=, /hang?s=, /raise-late, /raise."""
    # nginx's fastcgi_params send the path as SCRIPT_NAME (and no PATH_INFO); our tests'
    # clients send PATH_INFO: the last segment of either names the action
    path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
    name = path.rsplit("/", 1)[-1]
    query = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
    if name == "upload":
        gate = query.get("gate")
        if gate:  # wait (bounded) until the caller lets the body be read: it spools meanwhile
            deadline = time.monotonic() + float(query.get("wait", "30"))
            while not os.path.exists(gate) and time.monotonic() < deadline:
                time.sleep(0.01)
        stream = environ["wsgi.input"]
        digest = hashlib.sha256()
        total = 0
        while chunk := stream.read(262144):
            digest.update(chunk)
            total += len(chunk)
        body = f"{total} {digest.hexdigest()}".encode()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [body]
    if name == "download":
        size = int(query.get("size", "0"))
        start_response(
            "200 OK",
            [("Content-Type", "application/octet-stream"), ("Content-Length", str(size))],
        )
        return pattern(size)
    if name == "hang":
        time.sleep(float(query.get("s", "2")))  # the fault itself: an app that hangs
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"woke up"]
    if name == "raise-late":

        def body_then_error() -> Iterator[bytes]:
            yield b"partial "
            raise AppFault("raised after the headers were sent")

        start_response("200 OK", [("Content-Type", "text/plain")])
        return body_then_error()
    if name == "raise":
        raise AppFault("raised before the headers")
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


# --- nginx and the backend ----------------------------------------------------------------

NGINX_CONF = """
worker_processes 1;
user root;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log info;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/client_body;
    fastcgi_temp_path {tmp}/fastcgi;
    proxy_temp_path {tmp}/proxy;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    client_max_body_size 0;
    upstream fcgikit {{
        server unix:{socket};
        keepalive 16;
    }}
    server {{
        listen 127.0.0.1:{port};
        fastcgi_keep_conn on;
        fastcgi_read_timeout {read_timeout};
        location /b/ {{
            include /etc/nginx/fastcgi_params;
            fastcgi_pass fcgikit;
        }}
        location /h/ {{
            include /etc/nginx/fastcgi_params;
            fastcgi_read_timeout 1s;
            fastcgi_pass fcgikit;
        }}
        location /s/ {{
            include /etc/nginx/fastcgi_params;
            fastcgi_request_buffering off;
            fastcgi_buffering off;
            fastcgi_pass fcgikit;
        }}
    }}
}}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


class NginxSite:
    """nginx in ``tmp`` in front of a unix socket; stopped by its PID."""

    def __init__(self, tmp: Path, backend_socket: str, *, read_timeout: str = "60s") -> None:
        self.tmp = tmp
        self.port = free_port()
        tmp.mkdir(parents=True, exist_ok=True)
        self.conf = tmp / "nginx.conf"
        self.conf.write_text(
            NGINX_CONF.format(
                tmp=tmp, socket=backend_socket, port=self.port, read_timeout=read_timeout
            )
        )
        self.proc = subprocess.Popen(
            [
                shutil.which("nginx") or "nginx",
                "-p",
                str(tmp),
                "-c",
                str(self.conf),
                "-g",
                "daemon off;",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )

        def accepting() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"nginx exited: {self.proc.stderr.read().decode()}")  # type: ignore[union-attr]
            with socket.socket() as probe:
                return probe.connect_ex(("127.0.0.1", self.port)) == 0

        wait_until(accepting, 30, "nginx to accept connections")

    @property
    def error_log(self) -> str:
        path = self.tmp / "error.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(15)
        if self.proc.stderr is not None:
            self.proc.stderr.close()


def start_backend(
    socket_path: str,
    *,
    threads: int = 8,
    env: dict[str, str] | None = None,
    file_size_limit: int | None = None,
) -> Backend:
    """``python -m fcgikit serve soak:app`` on ``socket_path``; waits for ``listening on``.

    ``file_size_limit`` runs it under RLIMIT_FSIZE (writes past it fail with EFBIG): a full
    disk where a small tmpfs cannot be mounted.
    """
    args = [
        "serve",
        "soak:app",
        "--chdir",
        str(ROOT / "scripts"),
        "--bind",
        f"unix:{socket_path}",
        "--threads",
        str(threads),
    ]
    command = fcgikit_command(*args)
    if file_size_limit is not None:
        command = [
            sys.executable,
            "-c",
            "import resource, runpy, signal, sys\n"
            f"resource.setrlimit(resource.RLIMIT_FSIZE, ({file_size_limit}, {file_size_limit}))\n"
            "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
            "sys.argv = ['fcgikit', *sys.argv[1:]]\n"
            "runpy.run_module('fcgikit', run_name='__main__')",
            *args,
        ]
    backend = Backend(command, env={"PYTHONPATH": str(ROOT), **(env or {})})
    backend.wait_for("listening on")
    return backend


@contextlib.contextmanager
def small_disk(tmp: Path, size_mib: int) -> Iterator[Path | None]:
    """A ``size_mib`` tmpfs at ``tmp`` when we may mount one (root), else None."""
    tmp.mkdir(parents=True, exist_ok=True)
    mounted = False
    if os.geteuid() == 0 and shutil.which("mount"):
        result = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size_mib}m", "tmpfs", str(tmp)],
            capture_output=True,
        )
        mounted = result.returncode == 0
    try:
        yield tmp if mounted else None
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(tmp)], capture_output=True)


@dataclass
class Snapshot:
    threads: int
    fds: int
    spools: int
    rss_kib: int


class ProcessStats:
    """Threads, fds, spool files (unlinked temp files still open) and RSS of a process."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.max_rss_kib = 0

    def snapshot(self) -> Snapshot:
        proc = Path(f"/proc/{self.pid}")
        threads = len(os.listdir(proc / "task"))
        fds = 0
        spools = 0
        for fd in os.listdir(proc / "fd"):
            with contextlib.suppress(OSError):
                target = os.readlink(proc / "fd" / fd)
                fds += 1
                spools += target.endswith("(deleted)")
        rss = 0
        for line in (proc / "status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
        self.max_rss_kib = max(self.max_rss_kib, rss)
        return Snapshot(threads, fds, spools, rss)

    def settle(self, baseline: Snapshot, *, threads: int, timeout: float = 30) -> Snapshot:
        """Wait until fds and spools are back to ``baseline`` and threads at most
        ``threads`` (the pool keeps its threads); the last snapshot, settled or not."""
        deadline = time.monotonic() + timeout
        while True:
            now = self.snapshot()
            settled = now.fds <= baseline.fds and now.spools == 0 and now.threads <= threads
            if settled or time.monotonic() > deadline:
                return now
            time.sleep(0.05)


# --- HTTP clients, well-behaved and not ---------------------------------------------------


def http_request(
    port: int,
    method: str,
    path: str,
    body: Any = None,
    *,
    headers: dict[str, str] | None = None,
    timeout: float = 60,
    sink: Any = None,
) -> tuple[int, bytes]:
    """One request through nginx; the response body is returned, or fed to ``sink``."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        if sink is None:
            return response.status, response.read()
        while chunk := response.read(262144):
            sink(chunk)
        return response.status, b""
    finally:
        connection.close()


def upload_and_check(port: int, prefix: str, size: int) -> None:
    class Body:
        def __init__(self) -> None:
            self.blocks = pattern(size)
            self.buffer = b""

        def read(self, n: int = -1) -> bytes:
            return next(self.blocks, b"")

    status, body = http_request(
        port, "POST", f"{prefix}upload", Body(), headers={"Content-Length": str(size)}
    )
    want = f"{size} {pattern_digest(size)}".encode()
    if status != 200 or body != want:
        raise AssertionError(f"upload of {size} bytes: {status} {body[:100]!r}, wanted {want!r}")


def download_and_check(port: int, prefix: str, size: int) -> None:
    digest = hashlib.sha256()
    total = [0]

    def sink(chunk: bytes) -> None:
        digest.update(chunk)
        total[0] += len(chunk)

    status, _ = http_request(port, "GET", f"{prefix}download?size={size}", sink=sink)
    if status != 200 or total[0] != size or digest.hexdigest() != pattern_digest(size):
        raise AssertionError(f"download of {size} bytes: {status}, got {total[0]} bytes")


def _raw_http(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    return sock


def _hard_close(sock: socket.socket) -> None:
    # RST instead of FIN half the time: both are what browsers do when a tab is closed
    if random.random() < 0.5:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    sock.close()


def abort_upload(port: int, *, total: int = 4 << 20, sent: int = 256 << 10) -> None:
    """Announce ``total`` bytes to the streaming location, send ``sent``, vanish."""
    sock = _raw_http(port)
    try:
        sock.sendall(
            f"POST /s/upload HTTP/1.1\r\nHost: soak\r\nContent-Length: {total}\r\n\r\n".encode()
        )
        for block in pattern(sent):
            sock.sendall(block)
    finally:
        _hard_close(sock)


def abort_download(port: int, *, size: int = 32 << 20, read: int = 128 << 10) -> None:
    """Ask the streaming location for ``size`` bytes, read ``read`` of them, vanish."""
    sock = _raw_http(port)
    try:
        sock.sendall(f"GET /s/download?size={size} HTTP/1.1\r\nHost: soak\r\n\r\n".encode())
        got = 0
        while got < read:
            chunk = sock.recv(65536)
            if not chunk:
                break
            got += len(chunk)
    finally:
        _hard_close(sock)


def fastcgi_abort(socket_path: str, *, body: int = 1 << 20) -> bool:
    """Straight to the backend: a request with half its body, then FCGI_ABORT_REQUEST.
    True when the backend answered it with FCGI_END_REQUEST."""
    client = ClientConnection()
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(30)
        sock.connect(socket_path)
        params = {
            b"REQUEST_METHOD": b"POST",
            b"PATH_INFO": b"/upload",
            b"CONTENT_LENGTH": str(body).encode(),
        }
        sock.sendall(client.start_request(1, params) + client.send_stdin(1, BLOCK[:4096]))
        sock.sendall(client.abort_request(1))
        while True:
            data = sock.recv(65536)
            if not data:
                return False
            for event in client.receive_data(data):
                if type(event).__name__ == "RequestEnded":
                    return True


# --- the soak loop -------------------------------------------------------------------------


@dataclass
class Tally:
    lock: threading.Lock = field(default_factory=threading.Lock)
    done: Counter[str] = field(default_factory=Counter)
    failures: Counter[str] = field(default_factory=Counter)

    def ok(self, kind: str) -> None:
        with self.lock:
            self.done[kind] += 1

    def fail(self, cause: str) -> None:
        with self.lock:
            self.failures[cause] += 1


def one_action(kind: str, port: int, socket_path: str, args: argparse.Namespace) -> None:
    if kind == "get":
        status, body = http_request(port, "GET", random.choice(("/b/ok", "/s/ok")))
        if (status, body) != (200, b"ok"):
            raise AssertionError(f"GET: {status} {body[:80]!r}")
    elif kind == "upload":
        upload_and_check(
            port, random.choice(("/b/", "/s/")), random.randint(0, args.upload_kib << 10)
        )
    elif kind == "download":
        download_and_check(
            port, random.choice(("/b/", "/s/")), random.randint(0, args.download_kib << 10)
        )
    elif kind == "abort-upload":
        abort_upload(port)
    elif kind == "abort-download":
        abort_download(port)
    elif kind == "fastcgi-abort":
        if not fastcgi_abort(socket_path):
            raise AssertionError("FCGI_ABORT_REQUEST was not answered")
    elif kind == "hang":
        status, _ = http_request(port, "GET", "/h/hang?s=3")
        if status != 504:
            raise AssertionError(f"hang: {status}, wanted nginx's 504")
    elif kind == "raise-late":
        with contextlib.suppress(http.client.IncompleteRead, ConnectionError):
            http_request(port, "GET", "/s/raise-late")
    elif kind == "full-disk":
        # the app waits (bounded) for a gate that never opens, so the body spools and fills
        # the small spool disk; the read then fails
        status, _ = http_request(
            port, "POST", "/b/upload?gate=/nonexistent&wait=1", b"x" * (args.disk_mib + 2 << 20)
        )
        if status not in (413, 500, 507):
            raise AssertionError(f"upload bigger than the spool disk: {status}")


WEIGHTS = {
    "get": 30,
    "upload": 10,
    "download": 10,
    "abort-upload": 15,
    "abort-download": 15,
    "fastcgi-abort": 10,
    "hang": 1,
    "raise-late": 3,
    "full-disk": 1,
}


def print_log_summary(stderr: str) -> None:
    """The backend's log lines grouped by what they say (ids, paths and numbers removed)."""
    import re

    kinds: Counter[str] = Counter()
    tracebacks = 0
    for line in stderr.splitlines():
        if line.startswith("Traceback"):
            tracebacks += 1
        if not line.startswith("fcgikit["):
            continue
        text = line.split("] ", 1)[-1]
        text = re.sub(r"#\d+ \S+ \S+", "#N METHOD URI", text)
        text = re.sub(r"\d+(\.\d+)?", "N", text)
        kinds[text[:110]] += 1
    print(f"backend log: {sum(kinds.values())} lines, {tracebacks} tracebacks")
    for text, count in kinds.most_common(12):
        print(f"  {count:6}  {text}")


def soak(args: argparse.Namespace) -> int:
    tmp = Path(tempfile.mkdtemp(prefix="fcgikit-soak-"))
    socket_path = str(tmp / "app.sock")
    tally = Tally()
    with small_disk(tmp / "spool", args.disk_mib) as disk:
        env = {"TMPDIR": str(disk)} if disk is not None else {}
        backend = start_backend(socket_path, threads=args.threads, env=env)
        site = NginxSite(tmp / "nginx", socket_path)
        stats = ProcessStats(backend.proc.pid)
        try:
            baseline = stats.snapshot()
            spool = f"tmpfs {args.disk_mib} MiB" if disk else "none (no full-disk faults)"
            print(f"backend pid {backend.proc.pid}, nginx on 127.0.0.1:{site.port}, spool: {spool}")
            print(f"baseline: {baseline}")
            weights = dict(WEIGHTS)
            if disk is None:
                weights.pop("full-disk")
            if args.aborts:
                weights = {"abort-upload": 1, "abort-download": 1, "get": 1}
            kinds, counts = zip(*weights.items(), strict=True)
            started = time.monotonic()
            stop = threading.Event()

            def worker() -> None:
                while not stop.is_set():
                    kind = random.choices(kinds, counts)[0]
                    try:
                        one_action(kind, site.port, socket_path, args)
                    except Exception as exc:
                        tally.fail(f"{kind}: {type(exc).__name__}: {str(exc)[:60]}")
                    else:
                        tally.ok(kind)
                    if (
                        args.aborts
                        and tally.done["abort-upload"] + tally.done["abort-download"] >= args.aborts
                    ):
                        stop.set()
                    if not args.aborts and time.monotonic() - started > args.duration:
                        stop.set()

            threads = [threading.Thread(target=worker, daemon=True) for _ in range(args.workers)]
            for thread in threads:
                thread.start()
            next_report = started
            while any(thread.is_alive() for thread in threads):
                if time.monotonic() >= next_report:
                    snap = stats.snapshot()
                    with tally.lock:
                        done = sum(tally.done.values())
                        failed = sum(tally.failures.values())
                    print(
                        f"t={time.monotonic() - started:7.1f}s requests={done} failures={failed} "
                        f"rss={snap.rss_kib // 1024}MiB fds={snap.fds} threads={snap.threads} "
                        f"spools={snap.spools}",
                        flush=True,
                    )
                    next_report += args.report_every
                time.sleep(0.2)
            elapsed = time.monotonic() - started
            site.stop()  # its idle keepalive connections are fds of the backend's too
            settled = stats.settle(baseline, threads=baseline.threads + args.threads, timeout=30)
            print(
                f"\n{elapsed:.1f}s, {sum(tally.done.values())} actions "
                f"({sum(tally.done.values()) / elapsed:.0f}/s):"
            )
            for kind, count in sorted(tally.done.items()):
                print(f"  {kind:15} {count}")
            print("failures by cause:" + ("" if tally.failures else " none"))
            for cause, count in tally.failures.most_common():
                print(f"  {count:6}  {cause}")
            print(
                f"backend max RSS {stats.max_rss_kib // 1024} MiB; "
                f"baseline {baseline}; after settling {settled}"
            )
            leaked = (
                settled.fds > baseline.fds
                or settled.spools
                or settled.threads > baseline.threads + args.threads
            )
            print("LEAK" if leaked else "no leaked thread, fd or spool file")
            print_log_summary(backend.stderr)
            return 1 if leaked or (tally.failures and args.strict) else 0
        finally:
            site.stop()
            backend.stop()
            shutil.rmtree(tmp, ignore_errors=True)


def big(args: argparse.Namespace) -> int:
    """``--big MiB`` up and down through nginx, sha256 compared, backend RSS sampled."""
    tmp = Path(tempfile.mkdtemp(prefix="fcgikit-big-"))
    socket_path = str(tmp / "app.sock")
    backend = start_backend(socket_path, threads=4)
    site = NginxSite(tmp / "nginx", socket_path)
    stats = ProcessStats(backend.proc.pid)
    size = args.big << 20
    sampling = threading.Event()

    def sample() -> None:
        while not sampling.wait(0.1):
            stats.snapshot()

    sampler = threading.Thread(target=sample, daemon=True)
    try:
        baseline = stats.snapshot()
        sampler.start()
        for prefix in ("/b/", "/s/"):
            started = time.monotonic()
            upload_and_check(site.port, prefix, size)
            up = time.monotonic() - started
            started = time.monotonic()
            download_and_check(site.port, prefix, size)
            down = time.monotonic() - started
            print(f"{prefix}: {args.big} MiB upload {up:.1f}s, download {down:.1f}s, sha256 equal")
        sampling.set()
        print(
            f"backend RSS: baseline {baseline.rss_kib // 1024} MiB, "
            f"max {stats.max_rss_kib // 1024} MiB"
        )
        return 0
    finally:
        sampling.set()
        site.stop()
        backend.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--duration", type=float, default=60, help="seconds of load (default 60)")
    parser.add_argument(
        "--aborts",
        type=int,
        default=0,
        help="instead of a duration: run until this many client aborts",
    )
    parser.add_argument("--workers", type=int, default=8, help="concurrent clients (default 8)")
    parser.add_argument("--threads", type=int, default=8, help="backend threads (default 8)")
    parser.add_argument("--upload-kib", type=int, default=4096)
    parser.add_argument("--download-kib", type=int, default=4096)
    parser.add_argument("--disk-mib", type=int, default=16, help="spool tmpfs size (root only)")
    parser.add_argument("--report-every", type=float, default=10)
    parser.add_argument("--strict", action="store_true", help="exit 1 on any failure")
    parser.add_argument("--big", type=int, metavar="MiB", help="the integrity run instead")
    args = parser.parse_args()
    if shutil.which("nginx") is None:
        print("nginx is not installed (apt-get install nginx-light)", file=sys.stderr)
        return 2
    return big(args) if args.big else soak(args)


if __name__ == "__main__":
    sys.exit(main())
