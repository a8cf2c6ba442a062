"""The C fast lane of :mod:`fcgikit.server.wsgi_codec` (``_speedups_wsgi_codec.c``); the Python
there is the spec."""

from collections.abc import Mapping
from typing import Any

def environ_from_params(
    base: Mapping[str, object], params: dict[bytes, bytes], dropped: frozenset[str], /
) -> dict[str, Any] | None: ...
def encode_head(status: object, headers: object, content_length: int | None, /) -> bytes | None: ...
def _set_header_rules(
    token_chars: bytes,
    field_controls: bytes,
    reserved_prefixes: tuple[bytes, ...],
    known_names: dict[str, str] | None = None,
    /,
) -> None: ...
def _name_table(dropped: frozenset[str], /) -> dict[bytes, str | None]: ...
