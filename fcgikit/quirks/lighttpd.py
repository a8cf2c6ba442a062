"""lighttpd: ``fastcgi.server`` keys, with or without ``fix-root-scriptname``, and the guide's
``url.rewrite-once`` onto the ``.fcgi``.

At a key of ``"/"`` lighttpd ends SCRIPT_NAME at the first slash after it, so ``/foo/bar``
reaches the app as ``/foo`` + ``/bar`` unless ``fix-root-scriptname`` is enabled.
"""

from __future__ import annotations

from fcgikit.quirks.paths import SCRIPT_FILE, NotForwarded, Params, RequestPath


def _split_at_key(uri: bytes, key: bytes) -> Params:
    # gw_backend.c: PATH_INFO starts at the first '/' after the key, SCRIPT_NAME is before it.
    if not uri.startswith(key):
        raise NotForwarded(404, "no fastcgi.server key matches")
    slash = uri.find(b"/", len(key))
    if slash == -1:
        return [(b"SCRIPT_NAME", uri)]
    return [(b"SCRIPT_NAME", uri[:slash]), (b"PATH_INFO", uri[slash:])]


def split_lighttpd(path: RequestPath) -> Params:
    return _split_at_key(path.normalized, path.mount or b"/")


def split_lighttpd_fix_root(path: RequestPath) -> Params:
    if not path.mount:
        return [(b"SCRIPT_NAME", b""), (b"PATH_INFO", path.normalized)]
    return _split_at_key(path.normalized, path.mount)


def split_lighttpd_rewrite(path: RequestPath) -> Params:
    if path.mount:
        raise ValueError("lighttpd-rewrite is the guide's root recipe; it takes no mount")
    script = b"/" + SCRIPT_FILE.encode()
    return [(b"SCRIPT_NAME", script), (b"PATH_INFO", path.normalized)]
