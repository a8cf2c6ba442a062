"""A WSGI application that forwards each HTTP request to a FastCGI application.

``fcgikit serve --http`` runs it under werkzeug's development server in front of the real
FastCGI socket, so the app is reached through the same FastCGI path as behind nginx.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Final
from urllib.parse import quote

from fcgikit.addresses import Address, parse_address
from fcgikit.client.blocking import FastCGIClient
from fcgikit.client.body import Body, ReadableBody
from fcgikit.errors import ConfigError, RemoteProtocolError
from fcgikit.protocol import ProtocolStatus

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

__all__ = ["FastCGIGateway"]

#: Headers a WSGI application may not set (PEP 3333): a front end drops them.
_HOP_BY_HOP: Final = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
    }
)

#: CGI variables a WSGI environ carries that are passed on as they are.
_CGI_KEYS: Final = (
    "REQUEST_METHOD",
    "QUERY_STRING",
    "CONTENT_TYPE",
    "CONTENT_LENGTH",
    "SERVER_NAME",
    "SERVER_PORT",
    "SERVER_PROTOCOL",
    "REMOTE_ADDR",
    "REMOTE_PORT",
    "REMOTE_HOST",
    "REMOTE_USER",
    "AUTH_TYPE",
)


class _LimitedReader:
    """Reads at most ``limit`` bytes of ``wsgi.input``, which may not signal its own end."""

    def __init__(self, stream: ReadableBody, limit: int | None) -> None:
        self._stream = stream
        self._left = limit

    def read(self, size: int = -1) -> bytes:
        if self._left is None:
            return self._stream.read(size)
        if self._left <= 0:
            return b""
        size = self._left if size < 0 else min(size, self._left)
        chunk = self._stream.read(size)
        self._left -= len(chunk)
        return chunk


class FastCGIGateway:
    """A WSGI application that forwards each request to a FastCGI application.

    The front for ``fcgikit serve --http``: any WSGI server (werkzeug's development server)
    runs it, and the FastCGI application behind it sees what it would see behind nginx.

    Args:
        address: where the FastCGI application listens (``unix:PATH`` or ``HOST:PORT``).
        script_name_param: send SCRIPT_NAME and PATH_INFO as the front's environ has them.
            If false, send no SCRIPT_NAME and the whole path as PATH_INFO, like a web server
            that is not told where the application is mounted.
        timeout: seconds to wait for the application; past it the answer is 504.

    If the application cannot be reached the answer is 502, if it refuses the request
    (OVERLOADED and the like) 503, each with a one-line text reason. Its FCGI_STDERR goes to
    ``wsgi.errors``.
    """

    def __init__(
        self, address: str | Address, *, script_name_param: bool = True, timeout: float = 30.0
    ) -> None:
        self.address = parse_address(address) if isinstance(address, str) else address
        self.script_name_param = script_name_param
        self.timeout = timeout

    def params_for(self, environ: WSGIEnvironment) -> list[tuple[bytes, bytes]]:
        """The FastCGI params for a WSGI request: its CGI keys and HTTP_* headers, as bytes."""

        def raw(key: str) -> bytes:
            # PEP 3333: environ strings are the original bytes decoded as latin-1.
            return str(environ.get(key, "")).encode("latin-1")

        script_name, path_info = raw("SCRIPT_NAME"), raw("PATH_INFO")
        if not self.script_name_param:
            script_name, path_info = b"", script_name + path_info
        request_uri = quote(script_name + path_info, safe="/;:@&=+$,!~*'()")
        query = raw("QUERY_STRING")
        params: list[tuple[bytes, bytes]] = [
            (b"GATEWAY_INTERFACE", b"CGI/1.1"),
            (b"SERVER_SOFTWARE", b"fcgikit-gateway"),
            (b"PATH_INFO", path_info),
            (b"REQUEST_URI", request_uri.encode("ascii") + (b"?" + query if query else b"")),
        ]
        if self.script_name_param:
            params.append((b"SCRIPT_NAME", script_name))
        params += [(key.encode(), raw(key)) for key in _CGI_KEYS if key in environ]
        if environ.get("wsgi.url_scheme") == "https":
            params.append((b"HTTPS", b"on"))
        params += [(key.encode("latin-1"), raw(key)) for key in environ if key.startswith("HTTP_")]
        return params

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        content_length = str(environ.get("CONTENT_LENGTH") or "")
        if content_length.isdigit():
            body: Body = _LimitedReader(environ["wsgi.input"], int(content_length))
        elif environ.get("wsgi.input_terminated"):
            body = _LimitedReader(environ["wsgi.input"], None)
        else:
            body = b""
        client = FastCGIClient(self.address, timeout=self.timeout)
        try:
            response = client.request(raw_params=self.params_for(environ), body=body)
        except TimeoutError as error:
            return _plain(start_response, "504 Gateway Timeout", f"{error}")
        except (OSError, ConfigError) as error:
            return _plain(
                start_response,
                "502 Bad Gateway",
                f"cannot reach the FastCGI application at {self.address}: {error}",
            )
        except RemoteProtocolError as error:
            return _plain(
                start_response,
                "502 Bad Gateway",
                f"the FastCGI application at {self.address} broke the protocol: {error}",
            )
        finally:
            client.close()
        if response.stderr:
            environ["wsgi.errors"].write(response.stderr.decode("utf-8", "replace"))
        if response.protocol_status is not ProtocolStatus.REQUEST_COMPLETE:
            return _plain(
                start_response,
                "503 Service Unavailable",
                f"the FastCGI application at {self.address} refused the request "
                f"({response.protocol_status.name})",
            )
        headers = [(n, v) for n, v in response.headers if n.lower() not in _HOP_BY_HOP]
        start_response(f"{response.status} {response.reason}".rstrip(), headers)
        return [response.body]


def _plain(start_response: StartResponse, status: str, reason: str) -> list[bytes]:
    one_line = " ".join(reason.split())
    body = f"{status}: {one_line}\n".encode()
    start_response(
        status, [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))]
    )
    return [body]
