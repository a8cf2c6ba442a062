"""What a prefork worker (``fcgikit serve --workers N``) adds to a request, in instructions.

    python3 benchmarks/workercost.py                  µs per request, single process and worker
    python3 benchmarks/workercost.py --callgrind      instructions per request, under valgrind
    python3 benchmarks/workercost.py --mode worker --requests 1000   one run (what --callgrind runs)
    python3 benchmarks/workercost.py --callgrind --burst 32   connections 32 at a time (nginx, c64)
    python3 benchmarks/workercost.py --callgrind --burst 32 --threads 1   ... with --threads 1

Both modes drive the direct lane (nginx's default: a connection per request) through a real
:class:`~fcgikit.server.server.Server` in this one process, as its loop does: the
:class:`~fcgikit.server.accept.Acceptor` accepts from a unix socket, ``admit`` hands the
request to the real :class:`~fcgikit.server.pool.WorkerPool`, and ``run_ready`` runs it on this
thread and sends its reply. "single" is ``fcgikit serve`` without ``--workers``; "worker" is
what :func:`~fcgikit.server.worker.run_worker` builds in a worker: the same server with the
worker's settings (the listeners shared with siblings) and a
:class:`~fcgikit.server.worker.RequestTracker` writing each request to a real scoreboard
slot. No status page, slow log or ``--max-requests`` (the benchmark's ``--workers 2`` has
none).

Instructions, unlike time, do not depend on what else the machine runs: ``--callgrind`` runs
each mode twice under ``valgrind --tool=callgrind`` (``--requests`` and five times as many) and
divides the difference by the extra requests, so start-up cancels out. It counts user space
only (the system calls are the same in both modes). The client's own calls (connect, send,
recv, close) are in both.
"""

from __future__ import annotations

import argparse
import os
import re
import select
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import apps  # next to this file (sys.path above)
from hotpath import request_bytes

from fcgikit.server.poller import READABLE
from fcgikit.server.scoreboard import Scoreboard
from fcgikit.server.server import Server, admit
from fcgikit.server.settings import ServerSettings
from fcgikit.server.worker import RequestTracker

MODES = ("single", "worker")


def build(mode: str, listener: socket.socket, threads: int | None) -> Server:
    """The server ``fcgikit serve`` runs in ``mode`` (see the module docstring), with
    ``--threads threads`` unless None."""
    settings = ServerSettings() if threads is None else ServerSettings(threads=threads)
    app: Any = apps.application
    if mode == "worker":
        # as run_worker does, without a status page
        board = Scoreboard(1, settings.threads)
        tracker = RequestTracker(board.slot(0), settings.threads, report_saturation=False)
        settings = replace(
            settings,
            handle_signals=False,
            multiprocess=True,
            share_listeners=True,
            binds=(),
            tracker=tracker,
        )
    return Server(app, settings, listeners=[listener])


def driver(
    mode: str,
    directory: str,
    path: str,
    late: bool = False,
    later: bool = False,
    burst_size: int = 0,
    threads: int | None = None,
) -> Callable[[], None]:
    """One request on a connection of its own, through the server's loop's steps; ``late``:
    its bytes sent after the accept (a worker woken by the connect runs before the web
    server's write), the next round of the loop (``loop.poll``) finding them; ``later``: sent
    after that next round began, too (an idle worker's next round comes at once: through
    nginx most late connections are still silent then), a further round finding them.
    ``burst_size``: that many connections at once, their requests sent, served by the
    loop's rounds (``Loop.lead``'s steps) until each is answered: a call serves them all."""
    address = f"{directory}/{mode}.sock"
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(address)
    listener.listen(64)
    listener.setblocking(False)
    server = build(mode, listener, threads)
    server.acceptor.listen()
    pool = server.pool
    pool._leader = threading.get_ident()  # this thread holds the loop role
    # The sweep, once a second, comes every few hundred requests under valgrind: not at all
    # here (it would also make the connections waiting for their bytes Channels).
    server.loop.next_sweep = time.monotonic() + 3600
    loop = server.loop
    loop.poller.register(loop.wake_r.fileno(), READABLE, loop.wake_r)  # as serve()
    data = request_bytes(path, keep_conn=False)

    def one() -> None:
        with socket.socket(socket.AF_UNIX) as client:
            client.connect(address)
            if later:
                server.acceptor.accept(listener)
                server.loop.wake()  # a round that finds only the wake-up (both trees pay it)
                server.loop.poll()
                client.sendall(data)
                server.loop.poll()
            elif late:
                server.acceptor.accept(listener)
                client.sendall(data)
                server.loop.poll()
            else:
                client.sendall(data)
                server.acceptor.accept(listener)
            arrived, server.arrived = server.arrived, []
            admit(arrived, pool)
            pool.run_ready()
            if b"Hello" not in client.recv(65536):
                raise RuntimeError("no reply")
        if server.direct:
            raise RuntimeError("the server did not close the connection")

    def burst() -> None:
        # nginx at c64 without keep-conn: many connections at once; a worker takes as
        # many as it has threads, runs them, and accepts the rest in its next rounds
        clients = []
        for _ in range(late_burst):
            client = socket.socket(socket.AF_UNIX)
            client.connect(address)
            client.sendall(data)
            clients.append(client)
        for client in clients:
            # rounds until its reply came (asked without an exception, which would cost the
            # client more where each round answers fewer)
            while not select.select([client], [], [], 0)[0]:
                step()
            reply = client.recv(65536)
            if b"Hello" not in reply:
                raise RuntimeError("no reply")
            client.close()

    def step() -> None:
        # a round of Loop.lead
        loop.poll()
        arrived, server.arrived = server.arrived, []
        admit(arrived, pool)
        pool.run_ready()

    late_burst = burst_size
    if burst_size:
        burst()
        return burst
    one()
    return one


