"""Web server and process manager configs for an app served by fcgikit.

``fcgikit config SERVER`` prints one of these. Each config is the one the integration suite
(``tests/integration``) runs against the real server, so what is printed here is what was
tested. Where a server can be told to send the right ``SCRIPT_NAME`` and ``PATH_INFO`` on its
own, the config does that and needs no fixer; where it cannot, the first comment line names the
:mod:`fcgikit.middleware` fixer to wrap the app in::

    >>> print(render("nginx", mount="/yourapplication", socket="/run/app.sock"))  # doctest: +SKIP
    # nginx: put this inside your server { } block.
    # no fixer needed: this config sends SCRIPT_NAME and PATH_INFO right
    ...

What the servers send without these configs, and why each setting is there, is written down
in ``docs/`` and in the research notes the tests cite.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from fcgikit.addresses import FdAddress, TcpAddress, UnixAddress, parse_address
from fcgikit.deploy_haproxy import haproxy_config
from fcgikit.errors import ConfigError

__all__ = ["SERVERS", "Fixer", "Target", "recommended_fixer", "render"]

SERVERS = (
    "nginx",
    "haproxy",
    "apache-fcgid",
    "apache-htaccess",
    "apache-proxy-fcgi",
    "lighttpd",
    "caddy",
    "h2o",
    "supervisor",
    "systemd",
)

# Servers that start the app themselves from a .fcgi file (the socket arrives on fd 0).
SPAWNING = frozenset({"apache-fcgid", "apache-htaccess"})
# Servers that balance one app over several app servers (--upstream).
BALANCING = frozenset({"nginx", "haproxy"})
DEFAULT_SPAWN = "/var/www/yourapplication/yourapplication.fcgi"
DEFAULT_SOCKET = "/run/yourapplication/fcgi.sock"
# Where a spawning lighttpd creates the app's socket: lighttpd (www-data) must be able to
# write there, and Debian's lighttpd package makes this directory for it (tmpfiles.d), as for
# the PHP socket of its own fastcgi config.
LIGHTTPD_SPAWN_SOCKET = "/run/lighttpd/yourapplication.sock"


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


@dataclass(frozen=True)
class Target:
    """Where the web server finds the app: a unix socket or a TCP port, maybe spawned."""

    socket: str | None
    host: str
    port: int | None
    spawn: str | None
    #: several app servers (``--upstream``), as ``unix:PATH`` or ``HOST:PORT``; then
    #: ``socket`` and ``port`` are None
    upstreams: tuple[str, ...] = ()

    @property
    def is_unix(self) -> bool:
        return self.port is None

    @property
    def bind(self) -> str:
        """The address as ``fcgikit serve --bind`` takes it."""
        return f"unix:{self.socket}" if self.is_unix else f"{self.host}:{self.port}"

    @property
    def servers(self) -> tuple[str, ...]:
        """Every app server, as ``unix:PATH`` or ``HOST:PORT`` (``[IPv6]:PORT``)."""
        return self.upstreams or (self.bind,)


def _normalize_mount(mount: str) -> str:
    mount = mount.strip()
    if mount in ("", "/"):
        return ""
    if not mount.startswith("/"):
        raise ConfigError(f"mount {mount!r} must start with '/' (like '/yourapplication')")
    if any(c in mount for c in "?#\"' \t\n\\{};$"):
        raise ConfigError(f"mount {mount!r}: use a plain URL path like '/yourapplication'")
    return mount.rstrip("/")


def _upstream(text: str) -> str:
    """One ``--upstream`` as ``unix:PATH`` or ``HOST:PORT``, checked."""
    address = parse_address(text)
    if isinstance(address, FdAddress):
        raise ConfigError(f"upstream {text!r}: give HOST:PORT or unix:PATH, not a descriptor")
    if isinstance(address, UnixAddress) and not address.path.startswith("/"):
        raise ConfigError(f"upstream socket path {address.path!r} must be absolute")
    if isinstance(address, TcpAddress) and address.port == 0:
        raise ConfigError(f"upstream {text!r}: port 0 is not a port a web server can reach")
    return str(address)


def _target(
    server: str,
    socket: str | None,
    port: int | None,
    host: str,
    spawn: str | None,
    upstreams: Sequence[str] = (),
) -> Target:
    if upstreams:
        if server not in BALANCING:
            raise ConfigError(
                f"--upstream is for {' and '.join(sorted(BALANCING))}: {server} cannot "
                "balance several app servers"
            )
        if socket is not None or port is not None or spawn is not None:
            raise ConfigError("--upstream names every app server: drop --socket/--port/--spawn")
        servers = tuple(dict.fromkeys(_upstream(text) for text in upstreams))
        return Target(socket=None, host=host, port=None, spawn=None, upstreams=servers)
    if socket is not None and port is not None:
        raise ConfigError("give either a socket or a port, not both")
    if socket is not None and socket.startswith("unix:"):
        socket = socket[len("unix:") :]
    if socket is not None and not socket.startswith("/"):
        raise ConfigError(f"socket path {socket!r} must be absolute")
    if server in SPAWNING:
        if socket is not None or port is not None:
            raise ConfigError(f"{server} starts the app itself: pass --spawn, not a socket")
        spawn = spawn or DEFAULT_SPAWN
    if port is None and socket is None:
        socket = LIGHTTPD_SPAWN_SOCKET if server == "lighttpd" and spawn else DEFAULT_SOCKET
    if port is not None and not 0 < port < 65536:
        raise ConfigError(f"port {port} is not between 1 and 65535")
    return Target(socket=socket, host=host, port=port, spawn=spawn)


def recommended_fixer(server: str, *, mount: str = "") -> Fixer | None:
    """The fixer the config printed by :func:`render` needs, or ``None`` if it needs none."""
    mount = _normalize_mount(mount)
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


def _comments(server: str, mount: str, target: Target) -> str:
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
    if target.upstreams:
        # Each app server runs its own fcgikit on its own address: a placeholder here.
        return (
            f"{text}# run the app on each of those servers with: fcgikit serve "
            f"yourapplication:app --bind ADDRESS{mount_option}\n"
            "# (over TCP, FCGI_WEB_SERVER_ADDRS=<this web server's IP> lets only it connect)\n"
        )
    serve = f"fcgikit serve yourapplication:app --bind {target.bind}{mount_option}"
    return f"{text}# run the app with: {serve}\n"


# --------------------------------------------------------------------------- nginx

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
# once by default (--threads 16). An idle connection costs fcgikit a file descriptor, not a
# thread, so several nginx workers keeping 16 each is no burden.
_NGINX_KEEPALIVE = 16


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


def _nginx(mount: str, target: Target, *, keep_conn: bool = False) -> str:
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
    )


# --------------------------------------------------------------------------- lighttpd


def _lighttpd(mount: str, target: Target) -> str:
    key = mount or "/"
    lines = []
    if target.is_unix:
        lines.append(f'"socket" => "{target.socket}",')
    else:
        lines.append(f'"host" => "{target.host}",')
        lines.append(f'"port" => {target.port},')
    if target.spawn:
        lines.append(f'"bin-path" => "{target.spawn}",')
        lines.append('"max-procs" => 1,')
    lines.append('"check-local" => "disable",')
    if not mount:
        # Without it lighttpd puts the first path segment into SCRIPT_NAME at "/".
        lines.append('"fix-root-scriptname" => "enable",')
    body = "".join(f"        {line}\n" for line in lines)
    spawn_note = (
        "# lighttpd starts the .fcgi itself (bin-path); the socket reaches it on fd 0.\n"
        "# lighttpd creates the socket as its own user: the directory must exist and be\n"
        "# writable by that user (Debian's lighttpd makes /run/lighttpd for www-data).\n"
        if target.spawn
        else ""
    )
    return (
        "# lighttpd: add to lighttpd.conf (or conf-enabled/).\n"
        f"{spawn_note}"
        'server.modules += ( "mod_fastcgi" )\n'
        "fastcgi.server = (\n"
        f'    "{key}" => ((\n'
        f"{body}"
        "    )),\n"
        ")\n"
    )


# --------------------------------------------------------------------------- Apache


def _apache_fcgid(mount: str, target: Target) -> str:
    spawn = target.spawn or DEFAULT_SPAWN
    directory, _, filename = spawn.rpartition("/")
    alias = f"ScriptAlias {mount} {spawn}\n" if mount else f"ScriptAlias / {spawn}/\n"
    return (
        "# Apache + mod_fcgid (a2enmod fcgid): put this inside your <VirtualHost>.\n"
        "# Apache starts the .fcgi itself; the socket reaches it on fd 0.\n"
        "# mod_fcgid refuses request bodies over 128 KiB unless told otherwise:\n"
        "FcgidMaxRequestLen 1073741824\n"
        f"{alias}"
        f'<Directory "{directory or "/"}">\n'
        f'    <Files "{filename}">\n'
        "        SetHandler fcgid-script\n"
        "        Options +ExecCGI\n"
        "    </Files>\n"
        "    Require all granted\n"
        "</Directory>\n"
    )


def _htaccess(mount: str, target: Target) -> str:
    spawn = target.spawn or DEFAULT_SPAWN
    filename = spawn.rpartition("/")[2]
    where = f"the directory that serves {mount}/" if mount else "the document root"
    return (
        f"# .htaccess in {where}, next to {filename}.\n"
        "# Needs mod_fcgid and mod_rewrite, and AllowOverride FileInfo Options (or All).\n"
        "# mod_fcgid's FcgidMaxRequestLen (default 128 KiB) can only be raised in the server\n"
        "# config, not here: bigger uploads fail with 500 on hosts that keep the default.\n"
        "<IfModule mod_fcgid.c>\n"
        "    <Files ~ (\\.fcgi$)>\n"
        "        SetHandler fcgid-script\n"
        "        Options +FollowSymLinks +ExecCGI\n"
        "    </Files>\n"
        "</IfModule>\n"
        "# Everything that is not a file goes to the .fcgi. The path is not copied into the\n"
        "# rewrite (the guide's 'RewriteRule ^(.*)$ app.fcgi/$1'): a decoded %3F in $1 is\n"
        "# refused with 403 by Apache 2.4.60+; MountFix reads the path from REQUEST_URI.\n"
        "<IfModule mod_rewrite.c>\n"
        "    Options +FollowSymlinks\n"
        "    RewriteEngine On\n"
        f"    RewriteBase {mount}/\n"
        "    RewriteCond %{REQUEST_FILENAME} !-f\n"
        f"    RewriteRule ^ {filename} [L]\n"
        "</IfModule>\n"
    )


def _apache_proxy_fcgi(mount: str, target: Target) -> str:
    if target.is_unix:
        backend = f"unix:{target.socket}|fcgi://localhost"
    else:
        backend = f"fcgi://{target.host}:{target.port}"
    match = f"^{mount}(/|$)" if mount else "^/"
    proxy = f'ProxyPass "{mount}" "{backend}"\n' if mount else f'ProxyPass "/" "{backend}/"\n'
    return (
        "# Apache + mod_proxy_fcgi (a2enmod proxy_fcgi setenvif): inside your <VirtualHost>.\n"
        "# proxy-fcgi-pathinfo=unescape makes Apache send SCRIPT_NAME = the mount and a\n"
        "# decoded PATH_INFO; without it SCRIPT_NAME is the whole path and PATH_INFO is unset.\n"
        f'SetEnvIf Request_URI "{match}" proxy-fcgi-pathinfo=unescape\n'
        f"{proxy}"
    )


# --------------------------------------------------------------------------- Caddy, h2o


def _caddy(mount: str, target: Target) -> str:
    upstream = f"unix/{target.socket}" if target.is_unix else f"{target.host}:{target.port}"
    if not mount:
        return (
            "# Caddy: put this inside your site block (example.com { ... }).\n"
            f"reverse_proxy {upstream} {{\n"
            "    transport fastcgi\n"
            "}\n"
        )
    return (
        "# Caddy: put this inside your site block (example.com { ... }).\n"
        "# 'split' makes Caddy send SCRIPT_NAME = the mount and PATH_INFO = the rest\n"
        "# (handle_path would strip the mount and lose it; then use MountFix).\n"
        f"@yourapplication path {mount} {mount}/*\n"
        f"reverse_proxy @yourapplication {upstream} {{\n"
        "    transport fastcgi {\n"
        f"        split {mount}\n"
        "    }\n"
        "}\n"
    )


def _h2o(mount: str, target: Target) -> str:
    key = mount or "/"
    if target.spawn:
        handler = f'    fastcgi.spawn: "exec {target.spawn}"\n'
    elif target.is_unix:
        handler = f"    fastcgi.connect:\n      port: {target.socket}\n      type: unix\n"
    else:
        handler = (
            "    fastcgi.connect:\n"
            f"      host: {target.host}\n      port: {target.port}\n      type: tcp\n"
        )
    return f'# h2o: put this under hosts: "example.com:80":\npaths:\n  "{key}":\n{handler}'


# --------------------------------------------------------------------------- process managers


def _supervisor(target: Target, app: str, chdir: str, user: str, command: str) -> str:
    socket = f"unix://{target.socket}" if target.is_unix else f"tcp://{target.host}:{target.port}"
    owner = f"socket_owner = {user}:{user}\nsocket_mode = 0660\n" if target.is_unix else ""
    if target.spawn:
        # the guide's yourapplication.fcgi: WSGIServer(app).run() serves the socket on fd 0
        run = target.spawn
        chdir = os.path.dirname(target.spawn) or chdir
    else:
        run = f"{command} serve {app} --chdir {chdir}"
    return (
        "# supervisord: /etc/supervisor/conf.d/yourapplication.conf\n"
        "# supervisord opens the socket and hands it to fcgikit on fd 0.\n"
        "[fcgi-program:yourapplication]\n"
        f"socket = {socket}\n"
        f"{owner}"
        f"command = {run}\n"
        f"directory = {chdir}\n"
        f"user = {user}\n"
        "numprocs = 1\n"
        "process_name = %(program_name)s_%(process_num)02d\n"
        "stopsignal = TERM\n"
        "autorestart = true\n"
        "redirect_stderr = true\n"
    )


def _systemd(target: Target, app: str, chdir: str, user: str, command: str) -> str:
    if target.is_unix:
        listen = (
            f"ListenStream={target.socket}\nSocketUser={user}\nSocketGroup={user}\n"
            "SocketMode=0660\n"
        )
    else:
        listen = f"ListenStream={target.host}:{target.port}\n"
    return (
        "# systemd: two units. Enable with: systemctl enable --now yourapplication.socket\n"
        "# /etc/systemd/system/yourapplication.socket\n"
        "[Unit]\n"
        "Description=yourapplication FastCGI socket\n"
        "\n"
        "[Socket]\n"
        f"{listen}"
        "\n"
        "[Install]\n"
        "WantedBy=sockets.target\n"
        "\n"
        "# /etc/systemd/system/yourapplication.service\n"
        "[Unit]\n"
        "Description=yourapplication (fcgikit)\n"
        "Requires=yourapplication.socket\n"
        "After=network.target\n"
        "\n"
        "[Service]\n"
        f"ExecStart={command} serve {app} --chdir {chdir}\n"
        "# The listening socket on fd 0, as a web server's spawner would pass it.\n"
        "StandardInput=socket\n"
        "StandardOutput=journal\n"
        "StandardError=journal\n"
        f"User={user}\n"
        f"WorkingDirectory={chdir}\n"
        "KillSignal=SIGTERM\n"
        "Restart=on-failure\n"
        "\n"
        "[Install]\n"
        "WantedBy=multi-user.target\n"
    )


def _haproxy(mount: str, target: Target) -> str:
    return haproxy_config(mount, target.servers)


_WEB_SERVERS: dict[str, Callable[[str, Target], str]] = {
    "nginx": _nginx,
    "haproxy": _haproxy,
    "apache-fcgid": _apache_fcgid,
    "apache-htaccess": _htaccess,
    "apache-proxy-fcgi": _apache_proxy_fcgi,
    "lighttpd": _lighttpd,
    "caddy": _caddy,
    "h2o": _h2o,
}


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

    Raises:
        ConfigError: an unknown server, a mount that is not a plain path, conflicting
            socket/port/spawn/upstreams options, ``keep_conn`` for a server other than
            nginx, or ``upstreams`` for a server that cannot balance.
    """
    _check_server(server)
    if keep_conn and server != "nginx":
        raise ConfigError(
            f"--keep-conn is for nginx only (an upstream keepalive pool): drop it for {server}"
        )
    mount = _normalize_mount(mount)
    target = _target(server, socket, port, host, spawn, upstreams)
    if server in ("supervisor", "systemd"):
        if target.spawn and server == "systemd":
            raise ConfigError("systemd starts 'fcgikit serve' itself: drop --spawn")
        maker = _supervisor if server == "supervisor" else _systemd
        return maker(target, app, chdir, user, command)
    if server == "apache-proxy-fcgi" and target.spawn:
        raise ConfigError("mod_proxy_fcgi cannot start the app: use apache-fcgid for --spawn")
    if server in ("nginx", "caddy", "haproxy") and target.spawn:
        raise ConfigError(f"{server} cannot start the app: run it with supervisor or systemd")
    if keep_conn:
        text = _nginx(mount, target, keep_conn=True)
    else:
        text = _WEB_SERVERS[server](mount, target)
    first, _, rest = text.partition("\n")
    return f"{first}\n{_comments(server, mount, target)}{rest}"
