"""StdoutGuard and guard_stdout: print() never reaches the response."""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from wsgiref.util import FileWrapper

import pytest

from fcgikit.middleware import (
    StdoutGuard,
    StdoutRestrictedError,
    guard_stdout,
    unguard_stdout,
    wrap,
)
from fcgikit.middleware.stdout_guard import _install, logger

from .helpers import call, environ

REPO = Path(__file__).parents[2]


def hello(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    print("in the app")
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"hello"]


def test_print_goes_to_the_requests_wsgi_errors() -> None:
    env = environ()
    assert call(StdoutGuard(hello), env) == ("200 OK", b"hello")
    assert env["wsgi.errors"].getvalue() == "in the app\n"


def test_print_while_the_response_is_iterated_and_closed() -> None:
    class Body:
        def __iter__(self) -> Iterator[bytes]:
            print("streaming", end="")
            print(" part", end="")
            yield b"a"
            print("second chunk")
            yield b"b"

        def close(self) -> None:
            print("closing without newline", end="")

    def app(environ: dict[str, Any], start_response: Any) -> Body:
        start_response("200 OK", [])
        return Body()

    env = environ()
    assert call(StdoutGuard(app), env) == ("200 OK", b"ab")
    assert env["wsgi.errors"].getvalue() == (
        "streaming partsecond chunk\nclosing without newline\n"
    )


def test_a_failing_app_still_flushes_its_partial_line() -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        print("about to fail", end="")
        raise KeyError("boom")

    env = environ()
    with pytest.raises(KeyError):
        call(StdoutGuard(app), env)
    assert env["wsgi.errors"].getvalue() == "about to fail\n"


def test_outside_a_request_print_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    guard_stdout()
    with caplog.at_level(logging.WARNING, logger="fcgikit.stdout"):
        print("at import time")
        sys.stdout.write("partial")
        sys.stdout.flush()
    assert [r.getMessage() for r in caplog.records] == ["at import time", "partial"]


def test_without_wsgi_errors_print_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    env = environ()
    del env["wsgi.errors"]
    with caplog.at_level(logging.WARNING, logger="fcgikit.stdout"):
        call(StdoutGuard(hello), env)
    assert [r.getMessage() for r in caplog.records] == ["in the app"]


def test_other_threads_log_their_own_lines(caplog: pytest.LogCaptureFixture) -> None:
    guard_stdout()
    with caplog.at_level(logging.WARNING, logger="fcgikit.stdout"):
        sys.stdout.write("main ")
        worker = threading.Thread(target=print, args=("worker",))
        worker.start()
        worker.join()
        print("thread")
    assert sorted(r.getMessage() for r in caplog.records) == ["main thread", "worker"]


def test_strict_guard_raises_during_requests_only(caplog: pytest.LogCaptureFixture) -> None:
    guarded = StdoutGuard(hello, strict=True)
    with pytest.raises(StdoutRestrictedError, match="restricted") as raised:
        call(guarded, environ())
    assert isinstance(raised.value, OSError)
    with caplog.at_level(logging.WARNING, logger="fcgikit.stdout"):
        print("outside requests it is logged")
    assert caplog.records[0].getMessage() == "outside requests it is logged"


def test_strict_process_guard() -> None:
    guard_stdout(strict=True)
    with pytest.raises(StdoutRestrictedError):
        print("no")
    sys.stdout.flush()  # nothing was kept to flush


def test_guard_is_idempotent() -> None:
    first = guard_stdout()
    assert guard_stdout(strict=True) is first
    assert StdoutGuard(hello) is not None
    assert guard_stdout() is first


def test_guarded_stdout_looks_like_a_stream(caplog: pytest.LogCaptureFixture) -> None:
    guard_stdout()
    out = sys.stdout
    assert (out.fileno(), out.isatty(), out.encoding, out.writable()) == (2, False, "utf-8", True)
    assert out.buffer.name == "<stdout>"
    with caplog.at_level(logging.WARNING, logger="fcgikit.stdout"):
        out.buffer.write(b"caf\xc3")
        out.buffer.write(b"\xa9 \xff\n")
        print("\u20ac")
    assert [r.getMessage() for r in caplog.records] == ["caf\xe9 \\xff", "\u20ac"]


