"""The pool runs complete requests on the loop's thread; a slow one must not hold anyone up."""

from __future__ import annotations

import functools
import logging
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from fcgikit.client import FastCGIResponse
from fcgikit.protocol import ClientConnection, RequestEnded, StdoutData
from fcgikit.server import pool as pool_module
from fcgikit.server import watcher
from fcgikit.server.pool import (
    INLINE_BACKOFF,
    INLINE_TRUSTED,
    Refusal,
    WorkerPool,
)
from tests.native import load_lane
from tests.server.conftest import RunningServer
from tests.server.test_hostile import wait_until

Environ = dict[str, Any]
WAIT = 10.0


def one_write_request(path: str, request_id: int = 1, *, keep_conn: bool = False) -> bytes:
    """A whole GET in one write, as nginx sends it: params and the empty body arrive in the
    same read, so the server may run it on the loop's thread."""
    client = ClientConnection()
    params = {b"REQUEST_METHOD": b"GET", b"PATH_INFO": path.encode(), b"SERVER_NAME": b"t"}
    return client.start_request(request_id, params, keep_conn=keep_conn) + client.end_stdin(
        request_id
    )


def read_response(sock: socket.socket) -> bytes:
    client = ClientConnection()
    client.start_request(1, {})  # only so that it expects request 1's records
    stdout = b""
    while True:
        data = sock.recv(65536)
        assert data, "connection closed before END_REQUEST"
        for event in client.receive_data(data):
            if isinstance(event, StdoutData):
                stdout += event.data
            elif isinstance(event, RequestEnded):
                return stdout


@pytest.fixture(params=["C", "Python"])
def either_watch(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """The pool with the C LoopWatch, or with its Python twin, in both passes."""
    plugged = None
    if request.param == "C":  # the Python twin runs where no lane was built, too
        plugged = load_lane("fcgikit.server._speedups_watcher").LoopWatch
    monkeypatch.setattr(watcher, "C_LOOP_WATCH", plugged)


def test_a_request_blocked_on_the_loops_thread_does_not_hold_up_the_next(
    serve: Callable[..., RunningServer], either_watch: None
) -> None:
    entered = threading.Event()
    release = threading.Event()

    def app(environ: Environ, start_response: Any) -> list[bytes]:
        if environ["PATH_INFO"] == "/block":
            entered.set()
            release.wait(WAIT)  # a database query, a slow API: the thread waits
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [environ["PATH_INFO"].encode()]

    running = serve(app, threads=4)
    blocked = socket.socket(socket.AF_UNIX)
    blocked.connect(running.path)
    blocked.sendall(one_write_request("/block"))
    assert entered.wait(WAIT)
    try:
        reply: FastCGIResponse = running.client(timeout=WAIT).request("GET", "/quick")
        assert (reply.status, reply.body) == (200, b"/quick")
    finally:
        release.set()
    assert read_response(blocked).endswith(b"/block")
    blocked.close()
    # /block ran on the loop's thread, and lost the loop to another thread while it waited
    assert running.server.pool.rescues == 1


def test_a_back_off_sends_the_rescued_route_to_the_queue_and_runs_the_others_on_the_loop(
    serve: Callable[..., RunningServer], either_watch: None
) -> None:
    """After a rescue, the requests of the route that was slow go to queued threads, and
    those of the app's other routes still run on the loop's thread: an instant request is
    not handed to another thread because a different page of the app is slow. Nor do they
    count against the back-off, which would end while the slow route's requests go on."""
    release = threading.Event()
    served_by: list[tuple[str, str]] = []

    def app(environ: Environ, start_response: Any) -> list[bytes]:
        path = environ["PATH_INFO"]
        served_by.append((path, threading.current_thread().name))
        if path == "/slow":
            wait_until(lambda: running.server.pool.rescues >= 1)  # held the loop's thread
            release.wait(WAIT)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [path.encode()]

    def send(path: str) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX)
        sock.settimeout(WAIT)
        sock.connect(running.path)
        sock.sendall(one_write_request(path))
        return sock

    running = serve(app, threads=4)
    socks: list[socket.socket] = []
    try:
        socks.append(send("/slow"))
        wait_until(lambda: running.server.pool.rescues == 1)
        for _ in range(INLINE_BACKOFF + 1):  # more than a back-off counts
            quick = send("/quick")
            assert read_response(quick).endswith(b"/quick")
            quick.close()
        socks.append(send("/slow"))
        wait_until(lambda: len(served_by) == INLINE_BACKOFF + 3)
    finally:
        release.set()
    for sock in socks:
        assert read_response(sock).endswith(b"/slow")
        sock.close()
    # The first /slow ran on the loop's thread (the pool's first) and lost the loop role to
    # the second thread, which ran every /quick itself, and those did not end the back-off:
    # the next /slow went to a third thread.
    assert served_by == [
        ("/slow", "fcgikit-thread-1"),
        *[("/quick", "fcgikit-thread-2")] * (INLINE_BACKOFF + 1),
        ("/slow", "fcgikit-thread-3"),
    ]
    assert running.server.pool.rescues == 1


