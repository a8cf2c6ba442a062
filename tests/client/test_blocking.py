"""fcgikit.client's FastCGIClient and connect() against the tiny responder (responder.py)."""

from __future__ import annotations

import io
import socket
import threading
from pathlib import Path

import pytest

from fcgikit.addresses import FdAddress, TcpAddress, UnixAddress
from fcgikit.client import BODY_CHUNK_SIZE, FastCGIClient, connect
from fcgikit.errors import ConfigError, RemoteProtocolError
from fcgikit.protocol import ProtocolStatus, Role, ServerConnection, StdinEnded

from .responder import Reply, StartResponder, TinyResponder, echoed, echoed_params, unix_listener

# --- connect -------------------------------------------------------------------------------


def test_connect_takes_strings_and_addresses(
    start_responder: StartResponder, socket_path: Path
) -> None:
    start_responder()
    for address in (f"unix:{socket_path}", str(socket_path), UnixAddress(str(socket_path))):
        with connect(address, timeout=5) as sock:
            assert sock.family == socket.AF_UNIX


def test_connect_over_tcp() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    responder = TinyResponder(listener)
    try:
        port = listener.getsockname()[1]
        with connect(f"127.0.0.1:{port}", timeout=5) as sock:
            assert sock.family == socket.AF_INET
        response = FastCGIClient(TcpAddress("127.0.0.1", port)).request(path="/tcp")
        assert echoed_params(response)["PATH_INFO"] == "/tcp"
    finally:
        responder.close()
    assert responder.errors == []


def test_connect_refuses_fd_addresses() -> None:
    with pytest.raises(ConfigError, match="fd://"):
        connect(FdAddress(0))


def test_connect_to_nothing_is_an_os_error(address: str) -> None:
    with pytest.raises(OSError):
        connect(address)


# --- requests ------------------------------------------------------------------------------


def test_get_sends_nginx_like_default_params(start_responder: StartResponder, address: str) -> None:
    start_responder()
    response = FastCGIClient(address).request(
        "get", "/caf%C3%A9/x", query="a=1&b=%20", headers={"X-Forwarded-For": "10.0.0.1"}
    )
    assert response.header("content-type") == "application/json"
    params = echoed_params(response)
    assert params == {
        "GATEWAY_INTERFACE": "CGI/1.1",
        "SERVER_SOFTWARE": "fcgikit-client",
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "",
        "PATH_INFO": "/caf\u00c3\u00a9/x",  # the UTF-8 bytes, read as latin-1 (PEP 3333)
        "REQUEST_URI": "/caf%C3%A9/x?a=1&b=%20",
        "QUERY_STRING": "a=1&b=%20",
        "CONTENT_TYPE": "",
        "CONTENT_LENGTH": "",
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "REMOTE_PORT": "0",
        "HTTP_X_FORWARDED_FOR": "10.0.0.1",
    }


def test_unencoded_paths_are_encoded_in_request_uri(
    start_responder: StartResponder, address: str
) -> None:
    start_responder()
    params = echoed_params(FastCGIClient(address).request(path="/a b/caf\u00e9"))
    assert params["REQUEST_URI"] == "/a%20b/caf%C3%A9"
    assert params["PATH_INFO"] == "/a b/caf\u00c3\u00a9"


def test_headers_become_cgi_params(start_responder: StartResponder, address: str) -> None:
    start_responder()
    headers = [
        ("Content-Type", "text/plain"),
        ("Accept", "a"),
        ("Accept", "b"),
        ("Cookie", "x=1"),
        ("Cookie", "y=2"),
    ]
    params = echoed_params(FastCGIClient(address).request("POST", headers=headers, body=b"hi"))
    assert params["CONTENT_TYPE"] == "text/plain"
    assert params["CONTENT_LENGTH"] == "2"
    assert params["HTTP_ACCEPT"] == "a, b"
    assert params["HTTP_COOKIE"] == "x=1; y=2"
    assert "HTTP_CONTENT_TYPE" not in params


