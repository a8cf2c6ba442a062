"""The server's request path, fuzzed without sockets or threads: Channel -> WSGIRequest -> app.

A real :class:`~fcgikit.server.channel.Channel` reads the fuzzed bytes from a fake socket, a
fake server runs each request's job inline as soon as its body is complete (or at the end,
after the peer's EOF), and a small set of apps, picked by the first letter of PATH_INFO
after the slash, read the body in every way PEP 3333 allows, stream, use ``write()``, raise
before and after their headers, send a header with CR/LF, return text, or read the Filter's
data. The spool threshold is 64 bytes in half the runs, so the temp-file path is covered.

Byte 0 of an input is the setup (bit 0: multiplexed; bit 1: every role; bit 2: spool at 64
bytes; bit 3: debug; bits 4-7: chunk size, 0 for whole); the rest is the stream.

What must hold: nothing raises out of ``on_readable`` or a request's job (the real pool
would log "unexpected error" and the request would never end); the output is valid FastCGI
(``OutputChecker``); once the peer has gone and every job has run, the channel is closed, no
request is left in it and no spool file descriptor is left open.
"""

from __future__ import annotations

import gc
import os
from collections import deque
from typing import Any

from protocol_target import Finding, OutputChecker, begins_in, chunks

from fcgikit.protocol import Role
from fcgikit.server.channel import Channel
from fcgikit.server.pool import Refusal
from fcgikit.server.reply import overload_log
from fcgikit.server.server import admit
from fcgikit.server.settings import ServerSettings


class FakeSocket:
    def __init__(self, pieces: list[bytes]) -> None:
        self.incoming = deque(pieces)
        self.incoming.append(b"")  # EOF
        self.sent = bytearray()
        self.closed = False
        self.shut = False

    def fileno(self) -> int:
        return -1

    def recv(self, size: int) -> bytes:
        if not self.incoming:
            raise BlockingIOError
        return self.incoming.popleft()

    def recv_into(self, buffer: memoryview) -> int:
        if not self.incoming:
            raise BlockingIOError
        chunk = self.incoming.popleft()
        if len(chunk) > len(buffer):
            self.incoming.appendleft(chunk[len(buffer) :])
            chunk = chunk[: len(buffer)]
        buffer[: len(chunk)] = chunk
        return len(chunk)

    def send(self, data: Any) -> int:
        if self.closed:
            raise OSError(9, "Bad file descriptor")
        self.sent += data
        return len(data)

    def shutdown(self, how: int) -> None:
        self.shut = True

    def close(self) -> None:
        self.closed = True


class InlinePool:
    """Holds jobs; the harness runs them when their input is complete.

    Each submit is a request given to the app: the output checker is brought up to date
    first, so a keep-conn request reusing an id may write again.
    """

    def __init__(self, capacity: int, sock: FakeSocket, checker: OutputChecker) -> None:
        self.capacity = capacity
        self.jobs: list[Any] = []
        #: replies held while the harness runs a batch of jobs, as the loop's thread holds
        #: them while it runs the ready requests (WorkerPool.run_ready)
        self.held: list[Any] = []
        self.sock = sock
        self.checker = checker
        self.checked = 0

    def check_output(self) -> None:
        self.checker.feed(bytes(self.sock.sent[self.checked :]))
        self.checked = len(self.sock.sent)

    def admit(self, job: Any, *, ready: bool, memory: int) -> Refusal | None:
        self.check_output()
        self.checker.begun(job.request_id)  # (a request is its own job)
        if len(self.jobs) >= self.capacity:
            return Refusal.THREADS
        self.jobs.append(job)
        return None

    def run_batch(self, jobs: list[Any]) -> None:
        """Run ``jobs`` one after the other, their replies held until the last is over, then
        sent and their requests ended (as by a queued thread: the channel lingers until
        the peer's EOF)."""
        for job in jobs:
            reply = job.run()  # (a request is its own job)
            if reply is not None:
                self.held.append(reply)
        held, self.held = self.held, []
        for reply in held:
            reply.send()
            reply.done(on_loop=False)


class FakeServer:
    def __init__(self, app: Any, settings: ServerSettings, pool: InlinePool) -> None:
        self.app = app
        self.settings = settings
        self.pool = pool
        self.closed_channels = 0
        self.recv_buffer = memoryview(bytearray(256 * 1024))
        self.arrived: list[Any] = []
        self.overloads = overload_log()

    def unregister(self, channel: Channel) -> None:
        channel.registered = False

    def channel_closed(self, channel: Channel) -> None:
        channel.registered = False
        self.closed_channels += 1

    def want_write(self, channel: Channel) -> None:
        pass

    def request_finished(self) -> None:
        pass

    def set_aside(self, channel: Channel) -> None:
        pass

    def take_back(self, channel: Channel) -> None:
        pass


