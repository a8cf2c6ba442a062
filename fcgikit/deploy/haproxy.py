"""The HAProxy config ``fcgikit config haproxy`` prints: a ``backend`` and its ``fcgi-app``.

HAProxy (2.1+) speaks FastCGI itself (``proto fcgi`` on a server line, ``use-fcgi-app`` in
the backend). What its ``fcgi-app`` sends by default, measured on Debian's HAProxy 2.6
(``tests/data/captured-environs.json``, configurations ``haproxy_*``), and what each line
below changes:

- no ``path-info``: SCRIPT_NAME is the whole decoded path and PATH_INFO is not sent, so an
  app routes every URL as its root. The ``path-info`` regex splits at the mount (its first
  capture becomes SCRIPT_NAME, its second PATH_INFO). Empty values are never sent: at the
  root SCRIPT_NAME is left out, which a WSGI server reads as ``''``.
- ``docroot`` is mandatory; it only goes into SCRIPT_FILENAME and PATH_TRANSLATED.
- SERVER_NAME is the Host header as sent, port included.
- the Authorization header is hidden from the app, and REMOTE_USER/AUTH_TYPE are set from
  it without checking any password: a client can name any user to an app that trusts
  REMOTE_USER (hgweb's ``allow_push``, Django's RemoteUserMiddleware).
- ``//`` and ``..`` are passed on as sent (``normalize-uri`` is experimental in 2.6), so the
  app is wrapped in MountFix, as behind Caddy and h2o.

Several servers (``--upstream``) get health checks: a TCP connect, or with ``--ping-path``
a FastCGI request for fcgikit's ping path (``option httpchk``), which also catches a hung
app and takes a server out of rotation while it drains (its ping answers 503 during
``fcgikit serve --shutdown-delay``). HAProxy resends a request to another server when it
could not connect (its default ``retry-on conn-failure``), and a GET or HEAD whose server
closed the connection without a word (``empty-response``: the server was killed under it);
never a POST that reached a server, which may have run there.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

__all__ = ["backend_name", "haproxy_config", "route_line"]

#: Where HAProxy's mandatory ``docroot`` points; a WSGI app never reads it.
DOCROOT = "/var/www/yourapplication"

# Health checks: every 2 s; two failures take a server out, two successes put it back. A
# TCP connect, or a FastCGI request to fcgikit's ping path ("option httpchk GET <path>" with
# these proto fcgi servers), which a hung app or a draining fcgikit (503) fails.
_CHECK_INTERVAL = "2s"


def backend_name(mount: str) -> str:
    """``fcgikit_<mount>``: two apps at two mounts get two backends in one haproxy.cfg."""
    return "_".join(["fcgikit", *re.findall(r"[A-Za-z0-9]+", mount)])


def route_line(mount: str) -> str:
    """The frontend line that sends the app's URLs (the bare mount included) to it."""
    name = backend_name(mount)
    if not mount:
        return f"default_backend {name}"
    return f"use_backend {name} if {{ path {mount} }} || {{ path_beg {mount}/ }}"


def _regex_literal(text: str) -> str:
    # Bracketed, not backslashed: HAProxy's config parser has its own backslash escapes.
    return "".join(f"\\{c}" if c in "^]" else f"[{c}]" if c in ".+*?()[{}|$" else c for c in text)


def _server_address(server: str) -> str:
    # HAProxy takes a socket as its absolute path, and IPv6 as ipv6@ADDR:PORT.
    if server.startswith("unix:"):
        return server[len("unix:") :]
    if server.startswith("["):
        host, _, port = server[1:].partition("]:")
        return f"ipv6@{host}:{port}"
    return server


def _health_check(ping_path: str | None) -> str:
    """The health check lines: a FastCGI request for the ping path, or a TCP connect."""
    if ping_path is None:
        return (
            f"    # Health checks: a TCP connect every {_CHECK_INTERVAL}; 2 failures take a\n"
            "    # server out, 2 successes put it back. To check with a FastCGI request for\n"
            "    # fcgikit's ping path instead (fcgikit serve --ping-path /ping), which a hung\n"
            "    # app or a draining fcgikit fails, add: option httpchk GET /ping\n"
            f"    default-server check inter {_CHECK_INTERVAL} fall 2 rise 2\n"
        )
    return (
        f"    # Health checks: a FastCGI request for {ping_path} every {_CHECK_INTERVAL}, which\n"
        "    # fcgikit answers itself (fcgikit serve --ping-path); 2 failures (no answer, or\n"
        "    # the 503 of a draining fcgikit: --shutdown-delay) take a server out, 2\n"
        "    # successes put it back.\n"
        f"    option httpchk GET {ping_path}\n"
        f"    default-server check inter {_CHECK_INTERVAL} fall 2 rise 2\n"
    )


def _servers(servers: Sequence[str], ping_path: str | None) -> str:
    lines = [
        f"    server app{index} {_server_address(server)} proto fcgi\n"
        for index, server in enumerate(servers, start=1)
    ]
    if len(servers) == 1:
        return (_health_check(ping_path) if ping_path else "") + "".join(lines)
    return (
        "    balance roundrobin\n"
        f"{_health_check(ping_path)}"
        "    # A request that could not connect is sent to another server, and so is a GET\n"
        "    # (HEAD) whose server closed the connection without answering (it died under\n"
        "    # it). Any other request that reached a server is never resent: it may have run.\n"
        "    retries 2\n"
        "    option redispatch 1\n"
        "    retry-on conn-failure empty-response\n"
        "    http-request disable-l7-retry unless METH_GET\n"
        f"{''.join(lines)}"
    )


def haproxy_config(mount: str, servers: Sequence[str], ping_path: str | None = None) -> str:
    """The ``backend`` and ``fcgi-app`` sections for the app at ``mount`` (``''``: the root),
    served by ``servers`` (``unix:PATH`` or ``HOST:PORT``), health-checked at ``ping_path``
    (fcgikit's ``--ping-path``) when given."""
    name = backend_name(mount)
    split = f"^({_regex_literal(mount)})(/.*)?$" if mount else "^()(/.*)$"
    return (
        "# HAProxy 2.1+: add these two sections to haproxy.cfg.\n"
        "# In your frontend (mode http), send the app's URLs to the backend:\n"
        f"#     {route_line(mount)}\n"
        f"backend {name}\n"
        "    mode http\n"
        f"    use-fcgi-app {name}\n"
        f"{_servers(servers, ping_path)}"
        "\n"
        f"fcgi-app {name}\n"
        "    # Required by HAProxy; it only builds SCRIPT_FILENAME, which the app ignores.\n"
        f"    docroot {DOCROOT}\n"
        "    # Without it HAProxy sends the whole path as SCRIPT_NAME and no PATH_INFO.\n"
        f"    path-info {split}\n"
        "    # HAProxy sends the Host header, port and all, as SERVER_NAME: keep the name.\n"
        "    set-param SERVER_NAME %[req.hdr(host),field(1,:)]"
        " unless { req.hdr(host) -m beg [ }\n"
        "    # HAProxy hides Authorization and sends REMOTE_USER and AUTH_TYPE read from it,\n"
        "    # password unchecked: pass the header on, and do not send those two.\n"
        "    pass-header Authorization\n"
        "    set-param REMOTE_USER %[str()]\n"
        "    set-param AUTH_TYPE %[str()]\n"
    )
