"""The admission side of the application's end of a connection: which requests it runs.

:class:`~fcgikit.protocol.ServerConnection` (server_connection.py) is a
:class:`ServerAdmission`: when its input reaches a FCGI_BEGIN_REQUEST, a one-pass scan's whole
request, a request's params beyond what the connection holds, or a FCGI_ABORT_REQUEST, the
methods here admit the request to the table of active requests (server_output.py's), refuse it,
or abort it. Why it is shaped like this:

* A refusal and the FCGI_END_REQUEST that answers FCGI_ABORT_REQUEST are the protocol's own
  business, not the application's: they are queued with the connection's other replies and
  handed out by :meth:`ServerAdmission.data_to_send`, so the application only ever sees
  requests it must run.
* An aborted request stays in the table until the application ends it, so a new
  FCGI_BEGIN_REQUEST reusing its id is refused meanwhile (server_connection.py says why).
* A base class rather than an object beside the connection: compiled, the connection's calls
  into it cost what calls to its own methods cost. Its settings and counters are declared
  here and set by ServerConnection's ``__init__``, which validates them (one constructor, no
  extra call a connection).
"""

from __future__ import annotations

from typing import Final

from fcgikit.protocol.constants import ProtocolStatus, Role
from fcgikit.protocol.events import RequestAborted
from fcgikit.protocol.management import ROLES_BY_NUMBER, begin_request_body
from fcgikit.protocol.output import end_request_record
from fcgikit.protocol.server_output import ServerOutput, ServerRequest
from fcgikit.protocol.state import INPUT_STREAMS, RequestState

__all__ = ["ServerAdmission"]

_RESPONDER: Final = Role.RESPONDER
#: (an Enum member read from its class costs about a function call, interpreted)
_READING_STDIN: Final = RequestState.READING_STDIN
_INPUT_ENDED: Final = RequestState.INPUT_ENDED


class ServerAdmission(ServerOutput):
    """Admitting, refusing and aborting the requests of one connection, and the replies that
    the connection queues by itself. Never made on its own: a ServerConnection is one."""

    #: the roles this application plays (see ServerConnection's ``roles``)
    _roles: frozenset[Role]
    _multiplexed: bool
    _max_active_requests: int
    #: the replies queued by the connection itself (see data_to_send)
    _outgoing: bytearray
    #: every id a FCGI_BEGIN_REQUEST named on this connection (at most 65,535 of them)
    _begun_ids: set[int]
    _last_request_id: int
    #: FCGI_PARAMS bytes held for the requests still sending them
    _params_buffered: int
    _params_overloads: int

    def data_to_send(self) -> bytes:
        """Return, and forget, the replies the connection queued by itself."""
        if not self._outgoing:  # the usual read queues none
            return b""
        outgoing = bytes(self._outgoing)
        self._outgoing.clear()
        return outgoing

    @property
    def params_overloads(self) -> int:
        """Requests refused (OVERLOADED) because the params arriving on this connection for
        requests still sending them went beyond ``max_params_size`` in all; a caller may log
        them."""
        return self._params_overloads

    def _ordinary_request(self, request_id: int, keep_conn: bool, stdin_ended: bool) -> None:
        """Where the records a scan took leave the connection: BEGIN_REQUEST (a Responder),
        the whole PARAMS stream, then FCGI_STDIN records, maybe up to its end."""
        self._begun_ids.add(request_id)
        self._last_request_id = request_id
        request = self._requests[request_id] = ServerRequest(request_id, _RESPONDER, keep_conn)
        state = _INPUT_ENDED if stdin_ended else _READING_STDIN
        request.state = state
        request.reading = INPUT_STREAMS.get((_RESPONDER, state))

    def _on_begin_request(self, request_id: int, content: memoryview, held: bool) -> None:
        role_number, keep_conn = begin_request_body(request_id, content)
        self._begun_ids.add(request_id)
        refusal = self._refusal(role_number)
        if refusal is None and held:
            refusal = ProtocolStatus.OVERLOADED  # the aborted request's app still runs
        if refusal is not None:
            self._outgoing += end_request_record(request_id, 0, refusal)
            if not keep_conn:
                self._should_close = True
            return
        # _refusal let only our own roles through, so the number is a Role's
        role = ROLES_BY_NUMBER[role_number]
        self._requests[request_id] = ServerRequest(request_id, role, keep_conn)

    def _refusal(self, role_number: int) -> ProtocolStatus | None:
        if role_number not in self._roles:
            return ProtocolStatus.UNKNOWN_ROLE
        if not self._multiplexed and self._requests:
            return ProtocolStatus.CANT_MPX_CONN
        if len(self._requests) >= self._max_active_requests:
            return ProtocolStatus.OVERLOADED
        return None

    def _refuse_for_params(self, request_id: int, request: ServerRequest) -> None:
        """END_REQUEST OVERLOADED for a request still sending its params; what follows for
        it is ignored, as for any id that is no longer active."""
        del self._requests[request_id]
        self._params_buffered -= len(request.params)
        self._params_overloads += 1
        self._outgoing += end_request_record(request_id, 0, ProtocolStatus.OVERLOADED)
        if not request.keep_conn:
            self._should_close = True

    def _on_abort_request(self, request_id: int, request: ServerRequest, forget: bool) -> None:
        if forget:
            del self._requests[request_id]  # the app never heard of it
            self._params_buffered -= len(request.params)
        else:
            self._events.append(RequestAborted(request_id))
            request.state = RequestState.ABORTED
            request.reading = None
        self._outgoing += request.abort()
        if not request.keep_conn:
            self._should_close = True
