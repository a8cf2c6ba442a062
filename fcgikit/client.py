"""A blocking FastCGI client, and a WSGI app that forwards HTTP requests to a FastCGI backend.

What ``cgi-fcgi`` is to C programs, :class:`FastCGIClient` is to Python: it connects to a
FastCGI application, sends one request with the params a web server would send, and returns
the parsed response. fcgikit's tests use it to talk to a real server without nginx, and
``fcgikit request`` is built on it. :class:`FastCGIGateway` wraps it as a WSGI application,
which ``fcgikit serve --http`` puts in front of the server for development.

>>> client = FastCGIClient("unix:/run/app.sock")               # doctest: +SKIP
>>> response = client.request("POST", "/form", body=b"a=1")    # doctest: +SKIP
>>> response.status, response.header("Content-Type")            # doctest: +SKIP
(200, 'text/html; charset=utf-8')

Why it is shaped like this:

* The protocol is :class:`fcgikit.protocol.ClientConnection`; this module only adds the
  socket, so whatever the tests prove about the protocol holds here.
* It sends the request body and reads the response at the same time (a ``selectors`` loop), so
  an application that answers before reading a large upload (a 413, a redirect) cannot
  deadlock against a client still trying to write. A file-like body is read 64 KiB at a time
  as it is sent, so a large upload never sits in memory.
* Defaults mirror nginx's ``fastcgi_params``, so an application sees what it will see behind
  nginx. ``raw_params`` sends exactly the pairs given, duplicates included, to reproduce what
  other web servers do (nginx's root-location recipe sends SCRIPT_NAME twice).
* Text params are encoded as latin-1, which is how PEP 3333 servers decode them again; a
  value that is not latin-1 must be passed as bytes, so no encoding is guessed.
"""

from __future__ import annotations

import http
import selectors
import socket
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, BinaryIO, Final, Protocol
from urllib.parse import quote, unquote_to_bytes

from fcgikit.addresses import Address, FdAddress, TcpAddress, UnixAddress, parse_address
from fcgikit.errors import ConfigError, RemoteProtocolError
from fcgikit.protocol import (
    ClientConnection,
    ProtocolStatus,
    RequestEnded,
    Role,
    StderrData,
    StdoutData,
    UnknownTypeReply,
    ValuesResult,
)

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

__all__ = ["FastCGIClient", "FastCGIGateway", "FastCGIResponse", "connect"]

#: How much of a request body is read and sent at a time.
BODY_CHUNK_SIZE: Final = 64 * 1024
#: records are gathered up to this size before a send (see FastCGIClient._run)
SEND_BATCH_SIZE: Final = 16 * 1024
_RECV_SIZE: Final = 256 * 1024
#: One request at a time per connection, so one id is enough (the spec lets ids be reused).
_REQUEST_ID: Final = 1
#: Characters left as they are when a path or query string is percent-encoded: the reserved
#: set and "%", so an already-encoded target passes through unchanged.
_URL_SAFE: Final = "/;:@&=+$,!~*'()%?#[]"
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

StrOrBytes = str | bytes


class ReadableBody(Protocol):
    """Anything a request body can be read from: a binary file, ``wsgi.input``, a pipe."""

    def read(self, size: int = ..., /) -> bytes: ...


#: A request body: bytes, or a binary file-like object read as it is sent.
Body = bytes | BinaryIO | ReadableBody


def connect(address: str | Address, *, timeout: float | None = None) -> socket.socket:
    """Open a stream socket to a FastCGI application at ``unix:PATH`` or ``HOST:PORT``.

    Raises:
        ConfigError: the address cannot be read, or is an ``fd://`` one (those are sockets a
            server inherits, nothing a client can connect to).
        OSError: the connection failed (refused, no such socket file, timeout).
    """
    if isinstance(address, str):
        address = parse_address(address)
    if isinstance(address, UnixAddress):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(timeout)
            sock.connect(address.path)
        except BaseException:
            sock.close()
            raise
        return sock
    if isinstance(address, TcpAddress):
        return socket.create_connection((address.host, address.port), timeout=timeout)
    assert isinstance(address, FdAddress)
    raise ConfigError(
        f"cannot connect to {address}: fd:// names a socket a server inherits; "
        "give the unix:PATH or HOST:PORT the application listens on"
    )


def _to_bytes(text: StrOrBytes, what: str) -> bytes:
    if isinstance(text, bytes):
        return text
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        raise ValueError(
            f"{what} {text!r} is not latin-1, which is how FastCGI params are read back "
            "(PEP 3333); pass bytes (for example text.encode()) to send other bytes"
        ) from None


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


class _Exchange:
    """What came back for one request."""

    def __init__(self) -> None:
        self.stdout = bytearray()
        self.stderr = bytearray()
        self.ended: RequestEnded | None = None


