"""systemd's notify protocol (``Type=notify``): tell the service manager how the server is.

systemd starts a ``Type=notify`` service with ``NOTIFY_SOCKET`` in its environment, a
datagram unix socket (a path, or an abstract name written with a leading ``@``), and waits
for the service to say ``READY=1`` before it counts it as started. Each message is one
datagram of ``NAME=value`` lines; this is the whole protocol (``sd_notify(3)``), so fcgikit
speaks it with a socket of its own rather than depend on libsystemd.

What ``fcgikit serve`` says, one process and a pool's master alike (the workers say nothing:
with ``NotifyAccess=main`` systemd would not listen to them anyway):

* ``READY=1`` and ``MAINPID=`` once it serves: one process once it listens, a pool once its
  first worker is ready. A single process re-executed by SIGHUP keeps its pid and says
  ``READY=1`` again once the new process listens.
* ``RELOADING=1`` with ``MONOTONIC_USEC=`` (which ``Type=notify-reload``, systemd 253 and
  later, requires) when SIGHUP starts a reload, and ``READY=1`` when it is over: a pool's
  once the new generation of workers replaced the old one.
* ``STOPPING=1`` when it starts to stop (for a drain, as soon as SIGTERM arrives).
* ``STATUS=`` with the requests and the workers (or threads), when it changed, at most once a
  second, never per request.
* ``WATCHDOG=1`` every half of ``WATCHDOG_USEC`` when systemd asks for it (``WatchdogSec=``),
  from the loop whose life it proves: the server's I/O loop (its sweep), the pool master's
  loop. A timer thread of its own would go on sending while the loop hangs.

A message that cannot be sent (systemd gone, its queue full) is logged once and dropped: a
service manager that does not listen must not stop the server.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fcgikit.server.server import Server

log = logging.getLogger("fcgikit.server")

#: the variables systemd sets for a Type=notify service (and WatchdogSec=)
NOTIFY_SOCKET = "NOTIFY_SOCKET"
WATCHDOG_USEC = "WATCHDOG_USEC"
WATCHDOG_PID = "WATCHDOG_PID"
#: the least time (seconds) between two STATUS= lines
STATUS_EVERY = 1.0


def socket_address(value: str) -> str | bytes:
    """``NOTIFY_SOCKET`` as ``sendto`` takes it: ``@name`` is the abstract socket ``\\0name``."""
    if value.startswith("@"):
        return b"\0" + value[1:].encode()
    return value


class SystemdNotifier:
    """Sends the messages above to ``address``; ``watchdog_every``: seconds between two
    ``WATCHDOG=1``, None when systemd asks for none."""

    def __init__(self, address: str, watchdog_every: float | None = None) -> None:
        self.address = address
        self.watchdog_every = watchdog_every
        import socket  # here: only a systemd service has a notifier; one binds before it loads

        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        self._socket.setblocking(False)
        self._next_watchdog = 0.0
        self._next_status = 0.0
        self._status: str | None = None
        self._failed = False

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> SystemdNotifier | None:
        """The notifier systemd asks for in ``environ``, or None outside a notify service."""
        address = environ.get(NOTIFY_SOCKET, "")
        if not address.startswith(("/", "@")):
            return None
        return cls(address, _watchdog_every(environ))

    def send(self, *lines: str) -> None:
        """One message of ``lines`` (``READY=1``, ...)."""
        try:
            self._socket.sendto("\n".join(lines).encode(), socket_address(self.address))
        except OSError as exc:
            if not self._failed:
                self._failed = True
                log.warning(
                    "fcgikit: cannot tell systemd (NOTIFY_SOCKET=%s): %s; the next failures "
                    "are not logged",
                    self.address,
                    exc.strerror or exc,
                )

    def ready(self, status: str) -> None:
        self._status = status
        self.send("READY=1", f"MAINPID={os.getpid()}", f"STATUS={status}")

    def reloading(self) -> None:
        monotonic_usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        self.send("RELOADING=1", f"MONOTONIC_USEC={monotonic_usec}", "STATUS=reloading")

    def stopping(self, status: str) -> None:
        self._status = status
        self.send("STOPPING=1", f"STATUS={status}")

    def tick(self, now: float, status: Callable[[], str]) -> None:
        """From the loop, about once a second (and every :attr:`watchdog_every` at least):
        the watchdog when it is due, the status when it changed (``status`` is called once
        a second at most)."""
        lines = []
        if self.watchdog_every is not None and now >= self._next_watchdog:
            self._next_watchdog = now + self.watchdog_every
            lines.append("WATCHDOG=1")
        if now >= self._next_status:
            self._next_status = now + STATUS_EVERY
            text = status()
            if text != self._status:
                self._status = text
                lines.append(f"STATUS={text}")
        if lines:
            self.send(*lines)

    def close(self) -> None:
        self._socket.close()


def server_status(server: Server) -> str:
    """How busy one process is, in a few words (its STATUS=), and whether it stops."""
    pool = server.pool
    running = pool.running
    stopping = server.stopping
    state = "stopping, " if stopping.reason is not None and not stopping.reload else ""
    return (
        f"{state}{running} of {server.settings.threads} threads busy, "
        f"{pool.in_flight - running} requests waiting, "
        f"{server.connection_count()} connections"
    )


def _watchdog_every(environ: Mapping[str, str]) -> float | None:
    """Half of ``WATCHDOG_USEC``, if it is meant for this process (``WATCHDOG_PID``)."""
    usec = environ.get(WATCHDOG_USEC, "")
    pid = environ.get(WATCHDOG_PID, "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    if pid and pid != str(os.getpid()):
        return None
    return int(usec) / 2 / 1_000_000


__all__ = ["NOTIFY_SOCKET", "SystemdNotifier", "server_status", "socket_address"]
