"""A connection that brought one ordinary request whole, and nothing more before its answer.

nginx without ``fastcgi_keep_conn`` (its default), like most web servers, opens a connection
for each request, sends FCGI_BEGIN_REQUEST for a Responder without FCGI_KEEP_CONN, the PARAMS
and the whole FCGI_STDIN in one go, and waits for the answer and our close. For such a
connection the server needs nothing of a :class:`~fcgikit.protocol.ServerConnection` after
the first read: :meth:`WholeRequest.parse` recognises the request in the connection's first
bytes, and the WholeRequest, being the request's
:class:`~fcgikit.protocol.output.RequestOutput`, frames the answer with the very bytes a
ServerConnection would send. A keep-conn web server (nginx with ``fastcgi_keep_conn``) sends
its first request on a new connection the same way, and nothing more before the answer (it
multiplexes nothing); what it sends after is a ServerConnection's to read.

The parse is a ServerConnection's: :func:`scan_request_py` gives the bytes to a fresh one,
record by record, and accepts only the ordinary shape. The C lane ``scan_request``
(lanes.py) answers the same in one pass over the buffer; a property test holds it to the
Python (tests/protocol/test_speedups.py). Given a table of names, the parse decodes the
params as text in that pass (``scan_request_text``, and its one-pass Python twin in
text_scan.py): what a WSGI server makes its environ of, with no dict of bytes made first.
"""

from __future__ import annotations

from typing import Final

from fcgikit.errors import RemoteProtocolError
from fcgikit.protocol.constants import FCGI_HEADER_LEN, FCGI_KEEP_CONN, RecordType, Role
from fcgikit.protocol.events import RequestReceived, StdinData, StdinEnded
from fcgikit.protocol.input_events import MAX_DECODED_PAIRS, received_from_scan
from fcgikit.protocol.lanes import (
    NameTable,
    ScannedRequest,
    make_text_params,
    request_received,
    scan_request,
    scan_request_text,
)
from fcgikit.protocol.output import RequestOutput
from fcgikit.protocol.server_connection import ServerConnection
from fcgikit.protocol.text_scan import scan_request_text_py

__all__ = ["WholeRequest", "scan_request_py"]

_BEGIN_REQUEST: Final = int(RecordType.BEGIN_REQUEST)
#: where a record's header has its content length (two bytes) and its padding length
_CONTENT_LENGTH_AT: Final = 4
_PADDING_LENGTH_AT: Final = 6
#: BEGIN_REQUEST's flags byte, when it is the first record: after its header and the role
_FIRST_FLAGS_AT: Final = FCGI_HEADER_LEN + 2
# Read per request by parse (compiled, a Final is read natively, a global imported from
# another module looked up by name): the shortest request, the flag, and the text scan's lane
# and its TextParams' factory, fixed when the lanes load (the plain scan's lane stays a
# global: a test plugs it in and out).
_SHORTEST: Final = 2 * FCGI_HEADER_LEN
_KEEP_CONN: Final = FCGI_KEEP_CONN
_SCAN_TEXT: Final = scan_request_text or scan_request_text_py
_MAKE_TEXT_PARAMS: Final = make_text_params
_REQUEST_RECEIVED: Final = request_received
_RESPONDER: Final = Role.RESPONDER
_NO_NAMES: Final[frozenset[bytes]] = frozenset()


def _whole_records(data: bytes | bytearray | memoryview) -> bool:
    """Whether ``data`` is whole records and nothing more. Only the headers are read: an
    upload's first read ends in a cut record, and it is declined before any of it is parsed
    or copied (the connection it goes to next copies it once, as it must)."""
    end = len(data)
    offset = 0
    while end - offset >= FCGI_HEADER_LEN:
        length = data[offset + _CONTENT_LENGTH_AT] << 8 | data[offset + _CONTENT_LENGTH_AT + 1]
        offset += FCGI_HEADER_LEN + length + data[offset + _PADDING_LENGTH_AT]
    return offset == end


def _read_ordinary_request(
    data: bytes | bytearray | memoryview, max_params_size: int, max_decoded_pairs: int
) -> tuple[RequestReceived, list[bytes], bool] | None:
    """The ordinary Responder request ``data`` holds, as its event, its body's chunks and
    whether the body ended; None for anything else (see :func:`scan_request_py`)."""
    if not _whole_records(data):
        return None
    connection = ServerConnection(
        max_params_size=max_params_size, max_decoded_pairs=max_decoded_pairs
    )
    connection._scan_request = None  # record by record: the specification
    try:
        events = connection.receive_data(data)
    except RemoteProtocolError:
        return None
    if not events or connection.data_to_send() or connection.stray_records:
        return None
    received = events[0]
    if type(received) is not RequestReceived or type(received.params) is not dict:
        return None
    stdin_chunks: list[bytes] = []
    stdin_ended = False
    for event in events[1:]:
        if type(event) is StdinData and not stdin_ended:
            stdin_chunks.append(event.data)
        elif type(event) is StdinEnded and not stdin_ended:
            stdin_ended = True
        else:
            return None
    return received, stdin_chunks, stdin_ended


