"""Apache: mod_fcgid (the guide's ``.htaccess`` rewrite, ``ScriptAlias``) and mod_proxy_fcgi.

Apache refuses an encoded slash (``AllowEncodedSlashes Off``). mod_proxy_fcgi sends the whole
path as SCRIPT_NAME unless told otherwise (its ``GENERIC`` backend type, or
``proxy-fcgi-pathinfo``), and keeps the still-encoded rest in SCRIPT_FILENAME.
"""

from __future__ import annotations

from fcgikit.quirks.paths import SCRIPT_FILE, NotForwarded, Params, RequestPath, raw_rest, under


def _apache_path(path: RequestPath) -> bytes:
    if "%2f" in path.raw.lower():
        raise NotForwarded(404, "AllowEncodedSlashes is Off")
    return path.normalized


def split_apache_htaccess(path: RequestPath) -> Params:
    uri, mount = _apache_path(path), path.mount
    if mount and uri == mount:
        raise NotForwarded(301, "mod_dir redirects the directory to its trailing slash")
    if not under(uri, mount):
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


def split_apache_scriptalias(path: RequestPath) -> Params:
    uri, mount = _apache_path(path), path.mount
    if not mount:
        return [(b"SCRIPT_NAME", b""), (b"PATH_INFO", uri)]
    if uri == mount:
        return [(b"SCRIPT_NAME", mount)]
    if not uri.startswith(mount + b"/"):
        raise NotForwarded(404, "outside the ScriptAlias")
    return [(b"SCRIPT_NAME", mount), (b"PATH_INFO", uri[len(mount) :])]


def _proxy_target(path: RequestPath) -> tuple[bytes, str]:
    uri, mount = _apache_path(path), path.mount
    if mount and not uri.startswith(mount + b"/"):
        raise NotForwarded(404, 'ProxyPass "<mount>/" does not match the bare mount')
    return uri, raw_rest(path)


def split_apache_proxy_fcgi(path: RequestPath) -> Params:
    uri, rest = _proxy_target(path)
    return [(b"SCRIPT_NAME", uri), (b"SCRIPT_FILENAME", b"proxy:fcgi://localhost" + rest.encode())]


def split_apache_proxy_fcgi_generic(path: RequestPath) -> Params:
    uri, rest = _proxy_target(path)
    return [(b"SCRIPT_NAME", uri), (b"SCRIPT_FILENAME", rest.encode())]


def split_apache_proxy_fcgi_pathinfo(path: RequestPath) -> Params:
    uri, rest = _proxy_target(path)
    path_info = rest.encode()  # still percent-encoded: Apache's proxy canon keeps it so
    # ap_add_cgi_vars: SCRIPT_NAME is the URI minus PATH_INFO only if it ends with it.
    script = uri[: -len(path_info)] if path_info and uri.endswith(path_info) else uri
    return [
        (b"SCRIPT_NAME", script),
        (b"PATH_INFO", path_info),
        (b"SCRIPT_FILENAME", b"proxy:fcgi://localhost" + path_info),
    ]
