"""The writer of a worker's request cells for fcgikit.server.scoreboard
(fcgikit/server/_speedups_scoreboard.c)."""

import mmap
from typing import Any

def begin_cell(
    buffer: mmap.mmap | memoryview, offset: int, size: int, environ: dict[str, Any], /
) -> int | None:
    """A request began in the free cell at ``offset`` (a label of ``size`` bytes): its label,
    count and start, the start last; the calling thread's ident, or None outside the ordinary
    case."""

def end_cell(buffer: mmap.mmap | memoryview, offset: int, /) -> bool | None:
    """The request in the cell at ``offset`` ended: its end negated over its start; False when
    the cell was not running, None when the clock cannot be read."""
