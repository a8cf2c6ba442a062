"""Requests waiting for a thread hold bounded memory (issue 21, item 4).

In a real process: ``fcgikit serve`` runs an app that blocks until the test releases it
(tests/apps/blocking.py), so the requests behind the running ones wait. A raw client on the
unix socket sends requests whose params are 100,000 tiny pairs (~0.9 MB, under the 1 MiB
cap): without a bound, each waiting one held ~10 MiB. The server's peak memory is read from
``/proc/PID/status`` (``VmHWM``, the high-water mark of its resident set), so no moment has
to be caught. In process (the ``serve`` fixture): the budget comes back on every path a
request can take, and a request with many params runs with every one of them.
"""

from __future__ import annotations

import array
import fcntl
import functools
import gc
import os
import termios
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from fcgikit.protocol import ClientConnection, ProtocolStatus, ServerConnection
from fcgikit.protocol.events import TextParams
from fcgikit.protocol.records import encode_pairs, pack_header, pack_records
from fcgikit.protocol.whole_request import WholeRequest
from fcgikit.server.queued_memory import WAITING_BODY_MEMORY, bound_waiting_memory
from fcgikit.server.settings import ServerSettings
from fcgikit.server.wsgi import WSGIRequest
from fcgikit.server.wsgi_codec import DROPPED_PARAMS, ENVIRON_EXTRA_KEYS, environ_names
from tests.apps.blocking import params_digest
from tests.processes import ROOT, Backend, fcgikit_command
from tests.server.test_hostile import (
    ABORT,
    PARAMS,
    STDIN,
    Log,
    Peer,
    Reply,
    assert_settled,
    begin,
    digest_app,
    expected,
    params,
    peer,
    request_bytes,
    stdin,
    wait_until,
)

ENV = {"PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'tests'}"}
MiB = 1 << 20
KiB = 1 << 10
PAIRS = 100_000
WAIT = 10.0
LETTERS = "abcdefghijklmnopqrstuvwxyz"


def tiny_pairs(shift: int) -> Iterator[tuple[str, str]]:
    """100,000 params of 9 bytes each on the wire; ``shift`` changes their values."""
    return ((f"p{i:05d}", LETTERS[(i + shift) % 26]) for i in range(PAIRS))


@functools.cache
def tiny_params(shift: int) -> bytes:
    """:func:`tiny_pairs`, encoded (~0.9 MB)."""
    return encode_pairs((name.encode(), value.encode()) for name, value in tiny_pairs(shift))


@functools.cache
def expected_answer(shift: int) -> bytes:
    """What the app answers for the params of :func:`tiny_params`."""
    return params_digest(tiny_pairs(shift)).encode()


def whole_request(rid: int, encoded: bytes) -> bytes:
    """BEGIN_REQUEST, the ``encoded`` params and their end, an empty body."""
    return (
        begin(rid)
        + pack_records(PARAMS, rid, encoded)
        + pack_header(PARAMS, rid, 0)
        + pack_header(STDIN, rid, 0)
    )


def numbered(number: int) -> bytes:
    """The params of request ``number``: tiny ones, and its number in REQUEST_URI."""
    return tiny_params(number % 26) + encode_pairs([(b"REQUEST_URI", b"/%d" % number)])


class RawConnection(Peer):
    """A raw peer (test_hostile's) that can also tell whether the server read all it sent."""

    def unread_by_server(self) -> int:
        """Bytes sent that the server has not read yet (SIOCOUTQ on a unix socket)."""
        queued = array.array("i", [0])
        fcntl.ioctl(self.sock.fileno(), termios.TIOCOUTQ, queued)
        return queued[0]

    def poll(self) -> Reply:
        """What has arrived, without waiting."""
        self.sock.setblocking(False)
        try:
            while not self.reply.closed:
                data = self.sock.recv(65536)
                self.reply.closed = not data
                self.reader.feed(data, lambda t, r, c: self.reply.records.append((t, r, bytes(c))))
        except BlockingIOError:
            pass
        finally:
            self.sock.settimeout(10)
        return self.reply


