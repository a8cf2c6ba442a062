"""The loop's readiness multiplexer: epoll where there is one, poll(2) elsewhere."""

from __future__ import annotations

import select

READABLE = select.POLLIN
WRITABLE = select.POLLOUT
#: epoll's flag for a descriptor several processes wait on (Linux 4.5); 0 where it lacks it
EXCLUSIVE: int = getattr(select, "EPOLLEXCLUSIVE", 0)


class Poller:
    """What ``selectors`` does for the loop, without its per-call objects (a SelectorKey per
    registration, a list of them per round): file descriptor -> whatever the loop dispatches
    on. epoll where there is one, poll(2) elsewhere."""

    def __init__(self, *, epoll: bool = hasattr(select, "epoll")) -> None:
        self._epoll = select.epoll() if epoll else None
        self._poll = select.poll() if self._epoll is None else None
        self._targets: dict[int, object] = {}

    def register(self, fd: int, events: int, target: object, *, exclusive: bool = False) -> None:
        """``exclusive``: of the pollers (processes) that wait on ``fd`` at once, an event
        wakes one only (EPOLLEXCLUSIVE), where epoll has it; never ``modify`` such a fd."""
        self._targets[fd] = target
        if self._epoll is not None:
            self._epoll.register(fd, events | EXCLUSIVE if exclusive else events)
        else:
            assert self._poll is not None
            self._poll.register(fd, events)

    def retarget(self, fd: int, target: object) -> None:
        """Dispatch the events of ``fd`` (registered) to ``target`` from now on."""
        self._targets[fd] = target

    def modify(self, fd: int, events: int) -> None:
        if fd in self._targets:
            if self._epoll is not None:
                self._epoll.modify(fd, events)
            else:
                assert self._poll is not None
                self._poll.modify(fd, events)

    def unregister(self, fd: int, *, closing: bool = False) -> None:
        """Forget ``fd``; harmless if it was never registered or is closed already.
        ``closing``: the caller has closed it or closes it right after, and nothing else
        holds it, so the close takes it out of an epoll set: one epoll_ctl call less (not so
        for poll)."""
        if self._targets.pop(fd, None) is None or (closing and self._epoll is not None):
            return
        # (try, not contextlib.suppress: an interpreted context manager, on the path of
        # every connection that leaves the poller for the direct lane)
        try:
            if self._epoll is not None:
                self._epoll.unregister(fd)
            else:
                assert self._poll is not None
                self._poll.unregister(fd)
        except (OSError, KeyError):
            pass

    def wait(self, timeout: float) -> list[tuple[object, int]]:
        """(target, events) for each ready descriptor; errors and hang-ups count as both
        readable and writable, so that the read or the write that follows sees them."""
        if self._epoll is not None:
            ready = self._epoll.poll(timeout)
        else:
            assert self._poll is not None
            ready = self._poll.poll(timeout * 1000.0)
        targets = self._targets
        found: list[tuple[object, int]] = []
        for fd, events in ready:
            target = targets.get(fd)
            if target is not None:
                if events & ~(READABLE | WRITABLE):
                    events |= READABLE | WRITABLE
                found.append((target, events))
        return found

    def close(self) -> None:
        if self._epoll is not None:
            self._epoll.close()
        self._targets.clear()
