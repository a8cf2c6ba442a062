"""The server's accept path under attack: no descriptors left, and refused peers.

Out of file descriptors, ``accept`` fails while the connection stays queued, so the listener
stays readable: a level-triggered loop that only logs would retry at once, for ever (100%
CPU, a million log lines in seconds). The server must stop polling the listener, say so once
per interval with a count, and accept again when a connection closes or after a short
pause. The in-process tests lower this process's RLIMIT_NOFILE to the lowest free descriptor
(no new descriptor at all can be made), with the clients' sockets made beforehand; the real
process test runs ``fcgikit serve`` under ``ulimit -n 256`` against 400 held connections.
"""

from __future__ import annotations

import contextlib
import os
import re
import resource
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fcgikit.addresses import TcpAddress, UnixAddress
from fcgikit.client import FastCGIClient
from fcgikit.protocol import ProtocolStatus
from fcgikit.protocol.record_reader import RecordReader
from fcgikit.server import Server, ServerSettings
from fcgikit.server.accept import SHARED_ACCEPT_BATCH
from fcgikit.server.listeners import parse_web_server_addrs
from tests.processes import Backend, cpu_seconds, fcgikit_command
from tests.server.test_hostile import (
    END,
    STDOUT,
    Log,
    Peer,
    digest_app,
    request_bytes,
    wait_until,
)

TESTS = Path(__file__).resolve().parents[1]
ENV = {"PYTHONPATH": str(TESTS)}
#: what every line about the failed accepts mentions (EMFILE's strerror)
OUT_OF_FDS = "Too many open files"


@pytest.fixture
def log(caplog: pytest.LogCaptureFixture) -> Log:
    return Log(caplog)


def hello(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"hello " + environ["PATH_INFO"].encode()]


@contextlib.contextmanager
def no_new_descriptors() -> Iterator[None]:
    """No descriptor can be made in this process until the block ends (EMFILE)."""
    probe = os.open(os.devnull, os.O_RDONLY)
    os.close(probe)  # the lowest free number: the next one made would get it
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (probe, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def answer(sock: socket.socket, timeout: float = 10) -> bytes:
    """The STDOUT of the one request sent on ``sock``, read until the server closes it."""
    records: list[tuple[int, bytes]] = []
    reader = RecordReader()
    sock.settimeout(timeout)
    while data := sock.recv(65536):
        reader.feed(data, lambda kind, rid, content: records.append((kind, bytes(content))))
    assert any(kind == END for kind, _ in records), records
    return b"".join(content for kind, content in records if kind == STDOUT)


def send_requests_the_server_cannot_accept(
    path: str, waiting: list[socket.socket], log: Log
) -> None:
    """Connect ``waiting`` (made beforehand) and send a request on each, ``/w0``, ``/w1``...;
    return once the server said it cannot accept them."""
    for number, sock in enumerate(waiting):
        sock.connect(path)
        sock.sendall(request_bytes(1, f"/w{number}"))
    log.wait_for_one(OUT_OF_FDS)


def process_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def test_out_of_descriptors_pauses_accepting_logs_once_and_resumes(serve: Any, log: Log) -> None:
    running = serve(hello)
    waiting = [socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) for _ in range(4)]
    try:
        with no_new_descriptors():
            send_requests_the_server_cannot_accept(running.path, waiting, log)
            # The window in which a loop that retried at once would spin; its CPU is measured.
            before = process_cpu()
            time.sleep(1.0)
            spent = process_cpu() - before
            assert [r for r in log.new() if OUT_OF_FDS in r.getMessage()] == []
        assert spent < 0.3, f"{spent:.2f}s of CPU in 1s while out of descriptors"
        # Descriptors are back; no connection closed: the pause ends by itself.
        for number, sock in enumerate(waiting):
            assert answer(sock).endswith(f"hello /w{number}".encode())
    finally:
        for sock in waiting:
            sock.close()
    assert running.client(timeout=10).request("GET", "/after").body == b"hello /after"


