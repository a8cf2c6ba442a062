"""fcgikit's per-request CPU cost, in one process, with no web server and no threads.

    python3 benchmarks/hotpath.py                 the whole path and each stage, in µs
    python3 benchmarks/hotpath.py --app flask     the same through Flask
    python3 benchmarks/hotpath.py --profile       plus cProfile's top functions
    python3 benchmarks/hotpath.py --number 1 --repeat 1   a quick check that it still runs

The request is what nginx sends for ``wrk``'s ``GET /hello`` with ``fastcgi_keep_conn on``
(run.py's params, byte for byte in the same order). "whole path" drives a real
:class:`~fcgikit.server.channel.Channel` over a socketpair: ``on_readable`` reads and parses
the request and runs it inline (a pool that calls the job at once), the response is written
to the socket and read back. Against run.py's "CPU µs/req" for fcgikit, the difference is
what the threads cost (the hand-off to a worker, the GIL, the select loop).

"connection life" is what a keep-conn connection that serves one request costs, as nginx's
connections do when its upstream ``keepalive`` cache overflows (46% of them at 256 wrk
connections): a client connects to a real :class:`~fcgikit.server.server.Server`'s unix
socket and sends the request; the server accepts it, runs it on the direct lane, makes
the connection a Channel, and closes it when the client does. It includes the client's own
calls (connect, send, recv, close), the same in every build. "the same without keep-conn"
is nginx's default: a connection per request, whose request takes the direct lane
(:mod:`fcgikit.server.direct`) where it can.

Unlike wrk through nginx, this is steady on a noisy machine (best of several repeats), so it
is the number to watch while changing the hot path. One known swing: while ``Channel`` reads
with ``sock.recv(256 KiB)``, each read costs an mmap + munmap until glibc raises its mmap
threshold (after any >256 KiB block is freed), ~18 µs per request; so compare runs made the
same way. It uses fcgikit's internals and may need updating when they change.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import socket
import sys
import tempfile
import timeit
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import apps  # next to this file (sys.path above)

from fcgikit.protocol import ClientConnection, ServerConnection, WholeRequest
from fcgikit.protocol.records import decode_pairs, encode_pairs
from fcgikit.server.channel import RECV_SIZE, Channel
from fcgikit.server.held_replies import Job, ServerReply
from fcgikit.server.server import Server, admit
from fcgikit.server.settings import ServerSettings
from fcgikit.server.wsgi import WSGIRequest


def nginx_params(path: str) -> list[tuple[bytes, bytes]]:
    """What nginx 1.22 sends for ``GET path`` from wrk with run.py's fastcgi_param list."""
    return [
        (b"QUERY_STRING", b""),
        (b"REQUEST_METHOD", b"GET"),
        (b"CONTENT_TYPE", b""),
        (b"CONTENT_LENGTH", b""),
        (b"SCRIPT_NAME", b""),
        (b"PATH_INFO", path.encode()),
        (b"REQUEST_URI", path.encode()),
        (b"DOCUMENT_URI", path.encode()),
        (b"SERVER_PROTOCOL", b"HTTP/1.1"),
        (b"REQUEST_SCHEME", b"http"),
        (b"GATEWAY_INTERFACE", b"CGI/1.1"),
        (b"SERVER_SOFTWARE", b"nginx/1.22.1"),
        (b"REMOTE_ADDR", b"127.0.0.1"),
        (b"REMOTE_PORT", b"53124"),
        (b"SERVER_ADDR", b"127.0.0.1"),
        (b"SERVER_PORT", b"40211"),
        (b"SERVER_NAME", b""),
        (b"HTTP_HOST", b"127.0.0.1:40211"),
    ]


def request_bytes(path: str, *, keep_conn: bool = True) -> bytes:
    client = ClientConnection()
    return client.start_request(1, nginx_params(path), keep_conn=keep_conn) + client.end_stdin(1)


class InlinePool:
    """Runs each job at once on the calling thread, as the real pool runs a complete request
    on the loop's thread (without its lock and the watcher's bookkeeping)."""

    def admit(self, job: Job, *, ready: bool, memory: int) -> None:
        # one request at a time: its reply goes out at once (a request is run, as pool.py's
        # _run runs it; any other job is called)
        reply = job.run() if isinstance(job, ServerReply) else job()
        if reply is not None:
            reply.send()
            reply.done(on_loop=False)


def make_channel(app: Any) -> tuple[Channel, socket.socket]:
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    settings = ServerSettings()
    server = SimpleNamespace(
        settings=settings,
        app=app,
        pool=InlinePool(),
        unregister=lambda channel: None,
        set_aside=lambda channel: None,
        take_back=lambda channel: None,
        want_write=lambda channel: None,
        request_finished=lambda: None,
        channel_closed=lambda channel: None,
        recv_buffer=memoryview(bytearray(RECV_SIZE)),
        arrived=[],
        overloads=None,  # nothing is refused here
    )
    return Channel(server, ours, "bench"), theirs  # type: ignore[arg-type]


def whole_path(app: Any, path: str) -> Callable[[], None]:
    channel, peer = make_channel(app)
    data = request_bytes(path)

    def one() -> None:
        peer.sendall(data)
        channel.on_readable()
        arrived, channel.server.arrived = channel.server.arrived, []
        admit(arrived, channel.server.pool)
        reply = peer.recv(65536)
        if not reply:
            raise RuntimeError("no reply")

    one()
    return one


