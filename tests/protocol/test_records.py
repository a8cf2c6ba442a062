"""The wire format: golden bytes written from the spec, padding, splitting."""

from __future__ import annotations

import pytest

from fcgikit.protocol import (
    ClientConnection,
    ProtocolStatus,
    RecordType,
    RequestEnded,
    ServerConnection,
    pack_records,
)
from fcgikit.protocol.records import (
    RecordHeader,
    frame_records,
    pack_header,
    unpack_header,
)

from . import wire

# --- golden bytes, one per record type -----------------------------------------------------


def started_server(**params: bytes) -> ServerConnection:
    """A server whose request 1 (RESPONDER, keep_conn) has been received."""
    server = ServerConnection()
    pairs = {name.encode(): value for name, value in params.items()}
    server.receive_data(wire.begin(1, keep_conn=True) + wire.params(1, pairs))
    return server


def test_begin_request_golden() -> None:
    client = ClientConnection()
    sent = client.start_request(1, {}, role=wire.FILTER, keep_conn=True)
    assert sent == (
        b"\x01\x01\x00\x01\x00\x08\x00\x00"  # version 1, BEGIN_REQUEST, id 1, 8 bytes, no pad
        b"\x00\x03\x01\x00\x00\x00\x00\x00"  # role FILTER, flags KEEP_CONN, 5 reserved
        b"\x01\x04\x00\x01\x00\x00\x00\x00"  # the empty PARAMS record
    )


def test_params_golden() -> None:
    client = ClientConnection()
    sent = client.start_request(0x0102, [(b"SCRIPT_NAME", b"/x")])
    assert sent[16:] == (
        b"\x01\x04\x01\x02\x00\x0f\x01\x00"  # PARAMS, id 0x0102, 15 bytes, 1 byte padding
        b"\x0b\x02SCRIPT_NAME/x\x00"
        b"\x01\x04\x01\x02\x00\x00\x00\x00"
    )


def test_stdin_and_data_golden() -> None:
    client = ClientConnection()
    client.start_request(1, {}, role=wire.FILTER)
    assert client.send_stdin(1, b"hello") == b"\x01\x05\x00\x01\x00\x05\x03\x00hello\x00\x00\x00"
    assert client.end_stdin(1) == b"\x01\x05\x00\x01\x00\x00\x00\x00"
    assert client.send_data(1, b"12345678") == b"\x01\x08\x00\x01\x00\x08\x00\x0012345678"
    assert client.end_data(1) == b"\x01\x08\x00\x01\x00\x00\x00\x00"


def test_abort_request_golden() -> None:
    client = ClientConnection()
    client.start_request(7, {})
    assert client.abort_request(7) == b"\x01\x02\x00\x07\x00\x00\x00\x00"


def test_get_values_golden() -> None:
    assert ClientConnection().get_values([b"FCGI_MPXS_CONNS"]) == (
        b"\x01\x09\x00\x00\x00\x11\x07\x00"  # GET_VALUES, id 0, 17 bytes, 7 padding
        b"\x0f\x00FCGI_MPXS_CONNS" + b"\x00" * 7
    )


def test_get_values_result_golden() -> None:
    server = ServerConnection()
    assert server.receive_data(wire.record(wire.GET_VALUES, 0, b"\x0f\x00FCGI_MPXS_CONNS")) == []
    assert server.data_to_send() == (
        b"\x01\x0a\x00\x00\x00\x12\x06\x00"  # GET_VALUES_RESULT, 18 bytes, 6 padding
        b"\x0f\x01FCGI_MPXS_CONNS0" + b"\x00" * 6
    )


def test_unknown_type_golden() -> None:
    server = ServerConnection()
    assert server.receive_data(b"\x01\xc8\x00\x00\x00\x00\x00\x00") == []
    assert server.data_to_send() == b"\x01\x0b\x00\x00\x00\x08\x00\x00\xc8" + b"\x00" * 7


def test_stdout_stderr_end_request_golden() -> None:
    server = started_server()
    assert server.send_stdout(1, b"hi") == b"\x01\x06\x00\x01\x00\x02\x06\x00hi" + b"\x00" * 6
    assert server.send_stderr(1, b"e") == b"\x01\x07\x00\x01\x00\x01\x07\x00e" + b"\x00" * 7
    assert server.end_request(1, 0x01020304) == (
        b"\x01\x06\x00\x01\x00\x00\x00\x00"  # end of STDOUT
        b"\x01\x07\x00\x01\x00\x00\x00\x00"  # end of STDERR, because stderr was used
        b"\x01\x03\x00\x01\x00\x08\x00\x00"  # END_REQUEST, 8 bytes
        b"\x01\x02\x03\x04\x00\x00\x00\x00"  # appStatus 0x01020304, REQUEST_COMPLETE
    )


def test_end_request_with_final_stdout_and_no_stderr() -> None:
    server = started_server()
    assert server.end_request(1, stdout=b"bye") == (
        b"\x01\x06\x00\x01\x00\x03\x05\x00bye\x00\x00\x00\x00\x00"
        b"\x01\x06\x00\x01\x00\x00\x00\x00"
        b"\x01\x03\x00\x01\x00\x08\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
    )


def test_refusal_sends_end_request_alone() -> None:
    server = started_server()
    assert server.end_request(1, 0, ProtocolStatus.OVERLOADED) == (
        b"\x01\x03\x00\x01\x00\x08\x00\x00\x00\x00\x00\x00\x02\x00\x00\x00"
    )


