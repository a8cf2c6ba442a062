"""The events a request's input becomes: RequestReceived from its params, StdinData from its
body's records (:class:`StdinRuns`), StdinEnded.

Both ways a request is read make them here, so they are the same events: record by record
(:class:`~fcgikit.protocol.ServerConnection`), and whole, from what a one-pass scan found
(``scan_request``, or ``scan_request_text`` and its Python twin: a ServerConnection's
ordinary request, :func:`scan_events`, and a
:class:`~fcgikit.protocol.whole_request.WholeRequest`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final, cast

from fcgikit.protocol.constants import Role
from fcgikit.protocol.events import (
    EncodedParams,
    RequestReceived,
    ServerEvent,
    StdinData,
    StdinEnded,
    TextParams,
)
from fcgikit.protocol.lanes import request_received
from fcgikit.protocol.name_value_pairs import decode_pairs, decode_params

__all__ = [
    "MAX_DECODED_PAIRS",
    "StdinRuns",
    "StdinViews",
    "received_from_params",
    "received_from_scan",
    "scan_events",
    "stdin_ended_event",
]

#: ServerConnection's default max_decoded_pairs. Web servers send 20 to 40 params; with up
#: to 128 a dict costs at most ~15 KiB more than the bytes sent. More stay encoded.
MAX_DECODED_PAIRS = 128

_NO_NAMES: Final[frozenset[bytes]] = frozenset()
_RESPONDER: Final = Role.RESPONDER
_request_received: Final = request_received
#: the place of a run's StdinData among the events until the run ends (StdinRuns.end)
_STDIN_RUN_PENDING: Final = StdinData(0, b"")


def received_from_params(
    request_id: int, role: Role, keep_conn: bool, encoded: bytes | bytearray, max_decoded_pairs: int
) -> RequestReceived:
    """The event of a request whose FCGI_PARAMS stream was ``encoded``: its params a dict, or
    an EncodedParams when they are more than ``max_decoded_pairs`` pairs.

    Raises:
        RemoteProtocolError: the pairs are malformed (said now, even when kept encoded).
    """
    decoded, count = decode_params(encoded)
    params: Mapping[bytes, bytes] = decoded
    if count > max_decoded_pairs:
        params = EncodedParams(bytes(encoded))
    duplicate_names: frozenset[bytes] = _NO_NAMES
    if len(decoded) != count:  # a name sent twice: which ones (the middleware may refuse)
        seen: set[bytes] = set()
        duplicates: set[bytes] = set()
        for name, _ in decode_pairs(encoded):
            (duplicates if name in seen else seen).add(name)
        duplicate_names = frozenset(duplicates)
    return _request_received(request_id, role, keep_conn, params, duplicate_names, len(encoded))


def received_from_scan(
    request_id: int,
    keep_conn: bool,
    params: dict[bytes, bytes] | TextParams,
    duplicate_names: set[bytes] | None,
    params_size: int,
) -> RequestReceived:
    """The event of the Responder request ``scan_request`` found (lanes.py), or
    ``scan_request_text`` (its params made TextParams)."""
    names = frozenset(duplicate_names) if duplicate_names else _NO_NAMES
    return _request_received(request_id, _RESPONDER, keep_conn, params, names, params_size)


def scan_events(
    request_id: int,
    keep_conn: bool,
    params: dict[bytes, bytes] | TextParams,
    duplicate_names: set[bytes] | None,
    stdin_chunks: list[bytes],
    stdin_ended: bool,
    params_size: int,
) -> list[ServerEvent]:
    """The events of the records a scan found (ScannedRequest, lanes.py), as a
    ServerConnection reading them would make them: the request, its body so far in one
    StdinData (as StdinRuns makes of a read's records), and its end if it came."""
    # (the factory called here, not through received_from_scan, and the shared StdinEnded
    # looked up here: interpreted, each call a layer costs more than what it does)
    names = frozenset(duplicate_names) if duplicate_names else _NO_NAMES
    events: list[ServerEvent] = [
        _request_received(request_id, _RESPONDER, keep_conn, params, names, params_size)
    ]
    if stdin_chunks:
        body = stdin_chunks[0] if len(stdin_chunks) == 1 else b"".join(stdin_chunks)
        events.append(StdinData(request_id, body))
    if stdin_ended:
        events.append(_STDIN_ENDED.get(request_id) or stdin_ended_event(request_id))
    return events


# StdinEnded events by request id. An event is frozen, so one per id serves every request
# with that id (nginx always uses 1); events.py is not compiled, and its dataclasses'
# __init__ is interpreted Python. Capped: the peer picks the ids.
STDIN_ENDED_CACHED = 64
_STDIN_ENDED: dict[int, StdinEnded] = {}


def stdin_ended_event(request_id: int) -> StdinEnded:
    """``StdinEnded(request_id)``, shared by the requests with that id."""
    event = _STDIN_ENDED.get(request_id)
    if event is None:
        event = StdinEnded(request_id)
        if len(_STDIN_ENDED) < STDIN_ENDED_CACHED:
            _STDIN_ENDED[request_id] = event
    return event


class StdinViews:
    """A run of one request's FCGI_STDIN contents, not joined: views of the bytes given to
    :meth:`~fcgikit.protocol.ServerConnection.receive_data_keeping_views` (and of the
    reader's own copy of a record that began in an earlier read), valid for as long as the
    caller leaves those bytes unchanged. Made only by that call, whose caller copies each
    byte once, into what its reader asks for (fcgikit.server.handover)."""

    __slots__ = ("request_id", "views")

    def __init__(self, request_id: int, views: list[memoryview]) -> None:
        self.request_id = request_id
        self.views = views


class StdinRuns:
    """One StdinData for each run of STDIN records of one request in a read: a web server
    streams a large body in many records (nginx: 32 KiB each), and each event is a hand-off
    to the app's thread waiting for the body, a wake-up and a turn of the GIL. The run's
    contents are copied out of the read once, joined, when it ends; or, with
    ``keep_views``, not at all: the run is a :class:`StdinViews`.

    A ServerConnection's, made at its first STDIN record read record by record; it holds a
    run only during a ``receive_data`` call, which ends the run (:meth:`end`) or drops it.
    """

    def __init__(self) -> None:
        #: the contents of the STDIN records of request ``request_id`` that make the event
        #: at ``at``, views of the data being received; empty between two receive_data calls
        self.views: list[memoryview] = []
        self.request_id = 0
        self.at = 0
        #: end a run as a StdinViews (during receive_data_keeping_views)
        self.keep_views = False

    def add(self, events: list[ServerEvent], request_id: int, data: memoryview) -> None:
        """The contents of a STDIN record that ``events`` (a read's, so far) is followed by."""
        if self.views:
            if self.request_id == request_id and self.at == len(events) - 1:
                self.views.append(data)
                return
            self.end(events)
        self.request_id = request_id
        self.at = len(events)
        self.views.append(data)
        events.append(_STDIN_RUN_PENDING)

    def end(self, events: list[ServerEvent]) -> None:
        """Put the run's StdinData in its place among ``events``."""
        views = self.views
        self.views = []
        if self.keep_views:
            # (the one caller that asks for these reads them as such: not a ServerEvent)
            events[self.at] = cast(ServerEvent, StdinViews(self.request_id, views))
            return
        data = views[0].tobytes() if len(views) == 1 else b"".join(views)
        events[self.at] = StdinData(self.request_id, data)
