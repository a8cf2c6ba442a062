"""A prefork worker's side of a request: what ``sys.exit()`` in the app means in a worker.

The request is answered 500 by the server like any error; the worker then retires the way a
worker that reached ``--max-requests`` does: the master starts its replacement and stops it
gracefully, so no request is lost on the way. In-process through
:class:`~fcgikit.server.worker.RequestTracker` as the server calls it, and as real processes.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from fcgikit.server.scoreboard import Scoreboard, WorkerState
from fcgikit.server.worker import RequestTracker
from tests.server.test_arbiter import Load, Pool, close
from tests.server.test_tracker import serve

Environ = dict[str, Any]


class ExitOnClose:
    def __iter__(self) -> Iterator[bytes]:
        yield b"body"

    def close(self) -> None:
        sys.exit(0)


def exit_in_call(environ: Environ, start_response: Any) -> list[bytes]:
    sys.exit(3)


def interrupt_in_call(environ: Environ, start_response: Any) -> list[bytes]:
    raise KeyboardInterrupt


def exit_in_body(environ: Environ, start_response: Any) -> Iterator[bytes]:
    start_response("200 OK", [])
    yield b"first"
    sys.exit("from the body")


def exit_in_close(environ: Environ, start_response: Any) -> Iterable[bytes]:
    start_response("200 OK", [])
    return ExitOnClose()


@pytest.mark.parametrize(
    "app",
    [exit_in_call, interrupt_in_call, exit_in_body, exit_in_close],
    ids=["sys.exit() in the call", "KeyboardInterrupt", "from the body", "from close()"],
)
def test_a_process_exit_from_the_app_retires_the_worker_once(
    app: Callable[..., Iterable[bytes]],
) -> None:
    board = Scoreboard(slots=1, threads=2)
    board.reset(0, generation=1)
    slot = board.slot(0)
    slot.set_state(WorkerState.READY)
    pokes: list[str] = []
    tracker = RequestTracker(slot, 2, notify=lambda: pokes.append("!"))
    for _ in range(2):
        serve(tracker, app)  # answered like any error, and the worker goes on meanwhile
    view = board.read(0)
    assert (view.busy, view.requests, view.state) == (0, 2, WorkerState.RETIRING)
    assert pokes == ["!"]  # the master is told once


def test_other_exceptions_leave_the_worker_serving() -> None:
    board = Scoreboard(slots=1, threads=1)
    board.reset(0, generation=1)
    slot = board.slot(0)
    slot.set_state(WorkerState.READY)

    def broken(environ: Environ, start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [])
        yield b"x"
        raise GeneratorExit

    tracker = RequestTracker(
        slot, 1, notify=lambda: pytest.fail("told the master"), report_saturation=False
    )
    serve(tracker, broken)
    assert board.read(0).state == WorkerState.READY and not tracker.retiring


APP_SOURCE = """
import os, sys

def app(environ, start_response):
    if environ["PATH_INFO"] == "/exit":
        sys.exit(3)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(os.getpid()).encode()]
"""


@pytest.fixture
def exiting_pool(tmp_path: Path) -> Iterator[Pool]:
    (tmp_path / "prefork_app.py").write_text(APP_SOURCE)
    pool = Pool(tmp_path, "--workers", "1", "--threads", "2")
    try:
        pool.wait_for(r"worker \d+ ready", 20)
        yield pool
    finally:
        close(pool)


def test_sys_exit_in_a_worker_answers_500_and_the_worker_is_replaced_without_a_failure(
    exiting_pool: Pool,
) -> None:
    pool = exiting_pool
    first = int(pool.get("/").body)
    with Load(pool.address, clients=2) as load:
        load.wait_for_count(10)
        assert pool.get("/exit").status == 500
        pool.wait_for(rf"worker {first} was asked to exit by the app \(SystemExit\)")
        pool.wait_for(rf"worker {first} exited", 20)
        seen = len(load.replies)
        load.wait_for_count(seen + 10)
    assert load.failures() == [], load.failures()[:3]
    assert int(pool.get("/").body) != first
    assert pool.stop() == 0