class Boom(Exception):
    pass


def app(environ: dict[str, Any], start_response: Any) -> Any:
    path = environ.get("PATH_INFO", "")
    kind = path[1:2]
    stream = environ["wsgi.input"]
    if kind == "l":
        body = b"".join(stream)
    elif kind == "r":
        body = stream.read(3) + stream.readline(5) + b"".join(stream.readlines(7))
    elif kind == "n":
        body = stream.read(None)
    elif kind == "f":
        data = environ.get("fcgikit.filter_data")
        body = data.read() if data is not None else b""
    elif kind == "x":
        raise Boom("before the headers")
    elif kind == "h":
        start_response("200 OK", [("X-Bad", "a\r\nInjected: yes")])
        return [b"never"]
    elif kind == "t":
        start_response("200 OK", [])
        return ["text, not bytes"]
    elif kind == "s":
        start_response("999 Nope", [("Bad Name", "v")])
        return []
    elif kind == "e":
        environ["wsgi.errors"].write("to stderr\n")
        body = b""
    else:
        body = stream.read()
    if kind == "g":

        def generate() -> Any:
            yield b"first"
            yield b""
            yield body
            if path[2:3] == "x":
                raise Boom("after the headers")

        start_response("200 OK", [("Content-Type", "text/plain")])
        return generate()
    if kind == "w":
        write = start_response("200 OK", [])
        write(b"written")
        write(body)
        return []
    if kind == "c":
        try:
            raise Boom("replace the headers")
        except Boom:
            import sys

            start_response("200 OK", [])
            start_response("500 Oops", [], sys.exc_info())
    else:
        start_response("200 OK", [("Content-Length", str(len(body)))])
    return [body]


def _runnable(job: Any) -> bool:
    request = job  # (a request is its own job)
    for body in (request.body, request.filter_data):
        if body is not None and not (body._finished or body._failure is not None):
            return False
    return True


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def server_input(data: bytes) -> None:
    if not data:
        return
    config, stream = data[0], data[1:]
    settings = ServerSettings(
        threads=2,
        max_queued=1,
        multiplexed=bool(config & 1),
        roles=frozenset(Role) if config & 2 else frozenset({Role.RESPONDER}),
        spool_threshold=64 if config & 4 else 1 << 20,
        debug=bool(config & 8),
        max_params_size=4096,
        handle_signals=False,
    )
    # Garbage left by whatever ran before (a stopped Server waits for the collector: it and
    # its pool refer to each other) would close its descriptors whenever a collection runs,
    # in the middle of this input, and look like the opposite of a leak.
    gc.collect()
    fds_before = _open_fds()
    sock = FakeSocket(chunks(stream, config >> 4))
    checker = OutputChecker(strict_order=False)
    pool = InlinePool(settings.threads + settings.max_queued, sock, checker)
    server = FakeServer(app, settings, pool)
    channel = Channel(server, sock, "fuzz")  # type: ignore[arg-type]
    while channel.registered and sock.incoming:
        channel.on_readable()
        arrived, server.arrived = server.arrived, []
        admit(arrived, pool)
        batch = [job for job in pool.jobs if _runnable(job)]
        for job in batch:
            pool.jobs.remove(job)
        pool.run_batch(batch)
    for job in pool.jobs:  # after EOF every body has failed, so nothing blocks
        if not _runnable(job):
            request = job  # (a request is its own job)
            if KNOWN_BUGS and request.body._failure is not None:
                # Known bug (fuzz/README.md, finding 1): on EOF or ABORT the channel fails
                # wsgi.input but not fcgikit.filter_data, so a Filter app waits for ever.
                request.filter_data.fail("fuzz harness: known bug 1")
            else:
                raise Finding("a request's body is still waiting after the peer closed")
    pool.run_batch(pool.jobs)
    pool.jobs.clear()
    if channel.requests:
        raise Finding(f"requests left in the channel: {sorted(channel.requests)}")
    if not sock.closed or not channel.closed:
        raise Finding("the channel was not closed after the peer left and all requests ended")
    pool.check_output()
    if checker.reader.buffered:
        raise Finding("the server wrote half a record")
    begun = begins_in(stream)
    for request_id, count in checker.ends.items():
        if count > begun[request_id]:
            raise Finding(
                f"{count} END_REQUESTs for request {request_id}, begun {begun[request_id]}x"
            )
    if _open_fds() != fds_before:
        raise Finding(f"file descriptors leaked: {fds_before} before, {_open_fds()} after")


#: FUZZ_KNOWN_BUGS=1 steps around the findings already reported, so a campaign can go on.
KNOWN_BUGS = os.environ.get("FUZZ_KNOWN_BUGS") == "1"
