"""How a :class:`~fcgikit.server.server.Server` stops, and how a reload hands over.

* Gracefully (SIGTERM, :meth:`Server.stop <fcgikit.server.server.Server.stop>`): the
  listeners close, idle connections close, each busy one closes once quiet, and running
  requests have ``graceful_timeout`` seconds to finish.
* After a drain (SIGTERM with ``shutdown_delay``): the server first goes on accepting and
  serving for ``shutdown_delay`` seconds while its ping path answers 503, so that load
  balancers take it out of rotation before it stops accepting; then it stops gracefully.
* At once (SIGINT, SIGQUIT): one log line with the number of requests cut, the connections
  shut down under them.
* For a reload (SIGHUP) that keeps the listeners (``keep_listeners_on_reload``, what
  ``fcgikit serve`` asks for): the listeners stay open and their files in place, and each
  connection is set aside as soon as no request is on it (:attr:`Server.parked
  <fcgikit.server.server.Server.parked>`), for the re-executed process to go on serving
  (:func:`adopt_connections`). Connections wait in the backlog meanwhile; none is refused.

:meth:`Stopping.ask` may be called from any thread and from signal handlers; the rest runs on
the loop's thread.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

from fcgikit.server.channel import Channel
from fcgikit.server.listeners import peer_label
from fcgikit.server.poller import READABLE

if TYPE_CHECKING:
    from fcgikit.server.server import Server

log = logging.getLogger("fcgikit.server")

#: a draining server closes a keep-conn connection that received nothing for this long
#: (counted from the later of its last request and the start of the drain)
DRAIN_QUIET = 1.0


class Stopping:
    """Whether, why and how a server stops, and the steps of its stopping rounds."""

    def __init__(self, server: Server, *, keep_listeners_on_reload: bool) -> None:
        self.server = server
        self.keep_listeners_on_reload = keep_listeners_on_reload
        #: why the server stops; None while it serves on
        self.reason: str | None = None
        #: why the server stops at once (SIGINT, SIGQUIT), cutting running requests
        self.cut_reason: str | None = None
        #: the stop is a reload: ``serve`` returns True
        self.reload = False
        #: the loop acts on the stop: the listeners are out of its poller
        self.begun = False
        #: the loop ends at its next round, whatever still runs
        self.stop_now = False
        #: setting the connections aside, for the next process (see round)
        self._parking = False
        self._deadline = 0.0
        #: time.monotonic() before which the stop does not begin (a drain)
        self._begin_at = 0.0
        self._delay = 0.0
        #: what was announced (logged, told to systemd): "reload" or "stop"
        self._announced: str | None = None

    def ask(self, reason: str, *, reload: bool, at_once: bool, delay: float = 0.0) -> None:
        """See :meth:`Server.stop <fcgikit.server.server.Server.stop>`."""
        if reload and self.reason is not None and not self.reload:
            return
        if self.reason is None or self.reload:
            self._delay = delay
            self._begin_at = time.monotonic() + delay
        else:
            self._begin_at = 0.0  # asked again while a drain waits: it waits no more
        # reload first: the loop, on another thread, acts once it sees a reason
        self.reload = reload
        self.reason = reason
        if at_once:
            self.cut_reason = reason
            self.stop_now = True

    def draining(self) -> bool:
        """Whether the ping path answers 503: a stop (not a reload) was asked for."""
        return self.reason is not None and not self.reload

    def begin_when_due(self, now: float) -> None:
        """Each round of the loop from the stop's asking until it begins: announce it once,
        and begin it once its drain (if any) is over; till then the loop serves on, its next
        sweep no later than the end of the drain."""
        self._announce(now)
        if now < self._begin_at:
            self.server.loop.sweep_no_later_than(self._begin_at)
            return
        self.begin()

    def _announce(self, now: float) -> None:
        """Say once that a reload or a stop is under way (a stop may overtake a reload)."""
        kind = "reload" if self.reload else "stop"
        if self._announced == kind:
            return
        self._announced = kind
        server = self.server
        if now < self._begin_at:
            log.info(
                "fcgikit: %s; serving on for %gs (--shutdown-delay) with the ping path "
                "answering 503, then stopping gracefully",
                self.reason,
                self._delay,
            )
        notifier = server.notifier
        if notifier is None:
            return
        if self.reload:
            notifier.reloading()
        else:
            notifier.stopping(f"stopping: {self.reason}")

    def hands_over_listeners(self) -> bool:
        """Whether the listening sockets outlive this server (a reload that keeps them)."""
        return self.reload and self.keep_listeners_on_reload

    def begin(self) -> None:
        """The loop's first round after the stop was asked for."""
        server = self.server
        self.begun = True
        self._deadline = time.monotonic() + server.settings.graceful_timeout
        log.info("fcgikit: %s; finishing running requests", self.reason)
        hand_over = self._parking = self.hands_over_listeners()
        server.acceptor.promote()  # what drains and hands over is a Channel
        server.acceptor.stop_listening(close=not hand_over)
        if hand_over:
            return  # the connections go on, each set aside between two requests
        for channel in server.snapshot_channels():
            drain(channel)

    def round(self, now: float) -> float | None:
        """The part of a round of the loop that stopping gracefully adds: how long the
        round may wait, or None once the server is done (no connection left, or the grace
        period over). A reload that hands the listeners over hands the connections idle
        between two requests over too, as they are; a stop closes them once quiet."""
        server = self.server
        draining = server.snapshot_channels()
        if self.hands_over_listeners():
            for channel in draining:
                self._park_if_between_requests(channel)
        else:
            if self._parking:  # a stop came after the reload began: no hand-over after all
                self._parking = False
                self._announce(now)
                for listener in server.listeners:
                    listener.close()
                for channel in draining:
                    drain(channel)
            for quiet in draining:
                close_if_quiet(quiet, now)
        remaining = server.connection_count()
        if remaining == 0:
            return None
        left = self._deadline - time.monotonic()
        if left <= 0:
            log.warning(
                "fcgikit: %d connection(s) still busy after %gs; closing them",
                remaining,
                server.settings.graceful_timeout,
            )
            return None
        return min(left, DRAIN_QUIET / 2)

    def _park_if_between_requests(self, channel: Channel) -> None:
        """Set ``channel`` aside for the next process if no request is on it: the loop
        forgets it, and nothing more is read from it here (a request the web server sends
        meanwhile waits in the socket for the next process)."""
        if between_requests(channel):
            server = self.server
            server.unregister(channel)
            server.forget(channel)
            server.parked.append(channel)

    def cut_connections(self) -> None:
        """As ``serve`` returns: close the listeners (unless handed over) and every
        connection, under the requests still running if the grace period ran out."""
        server = self.server
        if not self.hands_over_listeners():
            for listener in server.listeners:
                listener.close()
        channels, direct = server.snapshot_connections()
        if self.cut_reason is not None:
            log.warning(
                "fcgikit: %s; stopping at once: %d running request(s) cut off",
                self.cut_reason,
                len(direct) + sum(len(channel.requests) for channel in channels),
            )
        for running in direct:
            running.stop_now()
        for channel in channels:
            channel.on_peer_closed("the server is stopping")
            if channel.requests:
                # A worker may still write; close the socket under it only because the
                # process is about to exit, after the grace period ran out.
                with contextlib.suppress(OSError):
                    channel.sock.shutdown(socket.SHUT_RDWR)

    def leave_no_trace(self) -> None:
        """Unless handing over: close the connections set aside for a reload that a stop
        overtook, and remove the socket files this server created."""
        server = self.server
        if self.hands_over_listeners():
            return
        for parked in server.parked:
            parked.close()
        for path in server.created_paths:
            with contextlib.suppress(OSError):
                os.unlink(path)


