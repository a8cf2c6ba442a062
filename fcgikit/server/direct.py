"""The direct lane: a request that arrived whole on a connection of its own.

nginx's default (no ``fastcgi_keep_conn``) opens a connection for each request and sends the
whole request in one go. The loop reads it right after ``accept``; when
:meth:`~fcgikit.protocol.whole_request.WholeRequest.parse` recognises it, the request runs with
a :class:`DirectChannel` instead of a :class:`~fcgikit.server.channel.Channel`: nothing
more will be read from this connection, so it needs no selector, protocol state machine,
send lock or linger; the response goes out, and the connection closes behind it. The
request itself is the same :class:`~fcgikit.server.wsgi.WSGIRequest`, so the app sees no
difference; the connection costs about half as much (benchmarks/RESULTS.md, "The direct
lane").

A DirectChannel is used by the thread that runs its request and by nobody else, except a
server that stops past its grace period, which shuts the socket down under it, and the thread
that sends a reply the pool held (:meth:`~fcgikit.server.pool.WorkerPool.hold`) after the
request is over.
"""

from __future__ import annotations

import logging
import socket
from functools import partial
from typing import TYPE_CHECKING, Protocol

from fcgikit.protocol import ProtocolStatus
from fcgikit.protocol.whole_request import WholeRequest
from fcgikit.server.channel import (
    SCATTER_MIN,
    Connected,
    HoldsReplies,
    feed_body,
    log_refusal,
    peer_has_closed,
    send_all,
    send_all_buffers,
)
from fcgikit.server.logs import RateLimitedLog
from fcgikit.server.pool import Refusal
from fcgikit.server.wsgi import WebServerGone, WSGIRequest

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

    from fcgikit.server.settings import ServerSettings

log = logging.getLogger("fcgikit.server")


class DirectHost(Protocol):
    settings: ServerSettings
    app: WSGIApplication
    overloads: RateLimitedLog

    @property
    def pool(self) -> HoldsReplies: ...

    def request_finished(self) -> None: ...
    def direct_closed(self, channel: DirectChannel) -> None: ...


class DirectChannel:
    """The :class:`~fcgikit.server.wsgi.ResponseSink` of a request on the direct lane."""

    def __init__(self, server: DirectHost, sock: Connected, whole: WholeRequest) -> None:
        self.server = server
        self.sock = sock
        self.whole = whole
        self.closed = False

    def start_request(self) -> WSGIRequest:
        """The request, its body fed. (Not kept here: the request keeps its channel, and a
        reference back would make each request a cycle for the garbage collector.)"""
        whole = self.whole
        request = WSGIRequest(self, whole.event, self.server.app, self.server.settings)
        for chunk in whole.stdin:
            feed_body(request, chunk)
        request.body.finish()
        return request

    def _send(self, data: list[bytes | memoryview]) -> None:
        if self.closed:
            raise WebServerGone("connection closed")
        timeout = self.server.settings.send_timeout
        first = data[0]
        if len(data) == 1 and type(first) is bytes:
            send_all(self.sock, first, timeout)
        else:
            send_all_buffers(self.sock, data, timeout)

    def send_output(self, request: WSGIRequest, data: bytes) -> None:
        buffers = self.whole.send_stdout_buffers((data,))
        if len(data) < SCATTER_MIN:
            buffers = [b"".join(buffers)]
        self._send(buffers)

    def send_stderr(self, request: WSGIRequest, data: bytes) -> None:
        records = self.whole.send_stderr(data)
        if records:
            self._send([records])

    def finish(self, request: WSGIRequest, head: bytes, body: bytes, app_status: int) -> None:
        buffers = self.whole.end_request_buffers(app_status, stdout=(head, body))
        request.ended = True
        request.bytes_sent += len(head) + len(body)
        if len(body) < SCATTER_MIN:
            buffers = [b"".join(buffers)]
        # Set before the pool can see it: a rescue may hand it to another thread at once.
        request.reply_held = True
        if not self.server.pool.hold(partial(self._send_held_reply, request, buffers)):
            request.reply_held = False
            self._send(buffers)

    def _send_held_reply(self, request: WSGIRequest, buffers: list[bytes | memoryview]) -> None:
        """Send the reply finish left with the pool, and close: request_done left that too."""
        try:
            self._send(buffers)
        except WebServerGone as exc:
            log.info(
                "request %s: the web server went away (%s); output dropped", request.label, exc
            )
        self.server.request_finished()
        self.close()

    def refuse(self, request: WSGIRequest, refusal: Refusal) -> None:
        """The pool is full: END_REQUEST OVERLOADED, and the request never runs."""
        log_refusal(self.server.overloads, request, refusal)
        reply = self.whole.end_request_buffers(0, ProtocolStatus.OVERLOADED)
        request.ended = True
        request.body.close()
        try:  # noqa: SIM105 (no contextlib object on the way)
            self._send(reply)
        except WebServerGone:
            pass
        self.close()

    def web_server_gone(self) -> bool:
        return peer_has_closed(self.sock)

    def request_done(self, request: WSGIRequest) -> None:
        # A request left without END_REQUEST (the app failed after its headers went, or the
        # web server went away) ends with the close: for nginx the sign of a cut response.
        if request.reply_held:
            return  # the pool sends it, then closes (_send_held_reply)
        self.server.request_finished()
        self.close()

    def stop_now(self) -> None:
        """The server stops past its grace period: the request's next send fails at once."""
        try:  # noqa: SIM105
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:  # noqa: SIM105
            self.sock.close()
        except OSError:
            pass
        self.server.direct_closed(self)
