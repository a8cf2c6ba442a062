"""A tiny FastCGI application written here on ServerConnection, for the client's tests.

The real server (fcgikit.server) is tested elsewhere; this responder is a dozen lines of
protocol so that a client bug cannot hide behind a server bug, and the other way round.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from fcgikit.client import FastCGIResponse
from fcgikit.protocol import (
    FilterData,
    FilterDataEnded,
    ProtocolStatus,
    RecordType,
    RequestReceived,
    Role,
    ServerConnection,
    StdinData,
    StdinEnded,
)
from fcgikit.protocol.record_reader import RecordReader


@dataclass
class Seen:
    """One request as the responder saw it."""

    received: RequestReceived
    stdin: bytearray = field(default_factory=bytearray)
    #: the content length of each non-empty FCGI_STDIN record as it came on the wire (a
    #: StdinData event may carry several: the protocol passes a read's run of them on at once)
    stdin_records: list[int] = field(default_factory=list)
    data: bytearray = field(default_factory=bytearray)

    @property
    def params(self) -> dict[bytes, bytes]:
        return self.received.params


@dataclass
class Reply:
    stdout: bytes = b"Content-Type: text/plain\r\n\r\nok"
    stderr: bytes = b""
    app_status: int = 0
    protocol_status: ProtocolStatus = ProtocolStatus.REQUEST_COMPLETE


def echo(seen: Seen) -> Reply:
    """Answer with what arrived, as JSON (params decoded latin-1, like a WSGI server)."""
    document = {
        "params": {k.decode("latin-1"): v.decode("latin-1") for k, v in seen.params.items()},
        "duplicates": sorted(name.decode() for name in seen.received.duplicate_names),
        "role": seen.received.role.name,
        "keep_conn": seen.received.keep_conn,
        "stdin": seen.stdin.decode("latin-1"),
        "data": seen.data.decode("latin-1"),
    }
    return Reply(b"Content-Type: application/json\r\n\r\n" + json.dumps(document).encode())


Handler = Callable[[Seen], Reply]


class TinyResponder:
    """A one-thread FastCGI application: one connection at a time, one request at a time.

    ``answer_at`` is when it answers: "input" once all input has arrived, "params" as soon as
    the params are in (before reading any body), "never" to test timeouts.
    """

    def __init__(
        self, listener: socket.socket, handler: Handler = echo, answer_at: str = "input"
    ) -> None:
        self.listener = listener
        self.handler = handler
        self.answer_at = answer_at
        self.connections = 0
        self.seen: list[Seen] = []
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self.listener.settimeout(0.05)
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.listener.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                sock, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            with sock:
                sock.settimeout(5)
                try:
                    self._handle(sock)
                except Exception as error:  # reported by the fixture, not lost in a thread
                    self.errors.append(error)

    def _handle(self, sock: socket.socket) -> None:
        server = ServerConnection(roles=list(Role))
        records = RecordReader()  # the same bytes again, for the sizes of the body's records
        requests: dict[int, Seen] = {}

        def count_record(record_type: int, request_id: int, content: memoryview) -> None:
            if record_type == RecordType.STDIN and content and request_id in requests:
                requests[request_id].stdin_records.append(len(content))

        while not self._stop.is_set():
            try:
                data = sock.recv(65536)
            except TimeoutError:
                continue
            except ConnectionResetError:
                return
            if not data:
                server.receive_eof()
                return
            events = server.receive_data(data)
            out = server.data_to_send()
            for event in events:
                if isinstance(event, RequestReceived):
                    seen = requests[event.request_id] = Seen(event)
                    self.seen.append(seen)
                    if self.answer_at == "params":
                        out += self._answer(server, seen)
                elif event.request_id not in server.active_request_ids:
                    continue  # answered early; the rest of its input is of no interest
                elif isinstance(event, StdinData):
                    requests[event.request_id].stdin += event.data
                elif isinstance(event, FilterData):
                    requests[event.request_id].data += event.data
                elif self.answer_at == "input" and (
                    isinstance(event, FilterDataEnded)
                    or (
                        isinstance(event, StdinEnded)
                        and requests[event.request_id].received.role != Role.FILTER
                    )
                ):
                    out += self._answer(server, requests[event.request_id])
            records.feed(data, count_record)
            if out:
                try:
                    sock.sendall(out)
                except (BrokenPipeError, ConnectionResetError):
                    return  # the client went away, as a client that got its answer may
            if server.should_close and not server.active_request_ids:
                return

    def _answer(self, server: ServerConnection, seen: Seen) -> bytes:
        reply = self.handler(seen)
        request_id = seen.received.request_id
        return server.send_stderr(request_id, reply.stderr) + server.end_request(
            request_id, reply.app_status, reply.protocol_status, stdout=reply.stdout
        )


def unix_listener(path: Path) -> socket.socket:
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(8)
    return listener


StartResponder = Callable[..., TinyResponder]


def echoed(response: FastCGIResponse) -> dict[str, object]:
    assert response.status == 200, response
    document: dict[str, object] = json.loads(response.body)
    return document


def echoed_params(response: FastCGIResponse) -> dict[str, str]:
    params = echoed(response)["params"]
    assert isinstance(params, dict)
    return params
