"""wrap: put the fixers around an app in the order that works.

A request passes through them from the outside in:

1. :class:`~fcgikit.middleware.StdoutGuard` (unless ``guard_stdout=False``), first so that a
   ``print()`` in any later layer is caught too;
2. :class:`~fcgikit.middleware.Normalize` with ``mount`` (exact with a mount, detecting
   without one), which settles SCRIPT_NAME and PATH_INFO;
3. :class:`~fcgikit.middleware.ProxyFix` if ``proxy`` is given, after the path fix so that a
   trusted ``X-Forwarded-Prefix`` has the last word on SCRIPT_NAME, as in werkzeug;
4. :class:`~fcgikit.middleware.HeaderFix` if ``headers`` is given, innermost, so that a
   header its front end sets overrides what the proxy chain said.

.. code-block:: python

    import fcgikit

    application = fcgikit.wrap(app, mount="/yourapplication", proxy={"x_for": 1})
    # or, inside an application factory:
    app.wsgi_app = fcgikit.wrap(app.wsgi_app, mount="/yourapplication")

>>> from werkzeug.test import Client
>>> def show(environ, start_response):
...     start_response("200 OK", [("Content-Type", "text/plain")])
...     return [f"{environ['SCRIPT_NAME']}|{environ['PATH_INFO']}|{environ['REMOTE_ADDR']}"
...             .encode("latin-1")]
>>> app = wrap(show, mount="/yourapplication", proxy={"x_for": 1}, guard_stdout=False)
>>> Client(app).get("/", headers={"X-Forwarded-For": "203.0.113.5"}, environ_overrides={
...     "SCRIPT_NAME": "/yourapplication/a", "PATH_INFO": "",
...     "REQUEST_URI": "/yourapplication/a"}).text
'/yourapplication|/a|203.0.113.5'
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from fcgikit.middleware._paths import EncodedSlash
from fcgikit.middleware.header_fix import HeaderFix
from fcgikit.middleware.normalize import Normalize
from fcgikit.middleware.proxy_fix import ProxyFix
from fcgikit.middleware.stdout_guard import StdoutGuard

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

__all__ = ["wrap"]


def wrap(
    app: WSGIApplication,
    mount: str | None = None,
    proxy: bool | Mapping[str, Any] | None = None,
    guard_stdout: bool = True,
    *,
    headers: Mapping[str, str] | None = None,
    strict_stdout: bool = False,
    encoded_slash: EncodedSlash = "reject",
) -> WSGIApplication:
    """Wrap ``app`` in the fixers a FastCGI deployment needs.

    :param app: The WSGI application (or a Flask app's ``wsgi_app``).
    :param mount: The prefix the web server serves the app at, ``''`` for the site root.
        None detects it per request, which cannot tell every setup apart; see
        :class:`~fcgikit.middleware.Normalize`.
    :param proxy: Trust proxy headers: True for :class:`~fcgikit.middleware.ProxyFix`'s
        defaults, or its keyword arguments (``{"x_for": 1, "x_proto": 1, "forwarded": 0,
        "trusted": "10.0.0.0/8"}``).
    :param guard_stdout: Keep ``print()`` out of the response (on by default).
    :param headers: Keyword arguments for :class:`~fcgikit.middleware.HeaderFix`
        (``{"host": "X-FHOST"}``).
    :param strict_stdout: Make ``print()`` during a request raise instead of being logged.
    :param encoded_slash: What ``%2F`` in a path means; see
        :class:`~fcgikit.middleware.MountFix`.
    """
    wrapped = app
    if headers:
        wrapped = HeaderFix(wrapped, **headers)
    if proxy:
        wrapped = ProxyFix(wrapped) if proxy is True else ProxyFix(wrapped, **proxy)
    wrapped = Normalize(wrapped, mount, encoded_slash=encoded_slash)
    if guard_stdout:
        wrapped = StdoutGuard(wrapped, strict=strict_stdout)
    return wrapped
