"""What each web server sends over FastCGI for a request: the quirk catalogue, as code.

Web servers disagree about SCRIPT_NAME and PATH_INFO (and about REQUEST_URI, duplicate params,
CONTENT_LENGTH on a GET, and which headers they drop). :func:`fastcgi_params` answers, for one
web server configuration, what params it would send to the app for one HTTP request, so the
app can be tried under that server without installing it
(:func:`fcgikit.testing.through_fastcgi` sends them through the real FastCGI path).

>>> params = dict(fastcgi_params("lighttpd", "GET", "/foo/bar%20baz?x=1"))
>>> params[b"SCRIPT_NAME"], params[b"PATH_INFO"], params[b"REQUEST_URI"]
(b'/foo', b'/bar baz', b'/foo/bar%20baz?x=1')

The rules were read from the servers' sources and checked against the params captured from
nginx 1.22, lighttpd 1.4.69, Apache 2.4 (mod_fcgid, mod_proxy_fcgi), Caddy 2.6, h2o 2.2 and
HAProxy 2.6 in front of a param dumper (``tests/data/captured-environs.json``; the tests hold
every rule here to every capture). Nothing here reads that file: the rules are the code below.

Names (``SERVERS``), each with a root mount (``mount=""``) and a prefix mount
(``mount="/yourapplication"``) unless noted:

``nginx``               Flask's recipe: ``fastcgi_split_path_info`` under a prefix; at the root
                        ``PATH_INFO $fastcgi_script_name`` + ``SCRIPT_NAME ""`` after
                        ``include fastcgi_params``, so SCRIPT_NAME is sent twice.
``nginx-naive``         only ``include fastcgi_params``: SCRIPT_NAME is the whole path, no
                        PATH_INFO.
``lighttpd``            ``fastcgi.server = ("/" => ...)`` or ``("/prefix" => ...)`` with
                        ``check-local => "disable"``; at the root SCRIPT_NAME ends at the first
                        slash after ``/``.
``lighttpd-fix-root``   the same with ``fix-root-scriptname => "enable"``.
``lighttpd-rewrite``    the guide's ``url.rewrite-once`` onto ``/yourapplication.fcgi`` (root only).
``apache-htaccess``     mod_fcgid + the guide's ``.htaccess`` rewrite onto yourapplication.fcgi;
                        under a prefix, the ``.htaccess`` lives in that directory.
``apache-fcgid``        mod_fcgid + ``ScriptAlias``.
``apache-proxy-fcgi``   ``ProxyPass "<mount>/" "fcgi://localhost/"`` (FPM backend type);
``apache-proxy-fcgi-generic`` with ``ProxyFCGIBackendType GENERIC``;
``apache-proxy-fcgi-pathinfo`` with ``proxy-fcgi-pathinfo=1``.
``caddy``               ``reverse_proxy`` with the fastcgi transport and no ``split`` (under a
                        prefix: ``handle /prefix/*``, which keeps the prefix in PATH_INFO).
``caddy-split``         the same with ``split`` (at the root with a split that never matches).
``caddy-handle-path``   ``handle_path /prefix/*``, which strips the prefix from the path.
``h2o``                 ``fastcgi.connect`` under ``paths:``.
``haproxy``             ``fcgi-app`` with only ``docroot`` (+ ``use_backend`` for the prefix):
                        SCRIPT_NAME is the whole decoded path, no PATH_INFO; SERVER_NAME is
                        the Host header, port included; REMOTE_USER and AUTH_TYPE are read
                        from the Authorization header (password unchecked), which is hidden.
``haproxy-path-info``   the same with ``path-info ^(/prefix)(/.*)?$`` (``^()(/.*)$`` at the
                        root), as ``fcgikit config haproxy`` prints (without its ``set-param``
                        lines): SCRIPT_NAME the mount, left out at the root as every empty
                        value is; ``//`` and ``..`` kept.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Final
from urllib.parse import unquote_to_bytes

__all__ = ["SERVERS", "NotForwarded", "Quirk", "fastcgi_params", "normalize_mount"]

#: The file the guide's rewrite recipes route every URL to.
SCRIPT_FILE: Final = "yourapplication.fcgi"

Params = list[tuple[bytes, bytes]]


class NotForwarded(Exception):
    """The web server answers this request itself (404, a redirect...); the app never sees it."""

    def __init__(self, status: int, why: str) -> None:
        super().__init__(f"{status}: {why}")
        self.status = status
        self.why = why


@dataclass(frozen=True)
class _Path:
    """The request path as the web server sees it."""

    raw: str  # as sent on the request line, percent-encoded, no query
    decoded: bytes  # percent-decoded, not normalized
    normalized: bytes  # decoded, then normalized the way this server does it
    mount: bytes  # '' for the root, else '/prefix' (no trailing slash)


# --- path helpers ---------------------------------------------------------------------------


def normalize_mount(mount: str) -> str:
    """``'/'`` and ``''`` are the root (``''``); else ``'/prefix'`` without a trailing slash."""
    mount = mount.strip()
    if mount in ("", "/"):
        return ""
    if not mount.startswith("/"):
        raise ValueError(f"mount must start with '/': {mount!r}")
    return mount.rstrip("/")


def _merge_slashes(path: bytes) -> bytes:
    return re.sub(rb"/{2,}", b"/", path)


def _remove_dot_segments(path: bytes) -> bytes:
    """RFC 3986 5.2.4, on a decoded absolute path."""
    output: list[bytes] = []
    segments = path.split(b"/")
    for index, segment in enumerate(segments[1:], start=1):
        last = index == len(segments) - 1
        if segment == b".":
            if last:
                output.append(b"")
        elif segment == b"..":
            if output:
                output.pop()
            if last:
                output.append(b"")
        else:
            output.append(segment)
    return b"/" + b"/".join(output)


def _full_normalize(path: bytes) -> bytes:
    return _remove_dot_segments(_merge_slashes(path))


def _no_normalize(path: bytes) -> bytes:
    return path


def _raw_rest(path: _Path) -> str:
    """The still-encoded path after the mount (what mod_proxy_fcgi puts in SCRIPT_FILENAME)."""
    mount = path.mount.decode("latin-1")
    raw = path.raw
    return raw[len(mount) :] if mount and raw.startswith(mount) else raw


def _under(path: bytes, mount: bytes) -> bool:
    return path == mount or path.startswith(mount + b"/")


# --- the path rules: (path) -> path params in the order the server sends them ---------------


def _nginx(path: _Path) -> Params:
    uri, mount = path.normalized, path.mount
    if not mount:
        # include fastcgi_params (SCRIPT_NAME $fastcgi_script_name), then the recipe's two lines
        return [(b"SCRIPT_NAME", uri), (b"PATH_INFO", uri), (b"SCRIPT_NAME", b"")]
    if uri == mount:
        uri = mount + b"/"  # location = /yourapplication { rewrite ^ /yourapplication/ last; }
    if not uri.startswith(mount):
        raise NotForwarded(404, "outside the location")
    rest = uri[len(mount) :]
    return [(b"SCRIPT_NAME", mount), (b"PATH_INFO", rest), (b"SCRIPT_NAME", mount)]


def _nginx_naive(path: _Path) -> Params:
    uri, mount = path.normalized, path.mount
    if mount and uri == mount:
        uri = mount + b"/"
    if mount and not uri.startswith(mount):
        raise NotForwarded(404, "outside the location")
    return [(b"SCRIPT_NAME", uri)]


def _lighttpd_split(uri: bytes, key: bytes) -> Params:
    # gw_backend.c: PATH_INFO starts at the first '/' after the key, SCRIPT_NAME is before it.
    if not uri.startswith(key):
        raise NotForwarded(404, "no fastcgi.server key matches")
    slash = uri.find(b"/", len(key))
    if slash == -1:
        return [(b"SCRIPT_NAME", uri)]
    return [(b"SCRIPT_NAME", uri[:slash]), (b"PATH_INFO", uri[slash:])]


def _lighttpd(path: _Path) -> Params:
    return _lighttpd_split(path.normalized, path.mount or b"/")


def _lighttpd_fix_root(path: _Path) -> Params:
    if not path.mount:
        return [(b"SCRIPT_NAME", b""), (b"PATH_INFO", path.normalized)]
    return _lighttpd_split(path.normalized, path.mount)


def _lighttpd_rewrite(path: _Path) -> Params:
    if path.mount:
        raise ValueError("lighttpd-rewrite is the guide's root recipe; it takes no mount")
    script = b"/" + SCRIPT_FILE.encode()
    return [(b"SCRIPT_NAME", script), (b"PATH_INFO", path.normalized)]


def _apache_path(path: _Path) -> bytes:
    if "%2f" in path.raw.lower():
        raise NotForwarded(404, "AllowEncodedSlashes is Off")
    return path.normalized


def _apache_htaccess(path: _Path) -> Params:
    uri, mount = _apache_path(path), path.mount
    if mount and uri == mount:
        raise NotForwarded(301, "mod_dir redirects the directory to its trailing slash")
    if not _under(uri, mount):
        raise NotForwarded(404, "outside the .htaccess directory")
    script = mount + b"/" + SCRIPT_FILE.encode()
    rest = uri[len(mount) :]
    return [
        (b"REDIRECT_STATUS", b"200"),
        (b"REDIRECT_URL", uri),
        (b"SCRIPT_NAME", script),
        (b"PATH_INFO", rest),
        (b"PATH_TRANSLATED", b"redirect:" + script + rest),
    ]


def _apache_scriptalias(path: _Path) -> Params:
    uri, mount = _apache_path(path), path.mount
    if not mount:
        return [(b"SCRIPT_NAME", b""), (b"PATH_INFO", uri)]
    if uri == mount:
        return [(b"SCRIPT_NAME", mount)]
    if not uri.startswith(mount + b"/"):
        raise NotForwarded(404, "outside the ScriptAlias")
    return [(b"SCRIPT_NAME", mount), (b"PATH_INFO", uri[len(mount) :])]


def _proxy_target(path: _Path) -> tuple[bytes, str]:
    uri, mount = _apache_path(path), path.mount
    if mount and not uri.startswith(mount + b"/"):
        raise NotForwarded(404, 'ProxyPass "<mount>/" does not match the bare mount')
    return uri, _raw_rest(path)


def _apache_proxy_fcgi(path: _Path) -> Params:
    uri, rest = _proxy_target(path)
    return [(b"SCRIPT_NAME", uri), (b"SCRIPT_FILENAME", b"proxy:fcgi://localhost" + rest.encode())]


def _apache_proxy_fcgi_generic(path: _Path) -> Params:
    uri, rest = _proxy_target(path)
    return [(b"SCRIPT_NAME", uri), (b"SCRIPT_FILENAME", rest.encode())]


def _apache_proxy_fcgi_pathinfo(path: _Path) -> Params:
    uri, rest = _proxy_target(path)
    path_info = rest.encode()  # still percent-encoded: Apache's proxy canon keeps it so
    # ap_add_cgi_vars: SCRIPT_NAME is the URI minus PATH_INFO only if it ends with it.
    script = uri[: -len(path_info)] if path_info and uri.endswith(path_info) else uri
    return [
        (b"SCRIPT_NAME", script),
        (b"PATH_INFO", path_info),
        (b"SCRIPT_FILENAME", b"proxy:fcgi://localhost" + path_info),
    ]


def _caddy_route(path: _Path) -> bytes:
    if path.mount and not path.decoded.startswith(path.mount + b"/"):
        raise NotForwarded(200, "no route matches; Caddy answers an empty 200")
    return path.decoded


def _caddy(path: _Path) -> Params:
    return [(b"SCRIPT_NAME", b""), (b"PATH_INFO", _caddy_route(path))]


def _caddy_split(path: _Path) -> Params:
    decoded = _caddy_route(path)
    if not path.mount:
        return [(b"SCRIPT_NAME", decoded), (b"PATH_INFO", b"")]
    at = decoded.lower().find(path.mount.lower()) + len(path.mount)
    return [(b"SCRIPT_NAME", decoded[:at]), (b"PATH_INFO", decoded[at:])]


def _caddy_handle_path(path: _Path) -> Params:
    decoded = _caddy_route(path)
    return [(b"SCRIPT_NAME", b""), (b"PATH_INFO", decoded[len(path.mount) :])]


def _h2o(path: _Path) -> Params:
    if path.mount and not _under(path.normalized, path.mount):
        raise NotForwarded(404, "outside paths:")
    return [(b"SCRIPT_NAME", b""), (b"PATH_INFO", path.normalized)]


def _haproxy_route(path: _Path) -> bytes:
    # use_backend ... if { path <mount> } || { path_beg <mount>/ }: matched on the raw path
    raw = path.raw.encode("latin-1")
    if path.mount and not _under(raw, path.mount):
        raise NotForwarded(503, "no use_backend rule matches; HAProxy has no server for it")
    return path.decoded


def _haproxy(path: _Path) -> Params:
    return [(b"SCRIPT_NAME", _haproxy_route(path))]


def _haproxy_path_info(path: _Path) -> Params:
    decoded, mount = _haproxy_route(path), path.mount
    if b"\n" in decoded or b"\0" in decoded:
        raise NotForwarded(500, "with path-info, a decoded newline or NUL is refused")
    if decoded == mount:
        return [(b"SCRIPT_NAME", mount)]
    if decoded.startswith(mount + b"/"):
        return [(b"SCRIPT_NAME", mount), (b"PATH_INFO", decoded[len(mount) :])]
    return [(b"SCRIPT_NAME", decoded)]  # the regex does not match: the whole path


def _haproxy_auth(headers: Iterable[tuple[str, str]]) -> Params:
    """HAProxy's fcgi-app sets AUTH_TYPE and REMOTE_USER from the Authorization header
    (``%[http_auth_type]``, ``%[http_auth_user]``), password unchecked."""
    value = next((v for k, v in headers if k.lower() == "authorization"), "")
    scheme, _, credentials = value.strip().partition(" ")
    if scheme.lower() == "bearer":
        return [(b"AUTH_TYPE", b"Bearer")]
    if scheme.lower() != "basic":
        return []
    try:
        user, colon, _ = base64.b64decode(credentials.strip(), validate=True).partition(b":")
    except ValueError:
        return []
    return [(b"AUTH_TYPE", b"Basic"), (b"REMOTE_USER", user)] if colon else []


def _haproxy_params(
    path_params: Params,
    request_uri: str,
    query: str,
    environ: dict[bytes, bytes],
    headers: Iterable[tuple[str, str]],
) -> Params:
    """What HAProxy's fcgi-app builds, in its order; it never sends an empty value."""
    path_info = dict(path_params).get(b"PATH_INFO", b"")
    script_name = dict(path_params)[b"SCRIPT_NAME"]
    host = next((v for k, v in headers if k.lower() == "host"), None)
    docroot = environ[b"DOCUMENT_ROOT"]
    params: Params = [
        *_haproxy_auth(headers),
        (b"GATEWAY_INTERFACE", b"CGI/1.1"),
        (b"DOCUMENT_ROOT", docroot),
        *path_params,
        (b"REQUEST_URI", request_uri.encode("latin-1")),
        (b"REQUEST_METHOD", environ[b"REQUEST_METHOD"]),
        (b"QUERY_STRING", query.encode("latin-1")),
        (b"SERVER_NAME", host.encode("latin-1") if host else environ[b"SERVER_NAME"]),
        *[(k, environ[k]) for k in (b"SERVER_PORT", b"SERVER_PROTOCOL", b"REMOTE_ADDR")],
        (b"REMOTE_PORT", environ[b"REMOTE_PORT"]),
        (b"SCRIPT_FILENAME", docroot + script_name),
        (b"PATH_TRANSLATED", docroot + path_info if path_info else b""),
        (b"CONTENT_LENGTH", environ[b"CONTENT_LENGTH"]),
        (b"CONTENT_TYPE", environ.get(b"CONTENT_TYPE", b"")),
        (b"HTTPS", environ.get(b"HTTPS", b"")),
        (b"SERVER_SOFTWARE", environ[b"SERVER_SOFTWARE"]),
    ]
    return [(name, value) for name, value in params if value]


