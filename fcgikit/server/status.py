"""The scoreboard the prefork workers share with the master, and the status page read from it.

Why shared memory: the master must know, without asking, which request each worker runs and
since when (``--timeout`` kills on it) and whether every worker is busy (the dynamic pool grows
on it). One anonymous ``mmap`` created before the first fork is mapped in every process; a
worker writes its own slot with ``struct.pack_into`` (no system call, no lock shared with
another process), the master and the status page only read. Each worker slot holds one
*request cell* per thread.

Torn reads: a cell is written label first and start time last, and cleared by zeroing the
start time; a reader reads start, label, start again and drops the cell when the two starts
differ. Counters are single aligned 8-byte words, written under the worker's own lock.

Layout (little endian)::

    header   64 bytes   pool-wide figures the master writes; its last 4 bytes say
                        whether the pool drains (the workers' ping path answers 503)
    slot[i]  64 bytes   one worker: pid, state, counters
             + threads * 256 bytes   one cell per thread: start, label

The status page (php-fpm's ``pm.status_path``) is answered by whichever worker receives the
request; every worker can read the whole board. ``?json`` gives JSON, anything else text.

Who sees the page (it lists every request in flight): ``fcgikit status``, which talks
FastCGI to the socket directly and sends :data:`DIRECT_CLIENT_PARAM`, always; HTTP clients
only when their REMOTE_ADDR (as the web server reports it; the FastCGI peer is the web
server) is in ``--status-allow``, empty by default, because behind a TLS terminator or a
tunnel on the same host every client is 127.0.0.1. The param is sound because no HTTP client
can make a web server send it: headers arrive as ``HTTP_*`` params, and any other param
only where the web server's configuration names it. Whoever can connect to the socket can
send it, but could already claim any REMOTE_ADDR: the socket must be the web server's alone
(SECURITY.md). SO_PEERCRED would not do: unix sockets only, and a web server that spawns the
app runs as the app's user. docs/operations.rst has the whole reasoning.

Each request shows as method and path; its query string (password-reset tokens and the
like) only with ``--status-show-query``.
"""

from __future__ import annotations

import enum
import json
import mmap
import os
import struct
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fcgikit.networks import TrustedNetworks

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

# started_wall, started_mono, dead_accepted, dead_slow, dynamic, target, maximum, threads,
# max_reached
_HEADER = struct.Struct("<ddQQIIIII")
_HEADER_SIZE = 64
# pid, state, generation, (pad), started_mono, requests, slow, busy, (pad), last_active
_SLOT = struct.Struct("<iIIIdQQIId")
_SLOT_SIZE = 64
_LABEL_SIZE = 246
# start (0: idle), label length, label
_CELL = struct.Struct(f"<dH{_LABEL_SIZE}s")
_CELL_SIZE = 256

#: The param a FastCGI client talking to the socket directly sends to see the status page
#: (see the module docstring for why a web server cannot forward it from an HTTP client).
DIRECT_CLIENT_PARAM = "FCGIKIT_STATUS_CLIENT"

_PID = struct.Struct("<i")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_F64 = struct.Struct("<d")
_OFF_STATE = 4
_OFF_GENERATION = 8
_OFF_REQUESTS = 24
_OFF_SLOW = 32
_OFF_BUSY = 40
_OFF_LAST_ACTIVE = 48
#: in the header, apart from the figures: the pool drains (see Scoreboard.set_draining)
_OFF_DRAINING = 60

assert _HEADER.size <= _OFF_DRAINING and _OFF_DRAINING + _U32.size <= _HEADER_SIZE
assert _HEADER.size <= _HEADER_SIZE and _SLOT.size <= _SLOT_SIZE and _CELL.size == _CELL_SIZE


class WorkerState(enum.IntEnum):
    """A worker's own account of itself (only the worker writes it)."""

    FREE = 0  # no worker in this slot
    BOOTING = 1  # forked, importing the app
    READY = 2  # accepting connections
    RETIRING = 3  # reached --max-requests: accepting until the master stops it
    STOPPING = 4  # stopping: finishing in-flight requests, accepting nothing
    FAILED = 5  # could not start (the app did not load, or no user switch): exiting


@dataclass(frozen=True, slots=True)
class RunningRequest:
    cell: int
    label: str
    started: float  # time.monotonic() of the process that wrote it (one clock on Linux)


