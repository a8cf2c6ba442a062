"""Who preempts a backend's loop thread, and after which system call (Linux ftrace, root).

    python3 benchmarks/wakeups.py capture --pids PID,PID,... --seconds 0.25 --out trace.txt
    python3 benchmarks/wakeups.py report trace.txt
    python3 benchmarks/wakeups.py nginx trace.txt

``capture`` records, in a tracing instance of its own (``/sys/kernel/tracing/instances``), the
scheduler's switches and wake-ups of the whole machine and the system calls of the given
processes' threads (a backend, its workers, nginx's workers, wrk), for a window of a running
load. ``report`` reads that text trace: a backend's loop threads are the threads that return
from ``accept4`` (each return is a request, keep-conn off), and it prints per request

* how often a loop thread was switched out while runnable (preempted), by whom, and in or
  after which of its system calls;
* how often a loop thread woke an nginx worker, in which call, and onto which CPU (the
  waker's or the other);
* how many events an nginx worker took from each ``epoll_wait`` return.

``nginx`` reads the same trace from nginx's side (a request is a ``connect`` of an nginx
worker, keep-conn off): its system calls a request, its sleeps and who woke it (which thread,
in which call), and its event-loop rounds: the calls between two ``epoll_wait`` returns, with
``U`` or ``C`` for the upstream (backend) or client connection and ``0``/``+`` for a read's
result, so a round that read the reply and its end of file together shows as
``recvfromU+ readvU0 closeU writevC``.

This is how round 12 found what costs a prefork worker its CPU behind nginx
(benchmarks/RESULTS.md, "a worker's preemptions"). Time is not measured here: the trace's
own overhead slows the load.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import time
from collections import Counter
from pathlib import Path

TRACING = Path("/sys/kernel/tracing")
EVENTS = (
    "sched/sched_switch",
    "sched/sched_waking",
    "raw_syscalls/sys_enter",
    "raw_syscalls/sys_exit",
)
SYSCALLS = {
    0: "read",
    1: "write",
    3: "close",
    7: "poll",
    16: "ioctl",
    19: "readv",
    20: "writev",
    24: "sched_yield",
    41: "socket",
    42: "connect",
    44: "sendto",
    45: "recvfrom",
    46: "sendmsg",
    47: "recvmsg",
    55: "getsockopt",
    232: "epoll_wait",
    233: "epoll_ctl",
    288: "accept4",
}
ACCEPT4 = 288
EPOLL_WAIT = 232
LINE = re.compile(r"^\s*(.+?)-(\d+)\s+\[(\d+)\]\s+(\S+)\s+[\d.]+: (\w+): (.*)$")
SWITCH = re.compile(r"prev_pid=(\d+) .*prev_state=(\S+) ==> next_comm=(\S+)")
CONNECT = 42
READS = {0, 19, 45, 47}
FIRST_ARG = re.compile(r"\((\w+)")
WAKING = re.compile(r"comm=(\S+) pid=\d+ .*target_cpu=(\d+)")


def capture(pids: list[int], seconds: float, out: Path) -> None:
    instance = TRACING / "instances" / "wakeups"
    instance.mkdir(exist_ok=True)
    try:
        (instance / "tracing_on").write_text("0")
        (instance / "buffer_size_kb").write_text("60000")
        (instance / "trace").write_text("")
        tids = sorted(int(t) for pid in pids for t in os.listdir(f"/proc/{pid}/task"))
        only_ours = " || ".join(f"common_pid == {tid}" for tid in tids)
        for event in EVENTS:
            if event.startswith("raw_syscalls"):
                (instance / "events" / event / "filter").write_text(only_ours)
            (instance / "events" / event / "enable").write_text("1")
        (instance / "tracing_on").write_text("1")
        time.sleep(seconds)
        (instance / "tracing_on").write_text("0")
        shutil.copyfile(instance / "trace", out)
    finally:
        for event in EVENTS:
            (instance / "events" / event / "enable").write_text("0")
        instance.rmdir()


def _syscall(number: int | None) -> str:
    return "-" if number is None else SYSCALLS.get(number, str(number))


def report(trace: Path) -> None:
    accepts: Counter[str] = Counter()
    lines = [m.groups() for m in map(LINE.match, trace.read_text().splitlines()) if m]
    for _comm, tid, _cpu, _flags, event, rest in lines:
        if event == "sys_exit" and rest.startswith(f"NR {ACCEPT4} ") and "= -" not in rest:
            accepts[tid] += 1
    most = max(accepts.values(), default=0)
    loops = {tid for tid, n in accepts.items() if n * 10 > most}
    requests = sum(accepts[tid] for tid in loops)
    if not requests:
        raise SystemExit("no accept4 returns in the trace: keep-conn off, syscalls traced?")
    in_call: dict[str, int] = {}
    last_call: dict[str, int] = {}
    nginx = set()
    preempted: Counter[tuple[str, str]] = Counter()
    woke: Counter[tuple[str, str]] = Counter()
    returns = events = 0
    for comm, tid, cpu, flags, event, rest in lines:
        if comm == "nginx":
            nginx.add(tid)
        if event == "sys_enter":
            in_call[tid] = int(rest.split()[1])
        elif event == "sys_exit":
            number = int(rest.split()[1])
            in_call.pop(tid, None)
            last_call[tid] = number
            if number == EPOLL_WAIT and comm == "nginx":
                returns += 1
                events += max(0, int(rest.rsplit("= ", 1)[1]))
        elif event == "sched_waking" and tid in loops and not set("hs") & set(flags):
            waking = WAKING.search(rest)
            if waking and waking.group(1) == "nginx":
                where = "waker's CPU" if waking.group(2) == cpu else "other CPU"
                woke[(_syscall(in_call.get(tid)), where)] += 1
        elif event == "sched_switch":
            switch = SWITCH.search(rest)
            if switch and switch.group(1) in loops and switch.group(2).startswith("R"):
                prev = switch.group(1)
                when = (
                    f"in {_syscall(in_call[prev])}"
                    if prev in in_call
                    else f"after {_syscall(last_call.get(prev))}"
                )
                preempted[(switch.group(3), when)] += 1
    print(f"{requests} requests (accept4 returns) on loop threads {sorted(loops)}")
    print(f"loop threads preempted: {sum(preempted.values()) / requests:.3f} a request")
    for (by, when), n in preempted.most_common(8):
        print(f"  {n / requests:.3f}  by {by}, {when}")
    print(f"nginx woken by a loop thread: {sum(woke.values()) / requests:.3f} a request")
    for (call, where), n in woke.most_common(8):
        print(f"  {n / requests:.3f}  in {call}, onto the {where}")
    if returns:
        print(f"nginx: {events / returns:.2f} events an epoll_wait return ({returns} returns)")


class NginxSide:
    """nginx's side of a traced window (see ``nginx`` in the module docstring)."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.rounds: Counter[str] = Counter()
        self.woken: Counter[tuple[str, str]] = Counter()
        self.sleeps = self.preempted = self.requests = 0
        self.round: dict[str, list[str]] = {}
        self.upstream: dict[str, set[int]] = {}
        self.fd: dict[str, int] = {}
        self.in_call: dict[str, int] = {}

    def enter(self, tid: str, rest: str) -> None:
        self.in_call[tid] = int(rest.split()[1])
        first = FIRST_ARG.search(rest)
        self.fd[tid] = int(first.group(1), 16) if first else -1

    def exit(self, tid: str, rest: str) -> None:
        number, result = int(rest.split()[1]), int(rest.rsplit("= ", 1)[1])
        self.in_call.pop(tid, None)
        fd, name = self.fd.get(tid, -1), _syscall(number)
        self.calls[name] += 1
        upstream = self.upstream.setdefault(tid, set())
        if number == EPOLL_WAIT:
            if self.round.get(tid):
                self.rounds[" ".join(self.round[tid])] += 1
            self.round[tid] = [f"ep={result}"]
            return
        if number == CONNECT:
            self.requests += 1
            upstream.add(fd)
        side = "U" if fd in upstream else "C"
        if number in READS:
            side += "0" if result == 0 else "+" if result > 0 else "-"
        self.round.setdefault(tid, []).append(name + side)
        if number == 3:
            upstream.discard(fd)

    def print(self) -> None:
        n = self.requests
        print(f"{n} requests (connects of nginx's workers)")
        calls = ", ".join(f"{name} {k / n:.3f}" for name, k in self.calls.most_common())
        print(f"calls a request: {calls}")
        print(f"slept {self.sleeps / n:.3f} a request, preempted {self.preempted / n:.3f}")
        for (by, call), k in self.woken.most_common(6):
            print(f"  woken {k / n:.3f} a request by {by}, in {call}")
        print("rounds a request (the calls between two epoll_wait returns):")
        for calls, k in self.rounds.most_common(10):
            print(f"  {k / n:.3f}  {calls[:150]}")


