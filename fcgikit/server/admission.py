"""The pool's books: which requests it admits, where each waits, and the rescue.

:class:`PoolAdmission` is the part of :class:`~fcgikit.server.pool.WorkerPool` that decides,
under the pool's lock: whether a request is admitted (:meth:`PoolAdmission.admit`), whether
it waits for the loop's thread or for a queued one (the back-off,
:mod:`fcgikit.server.backoff`), which request the loop's thread runs next and when it ends
(what the watcher sees through the :class:`~fcgikit.server.watcher.LoopWatch`), and the
rescue that takes the loop role from a request that overstayed. The threads that act on
those decisions (the loop role, the queued threads, the held replies) are in
:mod:`fcgikit.server.pool`.

Accounting: ``running`` counts requests being run, on the loop's thread or by queue, and
never exceeds ``threads`` (the app may rely on that, like ``RequestTracker`` does).
``threads + max_queued`` requests may be admitted at once; the next one is refused
(END_REQUEST OVERLOADED). So is one whose memory (its params and the body it keeps in
memory, as the caller counts it) would take what the admitted requests not yet running hold
beyond ``max_queued_memory``; a request's memory stops counting when it starts to run, and
the first request waiting is admitted whatever its size.
"""

from __future__ import annotations

import enum
import sys
import threading
from collections import deque
from collections.abc import Callable

from fcgikit.server import watcher
from fcgikit.server.backoff import BackOff, RouteOf, no_route
from fcgikit.server.held_replies import HeldReplies, Job
from fcgikit.server.watcher import LoopWatch

#: what a request holds while it waits, asked by admit_all of a job given without it
MemoryOf = Callable[[Job], int]


def no_memory(job: Job) -> int:
    """The memory of a job given without it, when nobody says: none."""
    return 0


class Refusal(enum.Enum):
    """Why :meth:`PoolAdmission.admit` turned a request away (it gets END_REQUEST OVERLOADED)."""

    #: ``threads + max_queued`` requests are admitted already
    THREADS = "all threads busy"
    #: the requests waiting would hold more than ``max_queued_memory``
    MEMORY = "the requests waiting for a thread hold --max-queued-memory"


