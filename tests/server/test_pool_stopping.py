"""How the prefork master stops its pool: a drain first when asked, then the workers' TERM, or
their QUIT at once, and their KILL once the deadline is past. The workers here are real
processes that say which signal they got; nothing is forked or bound by a master
(tests/server/test_arbiter.py runs whole pools)."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from fcgikit.server.children import WorkerProcess
from fcgikit.server.keeper import KILL_MARGIN, PoolKeeper
from fcgikit.server.pool_stopping import FAST_STOP, KILLED_POLL, PoolStopping
from fcgikit.server.settings import PoolSettings, ServerSettings

#: a worker that says "ready", then the name of each of TERM and QUIT it gets, and lives on
#: (unless told to end at TERM): what the master does to it is what it prints
WORKER = """
import signal, sys

def note(signum, frame):
    print(signal.Signals(signum).name, flush=True)
    if signum == signal.SIGTERM and sys.argv[1] == "ends-at-term":
        sys.exit(0)

signal.signal(signal.SIGTERM, note)
signal.signal(signal.SIGQUIT, note)
print("ready", flush=True)
while True:
    signal.pause()
"""


class Worker:
    """A worker process in the keeper's record, and what it printed."""

    def __init__(self, keeper: PoolKeeper, behaviour: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", WORKER, behaviour], stdout=subprocess.PIPE, text=True
        )
        assert self.next_line() == "ready"
        keeper.workers[self.process.pid] = WorkerProcess(
            self.process.pid, 0, 1, time.monotonic(), ready=True
        )

    def next_line(self) -> str:
        assert self.process.stdout is not None
        return self.process.stdout.readline().strip()


class Pool:
    """A master's keeper with its scoreboard, and the workers it records."""

    def __init__(self) -> None:
        def no_fork(slot: int, max_requests: int) -> int:
            raise AssertionError("no worker starts while the pool stops")

        self.keeper = PoolKeeper(
            ServerSettings(),
            PoolSettings(workers_min=1, workers_max=1),
            fork=no_fork,
            say_ready=lambda why: None,
            hopeless=lambda: None,
        )
        self.keeper.open_board()
        self.workers: list[Worker] = []

    def worker(self, behaviour: str = "lives-on") -> Worker:
        self.workers.append(Worker(self.keeper, behaviour))
        return self.workers[-1]

    def close(self) -> None:
        self.keeper.close()  # kills and reaps what still runs
        for worker in self.workers:
            worker.process.wait(timeout=30)
            assert worker.process.stdout is not None
            worker.process.stdout.close()


@pytest.fixture
def pool() -> Iterator[Pool]:
    pool = Pool()
    yield pool
    pool.close()


def stopping_of(pool: Pool, **settings: float) -> PoolStopping:
    return PoolStopping(pool.keeper, ServerSettings(**settings), notifier=None)


def test_sigterm_stops_each_worker_gracefully_and_marks_the_pool_draining(pool: Pool) -> None:
    worker = pool.worker()
    stopping = stopping_of(pool, graceful_timeout=30)
    before = time.monotonic()
    stopping.terminate()
    assert worker.next_line() == "SIGTERM"
    assert stopping.exit_code == 0
    assert pool.keeper.stopping  # nobody is replaced from now on
    assert pool.keeper.board is not None
    assert pool.keeper.board.draining()  # every ping path answers 503
    assert stopping.deadline >= before + 30 + KILL_MARGIN


def test_sigterm_with_a_shutdown_delay_drains_first_and_a_second_one_stops(pool: Pool) -> None:
    worker = pool.worker()
    stopping = stopping_of(pool, shutdown_delay=600)
    stopping.terminate()
    assert stopping.draining and not stopping.begun
    assert pool.keeper.board is not None and pool.keeper.board.draining()
    assert pool.keeper.workers[worker.process.pid].stop_sent is None  # it serves on meanwhile
    assert stopping.drain_until is not None
    assert not stopping.drain_over(stopping.drain_until - 1)
    assert stopping.drain_over(stopping.drain_until)
    stopping.terminate()  # the operator's second SIGTERM ends the wait
    assert worker.next_line() == "SIGTERM"
    assert stopping.exit_code == 0


def test_a_fast_stop_cuts_a_graceful_one_short_and_keeps_its_exit_status(pool: Pool) -> None:
    worker = pool.worker()
    stopping = stopping_of(pool, graceful_timeout=600)
    stopping.begin("SIGTERM", graceful=True)
    assert worker.next_line() == "SIGTERM"
    before = time.monotonic()
    stopping.begin("cannot load", graceful=False, code=3)
    assert worker.next_line() == "SIGQUIT"
    assert stopping.exit_code == 0
    assert stopping.deadline <= time.monotonic() + FAST_STOP < before + 600


def test_a_graceful_stop_after_a_fast_one_changes_nothing(pool: Pool) -> None:
    pool.worker()
    stopping = stopping_of(pool, graceful_timeout=600)
    stopping.begin("SIGQUIT", graceful=False, code=3)
    deadline = stopping.deadline
    stopping.begin("SIGTERM", graceful=True)
    assert (stopping.exit_code, stopping.deadline) == (3, deadline)


def test_workers_still_running_past_the_deadline_are_killed_once(pool: Pool) -> None:
    worker = pool.worker()
    stopping = stopping_of(pool, graceful_timeout=600)
    stopping.begin("SIGTERM", graceful=True)
    assert worker.next_line() == "SIGTERM"  # and it lives on
    assert stopping.wait_for_workers(stopping.deadline - 5) == pytest.approx(5)
    assert worker.process.poll() is None
    assert stopping.wait_for_workers(stopping.deadline) == KILLED_POLL
    assert worker.process.wait(timeout=30) == -9
    assert pool.keeper.workers[worker.process.pid].killed == "stop deadline"


def test_a_worker_that_ends_at_its_term_is_not_killed(pool: Pool) -> None:
    worker = pool.worker("ends-at-term")
    stopping = stopping_of(pool, graceful_timeout=600)
    stopping.begin("SIGTERM", graceful=True)
    assert worker.process.wait(timeout=30) == 0
    assert not stopping.killed_all