class FastCGIClient:
    """A blocking FastCGI client for one application address.

    Args:
        address: ``unix:PATH``, ``HOST:PORT``, ``[IPv6]:PORT``, or an Address.
        keep_conn: ask the application to keep the connection open (FCGI_KEEP_CONN) and reuse
            it for the next request. Without it, each request opens a new connection.
        timeout: seconds to wait for the application to accept, read or answer anything.

    Not thread-safe: use one client per thread.
    """

    def __init__(
        self, address: str | Address, *, keep_conn: bool = False, timeout: float = 30.0
    ) -> None:
        self.address = parse_address(address) if isinstance(address, str) else address
        self.keep_conn = keep_conn
        self.timeout = timeout
        self._sock: socket.socket | None = None
        self._connection = ClientConnection()

    def __enter__(self) -> FastCGIClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the kept connection, if there is one."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def _socket(self) -> socket.socket:
        if self._sock is None:
            self._sock = connect(self.address, timeout=self.timeout)
            self._connection = ClientConnection()
        return self._sock

    def default_params(
        self,
        method: str,
        path: str,
        query: str,
        headers: Iterable[tuple[str, str]],
        content_length: int | None,
    ) -> dict[bytes, bytes]:
        """The params nginx's ``fastcgi_params`` would send for this request."""
        target = quote(path, safe=_URL_SAFE)
        query = quote(query, safe=_URL_SAFE)
        params: dict[bytes, bytes] = {
            b"GATEWAY_INTERFACE": b"CGI/1.1",
            b"SERVER_SOFTWARE": b"fcgikit-client",
            b"REQUEST_METHOD": _to_bytes(method.upper(), "method"),
            b"SCRIPT_NAME": b"",
            b"PATH_INFO": unquote_to_bytes(target),
            b"REQUEST_URI": _to_bytes(f"{target}?{query}" if query else target, "path"),
            b"QUERY_STRING": _to_bytes(query, "query"),
            b"CONTENT_TYPE": b"",
            b"CONTENT_LENGTH": b"" if content_length is None else str(content_length).encode(),
            b"SERVER_NAME": b"localhost",
            b"SERVER_PORT": b"80",
            b"SERVER_PROTOCOL": b"HTTP/1.1",
            b"REMOTE_ADDR": b"127.0.0.1",
            b"REMOTE_PORT": b"0",
        }
        for name, value in _header_params(headers).items():
            params[name] = value
        return params

    def request(
        self,
        method: str = "GET",
        path: str = "/",
        *,
        query: str = "",
        headers: Mapping[str, str] | Iterable[tuple[str, str]] = (),
        body: Body = b"",
        params: Mapping[StrOrBytes, StrOrBytes] | None = None,
        raw_params: Iterable[tuple[bytes, bytes]] | None = None,
        role: Role = Role.RESPONDER,
        data: bytes = b"",
    ) -> FastCGIResponse:
        """Send one request and wait for the whole response.

        Args:
            method, path, query: the request line; ``path`` and ``query`` may be already
                percent-encoded or not. PATH_INFO is the decoded path, REQUEST_URI the
                encoded one, as nginx sends them.
            headers: HTTP request headers, sent as HTTP_* params (Content-Type and
                Content-Length as CONTENT_TYPE and CONTENT_LENGTH).
            body: the request body (FCGI_STDIN), bytes or a binary file read as it is sent.
                CONTENT_LENGTH is its length (a file's is taken from a Content-Length header,
                or from seeking; a stream with neither is sent without one).
            params: extra params, overriding the defaults.
            raw_params: send exactly these pairs instead, duplicates kept, no defaults.
            role: RESPONDER, AUTHORIZER (sent no FCGI_STDIN, like Apache) or FILTER.
            data: the Filter's file (FCGI_DATA).

        Raises:
            OSError: the application cannot be reached, or the connection broke.
            TimeoutError: nothing happened for ``timeout`` seconds.
            RemoteProtocolError: the application's answer is not valid FastCGI or CGI.
        """
        header_pairs = list(headers.items() if isinstance(headers, Mapping) else headers)
        if raw_params is not None:
            pairs: list[tuple[bytes, bytes]] = list(raw_params)
        else:
            defaults = self.default_params(
                method, path, query, header_pairs, _content_length(body, header_pairs)
            )
            for name, value in (params or {}).items():
                defaults[_to_bytes(name, "param name")] = _to_bytes(value, "param value")
            pairs = list(defaults.items())
        try:
            exchange = self._run(pairs, role, body, data)
        except BaseException:
            self.close()  # the connection is in an unknown state
            raise
        assert exchange.ended is not None
        return FastCGIResponse.from_output(
            bytes(exchange.stdout),
            bytes(exchange.stderr),
            exchange.ended.app_status,
            exchange.ended.protocol_status,
        )

    def _records(
        self, pairs: list[tuple[bytes, bytes]], role: Role, body: Body, data: bytes
    ) -> Iterator[bytes]:
        """The request's records, built as they are sent so a file body is read lazily."""
        connection = self._connection
        yield connection.start_request(_REQUEST_ID, pairs, role=role, keep_conn=self.keep_conn)
        if role == Role.AUTHORIZER:
            return
        for chunk in _body_chunks(body):
            yield connection.send_stdin(_REQUEST_ID, chunk)
        yield connection.end_stdin(_REQUEST_ID)
        if role == Role.FILTER:
            for chunk in _body_chunks(data):
                yield connection.send_data(_REQUEST_ID, chunk)
            yield connection.end_data(_REQUEST_ID)

    def _run(
        self, pairs: list[tuple[bytes, bytes]], role: Role, body: Body, data: bytes
    ) -> _Exchange:
        sock = self._socket()
        connection = self._connection
        exchange = _Exchange()
        outgoing = self._records(pairs, role, body, data)
        pending = memoryview(b"")
        writing = True
        with selectors.DefaultSelector() as selector:
            selector.register(sock, selectors.EVENT_READ)
            while exchange.ended is None:
                if writing and not pending:
                    # Small records go out together, as a web server sends them (nginx: a
                    # GET's BEGIN_REQUEST, PARAMS and empty STDIN in one write): one send
                    # each would let an app answer before the request's last record is
                    # out, and a connection in that state cannot be kept.
                    batch = bytearray()
                    while len(batch) < SEND_BATCH_SIZE:
                        chunk = next(outgoing, None)
                        if chunk is None:
                            writing = False
                            break
                        batch += chunk
                    pending = memoryview(bytes(batch))
                    continue
                wanted = selectors.EVENT_READ | (selectors.EVENT_WRITE if pending else 0)
                selector.modify(sock, wanted)
                ready = selector.select(self.timeout)
                if not ready:
                    raise TimeoutError(
                        f"the FastCGI application at {self.address} did not answer "
                        f"within {self.timeout} s"
                    )
                mask = ready[0][1]
                if mask & selectors.EVENT_READ:
                    received = sock.recv(_RECV_SIZE)
                    if not received:
                        connection.receive_eof()  # raises: our request has not ended
                        raise RemoteProtocolError("the application closed the connection")
                    _collect(connection.receive_data(received), exchange)
                elif pending:
                    try:
                        sent = sock.send(pending)
                    except (BrokenPipeError, ConnectionResetError):
                        # The app stopped reading; its answer may still be waiting to be read.
                        writing, pending = False, memoryview(b"")
                    else:
                        pending = pending[sent:]
        # The app may answer before it has read everything; if a record was left half
        # written, or the app does not keep the connection, it cannot be reused.
        if not self.keep_conn or writing or pending:
            self.close()
        return exchange

    def get_values(self, names: Iterable[bytes]) -> dict[bytes, bytes]:
        """Ask the application for FCGI_MAX_CONNS, FCGI_MAX_REQS, FCGI_MPXS_CONNS or others.

        Names the application does not know are missing from the answer.
        """
        try:
            sock = self._socket()
            sock.sendall(self._connection.get_values(names))
            while True:
                received = sock.recv(_RECV_SIZE)
                if not received:
                    raise RemoteProtocolError(
                        "the application closed the connection without answering FCGI_GET_VALUES"
                    )
                for event in self._connection.receive_data(received):
                    if isinstance(event, ValuesResult):
                        return event.values
                    if isinstance(event, UnknownTypeReply):
                        raise RemoteProtocolError(
                            "the application does not understand FCGI_GET_VALUES"
                        )
        finally:
            if not self.keep_conn:
                self.close()