@dataclass(frozen=True, slots=True)
class SlotView:
    index: int
    pid: int
    state: WorkerState
    generation: int
    started: float
    requests: int
    slow: int
    busy: int
    last_active: float
    running: tuple[RunningRequest, ...]


class Scoreboard:
    """Shared memory for ``slots`` workers of ``threads`` threads each. Create before forking."""

    def __init__(self, slots: int, threads: int) -> None:
        self.slots = slots
        self.threads = threads
        self.slot_size = _SLOT_SIZE + threads * _CELL_SIZE
        size = _HEADER_SIZE + slots * self.slot_size
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

    def add_dead(self, accepted: int, slow: int) -> None:
        """Keep a dead worker's counts in the pool totals."""
        values = list(_HEADER.unpack_from(self.mem, 0))
        values[2] += accepted
        values[3] += slow
        _HEADER.pack_into(self.mem, 0, *values)

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
        return _HEADER_SIZE + index * self.slot_size

    def reset(self, index: int, generation: int) -> None:
        """Master, before forking into the slot: everything zero, state BOOTING."""
        offset = self._offset(index)
        self.mem[offset : offset + self.slot_size] = bytes(self.slot_size)
        now = time.monotonic()
        _SLOT.pack_into(
            self.mem, offset, 0, WorkerState.BOOTING, generation, 0, now, 0, 0, 0, 0, now
        )

    def free(self, index: int) -> None:
        offset = self._offset(index)
        self.mem[offset : offset + self.slot_size] = bytes(self.slot_size)

    def slot(self, index: int) -> WorkerSlot:
        return WorkerSlot(self, index)

    def read(self, index: int) -> SlotView:
        mem = self.mem
        offset = self._offset(index)
        pid, state, generation, _, started, requests, slow, busy, _, last = _SLOT.unpack_from(
            mem, offset
        )
        running = []
        for cell in range(self.threads):
            cell_offset = offset + _SLOT_SIZE + cell * _CELL_SIZE
            start = _F64.unpack_from(mem, cell_offset)[0]
            if not start:
                continue
            _, length, raw = _CELL.unpack_from(mem, cell_offset)
            if _F64.unpack_from(mem, cell_offset)[0] != start:
                continue  # rewritten while we read it
            label = raw[: min(length, _LABEL_SIZE)].decode("utf-8", "replace")
            running.append(RunningRequest(cell, label, start))
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
            tuple(running),
        )

    def snapshot(self) -> PoolView:
        wall, mono, dead_accepted, dead_slow, dynamic, target, maximum, threads, reached = (
            _HEADER.unpack_from(self.mem, 0)
        )
        views = [self.read(i) for i in range(self.slots)]
        workers = tuple(v for v in views if v.state != WorkerState.FREE and v.pid)
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
        )


class WorkerSlot:
    """A worker's handle on its own slot. ``begin``/``end`` run on the worker's threads; the
    caller serialises them with one lock per process."""

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

    def begin(self, cell: int, label: str, requests: int, busy: int) -> None:
        mem, offset = self.board.mem, self.offset
        _U64.pack_into(mem, offset + _OFF_REQUESTS, requests)
        _U32.pack_into(mem, offset + _OFF_BUSY, busy)
        raw = label.encode("utf-8", "replace")[:_LABEL_SIZE]
        cell_offset = offset + _SLOT_SIZE + cell * _CELL_SIZE
        _CELL.pack_into(mem, cell_offset, 0.0, len(raw), raw)
        _F64.pack_into(mem, cell_offset, time.monotonic())

    def end(self, cell: int, busy: int) -> None:
        mem, offset = self.board.mem, self.offset
        _F64.pack_into(mem, offset + _SLOT_SIZE + cell * _CELL_SIZE, 0.0)
        _U32.pack_into(mem, offset + _OFF_BUSY, busy)
        _F64.pack_into(mem, offset + _OFF_LAST_ACTIVE, time.monotonic())

    def set_slow(self, slow: int) -> None:
        _U64.pack_into(self.board.mem, self.offset + _OFF_SLOW, slow)