def answer(reply: Reply, rid: int) -> bytes:
    """The body of the one response to ``rid``, a 200."""
    [body] = reply.bodies(rid)
    assert reply.stdout(rid).startswith(b"Status: 200"), reply.stdout(rid)[:200]
    return body


def memory_kib(pid: int) -> dict[str, int]:
    """The process's current (VmRSS) and peak (VmHWM) resident set, in KiB."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    return {name: int(fields[name].split()[0]) for name in ("VmRSS", "VmHWM")}


class BlockingBackend:
    """``fcgikit serve apps.blocking:app`` on a unix socket in ``tmp``, and its release."""

    def __init__(self, tmp: Path, *options: str) -> None:
        self.path = str(tmp / "app.sock")
        self.fifo = str(tmp / "release")
        os.mkfifo(self.fifo)
        self.backend = Backend(
            fcgikit_command("serve", "apps.blocking:app", "--bind", f"unix:{self.path}", *options),
            env={**ENV, "FCGIKIT_TEST_RELEASE": self.fifo},
        )
        self.backend.wait_for(r"listening on unix:")
        self.pid = self.backend.proc.pid

    def release(self) -> None:
        """Let every request of the app go on (the app's thread is waiting on the FIFO)."""
        os.close(os.open(self.fifo, os.O_WRONLY))

    def stop(self) -> None:
        self.backend.stop()


@pytest.fixture
def blocking(tmp_path: Path) -> Iterator[Callable[..., BlockingBackend]]:
    started: list[BlockingBackend] = []

    def start(*options: str) -> BlockingBackend:
        started.append(BlockingBackend(tmp_path, *options))
        return started[-1]

    yield start
    for backend in started:
        backend.stop()


def peak_growth(server: BlockingBackend, start: int) -> int:
    """How far the server's resident set has grown above ``start`` bytes, at its highest."""
    return memory_kib(server.pid)["VmHWM"] * 1024 - start


def test_200_queued_requests_of_100000_params_stay_within_the_budget(
    blocking: Callable[..., BlockingBackend],
) -> None:
    """Each waiting request holds about what it sent (~0.9 MB), counted against
    --max-queued-memory; past it, OVERLOADED and a rate-limited log line; once the app goes
    on, every admitted request is answered from its own params."""
    budget, threads = 32 * MiB, 2
    server = blocking("--threads", str(threads), "--max-queued-memory", "32M")
    start = memory_kib(server.pid)["VmRSS"] * 1024
    began = time.monotonic()
    connections: list[RawConnection] = []
    try:
        for number in range(200):
            connections.append(RawConnection(server.path))
            connections[-1].send(whole_request(1, numbered(number)))
        wait_until(lambda: not any(c.unread_by_server() for c in connections), 120, "all read")
        server.backend.wait_for("blocking app: waiting", count=threads)
        # One more, read after all the others: its answer (there is no room for it either)
        # means that every one of them was admitted or refused by then.
        probe = RawConnection(server.path)
        connections.append(probe)
        probe.send(whole_request(1, numbered(200)))
        assert probe.read_end(1, timeout=60).ends(1) == [ProtocolStatus.OVERLOADED]
        # Besides the budget: each running request's environ (~12 MiB for 100,000 params,
        # and the dict it is built from), decoding the params of one arriving request, and
        # the interpreter's own growth.
        allowed = budget + threads * 24 * MiB + 24 * MiB
        assert peak_growth(server, start) <= allowed, (
            f"{peak_growth(server, start) / MiB:.0f} MiB more with 200 requests waiting "
            f"(budget {budget / MiB:.0f} MiB)"
        )
        replies = [connection.poll() for connection in connections[:200]]
        refused = [n for n, reply in enumerate(replies) if reply.ends(1)]
        assert all(replies[n].ends(1) == [ProtocolStatus.OVERLOADED] for n in refused)
        admitted = [n for n in range(200) if n not in refused]
        # about budget / 0.9 MB wait, plus the running ones
        assert threads + budget // (2 * MiB) <= len(admitted) <= threads + budget // 900_000
        lines = server.backend.count(r"refused \(OVERLOADED\)")
        assert 1 <= lines <= 2 + (time.monotonic() - began) / 5, server.backend.stderr
        server.release()
        for number in admitted:
            connection = connections[number]
            reply = connections[number].read_end(1, timeout=120)
            assert reply.ends(1) == [ProtocolStatus.REQUEST_COMPLETE]
            assert answer(reply, 1) == expected_answer(number % 26)
    finally:
        for connection in connections:
            connection.close()


def test_a_multiplexed_connection_holds_the_params_of_one_request_at_most(
    blocking: Callable[..., BlockingBackend],
) -> None:
    """100 requests on one multiplexed connection each send ~0.9 MB of params and do not end
    them: all but the first are refused (OVERLOADED) as they come, instead of ~100 MiB held;
    the first one then ends its params and is answered from them."""
    server = blocking("--multiplexed")
    start = memory_kib(server.pid)["VmRSS"] * 1024
    began = time.monotonic()
    connection = RawConnection(server.path)
    try:
        for rid in range(1, 101):
            connection.send(
                begin(rid, keep_conn=True) + pack_records(PARAMS, rid, tiny_params(rid))
            )
        wait_until(lambda: not connection.unread_by_server(), 60, "all to be read")
        server.release()
        last = encode_pairs([(b"REQUEST_URI", b"/1")])
        connection.send(
            pack_records(PARAMS, 1, last) + pack_header(PARAMS, 1, 0) + pack_header(STDIN, 1, 0)
        )
        reply = connection.read(lambda r: all(r.ends(rid) for rid in range(1, 101)), timeout=60)
        assert reply.ends(1) == [ProtocolStatus.REQUEST_COMPLETE]
        assert answer(reply, 1) == expected_answer(1)
        assert all(reply.ends(rid) == [ProtocolStatus.OVERLOADED] for rid in range(2, 101))
        # one request's params as they arrive, then its environ, as the app holds it
        assert peak_growth(server, start) <= 32 * MiB, f"{peak_growth(server, start) / MiB} MiB"
        # rate-limited: the first at once, then a line per 5 s at most with the count
        lines = server.backend.count(r"refused \(OVERLOADED\)")
        assert 1 <= lines <= 2 + (time.monotonic() - began) / 5, server.backend.stderr
        assert not reply.closed
    finally:
        connection.close()


# --- in process ------------------------------------------------------------------------------


def padded(path: str, pad: int, **extra: bytes) -> dict[bytes, bytes]:
    return {
        b"PATH_INFO": path.encode(),
        b"HTTP_X_PAD": b"p" * pad,
        **{k.encode(): v for k, v in extra.items()},
    }


def test_the_budget_comes_back_on_every_path(serve: Any, caplog: pytest.LogCaptureFixture) -> None:
    """Requests that run, wait, are refused, are aborted while waiting, or whose connection
    closes while they wait: once all are over, nothing of the budget is held, and a request
    as large as the ones refused is admitted again."""
    entered = threading.Semaphore(0)
    gate = threading.Event()

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        entered.release()
        gate.wait(WAIT)
        return digest_app(environ, start_response)

    log = Log(caplog)
    running = serve(app, threads=1, max_queued=16, max_queued_memory=64 * 1024)
    pool = running.server.pool
    peers = [Peer(running.path) for _ in range(8)]
    try:
        peers[0].send(request_bytes(1, "/first"))
        assert entered.acquire(timeout=WAIT)
        # waiting: with a body still to come (counted at its CONTENT_LENGTH) or complete
        peers[1].send(begin(1, keep_conn=True) + params(1, padded("/abort", 12_000)))
        peers[2].send(
            begin(1)
            + params(1, padded("/close", 12_000, CONTENT_LENGTH=b"100"))
            + pack_records(STDIN, 1, b"part")
        )
        peers[3].send(begin(1) + params(1, padded("/wait", 12_000)) + stdin(1, b""))
        wait_until(lambda: pool.in_flight == 4, what="three requests waiting")
        held = pool.queued_memory
        assert 3 * 12_000 < held <= 64 * 1024
        # no room for another
        peers[4].send(begin(1) + params(1, padded("/refused", 12_000)) + stdin(1, b""))
        assert peers[4].read_end(1).ends(1) == [ProtocolStatus.OVERLOADED]
        log.wait_for_one("--max-queued-memory")
        assert pool.queued_memory == held
        peers[1].send(pack_header(ABORT, 1, 0))
        assert peers[1].read_end(1).ends(1) == [ProtocolStatus.REQUEST_COMPLETE]
        peers[2].close()
        gate.set()
        assert peers[0].read_end(1).bodies(1) == [expected("/first", b"")]
        assert peers[3].read_end(1).bodies(1) == [expected("/wait", b"")]
        wait_until(lambda: pool.in_flight == 0, what="every request to end")
        assert pool.queued_memory == 0
        peers[5].send(begin(1) + params(1, padded("/again", 60_000)) + stdin(1, b""))
        assert peers[5].read_end(1).bodies(1) == [expected("/again", b"")]
    finally:
        gate.set()
        for p in peers:
            p.close()
    assert_settled(running)
    assert pool.queued_memory == 0


def test_a_request_with_many_params_runs_with_every_one_of_them(serve: Any) -> None:
    """Kept encoded while it arrives and waits, decoded when it runs: the app sees each
    param, its CONTENT_LENGTH (looked up without decoding) and its body."""
    seen: list[tuple[str, str]] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        seen.extend((k, v) for k, v in environ.items() if k[:1] == "p" and k[1:].isdigit())
        return digest_app(environ, start_response)

    running = serve(app)
    pairs = [(name.encode(), value.encode()) for name, value in tiny_pairs(3)][:5000]
    body = b"b" * 5000
    extra = [(b"PATH_INFO", b"/many"), (b"CONTENT_LENGTH", b"5000"), (b"p00007", b"last")]
    with peer(running) as p:
        p.send(begin(1) + pack_records(PARAMS, 1, encode_pairs(pairs + extra)))
        p.send(pack_header(PARAMS, 1, 0) + stdin(1, body))
        assert p.read_end(1).bodies(1) == [expected("/many", body)]
    assert seen == [(k.decode(), ("last" if k == b"p00007" else v.decode())) for k, v in pairs]


@pytest.mark.parametrize(
    ("count", "size"),
    [
        pytest.param(5, 10, id="a few params"),
        pytest.param(24, 30, id="what nginx sends"),
        pytest.param(128, 5, id="as many tiny ones as are decoded"),
        pytest.param(129, 5, id="kept encoded"),
        pytest.param(5000, 1, id="many kept encoded"),
    ],
)
def test_what_a_waiting_request_counts_for_is_at_least_what_it_holds(count: int, size: int) -> None:
    """Its params, request and body objects as measured by tracemalloc, against
    bound_waiting_memory: never less (the budget would let more in than it says), and not
    far more (it would refuse what fits)."""
    client = ClientConnection()
    data = client.start_request(1, [(b"HTTP_X_%d" % n, b"v" * size) for n in range(count)])
    data += client.end_stdin(1)
    settings = ServerSettings()
    waiting: list[WSGIRequest] = []
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(100):
            received = ServerConnection().receive_data(data)[0]
            request = WSGIRequest(None, received, None, settings)  # type: ignore[arg-type]
            request.body.finish()
            waiting.append(request)
        gc.collect()
        held = (tracemalloc.get_traced_memory()[0] - before) / len(waiting)
    finally:
        tracemalloc.stop()
    counted = bound_waiting_memory(waiting[0], waiting[0].body.complete)
    assert held <= counted <= 2 * held + 1024, (held, counted)


def test_a_whole_requests_text_counts_while_it_waits_and_becomes_its_environ() -> None:
    """A request that arrived whole, its params decoded as text in the same pass (the direct
    lane's): waiting, it counts for that text as a decoded request counts for its dict, its
    body is as long as the text says, and once it runs the text is its environ."""
    client = ClientConnection()
    pairs = [(b"HTTP_X_%d" % n, b"v" * 30) for n in range(24)]
    data = client.start_request(1, [*pairs, (b"CONTENT_LENGTH", b"3")])
    data += client.send_stdin(1, b"abc") + client.end_stdin(1)
    settings = ServerSettings()

    def made() -> WSGIRequest:
        names = environ_names(DROPPED_PARAMS)
        whole = WholeRequest.parse(data, 1 << 20, names=names, room=ENVIRON_EXTRA_KEYS)
        assert whole is not None
        return WSGIRequest(None, whole.event, None, settings)  # type: ignore[arg-type]

    made().build_environ()  # the server's first request: the table learns these names
    as_text = made()
    event = ServerConnection().receive_data(data)[0]
    as_dict = WSGIRequest(None, event, None, settings)  # type: ignore[arg-type]
    assert type(as_text.params) is TextParams and type(as_dict.params) is dict
    complete = as_text.body.complete
    assert bound_waiting_memory(as_text, complete) == bound_waiting_memory(as_dict, complete)
    assert as_text.body.content_length == 3
    environ = as_text.build_environ()
    assert environ["HTTP_X_23"] == "v" * 30 and environ["wsgi.input"] is as_text.body
    assert environ == {**as_dict.build_environ(), "wsgi.errors": environ["wsgi.errors"],
                       "wsgi.input": environ["wsgi.input"]}  # fmt: skip


def test_a_large_upload_waiting_for_a_thread_keeps_little_of_its_body_in_memory() -> None:
    """A body of known length streams through memory once its request runs (RequestBody),
    but while it waits for a thread it counts, and keeps, at most WAITING_BODY_MEMORY: the
    budget is not spent by a few uploads waiting."""
    client = ClientConnection()
    params = {b"REQUEST_METHOD": b"POST", b"CONTENT_LENGTH": b"%d" % (100 * MiB)}
    received = ServerConnection().receive_data(client.start_request(1, params))[0]
    request = WSGIRequest(None, received, None, ServerSettings())  # type: ignore[arg-type]
    counted = bound_waiting_memory(request, request.body.complete)
    assert counted <= WAITING_BODY_MEMORY + 4096, counted
    request.body.feed(b"x" * MiB)  # what arrives while it waits
    assert request.body.spooled and request.body.memory_bound() == 0
    request.body.close()


def test_an_upload_that_waited_for_a_thread_streams_through_memory_once_it_runs() -> None:
    """The bound is for the wait: once the app reads, what arrives as fast as it reads stays
    in memory, up to spool_threshold, as for a request that never waited (every streamed
    upload is admitted as waiting, so all of each went through the temp file)."""
    client = ClientConnection()
    length = 8 * KiB + 20 * 256 * KiB
    params = {b"REQUEST_METHOD": b"POST", b"CONTENT_LENGTH": b"%d" % length}
    received = ServerConnection().receive_data(client.start_request(1, params))[0]
    request = WSGIRequest(None, received, None, ServerSettings())  # type: ignore[arg-type]
    bound_waiting_memory(request, request.body.complete)
    body = request.body
    body.feed(b"w" * (8 * KiB))  # what arrived while it waited
    assert body.read(8 * KiB) == b"w" * (8 * KiB)  # it runs
    for n in range(20):
        block = bytes([n]) * (256 * KiB)
        body.feed(block)
        assert body.read(len(block)) == block
    assert not body.spooled
    assert body.read() == b""
    body.close()