def test_a_handler_on_stdout_does_not_loop(capsys: pytest.CaptureFixture[str]) -> None:
    guard_stdout()
    handler = logging.StreamHandler(sys.stdout)
    logger.addHandler(handler)
    try:
        print("once")
    finally:
        logger.removeHandler(handler)
    assert "once" in capsys.readouterr().err


def test_a_handler_on_stdout_without_stderr(monkeypatch: pytest.MonkeyPatch) -> None:
    guard_stdout()
    handler = logging.StreamHandler(sys.stdout)
    logger.addHandler(handler)
    monkeypatch.setattr(sys, "stderr", None)
    try:
        print("dropped, not looping")
    finally:
        logger.removeHandler(handler)


def test_file_wrapper_is_passed_through() -> None:
    def app(environ: dict[str, Any], start_response: Any) -> Any:
        print("sending a file")
        start_response("200 OK", [])
        return environ["wsgi.file_wrapper"](io.BytesIO(b"file body"))

    env = environ(**{"wsgi.file_wrapper": FileWrapper})
    result = StdoutGuard(app)(env, lambda status, headers, exc_info=None: lambda data: None)
    assert isinstance(result, FileWrapper)
    assert b"".join(result) == b"file body"
    assert env["wsgi.errors"].getvalue() == "sending a file\n"


def test_unguard_restores_sys_stdout() -> None:
    before = sys.stdout
    guard_stdout()
    assert sys.stdout is not before
    unguard_stdout()
    assert sys.stdout is before
    unguard_stdout()  # a second time does nothing


def test_unguard_leaves_a_later_replacement_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    guard_stdout()
    replacement = io.StringIO()
    monkeypatch.setattr(sys, "stdout", replacement)
    unguard_stdout()
    assert sys.stdout is replacement


# -- file descriptors, on pipes in this process and on the real fds in a child --------------


def read_all(fd: int) -> bytes:
    with os.fdopen(fd, "rb") as pipe:
        return pipe.read()


def closed_fd() -> int:
    """A closed fd number high enough that os.dup() will not hand it out meanwhile."""
    fd = 900
    while True:
        try:
            os.fstat(fd)
        except OSError:
            return fd
        fd += 1


def test_fd_writes_go_to_stderr_and_the_response_to_the_original() -> None:
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    response = _install(False, stdout_fd=out_w, stderr_fd=err_w)
    os.write(out_w, b"from C\n")
    response.write(b"RESPONSE")
    response.flush()
    assert not os.get_inheritable(response.fileno())
    unguard_stdout()
    assert response.closed
    os.write(out_w, b" restored")
    os.close(out_w)
    os.close(err_w)
    assert read_all(out_r) == b"RESPONSE restored"
    assert read_all(err_r) == b"from C\n"


def test_closed_stdout_fd() -> None:
    err_r, err_w = os.pipe()
    stdout_fd = closed_fd()
    response = _install(False, stdout_fd=stdout_fd, stderr_fd=err_w)
    assert response.name == os.devnull
    os.write(stdout_fd, b"kept out of the way\n")
    unguard_stdout()
    with pytest.raises(OSError):
        os.fstat(stdout_fd)
    os.close(err_w)
    assert read_all(err_r) == b"kept out of the way\n"


def test_closed_stderr_fd() -> None:
    out_r, out_w = os.pipe()
    response = _install(False, stdout_fd=out_w, stderr_fd=closed_fd())
    os.write(out_w, b"to /dev/null\n")
    response.write(b"RESPONSE")
    unguard_stdout()
    os.close(out_w)
    assert read_all(out_r) == b"RESPONSE"


CHILD = textwrap.dedent(
    """
    import io, os, subprocess, sys
    from fcgikit.middleware import StdoutGuard, guard_stdout

    print("printed before the guard", end="")
    response = guard_stdout()
    print("printed after the guard")
    os.write(1, b"written to fd 1\\n")
    subprocess.run([sys.executable, "-c", "print('from a subprocess')"], check=True)

    def app(environ, start_response):
        print("printed in a request")
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"body"]

    errors = io.StringIO()
    environ = {"wsgi.errors": errors}
    body = b"".join(StdoutGuard(app)(environ, lambda status, headers: None))
    response.write(b"Status: 200 OK\\r\\nContent-Type: text/plain\\r\\n\\r\\n" + body)
    response.flush()
    sys.stderr.write("errors stream: " + errors.getvalue())
    """
)


