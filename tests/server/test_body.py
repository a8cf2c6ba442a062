"""wsgi.input on its own: reading, limits, spooling and cleanup, fed from another thread.

A body filled before its app runs (``streamed=False``: a request that arrived whole) takes no
lock; every test a single thread can run holds it to the same answers as a streamed one.
"""

from __future__ import annotations

import itertools
import os
import threading
import tracemalloc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fcgikit.errors import FcgikitError
from fcgikit.server.body import RequestBody, RequestBodyError, RequestBodyTimeout


def open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def test_reads_block_until_data_arrives_from_another_thread() -> None:
    body = RequestBody(content_length=None, spool_threshold=1 << 20)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(body.read()))
    reader.start()
    for part in (b"ab", b"cd", b"ef"):
        body.feed(part)
    body.finish()
    reader.join(10)
    assert got == [b"abcdef"]


@pytest.mark.parametrize("streamed", [True, False])
def test_content_length_caps_what_the_app_sees(streamed: bool) -> None:
    body = RequestBody(content_length=4, spool_threshold=1 << 20, streamed=streamed)
    body.feed(b"abcdefgh")  # a web server sending more than it announced
    body.finish()
    assert body.read(2) == b"ab"
    assert body.read() == b"cd"
    assert body.read() == b""
    assert body.readline() == b""


def test_a_body_made_positionally_is_the_one_its_keywords_make() -> None:
    # (request_input makes each request's body so: interpreted, keywords cost a dict a call)
    body = RequestBody(4, 1 << 20, 0.5, False)
    body.feed(b"abcdefgh")
    body.finish()
    assert body.read() == b"abcd"
    with pytest.raises(RequestBodyTimeout):
        RequestBody(4, 1 << 20, 0.01).read()


@pytest.mark.parametrize("streamed", [True, False])
def test_shorter_body_than_announced_ends_at_stdin_end(streamed: bool) -> None:
    body = RequestBody(content_length=100, spool_threshold=1 << 20, streamed=streamed)
    body.feed(b"short")
    body.finish()
    assert body.read() == b"short"


@pytest.mark.parametrize("streamed", [True, False])
def test_readline_with_size_and_lines(streamed: bool) -> None:
    body = RequestBody(content_length=None, spool_threshold=1 << 20, streamed=streamed)
    body.feed(b"first line\nsecond\nthird")
    body.finish()
    assert body.readline(5) == b"first"
    assert body.readline() == b" line\n"
    assert body.readlines() == [b"second\n", b"third"]


@pytest.mark.parametrize("streamed", [True, False])
@pytest.mark.parametrize("threshold", [0, 10, 100_000])
def test_spooling_keeps_every_byte_in_order(threshold: int, streamed: bool) -> None:
    body = RequestBody(content_length=None, spool_threshold=threshold, streamed=streamed)
    parts = [os.urandom(n) for n in (1, 7, 300, 4096, 5)]
    for part in parts:
        body.feed(part)
    body.finish()
    assert body.spooled == (threshold < 4409)
    assert body.readline() + body.read(100) + body.read() == b"".join(parts)


@pytest.mark.parametrize("streamed", [True, False])
def test_close_releases_the_spool_file(streamed: bool) -> None:
    before = open_fds()
    body = RequestBody(content_length=None, spool_threshold=0, streamed=streamed)
    body.feed(b"x" * 1000)
    assert body.spooled
    assert len(open_fds() - before) == 1
    body.close()
    assert open_fds() - before == set()
    with pytest.raises(RequestBodyError):
        body.read()


def test_failure_wakes_a_blocked_reader_with_a_clear_error() -> None:
    body = RequestBody(content_length=None, spool_threshold=1 << 20)
    errors: list[BaseException] = []

    def reader() -> None:
        try:
            body.read()
        except RequestBodyError as exc:
            errors.append(exc)

    thread = threading.Thread(target=reader)
    thread.start()
    body.fail("the web server aborted the request")
    thread.join(10)
    assert str(errors[0]) == "the web server aborted the request"


