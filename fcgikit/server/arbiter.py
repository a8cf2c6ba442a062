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

With ``shutdown_delay``, TERM drains first: the master marks the pool draining in the
scoreboard, which every worker's ping path reads (503 from then on), and the workers serve on
for that long before they get their TERM; a second TERM ends the wait. Under systemd
(``NOTIFY_SOCKET``) the master is the service: it says READY, RELOADING, STOPPING, its STATUS
and the watchdog's WATCHDOG from this loop (:mod:`~fcgikit.server.notify`).

This module is the master alone, and reads best whole: each round of its loop is a few small
steps (:meth:`Arbiter._manage`) over one shared state, the pool's target, generation and
crash streak. What is not the loop lives beside it: the settings
(:mod:`fcgikit.server.settings`), the workers' user (:mod:`~fcgikit.server.credentials`),
the record of each worker and why it died (:mod:`~fcgikit.server.children`), the worker's
own side (:mod:`~fcgikit.server.worker`).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import random
import select
import signal
import socket
import time
from collections.abc import Callable, Sequence
from types import FrameType
from typing import TYPE_CHECKING

from fcgikit.addresses import UnixAddress
from fcgikit.errors import ConfigError
from fcgikit.server.apploader import load_app
from fcgikit.server.children import (
    Death,
    WorkerProcess,
    death_of,
    describe_exit,
    restart_reason,
)
from fcgikit.server.credentials import Credentials
from fcgikit.server.listeners import (
    describe,
    inherited_listener,
    open_listener,
    passed_listeners,
)
from fcgikit.server.logs import reopen_log_files
from fcgikit.server.notify import SystemdNotifier
from fcgikit.server.scoreboard import Scoreboard, SlotView, WorkerState
from fcgikit.server.settings import PoolSettings, ServerSettings
from fcgikit.server.status import StatusPage
from fcgikit.server.worker import EXIT_BOOT_ERROR, run_worker

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

log = logging.getLogger("fcgikit.arbiter")

