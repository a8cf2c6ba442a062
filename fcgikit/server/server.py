"""The FastCGI server: listening sockets, one I/O loop, a pool of threads.

One loop (epoll, or poll) accepts connections and reads every connection; idle keep-conn
connections therefore cost a file descriptor and a few objects, not a thread. A connection
that brings one whole request and nothing more (nginx's default) skips even that: its
request runs on the direct lane (:mod:`fcgikit.server.direct`). The loop runs on
one of the :class:`~fcgikit.server.pool.WorkerPool`'s threads at a time, and a request whose
params and body are in runs on that same thread, with no hand-off, unless it turns out slow
(the pool's module docstring has the whole scheme). The thread that calls :meth:`Server.serve`
watches for that, and runs the signal handlers.

Stopping: SIGTERM / SIGINT (and SIGHUP, which makes ``serve`` return True so a flup-style
``.fcgi`` loop can re-exec) only set a flag; the loop then stops accepting, closes idle
connections, lets running requests finish for ``graceful_timeout`` seconds and returns.
Signal handlers are installed only when serving from the main thread.
"""

from __future__ import annotations

import _socket
import contextlib
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
from fcgikit.protocol.connection import WholeRequest
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
from fcgikit.server.logs import configure_access_log
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


def admit(arrived: Iterable[tuple[Refuses, WSGIRequest]], pool: Admits) -> None:
    """Hand the requests that arrived in one round of the loop to the pool; refuse (OVERLOADED)
    those it has no room for, in threads or in memory. One whose body is complete may run on
    the loop's thread."""
    for channel, request in arrived:
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
    ) -> None:
        self.app = app
        self.settings = settings
        self.pool = WorkerPool(settings.threads, settings.max_queued, settings.max_queued_memory)
        #: where refusals that come in floods are logged (see Channel.refuse)
        self.overloads = overload_log()
        #: unix socket files this server created, removed again when it stops
        self.created_paths: list[str] = []
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
        self._reload = False
        self._stopping = False
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
        #: (family, type, proto) of each listener, as ints for _socket.socket()
        self._listener_kinds: dict[int, tuple[int, int, int]] = {}
        self.ready = threading.Event()

    # --- called from any thread ------------------------------------------------------------

    def stop(self, reason: str = "stop requested", *, reload: bool = False) -> None:
        """Ask the loop to stop gracefully; safe from signal handlers and other threads."""
        self._stop_reason = reason
        self._reload = self._reload or reload
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
            self.stop(f"received {signal.Signals(signum).name}", reload=signum == signal.SIGHUP)

        previous: dict[int, object] = {}
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            previous[signum] = signal.signal(signum, on_stop)
        previous[-1] = signal.set_wakeup_fd(self.wakeup_fd(), warn_on_full_buffer=False)
        return previous

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
                admit(arrived, pool)
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
            self.overloads.flush()
        if self._stop_reason is not None and not self._stopping:
            self._begin_stopping()
            self._deadline = time.monotonic() + self.settings.graceful_timeout
        if self._stopping:
            with self._lock:
                remaining = len(self.channels) + len(self.direct)
            if remaining == 0:
                return True
            with self._lock:
                draining = list(self.channels)
            for quiet in draining:
                quiet.close_if_quiet(now)
            left = self._deadline - time.monotonic()
            if left <= 0:
                log.warning(
                    "fcgikit: %d connection(s) still busy after %gs; closing them",
                    remaining,
                    self.settings.graceful_timeout,
                )
                return True
            timeout = min(left, DRAIN_QUIET / 2)
        else:
            timeout = 1.0  # wakes once a second to close connections that linger too long
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
                if self._accept_paused and not self._stopping and not self._saturated():
                    self._resume_accepting()
            else:
                assert isinstance(target, socket.socket)
                self._accept(target)
        return False

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
        for listener in self.listeners:
            self._selector.unregister(listener.fileno())

    def _resume_accepting(self) -> None:
        self._accept_paused = False
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
                return
            fd, peer, nonblocking = accepted
            if not peer_allowed(peer, self.settings.web_server_addrs):
                assert isinstance(peer, tuple)
                log.warning(
                    "fcgikit: refused connection from %s (not in FCGI_WEB_SERVER_ADDRS)", peer[0]
                )
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
            log.error("fcgikit: accept failed: %s", exc.strerror or exc)
            return None
        return fd, peer, 0

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

    def _begin_stopping(self) -> None:
        self._stopping = True
        log.info("fcgikit: %s; finishing running requests", self._stop_reason)
        for listener in self.listeners:
            self._selector.unregister(listener.fileno())
            listener.close()
        with self._lock:
            channels = list(self.channels)
        for channel in channels:
            channel.drain()

    def _close_everything(self) -> None:
        for listener in self.listeners:
            listener.close()
        with self._lock:
            channels = list(self.channels)
            direct = list(self.direct)
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
        for path in self.created_paths:
            with contextlib.suppress(OSError):
                os.unlink(path)
