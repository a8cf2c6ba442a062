"""Taking connections from the listening sockets, for the server's loop.

The loop calls :meth:`Acceptor.accept` when a listener is readable. It accepts a batch (fewer
in a prefork worker), reads what each connection brought already, and starts it: on the
direct lane (:mod:`fcgikit.server.direct`) when its request is there whole, else as a
:class:`~fcgikit.server.channel.Channel`. A connection accepted before its first bytes came
(a prefork worker woken by the connect ran before the web server wrote; it gave way once)
waits for them in the poller as it is (:class:`Waiting`), then is started the same way (no
Channel for a request that takes the direct lane). One that waits past a sweep of the loop,
or into a stop, becomes a Channel (:meth:`Acceptor.promote`), what the loop's housekeeping
(idle timeout, drain, reload hand-over) knows; it stays in the poller throughout.

Accepting pauses (the listeners leave the loop's poller) when the server has as much work as
threads, or runs out of file descriptors; when it does, and how the connections accepted after
a long pause are marked (``accepted_late``), is the base class's,
:class:`~fcgikit.server.accept_pauses.AcceptPauses` (accept_pauses.py).

The C lane (``_speedups_accept.c``): ``accept_connection``, accept4() without the exception
for an empty queue, ``Connection``, the descriptor without a socket object, and
``read_ready``, a connection's first read without the exception for no bytes yet; their
Python twins are :func:`accept_connection_py`, :func:`connection_py`, :func:`read_ready_py`,
and :func:`send_stdout_py` for ``send_stdout`` (a streamed block's FCGI_STDOUT records, framed
and sent whole, waiting for room: reply.py's send_stdout calls the lane, and where it is not
built does what the twin does).
"""

from __future__ import annotations

import _socket
import logging
import os
import select
import socket
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from fcgikit.protocol.output import frame_stdout
from fcgikit.server.accept_pauses import PAUSE_CHECKED_AFTER, AcceptPauses
from fcgikit.server.channel import Channel
from fcgikit.server.listeners import peer_allowed, peer_label
from fcgikit.server.logs import RateLimitedLog
from fcgikit.server.poller import READABLE, Poller
from fcgikit.server.reply import Connected, send_waiting

if TYPE_CHECKING:
    from fcgikit.server.server import Server

log = logging.getLogger("fcgikit.server")

#: connections accepted per round of the loop at most; the listener is level-triggered, so
#: more waiting make the next select() return at once
ACCEPT_BATCH = 64
#: ...and in a prefork worker, whose round runs its requests one after another: each would
#: wait here (through any preemption) where a free sibling could start it from the shared
#: backlog. Not too few either: under load a worker's CPU a request follows its rounds, not
#: its instructions (the end of each round hands the core to the web server's processes and
#: back), so a round runs as many as the default threads hold
#: (benchmarks/RESULTS.md, "Two processes, round 9" and "Issue 26, a worker's CPU, round 11")
SHARED_ACCEPT_BATCH = 16

AcceptConnection = Callable[[int], tuple[int, tuple[object, ...] | None] | None]
#: The C lane (fcgikit/server/_speedups_accept.c); None where it was not built (or has no
#: accept4), and with FCGIKIT_PURE_PYTHON=1.
accept_connection: AcceptConnection | None
Connection: Callable[[int], Connected] | None
read_ready: Callable[[Connected, memoryview], int | None] | None
try:
    from fcgikit.server._speedups_accept import (
        Connection,
        accept_connection,
        read_ready,
    )
except ImportError:
    accept_connection = Connection = read_ready = None


def accept_connection_py(listener: socket.socket) -> tuple[int, object] | None:
    """``accept_connection``'s twin: (fd, peer) of a waiting connection, as socket.accept()
    gives them; None when none waits; OSError for any other failure. Unlike the C lane's,
    the fd is blocking, and a unix peer's address is the socket's (the C gives None)."""
    try:
        # not socket.accept(): its wrapper makes enums of the listener's family and type each call
        fd, peer = listener._accept()  # type: ignore[attr-defined]
    except (BlockingIOError, InterruptedError):
        return None
    return fd, peer


