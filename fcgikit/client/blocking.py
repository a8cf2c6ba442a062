"""The blocking FastCGI client: one request at a time, over a socket of its own.

Why it is shaped like this:

* The protocol is :class:`fcgikit.protocol.ClientConnection`; this module only adds the
  socket, so whatever the tests prove about the protocol holds here.
* It sends the request body and reads the response at the same time (a ``selectors`` loop), so
  an application that answers before reading a large upload (a 413, a redirect) cannot
  deadlock against a client still trying to write.
* Defaults mirror nginx's ``fastcgi_params``, so an application sees what it will see behind
  nginx. ``raw_params`` sends exactly the pairs given, duplicates included, to reproduce what
  other web servers do (nginx's root-location recipe sends SCRIPT_NAME twice).
* Text params are encoded as latin-1, which is how PEP 3333 servers decode them again; a
  value that is not latin-1 must be passed as bytes, so no encoding is guessed.
"""

from __future__ import annotations

import selectors
import socket
from collections.abc import Iterable, Iterator, Mapping
from typing import Final
from urllib.parse import quote, unquote_to_bytes

from fcgikit.addresses import Address, FdAddress, TcpAddress, UnixAddress, parse_address
from fcgikit.client.body import Body, body_chunks, content_length
from fcgikit.client.response import FastCGIResponse
from fcgikit.errors import ConfigError, RemoteProtocolError
from fcgikit.protocol import (
    ClientConnection,
    RequestEnded,
    Role,
    StderrData,
    StdoutData,
    UnknownTypeReply,
    ValuesResult,
)

__all__ = ["SEND_BATCH_SIZE", "FastCGIClient", "connect"]

#: records are gathered up to this size before a send (see FastCGIClient._run)
SEND_BATCH_SIZE: Final = 16 * 1024
_RECV_SIZE: Final = 256 * 1024
#: One request at a time per connection, so one id is enough (the spec lets ids be reused).
_REQUEST_ID: Final = 1
#: Characters left as they are when a path or query string is percent-encoded: the reserved
#: set and "%", so an already-encoded target passes through unchanged.
_URL_SAFE: Final = "/;:@&=+$,!~*'()%?#[]"

StrOrBytes = str | bytes


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
                method, path, query, header_pairs, content_length(body, header_pairs)
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
        for chunk in body_chunks(body):
            yield connection.send_stdin(_REQUEST_ID, chunk)
        yield connection.end_stdin(_REQUEST_ID)
        if role == Role.FILTER:
            for chunk in body_chunks(data):
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
