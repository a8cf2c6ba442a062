"""nginx: the Flask recipe (``fastcgi_split_path_info``), and ``include fastcgi_params`` alone.

Under a prefix the recipe's location redirects the bare mount to its trailing slash; at the
root, ``include fastcgi_params`` sends SCRIPT_NAME before the recipe sends it again.
"""

from __future__ import annotations

from fcgikit.quirks.paths import NotForwarded, Params, RequestPath


def split_nginx(path: RequestPath) -> Params:
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


def split_nginx_naive(path: RequestPath) -> Params:
    uri, mount = path.normalized, path.mount
    if mount and uri == mount:
        uri = mount + b"/"
    if mount and not uri.startswith(mount):
        raise NotForwarded(404, "outside the location")
    return [(b"SCRIPT_NAME", uri)]
