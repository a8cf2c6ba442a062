"""One prefork worker: a forked child that runs a :class:`~fcgikit.server.server.Server` on the
listening sockets the master bound, and tells the master how it is doing through its slot of
the shared :class:`~fcgikit.server.scoreboard.Scoreboard`.

What runs in a worker:

* the Server's I/O thread (the main thread) and its pool of request threads;
* :class:`RequestTracker`, a WSGI wrapper around the app: it writes each request's label and
  start time into the thread's scoreboard cell (the master's ``--timeout`` reads them), counts
  requests for ``--max-requests``, and answers the status page;
* :class:`Watchdog`, one thread that marks the worker READY once it accepts, writes the Python
  stack of a request slower than ``--slow-log`` to the log (once per request, php-fpm's
  slowlog), and stops the worker if the master disappears.

Signals in a worker: SIGTERM stops gracefully (in-flight requests finish), SIGINT and SIGQUIT
exit at once, SIGUSR1 reopens log files; SIGHUP, SIGTTIN and SIGTTOU are the master's and are
ignored here (a terminal sends them to the whole process group).

The worker tells the master about a change it must act on now (ready, saturated, retiring) by
writing one byte to a pipe the master selects on; everything else the master reads from the
scoreboard when it wakes.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from types import FrameType
from typing import TYPE_CHECKING

from fcgikit.server.logs import reopen_log_files
from fcgikit.server.scoreboard import WorkerSlot, WorkerState
from fcgikit.server.server import Server
from fcgikit.server.settings import ServerSettings
from fcgikit.server.status import StatusPage
from fcgikit.server.wsgi import PROCESS_EXITS

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

log = logging.getLogger("fcgikit.server")

#: exit status of a worker that could not load the app. The master does not read it (an app
#: may exit with any status): such a worker says so in its slot (WorkerState.FAILED).
EXIT_BOOT_ERROR = 3


def request_label(environ: WSGIEnvironment) -> str:
    """``#id METHOD URI``, the label :class:`~fcgikit.server.wsgi.WSGIRequest` logs with."""
    uri = environ.get("REQUEST_URI") or (
        str(environ.get("SCRIPT_NAME", "")) + str(environ.get("PATH_INFO", ""))
    )
    return f"#{environ.get('fcgikit.request_id', '?')} {environ.get('REQUEST_METHOD', '-')} {uri}"


@dataclass(slots=True)
class _Running:
    thread_id: int
    label: str
    started: float
    reported_slow: bool = False


class _ClosingIterable:
    """The app's response iterable, with the request's end recorded when it is closed, and
    an exit the app asks for while it is iterated or closed reported to ``on_exit``."""

    def __init__(
        self,
        result: Iterable[bytes],
        on_close: Callable[[], None],
        on_exit: Callable[[BaseException], None],
    ) -> None:
        self._result = result
        self._on_close = on_close
        self._on_exit = on_exit

    def __iter__(self) -> Iterator[bytes]:
        # A for loop, not yield from: closing this generator must not close the app's
        # iterator too (close() does that, once).
        try:
            for chunk in self._result:  # noqa: UP028
                yield chunk
        except PROCESS_EXITS as exc:
            self._on_exit(exc)
            raise

    def close(self) -> None:
        try:
            close = getattr(self._result, "close", None)
            if close is not None:
                close()
        except PROCESS_EXITS as exc:
            self._on_exit(exc)
            raise
        finally:
            self._on_close()


class _ClosingList(list[bytes]):
    """A list response that records the request's end once it is sent. Still a list, so the
    server still sends it in one piece with a Content-Length."""

    def __init__(self, result: Iterable[bytes], on_close: Callable[[], None]) -> None:
        super().__init__(result)
        self._on_close = on_close

    def close(self) -> None:
        self._on_close()


