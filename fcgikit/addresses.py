"""Socket addresses as users write them: ``unix:PATH``, ``HOST:PORT``, ``[IPv6]:PORT``, ``fd://N``.

Shared by the server (what to listen on), the client (what to connect to) and the CLI, and
also accepts flup's ``bindAddress`` forms (a path string or a ``(host, port)`` tuple).
"""

from __future__ import annotations

import _socket  # the C module's constants: serve binds before socket (its enums) loads

from fcgikit.errors import ConfigError
from fcgikit.protocol.frozen import frozen_dataclass


@frozen_dataclass
class UnixAddress:
    """A unix socket's path (``unix:PATH``)."""

    path: str

    def __str__(self) -> str:
        return f"unix:{self.path}"


@frozen_dataclass
class TcpAddress:
    """An IPv4 or IPv6 address and a port (``HOST:PORT``, ``[IPv6]:PORT``)."""

    host: str
    port: int

    @property
    def family(self) -> int:
        """``AF_INET6`` or ``AF_INET`` (equal to ``socket.AddressFamily``'s members)."""
        return _socket.AF_INET6 if ":" in self.host else _socket.AF_INET

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


@frozen_dataclass
class FdAddress:
    """An already listening socket inherited on a file descriptor (fd 0 from a spawner)."""

    fd: int

    def __str__(self) -> str:
        return f"fd://{self.fd}"


Address = UnixAddress | TcpAddress | FdAddress

_FORMS = "unix:PATH, HOST:PORT, [IPv6]:PORT or fd://N"


def _port(text: str, original: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise ConfigError(f"bad port in address {original!r}: expected {_FORMS}")
    return int(text)


def parse_address(text: str) -> Address:
    """Parse an address as written on the command line.

    >>> parse_address("unix:/run/app.sock")
    UnixAddress(path='/run/app.sock')
    >>> parse_address("[::1]:9000")
    TcpAddress(host='::1', port=9000)
    >>> parse_address("fd://0")
    FdAddress(fd=0)
    """
    original = text
    text = text.strip()
    if text.startswith("unix:"):
        path = text[len("unix:") :]
        if path.startswith("//"):  # unix:///run/x.sock, the URL spelling
            path = path[2:]
        if not path:
            raise ConfigError(f"empty socket path in {original!r}: expected {_FORMS}")
        return UnixAddress(path)
    if text.startswith("fd://"):
        fd_text = text[len("fd://") :]
        if not fd_text.isdigit():
            raise ConfigError(f"bad file descriptor in {original!r}: expected {_FORMS}")
        return FdAddress(int(fd_text))
    if text.startswith("/") or text.startswith("./"):
        return UnixAddress(text)
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or not rest.startswith(":"):
            raise ConfigError(f"bad IPv6 address {original!r}: expected {_FORMS}")
        return TcpAddress(host, _port(rest[1:], original))
    host, sep, port_text = text.rpartition(":")
    if not sep or ":" in host:
        raise ConfigError(f"cannot read address {original!r}: expected {_FORMS}")
    return TcpAddress(host or "127.0.0.1", _port(port_text, original))


def from_bind_address(value: object) -> Address:
    """flup's ``bindAddress``: a string is a unix socket path, a tuple is ``(host, port)``."""
    if isinstance(value, str):
        return UnixAddress(value)
    if isinstance(value, tuple) and len(value) >= 2:
        host, port = value[0], value[1]
        if isinstance(host, str) and isinstance(port, int):
            return TcpAddress(host or "0.0.0.0", port)
    raise ConfigError(f"bindAddress must be a socket path or a (host, port) tuple, not {value!r}")
