"""A prefork worker's request cells: what each request writes into the scoreboard, and how a
reader reads it back.

Each worker slot of the :mod:`~fcgikit.server.scoreboard` ends with one cell per thread. A
request writes its cell only, and only its own thread writes the cell (a word each, no
shared counter): the readers derive a worker's busy threads (cells running), its requests
(the sum of the cells' counts) and when it was last active (the latest end) from its cells,
and the slow log which thread runs a request from its cell.

Torn reads: a cell is written while free (its start zero or negative), label, count and
thread first and start time last, and freed by writing the negated end time over the start;
a reader reads start, label, thread, start again and drops the cell when the two starts
differ.

A cell, in the machine's own byte order (the board never leaves it)::

    start    8 bytes   a double, time.monotonic's clock: 0 never used, < 0 free since -start
    word     8 bytes   the cell's requests << 16 | the label's length
    thread   8 bytes   the ident of the thread its request runs on (ran on, while free)
    label    LABEL_SIZE bytes   ``#id METHOD URI`` (:mod:`~fcgikit.server.labels`), cut to fit
    padding  to CELL_SIZE, so that the next cell's words are aligned

Every request writes its cell twice, at its start and at its end: :class:`RequestCellsPy`
is the spec, and the C lane ``_speedups_cells.RequestCells`` (``fcgikit/server/
_speedups_cells.c``) does the same in one call each way, answering None outside the
ordinary case (the twin writes the cell then).
"""

from __future__ import annotations

import mmap
import struct
from _thread import get_ident
from collections.abc import Callable
from time import monotonic
from typing import TYPE_CHECKING, Final, Protocol

from fcgikit.server.labels import write_label_py
from fcgikit.server.pool_view import RunningRequest

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

#: what the cells are written in: the board's memory (a memoryview in the tests)
Buffer = mmap.mmap | memoryview

LABEL_SIZE: Final = 246
_HEAD: Final = struct.Struct("=dQQ")  # start, word, thread
_START: Final = struct.Struct("=d")
_WORD: Final = struct.Struct("=Q")
_WORD_AND_THREAD: Final = struct.Struct("=QQ")
_WORD_AT: Final = 8
_LABEL_AT: Final = 24
CELL_SIZE: Final = 272  # the head, the label, and padding to keep the next cell aligned
_LENGTH_BITS: Final = 16
_LENGTH_MASK: Final = (1 << _LENGTH_BITS) - 1

assert _HEAD.size == _LABEL_AT and _WORD_AT + _WORD_AND_THREAD.size == _LABEL_AT
assert _LABEL_AT + LABEL_SIZE <= CELL_SIZE
assert CELL_SIZE % 8 == 0 and LABEL_SIZE < 1 << _LENGTH_BITS


class CellWriter(Protocol):
    """What writes a slot's cells: :class:`RequestCellsPy`, or the C lane, whose calls answer
    None outside the ordinary case."""

    def begin(self, cell: int, environ: WSGIEnvironment, /) -> bool | None: ...

    def end(self, cell: int, /) -> bool | None: ...


#: The C lane (fcgikit/server/_speedups_cells.c): None where it was not built, and with
#: FCGIKIT_PURE_PYTHON=1; RequestCellsPy is its twin.
RequestCells: Callable[[Buffer, int, int, int, int], CellWriter] | None
try:
    from fcgikit.server._speedups_cells import RequestCells
except ImportError:
    RequestCells = None


class RequestCellsPy:
    """The ``count`` request cells of ``cell_size`` bytes (labels of ``label_size``) that
    begin at ``offset`` in ``buffer``: the C lane's twin and spec.

    ``begin``: a request began in the free ``cell``, its label from ``environ``, its count
    the cell's last plus one, its thread the caller; True. ``end``: the request in ``cell``
    ended, its end (now) negated over its start; False, and nothing written, when the cell
    was not running (a second close of a response gives nothing back twice)."""

    def __init__(
        self, buffer: Buffer, offset: int, count: int, cell_size: int, label_size: int
    ) -> None:
        if not (offset >= 0 and count >= 0 and _LABEL_AT + label_size <= cell_size):
            raise ValueError("no such cells")
        if offset + count * cell_size > len(buffer):
            raise ValueError("the cells are outside the buffer")
        self.buffer = buffer
        self.offset = offset
        self.count = count
        self.cell_size = cell_size
        self.label_size = label_size

    def at(self, cell: int) -> int:
        if not 0 <= cell < self.count:
            raise IndexError(f"no cell {cell}")
        return self.offset + cell * self.cell_size

    def begin(self, cell: int, environ: WSGIEnvironment) -> bool:
        at = self.at(cell)
        length = write_label_py(self.buffer, at + _LABEL_AT, self.label_size, environ)
        requests = (_WORD.unpack_from(self.buffer, at + _WORD_AT)[0] >> _LENGTH_BITS) + 1
        write_head(self.buffer, at, requests, length, monotonic())
        return True

    def end(self, cell: int) -> bool:
        at = self.at(cell)
        if _START.unpack_from(self.buffer, at)[0] <= 0.0:
            return False
        _START.pack_into(self.buffer, at, -monotonic())
        return True


def write_head(buffer: Buffer, at: int, requests: int, length: int, started: float) -> None:
    """The head of the free cell at ``at``, whose label of ``length`` bytes is written: its
    ``requests`` and the calling thread first, ``started`` last (torn reads, above)."""
    word = requests << _LENGTH_BITS | length
    _WORD_AND_THREAD.pack_into(buffer, at + _WORD_AT, word, get_ident())
    _START.pack_into(buffer, at, started)


def write_cell(buffer: Buffer, at: int, label: bytes, requests: int, started: float) -> None:
    """Begin the ``requests``-th request of the free cell at ``at``, labelled ``label`` (cut
    to fit), at ``started``: what :meth:`RequestCellsPy.begin` writes, the label given."""
    raw = label[:LABEL_SIZE]
    buffer[at + _LABEL_AT : at + _LABEL_AT + len(raw)] = raw
    write_head(buffer, at, requests, len(raw), started)


def read_cells(
    buffer: mmap.mmap, offset: int, count: int, last: float
) -> tuple[int, int, float, tuple[RunningRequest, ...]]:
    """What the ``count`` cells at ``offset`` hold: their requests in all, the requests
    running, when the last one ended (``last`` if none ended later) and the running ones."""
    running = []
    requests = busy = 0
    for cell in range(count):
        at = offset + cell * CELL_SIZE
        start, word, thread = _HEAD.unpack_from(buffer, at)
        requests += word >> _LENGTH_BITS
        if start <= 0.0:
            last = max(last, -start)
            continue
        busy += 1
        label_at = at + _LABEL_AT
        raw = buffer[label_at : label_at + min(word & _LENGTH_MASK, LABEL_SIZE)]
        if _START.unpack_from(buffer, at)[0] != start:
            continue  # rewritten while we read it
        running.append(RunningRequest(cell, raw.decode("utf-8", "replace"), start, thread))
    return requests, busy, last, tuple(running)
