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
#: request seen running through a tick loses the loop role once its thread has held it for
#: half a tick more, time spent waiting for a CPU not counted (HeldLoop). Each look of the
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

    @property
    def thread(self) -> int:
        """The ident (``threading.get_ident``) of the thread that began the latest request;
        0 before the first."""


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
        self._thread = 0
        #: set by wake(), and by began() while the watcher is parked
        self._wakeup = threading.Event()
        #: what the last look of the last wait saw, and how many looks in a row saw nothing
        #: run: the next wait goes on from there
        self._seen = 0
        self._seen_running = False
        self._quiet = 0

    def began(self) -> int:
        self._thread = threading.get_ident()
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

    @property
    def thread(self) -> int:
        return self._thread

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
    held = HeldLoop(loop_watch)
    while not pool.is_loop_over():
        overstayed = loop_watch.wait(TICK, PARK_AFTER_TICKS, WATCH_RETURN)
        if overstayed and held.through(overstayed):
            pool.rescue(overstayed)


#: where the kernel says what a thread of this process is doing (its state, the third field)
#: and how long it ran on a CPU and waited, runnable, for one (nanoseconds, the first two)
THREAD_STAT = "/proc/self/task/{}/stat"
SCHEDSTAT = "/proc/self/task/{}/schedstat"

#: what the kernel says of a thread: its state letter (``R`` running or runnable, ``S``
#: sleeping, ...) and the seconds it has waited for a CPU since it began
ThreadReading = tuple[str, float]


def read_thread(ident: int) -> ThreadReading | None:
    """What the kernel says of the thread ``ident`` (``threading.get_ident``); None where it
    does not say (not Linux), or for a thread that ``threading`` does not know."""
    native_id = next((t.native_id for t in threading.enumerate() if t.ident == ident), None)
    if native_id is None:
        return None
    # The watcher asks with the GIL, which a thread busy in Python has handed it and now
    # waits for, asleep. Each file read below releases the GIL first, which wakes that
    # thread (runnable, R) before the kernel writes its state: it reads as running, not as
    # sleeping. A reading taken while holding the GIL throughout would read it asleep now
    # and then, and rescue requests busy on a CPU at once (tests/server/test_watcher.py).
    try:
        with open(THREAD_STAT.format(native_id), "rb") as stat:
            # the name in parentheses may hold spaces; the state follows the last ')'
            state = stat.read().rsplit(b")", 1)[1].split()[0].decode("ascii")
        with open(SCHEDSTAT.format(native_id), "rb") as stats:
            return state, int(stats.read().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return None


class HeldLoop:
    """Whether a request the looks saw through a whole tick *held* the loop's thread: ran on
    a CPU or waited for something of its own (a query, a lock, a sleep), rather than waited
    for a CPU.

    The looks go by the clock. On a machine whose CPUs are all busy (two workers on two
    cores, their web server beside them) the loop's thread is now and then kept off a CPU
    for a tick in the middle of a quick request; rescuing that request helps no one, since
    the thread that takes the loop role waits for the same CPUs and for the GIL the preempted
    one holds, and it sends the requests behind it to the queue (two thread switches each,
    and the back-off's after them). So a thread that sleeps (a query, a sleep, a lock, the
    GIL) is rescued at once, as before; a runnable one once it has held its request for half
    a tick more, as the kernel counts (time waiting for a CPU not counted): a request busy
    on a CPU is rescued a tick later than by the clock alone. Where the kernel does not say,
    at once, as before.
    """

    def __init__(
        self,
        loop_watch: LoopWatch,
        read: Callable[[int], ThreadReading | None] = read_thread,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.loop_watch = loop_watch
        self.read = read
        self.clock = clock
        #: the request under suspicion: its number, when, and its thread's wait by then
        self.suspect: tuple[int, float, float] | None = None

    def through(self, seq: int) -> bool:
        """Request ``seq`` was seen through a tick: whether to rescue it now."""
        reading = self.read(self.loop_watch.thread)
        if reading is None or reading[0] != "R":
            self.suspect = None
            return True
        waited = reading[1]
        now = self.clock()
        suspect = self.suspect
        if suspect is None or suspect[0] != seq:
            self.suspect = (seq, now, waited)
            return False
        _, since, waited_then = suspect
        if (now - since) - (waited - waited_then) < TICK / 2:
            return False  # off a CPU, waiting for one: look again
        self.suspect = None
        return True
