"""The application side of FastCGI as data: what each record does, wherever its request is.

h11 keeps its whole state machine in one file, as tables, so the protocol can be read (and
drawn) off them; this is the same for FastCGI. Two tables make it.

**RULES**: what a record does, by its type (columns) and where its request id stands (rows):
id 0 (management records), an id no request holds (never begun, refused, or ended), or the
state of the request that holds it. This drawing of it is :func:`drawing`'s
(tests/protocol/test_state_table.py keeps the two the same):

.. code-block:: text

    standing    BEGIN ABORT END   PARAM STDIN OUT   SERR  DATA  GETV  GVR   UNKN  other
    management  !id   unkn  !out  unkn  unkn  !out  !out  unkn  vals  unkn  unkn  unkn
    inactive    begin -     !out  -     -     !out  !out  -     !mgt  !mgt  !mgt  !typ
    params      !act  end   !out  read  read  !out  !out  read  !mgt  !mgt  !mgt  !typ
    stdin       !act  abort !out  read  read  !out  !out  read  !mgt  !mgt  !mgt  !typ
    data        !act  abort !out  read  read  !out  !out  read  !mgt  !mgt  !mgt  !typ
    input_ended !act  abort !out  read  read  !out  !out  read  !mgt  !mgt  !mgt  !typ
    aborted     held  -     !out  -     -     !out  !out  -     !mgt  !mgt  !mgt  !typ

Columns: the record types by number, FCGI_BEGIN_REQUEST (1) to FCGI_UNKNOWN_TYPE (11), and
every type FastCGI 1.0 does not define. Cells:

    begin   a new request: accepted, or refused with FCGI_END_REQUEST (a role this application
            does not play: UNKNOWN_ROLE; a second request on a connection that does not
            multiplex: CANT_MPX_CONN; too many: OVERLOADED)
    held    refused like ``begin``, and OVERLOADED at least: the app of the aborted request
            still runs under this id, and will still end it (beyond the spec, which frees
            the id at the abort)
    end     FCGI_END_REQUEST at once; the app never heard of the request (its params were
            still arriving)
    abort   FCGI_END_REQUEST at once, and RequestAborted; the app's further output is dropped
    read    an input stream record: see INPUT_STREAMS
    vals    answered with FCGI_GET_VALUES_RESULT
    unkn    answered with FCGI_UNKNOWN_TYPE (spec 4.2: a management record not understood)
    -       ignored (spec 3.3: records for an inactive id), and counted when no
            FCGI_BEGIN_REQUEST ever named the id (``ServerConnection.stray_records``)
    !...    RemoteProtocolError: FCGI_BEGIN_REQUEST for id 0 (!id) or an active id (!act),
            an application's output (!out), a management type with an id (!mgt), a type
            FastCGI 1.0 does not define (!typ)

**INPUT_STREAMS**: the input streams an active request reads, strictly one after another
(spec 6.1, "nearly sequential marshalling"), by role. A ``stream`` record of the type its
state reads is taken (data, or the empty record that ends the stream and moves the request
on); IGNORED_STREAMS drops a few others; any other is a RemoteProtocolError.

============  ==============================  ==============================
role          streams, in order               source
============  ==============================  ==============================
RESPONDER     PARAMS, STDIN                   spec 6.2
AUTHORIZER    PARAMS                          spec 6.3
FILTER        PARAMS, STDIN, DATA             spec 6.4
============  ==============================  ==============================

The Authorizer reads no FCGI_STDIN: the spec's Authorizer section never mentions it, and
Apache (mod_fastcgi, mod_authnz_fcgi: "the responder owns the request body") never sends it.
Some other servers send an empty one anyway, so in an Authorizer FCGI_STDIN is dropped rather
than refused, and the connection reports an empty body (``StdinEnded``) as soon as the
params are in, so an application never waits for a stream that will not come.

tests/protocol/test_state_matrix.py holds the connection to these tables record by record,
for every role.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Final

from fcgikit.protocol.constants import RecordType, Role


class RequestState(enum.Enum):
    """Where an active request is. An inactive id (never begun, or ended) has no state."""

    READING_PARAMS = "reading FCGI_PARAMS"
    READING_STDIN = "reading FCGI_STDIN"
    READING_DATA = "reading FCGI_DATA"
    INPUT_ENDED = "past the end of its input"
    #: FCGI_ABORT_REQUEST arrived after the app started: END_REQUEST is already queued, and
    #: the app's further output is dropped until it calls ``end_request``.
    ABORTED = "aborted"

    # Enum's __hash__ is Python code (a hash of the member's name), run for every look-up of
    # INPUT_STREAMS[role, state]. Members are singletons compared by identity, so the
    # identity hash (C) agrees with ==.
    __hash__ = object.__hash__


class Standing(enum.Enum):
    """Where a record's request id stands when no active request holds it."""

    MANAGEMENT = "request id 0, the management records'"
    INACTIVE = "an id no active request holds"

    __hash__ = object.__hash__  # as RequestState's


