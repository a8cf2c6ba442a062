"""One prefork worker: a forked child that runs a :class:`~fcgikit.server.server.Server` on the
listening sockets the master bound, and tells the master how it is doing through its slot of
the shared :class:`~fcgikit.server.scoreboard.Scoreboard`.

What runs in a worker:

* the Server's I/O thread (the main thread) and its pool of request threads;
* :class:`~fcgikit.server.tracker.RequestTracker`, which the server calls around each request
  of the app (``ServerSettings.tracker``): it writes the request's label and start time into
  a scoreboard cell (the master's ``--timeout`` reads them), counts requests for
  ``--max-requests``, and holds the status page;
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
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from fcgikit.server.logs import reopen_log_files
from fcgikit.server.scoreboard import WorkerSlot, WorkerState
from fcgikit.server.server import Server
from fcgikit.server.settings import ServerSettings
from fcgikit.server.status import StatusPage
from fcgikit.server.tracker import RequestTracker, _Running, request_label

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

    from fcgikit.server.metrics import ProcessCounters

log = logging.getLogger("fcgikit.server")

#: exit status of a worker that could not load the app. The master does not read it (an app
#: may exit with any status): such a worker says so in its slot (WorkerState.FAILED).
EXIT_BOOT_ERROR = 3


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


#: where the frames above an app's come from: the server's own (interpreted, in the pure
#: build) and Python's threading module (the request thread's start)
_SERVER_FILES = (str(Path(__file__).parent) + os.sep, threading.__file__)


def app_stack(frame: FrameType) -> str:
    """The stack from the app's entry down, without the server's frames above it (compiled,
    the server has none: only threading's remain to drop)."""
    frames = traceback.extract_stack(frame)
    for index, summary in enumerate(frames):
        if not summary.filename.startswith(_SERVER_FILES):
            frames = traceback.StackSummary.from_list(frames[index:])
            break
    return "".join(frames.format()).rstrip("\n")


def make_notifier(fd: int) -> Callable[[], None]:
    def notify() -> None:
        with contextlib.suppress(BlockingIOError, BrokenPipeError, InterruptedError):
            os.write(fd, b"!")

    return notify


class _WorkerSignals:
    """A worker's signal handlers, and what they act on: the server and the watchdog once
    they exist (a SIGTERM while the app loads is remembered until then)."""

    def __init__(self, slot: WorkerSlot, pid: int) -> None:
        self.slot = slot
        self.pid = pid
        self.server: Server | None = None
        self.watchdog: Watchdog | None = None
        self.stop_requested = False

    def install(self) -> None:
        signal.signal(signal.SIGTERM, self.on_term)
        signal.signal(signal.SIGINT, self.on_quit)
        signal.signal(signal.SIGQUIT, self.on_quit)
        signal.signal(signal.SIGUSR1, self.on_usr1)
        for ignored in (signal.SIGHUP, signal.SIGTTIN, signal.SIGTTOU):
            signal.signal(ignored, signal.SIG_IGN)
        # The master forked us with its signals blocked (Arbiter._fork); with our own
        # handlers in place, whatever arrived meanwhile (a SIGTERM for a stop) is delivered
        # to them now.
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

    def on_term(self, signum: int, frame: FrameType | None) -> None:
        self.slot.set_state(WorkerState.STOPPING)
        if self.server is not None:
            self.server.stop(f"worker {self.pid}: stopping")
        else:
            self.stop_requested = True

    def on_quit(self, signum: int, frame: FrameType | None) -> None:
        os._exit(0)

    def on_usr1(self, signum: int, frame: FrameType | None) -> None:
        if self.watchdog is not None:
            self.watchdog.reopen_logs = True
            self.watchdog.wake()


def _load_app(load: Callable[[], WSGIApplication], slot: WorkerSlot) -> WSGIApplication | None:
    """The app, or None (logged, the slot marked FAILED) when it does not load."""
    try:
        return load()
    except (Exception, SystemExit) as exc:  # an app may sys.exit() at import: no setting
        reason = f"it called sys.exit({exc.code!r})" if isinstance(exc, SystemExit) else exc
        log.error("worker %d failed to start: could not load the app: %s", os.getpid(), reason)
        slot.set_state(WorkerState.FAILED)
        return None


def _as_a_worker(
    settings: ServerSettings, counters: ProcessCounters | None, tracker: RequestTracker
) -> ServerSettings:
    """``settings`` as a worker's server runs with them: the master handles the signals and
    bound the sockets, which every worker accepts on; the status page's ``counters`` (this
    worker's, in its slot of the scoreboard) count what it serves, and ``tracker`` keeps each
    request's cell in the board."""
    return replace(
        settings,
        handle_signals=False,
        multiprocess=True,
        share_listeners=True,
        binds=(),
        metrics=counters,
        tracker=tracker,
    )


def schedule_as_batch() -> None:
    """Have the kernel schedule this worker, and every thread it starts, as a batch process
    (SCHED_BATCH): woken by the web server's connect(), a worker would otherwise take the CPU
    from the web server between its connect() and its write of the request, find nothing to
    read, and sleep again; a batch process does not preempt on waking, so the web server
    writes first and the worker reads the request in one go (benchmarks/RESULTS.md, "two busy
    workers, round 18"). Its nice value still applies. A policy the operator chose (``chrt``)
    is left as it is, as is a platform without the policy."""
    batch = getattr(os, "SCHED_BATCH", None)
    if batch is None:
        return
    try:
        if os.sched_getscheduler(0) == os.SCHED_OTHER:
            os.sched_setscheduler(0, batch, os.sched_param(0))
    except OSError as exc:  # a sandbox that forbids it: the default policy serves as well
        log.debug("worker %d keeps its scheduling policy: %s", os.getpid(), exc)


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
    schedule_as_batch()
    handlers = _WorkerSignals(slot, pid)
    handlers.install()
    app = _load_app(load, slot)
    if app is None:
        return EXIT_BOOT_ERROR
    if handlers.stop_requested:
        return 0
    notify = make_notifier(notify_fd)
    tracker = RequestTracker(
        slot,
        settings.threads,
        max_requests=max_requests,
        status_page=status_page,
        notify=notify,
        report_saturation=report_saturation,
    )
    counters = status_page.counters if status_page is not None else None
    # The ping path answers 503 when the pool drains, which the master says in the board:
    # not when this worker alone stops (replaced by a reload, --max-requests), since the
    # pool goes on serving then.
    server = Server(
        app, _as_a_worker(settings, counters, tracker), listeners, draining=slot.board.draining
    )
    if counters is not None:
        counters.pool = server.pool
    handlers.server = server
    if handlers.stop_requested:  # SIGTERM arrived while the app was loading
        return 0
    watchdog = Watchdog(server, tracker, slow_log=slow_log, master_pid=master_pid, notify=notify)
    handlers.watchdog = watchdog
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
