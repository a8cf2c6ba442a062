"""The steps the prefork master takes each round to keep its pool as wanted.

Each round of the :class:`~fcgikit.server.arbiter.Arbiter`'s loop, once the
:class:`~fcgikit.server.keeper.PoolKeeper` has reaped the workers that exited,
:func:`keep_pool` takes a few small steps over the keeper's one shared state (the pool's
target, generation and crash streak), each reading the pool afresh: note the workers that
became ready, stop those over ``--timeout``, grow or shrink a dynamic pool, trim to the
target, start what is missing, retire the replaced ones once their replacements are ready,
kill those that do not stop in time. The keeper keeps the record of the workers and the acts
on one worker (start, stop, kill) these steps call; the policy of when is here.
"""

from __future__ import annotations

import logging
import time

from fcgikit.server.children import WorkerProcess
from fcgikit.server.keeper import KILL_MARGIN, PoolKeeper
from fcgikit.server.pool_view import SlotView, WorkerState

log = logging.getLogger("fcgikit.arbiter")


def keep_pool(keeper: PoolKeeper) -> None:
    """One round of keeping the pool as wanted, in steps, each reading the pool afresh."""
    assert keeper.board is not None
    now = time.monotonic()
    views = {pid: keeper.board.read(w.slot) for pid, w in keeper.workers.items()}
    _note_ready(keeper, views, now)
    if keeper.pool.timeout is not None:
        _check_timeouts(keeper, views, now)
    if keeper.dynamic and not keeper.reloading:
        _scale(keeper, _active(keeper), views, now)
    _trim_to_target(keeper)
    if now >= keeper.spawn_after:
        _spawn_missing(keeper)
    _retire_replaced(keeper)
    _kill_overdue(keeper, now)


def _active(keeper: PoolKeeper) -> list[WorkerProcess]:
    """The workers that count towards the target: neither retiring nor stopping."""
    return [w for w in keeper.workers.values() if w.retiring is None and w.stop_sent is None]


def _note_ready(keeper: PoolKeeper, views: dict[int, SlotView], now: float) -> None:
    """Workers that became ready, and those that asked to retire (``--max-requests``,
    ``sys.exit()`` in a request), as their slots say."""
    for worker in keeper.workers.values():
        view = views[worker.pid]
        if not worker.ready and view.state in (WorkerState.READY, WorkerState.RETIRING):
            worker.ready = True
            worker.ready_at = now
            keeper.ever_ready = True
            log.info("worker %d ready (generation %d)", worker.pid, worker.generation)
            if not keeper.reloading:
                keeper.say_ready(None)
        if view.state == WorkerState.RETIRING and worker.retiring is None:
            # its own log line said why: --max-requests, or the app's sys.exit()
            worker.retiring = "retiring"


def _trim_to_target(keeper: PoolKeeper) -> None:
    """Too many (SIGTTOU): keep the oldest ready ones, stop the newest."""
    active = sorted(_active(keeper), key=lambda w: (not w.ready, w.spawned))
    for worker in active[keeper.target :]:
        keeper.stop(worker, "fewer workers wanted")


def _spawn_missing(keeper: PoolKeeper) -> None:
    """Start workers up to the target; one at a time while backing off."""
    for _ in range(keeper.target - len(_active(keeper))):
        if not keeper.spawn() or keeper.crash_streak >= 2:
            break


def _retire_replaced(keeper: PoolKeeper) -> None:
    """Old workers (reload, retiring) stop one for each new one that is ready,
    never before; a reload is complete when no old generation is left."""
    ready = sum(1 for w in _active(keeper) if w.ready)
    waiting = sorted(
        (w for w in keeper.workers.values() if w.retiring and w.stop_sent is None),
        key=lambda w: w.spawned,
    )
    for worker in waiting[: max(0, ready + len(waiting) - keeper.target)]:
        keeper.stop(worker, "replaced" if worker.retiring == "reload" else "retiring")
    if keeper.reloading and not any(
        w.generation < keeper.generation for w in keeper.workers.values()
    ):
        keeper.reloading = False
        log.info("reload complete: %d workers of generation %d", ready, keeper.generation)
        keeper.say_ready(None)


def _kill_overdue(keeper: PoolKeeper, now: float) -> None:
    """A stopping worker gets graceful_timeout (and a margin) to finish, then SIGKILL."""
    limit = keeper.settings.graceful_timeout + KILL_MARGIN
    for worker in keeper.workers.values():
        if worker.stop_sent is not None and now - worker.stop_sent > limit:
            log.warning("worker %d did not stop within %gs; killing it", worker.pid, limit)
            keeper.kill(worker, "did not stop in time")


def _check_timeouts(keeper: PoolKeeper, views: dict[int, SlotView], now: float) -> None:
    assert keeper.pool.timeout is not None
    timeout = keeper.pool.timeout
    for worker in keeper.workers.values():
        if worker.killed is not None:
            continue
        view = views[worker.pid]
        late = [r for r in view.running if now - r.started > timeout]
        if not late:
            continue
        for request in late:
            key = (request.label, request.started)
            if key not in worker.timed_out:
                worker.timed_out.add(key)
                log.error(
                    "request %s on worker %d exceeded --timeout %gs; killing the worker",
                    request.label,
                    worker.pid,
                    timeout,
                )
        if len(view.running) <= len(late):
            keeper.kill(worker, "--timeout")
        elif worker.stop_sent is None:
            log.info(
                "worker %d finishes its %d other request(s) first",
                worker.pid,
                len(view.running) - len(late),
            )
            keeper.stop(worker, "--timeout")


def _scale(
    keeper: PoolKeeper, active: list[WorkerProcess], views: dict[int, SlotView], now: float
) -> None:
    """A dynamic pool: one worker more when every one is busy, one fewer when one has
    been idle for ``idle_timeout``."""
    assert keeper.board is not None
    booting = any(not w.ready for w in active)
    saturated = (
        bool(active)
        and not booting
        and len(active) >= keeper.target
        and all(views[w.pid].busy >= keeper.settings.threads for w in active)
    )
    if saturated:
        if keeper.target < keeper.maximum:
            keeper.target += 1
            keeper.publish()
            log.info(
                "all %d workers busy; starting another (dynamic pool, at most %d)",
                len(active),
                keeper.maximum,
            )
        elif not keeper.saturated_logged:
            keeper.saturated_logged = True
            keeper.board.count_max_reached()
            log.warning(
                "all %d workers busy and the pool is at its maximum (--workers %d:%d); "
                "requests wait for a free thread",
                len(active),
                keeper.minimum,
                keeper.maximum,
            )
        return
    keeper.saturated_logged = False
    if keeper.target <= keeper.minimum:
        return
    idle = [
        w
        for w in active
        if w.ready
        and views[w.pid].busy == 0
        and now - max(views[w.pid].last_active, w.ready_at) >= keeper.pool.idle_timeout
    ]
    if idle:
        worker = max(idle, key=lambda w: w.spawned)
        keeper.target -= 1
        keeper.publish()
        keeper.stop(worker, f"idle for {keeper.pool.idle_timeout:g}s")