def test_params_override_defaults(start_responder: StartResponder, address: str) -> None:
    start_responder()
    response = FastCGIClient(address).request(
        params={"SCRIPT_NAME": "/app", b"HTTPS": b"on", "SERVER_NAME": "\u00e9.example"}
    )
    params = echoed_params(response)
    assert (params["SCRIPT_NAME"], params["HTTPS"], params["SERVER_NAME"]) == (
        "/app",
        "on",
        "\u00e9.example",
    )


def test_non_latin1_text_params_must_be_bytes(address: str) -> None:
    with pytest.raises(ValueError, match="not latin-1"):
        FastCGIClient(address).request(params={"X": "\u20ac"})


def test_raw_params_are_sent_exactly(start_responder: StartResponder, address: str) -> None:
    start_responder()
    raw = [(b"SCRIPT_NAME", b"/a"), (b"SCRIPT_NAME", b"/b"), (b"\xff", b"\xfe")]
    document = echoed(FastCGIClient(address).request(raw_params=raw))
    assert document["params"] == {"SCRIPT_NAME": "/b", "\u00ff": "\u00fe"}
    assert document["duplicates"] == ["SCRIPT_NAME"]


def test_bytes_body_is_sent_in_chunks(start_responder: StartResponder, address: str) -> None:
    responder = start_responder()
    body = bytes(range(256)) * 1024  # 256 KiB
    document = echoed(FastCGIClient(address).request("PUT", body=body))
    assert document["stdin"] == body.decode("latin-1")
    assert max(responder.seen[0].stdin_records) <= BODY_CHUNK_SIZE


class CountingReader(io.BytesIO):
    """A file that remembers how much each read asked for."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.sizes: list[int] = []

    def read(self, size: int | None = -1, /) -> bytes:
        self.sizes.append(-1 if size is None else size)
        return super().read(size)


def test_file_body_is_read_as_it_is_sent(start_responder: StartResponder, address: str) -> None:
    start_responder()
    upload = CountingReader(b"x" * 300_000)
    document = echoed(FastCGIClient(address).request("POST", body=upload))
    assert document["stdin"] == "x" * 300_000
    assert document["params"]["CONTENT_LENGTH"] == "300000"  # type: ignore[index]
    assert upload.sizes and all(0 < size <= BODY_CHUNK_SIZE for size in upload.sizes)


def test_unseekable_body_without_length_is_sent_without_content_length(
    start_responder: StartResponder, address: str
) -> None:
    start_responder()

    class Pipe:
        def __init__(self) -> None:
            self._chunks = [b"abc", b"def"]

        def read(self, size: int = -1, /) -> bytes:
            return self._chunks.pop(0) if self._chunks else b""

    document = echoed(FastCGIClient(address).request("POST", body=Pipe()))
    assert document["stdin"] == "abcdef"
    assert document["params"]["CONTENT_LENGTH"] == ""  # type: ignore[index]


def test_status_headers_stderr_and_app_status(
    start_responder: StartResponder, address: str
) -> None:
    stdout = b"Status: 404 Not Here\r\nX-A: 1\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n\r\nnope"
    start_responder(lambda seen: Reply(stdout, stderr=b"warning\n", app_status=3))
    response = FastCGIClient(address).request()
    assert (response.status, response.reason) == (404, "Not Here")
    assert response.headers == [("X-A", "1"), ("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")]
    assert response.header("set-cookie") == "a=1"
    assert response.header("Status") is None
    assert response.header("missing") is None
    assert (response.body, response.stderr, response.app_status) == (b"nope", b"warning\n", 3)
    assert response.protocol_status is ProtocolStatus.REQUEST_COMPLETE


def test_refusal_is_reported(start_responder: StartResponder, address: str) -> None:
    start_responder(lambda seen: Reply(b"", protocol_status=ProtocolStatus.OVERLOADED))
    response = FastCGIClient(address).request()
    assert response.protocol_status is ProtocolStatus.OVERLOADED
    assert response.body == b""


def test_filter_role_sends_data(start_responder: StartResponder, address: str) -> None:
    start_responder()
    document = echoed(
        FastCGIClient(address).request("POST", body=b"form", role=Role.FILTER, data=b"file")
    )
    assert (document["role"], document["stdin"], document["data"]) == ("FILTER", "form", "file")


def test_authorizer_role_sends_no_stdin(start_responder: StartResponder, address: str) -> None:
    responder = start_responder()
    document = echoed(FastCGIClient(address).request(role=Role.AUTHORIZER, body=b"ignored"))
    assert document["role"] == "AUTHORIZER"
    assert responder.seen[0].stdin_records == []


def test_keep_conn_reuses_the_connection(start_responder: StartResponder, address: str) -> None:
    responder = start_responder()
    with FastCGIClient(address, keep_conn=True) as client:
        for n in range(3):
            document = echoed(client.request(path=f"/{n}", body=b"x" * n))
            assert document["keep_conn"] is True
        assert client.get_values([b"FCGI_MPXS_CONNS"]) == {b"FCGI_MPXS_CONNS": b"0"}
    assert responder.connections == 1


def test_without_keep_conn_each_request_connects(
    start_responder: StartResponder, address: str
) -> None:
    responder = start_responder()
    client = FastCGIClient(address)
    for _ in range(2):
        assert echoed(client.request())["keep_conn"] is False
    assert responder.connections == 2


def test_get_values(start_responder: StartResponder, address: str) -> None:
    start_responder()
    values = FastCGIClient(address).get_values([b"FCGI_MAX_CONNS", b"NOT_A_VALUE"])
    assert values == {b"FCGI_MAX_CONNS": b"100"}


def test_an_answer_before_the_body_is_read_does_not_deadlock(
    start_responder: StartResponder, address: str
) -> None:
    start_responder(lambda seen: Reply(b"Status: 413 Too Big\r\n\r\n"), answer_at="params")
    response = FastCGIClient(address, timeout=10).request("POST", body=b"x" * 8_000_000)
    assert response.status == 413


def test_an_early_answer_on_a_kept_connection_drops_the_connection(
    start_responder: StartResponder, address: str
) -> None:
    start_responder(lambda seen: Reply(b"Status: 413 Too Big\r\n\r\n"), answer_at="params")
    with FastCGIClient(address, keep_conn=True, timeout=10) as client:
        assert client.request("POST", body=b"x" * 4_000_000).status == 413
        assert client._sock is None  # half a record may have gone out: not reusable


class CountingSocket:
    """A client's socket that counts its sends."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.sends = 0

    def send(self, data: bytes | memoryview) -> int:
        self.sends += 1
        return self.sock.send(data)

    def __getattr__(self, name: str) -> object:
        return getattr(self.sock, name)


