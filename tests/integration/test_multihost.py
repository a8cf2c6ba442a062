"""Three fcgikit "hosts" behind nginx and HAProxy at once, under steady load.

Each fcgikit runs on a loopback address of its own (127.0.0.2, .3, .4), as it would on a
machine of its own, and lets only the front ends' address connect (``FCGI_WEB_SERVER_ADDRS``).
nginx and HAProxy both balance the three, with exactly the configs ``fcgikit config nginx
--upstream`` and ``fcgikit config haproxy --upstream`` print, and client threads send GETs and
POSTs through both, paced and bounded. Then one fcgikit is killed (SIGKILL) with a GET and a
POST in flight on it, brought back, and all three are restarted one after the other (SIGTERM
and ``--shutdown-delay``: each drains before it stops). Each step prints its figures
(requests, failures, the slowest request, when HAProxy saw what); docs/deploy/scale-out.rst
records them.

Everything waits on what it can observe, each wait with a deadline: a fcgikit's "listening on"
and the lines of its app, HAProxy's log of a server going DOWN or UP, and the requests the
clients see answered, and by which process.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from fcgikit.deploy.haproxy import backend_name

from .harness import (
    HOST,
    REQUEST_TIMEOUT,
    STARTUP_TIMEOUT,
    Layout,
    Process,
    Scenario,
    Site,
    StartupError,
    launch_haproxy,
    launch_nginx,
    nginx_keep_conn_parts,
    server_version,
    start_backend,
)
from .steady_load import POST_BODY, WAIT_TIMEOUT, Load, report

pytestmark = pytest.mark.integration

#: the app servers' "hosts"; the front ends listen on HOST (127.0.0.1)
ADDRESSES = ("127.0.0.2", "127.0.0.3", "127.0.0.4")
MOUNT = "/yourapplication"
PING = "/ping"
#: longer than HAProxy's two failed checks 2 s apart (fcgikit config haproxy's inter/fall)
SHUTDOWN_DELAY = 6
SERVE_ARGS = (
    *("--mount", MOUNT, "--ping-path", PING, "--shutdown-delay", str(SHUTDOWN_DELAY)),
    *("--graceful-timeout", "10"),
)
#: tries to get a request onto the one fcgikit that holds it (round robin over three)
HOLD_TRIES = 40


def fcgikit_config(*args: str) -> str:
    """What ``fcgikit config ARGS`` prints."""
    done = subprocess.run(
        [sys.executable, "-m", "fcgikit", "config", *args],
        capture_output=True,
        text=True,
        timeout=STARTUP_TIMEOUT,
        check=True,
    )
    return done.stdout.rstrip("\n") + "\n"


def free_port_on(address: str) -> int:
    with socket.socket() as sock:
        sock.bind((address, 0))
        return int(sock.getsockname()[1])


class AppHost:
    """One "host": its address and port, and the fcgikit runs on it, the latest last."""

    def __init__(self, index: int, address: str, workdir: Path) -> None:
        self.name = f"app{index}"  # HAProxy's name for it: the order of the --upstream options
        self.bind = f"{address}:{free_port_on(address)}"
        self.workdir = workdir
        self.runs: list[Process] = []

    @property
    def process(self) -> Process:
        return self.runs[-1]

    def start(self) -> float:
        """Start fcgikit here; return when it listens."""
        process = start_backend(
            self.workdir,
            [self.bind],
            "none",
            extra=SERVE_ARGS,
            name=f"{self.name}-run{len(self.runs) + 1}",
            environ={"FCGI_WEB_SERVER_ADDRS": HOST},
        )
        self.runs.append(process)
        process.wait_for_output("listening on")
        return time.monotonic()


class HaproxyView:
    """Servers going DOWN and UP, as HAProxy logs them, each change once."""

    def __init__(self, process: Process) -> None:
        self.process = process
        self._seen: Counter[str] = Counter()

    def wait(self, server: str, state: str) -> float:
        # -db prints each change twice, as a log line and as a [WARNING]: count the latter
        needle = f": Server {backend_name(MOUNT)}/{server} is {state}"
        self._seen[needle] += 1
        self.process.wait_for_output(needle, count=self._seen[needle], timeout=WAIT_TIMEOUT)
        return time.monotonic()


def haproxy_retries(stats_socket: Path) -> tuple[int, int]:
    """The backend's retries and redispatches so far (HAProxy's ``show stat``)."""
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(REQUEST_TIMEOUT)
        sock.connect(str(stats_socket))
        sock.sendall(b"show stat\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    header, *rows = data.decode().lstrip("# ").splitlines()
    names = header.split(",")
    for row in rows:
        fields = dict(zip(names, row.split(","), strict=False))
        if fields.get("svname") == "BACKEND" and fields["pxname"].startswith("fcgikit"):
            return int(fields["wretr"] or 0), int(fields["wredis"] or 0)
    raise AssertionError(f"no fcgikit backend in HAProxy's stats:\n{data.decode()}")


class HeldRequest(threading.Thread):
    """A GET or POST to ``/hang`` that the fcgikit of ``pid`` holds until it is killed:
    sent again while another process answers it (round robin)."""

    def __init__(
        self, front: str, site: Site, method: str, pid: int, killed: threading.Event
    ) -> None:
        super().__init__(daemon=True)
        self.front, self.site, self.method, self.pid = front, site, method, pid
        self.killed = killed
        #: (status, the pid that answered) or what went wrong instead
        self.answer: tuple[int, int | None] | str = "no answer"
        self.tries = 0

    def run(self) -> None:
        body = POST_BODY if self.method == "POST" else None
        for self.tries in range(1, HOLD_TRIES + 1):
            try:
                response = self.site.request(self.method, f"{MOUNT}/hang?pid={self.pid}", body)
            except (OSError, http.client.HTTPException) as exc:
                self.answer = repr(exc)
                return
            pid = response.json()["pid"] if response.status == 200 else None
            self.answer = (response.status, pid)
            if self.killed.is_set():
                return  # the answer to the request in flight when it was killed


@contextlib.contextmanager
def front_ends(hosts: list[AppHost], workdir: Path) -> Iterator[dict[str, Site]]:
    """nginx and HAProxy on HOST, each balancing ``hosts`` with what fcgikit config prints."""
    upstreams = [option for host in hosts for option in ("--upstream", host.bind)]
    common = ("--mount", MOUNT, *upstreams, "--ping-path", PING)
    sites: dict[str, Site] = {}
    try:
        for server in ("nginx", "haproxy"):
            layout = Layout.create(workdir / server)
            setting = f"fcgikit config {server} {' '.join(common)}"
            scenario = Scenario(f"multihost-{server}", server, MOUNT, setting, backend="tcp")
            site = sites[server] = Site(scenario, layout, server_version(server))
            config = fcgikit_config(server, *common)
            if server == "nginx":
                http_part, server_part = nginx_keep_conn_parts(config)
                process = launch_nginx(site, server_part, http_part)
            else:
                stats = f"stats socket {layout.dir}/haproxy.sock mode 600 level admin"
                process = launch_haproxy(site, config, global_lines=stats)
            site.processes.append(process)
            process.wait_for_port(layout.port)
        yield sites
    finally:
        for site in sites.values():
            site.stop()


def test_three_hosts_survive_a_kill_and_a_rolling_deploy(tmp_path: Path) -> None:
    began = time.monotonic()
    hosts = [AppHost(n, address, tmp_path) for n, address in enumerate(ADDRESSES, start=1)]
    try:
        for host in hosts:
            host.start()
        only_the_front_end_may_connect(hosts)
        with front_ends(hosts, tmp_path) as sites, Load(sites, MOUNT) as load:
            haproxy = HaproxyView(sites["haproxy"].processes[-1])
            stats_socket = sites["haproxy"].layout.dir / "haproxy.sock"
            for host in hosts:
                load.wait_served_by(host.process.pid, since=began)
            kill_one_with_requests_in_flight(load, hosts[0], haproxy)
            bring_it_back(load, hosts[0], haproxy)
            rolling_deploy(load, hosts, haproxy)
            retries, redispatches = haproxy_retries(stats_socket)
        everything = load.snapshot()
        print(
            f"[multihost] in all: {len(everything)} requests in "
            f"{time.monotonic() - began:.1f} s; HAProxy retried {retries} "
            f"(redispatched {redispatches})"
        )
    finally:
        for host in hosts:
            for process in host.runs:
                process.stop(signal.SIGINT)  # at once: no --shutdown-delay to wait out


def only_the_front_end_may_connect(hosts: list[AppHost]) -> None:
    """FCGI_WEB_SERVER_ADDRS names the front ends' address: a peer on another is turned away."""
    first, second = hosts[0], hosts[1]
    address, port = second.bind.split(":")
    with socket.socket() as sock:
        sock.settimeout(REQUEST_TIMEOUT)
        sock.bind((first.bind.split(":")[0], 0))
        sock.connect((address, int(port)))
        assert sock.recv(1) == b""  # closed without a word
    second.process.wait_for_output(f"refused connection from {first.bind.split(':')[0]}")


