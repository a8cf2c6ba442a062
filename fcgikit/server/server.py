"""The FastCGI server: listening sockets, one I/O loop, a pool of threads.

One loop (epoll, or poll) accepts connections and reads every connection; idle keep-conn
connections therefore cost a file descriptor and a few objects, not a thread. A connection
that brings one whole request and nothing more (nginx's default) skips even that: its
request runs on the direct lane (:mod:`fcgikit.server.direct`). The loop runs on
one of the :class:`~fcgikit.server.pool.WorkerPool`'s threads at a time, and a request whose
params and body are in runs on that same thread, with no hand-off, unless it turns out slow
(the pool's module docstring has the whole scheme). The thread that calls :meth:`Server.serve`
watches for that, and runs the signal handlers.

Signals, handled only when serving from the main thread (the same meanings as the prefork
master's, :mod:`fcgikit.server.arbiter`):

* SIGTERM stops gracefully: the loop stops accepting, closes idle connections, lets running
  requests finish for ``graceful_timeout`` seconds and returns.
* SIGHUP does the same, then ``serve`` returns True: a flup-style ``.fcgi`` loop re-executes
  the script, ``fcgikit serve`` re-executes itself. With ``keep_listeners_on_reload`` (what
  ``fcgikit serve`` asks for) the listening sockets stay open and their files in place, for
  the new process to inherit: connections wait in the backlog, none is refused.
* SIGINT and SIGQUIT stop at once: one log line with the number of requests cut, the
  connections closed, the socket files removed.
* SIGUSR1 reopens the log files; SIGTTIN and SIGTTOU, the pool's, are logged and ignored.

The handlers only set flags (or queue the signal) and wake the loop, which acts on them.
"""

from __future__ import annotations

import _socket
import contextlib
import errno
import gc
import logging
import os
import select
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterable
from types import FrameType
from typing import TYPE_CHECKING, Protocol

from fcgikit.addresses import UnixAddress
from fcgikit.protocol import Role
from fcgikit.protocol.whole_request import WholeRequest
from fcgikit.server.channel import (
    DRAIN_QUIET,
    RECV_SIZE,
    Channel,
    Connected,
    Refuses,
    overload_log,
)
from fcgikit.server.direct import DirectChannel
from fcgikit.server.listeners import describe, open_listener, peer_allowed
from fcgikit.server.logs import RateLimitedLog, configure_access_log, reopen_log_files
from fcgikit.server.memory import tune_malloc
from fcgikit.server.pool import Refusal, WorkerPool
from fcgikit.server.settings import ServerSettings

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

    from fcgikit.server.wsgi import WSGIRequest

log = logging.getLogger("fcgikit.server")

AcceptConnection = Callable[[int, bool], tuple[int, tuple[object, ...] | None] | None]
#: The C lane for accepting (fcgikit/server/_speedups.c), and the object for the descriptors
#: it accepts; None where it was not built (or has no accept4), and with
#: FCGIKIT_PURE_PYTHON=1.
accept_connection: AcceptConnection | None
Connection: Callable[[int], Connected] | None
try:
    from fcgikit.server._speedups import Connection, accept_connection
except ImportError:
    accept_connection = Connection = None

#: connections accepted per round of the loop at most; the listener is level-triggered, so
#: more waiting make the next select() return at once
ACCEPT_BATCH = 64
#: a server that stopped accepting for this long (seconds; all its threads were busy) looks
#: whether the web server gave up on the connections it accepts next (see _check_backlog)
PAUSE_CHECKED_AFTER = 1.0
#: accept() errors that leave the connection waiting: the process is out of file descriptors
#: (or the kernel out of memory). The listener stays readable, and a level-triggered loop
#: would retry at once, for ever; so accepting pauses until a connection closes, or for
#: ACCEPT_RETRY seconds
ACCEPT_RESOURCE_ERRORS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
ACCEPT_RETRY = 0.25


READABLE = select.POLLIN
WRITABLE = select.POLLOUT


