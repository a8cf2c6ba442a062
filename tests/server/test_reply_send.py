"""Sending a streamed response into a socket the web server drains slower than we write:
blocks the socket takes in part go on from where it stopped, after waiting for room."""

from __future__ import annotations

import socket
import threading

from fcgikit.protocol.constants import RecordType
from fcgikit.protocol.records import frame_records
from fcgikit.server.reply import Buffers, send_all_buffers

BLOCK = bytes(range(256)) * 256  # 64 KiB, what a WSGI app yields at a time
BLOCKS = 64


class CountingSocket:
    """A non-blocking socket that counts the sendmsg calls made on it."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.sends = 0

    def send(self, data: bytes, /) -> int:
        return self.sock.send(data)

    def sendmsg(self, buffers: Buffers, /) -> int:
        self.sends += 1
        return self.sock.sendmsg(buffers)

    def fileno(self) -> int:
        return self.sock.fileno()


def _drain(sock: socket.socket, into: bytearray, size: int) -> None:
    while len(into) < size:
        chunk = sock.recv(16384)  # nginx's fastcgi_buffer_size
        if not chunk:
            return
        into += chunk


def test_a_stream_larger_than_the_socket_takes_arrives_whole_and_in_order() -> None:
    ours, web_server = socket.socketpair()
    with ours, web_server:
        ours.setblocking(False)
        ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)  # full after a block
        records = b"".join(b"".join(frame_records(RecordType.STDOUT, 1, [BLOCK])) for _ in "ab")
        size = len(records) // 2 * BLOCKS
        received = bytearray()
        reader = threading.Thread(target=_drain, args=(web_server, received, size))
        reader.start()
        counting = CountingSocket(ours)
        for _ in range(BLOCKS):
            send_all_buffers(counting, frame_records(RecordType.STDOUT, 1, [BLOCK]), 5.0)
        reader.join()
    assert bytes(received) == records[: len(records) // 2] * BLOCKS
    assert counting.sends > BLOCKS  # the socket did fill: some blocks went in several sends
