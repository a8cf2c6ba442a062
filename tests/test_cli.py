"""The `fcgikit` command and the flup-style `.fcgi` file, run as real processes."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from fcgikit.client import FastCGIClient
from tests.processes import ROOT, Backend, fcgikit_command

TESTS = ROOT / "tests"
ENV = {"PYTHONPATH": f"{ROOT}{os.pathsep}{TESTS}"}


def run_fcgikit(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        fcgikit_command(*args),
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **ENV},
        stdin=subprocess.DEVNULL,
    )


def test_serve_on_a_unix_socket_then_sigterm_exits_0(tmp_path: Path) -> None:
    sock = tmp_path / "app.sock"
    backend = Backend(fcgikit_command("serve", "apps.hello:app", "--bind", f"unix:{sock}"), env=ENV)
    try:
        backend.wait_for(rf"listening on unix:{sock}")
        response = FastCGIClient(f"unix:{sock}").request("GET", "/x")
        assert response.body == b"hello from /x"
    finally:
        code = backend.stop(signal.SIGTERM)
    assert code == 0
    assert not sock.exists()


def test_a_relative_socket_path_is_from_chdir_and_a_log_file_from_the_start(
    tmp_path: Path,
) -> None:
    # the socket listens once fcgikit is in --chdir, before it sets up its logging, whose
    # file is still named from where it started
    app_dir = tmp_path / "app"
    app_dir.mkdir()
    (app_dir / "here.py").write_text(
        "def app(environ, start_response):\n"
        "    start_response('200 OK', [])\n"
        "    return [b'from the app directory']\n"
    )
    os.mkfifo(tmp_path / "fcgikit.log")  # opened below once fcgikit opens it
    command = fcgikit_command(
        "serve", "here:app", "--chdir", "app", "--bind", "unix:a.sock", "--log-file", "fcgikit.log"
    )
    backend = Backend(command, cwd=tmp_path, env=ENV)
    try:
        with open(tmp_path / "fcgikit.log") as lines:
            response = FastCGIClient(f"unix:{app_dir / 'a.sock'}").request("GET", "/")
            assert "listening on unix:a.sock" in lines.readline()
    finally:
        assert backend.stop(signal.SIGTERM) == 0
    assert response.body == b"from the app directory"
    assert not (app_dir / "fcgikit.log").exists()


def test_mount_option_rebuilds_script_name_from_request_uri(tmp_path: Path) -> None:
    sock = tmp_path / "app.sock"
    backend = Backend(
        fcgikit_command("serve", "apps.hello:app", "--bind", f"unix:{sock}", "--mount", "/blog"),
        env=ENV,
    )
    try:
        backend.wait_for("listening on")
        # what nginx's stock fastcgi_params send: no PATH_INFO, the whole path in SCRIPT_NAME
        raw = [
            (b"REQUEST_METHOD", b"GET"),
            (b"SCRIPT_NAME", b"/blog/posts/caf\xc3\xa9"),
            (b"REQUEST_URI", b"/blog/posts/caf%C3%A9?x=1"),
            (b"QUERY_STRING", b"x=1"),
        ]
        response = FastCGIClient(f"unix:{sock}").request(raw_params=raw)
        assert response.body == "hello from /posts/caf\u00c3\u00a9".encode()
    finally:
        assert backend.stop() == 0


def test_serve_tcp_and_factory(tmp_path: Path) -> None:
    backend = Backend(
        fcgikit_command("serve", "apps.hello:create_app('hi there')", "--bind", "127.0.0.1:0"),
        env=ENV,
    )
    try:
        port = int(backend.wait_for(r"listening on 127\.0\.0\.1:(\d+)").group(1))
        assert FastCGIClient(f"127.0.0.1:{port}").request().body == b"hi there"
    finally:
        assert backend.stop() == 0


def test_serve_inherited_fd0_like_spawn_fcgi(tmp_path: Path) -> None:
    path = str(tmp_path / "spawned.sock")
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(path)
    listener.listen()
    backend = Backend(fcgikit_command("serve", "apps.hello:app"), env=ENV, stdin=listener)
    listener.close()  # the child has its own copy on fd 0, as with spawn-fcgi
    try:
        backend.wait_for(r"listening on unix:")
        assert FastCGIClient(f"unix:{path}").request("GET", "/fd0").body == b"hello from /fd0"
    finally:
        assert backend.stop() == 0


def test_serve_without_bind_or_socket_says_what_to_pass() -> None:
    result = run_fcgikit("serve", "apps.hello:app")
    assert result.returncode == 2
    assert "--bind unix:" in result.stderr


def test_import_error_shows_interpreter_and_path() -> None:
    result = run_fcgikit("serve", "apps.broken_import:app", "--bind", "127.0.0.1:0")
    assert result.returncode == 2
    assert "module_that_does_not_exist_anywhere" in result.stderr
    assert sys.executable in result.stderr
    assert "sys.path" in result.stderr


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("apps.hello:missing", "has no attribute 'missing'"),
        ("apps.hello:not_an_app", "is a int, not a WSGI application"),
        ("apps.hello:create_app(open)", "must be literals"),
        # a factory named without its call: every request would be a 500
        ("apps.hello:create_app", "if it makes the app, name the call: 'apps.hello:create_app()'"),
    ],
)
def test_bad_app_names_say_exactly_what_is_wrong(spec: str, message: str) -> None:
    result = run_fcgikit("serve", spec, "--bind", "127.0.0.1:0")
    assert result.returncode == 2
    assert message in result.stderr


def test_a_pool_refuses_a_factory_named_without_its_call_at_start() -> None:
    result = run_fcgikit("serve", "apps.hello:create_app", "--bind", "127.0.0.1:0", "-w", "2")
    assert result.returncode == 3  # the workers cannot load the app: the master stops
    assert "name the call: 'apps.hello:create_app()'" in result.stderr


def test_a_fcgi_file_passing_a_factory_uncalled_fails_at_start(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(write_fcgi(tmp_path, app="create_app"))],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        env={**os.environ, **ENV},
    )
    assert result.returncode == 1
    assert "pass what it returns: WSGIServer(create_app())" in result.stderr


def test_bad_address_is_explained() -> None:
    result = run_fcgikit("serve", "apps.hello:app", "--bind", "localhost")
    assert result.returncode == 2
    assert "unix:PATH, HOST:PORT" in result.stderr


def test_python_dash_m_and_version() -> None:
    result = run_fcgikit("--version")
    assert result.returncode == 0
    assert result.stdout.startswith("fcgikit ")


def test_development_front_serves_http(tmp_path: Path) -> None:
    backend = Backend(fcgikit_command("serve", "apps.hello:app", "--http", "127.0.0.1:0"), env=ENV)
    try:
        port = backend.wait_for(r"development front on http://127\.0\.0\.1:(\d+)").group(1)
        assert "for development only" in backend.stderr
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/via/http", timeout=30) as reply:
            assert reply.read() == b"hello from /via/http"
    finally:
        assert backend.stop() == 0


FCGI_FILE = """#!{python}
import sys
sys.path.insert(0, {tests!r})
from fcgikit import WSGIServer
from apps.hello import {app} as app

