"""Coverage-guided fuzzing of the sans-I/O protocol: ``ServerConnection`` and ``ClientConnection``.

    python fuzz/run.py connection CORPUS_DIR fuzz/seeds/connection -atheris_runs=1000000

The first two bytes of an input choose the setup; the rest is what the peer sends:

* byte 0, bits 0-1: which end (server plain, server multiplexed, server with every role and
  a 64-byte params cap, client); bits 2-3: when the simulated app answers a request (at once,
  at the end of its body, at EOF, or half at once and half at EOF); bits 4-7: how the
  stream is cut into chunks (whole, or pieces of 1 to 15 bytes).
* byte 1: for the client end, the role of the request it started.

What must hold (h11's rule, and the issue's): peer input raises nothing but
RemoteProtocolError, a well-behaved application never gets a LocalProtocolError, and what
the server end writes is valid FastCGI: well-formed records, at most one FCGI_END_REQUEST per
FCGI_BEGIN_REQUEST, one for every request the app was given, and no output for a request
after its END_REQUEST; the fast name-value pair decoder agrees with the checked one on
every stream; and a request the direct lane's parse (``WholeRequest.parse``, with the C lane
under ``FUZZ_C_LANES=1``) takes is exactly what a ServerConnection makes of the same bytes.
``fuzz/replay.py`` replays a corpus without atheris (for CI or a regression).
"""

from __future__ import annotations

import contextlib
from collections import Counter

from fcgikit.errors import RemoteProtocolError
from fcgikit.protocol import (
    ClientConnection,
    RequestAborted,
    RequestReceived,
    Role,
    ServerConnection,
    StdinData,
    StdinEnded,
    WholeRequest,
    name_value_pairs,
)
from fcgikit.protocol.record_reader import RecordReader
from fcgikit.protocol.records import END_REQUEST_BODY
from fcgikit.protocol.state import RequestState


class Finding(AssertionError):
    """An invariant broke: this is a bug, not a fuzzer artefact."""


_STDOUT, _STDERR, _END_REQUEST, _VALUES_RESULT, _UNKNOWN_TYPE = 6, 7, 3, 10, 11
_BEGIN_REQUEST = 1


class OutputChecker:
    """Checks the bytes a ServerConnection writes, record by record, as they are produced."""

    def __init__(self, *, strict_order: bool = True) -> None:
        #: check "no output after END_REQUEST"; the server harness turns it off, because the
        #: channel queues the connection's own replies (a refusal's END_REQUEST) after it
        #: starts the requests of the same chunk, so a peer that reuses an id inside one
        #: chunk (which no web server does) sees them in another order.
        self.strict_order = strict_order
        self.reader = RecordReader()
        self.ends: Counter[int] = Counter()
        self.stdout_closed: set[int] = set()
        self.finished: set[int] = set()

    def begun(self, request_id: int) -> None:
        """The app was given a new request under this id: its output may start again."""
        self.stdout_closed.discard(request_id)
        self.finished.discard(request_id)

    def feed(self, data: bytes) -> None:
        self.reader.feed(data, self._record)

    def _record(self, record_type: int, request_id: int, content: memoryview) -> None:
        if record_type in (_VALUES_RESULT, _UNKNOWN_TYPE):
            if request_id != 0:
                raise Finding(f"management reply type {record_type} with id {request_id}")
            if record_type == _UNKNOWN_TYPE and len(content) != 8:
                raise Finding("FCGI_UNKNOWN_TYPE body is not 8 bytes")
            return
        if request_id == 0:
            raise Finding(f"record type {record_type} sent with request id 0")
        if record_type == _END_REQUEST:
            if len(content) != END_REQUEST_BODY.size:
                raise Finding("END_REQUEST body is not 8 bytes")
            _, status = END_REQUEST_BODY.unpack(content)
            if status > 3:
                raise Finding(f"END_REQUEST with protocolStatus {status}")
            self.ends[request_id] += 1
            self.finished.add(request_id)
            self.stdout_closed.discard(request_id)
        elif self.strict_order and request_id in self.finished:
            # (a second END_REQUEST can be legal: a refused BEGIN reusing an aborted id;
            # the per-id END_REQUEST count is checked against the BEGINs instead)
            raise Finding(f"record type {record_type} for request {request_id} after END_REQUEST")
        elif record_type == _STDOUT:
            if request_id in self.stdout_closed:
                raise Finding(f"FCGI_STDOUT for request {request_id} after its end")
            if not len(content):
                self.stdout_closed.add(request_id)
        elif record_type != _STDERR:
            raise Finding(f"the server end wrote record type {record_type}")


def begins_in(stream: bytes) -> Counter[int]:
    """How many well-formed FCGI_BEGIN_REQUESTs each id got (an upper bound on END_REQUESTs)."""
    counts: Counter[int] = Counter()

    def on_record(record_type: int, request_id: int, content: memoryview) -> None:
        if record_type == _BEGIN_REQUEST and len(content) == 8:
            counts[request_id] += 1

    with contextlib.suppress(RemoteProtocolError):
        RecordReader().feed(stream, on_record)
    return counts


def chunks(stream: bytes, selector: int) -> list[bytes]:
    if selector == 0:
        return [stream]
    return [stream[i : i + selector] for i in range(0, len(stream), selector)] or [b""]


