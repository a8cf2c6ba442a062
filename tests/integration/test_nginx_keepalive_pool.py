"""The idle-connection pool of ``fcgikit config nginx --keep-conn``, with real nginx.

nginx keeps at most ``keepalive`` idle connections to the app per worker and closes the
rest as their requests end; the next burst then comes on new FastCGI connections, an accept
and a close on both sides each. The rendered pool must hold a burst as big as the requests
one nginx worker has in flight. Here a wave of ``WAVE`` requests is held in the app until
all of them have arrived (so nginx opened ``WAVE`` connections at once), then a second wave
does the same: with the rendered config it comes on the connections the first wave left,
which the server's own count of accepted connections on its status page shows (the page is
read through nginx, on a kept connection, so reading it opens none).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from fcgikit.deploy import render

from .harness import (
    Layout,
    Process,
    Response,
    Scenario,
    Site,
    app_environment,
    backend_command,
    launch_nginx,
    nginx_keep_conn_parts,
    server_version,
)

pytestmark = pytest.mark.integration

WAVE = 40

# Each /wave request waits until WAVE of them are in the app at once; the barrier lets the
# whole wave go together and is ready for the next. A broken barrier (timeout) answers 500.
APP_SOURCE = f"""\
import threading

WAVE = threading.Barrier({WAVE}, timeout=60)


def app(environ, start_response):
    if environ["PATH_INFO"] == "/wave":
        WAVE.wait()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"app: " + environ["PATH_INFO"].encode()]
"""


@pytest.fixture
def site(tmp_path: Path) -> Site:
    scenario = Scenario("keepalive-pool", "nginx", "", "fcgikit config nginx --keep-conn")
    return Site(scenario, Layout.create(tmp_path), server_version("nginx"))


def start(site: Site) -> None:
    """fcgikit with its default threads and the status page, behind the rendered config."""
    layout = site.layout
    (layout.dir / "app.py").write_text(APP_SOURCE)
    argv = [*backend_command(), "serve", "app:app", "--chdir", str(layout.dir)]
    argv += ["--bind", layout.backend_bind]
    argv += ["--status-path", "/fcgikit-status", "--status-allow", "127.0.0.1"]
    backend = Process(
        "backend", argv, log_dir=layout.dir, env=app_environment("none"), cwd=layout.dir
    )
    site.processes.append(backend)
    backend.wait_for_output("listening on")
    config = render("nginx", mount="", socket=str(layout.socket), keep_conn=True)
    upstream, location = nginx_keep_conn_parts(config)
    nginx = launch_nginx(site, location, http_fragment=upstream)
    site.processes.append(nginx)
    nginx.wait_for_port(layout.port)


def accepted_connections(site: Site) -> int:
    page = site.get("/fcgikit-status?json")
    assert page.status == 200 and page.headers.get("X-Fcgikit-Worker"), page
    accepted = page.json()["accepted_connections"]
    assert isinstance(accepted, int)
    return accepted


def wave(site: Site) -> list[Response]:
    with ThreadPoolExecutor(WAVE) as clients:
        return list(clients.map(lambda _: site.get("/wave"), range(WAVE)))


def test_a_second_burst_comes_on_the_connections_the_first_left(site: Site) -> None:
    try:
        start(site)
        first = wave(site)
        assert [r.status for r in first] == [200] * WAVE, first[0].body
        after_first = accepted_connections(site)
        # every request of the wave was in the app at once: one connection each
        assert after_first == WAVE
        second = wave(site)
        assert [r.status for r in second] == [200] * WAVE, second[0].body
        after_second = accepted_connections(site)
        assert after_second == after_first, (
            f"the second wave opened {after_second - after_first} new connections: nginx "
            "closed them when the first wave ended (its keepalive pool is too small)"
        )
    finally:
        site.stop()
