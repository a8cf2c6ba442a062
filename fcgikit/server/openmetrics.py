"""The status page in the OpenMetrics text format (``?openmetrics``), for Prometheus.

OpenMetrics 1.0 (the format Prometheus asks for first): each family is a ``# TYPE`` line,
its ``# UNIT`` when it has one, a ``# HELP`` line and its samples, a counter's with
``_total``; the page ends with ``# EOF``. The families, and what a single process leaves out,
are listed in docs/operations.rst ("Metrics"); a family's series are all there from the start
(zeros included), so that a query or an alert finds them before the first event.
"""

from __future__ import annotations

from collections.abc import Iterable

from fcgikit.server.metrics import DURATION_BUCKETS, Counts
from fcgikit.server.pool_view import PoolView, state_name
from fcgikit.server.scoreboard import RESTART_REASONS

CONTENT_TYPE = "application/openmetrics-text; version=1.0.0; charset=utf-8"
#: the states a worker is counted in (fcgikit_workers)
WORKER_STATES = ("idle", "busy", "booting", "stopping", "failed")


def render(view: PoolView, *, pool: bool) -> str:
    """The page for ``view``; ``pool``: with the families only a pool has."""
    lines: list[str] = []
    _request_families(lines, view)
    _admission_families(lines, view.counters)
    _family(
        lines,
        "fcgikit_start_time_seconds",
        "gauge",
        "When the server (the pool's master) started, in seconds since the epoch",
        [("", {}, view.started_wall)],
        unit="seconds",
    )
    if pool:
        _pool_families(lines, view)
    lines.append("# EOF")
    return "\n".join(lines) + "\n"


def _request_families(lines: list[str], view: PoolView) -> None:
    """The requests answered (by status class, by duration), running and waiting."""
    counters = view.counters
    by_class = dict(counters.requests_by_class())
    labels = [(index, f"{index}xx" if index else "none") for index in range(10)]
    _family(
        lines,
        "fcgikit_requests",
        "counter",
        "Requests answered, by the class of their status (none: the web server went away "
        "before the response began)",
        (
            ("_total", {"status": label}, by_class[index])
            for index, label in labels
            if index <= 5 or by_class[index]
        ),
    )
    _histogram(lines, counters.duration_buckets(), counters.duration_sum)
    running = sum(w.sampled_running for w in view.workers)
    queued = sum(w.sampled_queued for w in view.workers)
    _family(lines, "fcgikit_requests_in_flight", "gauge", "Requests running", [("", {}, running)])
    _family(
        lines,
        "fcgikit_requests_queued",
        "gauge",
        "Requests admitted and waiting for a thread",
        [("", {}, queued)],
    )


def _admission_families(lines: list[str], counters: Counts) -> None:
    """The connections accepted, and the connections and requests refused."""
    _family(
        lines,
        "fcgikit_connections_accepted",
        "counter",
        "Connections from the web server accepted",
        [("_total", {}, counters.connections_accepted)],
    )
    _family(
        lines,
        "fcgikit_connections_refused",
        "counter",
        "Connections refused or not accepted, by reason",
        (("_total", {"reason": r}, n) for r, n in counters.connections_refused().items()),
    )
    _family(
        lines,
        "fcgikit_requests_refused",
        "counter",
        "Requests refused with FCGI_OVERLOADED, by reason",
        (("_total", {"reason": r}, n) for r, n in counters.requests_refused().items()),
    )


def _pool_families(lines: list[str], view: PoolView) -> None:
    states = dict.fromkeys(WORKER_STATES, 0)
    for worker in view.workers:
        states[state_name(worker)] = states.get(state_name(worker), 0) + 1
    _family(
        lines,
        "fcgikit_workers",
        "gauge",
        "Worker processes, by state",
        (("", {"state": state}, count) for state, count in states.items()),
    )
    _family(
        lines,
        "fcgikit_worker_restarts",
        "counter",
        "Workers replaced, by reason",
        (
            ("_total", {"reason": reason}, view.restarts.get(reason, 0))
            for reason in RESTART_REASONS
        ),
    )
    _family(
        lines,
        "fcgikit_slow_requests",
        "counter",
        "Requests that ran longer than --slow-log",
        [("_total", {}, view.slow)],
    )
    _family(
        lines,
        "fcgikit_max_workers_reached",
        "counter",
        "Times every worker was busy with the pool at its maximum",
        [("_total", {}, view.max_reached)],
    )


def _histogram(lines: list[str], buckets: list[int], duration_sum: float) -> None:
    samples: list[tuple[str, dict[str, str], float]] = []
    cumulative = 0
    for bound, count in zip((*map(repr, DURATION_BUCKETS), "+Inf"), buckets, strict=True):
        cumulative += count
        samples.append(("_bucket", {"le": bound}, cumulative))
    samples += [("_count", {}, cumulative), ("_sum", {}, duration_sum)]
    _family(
        lines,
        "fcgikit_request_duration_seconds",
        "histogram",
        "How long requests took, from their params' arrival to their end",
        samples,
        unit="seconds",
    )


def _family(
    lines: list[str],
    name: str,
    kind: str,
    help_text: str,
    samples: Iterable[tuple[str, dict[str, str], float]],
    *,
    unit: str = "",
) -> None:
    lines.append(f"# TYPE {name} {kind}")
    if unit:
        lines.append(f"# UNIT {name} {unit}")
    lines.append(f"# HELP {name} {help_text}")
    for suffix, labels, value in samples:
        text = ",".join(f'{key}="{label}"' for key, label in labels.items())
        lines.append(
            f"{name}{suffix}{{{text}}} {_number(value)}"
            if text
            else f"{name}{suffix} {_number(value)}"
        )


def _number(value: float) -> str:
    if isinstance(value, int) or (float(value).is_integer() and abs(value) < 2**53):
        return str(int(value))
    return repr(float(value))
