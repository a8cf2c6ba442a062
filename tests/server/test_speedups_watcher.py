"""The watcher's two LoopWatches: the C one (fcgikit/server/_speedups_watcher.c), which looks
without the GIL, and its Python twin and spec, watcher.PythonLoopWatch.

The pool uses whichever :func:`~fcgikit.server.watcher.new_loop_watch` gives, through the one
:class:`~fcgikit.server.watcher.LoopWatch` interface; every test of the behaviour here runs
on both (tests/native.py loads the C one in the pure-Python pass too).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest

from fcgikit.server import pool, watcher
from fcgikit.server.watcher import PythonLoopWatch
from tests.native import PURE_PYTHON_PASS, assert_calls_leave_nothing_behind, load_lane
from tests.server.test_hostile import wait_until

WAIT = 10.0
#: a wait() that should end long before this ends by its own timeout instead, and fails
NEVER = 60.0


@pytest.fixture(scope="module")
def lane() -> ModuleType:
    return load_lane("fcgikit.server._speedups_watcher")


@pytest.fixture(params=["C", "Python"])
def watch_type(request: pytest.FixtureRequest) -> Callable[[], Any]:
    """The C LoopWatch or its Python twin (which runs where no lane was built, too)."""
    if request.param == "C":
        return request.getfixturevalue("lane").LoopWatch  # type: ignore[no-any-return]
    return PythonLoopWatch


def test_the_lane_is_on_exactly_when_the_pass_says(lane: ModuleType) -> None:
    loop_watch = pool.WorkerPool(1, 0).loop_watch
    if PURE_PYTHON_PASS:
        with pytest.raises(ImportError):
            import fcgikit.server._speedups_watcher  # noqa: F401
        assert watcher.C_LOOP_WATCH is None
        assert type(loop_watch) is PythonLoopWatch
        return
    assert watcher.C_LOOP_WATCH is lane.LoopWatch
    assert type(loop_watch) is lane.LoopWatch


def script(watch: Any) -> list[object]:
    """One run through every answer a LoopWatch gives, as the pool and the watcher ask."""
    answers: list[object] = []
    answers.append(watch.began())
    watch.ended()
    answers.append(watch.began())
    # still running a whole tick later: reported by its number, not after the timeout
    answers.append(watch.wait(0.005, 50, NEVER))
    watch.ended()
    # over before the watcher looks: nothing to report; the wait ends at its timeout
    answers.append(watch.wait(0.005, 50, 0.05))
    # a wake with no wait running ends the next wait at once
    watch.wake()
    answers.append(watch.wait(0.005, 50, NEVER))
    # parked after one quiet look; the timeout ends it
    answers.append(watch.wait(0.005, 1, 0.05))
    answers.append(watch.parked)
    return answers


def test_the_python_watch_answers_as_the_c_one(lane: ModuleType) -> None:
    assert script(PythonLoopWatch()) == script(lane.LoopWatch()) == [1, 2, 2, 0, 0, 0, False]


def watch_in_thread(watch: Any, *args: Any) -> tuple[threading.Thread, list[object]]:
    outcome: list[object] = []

    def run() -> None:
        try:
            outcome.append(watch.wait(*args))
        except BaseException as exc:  # reported by the test
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def test_loop_watches_come_and_go_without_a_trace(watch_type: Callable[[], Any]) -> None:
    """Each holds a pipe (the C one) and a reference to its type."""

    def make_some() -> None:
        for _ in range(1000):
            watch_type().began()

    make_some()  # the interpreter's caches settle
    references = sys.getrefcount(watch_type)
    descriptors = len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else None
    make_some()
    assert sys.getrefcount(watch_type) == references
    if descriptors is not None:
        assert len(os.listdir("/proc/self/fd")) == descriptors


def test_loop_watch_reports_a_request_that_overstays(watch_type: Callable[[], Any]) -> None:
    watch = watch_type()
    assert watch.began() == 1
    watch.ended()
    assert watch.began() == 2  # each request its own number: the pool checks it to rescue
    # Still running a whole tick later: reported by its number, not after the timeout.
    assert watch.wait(0.005, 50, NEVER) == 2
    watch.ended()
    # Over before the watcher looks: nothing to report; the wait ends at its timeout.
    assert watch.wait(0.005, 50, 0.05) == 0


def test_loop_watch_names_the_thread_that_began_the_request(
    watch_type: Callable[[], Any],
) -> None:
    """The watcher asks the kernel about that thread before it rescues its request."""
    watch = watch_type()
    assert watch.thread == 0
    thread, _ = watch_in_thread(watch, 0.005, 50, 0.0)  # any other thread
    thread.join(WAIT)
    began_elsewhere: list[int] = []
    other = threading.Thread(target=lambda: began_elsewhere.append(watch.began()))
    other.start()
    other.join(WAIT)
    assert began_elsewhere == [1] and watch.thread == other.ident
    watch.began()
    assert watch.thread == threading.get_ident()


def test_loop_watch_parks_and_wakes_for_the_next_request(watch_type: Callable[[], Any]) -> None:
    watch = watch_type()
    thread, outcome = watch_in_thread(watch, 0.005, 1, NEVER)
    wait_until(lambda: watch.parked, what="the watcher parked")
    number = watch.began()  # the loop's thread starts a request that then takes its time
    thread.join(WAIT)
    assert not thread.is_alive(), "began() did not wake the parked watcher"
    assert outcome == [number]
    assert not watch.parked


def test_an_idle_watcher_parks_though_each_wait_returns_before_it_would(
    watch_type: Callable[[], Any],
) -> None:
    """The watcher's waits return every WATCH_RETURN, fewer ticks than PARK_AFTER_TICKS: an
    idle server's watcher must still park (not wake every tick for ever), so the looks that
    saw nothing run count across waits."""
    watch = watch_type()
    stop = threading.Event()

    def watch_like_the_watcher() -> None:
        while not stop.is_set():
            watch.wait(0.001, 10, 0.003)  # a few looks a wait, never ten

    thread = threading.Thread(target=watch_like_the_watcher, daemon=True)
    thread.start()
    try:
        wait_until(lambda: watch.parked, what="the watcher parked")
        number = watch.began()  # and a request that then overstays is still reported
        outcome: list[int] = []
        stop.set()
        thread.join(WAIT)
        assert not thread.is_alive()
        while not outcome or outcome[-1] == 0:
            outcome.append(watch.wait(0.001, 10, 0.003))
        assert outcome[-1] == number
    finally:
        stop.set()
        thread.join(WAIT)


def test_loop_watch_wake_ends_a_wait(watch_type: Callable[[], Any]) -> None:
    watch = watch_type()
    thread, outcome = watch_in_thread(watch, 0.005, 1, NEVER)
    wait_until(lambda: watch.parked, what="the watcher parked")
    watch.wake()  # the loop is over
    thread.join(WAIT)
    assert not thread.is_alive(), "wake() did not end the wait"
    assert outcome == [0]


def test_loop_watch_wake_ends_a_wait_that_ticks(watch_type: Callable[[], Any]) -> None:
    watch = watch_type()
    thread, outcome = watch_in_thread(watch, 0.005, 10**6, NEVER)  # never parks
    watch.wake()
    thread.join(WAIT)
    assert not thread.is_alive(), "wake() did not end the wait"
    assert outcome == [0]


class Interrupted(Exception):
    pass


def test_loop_watch_runs_signal_handlers_while_it_waits(watch_type: Callable[[], Any]) -> None:
    """The watcher is the main thread, the one that runs Python's signal handlers: SIGTERM
    must stop the server while it waits, parked or not."""
    watch = watch_type()
    handled: list[int] = []

    def handler(signum: int, frame: object) -> None:
        handled.append(signum)
        if len(handled) == 2:
            raise Interrupted

    previous = signal.signal(signal.SIGALRM, handler)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.05)
        assert watch.wait(0.005, 1, 0.5) == 0  # the handler ran, and the wait ended
        assert handled == [signal.SIGALRM]
        signal.setitimer(signal.ITIMER_REAL, 0.05)
        with pytest.raises(Interrupted):  # a handler's exception comes out of wait()
            watch.wait(0.005, 1, NEVER)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@pytest.mark.parametrize(
    ("args", "error"),
    [
        ((0.0, 1, 1.0), ValueError),
        ((0.005, 0, 1.0), ValueError),
        ((0.005, 1, -1.0), ValueError),
        (("soon", 1, 1.0), TypeError),
        ((0.005, 1), TypeError),
    ],
)
def test_loop_watch_wait_checks_its_arguments(
    watch_type: Callable[[], Any], args: tuple[Any, ...], error: type[Exception]
) -> None:
    with pytest.raises(error):
        watch_type().wait(*args)


def test_calls_leave_no_reference_and_no_memory_behind(lane: ModuleType) -> None:
    watch = lane.LoopWatch()
    assert_calls_leave_nothing_behind(
        [
            (lane.LoopWatch, ()),  # and its pipe's two descriptors
            (watch.began, ()),
            (watch.ended, ()),
            (watch.wait, (0.005, 1, 0.0)),
            (watch.wait, ("soon", 1, 1.0)),
        ]
    )
