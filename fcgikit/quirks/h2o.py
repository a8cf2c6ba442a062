"""h2o: ``fastcgi.connect`` under ``paths:``, which sends SCRIPT_NAME ``''`` and the whole path."""

from __future__ import annotations

from fcgikit.quirks.paths import NotForwarded, Params, RequestPath, under


def split_h2o(path: RequestPath) -> Params:
    if path.mount and not under(path.normalized, path.mount):
        raise NotForwarded(404, "outside paths:")
    return [(b"SCRIPT_NAME", b""), (b"PATH_INFO", path.normalized)]
