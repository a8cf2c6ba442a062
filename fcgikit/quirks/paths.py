"""The request as a web server sees it, and what the rules of every server share.

A rule gets a :class:`RequestPath` (the path as sent, decoded, and normalised the way that
server normalises it, with the mount) and returns the path params the server sends, or raises
:class:`NotForwarded` when the server answers the request itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

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
class RequestPath:
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


def merge_slashes(path: bytes) -> bytes:
    return re.sub(rb"/{2,}", b"/", path)


def remove_dot_segments(path: bytes) -> bytes:
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


def full_normalize(path: bytes) -> bytes:
    return remove_dot_segments(merge_slashes(path))


def no_normalize(path: bytes) -> bytes:
    return path


def raw_rest(path: RequestPath) -> str:
    """The still-encoded path after the mount (what mod_proxy_fcgi puts in SCRIPT_FILENAME)."""
    mount = path.mount.decode("latin-1")
    raw = path.raw
    return raw[len(mount) :] if mount and raw.startswith(mount) else raw


def under(path: bytes, mount: bytes) -> bool:
    return path == mount or path.startswith(mount + b"/")
