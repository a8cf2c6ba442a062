"""Faults under load through nginx: aborts, a hanging app, an app raising late, a full disk,
and byte-exact transfers in bounded memory.

Real processes: Debian's nginx (config written in tmp, started with ``-p``, stopped by PID)
in front of ``python -m fcgikit serve soak:app`` (``scripts/soak.py``, whose app, nginx
launcher, process counters and fault clients these tests share with the soak script). The
counts are the suite's: 300 aborts and 64 MiB; ``scripts/soak --aborts 10000`` and
``scripts/soak --big 1024`` are the issue's full runs (figures in SECURITY.md).

Leak checks read the backend's ``/proc/PID``: threads in ``task/``, descriptors in ``fd/``,
and spool files as descriptors whose link ends with ``(deleted)`` (spools are unnamed
``TemporaryFile``s). nginx is stopped before the final count, because its idle keepalive
connections are descriptors of the backend's too.
"""

from __future__ import annotations

import concurrent.futures
import http.client
import os
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.harness import require_binary
from tests.server.test_hostile import wait_until

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
import soak  # noqa: E402

sys.path.remove(str(ROOT / "scripts"))

pytestmark = pytest.mark.integration

THREADS = 6


class Stack:
    """nginx -> fcgikit backend, both ours to stop."""

    def __init__(self, tmp: Path, **backend: Any) -> None:
        require_binary("nginx")
        tmp.mkdir(parents=True)
        self.socket_path = str(tmp / "app.sock")
        self.backend = soak.start_backend(self.socket_path, threads=THREADS, **backend)
        self.site: soak.NginxSite | None = None
        try:
            self.site = soak.NginxSite(tmp / "nginx", self.socket_path)
        except BaseException:
            self.backend.kill()
            raise
        self.stats = soak.ProcessStats(self.backend.proc.pid)
        # The loop's thread starts a moment after the server says it listens: the baseline
        # counts it, for the pool holds up to THREADS more (one always free for the loop role).
        wait_until(lambda: self.stats.snapshot().threads >= 2, what="the loop's thread")
        self.baseline = self.stats.snapshot()

    @property
    def port(self) -> int:
        assert self.site is not None
        return self.site.port

    def ok(self) -> None:
        assert soak.http_request(self.port, "GET", "/b/ok", timeout=30) == (200, b"ok")

    def settle(self) -> soak.Snapshot:
        """Stop nginx (its kept connections close), then wait for the backend to be idle."""
        assert self.site is not None
        self.site.stop()
        return self.stats.settle(self.baseline, threads=self.baseline.threads + THREADS)

    def assert_no_leak(self) -> None:
        settled = self.settle()
        assert settled.fds <= self.baseline.fds, (self.baseline, settled)
        assert settled.spools == 0, settled
        assert settled.threads <= self.baseline.threads + THREADS, settled
        assert self.backend.proc.poll() is None, "the backend died"

    def log_lines(self, needle: str) -> list[str]:
        """The backend's log lines (not traceback lines) that mention ``needle``."""
        return [
            line
            for line in self.backend.stderr.splitlines()
            if line.startswith("fcgikit[") and needle in line
        ]

    def wait_for_log(self, needle: str, timeout: float = 15) -> None:
        self.backend.wait_for(needle.replace("(", r"\(").replace(")", r"\)"), timeout)

    def close(self) -> None:
        if self.site is not None:
            self.site.stop()
        self.backend.stop()


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Any]:
    stacks: list[Stack] = []

    def start(**backend: Any) -> Stack:
        started = Stack(tmp_path / f"stack{len(stacks)}", **backend)
        stacks.append(started)
        return started

    yield start
    for started in stacks:
        started.close()


def test_300_client_aborts_mid_upload_and_download_leak_nothing(stack: Any) -> None:
    """150 uploads and 150 downloads abandoned half-way (nginx closes its FastCGI connection),
    with well-behaved requests between them; then no thread, fd or spool is left."""
    s = stack()
    s.ok()

    def one(n: int) -> str:
        if n % 2:
            soak.abort_upload(s.port, total=2 << 20, sent=256 << 10)
        else:
            soak.abort_download(s.port, size=16 << 20, read=64 << 10)
        if n % 25 == 0:
            soak.upload_and_check(s.port, "/s/", 300_000)
            s.ok()
        return "done"

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        assert list(pool.map(one, range(300))) == ["done"] * 300
    s.ok()
    soak.download_and_check(s.port, "/s/", 3 << 20)
    s.assert_no_leak()
    # aborts are the web server's doing, not an app error: no traceback for any of them
    assert "Traceback" not in s.backend.stderr, s.backend.stderr[-3000:]


def test_fastcgi_abort_request_is_answered_every_time(stack: Any) -> None:
    """FCGI_ABORT_REQUEST straight to the backend while its app reads the body: each is
    answered with FCGI_END_REQUEST (spec 5.4), 600 times over."""
    s = stack()
    unanswered = sum(not soak.fastcgi_abort(s.socket_path) for _ in range(600))
    assert unanswered == 0
    s.assert_no_leak()


