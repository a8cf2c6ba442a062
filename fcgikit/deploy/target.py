"""Where the web server finds the app: the options of ``fcgikit config``, checked.

A :class:`Target` is a unix socket or a TCP port, maybe a ``.fcgi`` file the web server starts
itself, or several app servers to balance. :func:`make_target` checks the options against
each other and against the server (only nginx and HAProxy balance; Apache's mod_fcgid always
spawns) and fills in the defaults every renderer shares.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from fcgikit.addresses import FdAddress, TcpAddress, UnixAddress, parse_address
from fcgikit.errors import ConfigError

# Servers that start the app themselves from a .fcgi file (the socket arrives on fd 0).
SPAWNING = frozenset({"apache-fcgid", "apache-htaccess"})
# Servers that balance one app over several app servers (--upstream).
BALANCING = frozenset({"nginx", "haproxy"})
DEFAULT_SPAWN = "/var/www/yourapplication/yourapplication.fcgi"
DEFAULT_SOCKET = "/run/yourapplication/fcgi.sock"
# Where a spawning lighttpd creates the app's socket: lighttpd (www-data) must be able to
# write there, and Debian's lighttpd package makes this directory for it (tmpfiles.d), as for
# the PHP socket of its own fastcgi config.
LIGHTTPD_SPAWN_SOCKET = "/run/lighttpd/yourapplication.sock"


@dataclass(frozen=True)
class Target:
    """Where the web server finds the app: a unix socket or a TCP port, maybe spawned."""

    socket: str | None
    host: str
    port: int | None
    spawn: str | None
    #: several app servers (``--upstream``), as ``unix:PATH`` or ``HOST:PORT``; then
    #: ``socket`` and ``port`` are None
    upstreams: tuple[str, ...] = ()

    @property
    def is_unix(self) -> bool:
        return self.port is None

    @property
    def bind(self) -> str:
        """The address as ``fcgikit serve --bind`` takes it."""
        return f"unix:{self.socket}" if self.is_unix else f"{self.host}:{self.port}"

    @property
    def servers(self) -> tuple[str, ...]:
        """Every app server, as ``unix:PATH`` or ``HOST:PORT`` (``[IPv6]:PORT``)."""
        return self.upstreams or (self.bind,)


def normalize_mount(mount: str) -> str:
    """``''`` for the root, else ``'/prefix'``; a mount that is not a plain path is refused."""
    mount = mount.strip()
    if mount in ("", "/"):
        return ""
    if not mount.startswith("/"):
        raise ConfigError(f"mount {mount!r} must start with '/' (like '/yourapplication')")
    if any(c in mount for c in "?#\"' \t\n\\{};$"):
        raise ConfigError(f"mount {mount!r}: use a plain URL path like '/yourapplication'")
    return mount.rstrip("/")


def _upstream(text: str) -> str:
    """One ``--upstream`` as ``unix:PATH`` or ``HOST:PORT``, checked."""
    address = parse_address(text)
    if isinstance(address, FdAddress):
        raise ConfigError(f"upstream {text!r}: give HOST:PORT or unix:PATH, not a descriptor")
    if isinstance(address, UnixAddress) and not address.path.startswith("/"):
        raise ConfigError(f"upstream socket path {address.path!r} must be absolute")
    if isinstance(address, TcpAddress) and address.port == 0:
        raise ConfigError(f"upstream {text!r}: port 0 is not a port a web server can reach")
    return str(address)


def make_target(
    server: str,
    socket: str | None,
    port: int | None,
    host: str,
    spawn: str | None,
    upstreams: Sequence[str] = (),
) -> Target:
    """The app's address for ``server`` from the options given, or what they get wrong."""
    if upstreams:
        if server not in BALANCING:
            raise ConfigError(
                f"--upstream is for {' and '.join(sorted(BALANCING))}: {server} cannot "
                "balance several app servers"
            )
        if socket is not None or port is not None or spawn is not None:
            raise ConfigError("--upstream names every app server: drop --socket/--port/--spawn")
        servers = tuple(dict.fromkeys(_upstream(text) for text in upstreams))
        return Target(socket=None, host=host, port=None, spawn=None, upstreams=servers)
    if socket is not None and port is not None:
        raise ConfigError("give either a socket or a port, not both")
    if socket is not None and socket.startswith("unix:"):
        socket = socket[len("unix:") :]
    if socket is not None and not socket.startswith("/"):
        raise ConfigError(f"socket path {socket!r} must be absolute")
    if server in SPAWNING:
        if socket is not None or port is not None:
            raise ConfigError(f"{server} starts the app itself: pass --spawn, not a socket")
        spawn = spawn or DEFAULT_SPAWN
    if port is None and socket is None:
        socket = LIGHTTPD_SPAWN_SOCKET if server == "lighttpd" and spawn else DEFAULT_SOCKET
    if port is not None and not 0 < port < 65536:
        raise ConfigError(f"port {port} is not between 1 and 65535")
    return Target(socket=socket, host=host, port=port, spawn=spawn)
