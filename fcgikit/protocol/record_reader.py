"""Cutting the byte stream a peer sends into FastCGI records.

:class:`RecordReader` only knows where one record ends and the next begins; what a record
*means* is the business of the state tables (:mod:`fcgikit.protocol.state`) and the
connections that follow them. Record headers and framing: :mod:`fcgikit.protocol.records`.

Why it looks the way it does:

* Reading is the hot path (every byte of every upload goes through it), so
  :meth:`RecordReader.feed` parses all complete records of a chunk in one loop with
  ``struct.unpack_from`` over a ``memoryview`` and hands each record's content on as a
  zero-copy slice. A chunk that holds only whole records is never copied into the buffer;
  only a partial tail (at most one record, 65,798 bytes) is kept, and not even that of a
  body's record (:meth:`RecordReader.follow`).
* Peer input can only ever raise :class:`~fcgikit.errors.RemoteProtocolError`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from fcgikit.errors import RemoteProtocolError
from fcgikit.protocol.constants import FCGI_HEADER_LEN, FCGI_VERSION_1
from fcgikit.protocol.records import HEADER

__all__ = ["CutRun", "RecordHandler", "RecordReader", "cut_run_py"]

#: the content of every empty record (nothing releases it: see RecordReader._cut)
_NO_CONTENT: Final = memoryview(b"")


#: What :meth:`RecordReader.feed` calls for each complete record: type, request id, content.
#: The content is a slice of the reader's buffer, valid only during the call.
RecordHandler = Callable[[int, int, memoryview], None]


#: cut_run_py, or its C lane (fcgikit.protocol.lanes.cut_run), which may answer None
CutRun = Callable[[memoryview, int, int, int, list[memoryview]], int | None]


def cut_run_py(
    view: memoryview, offset: int, record_type: int, request_id: int, views: list[memoryview]
) -> int:
    """From ``offset``, append to ``views`` the content of each complete, non-empty, version-1
    record of ``record_type`` for ``request_id`` (slices of ``view``), one after the other;
    where the first other record, or the end, begins (:meth:`RecordReader.follow`)."""
    end = len(view)
    while end - offset >= FCGI_HEADER_LEN:
        version, type_, id_, content_length, padding_length = HEADER.unpack_from(view, offset)
        content_start = offset + FCGI_HEADER_LEN
        record_end = content_start + content_length + padding_length
        if record_end > end or not content_length or version != FCGI_VERSION_1:
            break
        if type_ != record_type or id_ != request_id:
            break
        views.append(view[content_start : content_start + content_length])
        offset = record_end
    return offset


class RecordReader:
    """Cuts a byte stream into records and keeps the incomplete tail for the next chunk."""

    __slots__ = (
        "_following",
        "_pass_arrived",
        "_pass_content",
        "_pass_padding",
        "_run_cutter",
        "_run_id",
        "_run_type",
        "_run_views",
        "_tail",
    )

    def __init__(self) -> None:
        self._tail = bytearray()
        # What follow() asked for: until the handler is called again, records of this type
        # and id are a stream, whose contents go to this list in this feed, not to the
        # handler. (_following: as long as the handler is not called again, whatever the
        # feeds, so that what is passed on does not depend on where the reads fall.)
        self._following = False
        self._run_views: list[memoryview] | None = None
        self._run_type = 0
        self._run_id = 0
        self._run_cutter: CutRun = cut_run_py
        # A followed record a feed ended inside, passed on as it arrives (_pass_later; its
        # type and id stay _run_type's and _run_id's): the bytes of it still to come
        # (content, then padding), and those that came.
        self._pass_content = self._pass_padding = self._pass_arrived = 0

    def follow(
        self, cut: CutRun, record_type: int, request_id: int, views: list[memoryview]
    ) -> None:
        """Called by a record handler: append the contents of the records that follow the
        one just handled and are, like it, non-empty records of ``record_type`` for
        ``request_id`` to ``views`` (the handler would do just that with each), without a
        call for each, until another record or the end of this feed. A web server sends a
        body as a stream of such records (nginx: 32 KiB each), a few in every read; ``cut``
        (cut_run_py, or its C lane) cuts them. The handler takes their contents as a stream:
        one the feed ends inside goes to ``views`` as far as it came, and its rest to the
        handler, as a record of that content, as it comes (not kept until it is whole); so
        does one that the next feed ends inside, if no other record came between."""
        self._following = True
        self._run_views = views
        self._run_type = record_type
        self._run_id = request_id
        self._run_cutter = cut

    @property
    def buffered(self) -> int:
        """How many bytes of an incomplete record arrived (kept, or passed on) before the
        rest of it."""
        return len(self._tail) + self._pass_arrived

    @property
    def partial_request_id(self) -> int | None:
        """The request id of the incomplete record waiting, once its header has it."""
        if self._pass_arrived:
            return self._run_id
        tail = self._tail
        return tail[2] << 8 | tail[3] if len(tail) >= 4 else None

    def feed(self, data: bytes | bytearray | memoryview, on_record: RecordHandler) -> None:
        """Call ``on_record`` for every record that ``data`` completes, in order.

        Raises:
            RemoteProtocolError: a header's version is not 1 (checked as soon as the 8 header
                bytes are here, so garbage fails fast); or whatever ``on_record`` raises.
        """
        raw: memoryview | None = None
        if type(data) is memoryview and data.itemsize == 1 and data.ndim == 1:
            view = data  # the usual read, a slice of the server's buffer: its caller's to release
        else:
            raw = memoryview(data)
            view = raw if raw.itemsize == 1 and raw.ndim == 1 else raw.cast("B")
        self._run_views = None  # (a follow() lasts one feed)
        try:
            if self._pass_arrived:
                offset = self._pass_on(view, on_record)
            else:
                offset = self._finish_tail(view, on_record) if self._tail else 0
            if offset >= 0:
                self._cut(view, offset, on_record)
        finally:
            if raw is not None:
                view.release()
                raw.release()

    def _pass_on(self, view: memoryview, on_record: RecordHandler) -> int:
        """What ``view`` holds of the rest of the record passed on: its content to the handler
        (as a record of that content), its padding skipped; where the rest begins."""
        taken = min(self._pass_content, len(view))
        if taken:
            self._pass_content -= taken
            self._following = False  # (the handler follows again)
            on_record(self._run_type, self._run_id, view[:taken])
        if not self._pass_content:
            skipped = min(self._pass_padding, len(view) - taken)
            self._pass_padding -= skipped
            taken += skipped
        passing = self._pass_content or self._pass_padding
        self._pass_arrived = self._pass_arrived + taken if passing else 0
        return taken

    def _finish_tail(self, view: memoryview, on_record: RecordHandler) -> int:
        """Complete the record waiting in the tail with the start of ``view``; where the rest
        of ``view`` begins, or -1 when all of it went to the tail. Only that record is copied:
        a large chunk that ends a body record is not appended to the tail whole."""
        tail = self._tail
        taken = 0
        if len(tail) < FCGI_HEADER_LEN:
            taken = min(FCGI_HEADER_LEN - len(tail), len(view))
            tail += view[:taken]
            if len(tail) < FCGI_HEADER_LEN:
                return -1
            _check_version(tail[0])
            if self._follows(tail[1], tail[2] << 8 | tail[3], tail[4] << 8 | tail[5]):
                self._tail = bytearray()  # (its header only: nothing has views of it)
                self._pass_content, self._pass_padding = tail[4] << 8 | tail[5], tail[6]
                self._pass_arrived = FCGI_HEADER_LEN
                with view[taken:] as rest:
                    return taken + self._pass_on(rest, on_record)
        content_length, padding_length = tail[4] << 8 | tail[5], tail[6]
        record_end = FCGI_HEADER_LEN + content_length + padding_length
        more = min(record_end - len(tail), len(view) - taken)
        tail += view[taken : taken + more]
        taken += more
        if len(tail) < record_end:
            return -1
        record_type, request_id = tail[1], tail[2] << 8 | tail[3]
        # A view of this tail, which a new one replaces (not emptied: on_record may keep its
        # content beyond the call, as a run of body records does until the feed returns, or
        # longer: ServerConnection.receive_data_keeping_views): no copy of the record here.
        self._tail = bytearray()
        content = memoryview(tail)[FCGI_HEADER_LEN : FCGI_HEADER_LEN + content_length]
        self._following = False
        on_record(record_type, request_id, content)
        return taken

    def _cut(self, view: memoryview, offset: int, on_record: RecordHandler) -> None:
        """Call ``on_record`` for each complete record of ``view`` from ``offset``; keep what
        is left (an incomplete record) in the tail, which is empty."""
        end = len(view)
        unpack_header_at = HEADER.unpack_from
        while end - offset >= FCGI_HEADER_LEN:
            run = self._run_views
            if run is not None:
                offset = self._cut_run(view, offset, run)
                if end - offset < FCGI_HEADER_LEN:
                    break
            version, record_type, request_id, content_length, padding_length = unpack_header_at(
                view, offset
            )
            if version != FCGI_VERSION_1:
                _check_version(version)
            content_start = offset + FCGI_HEADER_LEN
            content_end = content_start + content_length
            record_end = content_end + padding_length
            if record_end > end:
                if self._follows(record_type, request_id, content_length):
                    self._pass_later(view, offset, on_record)
                    return
                break
            # Not released here (a context manager per record cost more than the parse):
            # on_record may keep it until the feed returns (the body's run of records,
            # joined once), and the slice goes with the loop's next turn.
            # An empty record (the end of a stream: two of a request's four) gets the one
            # empty view, not a slice of its own.
            content = view[content_start:content_end] if content_length else _NO_CONTENT
            self._run_views = None  # (the handler may follow() again)
            self._following = False
            on_record(record_type, request_id, content)
            offset = record_end
        if offset < end:
            self._tail += view[offset:]

    def _follows(self, record_type: int, request_id: int, content_length: int) -> bool:
        """A record with this header is one follow() names."""
        return (
            self._following
            and record_type == self._run_type
            and request_id == self._run_id
            and content_length > 0
        )

    def _pass_later(self, view: memoryview, offset: int, on_record: RecordHandler) -> None:
        """The feed ends inside a record follow() names, at ``offset``: what came of its
        content goes to the run (or the handler) now, the rest to the handler as it comes
        (_pass_on), not copied into the tail (a web server's body record, which most reads
        end inside)."""
        end = len(view)
        content_start = offset + FCGI_HEADER_LEN
        content_length = view[offset + 4] << 8 | view[offset + 5]
        arrived = min(content_length, end - content_start)
        self._pass_content = content_length - max(arrived, 0)
        self._pass_padding = view[offset + 6] - max(end - content_start - content_length, 0)
        self._pass_arrived = end - offset
        if arrived > 0:
            content = view[content_start : content_start + arrived]
            run = self._run_views
            if run is not None:
                run.append(content)
            else:  # (the first record of this feed)
                self._following = False
                on_record(self._run_type, self._run_id, content)

    def _cut_run(self, view: memoryview, offset: int, run: list[memoryview]) -> int:
        """Where the records follow() names end, from ``offset``, their contents in ``run``."""
        record_type, request_id = self._run_type, self._run_id
        cut = self._run_cutter(view, offset, record_type, request_id, run)
        if cut is None:  # (the lane declined: not a view of contiguous bytes)
            cut = cut_run_py(view, offset, record_type, request_id, run)
        return cut


def _check_version(version: int) -> None:
    if version != FCGI_VERSION_1:
        raise RemoteProtocolError(
            f"record header says FastCGI version {version}, expected 1: "
            "the peer is not speaking FastCGI, or the stream is out of step"
        )