# --- the catalogue --------------------------------------------------------------------------


@dataclass(frozen=True)
class Quirk:
    """One web server configuration: how it splits the path and what else it sends."""

    name: str
    family: str  # nginx, lighttpd, apache, caddy, h2o: decides the params besides the path
    software: str
    normalize: Callable[[bytes], bytes]
    split: Callable[[_Path], Params]
    #: CONTENT_LENGTH on a request without a body: a value, or None to leave it out
    empty_length: str | None
    #: HTTP_* params this server never passes on
    dropped_headers: frozenset[str] = frozenset()


_APACHE = "Apache/2.4.71 (Debian)"
_HAPROXY = "HAProxy 2.6.12-1+deb12u4"
# Authorization is hidden (REMOTE_USER/AUTH_TYPE are derived from it); Proxy is dropped too.
_HAPROXY_DROPS = frozenset({"HTTP_PROXY", "HTTP_AUTHORIZATION"})
_APACHE_DROPS = frozenset({"HTTP_PROXY", "HTTP_AUTHORIZATION"})

_QUIRKS: Final[tuple[Quirk, ...]] = (
    Quirk("nginx", "nginx", "nginx/1.22.1", _full_normalize, _nginx, ""),
    Quirk("nginx-naive", "nginx", "nginx/1.22.1", _full_normalize, _nginx_naive, ""),
    Quirk(
        "lighttpd",
        "lighttpd",
        "lighttpd/1.4.69",
        _full_normalize,
        _lighttpd,
        "0",
        frozenset({"HTTP_PROXY"}),
    ),
    Quirk(
        "lighttpd-fix-root",
        "lighttpd",
        "lighttpd/1.4.69",
        _full_normalize,
        _lighttpd_fix_root,
        "0",
        frozenset({"HTTP_PROXY"}),
    ),
    Quirk(
        "lighttpd-rewrite",
        "lighttpd",
        "lighttpd/1.4.69",
        _full_normalize,
        _lighttpd_rewrite,
        "0",
        frozenset({"HTTP_PROXY"}),
    ),
    Quirk(
        "apache-htaccess",
        "apache",
        _APACHE + " mod_fcgid/2.3.9",
        _full_normalize,
        _apache_htaccess,
        "0",
        _APACHE_DROPS,
    ),
    Quirk(
        "apache-fcgid",
        "apache",
        _APACHE + " mod_fcgid/2.3.9",
        _full_normalize,
        _apache_scriptalias,
        "0",
        _APACHE_DROPS,
    ),
    Quirk(
        "apache-proxy-fcgi",
        "apache",
        _APACHE,
        _full_normalize,
        _apache_proxy_fcgi,
        None,
        _APACHE_DROPS,
    ),
    Quirk(
        "apache-proxy-fcgi-generic",
        "apache",
        _APACHE,
        _full_normalize,
        _apache_proxy_fcgi_generic,
        None,
        _APACHE_DROPS,
    ),
    Quirk(
        "apache-proxy-fcgi-pathinfo",
        "apache",
        _APACHE,
        _full_normalize,
        _apache_proxy_fcgi_pathinfo,
        None,
        _APACHE_DROPS,
    ),
    Quirk("caddy", "caddy", "Caddy/2.6.2", _no_normalize, _caddy, "0"),
    Quirk("caddy-split", "caddy", "Caddy/2.6.2", _no_normalize, _caddy_split, "0"),
    Quirk("caddy-handle-path", "caddy", "Caddy/2.6.2", _no_normalize, _caddy_handle_path, "0"),
    Quirk("h2o", "h2o", "h2o/2.2.5", _remove_dot_segments, _h2o, None),
    Quirk(
        "haproxy",
        "haproxy",
        _HAPROXY,
        _no_normalize,
        _haproxy,
        "0",
        _HAPROXY_DROPS,
    ),
    Quirk(
        "haproxy-path-info",
        "haproxy",
        _HAPROXY,
        _no_normalize,
        _haproxy_path_info,
        "0",
        _HAPROXY_DROPS,
    ),
)

