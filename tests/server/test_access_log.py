"""``--access-log-format``: the access log as Apache's and nginx's ``combined`` log, and as one
JSON object a line, written by a real server for the requests it served. (The default format:
tests/server/test_server.py.)

A line is written by its request's thread once the reply is out, as nginx and Apache write
theirs: the lines come in the order the requests ended, which need not be the order the
replies reached the client. So the tests find each request's line by its request, never by
its place, and :class:`OutOfOrder` makes the place differ on every run."""

from __future__ import annotations

import json
import logging
import re
import threading
from pathlib import Path
from typing import Any

from fcgikit.client import SEND_BATCH_SIZE
from fcgikit.server.logs import access_log, configure_access_log
from tests.server.test_server import echo_environ


class OutOfOrder(logging.Handler):
    """Holds the access line that mentions ``held`` on its request's thread, before it is
    written, until a line that mentions ``behind`` is written (this handler comes after the
    file's): the order of a busy server, whose thread writing one line may wait while
    another thread answers and logs the next request."""

    def __init__(self, held: str, behind: str) -> None:
        super().__init__()
        self.held = held
        self.behind = behind
        self.behind_written = threading.Event()
        #: per held line: whether the line behind it came (within the deadline)
        self.waits: list[bool] = []

    def hold(self, record: logging.LogRecord) -> bool:
        if self.held in record.getMessage():
            self.waits.append(self.behind_written.wait(10))
        return True

    def emit(self, record: logging.LogRecord) -> None:
        if self.behind in record.getMessage():
            self.behind_written.set()

    def __enter__(self) -> OutOfOrder:
        access_log.addFilter(self.hold)  # on the logger: before any handler writes
        access_log.addHandler(self)  # after the server's own handler
        return self

    def __exit__(self, *exc: object) -> None:
        access_log.removeFilter(self.hold)
        access_log.removeHandler(self)


class StreamedUpload:
    """A request body sent in two parts, the second once the app runs: the server admits the
    request while its body still arrives, and runs it on a thread of its queue (the loop's
    thread must go on reading), which writes its line while the loop serves the next."""

    def __init__(self, size: int, app_running: threading.Event) -> None:
        self.parts = [b"u" * SEND_BATCH_SIZE, b"u" * (size - SEND_BATCH_SIZE)]
        self.app_running = app_running

    def read(self, size: int = -1, /) -> bytes:
        if len(self.parts) == 1:
            assert self.app_running.wait(10), "the upload's request did not start"
        return self.parts.pop(0) if self.parts else b""


def served_lines(serve: Any, tmp_path: Path, access_format: str) -> list[str]:
    """The access log's lines after three requests: a plain GET, a POST (an upload) with a
    client's hostile headers, and a GET whose path is not UTF-8. The POST's line is written
    after the last GET's, though its reply came first (OutOfOrder)."""
    log_path = tmp_path / "access.log"
    app_running = threading.Event()

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        if environ["REQUEST_METHOD"] == "POST":
            app_running.set()
            environ["wsgi.input"].read()
        return echo_environ(environ, start_response)

    running = serve(app, access_log=str(log_path), access_log_format=access_format)
    client = running.client()
    with OutOfOrder(held="/post", behind="/caf%E9") as order:
        client.request(
            "GET",
            "/a",
            query="x=1",
            headers={"Referer": "https://example.com/", "User-Agent": "curl/8.5.0"},
            params={"REMOTE_USER": "ann"},
        )
        upload_size = SEND_BATCH_SIZE + 5
        posted = client.request(
            "POST",
            "/post",
            body=StreamedUpload(upload_size, app_running),
            headers={
                "Content-Length": str(upload_size),
                "User-Agent": 'evil" 200 1 "-" "forged\nnext line',
            },
        )
        assert posted.status == 200
        client.request("GET", "/caf%E9")  # latin-1 é, percent-encoded: PATH_INFO is not UTF-8
        running.stop()  # a graceful stop waits for every line (see the test below)
    configure_access_log(None)  # closes the file
    assert order.waits == [True], "the POST's line was not written behind the last GET's"
    return log_path.read_text().splitlines()


COMBINED = re.compile(
    r"(?P<remote>\S+) - (?P<user>\S+) "
    r"\[(?P<time>\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4})\] "
    r'"(?P<request>[^"]*)" (?P<status>\d{3}) (?P<bytes>\d+) "(?P<referer>[^"]*)" "(?P<agent>[^"]*)"'
)


