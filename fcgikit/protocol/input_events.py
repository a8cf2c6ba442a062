"""The events a request's input becomes: RequestReceived from its params, StdinEnded.

Both ways a request is read make them here, so they are the same events: record by record
(:class:`~fcgikit.protocol.ServerConnection`), and whole, from what the C lane
``scan_request`` found (a ServerConnection's ordinary request, and a
:class:`~fcgikit.protocol.whole_request.WholeRequest`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from fcgikit.protocol.constants import Role
from fcgikit.protocol.events import EncodedParams, RequestReceived, StdinEnded
from fcgikit.protocol.lanes import request_received
from fcgikit.protocol.name_value_pairs import decode_pairs, decode_params

__all__ = ["MAX_DECODED_PAIRS", "received_from_params", "received_from_scan", "stdin_ended_event"]

#: ServerConnection's default max_decoded_pairs. Web servers send 20 to 40 params; with up
#: to 128 a dict costs at most ~15 KiB more than the bytes sent. More stay encoded.
MAX_DECODED_PAIRS = 128

_NO_NAMES: Final[frozenset[bytes]] = frozenset()
_RESPONDER: Final = Role.RESPONDER
_request_received: Final = request_received


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
    params: dict[bytes, bytes],
    duplicate_names: set[bytes] | None,
    params_size: int,
) -> RequestReceived:
    """The event of the Responder request ``scan_request`` found (lanes.py)."""
    names = frozenset(duplicate_names) if duplicate_names else _NO_NAMES
    return _request_received(request_id, _RESPONDER, keep_conn, params, names, params_size)


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
