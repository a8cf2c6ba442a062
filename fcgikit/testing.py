"""Test a WSGI app through fcgikit's real FastCGI path, as a given web server would call it.

:func:`through_fastcgi` wraps an app in a WSGI app that sends every request over a unix
socket to fcgikit's server running the app in-process, with the params that web server
would send (from :mod:`fcgikit.quirks`). So what a test sees is what the app sees behind
that server: its SCRIPT_NAME and PATH_INFO quirks, duplicate params, missing
CONTENT_LENGTH, dropped headers - without installing the server::

    from webtest import TestApp
    from fcgikit.testing import through_fastcgi

    def test_urls_behind_htaccess_rewrite():
        with through_fastcgi(app, server="apache-htaccess") as wrapped:
            page = TestApp(wrapped).get("/news/")
            assert page.request.url ...     # the app saw SCRIPT_NAME /yourapplication.fcgi

It is also a pytest plugin (``-p fcgikit.testing``, or automatic once fcgikit is installed
with its ``pytest11`` entry point) with two fixtures that clean up after the test:

``fastcgi_server(app, **settings)``
    fcgikit's :class:`~fcgikit.server.Server` for ``app`` on a temp unix socket, in a thread;
    returns a :class:`RunningServer` (``.address``, ``.client()``).
``fastcgi_app(app, server="lighttpd", mount="/")``
    :func:`through_fastcgi`, closed at the end of the test.
"""

from __future__ import annotations

import http
import os
import shutil
import tempfile
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import quote

from fcgikit.addresses import UnixAddress
from fcgikit.client import FastCGIClient, FastCGIGateway
from fcgikit.quirks import SERVERS, NotForwarded, fastcgi_params, normalize_mount
from fcgikit.server import Server, ServerSettings

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

__all__ = ["SERVERS", "RunningServer", "ThroughFastCGI", "through_fastcgi"]

#: How long starting or stopping the in-process server may take.
STARTUP_TIMEOUT: Final = 10.0
_PARAMS_KEY: Final = "fcgikit.testing.params"
_URL_SAFE: Final = "/;:@&=+$,!~*'()%"


def _stop(server: Server, thread: threading.Thread, directory: str) -> None:
    server.stop("test over")
    thread.join(STARTUP_TIMEOUT)
    shutil.rmtree(directory, ignore_errors=True)


class RunningServer:
    """fcgikit's server for one app, listening on a unix socket in its own temp directory.

    Args:
        app: the WSGI app.
        settings: server settings (``binds`` and ``handle_signals`` are set here); the default
            is 4 threads with ``debug=True``, so a 500 page carries the traceback.

    Use it as a context manager or call :meth:`close`; it is also closed when collected.
    """

    def __init__(self, app: WSGIApplication, settings: ServerSettings | None = None) -> None:
        self._dir = tempfile.mkdtemp(prefix="fcgikit-test-")
        self.path = os.path.join(self._dir, "app.sock")
        base = settings or ServerSettings(threads=4, debug=True)
        settings = replace(base, binds=(UnixAddress(self.path),), handle_signals=False)
        try:
            self.server = Server(app, settings)
        except BaseException:
            shutil.rmtree(self._dir, ignore_errors=True)
            raise
        self.thread = threading.Thread(
            target=self.server.serve, name="fcgikit-testing-server", daemon=True
        )
        self.thread.start()
        self._finalizer = weakref.finalize(self, _stop, self.server, self.thread, self._dir)
        if not self.server.ready.wait(STARTUP_TIMEOUT):
            self.close()
            raise RuntimeError(f"fcgikit's server did not start in {STARTUP_TIMEOUT} s")

    @property
    def address(self) -> str:
        """``unix:PATH``, as :class:`~fcgikit.client.FastCGIClient` and ``fcgikit request``
        take it."""
        return f"unix:{self.path}"

    def client(self, **kwargs: Any) -> FastCGIClient:
        """A :class:`~fcgikit.client.FastCGIClient` for this server."""
        return FastCGIClient(self.address, **kwargs)

    def close(self) -> None:
        """Stop the server and remove its socket directory (idempotent)."""
        self._finalizer()

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _header_name(key: str) -> str:
    return "-".join(part.capitalize() for part in key[5:].split("_"))


def request_target(environ: WSGIEnvironment) -> str:
    """The request target a client sent for this environ: ``REQUEST_URI`` if the WSGI server
    kept it, else SCRIPT_NAME + PATH_INFO percent-encoded again, plus ``?QUERY_STRING``.

    webtest keeps no raw path, so an encoded slash (``%2F``) arrives as ``/`` unless the test
    passes ``extra_environ={"REQUEST_URI": ...}``."""
    for key in ("REQUEST_URI", "RAW_URI"):
        if environ.get(key):
            return str(environ[key])
    path = (str(environ.get("SCRIPT_NAME", "")) + str(environ.get("PATH_INFO", ""))) or "/"
    # PEP 3333: the strings carry the original bytes as latin-1
    target = quote(path.encode("latin-1"), safe=_URL_SAFE)
    query = str(environ.get("QUERY_STRING", ""))
    return f"{target}?{query}" if query else target


