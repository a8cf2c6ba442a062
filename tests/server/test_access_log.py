"""``--access-log-format``: the access log as Apache's and nginx's ``combined`` log, and as one
JSON object a line, written by a real server for the requests it served. (The default format:
tests/server/test_server.py.)"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from fcgikit.server.logs import configure_access_log
from tests.server.test_server import echo_environ


def served_lines(serve: Any, tmp_path: Path, access_format: str) -> list[str]:
    """The access log's lines after three requests: a plain GET, a POST with a client's
    hostile headers, and a GET whose path is not UTF-8."""
    log_path = tmp_path / "access.log"
    running = serve(echo_environ, access_log=str(log_path), access_log_format=access_format)
    client = running.client()
    client.request(
        "GET",
        "/a",
        query="x=1",
        headers={"Referer": "https://example.com/", "User-Agent": "curl/8.5.0"},
        params={"REMOTE_USER": "ann"},
    )
    client.request(
        "POST",
        "/post",
        body=b"12345",
        headers={"User-Agent": 'evil" 200 1 "-" "forged\nnext line'},
    )
    client.request("GET", "/caf%E9")  # latin-1 é, percent-encoded: PATH_INFO is not UTF-8
    running.stop()  # each line is written as its request ends; stop waits for them
    configure_access_log(None)  # closes the file
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
    first, post, cafe = (match.groupdict() for match in fields if match is not None)
    assert first["remote"] == "127.0.0.1" and first["user"] == "ann"
    assert first["request"] == "GET /a?x=1 HTTP/1.1"
    assert (first["status"], first["referer"], first["agent"]) == (
        "200",
        "https://example.com/",
        "curl/8.5.0",
    )
    assert int(first["bytes"]) > 0
    # the client's quote and newline are escaped as nginx does: one line, its own fields
    assert (post["user"], post["referer"]) == ("-", "-")
    assert post["agent"] == r"evil\x22 200 1 \x22-\x22 \x22forged\x0Anext line"
    assert cafe["request"] == "GET /caf%E9 HTTP/1.1"


def test_json_is_one_object_a_line_with_the_documented_keys(serve: Any, tmp_path: Path) -> None:
    lines = served_lines(serve, tmp_path, "json")
    assert len(lines) == 3, lines
    records = [json.loads(line) for line in lines]
    keys = {"time", "request_id", "method", "path", "status", "bytes", "duration", "remote_addr"}
    assert all(keys <= record.keys() for record in records), records
    first, post, cafe = records
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", first["time"])
    assert (first["method"], first["path"], first["query"]) == ("GET", "/a", "x=1")
    assert (first["status"], first["remote_addr"]) == (200, "127.0.0.1")
    assert first["bytes"] > 0 and 0 <= first["duration"] < 60
    assert (first["referer"], first["user_agent"]) == ("https://example.com/", "curl/8.5.0")
    assert (post["method"], post["path"], post["query"]) == ("POST", "/post", "")
    assert post["user_agent"] == 'evil" 200 1 "-" "forged\nnext line'  # as sent, in JSON
    assert cafe["path"] == "/caf%E9"
    # the FastCGI request id: the "#N" of fcgikit's own lines about the request
    assert all(isinstance(record["request_id"], int) for record in records)
