"""The server's settings: one frozen dataclass, validated on creation, no side effects.

``fcgikit serve`` builds it from its command line, environment and config file
(:mod:`fcgikit.server.settings.sources`), :class:`~fcgikit.compat.WSGIServer` from flup's
keywords; everything below the CLI takes a ``ServerSettings`` and nothing else. The fields
declared with :func:`~fcgikit.server.settings.declaration.setting` are ``fcgikit serve``'s
options; the others are set by code only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from fcgikit.addresses import Address, parse_address
from fcgikit.errors import ConfigError
from fcgikit.networks import TrustedNetworks
from fcgikit.protocol.constants import Role
from fcgikit.server.listeners import SocketOwner, socket_mode_problem
from fcgikit.server.settings.declaration import (
    FLAG,
    Kind,
    check_fields,
    integer,
    networks,
    octal,
    seconds,
    setting,
    size,
    text,
)

MiB = 1 << 20

#: where to listen (``--bind``)
ADDRESSES = Kind(
    "unix:PATH, HOST:PORT, [IPv6]:PORT or fd://N, several comma-separated",
    lambda items: tuple(parse_address(item) for item in items),
    metavar="ADDR",
    show=lambda addresses: [str(address) for address in addresses],
    is_list=True,
)

SOCKET_OWNER = Kind(
    "USER, USER:GROUP or :GROUP (names or numbers)",
    SocketOwner.parse,
    metavar="USER[:GROUP]",
)


def _umask_problem(umask: int) -> str | None:
    return None if 0 <= umask <= 0o777 else f"{umask:o}: permission bits to clear, like 007"


@dataclass(frozen=True, slots=True)
class ServerSettings:
    binds: tuple[Address, ...] = setting(
        (),
        ADDRESSES,
        "where to listen: unix:PATH, HOST:PORT, [IPv6]:PORT or fd://0; repeat it (or "
        "separate with commas) to listen on several",
        name="bind",
        short="-b",
        default_text="the listening socket inherited on fd 0",
    )
    # 64: behind nginx at 64 connections, with some requests waiting on I/O, quick requests
    # still find a thread; threads start only when that many requests run at once, and cost
    # little memory then (benchmarks/RESULTS.md, "Issue 26").
    threads: int = setting(
        64,
        integer(minimum=1),
        "requests run at once, each on a thread (per process with --workers)",
    )
    max_queued: int = setting(
        1024, integer(), "requests that may wait for a thread before OVERLOADED"
    )
    max_queued_memory: int = setting(
        64 * MiB,
        size(),
        "memory that requests waiting for a thread may hold in all (their params, and "
        "bodies kept in memory) before OVERLOADED, e.g. 256M",
    )
    multiplexed: bool = setting(
        False, FLAG, "accept several requests at once on one connection (FCGI_MPXS_CONNS)"
    )
    roles: frozenset[Role] = frozenset({Role.RESPONDER})
    debug: bool = setting(False, FLAG, "tracebacks in 500 pages (never in production)")
    #: request bodies larger than this go to an anonymous temp file instead of memory
    spool_threshold: int = MiB
    #: total size of one request's FastCGI params; more is a protocol error
    max_params_size: int = MiB
    graceful_timeout: float = setting(
        30.0, seconds(), "seconds running requests get to finish after SIGTERM / SIGHUP"
    )
    #: seconds a blocked write to the web server may wait before the request is given up
    send_timeout: float = 120.0
    #: None waits for ever
    body_timeout: float | None = setting(
        60.0,
        seconds(zero_means_never=True),
        "answer 408 when a request body stops arriving for this long; 0: wait for ever",
    )
    #: longer than nginx's upstream keepalive_timeout (60 s), so that nginx closes first
    idle_connection_timeout: float | None = setting(
        300.0,
        seconds(zero_means_never=True),
        "close a connection that sends nothing for this long while no request runs; 0: never",
    )
    umask: int | None = setting(
        None,
        octal(_umask_problem),
        "umask for a unix socket we create (octal; its mode is 0660 minus it)",
        metavar="UMASK",
        default_text="the process's umask",
    )
    socket_mode: int | None = setting(
        None,
        octal(socket_mode_problem),
        "mode of a unix socket we create, exactly, like 660; never writable by others: "
        "use --socket-owner :GROUP for the web server's group",
        default_text="0660 minus the umask",
    )
    socket_owner: SocketOwner | None = setting(
        None,
        SOCKET_OWNER,
        "give a unix socket we create to USER (and GROUP) before it accepts, e.g. "
        "www-data:www-data (needs root)",
    )
    web_server_addrs: TrustedNetworks | None = setting(
        None,
        networks(empty_is_anyone=True),
        "the only TCP peers allowed to connect (the web servers), by address or network, "
        "IPv4 and IPv6; unix sockets are not affected",
        env_aliases=("FCGI_WEB_SERVER_ADDRS",),
        default_text="any",
    )
    #: extra keys put into every WSGI environ (flup's ``environ=``)
    base_environ: Mapping[str, object] = field(default_factory=lambda: MappingProxyType({}))
    #: tell the app it may be one of several processes (wsgi.multiprocess)
    multiprocess: bool = False
    #: install SIGTERM/SIGINT/SIGHUP handlers (only ever done from the main thread)
    handle_signals: bool = True
    #: see fcgikit.server.logs.ACCESS_FORMAT; None: nothing of it runs per request
    access_log: str | None = setting(
        None,
        text(metavar="FILE|-"),
        "write one line per request to FILE ('-': stderr): time, remote address, method "
        "and URI, status, body bytes, duration, pid",
    )
    #: several processes accept on these sockets (prefork): take a connection only while a
    #: thread is free, and leave the rest in the backlog for an idle sibling
    share_listeners: bool = False

    def __post_init__(self) -> None:
        check_fields(self)
        if self.spool_threshold < 0:
            raise ConfigError(f"spool_threshold cannot be negative ({self.spool_threshold})")
        if self.max_params_size < 1024:
            raise ConfigError(
                f"max_params_size below 1 KiB ({self.max_params_size}) breaks every web server"
            )
        if not self.roles:
            raise ConfigError("at least one FastCGI role must be accepted")
        if self.send_timeout <= 0:
            raise ConfigError(f"send_timeout must be positive, not {self.send_timeout}")
