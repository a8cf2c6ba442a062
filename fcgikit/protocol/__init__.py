"""Sans-I/O FastCGI 1.0: bytes in -> events out, calls in -> bytes out.

No sockets, threads or WSGI here, and nothing else of fcgikit but :mod:`fcgikit.errors`, so
the protocol can be tested and fuzzed on its own and reused by any I/O layer. Params stay
``bytes``; decoding them is the WSGI layer's job.

>>> from fcgikit.protocol import ClientConnection, ServerConnection, RequestReceived
>>> client, server = ClientConnection(), ServerConnection()
>>> events = server.receive_data(client.start_request(1, {b"REQUEST_METHOD": b"GET"}))
>>> events[0].params
{b'REQUEST_METHOD': b'GET'}
>>> [type(event).__name__ for event in client.receive_data(server.end_request(1, stdout=b"hi"))]
['StdoutData', 'RequestEnded']
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

#: where each public name lives; it is imported on first use (PEP 562): the server's settings
#: use ``fcgikit.protocol.frozen`` and ``.constants`` before ``fcgikit serve`` binds its
#: sockets, and the connection's modules (most of the protocol's import) can load after that
_EXPORTS = {
    "ClientConnection": "fcgikit.protocol.client_connection",
    "ProtocolStatus": "fcgikit.protocol.constants",
    "RecordType": "fcgikit.protocol.constants",
    "Role": "fcgikit.protocol.constants",
    **dict.fromkeys(
        (
            "ClientEvent",
            "EncodedParams",
            "FilterData",
            "FilterDataEnded",
            "RequestAborted",
            "RequestEnded",
            "RequestReceived",
            "ServerEvent",
            "StderrData",
            "StdinData",
            "StdinEnded",
            "StdoutData",
            "TextParams",
            "UnknownTypeReply",
            "ValuesResult",
        ),
        "fcgikit.protocol.events",
    ),
    "decode_pairs": "fcgikit.protocol.name_value_pairs",
    "encode_pairs": "fcgikit.protocol.name_value_pairs",
    "RequestOutput": "fcgikit.protocol.output",
    "pack_records": "fcgikit.protocol.records",
    "ServerConnection": "fcgikit.protocol.server_connection",
    "WholeRequest": "fcgikit.protocol.whole_request",
}

if TYPE_CHECKING:
    from fcgikit.protocol.client_connection import ClientConnection
    from fcgikit.protocol.constants import ProtocolStatus, RecordType, Role
    from fcgikit.protocol.events import (
        ClientEvent,
        EncodedParams,
        FilterData,
        FilterDataEnded,
        RequestAborted,
        RequestEnded,
        RequestReceived,
        ServerEvent,
        StderrData,
        StdinData,
        StdinEnded,
        StdoutData,
        TextParams,
        UnknownTypeReply,
        ValuesResult,
    )
    from fcgikit.protocol.name_value_pairs import decode_pairs, encode_pairs
    from fcgikit.protocol.output import RequestOutput
    from fcgikit.protocol.records import pack_records
    from fcgikit.protocol.server_connection import ServerConnection
    from fcgikit.protocol.whole_request import WholeRequest

    #: True when this process runs the mypyc-compiled protocol (see setup.py), False for the
    #: pure-Python one (no accelerator built, or ``FCGIKIT_PURE_PYTHON=1``).
    ACCELERATED: bool


def _accelerated() -> bool:
    """ACCELERATED: the modules are compiled and loaded all together, so looking at the hot
    one is enough."""
    from importlib.machinery import ExtensionFileLoader

    from fcgikit.protocol import server_connection

    return isinstance(server_connection.__loader__, ExtensionFileLoader)


def __getattr__(name: str) -> Any:
    if name == "ACCELERATED":
        globals()[name] = accelerated = _accelerated()
        return accelerated
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # once a name
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS, "ACCELERATED"})


__all__ = [
    "ACCELERATED",
    "ClientConnection",
    "ClientEvent",
    "EncodedParams",
    "FilterData",
    "FilterDataEnded",
    "ProtocolStatus",
    "RecordType",
    "RequestAborted",
    "RequestEnded",
    "RequestOutput",
    "RequestReceived",
    "Role",
    "ServerConnection",
    "ServerEvent",
    "StderrData",
    "StdinData",
    "StdinEnded",
    "StdoutData",
    "TextParams",
    "UnknownTypeReply",
    "ValuesResult",
    "WholeRequest",
    "decode_pairs",
    "encode_pairs",
    "pack_records",
]
