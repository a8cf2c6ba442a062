"""MountFix: rebuild SCRIPT_NAME and PATH_INFO from REQUEST_URI and a mount you name.

Every web server fcgikit was measured behind splits the URL into SCRIPT_NAME and PATH_INFO
in its own way (nginx leaves PATH_INFO out unless told, lighttpd swallows the first segment
at ``/``, Apache's mod_proxy_fcgi puts the whole path in SCRIPT_NAME, h2o and Caddy keep the
mount in PATH_INFO), but all of them pass the target the client asked for as REQUEST_URI.
With the mount written down once, that is enough to get the split right everywhere: this is
the one fixer that is right on every configuration in fcgikit's captures.

How the path is read, in order:

1. The query is split off at the first raw ``?`` *before* decoding, so ``/a%3Fb?x=1`` is the
   path ``/a?b``; QUERY_STRING itself is left as the server sent it.
2. Percent-escapes are decoded to bytes, and the bytes become a PEP 3333 string (one latin-1
   character per byte), so UTF-8 and invalid UTF-8 reach the app as the server would pass
   them. ``%00`` is answered with 400.
3. ``//`` is merged and ``.``/``..`` are resolved (``..`` stops at the root), as the web
   servers do before they match a ``location``: a raw ``/x/../admin`` is the path ``/admin``,
   so it cannot dodge a rule the server applied to ``/admin``.
4. ``%2F`` is refused with 404 by default, as Apache does; ``encoded_slash='decode'`` reads it
   as ``/`` (nginx, Caddy, h2o), ``'keep'`` leaves ``%2F`` in its segment (lighttpd).
5. A path outside the mount gets a 404 that says so; it is never split somewhere wrong.

Without REQUEST_URI (IIS, hand-made environs) the server's SCRIPT_NAME + PATH_INFO is
re-split at the mount instead.

MountFix follows the URL the *client* asked for, so an internal rewrite done by the server
(other than to the app itself) is not seen by the app; lighttpd's ``strip-request-uri``
cannot be combined with it.

.. code-block:: python

    from fcgikit.middleware import MountFix

    app.wsgi_app = MountFix(app.wsgi_app, "/yourapplication")

What the app sees behind nginx's stock ``fastcgi_params`` (no PATH_INFO sent at all):

>>> from werkzeug.test import Client
>>> def show(environ, start_response):
...     start_response("200 OK", [("Content-Type", "text/plain")])
...     return [f"{environ['SCRIPT_NAME']}|{environ['PATH_INFO']}".encode("latin-1")]
>>> nginx = {"SCRIPT_NAME": "/yourapplication/foo bar", "PATH_INFO": "",
...          "REQUEST_URI": "/yourapplication/foo%20bar?x=1"}
>>> Client(MountFix(show, "/yourapplication")).get("/", environ_overrides=nginx).text
'/yourapplication|/foo bar'
>>> dodge = {"REQUEST_URI": "/yourapplication/x/../admin"}
>>> Client(MountFix(show, "/yourapplication")).get("/", environ_overrides=dodge).text
'/yourapplication|/admin'
>>> Client(MountFix(show, "/yourapplication")).get("/", environ_overrides={
...     "REQUEST_URI": "/other/page"}).status
'404 Not Found'
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from fcgikit.middleware._environ import plain_response, readable, set_value
from fcgikit.middleware._paths import (
    EncodedSlash,
    PathError,
    check_encoded_slash,
    clean_mount,
    normalize_decoded,
    request_path,
    split_at_mount,
)

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

__all__ = ["MountFix", "fix_mount"]


class MountFix:
    """Set SCRIPT_NAME to ``mount`` and PATH_INFO to the rest of the client's path.

    :param app: The WSGI application to call.
    :param mount: The URL prefix the web server routes to the app, as it appears in the URL
        but decoded (``'/yourapplication'``, ``'/café'``); ``''`` or ``'/'`` for the site
        root. A trailing slash is ignored.
    :param encoded_slash: What ``%2F`` in the path means: ``'reject'`` (404, the default),
        ``'decode'`` or ``'keep'``; see the module documentation.

    The values it changes are kept in ``environ['fcgikit.orig']``.
    """

    def __init__(
        self, app: WSGIApplication, mount: str, *, encoded_slash: EncodedSlash = "reject"
    ) -> None:
        self.app = app
        self.mount = clean_mount(mount)
        self.encoded_slash = check_encoded_slash(encoded_slash)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        problem = fix_mount(environ, self.mount, self.encoded_slash)
        if problem is not None:
            return plain_response(environ, start_response, problem.status, problem.message)
        return self.app(environ, start_response)


def fix_mount(
    environ: WSGIEnvironment, mount: str, encoded_slash: EncodedSlash
) -> PathError | None:
    """Apply MountFix's rule to ``environ`` (``mount`` already cleaned); return the problem
    to answer with instead of calling the app, if any."""
    request_uri = environ.get("REQUEST_URI")
    try:
        if request_uri is None:
            sent = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
            path = normalize_decoded(sent) or "/"
            if "\x00" in path:
                raise PathError("400 Bad Request", "the path contains a NUL byte")
        else:
            path = request_path(request_uri, encoded_slash)
    except PathError as problem:
        return problem
    split = split_at_mount(path, mount)
    if split is None:
        return PathError(
            "404 Not Found",
            f"the path {readable(path)!r} is outside the mount {readable(mount)!r} this app "
            "was given; if the web server does route it here, make the mount match the "
            "server's location",
        )
    set_value(environ, "SCRIPT_NAME", split[0])
    set_value(environ, "PATH_INFO", split[1])
    return None
