"""What each web server sends over FastCGI for a request: the quirk catalogue, as code.

Web servers disagree about SCRIPT_NAME and PATH_INFO (and about REQUEST_URI, duplicate params,
CONTENT_LENGTH on a GET, and which headers they drop). :func:`fastcgi_params` answers, for one
web server configuration, what params it would send to the app for one HTTP request, so the
app can be tried under that server without installing it
(:func:`fcgikit.testing.through_fastcgi` sends them through the real FastCGI path).

>>> params = dict(fastcgi_params("lighttpd", "GET", "/foo/bar%20baz?x=1"))
>>> params[b"SCRIPT_NAME"], params[b"PATH_INFO"], params[b"REQUEST_URI"]
(b'/foo', b'/bar baz', b'/foo/bar%20baz?x=1')

The rules were read from the servers' sources and checked against the params captured from
nginx 1.22, lighttpd 1.4.69, Apache 2.4 (mod_fcgid, mod_proxy_fcgi), Caddy 2.6, h2o 2.2 and
HAProxy 2.6 in front of a param dumper (``tests/data/captured-environs.json``; the tests hold
every rule here to every capture). Nothing here reads that file: the rules are the code.
Each family's rules are in its own module (``nginx``, ``lighttpd``, ``apache``, ``caddy``,
``h2o``, ``haproxy``), the table of configurations in ``catalogue``, and
:func:`fastcgi_params` in ``params``.

Names (``SERVERS``), each with a root mount (``mount=""``) and a prefix mount
(``mount="/yourapplication"``) unless noted:

``nginx``               Flask's recipe: ``fastcgi_split_path_info`` under a prefix; at the root
                        ``PATH_INFO $fastcgi_script_name`` + ``SCRIPT_NAME ""`` after
                        ``include fastcgi_params``, so SCRIPT_NAME is sent twice.
``nginx-naive``         only ``include fastcgi_params``: SCRIPT_NAME is the whole path, no
                        PATH_INFO.
``lighttpd``            ``fastcgi.server = ("/" => ...)`` or ``("/prefix" => ...)`` with
                        ``check-local => "disable"``; at the root SCRIPT_NAME ends at the first
                        slash after ``/``.
``lighttpd-fix-root``   the same with ``fix-root-scriptname => "enable"``.
``lighttpd-rewrite``    the guide's ``url.rewrite-once`` onto ``/yourapplication.fcgi`` (root only).
``apache-htaccess``     mod_fcgid + the guide's ``.htaccess`` rewrite onto yourapplication.fcgi;
                        under a prefix, the ``.htaccess`` lives in that directory.
``apache-fcgid``        mod_fcgid + ``ScriptAlias``.
``apache-proxy-fcgi``   ``ProxyPass "<mount>/" "fcgi://localhost/"`` (FPM backend type);
``apache-proxy-fcgi-generic`` with ``ProxyFCGIBackendType GENERIC``;
``apache-proxy-fcgi-pathinfo`` with ``proxy-fcgi-pathinfo=1``.
``caddy``               ``reverse_proxy`` with the fastcgi transport and no ``split`` (under a
                        prefix: ``handle /prefix/*``, which keeps the prefix in PATH_INFO).
``caddy-split``         the same with ``split`` (at the root with a split that never matches).
``caddy-handle-path``   ``handle_path /prefix/*``, which strips the prefix from the path.
``h2o``                 ``fastcgi.connect`` under ``paths:``.
``haproxy``             ``fcgi-app`` with only ``docroot`` (+ ``use_backend`` for the prefix):
                        SCRIPT_NAME is the whole decoded path, no PATH_INFO; SERVER_NAME is
                        the Host header, port included; REMOTE_USER and AUTH_TYPE are read
                        from the Authorization header (password unchecked), which is hidden.
``haproxy-path-info``   the same with ``path-info ^(/prefix)(/.*)?$`` (``^()(/.*)$`` at the
                        root), as ``fcgikit config haproxy`` prints (without its ``set-param``
                        lines): SCRIPT_NAME the mount, left out at the root as every empty
                        value is; ``//`` and ``..`` kept.
"""

from __future__ import annotations

from fcgikit.quirks.catalogue import QUIRKS as QUIRKS
from fcgikit.quirks.catalogue import SERVERS, Quirk
from fcgikit.quirks.params import fastcgi_params
from fcgikit.quirks.paths import SCRIPT_FILE as SCRIPT_FILE
from fcgikit.quirks.paths import NotForwarded, normalize_mount
from fcgikit.quirks.paths import Params as Params

__all__ = ["SERVERS", "NotForwarded", "Quirk", "fastcgi_params", "normalize_mount"]
