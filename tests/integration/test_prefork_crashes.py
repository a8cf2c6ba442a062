"""A request that kills its worker, sent again and again through nginx to ``--workers 2``.

Ordinary requests go through nginx at ``LOAD_RATE`` a second (a new connection for each,
nginx's default), and once a second, for ``CRASHES`` seconds, a request to a URL whose worker
dies under it: a segfault, or ``os._exit(3)`` (the status a worker that cannot load the app
exits with, so nothing may be guessed from it). The crashing requests get nginx's 502, and so
may the ordinary ones running beside them in the same worker at that moment. Everyone else
must be served:

- at least 99% of the ordinary requests sent from the attack's start to ``SETTLE`` (one
  second) after it;
- every ordinary request sent later than that: the pool is whole again within a second.

A worker killed by a request is replaced at once (the crash-loop back-off is for workers that
cannot start). Before that was so, the back-off stretched to 10 s with both workers dead,
nginx's requests piled up in the listen backlog and their clients gave up, and each new
worker ran the crashing ones among them and died: 70% of the ordinary requests were served
during the attack, and none in the two seconds after it.

The load is sent on the clock, not by clients waiting for their answers (which would send
little while the pool is down, and so hardly notice it). Each crash is sent halfway between
two ordinary requests, so that the schedule makes them meet no more often than chance would.
The load is bounded (``MAX_REQUESTS``, ``CLIENT_TIMEOUT`` a request) and lasts about
``CRASHES + SETTLE + AFTER`` seconds; the figures are printed (``pytest -s``).
"""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import repeat
from pathlib import Path

import pytest

from .harness import HOST, Site
from .test_prefork_nginx import pool_site, start_nginx, start_pool

pytestmark = pytest.mark.integration

#: ordinary requests a second
LOAD_RATE = 100
#: seconds of ordinary load before the first crash
WARM_UP = 0.5
#: crashing requests, one a second
CRASHES = 8
#: after the attack, the pool must serve every request within this many seconds
SETTLE = 1.0
#: and the load goes on this long after that
AFTER = 2.0
#: a request through nginx not answered within this long counts as failed
CLIENT_TIMEOUT = 5.0
MAX_REQUESTS = int((WARM_UP + CRASHES + SETTLE + AFTER + 1) * LOAD_RATE)

CRASH_APP = """\
import ctypes, os

# PR_SET_DUMPABLE 0: no core file for the crashes the test asks for, whatever the machine's
# core_pattern says.
ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)


def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/crash/segv":
        ctypes.string_at(0)
    elif path == "/crash/exit":
        os._exit(3)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [f"{os.getpid()} {path}".encode()]
"""


@dataclass(frozen=True)
class Answer:
    target: str
    sent: float  # time.monotonic() when the request was sent
    status: int | None  # None: no answer (connection failed, or CLIENT_TIMEOUT)
    body: str


def ask(port: int, target: str) -> Answer:
    sent = time.monotonic()
    connection = http.client.HTTPConnection(HOST, port, timeout=CLIENT_TIMEOUT)
    try:
        connection.request("GET", target)
        response = connection.getresponse()
        body = response.read().decode("utf-8", "replace")
        return Answer(target, sent, response.status, body[:100])
    except (OSError, http.client.HTTPException) as exc:
        return Answer(target, sent, None, repr(exc))
    finally:
        connection.close()


def paced(
    port: int, targets: Iterable[str], start: float, rate: float, stop: threading.Event
) -> list[Answer]:
    """GET each of ``targets`` through nginx, ``rate`` a second from ``start`` on the clock
    (time.monotonic) whether or not the earlier ones were answered, each on a thread of its
    own, until ``stop``."""
    answers: list[Answer] = []
    lock = threading.Lock()

    def send(target: str) -> None:
        answer = ask(port, target)
        with lock:
            answers.append(answer)

    threads = []
    for number, target in enumerate(targets):
        # Pacing the requests, not waiting for anything: the clock is what is measured.
        if stop.wait(max(0.0, start + number / rate - time.monotonic())):
            break
        thread = threading.Thread(target=send, args=(target,), name=f"request-{number}")
        thread.start()
        threads.append(thread)
    for thread in threads:
        thread.join(CLIENT_TIMEOUT * 2)
    assert not any(thread.is_alive() for thread in threads), "a request hangs"
    return answers


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    yield from pool_site(tmp_path, "prefork-crash")


def share(answers: list[Answer]) -> str:
    served = sum(1 for answer in answers if answer.status == 200)
    return f"{served}/{len(answers)} ({100 * served / max(1, len(answers)):.2f}%)"


@pytest.mark.parametrize(
    ("how", "death"),
    [
        pytest.param("segv", "killed by SIGSEGV", id="segfault"),
        pytest.param("exit", "exited with status 3", id="os._exit(3)"),
    ],
)
def test_a_request_that_kills_its_worker_once_a_second(site: Site, how: str, death: str) -> None:
    backend = start_pool(site, app_source=CRASH_APP)
    start_nginx(site, keepalive=False)
    port = site.layout.port
    stop_load, stop_attack = threading.Event(), threading.Event()
    ordinary: list[Answer] = []
    start = time.monotonic() + 0.1
    targets = (f"/n/{number}" for number in range(MAX_REQUESTS))
    loader = threading.Thread(
        target=lambda: ordinary.extend(paced(port, targets, start, LOAD_RATE, stop_load))
    )
    loader.start()
    try:
        attack = start + WARM_UP + 0.5 / LOAD_RATE  # halfway between two ordinary requests
        crashes = paced(port, repeat(f"/crash/{how}", CRASHES), attack, 1.0, stop_attack)
        ended = max(answer.sent for answer in crashes)
        # The load goes on for SETTLE + AFTER seconds after the last crash: pacing, as above.
        stop_load.wait(max(0.0, ended + SETTLE + AFTER - time.monotonic()))
    finally:
        stop_attack.set()
        stop_load.set()
        loader.join(CLIENT_TIMEOUT * 4)
    assert not loader.is_alive(), "the load did not finish"

    wrong = [a for a in ordinary if a.status == 200 and not a.body.endswith(f" {a.target}")]
    assert not wrong, wrong[:5]  # nobody got somebody else's response
    during = [a for a in ordinary if attack <= a.sent < ended + SETTLE]
    after = [a for a in ordinary if a.sent >= ended + SETTLE]
    deaths = backend.stderr.count(f"{death} while serving")
    print(
        f"\n{how}: {len(crashes)} crashing requests in {ended - attack:.1f}s "
        f"({sum(1 for a in crashes if a.status == 502)} answered 502), {deaths} workers died "
        f"serving them; ordinary requests served from the attack's start to {SETTLE:g}s after "
        f"it: {share(during)}, later: {share(after)}"
    )
    failed = [a for a in during if a.status != 200]
    assert len(failed) * 100 <= len(during), failed[:10]
    assert all(a.status == 200 for a in after), [a for a in after if a.status != 200][:10]
    assert len(after) >= AFTER * LOAD_RATE / 2
    # Every crash took its worker down and was answered; none made the pool back off.
    assert all(a.status == 502 for a in crashes), [a for a in crashes if a.status != 502][:5]
    assert deaths == len(crashes)
    assert "backing off" not in backend.stderr
    assert "could not load the app" not in backend.stderr
