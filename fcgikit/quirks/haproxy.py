"""HAProxy: ``fcgi-app`` with only its ``docroot``, and with the ``path-info`` that ``fcgikit
config haproxy`` prints.

HAProxy builds its own params, in its own order, and never sends an empty value; it derives
REMOTE_USER and AUTH_TYPE from the Authorization header (password unchecked) and hides the
header. :func:`haproxy_params` is that whole list; the others are its path rules.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable

from fcgikit.quirks.paths import NotForwarded, Params, RequestPath, under


def _haproxy_route(path: RequestPath) -> bytes:
    # use_backend ... if { path <mount> } || { path_beg <mount>/ }: matched on the raw path
    raw = path.raw.encode("latin-1")
    if path.mount and not under(raw, path.mount):
        raise NotForwarded(503, "no use_backend rule matches; HAProxy has no server for it")
    return path.decoded


def split_haproxy(path: RequestPath) -> Params:
    return [(b"SCRIPT_NAME", _haproxy_route(path))]


def split_haproxy_path_info(path: RequestPath) -> Params:
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


def haproxy_params(
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
