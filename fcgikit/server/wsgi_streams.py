"""The two objects of a request's environ that are neither text nor its body (which is
``wsgi.input``, a :class:`~fcgikit.server.body.RequestBody`): ``wsgi.errors`` and
``wsgi.file_wrapper`` (PEP 3333, "Optional Platform-Specific File Handling").
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    from fcgikit.server.wsgi import WSGIRequest

log = logging.getLogger("fcgikit.server")


class ErrorStream:
    """``wsgi.errors``: each write goes to the log and to the request's FCGI_STDERR stream."""

    def __init__(self, request: WSGIRequest) -> None:
        self._request = request

    def write(self, text: str) -> int:
        if text:
            log.warning("request %s: %s", self._request.label, text.rstrip("\n"))
            self._request.send_stderr(text.encode("utf-8", "replace"))
        return len(text)

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        pass


class FileWrapper:
    """``wsgi.file_wrapper``: iterate a file in blocks and close it when done."""

    def __init__(self, filelike: IO[bytes], blksize: int = 65536) -> None:
        self.filelike = filelike
        self.blksize = blksize

    def __iter__(self) -> Iterator[bytes]:
        while True:
            block = self.filelike.read(self.blksize)
            if not block:
                return
            yield block

    def close(self) -> None:
        close = getattr(self.filelike, "close", None)
        if close is not None:
            close()