def scan_request_py(
    data: bytes | bytearray | memoryview, max_params_size: int, max_decoded_pairs: int
) -> ScannedRequest | None:
    """The ordinary Responder request ``data`` holds, as ``(request_id, keep_conn, params,
    duplicate_names, stdin_chunks, stdin_ended, params_size)``; None for anything else.

    Ordinary means: a ServerConnection given ``data`` (with these caps) takes
    FCGI_BEGIN_REQUEST for a Responder, its whole FCGI_PARAMS stream (no more than
    ``max_decoded_pairs`` pairs, so they come as a dict), then FCGI_STDIN records, maybe up
    to the end of the stream, and nothing else: no error, no reply queued, no record
    ignored, no record cut short. The Python twin of the C lane ``scan_request``.
    """
    found = _read_ordinary_request(data, max_params_size, max_decoded_pairs)
    if found is None:
        return None
    received, stdin_chunks, stdin_ended = found
    params = received.params
    assert type(params) is dict  # _read_ordinary_request takes no other
    duplicate_names = set(received.duplicate_names) or None
    return (
        received.request_id,
        received.keep_conn,
        params,
        duplicate_names,
        stdin_chunks,
        stdin_ended,
        received.params_size,
    )


class WholeRequest(RequestOutput):
    """An ordinary request that arrived whole on a connection of its own, and its output.

    >>> from fcgikit.protocol import ClientConnection
    >>> client = ClientConnection()
    >>> sent = client.start_request(1, {b"REQUEST_METHOD": b"GET"}) + client.end_stdin(1)
    >>> whole = WholeRequest.parse(sent, 65536)
    >>> whole.event.params, whole.stdin
    ({b'REQUEST_METHOD': b'GET'}, [])
    >>> [type(buffer) for buffer in whole.end_request_buffers(stdout=(b"Status: 204\\r\\n\\r\\n",))]
    [<class 'bytes'>]
    """

    __slots__ = ("event", "keep_conn", "stdin")

    def __init__(
        self, event: RequestReceived, stdin: list[bytes], scanned: tuple[int, bool] | None = None
    ) -> None:
        # scanned: the event's request_id and keep_conn, from the caller that made it (compiled,
        # each read of the interpreted event's attribute is a look-up by name)
        request_id, keep_conn = (event.request_id, event.keep_conn) if scanned is None else scanned
        # (not super().__init__: interpreted, the super object costs more than the call)
        RequestOutput.__init__(self, request_id)
        #: what a ServerConnection would have said: the request, then its body's chunks
        self.event = event
        self.stdin = stdin
        #: the event's keep_conn
        self.keep_conn = keep_conn

    @staticmethod
    def parse(
        data: bytes | bytearray | memoryview,
        max_params_size: int,
        max_decoded_pairs: int = MAX_DECODED_PAIRS,
        *,
        keep_conn: bool = False,
        names: NameTable | None = None,
        room: int = 0,
    ) -> WholeRequest | None:
        """The request ``data`` holds, if it is an ordinary Responder request (see
        :func:`scan_request_py`) without FCGI_KEEP_CONN (or with it too: ``keep_conn``), its
        FCGI_STDIN ended, and nothing after it. None for anything else: give ``data`` to a
        ServerConnection, which parses it the ordinary way, errors included. Never raises
        for peer input. With ``names``, its event's params are :class:`TextParams`, decoded
        in the same pass (``room``: keys the caller will add to their ``text``)."""
        # A keep-conn connection the caller does not take is left to a ServerConnection
        # without reading its request twice.
        if (
            len(data) < _SHORTEST
            or data[1] != _BEGIN_REQUEST
            or (data[_FIRST_FLAGS_AT] & _KEEP_CONN and not keep_conn)
        ):
            return None
        if names is not None:
            text_found = _SCAN_TEXT(data, max_params_size, max_decoded_pairs, names, room)
            if text_found is not None:
                if not text_found[5]:
                    return None
                request_id, keep_conn, (encoded, text), duplicates, stdin, _, size = text_found
                # (the event made here, not by received_from_scan: a call less, interpreted)
                event = _REQUEST_RECEIVED(
                    request_id,
                    _RESPONDER,
                    keep_conn,
                    _MAKE_TEXT_PARAMS(encoded, None, text),
                    frozenset(duplicates) if duplicates else _NO_NAMES,
                    size,
                )
                return WholeRequest(event, stdin, (request_id, keep_conn))
            # Declined: not an ordinary request, or a name ``names`` has no verdict on yet (a
            # server's first requests). The plain reading below takes the latter, its params
            # bytes, whose decoding gives the table its verdicts; and the C lane's names are
            # the objects its next scans hand out, so the table's keys are found by identity.
        scan = scan_request
        if scan is None:  # the Python: a ServerConnection's reading, as it made it
            read = _read_ordinary_request(data, max_params_size, max_decoded_pairs)
            if read is None or not read[2]:
                return None
            return WholeRequest(read[0], read[1])
        found = scan(data, max_params_size, max_decoded_pairs)
        if found is None:
            return None
        request_id, keep_conn, params_dict, duplicate_names, stdin, stdin_ended, size = found
        if not stdin_ended:
            return None
        event = received_from_scan(request_id, keep_conn, params_dict, duplicate_names, size)
        return WholeRequest(event, stdin, (request_id, keep_conn))
