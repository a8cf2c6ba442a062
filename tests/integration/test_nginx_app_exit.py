"""nginx in front of ``fcgikit serve`` with a Flask view that calls ``sys.exit(3)``.

Flask lets SystemExit through (it is no Exception), so the server meets it. The request must
get fcgikit's 500 with FCGI_END_REQUEST, not nginx's 502 (connection closed, no answer) or,
with ``fastcgi_keep_conn on``, nginx's 504 after ``fastcgi_read_timeout`` (60 s by default;
10 s here, so that a request left unanswered fails the test with a 504 in bounded time), and
the server serves on: one process logs and goes on, a pool's worker retires and is replaced.
"""

from __future__ import annotations

import pytest

from fcgikit.deploy import render

from .harness import Process, Scenario, Site, launch_nginx, nginx_keep_conn_parts, site_fixture

pytestmark = pytest.mark.integration
#: a fault test on configurations the matrix has already (test_nginx.py)
IN_COMPATIBILITY_MATRIX = False

ERROR_PAGE = b"The application failed to answer this request."
#: a request nginx gets no answer for becomes its 504 after this
READ_TIMEOUT = "fastcgi_read_timeout 10s;\n"

SCENARIOS = [
    Scenario("exit-root", "nginx", "", "fcgikit config nginx"),
    Scenario("exit-keep-conn-root", "nginx", "", "fcgikit config nginx --keep-conn"),
    Scenario(
        "exit-pool-root",
        "nginx",
        "",
        "fcgikit config nginx, fcgikit serve --workers 2",
        serve_args=("--workers", "2"),
    ),
]


def launch(site: Site) -> Process:
    socket = str(site.layout.socket)
    if "keep-conn" in site.scenario.id:
        upstream, location = nginx_keep_conn_parts(render("nginx", socket=socket, keep_conn=True))
        return launch_nginx(site, READ_TIMEOUT + location, http_fragment=upstream)
    return launch_nginx(site, READ_TIMEOUT + render("nginx", socket=socket))


site = site_fixture(SCENARIOS, launch)


def test_sys_exit_in_a_view_is_a_500_and_everything_else_is_served(site: Site) -> None:
    backend = site.processes[0]
    for attempt in range(1, 4):
        response = site.get("/exit")
        assert response.status == 500, response.body[:500]
        assert ERROR_PAGE in response.body  # fcgikit's page: the app's answer, not nginx's
        after = site.get("/env/after")
        assert after.status == 200, after.body[:500]
        assert after.json()["environ"]["PATH_INFO"] == "/env/after"
        backend.wait_for_output("the app raised SystemExit: 3", count=attempt)
    if "pool" in site.scenario.id:  # (a worker already retiring says so only once)
        backend.wait_for_output("was asked to exit by the app (SystemExit)")
    post = site.request("POST", "/echo", b"still here")
    assert post.status == 200 and post.json()["length"] == len(b"still here")
