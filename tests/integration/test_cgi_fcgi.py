"""libfcgi's ``cgi-fcgi`` (Debian libfcgi-bin) as the client of fcgikit.

``cgi-fcgi -bind -connect ADDR`` turns one CGI invocation (environment + stdin) into one
FastCGI request to a running server, and ``cgi-fcgi -start -connect SOCK APP`` starts a
``.fcgi`` with the listening socket on fd 0, as libfcgi's own spawner. Both are run directly,
and as a CGI bridge under Apache mod_cgid (``ScriptAlias /yourapplication bridge.cgi``), which
gets the same checks as every web server scenario.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from .checks import SiteChecks, big_body
from .harness import (
    HOST,
    Process,
    Scenario,
    Site,
    free_port,
    launch_apache,
    require_apache_module,
    require_binary,
    site_fixture,
    start_backend,
    write_fcgi_script,
)

pytestmark = pytest.mark.integration

MOUNT = "/yourapplication"


@dataclass
class CgiResponse:
    status: int
    headers: dict[str, str]
    body: bytes


def cgi_fcgi(
    connect: str, path: str, query: str = "", *, method: str = "GET", body: bytes = b""
) -> CgiResponse:
    """One request through ``cgi-fcgi -bind -connect``, with the environment a CGI server sets."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "GATEWAY_INTERFACE": "CGI/1.1",
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": MOUNT,
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "REQUEST_URI": f"{MOUNT}{path}" + (f"?{query}" if query else ""),
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "8080",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": "localhost:8080",
        "REMOTE_ADDR": HOST,
    }
    if method == "POST":
        env["CONTENT_LENGTH"] = str(len(body))
        env["CONTENT_TYPE"] = "application/octet-stream"
    done = subprocess.run(
        [require_binary("cgi-fcgi"), "-bind", "-connect", connect],
        input=body,
        env=env,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    head, separator, payload = done.stdout.partition(b"\r\n\r\n")
    assert separator, done.stdout[:2000]
    headers: dict[str, str] = {}
    for line in head.decode("latin-1").split("\r\n"):
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    status = int(headers.get("status", "200").split()[0])
    return CgiResponse(status, headers, payload)


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    require_binary("cgi-fcgi")
    workdir = tmp_path_factory.mktemp("cgi-fcgi")
    socket_path = workdir / "app.sock"
    port = free_port()
    process = start_backend(workdir, [f"unix:{socket_path}", f"{HOST}:{port}"], "none")
    try:
        process.wait_for_output("listening on", count=2)
        yield {"unix": str(socket_path), "tcp": f"{HOST}:{port}"}
    finally:
        process.stop()


@pytest.fixture(scope="module")
def spawned(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``cgi-fcgi -start``: libfcgi creates the socket and starts the .fcgi on it (fd 0)."""
    binary = require_binary("cgi-fcgi")
    workdir = tmp_path_factory.mktemp("cgi-fcgi-start")
    fcgi = write_fcgi_script(workdir / "yourapplication.fcgi", "none")
    socket_path = workdir / "spawn.sock"
    starter = Process(
        "cgi-fcgi-start",
        [binary, "-start", "-connect", str(socket_path), str(fcgi)],
        log_dir=workdir,
        cwd=workdir,
    )
    try:
        # cgi-fcgi has bound the socket and forked the app by the time it exits; requests
        # queue in the listen backlog until the app accepts, so no further wait is needed.
        assert starter.popen.wait(timeout=30) == 0, starter.stderr
        yield str(socket_path)
    finally:
        starter.stop()  # the app is in cgi-fcgi's process group


@pytest.mark.parametrize("kind", ["unix", "tcp"])
def test_get(backend: dict[str, str], kind: str) -> None:
    # The environment carries the path as UTF-8 bytes, as a CGI server would set it.
    response = cgi_fcgi(backend[kind], "/env/caf\u00e9 x", "a=%20b")
    assert response.status == 200, response.body[:2000]
    assert response.headers["content-type"] == "application/json"
    data = json.loads(response.body)
    assert data["environ"]["SCRIPT_NAME"] == MOUNT
    assert data["environ"]["PATH_INFO"] == "/env/caf\u00e9 x"
    assert data["environ"]["QUERY_STRING"] == "a=%20b"
    assert data["url_for"] == f"{MOUNT}/env/caf%C3%A9%20x"
    assert data["url_for_external"] == f"http://localhost:8080{MOUNT}/env/caf%C3%A9%20x"


@pytest.mark.parametrize("kind", ["unix", "tcp"])
def test_redirect(backend: dict[str, str], kind: str) -> None:
    response = cgi_fcgi(backend[kind], "/redirect")
    assert response.status == 302
    assert response.headers["location"] == f"{MOUNT}/env/target"


@pytest.mark.parametrize("kind", ["unix", "tcp"])
def test_post_10mib(backend: dict[str, str], kind: str) -> None:
    body = big_body()
    response = cgi_fcgi(backend[kind], "/echo", method="POST", body=body)
    assert response.status == 200, response.body[:2000]
    expected = {"length": len(body), "sha256": hashlib.sha256(body).hexdigest()}
    assert json.loads(response.body) == expected


def test_spawned_by_cgi_fcgi_start(spawned: str) -> None:
    response = cgi_fcgi(spawned, "/env/plain", "x=1")
    assert response.status == 200, response.body[:2000]
    data = json.loads(response.body)
    assert (data["environ"]["SCRIPT_NAME"], data["environ"]["PATH_INFO"]) == (MOUNT, "/env/plain")
    body = b"spawned\x00" * 1000
    posted = cgi_fcgi(spawned, "/echo", method="POST", body=body)
    expected = {"length": len(body), "sha256": hashlib.sha256(body).hexdigest()}
    assert json.loads(posted.body) == expected


# --------------------------------------------------------------------------- Apache mod_cgid

SCENARIOS = [
    Scenario(
        "apache-cgid-bridge",
        "apache-cgid",
        MOUNT,
        "ScriptAlias /yourapplication bridge.cgi, bridge = exec cgi-fcgi -bind -connect SOCK",
        notes="a CGI-to-FastCGI bridge for hosts without mod_fcgid",
    ),
]


def launch(site: Site) -> Process:
    require_apache_module("cgid", "apache2")
    binary = require_binary("cgi-fcgi")
    layout = site.layout
    bridge = layout.dir / "cgi-bin" / "bridge.cgi"
    bridge.parent.mkdir(exist_ok=True)
    bridge.write_text(f"#!/bin/sh\nexec {binary} -bind -connect {layout.socket}\n")
    bridge.chmod(0o755)
    fragment = (
        f"ScriptAlias {MOUNT} {bridge}\n"
        f'<Directory "{bridge.parent}">\n'
        "    Options +ExecCGI\n"
        "    Require all granted\n"
        "</Directory>\n"
    )
    server_config = f'ScriptSock "{layout.dir}/cgid.sock"\n'
    return launch_apache(site, fragment, modules=["cgid"], server_config=server_config)


site = site_fixture(SCENARIOS, launch)


class TestApacheCgidBridge(SiteChecks):
    pass
