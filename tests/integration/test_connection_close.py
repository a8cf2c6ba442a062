"""How ``fcgikit serve`` ends a connection the web server did not ask to keep.

Caddy, h2o, lighttpd and Apache's mod_proxy_fcgi on connections it will not reuse (the unix
``ProxyPass`` and ``SetHandler "proxy:..."`` forms) send ``FCGI_KEEP_CONN`` = 0 and may still
be writing the request (the empty STDIN record that ends it) when the response is complete.
If the application then closes both directions, the web server's write fails with EPIPE and
the client gets a 502/503 although the app answered: in the scenario modules this showed as
rare, random failures. The way out is the lingering close PHP-FPM does (``fcgi_close``): shut
down the write side, read until the web server closes, then close.

The check is deterministic: the response is read to its END_REQUEST and then to EOF (or for
2 s, for a server that waits for the request's end) before the last STDIN record is sent; a
unix socket whose peer shut its reading side refuses the write at once (EPIPE) and accepts it
otherwise.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

from .harness import start_backend

pytestmark = pytest.mark.integration

VERSION = 1
BEGIN_REQUEST, END_REQUEST, PARAMS, STDIN, STDOUT = 1, 3, 4, 5, 6
RESPONDER = 1
EOF_WAIT = 2.0  # seconds an application that waits for the end of STDIN is given


def record(kind: int, content: bytes, request_id: int = 1) -> bytes:
    return struct.pack("!BBHHBx", VERSION, kind, request_id, len(content), 0) + content


def pair(name: bytes, value: bytes) -> bytes:
    assert len(name) < 128 and len(value) < 128
    return bytes([len(name), len(value)]) + name + value


PARAMS_GET = b"".join(
    pair(name, value)
    for name, value in [
        (b"REQUEST_METHOD", b"GET"),
        (b"SCRIPT_NAME", b""),
        (b"PATH_INFO", b"/env/close"),
        (b"QUERY_STRING", b""),
        (b"REQUEST_URI", b"/env/close"),
        (b"SERVER_NAME", b"localhost"),
        (b"SERVER_PORT", b"80"),
        (b"SERVER_PROTOCOL", b"HTTP/1.1"),
        (b"HTTP_HOST", b"localhost"),
    ]
)


def read_records(sock: socket.socket) -> Iterator[tuple[int, bytes]]:
    buffer = b""
    while True:
        while len(buffer) < 8:
            chunk = sock.recv(65536)
            if not chunk:
                return
            buffer += chunk
        _, kind, _, length, padding = struct.unpack("!BBHHB", buffer[:7])
        while len(buffer) < 8 + length + padding:
            chunk = sock.recv(65536)
            if not chunk:
                return
            buffer += chunk
        yield kind, buffer[8 : 8 + length]
        buffer = buffer[8 + length + padding :]


@pytest.fixture(scope="module")
def socket_path(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    workdir = tmp_path_factory.mktemp("connection-close")
    path = workdir / "app.sock"
    process = start_backend(workdir, [f"unix:{path}"], "none")
    try:
        process.wait_for_output("listening on")
        yield path
    finally:
        process.stop()


def test_response_then_late_end_of_stdin(socket_path: Path) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(30)
        sock.connect(str(socket_path))
        begin = struct.pack("!HB5x", RESPONDER, 0)  # flags 0: FCGI_KEEP_CONN not set
        sock.sendall(
            record(BEGIN_REQUEST, begin) + record(PARAMS, PARAMS_GET) + record(PARAMS, b"")
        )
        stdout = b""
        for kind, content in read_records(sock):
            if kind == STDOUT:
                stdout += content
            if kind == END_REQUEST:
                break
        assert stdout.startswith(b"Status: 200"), stdout[:500]
        # Let the application finish with the connection: either it shuts its side (EOF
        # here, as after PHP-FPM's shutdown(SHUT_WR)) or it keeps waiting for STDIN to end.
        sock.settimeout(EOF_WAIT)
        try:
            while sock.recv(65536):
                pass
        except TimeoutError:
            pass  # still open and waiting for the rest of the request: fine
        # The web server finishes sending the request only now, as a slow one may.
        try:
            sock.sendall(record(STDIN, b""))
        except BrokenPipeError:
            pytest.fail(
                "fcgikit shut the connection's reading side before the web server had sent "
                "the end of STDIN: the web server's write fails with EPIPE and the client "
                "gets 502/503 (seen with Apache mod_proxy_fcgi and Caddy)"
            )
