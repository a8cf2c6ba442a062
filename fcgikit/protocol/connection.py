"""The two ends of a FastCGI connection, sans I/O: bytes in -> events out, calls in -> bytes out.

:class:`ServerConnection` is the application side (what fcgikit's server runs on);
:class:`ClientConnection` is the web-server side (what :mod:`fcgikit.client` and the tests
run on). Neither touches a socket, a thread or a WSGI environ, so the whole protocol can be
tested by wiring one to the other in memory, and fuzzed.

Why the server side is shaped like this:

* One ``receive_data`` call parses every complete record it is given and returns all their
  events; the caller never loops on ``next_event``. Input is the hot path.
* Some replies are the protocol's own business, not the application's: FCGI_GET_VALUES,
  unknown management types, refused FCGI_BEGIN_REQUESTs (wrong role, can't multiplex,
  overloaded) and the FCGI_END_REQUEST that answers FCGI_ABORT_REQUEST. They are queued and
  handed out by ``data_to_send``, so the application only ever sees requests it must run.
* Output methods return the bytes to write instead of buffering them, so a server can write
  a response from the thread that produced it. The connection itself is not thread-safe:
  the caller serialises calls *and* the writes of what they return.
* Request ids follow the spec's "Managing Request IDs" (section 3.3): an id is active from
  FCGI_BEGIN_REQUEST until the application's FCGI_END_REQUEST, and records for an inactive id
  are ignored. One guard goes beyond the spec: after FCGI_ABORT_REQUEST the id is inactive
  for the web server, but the application may still be running and will still call
  ``end_request`` with that id, so a new FCGI_BEGIN_REQUEST reusing it is refused (OVERLOADED,
  or CANT_MPX_CONN on a connection that does not multiplex) until the application lets go.
* Peer input can only raise :class:`~fcgikit.errors.RemoteProtocolError`, and once it has,
  the connection stays failed: the caller should close it. Misuse of the API by our own code
  raises :class:`~fcgikit.errors.LocalProtocolError`.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import fields
from typing import Any, Final, Generic, TypeVar

from fcgikit.errors import LocalProtocolError, RemoteProtocolError
from fcgikit.protocol.constants import (
    FCGI_KEEP_CONN,
    FCGI_MAX_CONNS,
    FCGI_MAX_REQS,
    FCGI_MPXS_CONNS,
    ProtocolStatus,
    RecordType,
    Role,
)
from fcgikit.protocol.events import (
    ClientEvent,
    EncodedParams,
    FilterData,
    FilterDataEnded,
    RequestAborted,
    RequestEnded,
    RequestReceived,
    ServerEvent,
    StderrData,
    StdinData,
    StdinEnded,
    StdoutData,
    UnknownTypeReply,
    ValuesResult,
)
from fcgikit.protocol.records import (
    BEGIN_REQUEST_BODY,
    END_REQUEST_BODY,
    UNKNOWN_TYPE_BODY,
    RecordReader,
    decode_pairs,
    encode_pairs,
    frame_records,
    pack_header,
    pack_records,
    record_type_name,
)
from fcgikit.protocol.state import IGNORED_STREAMS, INPUT_STREAMS, InputStream, RequestState

__all__ = ["ClientConnection", "ServerConnection"]

ScanRequest = Callable[
    [bytes | bytearray | memoryview, int, int],
    tuple[int, int, dict[bytes, bytes], set[bytes] | None, list[bytes], bool, int] | None,
]
FrameEnd = Callable[[int, Sequence[bytes | memoryview], int, int, bool, bool], bytes | None]
MakeRequestReceived = Callable[
    [int, Role, bool, Mapping[bytes, bytes], frozenset[bytes], int], RequestReceived
]

#: The C fast lanes (_speedups.c); None where they were not built, or with
#: FCGIKIT_PURE_PYTHON=1. scan_request parses an ordinary request that arrives whole: it only
#: ever answers for input the record-by-record path below would accept, with the same result,
#: and answers None for anything else, so that path runs (the spec, errors included).
#: frame_end writes the end of a response whose last stdout is under COPY_MAX bytes of bytes
#: pieces as one buffer, or answers None and frame_records frames it.
scan_request: ScanRequest | None
frame_end: FrameEnd | None
SlotsFactory: Callable[[type[RequestReceived], tuple[str, ...]], MakeRequestReceived] | None
try:
    from fcgikit.protocol._speedups import SlotsFactory, frame_end, scan_request
except ImportError:
    scan_request = None
    frame_end = None
    SlotsFactory = None

#: final stdout shorter than this leaves end_request_buffers copied into one buffer: for a
#: few kilobytes one copy costs less than a sendmsg iovec each (the C lane's limit too)
COPY_MAX = 8192
#: ServerConnection's default max_decoded_pairs. Web servers send 20 to 40 params; with up
#: to 128 a dict costs at most ~15 KiB more than the bytes sent. More stay encoded.
MAX_DECODED_PAIRS = 128

# Plain ints for the per-record comparisons: cheaper than IntEnum members on the hot path.
_BEGIN_REQUEST = int(RecordType.BEGIN_REQUEST)
_ABORT_REQUEST = int(RecordType.ABORT_REQUEST)
_END_REQUEST = int(RecordType.END_REQUEST)
_PARAMS = int(RecordType.PARAMS)
_STDIN = int(RecordType.STDIN)
_STDOUT = int(RecordType.STDOUT)
_STDERR = int(RecordType.STDERR)
_DATA = int(RecordType.DATA)
_GET_VALUES = int(RecordType.GET_VALUES)
_GET_VALUES_RESULT = int(RecordType.GET_VALUES_RESULT)
_UNKNOWN_TYPE = int(RecordType.UNKNOWN_TYPE)

_INPUT_STREAM_TYPES = frozenset({_PARAMS, _STDIN, _DATA})
_OUTPUT_TYPES = frozenset({_STDOUT, _STDERR, _END_REQUEST})
_MANAGEMENT_TYPES = frozenset({_GET_VALUES, _GET_VALUES_RESULT, _UNKNOWN_TYPE})

#: number -> member without Enum.__call__, which is Python code (~1 us a request each)
_ROLES_BY_NUMBER: dict[int, Role] = {int(role): role for role in Role}
_STATUSES_BY_NUMBER: dict[int, ProtocolStatus] = {int(status): status for status in ProtocolStatus}

_MAX_REQUEST_ID = 0xFFFF
_MAX_APP_STATUS = 0xFFFFFFFF
_BEGIN_REQUEST_LEN = BEGIN_REQUEST_BODY.size
_END_REQUEST_LEN = END_REQUEST_BODY.size
_UNKNOWN_TYPE_LEN = UNKNOWN_TYPE_BODY.size
_NO_NAMES: frozenset[bytes] = frozenset()
#: what _RecordStream._events is between two receive_data calls (nothing is added to it)
_NO_EVENTS: list[Any] = []
_RESPONDER = Role.RESPONDER

# RequestReceived is a frozen dataclass: its generated __init__ sets each field with
# object.__setattr__, 0.55 us a request (a quarter of parsing one whole); the slots' own
# descriptors set the same fields in under half that, and the C lane's SlotsFactory in a
# fifth of it again (0.72 -> 0.07 us). In the order of the dataclass's fields, like its
# __init__'s arguments; tests/protocol/test_server_connection.py checks the result is equal
# to one made the ordinary way.
_FIELD_NAMES = tuple(field.name for field in fields(RequestReceived))
_FIELD_SETTERS: tuple[Callable[[object, object], None], ...] = tuple(
    getattr(RequestReceived, name).__set__ for name in _FIELD_NAMES
)


def _request_received_py(
    request_id: int,
    role: Role,
    keep_conn: bool,
    params: Mapping[bytes, bytes],
    duplicate_names: frozenset[bytes],
    params_size: int,
) -> RequestReceived:
    """``RequestReceived(request_id, role, keep_conn, params, duplicate_names, params_size)``,
    cheaper."""
    event = object.__new__(RequestReceived)
    (
        set_request_id,
        set_role,
        set_keep_conn,
        set_params,
        set_duplicate_names,
        set_params_size,
    ) = _FIELD_SETTERS
    set_request_id(event, request_id)
    set_role(event, role)
    set_keep_conn(event, keep_conn)
    set_params(event, params)
    set_duplicate_names(event, duplicate_names)
    set_params_size(event, params_size)
    return event


_request_received: Final[MakeRequestReceived] = (
    SlotsFactory(RequestReceived, _FIELD_NAMES)
    if SlotsFactory is not None
    else _request_received_py
)


# StdinEnded events by request id. An event is frozen, so one per id serves every request
# with that id (nginx always uses 1); made by the dataclass's __init__, which is interpreted
# Python (events.py is not compiled), each costs ~0.4 us. Capped: the peer picks the ids.
_STDIN_ENDED_CACHED = 64
_STDIN_ENDED: dict[int, StdinEnded] = {}


def _stdin_ended(request_id: int) -> StdinEnded:
    event = _STDIN_ENDED.get(request_id)
    if event is None:
        event = StdinEnded(request_id)
        if len(_STDIN_ENDED) < _STDIN_ENDED_CACHED:
            _STDIN_ENDED[request_id] = event
    return event


# A server makes a ServerConnection per connection (per request, for a web server without
# keep-conn), always with the same settings: what __init__ derives from them is kept here
# (~1 us a connection). Keyed by our own configuration, never by peer input; capped anyway.
_SETTINGS_CACHED = 64
_ROLE_SETS: dict[frozenset[object], frozenset[Role]] = {}
_VALUES: dict[tuple[int, int, bool], dict[bytes, bytes]] = {}


def _end_request_record(request_id: int, app_status: int, status: ProtocolStatus) -> bytes:
    return pack_header(_END_REQUEST, request_id, _END_REQUEST_LEN) + END_REQUEST_BODY.pack(
        app_status, status
    )


def _empty_record(record_type: int, request_id: int) -> bytes:
    return pack_header(record_type, request_id, 0)


def _checked_status(app_status: int, protocol_status: ProtocolStatus | int) -> ProtocolStatus:
    """``protocol_status`` as a member, once both statuses are known to fit END_REQUEST."""
    if not 0 <= app_status <= _MAX_APP_STATUS:
        raise LocalProtocolError(
            f"app_status must fit in 32 bits (0 to {_MAX_APP_STATUS}), not {app_status}"
        )
    try:
        found = _STATUSES_BY_NUMBER.get(protocol_status)  # IntEnum: a member is its number
    except TypeError:  # unhashable
        found = None
    if found is None:
        raise LocalProtocolError(f"{protocol_status!r} is not a ProtocolStatus")
    return found


def _frame_request_end(
    lane: FrameEnd | None,
    request_id: int,
    stdout: Sequence[bytes | memoryview],
    app_status: int,
    status: ProtocolStatus,
    stdout_sent: bool,
    stderr_sent: bool,
) -> list[bytes | memoryview]:
    """The last stdout, the ends of the output streams and END_REQUEST, as buffers."""
    # Every request's stdout stream is ended, even an empty one (spec 6.1); only a refusal
    # that never wrote anything sends FCGI_END_REQUEST alone.
    close_stdout = stdout_sent or status is ProtocolStatus.REQUEST_COMPLETE
    if lane is not None:
        framed = lane(request_id, stdout, app_status, status, close_stdout, stderr_sent)
        if framed is not None:
            return [framed]
    buffers = frame_records(_STDOUT, request_id, stdout)
    closing = _closing_records(request_id, close_stdout or bool(buffers), stderr_sent)
    buffers.append(closing + _end_request_record(request_id, app_status, status))
    return buffers


def _closing_records(request_id: int, close_stdout: bool, stderr_sent: bool) -> bytes:
    """The empty records that end a request's output streams, before its END_REQUEST."""
    closing = _empty_record(_STDOUT, request_id) if close_stdout else b""
    if stderr_sent:
        # FCGI_STDERR is optional (spec 6.1): end it only if it was started.
        closing += _empty_record(_STDERR, request_id)
    return closing


