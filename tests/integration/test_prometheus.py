"""A real Prometheus scrapes fcgikit's status page through real nginx, as
docs/operations.rst ("Metrics") sets it up: the scrape job of ``docs/examples/prometheus.yml``
with this test's address and a short interval, nginx's ``location`` for the page (as
test_status_nginx.py has it), and ``fcgikit serve --status-path --status-allow``. What a
user reads from Prometheus' HTTP API must match the traffic sent: one process and a pool
alike.

Prometheus runs on 127.0.0.1 with its data in the test's directory. Readiness and every
value are waited for on Prometheus' own API (``/-/ready``, ``/api/v1/query``), within a
deadline: Prometheus scrapes on its own schedule, so the test polls what it has stored.
"""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from .harness import (
    HOST,
    REPO_ROOT,
    STARTUP_TIMEOUT,
    Layout,
    Process,
    Scenario,
    Site,
    free_port,
    require_binary,
    server_version,
)
from .test_status_nginx import start

pytestmark = pytest.mark.integration

SCRAPE_CONFIG = REPO_ROOT / "docs" / "examples" / "prometheus.yml"
#: Prometheus scrapes this often here (the docs' job says 15s)
SCRAPE_INTERVAL = "200ms"
#: how long a value may take to show in Prometheus: a few scrapes, on a loaded machine
QUERY_TIMEOUT = 60.0


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    scenario = Scenario("prometheus", "nginx", "", "fcgikit serve --status-path", backend=None)
    running = Site(scenario, Layout.create(tmp_path), server_version("nginx"))
    try:
        yield running
    finally:
        running.stop()


def start_prometheus(site: Site) -> str:
    """Prometheus scraping nginx with the docs' job; its API's base URL once it is ready."""
    binary = require_binary("prometheus")
    layout = site.layout
    config = yaml.safe_load(SCRAPE_CONFIG.read_text())
    (job,) = config["scrape_configs"]
    job["scrape_interval"] = SCRAPE_INTERVAL
    job["static_configs"] = [{"targets": [f"{HOST}:{layout.port}"]}]
    path = layout.dir / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    site.config_files.append(path)
    port = free_port()
    argv = [binary, f"--config.file={path}", f"--storage.tsdb.path={layout.dir / 'tsdb'}"]
    argv += [f"--web.listen-address={HOST}:{port}", "--log.level=warn"]
    site.processes.append(Process("prometheus", argv, log_dir=layout.dir, cwd=layout.dir))
    base = f"http://{HOST}:{port}"
    wait_for(lambda: _get(f"{base}/-/ready") is not None, "Prometheus ready", STARTUP_TIMEOUT)
    return base


def _get(url: str) -> bytes | None:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return bytes(response.read())
    except OSError:  # not listening yet, or 503 while it starts
        return None


def wait_for(check: Any, what: str, timeout: float = QUERY_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"no {what} within {timeout}s"
        time.sleep(0.05)  # polling Prometheus, which scrapes on its own clock, with a deadline


def query(base: str, promql: str) -> float | None:
    """The value of ``promql`` (one series) as Prometheus has it now; None: no such series."""
    body = _get(f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": promql}))
    if body is None:
        return None
    answer = json.loads(body)
    assert answer["status"] == "success", answer
    results = answer["data"]["result"]
    assert len(results) <= 1, results
    return float(results[0]["value"][1]) if results else None


def wait_for_value(base: str, promql: str, expected: float) -> None:
    seen: list[float | None] = []

    def shows() -> bool:
        seen.append(query(base, promql))
        return seen[-1] == expected

    try:
        wait_for(shows, f"{promql} == {expected}")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; Prometheus showed {seen[-5:]}") from None


@pytest.mark.parametrize(
    "workers", [pytest.param(None, id="one-process"), pytest.param(2, id="pool")]
)
def test_prometheus_sees_the_requests_fcgikit_served(site: Site, workers: int | None) -> None:
    # nginx shows the page to 127.0.0.1 (the Prometheus host here), fcgikit trusts it
    start(site, "--status-allow", "127.0.0.1", workers=workers)
    prometheus = start_prometheus(site)
    # The target is up, and was scraped in OpenMetrics before any traffic: no 404 yet.
    wait_for_value(prometheus, 'up{job="fcgikit"}', 1)
    wait_for_value(prometheus, 'fcgikit_requests_total{status="4xx"}', 0)
    for _ in range(5):
        assert site.get("/missing").status == 404
    for _ in range(3):
        assert site.get("/").status == 200
    # The 404s are the test's alone; the 200s are its 3 and Prometheus' own scrapes.
    wait_for_value(prometheus, 'fcgikit_requests_total{status="4xx"}', 5)
    wait_for(
        lambda: (query(prometheus, 'fcgikit_requests_total{status="2xx"}') or 0) >= 3,
        "3 requests answered 200",
    )
    # Each request came on a connection of its own (nginx without fastcgi_keep_conn).
    wait_for(
        lambda: (query(prometheus, "fcgikit_connections_accepted_total") or 0) >= 8,
        "8 connections accepted",
    )
    # The histogram has counted every request the counter has, the 404s among them.
    total = query(prometheus, "sum(fcgikit_requests_total)")
    assert total is not None and total >= 8
    histogram = query(prometheus, "fcgikit_request_duration_seconds_count")
    assert histogram is not None and histogram >= 8
    if workers:
        wait_for_value(prometheus, "sum(fcgikit_workers)", 2)
        assert query(prometheus, "sum(fcgikit_worker_restarts_total)") == 0  # none replaced
    else:
        assert query(prometheus, "fcgikit_workers") is None  # a pool's alone
