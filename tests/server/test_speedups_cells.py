"""The C lane of a worker's request cells (fcgikit/server/_speedups_cells.c) against its spec.

The tracker writes each request's cell (label, count, thread, start) with the lane's
``RequestCells`` when the C module is there, and with ``cells.RequestCellsPy`` where it
answers None (outside the ordinary case) or is not there (``FCGIKIT_PURE_PYTHON=1``). Where
the lane answers, the cell must hold what the twin writes, byte for byte but for the clock's
reading, and where it declines it must have written nothing; tests/native.py loads the lane in
the pure-Python pass too, so both passes compare the two.
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

from fcgikit.server import cells
from fcgikit.server.cells import RequestCellsPy
from tests.native import PURE_PYTHON_PASS, assert_calls_leave_nothing_behind, load_lane

SIZE = 24  # a small label, so that labels are cut
CELL = 24 + SIZE  # the head, the label
AT = 8  # where the cells begin in the test's buffer
HEAD = struct.Struct("=dQQ")  # the cell's start, word (requests << 16 | label length), thread


@pytest.fixture(scope="module")
def lane() -> ModuleType:
    return load_lane("fcgikit.server._speedups_cells")


def test_the_lane_is_on_exactly_when_the_pass_says(lane: ModuleType) -> None:
    if PURE_PYTHON_PASS:
        with pytest.raises(ImportError):
            import fcgikit.server._speedups_cells  # noqa: F401
        assert cells.RequestCells is None
        return
    assert cells.RequestCells is lane.RequestCells


def buffer(size: int = SIZE, requests: int = 0) -> memoryview:
    """Two free cells whose labels have ``size`` bytes, ``requests`` run, in a larger buffer."""
    memory = memoryview(bytearray(b"\xff" * (AT + 2 * (24 + size) + 8)))
    for cell in range(2):
        HEAD.pack_into(memory, AT + cell * (24 + size), -1.0, requests << 16 | 3, 5)
    return memory


def both(lane: ModuleType, environ: Any, size: int = SIZE, requests: int = 0) -> tuple[Any, Any]:
    """What the lane and the twin write into cell 1 (None: the lane declined, and wrote
    nothing): what they answer, the word, the thread, the bytes but the start, and whether
    the start is now."""
    ours, theirs = buffer(size, requests), buffer(size, requests)
    untouched = bytes(ours)
    before = time.monotonic()
    answer = lane.RequestCells(ours, AT, 2, 24 + size, size).begin(1, environ)
    expected = RequestCellsPy(theirs, AT, 2, 24 + size, size).begin(1, environ)
    after = time.monotonic()

    def written(memory: memoryview, answer: bool) -> tuple[Any, ...]:
        at = AT + 24 + size
        start, word, thread = HEAD.unpack_from(memory, at)
        rest = bytes(memory[:at]) + bytes(memory[at + 8 :])
        return answer, word, thread, rest, before <= start <= after

    if answer is None:
        assert bytes(ours) == untouched
        return None, written(theirs, expected)
    return written(ours, answer), written(theirs, expected)


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
    assert ours[0] is True and ours[1] >> 16 == 42 and ours[2] == threading.get_ident()
    assert ours[4]


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


def label(memory: memoryview, cell: int) -> bytes:
    at = AT + cell * CELL
    return bytes(memory[at + 24 : at + 24 + (HEAD.unpack_from(memory, at)[1] & 0xFFFF)])


def test_each_environ_is_read_whatever_its_order_and_its_keys_objects(lane: ModuleType) -> None:
    # The lane looks for each key where the last environ held it, by identity with the key
    # found there; an environ in another order, with other key objects, or with the key gone
    # from there must still be read as a dict.
    memory = buffer()
    writer = lane.RequestCells(memory, AT, 2, CELL, SIZE)
    first = {"REQUEST_METHOD": "GET", "REQUEST_URI": "/one", "fcgikit.request_id": 1}
    assert writer.begin(0, first) and label(memory, 0) == b"#1 GET /one"
    writer.end(0)
    reordered = {"fcgikit.request_id": 2, "REQUEST_URI": "/two", "REQUEST_METHOD": "PUT"}
    assert writer.begin(0, reordered) and label(memory, 0) == b"#2 PUT /two"
    writer.end(0)
    made_anew = {"".join(["REQUEST_", "METHOD"]): "POST", "".join(["REQUEST_", "URI"]): "/3"}
    made_anew["".join(["fcgikit.", "request_id"])] = 3
    assert writer.begin(0, made_anew) and label(memory, 0) == b"#3 POST /3"
    writer.end(0)
    moved = {"X": "1", **made_anew}
    del moved["X"]
    moved["fcgikit.request_id"] = 4
    assert writer.begin(0, moved) and label(memory, 0) == b"#4 POST /3"
    writer.end(0)
    assert writer.begin(0, {"REQUEST_METHOD": "GET", "fcgikit.request_id": 5}) is None
    assert writer.begin(1, reordered) and label(memory, 1) == b"#2 PUT /two"


@pytest.mark.parametrize("start", [0.0, -5.0, 12.5], ids=["never used", "free", "running"])
def test_the_lane_ends_a_cell_as_the_twin_does(lane: ModuleType, start: float) -> None:
    ours, theirs = buffer(), buffer()
    HEAD.pack_into(ours, AT + CELL, start, 7 << 16 | 3, 9)
    HEAD.pack_into(theirs, AT + CELL, start, 7 << 16 | 3, 9)
    before = time.monotonic()
    ended = lane.RequestCells(ours, AT, 2, CELL, SIZE).end(1)
    assert ended == RequestCellsPy(theirs, AT, 2, CELL, SIZE).end(1) == (start > 0)
    after = time.monotonic()
    for memory in (ours, theirs):
        written, word, thread = HEAD.unpack_from(memory, AT + CELL)
        assert (word, thread) == (7 << 16 | 3, 9)
        assert before <= -written <= after if start > 0 else written == start
    assert bytes(ours)[: AT + CELL] == bytes(theirs)[: AT + CELL]
    assert bytes(ours)[AT + CELL + 8 :] == bytes(theirs)[AT + CELL + 8 :]


@pytest.mark.parametrize("make", ["lane", "twin"])
def test_cells_outside_the_buffer_are_refused(lane: ModuleType, make: str) -> None:
    writer = lane.RequestCells if make == "lane" else RequestCellsPy
    with pytest.raises(ValueError, match="outside the buffer"):
        writer(memoryview(bytearray(100)), 8, 2, 48, 24)
    with pytest.raises(ValueError, match="no such cells"):
        writer(memoryview(bytearray(100)), 0, 2, 24, 8)
    cells = writer(memoryview(bytearray(100)), 4, 2, 48, 24)
    environ = {"REQUEST_METHOD": "GET", "REQUEST_URI": "/a", "fcgikit.request_id": 1}
    for cell in (-1, 2):
        with pytest.raises(IndexError, match=f"no cell {cell}"):
            cells.begin(cell, environ)
        with pytest.raises(IndexError, match=f"no cell {cell}"):
            cells.end(cell)


def test_the_lane_needs_a_writable_buffer_and_holds_it(lane: ModuleType) -> None:
    with pytest.raises(BufferError):
        lane.RequestCells(b"read-only" * 8, 0, 1, 48, 24)
    memory = bytearray(64)
    writer = lane.RequestCells(memory, 0, 1, 48, 24)
    with pytest.raises(BufferError):
        memory.extend(b"x")  # the cells' memory may not move while the lane writes it
    del writer
    memory.extend(b"x")


def test_calls_leave_no_reference_and_no_memory_behind(lane: ModuleType) -> None:
    writer = lane.RequestCells(memoryview(bytearray(64)), 0, 1, 56, 32)
    environ = {"REQUEST_METHOD": "GET", "REQUEST_URI": "/a", "fcgikit.request_id": 1}
    assert_calls_leave_nothing_behind(
        [
            (writer.begin, (0, environ)),
            (writer.end, (0,)),
            (writer.begin, (0, {**environ, "REQUEST_URI": "/caf\xe9"})),
            (writer.begin, (0, {**environ, "fcgikit.request_id": 1 << 70})),
            (writer.begin, (0, "not an environ")),
            (lane.RequestCells, (bytearray(64), 0, 1, 56, 32)),
        ]
    )
