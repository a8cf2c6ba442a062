"""Listening sockets: the one a spawner left on fd 0, unix sockets, TCP over IPv4 and IPv6,
and those passed the systemd way (``LISTEN_FDS``).

fd 0 is a FastCGI listener when it is a socket whose ``getpeername`` fails with ENOTCONN (the
spec's test). We look at ``fstat`` first instead of relying on ``socket.fromfd`` raising for a
non-socket, which is what broke flup's check on Python >= 3.8.

Sockets are passed the systemd way (sd_listen_fds(3): descriptors from 3 on, ``LISTEN_FDS``,
``LISTEN_PID``, ``LISTEN_FDNAMES``) by systemd socket activation, and by fcgikit to itself:
a single process reloaded by SIGHUP re-executes itself on the same listening sockets
(:func:`exec_with_listeners`), so connections wait in the backlog meanwhile instead of
meeting a missing socket file.

The sockets of ``--bind`` are made, bound and listening with the C module ``_socket``, and only
then handed out as :class:`socket.socket`: importing ``socket`` makes enums of the C module's
constants, and until a socket listens a web server's requests are refused, not queued
(tests/test_cli_startup.py).
"""

from __future__ import annotations

import _socket
import contextlib
import errno
import os
import stat
from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING, Final, NoReturn

from fcgikit.addresses import Address, FdAddress, TcpAddress, UnixAddress
from fcgikit.errors import ConfigError
from fcgikit.networks import TrustedNetworks
from fcgikit.protocol.frozen import frozen_dataclass

if TYPE_CHECKING:
    import socket

    from fcgikit.server.settings import ServerSettings

#: socket mode before the umask is applied: owner and group (the web server's) may connect
UNIX_SOCKET_MODE = 0o660

#: the first descriptor of those passed the systemd way
LISTEN_FDS_START = 3
#: the LISTEN_FDNAMES name fcgikit gives a unix socket whose file it created when it passes
#: the socket to its re-executed self: the file is the new process's to remove when it stops
CREATED_SOCKET_NAME = "fcgikit-created"
#: the LISTEN_FDNAMES name of a web server's connection, idle between two requests, that
#: fcgikit hands over to its re-executed self (a keep-conn connection goes on unbroken)
CONNECTION_NAME = "fcgikit-connection"


def socket_mode_problem(mode: int) -> str | None:
    """What is wrong with ``mode`` for a unix socket fcgikit creates, after "--socket-mode":
    not a mode, or one that lets every local user connect (connecting needs write
    permission). Whoever connects is trusted with REMOTE_ADDR, HTTPS and every header (see
    SECURITY.md)."""
    if not 0 <= mode <= 0o777:
        return f"{mode:o}: write permission bits, like 660"
    if mode & 0o002:
        return (
            f"{mode:03o} lets every local user connect to the app and send it any "
            "REMOTE_ADDR or header; give the socket to the web server's group instead: "
            "--socket-owner :www-data with --socket-mode 660"
        )
    return None


def check_socket_mode(mode: int) -> None:
    """ConfigError for a mode fcgikit will not give a unix socket it creates."""
    problem = socket_mode_problem(mode)
    if problem is not None:
        raise ConfigError(f"--socket-mode {problem}")


def inherited_listener(fd: int = 0) -> socket.socket | None:
    """The listening socket on ``fd``; None for a file, pipe, tty or connected socket."""
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        return None
    if not stat.S_ISSOCK(mode):
        return None
    import socket  # here: an inherited socket listens already; see the module's docstring

    sock = socket.socket(fileno=os.dup(fd))
    try:
        sock.getpeername()
    except OSError as exc:
        if exc.errno == errno.ENOTCONN and sock.type == socket.SOCK_STREAM:
            return sock
    sock.close()
    return None


@frozen_dataclass
class SocketOwner:
    """``--socket-owner USER[:GROUP]``: who a unix socket we create belongs to, by name or
    number. Names are looked up when the socket is created, not here: settings have no side
    effects, and the user may not exist on the machine that only builds them."""

    user: str | None
    group: str | None

    @classmethod
    def parse(cls, text: str) -> SocketOwner:
        """``USER``, ``USER:GROUP`` or ``:GROUP``, like chown(1)."""
        user, _, group = text.partition(":")
        if not user and not group:
            raise ConfigError(f"--socket-owner takes USER[:GROUP], not {text!r}")
        return cls(user or None, group or None)

    def __str__(self) -> str:
        return f"{self.user or ''}{':' + self.group if self.group else ''}"

    def resolve(self) -> tuple[int, int]:
        """(uid, gid) for ``os.chown``; -1 leaves that one as it is."""
        import grp  # here: the user and group databases are for --socket-owner
        import pwd

        uid = gid = -1
        if self.user is not None:
            try:
                uid = int(self.user) if self.user.isdigit() else pwd.getpwnam(self.user).pw_uid
            except KeyError:
                raise ConfigError(f"--socket-owner {self}: no such user {self.user!r}") from None
        if self.group is not None:
            try:
                gid = int(self.group) if self.group.isdigit() else grp.getgrnam(self.group).gr_gid
            except KeyError:
                raise ConfigError(f"--socket-owner {self}: no such group {self.group!r}") from None
        return uid, gid