class Action(enum.Enum):
    """What a record does (the cells of RULES; the values are the drawing's)."""

    BEGIN = "begin"
    BEGIN_HELD = "held"
    FORGET = "end"
    ABORT = "abort"
    STREAM = "read"
    ANSWER_VALUES = "vals"
    ANSWER_UNKNOWN_TYPE = "unkn"
    IGNORE = "-"
    ERROR_RESERVED_ID = "!id"
    ERROR_ACTIVE = "!act"
    ERROR_OUTPUT = "!out"
    ERROR_MANAGEMENT_ID = "!mgt"
    ERROR_UNDEFINED_TYPE = "!typ"


class InputStream:
    """The one stream a state reads, and the state its empty (end-of-stream) record leads to.

    A plain class: a dataclass would have Python write and compile its methods at every
    start, for six instances that nothing compares or prints."""

    __slots__ = ("record_type", "state_after_end")

    def __init__(self, record_type: RecordType, state_after_end: RequestState) -> None:
        self.record_type: Final = record_type
        self.state_after_end: Final = state_after_end

    def __repr__(self) -> str:
        return f"InputStream({self.record_type!r}, {self.state_after_end!r})"


#: The key of a row's cell for every record type FastCGI 1.0 does not define.
OTHER_TYPES: Final = 0

_R, _A = RequestState, Action
_OUTPUT = {RecordType.END_REQUEST, RecordType.STDOUT, RecordType.STDERR}
_MANAGEMENT = {RecordType.GET_VALUES, RecordType.GET_VALUES_RESULT, RecordType.UNKNOWN_TYPE}
_STREAMS = {RecordType.PARAMS, RecordType.STDIN, RecordType.DATA}


def _row(
    begin: Action, abort: Action, streams: Action, other: Action, management: Action
) -> dict[int, Action]:
    """A row of RULES: the types a web server sends to a request, then the rest."""
    row = {int(RecordType.BEGIN_REQUEST): begin, int(RecordType.ABORT_REQUEST): abort}
    row.update({int(record_type): streams for record_type in _STREAMS})
    row.update({int(record_type): _A.ERROR_OUTPUT for record_type in _OUTPUT})
    row.update({int(record_type): management for record_type in _MANAGEMENT})
    row[OTHER_TYPES] = other
    return row


_ACTIVE = _row(
    _A.ERROR_ACTIVE, _A.ABORT, _A.STREAM, _A.ERROR_UNDEFINED_TYPE, _A.ERROR_MANAGEMENT_ID
)

#: standing -> record type (a number; OTHER_TYPES for the undefined ones) -> what it does.
RULES: Final[Mapping[Standing | RequestState, Mapping[int, Action]]] = {
    Standing.MANAGEMENT: {
        **_row(
            _A.ERROR_RESERVED_ID,
            _A.ANSWER_UNKNOWN_TYPE,
            _A.ANSWER_UNKNOWN_TYPE,
            _A.ANSWER_UNKNOWN_TYPE,
            _A.ANSWER_UNKNOWN_TYPE,
        ),
        int(RecordType.GET_VALUES): _A.ANSWER_VALUES,
    },
    Standing.INACTIVE: _row(
        _A.BEGIN, _A.IGNORE, _A.IGNORE, _A.ERROR_UNDEFINED_TYPE, _A.ERROR_MANAGEMENT_ID
    ),
    _R.READING_PARAMS: {**_ACTIVE, int(RecordType.ABORT_REQUEST): _A.FORGET},
    _R.READING_STDIN: _ACTIVE,
    _R.READING_DATA: _ACTIVE,
    _R.INPUT_ENDED: _ACTIVE,
    # The web server may have had input in flight when it sent FCGI_ABORT_REQUEST.
    _R.ABORTED: _row(
        _A.BEGIN_HELD, _A.IGNORE, _A.IGNORE, _A.ERROR_UNDEFINED_TYPE, _A.ERROR_MANAGEMENT_ID
    ),
}

