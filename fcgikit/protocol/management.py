"""What the application's end of a connection answers by itself, and the roles it plays.

Some records are the protocol's own business, not the application's: FCGI_GET_VALUES
(answered with FCGI_GET_VALUES_RESULT), a management record of a type we do not know
(FCGI_UNKNOWN_TYPE) and an FCGI_BEGIN_REQUEST that is refused (wrong role, can't multiplex,
overloaded). :class:`~fcgikit.protocol.ServerConnection` (server_connection.py) queues these
replies for its ``data_to_send``, so the application only ever sees requests it must run;
what they say, and the tables they come from, are here.

A server makes a ServerConnection per connection (per request, for a web server without
keep-conn), always with the same settings: what a connection derives from them (its set of
roles, its GET_VALUES answers) is made once and shared, read only. Keyed by our own
configuration, never by peer input; capped anyway.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Final

from fcgikit.errors import RemoteProtocolError
from fcgikit.protocol.constants import (
    FCGI_KEEP_CONN,
    FCGI_MAX_CONNS,
    FCGI_MAX_REQS,
    FCGI_MPXS_CONNS,
    RecordType,
    Role,
)
from fcgikit.protocol.name_value_pairs import decode_pairs, encode_pairs
from fcgikit.protocol.records import (
    BEGIN_REQUEST_BODY,
    UNKNOWN_TYPE_BODY,
    pack_header,
    pack_records,
)

__all__ = [
    "ROLES_BY_NUMBER",
    "begin_request_body",
    "get_values_result",
    "known_roles",
    "unknown_type_result",
    "values_answered",
]

#: number -> member without Enum.__call__, which is Python code
ROLES_BY_NUMBER: Final[dict[int, Role]] = {int(role): role for role in Role}

_GET_VALUES_RESULT: Final = int(RecordType.GET_VALUES_RESULT)
_UNKNOWN_TYPE: Final = int(RecordType.UNKNOWN_TYPE)
_BEGIN_REQUEST_LEN: Final = BEGIN_REQUEST_BODY.size
_UNKNOWN_TYPE_LEN: Final = UNKNOWN_TYPE_BODY.size

_SETTINGS_CACHED = 64
_ROLE_SETS: dict[frozenset[object], frozenset[Role]] = {}
_VALUES: dict[tuple[int, int, bool], dict[bytes, bytes]] = {}


def known_roles(roles: Collection[Role]) -> frozenset[Role]:
    """``roles`` as a frozenset of members (the server passes the same frozenset each time)."""
    roles_given = roles if type(roles) is frozenset else None
    known = _ROLE_SETS.get(roles_given) if roles_given is not None else None
    if known is None:
        known = frozenset(Role(role) for role in roles)
        if roles_given is not None and len(_ROLE_SETS) < _SETTINGS_CACHED:
            _ROLE_SETS[roles_given] = known
    return known


def values_answered(max_conns: int, max_reqs: int, multiplexed: bool) -> dict[bytes, bytes]:
    """The answers to FCGI_GET_VALUES for these settings."""
    key = (max_conns, max_reqs, multiplexed)
    values = _VALUES.get(key)
    if values is None:
        values = {
            FCGI_MAX_CONNS: str(max_conns).encode("ascii"),
            FCGI_MAX_REQS: str(max_reqs).encode("ascii"),
            FCGI_MPXS_CONNS: b"1" if multiplexed else b"0",
        }
        if len(_VALUES) < _SETTINGS_CACHED:
            _VALUES[key] = values
    return values


def get_values_result(content: memoryview, values: dict[bytes, bytes]) -> bytes:
    """FCGI_GET_VALUES_RESULT for the FCGI_GET_VALUES whose content is ``content``: the
    names asked for that ``values`` knows, with their values; the others left out (spec 4.1).

    Raises:
        RemoteProtocolError: the pairs are malformed.
    """
    known = [(name, values[name]) for name, _ in decode_pairs(content) if name in values]
    return pack_records(_GET_VALUES_RESULT, 0, encode_pairs(known))


def unknown_type_result(record_type: int) -> bytes:
    """FCGI_UNKNOWN_TYPE for a management record of type ``record_type`` (spec 4.2)."""
    return pack_header(_UNKNOWN_TYPE, 0, _UNKNOWN_TYPE_LEN) + UNKNOWN_TYPE_BODY.pack(record_type)


def begin_request_body(request_id: int, content: memoryview) -> tuple[int, bool]:
    """The role number and whether to keep the connection, from an FCGI_BEGIN_REQUEST.

    Raises:
        RemoteProtocolError: its body is not the spec's size.
    """
    if len(content) != _BEGIN_REQUEST_LEN:
        raise RemoteProtocolError(
            f"FCGI_BEGIN_REQUEST for request {request_id} has {len(content)} bytes of "
            f"content, the spec says {_BEGIN_REQUEST_LEN}"
        )
    role_number, flags = BEGIN_REQUEST_BODY.unpack(content)
    return role_number, bool(flags & FCGI_KEEP_CONN)
