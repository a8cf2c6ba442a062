"""The prefork master's workers: why one died, and what the keeper does about it (replace
it at once, back off a crash loop, give up when no worker can load the app), without
processes: nothing is bound or forked here (tests/server/test_arbiter.py runs real pools)."""

from __future__ import annotations

import logging
import time
from types import SimpleNamespace

import pytest

from fcgikit.server import keeper
from fcgikit.server.children import Death, WorkerProcess, death_of, describe_exit
from fcgikit.server.keeper import MAX_BACKOFF, PoolKeeper
from fcgikit.server.pool_view import SlotView, WorkerState
from fcgikit.server.scoreboard import Scoreboard
from fcgikit.server.settings import PoolSettings, ServerSettings


def slot_left(state: WorkerState, running: tuple[str, ...] = (), served: int = 0) -> SlotView:
    """A worker's slot as it left it: its state, the requests it was running, and how many
    it had finished before."""
    board = Scoreboard(slots=1, threads=2)
    board.reset(0, generation=1)
    slot = board.slot(0)
    slot.set_state(state)
    for number in range(served):
        slot.begin(0, f"#{number} GET /done", number + 1)
        slot.end(0)
    for cell, label in enumerate(running):
        slot.begin(cell, label, (served if cell == 0 else 0) + 1)
    return board.read(0)


def gone(*, ready: bool = False, age: float = 0.1) -> WorkerProcess:
    """The master's record of a worker started ``age`` seconds ago."""
    return WorkerProcess(4242, 0, 1, time.monotonic() - age, ready=ready)


@pytest.mark.parametrize(
    ("view", "seen_ready", "death"),
    [
        pytest.param(slot_left(WorkerState.BOOTING), False, Death.BEFORE_READY, id="importing"),
        pytest.param(slot_left(WorkerState.FAILED), False, Death.FAILED_TO_START, id="no-app"),
        pytest.param(
            slot_left(WorkerState.READY, ("#5 GET /crash",)),
            True,
            Death.WHILE_SERVING,
            id="serving",
        ),
        pytest.param(
            slot_left(WorkerState.BOOTING, ("#1 GET /crash",)),
            False,
            Death.WHILE_SERVING,
            id="first-request-before-marked-ready",
        ),
        pytest.param(
            slot_left(WorkerState.STOPPING, ("#9 GET /slow",), served=3),
            True,
            Death.WHILE_SERVING,
            id="finishing-before-a-stop",
        ),
        pytest.param(slot_left(WorkerState.READY), True, Death.WHILE_IDLE, id="idle"),
        pytest.param(
            slot_left(WorkerState.READY), False, Death.WHILE_IDLE, id="idle-master-not-told-yet"
        ),
        pytest.param(
            slot_left(WorkerState.BOOTING, served=2),
            False,
            Death.WHILE_IDLE,
            id="served-before-marked-ready",
        ),
    ],
)
def test_why_a_worker_died_comes_from_its_slot(
    view: SlotView, seen_ready: bool, death: Death
) -> None:
    assert death_of(gone(ready=seen_ready), view) is death


@pytest.mark.parametrize(
    ("code", "text"),
    [
        (-11, "killed by SIGSEGV"),
        (3, "exited with status 3"),
        (0, "exited with status 0"),
        (-40, "killed by signal 40"),  # a real-time signal has no name of its own
    ],
)
def test_describe_exit(code: int, text: str) -> None:
    assert describe_exit(code) == text


class Told:
    """What a keeper told its master: READY lines for systemd, and that the app is hopeless."""

    def __init__(self) -> None:
        self.ready: list[str | None] = []
        self.hopeless = 0

    def fork(self, slot: int, max_requests: int) -> int:
        raise AssertionError("these tests start no worker")

    def say_ready(self, why: str | None) -> None:
        self.ready.append(why)

    def give_up(self) -> None:
        self.hopeless += 1


@pytest.fixture
def told() -> Told:
    return Told()


