"""One config for one server: :func:`render`, the servers it knows, and the fixer each needs.

Each web server's config is written by its own module (``nginx.py``, ``apache.py``, ...);
:data:`WEB_SERVERS` maps the names ``fcgikit config`` takes to them. :func:`render` checks
the options, calls the server's renderer and puts two comments after its first line: the
fixer the config needs (:func:`recommended_fixer`), or that it needs none, and how to run
the app behind it.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

from fcgikit.deploy.apache import (
    apache_fcgid_config,
    apache_proxy_fcgi_config,
    htaccess_config,
)
from fcgikit.deploy.caddy import caddy_config
from fcgikit.deploy.h2o import h2o_config
from fcgikit.deploy.haproxy import haproxy_config
from fcgikit.deploy.lighttpd import lighttpd_config
from fcgikit.deploy.nginx import nginx_config
from fcgikit.deploy.process_managers import supervisor_config, systemd_config
from fcgikit.deploy.target import Target, make_target, normalize_mount
from fcgikit.errors import ConfigError
from fcgikit.server.settings.server import ping_path_problem

#: the servers ``--ping-path`` is for: they health-check or route it themselves
PINGING: Final[frozenset[str]] = frozenset({"nginx", "haproxy"})


def _haproxy(mount: str, target: Target) -> str:
    return haproxy_config(mount, target.servers)


#: Each web server's renderer: (mount, target) -> its config. supervisor and systemd run the
#: app rather than front it, and take what they run instead (see render()).
WEB_SERVERS: Final[dict[str, Callable[[str, Target], str]]] = {
    "nginx": nginx_config,
    "haproxy": _haproxy,
    "apache-fcgid": apache_fcgid_config,
    "apache-htaccess": htaccess_config,
    "apache-proxy-fcgi": apache_proxy_fcgi_config,
    "lighttpd": lighttpd_config,
    "caddy": caddy_config,
    "h2o": h2o_config,
}

#: The names ``fcgikit config`` takes: the web servers, then the process managers that run the
#: app on a socket of their own.
SERVERS: Final[tuple[str, ...]] = (*WEB_SERVERS, "supervisor", "systemd")


@dataclass(frozen=True)
class Fixer:
    """A fixer from :mod:`fcgikit.middleware` and its mount argument (``None``: no argument)."""

    name: str
    mount: str | None = None

    def __str__(self) -> str:
        args = "app" if self.mount is None else f"app, {self.mount!r}"
        return f"{self.name}({args})"

    @property
    def spec(self) -> str:
        """``Name`` or ``Name:/mount``, as the test app's ``FCGIKIT_TEST_FIXER`` takes it."""
        return self.name if self.mount is None else f"{self.name}:{self.mount}"


def recommended_fixer(server: str, *, mount: str = "") -> Fixer | None:
    """The fixer the config printed by :func:`render` needs, or ``None`` if it needs none."""
    mount = normalize_mount(mount)
    _check_server(server)
    if server == "apache-htaccess":
        # SCRIPT_NAME arrives as <mount>/yourapplication.fcgi and PATH_INFO went through
        # mod_rewrite (which cuts it at a decoded '?'): rebuild both from REQUEST_URI.
        return Fixer("MountFix", mount)
    if server in ("caddy", "h2o", "haproxy"):
        # None merges '//' in PATH_INFO (Caddy does not resolve '..' either), so the app
        # could route a path other than the one the server's own rules matched; h2o under a
        # prefix also sends SCRIPT_NAME '' and the whole path as PATH_INFO. MountFix
        # rebuilds both from REQUEST_URI, normalised the way nginx and Apache do it.
        return Fixer("MountFix", mount)
    return None


def _check_server(server: str) -> None:
    if server not in SERVERS:
        raise ConfigError(f"unknown server {server!r}; choose one of: {', '.join(SERVERS)}")


def _comments(server: str, mount: str, target: Target, ping_path: str | None = None) -> str:
    """The fixer to use (or that none is needed) and how to run the backend."""
    fixer = recommended_fixer(server, mount=mount)
    if fixer is None:
        text = "# no fixer needed: this config sends SCRIPT_NAME and PATH_INFO right\n"
    else:
        text = (
            "# fixer needed: in yourapplication.fcgi (or your app module) write\n"
            f"#     from fcgikit.middleware import {fixer.name}\n"
            f"#     app = {fixer}\n"
        )
    if target.spawn:
        return text
    mount_option = ""
    if fixer is not None and fixer.name == "MountFix" and fixer.mount is not None:
        text += "# or let fcgikit serve apply it with --mount, as below\n"
        mount_option = f" --mount {shlex.quote(fixer.mount)}"
    if ping_path is not None:
        mount_option += f" --ping-path {shlex.quote(ping_path)}"
    if target.upstreams:
        # Each app server runs its own fcgikit on its own address: a placeholder here.
        return (
            f"{text}# run the app on each of those servers with: fcgikit serve "
            f"yourapplication:app --bind ADDRESS{mount_option}\n"
            "# (over TCP, FCGI_WEB_SERVER_ADDRS=<this web server's IP> lets only it connect)\n"
        )
    serve = f"fcgikit serve yourapplication:app --bind {target.bind}{mount_option}"
    return f"{text}# run the app with: {serve}\n"


