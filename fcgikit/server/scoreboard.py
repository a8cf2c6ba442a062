"""The scoreboard the prefork workers share with the master: shared memory, read without asking.

Why shared memory: the master must know, without asking, which request each worker runs and
since when (``--timeout`` kills on it) and whether every worker is busy (the dynamic pool grows
on it). One anonymous ``mmap`` created before the first fork is mapped in every process; a
worker writes its own slot with ``struct.pack_into`` (no system call, no lock shared with
another process), the master and the status page (:mod:`~fcgikit.server.status`) only read.
Each worker slot holds one *request cell* per thread.

A request writes its cell only (:mod:`~fcgikit.server.cells`: the cells' layout, their
writers and how a reader reads one without a torn value). Counters are single aligned
8-byte words (the metrics' as :mod:`~fcgikit.server.metrics` says), so a reader sees each
one before or after a write. When a worker dies the master folds its counters into the
pool's and frees its slot under a sequence number (odd while it does), and a reader that saw
it change reads again: no reader counts the dead worker twice or not at all, so the pool's
counters never go back.

Layout, in the machine's own byte order (the board never leaves it)::

    header   64 bytes   pool-wide figures the master writes; its last 4 bytes say
                        whether the pool drains (the workers' ping path answers 503)
    pool     8 bytes    the sequence number of the fold
             + 8 bytes per restart reason
             + BLOCK_SIZE   the dead workers' counters (metrics.py)
    slot[i]  64 bytes   one worker: pid, state, counters
             + lanes_for(threads) * BLOCK_SIZE   its metrics, a lane per thread (metrics.py)
             + threads * CELL_SIZE   one cell per thread (cells.py)

A single process (no ``--workers``) keeps a board of one slot, itself, its cells unused, so that
its status page comes from the same code.

What a reader gets, the views of a slot and of the pool and the status page's figures made
from them, is in :mod:`~fcgikit.server.pool_view`; this module is the memory, its layout, its
writers and the reads that make those views.
"""

from __future__ import annotations

import mmap
import struct
import time
from typing import Final

from fcgikit.server.cells import (
    CELL_SIZE,
    LABEL_SIZE,
    CellWriter,
    RequestCells,
    RequestCellsPy,
    read_cells,
    write_cell,
)
from fcgikit.server.labels import encoded_label
from fcgikit.server.metrics import (
    BLOCK_SIZE,
    RETIRE_REASONS,
    RETIRED_FOR_OFFSET,
    ProcessCounters,
    lanes_for,
    read_counters,
    read_gauges,
    write_counters,
)
from fcgikit.server.pool_view import PoolView, SlotView
from fcgikit.server.pool_view import WorkerState as WorkerState  # the writers import it here

# started_wall, started_mono, dead_accepted, dead_slow, dynamic, target, maximum, threads,
# max_reached
_HEADER: Final = struct.Struct("=ddQQIIIII")
_HEADER_SIZE: Final = 64
# pid, state, generation, (pad), started_mono, (unused), slow
_SLOT: Final = struct.Struct("=iIIId8xQ")
_SLOT_SIZE: Final = 64
#: why the master replaced a worker (fcgikit.server.children.restart_reason)
RESTART_REASONS = (
    "crashed_while_serving",
    "crashed_while_idle",
    "failed_to_start",
    "max_requests",
    "app_exit",
    "reload",
    "timeout",
)
_SEQUENCE: Final = _HEADER_SIZE
_RESTARTS: Final = _SEQUENCE + 8
_DEAD_COUNTERS: Final = _RESTARTS + 8 * len(RESTART_REASONS)
_SLOTS: Final = _DEAD_COUNTERS + BLOCK_SIZE
_RESTART_COUNTS: Final = struct.Struct(f"={len(RESTART_REASONS)}Q")

_PID: Final = struct.Struct("=i")
_U32: Final = struct.Struct("=I")
_U64: Final = struct.Struct("=Q")
_NATIVE_U64: Final = struct.Struct("=Q")  # a word of a metrics block
_OFF_STATE: Final = 4
_OFF_GENERATION: Final = 8
_OFF_SLOW: Final = 32
#: in the header, apart from the figures: the pool drains (see Scoreboard.set_draining)
_OFF_DRAINING: Final = 60

assert _HEADER.size <= _OFF_DRAINING and _OFF_DRAINING + _U32.size <= _HEADER_SIZE

assert _HEADER.size <= _HEADER_SIZE and _SLOT.size <= _SLOT_SIZE


