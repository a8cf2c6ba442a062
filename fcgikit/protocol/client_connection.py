"""The web server's end of a FastCGI connection, sans I/O: what fcgikit.client and the tests
run on, and what the tests wire to a :class:`~fcgikit.protocol.ServerConnection`.

It starts requests and frames their input; :meth:`ClientConnection.receive_data` turns the
application's records into events, and holds the application to the protocol: output only
for a request it was given, nothing after a stream's end or after FCGI_END_REQUEST, a
FCGI_END_REQUEST with a status FastCGI defines.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Final

from fcgikit.errors import LocalProtocolError, RemoteProtocolError
from fcgikit.protocol.connection import RecordStream
from fcgikit.protocol.constants import FCGI_KEEP_CONN, ProtocolStatus, RecordType, Role
from fcgikit.protocol.events import (
    ClientEvent,
    RequestEnded,
    StderrData,
    StdoutData,
    UnknownTypeReply,
    ValuesResult,
)
from fcgikit.protocol.name_value_pairs import decode_pairs, encode_pairs
from fcgikit.protocol.records import (
    BEGIN_REQUEST_BODY,
    END_REQUEST_BODY,
    UNKNOWN_TYPE_BODY,
    pack_header,
    pack_records,
    record_type_name,
)

__all__ = ["ClientConnection"]

_BEGIN_REQUEST: Final = int(RecordType.BEGIN_REQUEST)
_ABORT_REQUEST: Final = int(RecordType.ABORT_REQUEST)
_END_REQUEST: Final = int(RecordType.END_REQUEST)
_PARAMS: Final = int(RecordType.PARAMS)
_STDIN: Final = int(RecordType.STDIN)
_STDOUT: Final = int(RecordType.STDOUT)
_STDERR: Final = int(RecordType.STDERR)
_DATA: Final = int(RecordType.DATA)
_GET_VALUES: Final = int(RecordType.GET_VALUES)
_GET_VALUES_RESULT: Final = int(RecordType.GET_VALUES_RESULT)
_UNKNOWN_TYPE: Final = int(RecordType.UNKNOWN_TYPE)
_MANAGEMENT_TYPES: Final = frozenset({_GET_VALUES, _GET_VALUES_RESULT, _UNKNOWN_TYPE})

_MAX_REQUEST_ID: Final = 0xFFFF
_BEGIN_REQUEST_LEN: Final = BEGIN_REQUEST_BODY.size
_END_REQUEST_LEN: Final = END_REQUEST_BODY.size
_UNKNOWN_TYPE_LEN: Final = UNKNOWN_TYPE_BODY.size


def _empty_record(record_type: int, request_id: int) -> bytes:
    return pack_header(record_type, request_id, 0)


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


class ClientConnection(RecordStream[ClientEvent]):
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
