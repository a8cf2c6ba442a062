"""The server's C fast lanes: for each, its Python twin and the test that holds them together.

A lane is C beside the Python that does the same work faster in the ordinary case. Its
contract (STYLE.md, "Fast lanes"):

* The Python twin is the specification, and the pure-Python build runs it alone. The C
  answers None (or declines) outside the ordinary case, and the Python then does the whole
  work, errors included; so no error message and no rule lives only in C. The rules the C
  needs are handed over by the Python at import (wsgi_codec.give_header_rules).
* Each C module is named ``_speedups_<module>`` after the one Python module that imports it
  (``wsgi_codec.py`` imports ``_speedups_wsgi_codec``), which runs its twin where the C was
  not built and under ``FCGIKIT_PURE_PYTHON=1`` (fcgikit/_pure_python.py refuses every such
  module).
* An equivalence test holds each lane to its twin, in both builds (tests/native.py).

tests/server/test_lanes.py walks :data:`LANES`: every public name of every ``_speedups*.c``
module of this package must be in it, with a twin that exists and a test that exists. To add
a lane, write the twin first, then the C, then its row here and its test.
"""

from __future__ import annotations

from typing import NamedTuple


class Lane(NamedTuple):
    #: the C name, as its module and attribute:
    #: "fcgikit.server._speedups_wsgi_codec.encode_head"
    c_name: str
    #: the Python that is its spec, as module and attribute
    python_twin: str
    #: the test that holds the two together: "tests/server/test_x.py::test_name"
    equivalence_test: str


LANES = (
    Lane(
        "fcgikit.server._speedups_wsgi_codec.environ_from_params",
        "fcgikit.server.wsgi_codec.environ_from_params_py",
        "tests/server/test_speedups_wsgi_codec.py::"
        "test_environ_from_params_is_the_python_or_declines_a_reserved_name",
    ),
    Lane(
        "fcgikit.server._speedups_wsgi_codec.encode_head",
        "fcgikit.server.wsgi_codec.encode_head_py",
        "tests/server/test_speedups_wsgi_codec.py::test_encode_head_is_the_python_or_declines",
    ),
    Lane(
        "fcgikit.server._speedups_accept.accept_connection",
        "fcgikit.server.accept.accept_connection_py",
        "tests/server/test_speedups_accept.py::"
        "test_accept_connection_is_the_python_without_the_exception",
    ),
    Lane(
        "fcgikit.server._speedups_accept.Connection",
        "fcgikit.server.accept.connection_py",
        "tests/server/test_speedups_accept.py::"
        "test_a_connection_receives_and_sends_as_a_socket_does",
    ),
    Lane(
        "fcgikit.server._speedups_accept.read_ready",
        "fcgikit.server.accept.read_ready_py",
        "tests/server/test_speedups_accept.py::"
        "test_read_ready_says_none_yet_without_an_exception_as_its_twin_does",
    ),
    Lane(
        "fcgikit.server._speedups_accept.send_stdout",
        "fcgikit.server.accept.send_stdout_py",
        "tests/server/test_send_stdout.py::test_send_stdout_puts_the_python_records_on_the_wire",
    ),
    Lane(
        "fcgikit.server._speedups_memory.mallopt",
        "fcgikit.server.memory._mallopt_py",
        "tests/server/test_memory.py::test_the_c_mallopt_answers_as_the_python",
    ),
    Lane(
        "fcgikit.server._speedups_cells.RequestCells",
        "fcgikit.server.cells.RequestCellsPy",
        "tests/server/test_speedups_cells.py::"
        "test_whatever_the_lane_writes_is_what_the_twin_writes",
    ),
    Lane(
        "fcgikit.server._speedups_watcher.LoopWatch",
        "fcgikit.server.watcher.PythonLoopWatch",
        "tests/server/test_speedups_watcher.py::test_the_python_watch_answers_as_the_c_one",
    ),
)