def backlog_probe(listener: socket.socket) -> select.poll:
    """A poll object that says whether a connection waits on ``listener`` (``poll(0)``
    answers nothing when none does). An accept() that finds the queue empty costs Linux ten
    times what poll() costs to say the same (benchmarks/RESULTS.md, "Accepting"), and
    socket.accept() the BlockingIOError besides; made once a listener, as asking is once a
    round of accepts."""
    probe = select.poll()
    probe.register(listener, select.POLLIN)
    return probe


def connection_py(fd: int, kind: tuple[int, int, int]) -> Connected:
    """``Connection``'s twin: ``fd``, of a listener of ``kind`` (family, type, proto), as the
    C socket type itself, non-blocking: a channel needs nothing socket.socket's Python-level
    __init__ and close() add, which cost time a connection (benchmarks/RESULTS.md, "Accepting")."""
    family, kind_type, proto = kind
    sock = _socket.socket(family, kind_type, proto, fd)
    sock.setblocking(False)
    return sock


def read_ready_py(conn: Connected, buffer: memoryview) -> int:
    """``read_ready``'s twin: the bytes ``conn`` received into ``buffer``; -1 when none came
    yet, -2 when the read failed (the channel reads again, and says what failed)."""
    try:
        return conn.recv_into(buffer)
    except BlockingIOError:
        return -1
    except OSError:
        return -2


def send_stdout_py(conn: Connected, request_id: int, data: bytes, send_timeout: float) -> int:
    """``send_stdout``'s twin: ``data`` (not empty) framed as FCGI_STDOUT records
    (frame_stdout) and sent whole by reply.py's send_waiting, waiting for room up to
    ``send_timeout`` seconds at a time: 0 when all went, the bytes left when a wait found no
    room; OSError for a failed send. The C does it without a Python object for the headers,
    the slices or the list of buffers, and waits and sends the rest without coming back to
    Python, for a Connection and bytes only (else None)."""
    return send_waiting(conn, frame_stdout(request_id, (data,)), send_timeout)


def read_first(conn: Connected, buffer: memoryview) -> int:
    """A new connection's read, as ``read_ready_py``: a connection accepted before its bytes
    came (common with prefork workers, see Waiting) costs no exception on the C lane."""
    if read_ready is not None:
        size = read_ready(conn, buffer)
        if size is not None:
            return size
    return read_ready_py(conn, buffer)


class Waiting:
    """A connection accepted before its first bytes came, waiting for them in the loop's
    poller (see :meth:`Acceptor.on_first_bytes`)."""

    def __init__(self, conn: Connected, peer: object) -> None:
        self.conn = conn
        self.peer = peer
        self.fileno = conn.fileno()


