"""The server's settings: one frozen dataclass, validated on creation, no side effects.

``fcgikit serve`` builds it from its command line, environment and config file
(:mod:`fcgikit.server.settings.sources`), :class:`~fcgikit.compat.WSGIServer` from flup's
keywords; everything below the CLI takes a ``ServerSettings`` and nothing else. The fields
declared with :func:`~fcgikit.server.settings.declaration.setting` are ``fcgikit serve``'s
options; the others are set by code only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import field
from types import MappingProxyType
from typing import TYPE_CHECKING

from fcgikit.addresses import Address, parse_address
from fcgikit.errors import ConfigError
from fcgikit.networks import TrustedNetworks
from fcgikit.protocol.constants import Role
from fcgikit.protocol.frozen import frozen_dataclass
from fcgikit.server.listeners import SocketOwner, socket_mode_problem
from fcgikit.server.settings.declaration import check_fields, setting
from fcgikit.server.settings.kinds import (
    FLAG,
    Kind,
    choice,
    integer,
    networks,
    octal,
    seconds,
    size,
    text,
)

if TYPE_CHECKING:
    # only annotations: a process that keeps no counters (no --status-path, not a pool's
    # worker) does not load them
    from fcgikit.server.metrics import ProcessCounters
    from fcgikit.server.tracker import RequestTracker

MiB = 1 << 20

#: --access-log-format's names: fcgikit.server.logs.ACCESS_FORMAT, Apache's and nginx's
#: "combined" (its combined_line), and one JSON object a line (its json_line). Here, not
#: there: the command reads its settings before it listens, and logging comes after that
ACCESS_FORMATS = ("default", "combined", "json")

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


def _status_path_problem(path: str) -> str | None:
    return None if path.startswith("/") else f"must start with '/', not {path!r}"


def ping_path_problem(path: str) -> str | None:
    """What is wrong with a --ping-path (or ``fcgikit config --ping-path``), after its name."""
    if not path.startswith("/"):
        return f"must start with '/', not {path!r}"
    if any(c in path for c in "?# \t\r\n"):
        return f"must be a plain URL path like /ping (no query, no spaces), not {path!r}"
    return None


def _ping_response_problem(body: str) -> str | None:
    try:
        body.encode("utf-8")
    except UnicodeEncodeError:
        return f"cannot be sent as UTF-8: {body!r}"
    return None


def _umask_problem(umask: int) -> str | None:
    return None if 0 <= umask <= 0o777 else f"{umask:o}: permission bits to clear, like 007"


@frozen_dataclass
class ServerSettings:
    """What the FastCGI server does (see the module docstring)."""

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
        25.0,
        seconds(),
        "seconds running requests get to finish after SIGTERM (and --shutdown-delay) or "
        "SIGHUP; with a pool's 2 s margin the default fits Kubernetes' 30 s grace period",
    )
    shutdown_delay: float = setting(
        0.0,
        seconds(),
        "after SIGTERM, keep accepting and serving for this long while --ping-path answers "
        "503, so that load balancers stop sending requests first; then stop gracefully",
    )
    ping_path: str | None = setting(
        None,
        text(ping_path_problem, metavar="PATH"),
        "answer this URL path (as the client asked for it, REQUEST_URI) with "
        "--ping-response, 200, without running the app; 503 while the server drains "
        "(php-fpm's ping.path): for health checks",
    )
    ping_response: str = setting(
        "pong",
        text(_ping_response_problem, metavar="TEXT"),
        "the body of the --ping-path answer (php-fpm's ping.response)",
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
    #: None (and no access_log_from_logging): nothing of it runs per request
    access_log: str | None = setting(
        None,
        text(metavar="FILE|-"),
        "write one line per request to FILE ('-': stderr), in --access-log-format",
    )
    access_log_format: str = setting(
        "default",
        choice(*ACCESS_FORMATS),
        "the access log's lines: default (time, remote address, method and URI, status, "
        "body bytes, duration, pid), combined (Apache's and nginx's combined log) or json "
        "(one object a line)",
    )
    #: the logging configuration (--log-config) gives the fcgikit.access logger its
    #: handlers: access lines are written, there, without --access-log
    access_log_from_logging: bool = False
    status_path: str | None = setting(
        None,
        text(_status_path_problem, metavar="PATH"),
        "answer this path with the server's status (text; ?json for JSON, ?openmetrics "
        "for Prometheus) to 'fcgikit status', and to the HTTP clients in --status-allow "
        "(php-fpm's pm.status_path)",
    )
    status_allow: TrustedNetworks = setting(
        TrustedNetworks(),
        networks(),
        "HTTP clients (REMOTE_ADDR) allowed to see the status page through the web "
        "server; 'fcgikit status' (FastCGI, directly on the socket) needs none. Loopback "
        "is not trusted by itself: behind a local TLS terminator or tunnel every client "
        "is 127.0.0.1",
        default_text="none",
    )
    status_show_query: bool = setting(
        False,
        FLAG,
        "show the query strings of the requests in flight on the status page (they can "
        "hold tokens; default: the paths only)",
    )
    #: where this process counts what the status page reports (set by code when there is
    #: one: fcgikit.server.status); None: nothing is counted, per request or otherwise
    metrics: ProcessCounters | None = field(default=None, compare=False)
    #: a prefork worker's record of its requests in the scoreboard, which the server keeps
    #: from the app's call to the end of the response (set by fcgikit.server.worker)
    tracker: RequestTracker | None = field(default=None, compare=False)
    #: several processes accept on these sockets (prefork): take a connection only while a
    #: thread is free, and leave the rest in the backlog for an idle sibling
    share_listeners: bool = False
    #: the access log's format when there is an access log, else None (from the above)
    access_format: str | None = field(init=False, default=None, compare=False)
    #: something looks at each request as it ends (the access log, the metrics): it is
    #: timed, and WSGIRequest.done calls observe.observe_request (from the above)
    observe_requests: bool = field(init=False, default=False, compare=False)

    def __post_init__(self) -> None:
        check_fields(self)
        logs_access = self.access_log is not None or self.access_log_from_logging
        access_format = self.access_log_format if logs_access else None
        object.__setattr__(self, "access_format", access_format)
        object.__setattr__(
            self, "observe_requests", access_format is not None or self.metrics is not None
        )
        if self.spool_threshold < 0:
            raise ConfigError(f"spool_threshold cannot be negative ({self.spool_threshold})")
        if self.max_params_size < 1024:
            raise ConfigError(
                f"max_params_size below 1 KiB ({self.max_params_size}) breaks every web server"
            )
        if not self.roles:
            raise ConfigError("at least one FastCGI role must be accepted")
        if self.ping_path is not None and self.ping_path == self.status_path:
            raise ConfigError(
                f"--ping-path and --status-path are both {self.ping_path}: the ping would "
                "answer every request for the status page; give them different paths"
            )
        if self.send_timeout <= 0:
            raise ConfigError(f"send_timeout must be positive, not {self.send_timeout}")