def render(
    server: str,
    *,
    mount: str = "",
    socket: str | None = None,
    port: int | None = None,
    spawn: str | None = None,
    host: str = "127.0.0.1",
    app: str = "yourapplication:app",
    chdir: str = "/var/www/yourapplication",
    user: str = "www-data",
    command: str = "fcgikit",
    keep_conn: bool = False,
    upstreams: Sequence[str] = (),
    ping_path: str | None = None,
) -> str:
    """Return a config for ``server`` that serves the app at ``mount`` ('' = the root).

    Args:
        server: one of :data:`SERVERS`.
        mount: the URL prefix, like ``/yourapplication``; ``''`` or ``'/'`` for the root.
        socket: the app's unix socket (``unix:PATH`` or ``PATH``); the default when neither
            this nor ``port`` is given is ``/run/yourapplication/fcgi.sock``.
        port: the app's TCP port on ``host`` instead of a socket.
        spawn: a ``.fcgi`` file the web server starts itself (lighttpd ``bin-path``, h2o
            ``fastcgi.spawn``, mod_fcgid); required in effect for ``apache-fcgid`` and
            ``apache-htaccess``, which always spawn.
        host: the app's TCP host when ``port`` is given.
        app, chdir, user, command: what supervisor and systemd run (``command serve app``).
        keep_conn: nginx only: keep FastCGI connections open, through an ``upstream`` block
            with ``keepalive`` (for the ``http { }`` context) and ``fastcgi_keep_conn on``.
            The config then has two parts, each saying where it goes.
        upstreams: nginx and haproxy: several app servers (``HOST:PORT`` or ``unix:PATH``),
            balanced, each request going to another one when one cannot be reached; instead
            of ``socket`` and ``port``.
        ping_path: nginx and haproxy: the app's ``fcgikit serve --ping-path``; HAProxy
            health-checks every server with it, nginx passes it to fcgikit when the app's
            location does not.

    Raises:
        ConfigError: an unknown server, a mount that is not a plain path, conflicting
            socket/port/spawn/upstreams options, ``keep_conn`` for a server other than
            nginx, ``upstreams`` for a server that cannot balance, or a ``ping_path`` that
            is not a plain path, or for a server other than nginx and haproxy.
    """
    _check_options(server, keep_conn=keep_conn, ping_path=ping_path)
    mount = normalize_mount(mount)
    target = make_target(server, socket, port, host, spawn, upstreams)
    _check_spawn(server, target)
    if server in ("supervisor", "systemd"):
        maker = supervisor_config if server == "supervisor" else systemd_config
        return maker(target, app, chdir, user, command)
    if server == "nginx":
        text = nginx_config(mount, target, keep_conn=keep_conn, ping_path=ping_path)
    elif server == "haproxy":
        text = haproxy_config(mount, target.servers, ping_path)
    else:
        text = WEB_SERVERS[server](mount, target)
    first, _, rest = text.partition("\n")
    return f"{first}\n{_comments(server, mount, target, ping_path)}{rest}"


def _check_options(server: str, *, keep_conn: bool, ping_path: str | None) -> None:
    """ConfigError for an unknown ``server``, or one that cannot take these options."""
    _check_server(server)
    if keep_conn and server != "nginx":
        raise ConfigError(
            f"--keep-conn is for nginx only (an upstream keepalive pool): drop it for {server}"
        )
    _check_ping_path(server, ping_path)


def _check_ping_path(server: str, ping_path: str | None) -> None:
    if ping_path is None:
        return
    if server not in PINGING:
        raise ConfigError(
            f"--ping-path is for {' and '.join(sorted(PINGING))}: {server} passes every URL "
            "of its location to the app, the ping path among them when it is there"
        )
    problem = ping_path_problem(ping_path)
    if problem is not None:
        raise ConfigError(f"--ping-path {problem}")


def _check_spawn(server: str, target: Target) -> None:
    """Refuse ``--spawn`` for a server that cannot start the app."""
    if not target.spawn:
        return
    if server == "systemd":
        raise ConfigError("systemd starts 'fcgikit serve' itself: drop --spawn")
    if server == "apache-proxy-fcgi":
        raise ConfigError("mod_proxy_fcgi cannot start the app: use apache-fcgid for --spawn")
    if server in ("nginx", "caddy", "haproxy"):
        raise ConfigError(f"{server} cannot start the app: run it with supervisor or systemd")