def test_a_body_that_stops_arriving_fails_as_an_oserror_an_app_already_catches() -> None:
    # Apps guard wsgi.input with ``except OSError`` (a broken input stream); callers of
    # fcgikit catch FcgikitError. The timeout is one of both, and says what happened.
    body = RequestBody(content_length=10, spool_threshold=1 << 20, timeout=0.01)
    body.feed(b"12345")
    assert body.read(5) == b"12345"
    with pytest.raises(OSError) as caught:
        body.read(5)
    assert isinstance(caught.value, RequestBodyTimeout)
    assert isinstance(caught.value, FcgikitError)
    assert str(caught.value) == "no byte of the request body arrived for 0.01s"


def test_a_large_body_the_app_keeps_up_with_never_goes_to_the_disk() -> None:
    """A 100 MiB upload read as it arrives costs no temp file writes and reads: only what
    the app has not read yet, beyond the threshold, goes to the spool."""
    body = RequestBody(content_length=20 * 500, spool_threshold=1000)
    received = []
    for n in range(20):
        body.feed(bytes([n]) * 500)
        received.append(body.read(500))
    body.finish()
    assert not body.spooled
    assert b"".join(received) == b"".join(bytes([n]) * 500 for n in range(20))
    body.close()


def test_an_upload_read_as_it_arrives_is_in_memory_once() -> None:
    """Each chunk the web server sends is kept as it arrived, not copied into a buffer of the
    body's own: memory holds the chunks not read yet, and a read copies only what it returns
    (a block that spans two chunks included)."""
    chunk_size, block = 1 << 20, 768 << 10
    chunks = [bytes([n]) * chunk_size for n in range(6)]
    expected = memoryview(b"".join(chunks))
    body = RequestBody(content_length=len(expected), spool_threshold=16 << 20)
    read = 0
    tracemalloc.start()
    try:
        for fed, chunk in enumerate(chunks, start=1):
            body.feed(chunk)
            while read + block <= fed * chunk_size:
                assert body.read(block) == expected[read : read + block]
                read += block
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert read == len(expected)
    assert peak < block + (64 << 10), f"{peak} bytes at the peak for reads of {block}"


def test_a_body_the_app_falls_behind_on_spools_the_rest_and_keeps_every_byte() -> None:
    body = RequestBody(content_length=None, spool_threshold=1000)
    body.feed(b"a" * 800)
    body.feed(b"b" * 800)  # 1,600 unread: over the threshold, to the spool
    assert body.spooled and body.memory_bound() == 0
    body.feed(b"c" * 300)  # behind what is spooled already: to the spool too
    assert body.read(1900) == b"a" * 800 + b"b" * 800 + b"c" * 300
    body.feed(b"d" * 300)  # the app caught up: memory again, the spool's space reused
    body.feed(b"e" * 900)
    body.feed(b"f" * 100)
    body.finish()
    assert body.read() == b"d" * 300 + b"e" * 900 + b"f" * 100
    body.close()


@settings(max_examples=200, deadline=None)
@given(
    steps=st.lists(st.tuples(st.booleans(), st.integers(0, 700)), max_size=40),
    threshold=st.sampled_from([0, 1, 100, 1000]),
    announced=st.booleans(),
    streamed=st.booleans(),
)
def test_feeds_and_reads_in_any_order_keep_every_byte_in_order(
    steps: list[tuple[bool, int]], threshold: int, announced: bool, streamed: bool
) -> None:
    total = sum(n for is_feed, n in steps if is_feed)
    body = RequestBody(
        content_length=total if announced else None, spool_threshold=threshold, streamed=streamed
    )
    sent, read, counter = [], [], 0
    for is_feed, n in steps:
        if is_feed:
            data = bytes((counter + i) % 251 for i in range(n))
            counter += n
            sent.append(data)
            body.feed(data)
        elif n and body._available():
            read.append(body.read(min(n, body._available())))
    body.finish()
    read.append(body.read())
    assert b"".join(read) == b"".join(sent)
    body.close()


