"""A prefork worker's record of its requests (fcgikit/server/tracker.py), as the server keeps
it: a request of the app holds a scoreboard cell from the app's call until its response is
over (its iterable closed, its error answered, its web server gone), which is what the
master's ``--timeout``, the status page and the slow log read. Each request runs through a
real :class:`~fcgikit.server.wsgi.WSGIRequest`, as a worker's server runs it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pytest

from fcgikit.protocol import RequestReceived, Role
from fcgikit.server.health import Health
from fcgikit.server.scoreboard import Scoreboard, SlotView, WorkerState
from fcgikit.server.settings import ServerSettings
from fcgikit.server.sink import WebServerGone
from fcgikit.server.status import StatusPage, parse_allow
from fcgikit.server.tracker import RequestTracker
from fcgikit.server.wsgi import WSGIRequest
from tests.server.test_speedups_wsgi_codec import RecordingSink

App = Callable[[dict[str, Any], Any], Iterable[bytes]]


class Sink(RecordingSink):
    """Keeps what the request sends, and can vanish after ``gone_after`` sends of output
    (the web server closing mid-stream)."""

    def __init__(self, gone_after: int | None = None) -> None:
        super().__init__()
        self.sent: list[bytes] = []
        self.gone_after = gone_after

    def send_output(self, request: WSGIRequest, data: bytes) -> None:
        if self.gone_after is not None and len(self.sent) >= self.gone_after:
            raise WebServerGone("the web server closed the connection")
        self.sent.append(data)


def worker(threads: int = 1, **options: Any) -> tuple[Scoreboard, RequestTracker]:
    board = Scoreboard(slots=1, threads=threads)
    board.reset(0, generation=1)
    slot = board.slot(0)
    slot.set_state(WorkerState.READY)
    return board, RequestTracker(slot, threads, **options)


def serve(
    tracker: RequestTracker, app: App, uri: str = "/x", sink: Sink | None = None, **params: str
) -> Sink:
    """One request of ``app`` run as a worker's server runs it; the sink it answered."""
    sink = sink or Sink()
    names = {b"REQUEST_METHOD": b"GET", b"REQUEST_URI": uri.encode(), b"SCRIPT_NAME": b""}
    names.update({name.encode(): value.encode() for name, value in params.items()})
    event = RequestReceived(
        request_id=1, role=Role.RESPONDER, keep_conn=True, params=names, duplicate_names=frozenset()
    )
    request = WSGIRequest(sink, event, app, ServerSettings(tracker=tracker))
    request.run()
    return sink


def read(board: Scoreboard) -> SlotView:
    return board.read(0)


def test_a_streamed_response_holds_its_cell_until_its_close_has_run() -> None:
    board, tracker = worker()
    seen: dict[str, Any] = {}

    class Streamed:
        def __iter__(self) -> Iterator[bytes]:
            seen["iterated"] = read(board)
            yield b"one"
            yield b"two"

        def close(self) -> None:
            seen["closing"] = read(board)

    def app(environ: dict[str, Any], start_response: Any) -> Streamed:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return Streamed()

    sink = serve(tracker, app, "/stream?q=1")
    assert b"".join(sink.sent).endswith(b"onetwo") and sink.finished[0][2] == 0
    for moment in ("iterated", "closing"):
        view = seen[moment]
        assert (view.busy, [r.label for r in view.running]) == (1, ["#1 GET /stream?q=1"])
    view = read(board)
    assert (view.busy, view.requests, view.running) == (0, 1, ())


def test_a_list_response_ends_its_request_and_counts_toward_max_requests() -> None:
    board, tracker = worker(max_requests=2)

    def hello(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [])
        return [b"hi"]

    for _ in range(2):
        assert serve(tracker, hello).finished[0][1] == b"hi"
    view = read(board)
    assert (view.busy, view.requests, view.state) == (0, 2, WorkerState.RETIRING)


@pytest.mark.parametrize("where", ["in the call", "in the body", "in close()"])
def test_an_app_that_raises_gives_its_cell_back(where: str) -> None:
    board, tracker = worker()

    class Broken:
        def __iter__(self) -> Iterator[bytes]:
            if where == "in the body":
                raise RuntimeError("boom")
            yield b"x"

        def close(self) -> None:
            if where == "in close()":
                raise RuntimeError("boom")

    def app(environ: dict[str, Any], start_response: Any) -> Broken:
        if where == "in the call":
            raise RuntimeError("boom")
        start_response("200 OK", [("Content-Length", "1")])
        return Broken()

    for _ in range(3):  # one thread: its cell is given back each time
        ((head, _, _),) = serve(tracker, app).finished
        assert head.startswith(b"Status: 500" if where != "in close()" else b"Status: 200")
    view = read(board)
    assert (view.busy, view.requests, view.state) == (0, 3, WorkerState.READY)


def test_a_web_server_gone_mid_stream_gives_the_cell_back_once_the_app_is_closed() -> None:
    board, tracker = worker()
    closed: list[int] = []

    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [])
        try:
            while True:
                yield b"chunk"
        finally:
            closed.append(read(board).busy)

    sink = serve(tracker, app, sink=Sink(gone_after=2))
    assert len(sink.sent) == 2 and sink.finished == []  # no END_REQUEST: nobody to read it
    assert closed == [1]
    view = read(board)
    assert (view.busy, view.requests) == (0, 1)


def test_the_status_page_and_a_ping_take_no_cell() -> None:
    board = Scoreboard(slots=1, threads=1)
    board.reset(0, generation=1)
    board.slot(0).set_state(WorkerState.READY)
    page = StatusPage(board, "/status", parse_allow(["127.0.0.1"]))
    tracker = RequestTracker(board.slot(0), 1, status_page=page)
    not_the_app: App = lambda environ, start_response: pytest.fail("the app ran")  # noqa: E731

    sink = serve(tracker, not_the_app, "/status", REMOTE_ADDR="127.0.0.1")
    assert re.search(rb"accepted requests: +0\n", sink.finished[0][1])  # not itself

    health = Health("/ping", "pong", lambda: False)
    event = RequestReceived(
        request_id=2,
        role=Role.RESPONDER,
        keep_conn=True,
        params={b"REQUEST_METHOD": b"GET", b"REQUEST_URI": b"/ping"},
        duplicate_names=frozenset(),
    )
    ping = WSGIRequest(Sink(), event, not_the_app, ServerSettings(tracker=tracker))
    health.take_pings([(None, ping)])
    ping.run()
    assert read(board).requests == 0