def test_cgi_process_writes_only_the_response_to_fd_1() -> None:
    # Buffered, as a CGI script's stdout is: what was printed before the guard is still in
    # Python's buffer when the guard moves fd 1, so it must end up on stderr.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    env["PYTHONPATH"] = str(REPO)
    child = subprocess.run(
        [sys.executable, "-c", CHILD], capture_output=True, env=env, timeout=60, check=True
    )
    assert child.stdout == b"Status: 200 OK\r\nContent-Type: text/plain\r\n\r\nbody"
    err = child.stderr.decode()
    for line in (
        "printed before the guard",
        "printed after the guard",
        "written to fd 1",
        "from a subprocess",
        "errors stream: printed in a request",
    ):
        assert line in err


def test_guard_when_there_was_no_sys_stdout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdout", None)  # pythonw, or started with fd 1 closed
    guard_stdout()
    assert sys.stdout is not None
    unguard_stdout()
    assert sys.stdout is None


def test_very_long_lines_are_passed_on_in_pieces() -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        sys.stdout.write("x" * 20000)
        start_response("200 OK", [])
        return []

    env = environ()
    call(StdoutGuard(app), env)
    assert [len(line) for line in env["wsgi.errors"].getvalue().splitlines()] == [8192, 8192, 3616]


# -- building the app is not serving it: stdout stays the process's until a request ----------


def test_building_or_wrapping_the_app_leaves_stdout_alone() -> None:
    before = sys.stdout, os.fstat(1)
    StdoutGuard(hello)
    wrap(hello, mount="")
    assert (sys.stdout, os.fstat(1)) == before


def test_the_first_request_installs_the_guard() -> None:
    before = sys.stdout
    guarded = StdoutGuard(hello)
    env = environ()
    call(guarded, env)
    assert sys.stdout is not before  # installed: prints outside requests are logged now
    assert env["wsgi.errors"].getvalue() == "in the app\n"
    again = environ()
    call(guarded, again)  # the second request finds it in place
    assert again["wsgi.errors"].getvalue() == "in the app\n"


FLASK_APP = textwrap.dedent(
    """
    import os, subprocess, sys

    import click
    from flask import Flask

    import fcgikit

    def create_app():
        app = Flask(__name__)

        @app.route("/")
        def index():
            return "hello"

        @app.route("/users/<int:user>")
        def user(user):
            return str(user)

        @app.cli.command("dump")
        def dump():
            sys.stdout.buffer.write(bytes(range(256)))
            sys.stdout.write("x" * 10000 + "\\n")
            click.echo("caf\\u00e9")
            sys.stdout.flush()
            child = "import sys; sys.stdout.write('from a child process\\\\n')"
            subprocess.run([sys.executable, "-c", child], check=True)

        if os.environ["WRAP"] == "1":
            app.wsgi_app = fcgikit.wrap(app.wsgi_app, mount="")
        return app
    """
)


def run_flask(directory: Path, *command: str, wrap: bool) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{directory}", "WRAP": str(int(wrap))}
    return subprocess.run(
        [sys.executable, "-m", "flask", "--app", "factory_app", *command],
        capture_output=True,
        env=env,
        cwd=directory,
        timeout=60,
        check=True,
    )


def test_a_flask_command_of_a_wrapped_app_keeps_stdout_byte_exact(tmp_path: Path) -> None:
    (tmp_path / "factory_app.py").write_text(FLASK_APP)
    dump = run_flask(tmp_path, "dump", wrap=True)
    expected = bytes(range(256)) + b"x" * 10000 + b"\n" + "caf\u00e9\n".encode()
    assert dump.stdout == expected + b"from a child process\n"
    assert dump.stderr == b""
    routes = run_flask(tmp_path, "routes", wrap=True)
    assert b"/users/<int:user>" in routes.stdout
    assert routes.stdout == run_flask(tmp_path, "routes", wrap=False).stdout
    assert routes.stderr == b""
