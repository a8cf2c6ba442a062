"""The status page's metrics, in this process: the counters in shared memory, the pool's
totals across dead workers, why a worker was replaced, and the OpenMetrics text, read back
with prometheus_client's own parser."""

from __future__ import annotations

import sys
import threading
import time
from typing import Any

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from fcgikit.server.children import WorkerProcess, restart_reason
from fcgikit.server.metrics import DURATION_BUCKETS
from fcgikit.server.openmetrics import CONTENT_TYPE, render
from fcgikit.server.pool_view import SlotView, WorkerState
from fcgikit.server.scoreboard import RESTART_REASONS, Scoreboard
from fcgikit.server.settings import ServerSettings
from fcgikit.server.status import DIRECT_CLIENT_PARAM, StatusPage, one_process_page
from tests.server.conftest import RunningServer
from tests.server.test_hostile import wait_until


def ready_slot(board: Scoreboard, index: int, pid: int) -> None:
    board.reset(index, generation=1)
    board.slot(index).set_pid(pid)
    board.slot(index).set_state(WorkerState.READY)


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of an OpenMetrics page, by name and labels, as prometheus_client reads it."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
    return found


def families(text: str) -> dict[str, str]:
    return {family.name: family.type for family in text_string_to_metric_families(text)}


# --- the counters ----------------------------------------------------------------------------