def test_never_more_requests_at_once_than_threads(serve: Callable[..., RunningServer]) -> None:
    """Also while requests run on the loop's thread and get rescued: an app may size its
    database pool by --threads (and the prefork scoreboard has one cell per thread)."""
    lock = threading.Condition()
    active = started = peak = 0
    total = 12

    def app(environ: Environ, start_response: Any) -> list[bytes]:
        nonlocal active, started, peak
        with lock:
            active += 1
            started += 1
            peak = max(peak, active)
            lock.notify_all()
            # hold each request until it has company (or nobody is left to come), so that
            # the cap is actually reached
            assert lock.wait_for(lambda: active >= 2 or started == total, WAIT)
        with lock:
            active -= 1
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    running = serve(app, threads=2)
    socks = []
    for _ in range(total):
        sock = socket.socket(socket.AF_UNIX)
        sock.connect(running.path)
        socks.append(sock)
    for sock in socks:
        sock.sendall(one_write_request("/"))
    for sock in socks:
        sock.settimeout(WAIT)
        assert read_response(sock).endswith(b"ok")
        sock.close()
    assert peak == 2


def test_a_complete_request_waits_its_turn_when_every_thread_is_busy(
    serve: Callable[..., RunningServer],
) -> None:
    """The loop's thread runs a request itself only while a thread's worth of room is left."""
    lock = threading.Lock()
    active = peak = 0

    def app(environ: Environ, start_response: Any) -> list[bytes]:
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)
        try:
            body = environ["wsgi.input"].read()  # the uploads wait here for their bodies
        finally:
            with lock:
                active -= 1
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"%d" % len(body)]

    running = serve(app, threads=2)
    uploads = []
    for _ in range(2):
        client = ClientConnection()
        sock = socket.socket(socket.AF_UNIX)
        sock.connect(running.path)
        params = {b"REQUEST_METHOD": b"POST", b"CONTENT_LENGTH": b"10", b"SERVER_NAME": b"t"}
        sock.sendall(client.start_request(1, params) + client.send_stdin(1, b"12345"))
        uploads.append((client, sock))
    wait_until(lambda: active == 2, what="both uploads running")
    quick = socket.socket(socket.AF_UNIX)
    quick.connect(running.path)
    quick.sendall(one_write_request("/"))
    wait_until(lambda: running.server.pool.in_flight == 3, what="the GET admitted")
    for client, sock in uploads:
        sock.sendall(client.send_stdin(1, b"67890") + client.end_stdin(1))
    for sock in [quick, *(sock for _, sock in uploads)]:
        sock.settimeout(WAIT)
        assert read_response(sock).endswith(b"0" if sock is quick else b"10")
        sock.close()
    assert peak == 2


