"""The replies of requests that were ready together go out together, and none waits long."""

from __future__ import annotations

import logging
import select
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from fcgikit.server import held_replies, watcher
from fcgikit.server.held_replies import HELD_FOR, HELD_MAX
from fcgikit.server.pool import WorkerPool
from tests.server.conftest import RunningServer
from tests.server.test_hostile import wait_until
from tests.server.test_pool import (
    WAIT,
    Environ,
    NotedReply,
    one_write_request,
    read_response,
    run_pool,
)


class WaitingClients:
    """A before_serving hook: one connection per path, each with its whole request sent, so
    the server's first round of the loop accepts them all and has them ready at once."""

    def __init__(self, paths: list[str], *, keep_conn: bool) -> None:
        self.paths = paths
        self.keep_conn = keep_conn
        self.socks: dict[str, socket.socket] = {}

    def __call__(self, address: str) -> None:
        for path in self.paths:
            sock = socket.socket(socket.AF_UNIX)
            self.socks[path] = sock
            sock.connect(address)
            sock.sendall(one_write_request(path, keep_conn=self.keep_conn))
            sock.settimeout(WAIT)

    def close(self) -> None:
        for sock in self.socks.values():
            sock.close()


@pytest.fixture(params=[False, True], ids=["one-request", "keep-conn"])
def keep_conn(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


@pytest.fixture
def patient_holds(monkeypatch: pytest.MonkeyPatch) -> None:
    """Held replies wait for their whole batch: a test that counts on it is not at the mercy
    of a busy machine pausing a quick request for a millisecond (HELD_FOR)."""
    monkeypatch.setattr(held_replies, "HELD_FOR", 60.0)


def has_reply(sock: socket.socket) -> bool:
    return bool(select.select([sock], [], [], 0)[0])


def test_replies_of_requests_that_arrived_together_go_out_together(
    serve: Callable[..., RunningServer], keep_conn: bool, patient_holds: None
) -> None:
    """Sent one by one, each reply would wake a web server that went idle while the app ran;
    the first reply waits until the last request that arrived with it has run."""
    clients = WaitingClients(["/first", "/second"], keep_conn=keep_conn)
    first_reply_out: list[bool] = []

    def app(environ: Environ, start_response: Any) -> list[bytes]:
        if environ["PATH_INFO"] == "/second":
            first_reply_out.append(has_reply(clients.socks["/first"]))
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [environ["PATH_INFO"].encode()]

    try:
        serve(app, before_serving=clients)
        assert read_response(clients.socks["/first"]).endswith(b"/first")
        assert read_response(clients.socks["/second"]).endswith(b"/second")
        assert first_reply_out == [False]
    finally:
        clients.close()


def test_a_reply_does_not_wait_for_a_slow_request_that_arrived_with_it(
    serve: Callable[..., RunningServer], keep_conn: bool
) -> None:
    clients = WaitingClients(["/quick", "/block"], keep_conn=keep_conn)
    release = threading.Event()

    def app(environ: Environ, start_response: Any) -> list[bytes]:
        if environ["PATH_INFO"] == "/block":
            release.wait(WAIT)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [environ["PATH_INFO"].encode()]

    try:
        running = serve(app, before_serving=clients)
        try:
            # /quick ran first and its reply waited for /block; once /block has held the
            # loop's thread for a tick, the thread that takes the loop over sends it
            assert read_response(clients.socks["/quick"]).endswith(b"/quick")
            assert not release.is_set()
        finally:
            release.set()
        assert read_response(clients.socks["/block"]).endswith(b"/block")
        assert running.server.pool.rescues == 1
    finally:
        clients.close()


def test_a_web_server_gone_before_its_held_reply_is_logged_and_the_rest_served(
    serve: Callable[..., RunningServer],
    keep_conn: bool,
    caplog: pytest.LogCaptureFixture,
    patient_holds: None,
) -> None:
    caplog.set_level(logging.INFO, logger="fcgikit.server")
    clients = WaitingClients(["/gone", "/second"], keep_conn=keep_conn)

    def app(environ: Environ, start_response: Any) -> list[bytes]:
        if environ["PATH_INFO"] == "/second":
            clients.socks["/gone"].close()  # /gone's reply is held: nobody will read it
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [environ["PATH_INFO"].encode()]

    try:
        running = serve(app, before_serving=clients)
        assert read_response(clients.socks["/second"]).endswith(b"/second")
        wait_until(
            lambda: "request #1 GET /gone: the web server went away" in caplog.text,
            what="the lost reply logged",
        )
        reply = running.client(timeout=WAIT).request("GET", "/after")
        assert (reply.status, reply.body) == (200, b"/after")
    finally:
        clients.close()


def test_the_thread_that_takes_the_loop_over_sends_the_held_replies_first() -> None:
    pool = WorkerPool(threads=4, max_queued=4)
    sent = threading.Event()
    release = threading.Event()
    sent_before_its_loop: list[bool] = []
    held_while_slow_ran: list[bool] = []

    def quick() -> NotedReply:
        return NotedReply(sent)  # slow is ready behind it: its reply waits

    def slow() -> None:
        held_while_slow_ran.append(not sent.is_set())
        release.wait(WAIT)  # holds the loop's thread until the watcher takes the loop over

    def lead() -> bool:
        if pool.rescues == 0:
            pool.admit(quick, ready=True)
            pool.admit(slow, ready=True)
            return pool.run_ready()  # False: slow lost the loop role
        # the thread that took the loop over, before anything else (a poll may wait 1 s)
        sent_before_its_loop.append(sent.is_set())
        release.set()
        return True

    run_pool(pool, lead)
    assert held_while_slow_ran == [True]
    assert sent_before_its_loop == [True]


def test_held_replies_go_out_once_there_are_sixteen(patient_holds: None) -> None:
    """A big round (nginx handing over 200 requests at once) does not keep its first
    replies until its last request has run."""
    pool = WorkerPool(threads=4, max_queued=64)
    sent: list[str] = []
    sent_when_run: list[int] = []

    def request(number: int) -> Callable[[], NotedReply]:
        def run() -> NotedReply:
            sent_when_run.append(len(sent))
            return NotedReply(sent, str(number))

        return run

    def lead() -> bool:
        for number in range(40):
            pool.admit(request(number), ready=True)
        assert pool.run_ready()
        return True

    run_pool(pool, lead)
    assert sent == [str(number) for number in range(40)]
    assert sent_when_run == [0] * HELD_MAX + [HELD_MAX] * HELD_MAX + [2 * HELD_MAX] * 8


def test_held_replies_go_out_before_the_next_request_once_one_took_a_while() -> None:
    """Fewer wake-ups of the web server are worth a millisecond, not a slow request's time:
    once a request behind it took HELD_FOR, a held reply goes before the next one runs."""
    pool = WorkerPool(threads=4, max_queued=4)
    sent: list[str] = []
    sent_when_last_ran: list[list[str]] = []

    def first() -> NotedReply:
        return NotedReply(sent, "first")

    def takes_a_while() -> NotedReply:
        time.sleep(2 * HELD_FOR)  # the request's own work, not a wait for anything
        return NotedReply(sent, "takes_a_while")

    def last() -> NotedReply:
        sent_when_last_ran.append(list(sent))
        return NotedReply(sent, "last")  # nothing held and nothing behind it: sent at once

    def lead() -> bool:
        for job in (first, takes_a_while, last):
            pool.admit(job, ready=True)
        assert pool.run_ready()
        return True

    pool.start(lead)  # no watcher: nothing takes the loop over, however long a request runs
    assert pool.wait_loop_over(WAIT)
    pool.shutdown()
    assert sent_when_last_ran == [["first", "takes_a_while"]]
    assert sent == ["first", "takes_a_while", "last"]


def test_held_replies_go_out_while_no_request_runs_on_the_loops_thread(
    patient_holds: None,
) -> None:
    """Held replies go out between two requests, never while the watcher counts the next one
    as running: a web server slow to read them is not taken for a slow request of the next
    one's (a rescue, and a back-off against its route)."""
    pool = WorkerPool(threads=4, max_queued=64)
    sent: list[str] = []
    ran: list[int] = []

    class SlowToRead(NotedReply):
        def send(self) -> None:
            time.sleep(10 * watcher.TICK)  # the web server's pace, not a wait for anything
            super().send()

    def request(number: int) -> Callable[[], NotedReply]:
        def run() -> NotedReply:
            ran.append(number)
            return (SlowToRead if number == 0 else NotedReply)(sent, str(number))

        return run

    def lead() -> bool:
        if ran:  # a rescue's thread: the batch is over (or was taken over)
            return True
        for number in range(HELD_MAX + 1):  # the first HELD_MAX go out before the last runs
            pool.admit(request(number), ready=True)
        return pool.run_ready()

    run_pool(pool, lead)
    wait_until(lambda: len(sent) == HELD_MAX + 1, WAIT, "every reply to go")
    assert pool.rescues == 0
    assert ran == list(range(HELD_MAX + 1))
