"""The application's end of a FastCGI connection, sans I/O: what fcgikit's server runs on.

It follows the tables of :mod:`fcgikit.protocol.state`: each record is looked up there by
its type and where its request id stands, and does what the table says. Why it is shaped
like this:

* Some replies are the protocol's own business, not the application's: FCGI_GET_VALUES,
  unknown management types, refused FCGI_BEGIN_REQUESTs and the FCGI_END_REQUEST that
  answers FCGI_ABORT_REQUEST. They are queued and handed out by ``data_to_send``, so the
  application only ever sees requests it must run; what they say is management.py's.
* Request ids follow the spec's "Managing Request IDs" (section 3.3): an id is active from
  FCGI_BEGIN_REQUEST until the application's FCGI_END_REQUEST, and records for an inactive id
  are ignored. One guard goes beyond the spec: after FCGI_ABORT_REQUEST the id is inactive
  for the web server, but the application may still be running and will still call
  ``end_request`` with that id, so a new FCGI_BEGIN_REQUEST reusing it is refused (OVERLOADED,
  or CANT_MPX_CONN on a connection that does not multiplex) until the application lets go.
* An idle connection given an ordinary request whole (the usual read) hands it to a one-pass
  scan first (lanes.py: ``scan_request``, or with ``names`` ``scan_request_text``, whose
  Python twin runs where the C was not built), which parses it or declines; the
  record-by-record path below is the specification, errors included.

This module is the input: it reads the records, follows the table, and hands on what the
requests send. Admitting, refusing and aborting them, and the replies the connection queues by
itself, are its base class's,
:class:`~fcgikit.protocol.server_admission.ServerAdmission` (server_admission.py). What the
application sends for them, and their end, which frees their ids, is that one's base class,
:class:`~fcgikit.protocol.server_output.ServerOutput` (server_output.py), which holds the table
of active requests they all share. The framing of output, the events made of input (a read's
STDIN records joined among them), the replies to management records and the rules themselves
live in output.py, input_events.py, management.py and state.py.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Final, cast

from fcgikit.errors import RemoteProtocolError
from fcgikit.protocol.connection import RecordStream
from fcgikit.protocol.constants import RecordType, Role
from fcgikit.protocol.events import (
    FilterData,
    FilterDataEnded,
    ServerEvent,
)
from fcgikit.protocol.input_events import (
    MAX_DECODED_PAIRS,
    StdinRuns,
    StdinViews,
    received_from_params,
    scan_events,
    stdin_ended_event,
)
from fcgikit.protocol.lanes import (
    NameTable,
    ScanRequestText,
    cut_run,
    make_text_params,
    scan_request,
    scan_request_text,
)
from fcgikit.protocol.management import (
    get_values_result,
    known_roles,
    unknown_type_result,
    values_answered,
)
from fcgikit.protocol.records import record_type_name
from fcgikit.protocol.server_admission import ServerAdmission
from fcgikit.protocol.server_output import ServerRequest
from fcgikit.protocol.state import (
    ERROR_MESSAGES,
    IGNORED_STREAMS,
    INPUT_STREAMS,
    OTHER_TYPES,
    RULES,
    Action,
    InputStream,
    RequestState,
    Standing,
)
from fcgikit.protocol.text_scan import scan_request_text_py

__all__ = ["MAX_DECODED_PAIRS", "ServerConnection"]

# Plain ints for the per-record comparisons: cheaper than IntEnum members on the hot path.
_PARAMS: Final = int(RecordType.PARAMS)
_STDIN: Final = int(RecordType.STDIN)
#: (an Enum member read from its class costs about a function call, interpreted)
_READING_STDIN: Final = RequestState.READING_STDIN
_cut_run: Final = cut_run

# The table's rows and cells the per-record dispatch looks at (state.RULES).
_MANAGEMENT: Final = RULES[Standing.MANAGEMENT]
_INACTIVE: Final = RULES[Standing.INACTIVE]
_BEGIN: Final = Action.BEGIN
_BEGIN_HELD: Final = Action.BEGIN_HELD
_IGNORE: Final = Action.IGNORE
_ABORT: Final = Action.ABORT
_FORGET: Final = Action.FORGET
_STREAM: Final = Action.STREAM


class ServerConnection(ServerAdmission):
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
        names: the caller's verdicts on param names (lanes.NameTable): a request the scan
            takes, each name with a verdict, comes with TextParams, decoded as text in the
            same pass (a WSGI server's environ); ``room``: keys the caller adds to them.
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
        names: NameTable | None = None,
        room: int = 0,
    ) -> None:
        if not roles:
            raise ValueError("roles is empty: pass at least one Role")
        if max_params_size < 0:
            raise ValueError(f"max_params_size must be 0 or more, not {max_params_size}")
        if max_active_requests < 1:
            raise ValueError(f"max_active_requests must be 1 or more, not {max_active_requests}")
        if max_decoded_pairs < 0:
            raise ValueError(f"max_decoded_pairs must be 0 or more, not {max_decoded_pairs}")
        self._roles = known_roles(roles)
        #: the one-pass scans, which serve only the Responder role (see receive_data)
        responder = Role.RESPONDER in self._roles
        self._scan_request = scan_request if responder and names is None else None
        self._scan_text: ScanRequestText | None = None
        if responder and names is not None:
            self._scan_text = scan_request_text or scan_request_text_py
        self._names: NameTable = {} if names is None else names
        self._room = room
        self._multiplexed = multiplexed
        self._max_params_size = max_params_size
        self._max_active_requests = max_active_requests
        self._max_decoded_pairs = max_decoded_pairs
        #: read only: shared by the connections with the same settings
        self._values = values_answered(max_conns, max_reqs, multiplexed)
        super().__init__()
        self._outgoing = bytearray()
        self._begun_ids = set()
        self._stray_records = 0
        self._last_request_id = 0
        self._params_buffered = 0
        self._params_overloads = 0
        #: joins a read's STDIN records into events; made at the first one (see
        #: _on_stream_record), as many connections only take the C lane's whole requests
        self._stdin_runs: StdinRuns | None = None

    def receive_data(self, data: bytes | bytearray | memoryview) -> list[ServerEvent]:
        # An idle connection given a whole ordinary request: a scan parses it in one pass;
        # it declines anything else (see the module's docstring).
        scan, scan_text = self._scan_request, self._scan_text
        if (
            (scan is not None or scan_text is not None)
            and not self._requests
            and not self._reader.buffered
            and self._error is None
            and not self._received_eof
        ):
            max_size, max_pairs = self._max_params_size, self._max_decoded_pairs
            if scan_text is not None:
                text_found = scan_text(data, max_size, max_pairs, self._names, self._room)
                if text_found is not None:
                    rid, keep_conn, (encoded, text), duplicates, stdin, ended, size = text_found
                    self._ordinary_request(rid, keep_conn, ended)
                    params = make_text_params(encoded, None, text)
                    return scan_events(rid, keep_conn, params, duplicates, stdin, ended, size)
            elif scan is not None:
                found = scan(data, max_size, max_pairs)
                if found is not None:
                    self._ordinary_request(found[0], found[1], found[5])
                    return scan_events(*found)
        try:
            # (named, not super(): interpreted, super() makes an object at each call)
            events = RecordStream.receive_data(self, data)
        except BaseException:
            if self._stdin_runs is not None:
                self._stdin_runs.views = []  # views of data the caller may reuse: never kept
            raise
        runs = self._stdin_runs
        if runs is not None and runs.views:
            runs.end(events)
        return events

    def receive_data_keeping_views(self, data: memoryview) -> list[ServerEvent | StdinViews]:
        """:meth:`receive_data`, but each run of a request's FCGI_STDIN contents comes as a
        :class:`~fcgikit.protocol.input_events.StdinViews` (views of ``data``, not joined
        into a StdinData), for a caller that copies them once into what its reader asks for
        and leaves ``data`` unchanged while it holds them. The rest is receive_data's.

        Raises:
            RemoteProtocolError: as receive_data.
        """
        runs = self._stdin_runs
        if runs is None:
            runs = self._stdin_runs = StdinRuns()
        runs.keep_views = True
        try:
            return cast("list[ServerEvent | StdinViews]", self.receive_data(data))
        finally:
            runs.keep_views = False

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

    def _on_record(self, record_type: int, request_id: int, content: memoryview) -> None:
        self._last_request_id = request_id
        request = self._requests.get(request_id)  # id 0 never holds one
        if request is not None:
            stream = request.reading
            if stream is not None and stream.record_type == record_type:
                self._on_stream_record(request_id, request, stream, content)  # the usual
                return
            row = RULES[request.state]
        else:
            row = _INACTIVE if request_id else _MANAGEMENT
        action = row.get(record_type) or row[OTHER_TYPES]
        if action is _BEGIN or action is _BEGIN_HELD:
            self._on_begin_request(request_id, content, action is _BEGIN_HELD)
        elif action is _IGNORE:
            if request_id not in self._begun_ids:
                self._stray_records += 1
        elif action is _ABORT or action is _FORGET:
            assert request is not None  # the table aborts only active requests
            self._on_abort_request(request_id, request, action is _FORGET)
        elif action is _STREAM:
            assert request is not None  # likewise for their streams
            if record_type not in IGNORED_STREAMS.get((request.role, request.state), ()):
                raise RemoteProtocolError(
                    f"{record_type_name(record_type)} record for request {request_id}, "
                    f"a {request.role.name} {request.state.value}"
                )
        elif action is Action.ANSWER_VALUES:
            self._outgoing += get_values_result(content, self._values)
        elif action is Action.ANSWER_UNKNOWN_TYPE:
            self._outgoing += unknown_type_result(record_type)
        else:
            raise RemoteProtocolError(
                ERROR_MESSAGES[action].format(
                    record=record_type_name(record_type),
                    request_id=request_id,
                    addressed=f"for request {request_id}" if request_id else "with request id 0",
                )
            )

    def _on_stream_record(
        self, request_id: int, request: ServerRequest, stream: InputStream, content: memoryview
    ) -> None:
        record_type = stream.record_type
        length = len(content)
        if length:
            if record_type == _STDIN:
                runs = self._stdin_runs
                if runs is None:
                    runs = self._stdin_runs = StdinRuns()
                runs.add(self._events, request_id, content)
                # the rest of the run in this read: to the run, without a call each
                self._reader.follow(_cut_run, _STDIN, request_id, runs.views)
            elif record_type == _PARAMS:
                size = len(request.params) + length
                if size > self._max_params_size:
                    raise RemoteProtocolError(
                        f"FCGI_PARAMS for request {request_id} reached {size} bytes, over the "
                        f"max_params_size cap of {self._max_params_size} bytes"
                    )
                if self._params_buffered + length > self._max_params_size:
                    # Only on a multiplexed connection: alone, the request would be over
                    # its own cap first.
                    self._refuse_for_params(request_id, request)
                    return
                request.params += content
                self._params_buffered += length
            else:
                self._events.append(FilterData(request_id, bytes(content)))
            return
        # The empty record: this stream has ended, move on to the next one.
        next_state = stream.state_after_end
        request.state = next_state
        request.reading = INPUT_STREAMS.get((request.role, next_state))
        if record_type == _STDIN:
            self._events.append(stdin_ended_event(request_id))
        elif record_type == _PARAMS:
            encoded = request.params
            request.params = bytearray()
            self._params_buffered -= len(encoded)
            self._events.append(
                received_from_params(
                    request_id, request.role, request.keep_conn, encoded, self._max_decoded_pairs
                )
            )
            if next_state is not _READING_STDIN:
                # A role that reads no FCGI_STDIN (the Authorizer) still gets an explicit end
                # of its empty body, so nothing waits for a stream that will never come.
                self._events.append(stdin_ended_event(request_id))
        else:
            self._events.append(FilterDataEnded(request_id))
