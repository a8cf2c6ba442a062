"""The process pool's settings (``fcgikit serve --workers``): how many worker processes, and
when to replace them. One frozen dataclass, validated on creation.

How many workers is the command's own ``--workers`` (:class:`~fcgikit.server.settings.command.
CommandSettings`): whether there is a pool at all is decided there. Its two numbers are
``workers_min`` and ``workers_max`` here, set by code.
"""

from __future__ import annotations

from fcgikit.errors import ConfigError
from fcgikit.protocol.frozen import frozen_dataclass
from fcgikit.server.settings.declaration import check_fields, setting
from fcgikit.server.settings.kinds import FLAG, integer, seconds, text


def parse_workers(text: str) -> tuple[int, int]:
    """``N`` (static) or ``MIN:MAX`` (dynamic) -> (min, max)."""
    low, sep, high = text.partition(":")
    try:
        minimum = int(low)
        maximum = int(high) if sep else minimum
    except ValueError:
        raise ConfigError(f"--workers takes N or MIN:MAX, not {text!r}") from None
    return minimum, maximum


def workers_problem(minimum: int, maximum: int) -> str | None:
    """What is wrong with a pool of ``minimum``..``maximum`` workers, after "--workers"."""
    if minimum < 1:
        return f"{minimum}: at least one worker is needed"
    if maximum < minimum:
        return f"{minimum}:{maximum}: the maximum is below the minimum; write MIN:MAX"
    return None


@frozen_dataclass
class PoolSettings:
    """How many worker processes, and when to replace them. Validated on creation.

    ``workers_min == workers_max`` is a static pool; otherwise the pool is dynamic: it grows
    by one worker while every worker's threads are all busy, and shrinks back to
    ``workers_min`` by stopping workers idle for ``idle_timeout`` seconds.
    """

    #: worker processes started, and kept (static pool)
    workers_min: int = 1
    #: the most worker processes a dynamic pool grows to
    workers_max: int = 1
    idle_timeout: float = setting(
        10.0, seconds(positive=True), "dynamic pool: stop an extra worker idle this long"
    )
    max_requests: int = setting(
        0,
        integer(),
        "replace a worker after N requests; 0: never",
        starts_pool=True,
    )
    max_requests_jitter: int = setting(
        0, integer(), "add a random 0..J to each worker's --max-requests", metavar="J"
    )
    timeout: float | None = setting(
        None,
        seconds(positive=True),
        "kill and replace the worker of a request running longer",
        starts_pool=True,
    )
    slow_log: float | None = setting(
        None,
        seconds(positive=True),
        "log the stack of a request running longer, once",
        starts_pool=True,
    )
    preload: bool = setting(
        False,
        FLAG,
        "import the app in the master before forking (faster forks, but SIGHUP cannot "
        "reload it then)",
        starts_pool=True,
    )
    pidfile: str | None = setting(
        None, text(metavar="PATH"), "write the master's pid here", starts_pool=True
    )
    user: str | None = setting(
        None,
        text(metavar="USER"),
        "run the workers as this user (name or uid); the master, which binds, stays as it is",
        starts_pool=True,
    )
    group: str | None = setting(
        None,
        text(metavar="GROUP"),
        "run the workers with this group (name or gid); default: the user's primary group",
        starts_pool=True,
    )

    def __post_init__(self) -> None:
        problem = workers_problem(self.workers_min, self.workers_max)
        if problem is not None:
            raise ConfigError(f"--workers {problem}")
        check_fields(self)

    @property
    def dynamic(self) -> bool:
        return self.workers_max > self.workers_min