def test_end_request_received_by_client_golden() -> None:
    client = ClientConnection()
    client.start_request(2, {})
    events = client.receive_data(
        b"\x01\x03\x00\x02\x00\x08\x00\x00\x00\x00\x01\x00\x03\x00\x00\x00"
    )
    assert events == [RequestEnded(2, 256, ProtocolStatus.UNKNOWN_ROLE)]


# --- headers, padding, splitting -----------------------------------------------------------


def test_header_pack_unpack_round_trip() -> None:
    header = pack_header(RecordType.STDIN, 0xBEEF, 0x1234, 255)
    assert header == b"\x01\x05\xbe\xef\x12\x34\xff\x00"
    assert unpack_header(b"xx" + header, 2) == RecordHeader(1, 5, 0xBEEF, 0x1234, 255)


@pytest.mark.parametrize("padding", [0, 1, 7, 255])
def test_padding_is_skipped_on_read(padding: int) -> None:
    server = ServerConnection()
    stream = (
        wire.record(wire.BEGIN, 1, b"\x00\x01\x00\x00\x00\x00\x00\x00", padding)
        + wire.record(wire.PARAMS, 1, wire.pair(b"A", b"b"), padding)
        + wire.record(wire.PARAMS, 1, b"", padding)
        + wire.record(wire.STDIN, 1, b"body", padding)
        + wire.record(wire.STDIN, 1, b"", padding)
    )
    events = server.receive_data(stream)
    assert [type(event).__name__ for event in events] == [
        "RequestReceived",
        "StdinData",
        "StdinEnded",
    ]
    assert events[0].params == {b"A": b"b"}  # type: ignore[union-attr]
    assert events[1].data == b"body"  # type: ignore[union-attr]


@pytest.mark.parametrize("length", [0, 1, 7, 8, 9, 65534, 65535])
def test_output_records_are_padded_to_8(length: int) -> None:
    packed = pack_records(RecordType.STDOUT, 1, b"x" * length)
    assert len(packed) % 8 == 0
    [(record_type, request_id, content, padding)] = wire.split_records(packed)
    assert (record_type, request_id, content) == (6, 1, b"x" * length)
    assert padding == -length % 8


def test_200_kb_stdout_is_split_at_65535() -> None:
    body = bytes(range(256)) * 800  # 204,800 bytes, so a misplaced split shows
    server = started_server()
    packed = server.send_stdout(1, body)
    records = wire.split_records(packed)
    assert [len(content) for _, _, content, _ in records] == [65535, 65535, 65535, 8195]
    assert all(record_type == wire.STDOUT and rid == 1 for record_type, rid, _, _ in records)
    assert b"".join(content for _, _, content, _ in records) == body
    assert len(packed) % 8 == 0
    client = ClientConnection()
    client.start_request(1, {})
    assert b"".join(e.data for e in client.receive_data(packed)) == body  # type: ignore[union-attr]


HEAD = b"Status: 200 OK\r\nContent-Length: 65536\r\n\r\n"


@pytest.mark.parametrize(
    "sizes",
    [
        [len(HEAD), 65536],  # a 64 KiB response: its head pushes the body across a record
        [0, 13],
        [65535],
        [65535, 65535, 1],
        [1, 65535 * 3, 0, 7],
        [70_000, 70_000, 70_000],
    ],
)
def test_framing_pieces_in_place_makes_the_same_bytes_as_packing_them_joined(
    sizes: list[int],
) -> None:
    pieces = [bytes([index + 1]) * size for index, size in enumerate(sizes)]
    buffers = frame_records(RecordType.STDOUT, 3, pieces)
    joined = b"".join(pieces)
    assert b"".join(buffers) == pack_records(RecordType.STDOUT, 3, joined)
    records = wire.split_records(b"".join(buffers))
    assert b"".join(content for _, _, content, _ in records) == joined


def test_framing_does_not_copy_the_pieces() -> None:
    body = bytes(range(256)) * 1024  # 256 KiB: four records, cut inside the body
    buffers = frame_records(RecordType.STDOUT, 1, [HEAD, body])
    # every byte of the body goes out from the body itself: the piece, or views into it
    from_body = [b for b in buffers if b is body or (isinstance(b, memoryview) and b.obj is body)]
    assert sum(len(b) for b in from_body) == len(body)
    assert buffers[1] is HEAD


def test_framing_nothing_is_no_record_at_all() -> None:
    assert frame_records(RecordType.STDOUT, 1, [b"", b""]) == []


def test_end_request_buffers_are_end_request_in_pieces() -> None:
    body = b"y" * 100_000
    whole = started_server().end_request(1, 7, stdout=HEAD + body)
    buffers = started_server().end_request_buffers(1, 7, stdout=(HEAD, body))
    assert b"".join(buffers) == whole
    client = ClientConnection()
    client.start_request(1, {})
    events = client.receive_data(whole)
    assert b"".join(e.data for e in events[:-1]) == HEAD + body  # type: ignore[attr-defined]
    assert events[-1] == RequestEnded(1, 7, ProtocolStatus.REQUEST_COMPLETE)


def test_stdout_buffers_are_send_stdout_in_pieces() -> None:
    block = bytes(range(256)) * 256  # a 64 KiB streamed block: two records
    buffers = started_server().send_stdout_buffers(1, (block,))
    assert b"".join(buffers) == started_server().send_stdout(1, block)
    assert started_server().send_stdout_buffers(1, (b"",)) == []


def test_large_params_are_split_too() -> None:
    client = ClientConnection()
    sent = client.start_request(1, {b"BIG": b"v" * 100_000})
    records = wire.split_records(sent)
    assert [(t, len(c)) for t, _, c, _ in records] == [(1, 8), (4, 65535), (4, 34473), (4, 0)]
