"""The catalogue: every web server configuration fcgikit knows, as one table of rules.

Each :class:`Quirk` names a configuration, the family whose params it sends besides the path,
its SERVER_SOFTWARE, how it normalises the path, how it splits it (the rule in the family's
module), what CONTENT_LENGTH it sends for a request without a body, and which headers it
never passes on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from fcgikit.quirks.apache import (
    split_apache_htaccess,
    split_apache_proxy_fcgi,
    split_apache_proxy_fcgi_generic,
    split_apache_proxy_fcgi_pathinfo,
    split_apache_scriptalias,
)
from fcgikit.quirks.caddy import split_caddy, split_caddy_handle_path, split_caddy_with_split
from fcgikit.quirks.h2o import split_h2o
from fcgikit.quirks.haproxy import split_haproxy, split_haproxy_path_info
from fcgikit.quirks.lighttpd import split_lighttpd, split_lighttpd_fix_root, split_lighttpd_rewrite
from fcgikit.quirks.nginx import split_nginx, split_nginx_naive
from fcgikit.quirks.paths import (
    Params,
    RequestPath,
    full_normalize,
    no_normalize,
    remove_dot_segments,
)


@dataclass(frozen=True)
class Quirk:
    """One web server configuration: how it splits the path and what else it sends."""

    name: str
    family: str  # nginx, lighttpd, apache, caddy, h2o, haproxy: what it sends besides the path
    software: str
    normalize: Callable[[bytes], bytes]
    split: Callable[[RequestPath], Params]
    #: CONTENT_LENGTH on a request without a body: a value, or None to leave it out
    empty_length: str | None
    #: HTTP_* params this server never passes on
    dropped_headers: frozenset[str] = frozenset()


_APACHE = "Apache/2.4.71 (Debian)"
_HAPROXY = "HAProxy 2.6.12-1+deb12u4"
# Authorization is hidden (REMOTE_USER/AUTH_TYPE are derived from it); Proxy is dropped too.
_HAPROXY_DROPS = frozenset({"HTTP_PROXY", "HTTP_AUTHORIZATION"})
_APACHE_DROPS = frozenset({"HTTP_PROXY", "HTTP_AUTHORIZATION"})

_QUIRKS: Final[tuple[Quirk, ...]] = (
    Quirk("nginx", "nginx", "nginx/1.22.1", full_normalize, split_nginx, ""),
    Quirk("nginx-naive", "nginx", "nginx/1.22.1", full_normalize, split_nginx_naive, ""),
    Quirk(
        "lighttpd",
        "lighttpd",
        "lighttpd/1.4.69",
        full_normalize,
        split_lighttpd,
        "0",
        frozenset({"HTTP_PROXY"}),
    ),
    Quirk(
        "lighttpd-fix-root",
        "lighttpd",
        "lighttpd/1.4.69",
        full_normalize,
        split_lighttpd_fix_root,
        "0",
        frozenset({"HTTP_PROXY"}),
    ),
    Quirk(
        "lighttpd-rewrite",
        "lighttpd",
        "lighttpd/1.4.69",
        full_normalize,
        split_lighttpd_rewrite,
        "0",
        frozenset({"HTTP_PROXY"}),
    ),
    Quirk(
        "apache-htaccess",
        "apache",
        _APACHE + " mod_fcgid/2.3.9",
        full_normalize,
        split_apache_htaccess,
        "0",
        _APACHE_DROPS,
    ),
    Quirk(
        "apache-fcgid",
        "apache",
        _APACHE + " mod_fcgid/2.3.9",
        full_normalize,
        split_apache_scriptalias,
        "0",
        _APACHE_DROPS,
    ),
    Quirk(
        "apache-proxy-fcgi",
        "apache",
        _APACHE,
        full_normalize,
        split_apache_proxy_fcgi,
        None,
        _APACHE_DROPS,
    ),
    Quirk(
        "apache-proxy-fcgi-generic",
        "apache",
        _APACHE,
        full_normalize,
        split_apache_proxy_fcgi_generic,
        None,
        _APACHE_DROPS,
    ),
    Quirk(
        "apache-proxy-fcgi-pathinfo",
        "apache",
        _APACHE,
        full_normalize,
        split_apache_proxy_fcgi_pathinfo,
        None,
        _APACHE_DROPS,
    ),
    Quirk("caddy", "caddy", "Caddy/2.6.2", no_normalize, split_caddy, "0"),
    Quirk("caddy-split", "caddy", "Caddy/2.6.2", no_normalize, split_caddy_with_split, "0"),
    Quirk("caddy-handle-path", "caddy", "Caddy/2.6.2", no_normalize, split_caddy_handle_path, "0"),
    Quirk("h2o", "h2o", "h2o/2.2.5", remove_dot_segments, split_h2o, None),
    Quirk(
        "haproxy",
        "haproxy",
        _HAPROXY,
        no_normalize,
        split_haproxy,
        "0",
        _HAPROXY_DROPS,
    ),
    Quirk(
        "haproxy-path-info",
        "haproxy",
        _HAPROXY,
        no_normalize,
        split_haproxy_path_info,
        "0",
        _HAPROXY_DROPS,
    ),
)

#: Configuration name -> its rules.
QUIRKS: Final[dict[str, Quirk]] = {quirk.name: quirk for quirk in _QUIRKS}
#: The configuration names :func:`fastcgi_params` knows.
SERVERS: Final[tuple[str, ...]] = tuple(QUIRKS)
