"""One FastCGI connection: its protocol state, its socket, and the requests running on it.

Threads: the server's I/O thread reads (``receive``) and the workers write. ``state_lock`` is
held only for quick protocol bookkeeping, never during a send, so a slow web server on one
connection cannot stall the I/O thread for everyone. Workers send with a blocking ``sendall``
under ``_send_lock`` (that is the backpressure); the I/O thread's own small replies go into
``_pending``, sent without waiting by whichever thread next holds the send lock. (The locks
are taken with acquire() and release(), not ``with``: half the instructions, interpreted.)

The socket is non-blocking. It is closed only when no worker can still touch it (a closed
descriptor's number is never reused under a worker still writing), and only on the loop's
thread while the loop's poller watches it (:meth:`Channel.close`). What it shares with the
direct lane (the sending of a request's output, the reply the pool sends) is in
:mod:`fcgikit.server.reply`; its own are the protocol state, the reading, the queue of the
loop's own replies and its close policy (:meth:`Channel.request_done`). What its events do to
its requests is :mod:`~fcgikit.server.channel_input`'s; how a stopping server drains it or
hands it over, :mod:`~fcgikit.server.stopping`'s (both under its ``state_lock``).
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from typing import TYPE_CHECKING

from fcgikit.errors import LocalProtocolError, RemoteProtocolError
from fcgikit.protocol import ProtocolStatus, RequestReceived, ServerConnection, StdinEnded
from fcgikit.server import handover
from fcgikit.server.channel_host import ChannelHost, text_names
from fcgikit.server.channel_input import deliver_input, note_params_overloads
from fcgikit.server.reply import Buffers, Connected, ReplySender, send_stdout, send_whole
from fcgikit.server.request_input import fail_input
from fcgikit.server.sink import WebServerGone
from fcgikit.server.wsgi import WSGIRequest
from fcgikit.server.wsgi_codec import ENVIRON_EXTRA_KEYS

if TYPE_CHECKING:
    from fcgikit.server.body import RequestBody

log = logging.getLogger("fcgikit.server")

RECV_SIZE = 256 * 1024
#: after our last byte, how long the web server gets to close its side before we close ours
LINGER_SECONDS = 5.0
#: replies the peer does not read are dropped with the connection past this size
MAX_PENDING = 1 << 20


class Channel(ReplySender[ChannelHost]):
    def __init__(self, server: ChannelHost, sock: Connected, peer: str) -> None:
        super().__init__(server, sock)
        settings = server.settings
        self.peer = peer
        self.fileno = sock.fileno()
        self.conn = ServerConnection(
            roles=settings.roles,
            multiplexed=settings.multiplexed,
            max_conns=settings.threads + settings.max_queued,
            max_reqs=settings.threads + settings.max_queued,
            max_params_size=settings.max_params_size,
            names=text_names(settings),
            room=ENVIRON_EXTRA_KEYS,
        )
        self.requests: dict[int, WSGIRequest] = {}
        #: a connection that has not sent a request yet is not idle: closed unread, the
        #: request the web server is about to send would be reset
        self.requests_received = 0
        #: conn.params_overloads already logged
        self._params_overloads = 0
        self.state_lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._pending = bytearray()
        #: the loop watches it (in the selector, or from the next round); False once dropped
        self.registered = True
        #: the events the selector watches it for (the loop's thread keeps this)
        self.selector_events = 0
        self.draining = False
        self.drain_started = 0.0
        #: set once we half-closed the connection and wait for the web server's EOF
        self.linger_deadline: float | None = None
        self.last_active = time.monotonic()
        #: the request whose thread reads the connection (fcgikit.server.handover), the one
        #: that asked to; what that thread reads into, and leaves for the loop
        self.handed_to: WSGIRequest | None = None
        self.handover_wanted: WSGIRequest | None = None
        self.handover_reading: handover.Reading | None = None
        self.handed_arrivals: list[WSGIRequest] = []
        self.handover_failure: RemoteProtocolError | str | None = None

    def pull_body(self, body: RequestBody, timeout: float | None) -> bool | None:
        """See handover.pull (the app's thread reads its body from the socket itself)."""
        return handover.pull(self, body, timeout)

    # --- I/O thread --------------------------------------------------------------------------

    def on_readable(self) -> None:
        # One buffer for every connection, reused (only the I/O thread reads; the protocol
        # copies what it keeps): a fresh 256 KiB bytes per recv() cost an mmap/munmap pair.
        if self.handover_wanted is not None and handover.grant(self):
            return
        buffer = self.server.recv_buffer
        try:
            size = self.sock.recv_into(buffer)
        except BlockingIOError:
            return
        except OSError as exc:
            self.on_peer_closed(f"read failed: {exc.strerror or exc}")
            return
        self.on_received(buffer, size)

    def on_received(self, buffer: memoryview, size: int) -> None:
        """Take the ``size`` bytes the connection's latest read put in ``buffer``."""
        if not size:
            try:
                with self.state_lock:
                    self.conn.receive_eof()
            except RemoteProtocolError as exc:
                log.warning("connection from %s: %s", self.peer, exc)
            self.on_peer_closed(None)
            return
        if self.linger_deadline is not None:
            return  # the tail of a finished request (its empty STDIN): read and dropped
        self.last_active = time.monotonic()
        server = self.server
        try:
            self.state_lock.acquire()
            try:
                events = self.conn.receive_data(buffer[:size])
                replies = self.conn.data_to_send()
                # Registered in this hold of the lock; admitted after this round of the loop,
                # when its body's end usually is in (a complete request may run inline).
                for event in events:
                    if type(event) is RequestReceived:
                        received = WSGIRequest(self, event, server.app, server.settings)
                        received.body.source = self
                        self.requests[event.request_id] = received
                        self.requests_received += 1
                        server.arrived.append((self, received))
            finally:
                self.state_lock.release()
        except RemoteProtocolError as exc:
            self.on_protocol_error(exc)
            return
        # Its own replies first: an abort's END_REQUEST is queued before RequestAborted
        # wakes the worker, whose request_done may shut the socket down.
        if replies:
            self.queue_reply(replies)
            if self.conn.params_overloads != self._params_overloads:
                refused = self.conn.params_overloads - self._params_overloads
                self._params_overloads = self.conn.params_overloads
                note_params_overloads(server.settings, server.overloads, self.peer, refused)
        requests = self.requests
        for event in events:  # the others, out of the lock (one may wake an app's thread)
            event_type = type(event)
            if event_type is StdinEnded:  # a body's end, the usual: no deliver_input call
                request = requests.get(event.request_id)
                if request is not None:
                    request.body.finish()
            elif event_type is not RequestReceived:
                deliver_input(requests, event)

    def on_protocol_error(self, exc: RemoteProtocolError) -> None:
        log.warning("connection from %s: protocol error, closing: %s", self.peer, exc)
        self.on_peer_closed("protocol error")
        # Tell the peer now, not when the running requests end: shutdown() keeps the fd
        # number ours (no reuse under a worker), and the workers' sends fail at once.
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)

    def on_peer_closed(self, reason: str | None) -> None:
        """EOF, reset or garbage: abort what runs here, close once no worker uses the socket."""
        with self.state_lock:
            # Nothing runs, and only this thread (the loop's) adds requests: the usual case
            # (an idle connection closed) closes here. Otherwise the workers see it
            # unregistered before they see it draining (request_done).
            idle = not self.requests
            if idle:
                self.draining = True
        if idle:
            self.close()
            return
        self.server.unregister(self)
        with self.state_lock:
            self.draining = True
            close_now = not self.requests
            # a request that already sent its END_REQUEST is over, whatever the peer does now
            running = [request for request in self.requests.values() if not request.ended]
            for request in running:
                request.aborted = True
        for request in running:
            # (no log line here: the worker logs one, "went away", when it notices)
            fail_input(request, reason or "the web server closed the connection")
        if close_now:
            self.close()

    def on_writable(self) -> None:
        self._flush_pending()
        if not self._pending:
            self._maybe_close_idle()

    def queue_reply(self, data: bytes) -> None:
        with self.state_lock:
            self._pending += data
            too_much = len(self._pending) > MAX_PENDING
        if too_much:
            log.warning("connection from %s does not read its replies; closing", self.peer)
            self.on_peer_closed("the web server stopped reading")
            return
        self._flush_pending()

    def wants_write(self) -> bool:
        return bool(self._pending)

    def _flush_pending(self) -> None:
        while self._pending and self._send_lock.acquire(blocking=False):
            try:
                # The send under the state lock, after a look at ``closed`` (a non-blocking
                # send is short): once close() ran on another thread (the loop, at the web
                # server's EOF), the fd number may be a new connection's already.
                with self.state_lock:
                    if self.closed:
                        return
                    data = bytes(self._pending)
                    self._pending.clear()
                    try:
                        sent = self.sock.send(data)
                    except BlockingIOError:
                        sent = 0
                    except OSError:
                        return
                    if sent < len(data):
                        self._pending[:0] = data[sent:]
                if sent < len(data):
                    self.server.want_write(self)
                    return
            finally:
                self._send_lock.release()

    def _maybe_close_idle(self) -> None:
        with self.state_lock:
            idle = not self.requests and (self.conn.should_close or self.draining)
        if idle and not self._pending:
            self.begin_linger()

    def begin_linger(self) -> None:
        """Close gracefully: FIN after our last byte, then read and drop what the web server
        still sends (the empty STDIN ending a request answered) until it closes its side or
        LINGER_SECONDS pass. Closed at once, its last write fails (Caddy 502, Apache 503)
        and an RST could take our response away."""
        with self.state_lock:
            if self.linger_deadline is not None or self.closed:
                return
            self.linger_deadline = time.monotonic() + LINGER_SECONDS
            # Under the lock close() sets ``closed`` under: a worker thread lingers while
            # the loop may close at the web server's EOF, and a shutdown() of a descriptor
            # closed meanwhile could hit the next connection to get its number (it did,
            # once in 50,000 aborted requests under load: that client read EOF, no reply).
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_WR)

    def close_if_idle(self) -> bool:
        """Close the connection if no request runs on it and no reply waits (I/O thread)."""
        with self.state_lock:
            if self.requests or self._pending or self.closed:
                return False
        self.close()
        return True

    def close(self) -> None:
        """Close the connection and have the server forget it: the one way a channel closes;
        on the loop's thread while its poller watches it, once no worker can send on it."""
        with self.state_lock:
            if self.closed:
                return
            self.closed = True
            stray = self.conn.stray_records
        if stray:
            log.info(
                "connection from %s: ignored %d record(s) for request ids it never began",
                self.peer,
                stray,
            )
        # Not contextlib.suppress: a Python object and two calls, on every connection.
        try:  # noqa: SIM105
            self.sock.close()
        except OSError:
            pass
        # After the close: the wake-up it may send is for a loop out of descriptors (only
        # the loop's thread accepts: the number is not reused before this returns).
        self.server.channel_closed(self)

    # --- worker threads: framing and sending (see ReplySender) -----------------------------

    def send_buffers(self, buffers: Buffers, then_close: bool) -> None:
        self._send_lock.acquire()
        try:
            if self.closed:
                raise WebServerGone("connection closed")
            send_whole(self.sock, buffers, self.server.settings.send_timeout)
            if then_close:
                self.begin_linger()
        finally:
            self._send_lock.release()
        if self._pending:
            self._flush_pending()

    def _frame_stdout(self, request: WSGIRequest, data: bytes) -> Buffers:
        with self.state_lock:
            return self.conn.send_stdout_buffers(request.request_id, (data,))

    def _open_stdout(self, request: WSGIRequest) -> int | None:
        with self.state_lock:
            return self.conn.open_stdout(request.request_id)

    def send_stdout(self, request_id: int, data: bytes) -> None:
        self._send_lock.acquire()
        try:
            if self.closed:
                raise WebServerGone("connection closed")
            send_stdout(self.sock, request_id, data, self.server.settings.send_timeout)
        finally:
            self._send_lock.release()
        if self._pending:
            self._flush_pending()

    def _frame_stderr(self, request: WSGIRequest, data: bytes) -> bytes:
        with self.state_lock:
            return self.conn.send_stderr(request.request_id, data)

    def _frame_end(
        self, request: WSGIRequest, head: bytes, body: bytes, app_status: int
    ) -> tuple[Buffers, bool]:
        self.state_lock.acquire()
        try:
            buffers = self.conn.end_request_buffers(
                request.request_id, app_status, stdout=(head, body)
            )
            request.ended = True
            # The connection's last reply: our FIN right behind this END_REQUEST, so a
            # keep-conn web server sees the close before it gives it a next request (nginx:
            # 502, a POST not retried). Without FCGI_KEEP_CONN none follows: request_done
            # closes it, no shutdown() first. (The generator only when closing.)
            last = (
                (self.draining or request.close_connection)
                and not self._pending
                and all(other.ended for other in self.requests.values())
            )
        finally:
            self.state_lock.release()
        return buffers, last

    def _frame_refusal(self, request: WSGIRequest) -> bytes:
        with self.state_lock:
            if self.requests.get(request.request_id) is request:
                del self.requests[request.request_id]
            request.ended = True
            return self.conn.end_request(request.request_id, 0, ProtocolStatus.OVERLOADED)

    def _send_refusal(self, records: bytes) -> None:
        # The loop's thread: queued, and sent as far as the socket takes it without waiting.
        self.queue_reply(records)
        self._maybe_close_idle()

    # --- the close policy ----------------------------------------------------------------

    def request_done(self, request: WSGIRequest, *, on_loop: bool) -> None:
        """The request is over, its reply sent if it had one (see ResponseSink): the id is
        free again, and the connection closes if that was its last request and it is to."""
        if self.handed_to is request:
            handover.give_back(self)  # the app stopped reading its body before its end
        self.state_lock.acquire()
        try:
            if not request.ended:
                # Left without END_REQUEST (aborted, or the web server went away): ended in
                # the protocol state, the id free again, with nobody to send to.
                request.ended = True
                with contextlib.suppress(LocalProtocolError):
                    self.conn.end_request(request.request_id, 1)
            # With keep-conn a new request may have begun under the same id already (our
            # END_REQUEST went before this thread got here): leave that one be.
            if self.requests.get(request.request_id) is request:
                del self.requests[request.request_id]
            last = not self.requests
            asked_to_close = self.conn.should_close
            should_close = last and (asked_to_close or self.draining or request.close_connection)
            registered = self.registered
            self.last_active = time.monotonic()
        finally:
            self.state_lock.release()
        self.server.request_finished()
        if not should_close:
            return
        # Replies the I/O thread queued (an abort's END_REQUEST) go out before the shutdown.
        self._flush_pending()
        if not registered:
            self.close()
        elif (
            on_loop
            and asked_to_close
            and not request.close_connection
            and request.body.complete
            and not self._pending
        ):
            # The web server asked for the close (no FCGI_KEEP_CONN) and sent all its input:
            # nothing to linger for. A loop round, a read and the EOF's bookkeeping less on
            # every request of nginx without fastcgi_keep_conn.
            self.close()
        else:
            # The loop closes the channel when the web server's EOF arrives.
            self.begin_linger()
