"""ProxyFix: trust ``X-Forwarded-*`` and RFC 7239 ``Forwarded`` from a known number of proxies.

For an app whose web server sits behind one or more reverse proxies (a load balancer, a CDN,
Caddy or nginx terminating TLS) that add these headers. The keywords and the trusted-hop
rule are werkzeug's, so ``from werkzeug.middleware.proxy_fix import ProxyFix`` can become
``from fcgikit.middleware import ProxyFix`` with nothing else changed: ``x_for=2`` means "the
second value from the right of X-Forwarded-For was added by a proxy I trust", and a header
with fewer values than that is ignored.

What it adds:

* ``forwarded=N`` trusts the Nth element from the right of the standard ``Forwarded``
  header (werkzeug issue #800, open since 2015). From it, ``for=`` sets REMOTE_ADDR (and
  REMOTE_PORT when it carries a numeric port), ``proto=`` the scheme and ``host=`` the host;
  quoted strings, bracketed IPv6 with ports (``for="[2001:db8::7]:4711"``), ``unknown`` and
  obfuscated identifiers (``for=_hidden``, which become REMOTE_ADDR as given, as werkzeug does
  with whatever X-Forwarded-For holds) are understood. The whole element, ``by=`` included, is
  kept in ``environ['fcgikit.forwarded']`` as a dict with lower-case keys.
* ``trusted=`` says whose headers count at all, by address or network
  (``"10.0.0.0/8, fd00::/8"``, ``"*"`` for everyone), matched against REMOTE_ADDR as the
  web server reports it: gunicorn's ``forwarded_allow_ips``. The counts say how many proxies
  add to each header; ``trusted`` keeps a client that reaches the web server directly from
  claiming another address or https. A request from elsewhere reaches the app untouched,
  and the first one that carried a header is logged once, because a proxy missing from the
  list looks just like it. A REMOTE_ADDR that is not an IP address (nginx writes ``unix:``
  for a client on its unix socket) is a local process and trusted, as gunicorn trusts
  unix-socket peers. None, the default, trusts every REMOTE_ADDR, as werkzeug does.
* When that trusted element exists it alone describes the hop: X-Forwarded-For, -Proto and
  -Host are then not consulted, so a client cannot fill in a field the proxy left out. When
  it does not (no header, too few elements, or a header that does not parse, which is
  ignored as a whole rather than half-trusted) the ``x_*`` counts apply as in werkzeug.
  X-Forwarded-Port and -Prefix have no Forwarded equivalent and always follow ``x_port`` and
  ``x_prefix``.
* A new scheme also sets REQUEST_SCHEME, and HTTPS to ``'on'`` (or removes it for http), so
  code that reads the CGI variables agrees with ``wsgi.url_scheme``; the scheme is
  lower-cased.
* A trusted header whose FastCGI param arrived more than once (fcgikit's server lists them
  in ``environ['fcgikit.duplicate_params']``) is answered with **400**. That is how a spoofed
  ``X_Forwarded_For`` shows up behind lighttpd before 1.4.83 and h2o; trusting either copy
  would be a guess, and ignoring the header silently would hand the app the proxy's address
  or the wrong scheme, which is harder to notice than a 400. (Caddy before 2.11.4 keeps only
  one of the two copies, at random, so nothing can detect it there: upgrade Caddy.)

The values it changes are kept in ``environ['fcgikit.orig']``; werkzeug's
``werkzeug.proxy_fix.orig`` key is not set.

.. code-block:: python

    from fcgikit.middleware import ProxyFix

    # One proxy in front that sets "Forwarded: for=...;proto=...;host=..." and nothing else.
    app.wsgi_app = ProxyFix(app.wsgi_app, x_for=0, x_proto=0, forwarded=1)
    # A load balancer somewhere in 10.0.0.0/8 that sets X-Forwarded-For and -Proto.
    app.wsgi_app = ProxyFix(app.wsgi_app, trusted="10.0.0.0/8")

>>> from werkzeug.test import Client
>>> def show(environ, start_response):
...     start_response("200 OK", [("Content-Type", "text/plain")])
...     return [" ".join(environ.get(k, "-") for k in
...             ("REMOTE_ADDR", "wsgi.url_scheme", "HTTPS", "HTTP_HOST")).encode()]
>>> fixed = ProxyFix(show, x_for=0, x_proto=0, forwarded=1)
>>> header = 'for=192.0.2.60;proto=http, for="[2001:db8::7]:4711";proto=https;host=example.com'
>>> Client(fixed).get("/", headers={"Forwarded": header}).text
'2001:db8::7 https on example.com'
>>> behind = ProxyFix(show, trusted="10.0.0.0/8")
>>> xff = {"X-Forwarded-For": "203.0.113.5", "X-Forwarded-Proto": "https"}
>>> Client(behind).get("/", headers=xff, environ_base={"REMOTE_ADDR": "10.1.2.3"}).text
'203.0.113.5 https on localhost'
>>> Client(behind).get("/", headers=xff, environ_base={"REMOTE_ADDR": "192.0.2.9"}).text
'192.0.2.9 http - localhost'
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING

from werkzeug.http import parse_list_header

from fcgikit.errors import ConfigError
from fcgikit.middleware._environ import (
    apply_host,
    apply_scheme,
    duplicated,
    header_label,
    log_line,
    refuse_duplicates,
    set_value,
)
from fcgikit.networks import TrustedNetworks

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

__all__ = ["ProxyFix", "parse_forwarded", "parse_node"]

#: Where the trusted Forwarded element is kept for the app.
FORWARDED_KEY = "fcgikit.forwarded"

_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_QUOTED = r'"(?:[^"\\]|\\.)*"'
_PAIR = re.compile(rf"({_TOKEN})=({_TOKEN}|{_QUOTED})")
_ESCAPE = re.compile(r"\\(.)")
_OWS = " \t"
_OBFUSCATED = re.compile(r"_[A-Za-z0-9._-]+")
_PORT = re.compile(r"[0-9]{1,5}")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*")
_HOST = re.compile(r"(?:\[[0-9A-Fa-f:.]+\]|[^\s/?#@\[\]\"\\]+)(?::[0-9]*)?")


class ProxyFix:
    """Take the client's address, scheme, host, port and prefix from trusted proxy headers.

    :param app: The WSGI application to call.
    :param x_for: Number of values to trust in ``X-Forwarded-For``.
    :param x_proto: Number of values to trust in ``X-Forwarded-Proto``.
    :param x_host: Number of values to trust in ``X-Forwarded-Host``.
    :param x_port: Number of values to trust in ``X-Forwarded-Port``.
    :param x_prefix: Number of values to trust in ``X-Forwarded-Prefix``; the value becomes
        SCRIPT_NAME (PATH_INFO is not touched, as in werkzeug).
    :param forwarded: Number of elements to trust in the RFC 7239 ``Forwarded`` header.
    :param trusted: Whose headers to believe: IP addresses and networks (``"127.0.0.1,
        ::1"``, ``["10.0.0.0/8", "fd00::/8"]``, ``"*"`` for everyone, or a
        :class:`~fcgikit.networks.TrustedNetworks`), matched against REMOTE_ADDR. A request
        from anywhere else reaches the app untouched. None (the default) believes every
        REMOTE_ADDR, as werkzeug does.
    :raises ValueError: for a negative count or a ``trusted`` entry that is not an address
        or network.

    Each count is the number of proxies in front of the web server that set that header;
    0 means the header is not trusted at all. The values it changes are kept in
    ``environ['fcgikit.orig']``.
    """

    def __init__(
        self,
        app: WSGIApplication,
        x_for: int = 1,
        x_proto: int = 1,
        x_host: int = 0,
        x_port: int = 0,
        x_prefix: int = 0,
        forwarded: int = 0,
        trusted: TrustedNetworks | str | Iterable[str] | None = None,
    ) -> None:
        self.app = app
        self.x_for = x_for
        self.x_proto = x_proto
        self.x_host = x_host
        self.x_port = x_port
        self.x_prefix = x_prefix
        self.forwarded = forwarded
        counts = {
            "HTTP_X_FORWARDED_FOR": x_for,
            "HTTP_X_FORWARDED_PROTO": x_proto,
            "HTTP_X_FORWARDED_HOST": x_host,
            "HTTP_X_FORWARDED_PORT": x_port,
            "HTTP_X_FORWARDED_PREFIX": x_prefix,
            "HTTP_FORWARDED": forwarded,
        }
        for key, count in counts.items():
            if not isinstance(count, int) or count < 0:
                raise ValueError(f"the number of proxies trusted for {key} must be an int >= 0")
        self._trusted_keys = [key for key, count in counts.items() if count]
        if trusted is None or isinstance(trusted, TrustedNetworks):
            self.trusted = trusted
        else:
            try:
                self.trusted = TrustedNetworks.parse(trusted, "ProxyFix trusted")
            except ConfigError as exc:
                raise ValueError(str(exc)) from None
        self._untrusted_logged = False

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if self.trusted is not None and not self._from_trusted_proxy(environ):
            return self.app(environ, start_response)
        spoofed = duplicated(environ, self._trusted_keys)
        if spoofed:
            return refuse_duplicates(environ, start_response, spoofed, "ProxyFix")

        element = self._forwarded_element(environ.get("HTTP_FORWARDED"))
        if element is not None:
            environ[FORWARDED_KEY] = element
            if "for" in element:
                # parse_forwarded has checked the node, so parse_node does not fail here.
                address, port = parse_node(element["for"]) or (element["for"], None)
                set_value(environ, "REMOTE_ADDR", address)
                if port is not None and _PORT.fullmatch(port):
                    set_value(environ, "REMOTE_PORT", port)
            if "proto" in element:
                apply_scheme(environ, element["proto"])
            if "host" in element:
                apply_host(environ, element["host"])
        else:
            x_for = _trusted_value(self.x_for, environ.get("HTTP_X_FORWARDED_FOR"))
            if x_for:
                set_value(environ, "REMOTE_ADDR", x_for)
            x_proto = _trusted_value(self.x_proto, environ.get("HTTP_X_FORWARDED_PROTO"))
            if x_proto:
                apply_scheme(environ, x_proto)
            x_host = _trusted_value(self.x_host, environ.get("HTTP_X_FORWARDED_HOST"))
            if x_host:
                apply_host(environ, x_host)

        x_port = _trusted_value(self.x_port, environ.get("HTTP_X_FORWARDED_PORT"))
        if x_port:
            host = environ.get("HTTP_HOST")
            if host:
                if ":" in host and not host.endswith("]"):
                    host = host.rsplit(":", 1)[0]
                set_value(environ, "HTTP_HOST", f"{host}:{x_port}")
            set_value(environ, "SERVER_PORT", x_port)

        x_prefix = _trusted_value(self.x_prefix, environ.get("HTTP_X_FORWARDED_PREFIX"))
        if x_prefix:
            set_value(environ, "SCRIPT_NAME", x_prefix)

        return self.app(environ, start_response)

    def _from_trusted_proxy(self, environ: WSGIEnvironment) -> bool:
        assert self.trusted is not None
        remote = environ.get("REMOTE_ADDR") or ""
        if remote in self.trusted or (remote and not _is_any_ip(remote)):
            # Not an IP address: a client on the web server's unix socket (nginx writes
            # "unix:"), a local process; gunicorn trusts unix-socket peers the same way.
            return True
        if not self._untrusted_logged:
            sent = [key for key in self._trusted_keys if environ.get(key)]
            if sent:
                self._untrusted_logged = True
                self._log_untrusted(environ, sent[0], remote)
        return False

    def _log_untrusted(self, environ: WSGIEnvironment, key: str, remote: str) -> None:
        """Once per ProxyFix: a proxy whose address is missing from ``trusted`` looks exactly
        like this, and would otherwise go unnoticed (the app sees the proxy's address)."""
        log_line(
            environ,
            f"ProxyFix ignored {header_label(key)} from {remote or 'no address'}, which is "
            f"not in the trusted networks ({self.trusted}); if it is your proxy, add it or its "
            "network to --forwarded-allow-ips (FORWARDED_ALLOW_IPS, ProxyFix(trusted=...)). "
            "Logged once.",
        )

    def _forwarded_element(self, header: str | None) -> dict[str, str] | None:
        if not (self.forwarded and header):
            return None
        elements = parse_forwarded(header)
        if elements is None or len(elements) < self.forwarded:
            return None
        return elements[-self.forwarded]


def _trusted_value(trusted: int, value: str | None) -> str | None:
    """werkzeug's rule: the ``trusted``-th value from the right, if there are that many."""
    if not (trusted and value):
        return None
    values = parse_list_header(value)
    if len(values) >= trusted:
        return values[-trusted]
    return None


def parse_forwarded(value: str) -> list[dict[str, str]] | None:
    """Parse an RFC 7239 ``Forwarded`` header into its elements, left to right.

    Parameter names are lower-cased and quoted strings unescaped; empty elements are
    skipped. Returns None if any part of the header breaks the grammar, repeats a parameter
    within an element, or has a ``for``/``by``/``proto``/``host`` value of the wrong form: a
    header that does not parse is not trusted in part.

    >>> parse_forwarded('for=192.0.2.43, for="[2001:db8:cafe::17]";proto=https;by=_proxy')
    [{'for': '192.0.2.43'}, {'for': '[2001:db8:cafe::17]', 'proto': 'https', 'by': '_proxy'}]
    >>> parse_forwarded('for="unterminated') is None
    True
    """
    elements: list[dict[str, str]] = []
    element: dict[str, str] = {}
    pos, end = 0, len(value)
    while True:
        while pos < end and value[pos] in _OWS:
            pos += 1
        if pos == end:
            break
        char = value[pos]
        if char in ",;":
            if char == "," and element:
                elements.append(element)
                element = {}
            pos += 1
            continue
        pair = _PAIR.match(value, pos)
        if pair is None:
            return None
        name, raw = pair.group(1).lower(), pair.group(2)
        if name in element:
            return None
        element[name] = _ESCAPE.sub(r"\1", raw[1:-1]) if raw.startswith('"') else raw
        pos = pair.end()
        while pos < end and value[pos] in _OWS:
            pos += 1
        if pos < end and value[pos] not in ",;":
            return None
    if element:
        elements.append(element)
    if not all(_valid_element(e) for e in elements):
        return None
    return elements


def _valid_element(element: dict[str, str]) -> bool:
    return (
        all(parse_node(element[name]) is not None for name in ("for", "by") if name in element)
        and ("proto" not in element or _SCHEME.fullmatch(element["proto"]) is not None)
        and ("host" not in element or _HOST.fullmatch(element["host"]) is not None)
    )


def parse_node(node: str) -> tuple[str, str | None] | None:
    """Split an RFC 7239 node (``for=``/``by=`` value) into (address, port or None).

    The address is an IPv4 or IPv6 address (without brackets), ``unknown`` or an obfuscated
    ``_identifier``; the port is digits or an obfuscated ``_identifier``. None if malformed.

    >>> parse_node("[2001:db8::7]:4711")
    ('2001:db8::7', '4711')
    >>> parse_node("unknown"), parse_node("_gazonk:_p1"), parse_node("999.1.1.1")
    (('unknown', None), ('_gazonk', '_p1'), None)
    """
    if node.startswith("["):
        address, bracket, rest = node[1:].partition("]")
        if not bracket or not _is_ip(address, ipaddress.IPv6Address):
            return None
    elif node.count(":") > 1:  # an IPv6 address someone forgot to bracket
        return (node, None) if _is_ip(node, ipaddress.IPv6Address) else None
    else:
        address, colon, port = node.partition(":")
        rest = colon + port
        if not (
            address == "unknown"
            or _OBFUSCATED.fullmatch(address)
            or _is_ip(address, ipaddress.IPv4Address)
        ):
            return None
    if not rest:
        return address, None
    port = rest[1:]
    if rest[0] != ":" or not (_PORT.fullmatch(port) or _OBFUSCATED.fullmatch(port)):
        return None
    return address, port


def _is_any_ip(text: str) -> bool:
    address = text.split("%", 1)[0]  # an IPv6 zone
    return _is_ip(address, ipaddress.IPv4Address) or _is_ip(address, ipaddress.IPv6Address)


def _is_ip(text: str, kind: type[ipaddress.IPv4Address | ipaddress.IPv6Address]) -> bool:
    try:
        kind(text)
    except ValueError:
        return False
    return True
