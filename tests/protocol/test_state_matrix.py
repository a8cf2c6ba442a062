"""Every record type in every state of a request, for each role: the protocol drawn as a table.

Each row is a state request 1 has been brought to; each column a record for request 1 that
then arrives; each cell what must happen. The server is not multiplexed and plays all roles.

Columns: BEGIN_REQUEST, ABORT_REQUEST, END_REQUEST, PARAMS (with data / empty), STDIN (with
data / empty), STDOUT, STDERR, DATA (with data / empty), GET_VALUES, GET_VALUES_RESULT,
UNKNOWN_TYPE, and type 12, which FastCGI 1.0 does not define.

Cells:
    ERR     RemoteProtocolError
    -       ignored: no event, nothing sent
    new     FCGI_BEGIN_REQUEST accepted: no event yet, request 1 active
    buf     params buffered: no event yet
    mpx     refused at once with FCGI_END_REQUEST CANT_MPX_CONN (the aborted app still runs)
    end     FCGI_END_REQUEST (REQUEST_COMPLETE) sent at once; the app never heard of it
    abrt    FCGI_END_REQUEST sent at once, and RequestAborted
    rcv     RequestReceived
    rcv+    RequestReceived, then StdinEnded (a role that reads no FCGI_STDIN)
    in      StdinData           in.     StdinEnded
    dat     FilterData          dat.    FilterDataEnded
"""

from __future__ import annotations

import pytest

from fcgikit.errors import RemoteProtocolError
from fcgikit.protocol import (
    FilterData,
    FilterDataEnded,
    ProtocolStatus,
    RequestAborted,
    RequestReceived,
    Role,
    ServerConnection,
    ServerEvent,
    StdinData,
    StdinEnded,
)

from . import wire

COLUMNS = {
    # column name -> the record that arrives
    "BEG": wire.begin(1),
    "ABRT": wire.record(wire.ABORT, 1),
    "END": wire.end_request(1),
    "PAR": wire.record(wire.PARAMS, 1, wire.pair(b"B", b"2")),
    "PAR.": wire.record(wire.PARAMS, 1),
    "IN": wire.record(wire.STDIN, 1, b"x"),
    "IN.": wire.record(wire.STDIN, 1),
    "OUT": wire.record(wire.STDOUT, 1, b"x"),
    "SERR": wire.record(wire.STDERR, 1, b"x"),
    "DAT": wire.record(wire.DATA, 1, b"x"),
    "DAT.": wire.record(wire.DATA, 1),
    "GETV": wire.record(wire.GET_VALUES, 1),
    "GVR": wire.record(wire.GET_VALUES_RESULT, 1),
    "UNKN": wire.record(wire.UNKNOWN_TYPE, 1, bytes(8)),
    "T12": wire.record(12, 1),
}

MATRIX = """
role       state       BEG  ABRT END  PAR  PAR. IN   IN.  OUT  SERR DAT  DAT. GETV GVR  UNKN T12
RESPONDER  idle        new  -    ERR  -    -    -    -    ERR  ERR  -    -    ERR  ERR  ERR  ERR
RESPONDER  refused     new  -    ERR  -    -    -    -    ERR  ERR  -    -    ERR  ERR  ERR  ERR
RESPONDER  params      ERR  end  ERR  buf  rcv  ERR  ERR  ERR  ERR  ERR  ERR  ERR  ERR  ERR  ERR
RESPONDER  stdin       ERR  abrt ERR  ERR  ERR  in   in.  ERR  ERR  ERR  ERR  ERR  ERR  ERR  ERR
RESPONDER  input_ended ERR  abrt ERR  ERR  ERR  ERR  ERR  ERR  ERR  ERR  ERR  ERR  ERR  ERR  ERR
RESPONDER  aborted     mpx  -    ERR  -    -    -    -    ERR  ERR  -    -    ERR  ERR  ERR  ERR
RESPONDER  ended       new  -    ERR  -    -    -    -    ERR  ERR  -    -    ERR  ERR  ERR  ERR
AUTHORIZER idle        new  -    ERR  -    -    -    -    ERR  ERR  -    -    ERR  ERR  ERR  ERR
AUTHORIZER refused     new  -    ERR  -    -    -    -    ERR  ERR  -    -    ERR  ERR  ERR  ERR
AUTHORIZER params      ERR  end  ERR  buf  rcv+ ERR  ERR  ERR  ERR  ERR  ERR  ERR  ERR  ERR  ERR
AUTHORIZER input_ended ERR  abrt ERR  ERR  ERR  -    -    ERR  ERR  ERR  ERR  ERR  ERR  ERR  ERR
AUTHORIZER aborted     mpx  -    ERR  -    -    -    -    ERR  ERR  -    -    ERR  ERR  ERR  ERR
AUTHORIZER ended       new  -    ERR  -    -    -    -    ERR  ERR  -    -    ERR  ERR  ERR  ERR
FILTER     idle        new  -    ERR  -    -    -    -    ERR  ERR  -    -    ERR  ERR  ERR  ERR
FILTER     refused     new  -    ERR  -    -    -    -    ERR  ERR  -    -    ERR  ERR  ERR  ERR
FILTER     params      ERR  end  ERR  buf  rcv  ERR  ERR  ERR  ERR  ERR  ERR  ERR  ERR  ERR  ERR
FILTER     stdin       ERR  abrt ERR  ERR  ERR  in   in.  ERR  ERR  ERR  ERR  ERR  ERR  ERR  ERR
FILTER     data        ERR  abrt ERR  ERR  ERR  ERR  ERR  ERR  ERR  dat  dat. ERR  ERR  ERR  ERR
FILTER     input_ended ERR  abrt ERR  ERR  ERR  ERR  ERR  ERR  ERR  ERR  ERR  ERR  ERR  ERR  ERR
FILTER     aborted     mpx  -    ERR  -    -    -    -    ERR  ERR  -    -    ERR  ERR  ERR  ERR
FILTER     ended       new  -    ERR  -    -    -    -    ERR  ERR  -    -    ERR  ERR  ERR  ERR
"""