class Poller:
    """What ``selectors`` does for the loop, without its per-call objects (a SelectorKey per
    registration, a list of them per round): file descriptor -> whatever the loop dispatches
    on. epoll where there is one, poll(2) elsewhere."""

    def __init__(self, *, epoll: bool = hasattr(select, "epoll")) -> None:
        self._epoll = select.epoll() if epoll else None
        self._poll = select.poll() if self._epoll is None else None
        self._targets: dict[int, object] = {}

    def register(self, fd: int, events: int, target: object) -> None:
        self._targets[fd] = target
        if self._epoll is not None:
            self._epoll.register(fd, events)
        else:
            assert self._poll is not None
            self._poll.register(fd, events)

    def modify(self, fd: int, events: int) -> None:
        if fd in self._targets:
            if self._epoll is not None:
                self._epoll.modify(fd, events)
            else:
                assert self._poll is not None
                self._poll.modify(fd, events)

    def unregister(self, fd: int, *, closing: bool = False) -> None:
        """Forget ``fd``; harmless if it was never registered or is closed already.
        ``closing``: the caller closes it right after, and nothing else holds it, so the
        close takes it out of an epoll set: one epoll_ctl call less (not so for poll)."""
        if self._targets.pop(fd, None) is None or (closing and self._epoll is not None):
            return
        with contextlib.suppress(OSError, KeyError):
            if self._epoll is not None:
                self._epoll.unregister(fd)
            else:
                assert self._poll is not None
                self._poll.unregister(fd)

    def wait(self, timeout: float) -> list[tuple[object, int]]:
        """(target, events) for each ready descriptor; errors and hang-ups count as both
        readable and writable, so that the read or the write that follows sees them."""
        if self._epoll is not None:
            ready = self._epoll.poll(timeout)
        else:
            assert self._poll is not None
            ready = self._poll.poll(timeout * 1000.0)
        targets = self._targets
        found: list[tuple[object, int]] = []
        for fd, events in ready:
            target = targets.get(fd)
            if target is not None:
                if events & ~(READABLE | WRITABLE):
                    events |= READABLE | WRITABLE
                found.append((target, events))
        return found

    def close(self) -> None:
        if self._epoll is not None:
            self._epoll.close()
        self._targets.clear()


class Admits(Protocol):
    def admit(self, job: Callable[[], None], *, ready: bool, memory: int) -> Refusal | None: ...


def admit(
    arrived: Iterable[tuple[Refuses, WSGIRequest]], pool: Admits, *, waited: bool = False
) -> None:
    """Hand the requests that arrived in one round of the loop to the pool; refuse (OVERLOADED)
    those it has no room for, in threads or in memory. One whose body is complete may run on
    the loop's thread. ``waited``: they may wait long before they run, or have waited
    already (WSGIRequest.waited)."""
    for channel, request in arrived:
        if waited:
            request.waited = True
        ready = request.body.complete and request.filter_data is None
        refusal = pool.admit(request.run, ready=ready, memory=request.bound_waiting_memory())
        if refusal is not None:
            channel.refuse(request, refusal)


