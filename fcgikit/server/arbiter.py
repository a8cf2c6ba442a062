"""The prefork master (gunicorn calls it the arbiter): binds, forks, watches, replaces.

The master binds every listening socket before the first fork, then forks workers
(:mod:`fcgikit.server.worker`) that accept on those shared sockets; it never serves a request
and never imports the app unless ``preload`` is set, so a reload (SIGHUP) imports it afresh
in new workers. It starts no threads, so ``fork`` is safe.

One loop does everything. Signal handlers only append the signal to a queue (and
``signal.set_wakeup_fd`` wakes the ``select``); the loop then calls ``handle_<name>``.
Workers report through a shared :class:`~fcgikit.server.scoreboard.Scoreboard` and poke the
master through a pipe when something needs acting on at once (ready, saturated, retiring).

Replacing a worker never leaves the pool short: the old one (reload, ``--max-requests``)
keeps accepting until its replacement is READY, and only then gets SIGTERM and finishes what
it runs. A worker that dies unasked is replaced at once, above all one killed by a request
it was serving: that is the request's doing, and the next request must not wait for it. Only
workers that keep failing to start (or dying idle soon after) are restarted with an
exponential back-off (up to 10 s), logged, not a fork bomb. Why a worker died is read from the
pool's own bookkeeping (its slot's state and running requests), never guessed from its exit
status: an app may exit with any.

    $ fcgikit serve yourapp:app --bind unix:/run/app.sock --workers 2:8

Signals: TERM graceful stop, INT / QUIT fast stop, HUP graceful reload, USR1 reopen log
files, TTIN / TTOU one worker more / fewer.

With ``shutdown_delay``, TERM drains first: the workers serve on for that long, with their
ping path answering 503, before they get their TERM (:mod:`~fcgikit.server.pool_stopping`
holds how the pool stops, and when the master stops waiting). Under systemd
(``NOTIFY_SOCKET``) the master is the service: it says READY, RELOADING, STOPPING, its STATUS
and the watchdog's WATCHDOG from this loop (:mod:`~fcgikit.server.notify`).

This module is the master's process: its sockets, signals and loop. Its workers, and the
steps each round of the loop takes to keep them as wanted (the pool's target, generation and
crash streak), are the :class:`~fcgikit.server.keeper.PoolKeeper`'s and
:func:`~fcgikit.server.pool_round.keep_pool`'s. What else is not the loop lives beside it:
the settings (:mod:`fcgikit.server.settings`), the signal queue and pipes that wake the loop
(:mod:`~fcgikit.server.wakeups`), the fork and a worker's first steps
(:mod:`~fcgikit.server.spawner`), the workers' user (:mod:`~fcgikit.server.credentials`), the
pid file (:mod:`~fcgikit.server.pidfile`), the record of each worker and why it died
(:mod:`~fcgikit.server.children`), the worker's own side (:mod:`~fcgikit.server.worker`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from fcgikit.errors import ConfigError
from fcgikit.server.apploader import load_app
from fcgikit.server.credentials import Credentials
from fcgikit.server.keeper import PoolKeeper
from fcgikit.server.listeners import (
    describe,
    inherited_listener,
    open_bound_listeners,
    passed_listeners,
)
from fcgikit.server.logs import reopen_log_files
from fcgikit.server.notify import SystemdNotifier
from fcgikit.server.pidfile import remove_pidfile, write_pidfile
from fcgikit.server.pool_round import keep_pool
from fcgikit.server.pool_stopping import PoolStopping
from fcgikit.server.scoreboard import Scoreboard
from fcgikit.server.settings import PoolSettings, ServerSettings
from fcgikit.server.spawner import WorkerSpawner
from fcgikit.server.wakeups import MasterWakeups

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

log = logging.getLogger("fcgikit.arbiter")


class Arbiter:
    """The prefork master.

    Args:
        app_spec: ``module:attr`` the workers import (each worker, after the fork).
        app: an app object instead (flup's ``WSGIServer(app, multiprocess=True)``); it is
            then necessarily loaded before the fork, like ``preload``.
        settings: what every worker's server uses; ``threads`` is per worker.
        pool: the number of workers and when to replace them.
        listeners: already listening sockets; by default those systemd passed, else
            ``settings.binds``, else the socket a spawner left on fd 0.
        stop_on_hup: make SIGHUP a graceful stop that sets :attr:`restart_requested`
            instead of a reload, for flup's ``while WSGIServer(app).run(): os.execv(...)``
            idiom: an app object cannot be re-imported by new workers, a re-exec can.
        wrap_app: applied to the app in each worker once it is loaded (``fcgikit serve
            --mount`` wraps it in the URL fixers this way).
        notifier: what to tell systemd, when the master is a ``Type=notify`` service.
    """

    def __init__(
        self,
        app_spec: str | None,
        app: WSGIApplication | None,
        settings: ServerSettings,
        pool: PoolSettings,
        listeners: Sequence[socket.socket] | None = None,
        *,
        stop_on_hup: bool = False,
        wrap_app: Callable[[WSGIApplication], WSGIApplication] | None = None,
        notifier: SystemdNotifier | None = None,
    ) -> None:
        if (app_spec is None) == (app is None):
            raise ConfigError("give the app as a 'module:attr' string or as an object, not both")
        self.app_spec = app_spec
        self.app = app
        self.settings = settings
        self.pool = pool
        self.listeners = list(listeners) if listeners is not None else []
        self._given_listeners = listeners is not None
        self.stop_on_hup = stop_on_hup
        self.wrap_app = wrap_app
        #: SIGHUP stopped the pool (``stop_on_hup``): the caller should re-execute itself
        self.restart_requested = False
        self.created_paths: list[str] = []
        self.keeper = PoolKeeper(
            settings, pool, fork=self._fork, say_ready=self._say_ready, hopeless=self._hopeless
        )
        #: how far the pool is in its stop (draining, stopping), and the exit status
        self.stopping = PoolStopping(self.keeper, settings, notifier)
        self.master_pid = 0
        self.wakeups = MasterWakeups()
        self.board: Scoreboard | None = None
        self.credentials: Credentials | None = None
        #: forks the workers, once the master is set up
        self.spawner: WorkerSpawner | None = None
        self.notifier = notifier
        #: READY was said for the pool as it is (not before its first worker, nor during a
        #: reload)
        self.said_ready = False

    # --- setup and teardown ----------------------------------------------------------------

    def _open_listeners(self) -> None:
        if self._given_listeners:
            return
        passed = passed_listeners()
        if passed is not None:
            for fd in passed.connections:  # a single process's, handed over by its reload
                os.close(fd)
        if passed is not None and passed.sockets:
            self.listeners = passed.sockets
            self.created_paths = passed.created_paths
            return
        self.listeners, self.created_paths = open_bound_listeners(self.settings)
        if not self.listeners:
            listener = inherited_listener(0)
            if listener is None:
                raise ConfigError(
                    "nothing to listen on: pass --bind unix:/run/app.sock (or 127.0.0.1:9000), "
                    "start under systemd socket activation, or from a FastCGI spawner (fd 0)"
                )
            self.listeners.append(listener)

    def _setup(self) -> None:
        self.master_pid = os.getpid()
        self.credentials = Credentials.resolve(self.pool.user, self.pool.group)
        if self.app is None and self.pool.preload:
            assert self.app_spec is not None
            self.app = load_app(self.app_spec)
        self._open_listeners()
        write_pidfile(self.pool.pidfile)
        self.board = self.keeper.open_board()
        self.wakeups.open()
        self.spawner = WorkerSpawner(
            app_spec=self.app_spec,
            app=self.app,
            wrap_app=self.wrap_app,
            settings=self.settings,
            slow_log=self.pool.slow_log,
            listeners=self.listeners,
            board=self.board,
            credentials=self.credentials,
            wakeups=self.wakeups,
            master_pid=self.master_pid,
            report_saturation=self.keeper.dynamic,
        )

    def _teardown(self) -> None:
        self.wakeups.restore_signals()
        self.keeper.close()
        self.wakeups.close()
        for listener in self.listeners:
            listener.close()
        for path in self.created_paths:
            with contextlib.suppress(OSError):
                os.unlink(path)
        remove_pidfile(self.pool.pidfile)

    # --- the loop --------------------------------------------------------------------------

    def run(self) -> int:
        """Serve until stopped. Returns the exit status: 0 after a stop by signal, 3 when
        the workers cannot load the app at all."""
        self._setup()
        try:
            where = ", ".join(describe(listener) for listener in self.listeners)
            keeper = self.keeper
            mode = (
                f"dynamic pool of {keeper.minimum}..{keeper.maximum} workers"
                if keeper.dynamic
                else f"static pool of {keeper.target} workers"
            )
            log.info(
                "fcgikit master %d: %s x %d threads on %s",
                self.master_pid,
                mode,
                self.settings.threads,
                where,
            )
            return self._loop()
        finally:
            self._teardown()

    def _loop(self) -> int:
        stopping = self.stopping
        while True:
            self._dispatch_signals()
            self.keeper.reap()
            if self.notifier is not None:
                self.notifier.tick(time.monotonic(), self._status_line)
            if stopping.drain_over(time.monotonic()):
                stopping.begin("drained; stopping gracefully", graceful=True)
            if stopping.exit_code is not None:
                if not self.keeper.workers:
                    log.info("fcgikit master %d: stopped", self.master_pid)
                    return stopping.exit_code
                self.wakeups.wait(stopping.wait_for_workers(time.monotonic()))
                continue
            keep_pool(self.keeper)
            self.wakeups.wait(self._tick())

    def _tick(self) -> float:
        tick = 1.0
        if self.pool.timeout is not None:
            tick = min(tick, self.pool.timeout / 4)
        if self.keeper.dynamic:
            tick = min(tick, self.pool.idle_timeout / 4)
        if self.keeper.spawn_after > time.monotonic():
            tick = min(tick, self.keeper.spawn_after - time.monotonic())
        if self.stopping.drain_until is not None:
            tick = min(tick, self.stopping.drain_until - time.monotonic())
        if self.notifier is not None and self.notifier.watchdog_every is not None:
            tick = min(tick, self.notifier.watchdog_every)
        return max(0.02, tick)

    def _dispatch_signals(self) -> None:
        queue = self.wakeups.signal_queue
        while queue:
            signum = queue.pop(0)
            name = signal.Signals(signum).name[3:].lower()
            handler: Callable[[], None] | None = getattr(self, f"handle_{name}", None)
            if handler is not None:
                handler()

    # --- signal handlers (run by the loop, never inside the signal handler) -----------------

    def handle_chld(self) -> None:
        self.keeper.reap()

    def handle_term(self) -> None:
        self.stopping.terminate()

    def handle_int(self) -> None:
        self.stopping.begin("SIGINT: stopping now", graceful=False)

    def handle_quit(self) -> None:
        self.stopping.begin("SIGQUIT: stopping now", graceful=False)

    def handle_hup(self) -> None:
        if self.stopping.begun:
            return
        if self.stopping.draining:
            log.info("SIGHUP ignored: the pool is draining to stop (SIGTERM)")
            return
        if self.stop_on_hup:
            self.restart_requested = True
            self.stopping.begin("SIGHUP: stopping gracefully to be restarted", graceful=True)
            return
        keeper = self.keeper
        keeper.begin_reload()
        if self.app is not None:
            log.warning(
                "SIGHUP: restarting the workers; the app was loaded in the master (--preload "
                "or an app object), so its code is not re-imported: restart the master for "
                "new code"
            )
        log.info(
            "SIGHUP: reloading: starting %d new workers (generation %d); the old ones stop "
            "as the new ones become ready",
            keeper.target,
            keeper.generation,
        )
        self.said_ready = False
        if self.notifier is not None:
            self.notifier.reloading()

    def handle_usr1(self) -> None:
        reopen_log_files()
        log.info("SIGUSR1: reopened log files")
        self.keeper.signal_all(signal.SIGUSR1)

    def handle_ttin(self) -> None:
        if self.stopping.begun:
            return
        self.keeper.resize(+1)
        log.info("SIGTTIN: %d workers wanted", self.keeper.target)

    def handle_ttou(self) -> None:
        if self.stopping.begun:
            return
        if self.keeper.target <= 1:
            log.info("SIGTTOU: already down to one worker")
            return
        self.keeper.resize(-1)
        log.info("SIGTTOU: %d workers wanted", self.keeper.target)

    # --- workers ----------------------------------------------------------------------------

    def _fork(self, slot_index: int, max_requests: int) -> int:
        """Start a worker in ``slot_index`` of the scoreboard; returns its pid."""
        assert self.spawner is not None
        return self.spawner.fork(slot_index, max_requests)

    def _hopeless(self) -> None:
        self.stopping.begin("stopping: the app cannot be loaded", graceful=False, code=3)

    def _say_ready(self, why: str | None = None) -> None:
        """Tell systemd the pool serves (once its first worker is ready, once a reload is
        over), once each time."""
        if self.notifier is not None and not self.said_ready:
            self.said_ready = True
            self.notifier.ready(why or self._status_line())

    def _status_line(self) -> str:
        """The pool in a few words (systemd's STATUS=)."""
        assert self.board is not None
        view = self.board.snapshot().as_dict()
        if self.stopping.begun:
            state = "stopping, "
        else:
            state = "draining, " if self.stopping.draining else ""
        if self.keeper.reloading:
            state += f"reloading to generation {self.keeper.generation}, "
        return (
            f"{state}{view['idle_workers'] + view['busy_workers']} workers "
            f"({view['busy_workers']} busy, {view['starting_workers']} starting), "
            f"{view['accepted_requests']} requests served"
        )