def connection_life(
    app: Any, path: str, directory: str, *, keep_conn: bool = True
) -> Callable[[], None]:
    address = f"{directory}/life-{keep_conn}.sock"
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(address)
    listener.listen(64)
    listener.setblocking(False)
    server = Server(app, ServerSettings(), listeners=[listener])
    server.acceptor.listen()
    pool = InlinePool()
    data = request_bytes(path, keep_conn=keep_conn)

    def one() -> None:
        with socket.socket(socket.AF_UNIX) as client:
            client.connect(address)
            client.sendall(data)
            server.acceptor.accept(listener)
            arrived, server.arrived = server.arrived, []
            admit(arrived, pool)
            # A keep-conn request ran on the direct lane; its connection, a Channel now, was
            # handed to the loop (off its thread: the pool here is not the loop's) to watch.
            server.loop.on_woken()
            server.loop.watch_accepted()
            if not client.recv(65536):
                raise RuntimeError("no reply")
        for channel, _ in server.loop.poller.wait(0):
            if channel is not listener:
                channel.on_readable()  # type: ignore[attr-defined]
        if server.channels or server.direct:
            raise RuntimeError("the server did not close the connection after the client")

    one()
    return one


def stages(app: Any, path: str) -> dict[str, Callable[[], object]]:
    data = request_bytes(path)
    encoded_params = encode_pairs(nginx_params(path))
    settings = ServerSettings()
    conn = ServerConnection(max_conns=16, max_reqs=16)
    (event,) = [e for e in conn.receive_data(data) if type(e).__name__ == "RequestReceived"]
    sink = SimpleNamespace()

    def parse() -> object:
        server = ServerConnection()
        return server.receive_data(data)

    def make_request() -> WSGIRequest:
        return WSGIRequest(sink, event, app, settings)  # type: ignore[arg-type]

    request = make_request()

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        return None

    environ = request.build_environ()

    def call_app() -> object:
        return b"".join(app(dict(environ), start_response))

    def encode_head() -> bytes:
        request._status = "200 OK"
        request._headers = [("Content-Type", "text/plain"), ("Content-Length", "13")]
        return request._encode_head(13)

    ended = ServerConnection()
    ended.receive_data(data)
    active = dict(ended._requests)  # put back before each call: the stage is ending one

    def end_request() -> bytes:
        ended._requests.update(active)
        for request in active.values():
            request._ended = False  # it frames its own output, once
        return ended.end_request(1, 0, stdout=b"x" * 100)

    whole_data = request_bytes(path, keep_conn=False)

    def parse_whole() -> object:
        return WholeRequest.parse(whole_data, settings.max_params_size)

    def end_whole() -> object:
        whole = WholeRequest.parse(whole_data, settings.max_params_size)
        return whole.end_request_buffers(0, stdout=(b"x" * 100,))  # type: ignore[union-attr]

    return {
        "ServerConnection.receive_data (parse the whole request)": parse,
        "  of which decode_pairs (params)": lambda: decode_pairs(encoded_params),
        "WSGIRequest() (incl. RequestBody)": make_request,
        "WSGIRequest.build_environ": request.build_environ,
        "the app itself": call_app,
        "WSGIRequest._encode_head": encode_head,
        "ServerConnection.end_request (100 bytes of stdout)": end_request,
        "WholeRequest.parse (no keep-conn: the direct lane)": parse_whole,
        "WholeRequest.parse, then end_request_buffers (100 bytes)": end_whole,
    }


def best_us(function: Callable[[], object], number: int, repeat: int) -> float:
    return min(timeit.repeat(function, number=number, repeat=repeat)) / number * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--app", choices=["hello", "flask"], default="hello")
    parser.add_argument("--number", type=int, default=5000, help="calls per repeat")
    parser.add_argument("--repeat", type=int, default=5, help="repeats; the best is kept")
    parser.add_argument("--profile", action="store_true", help="cProfile the whole path")
    args = parser.parse_args(argv)
    path = "/flask" if args.app == "flask" else "/hello"
    app = apps.application
    print(f"fcgikit hot path, {path}, best of {args.repeat} x {args.number} (µs per request)")
    whole = whole_path(app, path)
    print(f"  {best_us(whole, args.number, args.repeat):7.1f}  whole path (socketpair, inline)")
    with tempfile.TemporaryDirectory() as directory:
        life = connection_life(app, path, directory)
        print(f"  {best_us(life, args.number, args.repeat):7.1f}  connection life (one request)")
        life = connection_life(app, path, directory, keep_conn=False)
        print(f"  {best_us(life, args.number, args.repeat):7.1f}  the same without keep-conn")
    for name, function in stages(app, path).items():
        print(f"  {best_us(function, args.number, args.repeat):7.1f}  {name}")
    if args.profile:
        profiler = cProfile.Profile()
        profiler.runcall(lambda: [whole() for _ in range(args.number)])
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out).strip_dirs().sort_stats("tottime")
        stats.print_stats(25)
        print(out.getvalue())
    return 0


if __name__ == "__main__":
    sys.exit(main())
