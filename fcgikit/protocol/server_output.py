"""The output half of the application's end of a connection: what the application sends.

:class:`~fcgikit.protocol.ServerConnection` (server_connection.py) is a :class:`ServerOutput`
that reads input: each FCGI_BEGIN_REQUEST it admits (server_admission.py) puts a
:class:`ServerRequest` in the table of active requests kept here, and the application's end
of the request (:meth:`ServerOutput.end_request`) takes it out. Why the output is shaped like
this:

* Output methods return the bytes to write instead of buffering them, so a server can write
  a response from the thread that produced it. Each active request frames its own output
  (it is a :class:`~fcgikit.protocol.output.RequestOutput`). The connection itself is not
  thread-safe: the caller serialises calls *and* the writes of what they return.
* An aborted request stays in the table until the application ends it, so its id is not
  reused while the application still runs it (server_connection.py says why); its output is
  dropped, not an error, since the application may not have heard of the abort yet.
* The framing itself, and the checks of a request's statuses, are output.py's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from fcgikit.errors import LocalProtocolError
from fcgikit.protocol.connection import RecordStream
from fcgikit.protocol.constants import ProtocolStatus, Role
from fcgikit.protocol.events import RequestEnded, ServerEvent, StderrData, StdoutData
from fcgikit.protocol.output import RequestOutput
from fcgikit.protocol.state import INPUT_STREAMS, InputStream, RequestState

__all__ = ["ServerOutput", "ServerRequest"]

# Each request's look-ups: an Enum member read from its class costs, interpreted, as much as
# a small function call; a module global does not.
_READING_PARAMS: Final = RequestState.READING_PARAMS
_ABORTED: Final = RequestState.ABORTED


class ServerRequest(RequestOutput):
    """An active request: its output (a RequestOutput), and where its input has got to."""

    __slots__ = ("keep_conn", "params", "reading", "role", "state")

    def __init__(self, request_id: int, role: Role, keep_conn: bool) -> None:
        # (named, not super(): interpreted, super() makes an object for each request)
        RequestOutput.__init__(self, request_id)
        self.role = role
        self.keep_conn = keep_conn
        self.state = _READING_PARAMS
        #: The input stream this state reads (a cache of INPUT_STREAMS[role, state]).
        self.reading: InputStream | None = INPUT_STREAMS[role, _READING_PARAMS]
        self.params = bytearray()


class ServerOutput(RecordStream[ServerEvent]):
    """What the application sends on one connection: the output of its active requests and
    their ends; and whether the connection should close.

    Never made on its own: :class:`~fcgikit.protocol.ServerConnection` is one, and fills its
    table of active requests from the web server's records. A RecordStream only so that
    ServerConnection can be both (a class mypyc compiles has one base class, traits aside).
    """

    def __init__(self) -> None:
        super().__init__()
        self._requests: dict[int, ServerRequest] = {}
        self._should_close = False

    @property
    def should_close(self) -> bool:
        """True once the application should close the connection.

        That is after a request without FCGI_KEEP_CONN has ended (including one refused or
        aborted), or after the web server's EOF. Write what was returned and queued first,
        and with a multiplexed connection wait for :attr:`active_request_ids` to empty.
        """
        return self._should_close

    @property
    def active_request_ids(self) -> frozenset[int]:
        """Requests begun and not yet ended (aborted ones excluded: they are over)."""
        return frozenset(
            request_id
            for request_id, request in self._requests.items()
            if request.state is not RequestState.ABORTED
        )

    def _request_for_output(self, request_id: int, what: str) -> ServerRequest | None:
        """The request to send ``what`` for, or None if it was aborted (drop the output)."""
        request = self._requests.get(request_id)
        if request is None:
            raise LocalProtocolError(
                f"cannot send {what} for request {request_id}: it is not active "
                "(never begun, refused, or already ended)"
            )
        if request.state is _ABORTED:
            return None
        if request.state is _READING_PARAMS:
            raise LocalProtocolError(
                f"cannot send {what} for request {request_id}: its FCGI_PARAMS have not all "
                "arrived (wait for RequestReceived)"
            )
        return request

    def send_stdout(self, request_id: int, data: bytes) -> bytes:
        """Bytes carrying ``data`` on FCGI_STDOUT; ``b""`` for empty data or an aborted request.

        Raises:
            LocalProtocolError: the request is not active, or its params are still arriving.
        """
        return b"".join(self.send_stdout_buffers(request_id, (data,)))

    def send_stdout_buffers(
        self, request_id: int, pieces: Sequence[bytes | memoryview]
    ) -> list[bytes | memoryview]:
        """:meth:`send_stdout` as buffers for ``socket.sendmsg``, framed where the pieces lie
        (one buffer under COPY_MAX bytes: see :class:`~fcgikit.protocol.output.RequestOutput`);
        ``[]`` for no data or an aborted request."""
        request = self._request_for_output(request_id, "FCGI_STDOUT")
        if request is None:
            return []
        return request.send_stdout_buffers(pieces)

    def open_stdout(self, request_id: int) -> int | None:
        """:meth:`RequestOutput.open_stdout` for the request ``request_id``; None once it was
        aborted (drop the output).

        Raises:
            LocalProtocolError: the request is not active, or its params are still arriving.
        """
        request = self._request_for_output(request_id, "FCGI_STDOUT")
        if request is None:
            return None
        return request.open_stdout()

    def send_stderr(self, request_id: int, data: bytes) -> bytes:
        """Bytes carrying ``data`` on FCGI_STDERR; ``b""`` for empty data or an aborted request.

        Raises:
            LocalProtocolError: the request is not active, or its params are still arriving.
        """
        request = self._request_for_output(request_id, "FCGI_STDERR")
        if request is None:
            return b""
        return request.send_stderr(data)

    def end_request(
        self,
        request_id: int,
        app_status: int = 0,
        protocol_status: ProtocolStatus | int = ProtocolStatus.REQUEST_COMPLETE,
        *,
        stdout: bytes = b"",
    ) -> bytes:
        """End a request: final ``stdout``, the ends of its output streams, FCGI_END_REQUEST.

        Refusing a request the app has not answered (``protocol_status`` other than
        REQUEST_COMPLETE, nothing on stdout) sends FCGI_END_REQUEST alone. The id becomes
        inactive; without FCGI_KEEP_CONN, :attr:`should_close` becomes true. For an aborted
        request this returns ``b""`` (its FCGI_END_REQUEST has gone already).
        ``protocol_status`` may also be a plain number: typed so, a number FastCGI does not
        define gets the same LocalProtocolError from the compiled build (see setup.py), whose
        run-time type check would otherwise answer with a TypeError.

        Raises:
            LocalProtocolError: the request is not active, its params are still arriving,
                ``app_status`` does not fit in 32 bits, or ``protocol_status`` is no
                ProtocolStatus.
        """
        return b"".join(
            self.end_request_buffers(request_id, app_status, protocol_status, stdout=(stdout,))
        )

    def end_request_buffers(
        self,
        request_id: int,
        app_status: int = 0,
        protocol_status: ProtocolStatus | int = ProtocolStatus.REQUEST_COMPLETE,
        *,
        stdout: Sequence[bytes | memoryview] = (),
    ) -> list[bytes | memoryview]:
        """:meth:`end_request` as buffers for ``socket.sendmsg``, the final stdout given in
        pieces (say a response's head and its body): framed where they lie, not copied,
        unless they are under COPY_MAX bytes (then it is all one buffer). ``[]`` for an
        aborted request. Raises what :meth:`end_request` raises.
        """
        request = self._requests.get(request_id)
        # A request reading its body, or past it: the usual end, whose checks are these two
        # (interpreted, _request_for_output is a call; it says what is wrong with the others)
        if request is None or request.state is _READING_PARAMS or request.state is _ABORTED:
            request = self._request_for_output(request_id, "FCGI_END_REQUEST")
            if request is None:
                del self._requests[request_id]
                return []
        buffers = request.end_request_buffers(app_status, protocol_status, stdout)
        del self._requests[request_id]
        if not request.keep_conn:
            self._should_close = True
        return buffers

    def send(self, event: object) -> bytes:
        """h11-style form of :meth:`send_stdout`, :meth:`send_stderr` and :meth:`end_request`.

        ``event`` is a :class:`StdoutData`, :class:`StderrData` or :class:`RequestEnded`. It is
        typed ``object`` so that anything else raises LocalProtocolError in the mypyc-compiled
        build too (compiled code checks argument types itself, with a TypeError).

        Raises:
            LocalProtocolError: ``event`` is none of those; otherwise as the method it stands for.
        """
        if isinstance(event, StdoutData):
            return self.send_stdout(event.request_id, event.data)
        if isinstance(event, StderrData):
            return self.send_stderr(event.request_id, event.data)
        if isinstance(event, RequestEnded):
            return self.end_request(event.request_id, event.app_status, event.protocol_status)
        raise LocalProtocolError(f"an application cannot send {event!r}")
