"""The C lane of a worker's request cells (fcgikit/server/_speedups_scoreboard.c) against its spec.

``WorkerSlot.begin_request`` writes each request's cell (label, count, start) with
``begin_cell`` when the C module is there, and with ``scoreboard.begin_cell_py`` when it
answers None (outside the ordinary case) or is not there (``FCGIKIT_PURE_PYTHON=1``);
``WorkerSlot.end`` with ``end_cell`` or ``scoreboard.end_cell_py``. Where the lane answers, the
cell must hold what the twin writes, byte for byte but for the clock's reading; tests/native.py
loads the lane in the pure-Python pass too, so both passes compare the two.
"""

from __future__ import annotations

import struct
import threading
import time
from types import ModuleType
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fcgikit.server import scoreboard
from fcgikit.server.scoreboard import begin_cell_py, end_cell_py
from tests.native import PURE_PYTHON_PASS, assert_calls_leave_nothing_behind, load_lane

SIZE = 24  # a small label, so that labels are cut
AT = 8  # where the cell begins in the test's buffer
HEAD = struct.Struct("=dQ")  # the cell's start and word (requests << 16 | label length)


@pytest.fixture(scope="module")
def lane() -> ModuleType:
    return load_lane("fcgikit.server._speedups_scoreboard")


def test_the_lane_is_on_exactly_when_the_pass_says(lane: ModuleType) -> None:
    if PURE_PYTHON_PASS:
        with pytest.raises(ImportError):
            import fcgikit.server._speedups_scoreboard  # noqa: F401
        assert scoreboard.begin_cell is None and scoreboard.end_cell is None
        return
    assert scoreboard.begin_cell is lane.begin_cell and scoreboard.end_cell is lane.end_cell


def cell(size: int, requests: int = 0) -> memoryview:
    """A free cell whose label has ``size`` bytes, ``requests`` run, in a larger buffer."""
    buffer = memoryview(bytearray(b"\xff" * (AT + 16 + size + 8)))
    HEAD.pack_into(buffer, AT, -1.0, requests << 16 | 3)
    return buffer


def both(lane: ModuleType, environ: Any, size: int = SIZE, requests: int = 0) -> tuple[Any, Any]:
    """What the lane and the twin write into a cell (None: the lane declined): the thread
    they answer, the word and the bytes but the start, and whether the start is now."""
    ours, theirs = cell(size, requests), cell(size, requests)
    before = time.monotonic()
    thread = lane.begin_cell(ours, AT, size, environ)
    expected = begin_cell_py(theirs, AT, size, environ)
    after = time.monotonic()

    def written(buffer: memoryview, thread: int) -> tuple[Any, ...]:
        start, word = HEAD.unpack_from(buffer, AT)
        rest = bytes(buffer[:AT]) + bytes(buffer[AT + 8 :])
        return thread, word, rest, before <= start <= after

    if thread is None:
        return None, written(theirs, expected)
    return written(ours, thread), written(theirs, expected)


@pytest.mark.parametrize(
    "environ",
    [
        {"REQUEST_METHOD": "GET", "REQUEST_URI": "/a?b", "fcgikit.request_id": 7},
        {"REQUEST_METHOD": "POST", "REQUEST_URI": "/x" * 40, "fcgikit.request_id": 65535},
        {"REQUEST_METHOD": "", "REQUEST_URI": "/", "fcgikit.request_id": 0},
    ],
    ids=["ordinary", "cut to fit", "empty method"],
)
def test_the_lane_writes_an_ordinary_cell_as_the_twin_does(
    lane: ModuleType, environ: dict[str, Any]
) -> None:
    ours, theirs = both(lane, environ, requests=41)
    assert ours is not None and ours == theirs
    assert ours[0] == threading.get_ident() and ours[1] >> 16 == 42 and ours[3]