class NotedReply:
    """A job's reply that notes, when sent, ``name`` in ``sent`` (or sets an Event), and
    when its request is over, whether the thread that said so held the loop role."""

    def __init__(self, sent: list[str] | threading.Event, name: str = "") -> None:
        self.sent = sent
        self.name = name
        self.done_on_loop: list[bool] = []

    def send(self) -> None:
        if isinstance(self.sent, threading.Event):
            self.sent.set()
        else:
            self.sent.append(self.name)

    def done(self, *, on_loop: bool) -> None:
        self.done_on_loop.append(on_loop)


def run_pool(pool: WorkerPool, lead: Callable[[], bool]) -> None:
    """Run ``pool`` with ``lead`` as its loop (called each time a thread takes the loop role)
    until it returns True, with the watcher that rescues the loop from slow requests."""
    pool.start(lead)
    watcher = threading.Thread(target=pool.watch, daemon=True)
    watcher.start()
    watcher.join(WAIT)
    pool.shutdown()
    assert not watcher.is_alive(), "the loop did not end"


def test_slow_requests_that_keep_coming_keep_off_the_loops_thread_for_longer() -> None:
    """Each rescue strands the requests behind the slow one for a tick or two: a rescue that
    comes right after a back-off (no quick request ran on the loop's thread in between)
    doubles the next back-off, and one after INLINE_TRUSTED quick ones starts again from
    INLINE_BACKOFF."""
    pool = WorkerPool(threads=8, max_queued=8)
    release = threading.Event()
    backoffs: list[float] = []

    def request(loop_thread: int, slow: bool, on_loop: list[bool], done: threading.Event) -> None:
        on_loop.append(threading.get_ident() == loop_thread)
        if on_loop[0] and slow:
            release.wait(WAIT)  # holds the loop's thread until the test ends
        done.set()

    def lead() -> bool:
        loop_thread = threading.get_ident()
        if pool.rescues:
            backoffs.append(pool.backoff)
        if pool.rescues == 4:
            release.set()
            return True
        quick_first = INLINE_TRUSTED if pool.rescues == 3 else 0
        ran_on_loop = 0
        while True:  # until a request holds the loop's thread and is rescued from
            done = threading.Event()
            on_loop: list[bool] = []
            slow = ran_on_loop >= quick_first
            pool.admit(functools.partial(request, loop_thread, slow, on_loop, done), ready=True)
            if not pool.run_ready():
                return False
            assert done.wait(WAIT)
            ran_on_loop += on_loop[0]  # else it went to the queue: a back-off runs

    run_pool(pool, lead)
    assert pool.rescues == 4
    assert backoffs == [INLINE_BACKOFF, 2 * INLINE_BACKOFF, 4 * INLINE_BACKOFF, INLINE_BACKOFF]


