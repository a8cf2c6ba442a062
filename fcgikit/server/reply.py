"""Sending a request's output, the part both kinds of connection share.

A request is answered through a :class:`~fcgikit.server.channel.Channel` (a connection the
loop reads) or a :class:`~fcgikit.server.direct.DirectChannel` (one request that arrived
whole). Both are a :class:`ReplySender`: they frame output with their own protocol state
(a ``ServerConnection``, or the ``WholeRequest``: both a ``RequestOutput`` per request,
which also decides when output is joined into one buffer) and keep their own send and close
policy; what is left is written once, here:

* streamed output (``send_output``, ``send_stderr``) goes out at once, the sending thread
  blocking while the web server is slow;
* the end of the response (its last bytes, the ends of the streams and FCGI_END_REQUEST) is
  framed by ``finish`` and kept by the request, its own reply
  (:class:`~fcgikit.server.held_replies.Reply`), which the pool sends at once or with the rest
  of its batch (:class:`~fcgikit.server.pool.WorkerPool`); the request is over once it has
  gone, and its connection decides then whether to close (``request_done``);
* a request the pool has no room for is refused with FCGI_END_REQUEST OVERLOADED.

The functions below send for any thread that holds a socket's send turn.
"""

from __future__ import annotations

import logging
import select
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from fcgikit.protocol.constants import COPY_MAX
from fcgikit.protocol.output import frame_stdout
from fcgikit.server.logs import RateLimitedLog
from fcgikit.server.pool import Refusal
from fcgikit.server.sink import ServerSink, WebServerGone
from fcgikit.server.wsgi import WSGIRequest

if TYPE_CHECKING:
    from fcgikit.server.settings import ServerSettings

log = logging.getLogger("fcgikit.server")

Buffers = list[bytes | memoryview]
#: the C lane ``_speedups_accept.send_stdout`` (its twin: accept.py's send_stdout_py)
StdoutLane = Callable[[Any, int, bytes, float], "int | None"]


class Sends(Protocol):
    """What :func:`send_whole` needs of a connection: a non-blocking socket, or
    ``_speedups_accept.Connection``."""

    def send(self, data: bytes, /) -> int: ...
    def sendmsg(self, buffers: Buffers, /) -> int: ...
    def fileno(self) -> int: ...


class Connected(Sends, Protocol):
    """An accepted connection: ``_speedups_accept.Connection`` where the C lane is built (no
    socket object to make, see accept.py), else a non-blocking socket."""

    def recv_into(self, buffer: memoryview, /) -> int: ...
    def shutdown(self, how: int, /) -> None: ...
    def close(self) -> None: ...


class ReplyHost(Protocol):
    """What a connection's sending needs of its server."""

    settings: ServerSettings
    #: where refusals that come in floods are logged (see log_refusal)
    overloads: RateLimitedLog


HostT = TypeVar("HostT", bound=ReplyHost)


