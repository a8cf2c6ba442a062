"""Listening sockets: fd 0 detection, unix socket safety, TCP, the peer allow-list."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from fcgikit.addresses import FdAddress, TcpAddress, UnixAddress
from fcgikit.errors import ConfigError
from fcgikit.server.listeners import (
    open_listener,
    parse_web_server_addrs,
    peer_allowed,
)

DETECT = (
    "import sys; from fcgikit.server.listeners import inherited_listener; "
    "print('listener' if inherited_listener(0) else 'not')"
)


def detect_on_stdin(stdin: object) -> str:
    result = subprocess.run(
        [sys.executable, "-c", DETECT], stdin=stdin, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_fd0_listening_socket_is_detected(tmp_path: Path) -> None:
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(str(tmp_path / "s.sock"))
        listener.listen()
        assert detect_on_stdin(listener) == "listener"


def test_fd0_connected_socket_is_not_a_listener() -> None:
    left, right = socket.socketpair()
    with left, right:
        assert detect_on_stdin(left) == "not"


def test_fd0_pipe_file_and_devnull_are_not_listeners(tmp_path: Path) -> None:
    assert detect_on_stdin(subprocess.PIPE) == "not"
    assert detect_on_stdin(subprocess.DEVNULL) == "not"
    path = tmp_path / "f"
    path.write_text("x")
    with path.open() as handle:
        assert detect_on_stdin(handle) == "not"


def test_unix_socket_mode_is_0660_minus_umask(tmp_path: Path) -> None:
    path = tmp_path / "a.sock"
    sock = open_listener(UnixAddress(str(path)), umask=0o022)
    with sock:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o640
        assert stat.S_ISSOCK(os.stat(path).st_mode)
    path2 = tmp_path / "b.sock"
    with open_listener(UnixAddress(str(path2)), umask=0):
        assert stat.S_IMODE(os.stat(path2).st_mode) == 0o660


def test_stale_socket_is_replaced(tmp_path: Path) -> None:
    path = str(tmp_path / "stale.sock")
    old = socket.socket(socket.AF_UNIX)
    old.bind(path)
    old.close()  # the file stays, nobody listens: a crashed server's leftover
    with open_listener(UnixAddress(path)) as sock:
        assert sock.getsockname() == path


def test_live_socket_is_not_stolen(tmp_path: Path) -> None:
    path = str(tmp_path / "live.sock")
    with open_listener(UnixAddress(path)), pytest.raises(ConfigError, match="already serving"):
        open_listener(UnixAddress(path))


def test_regular_file_is_never_deleted(tmp_path: Path) -> None:
    path = tmp_path / "important.txt"
    path.write_text("data")
    with pytest.raises(ConfigError, match="not a socket; refusing"):
        open_listener(UnixAddress(str(path)))
    assert path.read_text() == "data"


def test_tcp_ipv4_and_ipv6() -> None:
    with open_listener(TcpAddress("127.0.0.1", 0)) as sock:
        assert sock.family == socket.AF_INET
    if socket.has_ipv6:
        try:
            sock6 = open_listener(TcpAddress("::1", 0))
        except ConfigError as exc:  # pragma: no cover - a kernel without IPv6
            pytest.fail(f"IPv6 loopback unavailable: {exc}")
        with sock6:
            assert sock6.family == socket.AF_INET6


def test_busy_tcp_port_says_so() -> None:
    with open_listener(TcpAddress("127.0.0.1", 0)) as first:
        port = first.getsockname()[1]
        with pytest.raises(ConfigError, match=f"cannot listen on 127.0.0.1:{port}"):
            open_listener(TcpAddress("127.0.0.1", port))


def test_fd_address_that_is_not_a_socket_explains_what_to_do(tmp_path: Path) -> None:
    with (tmp_path / "f").open("w") as handle, pytest.raises(ConfigError, match="--bind"):
        open_listener(FdAddress(handle.fileno()))


def test_web_server_addrs_ipv4_ipv6_and_unix() -> None:
    allowed = parse_web_server_addrs("127.0.0.1, ::1")
    assert peer_allowed(("127.0.0.1", 5000), allowed)
    assert peer_allowed(("::1", 5000, 0, 0), allowed)
    assert peer_allowed(("::ffff:127.0.0.1", 5000, 0, 0), allowed)
    assert not peer_allowed(("127.0.0.2", 5000), allowed)
    assert peer_allowed("", allowed)  # unix peers are local processes
    assert peer_allowed(("203.0.113.9", 1), None)
    with pytest.raises(ConfigError, match="not an IP address"):
        parse_web_server_addrs("localhost")