def test_out_of_descriptors_a_closed_connection_lets_the_next_in(serve: Any, log: Log) -> None:
    running = serve(hello)
    running.server.acceptor.retry_after = 3600.0  # only a closing connection resumes accepting
    holder = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    holder.connect(running.path)
    holder.sendall(request_bytes(1, "/held", keep_conn=True))
    holder.settimeout(10)
    assert holder.recv(65536)  # accepted and answered: the server holds a descriptor for it
    waiting = [socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) for _ in range(3)]
    try:
        with no_new_descriptors():
            send_requests_the_server_cannot_accept(running.path, waiting, log)
            holder.close()
            # Each answered connection is closed, which lets the next one in.
            for number, sock in enumerate(waiting):
                assert answer(sock).endswith(f"hello /w{number}".encode())
    finally:
        holder.close()
        for sock in waiting:
            sock.close()


def test_refused_peers_are_logged_a_few_lines_with_a_count(serve: Any, log: Log) -> None:
    """3,000 connections from an address outside FCGI_WEB_SERVER_ADDRS: a handful of lines
    that name it and add up to 3,000, not 3,000 lines."""
    running = serve(
        digest_app,
        binds=(TcpAddress("127.0.0.1", 0),),
        web_server_addrs=parse_web_server_addrs("192.0.2.7"),
    )
    address = running.server.listeners[0].getsockname()
    for _ in range(3000):
        with socket.create_connection(address, timeout=10):
            pass
    counted: list[int] = []

    def all_counted() -> bool:
        for record in log.new():
            message = record.getMessage()
            if "FCGI_WEB_SERVER_ADDRS" in message:
                assert "127.0.0.1" in message, message
                times = re.search(r"; (\d+) times in the last", message)
                counted.append(int(times.group(1)) if times else 1)
        return sum(counted) >= 3000

    wait_until(all_counted, 20, "3,000 refused connections in the log")
    assert sum(counted) == 3000
    assert len(counted) <= 5, counted


# --- a real process under ulimit -n 256 --------------------------------------------------------

HELD = 400


def hold_connections(path: str, count: int) -> list[socket.socket]:
    """``count`` connections, each with a keep-conn request sent and never closed."""
    held = []
    for number in range(count):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(path)
        sock.sendall(request_bytes(1, f"/held{number}", keep_conn=True))
        held.append(sock)
    return held


@pytest.mark.parametrize("workers", [None, "1"], ids=["single-process", "workers"])
def test_ulimit_256_and_400_held_connections(tmp_path: Path, workers: str | None) -> None:
    path = str(tmp_path / "app.sock")
    argv = fcgikit_command("serve", "apps.hello:app", "--bind", f"unix:{path}")
    if workers is not None:
        argv += ["--workers", workers]
    backend = Backend(["sh", "-c", 'ulimit -n 256 && exec "$0" "$@"', *argv], env=ENV)
    held: list[socket.socket] = []
    try:
        if workers is None:
            backend.wait_for("listening on")
            pid = backend.proc.pid
        else:
            pid = int(backend.wait_for(r"worker (\d+) ready").group(1))
        held = hold_connections(path, HELD)
        backend.wait_for(OUT_OF_FDS)
        pids = {pid, backend.proc.pid}  # the worker and its master, or the one process
        before = sum(map(cpu_seconds, pids))
        time.sleep(2.0)  # the window whose CPU time is measured
        spent = sum(map(cpu_seconds, pids)) - before
        assert spent < 0.2, f"{spent:.2f}s of CPU in 2s while out of descriptors"
        for sock in held:
            sock.close()
        held = []
        bodies = {
            FastCGIClient(f"unix:{path}", timeout=10).request("GET", f"/n{n}").body
            for n in range(20)
        }
        assert bodies == {f"hello from /n{n}".encode() for n in range(20)}
        assert 1 <= backend.count(OUT_OF_FDS) < 10, backend.stderr[-3000:]
    finally:
        for sock in held:
            sock.close()
        assert backend.stop(signal.SIGTERM) == 0, backend.stderr[-3000:]


