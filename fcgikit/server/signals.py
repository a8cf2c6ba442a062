"""What each signal asks of a :class:`~fcgikit.server.server.Server` that serves on its own.

Handled only when serving from the main thread (the same meanings as the prefork master's,
:mod:`fcgikit.server.arbiter`):

* SIGTERM stops gracefully: the loop stops accepting, closes idle connections, lets running
  requests finish for ``graceful_timeout`` seconds and returns. With ``shutdown_delay`` it
  first serves on for that long, the ping path answering 503 (a drain); a second SIGTERM
  ends the wait.
* SIGHUP does the same, then ``serve`` returns True: a flup-style ``.fcgi`` loop re-executes
  the script, ``fcgikit serve`` re-executes itself. With ``keep_listeners_on_reload`` (what
  ``fcgikit serve`` asks for) the listening sockets stay open and their files in place, for
  the new process to inherit: connections wait in the backlog, none is refused.
* SIGINT and SIGQUIT stop at once: one log line with the number of requests cut, the
  connections closed, the socket files removed.
* SIGUSR1 reopens the log files; SIGTTIN and SIGTTOU, the pool's, are logged and ignored.

The handlers only ask for the stop (or queue the signal) and wake the loop, which acts on
them.
"""

from __future__ import annotations

import logging
from types import FrameType
from typing import TYPE_CHECKING

from fcgikit.server.logs import reopen_log_files

if TYPE_CHECKING:
    import signal

    from fcgikit.server.server import Server
else:
    # `signal`'s C half: the same functions and numbers. `signal` itself makes enums of them
    # at import, which a serving process does not need and would pay for at every start.
    import _signal as signal

log = logging.getLogger("fcgikit.server")

#: the key under which install() keeps the previous wakeup fd
WAKEUP_FD = -1
#: the names of the signals handled here, for the log
NAMES: dict[int, str] = {
    signal.SIGTERM: "SIGTERM",
    signal.SIGINT: "SIGINT",
    signal.SIGQUIT: "SIGQUIT",
    signal.SIGHUP: "SIGHUP",
    signal.SIGUSR1: "SIGUSR1",
    signal.SIGTTIN: "SIGTTIN",
    signal.SIGTTOU: "SIGTTOU",
}


def install(server: Server) -> dict[int, object]:
    """Handle the signals above for ``server``; what was there before, for restore()."""

    def on_stop(signum: int, frame: FrameType | None) -> None:
        reason = f"received {NAMES[signum]}"
        if signum == signal.SIGHUP:
            server.stop(reason, reload=True)
        elif signum == signal.SIGTERM:
            server.stop(reason, drain=True)
        else:
            server.stop(reason, at_once=True)

    def on_other(signum: int, frame: FrameType | None) -> None:
        server.queue_signal(signum)

    previous: dict[int, object] = {}
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGHUP):
        previous[signum] = signal.signal(signum, on_stop)
    for signum in (signal.SIGUSR1, signal.SIGTTIN, signal.SIGTTOU):
        previous[signum] = signal.signal(signum, on_other)
    # A signal delivered while another thread runs must still wake the loop.
    previous[WAKEUP_FD] = signal.set_wakeup_fd(server.wakeup_fd(), warn_on_full_buffer=False)
    return previous


def restore(previous: dict[int, object]) -> None:
    for signum, handler in previous.items():
        if signum == WAKEUP_FD:
            signal.set_wakeup_fd(handler)  # type: ignore[arg-type]
        else:
            signal.signal(signum, handler)  # type: ignore[arg-type]


def act_on(queued: list[int]) -> None:
    """The queued signals, on the loop's thread (see install)."""
    while queued:
        signum = queued.pop(0)
        if signum == signal.SIGUSR1:
            reopen_log_files()
            log.info("fcgikit: SIGUSR1: reopened log files")
        else:
            log.warning(
                "fcgikit: %s ignored: it adds or removes a worker of a pool (--workers), "
                "and this server is a single process",
                NAMES[signum],
            )