#: a worker dying idle this soon after its start counts towards a crash loop (one that fails
#: to start always does, one killed while serving never)
CRASH_WINDOW = 5.0
#: the longest wait between two starts while workers keep dying
MAX_BACKOFF = 10.0
#: extra seconds a stopping worker gets beyond graceful_timeout before SIGKILL
KILL_MARGIN = 2.0
#: how long workers get to exit after SIGQUIT (fast stop) before SIGKILL
FAST_STOP = 2.0


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

    SIGNALS = (
        signal.SIGHUP,
        signal.SIGINT,
        signal.SIGQUIT,
        signal.SIGTERM,
        signal.SIGTTIN,
        signal.SIGTTOU,
        signal.SIGUSR1,
        signal.SIGCHLD,
    )

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
        self.dynamic = pool.dynamic
        self.target = pool.workers_min
        self.minimum = pool.workers_min
        self.maximum = pool.workers_max
        self.workers: dict[int, WorkerProcess] = {}
        self.generation = 1
        self.reloading = False
        self.ever_ready = False
        self.crash_streak = 0
        self.spawn_after = 0.0
        self.saturated_logged = False
        self.exit_code: int | None = None
        self.stop_deadline = 0.0
        self.killed_all = False
        self.master_pid = 0
        self.signal_queue: list[int] = []
        self.board: Scoreboard | None = None
        self.free_slots: list[int] = []
        self._wake_r = self._wake_w = self._notify_r = self._notify_w = -1
        self.credentials: Credentials | None = None
        self._previous_handlers: dict[int, object] = {}
        self.notifier = notifier
        #: time.monotonic() at which a drain (SIGTERM with shutdown_delay) ends
        self.drain_until: float | None = None
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
        for address in self.settings.binds:
            self.listeners.append(
                open_listener(
                    address,
                    umask=self.settings.umask,
                    mode=self.settings.socket_mode,
                    owner=self.settings.socket_owner,
                )
            )
            if isinstance(address, UnixAddress):
                self.created_paths.append(address.path)
        if not self.listeners:
            listener = inherited_listener(0)
            if listener is None:
                raise ConfigError(
                    "nothing to listen on: pass --bind unix:/run/app.sock (or 127.0.0.1:9000), "
                    "start under systemd socket activation, or from a FastCGI spawner (fd 0)"
                )
            self.listeners.append(listener)

    def _write_pidfile(self) -> None:
        path = self.pool.pidfile
        if path is None:
            return
        temp = f"{path}.{os.getpid()}.tmp"
        try:
            with open(temp, "w") as file:
                file.write(f"{os.getpid()}\n")
            os.replace(temp, path)
        except OSError as exc:
            raise ConfigError(f"cannot write the pid file {path}: {exc.strerror}") from exc

    def _remove_pidfile(self) -> None:
        path = self.pool.pidfile
        if path is None:
            return
        with contextlib.suppress(OSError, ValueError), open(path) as file:
            if int(file.read().strip()) == os.getpid():
                os.unlink(path)

    def _setup(self) -> None:
        self.master_pid = os.getpid()
        self.credentials = Credentials.resolve(self.pool.user, self.pool.group)
        if self.app is None and self.pool.preload:
            assert self.app_spec is not None
            self.app = load_app(self.app_spec)
        self._open_listeners()
        self._write_pidfile()
        # Room for a whole pool being replaced (reload) while the old one finishes.
        self.board = Scoreboard(2 * self.maximum + 2, self.settings.threads)
        self.free_slots = list(range(self.board.slots - 1, -1, -1))
        self._publish_pool()
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._notify_r, self._notify_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        for signum in self.SIGNALS:
            self._previous_handlers[signum] = signal.signal(signum, self._enqueue_signal)
        signal.set_wakeup_fd(self._wake_w, warn_on_full_buffer=False)

    def _teardown(self) -> None:
        signal.set_wakeup_fd(-1)
        for signum, handler in self._previous_handlers.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]
        for worker in list(self.workers.values()):
            with contextlib.suppress(ProcessLookupError):
                os.kill(worker.pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(worker.pid, 0)
        self.workers.clear()
        for fd in (self._wake_r, self._wake_w, self._notify_r, self._notify_w):
            if fd >= 0:
                os.close(fd)
        for listener in self.listeners:
            listener.close()
        for path in self.created_paths:
            with contextlib.suppress(OSError):
                os.unlink(path)
        self._remove_pidfile()
        if self.board is not None:
            self.board.close()

    def _publish_pool(self) -> None:
        assert self.board is not None
        self.board.set_pool(dynamic=self.dynamic, target=self.target, maximum=self.maximum)

    # --- the loop --------------------------------------------------------------------------

    def _enqueue_signal(self, signum: int, frame: FrameType | None) -> None:
        self.signal_queue.append(signum)

    def run(self) -> int:
        """Serve until stopped. Returns the exit status: 0 after a stop by signal, 3 when
        the workers cannot load the app at all."""
        self._setup()
        try:
            where = ", ".join(describe(listener) for listener in self.listeners)
            mode = (
                f"dynamic pool of {self.minimum}..{self.maximum} workers"
                if self.dynamic
                else f"static pool of {self.target} workers"
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
        while True:
            self._dispatch_signals()
            self._reap()
            if self.notifier is not None:
                self.notifier.tick(time.monotonic(), self._status_line)
            drained = self.drain_until is not None and time.monotonic() >= self.drain_until
            if drained and self.exit_code is None:
                self._begin_stop("drained; stopping gracefully", graceful=True)
            if self.exit_code is not None:
                if not self.workers:
                    log.info("fcgikit master %d: stopped", self.master_pid)
                    return self.exit_code
                if time.monotonic() >= self.stop_deadline and not self.killed_all:
                    self.killed_all = True
                    log.warning(
                        "%d worker(s) still running after the stop deadline; killing them",
                        len(self.workers),
                    )
                    for worker in self.workers.values():
                        self._kill(worker, "stop deadline")
                wait = 0.1 if self.killed_all else self.stop_deadline - time.monotonic()
                if self.notifier is not None and self.notifier.watchdog_every is not None:
                    wait = min(wait, self.notifier.watchdog_every)  # it hears from us meanwhile
                self._wait(wait)
                continue
            self._manage()
            self._wait(self._tick())

    def _tick(self) -> float:
        tick = 1.0
        if self.pool.timeout is not None:
            tick = min(tick, self.pool.timeout / 4)
        if self.dynamic:
            tick = min(tick, self.pool.idle_timeout / 4)
        if self.spawn_after > time.monotonic():
            tick = min(tick, self.spawn_after - time.monotonic())
        if self.drain_until is not None:
            tick = min(tick, self.drain_until - time.monotonic())
        if self.notifier is not None and self.notifier.watchdog_every is not None:
            tick = min(tick, self.notifier.watchdog_every)
        return max(0.02, tick)

    def _wait(self, timeout: float) -> None:
        try:
            readable, _, _ = select.select(
                [self._wake_r, self._notify_r], [], [], max(0.0, timeout)
            )
        except InterruptedError:
            return
        for fd in readable:
            with contextlib.suppress(BlockingIOError):
                while os.read(fd, 4096):
                    pass

    def _dispatch_signals(self) -> None:
        while self.signal_queue:
            signum = self.signal_queue.pop(0)
            name = signal.Signals(signum).name[3:].lower()
            handler: Callable[[], None] | None = getattr(self, f"handle_{name}", None)
            if handler is not None:
                handler()

    # --- signal handlers (run by the loop, never inside the signal handler) -----------------

    def handle_chld(self) -> None:
        self._reap()

    def handle_term(self) -> None:
        delay = self.settings.shutdown_delay
        if self.drain_until is not None or not delay or self.exit_code is not None:
            self._begin_stop("SIGTERM: stopping gracefully", graceful=True)
            return
        assert self.board is not None
        self.drain_until = time.monotonic() + delay
        self.board.set_draining()
        log.info(
            "fcgikit master %d: SIGTERM: draining: the workers serve on for %gs "
            "(--shutdown-delay) with the ping path answering 503, then stop gracefully",
            self.master_pid,
            delay,
        )
        if self.notifier is not None:
            self.notifier.stopping("draining (SIGTERM)")

    def handle_int(self) -> None:
        self._begin_stop("SIGINT: stopping now", graceful=False)

    def handle_quit(self) -> None:
        self._begin_stop("SIGQUIT: stopping now", graceful=False)

    def handle_hup(self) -> None:
        if self.exit_code is not None:
            return
        if self.drain_until is not None:
            log.info("SIGHUP ignored: the pool is draining to stop (SIGTERM)")
            return
        if self.stop_on_hup:
            self.restart_requested = True
            self._begin_stop("SIGHUP: stopping gracefully to be restarted", graceful=True)
            return
        self.generation += 1
        self.reloading = True
        if self.app is not None:
            log.warning(
                "SIGHUP: restarting the workers; the app was loaded in the master (--preload "
                "or an app object), so its code is not re-imported: restart the master for "
                "new code"
            )
        log.info(
            "SIGHUP: reloading: starting %d new workers (generation %d); the old ones stop "
            "as the new ones become ready",
            self.target,
            self.generation,
        )
        for worker in self.workers.values():
            if worker.retiring is None and worker.stop_sent is None:
                worker.retiring = "reload"
        self.crash_streak = 0
        self.spawn_after = 0.0
        self.said_ready = False
        if self.notifier is not None:
            self.notifier.reloading()

    def handle_usr1(self) -> None:
        reopen_log_files()
        log.info("SIGUSR1: reopened log files")
        for worker in self.workers.values():
            self._signal(worker, signal.SIGUSR1)

    def handle_ttin(self) -> None:
        if self.exit_code is not None:
            return
        self.target += 1
        self.maximum = max(self.maximum, self.target)
        if not self.dynamic:
            self.minimum = self.target
        self._publish_pool()
        log.info("SIGTTIN: %d workers wanted", self.target)

    def handle_ttou(self) -> None:
        if self.exit_code is not None:
            return
        if self.target <= 1:
            log.info("SIGTTOU: already down to one worker")
            return
        self.target -= 1
        self.minimum = min(self.minimum, self.target)
        if not self.dynamic:
            self.maximum = self.target
        self._publish_pool()
        log.info("SIGTTOU: %d workers wanted", self.target)

    def _begin_stop(self, message: str, *, graceful: bool, code: int = 0) -> None:
        if self.exit_code is not None and graceful:
            return  # already stopping; a fast stop may still cut a graceful one short
        log.info("fcgikit master %d: %s", self.master_pid, message)
        if self.notifier is not None and self.exit_code is None:
            self.notifier.stopping(message)
        self.exit_code = code if self.exit_code is None else self.exit_code
        if self.board is not None:
            self.board.set_draining()
        if graceful:
            self.stop_deadline = time.monotonic() + self.settings.graceful_timeout + KILL_MARGIN
            for worker in self.workers.values():
                self._stop(worker, "stopping")
        else:
            self.stop_deadline = time.monotonic() + FAST_STOP
            for worker in self.workers.values():
                self._signal(worker, signal.SIGQUIT)

    # --- workers ---------------------------------------------------------------------------

    def _signal(self, worker: WorkerProcess, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(worker.pid, signum)

    def _stop(self, worker: WorkerProcess, reason: str) -> None:
        if worker.stop_sent is None:
            worker.stop_sent = time.monotonic()
            worker.stop_reason = reason
            if self.exit_code is None:
                log.info("stopping worker %d (%s)", worker.pid, reason)
            self._signal(worker, signal.SIGTERM)

    def _kill(self, worker: WorkerProcess, reason: str) -> None:
        if worker.killed is None:
            worker.killed = reason
            self._signal(worker, signal.SIGKILL)

    def _spawn(self) -> bool:
        assert self.board is not None
        if not self.free_slots:
            return False
        slot_index = self.free_slots.pop()
        self.board.reset(slot_index, self.generation)
        max_requests = self.pool.max_requests
        if max_requests and self.pool.max_requests_jitter:
            max_requests += random.randint(0, self.pool.max_requests_jitter)
        # Signals stay blocked from here until the worker has installed its own handlers
        # (run_worker unblocks them): a SIGTERM the master sends a just-forked worker would
        # otherwise reach the master's inherited handler, be queued in the child's copy of
        # the master's queue and be lost, and the worker would serve on after a stop.
        unblocked = signal.pthread_sigmask(signal.SIG_BLOCK, self.SIGNALS)
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
        self.board.slot(slot_index).set_pid(pid)
        self.workers[pid] = WorkerProcess(pid, slot_index, self.generation, time.monotonic())
        return True

    def _worker_main(self, slot_index: int, max_requests: int) -> int:
        assert self.board is not None
        signal.set_wakeup_fd(-1)
        for signum in self.SIGNALS:
            signal.signal(signum, signal.SIG_DFL)
        for fd in (self._wake_r, self._wake_w, self._notify_r):
            os.close(fd)
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
            slow_log=self.pool.slow_log,
            status_page=status_page,
            notify_fd=self._notify_w,
            master_pid=self.master_pid,
            report_saturation=self.dynamic,
        )

    def _reap(self) -> None:
        assert self.board is not None
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            except OSError as exc:
                if exc.errno == errno.EINTR:
                    continue
                raise
            if pid == 0:
                return
            worker = self.workers.pop(pid, None)
            if worker is None:
                continue
            view = self.board.read(worker.slot)
            code = os.waitstatus_to_exitcode(status)
            replaced = None if self.exit_code is not None else restart_reason(worker, code, view)
            self.board.release(worker.slot, replaced)
            self.free_slots.append(worker.slot)
            self._exited(worker, code, view)

    def _exited(self, worker: WorkerProcess, code: int, view: SlotView) -> None:
        """A worker is gone (``view``: its slot as it left it): say why, and decide whether
        its replacement starts at once or the pool backs off (see :func:`death_of`)."""
        how = describe_exit(code)
        if self.exit_code is not None:
            log.info("worker %d exited (%s)", worker.pid, how)
            return
        if worker.killed is not None:
            log.info("worker %d killed (%s); starting a replacement", worker.pid, worker.killed)
            return
        if worker.stop_sent is not None and code in (0, -signal.SIGTERM):
            log.info("worker %d exited (%s)", worker.pid, worker.stop_reason)
            return
        death = death_of(worker, view)
        if death is Death.FAILED_TO_START and not self.ever_ready:
            log.error(
                "worker %d failed to start and no worker ever could; stopping (fix the error "
                "above and start again)",
                worker.pid,
            )
            self._begin_stop("stopping: the app cannot be loaded", graceful=False, code=3)
            return
        if death is Death.FAILED_TO_START:
            log.error(
                "worker %d failed to start (see above); the workers already running keep serving",
                worker.pid,
            )
            if self.reloading:  # systemd must not wait for the READY of a reload that failed
                self._say_ready("reload failed: the previous workers serve on")
        elif death is Death.BEFORE_READY:
            log.error("worker %d failed to start: %s before it was ready", worker.pid, how)
        else:
            self.ever_ready = True  # it loaded the app, whether or not we saw it ready
            running = ", ".join(request.label for request in view.running)
            log.error(
                "worker %d %s %s%s; starting a replacement",
                worker.pid,
                how,
                death.value,
                f" {running}" if running else "",
            )
        self._count_crash(death, time.monotonic() - worker.spawned)

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
        if self.exit_code is not None:
            state = "stopping, "
        else:
            state = "draining, " if self.drain_until is not None else ""
        if self.reloading:
            state += f"reloading to generation {self.generation}, "
        return (
            f"{state}{view['idle_workers'] + view['busy_workers']} workers "
            f"({view['busy_workers']} busy, {view['starting_workers']} starting), "
            f"{view['accepted_requests']} requests served"
        )

    def _count_crash(self, death: Death, lived: float) -> None:
        """Back off while workers keep dying at or soon after their start with no request to
        blame: restarting those at once would be a fork loop. A request that kills its
        worker is the request's fault, and its next one must not wait (see death_of)."""
        if death is Death.WHILE_SERVING:
            return
        if death in (Death.FAILED_TO_START, Death.BEFORE_READY) or lived < CRASH_WINDOW:
            self.crash_streak += 1
        else:
            self.crash_streak = 0
        if self.crash_streak >= 2:
            delay = min(MAX_BACKOFF, 0.5 * 2 ** (self.crash_streak - 2))
            self.spawn_after = time.monotonic() + delay
            log.warning(
                "workers keep dying at or soon after their start (%d in a row); backing off: "
                "next start in %.1fs",
                self.crash_streak,
                delay,
            )

    def _manage(self) -> None:
        """One round of keeping the pool as wanted, in steps, each reading the pool afresh."""
        assert self.board is not None
        now = time.monotonic()
        views = {pid: self.board.read(w.slot) for pid, w in self.workers.items()}
        self._note_ready(views, now)
        if self.pool.timeout is not None:
            self._check_timeouts(views, now)
        if self.dynamic and not self.reloading:
            self._scale(self._active(), views, now)
        self._trim_to_target()
        if now >= self.spawn_after:
            self._spawn_missing()
        self._retire_replaced()
        self._kill_overdue(now)

    def _active(self) -> list[WorkerProcess]:
        """The workers that count towards the target: neither retiring nor stopping."""
        return [w for w in self.workers.values() if w.retiring is None and w.stop_sent is None]

    def _note_ready(self, views: dict[int, SlotView], now: float) -> None:
        """Workers that became ready, and those that asked to retire (``--max-requests``,
        ``sys.exit()`` in a request), as their slots say."""
        for worker in self.workers.values():
            view = views[worker.pid]
            if not worker.ready and view.state in (WorkerState.READY, WorkerState.RETIRING):
                worker.ready = True
                worker.ready_at = now
                self.ever_ready = True
                log.info("worker %d ready (generation %d)", worker.pid, worker.generation)
                if not self.reloading:
                    self._say_ready()
            if view.state == WorkerState.RETIRING and worker.retiring is None:
                # its own log line said why: --max-requests, or the app's sys.exit()
                worker.retiring = "retiring"

    def _trim_to_target(self) -> None:
        """Too many (SIGTTOU): keep the oldest ready ones, stop the newest."""
        active = sorted(self._active(), key=lambda w: (not w.ready, w.spawned))
        for worker in active[self.target :]:
            self._stop(worker, "fewer workers wanted")

    def _spawn_missing(self) -> None:
        """Start workers up to the target; one at a time while backing off."""
        for _ in range(self.target - len(self._active())):
            if not self._spawn() or self.crash_streak >= 2:
                break

    def _retire_replaced(self) -> None:
        """Old workers (reload, retiring) stop one for each new one that is ready,
        never before; a reload is complete when no old generation is left."""
        ready = sum(1 for w in self._active() if w.ready)
        waiting = sorted(
            (w for w in self.workers.values() if w.retiring and w.stop_sent is None),
            key=lambda w: w.spawned,
        )
        for worker in waiting[: max(0, ready + len(waiting) - self.target)]:
            self._stop(worker, "replaced" if worker.retiring == "reload" else "retiring")
        if self.reloading and not any(
            w.generation < self.generation for w in self.workers.values()
        ):
            self.reloading = False
            log.info("reload complete: %d workers of generation %d", ready, self.generation)
            self._say_ready()

    def _kill_overdue(self, now: float) -> None:
        """A stopping worker gets graceful_timeout (and a margin) to finish, then SIGKILL."""
        limit = self.settings.graceful_timeout + KILL_MARGIN
        for worker in self.workers.values():
            if worker.stop_sent is not None and now - worker.stop_sent > limit:
                log.warning("worker %d did not stop within %gs; killing it", worker.pid, limit)
                self._kill(worker, "did not stop in time")

    def _check_timeouts(self, views: dict[int, SlotView], now: float) -> None:
        assert self.pool.timeout is not None
        timeout = self.pool.timeout
        for worker in self.workers.values():
            if worker.killed is not None:
                continue
            view = views[worker.pid]
            late = [r for r in view.running if now - r.started > timeout]
            if not late:
                continue
            for request in late:
                key = (request.label, request.started)
                if key not in worker.timed_out:
                    worker.timed_out.add(key)
                    log.error(
                        "request %s on worker %d exceeded --timeout %gs; killing the worker",
                        request.label,
                        worker.pid,
                        timeout,
                    )
            if len(view.running) <= len(late):
                self._kill(worker, "--timeout")
            elif worker.stop_sent is None:
                log.info(
                    "worker %d finishes its %d other request(s) first",
                    worker.pid,
                    len(view.running) - len(late),
                )
                self._stop(worker, "--timeout")

    def _scale(self, active: list[WorkerProcess], views: dict[int, SlotView], now: float) -> None:
        assert self.board is not None
        threads = self.settings.threads
        details = views
        booting = any(not w.ready for w in active)
        saturated = (
            bool(active)
            and not booting
            and len(active) >= self.target
            and all(details[w.pid].busy >= threads for w in active)
        )
        if saturated:
            if self.target < self.maximum:
                self.target += 1
                self._publish_pool()
                log.info(
                    "all %d workers busy; starting another (dynamic pool, at most %d)",
                    len(active),
                    self.maximum,
                )
            elif not self.saturated_logged:
                self.saturated_logged = True
                self.board.count_max_reached()
                log.warning(
                    "all %d workers busy and the pool is at its maximum (--workers %d:%d); "
                    "requests wait for a free thread",
                    len(active),
                    self.minimum,
                    self.maximum,
                )
            return
        self.saturated_logged = False
        if self.target <= self.minimum:
            return
        idle = [
            w
            for w in active
            if w.ready
            and details[w.pid].busy == 0
            and now - max(details[w.pid].last_active, w.ready_at) >= self.pool.idle_timeout
        ]
        if idle:
            worker = max(idle, key=lambda w: w.spawned)
            self.target -= 1
            self._publish_pool()
            self._stop(worker, f"idle for {self.pool.idle_timeout:g}s")
