"""Name-value pairs (spec 3.4): the one- and four-byte lengths, order and duplicates kept,
bytes kept bytes, and a stream cut short a RemoteProtocolError."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fcgikit.errors import RemoteProtocolError
from fcgikit.protocol import ServerConnection
from fcgikit.protocol.name_value_pairs import (
    _decode_pairs_checked,
    decode_pairs,
    decode_params,
    encode_pairs,
)

from . import wire


@pytest.mark.parametrize(
    ("name", "value", "encoded"),
    [
        pytest.param(b"A", b"", b"\x01\x00A", id="empty-value"),
        pytest.param(b"N", b"v" * 127, b"\x01\x7fN" + b"v" * 127, id="127-one-byte"),
        pytest.param(b"N", b"v" * 128, b"\x01\x80\x00\x00\x80N" + b"v" * 128, id="128-four-bytes"),
        pytest.param(b"n" * 200, b"1", b"\x80\x00\x00\xc8\x01" + b"n" * 200 + b"1", id="long-name"),
        pytest.param(
            b"N",
            b"v" * 0x12345,
            b"\x01\x80\x01\x23\x45N" + b"v" * 0x12345,
            id="value-over-64k",
        ),
    ],
)
def test_pair_lengths(name: bytes, value: bytes, encoded: bytes) -> None:
    assert encode_pairs([(name, value)]) == encoded
    assert decode_pairs(encoded) == [(name, value)]


def test_pairs_keep_order_and_duplicates() -> None:
    pairs = [(b"B", b"1"), (b"A", b"2"), (b"B", b"3")]
    assert decode_pairs(encode_pairs(pairs)) == pairs


def test_four_byte_length_ignores_its_high_bit_only() -> None:
    # 0x80000003 means 3: the high bit only marks the four-byte form.
    assert decode_pairs(b"\x80\x00\x00\x03\x01abcZ") == [(b"abc", b"Z")]


def test_params_stay_bytes() -> None:
    raw = [(b"PATH_INFO", "/caf\u00e9".encode()), (b"X", b"\xff\xfe")]
    assert decode_pairs(encode_pairs(raw)) == raw


@pytest.mark.parametrize(
    "truncated",
    [
        pytest.param(b"\x05", id="value-length-missing"),
        pytest.param(b"\x80\x00", id="short-four-byte-name-length"),
        pytest.param(b"\x01\x80\x00", id="short-four-byte-value-length"),
        pytest.param(b"\x03\x00ab", id="name-cut"),
        pytest.param(b"\x01\x03Aab", id="value-cut"),
        pytest.param(b"\xff\xff\xff\xff\x00", id="huge-length"),
        pytest.param(b"\x01\x00A\x02", id="second-pair-cut"),
    ],
)
def test_truncated_pairs_are_remote_errors(truncated: bytes) -> None:
    with pytest.raises(RemoteProtocolError, match=r"cut short|left"):
        decode_pairs(truncated)


def test_truncated_pairs_in_params_fail_the_connection() -> None:
    server = ServerConnection()
    stream = wire.begin() + wire.record(wire.PARAMS, 1, b"\x03\x00ab") + wire.record(wire.PARAMS, 1)
    with pytest.raises(RemoteProtocolError):
        server.receive_data(stream)


#: names and values: ASCII ones (the stream a web server sends), any bytes, and the edges
_pair_bytes = (
    st.text(st.characters(max_codepoint=0x7F), max_size=20).map(str.encode)
    | st.binary(max_size=200)
    | st.sampled_from([b"", b" A ", b"\xe9", b"x" * 127, b"x" * 128])
)


@settings(max_examples=300, deadline=None)
@given(pairs=st.lists(st.tuples(_pair_bytes, _pair_bytes), max_size=8), cut=st.integers(0, 40))
def test_params_decode_as_the_checked_reading_says_ascii_or_not(
    pairs: list[tuple[bytes, bytes]], cut: int
) -> None:
    # decode_params reads an ASCII stream (every length one byte) without looking at each
    # length's form: whatever the stream (non-ASCII bytes, four-byte lengths, a name sent
    # twice, empty names and values, cut short anywhere), it answers what the pair-by-pair
    # reading answers.
    encoded = encode_pairs(pairs)
    for stream in (encoded, encoded[: max(0, len(encoded) - cut)]):
        try:
            expected = _decode_pairs_checked(stream)
        except RemoteProtocolError:
            with pytest.raises(RemoteProtocolError):
                decode_params(stream)
            continue
        params, count = decode_params(stream)
        assert (list(params.items()), count) == (list(dict(expected).items()), len(expected))
        assert decode_pairs(stream) == expected
