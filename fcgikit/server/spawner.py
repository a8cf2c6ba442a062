"""Starting a prefork worker: the fork, and the worker's first steps until it serves.

The master forks with its signals blocked; the worker leaves the master's signal handling
and pipes behind (:class:`~fcgikit.server.wakeups.MasterWakeups`), switches to the pool's
user, and runs :func:`~fcgikit.server.worker.run_worker`, which loads the app (or takes the
one the master loaded, ``preload`` or an app object) and serves. A worker never returns
into the master's code: it ends with ``os._exit``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fcgikit.server.apploader import load_app
from fcgikit.server.credentials import Credentials
from fcgikit.server.scoreboard import Scoreboard, WorkerState
from fcgikit.server.settings import ServerSettings
from fcgikit.server.status import StatusPage
from fcgikit.server.wakeups import SIGNALS, MasterWakeups
from fcgikit.server.worker import EXIT_BOOT_ERROR, run_worker

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

log = logging.getLogger("fcgikit.arbiter")


@dataclass(frozen=True, kw_only=True)
class WorkerSpawner:
    """What every worker of a pool starts from, and the fork that starts one.

    Attributes:
        app_spec: ``module:attr`` each worker imports, after the fork.
        app: the app the master loaded instead (``preload``, an app object).
        wrap_app: applied to the app in each worker once it is loaded.
        settings: what every worker's server uses.
        slow_log: the pool's ``--slow-log``.
        listeners: the sockets the master bound, which every worker accepts on.
        board: the scoreboard; each worker writes its own slot.
        credentials: the user and group the workers switch to, if any.
        wakeups: the master's signal handling and pipes, which a worker leaves behind.
        master_pid: the master's pid, which a worker watches.
        report_saturation: a dynamic pool's workers tell the master when they are all busy.
    """

    app_spec: str | None
    app: WSGIApplication | None
    wrap_app: Callable[[WSGIApplication], WSGIApplication] | None
    settings: ServerSettings
    slow_log: float | None
    listeners: list[socket.socket]
    board: Scoreboard
    credentials: Credentials | None
    wakeups: MasterWakeups
    master_pid: int
    report_saturation: bool

    def fork(self, slot_index: int, max_requests: int) -> int:
        """Start a worker in ``slot_index`` of the scoreboard; returns its pid."""
        # Signals stay blocked from here until the worker has installed its own handlers
        # (run_worker unblocks them): a SIGTERM the master sends a just-forked worker would
        # otherwise reach the master's inherited handler, be queued in the child's copy of
        # the master's queue and be lost, and the worker would serve on after a stop.
        unblocked = signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
        try:
            pid = os.fork()
        except BaseException:
            signal.pthread_sigmask(signal.SIG_SETMASK, unblocked)
            raise
        if pid != 0:
            signal.pthread_sigmask(signal.SIG_SETMASK, unblocked)
        if pid == 0:  # the worker; it never returns into the master's code
            code = 1
            try:
                code = self._worker_main(slot_index, max_requests)
            except BaseException:
                log.exception("worker %d: unexpected error", os.getpid())
            finally:
                with contextlib.suppress(Exception):
                    logging.shutdown()
                os._exit(code)
        return pid

    def _worker_main(self, slot_index: int, max_requests: int) -> int:
        self.wakeups.leave_behind()
        if self.credentials is not None:
            try:
                self.credentials.apply()
            except OSError as exc:
                log.error("worker %d failed to start: cannot switch user: %s", os.getpid(), exc)
                self.board.slot(slot_index).set_state(WorkerState.FAILED)
                return EXIT_BOOT_ERROR
        app, spec, wrap_app = self.app, self.app_spec, self.wrap_app

        def load() -> WSGIApplication:
            if app is not None:
                loaded = app
            else:
                assert spec is not None
                loaded = load_app(spec)
            return loaded if wrap_app is None else wrap_app(loaded)

        status_page = None
        if self.settings.status_path is not None:
            status_page = StatusPage(
                self.board,
                self.settings.status_path,
                self.settings.status_allow,
                show_query=self.settings.status_show_query,
                counters=self.board.slot(slot_index).counters(),
            )
        return run_worker(
            load=load,
            settings=self.settings,
            listeners=self.listeners,
            slot=self.board.slot(slot_index),
            max_requests=max_requests,
            slow_log=self.slow_log,
            status_page=status_page,
            notify_fd=self.wakeups.notify_fd,
            master_pid=self.master_pid,
            report_saturation=self.report_saturation,
        )
