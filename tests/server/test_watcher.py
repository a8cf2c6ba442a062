"""The watcher runs signal handlers on the main thread, whichever thread the signal hit."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from fcgikit.client import FastCGIClient
from fcgikit.server import watcher
from fcgikit.server.watcher import HeldLoop, PythonLoopWatch, read_thread
from tests.native import load_lane
from tests.processes import ROOT, Backend, fcgikit_command

#: long enough for any wait that should end at once
WAIT = 10.0
ENV = {"PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'tests'}"}


def test_a_sigterm_that_hits_a_request_thread_still_stops_the_server(tmp_path: Path) -> None:
    # The kernel gives a process-directed signal to any thread that does not block it, and
    # Python runs the handler only on the main thread, the watcher's: if the watcher never
    # let it run, the server would serve on and a supervisor's stop would hang.
    sock = tmp_path / "app.sock"
    backend = Backend(
        fcgikit_command("serve", "apps.hello:signals_its_own_thread", "--bind", f"unix:{sock}"),
        env=ENV,
    )
    try:
        backend.wait_for("listening on")
        response = FastCGIClient(f"unix:{sock}").request("GET", "/")
        # the request that was running when the signal came is answered, on a pool thread
        assert response.status == 200
        assert response.body.startswith(b"signalled from fcgikit-thread-")
        backend.wait_for("SIGTERM; finishing running requests")
        code = backend.proc.wait(30)
    finally:
        backend.kill()
    assert code == 0
    assert not sock.exists()


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_quick_request_kept_off_the_cpu_keeps_the_loop_role() -> None:
    """On a machine whose CPUs are all busy the loop's thread is now and then kept off a CPU
    for a tick in the middle of a quick request. Rescuing it helps no one (the next loop
    thread waits for the same CPUs) and sends the requests behind it to the queue, each
    through two thread switches: the watcher lets it be while its thread waits for a CPU."""
    loop_watch, clock = PythonLoopWatch(), Clock()
    waited = {"seconds": 1.0}
    held = HeldLoop(loop_watch, lambda ident: ("R", waited["seconds"]), clock)
    seq = loop_watch.began()
    for _ in range(20):  # tick after tick, the thread runnable, never on a CPU
        assert not held.through(seq)
        clock.now += watcher.TICK
        waited["seconds"] += watcher.TICK
    # a tick on a CPU: it holds the loop now, and loses it
    clock.now += watcher.TICK
    assert held.through(seq)


def test_a_request_that_computes_on_its_cpu_loses_the_loop_role_a_tick_later() -> None:
    """A slow request busy on a CPU does not wait for one: it is rescued at the next look;
    the next request is judged afresh."""
    loop_watch, clock = PythonLoopWatch(), Clock()
    held = HeldLoop(loop_watch, lambda ident: ("R", 0.25), clock)
    first = loop_watch.began()
    assert not held.through(first)
    clock.now += watcher.TICK
    assert held.through(first)
    second = loop_watch.began()
    assert not held.through(second)
    clock.now += watcher.TICK
    assert held.through(second)


def test_a_request_whose_thread_sleeps_loses_the_loop_role_at_the_first_look() -> None:
    """A request waiting for something of its own (a query, a sleep, a lock) cannot be kept
    off a CPU: it is rescued as soon as it is seen overstaying, as before, so the requests
    behind it wait no longer than they did."""
    loop_watch, clock = PythonLoopWatch(), Clock()
    for state in ("S", "D"):
        held = HeldLoop(loop_watch, lambda ident, state=state: (state, 0.25), clock)
        assert held.through(loop_watch.began())


def test_where_the_kernel_does_not_say_a_request_that_overstays_is_rescued_at_once() -> None:
    loop_watch = PythonLoopWatch()
    seq = loop_watch.began()
    assert HeldLoop(loop_watch, lambda ident: None).through(seq)
    # a thread that threading does not know: nothing to ask about
    assert read_thread(0) is None


def test_the_kernel_counts_a_threads_wait_for_a_cpu() -> None:
    if not os.path.exists(f"/proc/self/task/{threading.get_native_id()}/schedstat"):
        return  # not Linux: the watcher rescues by the clock alone
    first = read_thread(threading.get_ident())
    assert first is not None and first[0] == "R" and first[1] >= 0.0  # this thread runs
    time.sleep(0)
    later = read_thread(threading.get_ident())
    assert later is not None and later[1] >= first[1]


def test_the_kernel_says_a_thread_waiting_on_a_lock_sleeps() -> None:
    if not os.path.exists(f"/proc/self/task/{threading.get_native_id()}/stat"):
        return  # not Linux: the watcher rescues by the clock alone
    release = threading.Event()
    waiting = threading.Thread(target=release.wait)
    waiting.start()
    try:
        assert waiting.ident is not None
        reading = read_thread(waiting.ident)
        # it may not have reached the wait yet: then it runs; once there, it sleeps
        while reading is not None and reading[0] == "R":
            reading = read_thread(waiting.ident)
        assert reading is not None and reading[0] == "S"
    finally:
        release.set()
        waiting.join()


def loop_watch_of(lane: str) -> Any:
    """The C LoopWatch (loaded in the pure-Python pass too) or its Python twin."""
    if lane == "C":
        return load_lane("fcgikit.server._speedups_watcher").LoopWatch()
    return PythonLoopWatch()


def spinning_request(loop_watch: Any) -> tuple[threading.Thread, threading.Event]:
    """A thread that begins a request on ``loop_watch`` and runs Python until told to stop:
    a request busy on its CPU, holding the GIL but when asked for it."""
    began, stop = threading.Event(), threading.Event()

    def spin() -> None:
        loop_watch.began()
        began.set()
        while not stop.is_set():
            pass
        loop_watch.ended()

    thread = threading.Thread(target=spin)
    thread.start()
    began.wait()
    return thread, stop


@pytest.mark.parametrize("lane", ["C", "Python"])
def test_a_request_busy_in_python_is_read_as_running_though_the_watcher_took_the_gil(
    lane: str,
) -> None:
    """The watcher reads the loop thread's state with the GIL, which the busy loop thread
    gave up for it and now waits for: were that wait read as sleeping, every request busy on
    a CPU would be rescued at the first look, the ones kept off a CPU too. The reading's own
    file reads release the GIL, which wakes the loop thread before the kernel writes its
    state: it reads as running, and keeps the loop role until it has held it half a tick
    more."""
    if not os.path.exists(f"/proc/self/task/{threading.get_native_id()}/stat"):
        return  # not Linux: the watcher rescues by the clock alone
    loop_watch = loop_watch_of(lane)
    thread, stop = spinning_request(loop_watch)
    try:
        for _ in range(20):
            # as watch() asks: the first look that sees the request overstay
            overstayed = loop_watch.wait(watcher.TICK, watcher.PARK_AFTER_TICKS, WAIT)
            assert overstayed == 1
            assert not HeldLoop(loop_watch).through(overstayed)
    finally:
        stop.set()
        thread.join(WAIT)


@pytest.mark.parametrize("lane", ["C", "Python"])
def test_a_request_that_sleeps_in_the_app_is_rescued_at_the_first_look(lane: str) -> None:
    """The same reading of a request waiting for something of its own (here a lock, as a
    query or a sleep would) says it sleeps: rescued at once."""
    if not os.path.exists(f"/proc/self/task/{threading.get_native_id()}/stat"):
        return  # not Linux: the watcher rescues by the clock alone
    loop_watch = loop_watch_of(lane)
    release, began = threading.Event(), threading.Event()

    def sleep_in_app() -> None:
        loop_watch.began()
        began.set()
        release.wait()
        loop_watch.ended()

    thread = threading.Thread(target=sleep_in_app)
    thread.start()
    began.wait()
    try:
        states: list[str] = []

        def read(ident: int) -> watcher.ThreadReading | None:
            reading = read_thread(ident)
            states.append("?" if reading is None else reading[0])
            return reading

        held = HeldLoop(loop_watch, read)
        overstayed = loop_watch.wait(watcher.TICK, watcher.PARK_AFTER_TICKS, WAIT)
        # it may be seen before it reached its wait (runnable then); once there, it sleeps
        while not held.through(overstayed):
            overstayed = loop_watch.wait(watcher.TICK, watcher.PARK_AFTER_TICKS, WAIT)
        assert overstayed == 1
        # rescued at the first look that found it asleep
        assert states[-1] == "S" and "S" not in states[:-1]
    finally:
        release.set()
        thread.join(WAIT)
