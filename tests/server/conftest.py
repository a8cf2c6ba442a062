"""Run the real server in a thread on a unix socket in a temp dir; talk to it with our client."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from fcgikit.addresses import UnixAddress
from fcgikit.server import Server, ServerSettings


class RunningServer:
    def __init__(self, server: Server, path: str, thread: threading.Thread) -> None:
        self.server = server
        self.address = f"unix:{path}"
        self.path = path
        self.thread = thread
        self.returned: list[bool] = []
        self.clients: list[Any] = []

    def client(self, **kwargs: Any) -> Any:
        from fcgikit.client import FastCGIClient

        client = FastCGIClient(self.address, **kwargs)
        self.clients.append(client)
        return client

    def stop(self) -> None:
        self.server.stop("test over")
        self.thread.join(10)
        assert not self.thread.is_alive(), "server did not stop within 10 s"


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., RunningServer]]:
    started: list[RunningServer] = []

    def start(
        app: Any,
        *,
        before_serving: Callable[[str], object] | None = None,
        listeners: list[socket.socket] | None = None,
        **settings: Any,
    ) -> RunningServer:
        """``before_serving(path)`` runs once the socket listens and before the loop
        starts: connections it makes wait in the backlog, to be accepted in one round.
        ``listeners``: sockets listening already, instead of the unix socket at ``path``."""
        path = str(tmp_path / f"s{len(started)}.sock")
        base = ServerSettings(binds=(UnixAddress(path),), handle_signals=False)
        server = Server(app, replace(base, **settings), listeners)
        if before_serving is not None:
            before_serving(path)
        running: RunningServer

        def target() -> None:
            running.returned.append(server.serve())

        thread = threading.Thread(target=target, daemon=True)
        running = RunningServer(server, path, thread)
        thread.start()
        assert server.ready.wait(10)
        started.append(running)
        return running

    yield start
    for running in started:
        for client in running.clients:  # first, as a web server would close its side
            client.close()
        if running.thread.is_alive():
            running.stop()