def test_counters_written_by_many_threads_add_up_exactly() -> None:
    board = Scoreboard(slots=1, threads=8)
    ready_slot(board, 0, 4242)
    counters = board.slot(0).counters()
    per_thread = 2000

    def requests(status: int) -> None:
        for _ in range(per_thread):
            counters.request_done(status, 0.003)

    threads = [threading.Thread(target=requests, args=(200 + i % 3 * 100,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    counts = board.snapshot().counters
    by_class = dict(counts.requests_by_class())
    assert (by_class[2], by_class[3], by_class[4]) == (
        3 * per_thread,
        3 * per_thread,
        2 * per_thread,
    )
    buckets = counts.duration_buckets()
    assert sum(buckets) == 8 * per_thread
    assert buckets[DURATION_BUCKETS.index(0.005)] == 8 * per_thread  # 3 ms: le="0.005"
    assert counts.duration_sum == pytest.approx(8 * per_thread * 0.003)
    counters.release()


def test_a_duration_on_a_bound_is_in_that_bucket() -> None:
    # Prometheus' le: "less than or equal"
    board = Scoreboard(slots=1, threads=1)
    ready_slot(board, 0, 1)
    counters = board.slot(0).counters()
    counters.request_done(200, 0.1)
    counters.request_done(0, 31.0)  # no response, and past the last bound: +Inf
    buckets = board.snapshot().counters.duration_buckets()
    assert buckets[DURATION_BUCKETS.index(0.1)] == 1 and buckets[-1] == 1
    assert dict(board.snapshot().counters.requests_by_class())[0] == 1
    counters.release()


def test_a_dead_workers_counts_stay_in_the_pools_and_its_restart_is_counted() -> None:
    board = Scoreboard(slots=2, threads=1)
    for index in (0, 1):
        ready_slot(board, index, 100 + index)
        counters = board.slot(index).counters()
        for _ in range(3 + index):
            counters.request_done(200, 0.01)
        counters.connection_accepted()
        counters.request_refused("threads")
        counters.release()
    before = board.snapshot()
    board.release(0, "crashed_while_serving")
    after = board.snapshot()
    assert [w.pid for w in after.workers] == [101]
    assert after.counters == before.counters
    assert dict(after.counters.requests_by_class())[2] == 7
    assert after.counters.requests_refused()["threads"] == 2
    assert after.restarts == {**dict.fromkeys(RESTART_REASONS, 0), "crashed_while_serving": 1}
    board.release(1)  # not replaced (the pool shrank): no restart
    assert board.snapshot().restarts["crashed_while_serving"] == 1
    assert board.snapshot().counters == before.counters


def test_a_reader_never_sees_a_dead_worker_counted_twice_or_not_at_all() -> None:
    # The master folds a dead worker into the pool's counters and frees its slot while
    # workers answer the status page: the total they read must never go back, nor jump.
    board = Scoreboard(slots=1, threads=1)
    rounds = 300
    done = threading.Event()
    seen: list[int] = []

    def read() -> None:
        while not done.is_set():
            seen.append(dict(board.snapshot().counters.requests_by_class())[2])

    reader = threading.Thread(target=read)
    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # a thread switch anywhere, the middle of a fold included
    reader.start()
    try:
        for number in range(rounds):
            ready_slot(board, 0, 1000 + number)
            counters = board.slot(0).counters()
            counters.request_done(200, 0.001)
            counters.release()
            board.release(0, "max_requests")
    finally:
        done.set()
        reader.join()
        sys.setswitchinterval(switch)
    assert seen == sorted(seen) and seen[-1] <= rounds
    assert dict(board.snapshot().counters.requests_by_class())[2] == rounds
    assert board.snapshot().restarts["max_requests"] == rounds


# --- why a worker was replaced ---------------------------------------------------------------


def slot_left(state: WorkerState, *, running: bool = False, retired_for: str = "") -> SlotView:
    board = Scoreboard(slots=1, threads=1)
    ready_slot(board, 0, 4242)
    slot = board.slot(0)
    slot.set_state(state)
    if running:
        slot.begin(0, "#1 GET /crash", 1)
    if retired_for:
        slot.set_retired_for(retired_for)
    return board.read(0)


def worker(**record: Any) -> WorkerProcess:
    return WorkerProcess(4242, 0, 1, time.monotonic() - 60, ready=True, **record)


@pytest.mark.parametrize(
    ("record", "code", "view", "reason"),
    [
        pytest.param({}, -11, slot_left(WorkerState.READY, running=True), "crashed_while_serving"),
        pytest.param({}, 3, slot_left(WorkerState.READY), "crashed_while_idle", id="idle"),
        pytest.param({}, 3, slot_left(WorkerState.FAILED), "failed_to_start", id="no-app"),
        pytest.param(
            {"stop_sent": 1.0, "stop_reason": "retiring"},
            0,
            slot_left(WorkerState.STOPPING, retired_for="max_requests"),
            "max_requests",
        ),
        pytest.param(
            {"stop_sent": 1.0, "stop_reason": "retiring"},
            0,
            slot_left(WorkerState.STOPPING, retired_for="app_exit"),
            "app_exit",
        ),
        pytest.param(
            {"stop_sent": 1.0, "stop_reason": "replaced"},
            -15,
            slot_left(WorkerState.STOPPING),
            "reload",
        ),
        pytest.param(
            {"stop_sent": 1.0, "stop_reason": "replaced", "killed": "did not stop in time"},
            -9,
            slot_left(WorkerState.STOPPING, running=True),
            "reload",
            id="reload-killed-late",
        ),
        pytest.param(
            {"killed": "--timeout"},
            -9,
            slot_left(WorkerState.READY, running=True),
            "timeout",
        ),
        pytest.param(
            {"stop_sent": 1.0, "stop_reason": "idle for 10s"},
            0,
            slot_left(WorkerState.STOPPING),
            None,
            id="scaled-down",
        ),
        pytest.param(
            {"stop_sent": 1.0, "stop_reason": "fewer workers wanted"},
            0,
            slot_left(WorkerState.STOPPING),
            None,
            id="sigttou",
        ),
        pytest.param(
            {"stop_sent": 1.0, "stop_reason": "retiring"},
            -11,
            slot_left(WorkerState.STOPPING, running=True, retired_for="max_requests"),
            "crashed_while_serving",
            id="crashed-while-retiring",
        ),
    ],
)
def test_why_a_worker_was_replaced(
    record: dict[str, Any], code: int, view: SlotView, reason: str | None
) -> None:
    assert restart_reason(worker(**record), code, view) == reason


# --- the OpenMetrics text --------------------------------------------------------------------


def pool_board() -> Scoreboard:
    """Two workers with known counts, one of them dead, one restart."""
    board = Scoreboard(slots=3, threads=2)
    board.set_pool(dynamic=True, target=2, maximum=4)
    for index, statuses in ((0, (200, 200, 404)), (1, (500, 302, 0)), (2, (200,))):
        ready_slot(board, index, 10 + index)
        counters = board.slot(index).counters()
        for status in statuses:
            counters.request_done(status, 0.02 if status != 500 else 2.0)
        counters.connection_accepted()
        counters.release()
    counters = board.slot(1).counters()
    counters.connection_refused("peer_address")
    counters.connection_refused("fd_exhaustion")
    counters.request_refused("memory")
    counters.release()
    board.slot(1).begin(0, "#9 GET /busy", 1)
    board.slot(2).set_state(WorkerState.BOOTING)
    board.release(0, "timeout")
    board.count_max_reached()
    return board


def test_openmetrics_of_a_pool_reads_back_with_prometheus_client() -> None:
    text = render(pool_board().snapshot(), pool=True)
    assert text.endswith("# EOF\n")
    found = samples(text)

    def value(name: str, **labels: str) -> float:
        return found[name, tuple(sorted(labels.items()))]

    assert value("fcgikit_requests_total", status="2xx") == 3
    assert value("fcgikit_requests_total", status="3xx") == 1
    assert value("fcgikit_requests_total", status="4xx") == 1
    assert value("fcgikit_requests_total", status="5xx") == 1
    assert value("fcgikit_requests_total", status="none") == 1
    assert value("fcgikit_request_duration_seconds_count") == 7
    assert value("fcgikit_request_duration_seconds_bucket", le="0.025") == 6
    assert value("fcgikit_request_duration_seconds_bucket", le="2.5") == 7
    assert value("fcgikit_request_duration_seconds_bucket", le="+Inf") == 7
    assert value("fcgikit_request_duration_seconds_sum") == pytest.approx(6 * 0.02 + 2.0)
    assert value("fcgikit_connections_accepted_total") == 3
    assert value("fcgikit_connections_refused_total", reason="peer_address") == 1
    assert value("fcgikit_connections_refused_total", reason="fd_exhaustion") == 1
    assert value("fcgikit_requests_refused_total", reason="memory") == 1
    assert value("fcgikit_requests_refused_total", reason="threads") == 0
    assert value("fcgikit_workers", state="busy") == 1
    assert value("fcgikit_workers", state="booting") == 1
    assert value("fcgikit_workers", state="idle") == 0
    assert value("fcgikit_worker_restarts_total", reason="timeout") == 1
    assert value("fcgikit_worker_restarts_total", reason="reload") == 0
    assert value("fcgikit_max_workers_reached_total") == 1
    assert value("fcgikit_slow_requests_total") == 0
    assert families(text)["fcgikit_request_duration_seconds"] == "histogram"


def test_a_single_process_leaves_out_what_only_a_pool_has() -> None:
    text = render(pool_board().snapshot(), pool=False)
    assert set(families(text)) == {
        "fcgikit_requests",
        "fcgikit_request_duration_seconds",
        "fcgikit_requests_in_flight",
        "fcgikit_requests_queued",
        "fcgikit_connections_accepted",
        "fcgikit_connections_refused",
        "fcgikit_requests_refused",
        "fcgikit_start_time_seconds",
    }
    assert families(text)["fcgikit_requests"] == "counter"


def page_body(page: StatusPage, query: str) -> tuple[str, dict[str, str]]:
    answered: list[Any] = []
    environ = {
        "REQUEST_URI": "/fcgikit-status",
        "SCRIPT_NAME": "",
        "PATH_INFO": "/fcgikit-status",
        "QUERY_STRING": query,
        DIRECT_CLIENT_PARAM: "fcgikit status",
    }
    assert page.wants(environ)
    body = b"".join(page(environ, lambda status, headers, exc_info=None: answered.append(headers)))
    return body.decode(), dict(answered[0])


@pytest.mark.parametrize("query", ["openmetrics", "openmetrics=", "x=1&openmetrics"])
def test_the_page_answers_openmetrics_as_prometheus_asks_for_it(query: str) -> None:
    # Prometheus' scrape config can only add a query as params: {openmetrics: [""]}
    page = StatusPage(pool_board(), "/fcgikit-status", ServerSettings().status_allow)
    text, headers = page_body(page, query)
    assert headers["Content-Type"] == CONTENT_TYPE
    assert headers["Content-Type"] == "application/openmetrics-text; version=1.0.0; charset=utf-8"
    assert samples(text)["fcgikit_requests_total", (("status", "2xx"),)] == 3


# --- a single process's page, on a server in a thread -----------------------------------------


def test_a_single_process_counts_what_its_server_serves(serve: Any, tmp_path: Any) -> None:
    release = tmp_path / "release"
    running: list[str] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        if environ["PATH_INFO"] == "/hold":
            running.append("held")
            while not release.exists():
                time.sleep(0.005)  # the test's signal, polled
        start_response("404 Not Found" if environ["PATH_INFO"] == "/none" else "200 OK", [])
        return [b"x"]

    settings = ServerSettings(status_path="/fcgikit-status", threads=1, max_queued=2)
    page = one_process_page(settings)
    server: RunningServer = serve(
        page.in_front_of(app), threads=1, max_queued=2, metrics=page.counters
    )
    assert page.counters is not None
    page.counters.pool = server.server.pool
    client = server.client()
    assert client.request("GET", "/none").status == 404
    assert client.request("GET", "/").status == 200
    held = threading.Thread(target=lambda: server.client().request("GET", "/hold"))
    waiting = threading.Thread(target=lambda: server.client().request("GET", "/"))
    held.start()
    deadline = time.monotonic() + 10
    while not running:
        assert time.monotonic() < deadline
        time.sleep(0.005)
    waiting.start()
    while server.server.pool.in_flight < 2:  # the second one waits for the thread
        assert time.monotonic() < deadline
        time.sleep(0.005)
    page.counters.sample()
    view = page.board.snapshot()
    assert [(w.sampled_running, w.sampled_queued) for w in view.workers] == [(1, 1)]
    release.touch()
    held.join(10)
    waiting.join(10)
    # Each request is counted after its reply went out (the client may be answered first),
    # and before the pool and its connection let go of it (WSGIRequest.done).
    wait_until(
        lambda: server.server.pool.in_flight == 0 and server.server.connection_count() == 0,
        what="the answered requests to be over",
    )
    text = client.request(
        "GET",
        "/fcgikit-status",
        query="openmetrics",
        params={DIRECT_CLIENT_PARAM: "fcgikit status"},
    ).body.decode()
    found = samples(text)
    assert found["fcgikit_requests_total", (("status", "2xx"),)] == 3
    assert found["fcgikit_requests_total", (("status", "4xx"),)] == 1
    assert found["fcgikit_requests_in_flight", ()] == 1  # the page's own request
    assert found["fcgikit_requests_queued", ()] == 0
    assert found["fcgikit_connections_accepted_total", ()] == 5  # one per request