class Acceptor(AcceptPauses):
    """The accepting side of a :class:`~fcgikit.server.server.Server`'s loop: its listeners,
    and whether (and since when) accepting is paused (the base class's, accept_pauses.py).
    Used by the loop's thread only."""

    def __init__(self, server: Server, listeners: list[socket.socket], poller: Poller) -> None:
        super().__init__(server, listeners, poller)
        #: connections accepted per round at most (see SHARED_ACCEPT_BATCH)
        self._batch = SHARED_ACCEPT_BATCH if self.shared else ACCEPT_BATCH
        #: a connection was accepted while _check_backlog was set (the loop resets it; see
        #: AcceptPauses)
        self.accepted_late = False
        #: how many connections the last round of accepts found (see accept)
        self._expected = 1
        #: connections accepted before their first bytes came, in the poller, by fd
        self.waiting: dict[int, Waiting] = {}
        #: each listener's backlog_probe (see accept)
        self._probes = {listener: backlog_probe(listener) for listener in listeners}
        self._allowed = server.settings.web_server_addrs  # (FCGI_WEB_SERVER_ADDRS)
        self._refused_peers = RateLimitedLog(
            log,
            "fcgikit: refused connection from %s (not in FCGI_WEB_SERVER_ADDRS)",
            level=logging.WARNING,
        )

    def stop_listening(self, *, close: bool) -> None:
        """Take the listeners out of the poller for good; ``close`` them too unless they are
        handed over to the next process.

        Before closing, the connections queued on a listener are accepted and served: the
        kernel would reset them, with the request a web server may have sent already (nginx
        resends a GET elsewhere, answers a POST 502). A pool's worker leaves them: its copy of
        a shared listener closed resets nothing, and a sibling with a free thread serves sooner."""
        take_queued = close and not self.server.settings.share_listeners
        for listener in self.listeners:
            self._poller.unregister(listener.fileno())
            if take_queued:
                self._take_queued(listener)
            if close:
                listener.close()

    def _take_queued(self, listener: socket.socket) -> None:
        """Accept every connection waiting on ``listener``, busy or not: a stop serves them
        (or answers FCGI_OVERLOADED) rather than leave them to be reset."""
        probe = self._probes[listener]
        while probe.poll(0) and (accepted := self._accept_one(listener)) is not None:
            self._admit(listener, accepted, may_wait=False)

    def sweep(self, now: float, *, stopping: bool) -> None:
        """The loop's periodic round: the rate-limited lines, and the retry after running
        out of descriptors."""
        self._refused_peers.flush(now)
        self._failures.flush(now)
        self._out_of_resources.flush(now)
        if self.retry_at and now >= self.retry_at:
            self.retry_at = 0.0
            self.resume_if_room(stopping=stopping)

    def accept(self, listener: socket.socket) -> None:
        """Accept the connections waiting, up to ACCEPT_BATCH: one per round would leave a
        burst (nginx opening 200 at once) waiting behind whole rounds of requests. A worker
        takes SHARED_ACCEPT_BATCH: the rest wait in the shared backlog for whichever process
        is free first.

        An accept() that finds the queue empty costs Linux ten times what poll() costs to
        say the same (benchmarks/RESULTS.md, "Accepting"). So a round accepts as many as the
        last found without asking, then asks poll() before each further one: under a steady
        load (nginx without keep-conn connects per request) most rounds end with one poll().
        Asked first, before saturated: a round that finds the backlog empty ends there,
        without the questions an accept needs (which cost the pure-Python build a call each)."""
        server = self.server
        expected = self._expected
        probe = self._probes[listener]
        for accepted_count in range(self._batch):
            if accepted_count >= expected and not probe.poll(0):
                accepted = None  # the backlog is empty
            elif server.saturated():
                # Left in the shared backlog for a sibling with a free thread: grabbed, a burst
                # would queue behind busy threads (and a --timeout kill would fail it whole).
                # Not paused yet: see pause_if_saturated. A worker that one request fills (one
                # thread) stops here every round and never finds the backlog empty: it stops
                # looking at it after PAUSE_CHECKED_AFTER, what a pause lasts to look again.
                if self._check_backlog and (
                    time.monotonic() - self._checked_since >= PAUSE_CHECKED_AFTER
                ):
                    self._check_backlog = False
                return
            else:
                accepted = self._accept_one(listener)
            if accepted is None:
                self._expected = max(accepted_count, 1)
                if not self.paused:  # the backlog is empty (accept did not fail)
                    self._check_backlog = False  # what comes next finds us accepting
                return
            if self._check_backlog:
                self.accepted_late = True
            self._admit(listener, accepted, may_wait=True)
        self._expected = self._batch

    def _admit(
        self, listener: socket.socket, accepted: tuple[int, object, bool], *, may_wait: bool
    ) -> None:
        """Start serving ``accepted`` (_accept_one's tuple, not *args, which the compiled call
        would pack anew), or close it if its peer is not allowed; then hand it to the server
        (see _started). ``may_wait``: one whose bytes have not come yet waits for them in the
        poller without a Channel (not while stopping, which counts on the Channels of the
        connections it accepts)."""
        fd, peer, nonblocking = accepted
        # (peer_allowed is interpreted: not called when no list of addresses was given)
        if self._allowed is not None and not peer_allowed(peer, self._allowed):
            assert isinstance(peer, tuple)
            self._refused_peers.note(peer[0], time.monotonic())
            os.close(fd)
            if self.metrics is not None:
                self.metrics.connection_refused("peer_address")
            return
        if self.metrics is not None:
            self.metrics.connection_accepted()
        conn: Connected
        if nonblocking and Connection is not None:
            conn = Connection(fd)  # the C lane accepted it: no socket object at all
        else:
            conn = connection_py(fd, self._kinds[listener.fileno()])
        # A web server sends its request right after connecting (nginx in the same
        # event-loop turn): it is often here already, and reading it now saves a round.
        buffer = self.server.recv_buffer
        size = read_first(conn, buffer)
        if size == -1 and may_wait:
            # Woken by the connect, this process may have taken the CPU from the web
            # server between its connect and its write: give it back once, and the request
            # is likely here (and others queued) instead of a sleep and a second wake-up.
            os.sched_yield()
            size = read_first(conn, buffer)
            if size == -1:
                waiting = Waiting(conn, peer)
                self.waiting[waiting.fileno] = waiting
                self._poller.register(waiting.fileno, READABLE, waiting)
                return
        self._started(conn, peer, buffer, size, watched=False)

    def _started(
        self, conn: Connected, peer: object, buffer: memoryview, size: int, *, watched: bool
    ) -> None:
        """Start ``conn`` after a read that gave ``size`` bytes in ``buffer`` (-1: none yet,
        -2: the read failed): on the direct lane, else as a Channel. ``watched``: it is in
        the poller (a Waiting connection): the direct lane takes it out, a Channel stays."""
        server = self.server
        if size > 0 and server.direct_lane_takes(conn, buffer[:size], peer):
            if watched:
                self._poller.unregister(conn.fileno())
            return
        channel = Channel(server, conn, peer_label(peer))
        if watched:
            channel.selector_events = READABLE
            self._poller.retarget(channel.fileno, channel)
        server.start_channel(channel, watched=watched)
        if size >= 0:
            channel.on_received(buffer, size)
        elif size == -2:
            channel.on_readable()

    def on_first_bytes(self, waiting: Waiting) -> None:
        """The poller reports ``waiting`` readable: its first bytes (or its end) came."""
        buffer = self.server.recv_buffer
        size = read_first(waiting.conn, buffer)
        if size == -1:
            return  # not yet after all
        del self.waiting[waiting.fileno]
        self._started(waiting.conn, waiting.peer, buffer, size, watched=True)

    def promote(self) -> None:
        """Make every Waiting connection a Channel, for the loop's housekeeping: the sweep
        (one that waited this long is no web server's ordinary connect), a stop, the end
        of the loop."""
        waiting, self.waiting = self.waiting, {}
        for connection in waiting.values():
            buffer = self.server.recv_buffer
            self._started(connection.conn, connection.peer, buffer, -1, watched=True)

    def _accept_one(self, listener: socket.socket) -> tuple[int, object, bool] | None:
        """(fd, peer, whether the fd is non-blocking already) of a waiting connection; None
        when none waits, or accept failed (logged)."""
        try:
            if accept_connection is not None:
                accepted = accept_connection(listener.fileno())
                # (indexed, not *accepted: compiled, unpacking builds a list first)
                return None if accepted is None else (accepted[0], accepted[1], True)
            accepted_py = accept_connection_py(listener)
        except OSError as exc:
            self._failed(exc)
            return None
        return None if accepted_py is None else (*accepted_py, False)