def test_combined_is_the_log_apache_and_nginx_write(serve: Any, tmp_path: Path) -> None:
    lines = served_lines(serve, tmp_path, "combined")
    assert len(lines) == 3, lines  # the forged newline did not make a fourth
    fields = [COMBINED.fullmatch(line) for line in lines]
    assert all(fields), lines
    by_request = {match["request"]: match.groupdict() for match in fields if match is not None}
    first_line, post_line, cafe_line = (
        "GET /a?x=1 HTTP/1.1",
        "POST /post HTTP/1.1",
        "GET /caf%E9 HTTP/1.1",  # as sent, percent-encoded
    )
    assert by_request.keys() == {first_line, post_line, cafe_line}, lines
    first, post = by_request[first_line], by_request[post_line]
    assert first["remote"] == "127.0.0.1" and first["user"] == "ann"
    assert (first["status"], first["referer"], first["agent"]) == (
        "200",
        "https://example.com/",
        "curl/8.5.0",
    )
    assert int(first["bytes"]) > 0
    # the client's quote and newline are escaped as nginx does: one line, its own fields
    assert (post["status"], post["user"], post["referer"]) == ("200", "-", "-")
    assert post["agent"] == r"evil\x22 200 1 \x22-\x22 \x22forged\x0Anext line"


def test_json_is_one_object_a_line_with_the_documented_keys(serve: Any, tmp_path: Path) -> None:
    lines = served_lines(serve, tmp_path, "json")
    assert len(lines) == 3, lines
    records = {record["path"]: record for record in map(json.loads, lines)}
    assert records.keys() == {"/a", "/post", "/caf%E9"}, lines
    keys = {"time", "request_id", "method", "path", "status", "bytes", "duration", "remote_addr"}
    assert all(keys <= record.keys() for record in records.values()), records
    first, post = records["/a"], records["/post"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", first["time"])
    assert (first["method"], first["query"]) == ("GET", "x=1")
    assert (first["status"], first["remote_addr"]) == (200, "127.0.0.1")
    assert first["bytes"] > 0 and 0 <= first["duration"] < 60
    assert (first["referer"], first["user_agent"]) == ("https://example.com/", "curl/8.5.0")
    assert (post["method"], post["query"], post["status"]) == ("POST", "", 200)
    assert post["user_agent"] == 'evil" 200 1 "-" "forged\nnext line'  # as sent, in JSON
    # the FastCGI request id: the "#N" of fcgikit's own lines about the request
    assert all(isinstance(record["request_id"], int) for record in records.values())


def test_a_graceful_stop_waits_for_the_line_of_a_request_it_answered(
    serve: Any, tmp_path: Path
) -> None:
    """A graceful stop ends once no connection is left, and a request's line is written
    after its reply: its connection stays the server's until then, or the stop could end
    (and a pool's worker exit: --max-requests, a reload) before the line is written."""
    log_path = tmp_path / "access.log"
    running = serve(echo_environ, access_log=str(log_path))
    connections: list[int] = []

    def count_connections(record: logging.LogRecord) -> bool:
        connections.append(running.server.connection_count())
        return True

    access_log.addFilter(count_connections)  # as the line is about to be written
    try:
        assert running.client().request("GET", "/last").status == 200
        running.stop()
    finally:
        access_log.removeFilter(count_connections)
    configure_access_log(None)
    assert connections == [1]  # the request's own, still open
    assert '"GET /last" 200 ' in log_path.read_text()


def test_the_line_says_what_the_web_server_sent_whatever_the_app_did_to_its_environ(
    serve: Any, tmp_path: Path
) -> None:
    """A request arriving whole has its params decoded straight into its environ (one dict,
    made as the records are read): the app rewriting it, as a proxy fixer does, must not
    change the request the log line describes. The second request is the one whose names
    the server has seen already (the first teaches them)."""
    log_path = tmp_path / "access.log"

    def rewrites(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        environ["REMOTE_ADDR"] = "203.0.113.9"
        environ["REQUEST_METHOD"] = "PUT"
        environ["REQUEST_URI"] = "/rewritten"
        environ.pop("HTTP_USER_AGENT", None)
        return echo_environ(environ, start_response)

    running = serve(rewrites, access_log=str(log_path), access_log_format="json")
    client = running.client()
    for _ in range(2):
        response = client.request("GET", "/as-sent", headers={"User-Agent": "curl/8.5.0"})
        assert b"REQUEST_METHOD=PUT" in response.body  # the app saw its own rewrite
    running.stop()
    configure_access_log(None)
    records = [json.loads(line) for line in log_path.read_text().splitlines()]
    sent = [
        (record["method"], record["path"], record["remote_addr"], record["user_agent"])
        for record in records
    ]
    assert sent == [("GET", "/as-sent", "127.0.0.1", "curl/8.5.0")] * 2, records
