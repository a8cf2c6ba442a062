"""Turning the request target a client sent into the path a web server routed on.

The web servers decode percent-escapes, merge ``//`` and resolve ``.`` and ``..`` before they
match a location (nginx, lighttpd, Apache, h2o), then pass the raw target on as REQUEST_URI.
A fixer that rebuilds PATH_INFO from REQUEST_URI must do the same, in the same order, or a
request for ``/x/../admin`` would reach the app's ``/admin`` while the server's
``location /admin { deny all; }`` looked at something else.

Order of work: split off the query on the first raw ``?`` (so ``%3F`` stays in the path),
percent-decode to bytes, check for ``%00``, resolve dot segments (clamped at the root, as
RFC 3986 section 5.2.4 does), then turn the bytes into a PEP 3333 string (one latin-1
character per byte, so invalid UTF-8 survives untouched).

``%2F`` is the one place the servers disagree: nginx, Caddy and h2o decode it to ``/`` before
resolving dots, lighttpd keeps it encoded, Apache refuses it with a 404 unless told
otherwise. No single reading is safe behind every server, so the fixers refuse it by default
(see :data:`ENCODED_SLASH_CHOICES`).
"""

from __future__ import annotations

import re
from typing import Final, Literal
from urllib.parse import unquote_to_bytes

from fcgikit.middleware._environ import text_to_wsgi, wsgi_to_bytes

EncodedSlash = Literal["reject", "decode", "keep"]

#: ``reject``: 404, like Apache's default ``AllowEncodedSlashes Off``; safe behind any server.
#: ``decode``: ``%2F`` is a ``/`` before dots are resolved, as nginx, Caddy and h2o read it.
#: ``keep``: ``%2F`` stays the three characters ``%2F`` inside its segment, as lighttpd and
#: Apache's ``AllowEncodedSlashes NoDecode`` pass it (``%252F`` then looks the same).
ENCODED_SLASH_CHOICES: Final = ("reject", "decode", "keep")

_ENCODED_SLASH = re.compile(rb"%2[fF]")
_ABSOLUTE_FORM = re.compile(rb"[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*")


class PathError(Exception):
    """A request target no fixer should pass on; carries the HTTP status to answer with."""

    def __init__(self, status: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def check_encoded_slash(value: str) -> EncodedSlash:
    if value not in ENCODED_SLASH_CHOICES:
        raise ValueError(
            f"encoded_slash must be one of {', '.join(ENCODED_SLASH_CHOICES)}, not {value!r}"
        )
    return value  # type: ignore[return-value]


def clean_mount(mount: str) -> str:
    """Validate a user's mount (``''`` for the root, else ``'/yourapplication'``) and return
    it as a PEP 3333 string without a trailing slash."""
    if not isinstance(mount, str):
        raise TypeError(f"mount must be a str such as '/yourapplication', not {mount!r}")
    stripped = mount.rstrip("/")
    if stripped and not stripped.startswith("/"):
        raise ValueError(
            f"mount must start with '/' (got {mount!r}); use '' for an app at the site root"
        )
    segments = stripped.split("/")[1:]
    if any(seg in ("", ".", "..") for seg in segments) or "?" in stripped:
        raise ValueError(
            f"mount must be a plain path such as '/yourapplication' (got {mount!r}), "
            "without '//', '.', '..' or a query"
        )
    return text_to_wsgi(stripped)


def request_path(request_uri: str, encoded_slash: EncodedSlash) -> str:
    """The normalized, decoded path of a raw request target, as a PEP 3333 string.

    Raises :class:`PathError` for a target that is not a path, a ``%00`` and (with
    ``encoded_slash='reject'``) a ``%2F``.
    """
    raw = wsgi_to_bytes(request_uri).partition(b"?")[0].partition(b"#")[0]
    absolute = _ABSOLUTE_FORM.match(raw)
    if absolute:  # "GET http://host/path": keep only the path
        raw = raw[absolute.end() :]
    if not raw:
        raw = b"/"
    if not raw.startswith(b"/"):
        raise PathError("400 Bad Request", f"the request target {request_uri!r} is not a path")
    if encoded_slash == "keep":
        segments = [_decode_keeping_slashes(seg) for seg in raw.split(b"/")[1:]]
    else:
        if encoded_slash == "reject" and _ENCODED_SLASH.search(raw):
            raise PathError(
                "404 Not Found",
                "the path contains an encoded slash (%2F), which fcgikit refuses by default "
                "as Apache does; pass encoded_slash='decode' (behind nginx, Caddy or h2o) or "
                "'keep' (behind lighttpd) if the app needs them",
            )
        segments = unquote_to_bytes(raw).split(b"/")[1:]
    if any(b"\x00" in seg for seg in segments):
        raise PathError("400 Bad Request", "the path contains an encoded NUL byte (%00)")
    return _resolve(segments).decode("latin-1")


def normalize_decoded(path: str) -> str:
    """Merge ``//`` and resolve dot segments in an already decoded path (a server's
    SCRIPT_NAME + PATH_INFO); ``''`` stays ``''``."""
    if not path:
        return ""
    return _resolve(wsgi_to_bytes(path).removeprefix(b"/").split(b"/")).decode("latin-1")


def _decode_keeping_slashes(segment: bytes) -> bytes:
    return b"%2F".join(unquote_to_bytes(part) for part in _ENCODED_SLASH.split(segment))


def _resolve(segments: list[bytes]) -> bytes:
    """Join path segments (those after the leading ``/``), dropping empty and ``.`` ones and
    letting ``..`` remove its parent; a path that ended in one of them keeps its slash."""
    kept: list[bytes] = []
    trailing_slash = False
    for seg in segments:
        trailing_slash = seg in (b"", b".", b"..")
        if seg == b"..":
            if kept:
                kept.pop()
        elif not trailing_slash:
            kept.append(seg)
    path = b"/" + b"/".join(kept)
    if trailing_slash and kept:
        path += b"/"
    return path


def is_under(path: str, mount: str) -> bool:
    """Is ``path`` the mount itself or below it (segment-wise, so ``/appx`` is not under
    ``/app``)?"""
    return not mount or path == mount or path.startswith(mount + "/")


def split_at_mount(path: str, mount: str) -> tuple[str, str] | None:
    """``(SCRIPT_NAME, PATH_INFO)`` for ``path`` under ``mount``, or None if outside it."""
    if not is_under(path, mount):
        return None
    return mount, path[len(mount) :]