#: What the RemoteProtocolError of each error cell says (``{addressed}``: "for request N", or
#: "with request id 0").
ERROR_MESSAGES: Final[Mapping[Action, str]] = {
    Action.ERROR_RESERVED_ID: "{record} with request id 0, which is reserved for management "
    "records",
    Action.ERROR_ACTIVE: "{record} for request {request_id}, which is already active",
    Action.ERROR_OUTPUT: "{record} record {addressed}: that is an application's output, a web "
    "server never sends it",
    Action.ERROR_MANAGEMENT_ID: "{record} record with request id {request_id}: management "
    "records must have request id 0",
    Action.ERROR_UNDEFINED_TYPE: "{record} for request {request_id}: FastCGI 1.0 defines no "
    "such record type",
}

_PARAMS, _STDIN, _DATA = RecordType.PARAMS, RecordType.STDIN, RecordType.DATA

#: (role, state) -> the input stream the request reads in that state. A ``stream`` record
#: of any other type for an active request is a protocol error, unless IGNORED_STREAMS
#: lists it.
INPUT_STREAMS: Final[Mapping[tuple[Role, RequestState], InputStream]] = {
    (Role.RESPONDER, _R.READING_PARAMS): InputStream(_PARAMS, _R.READING_STDIN),
    (Role.RESPONDER, _R.READING_STDIN): InputStream(_STDIN, _R.INPUT_ENDED),
    (Role.AUTHORIZER, _R.READING_PARAMS): InputStream(_PARAMS, _R.INPUT_ENDED),
    (Role.FILTER, _R.READING_PARAMS): InputStream(_PARAMS, _R.READING_STDIN),
    (Role.FILTER, _R.READING_STDIN): InputStream(_STDIN, _R.READING_DATA),
    (Role.FILTER, _R.READING_DATA): InputStream(_DATA, _R.INPUT_ENDED),
}

#: (role, state) -> ``stream`` records dropped without complaint in that state.
IGNORED_STREAMS: Final[Mapping[tuple[Role, RequestState], frozenset[RecordType]]] = {
    (Role.AUTHORIZER, _R.INPUT_ENDED): frozenset({_STDIN}),
}


def rule(standing: Standing | RequestState, record_type: int) -> Action:
    """What a record of ``record_type`` does for a request id standing so (RULES)."""
    row = RULES[standing]
    action = row.get(record_type)
    return row[OTHER_TYPES] if action is None else action


#: the drawing's names for the columns (record types, then OTHER_TYPES) and the rows
_COLUMNS: Final = (
    *("BEGIN", "ABORT", "END", "PARAM", "STDIN", "OUT", "SERR", "DATA"),
    *("GETV", "GVR", "UNKN", "other"),
)
_ROW_NAMES: Final[Mapping[Standing | RequestState, str]] = {
    Standing.MANAGEMENT: "management",
    Standing.INACTIVE: "inactive",
    _R.READING_PARAMS: "params",
    _R.READING_STDIN: "stdin",
    _R.READING_DATA: "data",
    _R.INPUT_ENDED: "input_ended",
    _R.ABORTED: "aborted",
}


def drawing() -> str:
    """RULES as a table of text, one row per standing (the module's docstring shows it)."""
    types = [*(int(record_type) for record_type in RecordType), OTHER_TYPES]
    lines = [f"{'standing':<12}" + "".join(f"{name:<6}" for name in _COLUMNS)]
    for standing, name in _ROW_NAMES.items():
        cells = [rule(standing, record_type).value for record_type in types]
        lines.append(f"{name:<12}" + "".join(f"{cell:<6}" for cell in cells))
    return "\n".join(line.rstrip() for line in lines)
