"""RequestOutput: one request's output, framed the same for a ServerConnection's request and
a WholeRequest, with the C lane (frame_end) or without."""

from __future__ import annotations

from types import ModuleType

import pytest

from fcgikit.protocol import ClientConnection, RequestOutput, StderrData, StdoutData
from fcgikit.protocol.constants import COPY_MAX
from fcgikit.protocol.records import pack_header
from tests.native import load_lane
from tests.protocol.test_speedups import framing_with

HEAD = b"Status: 200 OK\r\nContent-Length: 5\r\n\r\n"


@pytest.fixture(scope="module", params=["lane", "python"])
def frame_end(request: pytest.FixtureRequest) -> object:
    return load_lane("fcgikit.protocol._speedups").frame_end if request.param == "lane" else None


def read_back(request_id: int, data: bytes) -> list[object]:
    client = ClientConnection()
    client.start_request(request_id, {})
    return client.receive_data(data)


def test_a_small_response_ends_in_one_buffer(frame_end: ModuleType | None) -> None:
    with framing_with(frame_end):
        (framed,) = RequestOutput(1).end_request_buffers(0, stdout=(HEAD, b"hello"))
    assert type(framed) is bytes
    assert framed[:8] == pack_header(6, 1, len(HEAD) + 5, -(len(HEAD) + 5) & 7)  # FCGI_STDOUT
    assert framed[-24:] == pack_header(6, 1, 0) + pack_header(3, 1, 8) + bytes(8)


def test_the_last_stdout_may_be_given_in_its_place(frame_end: ModuleType | None) -> None:
    """``stdout`` third, where the connection's end passes it (no keyword: a call cheaper,
    interpreted), frames what the keyword frames."""
    with framing_with(frame_end):
        by_place = RequestOutput(1).end_request_buffers(0, 0, (HEAD, b"hello"))
        by_name = RequestOutput(1).end_request_buffers(0, 0, stdout=(HEAD, b"hello"))
    assert by_place == by_name
    assert b"".join(by_place).count(HEAD + b"hello") == 1


def test_a_large_response_is_framed_where_it_lies(frame_end: ModuleType | None) -> None:
    """Past COPY_MAX bytes the body goes out as it is, for sendmsg: not copied."""
    big = b"z" * COPY_MAX
    with framing_with(frame_end):
        buffers = RequestOutput(2).end_request_buffers(0, stdout=(HEAD, big))
    assert any(buffer is big for buffer in buffers)
    events = read_back(2, b"".join(buffers))
    assert b"".join(e.data for e in events if isinstance(e, StdoutData)) == HEAD + big


@pytest.mark.parametrize(("size", "buffers"), [(COPY_MAX - 1, 1), (COPY_MAX, 2), (COPY_MAX + 1, 3)])
def test_streamed_output_is_joined_under_copy_max(size: int, buffers: int) -> None:
    block = b"s" * size
    framed = RequestOutput(1).send_stdout_buffers((block,))
    assert len(framed) == buffers  # one buffer, or header, block (, padding)
    assert (framed[1] is block) if buffers > 1 else type(framed[0]) is bytes


def test_the_streams_the_app_opened_are_ended() -> None:
    output = RequestOutput(4)
    sent = b"".join(output.send_stdout_buffers((b"early",))) + output.send_stderr(b"oops")
    sent += b"".join(output.end_request_buffers(0))
    events = read_back(4, sent)
    assert [type(event).__name__ for event in events] == [
        "StdoutData",
        "StderrData",
        "RequestEnded",
    ]
    assert sent.count(pack_header(6, 4, 0)) == 1 and sent.count(pack_header(7, 4, 0)) == 1
    assert isinstance(events[1], StderrData)


def test_a_refusal_sends_end_request_alone_and_an_abort_ends_the_open_streams() -> None:
    refused = RequestOutput(5).end_request_buffers(0, 2)  # OVERLOADED, nothing written
    assert refused == [pack_header(3, 5, 8) + bytes([0, 0, 0, 0, 2, 0, 0, 0])]
    output = RequestOutput(6)
    output.send_stderr(b"x")
    assert output.abort() == pack_header(7, 6, 0) + pack_header(3, 6, 8) + bytes(8)
    with pytest.raises(Exception, match="it has ended"):
        output.send_stderr(b"late")
