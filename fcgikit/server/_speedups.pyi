"""The C fast lane of :mod:`fcgikit.server.wsgi` (``_speedups.c``); the Python there is the spec."""

from collections.abc import Mapping
from typing import Any

def environ_from_params(
    base: Mapping[str, object], params: dict[bytes, bytes], dropped: frozenset[str], /
) -> dict[str, Any]: ...
def encode_head(status: object, headers: object, content_length: int | None, /) -> bytes | None: ...
def accept_connection(listener_fd: int, /) -> tuple[int, tuple[object, ...] | None] | None: ...