#: Configuration name -> its rules.
QUIRKS: Final[dict[str, Quirk]] = {quirk.name: quirk for quirk in _QUIRKS}
#: The configuration names :func:`fastcgi_params` knows.
SERVERS: Final[tuple[str, ...]] = tuple(QUIRKS)


def _header_params(headers: Iterable[tuple[str, str]]) -> Params:
    params: Params = []
    for name, value in headers:
        if "_" in name:
            continue  # nginx, Apache, lighttpd >= 1.4.83 and Caddy >= 2.11.4 drop them
        key = "HTTP_" + name.upper().replace("-", "_")
        if key in ("HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH"):
            continue
        params.append((key.encode("latin-1"), value.encode("latin-1")))
    return params


def fastcgi_params(
    server: str,
    method: str,
    target: str,
    *,
    mount: str = "",
    headers: Iterable[tuple[str, str]] = (),
    content_length: int | None = None,
    content_type: str | None = None,
    server_name: str = "localhost",
    server_port: int = 80,
    https: bool = False,
    remote_addr: str = "127.0.0.1",
    remote_port: int = 50000,
    document_root: str = "/var/www/html",
) -> Params:
    """The params ``server`` would send for ``method target`` with the app at ``mount``.

    Args:
        server: one of :data:`SERVERS`.
        method: the request method.
        target: the request target as on the request line: percent-encoded path, then
            ``?query`` if there is one.
        mount: where the app is mounted: ``''`` or ``'/'`` for the root, else ``'/prefix'``.
        headers: the request's headers as ``(name, value)``; ``Host`` becomes HTTP_HOST.
        content_length, content_type: the body's, if it has one.

    Returns:
        ``(name, value)`` pairs in the order the server sends them, duplicates included
        (a FastCGI server must keep the last).

    Raises:
        KeyError: ``server`` is not a known configuration.
        NotForwarded: the web server would answer this request itself.
    """
    try:
        quirk = QUIRKS[server]
    except KeyError:
        raise KeyError(f"unknown web server {server!r}; known: {', '.join(SERVERS)}") from None
    raw_path, _, query = target.partition("?")
    if not raw_path.startswith("/"):
        raw_path = "/" + raw_path
    decoded = unquote_to_bytes(raw_path)
    path = _Path(
        raw=raw_path,
        decoded=decoded,
        normalized=quirk.normalize(decoded),
        mount=normalize_mount(mount).encode("latin-1"),
    )
    path_params = quirk.split(path)
    request_uri = raw_path + ("?" + query if query else "")
    scheme = "https" if https else "http"
    length = quirk.empty_length if content_length is None else str(content_length)

    params: Params = [
        (b"GATEWAY_INTERFACE", b"CGI/1.1"),
        (b"SERVER_SOFTWARE", quirk.software.encode()),
        (b"SERVER_PROTOCOL", b"HTTP/1.1"),
        (b"SERVER_NAME", server_name.encode("latin-1")),
        (b"SERVER_PORT", str(server_port).encode()),
        (b"REQUEST_METHOD", method.upper().encode("latin-1")),
        (b"REQUEST_URI", request_uri.encode("latin-1")),
        (b"QUERY_STRING", query.encode("latin-1")),
        (b"REMOTE_ADDR", remote_addr.encode()),
        (b"REMOTE_PORT", str(remote_port).encode()),
        (b"REQUEST_SCHEME", scheme.encode()),
        (b"DOCUMENT_ROOT", document_root.encode("latin-1")),
    ]
    headers = list(headers)
    if quirk.family == "h2o":
        # h2o sends neither GATEWAY_INTERFACE nor REQUEST_SCHEME nor DOCUMENT_ROOT
        params = [p for p in params if p[0] not in _H2O_MISSING]
    if length is not None:
        params.append((b"CONTENT_LENGTH", length.encode()))
    if content_type is not None or quirk.family == "nginx":
        params.append((b"CONTENT_TYPE", (content_type or "").encode("latin-1")))
    if https:
        params.append((b"HTTPS", b"on"))
    if quirk.family == "haproxy":
        haproxy = _haproxy_params(path_params, request_uri, query, dict(params), headers)
        return haproxy + _forwarded_headers(quirk, headers)
    if quirk.family == "nginx":
        params.append((b"DOCUMENT_URI", path.normalized))
    if quirk.family in ("nginx", "lighttpd"):
        params.append((b"REDIRECT_STATUS", b"200"))
    params += path_params
    names = {name for name, _ in path_params}
    if quirk.family in ("lighttpd", "apache") and b"SCRIPT_FILENAME" not in names:
        script = dict(path_params).get(b"SCRIPT_NAME", b"")
        params.append((b"SCRIPT_FILENAME", document_root.encode("latin-1") + script))
    return params + _forwarded_headers(quirk, headers)


def _forwarded_headers(quirk: Quirk, headers: Iterable[tuple[str, str]]) -> Params:
    return [
        (name, value)
        for name, value in _header_params(headers)
        if name.decode("latin-1") not in quirk.dropped_headers
    ]


_H2O_MISSING: Final = frozenset({b"GATEWAY_INTERFACE", b"REQUEST_SCHEME", b"DOCUMENT_ROOT"})
