"""The status page's metrics from real ``fcgikit serve`` processes, one and a pool, after known
traffic: each counter read back with prometheus_client's own parser."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from fcgikit.client import FastCGIClient
from fcgikit.protocol import ProtocolStatus
from fcgikit.server.status import DIRECT_CLIENT_PARAM
from tests.server.test_arbiter import POOL_TIMEOUT, Pool, Reply, close, fcgi_get

APP_SOURCE = """
import os, sys, time

def app(environ, start_response):
    path, query = environ["PATH_INFO"], environ["QUERY_STRING"]
    if path == "/hold":
        sys.stderr.write(f"holding in {os.getpid()}\\n")
        while not os.path.exists(query):
            time.sleep(0.01)
    elif path == "/sleep":
        time.sleep(float(query))
    elif path == "/raise":
        raise RuntimeError("the app failed")
    elif path == "/crash":
        os._exit(3)
    start_response("404 Not Found" if path == "/missing" else "200 OK", [])
    return [str(os.getpid()).encode()]
"""

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def metrics(pool: Pool) -> Samples:
    """The page in OpenMetrics, asked for as ``fcgikit status --openmetrics`` does."""
    direct = {DIRECT_CLIENT_PARAM.encode(): b"fcgikit status"}
    reply = fcgi_get(pool.address, "/fcgikit-status", "openmetrics", extra=direct)
    assert reply.status == 200, reply
    assert reply.headers["Content-Type"].startswith("application/openmetrics-text; version=1.0.0")
    found = {}
    for family in text_string_to_metric_families(reply.body.decode()):
        for sample in family.samples:
            found[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
    return found


def value(found: Samples, name: str, **labels: str) -> float:
    return found[name, tuple(sorted(labels.items()))]


def settled(pool: Pool, expected: dict[str, float], counted: dict[str, int]) -> Samples:
    """The page once it shows ``expected`` (``"name"`` or ``"name{label=value}"`` -> value).

    A request is counted once its answer is out, so a client may ask for the page before
    the request it has just been answered is: the page is read until the counts settle
    (within a deadline). Each page read is a request and a connection too: once over, it
    adds one to each name in ``counted`` (the sample's key as in ``expected``) times the
    pages read before it.
    """
    deadline = time.monotonic() + POOL_TIMEOUT
    pages = 0
    while True:
        found = metrics(pool)
        shown = {
            name + ("{" + ",".join(f"{k}={v}" for k, v in labels) + "}" if labels else ""): count
            for (name, labels), count in found.items()
        }
        wanted = {key: count + pages * counted.get(key, 0) for key, count in expected.items()}
        if all(shown.get(key) == count for key, count in wanted.items()):
            return found
        pages += 1
        assert time.monotonic() < deadline, {k: (shown.get(k), v) for k, v in wanted.items()}
        time.sleep(0.01)  # polling the page for counts a few microseconds late, with a deadline


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[..., Pool]]:
    (tmp_path / "prefork_app.py").write_text(APP_SOURCE)
    started: list[Pool] = []

    def run(*args: str) -> Pool:
        pool = Pool(tmp_path, "--status-path", "/fcgikit-status", *args)
        started.append(pool)
        return pool

    yield run
    for pool in started:
        close(pool)


def test_a_single_process_reports_what_it_served(
    start: Callable[..., Pool], tmp_path: Path
) -> None:
    pool = start(
        *("--bind", f"unix:{tmp_path / 'pool.sock'}", "--bind", "127.0.0.1:0"),
        *("--threads", "2", "--max-queued", "0", "--web-server-addrs", "192.0.2.1"),
    )
    pool.wait_count("listening on", 2)
    connections = 0

    def get(path: str, query: str = "") -> int | None:
        nonlocal connections
        connections += 1
        return fcgi_get(pool.address, path, query).status

    statuses = [get(path) for path in ("/", "/", "/", "/missing", "/missing", "/raise")]
    assert statuses == [200, 200, 200, 404, 404, 500]
    assert get("/sleep", "0.05") == 200
    # a TCP peer that is not in --web-server-addrs: closed at once
    port = int(pool.wait_for(r"listening on 127\.0\.0\.1:(\d+)").group(1))
    with socket.create_connection(("127.0.0.1", port), timeout=POOL_TIMEOUT) as refused:
        assert refused.recv(1) == b""
    # two requests hold the two threads; the next is refused (OVERLOADED)
    release = pool.directory / "release"
    holders = [threading.Thread(target=get, args=("/hold", str(release))) for _ in range(2)]
    for number, holder in enumerate(holders, 1):
        holder.start()
        pool.wait_count("holding in", number)
    connections += 1
    with FastCGIClient(f"unix:{pool.address}") as client:
        assert client.request("GET", "/").protocol_status is ProtocolStatus.OVERLOADED
    release.touch()
    for holder in holders:
        holder.join(POOL_TIMEOUT)
    connections += 1  # the page's own
    found = settled(
        pool,
        {
            "fcgikit_requests_total{status=2xx}": 6,
            "fcgikit_requests_total{status=4xx}": 2,
            "fcgikit_requests_total{status=5xx}": 1,
            "fcgikit_requests_total{status=none}": 0,
            "fcgikit_request_duration_seconds_count": 9,
            "fcgikit_requests_in_flight": 1,  # the page's own request
            "fcgikit_requests_queued": 0,
            "fcgikit_connections_accepted_total": connections,
            "fcgikit_connections_refused_total{reason=peer_address}": 1,
            "fcgikit_requests_refused_total{reason=threads}": 1,
            "fcgikit_requests_refused_total{reason=memory}": 0,
        },
        {
            "fcgikit_requests_total{status=2xx}": 1,
            "fcgikit_request_duration_seconds_count": 1,
            "fcgikit_connections_accepted_total": 1,
        },
    )
    # the 50 ms request is above 25 ms, whatever the others took
    count = value(found, "fcgikit_request_duration_seconds_count")
    assert value(found, "fcgikit_request_duration_seconds_bucket", le="0.025") <= count - 1
    assert value(found, "fcgikit_request_duration_seconds_bucket", le="+Inf") == count
    assert value(found, "fcgikit_request_duration_seconds_sum") >= 0.05
    assert not [name for name, _ in found if name.startswith("fcgikit_worker")]
    # the text page, through the command
    text = subprocess.run(
        [sys.executable, "-m", "fcgikit", "status", f"unix:{pool.address}"],
        capture_output=True,
        text=True,
        timeout=POOL_TIMEOUT,
        check=True,
    ).stdout
    assert re.search(r"^pool mode: +single process$", text, re.MULTILINE), text
    accepted = re.search(r"^accepted requests: +(\d+)$", text, re.MULTILINE)
    assert accepted and int(accepted.group(1)) > 10, text


def test_a_pool_counts_across_its_workers_and_their_restarts(
    start: Callable[..., Pool],
) -> None:
    pool = start("--workers", "1", "--threads", "2", "--max-requests", "3", "--timeout", "1")
    ready = 1
    pool.wait_count(r"worker \d+ ready", ready)
    for _ in range(3):  # the third retires the worker (--max-requests)
        assert pool.get("/").status == 200
    ready += 1
    pool.wait_count(r"worker \d+ ready", ready)
    pool.wait_for(r"worker \d+ exited \(retiring\)")
    assert pool.get("/crash").status is None  # kills its worker
    ready += 1
    pool.wait_count(r"worker \d+ ready", ready)
    assert pool.get("/sleep", "30").status is None  # --timeout kills its worker
    ready += 1
    pool.wait_count(r"worker \d+ ready", ready)
    pool.proc.send_signal(signal.SIGHUP)
    pool.wait_for(r"reload complete")
    found = settled(
        pool,
        {
            # the three answered requests were counted by a worker long gone
            "fcgikit_requests_total{status=2xx}": 3,
            "fcgikit_request_duration_seconds_count": 3,
            "fcgikit_connections_accepted_total": 6,  # the page's own too
        },
        {
            "fcgikit_requests_total{status=2xx}": 1,
            "fcgikit_request_duration_seconds_count": 1,
            "fcgikit_connections_accepted_total": 1,
        },
    )
    restarts = {
        labels[0][1]: count
        for (name, labels), count in found.items()
        if name == "fcgikit_worker_restarts_total"
    }
    assert restarts == {
        "crashed_while_serving": 1,
        "crashed_while_idle": 0,
        "failed_to_start": 0,
        "max_requests": 1,
        "app_exit": 0,
        "reload": 1,
        "timeout": 1,
    }
    assert value(found, "fcgikit_workers", state="idle") == 1
    assert value(found, "fcgikit_workers", state="stopping") == 0
    assert value(found, "fcgikit_max_workers_reached_total") == 0


def test_every_worker_answers_for_the_whole_pool(start: Callable[..., Pool]) -> None:
    """Whichever worker answers the page counts the whole pool's requests. One request is
    held in each of the three workers (a worker whose one thread is busy leaves the next
    connection to a sibling), so each has served one; which worker the kernel hands a
    connection to when all are idle is not the test's to choose."""
    pool = start("--workers", "3", "--threads", "1")
    pool.wait_count(r"worker \d+ ready", 3)
    release = pool.directory / "release"
    replies: list[Reply] = []

    def hold() -> None:
        replies.append(pool.get("/hold", str(release)))

    holders = [threading.Thread(target=hold) for _ in range(3)]
    for number, holder in enumerate(holders, 1):
        holder.start()
        pool.wait_count("holding in", number)
    release.touch()
    for holder in holders:
        holder.join(POOL_TIMEOUT)
    assert [reply.status for reply in replies] == [200] * 3
    assert len({reply.body for reply in replies}) == 3  # one in each worker
    settled(
        pool,
        {"fcgikit_requests_total{status=2xx}": 3, "fcgikit_workers{state=idle}": 3},
        {"fcgikit_requests_total{status=2xx}": 1},
    )