def test_a_back_off_goes_on_while_requests_on_queued_threads_take_a_tick() -> None:
    """Under load a back-off counts its requests long before the slow ones it sent to the
    queue end. While one of them took a tick, or has run for one, the loop's thread keeps out
    of the requests (the next slow one would hold it until its rescue); once the slow ones
    stop, it takes them again."""
    pool = WorkerPool(threads=8, max_queued=8)
    release_slow = threading.Event()
    ran_on_loop: list[bool] = []

    def blocks_the_loop() -> None:
        wait_until(lambda: pool.rescues == 1)  # until the watcher took the loop from it

    def slow(worked: threading.Event, release: threading.Event | None) -> None:
        time.sleep(2 * watcher.TICK)  # the request's own work...
        worked.set()
        if release is not None:
            release.wait(WAIT)  # ...then a wait on something, as long as the test needs

    def quick(loop_thread: int) -> None:
        ran_on_loop.append(threading.get_ident() == loop_thread)

    def run_slow(release: threading.Event | None) -> bool:
        worked = threading.Event()
        pool.admit(functools.partial(slow, worked, release), ready=True)
        if not pool.run_ready():  # it ran on the loop's thread, and was rescued from
            return False
        assert worked.wait(WAIT)
        return True

    def quick_over(number: int, others_running: int) -> bool:
        return len(ran_on_loop) == number and pool.running == others_running

    def run_quick(count: int, others_running: int) -> bool:
        loop_thread = threading.get_ident()
        for number in range(len(ran_on_loop) + 1, len(ran_on_loop) + count + 1):
            pool.admit(functools.partial(quick, loop_thread), ready=True)
            if not pool.run_ready():
                return False
            # over, wherever it ran, before the next one comes
            wait_until(functools.partial(quick_over, number, others_running))
        return True

    def lead() -> bool:
        if not pool.rescues:
            pool.admit(blocks_the_loop, ready=True)
            return pool.run_ready()  # False: rescued
        if pool.rescues > 1:  # a second one: the loop's thread ran a slow request again
            release_slow.set()
            return True
        wait_until(lambda: pool.running == 0)
        if not run_slow(release=None):  # took a tick, and is over
            return False
        wait_until(lambda: pool.running == 0)
        if not run_quick(INLINE_BACKOFF + 1, others_running=0):
            return False
        if not run_slow(release=release_slow):  # has run for a tick, and goes on
            return False
        if not run_quick(4 * INLINE_BACKOFF, others_running=1):
            return False
        release_slow.set()
        wait_until(lambda: pool.running == 0)
        # (the slow one that ended renews the back-off once more, and a quick one that the
        # machine's load held up for a tick may too: no exact count)
        for _ in range(8 * INLINE_BACKOFF):
            if not run_quick(1, others_running=0):
                return False
            if ran_on_loop[-1]:
                break
        return True

    run_pool(pool, lead)
    assert pool.rescues == 1
    after_one_took_a_tick = ran_on_loop[: INLINE_BACKOFF + 1]
    while_one_runs = ran_on_loop[INLINE_BACKOFF + 1 : 5 * INLINE_BACKOFF + 1]
    assert not any(after_one_took_a_tick), f"{after_one_took_a_tick.index(True)} went to the queue"
    assert not any(while_one_runs), f"{while_one_runs.index(True)} went to the queue"
    assert ran_on_loop[-1], "the back-off did not end once the slow requests did"


def test_a_route_rescued_again_soon_after_its_back_off_doubles_it_whatever_else_ran() -> None:
    """The requests of other routes run on the loop's thread during a back-off: they say
    nothing of whether the slow route's requests stopped. A rescue that comes right after
    the back-off ended still doubles the next one, however many of them ran during it."""
    pool = WorkerPool(
        threads=8, max_queued=8, route_of=lambda job: getattr(job, "keywords", {}).get("route")
    )
    release = threading.Event()

    def request(
        loop_thread: int, hold: bool, on_loop: list[bool], done: threading.Event, route: str
    ) -> None:
        on_loop.append(threading.get_ident() == loop_thread)
        if on_loop[0] and hold:
            before = pool.rescues
            wait_until(lambda: pool.rescues > before or release.is_set())  # until rescued
        done.set()

    def run(route: str, *, hold: bool) -> bool | None:
        """Run one request of ``route`` and wait for it; whether it ran on the loop's thread
        (None: it held the loop's thread and was rescued from)."""
        done = threading.Event()
        on_loop: list[bool] = []
        job = functools.partial(request, threading.get_ident(), hold, on_loop, done, route=route)
        pool.admit(job, ready=True)
        if not pool.run_ready():
            return None
        assert done.wait(WAIT)
        return on_loop[0]

    def lead() -> bool:
        if not pool.rescues:
            return run("/slow", hold=True) is not None  # rescued: False
        if pool.rescues == 2:
            release.set()
            return True
        for _ in range(INLINE_TRUSTED + 1):  # another route, on the loop's thread
            assert run("/quick", hold=False)
        for _ in range(8 * INLINE_BACKOFF):  # /slow goes to the queue until the back-off ends
            ran_on_loop = run("/slow", hold=True)
            if ran_on_loop is None:
                return False
        release.set()
        return True

    def request_over() -> bool:
        return pool.running == 0

    run_pool(pool, lead)
    wait_until(request_over)
    assert pool.rescues == 2
    assert pool.backoff == 2 * INLINE_BACKOFF