def _failed(error: RemoteProtocolError) -> RemoteProtocolError:
    return RemoteProtocolError(f"the connection already failed ({error}); close it")


EventT = TypeVar("EventT")


class _RecordStream(Generic[EventT]):
    """What both ends share: cutting input into records, sticky errors, the events list.

    Subclasses implement ``_on_record`` and append their events to ``self._events``.
    """

    def __init__(self) -> None:
        self._reader = RecordReader()
        self._events: list[EventT] = _NO_EVENTS
        self._received_eof = False
        self._error: RemoteProtocolError | None = None

    def receive_data(self, data: bytes | bytearray | memoryview) -> list[EventT]:
        """Parse every complete record in ``data`` (plus what was buffered before).

        On the application's end, automatic replies go to ``data_to_send``: call it after
        each ``receive_data``.

        Raises:
            RemoteProtocolError: the peer broke the protocol; close the connection.
                Every later call raises it again.
        """
        if self._error is not None:
            raise _failed(self._error)
        if self._received_eof and data:
            raise LocalProtocolError("receive_data() after receive_eof()")
        events: list[EventT] = []
        self._events = events
        try:
            self._reader.feed(data, self._on_record)
        except RemoteProtocolError as error:
            self._error = error
            raise
        finally:
            # Not kept: an idle connection would hold its last request's params (up to
            # max_params_size) until its next read.
            self._events = _NO_EVENTS
        return events

    def _on_record(self, record_type: int, request_id: int, content: memoryview) -> None:
        raise NotImplementedError


