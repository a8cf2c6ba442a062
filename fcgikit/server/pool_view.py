"""What a reader of the :mod:`~fcgikit.server.scoreboard` gets: the state each worker gives
itself, a worker's slot and the whole pool as they stood when read, and the status page's
figures made from them.

The scoreboard's shared memory, its layout and its writers are in
:mod:`fcgikit.server.scoreboard`, which reads these views out of it; what the views show
(the page's content, the workers' states by name) is here, read by the master (its STATUS=
line), the status page (:mod:`~fcgikit.server.status`) and the metrics
(:mod:`~fcgikit.server.openmetrics`).
"""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field
from typing import Any

from fcgikit.server.metrics import Counts


class WorkerState(enum.IntEnum):
    """A worker's own account of itself (only the worker writes it)."""

    FREE = 0  # no worker in this slot
    BOOTING = 1  # forked, importing the app
    READY = 2  # accepting connections
    RETIRING = 3  # reached --max-requests: accepting until the master stops it
    STOPPING = 4  # stopping: finishing in-flight requests, accepting nothing
    FAILED = 5  # could not start (the app did not load, or no user switch): exiting


@dataclass(frozen=True, slots=True)
class RunningRequest:
    cell: int
    label: str
    started: float  # time.monotonic() of the process that wrote it (one clock on Linux)
    thread: int  # the ident of the thread it runs on, in the worker (the slow log's stack)


@dataclass(frozen=True, slots=True)
class SlotView:
    index: int
    pid: int
    state: WorkerState
    generation: int
    started: float
    requests: int
    slow: int
    #: threads running a request, counted from the cells
    busy: int
    #: when its last request ended (time.monotonic), or when its slot was reset; while it
    #: runs requests, an earlier end may stand for it (a running cell holds its start only)
    last_active: float
    running: tuple[RunningRequest, ...]
    #: its metrics' counters (metrics.py)
    counters: Counts = field(default_factory=Counts.zero)
    #: its requests running and waiting, as last sampled (metrics.py)
    sampled_running: int = 0
    sampled_queued: int = 0
    #: why it asked to be replaced ("max_requests", "app_exit"), or ""
    retired_for: str = ""


@dataclass(frozen=True, slots=True)
class PoolView:
    started_wall: float
    started: float
    accepted: int
    slow: int
    dynamic: bool
    target: int
    maximum: int
    threads: int
    max_reached: int
    workers: tuple[SlotView, ...]
    #: the metrics' counters of every worker, the dead ones' included
    counters: Counts = field(default_factory=Counts.zero)
    #: workers replaced, by reason (RESTART_REASONS)
    restarts: dict[str, int] = field(default_factory=dict)

    def as_dict(self, now: float | None = None, *, queries: bool = False) -> dict[str, Any]:
        """The page's content; ``queries``: the requests' query strings too."""
        now = time.monotonic() if now is None else now
        live = [w for w in self.workers if w.state in (WorkerState.READY, WorkerState.RETIRING)]
        busy = sum(1 for w in live if w.busy)
        starting = sum(1 for w in self.workers if w.state == WorkerState.BOOTING)
        return {
            "pool_mode": "dynamic" if self.dynamic else "static",
            "start_time": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(self.started_wall)),
            "uptime": round(now - self.started, 3),
            "accepted_requests": self.accepted,
            "slow_requests": self.slow,
            "idle_workers": len(live) - busy,
            "busy_workers": busy,
            "starting_workers": starting,
            "stopping_workers": len(self.workers) - len(live) - starting,
            "total_workers": len(self.workers),
            "target_workers": self.target,
            "max_workers": self.maximum,
            "threads_per_worker": self.threads,
            "max_workers_reached": self.max_reached,
            "workers": [
                {
                    "pid": w.pid,
                    "state": state_name(w),
                    "generation": w.generation,
                    "requests": w.requests,
                    "slow_requests": w.slow,
                    "busy_threads": w.busy,
                    "uptime": round(now - w.started, 3),
                    "current_requests": [
                        {
                            "request": r.label if queries else r.label.partition("?")[0],
                            "duration": round(now - r.started, 3),
                        }
                        for r in w.running
                    ],
                }
                for w in sorted(self.workers, key=lambda w: w.pid)
            ],
        }

    def single_process_dict(self, now: float | None = None) -> dict[str, Any]:
        """The page of a single process (no ``--workers``): its own figures, no pool's."""
        now = time.monotonic() if now is None else now
        running = sum(w.sampled_running for w in self.workers)
        finished = sum(count for _, count in self.counters.requests_by_class())
        return {
            "pool_mode": "single process",
            "start_time": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(self.started_wall)),
            "uptime": round(now - self.started, 3),
            "pid": self.workers[0].pid if self.workers else 0,
            "threads": self.threads,
            "accepted_requests": finished + running,
            "requests_in_flight": running,
            "queued_requests": sum(w.sampled_queued for w in self.workers),
            "accepted_connections": self.counters.connections_accepted,
        }


def state_name(view: SlotView) -> str:
    if view.state in (WorkerState.READY, WorkerState.RETIRING):
        return "busy" if view.busy else "idle"
    return view.state.name.lower()
