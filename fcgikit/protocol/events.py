"""Events: what a connection's ``receive_data`` tells its caller.

Each is a small frozen dataclass with ``__slots__``. Server-side events (what the web server
sent us) come out of :meth:`~fcgikit.protocol.ServerConnection.receive_data`; client-side
events (what the application sent back) come out of
:meth:`~fcgikit.protocol.ClientConnection.receive_data`.
Ends of streams are explicit events, never an empty ``bytes`` sentinel.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import FrozenInstanceError, dataclass
from typing import Any, TypeVar, dataclass_transform

from fcgikit.protocol.constants import ProtocolStatus, Role
from fcgikit.protocol.records import decode_pairs, find_pair_value

# --- how an event is made -------------------------------------------------------------------
#
# Every process that serves imports these classes at start-up, and ``@dataclass(frozen=True,
# slots=True)`` writes and compiles five methods for each of them then, and builds each class
# twice (benchmarks/RESULTS.md, "Start-up"). So each event declares its slots and an
# ``__init__`` itself, and :func:`_event` gives it what such a dataclass would have had:
# equality and hashing by its fields, the same repr, FrozenInstanceError on assignment,
# pickling and copying; then ``@dataclass`` with nothing to generate, so that
# ``dataclasses.fields``, ``replace`` and ``asdict`` and ``match`` work as they did.

_E = TypeVar("_E")
#: how an event's ``__init__`` stores a field past the ``__setattr__`` that refuses to
_set = object.__setattr__


def _fields(event: Any) -> tuple[Any, ...]:
    return tuple([getattr(event, name) for name in event.__match_args__])


def _repr(event: Any) -> str:
    shown = ", ".join(f"{name}={getattr(event, name)!r}" for name in event.__match_args__)
    return f"{type(event).__qualname__}({shown})"


def _eq(event: Any, other: object) -> object:
    if other.__class__ is event.__class__:
        return _fields(event) == _fields(other)
    return NotImplemented


def _hash(event: Any) -> int:
    return hash(_fields(event))


def _refuse_assignment(event: Any, name: str, value: object = None) -> None:
    raise FrozenInstanceError(f"cannot assign to field {name!r}")


def _refuse_deletion(event: Any, name: str) -> None:
    raise FrozenInstanceError(f"cannot delete field {name!r}")


def _reduce(event: Any) -> tuple[type, tuple[Any, ...]]:
    return type(event), _fields(event)


_EVENT_METHODS = {
    "__repr__": _repr,
    "__eq__": _eq,
    "__hash__": _hash,
    "__setattr__": _refuse_assignment,
    "__delattr__": _refuse_deletion,
    "__reduce__": _reduce,
}


# for type checkers: a frozen dataclass, whose fields cannot be assigned
@dataclass_transform(frozen_default=True)
def _event(cls: type[_E]) -> type[_E]:
    """A frozen dataclass of ``cls``, which declares its ``__slots__``, each field's type (in
    field order), a docstring and an ``__init__`` that stores each argument with
    :data:`_set`."""
    for name, method in _EVENT_METHODS.items():
        setattr(cls, name, method)
    return dataclass(init=False, repr=False, eq=False)(cls)


# --- received by the application (server side) -------------------------------------------


class EncodedParams(Mapping[bytes, bytes]):
    """A request's params as FCGI_PARAMS carried them: the name-value pairs, still encoded.

    A request with many params gets them in this form, so that it holds about the bytes the
    web server sent while it waits for a thread; a dict costs ten times that for tiny pairs
    (an object per name and per value, and the dict's entries). It reads like the dict it
    stands for (the last value of a name wins). Until something needs them all, a look-up
    scans the pairs without decoding them; iterating or ``len`` decode them into a dict,
    which it keeps and reads from then on. :meth:`decode` gives a dict of them and keeps
    nothing: call it when the request runs.
    """

    __slots__ = ("_decoded", "encoded")

    def __init__(self, encoded: bytes) -> None:
        #: the pairs, well-formed (the connection checked them as they arrived)
        self.encoded = encoded
        self._decoded: dict[bytes, bytes] | None = None

    def decode(self) -> dict[bytes, bytes]:
        """The params as the dict a request with fewer of them gets: a new one each time."""
        if self._decoded is not None:
            return dict(self._decoded)
        return dict(decode_pairs(self.encoded))

    def _as_dict(self) -> dict[bytes, bytes]:
        decoded = self._decoded
        if decoded is None:
            decoded = self._decoded = dict(decode_pairs(self.encoded))
        return decoded

    def __getitem__(self, name: bytes) -> bytes:
        if self._decoded is not None:
            return self._decoded[name]
        value = find_pair_value(self.encoded, name)
        if value is None:
            raise KeyError(name)
        return value

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._as_dict())

    def __len__(self) -> int:
        return len(self._as_dict())

    def __repr__(self) -> str:
        return f"EncodedParams(<{len(self.encoded)} bytes>)"


@_event
class RequestReceived:
    """BEGIN_REQUEST and the whole PARAMS stream have arrived: the app can start.

    ``params`` maps name to value, both bytes: a dict, or for a request with more than
    ``max_decoded_pairs`` of them (see :class:`~fcgikit.protocol.ServerConnection`) an
    :class:`EncodedParams`. When a name was sent more than once the last value wins
    (nginx's root recipe sends SCRIPT_NAME twice) and the name is listed in
    ``duplicate_names`` so a fixer can refuse to trust it. ``params_size`` is how many bytes
    the encoded pairs took on the wire.
    """

    __slots__ = ("duplicate_names", "keep_conn", "params", "params_size", "request_id", "role")
    request_id: int
    role: Role
    keep_conn: bool
    params: Mapping[bytes, bytes]
    duplicate_names: frozenset[bytes]
    params_size: int

    def __init__(
        self,
        request_id: int,
        role: Role,
        keep_conn: bool,
        params: Mapping[bytes, bytes],
        duplicate_names: frozenset[bytes],
        params_size: int = 0,
    ) -> None:
        _set(self, "request_id", request_id)
        _set(self, "role", role)
        _set(self, "keep_conn", keep_conn)
        _set(self, "params", params)
        _set(self, "duplicate_names", duplicate_names)
        _set(self, "params_size", params_size)


@_event
class StdinData:
    """A chunk of the request body (FCGI_STDIN)."""

    __slots__ = ("data", "request_id")
    request_id: int
    data: bytes

    def __init__(self, request_id: int, data: bytes) -> None:
        _set(self, "request_id", request_id)
        _set(self, "data", data)


@_event
class StdinEnded:
    """The request body is complete (the empty FCGI_STDIN record)."""

    __slots__ = ("request_id",)
    request_id: int

    def __init__(self, request_id: int) -> None:
        _set(self, "request_id", request_id)


@_event
class FilterData:
    """A chunk of the FCGI_DATA stream (FILTER role: the file to filter)."""

    __slots__ = ("data", "request_id")
    request_id: int
    data: bytes

    def __init__(self, request_id: int, data: bytes) -> None:
        _set(self, "request_id", request_id)
        _set(self, "data", data)


@_event
class FilterDataEnded:
    """The FCGI_DATA stream is complete."""

    __slots__ = ("request_id",)
    request_id: int

    def __init__(self, request_id: int) -> None:
        _set(self, "request_id", request_id)


@_event
class RequestAborted:
    """ABORT_REQUEST for a request whose app is already running.

    The connection has already queued its END_REQUEST (see ``data_to_send``); further output
    for this id is dropped, and ``end_request`` for it returns ``b""``.
    """

    __slots__ = ("request_id",)
    request_id: int

    def __init__(self, request_id: int) -> None:
        _set(self, "request_id", request_id)


# --- received by the web server (client side) --------------------------------------------


@_event
class StdoutData:
    """A chunk of the response (FCGI_STDOUT): its headers, then its body."""

    __slots__ = ("data", "request_id")
    request_id: int
    data: bytes

    def __init__(self, request_id: int, data: bytes) -> None:
        _set(self, "request_id", request_id)
        _set(self, "data", data)


@_event
class StderrData:
    """What the app wrote to its error stream (FCGI_STDERR)."""

    __slots__ = ("data", "request_id")
    request_id: int
    data: bytes

    def __init__(self, request_id: int, data: bytes) -> None:
        _set(self, "request_id", request_id)
        _set(self, "data", data)


@_event
class RequestEnded:
    """FCGI_END_REQUEST: the app's exit status and the protocol's."""

    __slots__ = ("app_status", "protocol_status", "request_id")
    request_id: int
    app_status: int
    protocol_status: ProtocolStatus

    def __init__(self, request_id: int, app_status: int, protocol_status: ProtocolStatus) -> None:
        _set(self, "request_id", request_id)
        _set(self, "app_status", app_status)
        _set(self, "protocol_status", protocol_status)


@_event
class ValuesResult:
    """FCGI_GET_VALUES_RESULT: the values the application answered."""

    __slots__ = ("values",)
    values: dict[bytes, bytes]

    def __init__(self, values: dict[bytes, bytes]) -> None:
        _set(self, "values", values)


@_event
class UnknownTypeReply:
    """FCGI_UNKNOWN_TYPE: the application did not know a management record's type."""

    __slots__ = ("record_type",)
    record_type: int

    def __init__(self, record_type: int) -> None:
        _set(self, "record_type", record_type)


ServerEvent = (
    RequestReceived | StdinData | StdinEnded | FilterData | FilterDataEnded | RequestAborted
)
ClientEvent = StdoutData | StderrData | RequestEnded | ValuesResult | UnknownTypeReply