# --- the application side ------------------------------------------------------------------


class _ServerRequest:
    """What the server side remembers about one active request."""

    __slots__ = ("keep_conn", "params", "reading", "role", "state", "stderr_sent", "stdout_sent")

    def __init__(self, role: Role, keep_conn: bool) -> None:
        self.role = role
        self.keep_conn = keep_conn
        self.state = RequestState.READING_PARAMS
        #: The input stream this state reads (a cache of INPUT_STREAMS[role, state]).
        self.reading: InputStream | None = INPUT_STREAMS[role, RequestState.READING_PARAMS]
        self.params = bytearray()
        self.stdout_sent = False
        self.stderr_sent = False


class ServerConnection(_RecordStream[ServerEvent]):
    """The application's end of one FastCGI transport connection.

    Args:
        roles: the roles this application plays; a request for another gets UNKNOWN_ROLE.
        multiplexed: accept several concurrent requests on this connection. If false, a
            second FCGI_BEGIN_REQUEST while one is active gets CANT_MPX_CONN.
        max_conns: answered for FCGI_MAX_CONNS in FCGI_GET_VALUES.
        max_reqs: answered for FCGI_MAX_REQS in FCGI_GET_VALUES.
        max_params_size: the most FCGI_PARAMS bytes one request may send; more is a
            RemoteProtocolError (a web server's whole environment is a few kilobytes).
            Also the most the requests still sending their params may have sent in all:
            the request whose record goes beyond is refused (OVERLOADED, counted in
            :attr:`params_overloads`), so a multiplexed connection holds no more of them
            than one that is not.
        max_active_requests: when multiplexed, a FCGI_BEGIN_REQUEST beyond this many active
            requests gets OVERLOADED.
        max_decoded_pairs: params of up to this many pairs arrive as a dict; more as an
            :class:`~fcgikit.protocol.events.EncodedParams` (about the bytes that were
            sent, a tenth of a dict's memory for tiny pairs), to decode when needed.
    """

    def __init__(
        self,
        *,
        roles: Collection[Role] = (Role.RESPONDER,),
        multiplexed: bool = False,
        max_conns: int = 100,
        max_reqs: int = 100,
        max_params_size: int = 1 << 20,
        max_active_requests: int = 100,
        max_decoded_pairs: int = MAX_DECODED_PAIRS,
    ) -> None:
        if not roles:
            raise ValueError("roles is empty: pass at least one Role")
        if max_params_size < 0:
            raise ValueError(f"max_params_size must be 0 or more, not {max_params_size}")
        if max_active_requests < 1:
            raise ValueError(f"max_active_requests must be 1 or more, not {max_active_requests}")
        if max_decoded_pairs < 0:
            raise ValueError(f"max_decoded_pairs must be 0 or more, not {max_decoded_pairs}")
        roles_given = roles if type(roles) is frozenset else None
        known_roles = _ROLE_SETS.get(roles_given) if roles_given is not None else None
        if known_roles is None:
            known_roles = frozenset(Role(role) for role in roles)
            if roles_given is not None and len(_ROLE_SETS) < _SETTINGS_CACHED:
                _ROLE_SETS[roles_given] = known_roles
        self._roles = known_roles
        #: the fast lanes (the first serves only the Responder role: see receive_data)
        self._scan_request = scan_request if Role.RESPONDER in self._roles else None
        self._frame_end = frame_end
        self._multiplexed = multiplexed
        self._max_params_size = max_params_size
        self._max_active_requests = max_active_requests
        self._max_decoded_pairs = max_decoded_pairs
        values_key = (max_conns, max_reqs, multiplexed)
        values = _VALUES.get(values_key)
        if values is None:
            values = {
                FCGI_MAX_CONNS: str(max_conns).encode("ascii"),
                FCGI_MAX_REQS: str(max_reqs).encode("ascii"),
                FCGI_MPXS_CONNS: b"1" if multiplexed else b"0",
            }
            if len(_VALUES) < _SETTINGS_CACHED:
                _VALUES[values_key] = values
        self._values = values  # read only: shared by the connections with the same settings
        super().__init__()
        self._requests: dict[int, _ServerRequest] = {}
        self._outgoing = bytearray()
        self._should_close = False
        #: every id a FCGI_BEGIN_REQUEST named on this connection (at most 65,535 of them)
        self._begun_ids: set[int] = set()
        self._stray_records = 0
        self._last_request_id = 0
        #: FCGI_PARAMS bytes held for the requests still sending them
        self._params_buffered = 0
        self._params_overloads = 0

    # -- input ------------------------------------------------------------------------------

    def receive_data(self, data: bytes | bytearray | memoryview) -> list[ServerEvent]:
        # An idle connection given a whole ordinary request: the C fast lane parses it in one
        # pass (~1 us against ~6 record by record); it declines anything else.
        scan = self._scan_request
        if (
            scan is not None
            and not self._requests
            and not self._reader.buffered
            and self._error is None
            and not self._received_eof
        ):
            found = scan(data, self._max_params_size, self._max_decoded_pairs)
            if found is not None:
                return self._ordinary_request(*found)
        return super().receive_data(data)

    def _ordinary_request(
        self,
        request_id: int,
        flags: int,
        params: dict[bytes, bytes],
        duplicate_names: set[bytes] | None,
        stdin_chunks: list[bytes],
        stdin_ended: bool,
        params_size: int,
    ) -> list[ServerEvent]:
        """What the records _speedups.scan_request found would have done, record by record:
        BEGIN_REQUEST (a Responder), the whole PARAMS stream, then FCGI_STDIN records."""
        keep_conn = bool(flags & FCGI_KEEP_CONN)
        self._begun_ids.add(request_id)
        self._last_request_id = request_id
        request = _ServerRequest(_RESPONDER, keep_conn)
        self._requests[request_id] = request
        events: list[ServerEvent] = [
            _request_received(
                request_id,
                _RESPONDER,
                keep_conn,
                params,
                frozenset(duplicate_names) if duplicate_names else _NO_NAMES,
                params_size,
            )
        ]
        for chunk in stdin_chunks:
            events.append(StdinData(request_id, chunk))
        state = RequestState.INPUT_ENDED if stdin_ended else RequestState.READING_STDIN
        request.state = state
        request.reading = INPUT_STREAMS.get((_RESPONDER, state))
        if stdin_ended:
            events.append(_stdin_ended(request_id))
        return events

    def receive_eof(self) -> None:
        """The web server closed its end.

        Raises:
            RemoteProtocolError: it closed in the middle of a record.
        """
        self._received_eof = True
        self._should_close = True
        if self._error is None and self._reader.buffered and not self._cut_input_was_moot():
            self._error = RemoteProtocolError(
                f"the web server closed the connection in the middle of a record "
                f"({self._reader.buffered} bytes of it arrived)"
            )
            raise self._error

    def _cut_input_was_moot(self) -> bool:
        """Whether the half record left at EOF is input for a request that is over.

        After an early answer (the app ended a request before reading all its body) a web
        server that wants to keep the connection cannot: it stops sending that body mid-way
        and closes. That is normal, not a protocol error.
        """
        request_id = self._reader.partial_request_id
        if request_id is None:
            request_id = self._last_request_id
        request = self._requests.get(request_id)
        return request_id in self._begun_ids and (
            request is None or request.state is RequestState.ABORTED
        )

    def data_to_send(self) -> bytes:
        """Return, and forget, the replies the connection queued by itself."""
        outgoing = bytes(self._outgoing)
        self._outgoing.clear()
        return outgoing

    @property
    def should_close(self) -> bool:
        """True once the application should close the connection.

        That is after a request without FCGI_KEEP_CONN has ended (including one refused or
        aborted), or after the web server's EOF. Write what was returned and queued first,
        and with a multiplexed connection wait for :attr:`active_request_ids` to empty.
        """
        return self._should_close

    @property
    def between_requests(self) -> bool:
        """True while the connection holds nothing of a request: every one begun has
        ended, no part of a record waits for the rest, no error, no EOF, not to be closed.
        From here a fresh ServerConnection (in another process: fcgikit's reload hands such
        connections over) would go on exactly as this one would."""
        return (
            not self._requests
            and not self._reader.buffered
            and self._error is None
            and not self._should_close
        )

    @property
    def stray_records(self) -> int:
        """Input records ignored because no FCGI_BEGIN_REQUEST ever named their id.

        Spec 3.3 says ignore them; a web server never sends them (the rest of a body the
        app did not wait for has a begun id), so a caller may log the count once.
        """
        return self._stray_records

    @property
    def params_overloads(self) -> int:
        """Requests refused (OVERLOADED) because the params arriving on this connection for
        requests still sending them went beyond ``max_params_size`` in all; a caller may log
        them."""
        return self._params_overloads

    @property
    def active_request_ids(self) -> frozenset[int]:
        """Requests begun and not yet ended (aborted ones excluded: they are over)."""
        return frozenset(
            request_id
            for request_id, request in self._requests.items()
            if request.state is not RequestState.ABORTED
        )

    def _on_record(self, record_type: int, request_id: int, content: memoryview) -> None:
        self._last_request_id = request_id
        if record_type in _INPUT_STREAM_TYPES and request_id:
            request = self._requests.get(request_id)
            if request is None:
                if request_id not in self._begun_ids:
                    self._stray_records += 1
                return  # an inactive id: spec 3.3 says ignore it
            stream = request.reading
            if stream is not None and stream.record_type == record_type:
                self._on_stream_record(request_id, request, stream, content)
            elif record_type not in IGNORED_STREAMS.get((request.role, request.state), ()):
                raise RemoteProtocolError(
                    f"{record_type_name(record_type)} record for request {request_id}, "
                    f"a {request.role.name} {request.state.value}"
                )
        elif request_id == 0:
            self._on_management_record(record_type, content)
        elif record_type == _BEGIN_REQUEST:
            self._on_begin_request(request_id, content)
        elif record_type == _ABORT_REQUEST:
            self._on_abort_request(request_id)
        elif record_type in _OUTPUT_TYPES:
            raise RemoteProtocolError(
                f"{record_type_name(record_type)} record for request {request_id}: that is "
                "an application's output, a web server never sends it"
            )
        elif record_type in _MANAGEMENT_TYPES:
            raise RemoteProtocolError(
                f"{record_type_name(record_type)} record with request id {request_id}: "
                "management records must have request id 0"
            )
        else:
            raise RemoteProtocolError(
                f"{record_type_name(record_type)} for request {request_id}: "
                "FastCGI 1.0 defines no such record type"
            )

    def _on_stream_record(
        self, request_id: int, request: _ServerRequest, stream: InputStream, content: memoryview
    ) -> None:
        record_type = stream.record_type
        if len(content):
            if record_type == _STDIN:
                self._events.append(StdinData(request_id, bytes(content)))
            elif record_type == _PARAMS:
                size = len(request.params) + len(content)
                if size > self._max_params_size:
                    raise RemoteProtocolError(
                        f"FCGI_PARAMS for request {request_id} reached {size} bytes, over the "
                        f"max_params_size cap of {self._max_params_size} bytes"
                    )
                if self._params_buffered + len(content) > self._max_params_size:
                    # Only on a multiplexed connection: alone, the request would be over
                    # its own cap first.
                    self._refuse_for_params(request_id, request)
                    return
                request.params += content
                self._params_buffered += len(content)
            else:
                self._events.append(FilterData(request_id, bytes(content)))
            return
        # The empty record: this stream has ended, move on to the next one.
        next_state = stream.state_after_end
        request.state = next_state
        request.reading = INPUT_STREAMS.get((request.role, next_state))
        if record_type == _STDIN:
            self._events.append(_stdin_ended(request_id))
        elif record_type == _PARAMS:
            self._events.append(self._request_received(request_id, request))
            if next_state is not RequestState.READING_STDIN:
                # A role that reads no FCGI_STDIN (the Authorizer) still gets an explicit end
                # of its empty body, so nothing waits for a stream that will never come.
                self._events.append(_stdin_ended(request_id))
        else:
            self._events.append(FilterDataEnded(request_id))

    def _refuse_for_params(self, request_id: int, request: _ServerRequest) -> None:
        """END_REQUEST OVERLOADED for a request still sending its params; what follows for
        it is ignored, as for any id that is no longer active."""
        del self._requests[request_id]
        self._params_buffered -= len(request.params)
        self._params_overloads += 1
        self._outgoing += _end_request_record(request_id, 0, ProtocolStatus.OVERLOADED)
        if not request.keep_conn:
            self._should_close = True

    def _request_received(self, request_id: int, request: _ServerRequest) -> RequestReceived:
        encoded = request.params
        request.params = bytearray()
        self._params_buffered -= len(encoded)
        # Decoded even when kept encoded: malformed pairs are the peer's error, said now.
        pairs = decode_pairs(encoded)
        params: Mapping[bytes, bytes]
        if len(pairs) > self._max_decoded_pairs:
            params = EncodedParams(bytes(encoded))
            distinct = len({name for name, _ in pairs})
        else:
            params = dict(pairs)
            distinct = len(params)
        duplicate_names: frozenset[bytes] = _NO_NAMES
        if distinct != len(pairs):
            seen: set[bytes] = set()
            duplicates: set[bytes] = set()
            for name, _ in pairs:
                (duplicates if name in seen else seen).add(name)
            duplicate_names = frozenset(duplicates)
        return _request_received(
            request_id, request.role, request.keep_conn, params, duplicate_names, len(encoded)
        )

    def _on_begin_request(self, request_id: int, content: memoryview) -> None:
        if len(content) != _BEGIN_REQUEST_LEN:
            raise RemoteProtocolError(
                f"FCGI_BEGIN_REQUEST for request {request_id} has {len(content)} bytes of "
                f"content, the spec says {_BEGIN_REQUEST_LEN}"
            )
        role_number, flags = BEGIN_REQUEST_BODY.unpack(content)
        keep_conn = bool(flags & FCGI_KEEP_CONN)
        self._begun_ids.add(request_id)
        existing = self._requests.get(request_id)
        if existing is not None and existing.state is not RequestState.ABORTED:
            raise RemoteProtocolError(
                f"FCGI_BEGIN_REQUEST for request {request_id}, which is already active"
            )
        refusal = self._refusal(role_number, request_id)
        if refusal is not None:
            self._outgoing += _end_request_record(request_id, 0, refusal)
            if not keep_conn:
                self._should_close = True
            return
        # _refusal let only our own roles through, so the number is a Role's
        self._requests[request_id] = _ServerRequest(_ROLES_BY_NUMBER[role_number], keep_conn)

    def _refusal(self, role_number: int, request_id: int) -> ProtocolStatus | None:
        if role_number not in self._roles:
            return ProtocolStatus.UNKNOWN_ROLE
        if not self._multiplexed and self._requests:
            return ProtocolStatus.CANT_MPX_CONN
        if len(self._requests) >= self._max_active_requests or request_id in self._requests:
            # The second case: the id's aborted request is still running in the app.
            return ProtocolStatus.OVERLOADED
        return None

    def _on_abort_request(self, request_id: int) -> None:
        request = self._requests.get(request_id)
        if request is None and request_id not in self._begun_ids:
            self._stray_records += 1
        if request is None or request.state is RequestState.ABORTED:
            return
        if request.state is RequestState.READING_PARAMS:
            del self._requests[request_id]  # the app never heard of it
            self._params_buffered -= len(request.params)
        else:
            self._events.append(RequestAborted(request_id))
            request.state = RequestState.ABORTED
            request.reading = None
        self._outgoing += _closing_records(request_id, request.stdout_sent, request.stderr_sent)
        self._outgoing += _end_request_record(request_id, 0, ProtocolStatus.REQUEST_COMPLETE)
        if not request.keep_conn:
            self._should_close = True

    def _on_management_record(self, record_type: int, content: memoryview) -> None:
        if record_type == _GET_VALUES:
            known = [
                (name, self._values[name])
                for name, _ in decode_pairs(content)
                if name in self._values
            ]
            self._outgoing += pack_records(_GET_VALUES_RESULT, 0, encode_pairs(known))
        elif record_type == _BEGIN_REQUEST:
            raise RemoteProtocolError(
                "FCGI_BEGIN_REQUEST with request id 0, which is reserved for management records"
            )
        elif record_type in _OUTPUT_TYPES:
            raise RemoteProtocolError(
                f"{record_type_name(record_type)} record with request id 0: that is an "
                "application's output, a web server never sends it"
            )
        else:
            # Spec 4.2: a management record we do not understand is answered, not refused.
            self._outgoing += pack_header(_UNKNOWN_TYPE, 0, _UNKNOWN_TYPE_LEN)
            self._outgoing += UNKNOWN_TYPE_BODY.pack(record_type)

    # -- output -----------------------------------------------------------------------------

    def _request_for_output(self, request_id: int, what: str) -> _ServerRequest | None:
        """The request to send ``what`` for, or None if it was aborted (drop the output)."""
        request = self._requests.get(request_id)
        if request is None:
            raise LocalProtocolError(
                f"cannot send {what} for request {request_id}: it is not active "
                "(never begun, refused, or already ended)"
            )
        if request.state is RequestState.ABORTED:
            return None
        if request.state is RequestState.READING_PARAMS:
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
        (see :meth:`end_request_buffers`); ``[]`` for no data or an aborted request."""
        request = self._request_for_output(request_id, "FCGI_STDOUT")
        if request is None:
            return []
        buffers = frame_records(_STDOUT, request_id, pieces)
        if buffers:
            request.stdout_sent = True
        return buffers

    def send_stderr(self, request_id: int, data: bytes) -> bytes:
        """Bytes carrying ``data`` on FCGI_STDERR; ``b""`` for empty data or an aborted request.

        Raises:
            LocalProtocolError: the request is not active, or its params are still arriving.
        """
        request = self._request_for_output(request_id, "FCGI_STDERR")
        if request is None or not data:
            return b""
        request.stderr_sent = True
        return pack_records(_STDERR, request_id, data)

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
        pieces (say a response's head and its body): the pieces are framed where they lie,
        not copied, unless they are fewer than :data:`COPY_MAX` bytes (then, with the C
        lane, it is all one buffer). ``[]`` for an aborted request. Raises what
        :meth:`end_request` raises.
        """
        request = self._request_for_output(request_id, "FCGI_END_REQUEST")
        if request is None:
            del self._requests[request_id]
            return []
        buffers = _frame_request_end(
            self._frame_end,
            request_id,
            stdout,
            app_status,
            _checked_status(app_status, protocol_status),
            request.stdout_sent,
            request.stderr_sent,
        )
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


