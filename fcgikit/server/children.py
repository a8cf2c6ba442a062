"""The master's view of its worker processes: the record it keeps of each, and why one died.

Why a worker died is read from the pool's own bookkeeping (its slot on the scoreboard and the
master's record), never guessed from its exit status: an app may ``os._exit`` with any.
"""

from __future__ import annotations

import enum
import signal
from dataclasses import dataclass, field

from fcgikit.server.pool_view import SlotView, WorkerState


@dataclass(slots=True, eq=False)
class WorkerProcess:
    """The master's record of one worker."""

    pid: int
    slot: int
    generation: int
    spawned: float
    ready: bool = False
    ready_at: float = 0.0
    #: why a replacement is wanted ("reload", "max-requests"); it serves until one is ready
    retiring: str | None = None
    #: when SIGTERM was sent (it is finishing its requests)
    stop_sent: float | None = None
    stop_reason: str = ""
    #: why SIGKILL was sent
    killed: str | None = None
    timed_out: set[tuple[str, float]] = field(default_factory=set)


class Death(enum.Enum):
    """How a worker died that the master did not stop, as the pool's own bookkeeping tells:
    its slot on the scoreboard and the master's record. Never the exit status: an app may
    ``os._exit`` with any."""

    #: it said so in its slot (WorkerState.FAILED): the app did not load
    FAILED_TO_START = "failed to start"
    #: before it was ready to accept (while importing the app, say)
    BEFORE_READY = "before it was ready"
    #: with requests running: one of them, most likely, killed it
    WHILE_SERVING = "while serving"
    #: ready, and running no request
    WHILE_IDLE = "while idle"


def death_of(worker: WorkerProcess, view: SlotView) -> Death:
    """Why ``worker`` died, from its slot as it left it (``view``). A request in its slot
    counts even if the worker had not marked itself READY yet: its first request may come
    before the watchdog thread gets to that."""
    if view.state == WorkerState.FAILED:
        return Death.FAILED_TO_START
    if view.running:
        return Death.WHILE_SERVING
    if worker.ready or view.requests or view.state in (WorkerState.READY, WorkerState.RETIRING):
        return Death.WHILE_IDLE
    return Death.BEFORE_READY


#: the stop reasons (WorkerProcess.stop_reason) after which a worker is replaced, and the
#: restart reason each is counted as (scoreboard.RESTART_REASONS); the others ("fewer
#: workers wanted", "idle for ...") shrink the pool
_REPLACED_AFTER_STOP = {"replaced": "reload", "--timeout": "timeout"}


def restart_reason(worker: WorkerProcess, code: int, view: SlotView) -> str | None:
    """Why the master replaces ``worker``, which exited with ``code`` (a
    waitstatus_to_exitcode()) leaving its slot as ``view``, for the status page's count of
    restarts (scoreboard.RESTART_REASONS); None when it is not replaced (the pool shrank).
    Asked only while the pool runs: a stopping pool replaces nobody."""
    if worker.killed == "--timeout":
        return "timeout"
    if worker.stop_sent is not None and (worker.killed is not None or code in (0, -signal.SIGTERM)):
        if worker.stop_reason == "retiring":
            return view.retired_for or "max_requests"
        return _REPLACED_AFTER_STOP.get(worker.stop_reason)
    death = death_of(worker, view)
    if death is Death.WHILE_SERVING:
        return "crashed_while_serving"
    if death is Death.WHILE_IDLE:
        return "crashed_while_idle"
    return "failed_to_start"


def describe_exit(code: int) -> str:
    """``killed by SIGSEGV`` or ``exited with status 3``, from a waitstatus_to_exitcode()."""
    if code >= 0:
        return f"exited with status {code}"
    try:
        return f"killed by {signal.Signals(-code).name}"
    except ValueError:
        return f"killed by signal {-code}"