# --- what a body holds in memory before the app reads it (issue 21, item 4) -----------------


@pytest.mark.parametrize("streamed", [True, False])
def test_what_comes_past_content_length_is_not_kept(streamed: bool) -> None:
    """The app never reads it, so memory does not hold it either: a request announcing a
    small body cannot park a large one in memory while it waits for a thread."""
    body = RequestBody(content_length=10, spool_threshold=1 << 20, streamed=streamed)
    body.feed(b"x" * 6)
    body.feed(b"y" * 100_000)
    body.feed(b"z" * 100)
    body.finish()
    assert body.received == 100_106  # what the web server sent
    assert body.memory_bound() == 10
    assert body.read() == b"xxxxxxyyyy"


@pytest.mark.parametrize(
    ("content_length", "fed", "finished", "bound"),
    [
        pytest.param(None, b"", False, 1000, id="unknown length: up to the spool"),
        pytest.param(None, b"abc", True, 3, id="complete: what is there"),
        pytest.param(500, b"abc", False, 500, id="known length: all of it"),
        pytest.param(2000, b"", False, 1000, id="over the threshold: up to the spool"),
        pytest.param(None, b"a" * 1500, False, 0, id="spooled since"),
    ],
)
def test_the_memory_a_body_may_hold_before_the_app_reads_it(
    content_length: int | None, fed: bytes, finished: bool, bound: int
) -> None:
    body = RequestBody(content_length=content_length, spool_threshold=1000)
    try:
        if fed:
            body.feed(fed)
        if finished:
            body.finish()
        assert body.memory_bound() == bound
    finally:
        body.close()
    assert body.memory_bound() == 0


def test_a_body_limited_in_memory_spools_what_is_beyond_and_keeps_every_byte() -> None:
    """A body of unknown length still arriving when its request has to wait keeps little in
    memory from then on (queued_memory.bound_waiting_memory)."""
    body = RequestBody(content_length=None, spool_threshold=1 << 20)
    body.feed(b"a" * 500)
    body.limit_memory(1000)
    assert not body.spooled and body.memory_bound() == 1000
    body.feed(b"b" * 400)
    assert not body.spooled
    body.feed(b"c" * 200)  # 1,100 unread: over the limit
    assert body.spooled and body.memory_bound() == 0
    body.feed(b"d" * 100)
    body.finish()
    assert body.read() == b"a" * 500 + b"b" * 400 + b"c" * 200 + b"d" * 100
    body.close()

    already = RequestBody(content_length=None, spool_threshold=1 << 20)
    already.feed(b"e" * 2000)
    already.limit_memory(1000)  # more than that in memory already: to the spool at once
    assert already.spooled
    already.finish()
    assert already.read() == b"e" * 2000
    already.close()


def test_a_read_returns_what_there_is_when_the_body_ends_short() -> None:
    body = RequestBody(content_length=None, spool_threshold=1 << 20)
    result: list[bytes] = []
    reader = threading.Thread(target=lambda: result.append(body.read(65536)))
    reader.start()
    body.feed(b"abc")
    body.finish()
    reader.join(10)
    assert result == [b"abc"]


@pytest.mark.parametrize("streamed", [True, False])
def test_a_body_read_by_iteration_and_after_its_close(streamed: bool) -> None:
    body = RequestBody(content_length=14, spool_threshold=1 << 20, streamed=streamed)
    for part in (b"one\ntw", b"o\n", b"three\nfour"):
        body.feed(part)
    body.finish()
    assert body.complete and body.memory_bound() == 14
    assert list(body) == [b"one\n", b"two\n", b"three\n"]
    assert body.read() == b""
    body.close()
    assert body.readline() == b""  # all it announced was read: the end, even closed


@pytest.mark.parametrize("streamed", [True, False])
def test_a_failed_body_raises_the_failure_on_each_read(streamed: bool) -> None:
    body = RequestBody(content_length=None, spool_threshold=1 << 20, streamed=streamed)
    body.feed(b"abc")
    body.finish()
    body.fail("the web server closed the connection")
    with pytest.raises(RequestBodyError, match="closed the connection"):
        body.read(1)
    body.feed(b"more")  # dropped: the body failed
    assert body.received == 3 and body.memory_bound() == 0