class WholeRequest:
    """A connection that brought one ordinary request whole and will bring nothing more.

    nginx without ``fastcgi_keep_conn`` (its default), like most web servers, opens a
    connection for each request, sends FCGI_BEGIN_REQUEST for a Responder without
    FCGI_KEEP_CONN, the PARAMS and the whole FCGI_STDIN in one go, and waits for the answer
    and our close. For that connection a :class:`ServerConnection` (its state machine,
    events and bookkeeping) is more than the work itself. :meth:`parse` recognises it in the
    connection's first bytes; what is left is to frame the answer, with the same bytes a
    ServerConnection would send.

    >>> from fcgikit.protocol import ClientConnection
    >>> client = ClientConnection()
    >>> sent = client.start_request(1, {b"REQUEST_METHOD": b"GET"}) + client.end_stdin(1)
    >>> whole = WholeRequest.parse(sent, 65536)  # None where the C lane was not built
    >>> whole is None or whole.event.params == {b"REQUEST_METHOD": b"GET"}
    True
    """

    __slots__ = ("_ended", "_frame_end", "_stderr_sent", "_stdout_sent", "event", "stdin")

    def __init__(self, event: RequestReceived, stdin: list[bytes]) -> None:
        #: what a ServerConnection would have said: the request, then its body's chunks
        self.event = event
        self.stdin = stdin
        self._stdout_sent = False
        self._stderr_sent = False
        self._ended = False
        self._frame_end = frame_end

    @staticmethod
    def parse(
        data: bytes | bytearray | memoryview,
        max_params_size: int,
        max_decoded_pairs: int = MAX_DECODED_PAIRS,
    ) -> WholeRequest | None:
        """The request ``data`` holds, if it is a whole ordinary Responder request without
        FCGI_KEEP_CONN, its FCGI_STDIN ended, and nothing after it, with no more than
        ``max_decoded_pairs`` params. None for anything else (give ``data`` to a
        ServerConnection, which parses it the ordinary way, errors included), and always
        where the C lane was not built. Never raises for peer input."""
        scan = scan_request
        # BEGIN_REQUEST's flags byte is the 11th: a keep-conn connection (which may carry
        # more requests) is left to a ServerConnection without scanning its request twice.
        if scan is None or len(data) < 16 or data[1] != _BEGIN_REQUEST or data[10] & FCGI_KEEP_CONN:
            return None
        found = scan(data, max_params_size, max_decoded_pairs)
        if found is None:
            return None
        request_id, flags, params, duplicate_names, stdin, stdin_ended, params_size = found
        if flags & FCGI_KEEP_CONN or not stdin_ended:
            return None
        names = frozenset(duplicate_names) if duplicate_names else _NO_NAMES
        event = _request_received(request_id, _RESPONDER, False, params, names, params_size)
        return WholeRequest(event, stdin)

    def _check_open(self, what: str) -> None:
        if self._ended:
            raise LocalProtocolError(
                f"cannot send {what} for request {self.event.request_id}: it has ended"
            )

    def send_stdout_buffers(self, pieces: Sequence[bytes | memoryview]) -> list[bytes | memoryview]:
        """:meth:`ServerConnection.send_stdout_buffers` for this request."""
        self._check_open("FCGI_STDOUT")
        buffers = frame_records(_STDOUT, self.event.request_id, pieces)
        if buffers:
            self._stdout_sent = True
        return buffers

    def send_stderr(self, data: bytes) -> bytes:
        """:meth:`ServerConnection.send_stderr` for this request."""
        self._check_open("FCGI_STDERR")
        if not data:
            return b""
        self._stderr_sent = True
        return pack_records(_STDERR, self.event.request_id, data)

    def end_request_buffers(
        self,
        app_status: int = 0,
        protocol_status: ProtocolStatus | int = ProtocolStatus.REQUEST_COMPLETE,
        *,
        stdout: Sequence[bytes | memoryview] = (),
    ) -> list[bytes | memoryview]:
        """:meth:`ServerConnection.end_request_buffers` for this request; then close."""
        self._check_open("FCGI_END_REQUEST")
        status = _checked_status(app_status, protocol_status)
        self._ended = True
        return _frame_request_end(
            self._frame_end,
            self.event.request_id,
            stdout,
            app_status,
            status,
            self._stdout_sent,
            self._stderr_sent,
        )