def test_a_stop_serves_the_connections_still_queued_on_the_listener(tmp_path: Path) -> None:
    """A web server may have sent its request on a connection the server had not accepted
    yet when a stop closes the listener; the kernel would reset it, and nginx answers such a
    POST 502 (it resends only a GET). The stop accepts what is queued first, and serves it."""
    path = str(tmp_path / "app.sock")
    settings = ServerSettings(binds=(UnixAddress(path),), handle_signals=False)
    server = Server(hello, settings)
    serving = threading.Thread(target=server.serve, daemon=True)
    try:
        with contextlib.closing(Peer(path)) as first, contextlib.closing(Peer(path)) as second:
            # queued on the listener, then the stop comes before the loop ever accepts
            first.send(request_bytes(1, "/queued", body=b"a form"))
            second.send(request_bytes(1, "/also-queued"))
            server.stop("test: stopping")
            serving.start()
            for queued, path_info in ((first, b"/queued"), (second, b"/also-queued")):
                reply = queued.read_end(1)
                assert reply.ends(1) == [ProtocolStatus.REQUEST_COMPLETE]
                assert reply.bodies(1) == [b"hello " + path_info]
    finally:
        server.stop("test over")
        serving.join(10)
    assert not serving.is_alive()


def shared_listener(tmp_path: Path) -> tuple[socket.socket, str]:
    """A listening unix socket for servers to share, and its address for clients."""
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(tmp_path / "shared.sock"))
    listener.listen(16)
    return listener, f"unix:{tmp_path / 'shared.sock'}"


def naming_app(
    name: str, entered: threading.Event, release: threading.Event, threads: list[int] | None = None
) -> Any:
    """An app answering its server's ``name``; ``/block`` sets ``entered`` (and notes its
    thread in ``threads``), then waits for ``release``."""

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        if environ["PATH_INFO"] == "/block":
            if threads is not None:
                threads.append(threading.get_ident())
            entered.set()
            release.wait(10)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [name.encode()]

    return app


def test_a_server_sharing_its_listener_leaves_connections_to_a_sibling_while_busy(
    serve: Any, tmp_path: Path
) -> None:
    """A prefork worker whose threads are all busy accepts nothing more: what arrives waits in
    the shared backlog for a sibling with a free thread, not behind the busy one."""
    listener, address = shared_listener(tmp_path)
    entered = threading.Event()
    release = threading.Event()

    def app_of(name: str) -> Any:
        return naming_app(name, entered, release)

    def ask(path: str, answers: list[bytes]) -> threading.Thread:
        def run() -> None:
            with FastCGIClient(address, timeout=10) as client:
                answers.append(client.request(path=path).body)

        thread = threading.Thread(target=run)
        thread.start()
        return thread

    busy = serve(app_of("busy"), listeners=[listener], share_listeners=True, threads=1)
    blocked: list[bytes] = []
    quick: list[bytes] = []
    threads = [ask("/block", blocked)]
    try:
        assert entered.wait(10)
        threads.append(ask("/quick", quick))
        # the busy server sees the connection arrive, and stops accepting instead of taking it
        wait_until(lambda: busy.server.acceptor.paused, what="the busy server to pause")
        assert busy.server.connection_count() == 1
        serve(app_of("sibling"), listeners=[listener.dup()], share_listeners=True, threads=1)
        threads[1].join(10)
        assert quick == [b"sibling"]
    finally:
        release.set()
        for thread in threads:
            thread.join(10)
    assert blocked == [b"busy"]