def _remove_stale_unix_socket(path: str) -> None:
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise ConfigError(
            f"{path} exists and is not a socket; refusing to delete it. "
            "Remove it yourself or choose another socket path."
        )
    probe = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except OSError:
        os.unlink(path)  # nobody answers: a leftover from a process that died
    else:
        raise ConfigError(f"another process is already serving on {path}")
    finally:
        probe.close()


def _bind_unix(
    path: str, umask: int | None, backlog: int, mode: int | None, owner: SocketOwner | None
) -> socket.socket:
    if mode is not None:
        check_socket_mode(mode)
    ids = owner.resolve() if owner is not None else None  # an unknown name fails before bind
    _remove_stale_unix_socket(path)
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    if mode is None:
        current = os.umask(0o077)
        os.umask(current)
        effective = current if umask is None else umask
        mode = UNIX_SOCKET_MODE & ~effective
    # bind() creates the file with 0777 & ~umask; setting the umask for that one call means
    # the socket is never, even for a moment, more open than its final mode.
    previous = os.umask(0o777 & ~mode)
    try:
        sock.bind(path)
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot create unix socket {path}: {exc.strerror}") from exc
    finally:
        os.umask(previous)
    if ids is not None:
        # Before listen(): nobody can connect until the owner is the one asked for.
        try:
            os.chown(path, *ids)
        except OSError as exc:
            sock.close()
            with contextlib.suppress(OSError):
                os.unlink(path)
            hint = "; start as root to give the socket away" if exc.errno == errno.EPERM else ""
            raise ConfigError(
                f"cannot give unix socket {path} to {owner}: {exc.strerror}{hint}"
            ) from exc
    sock.listen(backlog)
    return _as_socket(sock)


def _bind_tcp(address: TcpAddress, backlog: int) -> socket.socket:
    sock = _socket.socket(address.family, _socket.SOCK_STREAM)
    sock.setsockopt(_socket.SOL_SOCKET, _socket.SO_REUSEADDR, 1)
    if address.family == _socket.AF_INET6:
        with contextlib.suppress(OSError):
            sock.setsockopt(_socket.IPPROTO_IPV6, _socket.IPV6_V6ONLY, 1)
    try:
        sock.bind((address.host, address.port))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {address}: {exc.strerror}") from exc
    sock.listen(backlog)
    return _as_socket(sock)


def _as_socket(sock: _socket.socket) -> socket.socket:
    """``sock``, bound and listening, as the :class:`socket.socket` the server takes."""
    import socket  # here, once it listens: see the module's docstring

    return socket.socket(sock.family, sock.type, sock.proto, sock.detach())


def open_listener(
    address: Address,
    *,
    umask: int | None = None,
    backlog: int = 1024,
    mode: int | None = None,
    owner: SocketOwner | None = None,
) -> socket.socket:
    """A listening socket for ``address``; ConfigError with what to do when that fails.

    For a unix socket we create: ``mode`` (default 0660 minus ``umask``, or minus the process
    umask) and ``owner``, applied between bind and listen. Both need root to be useful with
    another user; neither applies to TCP or to a socket inherited on fd 0.
    """
    if isinstance(address, UnixAddress):
        return _bind_unix(address.path, umask, backlog, mode, owner)
    if isinstance(address, TcpAddress):
        return _bind_tcp(address, backlog)
    sock = inherited_listener(address.fd)
    if sock is None:
        raise ConfigError(
            f"fd {address.fd} is not a listening socket; start fcgikit from a FastCGI spawner "
            "(mod_fcgid, lighttpd bin-path, spawn-fcgi) or pass --bind unix:PATH or HOST:PORT"
        )
    return sock


def open_bound_listeners(settings: ServerSettings) -> tuple[list[socket.socket], list[str]]:
    """The listening sockets of ``settings.binds``, and the unix socket files among them
    (created here, for whoever stops serving to remove)."""
    listeners = []
    created = []
    for address in settings.binds:
        listeners.append(
            open_listener(
                address,
                umask=settings.umask,
                mode=settings.socket_mode,
                owner=settings.socket_owner,
            )
        )
        if isinstance(address, UnixAddress):
            created.append(address.path)
    return listeners, created


