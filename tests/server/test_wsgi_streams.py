"""``wsgi.errors`` and ``wsgi.file_wrapper`` (fcgikit/server/wsgi_streams.py): what an app
writes to the one reaches the log and FCGI_STDERR, and the other serves a file in blocks and
closes it."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from fcgikit.server import wsgi
from fcgikit.server.wsgi_streams import FileWrapper
from tests.server.test_wsgi import ANSWER_WITHIN, Environ, error_lines


def uses_the_wsgi_extras(environ: Environ, start_response: Any) -> Any:
    """wsgi.errors (write, writelines, flush) and wsgi.file_wrapper."""
    errors = environ["wsgi.errors"]
    errors.write("one\n")
    errors.writelines(["two\n", "three\n"])
    errors.flush()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return environ["wsgi.file_wrapper"](open(environ["FILE"], "rb"), 5)


def test_wsgi_errors_goes_to_the_log_and_fcgi_stderr_and_file_wrapper_serves_the_file(
    serve: Any, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    served = tmp_path / "served.txt"
    served.write_bytes(b"a file served in blocks of five bytes")
    running = serve(uses_the_wsgi_extras)
    with caplog.at_level(logging.INFO, logger="fcgikit.server"):
        response = running.client(timeout=ANSWER_WITHIN).request(
            "GET", "/extras", params={"FILE": str(served)}
        )
    assert response.stderr == b"one\ntwo\nthree\n"
    assert [line.rpartition(": ")[2] for line in error_lines(caplog, "/extras")] == [
        "one",
        "two",
        "three",
    ]
    assert response.body == served.read_bytes()


def test_wsgi_file_wrapper_closes_the_file_when_done(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"0123456789ab")
    with open(path, "rb") as file:
        wrapper = FileWrapper(file, 5)
        assert list(wrapper) == [b"01234", b"56789", b"ab"]
        wrapper.close()
        assert file.closed


class ReadOnly:
    """A file-like object with read() and no close()."""

    def read(self, size: int) -> bytes:
        return b""


def test_wsgi_file_wrapper_takes_a_file_like_without_close() -> None:
    wrapper = FileWrapper(ReadOnly())  # type: ignore[arg-type]
    assert list(wrapper) == []
    wrapper.close()  # nothing to close


def test_file_wrapper_is_importable_from_wsgi_where_it_always_was() -> None:
    assert wsgi.FileWrapper is FileWrapper
