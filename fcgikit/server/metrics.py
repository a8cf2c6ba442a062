"""The counters behind the status page's metrics (``?openmetrics``): where each one lives, and
who writes it.

Each serving process (a pool's worker, or the single process) owns one block of counters in
its slot of the :class:`~fcgikit.server.scoreboard.Scoreboard`'s shared memory, and writes it
through its :class:`ProcessCounters`: whichever process answers the status page reads every
block, and a dead worker's counts are folded into the pool's own block by the master, so a
counter never goes back (Prometheus would take that for a restart). Writing to the shared
block directly, not to a copy published now and then, is what keeps a crashed worker's last
counts.

Who writes what, so that no word has two writers and a request takes no lock: each thread
that counts (a request thread at a request's end, the loop's thread for connections and
refusals) has a *lane* of its own, one block of its process's area, taken the first time it
counts; the reader sums the lanes. A server's pool holds at most ``threads + 1`` threads,
so an area has :func:`lanes_for` ``threads`` lanes and a thread past them (none of the
server's) shares the last. Besides the counters, lane 0 holds:

* the gauges (requests running and waiting), sampled from the server's
  :class:`~fcgikit.server.pool.WorkerPool` once a second in a worker and whenever the process
  answers the page;
* why a worker retired (``--max-requests``, or the app's ``sys.exit()``), written by the
  worker for the master, which counts its restart by that reason.

None of this exists without ``--status-path``: the server then has no ProcessCounters
(``ServerSettings.metrics`` is None), and a request costs nothing more.

A block is native-endian 8-byte words: unsigned counters, one double (the durations' sum);
an aligned word is written whole, so a reader sees each one before or after an increment.
"""

from __future__ import annotations

import bisect
import struct
import threading
from collections.abc import Sequence
from typing import Protocol

from fcgikit.protocol.frozen import frozen_dataclass

#: The request-duration histogram's upper bounds, in seconds (Prometheus' ``le``): fine
#: below a second, where a FastCGI app's requests are, and up to the slow ones.
DURATION_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)
#: a request's status divided by 100: 0 for a request that got no response (the web server
#: went away first), 1 to 9 for its class (fcgikit sends any status from 100 to 999)
STATUS_CLASSES = 10
#: why a connection was refused: its peer is not in --web-server-addrs, or accept() failed
#: for want of file descriptors, or of memory
CONNECTION_REFUSALS = ("peer_address", "fd_exhaustion", "out_of_memory")
#: why a request was refused (FCGI_OVERLOADED): every thread busy and --max-queued waiting,
#: --max-queued-memory held, or too many params at once on a multiplexed connection
REQUEST_REFUSALS = ("threads", "memory", "params")
#: why a worker retired itself (its word in the block; 0: it did not)
RETIRE_REASONS = ("", "max_requests", "app_exit")