def test_a_loop_that_fails_ends_with_its_error_logged_for_serve_to_raise(
    caplog: pytest.LogCaptureFixture,
) -> None:
    pool = WorkerPool(threads=2, max_queued=0)
    failure = RuntimeError("a bug in the loop")

    def lead() -> bool:
        raise failure

    with caplog.at_level(logging.ERROR, logger="fcgikit.server"):
        run_pool(pool, lead)
    assert pool.loop_error is failure  # Server.serve raises it
    (record,) = [r for r in caplog.records if "the I/O loop failed" in r.getMessage()]
    assert record.exc_info is not None and record.exc_info[1] is failure


def test_a_request_ends_on_the_loops_thread_only_where_no_rescue_can_take_the_loop() -> None:
    """Only the thread that holds the loop role, running no request, may close a connection
    the loop's poller watches: a reply says whether its request ended on such a thread."""
    pool = WorkerPool(threads=4, max_queued=4)
    sent: list[str] = []
    release = threading.Event()
    names = ("alone", "held", "last", "queued", "rescued")
    replies = {name: NotedReply(sent, name) for name in names}

    def reply(name: str) -> Callable[[], NotedReply]:
        return lambda: replies[name]

    def rescued() -> NotedReply:
        release.wait(WAIT)  # until the thread that took the loop over lets it end
        return replies["rescued"]

    def lead() -> bool:
        if pool.rescues == 0:
            pool.admit(reply("alone"), ready=True)
            assert pool.run_ready()
            pool.admit(reply("held"), ready=True)
            pool.admit(reply("last"), ready=True)
            assert pool.run_ready()
            pool.admit(reply("queued"), ready=False)
            wait_until(lambda: replies["queued"].done_on_loop, WAIT, "the queued request")
            pool.admit(rescued, ready=True)
            return pool.run_ready()  # False: rescued lost the loop role
        release.set()
        return True

    run_pool(pool, lead)
    wait_until(lambda: replies["rescued"].done_on_loop, WAIT, "the rescued request to end")
    assert sent == list(names)
    assert {name: replies[name].done_on_loop for name in names} == {
        "alone": [True],
        "held": [True],
        "last": [True],
        "queued": [False],
        "rescued": [False],
    }


def test_a_reply_the_web_server_is_slow_to_read_loses_the_loop_role_like_a_slow_app() -> None:
    """The last reply of a batch goes out while the watcher still counts its request as
    running: a send that blocks (a web server that stopped reading) is rescued from."""
    pool = WorkerPool(threads=4, max_queued=4)
    release = threading.Event()
    loop_taken_over_while_sending: list[bool] = []

    class BlockingReply(NotedReply):
        def send(self) -> None:
            release.wait(WAIT)
            super().send()

    blocking = BlockingReply([], "blocking")

    def lead() -> bool:
        if pool.rescues == 0:
            pool.admit(lambda: blocking, ready=True)
            return pool.run_ready()  # False: its send held the loop's thread
        loop_taken_over_while_sending.append(not blocking.sent)
        release.set()
        return True

    run_pool(pool, lead)
    wait_until(lambda: blocking.done_on_loop, WAIT, "the blocked reply to go")
    assert loop_taken_over_while_sending == [True]
    assert blocking.sent == ["blocking"]
    assert blocking.done_on_loop == [False]


# --- the memory of the requests waiting (issue 21, item 4) ---------------------------------


def threads_of(pool: WorkerPool) -> int:
    """How many threads ``pool`` has started that are alive."""
    return sum(
        getattr(getattr(thread, "_target", None), "__self__", None) is pool
        for thread in threading.enumerate()
    )