class Scoreboard:
    """Shared memory for ``slots`` workers of ``threads`` threads each. Create before forking."""

    def __init__(self, slots: int, threads: int) -> None:
        self.slots = slots
        self.threads = threads
        self.lanes = lanes_for(threads)
        self.cells = _SLOT_SIZE + self.lanes * BLOCK_SIZE  # where a slot's cells begin
        self.slot_size = self.cells + threads * CELL_SIZE
        size = _SLOTS + slots * self.slot_size
        self.mem = mmap.mmap(-1, size, flags=mmap.MAP_SHARED | mmap.MAP_ANONYMOUS)
        now_wall, now_mono = time.time(), time.monotonic()
        _HEADER.pack_into(self.mem, 0, now_wall, now_mono, 0, 0, 0, 0, 0, threads, 0)

    def close(self) -> None:
        self.mem.close()

    # --- the header (master) ---------------------------------------------------------------

    def set_pool(self, *, dynamic: bool, target: int, maximum: int) -> None:
        values = list(_HEADER.unpack_from(self.mem, 0))
        values[4:7] = [int(dynamic), target, maximum]
        _HEADER.pack_into(self.mem, 0, *values)

    def release(self, index: int, restart_reason: str | None = None) -> None:
        """A worker is gone: keep its counts in the pool's, count its restart (one of
        RESTART_REASONS, or None when it is not replaced) and free its slot, all within one
        odd sequence number (see the module docstring)."""
        mem = self.mem
        offset = self._offset(index)
        view = self.read(index)
        sequence = _U64.unpack_from(mem, _SEQUENCE)[0]
        _U64.pack_into(mem, _SEQUENCE, sequence + 1)
        values = list(_HEADER.unpack_from(mem, 0))
        values[2] += view.requests
        values[3] += view.slow
        _HEADER.pack_into(mem, 0, *values)
        dead = read_counters(mem, _DEAD_COUNTERS) + view.counters
        write_counters(mem, _DEAD_COUNTERS, dead)
        if restart_reason is not None:
            word = _RESTARTS + 8 * RESTART_REASONS.index(restart_reason)
            _U64.pack_into(mem, word, _U64.unpack_from(mem, word)[0] + 1)
        mem[offset : offset + self.slot_size] = bytes(self.slot_size)
        _U64.pack_into(mem, _SEQUENCE, sequence + 2)

    def set_draining(self) -> None:
        """The pool stops (SIGTERM): from now on every worker's ping path answers 503,
        while the workers serve on (--shutdown-delay), then while they stop."""
        _U32.pack_into(self.mem, _OFF_DRAINING, 1)

    def draining(self) -> bool:
        """Whether the pool drains; read by a worker's ping path, a word of shared memory."""
        return bool(_U32.unpack_from(self.mem, _OFF_DRAINING)[0])

    def count_max_reached(self) -> None:
        values = list(_HEADER.unpack_from(self.mem, 0))
        values[8] += 1
        _HEADER.pack_into(self.mem, 0, *values)

    # --- slots -----------------------------------------------------------------------------

    def _offset(self, index: int) -> int:
        if not 0 <= index < self.slots:
            raise IndexError(f"no slot {index}")
        return _SLOTS + index * self.slot_size

    def reset(self, index: int, generation: int) -> None:
        """Master, before forking into the slot: everything zero, state BOOTING."""
        offset = self._offset(index)
        self.mem[offset : offset + self.slot_size] = bytes(self.slot_size)
        _SLOT.pack_into(
            self.mem, offset, 0, WorkerState.BOOTING, generation, 0, time.monotonic(), 0
        )

    def slot(self, index: int) -> WorkerSlot:
        return WorkerSlot(self, index)

    def read(self, index: int) -> SlotView:
        mem = self.mem
        offset = self._offset(index)
        pid, state, generation, _, started, slow = _SLOT.unpack_from(mem, offset)
        requests, busy, last, running = read_cells(mem, offset + self.cells, self.threads, started)
        sampled_running, sampled_queued, retired_for = read_gauges(mem, offset + _SLOT_SIZE)
        return SlotView(
            index,
            pid,
            WorkerState(state) if state in WorkerState._value2member_map_ else WorkerState.FREE,
            generation,
            started,
            requests,
            slow,
            busy,
            last,
            running,
            read_counters(mem, offset + _SLOT_SIZE, self.lanes),
            sampled_running,
            sampled_queued,
            retired_for,
        )

    def snapshot(self) -> PoolView:
        """The whole board, read again while the master was folding a dead worker in."""
        for _ in range(1000):
            sequence = _U64.unpack_from(self.mem, _SEQUENCE)[0]
            if sequence % 2 == 0:
                view = self._read_pool()
                if _U64.unpack_from(self.mem, _SEQUENCE)[0] == sequence:
                    return view
            time.sleep(0)  # the master is in the middle of a fold: a few microseconds
        return self._read_pool()  # the master died in a fold (SIGKILL): the best there is

    def _read_pool(self) -> PoolView:
        wall, mono, dead_accepted, dead_slow, dynamic, target, maximum, threads, reached = (
            _HEADER.unpack_from(self.mem, 0)
        )
        views = [self.read(i) for i in range(self.slots)]
        workers = tuple(v for v in views if v.state != WorkerState.FREE and v.pid)
        counters = read_counters(self.mem, _DEAD_COUNTERS)
        for worker in workers:
            counters += worker.counters
        restarts = _RESTART_COUNTS.unpack_from(self.mem, _RESTARTS)
        return PoolView(
            started_wall=wall,
            started=mono,
            accepted=dead_accepted + sum(w.requests for w in workers),
            slow=dead_slow + sum(w.slow for w in workers),
            dynamic=bool(dynamic),
            target=target,
            maximum=maximum,
            threads=threads,
            max_reached=reached,
            workers=workers,
            counters=counters,
            restarts=dict(zip(RESTART_REASONS, restarts, strict=True)),
        )


