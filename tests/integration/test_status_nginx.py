"""The pool's status page behind real nginx: who sees it, and what it shows.

Every HTTP client reaches fcgikit through nginx on 127.0.0.1 here, as every client does
behind a TLS terminator or a tunnel on the same host: loopback must not be trusted by
itself. ``fcgikit status`` talks FastCGI to the socket directly and always sees the page.
The nginx config is the one docs/operations.rst recommends for exposing the page.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .harness import (
    REQUEST_TIMEOUT,
    Layout,
    Process,
    Response,
    Scenario,
    Site,
    app_environment,
    backend_command,
    nginx_command,
    server_version,
    write_nginx_config,
)

pytestmark = pytest.mark.integration

APP_SOURCE = """\
import os, time
from urllib.parse import parse_qs


def app(environ, start_response):
    if environ["PATH_INFO"] == "/hold":  # until the file named in the query exists
        until = parse_qs(environ["QUERY_STRING"])["until"][0]
        deadline = time.monotonic() + 60
        while not os.path.exists(until) and time.monotonic() < deadline:
            time.sleep(0.01)
    if environ["PATH_INFO"] == "/missing":
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"app: not found"]
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [f"app: {environ['REQUEST_METHOD']} {environ['PATH_INFO']}".encode()]
"""

LOCATIONS = """\
location = /fcgikit-status {
    allow 127.0.0.1;
    deny all;
    include fastcgi_params;
    fastcgi_param SCRIPT_NAME "";
    fastcgi_param PATH_INFO $fastcgi_script_name;
    fastcgi_pass unix:{socket};
}
location / {
    include fastcgi_params;
    fastcgi_param SCRIPT_NAME "";
    fastcgi_param PATH_INFO $fastcgi_script_name;
    fastcgi_pass unix:{socket};
}
"""


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    scenario = Scenario("status", "nginx", "", "fcgikit serve --status-path", backend=None)
    running = Site(scenario, Layout.create(tmp_path), server_version("nginx"))
    try:
        yield running
    finally:
        running.stop()


def start(site: Site, *options: str, workers: int | None = 1) -> Process:
    """A pool of ``workers`` (None: a single process) with the status page at
    /fcgikit-status, and nginx in front of it."""
    layout = site.layout
    (layout.dir / "app.py").write_text(APP_SOURCE)
    argv = [*backend_command(), "serve", "app:app", "--chdir", str(layout.dir)]
    argv += ["--bind", layout.backend_bind, "--threads", "2"]
    argv += ["--status-path", "/fcgikit-status", *options]
    if workers is not None:
        argv += ["--workers", str(workers)]
    backend = Process(
        "backend", argv, log_dir=layout.dir, env=app_environment("none"), cwd=layout.dir
    )
    site.processes.append(backend)
    backend.wait_for_output("listening on" if workers is None else "ready (generation 1)")
    conf = write_nginx_config(layout, LOCATIONS.replace("{socket}", str(layout.socket)))
    site.config_files.append(conf)
    nginx = Process(
        "nginx",
        nginx_command(layout, conf, "-g", "daemon off;"),
        log_dir=layout.dir,
        logs=[layout.dir / "error.log"],
    )
    site.processes.append(nginx)
    nginx.wait_for_port(layout.port)
    return backend


def fcgikit_status(site: Site, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*backend_command(), "status", f"unix:{site.layout.socket}", *args],
        capture_output=True,
        text=True,
        timeout=REQUEST_TIMEOUT,
        env=app_environment("none"),
    )


def is_status_page(response: Response) -> bool:
    return response.status == 200 and response.headers.get("X-Fcgikit-Worker") is not None


def test_loopback_through_nginx_is_not_trusted_by_default(site: Site) -> None:
    start(site)
    # nginx lets 127.0.0.1 in, and fcgikit sees REMOTE_ADDR 127.0.0.1: still the app's page
    response = site.request("GET", "/fcgikit-status?json")
    assert not is_status_page(response)
    assert response.body == b"app: GET /fcgikit-status"
    # a request header arrives as HTTP_FCGIKIT_STATUS_CLIENT, never as the direct param
    forged = site.request("GET", "/fcgikit-status", headers={"Fcgikit-Status-Client": "1"})
    assert forged.body == b"app: GET /fcgikit-status"
    # the direct FastCGI client always sees it
    direct = fcgikit_status(site, "--json")
    assert direct.returncode == 0, direct.stderr
    assert '"total_workers": 1' in direct.stdout


def test_an_allowed_client_sees_paths_without_query_strings(site: Site) -> None:
    start(site, "--status-allow", "127.0.0.1")
    release = site.layout.dir / "release"
    held: list[Response] = []
    holder = threading.Thread(
        target=lambda: held.append(site.get(f"/hold?until={release}&token=s3cret"))
    )
    holder.start()
    try:
        deadline = time.monotonic() + REQUEST_TIMEOUT
        while "GET /hold" not in (page := site.get("/fcgikit-status")).body.decode():
            assert is_status_page(page), page
            assert time.monotonic() < deadline, page.body
            time.sleep(0.02)  # polling the page for the held request, with a deadline
        assert "s3cret" not in page.body.decode() and "token" not in page.body.decode()
        direct = fcgikit_status(site)
        assert direct.returncode == 0, direct.stderr
        assert "GET /hold (" in direct.stdout and "s3cret" not in direct.stdout
    finally:
        release.touch()
        holder.join(REQUEST_TIMEOUT)
    assert held and held[0].body == b"app: GET /hold"