def test_requests_queued_together_wake_their_threads_a_few_at_a_time() -> None:
    """A burst of requests for the queue (a round start's connections during a back-off)
    wakes WAKE_AT_ONCE threads, and each thread that takes one wakes the next: not a thread
    for each at once, all then fighting for the GIL and the pool's lock. None is lost."""
    pool = WorkerPool(threads=16, max_queued=0)
    release = threading.Event()
    ran: list[int] = []
    bounded: list[bool] = []

    def job(number: int) -> None:
        started = threads_of(pool)  # before running: it only grows
        bounded.append(started <= pool.running + pool_module.WAKE_AT_ONCE)
        ran.append(number)
        release.wait(WAIT)

    try:
        for number in range(16):
            assert pool.admit(functools.partial(job, number), ready=False) is None
        wait_until(lambda: len(ran) == 16)
    finally:
        release.set()
        wait_until(lambda: pool.running == 0)
        pool.shutdown()
    assert sorted(ran) == list(range(16))
    assert all(bounded), f"{bounded.count(False)} requests started among too many threads"


def test_the_requests_waiting_hold_at_most_max_queued_memory() -> None:
    """Counted from admission until a thread takes the request; past the budget, refused
    (the count unchanged); the first request waiting is admitted whatever its size."""
    pool = WorkerPool(threads=1, max_queued=8, max_queued_memory=100)
    started = threading.Semaphore(0)
    release = threading.Event()

    def job() -> None:
        started.release()
        release.wait(WAIT)

    assert pool.admit(job, ready=False, memory=500) is None  # nothing waits: admitted
    assert started.acquire(timeout=WAIT)  # running now: no longer counted
    assert pool.queued_memory == 0
    assert pool.admit(job, ready=False, memory=60) is None
    assert pool.admit(job, ready=False, memory=50) is Refusal.MEMORY
    assert pool.admit(job, ready=False, memory=40) is None
    assert pool.queued_memory == 100
    assert pool.admit(job, ready=False, memory=0) is None  # nothing more: still room
    release.set()
    wait_until(lambda: pool.in_flight == 0, WAIT, "the requests to run")
    assert pool.queued_memory == 0
    pool.shutdown()


def counted_as_they_run(
    pool: WorkerPool, admit: Callable[[Callable[[], None]], None]
) -> tuple[int, list[int]]:
    """The memory ``pool`` counts once ``admit`` (on the loop's thread) has handed it a round
    of ready requests, each of them ``job``, and as each of them starts to run."""
    admitted: list[int] = []
    counted_when_run: list[int] = []

    def job() -> None:
        counted_when_run.append(pool.queued_memory)

    def lead() -> bool:
        admit(job)
        admitted.append(pool.queued_memory)
        assert pool.run_ready()
        return True

    run_pool(pool, lead)
    assert pool.queued_memory == 0
    return admitted[0], counted_when_run


def test_a_request_run_on_the_loops_thread_stops_counting_when_it_starts() -> None:
    pool = WorkerPool(threads=2, max_queued=4, max_queued_memory=1000)

    def admit(job: Callable[[], None]) -> None:
        assert pool.admit(job, ready=True, memory=300) is None
        assert pool.admit(job, ready=True, memory=200) is None

    assert counted_as_they_run(pool, admit) == (500, [200, 0])


def test_the_request_the_loops_thread_runs_at_once_leaves_the_budget_to_the_others() -> None:
    """A round's first ready request, a thread free for it, is the loop's thread's at once:
    it never waits, so the one behind it is not refused for the memory it does not hold."""
    pool = WorkerPool(threads=2, max_queued=4, max_queued_memory=100)

    def admit(job: Callable[[], None]) -> None:
        assert pool.admit_all([(job, True, 80), (job, True, 80)]) == []

    assert counted_as_they_run(pool, admit) == (80, [80, 0])