class ReplySender(ServerSink, Generic[HostT]):
    """A connection's output side: the :class:`~fcgikit.server.sink.ResponseSink` methods
    but ``request_done``. A subclass frames (``_frame_*``, with its protocol state), sends
    (``send_buffers``, ``_send_refusal``) and says what becomes of the connection once a request
    is over (``request_done``: its close policy)."""

    def __init__(self, server: HostT, sock: Connected) -> None:
        self.server = server
        self.sock = sock
        #: the socket is closed: nothing may be sent on its number any more
        self.closed = False

    # --- the framing and sending of each kind of connection --------------------------------

    def _frame_stdout(self, request: WSGIRequest, data: bytes) -> Buffers:
        """``data`` on FCGI_STDOUT; ``[]`` once the request was aborted."""
        raise NotImplementedError

    def _frame_stderr(self, request: WSGIRequest, data: bytes) -> bytes:
        raise NotImplementedError

    def _frame_end(
        self, request: WSGIRequest, head: bytes, body: bytes, app_status: int
    ) -> tuple[Buffers, bool]:
        """The request's last stdout, the ends of its streams and FCGI_END_REQUEST (``[]``
        for an aborted request), the request marked ended; and whether the connection is to
        close right behind them."""
        raise NotImplementedError

    def _frame_refusal(self, request: WSGIRequest) -> bytes:
        """FCGI_END_REQUEST OVERLOADED, the request marked ended and forgotten."""
        raise NotImplementedError

    def _send_refusal(self, records: bytes) -> None:
        """Send a refusal, on the loop's thread, and close the connection if it was the last."""
        raise NotImplementedError

    def _open_stdout(self, request: WSGIRequest) -> int | None:
        """The request's FCGI_STDOUT marked open for data framed by send_stdout: the id to
        frame it with; None once the request was aborted."""
        raise NotImplementedError

    def send_stdout(self, request_id: int, data: bytes) -> None:
        """``data`` (not empty) on FCGI_STDOUT, framed and sent by :func:`send_stdout`, as
        send_buffers sends. Raises WebServerGone."""
        raise NotImplementedError

    # --- what a request calls --------------------------------------------------------------

    def send_output(self, request: WSGIRequest, data: bytes) -> None:
        if len(data) >= COPY_MAX:  # framed where it lies, by the sending (see send_stdout)
            request_id = self._open_stdout(request)
            if request_id is None:
                raise WebServerGone("request aborted")
            self.send_stdout(request_id, data)
            return
        buffers = self._frame_stdout(request, data)
        if not buffers:
            raise WebServerGone("request aborted")
        self.send_buffers(buffers, False)

    def send_stderr(self, request: WSGIRequest, data: bytes) -> None:
        records = self._frame_stderr(request, data)
        if records:
            self.send_buffers([records], False)

    def finish(
        self, request: WSGIRequest, head: bytes, body: bytes, app_status: int
    ) -> WSGIRequest:
        """The response's last bytes (``head``, its CGI header block if not sent yet, and
        ``body``), the ends of its streams and FCGI_END_REQUEST, framed for one send and
        kept by the request, which is its own reply: the caller's pool sends them
        (WSGIRequest.send), then ends the request."""
        buffers, then_close = self._frame_end(request, head, body, app_status)
        request.bytes_sent += len(head) + len(body)
        request.reply_buffers = buffers
        request.reply_then_close = then_close
        return request

    def refuse(self, request: WSGIRequest, refusal: Refusal) -> None:
        """The pool is full: END_REQUEST OVERLOADED for ``request``, which never runs."""
        log_refusal(self.server.overloads, request, refusal)
        records = self._frame_refusal(request)
        request.body.close()
        self._send_refusal(records)

    def web_server_gone(self) -> bool:
        # Not closed while one of its requests is still to run, so the descriptor is ours.
        return self.closed or peer_has_closed(self.sock)


def overload_log() -> RateLimitedLog:
    """Where a server logs the requests it refuses with OVERLOADED (see log_refusal): they
    come in floods (a web server sending request after request while this one is full)."""
    return RateLimitedLog(log, "request(s) refused (OVERLOADED): %s", level=logging.WARNING)


class _Label:
    """A request's label, made only if its line is logged: the debug line mostly is not,
    and the label of a request with many params scans them."""

    __slots__ = ("request",)

    def __init__(self, request: WSGIRequest) -> None:
        self.request = request

    def __str__(self) -> str:
        return self.request.label


def log_refusal(overloads: RateLimitedLog, request: WSGIRequest, refusal: Refusal) -> None:
    """The log line for a request refused with OVERLOADED: the reason, rate-limited, and
    the request itself at debug level."""
    if refusal is Refusal.THREADS:
        reason = "all threads busy and --max-queued requests waiting"
    else:
        budget = request.settings.max_queued_memory / (1 << 20)
        reason = (
            "the requests waiting for a thread would hold more than --max-queued-memory "
            f"({budget:.3g} MiB)"
        )
    log.debug("request %s refused (OVERLOADED): %s", _Label(request), reason)
    overloads.note(reason, time.monotonic())
    metrics = request.settings.metrics
    if metrics is not None:
        metrics.request_refused("threads" if refusal is Refusal.THREADS else "memory")


# --- sending, for any thread holding a socket's send turn ----------------------------------


def send_whole(sock: Sends, buffers: Buffers, send_timeout: float) -> None:
    """Send ``buffers`` whole, waiting for room up to ``send_timeout`` seconds at a time: one
    buffer of bytes (what RequestOutput joined) with a plain send, more with sendmsg.
    Raises WebServerGone when the web server went away or stopped reading."""
    first = buffers[0]
    if len(buffers) > 1 or type(first) is not bytes:
        send_all_buffers(sock, buffers, send_timeout)
        return
    # Nearly always the socket takes the whole response in one go: no memoryview for it.
    try:
        sent = sock.send(first)
    except BlockingIOError:
        sent = 0
    except OSError as exc:
        raise WebServerGone(exc.strerror or str(exc)) from None
    if sent < len(first):
        send_all_buffers(sock, [memoryview(first)[sent:]], send_timeout)


