"""A steady load through several front ends, and what each request got.

Client threads, a few per front end, each send a request at most every :data:`PACE` seconds
(one in four a POST of :data:`POST_BODY` to the test app's ``/echo``, the others GETs of
``/env/...``, whose answer names the process that served it), until told to stop or a bound
is reached. A test waits on what they see (:meth:`Load.wait_for`) and prints each step's
figures (:func:`report`).
"""

from __future__ import annotations

import http.client
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from .harness import REQUEST_TIMEOUT, Site

#: the load: client threads per front end, each a request every PACE seconds at most
CLIENTS = 2
PACE = 0.01
POST_BODY = b"p" * 4096
#: bounds of the load, whatever happens to the test
LOAD_REQUESTS = 20_000
LOAD_SECONDS = 240.0
#: how long a wait on what the clients see may take: enough for HAProxy to see a change
#: (two checks 2 s apart) and nginx to try a failed server again (fail_timeout 10 s), on
#: a loaded machine
WAIT_TIMEOUT = 30.0


@dataclass(frozen=True)
class Outcome:
    """One request of the load: what it was, when, and what came back."""

    front: str
    method: str
    started: float
    ended: float
    status: int | None  # None: no HTTP answer at all
    pid: int | None  # the process that answered a GET
    problem: str  # "" when it succeeded


class Load:
    """Client threads sending GETs and POSTs (one in four) through each front end."""

    def __init__(self, fronts: dict[str, Site], mount: str) -> None:
        self.fronts = fronts
        self.mount = mount
        self.outcomes: list[Outcome] = []
        self._changed = threading.Condition()
        self._stop = threading.Event()
        self._deadline = time.monotonic() + LOAD_SECONDS
        self._threads = [
            threading.Thread(target=self._client, args=(front, site, n), daemon=True)
            for front, site in fronts.items()
            for n in range(CLIENTS)
        ]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(REQUEST_TIMEOUT)
        assert not any(thread.is_alive() for thread in self._threads)

    def _client(self, front: str, site: Site, n: int) -> None:
        for i in range(LOAD_REQUESTS):
            # the pace keeps the load steady rather than flat out on a shared machine
            if self._stop.wait(PACE) or time.monotonic() > self._deadline:
                return
            method = "POST" if i % 4 == n else "GET"
            started = time.monotonic()
            status, pid, problem = self._send(site, method, i)
            outcome = Outcome(front, method, started, time.monotonic(), status, pid, problem)
            with self._changed:
                self.outcomes.append(outcome)
                self._changed.notify_all()

    def _send(self, site: Site, method: str, i: int) -> tuple[int | None, int | None, str]:
        try:
            if method == "POST":
                headers = {"Content-Type": "application/octet-stream"}
                response = site.request("POST", f"{self.mount}/echo", POST_BODY, headers)
            else:
                response = site.get(f"{self.mount}/env/load{i}")
        except (OSError, http.client.HTTPException) as exc:
            return None, None, repr(exc)
        if response.status != 200:
            return response.status, None, f"{response.status} {response.body[:200]!r}"
        answer = response.json()
        if method == "POST":
            lost = answer["length"] != len(POST_BODY)
            return 200, None, f"body arrived as {answer['length']} bytes" if lost else ""
        return 200, int(answer["pid"]), ""

    def wait_for(self, what: str, condition: Callable[[list[Outcome]], bool]) -> float:
        """Block until ``condition(outcomes)`` holds; return when it did."""
        deadline = time.monotonic() + WAIT_TIMEOUT
        with self._changed:
            while not condition(self.outcomes):
                remaining = deadline - time.monotonic()
                assert remaining > 0, f"no {what} in {WAIT_TIMEOUT}s"
                self._changed.wait(remaining)
        return time.monotonic()

    def wait_served_by(self, pid: int, since: float) -> dict[str, float]:
        """Wait until ``pid`` answered a GET through every front end; when each first did."""
        first: dict[str, float] = {}
        for front in self.fronts:

            def served(outcomes: list[Outcome], front: str = front) -> bool:
                return any(
                    o.front == front and o.pid == pid and o.started >= since for o in outcomes
                )

            self.wait_for(f"GET answered by {pid} through {front}", served)
            first[front] = min(
                o.ended for o in self.snapshot() if o.front == front and o.pid == pid
            )
        return first

    def wait_for_more(self, count: int, since: float) -> float:
        """Wait until ``count`` requests sent since ``since`` were answered, per front end."""
        for front in self.fronts:

            def enough(outcomes: list[Outcome], front: str = front) -> bool:
                done = [o for o in outcomes if o.front == front and o.started >= since]
                return len(done) >= count

            self.wait_for(f"{count} requests through {front}", enough)
        return time.monotonic()

    def snapshot(self) -> list[Outcome]:
        with self._changed:
            return list(self.outcomes)

    def during(self, started: float, ended: float) -> list[Outcome]:
        return [o for o in self.snapshot() if started <= o.started < ended]


def report(load: Load, step: str, started: float, ended: float) -> dict[str, list[Outcome]]:
    """Print the step's figures per front end; return its failed requests per front end."""
    failed: dict[str, list[Outcome]] = {}
    for front in load.fronts:
        done = [o for o in load.during(started, ended) if o.front == front]
        failures = failed[front] = [o for o in done if o.problem]
        methods = Counter(o.method for o in done)
        failed_methods = Counter(o.method for o in failures)
        slowest = max((o.ended - o.started for o in done), default=0.0)
        print(
            f"[multihost] {step} via {front} ({ended - started:.1f} s): {len(done)} requests "
            f"({methods['GET']} GET, {methods['POST']} POST), failed: "
            f"{failed_methods['GET']} GET, {failed_methods['POST']} POST; "
            f"slowest {slowest:.2f} s"
        )
        for outcome in failures:
            print(f"[multihost]     failed {outcome.method}: {outcome.problem}")
    return failed