ALL_ROLES = (Role.RESPONDER, Role.AUTHORIZER, Role.FILTER)


def _bring_to(state: str, role: Role) -> ServerConnection:
    """A server whose request 1, of ``role``, is in ``state`` (and nothing queued to send)."""
    server = ServerConnection(roles=ALL_ROLES)
    begun = wire.begin(1, role) + wire.record(wire.PARAMS, 1, wire.pair(b"A", b"1"))
    stdin_ended = wire.record(wire.STDIN, 1) if role != Role.AUTHORIZER else b""
    data_ended = wire.record(wire.DATA, 1) if role == Role.FILTER else b""
    prefixes = {
        "idle": b"",
        "refused": wire.begin(1, role=42, keep_conn=True),
        "params": begun,
        "stdin": begun + wire.record(wire.PARAMS, 1),
        "data": begun + wire.record(wire.PARAMS, 1) + stdin_ended,
        "input_ended": begun + wire.record(wire.PARAMS, 1) + stdin_ended + data_ended,
        "aborted": begun + wire.record(wire.PARAMS, 1) + wire.record(wire.ABORT, 1),
        "ended": begun + wire.record(wire.PARAMS, 1) + stdin_ended + data_ended,
    }
    server.receive_data(prefixes[state])
    if state == "ended":
        server.end_request(1)
    server.data_to_send()
    return server


def _expected_events(cell: str, role: Role) -> list[ServerEvent]:
    received = RequestReceived(1, role, False, {b"A": b"1"}, frozenset(), params_size=4)
    events: dict[str, list[ServerEvent]] = {
        "rcv": [received],
        "rcv+": [received, StdinEnded(1)],
        "abrt": [RequestAborted(1)],
        "in": [StdinData(1, b"x")],
        "in.": [StdinEnded(1)],
        "dat": [FilterData(1, b"x")],
        "dat.": [FilterDataEnded(1)],
    }
    return events.get(cell, [])


def _expected_sent(cell: str) -> bytes:
    if cell in ("end", "abrt"):
        return wire.end_request(1, 0, ProtocolStatus.REQUEST_COMPLETE)
    if cell == "mpx":
        return wire.end_request(1, 0, ProtocolStatus.CANT_MPX_CONN)
    return b""


def _expected_active(cell: str, state: str) -> bool:
    if cell in ("new", "buf", "rcv", "rcv+", "in", "in.", "dat", "dat."):
        return True
    if cell in ("end", "abrt", "mpx"):
        return False
    return state not in ("idle", "refused", "aborted", "ended")  # "-": unchanged


def _matrix_cases() -> list[object]:
    header, *rows = MATRIX.strip().splitlines()
    columns = header.split()[2:]
    assert columns == list(COLUMNS)
    cases: list[object] = []
    for row in rows:
        role_name, state, *cells = row.split()
        assert len(cells) == len(columns), row
        for column, cell in zip(columns, cells, strict=True):
            cases.append(
                pytest.param(
                    Role[role_name], state, column, cell, id=f"{role_name}-{state}-{column}"
                )
            )
    return cases


@pytest.mark.parametrize(("role", "state", "column", "cell"), _matrix_cases())
def test_state_matrix(role: Role, state: str, column: str, cell: str) -> None:
    server = _bring_to(state, role)
    if cell == "ERR":
        with pytest.raises(RemoteProtocolError):
            server.receive_data(COLUMNS[column])
        return
    assert server.receive_data(COLUMNS[column]) == _expected_events(cell, role)
    assert server.data_to_send() == _expected_sent(cell)
    assert (1 in server.active_request_ids) == _expected_active(cell, state)


def test_matrix_covers_every_record_type() -> None:
    types = {record[1] for record in COLUMNS.values()}
    assert types == set(range(1, 13))


# What the matrix cannot show in one step.


def test_buffered_params_are_all_delivered() -> None:
    server = _bring_to("params", Role.RESPONDER)
    server.receive_data(COLUMNS["PAR"])
    [received] = server.receive_data(COLUMNS["PAR."])
    assert isinstance(received, RequestReceived)
    assert received.params == {b"A": b"1", b"B": b"2"}


def test_second_stream_record_after_end_of_params_is_refused() -> None:
    server = _bring_to("stdin", Role.RESPONDER)
    with pytest.raises(RemoteProtocolError, match="FCGI_PARAMS record for request 1"):
        server.receive_data(COLUMNS["PAR."])
