"""FastCGIResponse: the CGI header block an application writes to FCGI_STDOUT, parsed."""

from __future__ import annotations

import pytest

from fcgikit.client import FastCGIResponse
from fcgikit.errors import RemoteProtocolError


@pytest.mark.parametrize(
    ("stdout", "status", "reason", "body"),
    [
        pytest.param(b"Content-Type: text/plain\r\n\r\nhi", 200, "OK", b"hi", id="default-200"),
        pytest.param(b"Location: /next\r\n\r\n", 302, "Found", b"", id="cgi-redirect"),
        pytest.param(b"Status: 201\n\nmade", 201, "Created", b"made", id="bare-lf"),
        pytest.param(b"Status: 599 Odd\r\n\r\n\r\nx", 599, "Odd", b"\r\nx", id="body-keeps-crlf"),
        pytest.param(b"", 200, "OK", b"", id="empty"),
        pytest.param(b"X-Only: headers\r\n", 200, "OK", b"", id="no-blank-line"),
    ],
)
def test_cgi_header_block_parsing(stdout: bytes, status: int, reason: str, body: bytes) -> None:
    response = FastCGIResponse.from_output(stdout)
    assert (response.status, response.reason, response.body) == (status, reason, body)


@pytest.mark.parametrize("stdout", [b"no colon here\r\n\r\n", b"Status: OK\r\n\r\n"])
def test_bad_cgi_headers_are_remote_errors(stdout: bytes) -> None:
    with pytest.raises(RemoteProtocolError, match="CGI"):
        FastCGIResponse.from_output(stdout)
