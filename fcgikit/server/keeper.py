"""The prefork master's record of its workers, and what it does to one or to all of them.

The :class:`~fcgikit.server.arbiter.Arbiter` owns the master's process: its sockets, signals
and loop. Each round of that loop, the :class:`PoolKeeper` reaps the workers that exited
(saying why, from the pool's own bookkeeping, and backing off a crash loop), and then
:func:`~fcgikit.server.pool_round.keep_pool` takes its steps over the keeper's one shared
state (the pool's target, generation and crash streak): the policy of when to start, stop or
kill a worker is there, the record and the acts themselves here, with what the master's
signals ask (a reload, a worker more or fewer, a stop).

Starting a worker is the master's (it forks); the keeper only says which slot of the
scoreboard the new worker gets and records it.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import random
import signal
import time
from collections.abc import Callable

from fcgikit.server.children import (
    Death,
    WorkerProcess,
    death_of,
    describe_exit,
    restart_reason,
)
from fcgikit.server.pool_view import SlotView
from fcgikit.server.scoreboard import Scoreboard
from fcgikit.server.settings import PoolSettings, ServerSettings

log = logging.getLogger("fcgikit.arbiter")

#: a worker dying idle this soon after its start counts towards a crash loop (one that fails
#: to start always does, one killed while serving never)
CRASH_WINDOW = 5.0
#: the longest wait between two starts while workers keep dying
MAX_BACKOFF = 10.0
#: extra seconds a stopping worker gets beyond graceful_timeout before SIGKILL
KILL_MARGIN = 2.0

#: forks a worker for a slot of the scoreboard, with its --max-requests; returns its pid
Fork = Callable[[int, int], int]


class PoolKeeper:
    """The master's record of its workers, and the policy that keeps them as wanted.

    Args:
        settings: what every worker's server uses (``threads``, ``graceful_timeout``).
        pool: the number of workers and when to replace them.
        fork: starts a worker (see :data:`Fork`).
        say_ready: tells systemd the pool serves (with why, when not the pool's status);
            the round's steps call it too (:mod:`~fcgikit.server.pool_round`).
        hopeless: called when no worker can ever load the app: the master stops.
    """

    def __init__(
        self,
        settings: ServerSettings,
        pool: PoolSettings,
        *,
        fork: Fork,
        say_ready: Callable[[str | None], None],
        hopeless: Callable[[], None],
    ) -> None:
        self.settings = settings
        self.pool = pool
        self._fork = fork
        self.say_ready = say_ready
        self._hopeless = hopeless
        self.dynamic = pool.dynamic
        self.target = pool.workers_min
        self.minimum = pool.workers_min
        self.maximum = pool.workers_max
        self.workers: dict[int, WorkerProcess] = {}
        self.generation = 1
        self.reloading = False
        self.ever_ready = False
        self.crash_streak = 0
        #: time.monotonic() before which no worker starts (backing off a crash loop)
        self.spawn_after = 0.0
        self.saturated_logged = False
        #: the master is stopping: nobody is replaced
        self.stopping = False
        self.board: Scoreboard | None = None
        self.free_slots: list[int] = []

    def open_board(self) -> Scoreboard:
        # Room for a whole pool being replaced (reload) while the old one finishes.
        self.board = Scoreboard(2 * self.maximum + 2, self.settings.threads)
        self.free_slots = list(range(self.board.slots - 1, -1, -1))
        self.publish()
        return self.board

    def close(self) -> None:
        """Kill and reap whatever still runs, and let go of the scoreboard."""
        for worker in list(self.workers.values()):
            with contextlib.suppress(ProcessLookupError):
                os.kill(worker.pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(worker.pid, 0)
        self.workers.clear()
        if self.board is not None:
            self.board.close()

    def publish(self) -> None:
        """Tell the workers (and the status page) the pool's size."""
        assert self.board is not None
        self.board.set_pool(dynamic=self.dynamic, target=self.target, maximum=self.maximum)

    # --- what the master's signals ask ----------------------------------------------------

    def begin_reload(self) -> None:
        """A new generation replaces every worker, each old one serving until one is ready."""
        self.generation += 1
        self.reloading = True
        for worker in self.workers.values():
            if worker.retiring is None and worker.stop_sent is None:
                worker.retiring = "reload"
        self.crash_streak = 0
        self.spawn_after = 0.0

    def resize(self, by: int) -> None:
        """One worker more or fewer (SIGTTIN, SIGTTOU); never fewer than one."""
        self.target = max(1, self.target + by)
        if by > 0:
            self.maximum = max(self.maximum, self.target)
            if not self.dynamic:
                self.minimum = self.target
        else:
            self.minimum = min(self.minimum, self.target)
            if not self.dynamic:
                self.maximum = self.target
        self.publish()

    def stop_all(self, reason: str) -> None:
        for worker in self.workers.values():
            self.stop(worker, reason)

    def signal_all(self, signum: int) -> None:
        for worker in self.workers.values():
            self.signal(worker, signum)

    def kill_all(self, reason: str) -> None:
        for worker in self.workers.values():
            self.kill(worker, reason)

    # --- one worker -----------------------------------------------------------------------

    def signal(self, worker: WorkerProcess, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(worker.pid, signum)

    def stop(self, worker: WorkerProcess, reason: str) -> None:
        if worker.stop_sent is None:
            worker.stop_sent = time.monotonic()
            worker.stop_reason = reason
            if not self.stopping:
                log.info("stopping worker %d (%s)", worker.pid, reason)
            self.signal(worker, signal.SIGTERM)

    def kill(self, worker: WorkerProcess, reason: str) -> None:
        if worker.killed is None:
            worker.killed = reason
            self.signal(worker, signal.SIGKILL)

    def spawn(self) -> bool:
        """Start one worker in a free slot; False when every slot is taken."""
        assert self.board is not None
        if not self.free_slots:
            return False
        slot_index = self.free_slots.pop()
        self.board.reset(slot_index, self.generation)
        max_requests = self.pool.max_requests
        if max_requests and self.pool.max_requests_jitter:
            max_requests += random.randint(0, self.pool.max_requests_jitter)
        pid = self._fork(slot_index, max_requests)
        self.board.slot(slot_index).set_pid(pid)
        self.workers[pid] = WorkerProcess(pid, slot_index, self.generation, time.monotonic())
        return True

    # --- workers that exited --------------------------------------------------------------

    def reap(self) -> None:
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
            replaced = None if self.stopping else restart_reason(worker, code, view)
            self.board.release(worker.slot, replaced)
            self.free_slots.append(worker.slot)
            self.exited(worker, code, view)

    def exited(self, worker: WorkerProcess, code: int, view: SlotView) -> None:
        """A worker is gone (``view``: its slot as it left it): say why, and decide whether
        its replacement starts at once or the pool backs off (see :func:`death_of`)."""
        how = describe_exit(code)
        if self.stopping:
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
            self._hopeless()
            return
        if death is Death.FAILED_TO_START:
            log.error(
                "worker %d failed to start (see above); the workers already running keep serving",
                worker.pid,
            )
            if self.reloading:  # systemd must not wait for the READY of a reload that failed
                self.say_ready("reload failed: the previous workers serve on")
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
