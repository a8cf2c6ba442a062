"""Events: what a connection's ``receive_data`` tells its caller.

Each is a small frozen dataclass with ``__slots__``. Server-side events (what the web server
sent us) come out of :meth:`~fcgikit.protocol.ServerConnection.receive_data`; client-side
events (what the application sent back) come out of
:meth:`~fcgikit.protocol.ClientConnection.receive_data`.
Ends of streams are explicit events, never an empty ``bytes`` sentinel.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from fcgikit.protocol.constants import ProtocolStatus, Role
from fcgikit.protocol.frozen import frozen_dataclass, set_field
from fcgikit.protocol.name_value_pairs import decode_pairs, find_pair_value

# Every process that serves imports these classes at start-up: each declares its slots and an
# ``__init__`` itself (the server makes events for every request), and
# :func:`~fcgikit.protocol.frozen.frozen_dataclass` gives it the rest of a frozen dataclass without
# generating code for it (see there).

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


class TextParams(EncodedParams):
    """A request's params as FCGI_PARAMS carried them, and decoded once more as text.

    It reads as its EncodedParams does (bytes, the pairs as they came). ``text`` holds the
    pairs' values decoded latin-1 (one character a byte, nothing lost), each under the str
    the caller's table of names gave its name (:meth:`WholeRequest.parse
    <fcgikit.protocol.whole_request.WholeRequest.parse>`), the pairs the table leaves out
    left out: the caller's to take (setting ``text`` to None) and change, so that what it
    makes of the params is decoded once, in the same pass as the records, with no dict of
    bytes between.
    """

    __slots__ = ("text",)

    def __init__(self, encoded: bytes, text: dict[str, str]) -> None:
        # (not super().__init__: interpreted, the call costs more than the two fields)
        self.encoded = encoded
        self._decoded = None
        #: the caller's, until it takes it: the Mapping never reads it
        self.text: dict[str, str] | None = text

    def __repr__(self) -> str:
        return f"TextParams(<{len(self.encoded)} bytes>)"


@frozen_dataclass
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
        set_field(self, "request_id", request_id)
        set_field(self, "role", role)
        set_field(self, "keep_conn", keep_conn)
        set_field(self, "params", params)
        set_field(self, "duplicate_names", duplicate_names)
        set_field(self, "params_size", params_size)


class ReceivedFields:
    """:class:`RequestReceived`'s slots, assignable: the pure-Python twin of its C factory
    (``fcgikit.protocol.lanes.request_received_py``) fills one and makes it a
    RequestReceived by assigning its class (the layouts are the same). Interpreted, an
    event's field stored past the refusing ``__setattr__`` is a call of a slot wrapper,
    which for six fields cost twice what this does."""

    __slots__ = RequestReceived.__slots__
    request_id: int
    role: Role
    keep_conn: bool
    params: Mapping[bytes, bytes]
    duplicate_names: frozenset[bytes]
    params_size: int


@frozen_dataclass
class StdinData:
    """A chunk of the request body (FCGI_STDIN)."""

    __slots__ = ("data", "request_id")
    request_id: int
    data: bytes

    def __init__(self, request_id: int, data: bytes) -> None:
        set_field(self, "request_id", request_id)
        set_field(self, "data", data)


@frozen_dataclass
class StdinEnded:
    """The request body is complete (the empty FCGI_STDIN record)."""

    __slots__ = ("request_id",)
    request_id: int

    def __init__(self, request_id: int) -> None:
        set_field(self, "request_id", request_id)


@frozen_dataclass
class FilterData:
    """A chunk of the FCGI_DATA stream (FILTER role: the file to filter)."""

    __slots__ = ("data", "request_id")
    request_id: int
    data: bytes

    def __init__(self, request_id: int, data: bytes) -> None:
        set_field(self, "request_id", request_id)
        set_field(self, "data", data)


@frozen_dataclass
class FilterDataEnded:
    """The FCGI_DATA stream is complete."""

    __slots__ = ("request_id",)
    request_id: int

    def __init__(self, request_id: int) -> None:
        set_field(self, "request_id", request_id)


@frozen_dataclass
class RequestAborted:
    """ABORT_REQUEST for a request whose app is already running.

    The connection has already queued its END_REQUEST (see ``data_to_send``); further output
    for this id is dropped, and ``end_request`` for it returns ``b""``.
    """

    __slots__ = ("request_id",)
    request_id: int

    def __init__(self, request_id: int) -> None:
        set_field(self, "request_id", request_id)


# --- received by the web server (client side) --------------------------------------------


@frozen_dataclass
class StdoutData:
    """A chunk of the response (FCGI_STDOUT): its headers, then its body."""

    __slots__ = ("data", "request_id")
    request_id: int
    data: bytes

    def __init__(self, request_id: int, data: bytes) -> None:
        set_field(self, "request_id", request_id)
        set_field(self, "data", data)


@frozen_dataclass
class StderrData:
    """What the app wrote to its error stream (FCGI_STDERR)."""

    __slots__ = ("data", "request_id")
    request_id: int
    data: bytes

    def __init__(self, request_id: int, data: bytes) -> None:
        set_field(self, "request_id", request_id)
        set_field(self, "data", data)


@frozen_dataclass
class RequestEnded:
    """FCGI_END_REQUEST: the app's exit status and the protocol's."""

    __slots__ = ("app_status", "protocol_status", "request_id")
    request_id: int
    app_status: int
    protocol_status: ProtocolStatus

    def __init__(self, request_id: int, app_status: int, protocol_status: ProtocolStatus) -> None:
        set_field(self, "request_id", request_id)
        set_field(self, "app_status", app_status)
        set_field(self, "protocol_status", protocol_status)


@frozen_dataclass
class ValuesResult:
    """FCGI_GET_VALUES_RESULT: the values the application answered."""

    __slots__ = ("values",)
    values: dict[bytes, bytes]

    def __init__(self, values: dict[bytes, bytes]) -> None:
        set_field(self, "values", values)


@frozen_dataclass
class UnknownTypeReply:
    """FCGI_UNKNOWN_TYPE: the application did not know a management record's type."""

    __slots__ = ("record_type",)
    record_type: int

    def __init__(self, record_type: int) -> None:
        set_field(self, "record_type", record_type)


ServerEvent = (
    RequestReceived | StdinData | StdinEnded | FilterData | FilterDataEnded | RequestAborted
)
ClientEvent = StdoutData | StderrData | RequestEnded | ValuesResult | UnknownTypeReply
