"""Where a request body's unread bytes wait (:class:`~fcgikit.server.body.RequestBody`'s
storage): the chunks as fed, in memory, or an anonymous spool file once more than the
threshold is unread; and how a read takes them, each byte copied once on this side.

The chunks are ``bytes`` as the loop fed them, or views of the buffer the app's own thread
reads its body into (``feed_views``), which that thread writes again at its read after the
next: a read takes views of them and joins them into what it returns, and a read that spans
two reads of the source makes bytes of what it took first (:meth:`BodyStorage._settle`).
Every method here runs with the body's lock held (or on the one thread a body that arrived
whole has).
"""

from __future__ import annotations

import os
from collections import deque


class BodyStorage:
    """The unread bytes of a body and the count of those read; RequestBody decides when."""

    def __init__(self) -> None:
        # The chunks as fed, not copied into one buffer: a read takes views of them and
        # joins them (or a whole chunk as it is), so each byte is copied once on this side.
        # Made by the first feed: most bodies are empty.
        self._chunks: deque[bytes | memoryview] | None = None
        self._chunk_start = 0  # read position inside _chunks[0]
        self._unread = 0  # bytes in _chunks not read yet
        self._spool_fd: int | None = None
        # the file's unread bytes are [_spool_read, _spool_write); while there are any, the
        # memory holds none unread (what arrives goes behind them in the file)
        self._spool_read = 0
        self._spool_write = 0
        self._consumed = 0  # bytes handed to the app, compared with the limit
        #: feed_views calls so far, and what the read under way has taken (see _settle)
        self._view_feeds = 0
        self._parts: list[bytes | memoryview] | None = None
        self._parts_feed = -1

    def _move_to_spool(self) -> None:
        """Move the unread bytes in memory to the file (which has none unread: reuse it)."""
        if self._spool_fd is None:
            # here: tempfile (with shutil, bz2, lzma, random) is a body's that outgrows memory,
            # not every start's
            import tempfile

            with tempfile.TemporaryFile(prefix="fcgikit-body-") as spooled:
                self._spool_fd = os.dup(spooled.fileno())
        self._spool_read = self._spool_write = 0
        start = self._chunk_start
        for chunk in self._chunks or ():
            with memoryview(chunk) as view, view[start:] as pending:
                self._spool_append(pending)
            start = 0
        self._drop_chunks()

    def _drop_chunks(self) -> None:
        self._chunks = None
        self._chunk_start = 0
        self._unread = 0

    def _spool_append(self, data: bytes | memoryview) -> None:
        assert self._spool_fd is not None
        view = memoryview(data)
        while view:
            written = os.pwrite(self._spool_fd, view, self._spool_write)
            self._spool_write += written
            view = view[written:]

    def _release_storage(self) -> None:
        self._drop_chunks()
        self._spool_read = self._spool_write = 0
        if self._spool_fd is not None:
            os.close(self._spool_fd)
            self._spool_fd = None

    @property
    def spooled(self) -> bool:
        return self._spool_fd is not None

    def _available(self) -> int:
        spooled = self._spool_write - self._spool_read
        return spooled if spooled else self._unread

    def _take(self, parts: list[bytes | memoryview], n: int) -> int:
        """Append up to ``n`` available bytes to ``parts`` and remove them (lock held): views
        of the chunks, a whole chunk as it is, or a read of the spool file; how many."""
        if self._spool_write > self._spool_read:
            assert self._spool_fd is not None
            data = os.pread(self._spool_fd, n, self._spool_read)
            self._spool_read += len(data)
            parts.append(data)
            self._consumed += len(data)
            return len(data)
        chunks = self._chunks
        assert chunks is not None  # bytes are available in memory
        taken = 0
        while taken < n:
            first = chunks[0]
            # (a view, of the app's own read of its socket, is sliced as it is: another view
            # of it first cost as much as the rest of the step)
            is_view = type(first) is memoryview
            if is_view and self._parts_feed < 0:
                self._parts_feed = self._view_feeds
            start = self._chunk_start
            length = len(first)
            end = min(length, start + n - taken)
            if end < length:  # copied once, by the read's join
                parts.append((first if is_view else memoryview(first))[start:end])
                self._chunk_start = end
            else:  # the rest of the first chunk; all of it, as it is
                if start:
                    parts.append((first if is_view else memoryview(first))[start:])
                else:
                    parts.append(first)
                chunks.popleft()
                self._chunk_start = 0
            taken += end - start
        self._unread -= taken
        self._consumed += taken
        return taken

    def _settle(self) -> None:
        """Before a read of the source (lock held): the views the read under way took of a
        buffer that read may write again (fed before the last feed_views) become bytes."""
        parts = self._parts
        if parts and 0 <= self._parts_feed != self._view_feeds:
            joined = b"".join(parts)
            parts.clear()
            parts.append(joined)
            self._parts_feed = -1

    def _peek(self, n: int) -> bytes:
        if self._spool_write > self._spool_read:
            assert self._spool_fd is not None
            return os.pread(self._spool_fd, min(n, 65536), self._spool_read)
        assert self._chunks is not None
        start = self._chunk_start
        return bytes(self._chunks[0][start : start + n])

    def _skip(self, n: int) -> None:
        """Pass over ``n`` bytes ``_peek`` returned (in memory: of the first chunk)."""
        if self._spool_write > self._spool_read:
            self._spool_read += n
        else:
            assert self._chunks is not None
            self._chunk_start += n
            self._unread -= n
            if self._chunk_start == len(self._chunks[0]):
                self._chunks.popleft()
                self._chunk_start = 0
        self._consumed += n