# The block's words, in order. Those up to COUNTER_WORDS are counters, summed over the
# workers (dead ones included); the rest describe the live process only.
_STATUS = 0
_BUCKETS = _STATUS + STATUS_CLASSES
_DURATION_SUM = _BUCKETS + len(DURATION_BUCKETS) + 1  # the last bucket is +Inf
_ACCEPTED = _DURATION_SUM + 1
_CONNECTIONS_REFUSED = _ACCEPTED + 1
_REQUESTS_REFUSED = _CONNECTIONS_REFUSED + len(CONNECTION_REFUSALS)
COUNTER_WORDS = _REQUESTS_REFUSED + len(REQUEST_REFUSALS)
_RUNNING = COUNTER_WORDS
_QUEUED = _RUNNING + 1
_RETIRED_FOR = _QUEUED + 1
_WORDS = _RETIRED_FOR + 1
#: where in a block a worker says why it retired (an index of RETIRE_REASONS)
RETIRED_FOR_OFFSET = _RETIRED_FOR * 8
#: bytes of one process's block, in whole cache lines
BLOCK_SIZE = -(-_WORDS * 8 // 64) * 64
#: the counters as they lie in a block (the durations' sum is a double)
COUNTERS = struct.Struct(
    "=" + "Q" * _DURATION_SUM + "d" + "Q" * (COUNTER_WORDS - _DURATION_SUM - 1)
)
_GAUGES = struct.Struct("=QQQ")


class SamplesPool(Protocol):
    """What the gauges are read from (:class:`~fcgikit.server.pool.WorkerPool`)."""

    @property
    def running(self) -> int: ...
    @property
    def in_flight(self) -> int: ...


def lanes_for(threads: int) -> int:
    """The lanes of a process of ``threads`` request threads: its pool's ``threads + 1``, and
    one for any other thread."""
    return threads + 2


_Lane = tuple["memoryview[int]", "memoryview[float]"]  # its words ("Q"), its durations' sum


class ProcessCounters:
    """One process's area of counters (see the module docstring for who writes what).

    ``area``: ``lanes`` blocks, in the scoreboard's shared memory.
    """

    def __init__(self, area: memoryview, lanes: int) -> None:
        self._lanes: list[_Lane] = []
        for lane in range(lanes):
            block = area[lane * BLOCK_SIZE : (lane + 1) * BLOCK_SIZE]
            offset = _DURATION_SUM * 8
            self._lanes.append((block.cast("Q"), block[offset : offset + 8].cast("d")))
            block.release()
        self._gauges = self._lanes[0][0]
        self._taken = 0
        self._taking = threading.Lock()
        self._mine = threading.local()
        #: where the gauges are sampled from, once the server exists (see sample)
        self.pool: SamplesPool | None = None

    def _lane(self) -> _Lane:
        """This thread's lane: a lookup in the thread's own dict, no lock, once it has one."""
        try:
            lane: _Lane = self._mine.lane
        except AttributeError:
            with self._taking:  # the first count of this thread's life
                lane = self._lanes[min(self._taken, len(self._lanes) - 1)]
                self._taken += 1
            self._mine.lane = lane
        return lane

    def request_done(self, status: int, duration: float) -> None:
        """A request is over: ``status`` sent (0: none), after ``duration`` seconds."""
        words, duration_sum = self._lane()
        words[_STATUS + (status // 100 if 0 <= status < 1000 else 0)] += 1
        words[_BUCKETS + bisect.bisect_left(DURATION_BUCKETS, duration)] += 1
        duration_sum[0] += duration

    def connection_accepted(self) -> None:
        self._lane()[0][_ACCEPTED] += 1

    def connection_refused(self, reason: str) -> None:
        """``reason``: one of CONNECTION_REFUSALS."""
        self._lane()[0][_CONNECTIONS_REFUSED + CONNECTION_REFUSALS.index(reason)] += 1

    def request_refused(self, reason: str, count: int = 1) -> None:
        """``reason``: one of REQUEST_REFUSALS."""
        self._lane()[0][_REQUESTS_REFUSED + REQUEST_REFUSALS.index(reason)] += count

    def sample(self) -> None:
        """Write the gauges: requests running, and admitted but waiting (for a thread, or to
        run on the loop's thread). A glance at the pool, without its lock."""
        pool = self.pool
        if pool is not None:
            running = pool.running
            self._gauges[_RUNNING] = running
            self._gauges[_QUEUED] = max(0, pool.in_flight - running)

    def release(self) -> None:
        """Let go of the shared memory (before the scoreboard is closed)."""
        for words, duration_sum in self._lanes:
            duration_sum.release()
            words.release()


@frozen_dataclass
class Counts:
    """Counters read from one or more blocks, summed (see :func:`read_counters`)."""

    values: tuple[float, ...]

    @classmethod
    def zero(cls) -> Counts:
        return cls(tuple(0 for _ in range(COUNTER_WORDS)))

    def __add__(self, other: Counts) -> Counts:
        return Counts(tuple(a + b for a, b in zip(self.values, other.values, strict=True)))

    def requests_by_class(self) -> list[tuple[int, int]]:
        """(status // 100, requests), for each class 0..9."""
        return [(index, int(self.values[_STATUS + index])) for index in range(STATUS_CLASSES)]

    def duration_buckets(self) -> list[int]:
        """Requests per bucket of DURATION_BUCKETS, and the +Inf one last; not cumulative."""
        return [int(value) for value in self.values[_BUCKETS:_DURATION_SUM]]

    @property
    def duration_sum(self) -> float:
        return float(self.values[_DURATION_SUM])

    @property
    def connections_accepted(self) -> int:
        return int(self.values[_ACCEPTED])

    def connections_refused(self) -> dict[str, int]:
        return _by_name(CONNECTION_REFUSALS, self.values[_CONNECTIONS_REFUSED:])

    def requests_refused(self) -> dict[str, int]:
        return _by_name(REQUEST_REFUSALS, self.values[_REQUESTS_REFUSED:])


def _by_name(names: Sequence[str], values: Sequence[float]) -> dict[str, int]:
    return {name: int(value) for name, value in zip(names, values, strict=False)}


def read_counters(memory: object, offset: int, lanes: int = 1) -> Counts:
    """The counters of the area of ``lanes`` blocks at ``offset`` in ``memory`` (a buffer),
    summed."""
    counts = Counts(COUNTERS.unpack_from(memory, offset))  # type: ignore[arg-type]
    for lane in range(1, lanes):
        counts += Counts(COUNTERS.unpack_from(memory, offset + lane * BLOCK_SIZE))  # type: ignore[arg-type]
    return counts


def write_counters(memory: object, offset: int, counts: Counts) -> None:
    """Overwrite the counters of the block at ``offset`` (the pool's one of dead workers')."""
    values = [float(v) if i == _DURATION_SUM else int(v) for i, v in enumerate(counts.values)]
    COUNTERS.pack_into(memory, offset, *values)  # type: ignore[arg-type]


def read_gauges(memory: object, offset: int) -> tuple[int, int, str]:
    """(requests running, requests waiting, why it retired) of the area at ``offset``."""
    running, queued, retired = _GAUGES.unpack_from(memory, offset + _RUNNING * 8)  # type: ignore[arg-type]
    reason = RETIRE_REASONS[retired] if retired < len(RETIRE_REASONS) else ""
    return running, queued, reason


__all__ = [
    "BLOCK_SIZE",
    "CONNECTION_REFUSALS",
    "COUNTER_WORDS",
    "DURATION_BUCKETS",
    "REQUEST_REFUSALS",
    "RETIRED_FOR_OFFSET",
    "RETIRE_REASONS",
    "STATUS_CLASSES",
    "Counts",
    "ProcessCounters",
    "lanes_for",
    "read_counters",
    "read_gauges",
    "write_counters",
]
