"""The watcher: the main thread's loop that rescues the I/O loop from slow requests.

:meth:`WorkerPool.watch <fcgikit.server.pool.WorkerPool.watch>` runs one of these loops on
the thread that called ``serve``: the main thread, the only one where Python runs signal
handlers. It runs them only between two steps of interpreted code, or when C code asks
(``PyErr_CheckSignals``); mypyc's compiled code does neither. So this module is never
compiled (setup.py), while the pool's per-request path is: were the loop below compiled, a
SIGTERM that the kernel gave a pool thread would wait for ever (a prefork worker that never
stops on reload). The C watcher (``_speedups.LoopWatch.wait``) runs the handlers itself
whenever it returns, at least every :data:`WATCH_RETURN` seconds.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fcgikit.server.pool import LoopWatchLike, WorkerPool

#: how often the watcher looks at the request running on the loop's thread (seconds); a
#: request running for longer than one to two ticks loses the loop role. In Python each look
#: takes the GIL from the loop's thread: at 1 ms that cost 10% of hello-world throughput;
#: 5 ms is also how long a busy thread keeps the GIL from the others.
TICK = 0.005
#: the watcher stops ticking after this many ticks with no request run on the loop's thread
PARK_AFTER_TICKS = 50
#: the C watcher comes back to Python at least this often (seconds): to see whether the loop
#: is over, and to run a signal handler that the kernel gave another thread
WATCH_RETURN = 0.25
#: a parked Python watcher looks again after this long (seconds) even if nothing woke it; it
#: only bounds a wait that nobody would otherwise end
PARKED_LOOK = 1.0


def watch(pool: WorkerPool) -> None:
    """Rescue ``pool``'s loop from slow requests until it is over."""
    loop_watch = pool.loop_watch
    if loop_watch is not None:
        _watch_without_gil(pool, loop_watch)
    else:
        _watch_with_python(pool)


def _watch_without_gil(pool: WorkerPool, loop_watch: LoopWatchLike) -> None:
    """The looks are done in C without the GIL: it is taken only to rescue, for a signal's
    handler, and every WATCH_RETURN seconds to see whether the loop is over."""
    while not pool.is_loop_over():
        overstayed = loop_watch.wait(TICK, PARK_AFTER_TICKS, WATCH_RETURN)
        if overstayed:
            pool.rescue(overstayed)


def _watch_with_python(pool: WorkerPool) -> None:
    """The fallback without ``_speedups``. Each look takes the GIL. While this thread waits for
    it, every release by the loop's thread (each socket call) wakes this one, mostly for
    nothing: the C watcher exists for that."""
    seen_seq = -1
    quiet_ticks = 0
    while True:
        look = pool.look(seen_seq)
        if look is None:
            return
        seq, running = look
        quiet_ticks = quiet_ticks + 1 if seq == seen_seq and not running else 0
        seen_seq = seq
        if quiet_ticks >= PARK_AFTER_TICKS:
            # Idle: no ticking until a request runs on the loop's thread again.
            pool.park_watcher(seen_seq, PARKED_LOOK)
            quiet_ticks = 0
        else:
            time.sleep(TICK)