def kill_one_with_requests_in_flight(load: Load, victim: AppHost, haproxy: HaproxyView) -> None:
    """SIGKILL one fcgikit while a GET and a POST through each front end run on it."""
    killed = threading.Event()
    pid = victim.process.pid
    held = [
        HeldRequest(front, site, method, pid, killed)
        for front, site in load.fronts.items()
        for method in ("GET", "POST")
    ]
    for request in held:
        request.start()
    try:
        for method in ("GET", "POST"):
            victim.process.wait_for_output(f"holding a {method}", count=len(load.fronts))
    except StartupError as exc:
        tries = {(r.front, r.method): (r.tries, r.answer) for r in held}
        raise AssertionError(f"{exc.args[0]}; tries and last answers: {tries}") from exc
    killed.set()
    started = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    victim.process.popen.wait(REQUEST_TIMEOUT)
    down = haproxy.wait(victim.name, "DOWN")
    ended = load.wait_for_more(50, since=down)
    for request in held:
        request.join(REQUEST_TIMEOUT)
    failed = report(load, "kill -9 one of three", started, ended)
    print(f"[multihost]     HAProxy marked it DOWN {down - started:.1f} s after the kill")
    answers = {(r.front, r.method): r.answer for r in held}
    print(f"[multihost]     requests in flight on it: {answers}")
    for front in load.fronts:
        # the GET in flight went to another server; the POST did not: it may have run
        get = answers[front, "GET"]
        assert isinstance(get, tuple) and get[0] == 200 and get[1] not in (pid, None), answers
        assert answers[front, "POST"] == (502, None), answers
        # no GET of the load failed; a POST of the load in flight on it answers 502 too
        assert [o for o in failed[front] if o.method == "GET"] == []
        assert all(o.status == 502 for o in failed[front]), failed[front]


