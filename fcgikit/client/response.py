"""The application's answer: FCGI_STDOUT's CGI header block parsed, and the rest.

A FastCGI responder writes a CGI response (RFC 3875 6) to FCGI_STDOUT: header lines, a blank
line, the body. :meth:`FastCGIResponse.from_output` parses it the way a web server does, and
keeps the raw bytes too, for tests of the header block itself.
"""

from __future__ import annotations

import http
from dataclasses import dataclass, field

from fcgikit.errors import RemoteProtocolError
from fcgikit.protocol import ProtocolStatus

__all__ = ["FastCGIResponse"]


@dataclass
class FastCGIResponse:
    """What the application answered, with its CGI header block parsed.

    ``status`` and ``reason`` come from the ``Status:`` header; without one, the status is
    302 if there is a ``Location`` header (a CGI redirect, RFC 3875 6.2.3) and 200 otherwise.
    ``headers`` holds the other headers in order; ``body`` is the rest of FCGI_STDOUT.
    """

    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes
    stderr: bytes = b""
    app_status: int = 0
    protocol_status: ProtocolStatus = ProtocolStatus.REQUEST_COMPLETE
    #: FCGI_STDOUT exactly as it came, headers included (for tests of the header block).
    stdout: bytes = field(default=b"", repr=False)

    def header(self, name: str) -> str | None:
        """The first header called ``name`` (case-insensitive), or None."""
        wanted = name.lower()
        for header_name, value in self.headers:
            if header_name.lower() == wanted:
                return value
        return None

    @classmethod
    def from_output(
        cls,
        stdout: bytes,
        stderr: bytes = b"",
        app_status: int = 0,
        protocol_status: ProtocolStatus = ProtocolStatus.REQUEST_COMPLETE,
    ) -> FastCGIResponse:
        """Parse the CGI response in ``stdout``: header lines, a blank line, the body.

        Raises:
            RemoteProtocolError: a header line has no colon, or the Status is not a number.
        """
        head, body = _split_header_block(stdout)
        status: int | None = None
        reason = ""
        headers: list[tuple[str, str]] = []
        for line in head.splitlines():
            if not line.strip():
                continue
            name, colon, value = line.decode("latin-1").partition(":")
            if not colon:
                raise RemoteProtocolError(f"CGI header line without a colon: {line!r}")
            name, value = name.strip(), value.strip()
            if name.lower() == "status":
                code, _, reason = value.partition(" ")
                if not (code.isdigit() and len(code) == 3):
                    raise RemoteProtocolError(f"CGI Status header is not a status: {value!r}")
                status = int(code)
            else:
                headers.append((name, value))
        if status is None:
            has_location = any(name.lower() == "location" for name, _ in headers)
            status = 302 if has_location else 200
        if not reason:
            reason = _reason_phrase(status)
        return cls(
            status, reason, headers, body, stderr, app_status, protocol_status, stdout=stdout
        )


def _split_header_block(stdout: bytes) -> tuple[bytes, bytes]:
    """Split at the first blank line (CRLF or bare LF); without one, it is all headers."""
    ends = [
        (index, len(separator))
        for separator in (b"\r\n\r\n", b"\n\n")
        if (index := stdout.find(separator)) != -1
    ]
    if not ends:
        return stdout, b""
    index, length = min(ends)
    return stdout[:index], stdout[index + length :]


def _reason_phrase(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return ""
