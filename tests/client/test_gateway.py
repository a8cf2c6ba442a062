"""FastCGIGateway: a WSGI app (run here by werkzeug's test client) in front of the responder."""

from __future__ import annotations

import io
import json

import pytest
from werkzeug.test import Client

from fcgikit.client import FastCGIGateway
from fcgikit.protocol import ProtocolStatus

from .responder import Reply, StartResponder


def test_gateway_forwards_a_get(start_responder: StartResponder, address: str) -> None:
    start_responder()
    response = Client(FastCGIGateway(address)).get(
        "/hello/w%C3%B6rld", query_string="x=1&y=%2F", headers={"X-Test": "yes"}
    )
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    params = json.loads(response.get_data())["params"]
    assert params["REQUEST_METHOD"] == "GET"
    assert params["SCRIPT_NAME"] == ""
    assert params["PATH_INFO"] == "/hello/w\u00c3\u00b6rld"
    assert params["REQUEST_URI"] == "/hello/w%C3%B6rld?x=1&y=%2F"
    assert params["QUERY_STRING"] == "x=1&y=%2F"
    assert params["HTTP_X_TEST"] == "yes"
    assert params["HTTP_HOST"] == "localhost"
    assert params["SERVER_NAME"] == "localhost"
    assert "HTTPS" not in params


def test_gateway_forwards_a_post_body(start_responder: StartResponder, address: str) -> None:
    start_responder()
    response = Client(FastCGIGateway(address)).post(
        "/form",
        base_url="https://localhost/",
        data=b"a=1&b=2",
        content_type="application/x-www-form-urlencoded",
    )
    document = json.loads(response.get_data())
    assert document["stdin"] == "a=1&b=2"
    assert document["params"]["CONTENT_LENGTH"] == "7"
    assert document["params"]["CONTENT_TYPE"] == "application/x-www-form-urlencoded"
    assert document["params"]["HTTPS"] == "on"


@pytest.mark.parametrize(
    ("script_name_param", "expected"),
    [
        pytest.param(True, {"SCRIPT_NAME": "/app", "PATH_INFO": "/page"}, id="as-given"),
        pytest.param(False, {"PATH_INFO": "/app/page"}, id="folded"),
    ],
)
def test_gateway_script_name(
    start_responder: StartResponder,
    address: str,
    script_name_param: bool,
    expected: dict[str, str],
) -> None:
    start_responder()
    gateway = FastCGIGateway(address, script_name_param=script_name_param)
    response = Client(gateway).get("/page", base_url="http://localhost/app/")
    params = json.loads(response.get_data())["params"]
    assert {key: params[key] for key in params if key in ("SCRIPT_NAME", "PATH_INFO")} == expected
    assert params["REQUEST_URI"] == "/app/page"


def test_gateway_passes_status_and_headers_and_stderr(
    start_responder: StartResponder, address: str
) -> None:
    stdout = b"Status: 418 I'm a teapot\r\nX-Tea: yes\r\nConnection: close\r\n\r\nshort and stout"
    start_responder(lambda seen: Reply(stdout, stderr=b"steam\n"))
    errors = io.StringIO()
    response = Client(FastCGIGateway(address)).get("/", errors_stream=errors)
    assert response.status == "418 I'm a teapot"
    assert response.headers["X-Tea"] == "yes"
    assert "Connection" not in response.headers  # hop-by-hop: not the app's to set
    assert response.get_data() == b"short and stout"
    assert errors.getvalue() == "steam\n"


def test_gateway_answers_502_when_the_backend_is_unreachable(address: str) -> None:
    response = Client(FastCGIGateway(address)).get("/")
    assert response.status_code == 502
    text = response.get_data(as_text=True)
    assert text.count("\n") == 1 and text.endswith("\n")
    assert "cannot reach the FastCGI application" in text


def test_gateway_answers_503_when_the_backend_refuses(
    start_responder: StartResponder, address: str
) -> None:
    start_responder(lambda seen: Reply(b"", protocol_status=ProtocolStatus.OVERLOADED))
    response = Client(FastCGIGateway(address)).get("/")
    assert response.status_code == 503
    assert "OVERLOADED" in response.get_data(as_text=True)


def test_gateway_answers_504_on_timeout(start_responder: StartResponder, address: str) -> None:
    start_responder(answer_at="never")
    response = Client(FastCGIGateway(address, timeout=0.2)).get("/")
    assert response.status_code == 504
