"""LighttpdRootFix: undo lighttpd's split of the first path segment for an app at ``/``.

For lighttpd 1.4 with ``fastcgi.server = ("/" => ((..., "check-local" => "disable")))`` and
no ``"fix-root-scriptname" => "enable"``. lighttpd then ends SCRIPT_NAME at the first slash
after the key, so ``GET /foo/bar`` arrives as SCRIPT_NAME ``/foo`` and PATH_INFO ``/bar``, and
``GET /submit`` as SCRIPT_NAME ``/submit`` with no PATH_INFO at all. This fixer moves
SCRIPT_NAME back in front of PATH_INFO and sets SCRIPT_NAME to the mount (``''``).

If the server already sends SCRIPT_NAME ``''`` (``fix-root-scriptname`` is on, or the config
changed) PATH_INFO is left alone: the fix is never applied twice. Werkzeug's old
``LighttpdCGIRootFix``, which Flask's guide still named after werkzeug 1.0 removed it, is
the same idea; this one does not look at SERVER_SOFTWARE.

Setting ``"fix-root-scriptname" => "enable"`` in lighttpd is the better fix when you can;
:class:`~fcgikit.middleware.MountFix` with ``''`` is right here too.

.. code-block:: python

    from fcgikit.middleware import LighttpdRootFix

    app.wsgi_app = LighttpdRootFix(app.wsgi_app)

>>> from werkzeug.test import Client
>>> def show(environ, start_response):
...     start_response("200 OK", [("Content-Type", "text/plain")])
...     return [f"{environ['SCRIPT_NAME']!r} {environ['PATH_INFO']!r}".encode("latin-1")]
>>> fixed = LighttpdRootFix(show)
>>> Client(fixed).get("/", environ_overrides={"SCRIPT_NAME": "/foo", "PATH_INFO": "/bar"}).text
"'' '/foo/bar'"
>>> Client(fixed).get("/", environ_overrides={"SCRIPT_NAME": "", "PATH_INFO": "/foo/bar"}).text
"'' '/foo/bar'"
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from fcgikit.middleware._environ import set_value
from fcgikit.middleware._paths import clean_mount

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

__all__ = ["LighttpdRootFix"]


class LighttpdRootFix:
    """PATH_INFO becomes SCRIPT_NAME + PATH_INFO; SCRIPT_NAME becomes ``mount``.

    :param app: The WSGI application to call.
    :param mount: The SCRIPT_NAME the app should see: ``''`` (the default) for an app at the
        site root, or the public prefix if a proxy in front of lighttpd strips one.

    The values it changes are kept in ``environ['fcgikit.orig']``.
    """

    def __init__(self, app: WSGIApplication, mount: str = "") -> None:
        self.app = app
        self.mount = clean_mount(mount)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        script_name = environ.get("SCRIPT_NAME", "")
        if script_name:
            set_value(environ, "PATH_INFO", script_name + environ.get("PATH_INFO", ""))
        set_value(environ, "SCRIPT_NAME", self.mount)
        return self.app(environ, start_response)
