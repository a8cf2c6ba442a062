"""The server's I/O loop: its rounds, its wake-ups and its sweep.

A :class:`~fcgikit.server.server.Server` has one :class:`Loop`. It runs on whichever of the
pool's threads holds the loop role (:mod:`fcgikit.server.pool`): each round waits on the
poller (:mod:`~fcgikit.server.poller`) for the listeners, the connections and the wake-up
socket that other threads (and signals) write to, lets each ready connection read or write,
and hands the requests that arrived to the pool, which runs those whose body is in on this
same thread. Once a sweep (:data:`SWEEP_EVERY`) it closes the connections that linger or
sit idle too long, flushes the rate-limited log lines, lets the acceptor retry and tells
systemd's watchdog that the loop is alive. The server holds what the connections ask of it
(which there are, on which lane, whether to stop); this module holds how the loop serves them.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import time
from collections.abc import Hashable
from typing import TYPE_CHECKING, Protocol

from fcgikit.server import handover, signals
from fcgikit.server.accept import Waiting
from fcgikit.server.channel import Channel
from fcgikit.server.channel_host import Refuses
from fcgikit.server.held_replies import Job
from fcgikit.server.notify import SystemdNotifier, server_status
from fcgikit.server.poller import READABLE, WRITABLE, Poller
from fcgikit.server.pool import Refusal, WorkerPool
from fcgikit.server.queued_memory import bound_waiting_memory
from fcgikit.server.wsgi import WSGIRequest

if TYPE_CHECKING:
    from fcgikit.server.server import Server

log = logging.getLogger("fcgikit.server")

#: how often (seconds) the loop sweeps: closes lingering and idle connections, flushes the
#: rate-limited log lines
SWEEP_EVERY = 1.0
#: a round that found this many descriptors ready waits again (without blocking) once it has
#: read them, so that the next round reads in the order the requests came (see Loop.poll):
#: below it a round's reordering costs less than the extra system calls
FAIR_ROUND = 32
#: at most this many such waits a round (each reads what came meanwhile), so that a
#: connection streaming without pause cannot hold the round
FAIR_FLUSHES = 2


class Admits(Protocol):
    def admit(self, job: Job, *, ready: bool, memory: int) -> Refusal | None: ...


def admit(
    arrived: list[tuple[Refuses, WSGIRequest]], pool: Admits, *, waited: bool = False
) -> None:
    """Hand the requests that arrived in one round of the loop to the pool; refuse (OVERLOADED)
    those it has no room for, in threads or in memory. One whose body is complete may run on
    the loop's thread. ``waited``: they may wait long before they run, or have waited
    already (WSGIRequest.waited)."""
    jobs: list[tuple[Job, bool, int | None]] = []
    for _, request in arrived:
        if waited:
            request.waited = True
        complete = request.body.complete
        ready = complete and request.filter_data is None
        # A body still arriving is bounded before the pool's lock (it may write to its file);
        # a ready request's memory is asked by the pool only if it waits (ready_memory).
        memory = None if ready else bound_waiting_memory(request, complete)
        jobs.append((request, ready, memory))  # (its job: run)
    if isinstance(pool, WorkerPool):  # all in one round of its lock (and a direct call)
        refused = pool.admit_all(jobs, ready_memory)
    else:
        refused = []
        for index, (job, ready, memory) in enumerate(jobs):
            if memory is None:
                memory = ready_memory(job)
            refusal = pool.admit(job, ready=ready, memory=memory)
            if refusal is not None:
                refused.append((index, refusal))
    for index, refusal in refused:
        channel, request = arrived[index]
        channel.refuse(request, refusal)


def ready_memory(job: Job) -> int:
    """What a request :func:`admit` handed the pool holds while it waits, its body complete
    (bounding it writes nothing): asked by the pool only of one that waits."""
    assert isinstance(job, WSGIRequest)  # (admit's jobs are its requests)
    return bound_waiting_memory(job, True)


def route_of(job: Job) -> Hashable | None:
    """The route of a request :func:`admit` handed the pool (its job is the request itself,
    see ServerReply): the path the app sees, SCRIPT_NAME and PATH_INFO as the web
    server sent them. Asked by the pool's back-off only (see fcgikit.server.pool), never on
    the ordinary path."""
    request = job
    if not isinstance(request, WSGIRequest):
        return None
    params = request.event.params
    return params.get(b"SCRIPT_NAME"), params.get(b"PATH_INFO")


class Loop:
    """The I/O loop of ``server``; ``notifier``: what to tell systemd (see notify.py)."""

    def __init__(self, server: Server, notifier: SystemdNotifier | None) -> None:
        self.server = server
        self.poller = Poller()
        self.wake_r, self.wake_w = socket.socketpair()
        self.wake_r.setblocking(False)
        self.wake_w.setblocking(False)
        #: a wake-up is written and not yet read back (see wake)
        self._woken = False
        #: the connections with output for the loop to watch for (see want_write); under
        #: the server's lock
        self.write_wanted: set[Channel] = set()
        #: connections accepted in the last round, not in the poller yet (see
        #: Server.start_channel)
        self.unwatched: list[Channel] = []
        self.next_sweep = 0.0
        #: how often the loop sweeps: also the watchdog's pace when systemd wants it faster
        self.sweep_every = SWEEP_EVERY
        if notifier is not None and notifier.watchdog_every is not None:
            self.sweep_every = min(SWEEP_EVERY, notifier.watchdog_every)

    def wake(self) -> None:
        """Have the loop's next round come now (from any thread). One written and not yet
        read back does for any number: a paused worker's requests each make room as they
        end and their connections close, and the round that reads the wake-up looks at
        everything any of them changed before it (see on_woken)."""
        if self._woken:
            return
        self._woken = True
        with contextlib.suppress(OSError):
            self.wake_w.send(b"\0")

    def start(self) -> None:
        """Before the first round: watch for wake-ups; the first sweep a sweep from now."""
        self.poller.register(self.wake_r.fileno(), READABLE, self.wake_r)
        self.next_sweep = time.monotonic() + self.sweep_every

    def close(self) -> None:
        self.poller.close()
        self.wake_r.close()
        self.wake_w.close()

    # --- the rounds ------------------------------------------------------------------------

    def lead(self) -> bool:
        """The I/O loop, on whichever pool thread holds the loop role. True: the server is
        done; False: this thread lost the role to a rescue (a request it ran was slow)."""
        server = self.server
        pool = server.pool
        acceptor = server.acceptor
        health = server.health
        while True:
            if self.poll():
                return True
            if server.arrived:
                arrived, server.arrived = server.arrived, []
                if health is not None:
                    health.take_pings(arrived)
                admit(arrived, pool, waited=acceptor.accepted_late or pool.all_busy())
                acceptor.accepted_late = False
            if not pool.run_ready():
                return False

    def poll(self) -> bool:
        """One round of the loop; True when the server is done."""
        if self.unwatched:
            self.watch_accepted()
        now = time.monotonic()
        server = self.server
        stopping = server.stopping
        if stopping.stop_now:
            return True
        if now >= self.next_sweep:
            self.sweep(now)
        if stopping.reason is not None and not stopping.begun:
            stopping.begin_when_due(now)
        if stopping.begun:
            stopping_timeout = stopping.round(now)
            if stopping_timeout is None:
                return True
            timeout = stopping_timeout
        else:
            # Wakes once a sweep to close connections that linger too long, sooner to try
            # accepting again (see AcceptPauses._failed).
            timeout = self.next_sweep - now
        if server.arrived:
            timeout = 0.0  # requests came already (a stop took the queued ones): run them
        acceptor = server.acceptor
        if acceptor.shared and not acceptor.paused and not stopping.begun:
            acceptor.pause_if_saturated()  # only now that the loop waits: see there
        ready = self.poller.wait(timeout)
        self.dispatch(ready)
        if len(ready) >= FAIR_ROUND:
            # epoll (level-triggered) puts back on its ready list each descriptor it reported,
            # where it keeps its place: a connection served this round whose next request
            # came before the next wait would be read ahead of those whose requests came
            # earlier, and the round after ahead again. A wait now, what it reported read,
            # takes them off the list: the next round reads in the order requests came.
            for _ in range(FAIR_FLUSHES):
                ready = self.poller.wait(0.0)
                if not ready:
                    break
                self.dispatch(ready)
        return False

    def dispatch(self, ready: list[tuple[object, int]]) -> None:
        """Let each ready connection read or write, accept, read the wake-ups."""
        server = self.server
        wake_r = self.wake_r
        for target, events in ready:
            if type(target) is Channel:
                if events & WRITABLE:
                    target.on_writable()
                    self.update_write_interest(target)
                if events & READABLE and target.registered:
                    target.on_readable()
            elif type(target) is Waiting:
                server.acceptor.on_first_bytes(target)
            elif target is wake_r:
                self.on_woken()
            else:
                assert isinstance(target, socket.socket)
                server.acceptor.accept(target)

    def on_woken(self) -> None:
        """Another thread (or a signal) woke the loop: for a channel with output, a stop, a
        closed connection that makes room to accept again, or a queued signal."""
        with contextlib.suppress(OSError):
            while len(self.wake_r.recv(4096)) == 4096:
                pass
        # Read back, then cleared, then acted on: whoever found the flag set before this
        # changed what the rest of this round looks at; whoever finds it clear writes anew.
        # (Signals write to the socket without it: a round more at most.)
        self._woken = False
        self.update_write_interest()
        server = self.server
        if server.kept_elsewhere:
            with server.lock:
                kept, server.kept_elsewhere = server.kept_elsewhere, []
            # (kept after a direct request, or given back by an app's thread: handover)
            self.unwatched += [channel for channel in kept if handover.resume(channel)]
        if server.acceptor.paused:
            server.acceptor.resume_if_room(stopping=server.stopping.begun)
        if server.signals_queued:
            signals.act_on(server.signals_queued)

    def update_write_interest(self, only: Channel | None = None) -> None:
        with self.server.lock:
            wanted = [only] if only is not None else list(self.write_wanted)
            if only is None:
                self.write_wanted.clear()
        for channel in wanted:
            if not channel.registered:
                continue
            events = READABLE | WRITABLE if channel.wants_write() else READABLE
            # The hang-up of a connection with nothing to send reports it writable too:
            # no epoll_ctl to register what is registered already.
            if events != channel.selector_events:
                channel.selector_events = events
                with contextlib.suppress(OSError):
                    self.poller.modify(channel.fileno, events)

    def watch_accepted(self) -> None:
        """Put the connections accepted last round in the poller, unless already closed.
        Level-triggered, so input that arrived meanwhile is reported at once."""
        accepted, self.unwatched = self.unwatched, []
        for channel in accepted:
            if channel.registered:
                events = READABLE | WRITABLE if channel.wants_write() else READABLE
                channel.selector_events = events
                self.poller.register(channel.fileno, events, channel)

    # --- the sweep -------------------------------------------------------------------------

    def sweep(self, now: float) -> None:
        self.next_sweep = now + self.sweep_every
        server = self.server
        if server.acceptor.waiting:
            server.acceptor.promote()
        self._close_expired_lingerers(now)
        self._close_idle(now)
        server.overloads.flush(now)
        server.acceptor.sweep(now, stopping=server.stopping.begun)
        notifier = server.notifier
        if notifier is not None:
            # here, on the loop's thread: the watchdog hears from the loop itself
            notifier.tick(now, lambda: server_status(server))

    def sweep_no_later_than(self, when: float) -> None:
        """Have the loop's next sweep come by ``when`` (time.monotonic) at the latest."""
        self.next_sweep = min(self.next_sweep, when)

    def _close_expired_lingerers(self, now: float) -> None:
        server = self.server
        with server.lock:
            expired = [
                channel
                for channel in server.channels
                if channel.linger_deadline is not None and now >= channel.linger_deadline
            ]
        for channel in expired:
            channel.close()

    def _close_idle(self, now: float) -> None:
        """Close connections that received nothing for a while, with no request running."""
        server = self.server
        timeout = server.settings.idle_connection_timeout
        if timeout is None:
            return
        with server.lock:
            stale = [c for c in server.channels if now - c.last_active > timeout]
        closed = sum(1 for channel in stale if channel.close_if_idle())
        if closed:
            log.info(
                "fcgikit: closed %d idle connection(s) (nothing received for %gs)", closed, timeout
            )