def test_a_ready_requests_memory_is_asked_only_if_it_waits() -> None:
    pool = WorkerPool(threads=2, max_queued=4, max_queued_memory=100)
    ran: list[str] = []
    asked: list[str] = []

    def memory_of(job: Callable[[], Any]) -> int:
        asked.append(job.__name__)
        return 30

    def first() -> None:
        ran.append("first")

    def second() -> None:
        ran.append("second")

    def lead() -> bool:
        assert pool.admit_all([(first, True, None), (second, True, None)], memory_of) == []
        assert pool.queued_memory == 30
        assert pool.run_ready()
        return True

    run_pool(pool, lead)
    assert (ran, asked) == (["first", "second"], ["second"])


def test_a_full_pool_refuses_for_threads_before_memory() -> None:
    pool = WorkerPool(threads=1, max_queued=0, max_queued_memory=10)
    release = threading.Event()

    def job() -> None:
        release.wait(WAIT)

    assert pool.admit(job, ready=False, memory=5) is None
    assert pool.admit(lambda: None, ready=False, memory=50) is Refusal.THREADS
    release.set()
    wait_until(lambda: pool.in_flight == 0, WAIT, "the request to run")
    pool.shutdown()


def test_a_rounds_arrivals_admitted_together_are_refused_as_each_would_be_in_turn() -> None:
    """The loop hands a round's requests over at once (one round of the pool's lock): each
    is admitted or refused in order, as if handed over one by one."""
    pool = WorkerPool(threads=1, max_queued=2, max_queued_memory=100)
    release = threading.Event()

    def job() -> None:
        release.wait(WAIT)

    refused = pool.admit_all(
        [(job, False, 60), (job, False, 50), (job, False, 40), (job, False, 0), (job, True, 0)]
    )
    # 60 and 50 would wait with more than 100, 60 and 40 do not; then threads + max_queued
    # are in
    assert refused == [(1, Refusal.MEMORY), (4, Refusal.THREADS)]
    assert pool.in_flight == 3
    release.set()
    wait_until(lambda: pool.in_flight == 0, WAIT, "the requests to run")
    assert pool.queued_memory == 0
    pool.shutdown()


class QueuedMemory(RuleBasedStateMachine):
    """Requests admitted, refused, started and finished in any order, against a model: once
    the threads have taken what they can, the memory counted is the memory of the requests
    still waiting, and it is all given back in the end."""

    THREADS, QUEUED, BUDGET = 2, 4, 100

    def __init__(self) -> None:
        super().__init__()
        self.pool = WorkerPool(self.THREADS, self.QUEUED, self.BUDGET)
        #: per admitted request not finished: its memory, whether it started, its gate
        self.requests: list[tuple[int, threading.Event, threading.Event]] = []

    def settle(self) -> None:
        """Wait until the free threads have taken the requests they can."""
        expected = min(self.THREADS, len(self.requests))
        wait_until(
            lambda: sum(started.is_set() for _, started, _ in self.requests) == expected,
            WAIT,
            "the threads to take the waiting requests",
        )

    @rule(memory=st.integers(0, 150))
    def admit(self, memory: int) -> None:
        started, gate = threading.Event(), threading.Event()

        def job() -> None:
            started.set()
            gate.wait(WAIT)

        waiting = sum(m for m, started_, _ in self.requests if not started_.is_set())
        if len(self.requests) >= self.THREADS + self.QUEUED:
            expected: Refusal | None = Refusal.THREADS
        elif waiting and waiting + memory > self.BUDGET:
            expected = Refusal.MEMORY
        else:
            expected = None
        assert self.pool.admit(job, ready=False, memory=memory) is expected
        if expected is None:
            self.requests.append((memory, started, gate))
        self.settle()

    @precondition(lambda self: any(started.is_set() for _, started, _ in self.requests))
    @rule(data=st.data())
    def finish(self, data: st.DataObject) -> None:
        running = [request for request in self.requests if request[1].is_set()]
        request = data.draw(st.sampled_from(running))
        in_flight = self.pool.in_flight
        request[2].set()
        wait_until(lambda: self.pool.in_flight == in_flight - 1, WAIT, "the request to end")
        self.requests.remove(request)
        self.settle()

    @invariant()
    def counts_the_requests_waiting(self) -> None:
        waiting = sum(memory for memory, started, _ in self.requests if not started.is_set())
        assert self.pool.queued_memory == waiting

    def teardown(self) -> None:
        for _, _, gate in self.requests:
            gate.set()
        wait_until(lambda: self.pool.in_flight == 0, WAIT, "every request to end")
        assert self.pool.queued_memory == 0
        self.pool.shutdown()


