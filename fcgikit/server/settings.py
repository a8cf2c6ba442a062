"""Server settings: one frozen dataclass, validated on creation, no side effects.

The CLI builds it from argv and :class:`~fcgikit.server.flup.WSGIServer` from flup's keywords;
everything below the CLI takes a ``ServerSettings`` and nothing else.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from fcgikit.addresses import Address, parse_address
from fcgikit.errors import ConfigError
from fcgikit.networks import TrustedNetworks
from fcgikit.protocol.constants import Role
from fcgikit.server.listeners import SocketOwner, check_socket_mode, parse_web_server_addrs

MiB = 1 << 20


@dataclass(frozen=True, slots=True)
class ServerSettings:
    #: where to listen; empty means "the listening socket inherited on fd 0"
    binds: tuple[Address, ...] = ()
    #: requests run at once, each on a thread (the loop's thread included)
    threads: int = 16
    #: requests allowed to wait for a free thread before new ones get END_REQUEST OVERLOADED
    max_queued: int = 1024
    #: bytes the requests waiting for a thread may hold in all (their params, and their
    #: bodies as far as kept in memory) before new ones get END_REQUEST OVERLOADED
    max_queued_memory: int = 64 * MiB
    #: accept several requests at once on one connection (FCGI_MPXS_CONNS)
    multiplexed: bool = False
    roles: frozenset[Role] = frozenset({Role.RESPONDER})
    #: include the traceback in 500 pages (never in production)
    debug: bool = False
    #: request bodies larger than this go to an anonymous temp file instead of memory
    spool_threshold: int = MiB
    #: total size of one request's FastCGI params; more is a protocol error
    max_params_size: int = MiB
    #: seconds in-flight requests get to finish after SIGTERM / SIGHUP
    graceful_timeout: float = 30.0
    #: seconds a blocked write to the web server may wait before the request is given up
    send_timeout: float = 120.0
    #: seconds a request may wait for the next bytes of its body (FCGI_STDIN / FCGI_DATA)
    #: before it is answered 408 and its connection closed; None waits for ever
    body_timeout: float | None = 60.0
    #: seconds a connection with no request running may send nothing before it is closed;
    #: longer than nginx's upstream keepalive_timeout (60 s) so nginx closes first
    idle_connection_timeout: float | None = 300.0
    #: umask for a unix socket we create (None: the process umask); the socket mode is 0660 minus it
    umask: int | None = None
    #: mode of a unix socket we create, exactly (None: 0660 minus the umask)
    socket_mode: int | None = None
    #: owner (and group) given to a unix socket we create, before it accepts (needs root)
    socket_owner: SocketOwner | None = None
    #: the TCP peers allowed to connect, by address or network (FCGI_WEB_SERVER_ADDRS);
    #: None allows everyone
    web_server_addrs: TrustedNetworks | None = None
    #: extra keys put into every WSGI environ (flup's ``environ=``)
    base_environ: Mapping[str, object] = field(default_factory=lambda: MappingProxyType({}))
    #: tell the app it may be one of several processes (wsgi.multiprocess)
    multiprocess: bool = False
    #: install SIGTERM/SIGINT/SIGHUP handlers (only ever done from the main thread)
    handle_signals: bool = True
    #: one line per request (see fcgikit.server.logs.ACCESS_FORMAT): a file path, "-" for
    #: stderr, None for none (then nothing of it runs per request)
    access_log: str | None = None
    #: several processes accept on these sockets (prefork): take a connection only while a
    #: thread is free, and leave the rest in the backlog for an idle sibling
    share_listeners: bool = False

    def __post_init__(self) -> None:
        if self.threads < 1:
            raise ConfigError(f"threads must be at least 1, not {self.threads}")
        if self.max_queued < 0:
            raise ConfigError(f"max_queued cannot be negative ({self.max_queued})")
        if self.max_queued_memory < 0:
            raise ConfigError(f"max_queued_memory cannot be negative ({self.max_queued_memory})")
        if self.spool_threshold < 0:
            raise ConfigError(f"spool_threshold cannot be negative ({self.spool_threshold})")
        if self.max_params_size < 1024:
            raise ConfigError(
                f"max_params_size below 1 KiB ({self.max_params_size}) breaks every web server"
            )
        if not self.roles:
            raise ConfigError("at least one FastCGI role must be accepted")
        if self.graceful_timeout < 0 or self.send_timeout <= 0:
            raise ConfigError("timeouts must be positive")
        if self.socket_mode is not None:
            check_socket_mode(self.socket_mode)
        for name in ("body_timeout", "idle_connection_timeout"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ConfigError(f"{name} must be positive or None, not {value}")


def _seconds_or_none(text: str) -> float | None:
    value = float(text)
    return value if value > 0 else None


_SIZE_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}


def _size(text: str) -> int:
    """Bytes from ``65536``, ``64K``, ``64M`` or ``1G`` (units of 1024; ``64MiB`` too)."""
    number = text.strip().upper().removesuffix("B").removesuffix("I")
    unit = number[-1:] if number[-1:] in _SIZE_UNITS else ""
    digits = number[: len(number) - len(unit)]
    if not digits.isdigit():
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (say 65536, 512K, 64M or 1G)")
    return int(digits) * _SIZE_UNITS[unit]


def _octal(text: str) -> int:
    try:
        return int(text, 8)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an octal mode: {text!r}") from None


def _socket_owner(text: str) -> SocketOwner:
    try:
        return SocketOwner.parse(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_server_arguments(parser: argparse.ArgumentParser) -> None:
    """The server's options, declared once for ``fcgikit serve`` and the prefork master."""
    defaults = ServerSettings()
    add = parser.add_argument
    add(
        "--bind",
        "-b",
        action="append",
        default=[],
        metavar="ADDR",
        help="unix:PATH, HOST:PORT, [IPv6]:PORT or fd://0; repeat to listen on several",
    )
    add(
        "--threads",
        type=int,
        default=defaults.threads,
        help=(
            f"requests run at once, each on a thread (per process with --workers; "
            f"default {defaults.threads})"
        ),
    )
    add(
        "--max-queued",
        type=int,
        default=defaults.max_queued,
        help="requests that may wait for a thread before OVERLOADED "
        f"(default {defaults.max_queued})",
    )
    add(
        "--max-queued-memory",
        type=_size,
        default=defaults.max_queued_memory,
        metavar="SIZE",
        help="memory that requests waiting for a thread may hold in all (their params, and "
        "bodies kept in memory) before OVERLOADED, e.g. 256M "
        f"(default {defaults.max_queued_memory >> 20}M)",
    )
    add("--multiplexed", action="store_true", help="accept several requests per connection")
    add("--debug", action="store_true", help="tracebacks in 500 pages (never in production)")
    add(
        "--graceful-timeout",
        type=float,
        default=defaults.graceful_timeout,
        metavar="SECONDS",
        help="seconds running requests get after SIGTERM / SIGHUP "
        f"(default {defaults.graceful_timeout:g})",
    )
    add(
        "--body-timeout",
        type=_seconds_or_none,
        default=defaults.body_timeout,
        metavar="SECONDS",
        help="answer 408 when a request body stops arriving for this long; 0: wait for ever "
        f"(default {defaults.body_timeout:g})",
    )
    add(
        "--idle-connection-timeout",
        type=_seconds_or_none,
        default=defaults.idle_connection_timeout,
        metavar="SECONDS",
        help="close a connection that sends nothing for this long while no request runs; "
        f"0: never (default {defaults.idle_connection_timeout:g})",
    )
    add(
        "--umask",
        type=lambda text: int(text, 8),
        default=None,
        help="umask for a unix socket (octal; its mode is 0660 minus it)",
    )
    add(
        "--socket-mode",
        type=_octal,
        default=None,
        metavar="OCTAL",
        help="mode of a unix socket, exactly, like 660 (default 0660 minus the umask); "
        "never writable by others: use --socket-owner :GROUP for the web server's group",
    )
    add(
        "--socket-owner",
        type=_socket_owner,
        default=None,
        metavar="USER[:GROUP]",
        help="give a unix socket to USER (and GROUP) before accepting, e.g. www-data:www-data "
        "(needs root)",
    )
    add("--chdir", metavar="DIR", help="change to DIR before importing APP")
    add(
        "--access-log",
        metavar="FILE|-",
        default=None,
        help="write one line per request to FILE ('-': stderr): time, remote address, "
        "method and URI, status, body bytes, duration, pid",
    )
    add("--log-level", default="info", choices=["debug", "info", "warning", "error"])


def server_settings_from_args(args: argparse.Namespace, **overrides: Any) -> ServerSettings:
    """ServerSettings from the options :func:`add_server_arguments` declared."""
    values: dict[str, Any] = {
        "binds": tuple(parse_address(text) for text in args.bind),
        "threads": args.threads,
        "max_queued": args.max_queued,
        "max_queued_memory": args.max_queued_memory,
        "multiplexed": args.multiplexed,
        "debug": args.debug,
        "graceful_timeout": args.graceful_timeout,
        "body_timeout": args.body_timeout,
        "idle_connection_timeout": args.idle_connection_timeout,
        "umask": args.umask,
        "access_log": args.access_log,
        "socket_mode": args.socket_mode,
        "socket_owner": args.socket_owner,
        "web_server_addrs": parse_web_server_addrs(os.environ.get("FCGI_WEB_SERVER_ADDRS")),
    }
    values.update(overrides)
    return ServerSettings(**values)
