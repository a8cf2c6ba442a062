"""Events: what a :class:`~fcgikit.protocol.Connection` tells its caller.

Each is a small frozen dataclass. Server-side events (what the web server sent us) come out of
:meth:`ServerConnection.receive_data`; client-side events (what the application sent back)
come out of :meth:`ClientConnection.receive_data`. Ends of streams are explicit events, never
an empty ``bytes`` sentinel.
"""

from __future__ import annotations

from dataclasses import dataclass

from fcgikit.protocol.constants import ProtocolStatus, Role

# --- received by the application (server side) -------------------------------------------


@dataclass(frozen=True, slots=True)
class RequestReceived:
    """BEGIN_REQUEST and the whole PARAMS stream have arrived: the app can start.

    ``params`` maps name to value, both bytes; when a name was sent more than once the last
    value wins (nginx's root recipe sends SCRIPT_NAME twice) and the name is listed in
    ``duplicate_names`` so a fixer can refuse to trust it.
    """

    request_id: int
    role: Role
    keep_conn: bool
    params: dict[bytes, bytes]
    duplicate_names: frozenset[bytes]


@dataclass(frozen=True, slots=True)
class StdinData:
    request_id: int
    data: bytes


@dataclass(frozen=True, slots=True)
class StdinEnded:
    request_id: int


@dataclass(frozen=True, slots=True)
class FilterData:
    """A chunk of the FCGI_DATA stream (FILTER role: the file to filter)."""

    request_id: int
    data: bytes


@dataclass(frozen=True, slots=True)
class FilterDataEnded:
    request_id: int


@dataclass(frozen=True, slots=True)
class RequestAborted:
    """ABORT_REQUEST for a request whose app is already running.

    The connection has already queued its END_REQUEST (see ``data_to_send``); further output
    for this id is dropped, and ``end_request`` for it returns ``b""``.
    """

    request_id: int


# --- received by the web server (client side) --------------------------------------------


@dataclass(frozen=True, slots=True)
class StdoutData:
    request_id: int
    data: bytes


@dataclass(frozen=True, slots=True)
class StderrData:
    request_id: int
    data: bytes


@dataclass(frozen=True, slots=True)
class RequestEnded:
    request_id: int
    app_status: int
    protocol_status: ProtocolStatus


@dataclass(frozen=True, slots=True)
class ValuesResult:
    values: dict[bytes, bytes]


@dataclass(frozen=True, slots=True)
class UnknownTypeReply:
    record_type: int


ServerEvent = (
    RequestReceived | StdinData | StdinEnded | FilterData | FilterDataEnded | RequestAborted
)
ClientEvent = StdoutData | StderrData | RequestEnded | ValuesResult | UnknownTypeReply