class WorkerSlot:
    """A worker's handle on its own slot: its pid, state and counters, and its request cells
    (:meth:`request_cells`, written on the worker's threads, a cell by one thread at a
    time: the tracker's free list hands the cells out)."""

    def __init__(self, board: Scoreboard, index: int) -> None:
        self.board = board
        self.index = index
        self.offset = board._offset(index)

    def set_pid(self, pid: int) -> None:
        _PID.pack_into(self.board.mem, self.offset, pid)

    def set_state(self, state: WorkerState) -> None:
        _U32.pack_into(self.board.mem, self.offset + _OFF_STATE, state)

    def state(self) -> WorkerState:
        return WorkerState(_U32.unpack_from(self.board.mem, self.offset + _OFF_STATE)[0])

    def request_cells(self) -> tuple[CellWriter, RequestCellsPy]:
        """The writers of the slot's request cells: the C lane where it was built, and the
        twin, which writes where the lane answers None. The lane holds the board's memory
        (which cannot close while it lives): the worker makes it, not the master."""
        board = self.board
        args = (board.mem, self.offset + board.cells, board.threads, CELL_SIZE, LABEL_SIZE)
        twin = RequestCellsPy(*args)
        return (twin if RequestCells is None else RequestCells(*args)), twin

    def begin(self, cell: int, label: str, requests: int, started: float | None = None) -> None:
        """A request labelled ``label`` began in free ``cell`` (at ``started``, time.monotonic;
        now by default), the cell's ``requests``-th: what a request's ``begin`` writes, for
        the readers' tests."""
        at = self.offset + self.board.cells + cell * CELL_SIZE
        raw = encoded_label(label, LABEL_SIZE)
        now = time.monotonic() if started is None else started
        write_cell(self.board.mem, at, raw, requests, now)

    def end(self, cell: int) -> bool:
        """The request in ``cell`` ended (the cell is free since now), as a request's ``end``."""
        board = self.board
        cells = RequestCellsPy(board.mem, self.offset + board.cells, board.threads, CELL_SIZE, 0)
        return cells.end(cell)

    def set_slow(self, slow: int) -> None:
        _U64.pack_into(self.board.mem, self.offset + _OFF_SLOW, slow)

    def set_retired_for(self, reason: str) -> None:
        """Why the worker asked to be replaced: one of metrics.RETIRE_REASONS."""
        offset = self.offset + _SLOT_SIZE + RETIRED_FOR_OFFSET
        _NATIVE_U64.pack_into(self.board.mem, offset, RETIRE_REASONS.index(reason))

    def counters(self) -> ProcessCounters:
        """The writer of this slot's metrics, for the process that owns it."""
        start = self.offset + _SLOT_SIZE
        area = memoryview(self.board.mem)[start : self.offset + self.board.cells]
        try:
            return ProcessCounters(area, self.board.lanes)
        finally:
            area.release()
