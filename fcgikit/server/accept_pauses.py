"""When the server's loop stops accepting connections, and when it starts again.

:class:`~fcgikit.server.accept.Acceptor` (accept.py), which takes the connections, is an
:class:`AcceptPauses`: the listeners in the loop's poller (:meth:`AcceptPauses.listen`), out
of it while accepting pauses, and back. Accepting pauses in two cases:

* The server shares its listeners with other processes (a prefork pool) and has as much work
  as threads when its loop is about to wait (:meth:`AcceptPauses.pause_if_saturated`): the
  connections stay in the shared backlog for a sibling with a free thread.
* accept() fails for want of file descriptors or memory: the connection stays queued and
  the listener readable, and a level-triggered loop would retry at once, for ever. Accepting
  resumes when a connection closes, or after :data:`ACCEPT_RETRY` seconds.

After a long pause, and in a new server, the connections in the backlog may have waited long
enough for their web server to give up on them: the Acceptor marks the requests it accepts
until the backlog is found empty (``accepted_late``), and they are looked at before they run.

A base class rather than an object beside the Acceptor: compiled, the Acceptor's calls into
it cost what calls to its own methods cost.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import socket
import time
from typing import TYPE_CHECKING

from fcgikit.server.listeners import describe
from fcgikit.server.logs import RateLimitedLog
from fcgikit.server.poller import READABLE, Poller

if TYPE_CHECKING:
    from fcgikit.server.server import Server

log = logging.getLogger("fcgikit.server")

#: a server that stopped accepting for this long (seconds; all its threads were busy) looks
#: whether the web server gave up on the connections it accepts next (see accepted_late)
PAUSE_CHECKED_AFTER = 1.0
#: accept() errors that leave the connection waiting, out of file descriptors (or the kernel
#: out of memory): accepting pauses (see the module docstring, and AcceptPauses._failed)
ACCEPT_RESOURCE_ERRORS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
#: those of them that are the process's or the system's file descriptors running out
FD_ERRORS = frozenset({errno.EMFILE, errno.ENFILE})
ACCEPT_RETRY = 0.25


class AcceptPauses:
    """The listeners of a :class:`~fcgikit.server.server.Server`'s loop, and whether (and
    since when) accepting is paused. Used by the loop's thread only; never made on its own
    (an Acceptor is one)."""

    def __init__(self, server: Server, listeners: list[socket.socket], poller: Poller) -> None:
        self.server = server
        self.listeners = listeners
        self._poller = poller
        #: the listeners are shared with sibling processes (see listen)
        self.shared = server.settings.share_listeners
        #: the listeners are out of the poller (see the module docstring)
        self.paused = False
        #: when accepting was last paused (time.monotonic)
        self._paused_at = 0.0
        #: the backlog's connections may have waited long enough for their web server to give
        #: up (nginx closes one, but it stays queued with its request): in a new server (a new
        #: worker, say) and after a pause of PAUSE_CHECKED_AFTER, until an accept finds the
        #: backlog empty (or, where saturation ends every round first, after
        #: PAUSE_CHECKED_AFTER: see Acceptor.accept). What is accepted meanwhile is marked
        #: (WSGIRequest.waited) and looked at before it runs; the others never pay for it.
        self._check_backlog = True
        #: when _check_backlog was last set (time.monotonic)
        self._checked_since = time.monotonic()
        #: (family, type, proto) of each listener, as ints for _socket.socket()
        self._kinds: dict[int, tuple[int, int, int]] = {}
        #: seconds to wait before accepting again after ACCEPT_RESOURCE_ERRORS, unless a
        #: connection closes first
        self.retry_after = ACCEPT_RETRY
        #: when to try accepting again after ACCEPT_RESOURCE_ERRORS (0.0: not waiting)
        self.retry_at = 0.0
        self.metrics = server.settings.metrics  # the status page's counters, or None
        self._failures = RateLimitedLog(log, "fcgikit: accept failed: %s", level=logging.ERROR)
        self._out_of_resources = RateLimitedLog(
            log,
            "fcgikit: cannot accept connections (%s); those waiting are accepted as others "
            "close. Out of file descriptors: raise the limit (ulimit -n, or LimitNOFILE= "
            "under systemd)",
            level=logging.ERROR,
        )

    def listen(self) -> None:
        """Put the listeners in the poller, as the loop starts.

        A listener shared with sibling processes is registered exclusive: a connect wakes one
        process waiting on it, not all of them to find one connection (the others back to
        sleep, a context switch each for nothing). The one woken must take it (no other is
        told): so a server with no room is never in the wait (it pauses when full, see
        Acceptor.accept and Loop.lead)."""
        for listener in self.listeners:
            listener.setblocking(False)
            self._poller.register(listener.fileno(), READABLE, listener, exclusive=self.shared)
            kind = (int(listener.family), int(listener.type), listener.proto)
            self._kinds[listener.fileno()] = kind
            log.info("fcgikit: listening on %s", describe(listener))

    def pause(self) -> None:
        self.paused = True
        self._paused_at = time.monotonic()
        for listener in self.listeners:
            self._poller.unregister(listener.fileno())

    def pause_if_saturated(self) -> None:
        """Pause if the server still has as much work as threads as its loop is about to wait
        (a connect wakes one process waiting on a shared listener, see listen). Not before:
        a loop's thread running requests waits on nothing, and the kernel passes the
        connect on to a process that does (ep_poll_callback, fs/eventpoll.c); so requests
        ending before the loop waits (all, with one thread) cost no pause, resume and wake-up."""
        server = self.server
        if server.saturated():
            self.pause()
            if not server.saturated():  # a request that ended meanwhile did not wake us
                self._resume()

    def resume_if_room(self, *, stopping: bool) -> None:
        """Accept again after a pause (saturated, or out of descriptors), unless stopping
        or still saturated; out of descriptors, the next accept says whether it still is."""
        if self.paused and not stopping and not self.server.saturated():
            self._resume()

    def _resume(self) -> None:
        self.paused = False
        now = time.monotonic()
        if now - self._paused_at >= PAUSE_CHECKED_AFTER:
            self._check_backlog = True
            self._checked_since = now
        self.retry_at = 0.0
        for listener in self.listeners:
            with contextlib.suppress(OSError):
                self._poller.register(listener.fileno(), READABLE, listener, exclusive=self.shared)

    def _failed(self, exc: OSError) -> None:
        """Log a failed accept, rate-limited. Out of descriptors or memory, the connection
        stays queued and the listener readable: stop polling it until a connection closes
        (the wake-up in Server.channel_closed resumes) or ``retry_after`` seconds pass (the
        loop's sweep)."""
        now = time.monotonic()
        detail = exc.strerror or str(exc)
        if exc.errno not in ACCEPT_RESOURCE_ERRORS:
            self._failures.note(detail, now)
            return
        self._out_of_resources.note(detail, now)
        if self.metrics is not None:
            running_out = "fd_exhaustion" if exc.errno in FD_ERRORS else "out_of_memory"
            self.metrics.connection_refused(running_out)
        self.pause()
        self.retry_at = now + self.retry_after
        self.server.loop.sweep_no_later_than(self.retry_at)
