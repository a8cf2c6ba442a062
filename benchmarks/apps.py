"""The WSGI apps every backend serves in the benchmark, one process per backend.

Every backend imports ``apps:application``, which routes on ``PATH_INFO`` with one dict
look-up, so each backend runs one process for the whole run instead of one per app:

    /hello      the plain WSGI hello ("Hello, World!", 13 bytes, a list body)
    /flask      the same from a Flask view
    /64k        a 64 KiB body (a list body)
    /echo       the request body read whole and sent back (the 1 MiB POST)
    /upload     the request body read in 64 KiB blocks and counted (the 1 GiB upload)
    /download   ``?bytes=N`` streamed from a generator in 64 KiB blocks (the 1 GiB download)
    /sha256     the request body read in 64 KiB blocks, answered with its SHA-256 in hex
    /slow       ``?ms=N`` (200 unless given): sleeps that long, then the hello (the slow mix)

``apps:plain_application`` has the same routes without ``/flask``; the memory checks serve it,
with ``FCGIKIT_BENCH_PLAIN=1`` so that Flask is not even imported and the RSS they report is
the server's, not Flask's.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

Environ = dict[str, Any]
StartResponse = Callable[..., Any]
WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]

HELLO = b"Hello, World!"
BLOCK = 64 * 1024
SIXTY_FOUR_K = b"x" * BLOCK
_ZEROS = bytes(BLOCK)


def hello(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(HELLO)))])
    return [HELLO]


def sixty_four_k(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    start_response(
        "200 OK",
        [("Content-Type", "application/octet-stream"), ("Content-Length", str(BLOCK))],
    )
    return [SIXTY_FOUR_K]


def _content_length(environ: Environ) -> int:
    try:
        return max(0, int(environ.get("CONTENT_LENGTH") or 0))
    except ValueError:
        return 0


def echo(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    body = environ["wsgi.input"].read(_content_length(environ))
    start_response(
        "200 OK",
        [("Content-Type", "application/octet-stream"), ("Content-Length", str(len(body)))],
    )
    return [body]


def upload(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    stream = environ["wsgi.input"]
    left = _content_length(environ)
    received = 0
    while left > 0:
        block = stream.read(min(BLOCK, left))
        if not block:
            break
        received += len(block)
        left -= len(block)
    text = str(received).encode("ascii")
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(text)))])
    return [text]


def sha256(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    stream = environ["wsgi.input"]
    left = _content_length(environ)
    digest = hashlib.sha256()
    while left > 0:
        block = stream.read(min(BLOCK, left))
        if not block:
            break
        digest.update(block)
        left -= len(block)
    text = digest.hexdigest().encode("ascii")
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(text)))])
    return [text]


def _query(environ: Environ) -> dict[str, str]:
    pairs = environ.get("QUERY_STRING", "").split("&")
    return dict(part.split("=", 1) for part in pairs if "=" in part)


def slow(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    time.sleep(int(_query(environ).get("ms", 200)) / 1000)
    return hello(environ, start_response)


def download(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    size = int(_query(environ).get("bytes", BLOCK))

    def blocks() -> Iterator[bytes]:
        left = size
        while left > 0:
            block = _ZEROS if left >= BLOCK else _ZEROS[:left]
            left -= len(block)
            yield block

    start_response(
        "200 OK", [("Content-Type", "application/octet-stream"), ("Content-Length", str(size))]
    )
    return blocks()


def not_found(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    start_response("404 Not Found", [("Content-Type", "text/plain"), ("Content-Length", "10")])
    return [b"not found\n"]


PLAIN_ROUTES: dict[str, WSGIApp] = {
    "/hello": hello,
    "/64k": sixty_four_k,
    "/echo": echo,
    "/upload": upload,
    "/download": download,
    "/sha256": sha256,
    "/slow": slow,
}


def make_flask_app() -> WSGIApp:
    from flask import Flask

    flask_app = Flask("fcgikit_bench")

    @flask_app.route("/flask")
    def flask_hello() -> str:
        return "Hello, World!"

    return flask_app  # type: ignore[no-any-return]


def router(routes: dict[str, WSGIApp]) -> WSGIApp:
    def route(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        return routes.get(environ.get("PATH_INFO", ""), not_found)(environ, start_response)

    return route


plain_application = router(PLAIN_ROUTES)

# uWSGI looks its callable up in the module's dict, so ``application`` is built at import
# time; FCGIKIT_BENCH_PLAIN=1 leaves Flask out of the process (the memory checks measure the
# server, not Flask).
if os.environ.get("FCGIKIT_BENCH_PLAIN"):
    application = plain_application
else:
    application = router({**PLAIN_ROUTES, "/flask": make_flask_app()})
