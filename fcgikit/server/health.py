"""The ping path (``--ping-path``, php-fpm's ``ping.path``): a health check the server answers.

A load balancer (HAProxy's ``option httpchk GET /ping``), a readiness probe (``fcgikit request
--fail unix:/run/app.sock /ping``) or a monitor asks for one URL; the server answers it
itself, ``200`` with ``--ping-response`` (``pong``), or ``503`` while it drains (after SIGTERM,
for ``--shutdown-delay`` and the graceful stop after it), so that the balancer takes it out
of rotation before it stops accepting. The app never runs for it: a ping says the server
takes and answers requests, without costing the app a request (nor counting as one towards
``--max-requests``).

Which URL is the ping: the path the client asked for, REQUEST_URI's (its query string
aside), compared as sent; SCRIPT_NAME + PATH_INFO only when the web server sends no
REQUEST_URI. So ``--ping-path /ping`` is ``http://host/ping`` whatever prefix the app is
mounted at, which is where nginx and HAProxy health checks look for it: with the app under
``/yourapplication``, the web server routes ``/ping`` to fcgikit beside the app's prefix
(``fcgikit config nginx --ping-path /ping`` prints the location). PATH_INFO alone would not
do: nginx's stock ``fastcgi_params`` send the whole path as SCRIPT_NAME and no PATH_INFO.

Cost: nothing per request without ``--ping-path`` (the server's loop never calls in here);
with it, one look-up of REQUEST_URI in the params and one comparison per request, before any
environ is built. A ping then runs like any request (it waits for a thread, it is logged),
with :meth:`Health.app` in place of the app.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

    from fcgikit.server.wsgi import WSGIRequest

#: what the ping answers while the server drains
DRAINING_BODY = b"draining\n"


class Health:
    """Answers ``path`` with ``response`` (200), or 503 while ``draining()`` says so."""

    def __init__(self, path: str, response: str, draining: Callable[[], bool]) -> None:
        self.path = path.encode("latin-1")
        self._with_query = self.path + b"?"
        self.response = response.encode("utf-8")
        self.draining = draining

    def is_ping(self, params: Mapping[bytes, bytes]) -> bool:
        """Whether a request with these params asks for the ping path (see the module
        docstring)."""
        uri = params.get(b"REQUEST_URI")
        if uri is None:
            uri = params.get(b"SCRIPT_NAME", b"") + params.get(b"PATH_INFO", b"")
        return uri == self.path or uri.startswith(self._with_query)

    def take_pings(self, arrived: Iterable[tuple[object, WSGIRequest]]) -> None:
        """Have the pings among the requests that arrived answered here, not by the app."""
        for _, request in arrived:
            if self.is_ping(request.event.params):
                request.app = self.app
                request.tracker = None  # not a request of the app's: a worker records none

    def app(self, environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
        """The ping's answer, as a WSGI app."""
        if self.draining():
            status, body = "503 Service Unavailable", DRAINING_BODY
        else:
            status, body = "200 OK", self.response
        start_response(
            status, [("Content-Type", "text/plain; charset=utf-8"), ("Cache-Control", "no-store")]
        )
        return [body]


__all__ = ["DRAINING_BODY", "Health"]