def test_a_small_request_goes_out_in_one_send(
    start_responder: StartResponder, address: str
) -> None:
    """As nginx sends a GET: BEGIN_REQUEST, PARAMS and the empty STDIN in one write. Sent
    apart, an app may answer before the last record is out (fcgikit runs a GET as soon as
    its params are in), and the kept connection could not be used again."""
    responder = start_responder(answer_at="params")
    with FastCGIClient(address, keep_conn=True, timeout=10) as client:
        counting = CountingSocket(client._socket())
        client._sock = counting  # type: ignore[assignment]
        for n in range(3):
            assert client.request(path=f"/{n}").status == 200
            assert counting.sends == n + 1
            assert client._sock is counting  # kept
    assert responder.connections == 1


def test_timeout(start_responder: StartResponder, address: str) -> None:
    start_responder(answer_at="never")
    with pytest.raises(TimeoutError, match="did not answer"):
        FastCGIClient(address, timeout=0.2).request()


def test_application_closing_mid_request_is_a_remote_error(socket_path: Path, address: str) -> None:
    listener = unix_listener(socket_path)

    def accept_and_hang_up() -> None:
        # Read the whole request first: closing with unread input would reset the
        # connection, and the client would see ECONNRESET instead of an early close.
        sock, _ = listener.accept()
        with sock:
            server = ServerConnection()
            while not any(isinstance(e, StdinEnded) for e in server.receive_data(sock.recv(65536))):
                pass

    thread = threading.Thread(target=accept_and_hang_up)
    thread.start()
    try:
        with pytest.raises(RemoteProtocolError, match="without ending request"):
            FastCGIClient(address, timeout=5).request()
    finally:
        thread.join(5)
        listener.close()