class RequestTracker:
    """WSGI wrapper recording each request in the worker's scoreboard slot.

    A request ends when the server closes its response (PEP 3333 guarantees the call), so
    after the last byte is sent: ``--timeout`` never kills a worker under a response that
    is still going out.

    The worker retires (the master starts a replacement, then stops this one gracefully)
    after ``max_requests`` requests, and after a request whose app asked its process to exit
    (``sys.exit()``, see :data:`~fcgikit.server.wsgi.PROCESS_EXITS`): the server answers
    that request 500, and the exit the app wanted happens without failing anyone else's.
    """

    def __init__(
        self,
        app: WSGIApplication,
        slot: WorkerSlot,
        threads: int,
        *,
        max_requests: int = 0,
        status_page: StatusPage | None = None,
        notify: Callable[[], None] = lambda: None,
        report_saturation: bool = True,
    ) -> None:
        self.app = app
        self.report_saturation = report_saturation
        self.slot = slot
        self.threads = threads
        self.max_requests = max_requests
        self.status_page = status_page
        self.notify = notify
        self._lock = threading.Lock()
        self._free_cells = list(range(threads - 1, -1, -1))
        self.running: dict[int, _Running] = {}
        self.accepted = 0
        self.completed = 0
        self.slow = 0
        self.retiring = False

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if self.status_page is not None and self.status_page.wants(environ):
            return self.status_page(environ, start_response)
        cell = self._begin(request_label(environ))
        try:
            result = self.app(environ, start_response)
        except BaseException as exc:
            self._end(cell)
            if isinstance(exc, PROCESS_EXITS):
                self.app_exited(exc)
            raise
        if isinstance(result, list | tuple):
            return _ClosingList(result, lambda: self._end(cell))
        return _ClosingIterable(result, lambda: self._end(cell), self.app_exited)

    def app_exited(self, exc: BaseException) -> None:
        """The app asked its process to exit during a request: retire once it is answered."""
        self.retire(f"was asked to exit by the app ({type(exc).__name__})")

    def _begin(self, label: str) -> int:
        with self._lock:
            # The server never runs more requests at once than it has threads.
            cell = self._free_cells.pop()
            self.accepted += 1
            busy = len(self.running) + 1
            self.running[cell] = _Running(threading.get_ident(), label, time.monotonic())
            self.slot.begin(cell, label, self.accepted, busy)
        if busy >= self.threads and self.report_saturation:
            self.notify()  # saturated: a dynamic pool may want another worker
        return cell

    def _end(self, cell: int) -> None:
        with self._lock:
            if self.running.pop(cell, None) is None:
                return
            self._free_cells.append(cell)
            self.completed += 1
            self.slot.end(cell, len(self.running))
            completed = self.completed
        if self.max_requests > 0 and completed >= self.max_requests:
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

    def slow_requests(self, threshold: float) -> list[_Running]:
        """Requests running longer than ``threshold`` not reported yet; marks them reported."""
        now = time.monotonic()
        found = []
        with self._lock:
            for running in self.running.values():
                if not running.reported_slow and now - running.started > threshold:
                    running.reported_slow = True
                    found.append(running)
            if found:
                self.slow += len(found)
                self.slot.set_slow(self.slow)
        return found


class Watchdog(threading.Thread):
    """Marks the worker READY, writes slow requests' stacks, notices the master's death."""

    def __init__(
        self,
        server: Server,
        tracker: RequestTracker,
        *,
        slow_log: float | None,
        master_pid: int,
        notify: Callable[[], None],
    ) -> None:
        super().__init__(name="fcgikit-watchdog", daemon=True)
        self.server = server
        self.tracker = tracker
        self.slow_log = slow_log
        self.master_pid = master_pid
        self.notify = notify
        self.stopped = threading.Event()
        self._wake = threading.Event()
        #: set by the SIGUSR1 handler; the reopen happens here, outside the handler
        self.reopen_logs = False
        self.interval = 1.0 if slow_log is None else min(1.0, max(0.05, slow_log / 4))

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self.stopped.set()
        self._wake.set()

    def run(self) -> None:
        while not self.server.ready.wait(0.5):
            if self.stopped.is_set():
                return
        if self.tracker.slot.state() == WorkerState.BOOTING:
            # a request served before this look may have asked the worker to retire already
            retiring = self.tracker.retiring
            self.tracker.slot.set_state(WorkerState.RETIRING if retiring else WorkerState.READY)
        self.notify()
        while not self.stopped.is_set():
            self._wake.wait(self.interval)
            self._wake.clear()
            if self.reopen_logs:
                self.reopen_logs = False
                reopen_log_files()
            metrics = self.server.settings.metrics
            if metrics is not None:
                metrics.sample()  # the requests running and waiting, for the status page
            if os.getppid() != self.master_pid:
                log.warning("worker %d: the master is gone; stopping", os.getpid())
                self.server.stop("the master process is gone")
                return
            if self.slow_log is not None:
                for running in self.tracker.slow_requests(self.slow_log):
                    self._report(running)

    def _report(self, running: _Running) -> None:
        frame = sys._current_frames().get(running.thread_id)
        stack = app_stack(frame) if frame is not None else "(it finished meanwhile)"
        log.warning(
            "slow request %s on worker %d: running for %.1fs (--slow-log %gs); its stack:\n%s",
            running.label,
            os.getpid(),
            time.monotonic() - running.started,
            self.slow_log,
            stack,
        )


