"""``wsgi.input``: the request body, streamed to the app as it arrives.

The connection's I/O thread ``feed``s STDIN chunks in; the app's worker thread reads. A body
waits in memory while at most ``spool_threshold`` bytes of it are unread; past that, everything
unread moves to an anonymous temporary file, and what arrives while the file holds unread bytes
goes behind them (waitress's growing buffer in one step). Once the app has read the file to its
end, arriving bytes wait in memory again, and the next overflow reuses the file from its start.
So an app that reads as fast as the body arrives (an upload streamed to storage) never costs a
write and a read of the disk, and one that does not keeps no more than the threshold in memory.
The file is a ``TemporaryFile``, unlinked at creation, so it is gone even if the process is
killed. Reads past CONTENT_LENGTH return EOF, so a body longer than announced never reaches the
app (nor memory: what comes past it is dropped as it arrives), and a shorter one ends where the
web server ended it.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator
from typing import Protocol

# Defined where mypyc does not compile them (OSError subclasses); importable here as before.
from fcgikit.errors import RequestBodyError, RequestBodyTimeout
from fcgikit.server.body_storage import BodyStorage

__all__ = ["RequestBody", "RequestBodyError", "RequestBodyTimeout"]


class BodySource(Protocol):
    """Where a streamed body's bytes come from (a Channel: see fcgikit.server.handover)."""

    def pull_body(self, body: RequestBody, timeout: float | None) -> bool | None: ...


