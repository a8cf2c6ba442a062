"""Plain CGI: the same ``.fcgi`` file run once per request when stdin is not a FastCGI socket.

The guide's last-resort deployment, and what happens when someone runs the ``.fcgi`` by hand
to debug it. The request comes from ``os.environ`` and stdin, the response goes to fd 1 -
which is exactly why the stdout guard matters here: the guard moves ``sys.stdout`` and fd 1
away from the response before the app runs, and we write the response to a private dup of
the original fd 1. ``HTTP_PROXY`` is removed from ``os.environ`` first (httpoxy: a client's
``Proxy:`` header must not become the proxy every HTTP library in the app uses).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from types import MappingProxyType
from typing import IO, TYPE_CHECKING, Any

from fcgikit.middleware import guard_stdout
from fcgikit.protocol.constants import Role
from fcgikit.protocol.events import RequestReceived
from fcgikit.server.settings import ServerSettings
from fcgikit.server.sink import WebServerGone
from fcgikit.server.wsgi import WSGIRequest

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

_CHUNK = 65536


class CGIOutput:
    """The response sink for CGI: the real stdout."""

    def __init__(self, out: IO[bytes]) -> None:
        self.out = out

    def _write(self, data: bytes) -> None:
        try:
            self.out.write(data)
            self.out.flush()
        except OSError as exc:
            raise WebServerGone(exc.strerror or str(exc)) from None

    def send_output(self, request: WSGIRequest, data: bytes) -> None:
        self._write(data)

    def send_stderr(self, request: WSGIRequest, data: bytes) -> None:
        sys.stderr.write(data.decode("utf-8", "replace"))
        sys.stderr.flush()

    def finish(self, request: WSGIRequest, head: bytes, body: bytes, app_status: int) -> None:
        if head or body:
            self._write(head + body)  # at once: nothing is left for a pool to send

    def request_done(self, request: WSGIRequest, *, on_loop: bool) -> None:
        pass

    def web_server_gone(self) -> bool:
        return False  # one request, run at once: it never waits


def _environ_as_params(environ: Mapping[str, str]) -> dict[bytes, bytes]:
    # os.environ decoded the bytes the web server set with the filesystem encoding and
    # surrogateescape; encoding back that way gives the exact original bytes.
    return {
        key.encode("utf-8", "surrogateescape"): value.encode("utf-8", "surrogateescape")
        for key, value in environ.items()
    }


def run_cgi(
    app: WSGIApplication,
    *,
    debug: bool = False,
    base_environ: Mapping[str, Any] = MappingProxyType({}),
    stdin: IO[bytes] | None = None,
) -> None:
    """Serve the one request described by ``os.environ`` and stdin."""
    os.environ.pop("HTTP_PROXY", None)
    out = guard_stdout()
    settings = ServerSettings(
        threads=1, debug=debug, base_environ=base_environ, handle_signals=False
    )
    event = RequestReceived(
        request_id=1,
        role=Role.RESPONDER,
        keep_conn=False,
        params=_environ_as_params(os.environ),
        duplicate_names=frozenset(),
    )
    # the body is read whole from stdin before the app runs: no lock (see RequestBody)
    request = WSGIRequest(CGIOutput(out), event, app, settings, streamed=False)
    source = stdin if stdin is not None else sys.stdin.buffer
    remaining = request.body.content_length or 0
    while remaining > 0:
        chunk = source.read(min(_CHUNK, remaining))
        if not chunk:
            break
        request.body.feed(chunk)
        remaining -= len(chunk)
    request.body.finish()
    request.run()
