"""Which fixer each measured web-server configuration needs.

The keys are the configuration names of fcgikit's captures (``tests/data/captured-environs.json``);
the value is the name of a class in :mod:`fcgikit.middleware`, or None where the server
already sends the right SCRIPT_NAME and PATH_INFO. Fixers that take a mount are given the
mount the app is served at (``''`` for the root); ScriptNameStripper takes none.
:class:`~fcgikit.middleware.MountFix` is also right for every one of them.

:data:`WHY` says in one line what goes wrong without the fixer, for comments in generated
server configurations.

>>> RECOMMENDED["lighttpd_root"], WHY["lighttpd_root"].split(":")[0]
('LighttpdRootFix', 'lighttpd ends SCRIPT_NAME at the first slash after "/"')
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

__all__ = ["RECOMMENDED", "WHY"]

_CATALOGUE: dict[str, tuple[str | None, str]] = {
    "apache_fcgid_htaccess": (
        "MountFix",
        "the .htaccess rewrite puts /yourapplication.fcgi into SCRIPT_NAME and every URL, "
        "and mod_rewrite cuts PATH_INFO at an encoded '?' (%3F); ScriptNameStripper fixes "
        "only the first",
    ),
    "apache_fcgid_scriptalias_prefix": (None, "ScriptAlias splits correctly"),
    "apache_fcgid_scriptalias_root": (None, "ScriptAlias splits correctly"),
    "apache_proxyfcgi_prefix": (
        "MountFix",
        "ProxyPass sends the whole path as SCRIPT_NAME and no PATH_INFO",
    ),
    "apache_proxyfcgi_prefix_generic": (
        "MountFix",
        "ProxyPass sends the whole path as SCRIPT_NAME and no PATH_INFO",
    ),
    "apache_proxyfcgi_prefix_pathinfo": (
        "MountFix",
        "proxy-fcgi-pathinfo=1 sends a percent-encoded PATH_INFO and a wrong SCRIPT_NAME",
    ),
    "apache_proxyfcgi_root": (
        "MountFix",
        "ProxyPass sends the whole path as SCRIPT_NAME and no PATH_INFO",
    ),
    "apache_proxyfcgi_root_pathinfo": (
        "MountFix",
        "proxy-fcgi-pathinfo=1 sends a percent-encoded PATH_INFO and a wrong SCRIPT_NAME",
    ),
    "caddy_handle_path_prefix": (
        "MountFix",
        "handle_path strips the prefix, so SCRIPT_NAME is '' and URLs lose the prefix",
    ),
    "caddy_root": (
        "MountFix",
        "Caddy passes PATH_INFO without merging // or resolving .. segments",
    ),
    "caddy_root_split": (
        "MountFix",
        "split at the root puts the whole path in SCRIPT_NAME and none in PATH_INFO",
    ),
    "caddy_route_prefix": (
        "MountFix",
        "handle without split keeps the prefix in PATH_INFO and SCRIPT_NAME ''",
    ),
    "caddy_route_prefix_split": (
        "MountFix",
        "Caddy passes PATH_INFO without merging // or resolving .. segments",
    ),
    "h2o_prefix": (
        "MountFix",
        "h2o keeps the prefix in PATH_INFO and sends SCRIPT_NAME ''",
    ),
    "h2o_root": ("MountFix", "h2o passes PATH_INFO without merging //"),
    "haproxy_prefix": (
        "MountFix",
        "a fcgi-app without path-info sends the whole path as SCRIPT_NAME and no PATH_INFO",
    ),
    "haproxy_prefix_pathinfo": (
        "MountFix",
        "HAProxy passes PATH_INFO without merging // or resolving .. segments",
    ),
    "haproxy_root": (
        "MountFix",
        "a fcgi-app without path-info sends the whole path as SCRIPT_NAME and no PATH_INFO",
    ),
    "haproxy_root_pathinfo": (
        "MountFix",
        "HAProxy passes PATH_INFO without merging // or resolving .. segments",
    ),
    "lighttpd_guide_rewrite": (
        "ScriptNameStripper",
        "url.rewrite onto /yourapplication.fcgi puts the script into SCRIPT_NAME and every URL",
    ),
    "lighttpd_guide_rewrite_fixroot": (
        "ScriptNameStripper",
        "url.rewrite onto /yourapplication.fcgi puts the script into SCRIPT_NAME and every URL",
    ),
    "lighttpd_prefix": (None, "a prefix key without a trailing slash splits correctly"),
    "lighttpd_root": (
        "LighttpdRootFix",
        'lighttpd ends SCRIPT_NAME at the first slash after "/": /foo/bar arrives as '
        "/foo + /bar (or enable fix-root-scriptname)",
    ),
    "lighttpd_root_fixroot": (None, "fix-root-scriptname makes the split correct"),
    "nginx_naive_prefix": (
        "MountFix",
        "stock fastcgi_params send no PATH_INFO; SCRIPT_NAME is the whole path",
    ),
    "nginx_naive_root": (
        "MountFix",
        "stock fastcgi_params send no PATH_INFO; SCRIPT_NAME is the whole path",
    ),
    "nginx_prefix": (
        None,
        "fastcgi_split_path_info in the named location splits correctly (the bare prefix "
        "is rewritten to /yourapplication/ and arrives as PATH_INFO '/')",
    ),
    "nginx_root": (
        None,
        "the recipe sends SCRIPT_NAME twice; fcgikit's server keeps the last, ''",
    ),
}

#: Configuration name -> fixer class name, or None when no fixer is needed.
RECOMMENDED: Final[Mapping[str, str | None]] = MappingProxyType(
    {name: fixer for name, (fixer, _) in _CATALOGUE.items()}
)
#: Configuration name -> one line on what the server gets wrong (or why it is fine).
WHY: Final[Mapping[str, str]] = MappingProxyType(
    {name: why for name, (_, why) in _CATALOGUE.items()}
)
