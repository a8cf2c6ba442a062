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


class ShortSendingSocket:
    """A non-blocking socket whose sendmsg takes at most ``most`` bytes a call, as a socket
    with little room does, and counts its calls."""

    def __init__(self, sock: socket.socket, most: int) -> None:
        self.sock = sock
        self.most = most
        self.sends = 0

    def send(self, data: bytes, /) -> int:
        return self.sock.send(data[: self.most])

    def sendmsg(self, buffers: Buffers, /) -> int:
        self.sends += 1
        offered: Buffers = []
        room = self.most
        for buffer in buffers:
            if not room:
                break
            offered.append(memoryview(buffer)[:room])
            room -= len(offered[-1])
        return self.sock.sendmsg(offered)

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
        records = b"".join(frame_records(RecordType.STDOUT, 1, [BLOCK]))
        size = len(records) * BLOCKS
        received = bytearray()
        reader = threading.Thread(target=_drain, args=(web_server, received, size))
        reader.start()
        short = ShortSendingSocket(ours, 10_000)
        for _ in range(BLOCKS):
            send_all_buffers(short, frame_records(RecordType.STDOUT, 1, [BLOCK]), 5.0)
        reader.join()
    assert bytes(received) == records * BLOCKS
    assert short.sends >= 7 * BLOCKS  # each block went in several sends
