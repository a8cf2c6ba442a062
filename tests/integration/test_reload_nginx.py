"""nginx in front of a single ``fcgikit serve`` process (no ``--workers``) reloaded by SIGHUP
three times under load: not one request may fail.

The process finishes its running requests, then re-executes itself on the same listening
socket (passed the systemd way); requests that arrive meanwhile wait in the socket's backlog
until the new process has imported the app. Before, the socket file was removed and created
again: nginx answered thousands of 502s per reload. Each case runs with keep-alive everywhere
(``fastcgi_keep_conn on`` and an upstream ``keepalive`` pool) and with a connection per
request, on a unix socket and on TCP. The load and its helpers are the prefork test's.
"""

from __future__ import annotations

import re
import signal

import pytest

from tests.server.test_hostile import wait_until

from . import test_prefork_nginx as prefork
from .harness import HOST, Process, Site, app_environment, backend_command
from .test_prefork_nginx import APP_SOURCE, MIN_REQUESTS, Outcome, start_nginx, under_load

pytestmark = pytest.mark.integration

RELOADS = 3
#: requests answered before each reload, at least
SERVED_BETWEEN = 50


#: the prefork test's nginx site, in its own temp dir
site = prefork.site


def start_backend(site: Site, upstream: str) -> Process:
    layout = site.layout
    (layout.dir / "app.py").write_text(APP_SOURCE)
    bind = layout.backend_bind if upstream.startswith("unix:") else upstream
    argv = [*backend_command(), "serve", "app:app", "--chdir", str(layout.dir), "--bind", bind]
    backend = Process(
        "backend", argv, log_dir=layout.dir, env=app_environment("none"), cwd=layout.dir
    )
    site.processes.append(backend)
    backend.wait_for_output("listening on")
    return backend


@pytest.mark.parametrize("keepalive", [True, False], ids=["keepalive", "close"])
@pytest.mark.parametrize("transport", ["unix", "tcp"])
def test_sighup_three_times_under_load_fails_no_request(
    site: Site, keepalive: bool, transport: str
) -> None:
    layout = site.layout
    upstream = f"unix:{layout.socket}" if transport == "unix" else f"{HOST}:{layout.backend_port}"
    backend = start_backend(site, upstream)
    start_nginx(site, keepalive, upstream)

    def reload_three_times(outcome: Outcome) -> None:
        for number in range(1, RELOADS + 1):
            # A reload takes a fraction of a second: the load must be going when it starts.
            wanted = number * SERVED_BETWEEN
            wait_until(lambda wanted=wanted: outcome.count >= wanted, what="the load")
            backend.popen.send_signal(signal.SIGHUP)
            # the same process, re-executed, has imported the app and serves again
            backend.wait_for_output("listening on", count=number + 1)

    outcome = under_load(site, keepalive, reload_three_times)
    assert not outcome.failures, (
        f"{len(outcome.failures)} of {outcome.count} requests failed:\n"
        + "\n".join(outcome.failures[:20])
    )
    assert outcome.count >= MIN_REQUESTS
    assert backend.popen.poll() is None
    assert set(outcome.pids) == {backend.pid}  # re-executed in place, never a new process
    assert backend.stderr.count("restarting on the same listening socket") == RELOADS
    if keepalive:  # nginx's idle connections went over to the new process, unbroken
        assert re.search(r"with [1-9]\d* idle connection", backend.stderr), backend.stderr
