"""Listening sockets: fd 0 detection, unix socket safety, TCP, the peer allow-list."""

from __future__ import annotations

import grp
import os
import pwd
import resource
import socket
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fcgikit.addresses import FdAddress, TcpAddress, UnixAddress
from fcgikit.errors import ConfigError
from fcgikit.server import ServerSettings
from fcgikit.server.listeners import (
    SocketOwner,
    inherited_listener,
    open_listener,
    parse_web_server_addrs,
    passed_listeners,
    peer_allowed,
)
from tests.processes import copy_pure_package, require_debian_python

ROOT = Path(__file__).resolve().parents[2]
DETECT = (
    "import sys; from fcgikit.server.listeners import inherited_listener; "
    "print('listener' if inherited_listener(0) else 'not')"
)


def detect_on_stdin(stdin: Any) -> str:
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


@pytest.mark.parametrize("mode", [0o600, 0o660, 0o664])
def test_socket_mode_is_exact_whatever_the_umask(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "m.sock"
    with open_listener(UnixAddress(str(path)), umask=0o077, mode=mode):
        assert stat.S_IMODE(os.stat(path).st_mode) == mode


@pytest.mark.parametrize("mode", [0o666, 0o777, 0o662, 0o002])
def test_a_socket_mode_others_can_write_to_is_refused(tmp_path: Path, mode: int) -> None:
    """Whoever can connect is trusted with REMOTE_ADDR and every header: o+w is refused,
    with the way to give the web server access instead, and no socket is created."""
    path = tmp_path / "open.sock"
    for make in (
        lambda: ServerSettings(socket_mode=mode),
        lambda: open_listener(UnixAddress(str(path)), mode=mode),
    ):
        with pytest.raises(ConfigError, match="--socket-owner :www-data with --socket-mode 660"):
            make()
    assert not path.exists()


def www_data() -> tuple[int, int]:
    try:
        return pwd.getpwnam("www-data").pw_uid, grp.getgrnam("www-data").gr_gid
    except KeyError:
        pytest.skip("no www-data user (Debian creates it in base-passwd)")
        raise


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a socket away needs root")
@pytest.mark.parametrize(
    ("spec", "expect_user", "expect_group"),
    [
        pytest.param("www-data:www-data", True, True, id="user-and-group"),
        pytest.param("www-data", True, False, id="user-only"),
        pytest.param(":www-data", False, True, id="group-only"),
    ],
)
def test_socket_owner_is_set_before_listening(
    open_dir: Path, spec: str, expect_user: bool, expect_group: bool
) -> None:
    uid, gid = www_data()
    path = open_dir / "o.sock"
    with open_listener(UnixAddress(str(path)), owner=SocketOwner.parse(spec), mode=0o660):
        info = os.stat(path)
        assert info.st_uid == (uid if expect_user else os.geteuid())
        assert info.st_gid == (gid if expect_group else os.getegid())
        assert stat.S_IMODE(info.st_mode) == 0o660
        # www-data may connect now; nobody else but root. Debian's python3: www-data cannot
        # run the test's interpreter (under /root, or in a 0700 temp dir)
        probe = subprocess.run(
            [
                "setpriv",
                f"--reuid={uid}",
                f"--regid={gid}",
                "--clear-groups",
                require_debian_python(),
                "-c",
                f"import socket; socket.socket(socket.AF_UNIX).connect({str(path)!r})",
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert probe.returncode == 0, probe.stderr


def test_socket_owner_numeric_ids(tmp_path: Path) -> None:
    path = tmp_path / "n.sock"
    owner = SocketOwner.parse(f"{os.geteuid()}:{os.getegid()}")
    with open_listener(UnixAddress(str(path)), owner=owner):
        assert os.stat(path).st_uid == os.geteuid()


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        pytest.param("no-such-user-fcgikit", "no such user 'no-such-user-fcgikit'", id="user"),
        pytest.param("root:no-such-group-fcgikit", "no such group", id="group"),
    ],
)
def test_socket_owner_unknown_name_is_a_config_error(
    tmp_path: Path, spec: str, message: str
) -> None:
    path = tmp_path / "u.sock"
    with pytest.raises(ConfigError, match=message):
        open_listener(UnixAddress(str(path)), owner=SocketOwner.parse(spec))
    assert not path.exists()  # checked before anything is created


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A directory other users may reach (pytest's tmp dirs are 0700 under root)."""
    with tempfile.TemporaryDirectory(prefix="fcgikit-sock-") as name:
        os.chmod(name, 0o777)
        yield Path(name)


@pytest.mark.skipif(os.geteuid() != 0, reason="runs as root, to become nobody")
def test_socket_owner_when_not_permitted_is_a_config_error(open_dir: Path) -> None:
    """As nobody: the chown is refused with a ConfigError, and no socket is left behind."""
    path = open_dir / "p.sock"
    code = (
        "from fcgikit.addresses import UnixAddress\n"
        "from fcgikit.errors import ConfigError\n"
        "from fcgikit.server.listeners import SocketOwner, open_listener\n"
        "try:\n"
        f"    open_listener(UnixAddress({str(path)!r}), owner=SocketOwner.parse('root'))\n"
        "except ConfigError as exc:\n"
        "    print(exc)\n"
    )
    nobody = pwd.getpwnam("nobody")
    # nobody can reach neither the test's interpreter nor a checkout in a 0700 temp dir (CI's
    # clone): Debian's python3, and a copy of fcgikit in a directory it can read
    library = copy_pure_package("fcgikit", open_dir / "lib")
    done = subprocess.run(
        [
            "setpriv",
            f"--reuid={nobody.pw_uid}",
            f"--regid={nobody.pw_gid}",
            "--clear-groups",
            require_debian_python(),
            "-c",
            code,
        ],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "PYTHONPATH": str(library)},
    )
    assert "start as root" in done.stdout, done.stdout + done.stderr
    assert not path.exists()


@pytest.mark.parametrize("text", ["", ":"])
def test_socket_owner_needs_a_name(text: str) -> None:
    with pytest.raises(ConfigError, match="USER"):
        SocketOwner.parse(text)


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


def test_a_unix_socket_where_none_can_be_made_says_where_and_why(tmp_path: Path) -> None:
    path = tmp_path / "no-such-directory" / "app.sock"
    with pytest.raises(ConfigError, match=f"cannot create unix socket {path}: No such file"):
        open_listener(UnixAddress(str(path)))


def test_what_is_not_an_open_listening_stream_socket_is_no_listener() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as datagrams:
        datagrams.bind(("127.0.0.1", 0))
        assert inherited_listener(datagrams.fileno()) is None
    # a descriptor nothing has open (the highest one allowed; no thread will get it)
    closed = resource.getrlimit(resource.RLIMIT_NOFILE)[0] - 1
    with pytest.raises(OSError):
        os.fstat(closed)
    assert inherited_listener(closed) is None


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


def test_passed_listeners_ignores_variables_meant_for_another_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LISTEN_PID", str(os.getpid() + 1))
    monkeypatch.setenv("LISTEN_FDS", "1")
    assert passed_listeners() is None
    assert "LISTEN_FDS" not in os.environ  # not passed on to the workers either


REEXEC = """
import os, socket, sys
from fcgikit.server.listeners import exec_with_listeners, passed_listeners
if len(sys.argv) == 3:  # before the exec: listen, and pass the sockets to our new self
    created = socket.socket(socket.AF_UNIX)
    created.bind(sys.argv[1]); created.listen()
    tcp = socket.create_server(("127.0.0.1", 0))
    print(os.getpid(), tcp.getsockname()[1], flush=True)
    exec_with_listeners([sys.executable, __file__, "after"], [created, tcp], {sys.argv[1]})
passed = passed_listeners()
assert not any(name.startswith("LISTEN_") for name in os.environ)
print(os.getpid(), [s.getsockname() for s in passed.sockets], passed.created_paths)
for sock in passed.sockets:
    sock.settimeout(10)
    conn, _ = sock.accept()  # the test connected before the exec: it waited in the backlog
    conn.sendall(b"served after the exec")
    conn.close()
"""


def test_exec_with_listeners_passes_the_same_sockets_to_the_new_program(tmp_path: Path) -> None:
    """What a single process's SIGHUP does: the same pid, the same listening sockets (a
    connection made before the exec is accepted after it), and the unix socket file it
    created is still its own to remove."""
    script = tmp_path / "reexec.py"
    script.write_text(REEXEC)
    path = str(tmp_path / "kept.sock")
    with subprocess.Popen(
        [sys.executable, str(script), path, "before"],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as child:
        assert child.stdout is not None
        pid, port = map(int, child.stdout.readline().split())
        early = [socket.socket(socket.AF_UNIX), socket.create_connection(("127.0.0.1", port))]
        early[0].connect(path)
        for sock in early:
            with sock:
                sock.settimeout(10)
                assert sock.recv(100) == b"served after the exec"
        out, err = child.communicate(timeout=30)
        assert child.returncode == 0, err
    assert out.split(" ", 1)[0] == str(pid)
    assert f"[{path!r}, ('127.0.0.1', {port})] [{path!r}]" in out


@pytest.mark.parametrize(
    ("peer", "allowed"),
    [
        pytest.param(("10.1.2.3", 5000), True, id="v4 in 10.0.0.0/8"),
        pytest.param(("::ffff:10.1.2.3", 5000, 0, 0), True, id="v4-mapped in 10.0.0.0/8"),
        pytest.param(("11.0.0.1", 5000), False, id="v4 outside"),
        pytest.param(("fd00::5", 5000, 0, 0), True, id="v6 in fd00::/8"),
        pytest.param(("fe80::5%lo", 5000, 0, 1), False, id="v6 outside"),
        pytest.param(("192.0.2.7", 5000), True, id="single address beside networks"),
        pytest.param("", True, id="unix peer"),
    ],
)
def test_web_server_addrs_takes_networks(peer: object, allowed: bool) -> None:
    networks = parse_web_server_addrs("10.0.0.0/8, fd00::/8, 192.0.2.7")
    assert peer_allowed(peer, networks) is allowed


def test_a_bad_web_server_addrs_entry_names_the_variable() -> None:
    with pytest.raises(ConfigError, match=r"FCGI_WEB_SERVER_ADDRS: '10\.0\.0\.1/8' has host bits"):
        parse_web_server_addrs("127.0.0.1, 10.0.0.1/8")
    assert parse_web_server_addrs(" ") is None  # unset or empty: every peer
