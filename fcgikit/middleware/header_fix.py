"""HeaderFix: take the host, scheme or client address from headers a trusted front sets.

For a front end (a proxy, a CDN, a load balancer, a TLS terminator) that *overwrites* one
header per fact with a single value, rather than appending to a list: ``X-FHOST`` as in the
``CustomProxyFix`` of Flask's proxy-setup docs, ``X-Real-IP`` from nginx's realip setups,
``X-Forwarded-Ssl: on`` or ``Front-End-Https: on``. Each header you name is trusted whole;
for list headers with a hop count (``X-Forwarded-For``, ``Forwarded``) use
:class:`~fcgikit.middleware.ProxyFix`.

Only name headers the front end always sets or removes: any client can send them otherwise.
A named header whose FastCGI param arrived more than once (``X_FHOST`` next to ``X-FHOST``,
listed by fcgikit's server in ``environ['fcgikit.duplicate_params']``) is answered with 400,
as in ProxyFix.

* ``host``: the value becomes HTTP_HOST and SERVER_NAME (and its port SERVER_PORT).
* ``scheme``: ``http``/``https`` (any case), or ``on``/``off`` as sent by X-Forwarded-Ssl
  and Front-End-Https; sets ``wsgi.url_scheme``, REQUEST_SCHEME and HTTPS. Other values
  are ignored.
* ``remote_addr``: the value becomes REMOTE_ADDR.

The values it changes are kept in ``environ['fcgikit.orig']``.

.. code-block:: python

    from fcgikit.middleware import HeaderFix

    # Flask's CustomProxyFix, generalised:
    app.wsgi_app = HeaderFix(app.wsgi_app, host="X-FHOST", scheme="X-Forwarded-Ssl")

>>> from werkzeug.test import Client
>>> def show(environ, start_response):
...     start_response("200 OK", [("Content-Type", "text/plain")])
...     return [" ".join(environ[k] for k in
...             ("HTTP_HOST", "wsgi.url_scheme", "REMOTE_ADDR")).encode()]
>>> fixed = HeaderFix(show, host="X-FHOST", scheme="X-Forwarded-Ssl", remote_addr="X-Real-IP")
>>> Client(fixed).get("/", headers={"X-FHOST": "example.com", "X-Forwarded-Ssl": "on",
...                                 "X-Real-IP": "203.0.113.9"}).text
'example.com https 203.0.113.9'
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING

from fcgikit.middleware._environ import (
    apply_host,
    apply_scheme,
    duplicated,
    refuse_duplicates,
    set_value,
)

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

__all__ = ["HeaderFix"]

_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_SCHEMES = {"http": "http", "https": "https", "on": "https", "off": "http"}


class HeaderFix:
    """Overwrite HTTP_HOST, the scheme and REMOTE_ADDR from single-valued trusted headers.

    :param app: The WSGI application to call.
    :param host: Name of the header holding the public host, e.g. ``'X-FHOST'``.
    :param scheme: Name of the header holding the scheme, e.g. ``'X-Forwarded-Proto'`` or
        ``'X-Forwarded-Ssl'``.
    :param remote_addr: Name of the header holding the client's address, e.g. ``'X-Real-IP'``.

    Name at least one. A header that is absent or empty changes nothing.
    """

    def __init__(
        self,
        app: WSGIApplication,
        *,
        host: str | None = None,
        scheme: str | None = None,
        remote_addr: str | None = None,
    ) -> None:
        self.app = app
        self.host_key = _environ_key(host, "host")
        self.scheme_key = _environ_key(scheme, "scheme")
        self.remote_addr_key = _environ_key(remote_addr, "remote_addr")
        self._keys = [k for k in (self.host_key, self.scheme_key, self.remote_addr_key) if k]
        if not self._keys:
            raise ValueError(
                "HeaderFix needs at least one header to trust, e.g. HeaderFix(app, host='X-FHOST')"
            )

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        spoofed = duplicated(environ, self._keys)
        if spoofed:
            return refuse_duplicates(environ, start_response, spoofed, "HeaderFix")
        host = _value(environ, self.host_key)
        if host:
            apply_host(environ, host)
        scheme = _SCHEMES.get(_value(environ, self.scheme_key).lower())
        if scheme:
            apply_scheme(environ, scheme)
        remote_addr = _value(environ, self.remote_addr_key)
        if remote_addr:
            set_value(environ, "REMOTE_ADDR", remote_addr)
        return self.app(environ, start_response)


def _environ_key(header: str | None, parameter: str) -> str | None:
    """``'X-FHOST'`` -> ``'HTTP_X_FHOST'``, the name the header has in the environ."""
    if header is None:
        return None
    if not _HEADER_NAME.fullmatch(header):
        raise ValueError(f"{parameter}= must be a header name such as 'X-FHOST', not {header!r}")
    return "HTTP_" + header.upper().replace("-", "_")


def _value(environ: WSGIEnvironment, key: str | None) -> str:
    return str(environ.get(key, "")).strip() if key else ""
