"""Types of the C fast lanes fcgikit/protocol/_speedups.c (see fcgikit/protocol/lanes.py)."""

from collections.abc import Mapping, Sequence
from typing import Any

def configure(constants: Mapping[str, int], /) -> None: ...
def scan_request(
    data: bytes | bytearray | memoryview, max_params_size: int, max_decoded_pairs: int, /
) -> tuple[int, bool, dict[bytes, bytes], set[bytes] | None, list[bytes], bool, int] | None: ...
def scan_request_text(
    data: bytes | bytearray | memoryview,
    max_params_size: int,
    max_decoded_pairs: int,
    names: dict[bytes, str | None],
    room: int,
    /,
) -> (
    tuple[int, bool, tuple[bytes, dict[str, str]], set[bytes] | None, list[bytes], bool, int] | None
): ...
def frame_end(
    request_id: int,
    pieces: Sequence[bytes | memoryview],
    app_status: int,
    protocol_status: int,
    close_stdout: bool,
    close_stderr: bool,
    /,
) -> bytes | None: ...
def cut_run(
    view: memoryview, offset: int, record_type: int, request_id: int, views: list[memoryview], /
) -> int | None: ...

class SlotsFactory:
    """Makes instances of a class with __slots__ (no __dict__, nor in its bases), each slot
    named, without its __init__."""

    def __init__(self, cls: type, names: tuple[str, ...], /) -> None: ...
    def __call__(self, *values: Any) -> Any: ...