#: the C lane that frames and sends a block's FCGI_STDOUT records (fcgikit/server/lanes.py;
#: its twin is accept.py's send_stdout_py); None where it was not built, and with
#: FCGIKIT_PURE_PYTHON=1: send_stdout then does what the twin does
_stdout_lane: StdoutLane | None
try:
    from fcgikit.server._speedups_accept import send_stdout as _stdout_lane
except ImportError:
    _stdout_lane = None


def send_stdout(sock: Sends, request_id: int, data: bytes, send_timeout: float) -> None:
    """``data`` (not empty) as the FCGI_STDOUT records of the request ``request_id``, sent
    whole as :func:`send_all_buffers` sends (its errors, its timeout): by the C lane
    (``_speedups_accept.send_stdout``) where ``sock`` is a ``_speedups_accept.Connection``
    and ``data`` bytes, else as its twin (accept.py's send_stdout_py, which imports this
    module) does: frame_stdout's buffers sent by :func:`send_waiting`."""
    lane = _stdout_lane
    try:
        left = lane(sock, request_id, data, send_timeout) if lane is not None else None
        if left is None:
            left = send_waiting(sock, frame_stdout(request_id, (data,)), send_timeout)
    except OSError as exc:
        raise WebServerGone(exc.strerror or str(exc)) from None
    if left:
        raise WebServerGone(not_reading(send_timeout))


def _drop_sent(buffers: Buffers, sent: int) -> None:
    """Drop the first ``sent`` bytes of ``buffers``; a buffer sent in part goes on from
    where it stopped."""
    done = 0
    while sent >= len(buffers[done]):
        sent -= len(buffers[done])
        done += 1
    del buffers[:done]
    if sent:
        buffers[0] = memoryview(buffers[0])[sent:]


def send_all_buffers(sock: Sends, buffers: Buffers, send_timeout: float) -> None:
    """:func:`send_whole` for any list of buffers, with sendmsg: the kernel copies each buffer
    straight from where it lies (a large response body is never joined). Consumes
    ``buffers``."""
    try:
        left = send_waiting(sock, buffers, send_timeout)
    except OSError as exc:
        raise WebServerGone(exc.strerror or str(exc)) from None
    if left:
        raise WebServerGone(not_reading(send_timeout))


def not_reading(send_timeout: float) -> str:
    """Why a send gave up: a wait for room found none for ``send_timeout`` seconds."""
    return f"the web server did not read for {send_timeout:g}s"


def send_waiting(sock: Sends, buffers: Buffers, send_timeout: float) -> int:
    """Send ``buffers`` whole, waiting for room up to ``send_timeout`` seconds at a time: 0
    when all went, the bytes left when a wait found no room. OSError for a failed send.
    Consumes ``buffers``."""
    left = 0
    for buffer in buffers:
        left += len(buffer)
    if not left:
        return 0
    poller: select.poll | None = None
    while True:
        try:
            sent = sock.sendmsg(buffers)
        except BlockingIOError:
            sent = 0
        if sent == left:
            return 0
        left -= sent
        _drop_sent(buffers, sent)
        # The socket took all it had room for: a send now would only find it full (EAGAIN),
        # so wait for room first.
        if poller is None:
            poller = select.poll()
            poller.register(sock.fileno(), select.POLLOUT)
        if not poller.poll(int(send_timeout * 1000)):
            return left


#: poll(2)'s "the peer shut its side down" (Linux); elsewhere only a hang-up or a reset shows
_PEER_CLOSED = getattr(select, "POLLRDHUP", 0)


def peer_has_closed(sock: Sends) -> bool:
    """Whether the web server closed (or reset) the connection: its EOF waits behind the
    data, which stays unread. One poll(2) call, so not for every request (see
    WSGIRequest.waited). A web server that half-closes after its request counts as gone, as
    everywhere in this server (its EOF aborts the requests of the connection)."""
    poller = select.poll()
    poller.register(sock.fileno(), _PEER_CLOSED)
    return bool(poller.poll(0))
