"""fcgikit's ping path and drain behind real web servers: nginx passes ``/ping`` beside an app
mounted under a prefix, and HAProxy, health-checking two fcgikit with it (the config
``fcgikit config haproxy --ping-path`` prints), takes a draining one out of rotation before
it stops accepting, without a failed request."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable

import pytest

from fcgikit.deploy import recommended_fixer, render

from .harness import (
    REQUEST_TIMEOUT,
    Process,
    Response,
    Scenario,
    Site,
    launch_haproxy,
    launch_nginx,
    more_tcp_backends,
    running_site,
)

pytestmark = pytest.mark.integration

MOUNT = "/yourapplication"
#: long enough that only a second SIGTERM ends it within the test: the test decides when
DRAIN = ("--ping-path", "/ping", "--shutdown-delay", "600")


def _fixer(server: str) -> str:
    fixer = recommended_fixer(server, mount=MOUNT)
    return "none" if fixer is None else fixer.spec


def launch_nginx_with_ping(site: Site) -> Process:
    fragment = render("nginx", mount=MOUNT, socket=f"unix:{site.layout.socket}", ping_path="/ping")
    return launch_nginx(site, fragment)


def launch_haproxy_checking_ping(site: Site) -> Process:
    servers = more_tcp_backends(site, 1)
    return launch_haproxy(
        site, render("haproxy", mount=MOUNT, upstreams=servers, ping_path="/ping")
    )


def backend(site: Site, name: str = "backend") -> Process:
    return next(process for process in site.processes if process.name == name)


def begin_drain(app_server: Process) -> None:
    """SIGTERM, and wait until it drains: the next SIGTERM (the site's stop) ends the wait.
    (One process and a pool's master both name the delay when they begin.)"""
    app_server.popen.send_signal(signal.SIGTERM)
    app_server.wait_for_output("for 600s (--shutdown-delay)")


@pytest.mark.parametrize(
    "mode", [pytest.param((), id="single-process"), pytest.param(("--workers", "2"), id="pool")]
)
def test_nginx_passes_the_ping_beside_a_mounted_app(
    tmp_path_factory: pytest.TempPathFactory, mode: tuple[str, ...]
) -> None:
    scenario = Scenario(
        "nginx-ping",
        "nginx",
        MOUNT,
        "fcgikit config nginx --mount /yourapplication --ping-path /ping",
        fixer=_fixer("nginx"),
        serve_args=(*DRAIN, *mode),
    )
    with running_site(
        scenario, tmp_path_factory.mktemp("nginx-ping"), launch_nginx_with_ping
    ) as site:
        ping = site.get("/ping")
        assert (ping.status, ping.body) == (200, b"pong")
        assert ping.headers["Content-Type"] == "text/plain; charset=utf-8"
        assert site.get(f"{MOUNT}/env/x").json()["environ"]["PATH_INFO"] == "/env/x"
        # the app's URLs are still the app's: its own /yourapplication/ping is not the ping
        assert site.get(f"{MOUNT}/ping").status == 404

        begin_drain(backend(site))
        # every ping is 503, from whichever worker of a pool takes it
        for _ in range(6):
            draining = site.get("/ping")
            assert (draining.status, draining.body) == (503, b"draining\n")
        assert site.get(f"{MOUNT}/env/during").status == 200  # it serves on meanwhile


class Client(threading.Thread):
    """Requests one after another, GETs and POSTs, until told to stop (or a bound). Each
    answer is kept with the :attr:`phase` the test was in when its request was sent."""

    def __init__(self, site: Site, limit: int = 20_000) -> None:
        super().__init__(daemon=True)
        self.site = site
        self.limit = limit
        self.done = threading.Event()
        #: set by the test: requests sent from then on belong to that phase
        self.phase = 0
        #: (phase, status or the exception of a failed request, the pid that answered)
        self.results: list[tuple[int, int | BaseException, int | None]] = []
        self._answered = threading.Condition()

    def run(self) -> None:
        send: list[Callable[[int], Response]] = [
            lambda i: self.site.get(f"{MOUNT}/env/get{i}"),
            lambda i: self.site.request("POST", f"{MOUNT}/echo", b"x" * 100),
        ]
        for i in range(self.limit):
            if self.done.is_set():
                return
            phase = self.phase
            result: tuple[int, int | BaseException, int | None]
            try:
                response = send[i % 2](i)
                pid = response.json().get("pid") if response.status == 200 else None
                result = (phase, response.status, pid)
            except BaseException as exc:  # a failed request is what the test looks for
                result = (phase, exc, None)
            with self._answered:
                self.results.append(result)
                self._answered.notify_all()

    def answered_in(self, phase: int) -> list[tuple[int, int | BaseException, int | None]]:
        with self._answered:
            return [result for result in self.results if result[0] == phase]

    def wait_for_answers(self, phase: int, count: int) -> None:
        """Until ``count`` requests sent in ``phase`` are answered (or failed)."""
        with self._answered:
            enough = self._answered.wait_for(
                lambda: sum(result[0] == phase for result in self.results) >= count,
                REQUEST_TIMEOUT,
            )
        assert enough, f"the client got {len(self.answered_in(phase))} answers in {phase}"

    def failures(self) -> list[object]:
        return [result for result in self.results if result[1] != 200]

    def finish(self) -> None:
        self.done.set()
        self.join(REQUEST_TIMEOUT)
        assert not self.is_alive()


def test_haproxy_takes_a_draining_fcgikit_out_before_it_stops(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    scenario = Scenario(
        "haproxy-ping",
        "haproxy",
        MOUNT,
        "fcgikit config haproxy --mount /yourapplication --upstream A --upstream B "
        "--ping-path /ping",
        fixer=_fixer("haproxy"),
        merges_slashes=False,
        backend="tcp",
        serve_args=(*DRAIN, "--access-log", "-"),
    )
    workdir = tmp_path_factory.mktemp("haproxy-ping")
    with running_site(scenario, workdir, launch_haproxy_checking_ping) as site:
        haproxy = next(process for process in site.processes if process.name == "haproxy")
        # HAProxy's checks are FastCGI requests for the ping path, which both answer 200
        for name in ("backend", "backend2"):
            backend(site, name).wait_for_output('"GET /ping" 200')
        draining = backend(site)  # app1
        # round robin, one request at a time: both serve
        pids = {site.get(f"{MOUNT}/env/pid{i}").json()["pid"] for i in range(4)}
        assert draining.pid in pids and len(pids) == 2
        client = Client(site)
        client.start()
        try:
            begin_drain(draining)
            # two failed checks (the pings' 503) take it out, while it still serves
            haproxy.wait_for_output("/app1 is DOWN")
            assert draining.popen.poll() is None
            client.wait_for_answers(0, 1)
            # a second SIGTERM ends the drain: it stops, and nothing reaches it any more
            draining.popen.send_signal(signal.SIGTERM)
            assert draining.popen.wait(REQUEST_TIMEOUT) == 0
            client.phase = 1
            for i in range(10):
                assert site.get(f"{MOUNT}/env/after{i}").status == 200
            client.wait_for_answers(1, 10)
        finally:
            client.finish()
            begin_drain(backend(site, "backend2"))  # for the site's stop to end at once
        assert client.failures() == []
        survivor = pids - {draining.pid}
        # (a POST's answer names no process)
        served_after = {pid for _, _, pid in client.answered_in(1)}
        assert served_after - {None} == survivor
