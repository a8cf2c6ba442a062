"""A request's input streams as its WSGIRequest makes them: the body's declared length, and a
request that arrived whole reading like one whose body streamed in."""

from __future__ import annotations

import pytest

from fcgikit.protocol.constants import Role
from fcgikit.protocol.events import EncodedParams, RequestReceived, TextParams
from fcgikit.protocol.name_value_pairs import encode_pairs
from fcgikit.server.request_input import filter_data, request_body
from fcgikit.server.request_settings import request_settings
from fcgikit.server.settings import ServerSettings


def received(params: dict[bytes, bytes], *, shape: str = "dict") -> RequestReceived:
    """A request whose params come as the protocol gives them: a dict, the encoded pairs of a
    request with many, or the pairs with their text (a whole request's one pass)."""
    given: dict[bytes, bytes] | EncodedParams = params
    if shape == "encoded":
        given = EncodedParams(encode_pairs(params.items()))
    elif shape == "text":
        text = {name.decode("latin-1"): value.decode("latin-1") for name, value in params.items()}
        given = TextParams(encode_pairs(params.items()), text)
    return RequestReceived(
        request_id=1,
        role=Role.RESPONDER,
        keep_conn=False,
        params=given,
        duplicate_names=frozenset(),
    )


@pytest.mark.parametrize("shape", ["dict", "encoded", "text"])
@pytest.mark.parametrize(
    ("content_length", "length"),
    [
        pytest.param(None, None, id="none"),
        pytest.param(b"", None, id="empty, nginx's GET"),
        pytest.param(b"12", 12, id="a number"),
        pytest.param(b" 12 ", 12, id="blanks around it"),
        pytest.param(b"0", 0, id="zero"),
        pytest.param(b"-1", None, id="negative"),
        pytest.param(b"1e3", None, id="not digits"),
    ],
)
def test_the_body_is_as_long_as_a_numeric_content_length(
    content_length: bytes | None, length: int | None, shape: str
) -> None:
    params = {b"REQUEST_METHOD": b"POST"}
    if content_length is not None:
        params[b"CONTENT_LENGTH"] = content_length
    body = request_body(
        received(params, shape=shape).params, request_settings(ServerSettings()), streamed=True
    )
    assert body.content_length == length


@pytest.mark.parametrize("streamed", [True, False])
def test_a_body_reads_the_same_whether_it_streamed_in_or_arrived_whole(streamed: bool) -> None:
    settings = request_settings(ServerSettings(spool_threshold=8))
    body = request_body(received({b"CONTENT_LENGTH": b"20"}).params, settings, streamed=streamed)
    for chunk in (b"line one\n", b"line two\nand the rest"):
        body.feed(chunk)
    body.finish()
    assert body.complete and body.spooled  # past the threshold: on disk, either way
    assert body.readline() == b"line one\n"
    assert body.read(4) == b"line"
    assert list(body) == [b" two\n", b"an"]  # CONTENT_LENGTH cut the rest
    body.close()


def test_a_filter_s_data_is_as_long_as_fcgi_data_length() -> None:
    event = RequestReceived(
        request_id=1,
        role=Role.FILTER,
        keep_conn=False,
        params={b"FCGI_DATA_LENGTH": b"3"},
        duplicate_names=frozenset(),
    )
    data = filter_data(event, request_settings(ServerSettings()))
    data.feed(b"abcdef")
    data.finish()
    assert data.read() == b"abc"
