"""The steps the master takes each round, seen in a real pool: a dynamic pool's growing and
shrinking, and ``--timeout``. The pool is started as in tests/server/test_arbiter.py."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from tests.server import test_arbiter
from tests.server.test_arbiter import POOL_TIMEOUT, Pool, Reply

start_pool = test_arbiter.start_pool  # the fixture, where pytest looks for it


def test_timeout_kills_the_worker_of_a_stuck_request_after_its_neighbours(
    start_pool: Callable[..., Pool], tmp_path: Path
) -> None:
    # The neighbour must arrive before the stuck request's --timeout and finish before its
    # own: arriving at half the timeout leaves each side half of it (less the master's check
    # interval, a quarter), room a loaded machine's delays fit in.
    pool = start_pool(
        *("--workers", "1", "--threads", "2", "--timeout", "6", "--slow-log", "3"), ready=1
    )
    stuck: list[Reply] = []
    thread = threading.Thread(target=lambda: stuck.append(pool.get("/sleep", "30")))
    thread.start()
    victim = int(pool.wait_for(r"sleeping in (\d+): 30").group(1))
    pool.wait_for("slow request #1 GET /sleep")  # it has run for half its timeout
    release = tmp_path / "release"
    neighbour: list[Reply] = []
    other = threading.Thread(target=lambda: neighbour.append(pool.get("/hold", str(release))))
    other.start()
    pool.wait_for("holding in")
    line = pool.wait_for(
        r"request #1 GET /sleep\?30 on worker (\d+) exceeded --timeout 6s; killing"
    )
    assert int(line.group(1)) == victim
    pool.wait_for(rf"worker {victim} finishes its 1 other request\(s\) first")
    release.touch()
    other.join(POOL_TIMEOUT)
    thread.join(POOL_TIMEOUT)
    assert neighbour[0].status == 200  # only the stuck request fails
    assert stuck[0].status is None  # the web server sees the connection end: a 502
    pool.wait_for(rf"worker {victim} killed \(--timeout\); starting a replacement")
    pool.wait_count(r"worker \d+ ready", 2)
    assert pool.get("/").status == 200
    assert pool.count("exceeded --timeout") == 1
    assert pool.stop() == 0


def test_dynamic_pool_grows_when_busy_and_shrinks_when_idle(
    start_pool: Callable[..., Pool],
) -> None:
    pool = start_pool("--workers", "1:3", "--threads", "1", "--idle-timeout", "0.5", ready=1)
    assert pool.status()["pool_mode"] == "dynamic"
    threads = [threading.Thread(target=pool.get, args=("/sleep", "1")) for _ in range(2)]
    for thread in threads:
        thread.start()
    pool.wait_for("all 1 workers busy; starting another")
    pool.wait_count(r"worker \d+ ready", 2)
    for thread in threads:
        thread.join(POOL_TIMEOUT)
    pool.wait_for(r"exited \(idle for 0.5s\)")
    assert pool.wait_status(lambda s: s["total_workers"] == 1)["target_workers"] == 1
    assert pool.stop() == 0
