"""What a connection holds of a request's params (issue 21, item 4).

Params of many pairs arrive as :class:`EncodedParams` (about the bytes sent, where a dict
costs ten times that for tiny pairs), read like the dict and decoded when the server runs
the request. The params still arriving on one connection are capped in all, so a
multiplexed connection holds no more of them than one that is not. And a connection keeps
nothing of what it handed out.
"""

from __future__ import annotations

import gc
import tracemalloc

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from fcgikit.errors import RemoteProtocolError
from fcgikit.protocol import (
    ClientConnection,
    EncodedParams,
    RequestReceived,
    ServerConnection,
    StdinEnded,
)
from fcgikit.protocol.input_events import MAX_DECODED_PAIRS
from fcgikit.protocol.records import encode_pairs
from fcgikit.protocol.state import RequestState

from . import wire

OVERLOADED = 2


def numbered_pairs(count: int) -> list[tuple[bytes, bytes]]:
    return [(b"P%d" % n, b"v%d" % n) for n in range(count)]


def receive_whole(server: ServerConnection, pairs: list[tuple[bytes, bytes]]) -> RequestReceived:
    client = ClientConnection()
    events = server.receive_data(client.start_request(1, pairs) + client.end_stdin(1))
    assert [type(event) for event in events] == [RequestReceived, StdinEnded]
    received = events[0]
    assert isinstance(received, RequestReceived)
    return received


# --- many params stay encoded ----------------------------------------------------------------


def test_params_of_many_pairs_arrive_encoded_and_read_like_the_dict() -> None:
    pairs = [*numbered_pairs(200), (b"CONTENT_LENGTH", b"12"), (b"P7", b"last")]
    received = receive_whole(ServerConnection(), pairs)
    params = received.params
    assert isinstance(params, EncodedParams)
    assert received.params_size == len(params.encoded) == len(encode_pairs(pairs))
    assert params[b"P7"] == b"last"  # the last value wins, as in the dict
    assert params.get(b"CONTENT_LENGTH") == b"12"
    assert params.get(b"ABSENT") is None and b"ABSENT" not in params and b"P199" in params
    with pytest.raises(KeyError):
        params[b"ABSENT"]
    expected = dict(pairs)
    assert params.decode() == expected and params.decode() is not params.decode()
    assert params == expected and len(params) == 201 and list(params) == list(expected)
    assert dict(params) == expected
    assert received.duplicate_names == frozenset({b"P7"})


def test_up_to_max_decoded_pairs_params_arrive_as_a_dict() -> None:
    pairs = numbered_pairs(3)
    for limit, kind in ((3, dict), (2, EncodedParams)):
        received = receive_whole(ServerConnection(max_decoded_pairs=limit), pairs)
        assert type(received.params) is kind
        assert received.params == dict(pairs)
        assert received.params_size == len(encode_pairs(pairs))
    default = receive_whole(ServerConnection(), numbered_pairs(MAX_DECODED_PAIRS))
    assert type(default.params) is dict
    with pytest.raises(ValueError, match="max_decoded_pairs"):
        ServerConnection(max_decoded_pairs=-1)


def test_params_kept_encoded_are_still_checked_as_they_arrive() -> None:
    encoded = encode_pairs(numbered_pairs(5))[:-1]  # the last value is cut short
    stream = wire.begin() + wire.record(wire.PARAMS, 1, encoded) + wire.record(wire.PARAMS, 1)
    with pytest.raises(RemoteProtocolError, match="only 3 are left"):
        ServerConnection(max_decoded_pairs=2).receive_data(stream)


def test_looking_up_one_of_many_params_decodes_none_of_them() -> None:
    """While a request waits, the server reads a few params (CONTENT_LENGTH, what its log
    lines name): that must not build the dict it is kept encoded to avoid."""
    received = receive_whole(ServerConnection(), numbered_pairs(10_000))
    params = received.params
    tracemalloc.start()
    try:
        assert params.get(b"CONTENT_LENGTH") is None
        assert params[b"P9999"] == b"v9999"
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4096, peak


def test_the_connection_keeps_no_events_it_handed_out() -> None:
    """An idle connection would otherwise hold its last request's params (up to 1 MiB) for
    as long as it stays idle, a refused request's included."""
    server = ServerConnection()
    server._scan_request = None  # the record-by-record path (the lane keeps none)
    client = ClientConnection()
    events = server.receive_data(client.start_request(1, numbered_pairs(300), keep_conn=True))
    assert [type(event) for event in events] == [RequestReceived]
    holders = gc.get_referrers(events)
    assert server not in holders  # compiled: the connection's own fields
    assert getattr(server, "__dict__", None) not in holders  # interpreted: its __dict__


# --- the params still arriving on one connection, in all --------------------------------------


def params_records(request_id: int, size: int) -> bytes:
    """FCGI_PARAMS records carrying ``size`` bytes of pairs, not ending the stream."""
    value = b"v" * (size - 3)
    return wire.record(wire.PARAMS, request_id, wire.pair(b"N", value)) if size else b""


