"""Cutting a peer's stream into records: a record split anywhere, a body's records passed on
as a stream, what is kept between reads and what is copied."""

from __future__ import annotations

import gc
import tracemalloc

import pytest

from fcgikit.errors import RemoteProtocolError
from fcgikit.protocol import RecordType, ServerConnection, StdinData, StdinEnded, pack_records
from fcgikit.protocol.record_reader import RecordReader

from . import wire


def test_version_other_than_1_fails_as_soon_as_the_header_is_in() -> None:
    server = ServerConnection()
    with pytest.raises(RemoteProtocolError, match="version 2"):
        server.receive_data(b"\x02\x01\x00\x01\xff\xff\x00\x00")


def test_many_records_in_one_call_and_a_partial_tail_kept() -> None:
    server = ServerConnection()
    stream = wire.begin() + wire.params(1, {b"A": b"1"}) + wire.record(wire.STDIN, 1, b"abc")
    stream += wire.record(wire.STDIN, 1, b"defgh")
    # (a cut inside the params' record: kept until it is whole)
    assert server.receive_data(stream[:20]) == []
    events = server.receive_data(stream[20:])
    assert [type(event).__name__ for event in events] == ["RequestReceived", "StdinData"]
    assert events[1] == StdinData(1, b"abcdefgh")


def _reading_a_body() -> ServerConnection:
    server = ServerConnection()
    stream = wire.begin() + wire.params(1, {b"A": b"1"}) + wire.record(wire.STDIN, 1, b"abc")
    assert len(server.receive_data(stream)) == 2
    return server


@pytest.mark.parametrize("cut", [0, 3, 8, 9, 12, 19, 20, 23])
def test_a_body_record_a_read_ends_inside_comes_as_it_arrives(cut: int) -> None:
    """After the body's records before it in the same read, not kept until it is whole (a
    copy of most of a web server's reads' last record): the body is a stream."""
    server = _reading_a_body()
    body = b"defghijklmn"
    record = wire.record(wire.STDIN, 1, body, padding=5)
    content = body[: max(cut - 8, 0)]
    read = wire.record(wire.STDIN, 1, b"xy") + record[:cut]
    assert server.receive_data(read) == [StdinData(1, b"xy" + content)]
    rest = server.receive_data(record[cut:] + wire.record(wire.STDIN, 1, b"op"))
    assert rest == [StdinData(1, body[len(content) :] + b"op")]
    assert server.receive_data(wire.record(wire.STDIN, 1)) == [StdinEnded(1)]


@pytest.mark.parametrize("cut", [3, 8, 9, 23])
def test_a_body_record_cut_by_the_end_of_the_connection_is_an_error(cut: int) -> None:
    server = _reading_a_body()
    server.receive_data(wire.record(wire.STDIN, 1, b"defghijklmn", padding=5)[:cut])
    assert not server.between_requests
    with pytest.raises(RemoteProtocolError, match=f"middle of a record .{cut} bytes"):
        server.receive_eof()


def test_receive_data_takes_memoryview_and_bytearray() -> None:
    stream = wire.begin() + wire.params(1, {b"A": b"1"})
    for chunked in (memoryview(stream), bytearray(stream), memoryview(bytearray(stream))[0:]):
        assert len(ServerConnection().receive_data(chunked)) == 1


def test_a_read_given_as_a_view_is_left_usable_and_holds_no_export() -> None:
    """The server feeds a slice of its one read buffer, which the reader cuts where it lies:
    the view stays the caller's (usable after the feed), and once the caller releases it,
    nothing of the parse still holds the buffer (which it then may resize)."""
    buffer = bytearray(wire.begin() + wire.params(1, {b"A": b"1"}))
    view = memoryview(buffer)[: len(buffer)]
    events = ServerConnection().receive_data(view)
    assert [type(event).__name__ for event in events] == ["RequestReceived"]
    assert events[0].params == {b"A": b"1"}
    assert view.tobytes() == bytes(buffer)
    view.release()
    buffer += b"\0"  # BufferError if a view of it were still exported


def test_reader_handles_a_record_split_anywhere() -> None:
    stream = wire.record(wire.STDIN, 3, b"0123456789", 6) * 3
    seen: list[tuple[int, int, bytes]] = []
    reader = RecordReader()
    for byte in stream:
        reader.feed(bytes([byte]), lambda t, r, c: seen.append((t, r, bytes(c))))
    assert seen == [(5, 3, b"0123456789")] * 3
    assert reader.buffered == 0


def test_a_chunk_that_ends_a_record_is_not_copied_whole_into_the_tail() -> None:
    """An upload arrives as 64 KiB records in reads of 1 MiB that rarely end on a record's
    end: completing the record left over from the last read copies that record only, not the
    whole new read (a copy of every byte of the body, and a megabyte buffer, for nothing)."""
    stream = pack_records(RecordType.STDIN, 1, bytes(range(256)) * 4096 * 8)  # 8 MiB, 128+ records
    records: list[int] = []

    def on_record(record_type: int, request_id: int, content: memoryview) -> None:
        records.append(len(content))

    reader = RecordReader()
    chunk = 1 << 20
    reader.feed(memoryview(stream)[: chunk - 100], on_record)  # ends inside a record
    gc.collect()
    tracemalloc.start()
    try:
        for start in range(chunk - 100, len(stream), chunk):
            reader.feed(memoryview(stream)[start : start + chunk], on_record)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert sum(records) == 8 << 20 and reader.buffered == 0
    assert peak < 256 << 10, f"{peak} bytes at the peak: a whole read was copied"