class PoolAdmission:
    """The admission, the loop's thread's turns and the rescue of a pool of ``threads``
    threads (see :class:`~fcgikit.server.pool.WorkerPool`, which runs them)."""

    def __init__(
        self,
        threads: int,
        max_queued: int,
        max_queued_memory: int = sys.maxsize,
        route_of: RouteOf = no_route,
    ) -> None:
        self.max_running = threads
        self.capacity = threads + max_queued
        self.max_queued_memory = max_queued_memory
        #: the memory of the requests admitted and not running yet (see admit)
        self.queued_memory = 0
        self._lock = threading.Lock()
        self._acquire, self._release = self._lock.acquire, self._lock.release
        #: requests admitted, waiting for a queued thread, with their memory
        self._queue: deque[tuple[Job, int]] = deque()
        #: requests admitted, waiting to run on the loop's thread (bodies complete)
        self._ready: deque[tuple[Job, int]] = deque()
        #: the replies of requests run on the loop's thread, sent once the ready requests have
        #: all run (see WorkerPool.run_ready)
        self._held = HeldReplies()
        self.running = 0
        #: the loop role waits for a thread to take it
        self._role_free = False
        self._leader: int | None = None
        self._inline_seq = 0
        #: the thread running a request while it holds the loop role, if one is, and the job
        self._inline_thread: int | None = None
        self._inline_job: Job | None = None
        #: the ready request admit_all gave the loop's thread at once: run_ready runs it first
        self._taken: Job | None = None
        self._backoff = BackOff(route_of)
        #: when the request each queued thread runs began (time.monotonic), by thread
        self._queued_began: dict[int, float] = {}
        #: how often a request lost the loop role (for the curious and the tests)
        self.rescues = 0
        self._loop_watch = watcher.new_loop_watch()

    def all_busy(self) -> bool:
        """Every thread runs a request: what is admitted now waits for one (read without
        the lock: a glance, for the rare path)."""
        return self.running >= self.max_running

    @property
    def backoff(self) -> int:
        """The length of the last back-off, in requests (for the curious and the tests)."""
        return self._backoff.length

    @property
    def in_flight(self) -> int:
        """Requests admitted and not over: running, queued or waiting for the loop's thread."""
        return self.running + len(self._queue) + len(self._ready)

    @property
    def loop_watch(self) -> LoopWatch:
        """What the loop's thread tells the watcher: which request runs on it."""
        return self._loop_watch

    def _wake_locked(self) -> None:
        """Wake (or start) the threads the queue and a free loop role want (the pool's)."""
        raise NotImplementedError

    # --- admission -------------------------------------------------------------------------

    def admit(self, job: Job, *, ready: bool, memory: int = 0) -> Refusal | None:
        """Admit a request, None; or why not (answer OVERLOADED). ``ready``: its body is
        complete, so the loop's thread may run it (run_ready). ``memory``: what it holds
        until it runs, counted in ``queued_memory`` until then."""
        acquire, release = self._acquire, self._release
        acquire()  # not ``with``: see WorkerPool.run_ready
        try:
            return self._admit_locked(job, ready, memory)
        finally:
            release()

    def admit_all(
        self, jobs: list[tuple[Job, bool, int | None]], memory_of: MemoryOf = no_memory
    ) -> list[tuple[int, Refusal]]:
        """Admit the requests of one round of the loop, each ``(job, ready, memory)`` as
        :meth:`admit` takes them, in order, in one round of the lock; the refused ones, by
        their index, with why. A memory of None is asked of ``memory_of`` if the request
        waits. Called by the loop's thread: the first ready request, when nothing waits
        before it and a thread is free for it, is that thread's at once (run_ready runs it
        first), as run_ready would take it: it never waits, so it holds no memory here."""
        refused: list[tuple[int, Refusal]] = []
        acquire, release = self._acquire, self._release
        acquire()
        try:
            for index, (job, ready, memory) in enumerate(jobs):
                if ready and self._taken is None and self._take_at_once_locked(job):
                    continue
                if memory is None:
                    memory = memory_of(job)
                refusal = self._admit_locked(job, ready, memory)
                if refusal is not None:
                    refused.append((index, refusal))
        finally:
            release()
        return refused

    def _take_at_once_locked(self, job: Job) -> bool:
        # Nothing ready before it, no back-off that may send it to the queue, and a thread
        # left after the queued requests (see _take_inline_locked)
        leader = self._leader
        if (
            self._ready
            or self._backoff.left
            or leader is None
            or self.running + len(self._queue) >= self.max_running
        ):
            return False
        self._begin_inline_locked(leader, job)
        self._taken = job
        return True

    def _admit_locked(self, job: Job, ready: bool, memory: int) -> Refusal | None:
        if self.running + len(self._queue) + len(self._ready) >= self.capacity:
            return Refusal.THREADS
        queued_memory = self.queued_memory + memory
        if queued_memory > self.max_queued_memory and self.queued_memory:
            return Refusal.MEMORY
        self.queued_memory = queued_memory
        backoff = self._backoff
        if ready and not (
            backoff.left and backoff.sends_to_queue(job, self._inline_seq, self._queued_began)
        ):
            self._ready.append((job, memory))
        else:
            self._queue.append((job, memory))
            self._wake_locked()
        return None

    # --- the loop's thread's requests ------------------------------------------------------

    def _take_inline_locked(self, me: int) -> Job | None:
        """The next ready request for the loop's thread ``me`` to run, counted as running;
        None when there is none, or when the ready ones must go to the queue instead."""
        ready = self._ready
        if not ready:
            return None
        # Queued requests come first: each has a thread coming, and the loop's thread takes
        # a ready one only when a thread is left for it after them.
        if self.running + len(self._queue) >= self.max_running:
            self._queue.extend(ready)
            ready.clear()
            self._wake_locked()
            return None
        job, memory = ready.popleft()
        self.queued_memory -= memory
        self._begin_inline_locked(me, job)
        return job

    def _begin_inline_locked(self, me: int, job: Job) -> None:
        """``job`` runs on the loop's thread ``me`` from now: counted as running, watched."""
        self.running += 1
        self._inline_thread = me
        self._inline_job = job
        self._inline_seq = self._loop_watch.began()

    def _end_inline_locked(self, me: int) -> bool:
        """The request the loop's thread ``me`` ran is over; True when a rescue took the loop
        role from it meanwhile (``me`` is an ordinary thread now)."""
        self.running -= 1
        if self._leader != me:
            return True
        self._inline_thread = None
        self._inline_job = None
        self._loop_watch.ended()
        if self._queue:
            self._wake_locked()
        return False

    # --- the rescue (by the watcher, fcgikit.server.watcher) -------------------------------

    def rescue(self, seq: int) -> None:
        """Take the loop role from the request that began as ``seq``, if it still runs."""
        with self._lock:
            self._rescue_locked(seq)

    def _rescue_locked(self, seq: int) -> None:
        # A rescue names the request it saw overstay: if that one is over, the loop's thread
        # has moved on and there is nothing to take.
        if self._inline_thread is None or self._inline_seq != seq:
            return
        self.rescues += 1
        self._leader = None
        self._inline_thread = None  # it goes on with its request, as an ordinary thread
        self._backoff.begin(seq, self._inline_job, first=self.rescues == 1)
        self._inline_job = None
        self._loop_watch.ended()
        self._role_free = True
        self._queue.extend(self._ready)
        self._ready.clear()
        self._wake_locked()