def test_a_multiplexed_connection_holds_at_most_max_params_size_of_params_arriving() -> None:
    server = ServerConnection(multiplexed=True, max_params_size=1024)
    assert server.receive_data(wire.begin(1, keep_conn=True) + params_records(1, 1000)) == []
    # request 2's first record would take the connection past 1024 bytes: refused at once
    assert server.receive_data(wire.begin(2, keep_conn=True) + params_records(2, 100)) == []
    assert wire.split_records(server.data_to_send()) == [
        (wire.END, 2, bytes([0, 0, 0, 0, OVERLOADED, 0, 0, 0]), 0)
    ]
    assert server.params_overloads == 1
    # what it goes on sending is ignored, as for any id no longer active
    rest = params_records(2, 50) + wire.record(wire.PARAMS, 2) + wire.record(wire.STDIN, 2)
    assert server.receive_data(rest) == []
    assert server.stray_records == 0 and not server.should_close
    # request 1 is served; once its params are all in, they no longer count
    events = server.receive_data(wire.record(wire.PARAMS, 1) + wire.record(wire.STDIN, 1))
    assert [type(event) for event in events] == [RequestReceived, StdinEnded]
    assert server.receive_data(wire.begin(3, keep_conn=True) + params_records(3, 1000)) == []
    assert server.data_to_send() == b""
    # an abort while the params arrive gives their share back too
    server.receive_data(wire.record(wire.ABORT, 3))
    assert server.receive_data(wire.begin(4, keep_conn=True) + params_records(4, 1000)) == []
    assert OVERLOADED not in [
        content[4]
        for kind, _, content, _ in wire.split_records(server.data_to_send())
        if kind == wire.END
    ]
    assert server.params_overloads == 1


def test_a_refusal_for_params_closes_a_connection_without_keep_conn() -> None:
    server = ServerConnection(multiplexed=True, max_params_size=1024)
    server.receive_data(wire.begin(1, keep_conn=True) + params_records(1, 1000))
    server.receive_data(wire.begin(2) + params_records(2, 100))
    assert server.should_close
    assert server.params_overloads == 1


class ParamsArriving(RuleBasedStateMachine):
    """Requests begin, send params in pieces, end them, are aborted, refused and answered on
    one multiplexed connection, in any order: what their params hold is given back on every
    path, so once they are all over, a request may send max_params_size of them again."""

    CAP = 64

    def __init__(self) -> None:
        super().__init__()
        self.server = ServerConnection(multiplexed=True, max_params_size=self.CAP)
        self.begun: set[int] = set()
        self.received: set[int] = set()

    @rule(request_id=st.integers(1, 4))
    def begin(self, request_id: int) -> None:
        if request_id not in self.server.active_request_ids:
            self.server.receive_data(wire.begin(request_id, keep_conn=True))
            self.begun.add(request_id)
            self.received.discard(request_id)

    def params_may_come(self, request_id: int, size: int = 0) -> bool:
        """Whether a PARAMS record for the request is no protocol error (a web server's)."""
        request = self.server._requests.get(request_id)
        return request is None or (
            request.state is RequestState.READING_PARAMS and len(request.params) + size <= self.CAP
        )

    @rule(request_id=st.integers(1, 4), size=st.integers(3, 40))
    def some_params(self, request_id: int, size: int) -> None:
        if self.params_may_come(request_id, size):
            self.server.receive_data(params_records(request_id, size))

    @rule(request_id=st.integers(1, 4))
    def end_params(self, request_id: int) -> None:
        if not self.params_may_come(request_id):
            return
        events = self.server.receive_data(wire.record(wire.PARAMS, request_id))
        if any(isinstance(event, RequestReceived) for event in events):
            self.received.add(request_id)

    @rule(request_id=st.integers(1, 4))
    def abort(self, request_id: int) -> None:
        self.server.receive_data(wire.record(wire.ABORT, request_id))

    @precondition(lambda self: bool(self.received & self.server.active_request_ids))
    @rule(data=st.data())
    def answer(self, data: st.DataObject) -> None:
        request_id = data.draw(
            st.sampled_from(sorted(self.received & self.server.active_request_ids))
        )
        self.server.end_request(request_id)
        self.received.discard(request_id)

    @invariant()
    def holds_at_most_the_cap(self) -> None:
        buffered = sum(len(request.params) for request in self.server._requests.values())
        assert self.server._params_buffered == buffered <= self.CAP

    def teardown(self) -> None:
        server = self.server
        for request_id in sorted(server.active_request_ids):
            if request_id in self.received:
                server.end_request(request_id)
            else:
                server.receive_data(wire.record(wire.ABORT, request_id))
        server.data_to_send()
        refused_before = server.params_overloads
        server.receive_data(wire.begin(9, keep_conn=True) + params_records(9, self.CAP))
        assert server.params_overloads == refused_before
        events = server.receive_data(wire.record(wire.PARAMS, 9))
        assert [type(event) for event in events] == [RequestReceived]


TestParamsArriving = ParamsArriving.TestCase
TestParamsArriving.settings = settings(max_examples=200, stateful_step_count=30, deadline=None)
