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

from fcgikit.protocol.connection import ClientConnection, ServerConnection
from fcgikit.protocol.constants import ProtocolStatus, RecordType, Role
from fcgikit.protocol.events import (
    ClientEvent,
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
from fcgikit.protocol.records import decode_pairs, encode_pairs, pack_records

__all__ = [
    "ClientConnection",
    "ClientEvent",
    "FilterData",
    "FilterDataEnded",
    "ProtocolStatus",
    "RecordType",
    "RequestAborted",
    "RequestEnded",
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
    "decode_pairs",
    "encode_pairs",
    "pack_records",
]