TestQueuedMemory = QueuedMemory.TestCase
TestQueuedMemory.settings = settings(max_examples=30, stateful_step_count=20, deadline=None)


def test_with_the_default_settings_63_blocked_requests_leave_a_thread_for_an_instant_one(
    serve: Callable[..., RunningServer],
) -> None:
    """The slow mix nginx brings at 64 connections: with no tuning flags, an app whose
    requests wait on I/O (a database, an API) may have 63 of them waiting at once, and a quick
    request still gets a thread at once instead of queueing behind them."""
    blocked = 63
    inside = 0
    arrived = threading.Condition()
    release = threading.Event()

    def app(environ: Environ, start_response: Any) -> list[bytes]:
        nonlocal inside
        if environ["PATH_INFO"] == "/block":
            with arrived:
                inside += 1
                arrived.notify_all()
            release.wait(WAIT)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [environ["PATH_INFO"].encode()]

    running = serve(app)  # the defaults: nothing about threads
    socks = []
    try:
        for _ in range(blocked):
            sock = socket.socket(socket.AF_UNIX)
            sock.settimeout(WAIT)
            sock.connect(running.path)
            sock.sendall(one_write_request("/block"))
            socks.append(sock)
        with arrived:
            arrived.wait_for(lambda: inside == blocked, WAIT)
            assert inside == blocked, f"only {inside} of {blocked} waiting requests ran at once"
        reply = running.client(timeout=WAIT).request("GET", "/quick")
        assert (reply.status, reply.body) == (200, b"/quick")
    finally:
        release.set()
    for sock in socks:
        assert read_response(sock).endswith(b"/block")
        sock.close()


def test_the_job_admit_hands_the_pool_runs_its_request_and_tells_its_route() -> None:
    """The job of a request (what admit hands the pool) runs it when the pool runs it, and
    the back-off reads the request's route from it (SCRIPT_NAME and PATH_INFO as sent)."""
    from fcgikit.protocol import RequestReceived, Role
    from fcgikit.server.loop import admit, route_of
    from fcgikit.server.settings import ServerSettings
    from fcgikit.server.wsgi import WSGIRequest
    from tests.server.test_speedups_wsgi_codec import RecordingSink

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [environ["PATH_INFO"].encode()]

    params = {b"REQUEST_METHOD": b"GET", b"SCRIPT_NAME": b"/app", b"PATH_INFO": b"/slow"}
    event = RequestReceived(
        request_id=1, role=Role.RESPONDER, keep_conn=False, params=params,
        duplicate_names=frozenset(),
    )  # fmt: skip
    sink = RecordingSink()
    request = WSGIRequest(sink, event, app, ServerSettings())
    jobs: list[Callable[[], Any]] = []

    class Pool:
        def admit(self, job: Callable[[], Any], *, ready: bool, memory: int = 0) -> None:
            jobs.append(job)

    admit([(sink, request)], Pool())  # type: ignore[list-item, arg-type]
    [job] = jobs
    assert route_of(job) == (b"/app", b"/slow")
    pool_module._run(job)  # as a pool's thread runs it
    assert [body for _, body, _ in sink.finished] == [b"/slow"]
