"""What wakes the prefork master's loop: a signal, or a word from a worker.

The master's signal handlers only append the signal to a queue; ``signal.set_wakeup_fd``
writes a byte to the wake pipe as well, so the loop's ``select`` returns and the loop acts on
the queue outside the handler (gunicorn's way: the :class:`~fcgikit.server.arbiter.Arbiter`
calls its ``handle_<name>``). Workers write to the notify pipe when something needs acting
on at once (ready, saturated, retiring). A forked worker leaves all of it behind
(:meth:`MasterWakeups.leave_behind`) but for the notify pipe's writing end.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
from types import FrameType

#: the signals the master handles (the arbiter's module docstring says what each asks)
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


class MasterWakeups:
    """The master's signal queue, its wake pipe and the workers' notify pipe."""

    def __init__(self) -> None:
        #: the signals received, oldest first, for the loop to act on
        self.signal_queue: list[int] = []
        self._wake_r = self._wake_w = self._notify_r = self._notify_w = -1
        self._previous_handlers: dict[int, object] = {}

    @property
    def notify_fd(self) -> int:
        """The end of the notify pipe a worker writes to."""
        return self._notify_w

    def open(self) -> None:
        """Make the pipes and handle :data:`SIGNALS` from now on."""
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._notify_r, self._notify_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        for signum in SIGNALS:
            self._previous_handlers[signum] = signal.signal(signum, self._enqueue_signal)
        signal.set_wakeup_fd(self._wake_w, warn_on_full_buffer=False)

    def restore_signals(self) -> None:
        """Give the signals back to the handlers they had before :meth:`open`."""
        signal.set_wakeup_fd(-1)
        for signum, handler in self._previous_handlers.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]

    def close(self) -> None:
        """Close the pipes (after :meth:`restore_signals` and once the workers are gone)."""
        for fd in (self._wake_r, self._wake_w, self._notify_r, self._notify_w):
            if fd >= 0:
                os.close(fd)

    def _enqueue_signal(self, signum: int, frame: FrameType | None) -> None:
        self.signal_queue.append(signum)

    def wait(self, timeout: float) -> None:
        """Until a signal or a worker wakes the master, or ``timeout`` seconds."""
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

    def leave_behind(self) -> None:
        """In a just-forked worker: the default signal handlers, no wakeup fd, and none of
        the master's pipe ends but the notify pipe's writing one."""
        signal.set_wakeup_fd(-1)
        for signum in SIGNALS:
            signal.signal(signum, signal.SIG_DFL)
        for fd in (self._wake_r, self._wake_w, self._notify_r):
            os.close(fd)
