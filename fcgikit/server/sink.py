"""What a WSGI request writes its response to, and how it learns that nobody listens.

:class:`~fcgikit.server.wsgi.WSGIRequest` knows nothing of sockets: it hands its output to a
:class:`ResponseSink`, which frames it for where it goes: a FastCGI connection's
:class:`~fcgikit.server.reply.ReplySender` (a :class:`~fcgikit.server.channel.Channel`, or a
:class:`~fcgikit.server.direct.DirectChannel` on the direct lane), or stdout in CGI mode
(:class:`fcgikit.cgi.CGIOutput`). Each raises :class:`WebServerGone` once the web server
has gone, and the request stops producing output.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from fcgikit.server.held_replies import Reply
    from fcgikit.server.wsgi import WSGIRequest


class ResponseSink(Protocol):
    """Where a request's output goes (see above). Each method raises :class:`WebServerGone`
    when nobody listens."""

    def send_output(self, request: WSGIRequest, data: bytes) -> None: ...
    def send_stderr(self, request: WSGIRequest, data: bytes) -> None: ...
    def finish(
        self, request: WSGIRequest, head: bytes, body: bytes, app_status: int
    ) -> Reply | None:
        """End the response: ``head`` (its CGI header block, if not sent yet) and ``body``
        are its last bytes; ``app_status`` goes in FCGI_END_REQUEST. Returns what is left to
        send, for the pool to send and then end the request with (``Reply.done``); None if
        it went out already."""

    def request_done(self, request: WSGIRequest, *, on_loop: bool) -> None:
        """The request is over, its reply sent if it had one. ``on_loop``: the calling
        thread holds the loop role, and no rescue can take it meanwhile (see
        :class:`~fcgikit.server.held_replies.Reply`)."""

    def web_server_gone(self) -> bool:
        """Whether the web server has closed the connection (its EOF waits behind what was
        read). A system call: only for a request that may have waited long to run."""


class ServerSink:
    """The server's own ResponseSinks' base (:class:`~fcgikit.server.reply.ReplySender`):
    a compiled class, so that a request calls it directly, not by name as through the
    protocol (CGI's sink, a test's). A ResponseSink itself, so that a request's
    ``isinstance(channel, ServerSink)`` makes the compiled call."""

    __slots__ = ()

    def send_output(self, request: WSGIRequest, data: bytes) -> None:
        raise NotImplementedError

    def send_stderr(self, request: WSGIRequest, data: bytes) -> None:
        raise NotImplementedError

    def web_server_gone(self) -> bool:
        raise NotImplementedError

    def finish(
        self, request: WSGIRequest, head: bytes, body: bytes, app_status: int
    ) -> Reply | None:
        raise NotImplementedError

    def request_done(self, request: WSGIRequest, *, on_loop: bool) -> None:
        raise NotImplementedError

    def send_buffers(self, buffers: list[bytes | memoryview], then_close: bool) -> None:
        """Send ``buffers`` whole, then (``then_close``) shut our side down behind them: a
        reply ``finish`` framed (WSGIRequest.send). Raises WebServerGone."""
        raise NotImplementedError


class WebServerGone(Exception):
    """The web server closed the connection or aborted the request; stop producing output."""
