"""``fcgikit request``: a cgi-fcgi-like client against fcgikit's real server in a thread."""

from __future__ import annotations

import argparse
import hashlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from fcgikit.check import add_request_parser
from fcgikit.testing import RunningServer

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment


def echo(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length)
    status = "404 Not Found" if environ["PATH_INFO"] == "/missing" else "200 OK"
    if environ["PATH_INFO"] == "/warn":
        environ["wsgi.errors"].write("careful\n")
    start_response(status, [("Content-Type", "text/plain"), ("X-Seen", "yes")])
    lines = [
        f"{key}={environ.get(key, '')}"
        for key in (
            "REQUEST_METHOD",
            "SCRIPT_NAME",
            "PATH_INFO",
            "QUERY_STRING",
            "CONTENT_TYPE",
            "HTTP_X_TOKEN",
        )
    ]
    lines.append(f"sha256={hashlib.sha256(body).hexdigest()}")
    return ["\n".join(lines).encode("latin-1")]


@pytest.fixture(scope="module")
def backend() -> Iterator[RunningServer]:
    with RunningServer(echo) as running:
        yield running


def request(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    add_request_parser(parser.add_subparsers())
    args = parser.parse_args(["request", *argv])
    result: int = args.run(args)
    return result


def test_get_with_status_and_headers(
    backend: RunningServer, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    assert request(backend.address, "/a/b?x=1&y=a%20b", "-i") == 0
    out = capsysbinary.readouterr().out
    head, _, body = out.partition(b"\r\n\r\n")
    assert head.startswith(b"Status: 200 OK\r\n")
    assert b"X-Seen: yes" in head
    assert b"REQUEST_METHOD=GET" in body
    assert b"PATH_INFO=/a/b" in body
    assert b"QUERY_STRING=x=1&y=a%20b" in body


def test_post_data_and_header(
    backend: RunningServer, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    assert request(backend.address, "/f", "-d", "a=1&b=2", "-H", "X-Token: t0k") == 0
    body = capsysbinary.readouterr().out
    assert b"REQUEST_METHOD=POST" in body
    assert b"CONTENT_TYPE=application/x-www-form-urlencoded" in body
    assert b"HTTP_X_TOKEN=t0k" in body
    assert hashlib.sha256(b"a=1&b=2").hexdigest().encode() in body


def test_data_from_file_with_method(
    backend: RunningServer, tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    data = bytes(range(256)) * 1000
    (tmp_path / "body.bin").write_bytes(data)
    argv = [backend.address, "/up", "-X", "PUT", "-d", f"@{tmp_path / 'body.bin'}"]
    assert request(*argv, "-H", "Content-Type: application/octet-stream") == 0
    body = capsysbinary.readouterr().out
    assert b"REQUEST_METHOD=PUT" in body
    assert b"CONTENT_TYPE=application/octet-stream" in body
    assert hashlib.sha256(data).hexdigest().encode() in body


def test_param_override_and_bare_socket_path(
    backend: RunningServer, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    assert request(backend.path, "/x", "--param", "SCRIPT_NAME=/app") == 0
    assert b"SCRIPT_NAME=/app" in capsysbinary.readouterr().out


def test_app_stderr_goes_to_stderr(
    backend: RunningServer, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    assert request(backend.address, "/warn") == 0
    assert b"careful" in capsysbinary.readouterr().err


def test_fail_flag(backend: RunningServer, capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    assert request(backend.address, "/missing") == 0
    assert request(backend.address, "/missing", "--fail") == 22


def test_errors(tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    assert request(f"unix:{tmp_path / 'none.sock'}", "/") == 1
    assert b"No such file or directory" in capsysbinary.readouterr().err
    assert request(f"unix:{tmp_path / 'none.sock'}", "/", "-H", "no colon") == 2
    assert request(f"unix:{tmp_path / 'none.sock'}", "/", "--param", "novalue") == 2
    assert request(f"unix:{tmp_path / 'none.sock'}", "/", "-d", "@/nonexistent/file") == 2