class ThroughFastCGI(FastCGIGateway):
    """A WSGI app that sends each request through fcgikit's FastCGI server to ``app``, with
    the params the web server configuration ``server`` sends. See :func:`through_fastcgi`."""

    def __init__(
        self,
        app: WSGIApplication,
        *,
        server: str,
        mount: str,
        settings: ServerSettings | None = None,
        timeout: float = 30.0,
    ) -> None:
        if server not in SERVERS:
            raise ValueError(f"unknown web server {server!r}; known: {', '.join(SERVERS)}")
        self.server = server
        self.mount = normalize_mount(mount)
        self.app = app
        self.backend = RunningServer(app, settings)
        super().__init__(self.backend.address, timeout=timeout)

    def params_for(self, environ: WSGIEnvironment) -> list[tuple[bytes, bytes]]:
        """The params ``server`` sends for this request (see :func:`fcgikit.quirks.fastcgi_params`).

        Raises:
            NotForwarded: the web server answers this request itself.
        """
        cached = environ.get(_PARAMS_KEY)
        if cached is not None:
            return list(cached)
        headers = [(_header_name(k), str(v)) for k, v in environ.items() if k.startswith("HTTP_")]
        length = str(environ.get("CONTENT_LENGTH") or "")
        return fastcgi_params(
            self.server,
            str(environ.get("REQUEST_METHOD", "GET")),
            request_target(environ),
            mount=self.mount,
            headers=headers,
            content_length=int(length) if length.isdigit() else None,
            content_type=str(environ["CONTENT_TYPE"]) if environ.get("CONTENT_TYPE") else None,
            server_name=str(environ.get("SERVER_NAME", "localhost")),
            server_port=int(str(environ.get("SERVER_PORT") or 80)),
            https=environ.get("wsgi.url_scheme") == "https",
        )

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        try:
            environ[_PARAMS_KEY] = self.params_for(environ)
        except NotForwarded as answered:
            body = (
                f"{self.server} answers this request itself ({answered.why}); "
                "the app never sees it\n"
            ).encode()
            start_response(
                f"{answered.status} {http.HTTPStatus(answered.status).phrase}",
                [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))],
            )
            return [body]
        return super().__call__(environ, start_response)

    def close(self) -> None:
        """Stop the in-process server."""
        self.backend.close()

    def __enter__(self) -> ThroughFastCGI:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def through_fastcgi(
    app: WSGIApplication,
    server: str = "lighttpd",
    mount: str = "/",
    *,
    settings: ServerSettings | None = None,
    timeout: float = 30.0,
) -> ThroughFastCGI:
    """A WSGI app that runs ``app`` behind fcgikit's real FastCGI server, called the way the
    web server configuration ``server`` calls it.

    Args:
        app: the WSGI app under test.
        server: a configuration from :data:`fcgikit.quirks.SERVERS`, e.g. ``"nginx"``,
            ``"lighttpd"``, ``"apache-htaccess"``, ``"apache-proxy-fcgi"``, ``"caddy"``.
        mount: the URL prefix the app is served at; ``"/"`` is the root.
        settings: fcgikit server settings (default: 4 threads, ``debug=True``).
        timeout: seconds to wait for the app's answer (then 504).

    A request the web server would answer itself (Apache's 404 for ``%2F``, the 301 to a
    directory's trailing slash...) gets that status without reaching the app. Close the
    result (or use it as a context manager) to stop the server; otherwise it stops when
    garbage-collected.
    """
    return ThroughFastCGI(app, server=server, mount=mount, settings=settings, timeout=timeout)


# --- the pytest plugin ----------------------------------------------------------------------

try:
    import pytest
except ImportError:  # through_fastcgi works without pytest; only the fixtures need it
    pass
else:

    @pytest.fixture
    def fastcgi_server() -> Iterator[Callable[..., RunningServer]]:
        """Start fcgikit's server for an app: ``fastcgi_server(app, threads=2)``; stopped after
        the test. Keyword arguments are :class:`~fcgikit.server.ServerSettings` fields."""
        started: list[RunningServer] = []

        def start(app: WSGIApplication, **settings: Any) -> RunningServer:
            base = ServerSettings(threads=4, debug=True)
            running = RunningServer(app, replace(base, **settings))
            started.append(running)
            return running

        yield start
        for running in started:
            running.close()

    @pytest.fixture
    def fastcgi_app() -> Iterator[Callable[..., ThroughFastCGI]]:
        """``fastcgi_app(app, server="lighttpd", mount="/")``: :func:`through_fastcgi`, closed after
        the test."""
        made: list[ThroughFastCGI] = []

        def wrap(
            app: WSGIApplication, server: str = "lighttpd", mount: str = "/", **kw: Any
        ) -> Any:
            wrapped = through_fastcgi(app, server, mount, **kw)
            made.append(wrapped)
            return wrapped

        yield wrap
        for wrapped in made:
            wrapped.close()
