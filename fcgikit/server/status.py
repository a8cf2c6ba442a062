"""The status page (php-fpm's ``pm.status_path``): the pool's, or the single process's, state
as text, JSON (``?json``) or OpenMetrics (``?openmetrics``, :mod:`~fcgikit.server.openmetrics`)
for Prometheus, read from the :mod:`~fcgikit.server.scoreboard`.

In a pool the page is answered by whichever worker receives the request; every worker can
read the whole board. A single process (no ``--workers``) keeps a board of its own, one slot,
and leaves out what only a pool has (workers, restarts).

Who sees the page (it lists every request in flight): ``fcgikit status``, which talks
FastCGI to the socket directly and sends :data:`DIRECT_CLIENT_PARAM`, always; HTTP clients
only when their REMOTE_ADDR (as the web server reports it; the FastCGI peer is the web
server) is in ``--status-allow``, empty by default, because behind a TLS terminator or a
tunnel on the same host every client is 127.0.0.1. The param is sound because no HTTP client
can make a web server send it: headers arrive as ``HTTP_*`` params, and any other param
only where the web server's configuration names it. Whoever can connect to the socket can
send it, but could already claim any REMOTE_ADDR: the socket must be the web server's alone
(SECURITY.md). SO_PEERCRED would not do: unix sockets only, and a web server that spawns the
app runs as the app's user. docs/operations.rst has the whole reasoning.

Each request shows as method and path; its query string (password-reset tokens and the
like) only with ``--status-show-query``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from fcgikit.networks import TrustedNetworks
from fcgikit.server import openmetrics
from fcgikit.server.metrics import ProcessCounters
from fcgikit.server.scoreboard import Scoreboard, WorkerState

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

    from fcgikit.server.settings import ServerSettings

#: The param a FastCGI client talking to the socket directly sends to see the status page
#: (see the module docstring for why a web server cannot forward it from an HTTP client).
DIRECT_CLIENT_PARAM = "FCGIKIT_STATUS_CLIENT"


def render_text(status: dict[str, Any]) -> str:
    lines = [
        f"{key.replace('_', ' ') + ':':<22}{value}"
        for key, value in status.items()
        if key != "workers"  # they follow, one block each
    ]
    for worker in status.get("workers", ()):
        lines.append("")
        lines.append("*" * 40)
        for key, value in worker.items():
            if key == "current_requests":
                value = ", ".join(f"{r['request']} ({r['duration']}s)" for r in value) or "-"
            lines.append(f"{key.replace('_', ' ') + ':':<22}{value}")
    return "\n".join(lines) + "\n"


def parse_allow(items: Iterable[str]) -> TrustedNetworks:
    """``--status-allow`` values (repeated, each comma-separated): addresses and networks."""
    return TrustedNetworks.parse(items, "--status-allow")


class StatusPage:
    """Answers ``path`` for direct FastCGI clients (:data:`DIRECT_CLIENT_PARAM`) and HTTP
    clients whose REMOTE_ADDR is in ``allow`` (addresses and networks); others reach the app
    (which usually answers 404), so the page's existence is not advertised. ``show_query``:
    show the requests' query strings; ``pool``: the board is a pool's (else a single
    process's); ``counters``: the answering process's own, whose gauges are sampled first."""

    def __init__(
        self,
        board: Scoreboard,
        path: str,
        allow: TrustedNetworks,
        *,
        show_query: bool = False,
        pool: bool = True,
        counters: ProcessCounters | None = None,
    ) -> None:
        self.board = board
        self.path = path
        self.allow = allow
        self.show_query = show_query
        self.pool = pool
        self.counters = counters

    def wants(self, environ: WSGIEnvironment) -> bool:
        uri = str(environ.get("REQUEST_URI", "")).partition("?")[0]
        path = str(environ.get("SCRIPT_NAME", "")) + str(environ.get("PATH_INFO", ""))
        if self.path not in (uri, path):
            return False
        if environ.get(DIRECT_CLIENT_PARAM):
            return True
        return str(environ.get("REMOTE_ADDR", "")) in self.allow

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
        if self.counters is not None:
            self.counters.sample()
        view = self.board.snapshot()
        # ?json and ?openmetrics, and also ?openmetrics= (what Prometheus' params: make)
        asked = {part.partition("=")[0] for part in str(environ.get("QUERY_STRING", "")).split("&")}
        if "openmetrics" in asked:
            body = openmetrics.render(view, pool=self.pool).encode()
            content_type = openmetrics.CONTENT_TYPE
        else:
            if self.pool:
                status = view.as_dict(queries=self.show_query)
            else:
                status = view.single_process_dict()
            if "json" in asked:
                body = json.dumps(status, indent=1).encode()
                content_type = "application/json"
            else:
                body = render_text(status).encode()
                content_type = "text/plain; charset=utf-8"
        start_response(
            "200 OK",
            [
                ("Content-Type", content_type),
                ("Cache-Control", "no-store"),
                ("X-Fcgikit-Worker", str(os.getpid())),
            ],
        )
        return [body]

    def in_front_of(self, app: WSGIApplication) -> WSGIApplication:
        """``app``, with this page answered before it (a single process; in a pool the
        worker's RequestTracker does the same)."""

        def serve(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
            if self.wants(environ):
                return self(environ, start_response)
            return app(environ, start_response)

        return serve


def one_process_page(settings: ServerSettings) -> StatusPage:
    """The status page of a single process (``settings.status_path``, no ``--workers``), on a
    board of its own: one slot, this process. The page's ``counters`` are the process's, to
    be put in its settings (``metrics``) and given its pool once it has one."""
    assert settings.status_path is not None
    board = Scoreboard(1, settings.threads)
    board.set_pool(dynamic=False, target=1, maximum=1)
    board.reset(0, generation=1)
    slot = board.slot(0)
    slot.set_pid(os.getpid())
    slot.set_state(WorkerState.READY)
    return StatusPage(
        board,
        settings.status_path,
        settings.status_allow,
        show_query=settings.status_show_query,
        pool=False,
        counters=slot.counters(),
    )