if __name__ == '__main__':
    if WSGIServer(app{args}).run():
        print("run() returned True", file=sys.stderr)
"""


def write_fcgi(tmp_path: Path, args: str = "", app: str = "app") -> Path:
    path = tmp_path / "yourapplication.fcgi"
    path.write_text(FCGI_FILE.format(python=sys.executable, tests=str(TESTS), args=args, app=app))
    path.chmod(0o755)
    return path


def test_guide_fcgi_file_with_bind_address_unix(tmp_path: Path) -> None:
    sock = tmp_path / "fcgi.sock"
    script = write_fcgi(tmp_path, f", bindAddress={str(sock)!r}")
    backend = Backend([str(script)])
    try:
        backend.wait_for("listening on")
        assert FastCGIClient(f"unix:{sock}").request("GET", "/guide").body == b"hello from /guide"
    finally:
        assert backend.stop(signal.SIGHUP) == 0
    assert "run() returned True" in backend.stderr  # flup's "re-exec me" after SIGHUP


def test_guide_fcgi_file_with_bind_address_tcp(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    script = write_fcgi(tmp_path, f", bindAddress=('127.0.0.1', {port})")
    backend = Backend([str(script)])
    try:
        backend.wait_for("listening on")
        assert FastCGIClient(f"127.0.0.1:{port}").request().body == b"hello from /"
    finally:
        assert backend.stop(signal.SIGINT) == 0
    assert "run() returned True" not in backend.stderr


def test_guide_fcgi_file_spawned_with_socket_on_fd0(tmp_path: Path) -> None:
    path = str(tmp_path / "spawn.sock")
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(path)
    listener.listen()
    backend = Backend([str(write_fcgi(tmp_path))], stdin=listener)
    listener.close()
    try:
        backend.wait_for("listening on")
        assert (
            FastCGIClient(f"unix:{path}").request("GET", "/spawned").body == b"hello from /spawned"
        )
    finally:
        assert backend.stop() == 0


def test_serve_with_workers_forks_a_pool(tmp_path: Path) -> None:
    sock = tmp_path / "pool.sock"
    backend = Backend(
        fcgikit_command(
            "serve", "apps.hello:app", "--bind", f"unix:{sock}", "--workers", "2", "--mount", ""
        ),
        env=ENV,
    )
    try:
        backend.wait_for(r"worker \d+ ready", count=2)
        bodies = {FastCGIClient(f"unix:{sock}").request("GET", "/p").body for _ in range(6)}
        assert bodies == {b"hello from /p"}
    finally:
        assert backend.stop() == 0
    assert len(set(re.findall(r"worker (\d+) ready", backend.stderr))) == 2


def test_flup_fork_keywords_select_the_process_pool(tmp_path: Path) -> None:
    sock = tmp_path / "fork.sock"
    script = write_fcgi(tmp_path, f", bindAddress={str(sock)!r}, maxChildren=3, maxRequests=100")
    backend = Backend([str(script)])
    try:
        backend.wait_for(r"worker \d+ ready")
        assert FastCGIClient(f"unix:{sock}").request("GET", "/fork").body == b"hello from /fork"
    finally:
        assert backend.stop(signal.SIGHUP) == 0
    assert "run() returned True" in backend.stderr  # re-exec me, as flup's prefork server


def test_http_front_and_workers_do_not_mix() -> None:
    result = run_fcgikit("serve", "apps.hello:app", "--workers", "2", "--http", "127.0.0.1:0")
    assert result.returncode == 2
    assert "--http is a development front" in result.stderr


def test_guide_fcgi_file_runs_as_cgi_when_stdin_is_not_a_socket(tmp_path: Path) -> None:
    script = write_fcgi(tmp_path, app="noisy")
    env = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/cgi",
        "CONTENT_LENGTH": "4",
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "80",
        "HTTP_PROXY": "http://evil:1",
    }
    result = subprocess.run(
        [str(script)], input=b"body", capture_output=True, timeout=60, env={**os.environ, **env}
    )
    assert result.returncode == 0, result.stderr
    head, _, body = result.stdout.partition(b"\r\n\r\n")
    assert head.startswith(b"Status: 200 OK")
    assert body == b"clean body body"
    # the app's print() went to stderr (the web server's log), not into the response
    assert b"debug output" not in result.stdout
    assert b"debug output" in result.stderr


def test_socket_mode_and_owner(tmp_path: Path) -> None:
    import pwd
    import stat as stat_module

    if os.geteuid() != 0:  # pragma: no cover - CI runs as root
        pytest.skip("giving a socket away needs root")
    sock = tmp_path / "owned.sock"
    backend = Backend(
        fcgikit_command(
            "serve",
            "apps.hello:app",
            "--bind",
            f"unix:{sock}",
            "--socket-mode",
            "640",
            "--socket-owner",
            "www-data:www-data",
        ),
        env=ENV,
    )
    try:
        backend.wait_for("listening on")
        info = os.stat(sock)
        assert stat_module.S_IMODE(info.st_mode) == 0o640
        assert info.st_uid == pwd.getpwnam("www-data").pw_uid
    finally:
        assert backend.stop() == 0
    result = run_fcgikit(
        "serve",
        "apps.hello:app",
        "--bind",
        f"unix:{tmp_path / 'x.sock'}",
        "--socket-owner",
        "no-such-user-here",
    )
    assert result.returncode == 2
    assert "no-such-user-here" in result.stderr
    assert not (tmp_path / "x.sock").exists()


@pytest.mark.parametrize("workers", [[], ["--workers", "2"]], ids=["single", "workers"])
def test_a_world_writable_socket_mode_is_refused_with_the_right_way(
    tmp_path: Path, workers: list[str]
) -> None:
    sock = tmp_path / "open.sock"
    result = run_fcgikit(
        "serve", "apps.hello:app", "--bind", f"unix:{sock}", "--socket-mode", "666", *workers
    )
    assert result.returncode == 2
    assert "--socket-mode 666 lets every local user connect" in result.stderr
    assert "--socket-owner :www-data with --socket-mode 660" in result.stderr
    assert not sock.exists()
