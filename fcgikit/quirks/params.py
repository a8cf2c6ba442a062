"""The params one web server configuration sends for one request: :func:`fastcgi_params`.

The CGI variables every server sends come first, in one order; then what the server's family
adds or leaves out (h2o sends no GATEWAY_INTERFACE, nginx a DOCUMENT_URI, HAProxy a list of its
own), the path params its rule splits, and the HTTP headers it passes on.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final
from urllib.parse import unquote_to_bytes

from fcgikit.quirks.catalogue import QUIRKS, SERVERS, Quirk
from fcgikit.quirks.haproxy import haproxy_params
from fcgikit.quirks.paths import Params, RequestPath, normalize_mount

#: What h2o does not send of the CGI variables the others send.
_H2O_MISSING: Final = frozenset({b"GATEWAY_INTERFACE", b"REQUEST_SCHEME", b"DOCUMENT_ROOT"})


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
    quirk = _quirk(server)
    path, query = _request_path(quirk, target, mount)
    path_params = quirk.split(path)
    request_uri = path.raw + ("?" + query if query else "")
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
        (b"REQUEST_SCHEME", b"https" if https else b"http"),
        (b"DOCUMENT_ROOT", document_root.encode("latin-1")),
    ]
    headers = list(headers)
    params = _with_body_and_https(quirk, params, content_length, content_type, https)
    if quirk.family == "haproxy":
        haproxy = haproxy_params(path_params, request_uri, query, dict(params), headers)
        return haproxy + _forwarded_headers(quirk, headers)
    params += _path_params(quirk, path, path_params, document_root)
    return params + _forwarded_headers(quirk, headers)


def _quirk(server: str) -> Quirk:
    try:
        return QUIRKS[server]
    except KeyError:
        raise KeyError(f"unknown web server {server!r}; known: {', '.join(SERVERS)}") from None


def _request_path(quirk: Quirk, target: str, mount: str) -> tuple[RequestPath, str]:
    """The request's path as ``quirk``'s server sees it, and its query string."""
    raw_path, _, query = target.partition("?")
    if not raw_path.startswith("/"):
        raw_path = "/" + raw_path
    decoded = unquote_to_bytes(raw_path)
    path = RequestPath(
        raw=raw_path,
        decoded=decoded,
        normalized=quirk.normalize(decoded),
        mount=normalize_mount(mount).encode("latin-1"),
    )
    return path, query


def _with_body_and_https(
    quirk: Quirk, params: Params, content_length: int | None, content_type: str | None, https: bool
) -> Params:
    """``params`` as the family sends them, then CONTENT_LENGTH, CONTENT_TYPE and HTTPS."""
    length = quirk.empty_length if content_length is None else str(content_length)
    if quirk.family == "h2o":
        # h2o sends neither GATEWAY_INTERFACE nor REQUEST_SCHEME nor DOCUMENT_ROOT
        params = [p for p in params if p[0] not in _H2O_MISSING]
    if length is not None:
        params.append((b"CONTENT_LENGTH", length.encode()))
    if content_type is not None or quirk.family == "nginx":
        params.append((b"CONTENT_TYPE", (content_type or "").encode("latin-1")))
    if https:
        params.append((b"HTTPS", b"on"))
    return params


def _path_params(
    quirk: Quirk, path: RequestPath, path_params: Params, document_root: str
) -> Params:
    """The path params the rule split, with what the family sends around them."""
    params: Params = []
    if quirk.family == "nginx":
        params.append((b"DOCUMENT_URI", path.normalized))
    if quirk.family in ("nginx", "lighttpd"):
        params.append((b"REDIRECT_STATUS", b"200"))
    params += path_params
    names = {name for name, _ in path_params}
    if quirk.family in ("lighttpd", "apache") and b"SCRIPT_FILENAME" not in names:
        script = dict(path_params).get(b"SCRIPT_NAME", b"")
        params.append((b"SCRIPT_FILENAME", document_root.encode("latin-1") + script))
    return params


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


def _forwarded_headers(quirk: Quirk, headers: Iterable[tuple[str, str]]) -> Params:
    return [
        (name, value)
        for name, value in _header_params(headers)
        if name.decode("latin-1") not in quirk.dropped_headers
    ]
