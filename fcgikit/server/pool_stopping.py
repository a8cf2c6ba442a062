"""How the prefork master stops its pool, and when it stops waiting for the workers.

* After a drain (SIGTERM with ``shutdown_delay``): the master marks the pool draining in the
  scoreboard, which every worker's ping path reads (503 from then on), and the workers serve
  on for that long; then they stop gracefully. A second SIGTERM ends the wait.
* Gracefully (SIGTERM; SIGHUP with ``stop_on_hup``): each worker gets SIGTERM and finishes
  what it runs, for up to ``graceful_timeout`` seconds (and :data:`KILL_MARGIN`).
* At once (SIGINT, SIGQUIT, an app no worker can load): each worker gets SIGQUIT, and
  :data:`FAST_STOP` seconds.

Past the deadline, the workers still running are killed. A fast stop may cut a graceful one
short; a graceful one never slows a fast one down. The exit status is the first stop's.
The :class:`~fcgikit.server.arbiter.Arbiter` asks this from its loop (and its signal
handlers, which the loop runs); the acts on the workers are the
:class:`~fcgikit.server.keeper.PoolKeeper`'s.
"""

from __future__ import annotations

import logging
import os
import signal
import time

from fcgikit.server.keeper import KILL_MARGIN, PoolKeeper
from fcgikit.server.notify import SystemdNotifier
from fcgikit.server.settings import ServerSettings

log = logging.getLogger("fcgikit.arbiter")

#: how long workers get to exit after SIGQUIT (fast stop) before SIGKILL
FAST_STOP = 2.0
#: how often the loop looks again once the stragglers were killed, until they are reaped
KILLED_POLL = 0.1


class PoolStopping:
    """Where the pool is in its stop: draining, stopping (and by when), or neither.

    Args:
        keeper: the master's record of its workers, which signals and kills them.
        settings: the workers' settings (``shutdown_delay``, ``graceful_timeout``).
        notifier: what to tell systemd, when the master is a ``Type=notify`` service.
    """

    def __init__(
        self, keeper: PoolKeeper, settings: ServerSettings, notifier: SystemdNotifier | None
    ) -> None:
        self.keeper = keeper
        self.settings = settings
        self.notifier = notifier
        #: the master's exit status, once a stop began; None while it serves (or drains)
        self.exit_code: int | None = None
        #: time.monotonic() after which the workers still running are killed
        self.deadline = 0.0
        self.killed_all = False
        #: time.monotonic() at which a drain (SIGTERM with shutdown_delay) ends
        self.drain_until: float | None = None

    @property
    def begun(self) -> bool:
        """A stop began: the pool no longer grows, replaces or reloads workers."""
        return self.exit_code is not None

    @property
    def draining(self) -> bool:
        return self.drain_until is not None

    def terminate(self) -> None:
        """SIGTERM: drain first when ``shutdown_delay`` asks for it, else (or when a drain or
        a stop is under way already) stop gracefully."""
        delay = self.settings.shutdown_delay
        if self.draining or not delay or self.begun:
            self.begin("SIGTERM: stopping gracefully", graceful=True)
            return
        assert self.keeper.board is not None
        self.drain_until = time.monotonic() + delay
        self.keeper.board.set_draining()
        log.info(
            "fcgikit master %d: SIGTERM: draining: the workers serve on for %gs "
            "(--shutdown-delay) with the ping path answering 503, then stop gracefully",
            os.getpid(),
            delay,
        )
        if self.notifier is not None:
            self.notifier.stopping("draining (SIGTERM)")

    def begin(self, message: str, *, graceful: bool, code: int = 0) -> None:
        """Stop the pool, gracefully or at once; ``message`` says why (logged, and told to
        systemd); ``code`` the master's exit status."""
        if self.begun and graceful:
            return  # already stopping; a fast stop may still cut a graceful one short
        log.info("fcgikit master %d: %s", os.getpid(), message)
        if self.notifier is not None and not self.begun:
            self.notifier.stopping(message)
        self.exit_code = code if self.exit_code is None else self.exit_code
        if self.keeper.board is not None:
            self.keeper.board.set_draining()
        self.keeper.stopping = True
        if graceful:
            self.deadline = time.monotonic() + self.settings.graceful_timeout + KILL_MARGIN
            self.keeper.stop_all("stopping")
        else:
            self.deadline = time.monotonic() + FAST_STOP
            self.keeper.signal_all(signal.SIGQUIT)

    def drain_over(self, now: float) -> bool:
        """The drain has lasted ``shutdown_delay``: time for the graceful stop."""
        return self.drain_until is not None and now >= self.drain_until and not self.begun

    def wait_for_workers(self, now: float) -> float:
        """While workers still run after a stop began: kill them all once the deadline is
        past; how long the loop may wait for them before it looks again."""
        if now >= self.deadline and not self.killed_all:
            self.killed_all = True
            log.warning(
                "%d worker(s) still running after the stop deadline; killing them",
                len(self.keeper.workers),
            )
            self.keeper.kill_all("stop deadline")
        wait = KILLED_POLL if self.killed_all else self.deadline - now
        if self.notifier is not None and self.notifier.watchdog_every is not None:
            wait = min(wait, self.notifier.watchdog_every)  # it hears from us meanwhile
        return wait
