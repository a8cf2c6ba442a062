"""A FastCGI responder that answers every request with the params it received, in wire order.

``python param_recorder.py unix:PATH``: listens on PATH and answers each request with JSON:
``params`` (``[name, value]`` pairs as sent, duplicates kept, latin-1), ``params_records``
(the content length of each PARAMS record), ``fcgi_flags`` (BEGIN_REQUEST's flags) and
``body`` (the request body, latin-1). It is the param dumper behind
``tests/data/captured-environs.json``: fcgikit's own server keeps the last of duplicate
params and fills in missing ones, so it cannot show what a web server really sent.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
from typing import Any

from fcgikit.protocol.constants import FCGI_KEEP_CONN, RecordType
from fcgikit.protocol.record_reader import RecordReader
from fcgikit.protocol.records import decode_pairs, pack_records


class _Request:
    def __init__(self, flags: int) -> None:
        self.flags = flags
        self.params = bytearray()
        self.records: list[int] = []
        self.body = bytearray()

    def answer(self) -> bytes:
        report: dict[str, Any] = {
            "params": [
                [name.decode("latin-1"), value.decode("latin-1")]
                for name, value in decode_pairs(bytes(self.params))
            ],
            "params_records": self.records,
            "fcgi_flags": self.flags,
            "body": self.body.decode("latin-1"),
        }
        return b"Content-Type: application/json\r\n\r\n" + json.dumps(report).encode()


def _serve(conn: socket.socket) -> None:
    requests: dict[int, _Request] = {}
    done = threading.Event()

    def on_record(record_type: int, request_id: int, content: memoryview) -> None:
        if record_type == RecordType.BEGIN_REQUEST:
            requests[request_id] = _Request(content[2])
        elif record_type == RecordType.PARAMS and len(content):
            requests[request_id].params += content
            requests[request_id].records.append(len(content))
        elif record_type == RecordType.STDIN and len(content):
            requests[request_id].body += content
        elif record_type == RecordType.STDIN:
            request = requests.pop(request_id)
            end = (0).to_bytes(8, "big")  # app status 0, FCGI_REQUEST_COMPLETE
            conn.sendall(
                pack_records(RecordType.STDOUT, request_id, request.answer())
                + pack_records(RecordType.STDOUT, request_id, b"")
                + pack_records(RecordType.END_REQUEST, request_id, end)
            )
            if not request.flags & FCGI_KEEP_CONN:
                done.set()

    reader = RecordReader()
    with conn:
        while not done.is_set():
            data = conn.recv(65536)
            if not data:
                return
            reader.feed(data, on_record)


def main(address: str) -> None:
    path = address.removeprefix("unix:")
    if os.path.exists(path):
        os.unlink(path)
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(path)
    listener.listen(16)
    print(f"listening on unix:{path}", file=sys.stderr, flush=True)
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=_serve, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    main(sys.argv[1])