def bring_it_back(load: Load, host: AppHost, haproxy: HaproxyView) -> None:
    """Start the killed one again: both front ends send it requests again, HAProxy once its
    checks pass, nginx once its fail_timeout is over."""
    started = time.monotonic()
    ready = host.start()
    up = haproxy.wait(host.name, "UP")
    first = load.wait_served_by(host.process.pid, since=ready)
    failed = report(load, "bring it back", started, max(first.values()))
    print(
        f"[multihost]     ready {ready - started:.1f} s after its start; HAProxy marked it UP "
        f"{up - ready:.1f} s later; first GET through "
        + ", ".join(f"{front} {when - ready:.1f} s" for front, when in first.items())
        + " after ready"
    )
    assert failed == {front: [] for front in load.fronts}


def rolling_deploy(load: Load, hosts: list[AppHost], haproxy: HaproxyView) -> None:
    """SIGTERM each in turn, start it again, and once HAProxy has it back, the next; at the
    end, every new process serves through both front ends. Each drains: it serves on for
    --shutdown-delay with its ping answering 503, HAProxy takes it out meanwhile, then it
    stops accepting (nginx then sends its requests to the others, and leaves it out for its
    fail_timeout, 10 s: about a step, so nginx leaves two out at most, never all three)."""
    started = time.monotonic()
    for host in hosts:
        step = time.monotonic()
        old = host.process
        old.popen.send_signal(signal.SIGTERM)
        down = haproxy.wait(host.name, "DOWN")
        assert old.popen.poll() is None, "HAProxy saw the drain only after it stopped"
        assert old.popen.wait(SHUTDOWN_DELAY + WAIT_TIMEOUT) == 0
        stopped = time.monotonic()
        ready = host.start()
        up = haproxy.wait(host.name, "UP")
        failed = report(load, f"drain and restart {host.name}", step, up)
        print(
            f"[multihost]     HAProxy marked it DOWN {down - step:.1f} s after SIGTERM; it "
            f"stopped after {stopped - step:.1f} s; ready {ready - stopped:.1f} s later; UP "
            f"{up - ready:.1f} s after ready"
        )
        assert failed == {front: [] for front in load.fronts}
    for host in hosts:
        load.wait_served_by(host.process.pid, since=started)
    failed = report(load, "rolling deploy of all three", started, time.monotonic())
    assert failed == {front: [] for front in load.fronts}