# --- the web-server side -------------------------------------------------------------------


class _ClientRequest:
    """What the client side remembers about one request it started."""

    __slots__ = ("data_ended", "role", "stderr_ended", "stdin_ended", "stdout_ended")

    def __init__(self, role: int) -> None:
        self.role = role
        self.stdin_ended = False
        self.data_ended = False
        self.stdout_ended = False
        self.stderr_ended = False


def _check_request_id(request_id: int) -> None:
    if not 1 <= request_id <= _MAX_REQUEST_ID:
        raise LocalProtocolError(
            f"a request id is 1 to {_MAX_REQUEST_ID} (0 is for management records), "
            f"not {request_id}"
        )


class ClientConnection(_RecordStream[ClientEvent]):
    """The web server's end of one FastCGI transport connection.

    It starts requests and feeds their input; :meth:`receive_data` turns the application's
    records into events. Empty FCGI_STDOUT/FCGI_STDERR records (ends of stream) produce no
    event: FCGI_END_REQUEST (:class:`RequestEnded`) is the end that matters.
    """

    def __init__(self) -> None:
        super().__init__()
        self._requests: dict[int, _ClientRequest] = {}

    @property
    def active_request_ids(self) -> frozenset[int]:
        """Requests started and not yet ended by the application's FCGI_END_REQUEST."""
        return frozenset(self._requests)

    # -- output -----------------------------------------------------------------------------

    def start_request(
        self,
        request_id: int,
        params: Mapping[bytes, bytes] | Iterable[tuple[bytes, bytes]],
        *,
        role: Role | int = Role.RESPONDER,
        keep_conn: bool = False,
    ) -> bytes:
        """FCGI_BEGIN_REQUEST, then the whole FCGI_PARAMS stream.

        ``params`` may be a mapping or pairs; pairs are sent as given, duplicates included.
        ``role`` may be a number no :class:`Role` names, to test how an application refuses it.

        Raises:
            LocalProtocolError: the id is out of range or already in use.
        """
        _check_request_id(request_id)
        if request_id in self._requests:
            raise LocalProtocolError(f"request {request_id} is already active")
        if not 0 <= role <= 0xFFFF:
            raise LocalProtocolError(f"a role is a 16-bit number, not {role}")
        pairs = params.items() if isinstance(params, Mapping) else params
        encoded = encode_pairs(pairs)
        begin = pack_header(_BEGIN_REQUEST, request_id, _BEGIN_REQUEST_LEN)
        begin += BEGIN_REQUEST_BODY.pack(role, FCGI_KEEP_CONN if keep_conn else 0)
        params_records = pack_records(_PARAMS, request_id, encoded) if encoded else b""
        self._requests[request_id] = _ClientRequest(role)
        return begin + params_records + _empty_record(_PARAMS, request_id)

    def _input_request(self, request_id: int, what: str) -> _ClientRequest:
        request = self._requests.get(request_id)
        if request is None:
            raise LocalProtocolError(f"cannot send {what} for request {request_id}: not active")
        return request

    def send_stdin(self, request_id: int, data: bytes) -> bytes:
        """Bytes carrying ``data`` on FCGI_STDIN (``b""`` for empty data)."""
        request = self._input_request(request_id, "FCGI_STDIN")
        if request.stdin_ended:
            raise LocalProtocolError(f"FCGI_STDIN of request {request_id} has already ended")
        return pack_records(_STDIN, request_id, data) if data else b""

    def end_stdin(self, request_id: int) -> bytes:
        """The empty FCGI_STDIN record that ends the request body."""
        request = self._input_request(request_id, "FCGI_STDIN")
        if request.stdin_ended:
            raise LocalProtocolError(f"FCGI_STDIN of request {request_id} has already ended")
        request.stdin_ended = True
        return _empty_record(_STDIN, request_id)

    def _data_request(self, request_id: int) -> _ClientRequest:
        request = self._input_request(request_id, "FCGI_DATA")
        if request.role != Role.FILTER:
            raise LocalProtocolError(
                f"request {request_id} is not a FILTER: only a Filter reads FCGI_DATA"
            )
        if not request.stdin_ended:
            raise LocalProtocolError(
                f"FCGI_DATA of request {request_id} must follow the end of its FCGI_STDIN"
            )
        if request.data_ended:
            raise LocalProtocolError(f"FCGI_DATA of request {request_id} has already ended")
        return request

    def send_data(self, request_id: int, data: bytes) -> bytes:
        """Bytes carrying ``data`` on FCGI_DATA, the Filter's file (``b""`` for empty data)."""
        self._data_request(request_id)
        return pack_records(_DATA, request_id, data) if data else b""

    def end_data(self, request_id: int) -> bytes:
        """The empty FCGI_DATA record that ends the Filter's file."""
        self._data_request(request_id).data_ended = True
        return _empty_record(_DATA, request_id)

    def abort_request(self, request_id: int) -> bytes:
        """FCGI_ABORT_REQUEST. The request stays active until the app's FCGI_END_REQUEST."""
        self._input_request(request_id, "FCGI_ABORT_REQUEST")
        return _empty_record(_ABORT_REQUEST, request_id)

    def get_values(self, names: Iterable[bytes]) -> bytes:
        """FCGI_GET_VALUES asking for ``names`` (e.g. ``FCGI_MPXS_CONNS``)."""
        return pack_records(_GET_VALUES, 0, encode_pairs((name, b"") for name in names))

    # -- input ------------------------------------------------------------------------------

    def receive_eof(self) -> None:
        """The application closed its end.

        Raises:
            RemoteProtocolError: it closed in the middle of a record, or before ending a
                request it had been given.
        """
        self._received_eof = True
        if self._error is not None:
            return
        if self._reader.buffered:
            self._error = RemoteProtocolError(
                f"the application closed the connection in the middle of a record "
                f"({self._reader.buffered} bytes of it arrived)"
            )
        elif self._requests:
            ids = ", ".join(str(request_id) for request_id in sorted(self._requests))
            self._error = RemoteProtocolError(
                f"the application closed the connection without ending request(s) {ids}"
            )
        if self._error is not None:
            raise self._error

    def _output_request(self, record_type: int, request_id: int) -> _ClientRequest:
        request = self._requests.get(request_id)
        if request is None:
            raise RemoteProtocolError(
                f"{record_type_name(record_type)} record for request {request_id}, "
                "which is not active"
            )
        return request

    def _on_record(self, record_type: int, request_id: int, content: memoryview) -> None:
        if record_type == _STDOUT:
            request = self._output_request(record_type, request_id)
            if request.stdout_ended:
                raise RemoteProtocolError(
                    f"FCGI_STDOUT record for request {request_id} after its stream ended"
                )
            if len(content):
                self._events.append(StdoutData(request_id, bytes(content)))
            else:
                request.stdout_ended = True
        elif record_type == _STDERR:
            request = self._output_request(record_type, request_id)
            if request.stderr_ended:
                raise RemoteProtocolError(
                    f"FCGI_STDERR record for request {request_id} after its stream ended"
                )
            if len(content):
                self._events.append(StderrData(request_id, bytes(content)))
            else:
                request.stderr_ended = True
        elif record_type == _END_REQUEST:
            self._output_request(record_type, request_id)
            if len(content) != _END_REQUEST_LEN:
                raise RemoteProtocolError(
                    f"FCGI_END_REQUEST for request {request_id} has {len(content)} bytes of "
                    f"content, the spec says {_END_REQUEST_LEN}"
                )
            app_status, status_number = END_REQUEST_BODY.unpack(content)
            try:
                status = ProtocolStatus(status_number)
            except ValueError:
                raise RemoteProtocolError(
                    f"FCGI_END_REQUEST for request {request_id} has protocolStatus "
                    f"{status_number}, which FastCGI 1.0 does not define"
                ) from None
            del self._requests[request_id]
            self._events.append(RequestEnded(request_id, app_status, status))
        elif record_type in _MANAGEMENT_TYPES and request_id != 0:
            raise RemoteProtocolError(
                f"{record_type_name(record_type)} record with request id {request_id}: "
                "management records must have request id 0"
            )
        elif record_type == _GET_VALUES_RESULT:
            self._events.append(ValuesResult(dict(decode_pairs(content))))
        elif record_type == _UNKNOWN_TYPE:
            if len(content) != _UNKNOWN_TYPE_LEN:
                raise RemoteProtocolError(
                    f"FCGI_UNKNOWN_TYPE has {len(content)} bytes of content, "
                    f"the spec says {_UNKNOWN_TYPE_LEN}"
                )
            self._events.append(UnknownTypeReply(content[0]))
        else:
            raise RemoteProtocolError(
                f"{record_type_name(record_type)} record for request {request_id}: "
                "a FastCGI application never sends it"
            )
