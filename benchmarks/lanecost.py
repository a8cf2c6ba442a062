"""What a request costs by the shape of its connection, in instructions (keep-conn's lanes).

    python3 benchmarks/lanecost.py                  CPU µs per request and the app's share
    python3 benchmarks/lanecost.py --callgrind      instructions per request, under valgrind
    python3 benchmarks/lanecost.py --path /flask    the Flask app (benchmarks/apps.py)

Three shapes, each driven through a real :class:`~fcgikit.server.server.Server`'s loop steps
(``loop.poll``, ``admit``, ``run_ready``) in this one process, the client on a unix socket:

- ``off``: a connection per request without FCGI_KEEP_CONN (nginx's default): the direct lane;
- ``fresh``: a connection per request WITH FCGI_KEEP_CONN, closed by the client after its
  reply, then the server's round that reads that EOF: what nginx does with
  ``fastcgi_keep_conn`` when its upstream keepalive cache overflows (most requests at 256
  client connections with ``keepalive 32``);
- ``kept``: request after request on one keep-conn connection.

The client's own calls are counted too (the same in ``off`` and ``fresh``). ``--callgrind``
runs each shape twice (``--requests`` and three times as many) and divides the difference.

Without ``--callgrind``: this thread's CPU time a request, the best of 5 runs, and how much
of it went inside the app's call. Instructions do not show what the work around the app
costs the app itself: the same app code runs slower after more work between its calls
(benchmarks/RESULTS.md, "Issue 26, the pure-Python build, round 7").
"""

from __future__ import annotations

import argparse
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import apps  # next to this file (sys.path above)
from hotpath import request_bytes
from workercost import callgrind_instructions

from fcgikit.server.poller import READABLE
from fcgikit.server.server import Server, admit
from fcgikit.server.settings import ServerSettings

SHAPES = ("off", "fresh", "kept")


class TimedApp:
    """The benchmark's app, with the CPU time this thread spent inside its calls."""

    def __init__(self) -> None:
        self.nanoseconds = 0

    def __call__(
        self, environ: apps.Environ, start_response: apps.StartResponse
    ) -> Iterable[bytes]:
        started = time.thread_time_ns()
        try:
            return apps.application(environ, start_response)
        finally:
            self.nanoseconds += time.thread_time_ns() - started


def driver(
    shape: str, directory: str, path: str = "/hello", app: apps.WSGIApp = apps.application
) -> Callable[[], None]:
    address = f"{directory}/{shape}.sock"
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(address)
    listener.listen(64)
    listener.setblocking(False)
    server = Server(app, ServerSettings(), listeners=[listener])
    server.acceptor.listen()
    server.loop.poller.register(server.loop.wake_r.fileno(), READABLE, server.loop.wake_r)
    pool = server.pool
    pool._leader = threading.get_ident()  # this thread holds the loop role
    data = request_bytes(path, keep_conn=shape != "off")
    kept: list[socket.socket] = []

    def loop_round() -> None:
        server.loop.poll()
        arrived, server.arrived = server.arrived, []
        admit(arrived, pool)
        pool.run_ready()

    def one() -> None:
        if shape == "kept":
            if not kept:
                kept.append(socket.socket(socket.AF_UNIX))
                kept[0].connect(address)
            client = kept[0]
        else:
            client = socket.socket(socket.AF_UNIX)
            client.connect(address)
        client.sendall(data)
        loop_round()
        if b"Hello" not in client.recv(65536):
            raise RuntimeError("no reply")
        if shape == "kept":
            return
        client.close()
        if shape == "fresh":
            loop_round()  # the EOF
        if server.channels or server.direct:
            raise RuntimeError("the server did not close the connection")

    one()
    return one


def run(shape: str, requests: int, path: str) -> None:
    with tempfile.TemporaryDirectory() as directory:
        one = driver(shape, directory, path)
        for _ in range(requests):
            one()


def cpu_microseconds(shape: str, requests: int, path: str) -> tuple[float, float]:
    """CPU µs a request on this thread, and of it inside the app: the best of 5 runs."""
    app = TimedApp()
    with tempfile.TemporaryDirectory() as directory:
        one = driver(shape, directory, path, app)
        best = (float("inf"), 0.0)
        for _ in range(5):
            app.nanoseconds = 0
            started = time.thread_time_ns()
            for _ in range(requests):
                one()
            best = min(best, (time.thread_time_ns() - started, app.nanoseconds))
    return best[0] / requests / 1e3, best[1] / requests / 1e3


def instructions(shape: str, requests: int, path: str) -> int:
    """User-space instructions of this script run under callgrind for ``requests``."""
    return callgrind_instructions(
        [__file__, "--shape", shape, "--requests", str(requests), "--path", path]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", choices=SHAPES, help="one run of this shape, for callgrind")
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--callgrind", action="store_true", help="instructions per request")
    parser.add_argument("--path", default="/hello", help="/hello, or /flask for the Flask app")
    args = parser.parse_args(argv)
    if args.shape is not None:
        run(args.shape, args.requests, args.path)
        return 0
    for shape in SHAPES:
        if args.callgrind:
            few = instructions(shape, args.requests, args.path)
            many = instructions(shape, 3 * args.requests, args.path)
            print(f"  {shape:6} {(many - few) / (2 * args.requests):10,.0f} instructions/request")
            continue
        whole, in_app = cpu_microseconds(shape, args.requests, args.path)
        print(f"  {shape:6} {whole:7.1f} CPU µs/request, {in_app:5.1f} of them in the app")
    return 0


if __name__ == "__main__":
    sys.exit(main())