class PassedListeners:
    """The listening sockets passed the systemd way. A plain class: every start that serves
    makes the class (a frozen dataclass's costs it more than its lists are worth), and only
    a re-executed or socket-activated one an instance, which nothing compares or copies."""

    __slots__ = ("connections", "created_paths", "sockets")

    def __init__(self, sockets: list[socket.socket]) -> None:
        self.sockets: Final = sockets
        #: the files of those that are unix sockets fcgikit created (before a re-exec):
        #: remove them when serving stops
        self.created_paths: Final[list[str]] = []
        #: descriptors of web servers' connections handed over between two requests
        self.connections: Final[list[int]] = []


def passed_listeners() -> PassedListeners | None:
    """The sockets passed the systemd way, or None when none were passed to this process.

    The variables are removed so that no child (a worker, an app's subprocess) mistakes them
    for its own.
    """
    pid, count = os.environ.get("LISTEN_PID"), os.environ.get("LISTEN_FDS")
    names = os.environ.get("LISTEN_FDNAMES", "").split(":")
    if pid is None or count is None:
        return None
    for name in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        os.environ.pop(name, None)
    if not pid.isdigit() or int(pid) != os.getpid() or not count.isdigit():
        return None
    passed = PassedListeners([])
    for index, fd in enumerate(range(LISTEN_FDS_START, LISTEN_FDS_START + int(count))):
        name = names[index] if index < len(names) else ""
        if name == CONNECTION_NAME:
            os.set_inheritable(fd, False)
            passed.connections.append(fd)
            continue
        sock = inherited_listener(fd)
        if sock is None:
            raise ConfigError(
                f"fd {fd} was passed (LISTEN_FDS), but is not a listening stream socket"
            )
        os.close(fd)  # inherited_listener holds a duplicate
        passed.sockets.append(sock)
        if name == CREATED_SOCKET_NAME:
            passed.created_paths.append(sock.getsockname())
    return passed


def exec_with_listeners(
    argv: Sequence[str],
    listeners: Sequence[socket.socket],
    created_paths: Collection[str],
    connections: Sequence[int] = (),
) -> NoReturn:
    """Replace this process (same pid) by ``argv``, passing ``listeners`` the systemd way;
    ``created_paths``: the unix socket files among them this process created;
    ``connections``: idle connections (descriptors) the new process is to serve on."""
    names = []
    for listener in listeners:
        path = listener.getsockname() if listener.family == _socket.AF_UNIX else None
        names.append(CREATED_SOCKET_NAME if path in created_paths else "passed")
    names += [CONNECTION_NAME] * len(connections)
    count = len(names)
    import fcntl  # here: only a reload re-executes, and no other start loads this C module

    # First above the range, so that no dup2() into it replaces a descriptor not yet moved.
    above = [
        fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, LISTEN_FDS_START + count)
        for fd in [listener.fileno() for listener in listeners] + list(connections)
    ]
    for index, fd in enumerate(above):
        os.dup2(fd, LISTEN_FDS_START + index, inheritable=True)
        os.close(fd)
    os.environ.update(
        LISTEN_FDS=str(count), LISTEN_PID=str(os.getpid()), LISTEN_FDNAMES=":".join(names)
    )
    os.execv(argv[0], list(argv))


def describe(sock: socket.socket) -> str:
    """How to write the address ``sock`` listens on, for the log."""
    name = sock.getsockname()
    if sock.family == _socket.AF_UNIX:
        return f"unix:{name if isinstance(name, str) else name.decode()}"
    return str(TcpAddress(name[0], name[1]))


def peer_allowed(peer: object, allowed: TrustedNetworks | None) -> bool:
    """FCGI_WEB_SERVER_ADDRS applies to TCP peers, IPv4 and IPv6; unix peers are local."""
    if allowed is None or not isinstance(peer, tuple):
        return True
    return peer[0] in allowed


def peer_label(peer: object) -> str:
    """How the log names a connection: the web server's address and port, or a unix socket
    (whose peer has no address worth naming)."""
    return f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else "unix socket"


def parse_web_server_addrs(value: str | None) -> TrustedNetworks | None:
    """Read FCGI_WEB_SERVER_ADDRS (comma-separated addresses and networks); None when it is
    unset or empty, which lets every peer connect."""
    if value is None or not value.strip():
        return None
    return TrustedNetworks.parse(value, "FCGI_WEB_SERVER_ADDRS")


__all__ = [
    "FdAddress",
    "PassedListeners",
    "SocketOwner",
    "check_socket_mode",
    "describe",
    "exec_with_listeners",
    "inherited_listener",
    "open_bound_listeners",
    "open_listener",
    "parse_web_server_addrs",
    "passed_listeners",
    "peer_allowed",
    "peer_label",
    "socket_mode_problem",
]