class RequestBody(BodyStorage):
    """``streamed``: fed by a connection's loop while the app's thread may read. False: filled
    before its app runs, by the thread that made it (the request arrived whole), then used by
    one thread at a time: no lock, whose rounds cost more than the rest of such a body's life
    (benchmarks/RESULTS.md, "The body, round 9"). Every decision is the same either way."""

    def __init__(
        self,
        content_length: int | None,
        spool_threshold: int,
        timeout: float | None = None,
        streamed: bool = True,
    ) -> None:
        # (not super().__init__: interpreted, the super object costs more than the call)
        BodyStorage.__init__(self)
        self._limit = content_length
        self._timeout = timeout
        self._spool_threshold = spool_threshold
        #: spool_threshold, or less while the request waits for a thread (limit_memory)
        self._threshold = spool_threshold
        self._lock = threading.Lock() if streamed else None
        # Made by the first read that has to wait: most bodies (every GET's) are complete
        # before the app runs, and a Condition costs time to make (benchmarks/RESULTS.md,
        # "Small costs the code steps around").
        self._waiter: threading.Condition | None = None
        # How many readers are inside its wait: the feeds notify only then. Once a read has
        # waited, the Condition stays, and notify_all (interpreted, however few wait) would
        # otherwise cost every feed after it, each view a reader reading its own socket
        # feeds too (benchmarks/RESULTS.md, "the streamed upload, round 14").
        self._waiting = 0
        self._finished = False
        self._failure: str | None = None
        self.received = 0  # bytes fed by the web server
        #: the connection the reader may read the body from itself, when none is unread
        self.source: BodySource | None = None
        self._ask_source = True

    # --- the I/O side ----------------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        lock = self._lock
        if lock is None:
            self._feed(data)
        else:
            with lock:
                self._feed(data)

    def feed_views(self, views: list[memoryview]) -> None:
        """Feed the app's own thread's read of the body from its source (the thread that
        reads it, so no other thread waits for these): views of a buffer that its source
        writes again at its read after the next one, not before (two buffers, alternating
        each call), so kept uncopied until the app's read copies them into what it returns
        (see _settle)."""
        lock = self._lock
        assert lock is not None
        lock.acquire()
        try:
            self._view_feeds += 1
            for view in views:
                self._feed(view, True)
        finally:
            lock.release()

    def _feed(self, data: bytes | memoryview, keep: bool = False) -> None:
        if self._finished or self._failure is not None:
            return
        received = self.received
        self.received = received + len(data)
        if self._limit is not None and self.received > self._limit:
            if received >= self._limit:
                return
            data = data[: self._limit - received]
        if not data:
            return
        try:
            if self._spool_write > self._spool_read:
                self._spool_append(data)
            else:
                chunks = self._chunks
                if chunks is None:
                    chunks = self._chunks = deque()
                # kept as it is: a bytes is immutable, anything else may change under us
                chunks.append(data if keep or type(data) is bytes else bytes(data))
                self._unread += len(data)
                if self._unread > self._threshold:
                    self._move_to_spool()
        except OSError as exc:
            self._spool_failed(exc)
            raise
        if self._waiting:  # a reader waits
            self._notify()

    def finish(self) -> None:
        # (here and in close, every streamed body's: acquire()/release() cost half a ``with``)
        lock = self._lock
        if lock is None:
            self._finished = True
            return
        lock.acquire()
        try:
            self._finished = True
            if self._waiting:
                self._notify()
        finally:
            lock.release()

    def fail(self, reason: str) -> None:
        lock = self._lock
        if lock is None:
            self._fail(reason)
        else:
            with lock:
                self._fail(reason)

    def _fail(self, reason: str) -> None:
        # (the look at what it holds: every request's body is closed so, most of them empty,
        # and each call saved is worth it interpreted)
        if self._failure is None:
            self._failure = reason
        if self._chunks is not None or self._spool_fd is not None:
            self._release_storage()
        if self._waiting:
            self._notify()

    def wake_reader(self) -> None:
        """Have the reader ask its source again (the source has changed)."""
        assert self._lock is not None
        with self._lock:
            self._ask_source = True
            if self._waiting:
                self._notify()

    def _notify(self) -> None:
        """Wake the readers waiting (lock held; only called when there are some)."""
        assert self._waiter is not None
        self._waiter.notify_all()

    def _spool_failed(self, exc: OSError) -> None:
        self._fail(f"cannot spool the request body: {exc.strerror or exc}")

    def close(self) -> None:
        """Free memory and the temp file; the request is over."""
        lock = self._lock
        if lock is not None:
            lock.acquire()
        try:
            self._finished = True
            self._fail("the request is over")
        finally:
            if lock is not None:
                lock.release()

    def memory_bound(self) -> int:
        """The most bytes of the body memory holds between feeds before the app reads any:
        all of it once it is complete, else what may come before it goes to the spool file
        (nothing, for a body spooled from its first byte)."""
        if self._spool_fd is not None or self._failure is not None:
            return 0
        if self._finished:
            return self._unread
        if self._limit is not None:
            return min(self._limit, self._threshold)
        return self._threshold

    def limit_memory(self, size: int) -> None:
        """Keep at most ``size`` unread bytes in memory (more go to the spool file), however
        large spool_threshold is, until the app reads: the bound of a request waiting for a
        thread. Once it runs, a body read as it arrives stays in memory again.

        Raises:
            OSError: the spool file could not be written (the body has failed).
        """
        lock = self._lock
        if lock is None:
            self._limit_memory(size)
        else:
            with lock:
                self._limit_memory(size)

    def _limit_memory(self, size: int) -> None:
        self._threshold = min(self._threshold, size)
        if self._unread > size:
            try:
                self._move_to_spool()
            except OSError as exc:
                self._spool_failed(exc)
                raise

    @property
    def complete(self) -> bool:
        """All of the body arrived (or it failed): reading it never waits for the I/O side."""
        return self._finished or self._failure is not None

    @property
    def content_length(self) -> int | None:
        return self._limit

    @property
    def threshold(self) -> int:
        """The most unread bytes memory holds before the rest goes to the spool file."""
        return self._threshold

    @property
    def view_feeds(self) -> int:
        """How many times :meth:`feed_views` was called."""
        return self._view_feeds

    # --- the app side (PEP 3333 input stream) ------------------------------------------------

    def _remaining_allowed(self) -> int | None:
        return None if self._limit is None else self._limit - self._consumed

    def _wait_for_data(self) -> bool:
        """Block until bytes are available; False at the end of the body (lock held)."""
        while True:
            allowed = self._remaining_allowed()
            if allowed is not None and allowed <= 0:
                return False
            if self._available() > 0:
                return True
            if self._failure is not None:
                raise RequestBodyError(self._failure)
            if self._finished:
                return False
            if self.source is not None and self._ask_source:
                # None: not the reader's; asked again once woken (wake_reader, or bytes
                # fed). The lock is released meanwhile: everything looked at again after.
                self._ask_source = False
                self._settle()
                pulled = self._pull(self.source)
                if pulled is False:
                    raise RequestBodyTimeout(
                        f"no byte of the request body arrived for {self._timeout:g}s"
                    )
                if pulled:
                    self._ask_source = True
                continue
            waiter = self._waiter
            if waiter is None:
                waiter = self._waiter = threading.Condition(self._lock)
            self._waiting += 1
            try:
                woken = waiter.wait(self._timeout)
            finally:
                self._waiting -= 1
            if not woken:
                raise RequestBodyTimeout(
                    f"no byte of the request body arrived for {self._timeout:g}s"
                )
            self._ask_source = True

    def _pull(self, source: BodySource) -> bool | None:
        """The reader reads the body from its source itself (lock held, released meanwhile)."""
        lock = self._lock
        assert lock is not None
        lock.release()
        try:
            return source.pull_body(self, self._timeout)
        finally:
            lock.acquire()

    def _cap(self, n: int) -> int:
        allowed = self._remaining_allowed()
        return n if allowed is None else min(n, allowed)

    def read(self, size: int | None = -1) -> bytes:
        # (acquire()/release(), not ``with``: every read of an upload comes here, and the
        # context manager's two look-ups by name cost more than the rest of the method)
        lock = self._lock
        if lock is None:
            return self._read(size)
        lock.acquire()
        try:
            return self._read(size)
        finally:
            lock.release()

    def _read(self, size: int | None) -> bytes:
        self._threshold = self._spool_threshold  # the request runs (see limit_memory)
        parts: list[bytes | memoryview] = []
        self._parts = parts
        self._parts_feed = -1
        try:
            if size is None or size < 0:
                while self._wait_for_data():
                    self._take(parts, self._cap(self._available()))
            else:
                wanted = size
                while wanted > 0 and self._wait_for_data():
                    wanted -= self._take(parts, self._cap(min(wanted, self._available())))
        finally:
            self._parts = None
        # (one part that is a whole chunk: the join returns it as it is)
        return b"".join(parts)

    def readline(self, size: int | None = -1) -> bytes:
        lock = self._lock
        if lock is None:
            return self._readline(size)
        with lock:
            return self._readline(size)

    def _readline(self, size: int | None) -> bytes:
        limit = None if size is None or size < 0 else size
        self._threshold = self._spool_threshold
        parts: list[bytes] = []
        got = 0
        while (limit is None or got < limit) and self._wait_for_data():
            n = self._cap(self._available())
            if limit is not None:
                n = min(n, limit - got)
            chunk = self._peek(n)
            newline = chunk.find(b"\n")
            if newline >= 0:
                chunk = chunk[: newline + 1]
            self._skip(len(chunk))
            parts.append(chunk)
            got += len(chunk)
            if newline >= 0:
                break
        return b"".join(parts)

    def readlines(self, hint: int = -1) -> list[bytes]:
        lines: list[bytes] = []
        total = 0
        while True:
            line = self.readline()
            if not line:
                return lines
            lines.append(line)
            total += len(line)
            if 0 < hint <= total:
                return lines

    def __iter__(self) -> Iterator[bytes]:
        while True:
            line = self.readline()
            if not line:
                return
            yield line