def test_a_busy_server_leaves_a_connection_to_a_sibling_already_waiting(
    serve: Any, tmp_path: Path
) -> None:
    """A connection arriving on a shared listener wakes one of the processes waiting on it
    (EPOLLEXCLUSIVE). The busy server, whose one thread a request on a kept connection took
    after its last accept, must not be that one: the idle sibling serves the connection."""
    listener, address = shared_listener(tmp_path)
    entered = threading.Event()
    release = threading.Event()
    blocking_thread: list[int] = []

    def app_of(name: str) -> Any:
        return naming_app(name, entered, release, blocking_thread)

    blocked: list[bytes] = []
    quick: list[bytes] = []
    busy = serve(app_of("busy"), listeners=[listener], share_listeners=True, threads=1)
    kept = FastCGIClient(address, keep_conn=True, timeout=10)
    assert kept.request(path="/warm").body == b"busy"  # accepted while it had room
    serve(app_of("sibling"), listeners=[listener.dup()], share_listeners=True, threads=1)
    blocking = threading.Thread(target=lambda: blocked.append(kept.request(path="/block").body))
    blocking.start()

    def ask_quick() -> None:
        with FastCGIClient(address, timeout=10) as client:
            quick.append(client.request(path="/quick").body)

    asking = threading.Thread(target=ask_quick)
    try:
        assert entered.wait(10)
        # the loop's thread gives the loop role up to a free one and waits for connections
        wait_until(
            lambda: busy.server.pool._leader not in (None, blocking_thread[0]),
            what="the busy server's loop to move off the blocked thread",
        )
        asking.start()
        wait_until(lambda: bool(quick), what="the idle sibling to answer")
        assert quick == [b"sibling"]
        assert busy.server.connection_count() == 1  # the kept connection only
    finally:
        release.set()
        blocking.join(10)
        if asking.ident is not None:
            asking.join(10)
        kept.close()
    assert blocked == [b"busy"]


def held_when_the_first_request_starts(tmp_path: Path, queued: int, threads: int) -> int:
    """Queue ``queued`` connections with their requests on a shared listener, then serve
    them in a prefork worker of ``threads`` threads: how many connections the worker holds
    when the first request starts (every one answered)."""
    listener, address = shared_listener(tmp_path)
    clients = []
    for number in range(queued):
        client = socket.socket(socket.AF_UNIX)
        client.connect(address.removeprefix("unix:"))
        client.sendall(request_bytes(1, f"/{number}"))
        clients.append(client)
    servers: list[Server] = []
    connections_at_start: list[int] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        connections_at_start.append(servers[0].connection_count())
        return hello(environ, start_response)

    settings = ServerSettings(
        binds=(UnixAddress(str(tmp_path / "shared.sock")),),
        handle_signals=False,
        share_listeners=True,
        threads=threads,
    )
    servers.append(Server(app, settings, [listener]))
    thread = threading.Thread(target=servers[0].serve, daemon=True)
    thread.start()
    try:
        answers = [answer(client) for client in clients]
    finally:
        servers[0].stop("test over")
        thread.join(10)
        for client in clients:
            client.close()
    assert [reply.endswith(b"\r\n\r\nhello /%d" % n) for n, reply in enumerate(answers)] == [
        True
    ] * len(clients)
    return connections_at_start[0]


def test_a_server_sharing_its_listener_takes_a_few_connections_a_round(tmp_path: Path) -> None:
    """A prefork worker takes a few connections a round of its loop, not all that wait: the
    round's requests run one after another on the loop's thread, and one taken beyond those
    would wait here behind them where the shared backlog could give it to whichever sibling
    is free first. Connections queued with their requests: when the first starts, the
    worker has taken SHARED_ACCEPT_BATCH of them; every one is answered."""
    held = held_when_the_first_request_starts(tmp_path, SHARED_ACCEPT_BATCH + 1, threads=64)
    assert held == SHARED_ACCEPT_BATCH


def test_a_worker_runs_a_round_of_sixteen_requests_for_one_wake_up(tmp_path: Path) -> None:
    """Under load a worker's loop goes back to the poller once a round: a round of sixteen
    requests (what its sixteen default threads hold) runs them back to back on the loop's
    thread, where rounds of a few hand the core to the web server's processes and back
    between every few requests, which costs CPU a request. Seventeen queued (what the listener's
    backlog holds): sixteen taken before the first runs, the last left for a sibling."""
    assert held_when_the_first_request_starts(tmp_path, 17, threads=64) == 16
