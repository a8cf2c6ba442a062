"""Fuzzing: peer input may only produce events or RemoteProtocolError, however it is chunked.

Like gunicorn's parser corpus, each stream is fed whole, byte by byte and in random chunks,
and the outcomes must agree: the same events, the same automatic replies, and an error in
all three or in none. "The same events" lets a body's bytes come cut differently (one read
gives one StdinData for each run of STDIN records it holds), so they are compared byte by
byte. (When a call raises, the events of that call are lost with it, so for a failing stream
the coarser feeds' events need only be a prefix of the byte-by-byte ones.)
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fcgikit.errors import RemoteProtocolError
from fcgikit.protocol import ClientConnection, Role, ServerConnection, StdinData

from . import wire

FUZZ_SETTINGS = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@dataclass
class Outcome:
    events: list[object]
    sent: bytes
    failed: bool


def chunks_of(stream: bytes, sizes: Sequence[int]) -> list[bytes]:
    """Cut ``stream`` into pieces of the given sizes, cycling through them."""
    pieces = []
    offset = 0
    index = 0
    while offset < len(stream):
        size = sizes[index % len(sizes)]
        pieces.append(stream[offset : offset + size])
        offset += size
        index += 1
    return pieces


def feed_server(make: Callable[[], ServerConnection], pieces: list[bytes]) -> Outcome:
    server = make()
    events: list[object] = []
    sent = bytearray()
    failed = False
    try:
        for piece in pieces:
            events.extend(server.receive_data(piece))
            sent += server.data_to_send()
        server.receive_eof()
    except RemoteProtocolError:
        failed = True
    sent += server.data_to_send()
    return Outcome(events, bytes(sent), failed)


def feed_client(pieces: list[bytes]) -> Outcome:
    client = ClientConnection()
    for request_id in (1, 2, 3):
        client.start_request(request_id, {})
    events: list[object] = []
    failed = False
    try:
        for piece in pieces:
            events.extend(client.receive_data(piece))
        client.receive_eof()
    except RemoteProtocolError:
        failed = True
    return Outcome(events, b"", failed)


def body_bytewise(events: list[object]) -> list[object]:
    """``events`` with each StdinData cut into one a byte: the same whatever the reads were."""
    cut: list[object] = []
    for event in events:
        if isinstance(event, StdinData):
            cut += [
                StdinData(event.request_id, event.data[i : i + 1]) for i in range(len(event.data))
            ]
        else:
            cut.append(event)
    return cut


def assert_same_however_chunked(
    feed: Callable[[list[bytes]], Outcome], stream: bytes, sizes: list[int]
) -> None:
    whole = feed([stream])
    bytewise = feed([stream[i : i + 1] for i in range(len(stream))])
    chunked = feed(chunks_of(stream, sizes))
    for outcome in (whole, bytewise, chunked):
        outcome.events = body_bytewise(outcome.events)
    assert whole.failed == bytewise.failed == chunked.failed
    assert whole.sent == bytewise.sent == chunked.sent
    if bytewise.failed:
        assert bytewise.events[: len(whole.events)] == whole.events
        assert bytewise.events[: len(chunked.events)] == chunked.events
    else:
        assert whole.events == bytewise.events == chunked.events


# --- streams -------------------------------------------------------------------------------

request_ids = st.integers(0, 3)
small_bytes = st.binary(max_size=24)


@st.composite
def any_record(draw: st.DrawFn) -> bytes:
    """A well-framed record of any type, with content that may or may not make sense."""
    record_type = draw(st.one_of(st.integers(1, 11), st.integers(0, 255)))
    request_id = draw(request_ids)
    if record_type == wire.BEGIN and draw(st.booleans()):
        content = struct.pack(">HB5x", draw(st.integers(0, 4)), draw(st.integers(0, 3)))
    elif record_type in (wire.PARAMS, wire.GET_VALUES) and draw(st.booleans()):
        content = b"".join(
            wire.pair(n, v)
            for n, v in draw(st.lists(st.tuples(small_bytes, small_bytes), max_size=3))
        )
    else:
        content = draw(st.one_of(st.just(b""), small_bytes))
    return wire.record(record_type, request_id, content, draw(st.integers(0, 9)))


@st.composite
def client_streams(draw: st.DrawFn) -> bytes:
    """What a real web server could send: a few requests, interleaved, some aborted."""
    client = ClientConnection()
    parts: list[bytes] = []
    scripts = []
    for request_id in range(1, draw(st.integers(1, 3)) + 1):
        role = draw(st.sampled_from(list(Role)))
        params = draw(st.dictionaries(small_bytes, st.binary(max_size=200), max_size=4))
        steps = [client.start_request(request_id, params, role=role, keep_conn=draw(st.booleans()))]
        if role != Role.AUTHORIZER:
            steps += [
                client.send_stdin(request_id, chunk)
                for chunk in draw(st.lists(small_bytes, max_size=3))
            ]
            steps.append(client.end_stdin(request_id))
        if role == Role.FILTER:
            steps += [
                client.send_data(request_id, chunk)
                for chunk in draw(st.lists(small_bytes, max_size=3))
            ]
            steps.append(client.end_data(request_id))
        if draw(st.booleans()):
            steps.insert(draw(st.integers(1, len(steps))), client.abort_request(request_id))
        scripts.append(steps)
    while any(scripts):
        script = draw(st.sampled_from([s for s in scripts if s]))
        parts.append(script.pop(0))
        if draw(st.integers(0, 9)) == 0:
            parts.append(client.get_values([b"FCGI_MPXS_CONNS", b"X"]))
    return b"".join(parts)


@st.composite
def mutated_client_streams(draw: st.DrawFn) -> bytes:
    stream = bytearray(draw(client_streams()))
    for _ in range(draw(st.integers(1, 3))):
        if not stream:
            break
        at = draw(st.integers(0, len(stream) - 1))
        mutation = draw(st.sampled_from(["flip", "insert", "delete", "truncate"]))
        if mutation == "flip":
            stream[at] ^= draw(st.integers(1, 255))
        elif mutation == "insert":
            stream[at:at] = draw(st.binary(min_size=1, max_size=9))
        elif mutation == "delete":
            del stream[at : at + draw(st.integers(1, 9))]
        else:
            del stream[at:]
    return bytes(stream)


server_streams = st.one_of(
    st.binary(max_size=64),
    st.lists(any_record(), max_size=12).map(b"".join),
    client_streams(),
    mutated_client_streams(),
)
chunk_sizes = st.lists(st.integers(1, 40), min_size=1, max_size=8)


def plain_server() -> ServerConnection:
    return ServerConnection()


def busy_server() -> ServerConnection:
    return ServerConnection(
        roles=list(Role), multiplexed=True, max_active_requests=2, max_params_size=256
    )


@FUZZ_SETTINGS
@given(stream=server_streams, sizes=chunk_sizes)
def test_plain_server_survives_anything(stream: bytes, sizes: list[int]) -> None:
    assert_same_however_chunked(lambda pieces: feed_server(plain_server, pieces), stream, sizes)


@FUZZ_SETTINGS
@given(stream=server_streams, sizes=chunk_sizes)
def test_multiplexing_server_survives_anything(stream: bytes, sizes: list[int]) -> None:
    assert_same_however_chunked(lambda pieces: feed_server(busy_server, pieces), stream, sizes)


@FUZZ_SETTINGS
@given(stream=client_streams(), sizes=chunk_sizes)
def test_valid_streams_never_fail(stream: bytes, sizes: list[int]) -> None:
    outcome = feed_server(
        lambda: ServerConnection(roles=list(Role), multiplexed=True), chunks_of(stream, sizes)
    )
    assert not outcome.failed


@FUZZ_SETTINGS
@given(
    stream=st.one_of(st.binary(max_size=64), st.lists(any_record(), max_size=12).map(b"".join)),
    sizes=chunk_sizes,
)
def test_client_survives_anything(stream: bytes, sizes: list[int]) -> None:
    assert_same_however_chunked(feed_client, stream, sizes)