class Server:
    def __init__(
        self,
        app: WSGIApplication,
        settings: ServerSettings,
        listeners: Iterable[socket.socket] | None = None,
        *,
        created_paths: Iterable[str] = (),
        keep_listeners_on_reload: bool = False,
        connections: Iterable[int] = (),
    ) -> None:
        """``listeners``: sockets already listening (by default those of ``settings.binds``,
        which the server creates); ``created_paths``: the unix socket files among them that
        the server is to remove when it stops, as it does those it creates;
        ``keep_listeners_on_reload``: a SIGHUP leaves the listening sockets open and their
        files in place, and sets aside the connections idle between two requests
        (:attr:`parked`), for the caller to pass to its re-executed self;
        ``connections``: descriptors of connections such a previous self handed over."""
        self.app = app
        self.settings = settings
        self.pool = WorkerPool(settings.threads, settings.max_queued, settings.max_queued_memory)
        self.keep_listeners_on_reload = keep_listeners_on_reload
        self._handed_connections = list(connections)
        #: connections set aside, idle, for the re-executed process (see _stopping_round)
        self.parked: list[Channel] = []
        #: where refusals that come in floods are logged (see Channel.refuse)
        self.overloads = overload_log()
        #: unix socket files this server created, removed again when it stops
        self.created_paths: list[str] = list(created_paths)
        if listeners is None:
            listeners = []
            for address in settings.binds:
                listeners.append(
                    open_listener(
                        address,
                        umask=settings.umask,
                        mode=settings.socket_mode,
                        owner=settings.socket_owner,
                    )
                )
                if isinstance(address, UnixAddress):
                    self.created_paths.append(address.path)
        self.listeners = list(listeners)
        self.channels: set[Channel] = set()
        #: the connections whose request runs on the direct lane (see direct.py)
        self.direct: set[DirectChannel] = set()
        #: whether a request can take the direct lane; WholeRequest.parse says which can
        self._direct_lane = Role.RESPONDER in settings.roles
        #: what every connection reads into, in the I/O thread (see Channel.on_readable)
        self.recv_buffer = memoryview(bytearray(RECV_SIZE))
        self._selector = Poller()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._lock = threading.Lock()
        self._write_wanted: set[Channel] = set()
        self._stop_reason: str | None = None
        #: why the server stops at once (SIGINT, SIGQUIT), cutting running requests
        self._cut_reason: str | None = None
        #: signals the loop acts on (SIGUSR1, SIGTTIN, SIGTTOU), queued by their handler
        self._signals: list[int] = []
        self._reload = False
        self._stopping = False
        #: stopping to hand the connections over (see _stopping_round)
        self._parking = False
        self._accept_paused = False
        self._stop_now = False
        self._loop_started = False
        self._next_sweep = 0.0
        self._deadline = 0.0
        #: requests whose params arrived in this round of the loop, admitted after it
        self.arrived: list[tuple[Refuses, WSGIRequest]] = []
        #: connections accepted in the last round, not in the selector yet (see _accept)
        self._unwatched: list[Channel] = []
        #: how many connections the last round of accepts found (see _accept)
        self._accepts_expected = 1
        #: whether the connections in the listen backlog may have waited there long, long
        #: enough for their web server to give up on them (nginx closes such a connection,
        #: but it stays queued with its request): so for a new server (a new worker, after
        #: the others died, say) and one that stopped accepting for PAUSE_CHECKED_AFTER,
        #: until an accept finds the backlog empty. Requests accepted meanwhile are marked
        #: (WSGIRequest.waited) and looked at before they run; the others never pay for it.
        self._check_backlog = True
        #: a connection was accepted this round while _check_backlog was set
        self._accepted_late = False
        #: when accepting was last paused (time.monotonic)
        self._paused_at = 0.0
        #: (family, type, proto) of each listener, as ints for _socket.socket()
        self._listener_kinds: dict[int, tuple[int, int, int]] = {}
        #: seconds to wait before accepting again after ACCEPT_RESOURCE_ERRORS, unless a
        #: connection closes first
        self.accept_retry = ACCEPT_RETRY
        #: when to try accepting again after ACCEPT_RESOURCE_ERRORS (0.0: not waiting)
        self._accept_retry_at = 0.0
        self._refused_peers = RateLimitedLog(
            log,
            "fcgikit: refused connection from %s (not in FCGI_WEB_SERVER_ADDRS)",
            level=logging.WARNING,
        )
        self._accept_failures = RateLimitedLog(
            log, "fcgikit: accept failed: %s", level=logging.ERROR
        )
        self._out_of_resources = RateLimitedLog(
            log,
            "fcgikit: cannot accept connections (%s); those waiting are accepted as others "
            "close. Out of file descriptors: raise the limit (ulimit -n, or LimitNOFILE= "
            "under systemd)",
            level=logging.ERROR,
        )
        self.ready = threading.Event()

    # --- called from any thread ------------------------------------------------------------

    def stop(
        self, reason: str = "stop requested", *, reload: bool = False, at_once: bool = False
    ) -> None:
        """Ask the loop to stop: gracefully, or ``at_once`` (running requests are cut);
        ``reload``: ``serve`` returns True. A stop cancels a reload asked for before it, and
        a reload does not undo a stop. Safe from signal handlers and other threads."""
        if reload and self._stop_reason is not None and not self._reload:
            return
        self._stop_reason = reason
        self._reload = reload
        if at_once:
            self._cut_reason = reason
            self._stop_now = True
        self._wake()

    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            self._wake_w.send(b"\0")

    def want_write(self, channel: Channel) -> None:
        with self._lock:
            self._write_wanted.add(channel)
        self._wake()

    def wakeup_fd(self) -> int:
        """For ``signal.set_wakeup_fd``: a signal delivered while another thread runs must
        still wake the I/O thread, which is where Python runs signal handlers."""
        return self._wake_w.fileno()

    def request_finished(self) -> None:
        if self._stopping or self._accept_paused:
            self._wake()

    def unregister(self, channel: Channel, *, closing: bool = False) -> None:
        """Forget ``channel`` in the selector. Called by the loop's thread only; ``closing``
        when the caller closes it right after (see Poller.unregister). A registered channel
        is never closed (so its fd number is not reused) until it is unregistered."""
        if channel.registered:
            channel.registered = False
            self._selector.unregister(channel.fileno, closing=closing)

    def channel_closed(self, channel: Channel) -> None:
        with self._lock:
            self.channels.discard(channel)
            self._write_wanted.discard(channel)
        if self._stopping or self._accept_paused:
            self._wake()

    def direct_closed(self, channel: DirectChannel) -> None:
        with self._lock:
            self.direct.discard(channel)
        if self._stopping or self._accept_paused:
            self._wake()

    # --- the loop --------------------------------------------------------------------------

    def _install_signal_handlers(self) -> dict[int, object]:
        if (
            not self.settings.handle_signals
            or threading.current_thread() is not threading.main_thread()
        ):
            return {}

        def on_stop(signum: int, frame: FrameType | None) -> None:
            reason = f"received {signal.Signals(signum).name}"
            if signum == signal.SIGHUP:
                self.stop(reason, reload=True)
            else:
                self.stop(reason, at_once=signum != signal.SIGTERM)

        def on_other(signum: int, frame: FrameType | None) -> None:
            self._signals.append(signum)
            self._wake()

        previous: dict[int, object] = {}
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGHUP):
            previous[signum] = signal.signal(signum, on_stop)
        for signum in (signal.SIGUSR1, signal.SIGTTIN, signal.SIGTTOU):
            previous[signum] = signal.signal(signum, on_other)
        previous[-1] = signal.set_wakeup_fd(self.wakeup_fd(), warn_on_full_buffer=False)
        return previous

    def _act_on_signals(self) -> None:
        """The queued signals, on the loop's thread (see _install_signal_handlers)."""
        while self._signals:
            signum = self._signals.pop(0)
            if signum == signal.SIGUSR1:
                reopen_log_files()
                log.info("fcgikit: SIGUSR1: reopened log files")
            else:
                log.warning(
                    "fcgikit: %s ignored: it adds or removes a worker of a pool (--workers), "
                    "and this server is a single process",
                    signal.Signals(signum).name,
                )

    def serve(self) -> bool:
        """Serve until stopped; True when stopped by SIGHUP (flup's "restart me")."""
        previous = self._install_signal_handlers()
        if self.settings.access_log is not None:
            configure_access_log(self.settings.access_log)
        selector = self._selector
        try:
            for listener in self.listeners:
                listener.setblocking(False)
                selector.register(listener.fileno(), READABLE, listener)
                self._listener_kinds[listener.fileno()] = (
                    int(listener.family),
                    int(listener.type),
                    listener.proto,
                )
                log.info("fcgikit: listening on %s", describe(listener))
            selector.register(self._wake_r.fileno(), READABLE, self._wake_r)
            if self._handed_connections:
                self._adopt_connections(self._handed_connections)
            self._next_sweep = time.monotonic() + 1.0
            if threading.current_thread() is threading.main_thread():
                # Serving is what this process does from now on, and what is alive now (the
                # app, its framework, their modules) lives as long as it: keep it out of the
                # cyclic GC's full collections, which would walk it again and again (gunicorn
                # and Instagram do the same). Not for a server run on a side thread (tests).
                gc.freeze()
                # Likewise malloc's thresholds, for the large bodies (see memory.py).
                tune_malloc()
            self.ready.set()
            # The loop runs on the pool's threads (see fcgikit.server.pool); this thread
            # watches it, and runs the signal handlers, as the main thread must.
            self._loop_started = True
            self.pool.start(self._lead)
            self.pool.watch()
            if self.pool.loop_error is not None:
                raise self.pool.loop_error
        finally:
            for signum, handler in previous.items():
                if signum == -1:
                    signal.set_wakeup_fd(handler)  # type: ignore[arg-type]
                else:
                    signal.signal(signum, handler)  # type: ignore[arg-type]
            self._abandon_loop()
            self._close_everything()
        return self._reload

    def _abandon_loop(self) -> None:
        """``serve`` is leaving early (an exception here, KeyboardInterrupt): end the loop
        before its selector and sockets close under it."""
        if not self._loop_started:
            return
        self._stop_now = True
        self._wake()
        if not self.pool.wait_loop_over(1.0):
            log.warning("fcgikit: the I/O loop did not stop within 1s")

    def _lead(self) -> bool:
        """The I/O loop, on whichever pool thread holds the loop role. True: the server is
        done; False: this thread lost the role to a rescue (a request it ran was slow)."""
        pool = self.pool
        while True:
            if self._poll():
                return True
            if self.arrived:
                arrived, self.arrived = self.arrived, []
                admit(arrived, pool, waited=self._accepted_late or pool.all_busy())
                self._accepted_late = False
            if not pool.run_ready():
                return False

    def _poll(self) -> bool:
        """One round of the loop; True when the server is done."""
        selector = self._selector
        if self._unwatched:
            self._watch_accepted()
        now = time.monotonic()
        if self._stop_now:
            return True
        if now >= self._next_sweep:
            self._next_sweep = now + 1.0
            self._close_expired_lingerers(now)
            self._close_idle(now)
            self._refused_peers.flush(now)
            self._accept_failures.flush(now)
            self._out_of_resources.flush(now)
            self.overloads.flush(now)
            if self._accept_retry_at and now >= self._accept_retry_at:
                self._accept_retry_at = 0.0
                self._resume_if_room()
        if self._stop_reason is not None and not self._stopping:
            self._begin_stopping()
            self._deadline = time.monotonic() + self.settings.graceful_timeout
        if self._stopping:
            stopping_timeout = self._stopping_round(now)
            if stopping_timeout is None:
                return True
            timeout = stopping_timeout
        else:
            # Wakes once a second to close connections that linger too long, sooner to try
            # accepting again (see _accept_failed).
            timeout = self._next_sweep - now
        wake_r = self._wake_r
        for target, events in selector.wait(timeout):
            if type(target) is Channel:
                if events & WRITABLE:
                    target.on_writable()
                    self._update_write_interest(target)
                if events & READABLE and target.registered:
                    target.on_readable()
            elif target is wake_r:
                with contextlib.suppress(OSError):
                    while wake_r.recv(4096):
                        pass
                self._update_write_interest()
                if self._accept_paused:
                    self._resume_if_room()
                if self._signals:
                    self._act_on_signals()
            else:
                assert isinstance(target, socket.socket)
                self._accept(target)
        return False

    def _stopping_round(self, now: float) -> float | None:
        """The part of a round of the loop that stopping gracefully adds: how long the
        round may wait, or None once the server is done (no connection left, or the grace
        period over). A reload that hands the listeners over hands the connections idle
        between two requests over too, as they are; a stop closes them once quiet."""
        with self._lock:
            draining = list(self.channels)
        if self._hands_over_listeners():
            for channel in draining:
                self._park_if_between_requests(channel)
        else:
            if self._parking:  # a stop came after the reload began: no hand-over after all
                self._parking = False
                for listener in self.listeners:
                    listener.close()
                for channel in draining:
                    channel.drain()
            for quiet in draining:
                quiet.close_if_quiet(now)
        with self._lock:
            remaining = len(self.channels) + len(self.direct)
        if remaining == 0:
            return None
        left = self._deadline - time.monotonic()
        if left <= 0:
            log.warning(
                "fcgikit: %d connection(s) still busy after %gs; closing them",
                remaining,
                self.settings.graceful_timeout,
            )
            return None
        return min(left, DRAIN_QUIET / 2)

    def _park_if_between_requests(self, channel: Channel) -> None:
        """Set ``channel`` aside for the next process if no request is on it: the loop
        forgets it, and nothing more is read from it here (a request the web server sends
        meanwhile waits in the socket for the next process)."""
        if channel.between_requests():
            self.unregister(channel)
            with self._lock:
                self.channels.discard(channel)
                self._write_wanted.discard(channel)
            self.parked.append(channel)

    def _adopt_connections(self, fds: Iterable[int]) -> None:
        """Serve the connections the previous process handed over (see _stopping_round)."""
        for fd in fds:
            sock = socket.socket(fileno=fd)
            try:
                sock.setblocking(False)
                peer = sock.getpeername()
            except OSError:  # the web server closed it meanwhile
                sock.close()
                continue
            label = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else "unix socket"
            channel = Channel(self, sock, label)
            channel.requests_received = 1  # an idle keep-conn connection, not a new one
            channel.selector_events = READABLE
            with self._lock:
                self.channels.add(channel)
            self._selector.register(fd, READABLE, channel)

    def _close_expired_lingerers(self, now: float) -> None:
        with self._lock:
            expired = [
                channel
                for channel in self.channels
                if channel.linger_deadline is not None and now >= channel.linger_deadline
            ]
        for channel in expired:
            self.unregister(channel, closing=True)
            channel.close()

    def _close_idle(self, now: float) -> None:
        """Close connections that received nothing for a while, with no request running."""
        timeout = self.settings.idle_connection_timeout
        if timeout is None:
            return
        with self._lock:
            stale = [c for c in self.channels if now - c.last_active > timeout]
        closed = sum(1 for channel in stale if channel.close_if_idle())
        if closed:
            log.info(
                "fcgikit: closed %d idle connection(s) (nothing received for %gs)", closed, timeout
            )

    def _update_write_interest(self, only: Channel | None = None) -> None:
        with self._lock:
            wanted = [only] if only is not None else list(self._write_wanted)
            if only is None:
                self._write_wanted.clear()
        for channel in wanted:
            if not channel.registered:
                continue
            events = READABLE | WRITABLE if channel.wants_write() else READABLE
            # The hang-up of a connection with nothing to send reports it writable too:
            # no epoll_ctl to register what is registered already.
            if events != channel.selector_events:
                channel.selector_events = events
                with contextlib.suppress(OSError):
                    self._selector.modify(channel.fileno, events)

    def _load(self) -> int:
        """Requests running or waiting here, plus connections that have not sent one yet."""
        with self._lock:
            channels = list(self.channels)
            running_direct = len(self.direct)
        return running_direct + sum(
            len(ch.requests) or int(not ch.requests_received) for ch in channels
        )

    def _saturated(self) -> bool:
        return self.settings.share_listeners and self._load() >= self.settings.threads

    def _pause_accepting(self) -> None:
        self._accept_paused = True
        self._paused_at = time.monotonic()
        for listener in self.listeners:
            self._selector.unregister(listener.fileno())

    def _resume_if_room(self) -> None:
        """Accept again after a pause (saturated, or out of descriptors), unless stopping
        or still saturated; out of descriptors, the next accept says whether it still is."""
        if self._accept_paused and not self._stopping and not self._saturated():
            self._resume_accepting()

    def _resume_accepting(self) -> None:
        self._accept_paused = False
        if time.monotonic() - self._paused_at >= PAUSE_CHECKED_AFTER:
            self._check_backlog = True
        self._accept_retry_at = 0.0
        for listener in self.listeners:
            with contextlib.suppress(OSError):
                self._selector.register(listener.fileno(), READABLE, listener)

    def _accept(self, listener: socket.socket) -> None:
        """Accept the connections waiting, up to ACCEPT_BATCH: one per round would leave a
        burst (nginx opening 200 at once) waiting behind whole rounds of requests (it made
        the 99th percentile at 256 clients 200 ms).

        An accept() that finds the queue empty costs ~3.5 us on Linux (it makes a socket and
        frees it again), poll() ~0.3 us. So the round accepts as many as the last round found
        without asking, then asks poll() before each further one: under a steady load (nginx
        without keep-conn opens a connection per request) most rounds end with one poll()
        rather than one failed accept()."""
        expected = self._accepts_expected
        for accepted_count in range(ACCEPT_BATCH):
            if self._saturated():
                # Leave the connection in the shared backlog for a sibling with a free thread;
                # a worker grabbing a burst would queue it behind busy threads (and a
                # --timeout kill would fail the whole burst).
                self._pause_accepting()
                if self._saturated():  # a request that ended meanwhile did not wake us
                    return
                self._resume_accepting()
            accepted = self._accept_one(listener, accepted_count >= expected)
            if accepted is None:
                self._accepts_expected = max(accepted_count, 1)
                if not self._accept_paused:  # the backlog is empty (accept did not fail)
                    self._check_backlog = False  # what comes next finds us accepting
                return
            fd, peer, nonblocking = accepted
            if self._check_backlog:
                self._accepted_late = True
            if not peer_allowed(peer, self.settings.web_server_addrs):
                assert isinstance(peer, tuple)
                self._refused_peers.note(peer[0], time.monotonic())
                os.close(fd)
                continue
            conn: Connected
            if nonblocking and Connection is not None:
                # No socket object: it costs a getsockname() call (socket.socket checks
                # the fd is one) and ~0.6 us in all, and the server makes only the calls
                # Connection has.
                conn = Connection(fd)
            else:
                # The C socket type itself: socket.socket's Python-level __init__ and
                # close() cost ~0.8 us a connection, and a channel needs none of what they
                # add (makefile). An fd accepted non-blocking says so in its type (no
                # setblocking() ioctl).
                family, kind, proto = self._listener_kinds[listener.fileno()]
                sock = _socket.socket(family, kind | nonblocking, proto, fd)
                if not nonblocking:
                    sock.setblocking(False)
                conn = sock
            # A web server sends its request right after connecting (nginx in the same
            # event-loop turn): it is often here already, and reading it now saves a round.
            buffer = self.recv_buffer
            try:
                size = conn.recv_into(buffer)
            except BlockingIOError:
                size = -1  # not here yet: the selector reports it
            except OSError:
                size = -2  # the channel reads again, and says what failed
            if size > 0 and self._direct_lane:
                whole = WholeRequest.parse(buffer[:size], self.settings.max_params_size)
                if whole is not None:
                    direct = DirectChannel(self, conn, whole)
                    with self._lock:
                        self.direct.add(direct)
                    self.arrived.append((direct, direct.start_request()))
                    continue
            label = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else "unix socket"
            channel = Channel(self, conn, label)
            with self._lock:
                self.channels.add(channel)
            # The selector learns of the connection only at the start of the next round:
            # one whose request ran on this thread and closed it by then (a web server
            # without keep-conn, sending its body in pieces) never costs the two epoll_ctl
            # calls.
            self._unwatched.append(channel)
            if size >= 0:
                channel.on_received(buffer, size)
            elif size == -2:
                channel.on_readable()
        self._accepts_expected = ACCEPT_BATCH

    def _accept_one(self, listener: socket.socket, probe: bool) -> tuple[int, object, int] | None:
        """(fd, peer, SOCK_NONBLOCK if the fd already is) of a waiting connection; None when
        none waits, or accept failed (logged). ``probe``: poll() first (the C lane only)."""
        try:
            if accept_connection is not None:
                # The C lane: accept4(SOCK_NONBLOCK), and None for an empty queue where
                # socket.accept() raises (~4.5 µs, once per round of accepts).
                accepted = accept_connection(listener.fileno(), probe)
                return None if accepted is None else (*accepted, _socket.SOCK_NONBLOCK)
            # socket.accept() without its wrapper, which converts the listener's family
            # and type to enums for every connection (~2 µs a connection here).
            fd, peer = listener._accept()  # type: ignore[attr-defined]
        except (BlockingIOError, InterruptedError):
            return None
        except OSError as exc:
            self._accept_failed(exc)
            return None
        return fd, peer, 0

    def _accept_failed(self, exc: OSError) -> None:
        """Log a failed accept, rate-limited. Out of descriptors or memory, the connection
        stays queued and the listener readable: stop polling it until a connection closes
        (the wake-up in channel_closed resumes) or ACCEPT_RETRY seconds pass (_poll's sweep)."""
        now = time.monotonic()
        detail = exc.strerror or str(exc)
        if exc.errno not in ACCEPT_RESOURCE_ERRORS:
            self._accept_failures.note(detail, now)
            return
        self._out_of_resources.note(detail, now)
        self._pause_accepting()
        self._accept_retry_at = now + self.accept_retry
        self._next_sweep = min(self._next_sweep, self._accept_retry_at)

    def _watch_accepted(self) -> None:
        """Put the connections accepted last round in the selector, unless already closed.
        Level-triggered, so input that arrived meanwhile is reported at once."""
        accepted, self._unwatched = self._unwatched, []
        for channel in accepted:
            if channel.registered:
                events = READABLE | WRITABLE if channel.wants_write() else READABLE
                channel.selector_events = events
                self._selector.register(channel.fileno, events, channel)

    def close_on_loop(self, channel: Channel) -> bool:
        """Close ``channel`` now if this thread runs the loop (a request it ran inline has
        just ended); False if not: only the loop's thread may touch the selector."""

        def close() -> None:
            self.unregister(channel, closing=True)
            channel.close()

        return self.pool.on_loop_thread(close)

    def _hands_over_listeners(self) -> bool:
        """Whether the listening sockets outlive this server (a reload that keeps them)."""
        return self._reload and self.keep_listeners_on_reload

    def _begin_stopping(self) -> None:
        self._stopping = True
        log.info("fcgikit: %s; finishing running requests", self._stop_reason)
        hand_over = self._parking = self._hands_over_listeners()
        for listener in self.listeners:
            self._selector.unregister(listener.fileno())
            if not hand_over:
                listener.close()
        if hand_over:
            return  # the connections go on, each set aside between two requests
        with self._lock:
            channels = list(self.channels)
        for channel in channels:
            channel.drain()

    def _close_everything(self) -> None:
        hand_over = self._hands_over_listeners()
        if not hand_over:
            for listener in self.listeners:
                listener.close()
        with self._lock:
            channels = list(self.channels)
            direct = list(self.direct)
        if self._cut_reason is not None:
            log.warning(
                "fcgikit: %s; stopping at once: %d running request(s) cut off",
                self._cut_reason,
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
        self.pool.shutdown()
        self._selector.close()
        self._wake_r.close()
        self._wake_w.close()
        if not hand_over:
            for parked in self.parked:  # a stop that came after the reload began
                parked.close()
            for path in self.created_paths:
                with contextlib.suppress(OSError):
                    os.unlink(path)