@dataclass(frozen=True, slots=True)
class PoolView:
    started_wall: float
    started: float
    accepted: int
    slow: int
    dynamic: bool
    target: int
    maximum: int
    threads: int
    max_reached: int
    workers: tuple[SlotView, ...]

    def as_dict(self, now: float | None = None, *, queries: bool = False) -> dict[str, Any]:
        """The page's content; ``queries``: the requests' query strings too."""
        now = time.monotonic() if now is None else now
        live = [w for w in self.workers if w.state in (WorkerState.READY, WorkerState.RETIRING)]
        busy = sum(1 for w in live if w.busy)
        starting = sum(1 for w in self.workers if w.state == WorkerState.BOOTING)
        return {
            "pool_mode": "dynamic" if self.dynamic else "static",
            "start_time": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(self.started_wall)),
            "uptime": round(now - self.started, 3),
            "accepted_requests": self.accepted,
            "slow_requests": self.slow,
            "idle_workers": len(live) - busy,
            "busy_workers": busy,
            "starting_workers": starting,
            "stopping_workers": len(self.workers) - len(live) - starting,
            "total_workers": len(self.workers),
            "target_workers": self.target,
            "max_workers": self.maximum,
            "threads_per_worker": self.threads,
            "max_workers_reached": self.max_reached,
            "workers": [
                {
                    "pid": w.pid,
                    "state": _state_name(w),
                    "generation": w.generation,
                    "requests": w.requests,
                    "slow_requests": w.slow,
                    "busy_threads": w.busy,
                    "uptime": round(now - w.started, 3),
                    "current_requests": [
                        {
                            "request": r.label if queries else r.label.partition("?")[0],
                            "duration": round(now - r.started, 3),
                        }
                        for r in w.running
                    ],
                }
                for w in sorted(self.workers, key=lambda w: w.pid)
            ],
        }


def _state_name(view: SlotView) -> str:
    if view.state in (WorkerState.READY, WorkerState.RETIRING):
        return "busy" if view.busy else "idle"
    return view.state.name.lower()


def render_text(status: dict[str, Any]) -> str:
    lines = [f"{key.replace('_', ' ') + ':':<22}{value}" for key, value in status.items()]
    lines = lines[:-1]  # the workers follow, one block each
    for worker in status["workers"]:
        lines.append("")
        lines.append("*" * 40)
        for key, value in worker.items():
            if key == "current_requests":
                value = ", ".join(f"{r['request']} ({r['duration']}s)" for r in value) or "-"
            lines.append(f"{key.replace('_', ' ') + ':':<22}{value}")
    return "\n".join(lines) + "\n"


def parse_allow(items: Iterable[str]) -> TrustedNetworks:
    """``--status-allow`` values (repeated, each comma-separated): addresses and networks."""
    return TrustedNetworks.parse(items, "--status-allow")


class StatusPage:
    """Answers ``path`` for direct FastCGI clients (:data:`DIRECT_CLIENT_PARAM`) and HTTP
    clients whose REMOTE_ADDR is in ``allow`` (addresses and networks); others reach the app
    (which usually answers 404), so the page's existence is not advertised. ``show_query``:
    show the requests' query strings."""

    def __init__(
        self, board: Scoreboard, path: str, allow: TrustedNetworks, *, show_query: bool = False
    ) -> None:
        self.board = board
        self.path = path
        self.allow = allow
        self.show_query = show_query

    def wants(self, environ: WSGIEnvironment) -> bool:
        uri = str(environ.get("REQUEST_URI", "")).partition("?")[0]
        path = str(environ.get("SCRIPT_NAME", "")) + str(environ.get("PATH_INFO", ""))
        if self.path not in (uri, path):
            return False
        if environ.get(DIRECT_CLIENT_PARAM):
            return True
        return str(environ.get("REMOTE_ADDR", "")) in self.allow

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
        status = self.board.snapshot().as_dict(queries=self.show_query)
        query = str(environ.get("QUERY_STRING", ""))
        if "json" in query.split("&"):
            body = json.dumps(status, indent=1).encode()
            content_type = "application/json"
        else:
            body = render_text(status).encode()
            content_type = "text/plain; charset=utf-8"
        start_response(
            "200 OK",
            [
                ("Content-Type", content_type),
                ("Cache-Control", "no-store"),
                ("X-Fcgikit-Worker", str(os.getpid())),
            ],
        )
        return [body]