class HalvesSource:
    """A source as fcgikit.server.handover is: each pull writes the next bytes of ``data``
    into one half of one buffer (the half moves on after a feed of views) and feeds views of
    it; a half is written again while the body may still hold views of the other."""

    def __init__(self, data: bytes, half: int) -> None:
        self.data = data
        self.sent = 0
        self.half = half
        self.buffer = bytearray(2 * half)

    def pull_body(self, body: RequestBody, timeout: float | None) -> bool | None:
        if self.sent == len(self.data):
            body.finish()
            return True
        start = self.half if body.view_feeds & 1 else 0
        piece = self.data[self.sent : self.sent + self.half]
        self.buffer[start : start + len(piece)] = piece
        self.sent += len(piece)
        view = memoryview(self.buffer)[start : start + len(piece)]
        # as the protocol hands a read's run of records over: several views of it
        body.feed_views([view[: len(piece) // 3], view[len(piece) // 3 :]])
        return True


@pytest.mark.parametrize("size", [1000, 4096, 4097, 10_000, 30_000, -1])
def test_a_body_read_from_views_of_a_reused_buffer_keeps_every_byte(size: int) -> None:
    """Reads of any size against a source that reuses its buffer (the app's own thread
    reading the socket): what a read took of a half is the app's before that half is
    written again, also when one read spans several of the source's reads."""
    data = os.urandom(100_000)
    body = RequestBody(content_length=len(data), spool_threshold=1 << 20)
    body.source = HalvesSource(data, 4096)
    got = []
    while chunk := body.read(size):
        assert type(chunk) is bytes
        got.append(chunk)
    assert b"".join(got) == data
    assert not body.spooled


def test_lines_read_from_views_of_a_reused_buffer_keep_every_byte() -> None:
    data = b"".join(b"line %d %s\n" % (n, b"x" * (n % 300)) for n in range(2000))
    body = RequestBody(content_length=len(data), spool_threshold=1 << 20)
    body.source = HalvesSource(data, 1024)
    lines = list(body)
    assert b"".join(lines) == data
    assert all(type(line) is bytes for line in lines)


@settings(max_examples=200, deadline=None)
@given(
    data=st.binary(max_size=3000),
    cuts=st.lists(st.integers(0, 3000), max_size=12),
    per_read=st.integers(1, 4),
    announced=st.one_of(st.none(), st.integers(0, 3500)),
    threshold=st.sampled_from([0, 100, 1000, 1 << 20]),
)
def test_a_body_fed_views_keeps_what_a_body_fed_bytes_keeps(
    data: bytes, cuts: list[int], per_read: int, announced: int | None, threshold: int
) -> None:
    """The reads of a socket the app's thread feeds as views (several a read, some empty)
    end as the same bytes fed one by one would: past the announced length dropped, past the
    threshold spooled, every byte in order."""
    bounds = sorted({0, len(data), *(min(cut, len(data)) for cut in cuts)})
    pieces = [data[start:end] for start, end in itertools.pairwise(bounds)] + [b""]
    viewed = RequestBody(content_length=announced, spool_threshold=threshold)
    fed = RequestBody(content_length=announced, spool_threshold=threshold)
    for start in range(0, len(pieces), per_read):
        read = pieces[start : start + per_read]
        buffer = memoryview(bytearray(b"".join(read)))  # (a buffer of this read's own)
        views, offset = [], 0
        for piece in read:
            views.append(buffer[offset : offset + len(piece)])
            offset += len(piece)
            fed.feed(piece)
        viewed.feed_views(views)
    for body in (viewed, fed):
        body.finish()
    assert (viewed.received, viewed.spooled) == (fed.received, fed.spooled)
    assert viewed.read() == fed.read() == data[: len(data) if announced is None else announced]
