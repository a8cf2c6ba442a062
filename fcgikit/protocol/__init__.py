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

from importlib.machinery import ExtensionFileLoader
from typing import TYPE_CHECKING, Any

from fcgikit.protocol import server_connection as _server_connection
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
    UnknownTypeReply,
    ValuesResult,
)
from fcgikit.protocol.name_value_pairs import decode_pairs, encode_pairs
from fcgikit.protocol.output import RequestOutput
from fcgikit.protocol.records import pack_records
from fcgikit.protocol.server_connection import ServerConnection
from fcgikit.protocol.whole_request import WholeRequest

#: True when this process runs the mypyc-compiled protocol (see setup.py), False for the
#: pure-Python one (no accelerator built, or ``FCGIKIT_PURE_PYTHON=1``). The modules are
#: compiled and loaded all together, so looking at the hot one is enough.
ACCELERATED: bool = isinstance(_server_connection.__loader__, ExtensionFileLoader)

if TYPE_CHECKING:
    from fcgikit.protocol.client_connection import ClientConnection


def __getattr__(name: str) -> Any:
    """The client's side, imported on first use (PEP 562): a server never needs it."""
    if name != "ClientConnection":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from fcgikit.protocol.client_connection import ClientConnection

    globals()[name] = ClientConnection
    return ClientConnection


def __dir__() -> list[str]:
    return sorted({*globals(), "ClientConnection"})


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
    "UnknownTypeReply",
    "ValuesResult",
    "WholeRequest",
    "decode_pairs",
    "encode_pairs",
    "pack_records",
]
