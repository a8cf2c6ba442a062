"""A request body as the client sends it: bytes, or a file read as it goes out.

A file-like body is read :data:`BODY_CHUNK_SIZE` bytes at a time while it is sent, so a large
upload never sits in memory; its length (CONTENT_LENGTH) comes from a Content-Length header
or from seeking, and a stream with neither is sent without one.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO, Final, Protocol

#: How much of a request body is read and sent at a time.
BODY_CHUNK_SIZE: Final = 64 * 1024


class ReadableBody(Protocol):
    """Anything a request body can be read from: a binary file, ``wsgi.input``, a pipe."""

    def read(self, size: int = ..., /) -> bytes: ...


#: A request body: bytes, or a binary file-like object read as it is sent.
Body = bytes | BinaryIO | ReadableBody


def content_length(body: Body, headers: list[tuple[str, str]]) -> int | None:
    """The body's length: of bytes; of a file, from a Content-Length header or by seeking."""
    if isinstance(body, bytes | bytearray | memoryview):
        return len(body) if body else None
    for name, value in headers:
        if name.lower() == "content-length":
            return int(value)
    tell, seek = getattr(body, "tell", None), getattr(body, "seek", None)
    if tell is None or seek is None:
        return None
    try:
        position = tell()
        end = seek(0, 2)
        seek(position)
    except (OSError, ValueError):  # a pipe or socket: not seekable
        return None
    return int(end) - int(position)


def body_chunks(body: Body) -> Iterator[bytes]:
    """The body in pieces of at most :data:`BODY_CHUNK_SIZE`, a file's read as they are sent."""
    if isinstance(body, bytes | bytearray | memoryview):
        view = memoryview(body)
        for start in range(0, len(view), BODY_CHUNK_SIZE):
            yield bytes(view[start : start + BODY_CHUNK_SIZE])
        return
    while chunk := body.read(BODY_CHUNK_SIZE):
        yield chunk
