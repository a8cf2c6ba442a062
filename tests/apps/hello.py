"""Tiny apps the CLI tests import by name, the way users name theirs."""

from typing import Any

not_an_app = 42


def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    body = f"hello from {environ['PATH_INFO'] or '/'}".encode()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body]


def create_app(greeting: str = "factory") -> Any:
    def factory_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [greeting.encode()]

    return factory_app


def noisy(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    print("debug output that must not reach the response")
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"clean body " + environ["wsgi.input"].read()]
