"""Tiny apps the CLI tests import by name, the way users name theirs."""

import sys
import threading
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


def signals_its_own_thread(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """SIGTERM, raised on the thread running the request: as when the kernel picks a thread
    other than the main one, the only one where Python runs handlers."""
    import signal  # here: loaded_modules reports whether fcgikit loaded it

    signal.pthread_kill(threading.get_ident(), signal.SIGTERM)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [f"signalled from {threading.current_thread().name}".encode()]


def loaded_modules(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """The names of the modules this process has imported, one a line; each followed by a tab
    and what imported it, when the test's sitecustomize noted that (tests/test_cli_startup.py)."""
    start_response("200 OK", [("Content-Type", "text/plain")])
    site = sys.modules.get("sitecustomize")
    importers: dict[str, str] = getattr(site, "importers", {})
    lines = (f"{name}\t{importers.get(name, '?')}" for name in sorted(sys.modules))
    return ["\n".join(lines).encode()]


def modules_at_bind(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """The modules the process had imported when it bound its first socket, one a line, as
    the test's sitecustomize saw them (tests/test_cli_startup.py)."""
    start_response("200 OK", [("Content-Type", "text/plain")])
    return ["\n".join(sys.modules["sitecustomize"].modules_at_bind).encode()]
