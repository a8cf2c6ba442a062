"""A kept connection's requests after its first, each arriving whole in one read.

nginx with ``fastcgi_keep_conn`` sends each request on a kept connection whole (BEGIN_REQUEST,
the params, their end, the empty STDIN of a GET) in one write. Its Channel's
ServerConnection reads such a request in one pass, its params decoded as the environ's text
on the way (the C lane ``scan_request_text``, or its Python twin in the pure build), as the
direct lane reads a connection's first request; anything else, the record-by-record path.
The app must see the same environ either way.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fcgikit.addresses import UnixAddress
from fcgikit.protocol import ClientConnection
from fcgikit.protocol.events import TextParams
from fcgikit.protocol.record_reader import RecordReader
from fcgikit.server import Server, ServerSettings
from tests.server.test_accept_late import connect, run_arrived
from tests.server.test_hostile import END, STDOUT

PARAMS = [
    (b"REQUEST_METHOD", b"GET"),
    (b"SCRIPT_NAME", b""),
    (b"QUERY_STRING", b"a=1"),
    (b"SERVER_NAME", b"example.org"),
    (b"SERVER_PORT", b"80"),
    (b"SERVER_PROTOCOL", b"HTTP/1.1"),
    (b"HTTP_HOST", b"example.org"),
    (b"HTTP_X_TEXT", b"caf\xe9"),  # latin-1, as PEP 3333 decodes it
    (b"HTTP_PROXY", b"dropped"),  # a name the environ leaves out
    (b"CONTENT_LENGTH", b""),
]


def recorded_environ(environ: dict[str, Any]) -> dict[str, Any]:
    """What the app saw, but the objects made for each request."""
    made = ("wsgi.input", "wsgi.errors", "fcgikit.request_id")
    return {key: value for key, value in environ.items() if key not in made}


class Seen:
    def __init__(self) -> None:
        self.environs: list[dict[str, Any]] = []

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        self.environs.append(recorded_environ(environ))
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [environ["PATH_INFO"].encode("latin-1")]


@pytest.fixture(params=[{}, {"base_environ": {"SERVER_NAME": "base", "X_BASE": "1"}}])
def stepped(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[Server, str, Seen]]:
    """A server whose loop's steps the test takes, on its own thread; with a base_environ,
    which the environ's builder puts under the params (the one-pass decoding does not)."""
    path = str(tmp_path / "kept.sock")
    seen = Seen()
    settings = ServerSettings(binds=(UnixAddress(path),), handle_signals=False, **request.param)
    server = Server(seen, settings)
    server.acceptor.listen()
    server.pool._leader = threading.get_ident()  # this thread holds the loop role
    server.loop.next_sweep = time.monotonic() + 3600
    yield server, path, seen
    server._close_everything()


def kept_request(path_info: bytes) -> bytes:
    client = ClientConnection()
    params = [*PARAMS, (b"PATH_INFO", path_info)]
    return client.start_request(1, params, keep_conn=True) + client.end_stdin(1)


def reply(sock: socket.socket) -> bytes:
    """The STDOUT of the request answered on the kept connection ``sock``."""
    records: list[tuple[int, bytes]] = []
    reader = RecordReader()
    while not any(kind == END for kind, _ in records):
        data = sock.recv(65536)
        assert data, records
        reader.feed(data, lambda kind, rid, content: records.append((kind, bytes(content))))
    return b"".join(content for kind, content in records if kind == STDOUT)


def serve(server: Server, sock: socket.socket, *reads: bytes) -> list[Any]:
    """Send ``reads`` one loop round each; the params of the request that arrived, once
    it has; its reply read."""
    arrived: list[Any] = []
    for data in reads:
        sock.sendall(data)
        server.loop.poll()
        arrived += [request.event.params for _, request in server.arrived]
        run_arrived(server)
    assert len(arrived) == 1
    assert b"HTTP/1.1" not in reply(sock)
    return arrived


def test_a_kept_connections_whole_request_is_read_in_one_pass_the_environ_the_same(
    stepped: tuple[Server, str, Seen],
) -> None:
    server, path, seen = stepped
    with connect(path) as sock:
        sock.sendall(kept_request(b"/first"))  # the direct lane, then a Channel
        server.acceptor.accept(server.listeners[0])
        run_arrived(server)
        reply(sock)
        assert len(server.channels) == 1  # watched from the next round
        for number in range(3):  # the table of names is filled by the first request
            whole = kept_request(b"/whole%d" % number)
            (params,) = serve(server, sock, whole)
            # one pass, the params decoded as text, unless the environ has a base
            one_pass = not server.settings.base_environ
            assert (type(params) is TextParams) == one_pass
            assert dict(params) == dict([*PARAMS, (b"PATH_INFO", b"/whole%d" % number)])
        # The same request in two reads: the record-by-record path.
        whole = kept_request(b"/cut")
        (params,) = serve(server, sock, whole[:40], whole[40:])
        assert type(params) is not TextParams
    first, *by_one_pass, by_records = seen.environs
    for environ in (first, *by_one_pass):
        environ["PATH_INFO"] = "/cut"
    assert by_one_pass == [by_records] * 3
    assert first == by_records
    assert by_records["HTTP_X_TEXT"] == "caf\xe9"
    assert "HTTP_PROXY" not in by_records
