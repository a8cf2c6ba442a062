"""Server settings: one frozen dataclass, validated on creation, no side effects.

The CLI builds it from argv and :class:`~fcgikit.server.flup.WSGIServer` from flup's keywords;
everything below the CLI takes a ``ServerSettings`` and nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from fcgikit.addresses import Address
from fcgikit.errors import ConfigError
from fcgikit.protocol.constants import Role

MiB = 1 << 20


@dataclass(frozen=True, slots=True)
class ServerSettings:
    #: where to listen; empty means "the listening socket inherited on fd 0"
    binds: tuple[Address, ...] = ()
    #: worker threads that run the application
    threads: int = 16
    #: requests allowed to wait for a free thread before new ones get END_REQUEST OVERLOADED
    max_queued: int = 1024
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
    #: umask for a unix socket we create (None: the process umask); the socket mode is 0660 minus it
    umask: int | None = None
    #: allowed TCP peer addresses (FCGI_WEB_SERVER_ADDRS); None allows everyone
    web_server_addrs: frozenset[str] | None = None
    #: extra keys put into every WSGI environ (flup's ``environ=``)
    base_environ: Mapping[str, object] = field(default_factory=lambda: MappingProxyType({}))
    #: tell the app it may be one of several processes (wsgi.multiprocess)
    multiprocess: bool = False
    #: install SIGTERM/SIGINT/SIGHUP handlers (only ever done from the main thread)
    handle_signals: bool = True

    def __post_init__(self) -> None:
        if self.threads < 1:
            raise ConfigError(f"threads must be at least 1, not {self.threads}")
        if self.max_queued < 0:
            raise ConfigError(f"max_queued cannot be negative ({self.max_queued})")
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
