"""The nginx config: a regex location that sets SCRIPT_NAME and PATH_INFO itself.

Under a mount, one regex location covers the bare mount and everything below it; the params
are listed instead of ``include fastcgi_params`` (which sends a second SCRIPT_NAME). With
``--keep-conn`` or ``--upstream`` the app's servers go in an ``upstream`` block, which nginx
only allows in ``http { }``: the config then has two parts, each saying where it goes. With
``--ping-path`` outside the mount, an exact location passes that one URL to fcgikit too, which
answers it itself (``fcgikit serve --ping-path``): a health check at the site's root for an app
under a prefix.
"""

from __future__ import annotations

import re

from fcgikit.deploy.target import Target

_NGINX_PARAMS = (
    ("REQUEST_METHOD", "$request_method"),
    ("REQUEST_URI", "$request_uri"),
    ("QUERY_STRING", "$query_string"),
    ("CONTENT_TYPE", "$content_type"),
    ("CONTENT_LENGTH", "$content_length"),
    ("SERVER_PROTOCOL", "$server_protocol"),
    ("REQUEST_SCHEME", "$scheme"),
    ("HTTPS", "$https if_not_empty"),
    ("GATEWAY_INTERFACE", "CGI/1.1"),
    ("SERVER_SOFTWARE", "nginx/$nginx_version"),
    ("REMOTE_ADDR", "$remote_addr"),
    ("REMOTE_PORT", "$remote_port"),
    ("SERVER_ADDR", "$server_addr"),
    ("SERVER_PORT", "$server_port"),
    ("SERVER_NAME", "$server_name"),
)


# The biggest request body nginx passes on. Its own default, 1m, answers any bigger upload
# with 413 before the app sees it; fcgikit spools big bodies to a temp file and has no limit.
_NGINX_MAX_BODY = "100m"

# Idle connections each nginx worker keeps to the app: as many as fcgikit runs requests at
# once by default (--threads). When more than this many are idle at once nginx closes the
# extra ones and opens new ones for the next requests, an accept and a close on both sides
# each (benchmarks/RESULTS.md, "Keep-conn with 256 connections, again"); an idle connection
# costs fcgikit a file descriptor, not a thread.
_NGINX_KEEPALIVE = 64


def _nginx_upstream_name(target: Target) -> str:
    """Named after the app's addresses: two apps get two upstreams, and nothing needs editing."""
    addresses = " ".join(server.removeprefix("unix:") for server in target.servers)
    return "fcgikit_" + re.sub(r"[^A-Za-z0-9]+", "_", addresses).strip("_")


_NGINX_KEEP_CONN_PRICE = (
    "    # Reused connections save fcgikit an accept and a close per request. The price:\n"
    "    # when fcgikit reloads (SIGHUP) or replaces a worker (--max-requests), a request\n"
    "    # can, rarely, meet a connection that is being closed: nginx retries a GET but\n"
    "    # answers a POST with 502."
)

# nginx (1.9.13+) never passes a POST, PATCH or LOCK that already went to one server on to
# the next: it may have run there. So "error timeout" retries what is safe to retry.
_NGINX_NEXT_UPSTREAM = (
    "    # Another server gets the request when this one cannot be reached, fails before\n"
    "    # answering, or does not answer in time. A POST (PATCH, LOCK) that already reached a\n"
    "    # server is never resent: it may have run. Add non_idempotent only if yours are safe\n"
    "    # to run twice.\n"
    "    fastcgi_next_upstream error timeout;\n"
)


def _nginx_upstream_block(target: Target, keep_conn: bool) -> str:
    name = _nginx_upstream_name(target)
    servers = "".join(f"    server {server};\n" for server in target.servers)
    keepalive = (
        "    # idle connections kept per nginx worker; an idle one costs fcgikit no thread\n"
        f"    keepalive {_NGINX_KEEPALIVE};\n"
        if keep_conn
        else ""
    )
    # An upstream block is only allowed in http { }: the output has two parts, each
    # saying where it goes. render() adds its comments after the first line, so the
    # fixer and the serve command open part 1, which is what the user reads first.
    return (
        "# nginx, part 1 of 2: in http { }, not in server { } "
        "(e.g. /etc/nginx/conf.d/yourapplication.conf)\n"
        f"upstream {name} {{\n{servers}{keepalive}}}\n\n"
    )


