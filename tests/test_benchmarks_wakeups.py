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


#: one request from nginx's side: the client's request read, the upstream connected (fd 9)
#: and written; asleep; woken by the backend's read of the request (EPOLLOUT, nothing to do);
#: then the reply and its end of file read in one round, the upstream closed, the response
#: written to the client (fd 5)
NGINX_SLEEPS = (
    "prev_comm=nginx prev_pid=200 prev_prio=120 prev_state=S ==> next_comm=swapper/1"
    " next_pid=0 next_prio=120"
)
NGINX_TRACE = "\n".join(
    [
        "# tracer: nop",
        "   nginx-200 [001] ..... 10.000001: sys_exit: NR 232 = 1",
        "   nginx-200 [001] ..... 10.000002: sys_enter: NR 45 (5, 0, 400, 0, 0, 0)",
        "   nginx-200 [001] ..... 10.000003: sys_exit: NR 45 = 80",
        "   nginx-200 [001] ..... 10.000004: sys_enter: NR 41 (1, 1, 0, 0, 0, 0)",
        "   nginx-200 [001] ..... 10.000005: sys_exit: NR 41 = 9",
        "   nginx-200 [001] ..... 10.000006: sys_enter: NR 42 (9, 0, 6e, 0, 0, 0)",
        "   nginx-200 [001] ..... 10.000007: sys_exit: NR 42 = 0",
        "   nginx-200 [001] ..... 10.000008: sys_enter: NR 20 (9, 0, 3, 0, 0, 0)",
        "   nginx-200 [001] ..... 10.000009: sys_exit: NR 20 = 700",
        "   nginx-200 [001] ..... 10.000010: sys_enter: NR 232 (8, 0, 200, ea60, 0, 0)",
        f"   nginx-200 [001] d..2. 10.000011: sched_switch: {NGINX_SLEEPS}",
        "  python-100 [000] ..... 10.000012: sys_enter: NR 45 (7, 0, 4000, 0, 0, 0)",
        "  python-100 [000] d..2. 10.000013: sched_waking: comm=nginx pid=200 target_cpu=001",
        "  python-100 [000] ..... 10.000014: sys_exit: NR 45 = 700",
        "   nginx-200 [001] ..... 10.000015: sys_exit: NR 232 = 1",
        "   nginx-200 [001] ..... 10.000016: sys_enter: NR 232 (8, 0, 200, ea60, 0, 0)",
        "   nginx-200 [001] ..... 10.000017: sys_exit: NR 232 = 1",
        "   nginx-200 [001] ..... 10.000018: sys_enter: NR 45 (9, 0, 4000, 0, 0, 0)",
        "   nginx-200 [001] ..... 10.000019: sys_exit: NR 45 = 112",
        "   nginx-200 [001] ..... 10.000020: sys_enter: NR 19 (9, 0, 1, 0, 0, 0)",
        "   nginx-200 [001] ..... 10.000021: sys_exit: NR 19 = 0",
        "   nginx-200 [001] ..... 10.000022: sys_enter: NR 3 (9, 0, 0, 0, 0, 0)",
        "   nginx-200 [001] ..... 10.000023: sys_exit: NR 3 = 0",
        "   nginx-200 [001] ..... 10.000024: sys_enter: NR 20 (5, 0, 2, 0, 0, 0)",
        "   nginx-200 [001] ..... 10.000025: sys_exit: NR 20 = 161",
        "   nginx-200 [001] ..... 10.000026: sys_enter: NR 232 (8, 0, 200, ea60, 0, 0)",
        "   nginx-200 [001] ..... 10.000027: sys_exit: NR 232 = 2",
    ]
)


def test_a_trace_reads_as_nginx_calls_wakeups_and_rounds_a_request(tmp_path: Path) -> None:
    trace = tmp_path / "trace.txt"
    trace.write_text(NGINX_TRACE)
    done = subprocess.run(
        [sys.executable, str(WAKEUPS), "nginx", str(trace)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    lines = done.stdout.splitlines()
    assert lines[0] == "1 requests (connects of nginx's workers)"
    assert "epoll_wait 4.000" in lines[1] and "writev 2.000" in lines[1]
    assert "slept 1.000 a request, preempted 0.000" in lines
    assert "  woken 1.000 a request by python, in recvfrom" in lines
    assert "  1.000  ep=1 recvfromU+ readvU0 closeU writevC" in lines
    assert "  1.000  ep=1" in lines  # the EPOLLOUT round: nothing to do
    assert "  1.000  ep=1 recvfromC+ socketC connectU writevU" in lines