def test_hanging_app_gets_nginx_504_while_others_are_served(stack: Any) -> None:
    s = stack()
    results: list[Any] = []
    hung = threading.Thread(
        target=lambda: results.append(soak.http_request(s.port, "GET", "/h/hang?s=2"))
    )
    started = time.monotonic()
    hung.start()
    for _ in range(20):
        s.ok()  # the hang holds one thread of six
    hung.join(30)
    assert results and results[0][0] == 504
    assert time.monotonic() - started < 10
    # when the app wakes up, nginx is gone from that request: its output is dropped, one line
    s.wait_for_log("went away")
    s.ok()
    s.assert_no_leak()


def test_app_raising_after_headers_truncates_that_response_only(stack: Any) -> None:
    """The client must be able to tell: nginx ignores FCGI_END_REQUEST's appStatus, so only
    a FastCGI connection closed before END_REQUEST makes it cut the client off. (With
    ``fastcgi_buffering off`` nginx 1.22 sends the last chunk even then: not testable.)"""
    s = stack()
    for _ in range(3):
        connection = http.client.HTTPConnection("127.0.0.1", s.port, timeout=30)
        try:
            connection.request("GET", "/b/raise-late")
            response = connection.getresponse()
            assert response.status == 200
            # the body stops short: chunked encoding never gets its last chunk
            with pytest.raises((http.client.IncompleteRead, ConnectionError)):
                response.read()
        finally:
            connection.close()
        s.ok()
    # the client can see the cut before the backend has written its line about it
    s.backend.wait_for(r"^fcgikit\[\d+\] .*raised after the headers were sent", count=3)
    assert len(s.log_lines("raised after the headers were sent")) == 3
    s.assert_no_leak()


@pytest.fixture
def small_spool_disk(tmp_path: Path) -> Iterator[tuple[dict[str, Any], str]]:
    """Backend options for a 2 MiB spool disk: a tmpfs as TMPDIR when we may mount one,
    else RLIMIT_FSIZE (writes past 2 MiB fail with EFBIG instead of ENOSPC)."""
    with soak.small_disk(tmp_path / "disk", 2) as disk:
        if disk is not None:
            yield {"env": {"TMPDIR": str(disk)}}, "No space left on device"
        else:
            yield {"file_size_limit": 2 << 20}, "File too large"


def test_full_disk_while_spooling_is_a_500_and_one_log_line(
    stack: Any, small_spool_disk: tuple[dict[str, Any], str], tmp_path: Path
) -> None:
    options, error = small_spool_disk
    s = stack(**options)
    gate = tmp_path / "gate"
    results: list[Any] = []
    upload = threading.Thread(
        target=lambda: results.append(
            soak.http_request(
                s.port, "POST", f"/b/upload?gate={gate}", b"x" * (8 << 20), timeout=60
            )
        )
    )
    upload.start()
    s.wait_for_log(error)  # the body filled the disk while the app waited at its gate
    gate.touch()
    upload.join(60)
    status, body = results[0]
    assert status in (413, 500, 507)
    assert b"Traceback" not in body and b"/" not in body.split(b"<")[0]
    s.ok()  # the backend survived
    assert s.stats.snapshot().spools == 0  # the spool is gone at once, not at exit
    lines = [line for line in s.backend.stderr.splitlines() if line.startswith("fcgikit[")]
    problem = [line for line in lines if " ERROR " in line or " WARNING " in line]
    assert len(problem) == 1 and error in problem[0], problem
    assert "Traceback" not in s.backend.stderr
    s.assert_no_leak()


@pytest.mark.parametrize("prefix", ["/b/", "/s/"], ids=["nginx-buffers", "nginx-streams"])
def test_64_mib_up_and_down_byte_exact_in_bounded_memory(stack: Any, prefix: str) -> None:
    s = stack()
    size = 64 << 20
    sampling = threading.Event()

    def sample() -> None:
        while not sampling.wait(0.05):
            s.stats.snapshot()

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        soak.upload_and_check(s.port, prefix, size)
        soak.download_and_check(s.port, prefix, size)
    finally:
        sampling.set()
        sampler.join(5)
    grown_mib = (s.stats.max_rss_kib - s.baseline.rss_kib) / 1024
    assert grown_mib < 32, f"backend RSS grew by {grown_mib:.0f} MiB for a 64 MiB transfer"
    s.assert_no_leak()


def test_backend_unix_socket_is_not_world_writable(stack: Any) -> None:
    s = stack()
    mode = os.stat(s.socket_path).st_mode & 0o777
    assert not mode & 0o007, oct(mode)
    with socket.socket(socket.AF_UNIX) as probe:
        probe.connect(s.socket_path)  # and still reachable by its owner
