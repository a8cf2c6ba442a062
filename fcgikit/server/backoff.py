"""The pool's back-off: which requests go to queued threads after a rescue, and for how long.

After a rescue (a request held the loop's thread for a whole tick and lost the loop role; see
:mod:`fcgikit.server.pool`) the pool sends the next :data:`INLINE_BACKOFF` requests of the
rescued request's route (its path, as the caller's ``route_of`` tells it; all requests where
it cannot) to queued threads: an app whose requests are all slow pays for one rescue per
back-off, not one per request, and one with a slow page does not hand every other page's
requests from the loop's thread to another thread (a second wake-up each) while the slow ones
run. Each rescue makes the requests stranded behind the slow one wait a tick or two, so when
it comes before :data:`INLINE_TRUSTED` requests have run on the loop's thread since the last
back-off ended (slow requests are a steady part of the load: an app that waits on something
now and then), the back-off doubles, up to :data:`INLINE_BACKOFF_MAX` requests; a rescue
after as many quick ones starts again from :data:`INLINE_BACKOFF`. A back-off that has
counted its requests goes on when a request on a queued thread took a tick, or has run for
one: the app's slow requests have not stopped, and the next one would hold the loop's thread
until its rescue (under load a back-off runs out in a fraction of a slow request's time,
before any of those it sent to the queue could end). Counting requests, not time, keeps a
back-off across a quiet spell: a burst after it finds the loop clear.

The pool calls it with its lock held.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable

from fcgikit.server import watcher
from fcgikit.server.held_replies import Job

#: after a rescue, this many requests go to the queue...
INLINE_BACKOFF = 64
#: ...twice as many as the last time when at most this many requests ran on the loop's
#: thread since the last back-off ended...
INLINE_TRUSTED = 1000
#: ...up to this many: once an app's slow requests stop, at most this many pay a hand-off
INLINE_BACKOFF_MAX = 64 * INLINE_BACKOFF

#: a job's route (the requests the app serves with the same code share it), or None
RouteOf = Callable[[Job], Hashable | None]


def no_route(job: Job) -> Hashable | None:
    return None


class BackOff:
    """The back-off of one pool; ``route_of`` tells a job's route."""

    def __init__(self, route_of: RouteOf) -> None:
        self.route_of = route_of
        #: the requests it still sends to the queue (0: no back-off)
        self.left = 0
        #: the length of the last back-off, in requests (for the curious and the tests)
        self.length = 0
        #: the routes rescued since the back-off began, which it sends to the queue (a queued
        #: request's time says less: it includes its wait for the GIL, long in a burst)
        self.slow_routes: set[Hashable] = set()
        #: a request on a queued thread took a tick since the last back-off began
        self.queued_took_a_tick = False
        #: the loop watch's number of the last request run on the loop's thread when the last
        #: back-off ended (or began, while it lasts)
        self.ended_seq = 0

    def begin(self, seq: int, rescued: Job | None, first: bool) -> None:
        """A rescue took the loop role from the request that began as ``seq`` (``rescued``,
        the job); ``first``: the pool's first rescue."""
        if rescued is not None:
            route = self.route_of(rescued)
            if route is not None:
                self.slow_routes.add(route)
        # The loop watch numbers the requests run on the loop's thread: the difference is how
        # many ran since the last back-off ended (those of other routes during it do not
        # count: they say nothing of whether the slow ones stopped).
        if not first and seq - self.ended_seq <= INLINE_TRUSTED:
            self.length = min(2 * self.length, INLINE_BACKOFF_MAX)
        else:
            self.length = INLINE_BACKOFF
        self.ended_seq = seq
        self.left = self.length
        self.queued_took_a_tick = False

    def sends_to_queue(self, job: Job, inline_seq: int, queued_began: dict[int, float]) -> bool:
        """Whether the back-off (``left`` is not 0) sends ``job``, complete, to the queue: its
        route is a slow one, or unknown. Only those count (the back-off renews while the slow
        requests go on): the others run on the loop's thread, and their coming does not end
        it. ``inline_seq``: the last request run on the loop's thread; ``queued_began``: when
        the request each queued thread runs began."""
        route = self.route_of(job)
        if route is not None and route not in self.slow_routes:
            return False
        self.left -= 1
        if not self.left:
            if self._slow_requests_go_on(queued_began):
                self.left = self.length
            else:
                self.slow_routes.clear()
                self.ended_seq = inline_seq
        return True

    def _slow_requests_go_on(self, queued_began: dict[int, float]) -> bool:
        """A request on a queued thread took a tick since the back-off began, or has run for
        one now (asked once a back-off, when it has counted its requests)."""
        took_a_tick, self.queued_took_a_tick = self.queued_took_a_tick, False
        began_by = time.monotonic() - watcher.TICK
        return took_a_tick or any(began <= began_by for began in queued_began.values())
