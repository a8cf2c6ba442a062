"""benchmarks/wakeups.py reads a scheduler trace as round 12 did, so the tool cannot rot.

``capture`` needs root and the kernel's tracing directory; ``report`` reads text, which is
what this test gives it: two requests on one loop thread, one of whose replies wakes nginx
onto the worker's own CPU and is preempted by it right after the ``sendto``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

WAKEUPS = Path(__file__).resolve().parent.parent / "benchmarks" / "wakeups.py"

SWITCH = (
    "prev_comm=python prev_pid=100 prev_prio=120 prev_state=R+"
    " ==> next_comm=nginx next_pid=200 next_prio=120"
)
TRACE = "\n".join(
    [
        "# tracer: nop",
        "  python-100 [000] ..... 10.000001: sys_exit: NR 288 = 7",
        "  python-100 [000] ..... 10.000002: sys_enter: NR 44 (7, 0, 80, 0, 0, 0)",
        "  python-100 [000] d..2. 10.000003: sched_waking: comm=nginx pid=200 target_cpu=000",
        "  python-100 [000] ..... 10.000004: sys_exit: NR 44 = 80",
        f"  python-100 [000] d..2. 10.000005: sched_switch: {SWITCH}",
        "   nginx-200 [000] ..... 10.000006: sys_exit: NR 232 = 3",
        "  python-100 [000] ..... 10.000007: sys_exit: NR 288 = 8",
        "  python-100 [000] ..... 10.000008: sys_exit: NR 288 = -11",
    ]
)


def test_a_trace_reads_as_preemptions_and_wakeups_a_request(tmp_path: Path) -> None:
    trace = tmp_path / "trace.txt"
    trace.write_text(TRACE)
    done = subprocess.run(
        [sys.executable, str(WAKEUPS), "report", str(trace)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    lines = done.stdout.splitlines()
    assert lines[0] == "2 requests (accept4 returns) on loop threads ['100']"
    assert "loop threads preempted: 0.500 a request" in lines
    assert "  0.500  by nginx, after sendto" in lines
    assert "nginx woken by a loop thread: 0.500 a request" in lines
    assert "  0.500  in sendto, onto the waker's CPU" in lines
    assert "nginx: 3.00 events an epoll_wait return (1 returns)" in lines


def test_a_trace_without_requests_says_what_to_check(tmp_path: Path) -> None:
    trace = tmp_path / "trace.txt"
    trace.write_text("# tracer: nop\n")
    done = subprocess.run(
        [sys.executable, str(WAKEUPS), "report", str(trace)], capture_output=True, text=True
    )
    assert done.returncode != 0
    assert "no accept4 returns in the trace" in done.stderr
