"""The threads that run requests and take turns running the server's I/O loop.

Handing each request from an I/O thread to a worker thread costs two thread switches and a
GIL hand-off: more than parsing the request, building the environ and running a hello-world
app together (benchmarks/RESULTS.md, "The loop runs on the pool"). So the loop runs *on* the
pool:
one thread at a time holds the **loop role** (:meth:`WorkerPool.start` ``lead``), and a request
whose body has fully arrived runs right there, on the thread that read it, with no hand-off at
all (:meth:`WorkerPool.run_ready`). A request still streaming its body goes to the queue for
another thread, since the loop must keep reading to feed it.

Running a request on the loop's thread is only safe if it is quick. :meth:`WorkerPool.watch`
(the thread that called ``serve``, which also runs the signal handlers; its loop is in
:mod:`fcgikit.server.watcher`) looks every :data:`~fcgikit.server.watcher.TICK` seconds; a
request that has held the loop's thread for a whole tick (a database query, a slow client, a
long computation) loses the loop role: another thread takes it over,
and the requests that were waiting behind it go to the queue. This is Go's scheduler's "hand
off the processor from a blocked thread" applied to one selector. After such a rescue the
pool backs off: it sends the rescued request's route to queued threads for a while
(:mod:`fcgikit.server.backoff`). The loop's
thread tells the watcher which request runs through a
:class:`~fcgikit.server.watcher.LoopWatch`: where the C lane is built it looks without the
GIL, so the busy loop thread never hands the GIL to it for nothing.

Replies: a job (a request) returns its :class:`~fcgikit.server.held_replies.Reply`, framed
and not sent yet, and the pool sends it: the replies of requests that were ready together go
out together (:mod:`fcgikit.server.held_replies`).

Accounting: ``running`` counts requests being run, on the loop's thread or by queue, and
never exceeds ``threads`` (the app may rely on that, like ``RequestTracker`` does); the pool
holds at most ``threads + 1`` threads, so one is always free to take the loop role.
``threads + max_queued`` requests may be admitted at once; the next one is refused
(END_REQUEST OVERLOADED). So is one whose memory (its params and the body it keeps in
memory, as the caller counts it) would take what the admitted requests not yet running hold
beyond ``max_queued_memory``; a request's memory stops counting when it starts to run, and
the first request waiting is admitted whatever its size.
"""

from __future__ import annotations

import enum
import logging
import sys
import threading
import time
from collections import deque
from collections.abc import Callable

from fcgikit.server import watcher
from fcgikit.server.backoff import INLINE_BACKOFF as INLINE_BACKOFF
from fcgikit.server.backoff import INLINE_TRUSTED as INLINE_TRUSTED
from fcgikit.server.backoff import BackOff, RouteOf, no_route
from fcgikit.server.held_replies import HeldReplies, Job, Reply, end_reply, send_reply
from fcgikit.server.watcher import LoopWatch

log = logging.getLogger("fcgikit.server")


#: at most this many threads are woken for the queue at a time, each that takes a request
#: waking the next: a burst's threads do not all wake at once to fight for the GIL and lock
WAKE_AT_ONCE = 4


class Refusal(enum.Enum):
    """Why :meth:`WorkerPool.admit` turned a request away (it gets END_REQUEST OVERLOADED)."""

    #: ``threads + max_queued`` requests are admitted already
    THREADS = "all threads busy"
    #: the requests waiting would hold more than ``max_queued_memory``
    MEMORY = "the requests waiting for a thread hold --max-queued-memory"


class _LeadRole:
    """The job that means "run the I/O loop"."""


LEAD = _LeadRole()


