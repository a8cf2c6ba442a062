"""Caddy: ``reverse_proxy`` with the fastcgi transport, with or without ``split``, and under
``handle_path`` (which strips the prefix).

Caddy does not normalise the path, and answers a request no route matches with an empty 200.
"""

from __future__ import annotations

from fcgikit.quirks.paths import NotForwarded, Params, RequestPath


def _caddy_route(path: RequestPath) -> bytes:
    if path.mount and not path.decoded.startswith(path.mount + b"/"):
        raise NotForwarded(200, "no route matches; Caddy answers an empty 200")
    return path.decoded


def split_caddy(path: RequestPath) -> Params:
    return [(b"SCRIPT_NAME", b""), (b"PATH_INFO", _caddy_route(path))]


def split_caddy_with_split(path: RequestPath) -> Params:
    decoded = _caddy_route(path)
    if not path.mount:
        return [(b"SCRIPT_NAME", decoded), (b"PATH_INFO", b"")]
    at = decoded.lower().find(path.mount.lower()) + len(path.mount)
    return [(b"SCRIPT_NAME", decoded[:at]), (b"PATH_INFO", decoded[at:])]


def split_caddy_handle_path(path: RequestPath) -> Params:
    decoded = _caddy_route(path)
    return [(b"SCRIPT_NAME", b""), (b"PATH_INFO", decoded[len(path.mount) :])]
