"""The README's first command, run as written: the example app answers over HTTP."""

from __future__ import annotations

import os
import signal
import socket
import time
import urllib.error
import urllib.request

import pytest

from tests.integration.harness import require_binary
from tests.processes import ROOT, Backend

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def fetch(url: str, deadline: float) -> bytes:
    """GET ``url``, retrying while the front is still starting (connection refused, 502)."""
    while True:
        try:
            with urllib.request.urlopen(url, timeout=10) as reply:
                return bytes(reply.read())
        except (urllib.error.URLError, ConnectionError) as exc:
            if time.monotonic() > deadline:
                raise AssertionError(f"{url} never answered: {exc}") from exc
            time.sleep(0.2)  # bounded retry while the processes start, not a synchronisation


@pytest.mark.parametrize("front", ["nginx", "development front"])
def test_serve_example_answers_over_http(front: str) -> None:
    env = {"PORT": str(free_port())}
    if front == "nginx":
        require_binary("nginx")
    else:  # the same command on a machine without nginx
        env["PATH"] = os.pathsep.join(
            p for p in os.environ["PATH"].split(os.pathsep) if not p.endswith("sbin")
        )
    example = Backend([str(ROOT / "scripts" / "serve-example")], env=env)
    try:
        body = fetch(f"http://127.0.0.1:{env['PORT']}/", time.monotonic() + 120)
        assert body.startswith(b"Hello from Flask over FastCGI!")
        assert f"http://127.0.0.1:{env['PORT']}/hello/World".encode() in body  # url_for
    finally:
        example.stop(signal.SIGTERM)
        example.kill()
    assert (b"nginx on" if front == "nginx" else b"development front on") in example.stdout
