"""The watcher: the main thread's loop that rescues the I/O loop from slow requests.

:meth:`WorkerPool.watch <fcgikit.server.pool.WorkerPool.watch>` runs :func:`watch` on the
thread that called ``serve``: the main thread, the only one where Python runs signal
handlers. It runs them only between two steps of interpreted code, or when C code asks
(``PyErr_CheckSignals``); mypyc's compiled code does neither. So this module is never
compiled (setup.py), while the pool's per-request path is: were the loop below compiled, a
SIGTERM that the kernel gave a pool thread would wait for ever (a prefork worker that never
stops on reload).

The pool and the watcher meet in a :class:`LoopWatch`: the loop's thread says when a request
begins and ends on it, the watcher waits and looks. It has two implementations with one
behaviour: the C one (``_speedups_watcher.LoopWatch``) looks without the GIL, so the busy loop
thread never hands the GIL to the watcher for nothing; :class:`PythonLoopWatch`, its twin and
spec, takes the GIL for each look. :func:`new_loop_watch` picks the C one where it is built.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from fcgikit.server.pool import WorkerPool

#: how often the watcher looks at the request running on the loop's thread (seconds); a
#: request running for longer than one to two ticks loses the loop role. Each look of the
#: Python watcher takes the GIL from the loop's thread, which a shorter tick makes costly
#: (benchmarks/RESULTS.md, "The watcher without the GIL"); 5 ms is also how long a busy
#: thread keeps the GIL from the others.
TICK = 0.005
#: the watcher stops ticking after this many ticks with no request run on the loop's thread
PARK_AFTER_TICKS = 50
#: a wait comes back at least this often (seconds), for a signal handler that the kernel
#: gave another thread (the kernel gives a signal to the main thread, whose wait it ends,
#: unless that thread blocks it); ``loop_over`` ends the wait itself. It is also how often an
#: idle server's watcher wakes.
WATCH_RETURN = 1.0


class LoopWatch(Protocol):
    """Which request runs on the loop's thread, shared by that thread and the watcher."""

    def began(self) -> int:
        """A request starts on the loop's thread; its number (1, 2, ...). Wakes a parked
        watcher."""

    def ended(self) -> None:
        """The request on the loop's thread is over (or no longer on the loop's thread)."""

    def wake(self) -> None:
        """End a wait now (it returns 0): the loop is over. Safe from any thread; a wake
        with no wait running ends the next one at once."""

    def wait(self, tick: float, park_after: int, timeout: float, /) -> int:
        """Look every ``tick`` seconds. Return the number of a request that has run on the
        loop's thread through a whole tick (it overstayed); 0 after ``timeout`` seconds or
        on :meth:`wake`. After ``park_after`` looks in a row that saw no request, sleep until
        :meth:`began` instead of looking; the looks count across waits (the watcher's waits
        return every ``timeout``, and an idle server must still park): one thread waits. A
        signal's handler runs while it waits; an exception from it comes out of ``wait``
        (the C one returns 0 after a handler ran)."""

    @property
    def parked(self) -> bool:
        """The watcher sleeps until a request begins (for the tests and the curious)."""


def check_wait_arguments(tick: float, park_after: int, timeout: float) -> None:
    if not (tick > 0.0 and park_after >= 1 and timeout >= 0.0):
        raise ValueError("wait(): tick > 0, park_after >= 1, timeout >= 0")


class PythonLoopWatch:
    """The :class:`LoopWatch` in Python: the spec of the C one, and the one the pure-Python
    build runs. Each look takes the GIL: while the watcher waits for it, every release by the
    loop's thread (each socket call) wakes it, mostly for nothing; the C watcher exists for
    that. The GIL is all the locking the counters need."""

    def __init__(self) -> None:
        self._seq = 0
        self._running = False
        self._parked = False
        #: set by wake(), and by began() while the watcher is parked
        self._wakeup = threading.Event()
        #: what the last look of the last wait saw, and how many looks in a row saw nothing
        #: run: the next wait goes on from there
        self._seen = 0
        self._seen_running = False
        self._quiet = 0

    def began(self) -> int:
        self._seq += 1
        self._running = True
        # after the seq: a watcher that parks reads the seq once parked, so either it sees
        # this request or this sees it parked
        if self._parked:
            self._parked = False
            self._wakeup.set()
        return self._seq

    def ended(self) -> None:
        self._running = False

    def wake(self) -> None:
        self._wakeup.set()

    @property
    def parked(self) -> bool:
        return self._parked

    def wait(self, tick: float, park_after: int, timeout: float, /) -> int:
        check_wait_arguments(tick, park_after, timeout)
        deadline = time.monotonic() + timeout
        seen, seen_running, quiet = self._seen, self._seen_running, self._quiet
        try:
            while (left := deadline - time.monotonic()) > 0.0:
                if quiet >= park_after:
                    if not self._park(seen, left):
                        return 0
                    seen, seen_running, quiet = self._seq, self._running, 0
                    continue
                if self._wakeup.wait(min(tick, left)):
                    self._wakeup.clear()
                    return 0
                now_seq, now_running = self._seq, self._running
                if now_running and seen_running and now_seq == seen:
                    return now_seq
                quiet = quiet + 1 if now_seq == seen and not now_running else 0
                seen, seen_running = now_seq, now_running
            return 0
        finally:
            self._parked = False
            self._seen, self._seen_running, self._quiet = seen, seen_running, quiet

    def _park(self, seen: int, left: float) -> bool:
        """Sleep until a request after ``seen`` begins (True), or until wake() or the
        deadline (False)."""
        self._parked = True
        if self._seq == seen:  # else began() came in between
            woken = self._wakeup.wait(left)
            self._wakeup.clear()
            if not woken or self._seq == seen:
                return False
        self._parked = False
        return True


C_LOOP_WATCH: Callable[[], LoopWatch] | None
#: The C watcher (fcgikit/server/_speedups_watcher.c); None where it was not built, and with
#: FCGIKIT_PURE_PYTHON=1.
try:
    from fcgikit.server._speedups_watcher import LoopWatch as C_LOOP_WATCH
except ImportError:
    C_LOOP_WATCH = None


def new_loop_watch() -> LoopWatch:
    """The C watcher where it is built, else its Python twin."""
    return C_LOOP_WATCH() if C_LOOP_WATCH is not None else PythonLoopWatch()


def watch(pool: WorkerPool) -> None:
    """Rescue ``pool``'s loop from slow requests until it is over."""
    loop_watch = pool.loop_watch
    while not pool.is_loop_over():
        overstayed = loop_watch.wait(TICK, PARK_AFTER_TICKS, WATCH_RETURN)
        if overstayed:
            pool.rescue(overstayed)