@pytest.fixture
def master(caplog: pytest.LogCaptureFixture, told: Told) -> PoolKeeper:
    """A master's decisions, without its processes: nothing is bound or forked."""
    caplog.set_level(logging.INFO, logger="fcgikit.arbiter")
    pool = PoolSettings(workers_min=2, workers_max=2)
    return PoolKeeper(
        ServerSettings(), pool, fork=told.fork, say_ready=told.say_ready, hopeless=told.give_up
    )


@pytest.mark.parametrize(
    ("code", "how"),
    [(-11, "killed by SIGSEGV"), (3, "exited with status 3"), (-9, "killed by SIGKILL")],
)
def test_a_worker_a_request_kills_is_replaced_at_once_every_time(
    master: PoolKeeper, told: Told, caplog: pytest.LogCaptureFixture, code: int, how: str
) -> None:
    """The crash-loop back-off is for workers that cannot start; a request that kills its
    worker (even with exit status 3, the one a worker that cannot load the app exits with)
    must not delay the next worker, however often it comes."""
    for _ in range(20):
        master.exited(gone(ready=True), code, slot_left(WorkerState.READY, ("#5 GET /crash",)))
    assert (master.crash_streak, master.spawn_after, told.hopeless) == (0, 0.0, 0)
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [f"worker 4242 {how} while serving #5 GET /crash; starting a replacement"] * 20


def test_workers_that_fail_before_they_are_ready_back_off(
    master: PoolKeeper,
    told: Told,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The keeper's clock stands still: read against a running one, a delay of 0.5 s read
    # 0.4 whenever a loaded machine took 50 ms between the crash and the reading.
    now = time.monotonic()
    monkeypatch.setattr(keeper, "time", SimpleNamespace(monotonic=lambda: now))
    master.ever_ready = True  # the app loaded once: only a reload with broken code fails
    delays = []
    for _ in range(8):
        master.exited(gone(), 9, slot_left(WorkerState.BOOTING))
        delays.append(master.spawn_after - now if master.spawn_after else 0)
    assert delays == [0, 0.5, 1.0, 2.0, 4.0, 8.0, MAX_BACKOFF, MAX_BACKOFF]
    assert "worker 4242 failed to start: exited with status 9 before it was ready" in caplog.text
    assert "(2 in a row); backing off: next start in 0.5s" in caplog.text
    assert told.hopeless == 0
    # A request killing a worker meanwhile changes nothing of it.
    master.exited(gone(ready=True), -11, slot_left(WorkerState.READY, ("#7 GET /crash",)))
    assert master.crash_streak == 8


def test_an_app_that_no_worker_can_load_gives_up(
    master: PoolKeeper, told: Told, caplog: pytest.LogCaptureFixture
) -> None:
    master.exited(gone(), 3, slot_left(WorkerState.FAILED))
    assert told.hopeless == 1
    assert "worker 4242 failed to start and no worker ever could; stopping" in caplog.text


def test_an_app_that_fails_to_load_after_a_reload_leaves_the_pool_serving(
    master: PoolKeeper, told: Told, caplog: pytest.LogCaptureFixture
) -> None:
    master.exited(gone(ready=True), -11, slot_left(WorkerState.READY, ("#1 GET /crash",)))
    master.exited(gone(), 3, slot_left(WorkerState.FAILED))  # a worker loaded it once
    assert told.hopeless == 0 and master.crash_streak == 1
    assert "worker 4242 failed to start (see above); the workers already running" in caplog.text


def test_idle_workers_dying_soon_after_their_start_back_off(
    master: PoolKeeper, caplog: pytest.LogCaptureFixture
) -> None:
    """No request to blame (a thread of the app kills its process, say): as a crash loop."""
    for _ in range(2):
        master.exited(gone(ready=True), -6, slot_left(WorkerState.READY))
    assert master.crash_streak == 2 and master.spawn_after > 0
    assert "worker 4242 killed by SIGABRT while idle; starting a replacement" in caplog.text
    master.exited(gone(ready=True, age=60), -6, slot_left(WorkerState.READY))
    assert master.crash_streak == 0  # it lived: the loop is over
