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

Admission and its accounting, the loop's thread's turns (what the watcher sees) and the
rescue are :class:`~fcgikit.server.admission.PoolAdmission`'s, which :class:`WorkerPool`
extends with the threads that act on them; the pool holds at most ``threads + 1`` threads,
so one is always free to take the loop role.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable

from fcgikit.server import watcher
from fcgikit.server.admission import PoolAdmission
from fcgikit.server.admission import Refusal as Refusal
from fcgikit.server.backoff import INLINE_BACKOFF as INLINE_BACKOFF
from fcgikit.server.backoff import INLINE_TRUSTED as INLINE_TRUSTED
from fcgikit.server.backoff import RouteOf, no_route
from fcgikit.server.held_replies import Job, Reply, ServerReply, end_reply, send_reply

log = logging.getLogger("fcgikit.server")


#: at most this many threads are woken for the queue at a time, each that takes a request
#: waking the next: a burst's threads do not all wake at once to fight for the GIL and lock
WAKE_AT_ONCE = 4


class _LeadRole:
    """The job that means "run the I/O loop"."""


LEAD = _LeadRole()


class WorkerPool(PoolAdmission):
    """The threads that run requests: one holds the loop role at a time (see the module)."""

    def __init__(
        self,
        threads: int,
        max_queued: int,
        max_queued_memory: int = sys.maxsize,
        route_of: RouteOf = no_route,
    ) -> None:
        super().__init__(threads, max_queued, max_queued_memory, route_of)
        self._work_ready = threading.Condition(self._lock)
        self._loop_ended = threading.Condition(self._lock)
        self._threads = 0
        self._idle = 0  # threads waiting in _take that no notify() has claimed yet
        self._waking = 0  # threads woken (or started) that have not looked for work yet
        self._lead: Callable[[], bool] | None = None
        self._loop_over = False
        self.loop_error: BaseException | None = None
        self._closed = False

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

    def is_loop_over(self) -> bool:
        with self._lock:
            return self._loop_over

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

    def run_ready(self) -> bool:
        """Run the ready requests on this thread (the loop's); False once it lost the role."""
        me = threading.get_ident()
        acquire, release = self._acquire, self._release
        held_replies = self._held
        # the request admit_all took for this thread, if it took one (counted as running)
        job, self._taken = self._taken, None
        # A glance without the lock first: only this thread admits (a rescue only empties
        # it), so a batch ends without a lock round to find nothing left.
        while job is not None or self._ready:
            # Every request's lock rounds (and admit's): acquire() and release(), not ``with``
            # (half the instructions, interpreted), bound in __init__ (compiled: no look-ups).
            if job is None:
                acquire()
                try:
                    job = self._take_inline_locked(me)
                finally:
                    release()
                if job is None:
                    break
            try:  # (_run, written out: a call less for each request the loop's thread runs)
                reply = job.run() if isinstance(job, ServerReply) else job()
            except BaseException:
                log.exception("request thread: unexpected error")
                reply = None
            # The batch's only or last reply goes at once, while the watcher still counts its
            # request as running (a web server slow to read it makes a slow request); the
            # others wait for the rest of the batch.
            held = reply is not None and bool(self._ready or held_replies.replies)
            if reply is not None and not held:
                send_reply(reply)
            # The next ready request is taken in the round that ends this one, unless the
            # held replies go out between the two (outside any request's watch); a reply
            # sent at once leaves none ready (only this thread admits).
            take_next = bool(self._ready) and not held_replies.due(adding=held)
            acquire()
            try:
                rescued = self._end_inline_locked(me)
                job = self._take_inline_locked(me) if take_next and not rescued else None
            finally:
                release()
            if reply is not None:
                if rescued:  # another thread runs the loop now (and sends what was held)
                    if held:
                        send_reply(reply)
                    end_reply(reply, on_loop=False)
                elif held:
                    held_replies.hold(reply)
                else:
                    end_reply(reply, on_loop=True)
            if rescued:
                return False
            if job is None and self._ready and held_replies.replies:
                held_replies.send()  # due (see take_next): none ready is the batch's end
        if held_replies.replies:
            held_replies.send()
        return True

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
        if isinstance(job, ServerReply):
            return job.run()  # (compiled: a direct call, see ServerReply)
        return job()
    except BaseException:  # a job is a whole request; it logs its own failures
        log.exception("request thread: unexpected error")
        return None