def nginx(trace: Path) -> None:
    lines = [m.groups() for m in map(LINE.match, trace.read_text().splitlines()) if m]
    workers = {tid for comm, tid, *_ in lines if comm == "nginx"}
    side = NginxSide()
    in_call: dict[str, int] = {}
    for comm, tid, _cpu, _flags, event, rest in lines:
        if event == "sys_enter":
            in_call[tid] = int(rest.split()[1])
            if tid in workers:
                side.enter(tid, rest)
        elif event == "sys_exit":
            in_call.pop(tid, None)
            if tid in workers:
                side.exit(tid, rest)
        elif event == "sched_switch":
            switch = SWITCH.search(rest)
            if switch and switch.group(1) in workers:
                if switch.group(2).startswith("S"):
                    side.sleeps += 1
                else:
                    side.preempted += 1
        elif event == "sched_waking" and tid not in workers:
            woken = re.search(r"pid=(\d+)", rest)
            if woken and woken.group(1) in workers:
                side.woken[(comm, _syscall(in_call.get(tid)))] += 1
    if not side.requests:
        raise SystemExit("no connect by nginx in the trace: keep-conn off, nginx traced?")
    side.print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    sub = parser.add_subparsers(dest="command", required=True)
    cap = sub.add_parser("capture")
    cap.add_argument("--pids", required=True, help="comma-separated process ids")
    cap.add_argument("--seconds", type=float, default=0.25)
    cap.add_argument("--out", type=Path, required=True)
    rep = sub.add_parser("report")
    rep.add_argument("trace", type=Path)
    ngx = sub.add_parser("nginx")
    ngx.add_argument("trace", type=Path)
    args = parser.parse_args()
    if args.command == "capture":
        capture([int(p) for p in args.pids.split(",")], args.seconds, args.out)
    elif args.command == "nginx":
        nginx(args.trace)
    else:
        report(args.trace)


if __name__ == "__main__":
    main()