def adopt_connections(server: Server, fds: Iterable[int]) -> None:
    """Serve the connections the previous process handed over (see Stopping.round)."""
    for fd in fds:
        sock = socket.socket(fileno=fd)
        try:
            sock.setblocking(False)
            peer = sock.getpeername()
        except OSError:  # the web server closed it meanwhile
            sock.close()
            continue
        channel = Channel(server, sock, peer_label(peer))
        channel.requests_received = 1  # an idle keep-conn connection, not a new one
        server.watch_channel(channel, READABLE)


# --- what stopping does to a connection (under its state lock, as its own methods do) -----


def drain(channel: Channel) -> None:
    """The server is stopping: ``channel`` closes once its running requests end.

    An idle keep-conn connection is not closed here: the web server may already have
    picked it for its next request (nginx takes the most recently used one from its
    upstream keepalive cache), and a request that meets our FIN is lost: nginx answers
    502 and does not retry a POST. It closes after its next request instead, our FIN
    right behind that END_REQUEST, or once it stayed quiet for DRAIN_QUIET seconds
    (:func:`close_if_quiet`).
    """
    with channel.state_lock:
        if not channel.draining:
            channel.draining = True
            channel.drain_started = time.monotonic()


def close_if_quiet(channel: Channel, now: float) -> None:
    """While draining: linger-close ``channel`` if idle and it received nothing lately."""
    with channel.state_lock:
        quiet = (
            channel.requests_received > 0
            and not channel.requests
            and now - max(channel.last_active, channel.drain_started) >= DRAIN_QUIET
        )
    if quiet and not channel.wants_write():
        channel.begin_linger()


def between_requests(channel: Channel) -> bool:
    """Nothing of a request on ``channel``, nothing left to send, not closing: a reload may
    hand it over to the next process as it is (Stopping._park_if_between_requests)."""
    with channel.state_lock:
        return (
            not channel.requests
            and not channel.wants_write()
            and not channel.closed
            and not channel.draining
            and channel.linger_deadline is None
            and channel.conn.between_requests
        )
