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

nginx with ``fastcgi_keep_conn`` opens new connections the same way whenever its upstream
keepalive cache has none idle (under many client connections, for most requests: it closes
what overflows the cache), only with FCGI_KEEP_CONN set: such a request takes the lane too,
and once it is answered the connection becomes a Channel for whatever comes next (the
server's :meth:`~fcgikit.server.server.Server.keep_direct`), unless the server stops. As
on any connection of the lane, what the web server sends while the request runs is read
only after it, by that Channel (nginx sends nothing then: it multiplexes nothing, and
closes a connection rather than abort a request on it). Such a request costs no
ServerConnection reading and no Channel until it is answered; nginx closes most of those
connections right after (benchmarks/RESULTS.md, "Keep-conn with 256 connections").

A DirectChannel is used by the thread that runs its request and by nobody else, except a
server that stops past its grace period, which shuts the socket down under it, and the thread
that sends its reply when the pool held it for a batch (see :mod:`fcgikit.server.pool`),
after the request has run.
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING

from fcgikit.protocol import ProtocolStatus
from fcgikit.protocol.whole_request import WholeRequest
from fcgikit.server.reply import Buffers, Connected, ReplySender, send_stdout, send_whole
from fcgikit.server.request_input import feed_body
from fcgikit.server.sink import WebServerGone
from fcgikit.server.wsgi import WSGIRequest

if TYPE_CHECKING:
    # Only the Server makes a DirectChannel. Typed as itself, not as a Protocol: compiled,
    # its methods and attributes are then read directly, not looked up by name each request.
    from fcgikit.server.server import Server


class DirectChannel(ReplySender["Server"]):
    """The :class:`~fcgikit.server.sink.ResponseSink` of a request on the direct lane."""

    def __init__(self, server: Server, sock: Connected, whole: WholeRequest, peer: object) -> None:
        # (not super().__init__: interpreted, the super object costs more than the call)
        ReplySender.__init__(self, server, sock)
        self.whole = whole
        #: the web server's address as accept() gave it, or the label a Channel gave it
        #: (peer_label): for the Channel a keep-conn connection becomes
        self.peer = peer
        #: the reply failed to go out whole: the connection is no use any more
        self.broken = False

    def start_request(self) -> WSGIRequest:
        """The request, its body fed. (Not kept here: the request keeps its channel, and a
        reference back would make each request a cycle for the garbage collector.)"""
        whole = self.whole
        server = self.server
        # streamed False: its body is all here, filled before the app runs: no lock (see
        # RequestBody). (Positional: interpreted, a class called with a keyword makes a dict.)
        request = WSGIRequest(self, whole.event, server.app, server.settings, False)
        for chunk in whole.stdin:
            feed_body(request, chunk)
        request.body.finish()
        return request

    # --- framing and sending (see ReplySender) ---------------------------------------------

    def send_buffers(self, buffers: Buffers, then_close: bool) -> None:
        # (then_close: request_done closes the connection behind every reply)
        if self.closed:
            raise WebServerGone("connection closed")
        try:
            send_whole(self.sock, buffers, self.server.send_timeout)
        except WebServerGone:
            self.broken = True
            raise

    def _frame_stdout(self, request: WSGIRequest, data: bytes) -> Buffers:
        return self.whole.send_stdout_buffers((data,))

    def _open_stdout(self, request: WSGIRequest) -> int | None:
        return self.whole.open_stdout()

    def send_stdout(self, request_id: int, data: bytes) -> None:
        if self.closed:
            raise WebServerGone("connection closed")
        try:
            send_stdout(self.sock, request_id, data, self.server.send_timeout)
        except WebServerGone:
            self.broken = True
            raise

    def _frame_stderr(self, request: WSGIRequest, data: bytes) -> bytes:
        return self.whole.send_stderr(data)

    def _frame_end(
        self, request: WSGIRequest, head: bytes, body: bytes, app_status: int
    ) -> tuple[Buffers, bool]:
        request.ended = True
        return self.whole.end_request_buffers(app_status, stdout=(head, body)), False

    def _frame_refusal(self, request: WSGIRequest) -> bytes:
        request.ended = True
        return b"".join(self.whole.end_request_buffers(0, ProtocolStatus.OVERLOADED))

    def _send_refusal(self, records: bytes) -> None:
        try:  # noqa: SIM105 (no contextlib object on the way)
            self.send_buffers([records], False)
        except WebServerGone:
            pass
        self.close()

    # --- the close policy ----------------------------------------------------------------

    def request_done(self, request: WSGIRequest, *, on_loop: bool) -> None:
        # Without FCGI_KEEP_CONN the connection closes behind every request. One left without
        # END_REQUEST (the app failed after its headers went, or the web server went away)
        # ends with the close: for nginx the sign of a cut response. The server learns that
        # the request is over from the close (direct_closed wakes its loop as
        # request_finished would), else from request_finished: one call either way.
        server = self.server
        if self.closed or (
            self.whole.keep_conn
            and request.ended
            and not (self.broken or request.close_connection)
            and server.keep_direct(self, on_loop=on_loop)
        ):
            server.request_finished()
            return
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