def run_server(config: int, stream: bytes) -> None:
    kind = config & 3
    answer_at = (config >> 2) & 3
    if kind == 0:
        conn = ServerConnection()
    elif kind == 1:
        conn = ServerConnection(multiplexed=True, max_active_requests=4)
    else:
        conn = ServerConnection(
            roles=(Role.RESPONDER, Role.AUTHORIZER, Role.FILTER),
            multiplexed=True,
            max_params_size=64,  # small, so the cap is reachable by short inputs
        )
    checker = OutputChecker()
    running: list[int] = []  # requests the app was given and has not ended, in order
    given: Counter[int] = Counter()

    def answer(request_id: int) -> None:
        running.remove(request_id)
        checker.feed(conn.send_stdout(request_id, b"Status: 200 OK\r\n\r\n"))
        checker.feed(conn.send_stderr(request_id, b"note"))
        checker.feed(conn.end_request(request_id, stdout=b"body"))

    failed = False
    try:
        for piece in chunks(stream, config >> 4):
            events = conn.receive_data(piece)
            checker.feed(conn.data_to_send())
            for event in events:
                if isinstance(event, RequestReceived):
                    checker.begun(event.request_id)
                    given[event.request_id] += 1
                    running.append(event.request_id)
                    if answer_at == 0 or (answer_at == 3 and len(running) % 2):
                        answer(event.request_id)
                elif (
                    isinstance(event, StdinEnded) and answer_at == 1 and event.request_id in running
                ):
                    answer(event.request_id)
                elif isinstance(event, RequestAborted) and not given[event.request_id]:
                    raise Finding(f"abort for request {event.request_id} the app never had")
        conn.receive_eof()
    except RemoteProtocolError:
        failed = True
    checker.feed(conn.data_to_send())
    # A well-behaved app ends everything it was given, aborted or not, even after an error.
    for request_id in list(running):
        answer(request_id)
    # A request whose params never ended was never given to the app and may stay active;
    # any other active one was lost. (The state is private; a harness may look.)
    lost = [
        request_id
        for request_id, request in conn._requests.items()
        if request.state is not RequestState.READING_PARAMS
    ]
    if not failed and lost:
        raise Finding(f"ids still active after the app ended them all: {lost}")
    if checker.reader.buffered:
        raise Finding("the server end wrote half a record")
    begun = begins_in(stream)
    for request_id, count in checker.ends.items():
        if count > begun[request_id]:
            raise Finding(
                f"{count} END_REQUESTs for request {request_id}, begun {begun[request_id]} times"
            )
    for request_id, count in given.items():
        if checker.ends[request_id] < count:
            raise Finding(f"request {request_id} given to the app {count}x, ended fewer times")
    if failed:
        try:
            conn.receive_data(b"x")
        except RemoteProtocolError:
            pass
        else:
            raise Finding("a failed connection accepted more data")


def run_client(role_byte: int, config: int, stream: bytes) -> None:
    conn = ClientConnection()
    role = (Role.RESPONDER, Role.AUTHORIZER, Role.FILTER)[role_byte % 3]
    conn.start_request(1, {b"REQUEST_METHOD": b"GET"}, role=role, keep_conn=True)
    if role_byte & 4:
        conn.start_request(2, {}, keep_conn=True)
    try:
        for piece in chunks(stream, config >> 4):
            conn.receive_data(piece)
        conn.receive_eof()
    except RemoteProtocolError:
        pass


def _decoded(decode: object, data: bytes) -> object:
    try:
        return decode(data)  # type: ignore[operator]
    except RemoteProtocolError:
        return RemoteProtocolError


def check_pair_decoders(data: bytes) -> None:
    """The fast name-value decoder and the checked one agree on every input (same pairs, or
    both RemoteProtocolError)."""
    checked = getattr(name_value_pairs, "_decode_pairs_checked", None)
    if checked is None:
        return
    fast, careful = _decoded(name_value_pairs.decode_pairs, data), _decoded(checked, data)
    if fast != careful:
        raise Finding(f"decode_pairs gives {fast!r}, the checked decoder {careful!r}")


def check_whole_request(stream: bytes) -> None:
    """A request WholeRequest.parse takes (no FCGI_KEEP_CONN, its body whole, nothing else)
    is what a ServerConnection, record by record, makes of the same bytes; for anything
    else it answers None, and never raises."""
    whole = WholeRequest.parse(stream, 1 << 20)
    if whole is None:
        return
    conn = ServerConnection()
    conn._scan_request = None  # record by record: the specification
    try:
        events = conn.receive_data(stream)
    except RemoteProtocolError as error:
        raise Finding(f"WholeRequest.parse took what a connection refuses: {error}") from None
    request_id = whole.event.request_id
    expected = [
        whole.event,
        *(StdinData(request_id, chunk) for chunk in whole.stdin),
        StdinEnded(request_id),
    ]
    if events != expected or conn.data_to_send() or conn.stray_records:
        raise Finding(f"WholeRequest.parse found {expected!r}, a connection {events!r}")


def connection_input(data: bytes) -> None:
    if len(data) < 2:
        return
    check_pair_decoders(data[2:])
    config, second, stream = data[0], data[1], data[2:]
    if config & 3 == 3:
        run_client(second, config, stream)
    else:
        check_whole_request(stream)
        run_server(config, stream)