class WorkerPool:
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
        self._work_ready = threading.Condition(self._lock)
        self._loop_ended = threading.Condition(self._lock)
        #: requests admitted, waiting for a queued thread, with their memory
        self._queue: deque[tuple[Job, int]] = deque()
        #: requests admitted, waiting to run on the loop's thread (bodies complete)
        self._ready: deque[tuple[Job, int]] = deque()
        #: the replies of requests run on the loop's thread, sent once the ready requests have
        #: all run (see run_ready)
        self._held = HeldReplies()
        self.running = 0
        self._threads = 0
        self._idle = 0  # threads waiting in _take that no notify() has claimed yet
        self._waking = 0  # threads woken (or started) that have not looked for work yet
        self._lead: Callable[[], bool] | None = None
        self._role_free = False
        self._leader: int | None = None
        self._inline_seq = 0
        #: the thread running a request while it holds the loop role, if one is, and the job
        self._inline_thread: int | None = None
        self._inline_job: Job | None = None
        self._backoff = BackOff(route_of)
        #: when the request each queued thread runs began (time.monotonic), by thread
        self._queued_began: dict[int, float] = {}
        self._loop_over = False
        self.loop_error: BaseException | None = None
        self._closed = False
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

    # --- the loop role ---------------------------------------------------------------------

    def start(self, lead: Callable[[], bool]) -> None:
        """Give the loop role to a thread. ``lead`` runs the loop until it returns: True when
        the loop is over for good, False when this thread lost the role (see run_ready)."""
        with self._lock:
            self._lead = lead
            self._role_free = True
            self._wake_locked()

    def watch(self) -> None:
        """Rescue the loop from slow requests until it is over; run by ``serve``'s caller.
        The loop is in fcgikit.server.watcher, which stays interpreted: this is the main
        thread, and signal handlers must go on running on it."""
        watcher.watch(self)

    # --- for the watcher (fcgikit.server.watcher) ------------------------------------------

    @property
    def loop_watch(self) -> LoopWatch:
        """What the loop's thread tells the watcher: which request runs on it."""
        return self._loop_watch

    def is_loop_over(self) -> bool:
        with self._lock:
            return self._loop_over

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

    def loop_over(self, error: BaseException | None = None) -> None:
        with self._lock:
            self._loop_over = True
            self._role_free = False
            if error is not None and self.loop_error is None:
                self.loop_error = error
            self._loop_ended.notify_all()
        self._loop_watch.wake()

    def wait_loop_over(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._lock:
            while not self._loop_over:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._loop_ended.wait(left)
        return True

    # --- requests --------------------------------------------------------------------------

    def admit(self, job: Job, *, ready: bool, memory: int = 0) -> Refusal | None:
        """Admit a request, None; or why not (answer OVERLOADED). ``ready``: its body is
        complete, so the loop's thread may run it (run_ready). ``memory``: what it holds
        until it runs, counted in ``queued_memory`` until then."""
        acquire, release = self._acquire, self._release
        acquire()  # not ``with``: see run_ready
        try:
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
        finally:
            release()
        return None

    def run_ready(self) -> bool:
        """Run the ready requests on this thread (the loop's); False once it lost the role."""
        me = threading.get_ident()
        acquire, release = self._acquire, self._release
        # A glance without the lock first: only this thread admits (a rescue only empties
        # it), so a batch ends without a lock round to find nothing left.
        while self._ready:
            # Every request's lock rounds (and admit's): acquire() and release(), not ``with``
            # (half the instructions, interpreted), bound in __init__ (compiled: no look-ups).
            acquire()
            try:
                job = self._take_inline_locked(me)
            finally:
                release()
            if job is None:
                break
            reply = _run(job)
            # The batch's only or last reply goes at once, while the watcher still counts its
            # request as running (a web server slow to read it makes a slow request); the
            # others wait for the rest of the batch.
            held = reply is not None and bool(self._ready or self._held.replies)
            if reply is not None and not held:
                send_reply(reply)
            acquire()
            try:
                self.running -= 1
                rescued = self._leader != me
                if not rescued:
                    self._inline_thread = None
                    self._inline_job = None
                    self._loop_watch.ended()
                    if self._queue:
                        self._wake_locked()
            finally:
                release()
            if reply is not None:
                if rescued:  # another thread runs the loop now (and sends what was held)
                    if held:
                        send_reply(reply)
                    end_reply(reply, on_loop=False)
                elif held:
                    self._held.hold(reply)
                else:
                    end_reply(reply, on_loop=True)
            if rescued:
                return False
            if self._held.replies and self._held.waited_too_long():
                self._held.send()
        if self._held.replies:
            self._held.send()
        return True

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
        self.running += 1
        self._inline_thread = me
        self._inline_job = job
        self._inline_seq = self._loop_watch.began()
        return job

    # --- the threads -----------------------------------------------------------------------

    def _wake_locked(self) -> None:
        queued = min(len(self._queue), self.max_running - self.running, WAKE_AT_ONCE)
        wanted = int(self._role_free) + queued - self._waking
        if wanted <= 0:
            return
        woken = min(wanted, self._idle)
        if woken > 0:
            self._idle -= woken
            self._waking += woken
            self._work_ready.notify(woken)
        for _ in range(min(wanted - woken, self.max_running + 1 - self._threads)):
            self._threads += 1
            self._waking += 1
            threading.Thread(
                target=self._work, name=f"fcgikit-thread-{self._threads}", daemon=True
            ).start()

    def _take_locked(self, me: int, *, waking: bool = False) -> Job | _LeadRole | None:
        """The next thing for the thread ``me`` to do: the loop role, a queued request (counted
        as running), or None once the pool is shut down. ``waking``: ``me`` was just started."""
        if waking:
            self._waking -= 1
        while True:
            if self._closed:
                self._threads -= 1
                return None
            if self._role_free:
                self._role_free = False
                self._leader = me
                if self._queue:
                    self._wake_locked()
                return LEAD
            if self._queue and self.running < self.max_running:
                self.running += 1
                job, memory = self._queue.popleft()
                self.queued_memory -= memory
                self._queued_began[me] = time.monotonic()
                if self._queue:
                    self._wake_locked()
                return job
            self._idle += 1
            self._work_ready.wait()
            self._waking -= 1

    def _work(self) -> None:
        me = threading.get_ident()
        with self._lock:
            job = self._take_locked(me, waking=True)
        while job is not None:
            if isinstance(job, _LeadRole):
                self._run_loop()
                with self._lock:
                    job = self._take_locked(me)
                continue
            reply = _run(job)
            if reply is not None:
                send_reply(reply)
                end_reply(reply, on_loop=False)
            with self._lock:
                self.running -= 1
                if time.monotonic() - self._queued_began.pop(me) >= watcher.TICK:
                    self._backoff.queued_took_a_tick = True
                job = self._take_locked(me)

    def _run_loop(self) -> None:
        assert self._lead is not None
        try:
            if self._held.replies:  # the replies a rescued thread held
                self._held.send()
            over = self._lead()
        except BaseException as exc:
            log.exception("fcgikit: the I/O loop failed")
            self.loop_over(exc)
            return
        if over:
            self.loop_over()

    def shutdown(self) -> None:
        """Stop idle threads; busy ones are daemons and end with the process."""
        with self._lock:
            self._closed = True
            self._role_free = False
            self._waking += self._idle
            self._idle = 0
            self._work_ready.notify_all()


def _run(job: Job) -> Reply | None:
    try:
        return job()
    except BaseException:  # a job is a whole request; it logs its own failures
        log.exception("request thread: unexpected error")
        return None
