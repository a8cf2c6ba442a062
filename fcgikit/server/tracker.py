"""What a prefork worker records of each request: :class:`RequestTracker` writes each request's
label, thread and start time into a cell of the worker's
:class:`~fcgikit.server.scoreboard.WorkerSlot` (:mod:`~fcgikit.server.cells`; the master's
``--timeout`` reads them, the status page and the slow log), counts requests for
``--max-requests``, finds the slow ones for the slow log, and holds the status page. The
server calls it (:meth:`~fcgikit.server.wsgi.WSGIRequest.run`, ``ServerSettings.tracker``):
it is no WSGI wrapper, so a request makes no object of its own for it. The rest of the
worker is :mod:`fcgikit.server.worker`.

It runs once per request, so it is compiled with the server's per-request path (setup.py), and
does as little as it can: no lock (a cell is taken from a free list and given back), the
scoreboard cell the one record of the request (its label, count, thread and start, written
in place by one call each way).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fcgikit.server.labels import request_label
from fcgikit.server.scoreboard import WorkerSlot, WorkerState
from fcgikit.server.status import StatusPage

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

log = logging.getLogger("fcgikit.server")


@dataclass(slots=True)
class _Running:
    """A slow request, for the slow log: its thread, its label and its start (as its cell
    holds them)."""

    thread_id: int
    label: str
    started: float


class RequestTracker:
    """Records each request of a worker's app in the worker's scoreboard slot.

    The server begins a request's record when it calls the app and ends it when the
    response is over: its iterable closed (PEP 3333's close(), after its last byte was
    sent: ``--timeout`` never kills a worker under a response still streaming out), or its
    error answered, or the web server gone; in every case before its reply goes out. The
    worker's status page and pings are no requests of the app's: they take no cell.

    The worker retires (the master starts a replacement, then stops this one gracefully)
    after ``max_requests`` requests, and after a request whose app asked its process to exit
    (``sys.exit()``, see :data:`~fcgikit.server.wsgi.PROCESS_EXITS`): the server answers
    that request 500, and the exit the app wanted happens without failing anyone else's.
    """

    def __init__(
        self,
        slot: WorkerSlot,
        threads: int,
        *,
        max_requests: int = 0,
        status_page: StatusPage | None = None,
        notify: Callable[[], None] = lambda: None,
        report_saturation: bool = True,
    ) -> None:
        self.report_saturation = report_saturation
        self.slot = slot
        self.threads = threads
        self.max_requests = max_requests
        self.status_page = status_page
        self.notify = notify
        self._lock = threading.Lock()
        self._free_cells = list(range(threads - 1, -1, -1))
        # the C lane's calls held as they are, so that a request makes no look-up for them
        writer, self._cells = slot.request_cells()
        self._begin_cell = writer.begin
        self._end_cell = writer.end
        #: the start of the request each cell last reported slow (the slow log's "once")
        self._reported_starts = [0.0] * threads
        #: requests ended, counted only for max_requests
        self.completed = 0
        self.slow = 0
        self.retiring = False

    def app_exited(self, exc: BaseException) -> None:
        """The app asked its process to exit during a request: retire once it is answered."""
        self.retire(f"was asked to exit by the app ({type(exc).__name__})")

    def begin(self, environ: WSGIEnvironment) -> int:
        """A request of the app begins: the cell it holds until :meth:`end`."""
        # No lock on a request's path: list.pop and list.append are atomic under the GIL
        # (compiled or interpreted), the cell is this thread's until it is appended back,
        # and the busy count is the free list's length. The server never runs more requests
        # at once than it has threads, so a cell is always free here.
        free = self._free_cells
        cell = free.pop()
        if self._begin_cell(cell, environ) is None:
            self._cells.begin(cell, environ)  # not the C lane's ordinary case: the twin's
        if not free and self.report_saturation:
            self.notify()  # saturated: a dynamic pool may want another worker
        return cell

    def end(self, cell: int) -> None:
        """The request holding ``cell`` is over (a second call for it does nothing)."""
        ended = self._end_cell(cell)
        if ended is None:
            ended = self._cells.end(cell)
        if not ended:
            return  # ended already: the cell must not be given back twice
        self._free_cells.append(cell)  # last: another thread may take the cell from here
        if self.max_requests > 0:
            self._count_toward_max_requests()

    def _count_toward_max_requests(self) -> None:
        with self._lock:
            self.completed = completed = self.completed + 1
        if completed >= self.max_requests:
            self.retire(f"served {completed} requests (--max-requests)", "max_requests")

    def retire(self, reason: str, why: str = "app_exit") -> None:
        """Ask the master for a replacement, once; it stops this worker gracefully (running
        requests finish) when the replacement is ready. ``why``: the restart's reason for
        the metrics (one of fcgikit.server.metrics.RETIRE_REASONS)."""
        with self._lock:
            if self.retiring:
                return
            self.retiring = True
            self.slot.set_retired_for(why)
            if self.slot.state() == WorkerState.READY:
                self.slot.set_state(WorkerState.RETIRING)
        log.info("worker %d %s; asking for a replacement", os.getpid(), reason)
        self.notify()

    def slow_requests(self, threshold: float, now: float | None = None) -> list[_Running]:
        """Requests running longer than ``threshold`` at ``now`` (time.monotonic; by default
        now) not reported yet; marks them reported."""
        if now is None:
            now = time.monotonic()
        found = []
        # read from the cells, as the status page reads them: a request writes only its cell
        running = self.slot.board.read(self.slot.index).running
        with self._lock:
            for request in running:
                cell, started = request.cell, request.started
                if now - started > threshold and self._reported_starts[cell] != started:
                    self._reported_starts[cell] = started
                    found.append(_Running(request.thread, request.label, started))
            if found:
                self.slow += len(found)
                self.slot.set_slow(self.slow)
        return found


__all__ = ["RequestTracker", "request_label"]
