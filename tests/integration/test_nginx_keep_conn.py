"""nginx in front of ``fcgikit serve`` with ``fcgikit config nginx --keep-conn``.

The config's upstream part goes in ``http { }`` and its location part in ``server { }``, as a
user copies them. Every check of the other scenarios runs through it (the URLs the app sees
under a mount and at the root, over a unix socket and over TCP, redirects, bodies), and one
test shows what the option is for: consecutive requests through nginx are carried by one
FastCGI connection that stays open, not one connection each.

How the connections are counted: the kernel lists every socket with its inode and state in
``/proc/net/unix`` and ``/proc/net/tcp``. A connection the backend accepted carries its
listener's path there (nginx's end of it has none), or over TCP the listener's port as its
local port. A connection is the same one from request to request when its inode is.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from fcgikit.deploy import render

from .checks import SiteChecks
from .harness import (
    Process,
    Scenario,
    Site,
    launch_nginx,
    nginx_keep_conn_parts,
    running_site,
    site_fixture,
)

pytestmark = pytest.mark.integration

MOUNT = "/yourapplication"
REQUESTS = 6

SCENARIOS = [
    Scenario(
        "render-keep-conn-prefix",
        "nginx",
        MOUNT,
        "fcgikit config nginx --keep-conn --mount /yourapplication",
    ),
    Scenario(
        "render-keep-conn-root-tcp",
        "nginx",
        "",
        "fcgikit config nginx --keep-conn --port N",
        backend="tcp",
    ),
]

# /proc/net/unix "St" and /proc/net/tcp "st" of a connected socket
UNIX_CONNECTED = "03"
TCP_ESTABLISHED = "01"


def launch(site: Site) -> Process:
    layout = site.layout
    if site.scenario.backend == "tcp":
        config = render("nginx", mount=site.mount, port=layout.backend_port, keep_conn=True)
    else:
        config = render("nginx", mount=site.mount, socket=str(layout.socket), keep_conn=True)
    upstream, location = nginx_keep_conn_parts(config)
    return launch_nginx(site, location, http_fragment=upstream)


site = site_fixture(SCENARIOS, launch)


class TestNginxKeepConn(SiteChecks):
    pass


def backend_connections(site: Site) -> set[int]:
    """The connections the backend accepted and holds open now, by inode."""
    layout = site.layout
    inodes = set()
    if site.scenario.backend == "tcp":
        for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
            fields = line.split()
            local_port = int(fields[1].rpartition(":")[2], 16)
            if local_port == layout.backend_port and fields[3] == TCP_ESTABLISHED:
                inodes.add(int(fields[9]))
    else:
        for line in Path("/proc/net/unix").read_text().splitlines()[1:]:
            fields = line.split(maxsplit=7)
            bound_to_listener = len(fields) == 8 and fields[7] == str(layout.socket)
            if bound_to_listener and fields[5] == UNIX_CONNECTED:
                inodes.add(int(fields[6]))
    return inodes


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.id for s in SCENARIOS])
def test_requests_share_one_kept_connection(scenario: Scenario, tmp_path: Path) -> None:
    with running_site(scenario, tmp_path, launch) as fresh:
        assert backend_connections(fresh) == set(), "nginx connected before any request"
        seen: list[set[int]] = []
        for index in range(REQUESTS):
            if index % 3 == 1:
                body = f"body {index}".encode()
                response = fresh.request("POST", f"{fresh.mount}/echo", body)
                assert response.status == 200, response.body[:2000]
                assert response.json()["sha256"] == hashlib.sha256(body).hexdigest()
            else:
                response = fresh.get(f"{fresh.mount}/env/request-{index}")
                assert response.status == 200, response.body[:2000]
                assert response.json()["environ"]["PATH_INFO"] == f"/env/request-{index}"
            # Read right after the answer: a connection nginx did not keep would be closed
            # (or, in the moment after the answer, still closing) and a new one would have
            # another inode, so one and the same inode each time is the kept connection.
            seen.append(backend_connections(fresh))
        first = seen[0]
        assert len(first) == 1, f"after the first request: {seen}"
        assert seen == [first] * REQUESTS, f"connections after each request: {seen}"