@pytest.mark.parametrize(
    "environ",
    [
        {"REQUEST_METHOD": "GET", "REQUEST_URI": "/caf\xe9", "fcgikit.request_id": 1},
        {"REQUEST_METHOD": "GET", "REQUEST_URI": "", "SCRIPT_NAME": "/s", "PATH_INFO": "/p"},
        {"REQUEST_METHOD": "GET", "REQUEST_URI": "/a"},
        {"REQUEST_METHOD": "GET", "REQUEST_URI": "/a", "fcgikit.request_id": True},
        {"REQUEST_METHOD": "GET", "REQUEST_URI": "/a", "fcgikit.request_id": 1 << 70},
        {"REQUEST_METHOD": "GET", "REQUEST_URI": "/a", "fcgikit.request_id": -1},
        {"REQUEST_METHOD": b"GET", "REQUEST_URI": "/a", "fcgikit.request_id": 1},
        {"REQUEST_URI": "/a", "fcgikit.request_id": 1},
    ],
    ids=["not ASCII", "no URI", "no id", "bool id", "huge id", "negative id", "bytes", "no method"],
)
def test_the_lane_leaves_the_rest_to_the_twin(lane: ModuleType, environ: dict[str, Any]) -> None:
    ours, _ = both(lane, environ)
    assert ours is None


@given(
    method=st.text(max_size=8),
    uri=st.text(max_size=40),
    request_id=st.integers(min_value=-5, max_value=70000),
    size=st.integers(min_value=0, max_value=60),
    requests=st.integers(min_value=0, max_value=1 << 40),
)
def test_whatever_the_lane_writes_is_what_the_twin_writes(
    lane: ModuleType, method: str, uri: str, request_id: int, size: int, requests: int
) -> None:
    environ = {"REQUEST_METHOD": method, "REQUEST_URI": uri, "fcgikit.request_id": request_id}
    ours, theirs = both(lane, environ, size, requests)
    if ours is not None:
        assert ours[1:] == theirs[1:]


@pytest.mark.parametrize("start", [0.0, -5.0, 12.5], ids=["never used", "free", "running"])
def test_the_lane_ends_a_cell_as_the_twin_does(lane: ModuleType, start: float) -> None:
    ours, theirs = cell(SIZE), cell(SIZE)
    HEAD.pack_into(ours, AT, start, 7 << 16 | 3)
    HEAD.pack_into(theirs, AT, start, 7 << 16 | 3)
    before = time.monotonic()
    ended = lane.end_cell(ours, AT)
    assert ended == end_cell_py(theirs, AT) == (start > 0)
    after = time.monotonic()
    for buffer in (ours, theirs):
        written, word = HEAD.unpack_from(buffer, AT)
        assert word == 7 << 16 | 3
        assert before <= -written <= after if start > 0 else written == start
    assert bytes(ours[AT + 8 :]) == bytes(theirs[AT + 8 :])


def test_a_cell_outside_the_buffer_is_refused(lane: ModuleType) -> None:
    environ = {"REQUEST_METHOD": "GET", "REQUEST_URI": "/a", "fcgikit.request_id": 1}
    with pytest.raises(ValueError, match="outside the buffer"):
        lane.begin_cell(memoryview(bytearray(24)), 4, 8, environ)
    with pytest.raises(ValueError, match="outside the buffer"):
        lane.end_cell(memoryview(bytearray(16)), 4)
    with pytest.raises(BufferError):
        lane.begin_cell(b"read-only" * 4, 0, 4, environ)
    with pytest.raises(BufferError):
        lane.end_cell(b"read-only" * 4, 0)


def test_calls_leave_no_reference_and_no_memory_behind(lane: ModuleType) -> None:
    buffer = memoryview(bytearray(64))
    environ = {"REQUEST_METHOD": "GET", "REQUEST_URI": "/a", "fcgikit.request_id": 1}
    assert_calls_leave_nothing_behind(
        [
            (lane.begin_cell, (buffer, 0, 32, environ)),
            (lane.end_cell, (buffer, 0)),
            (lane.begin_cell, (buffer, 0, 32, {**environ, "REQUEST_URI": "/caf\xe9"})),
            (lane.begin_cell, (buffer, 0, 32, {**environ, "fcgikit.request_id": 1 << 70})),
            (lane.begin_cell, (buffer, 0, 32, "not an environ")),
        ]
    )
