"""The writer of a worker's request cells for fcgikit.server.cells
(fcgikit/server/_speedups_cells.c)."""

import mmap
from typing import Any

class RequestCells:
    """The ``count`` request cells of ``cell_size`` bytes (labels of ``label_size``) at
    ``offset`` in ``buffer``, which it holds while it lives."""

    def __init__(
        self,
        buffer: mmap.mmap | memoryview,
        offset: int,
        count: int,
        cell_size: int,
        label_size: int,
        /,
    ) -> None: ...
    def begin(self, cell: int, environ: dict[str, Any], /) -> bool | None:
        """A request began in the free ``cell``: its label, count, thread and start, the start
        last; True, or None outside the ordinary case."""

    def end(self, cell: int, /) -> bool | None:
        """The request in ``cell`` ended: its end negated over its start; False when the cell
        was not running, None when the clock cannot be read."""
