"""A reload that keeps the listening socket (``fcgikit serve`` on SIGHUP), in process.

``keep_listeners_on_reload``: the stopping server leaves its listener open and its socket file
in place, and sets aside each keep-conn connection once it is between two requests; what
the web server sends meanwhile waits in the kernel. A second server given those descriptors
(what the re-executed process gets, tests/server/test_listeners.py checks the exec itself)
answers all of it. Without the option, a reload closes and removes everything, as flup's
``WSGIServer.run()`` loop expects.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fcgikit.addresses import UnixAddress
from fcgikit.server.server import Server
from fcgikit.server.settings import ServerSettings
from tests.server.test_accept import answer
from tests.server.test_hostile import Peer, request_bytes, wait_until


def app_saying(word: bytes) -> Callable[..., list[bytes]]:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [])
        return [word + b" " + environ["PATH_INFO"].encode()]

    return app


def run(server: Server) -> tuple[threading.Thread, list[bool]]:
    returned: list[bool] = []
    thread = threading.Thread(target=lambda: returned.append(server.serve()), daemon=True)
    thread.start()
    assert server.ready.wait(10)
    return thread, returned


def test_a_reload_hands_the_listener_and_idle_connections_to_the_next_server(
    tmp_path: Path,
) -> None:
    path = str(tmp_path / "app.sock")
    settings = ServerSettings(binds=(UnixAddress(path),), handle_signals=False)
    old = Server(app_saying(b"old"), settings, keep_listeners_on_reload=True)
    thread, returned = run(old)
    kept = Peer(path)
    try:
        kept.send(request_bytes(1, "/first", keep_conn=True))
        assert kept.read_end(1).bodies(1) == [b"old /first"]
        old.stop("reload", reload=True)
        thread.join(10)
        assert returned == [True]
        assert [channel.fileno for channel in old.parked] != []
        assert os.path.exists(path)
        # Sent while no process serves: on the kept connection, and on a new one.
        kept.send(request_bytes(2, "/second", keep_conn=True))
        waiting = socket.socket(socket.AF_UNIX)
        waiting.connect(path)
        waiting.sendall(request_bytes(1, "/waiting"))
        # What exec does: the new process has the descriptors, the old objects are gone.
        listeners = [socket.socket(fileno=os.dup(sock.fileno())) for sock in old.listeners]
        connections = [os.dup(channel.fileno) for channel in old.parked]
        for sock in old.listeners:
            sock.close()
        for channel in old.parked:
            channel.sock.close()
        new = Server(
            app_saying(b"new"),
            settings,
            listeners,
            created_paths=old.created_paths,
            connections=connections,
        )
        thread, returned = run(new)
        assert kept.read_end(2).bodies(2) == [b"new /second"]
        assert answer(waiting).endswith(b"new /waiting")
        waiting.close()
    finally:
        kept.close()
    new.stop("test over")
    thread.join(10)
    assert returned == [False]
    assert not os.path.exists(path)  # the new server removes the file the old one created


def test_without_keeping_them_a_reload_closes_everything(tmp_path: Path) -> None:
    """flup's ``while WSGIServer(app).run(): ...`` binds the socket again itself."""
    path = str(tmp_path / "app.sock")
    settings = ServerSettings(binds=(UnixAddress(path),), handle_signals=False)
    server = Server(app_saying(b"old"), settings)
    thread, returned = run(server)
    server.stop("reload", reload=True)
    thread.join(10)
    assert returned == [True]
    assert server.parked == []
    assert not os.path.exists(path)
    assert all(sock.fileno() == -1 for sock in server.listeners)


def test_a_stop_after_the_reload_began_wins(tmp_path: Path) -> None:
    """SIGTERM while a SIGHUP's reload waits for a running request: no hand-over, the
    socket file goes, and the idle connection set aside is closed."""
    entered, release = threading.Event(), threading.Event()

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        if environ["PATH_INFO"] == "/slow":
            entered.set()
            release.wait(10)
        start_response("200 OK", [])
        return [b"done"]

    path = str(tmp_path / "app.sock")
    settings = ServerSettings(binds=(UnixAddress(path),), handle_signals=False)
    server = Server(app, settings, keep_listeners_on_reload=True)
    thread, returned = run(server)
    idle, slow = Peer(path), Peer(path)
    try:
        idle.send(request_bytes(1, "/idle", keep_conn=True))
        assert idle.read_end(1).bodies(1) == [b"done"]
        slow.send(request_bytes(1, "/slow"))
        assert entered.wait(10)
        server.stop("reload", reload=True)
        wait_until(lambda: bool(server.parked), what="the idle connection set aside")
        server.stop("stop")
        server.stop("reload again", reload=True)  # does not undo the stop
        release.set()
        assert slow.read_end(1).bodies(1) == [b"done"]
        slow.close()  # as a web server does after the reply: the server's linger ends
        assert idle.read_until_closed().closed
        thread.join(10)
        assert returned == [False]
    finally:
        idle.close()
        slow.close()
    assert not os.path.exists(path)