def run(
    mode: str, requests: int, path: str, late: bool, later: bool, burst: int, threads: int | None
) -> None:
    with tempfile.TemporaryDirectory() as directory:
        one = driver(mode, directory, path, late, later, burst, threads)
        for _ in range(requests // max(burst, 1)):
            one()


def instructions(
    mode: str, requests: int, path: str, late: bool, later: bool, burst: int, threads: int | None
) -> int:
    """User-space instructions of this script run under callgrind for ``requests``."""
    return callgrind_instructions(
        [__file__, "--mode", mode, "--requests", str(requests), "--path", path,
         *(["--late"] if late else []), *(["--later"] if later else []),
         "--burst", str(burst), *(["--threads", str(threads)] if threads else [])]
    )  # fmt: skip


def callgrind_instructions(script_argv: list[str]) -> int:
    """User-space instructions of ``python script_argv...`` run under callgrind."""
    with tempfile.TemporaryDirectory() as directory:
        out = f"{directory}/callgrind.out"
        command = [
            "valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
            sys.executable, *script_argv,
        ]  # fmt: skip
        subprocess.run(command, check=True, capture_output=True)
        summary = re.search(r"^summary: (\d+)", Path(out).read_text(), re.MULTILINE)
        assert summary is not None
        return int(summary.group(1))


def best_microseconds(one: Callable[[], None], requests: int) -> float:
    """µs per call of ``one``, the best of 5 runs of ``requests`` calls."""
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(requests):
            one()
        best = min(best, time.perf_counter() - started)
    return best / requests * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=MODES, help="one run of this mode, for callgrind")
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--path", default="/hello")
    parser.add_argument("--callgrind", action="store_true", help="instructions per request")
    parser.add_argument("--late", action="store_true", help="bytes sent after the accept")
    parser.add_argument(
        "--later", action="store_true", help="bytes sent after the next round began too"
    )
    parser.add_argument(
        "--burst", type=int, default=0, help="connections at once, as nginx at c64 (e.g. 32)"
    )
    parser.add_argument("--threads", type=int, help="the server's --threads (its default)")
    args = parser.parse_args(argv)
    shape = (args.path, args.late, args.later, args.burst, args.threads)
    if args.mode is not None:
        run(args.mode, args.requests, *shape)
        return 0
    pure = " (pure Python)" if os.environ.get("FCGIKIT_PURE_PYTHON") == "1" else ""
    if args.callgrind:
        late = ", bytes after the accept" if args.late else ""
        late = ", bytes after the next round began" if args.later else late
        late = f", bursts of {args.burst} connections" if args.burst else late
        threads = f", {args.threads} threads" if args.threads else ""
        print(f"instructions per request, {args.path}{late}{threads}{pure}:")
        for mode in MODES:
            few = instructions(mode, args.requests, *shape)
            many = instructions(mode, 5 * args.requests, *shape)
            print(f"  {mode:7} {(many - few) / (4 * args.requests):10,.0f}")
        return 0
    print(f"µs per request, best of 5 x {args.requests}, {args.path}{pure}:")
    with tempfile.TemporaryDirectory() as directory:
        for mode in MODES:
            one = driver(mode, directory, *shape)
            calls = args.requests // max(args.burst, 1)
            print(f"  {mode:7} {best_microseconds(one, calls) / max(args.burst, 1):7.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