def _nginx_passing(target: Target, keep_conn: bool) -> str:
    """The lines that hand the request to the app: straight, or through the upstream."""
    if not keep_conn and not target.upstreams:
        return f"    fastcgi_pass {target.bind};\n"
    text = ""
    if keep_conn and target.upstreams:
        text += f"{_NGINX_KEEP_CONN_PRICE}\n    fastcgi_keep_conn on;\n"
    elif keep_conn:
        text += (
            f"{_NGINX_KEEP_CONN_PRICE} Uncomment the next line to retry POSTs too, at the\n"
            "    # price of also retrying (so running twice) POSTs after real failures.\n"
            "    # fastcgi_next_upstream error timeout non_idempotent;\n"
            "    fastcgi_keep_conn on;\n"
        )
    if target.upstreams:
        text += _NGINX_NEXT_UPSTREAM
    return f"{text}    fastcgi_pass {_nginx_upstream_name(target)};\n"


def _nginx_ping_location(ping_path: str, target: Target, keep_conn: bool) -> str:
    """An exact location that passes the ping path to fcgikit (outside the app's mount)."""
    upstream = keep_conn or target.upstreams
    passing = f"    fastcgi_pass {_nginx_upstream_name(target) if upstream else target.bind};\n"
    params = "".join(f"    fastcgi_param {name} {value};\n" for name, value in _NGINX_PARAMS)
    return (
        "# fcgikit answers its ping path itself (fcgikit serve --ping-path), without the app:\n"
        "# 200 while it serves, 503 while it drains. For health checks at the site's root.\n"
        f"location = {ping_path} {{\n"
        '    fastcgi_param SCRIPT_NAME "";\n'
        "    fastcgi_param PATH_INFO $uri;\n"
        f"{params}"
        f"{passing}"
        "}\n"
    )


def _under(path: str, mount: str) -> bool:
    return not mount or path == mount or path.startswith(f"{mount}/")


def nginx_config(
    mount: str, target: Target, *, keep_conn: bool = False, ping_path: str | None = None
) -> str:
    """The location (and, with ``keep_conn`` or upstreams, the upstream) for the app, and
    one for ``ping_path`` when the app's location does not cover it."""
    params = "".join(f"    fastcgi_param {name} {value};\n" for name, value in _NGINX_PARAMS)
    if mount:
        # One regex location covers the bare mount and everything below it, and not
        # /yourapplicationXYZ (which a prefix location would also match).
        head = (
            f"location ~ ^{mount}(?<fcgikit_path_info>/.*)?$ {{\n"
            f"    fastcgi_param SCRIPT_NAME {mount};\n"
            "    fastcgi_param PATH_INFO $fcgikit_path_info;\n"
        )
    else:
        head = (
            'location / {\n    fastcgi_param SCRIPT_NAME "";\n    fastcgi_param PATH_INFO $uri;\n'
        )
    upstream = ""
    where = "# nginx: put this inside your server { } block.\n"
    if keep_conn or target.upstreams:
        upstream = _nginx_upstream_block(target, keep_conn)
        where = "# nginx, part 2 of 2: put this inside your server { } block.\n"
    ping = ""
    if ping_path is not None and not _under(ping_path, mount):
        ping = _nginx_ping_location(ping_path, target, keep_conn)
    return (
        f"{upstream}"
        f"{where}"
        "# The params are listed here instead of 'include fastcgi_params;' because that file\n"
        "# sends a second SCRIPT_NAME, and Debian's copy sets HTTP_HOST to $host, which drops\n"
        "# the port; without it nginx passes the client's Host header as HTTP_HOST.\n"
        f"{head}"
        "    # the biggest upload the app takes (nginx's default, 1m, answers more with 413);\n"
        "    # change it to yours, or 0 for no limit\n"
        f"    client_max_body_size {_NGINX_MAX_BODY};\n"
        f"{params}"
        f"{_nginx_passing(target, keep_conn)}"
        "}\n"
        f"{ping}"
    )
