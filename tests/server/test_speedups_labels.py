"""The C lane of a worker's request labels (fcgikit/server/_speedups_labels.c) against its spec.

``WorkerSlot.begin_request`` writes each request's label into its scoreboard cell with
``write_label`` when the C module is there, and with ``labels.write_label_py`` when it answers
None (outside the ordinary case) or is not there (``FCGIKIT_PURE_PYTHON=1``). Where the lane
answers, the cell must hold what the twin writes, byte for byte; tests/native.py loads the
lane in the pure-Python pass too, so both passes compare the two.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fcgikit.server import labels
from fcgikit.server.labels import write_label_py
from tests.native import PURE_PYTHON_PASS, assert_calls_leave_nothing_behind, load_lane

SIZE = 24  # a small cell, so that labels are cut


@pytest.fixture(scope="module")
def lane() -> ModuleType:
    return load_lane("fcgikit.server._speedups_labels")


def test_the_lane_is_on_exactly_when_the_pass_says(lane: ModuleType) -> None:
    if PURE_PYTHON_PASS:
        with pytest.raises(ImportError):
            import fcgikit.server._speedups_labels  # noqa: F401
        assert labels.write_label is None
        return
    assert labels.write_label is lane.write_label


def both(lane: ModuleType, environ: Any, size: int = SIZE) -> tuple[Any, Any]:
    """What the lane and the twin write into a cell of ``size`` (None: the lane declined)."""
    ours = memoryview(bytearray(b"\xff" * (size + 8)))
    theirs = memoryview(bytearray(b"\xff" * (size + 8)))
    length = lane.write_label(ours, 4, size, environ)
    expected = write_label_py(theirs, 4, size, environ)
    if length is None:
        return None, (expected, bytes(theirs))
    return (length, bytes(ours)), (expected, bytes(theirs))


@pytest.mark.parametrize(
    "environ",
    [
        {"REQUEST_METHOD": "GET", "REQUEST_URI": "/a?b", "fcgikit.request_id": 7},
        {"REQUEST_METHOD": "POST", "REQUEST_URI": "/x" * 40, "fcgikit.request_id": 65535},
        {"REQUEST_METHOD": "", "REQUEST_URI": "/", "fcgikit.request_id": 0},
    ],
    ids=["ordinary", "cut to fit", "empty method"],
)
def test_the_lane_writes_an_ordinary_label_as_the_twin_does(
    lane: ModuleType, environ: dict[str, Any]
) -> None:
    ours, theirs = both(lane, environ)
    assert ours is not None and ours == theirs


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
)
def test_whatever_the_lane_writes_is_what_the_twin_writes(
    lane: ModuleType, method: str, uri: str, request_id: int, size: int
) -> None:
    environ = {"REQUEST_METHOD": method, "REQUEST_URI": uri, "fcgikit.request_id": request_id}
    ours, theirs = both(lane, environ, size)
    if ours is not None:
        assert ours == theirs


def test_a_label_area_outside_the_buffer_is_refused(lane: ModuleType) -> None:
    environ = {"REQUEST_METHOD": "GET", "REQUEST_URI": "/a", "fcgikit.request_id": 1}
    with pytest.raises(ValueError, match="outside the buffer"):
        lane.write_label(memoryview(bytearray(8)), 4, 8, environ)
    with pytest.raises(BufferError):
        lane.write_label(b"read-only", 0, 4, environ)


def test_calls_leave_no_reference_and_no_memory_behind(lane: ModuleType) -> None:
    cell = memoryview(bytearray(64))
    environ = {"REQUEST_METHOD": "GET", "REQUEST_URI": "/a", "fcgikit.request_id": 1}
    assert_calls_leave_nothing_behind(
        [
            (lane.write_label, (cell, 0, 32, environ)),
            (lane.write_label, (cell, 0, 32, {**environ, "REQUEST_URI": "/caf\xe9"})),
            (lane.write_label, (cell, 0, 32, {**environ, "fcgikit.request_id": 1 << 70})),
            (lane.write_label, (cell, 0, 32, "not an environ")),
        ]
    )