def _collect(events: Iterable[object], exchange: _Exchange) -> None:
    for event in events:
        if isinstance(event, StdoutData):
            exchange.stdout += event.data
        elif isinstance(event, StderrData):
            exchange.stderr += event.data
        elif isinstance(event, RequestEnded) and event.request_id == _REQUEST_ID:
            exchange.ended = event


def _header_params(headers: Iterable[tuple[str, str]]) -> dict[bytes, bytes]:
    """HTTP headers as CGI params; repeated headers are joined like a proxy joins them."""
    params: dict[bytes, bytes] = {}
    for name, value in headers:
        key = name.strip().upper().replace("-", "_")
        if key not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            key = "HTTP_" + key
        param = _to_bytes(key, "header name")
        encoded = _to_bytes(value, "header value")
        if param in params and key not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            separator = b"; " if key == "HTTP_COOKIE" else b", "
            params[param] += separator + encoded
        else:
            params[param] = encoded
    return params


def _content_length(body: Body, headers: list[tuple[str, str]]) -> int | None:
    """The body's length: of bytes; of a file, from a Content-Length header or by seeking."""
    if isinstance(body, bytes | bytearray | memoryview):
        return len(body) if body else None
    for name, value in headers:
        if name.lower() == "content-length":
            return int(value)
    tell, seek = getattr(body, "tell", None), getattr(body, "seek", None)
    if tell is None or seek is None:
        return None
    try:
        position = tell()
        end = seek(0, 2)
        seek(position)
    except (OSError, ValueError):  # a pipe or socket: not seekable
        return None
    return int(end) - int(position)


def _body_chunks(body: Body) -> Iterator[bytes]:
    if isinstance(body, bytes | bytearray | memoryview):
        view = memoryview(body)
        for start in range(0, len(view), BODY_CHUNK_SIZE):
            yield bytes(view[start : start + BODY_CHUNK_SIZE])
        return
    while chunk := body.read(BODY_CHUNK_SIZE):
        yield chunk


# --- the WSGI gateway ----------------------------------------------------------------------

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