def app_stack(frame: FrameType) -> str:
    """The stack from the app's entry down, without the server's frames above it."""
    frames = traceback.extract_stack(frame)
    for index in range(len(frames) - 1, -1, -1):
        if frames[index].filename == __file__ and frames[index].name == "__call__":
            frames = traceback.StackSummary.from_list(frames[index + 1 :])
            break
    return "".join(frames.format()).rstrip("\n")


def make_notifier(fd: int) -> Callable[[], None]:
    def notify() -> None:
        with contextlib.suppress(BlockingIOError, BrokenPipeError, InterruptedError):
            os.write(fd, b"!")

    return notify


def run_worker(
    *,
    load: Callable[[], WSGIApplication],
    settings: ServerSettings,
    listeners: list[socket.socket],
    slot: WorkerSlot,
    max_requests: int,
    slow_log: float | None,
    status_page: StatusPage | None,
    notify_fd: int,
    master_pid: int,
    report_saturation: bool = True,
) -> int:
    """The body of a forked worker; returns its exit status (the caller ``os._exit``s)."""
    pid = os.getpid()
    slot.set_pid(pid)
    stop_requested: list[str] = []
    server_box: list[Server] = []
    watchdog_box: list[Watchdog] = []

    def on_term(signum: int, frame: FrameType | None) -> None:
        slot.set_state(WorkerState.STOPPING)
        if server_box:
            server_box[0].stop(f"worker {pid}: stopping")
        else:
            stop_requested.append("SIGTERM")

    def on_quit(signum: int, frame: FrameType | None) -> None:
        os._exit(0)

    def on_usr1(signum: int, frame: FrameType | None) -> None:
        if watchdog_box:
            watchdog_box[0].reopen_logs = True
            watchdog_box[0].wake()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_quit)
    signal.signal(signal.SIGQUIT, on_quit)
    signal.signal(signal.SIGUSR1, on_usr1)
    for ignored in (signal.SIGHUP, signal.SIGTTIN, signal.SIGTTOU):
        signal.signal(ignored, signal.SIG_IGN)
    # The master forked us with its signals blocked (Arbiter._spawn); with our own handlers
    # in place, whatever arrived meanwhile (a SIGTERM for a stop) is delivered to them now.
    signal.pthread_sigmask(
        signal.SIG_UNBLOCK,
        {
            signal.SIGTERM,
            signal.SIGINT,
            signal.SIGQUIT,
            signal.SIGUSR1,
            signal.SIGHUP,
            signal.SIGTTIN,
            signal.SIGTTOU,
            signal.SIGCHLD,
        },
    )

    try:
        app = load()
    except (Exception, SystemExit) as exc:  # an app may sys.exit() at import: no setting
        reason = f"it called sys.exit({exc.code!r})" if isinstance(exc, SystemExit) else exc
        log.error("worker %d failed to start: could not load the app: %s", pid, reason)
        slot.set_state(WorkerState.FAILED)
        return EXIT_BOOT_ERROR
    if stop_requested:
        return 0
    notify = make_notifier(notify_fd)
    tracker = RequestTracker(
        app,
        slot,
        settings.threads,
        max_requests=max_requests,
        status_page=status_page,
        notify=notify,
        report_saturation=report_saturation,
    )
    counters = status_page.counters if status_page is not None else None
    worker_settings = replace(
        settings,
        handle_signals=False,
        multiprocess=True,
        share_listeners=True,
        binds=(),
        metrics=counters,
    )
    # The ping path answers 503 when the pool drains, which the master says in the board:
    # not when this worker alone stops (replaced by a reload, --max-requests), since the
    # pool goes on serving then.
    server = Server(tracker, worker_settings, listeners, draining=slot.board.draining)
    if counters is not None:
        counters.pool = server.pool
    server_box.append(server)
    if stop_requested:  # SIGTERM arrived while the app was loading
        return 0
    watchdog = Watchdog(server, tracker, slow_log=slow_log, master_pid=master_pid, notify=notify)
    watchdog_box.append(watchdog)
    watchdog.start()
    # The kernel may hand SIGTERM to any thread; without this the main thread would sleep
    # in select() with the handler pending until some connection woke it.
    signal.set_wakeup_fd(server.wakeup_fd(), warn_on_full_buffer=False)
    try:
        server.serve()
    finally:
        signal.set_wakeup_fd(-1)
        watchdog.stop()
    return 0


__all__ = ["EXIT_BOOT_ERROR", "RequestTracker", "Watchdog", "request_label", "run_worker"]
