"""``fcgikit.deploy.render``: what it prints, and that the real servers accept it.

The syntax checks wrap each rendered fragment into the same whole config the integration
suite runs (``tests/integration/harness.py``) and ask the server itself: ``nginx -t``,
``lighttpd -tt``, ``apache2 -t``, ``caddy validate``, ``h2o -t``, ``haproxy -c``. The
behaviour of these configs (the URLs the app sees) is checked in ``tests/integration``.
"""

from __future__ import annotations

import configparser
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from werkzeug.test import Client

import fcgikit.middleware
from fcgikit.cli import _build_parser
from fcgikit.deploy import SERVERS, Fixer, recommended_fixer, render
from fcgikit.deploy.haproxy import route_line
from fcgikit.errors import ConfigError
from fcgikit.server.keeper import KILL_MARGIN
from fcgikit.server.settings import ServerSettings
from fcgikit.testing import through_fastcgi
from tests.integration.harness import (
    Layout,
    caddy_environment,
    missing,
    nginx_command,
    nginx_keep_conn_parts,
    require_apache_module,
    require_binary,
    write_apache_config,
    write_caddy_config,
    write_h2o_config,
    write_haproxy_config,
    write_lighttpd_config,
    write_nginx_config,
)
from tests.test_cli import run_fcgikit

MOUNTS = [pytest.param("", id="root"), pytest.param("/yourapplication", id="prefix")]
SOCKET = "/run/yourapplication/fcgi.sock"
APACHE_MODULE_PACKAGES = {"fcgid": "libapache2-mod-fcgid"}


# --------------------------------------------------------------------------- what is printed


#: What `fcgikit config` can print that is not a web server: they start the app, and the web
#: server in front decides the params.
PROCESS_MANAGERS = ("supervisor", "systemd")


#: Where the params that `check --server` and testing send under a name are those of another
#: config than the one `fcgikit config` prints under it: the Flask guide's lighttpd config
#: (no fix-root-scriptname) and Apache's ProxyPass without proxy-fcgi-pathinfo. There the app
#: needs the fixer fcgikit.middleware.catalogue names for those configs.
MODELS_ANOTHER_CONFIG = {
    ("lighttpd", ""): "LighttpdRootFix",
    ("apache-proxy-fcgi", ""): "MountFix",
    ("apache-proxy-fcgi", "/yourapplication"): "MountFix",
}


@pytest.mark.parametrize("mount", ["", "/yourapplication"])
@pytest.mark.parametrize("server", [s for s in SERVERS if s not in PROCESS_MANAGERS])
def test_config_check_and_testing_know_each_web_server_by_one_name(server: str, mount: str) -> None:
    """The name `fcgikit config NAME` takes is one `check --server` and testing take."""

    def app(environ: dict[str, object], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [f"{environ['SCRIPT_NAME']}|{environ['PATH_INFO']}".encode()]

    # the app as the config's comment says to write it: with its fixer, if it needs one
    fixer = recommended_fixer(server, mount=mount)
    name = MODELS_ANOTHER_CONFIG.get((server, mount), fixer.name if fixer else None)
    if name is not None:
        fix = getattr(fcgikit.middleware, name)
        app = fix(app) if name == "ScriptNameStripper" else fix(app, mount)
    with through_fastcgi(app, server=server, mount=mount or "/") as wrapped:
        reply = Client(wrapped).get(f"{mount}/a/b")
    assert reply.status_code == 200
    assert reply.text == f"{mount}|/a/b"  # the split the config's comment promises
    parser = _build_parser()
    assert parser.parse_args(["check", "app.fcgi", "--server", server]).server == server


def test_a_spawning_lighttpd_gets_a_socket_directory_it_can_write() -> None:
    text = render("lighttpd", spawn="/var/www/yourapplication/yourapplication.fcgi")
    assert '"socket" => "/run/lighttpd/yourapplication.sock",' in text
    assert "Debian's lighttpd makes /run/lighttpd for www-data" in text
    tmpfiles = Path("/usr/lib/tmpfiles.d/lighttpd.tmpfile.conf")
    if tmpfiles.exists():  # Debian's lighttpd package: the directory it makes for www-data
        assert "d /run/lighttpd 0750 www-data www-data" in tmpfiles.read_text()
    # an app you run yourself keeps its own directory
    assert '"socket" => "/run/yourapplication/fcgi.sock",' in render("lighttpd")


@pytest.mark.parametrize("mount", ["", "/yourapplication"])
@pytest.mark.parametrize("keep_conn", [False, True])
def test_nginx_takes_uploads_bigger_than_its_1m_default(mount: str, keep_conn: bool) -> None:
    location = render("nginx", mount=mount, keep_conn=keep_conn).split("location ")[1]
    assert "    client_max_body_size 100m;\n" in location  # only for the app's location
    assert "change it to yours, or 0 for no limit" in location


@pytest.mark.parametrize("server", SERVERS)
@pytest.mark.parametrize("mount", ["", "/yourapplication"])
def test_every_render_names_its_fixer(server: str, mount: str) -> None:
    text = render(server, mount=mount)
    assert text.endswith("\n")
    if server in ("supervisor", "systemd"):
        return  # the web server's config decides the URLs, not the process manager's
    fixer = recommended_fixer(server, mount=mount)
    if fixer is None:
        assert "# no fixer needed" in text
    else:
        assert f"#     app = {fixer}\n" in text
        assert f"from fcgikit.middleware import {fixer.name}" in text


@pytest.mark.parametrize(
    ("server", "mount", "expected"),
    [
        pytest.param("nginx", "/yourapplication", None, id="nginx"),
        pytest.param("lighttpd", "", None, id="lighttpd-root"),
        pytest.param("apache-fcgid", "/yourapplication", None, id="scriptalias"),
        pytest.param("apache-proxy-fcgi", "/yourapplication", None, id="proxy-fcgi"),
        # Caddy and h2o pass '//' (and Caddy '..') through: MountFix normalises like nginx
        pytest.param(
            "caddy", "/yourapplication", Fixer("MountFix", "/yourapplication"), id="caddy-split"
        ),
        pytest.param("caddy", "", Fixer("MountFix", ""), id="caddy-root"),
        pytest.param("h2o", "", Fixer("MountFix", ""), id="h2o-root"),
        pytest.param(
            "h2o", "/yourapplication", Fixer("MountFix", "/yourapplication"), id="h2o-prefix"
        ),
        pytest.param("apache-htaccess", "", Fixer("MountFix", ""), id="htaccess-root"),
        pytest.param("apache-htaccess", "/app", Fixer("MountFix", "/app"), id="htaccess-subdir"),
        # HAProxy passes '//' and '..' through as well
        pytest.param("haproxy", "", Fixer("MountFix", ""), id="haproxy-root"),
        pytest.param("haproxy", "/app", Fixer("MountFix", "/app"), id="haproxy-prefix"),
    ],
)
def test_recommended_fixer(server: str, mount: str, expected: Fixer | None) -> None:
    assert recommended_fixer(server, mount=mount) == expected


def test_fixer_text() -> None:
    assert str(Fixer("MountFix", "/yourapplication")) == "MountFix(app, '/yourapplication')"
    assert str(Fixer("LighttpdRootFix")) == "LighttpdRootFix(app)"
    assert Fixer("MountFix", "/x").spec == "MountFix:/x"


@pytest.mark.parametrize("mount", ["/", "", " /yourapplication/ "])
def test_mount_is_normalized(mount: str) -> None:
    expected = "" if mount.strip() in ("", "/") else "/yourapplication"
    assert render("lighttpd", mount=mount) == render("lighttpd", mount=expected)


def test_socket_forms() -> None:
    plain = render("nginx", socket="/run/app.sock")
    assert render("nginx", socket="unix:/run/app.sock") == plain
    assert "fastcgi_pass unix:/run/app.sock;" in plain
    assert "--bind unix:/run/app.sock" in plain
    tcp = render("nginx", port=9000)
    assert "fastcgi_pass 127.0.0.1:9000;" in tcp
    assert "--bind 127.0.0.1:9000" in tcp


def _without_comments(text: str) -> list[str]:
    return [line for line in text.splitlines() if not line.lstrip().startswith("#")]


@pytest.mark.parametrize("mount", MOUNTS)
def test_nginx_keep_conn_puts_an_upstream_in_http_and_passes_to_it(mount: str) -> None:
    text = render("nginx", mount=mount, socket=SOCKET, keep_conn=True)
    upstream, location = nginx_keep_conn_parts(text)
    assert upstream.startswith("# nginx, part 1 of 2: in http { }, not in server { }")
    assert _without_comments(upstream) == [
        "upstream fcgikit_run_yourapplication_fcgi_sock {",
        f"    server unix:{SOCKET};",
        "    keepalive 64;",
        "}",
    ]
    assert location.startswith("# nginx, part 2 of 2: put this inside your server { } block.")
    # The location is the default one (mount handling and params alike), passing to the
    # upstream with fastcgi_keep_conn instead of to the socket.
    default = _without_comments(render("nginx", mount=mount, socket=SOCKET))
    passing = default.index(f"    fastcgi_pass unix:{SOCKET};")
    assert _without_comments(location) == [
        *default[:passing],
        "    fastcgi_keep_conn on;",
        "    fastcgi_pass fcgikit_run_yourapplication_fcgi_sock;",
        *default[passing + 1 :],
    ]


def test_nginx_keep_conn_states_its_price() -> None:
    text = render("nginx", keep_conn=True)
    assert "# no fixer needed" in text and "# run the app with: fcgikit serve" in text
    assert "SIGHUP" in text and "--max-requests" in text
    assert "answers a POST with 502" in text
    assert "    # fastcgi_next_upstream error timeout non_idempotent;\n" in text


def test_nginx_keep_conn_over_tcp() -> None:
    upstream, location = nginx_keep_conn_parts(render("nginx", port=9000, keep_conn=True))
    assert "upstream fcgikit_127_0_0_1_9000 {\n    server 127.0.0.1:9000;\n" in upstream
    assert "    fastcgi_pass fcgikit_127_0_0_1_9000;\n" in location


def test_nginx_keep_conn_names_one_upstream_per_app() -> None:
    # Two apps' part 1 go into the same http { }, where nginx refuses two upstreams of one name.
    configs = [
        render("nginx", socket="/run/a/fcgi.sock", keep_conn=True),
        render("nginx", socket="/run/b/fcgi.sock", keep_conn=True),
        render("nginx", port=9000, keep_conn=True),
    ]
    assert [_without_comments(nginx_keep_conn_parts(text)[0])[0] for text in configs] == [
        "upstream fcgikit_run_a_fcgi_sock {",
        "upstream fcgikit_run_b_fcgi_sock {",
        "upstream fcgikit_127_0_0_1_9000 {",
    ]


@pytest.mark.parametrize("server", [s for s in SERVERS if s != "nginx"])
def test_keep_conn_is_refused_for_other_servers(server: str) -> None:
    with pytest.raises(ConfigError, match=f"--keep-conn is for nginx only.*drop it for {server}"):
        render(server, keep_conn=True)


UPSTREAMS = ["10.0.0.2:9000", "10.0.0.3:9000"]


@pytest.mark.parametrize("keep_conn", [False, True], ids=["default", "keep-conn"])
def test_nginx_upstreams_retry_only_what_is_safe(keep_conn: bool) -> None:
    upstream, location = nginx_keep_conn_parts(
        render("nginx", mount="/x", upstreams=UPSTREAMS, keep_conn=keep_conn)
    )
    lines = _without_comments(upstream)
    assert lines[0] == "upstream fcgikit_10_0_0_2_9000_10_0_0_3_9000 {"
    assert lines[1:3] == ["    server 10.0.0.2:9000;", "    server 10.0.0.3:9000;"]
    assert ("    keepalive 64;" in lines) is keep_conn
    # the next server gets what failed to reach one; a POST that reached one is not resent
    assert "    fastcgi_next_upstream error timeout;" in _without_comments(location)
    assert "non_idempotent;" not in "\n".join(_without_comments(location))
    assert "    fastcgi_pass fcgikit_10_0_0_2_9000_10_0_0_3_9000;" in location
    assert ("    fastcgi_keep_conn on;" in location) is keep_conn
    # every app server runs its own fcgikit: the serve line names no one address
    assert "--bind ADDRESS" in upstream and "FCGI_WEB_SERVER_ADDRS" in upstream


def test_upstream_forms() -> None:
    text = render("nginx", upstreams=["unix:/run/a.sock", "[::1]:9000", "10.0.0.2:9000"])
    assert "    server unix:/run/a.sock;\n    server [::1]:9000;\n" in text
    haproxy = render("haproxy", upstreams=["unix:/run/a.sock", "[::1]:9000"])
    assert "    server app1 /run/a.sock proto fcgi\n" in haproxy
    assert "    server app2 ipv6@::1:9000 proto fcgi\n" in haproxy
    # the same server twice is one server
    assert render("nginx", upstreams=["10.0.0.2:9000"] * 2).count("server 10.0.0.2:9000;") == 1


@pytest.mark.parametrize(
    ("server", "options", "message"),
    [
        pytest.param("caddy", {}, "--upstream is for haproxy and nginx", id="caddy"),
        pytest.param("nginx", {"socket": "/s"}, "drop --socket", id="with-socket"),
        pytest.param("haproxy", {"port": 9000}, "drop --socket", id="with-port"),
    ],
)
def test_upstreams_refused(server: str, options: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        render(server, upstreams=UPSTREAMS, **options)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("upstream", "message"),
    [
        pytest.param("fd://3", "not a descriptor", id="fd"),
        pytest.param("unix:run/a.sock", "must be absolute", id="relative-socket"),
        pytest.param("10.0.0.2:0", "port 0", id="port-zero"),
        pytest.param("10.0.0.2", "cannot read address", id="no-port"),
    ],
)
def test_bad_upstream(upstream: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        render("nginx", upstreams=[upstream])


@pytest.mark.parametrize(
    ("mount", "split", "route"),
    [
        pytest.param("", "^()(/.*)$", "default_backend fcgikit", id="root"),
        pytest.param(
            "/yourapplication",
            "^(/yourapplication)(/.*)?$",
            "use_backend fcgikit_yourapplication if { path /yourapplication } "
            "|| { path_beg /yourapplication/ }",
            id="prefix",
        ),
        # regex characters in the mount are matched literally
        pytest.param(
            "/my.app+1",
            "^(/my[.]app[+]1)(/.*)?$",
            "use_backend fcgikit_my_app_1 if { path /my.app+1 } || { path_beg /my.app+1/ }",
            id="regex-characters",
        ),
    ],
)
def test_haproxy_splits_at_the_mount(mount: str, split: str, route: str) -> None:
    text = render("haproxy", mount=mount, socket=SOCKET)
    assert f"    path-info {split}\n" in text
    assert route_line(mount) == route
    assert f"#     {route}\n" in text  # the frontend line, for the user to copy
    assert "    docroot /var/www/yourapplication\n" in text  # HAProxy refuses a fcgi-app without
    assert f"    server app1 {SOCKET} proto fcgi\n" in text
    assert "check" not in "\n".join(_without_comments(text))  # one server: nothing to fail over to


def test_haproxy_undoes_what_it_derives() -> None:
    lines = _without_comments(render("haproxy"))
    # SERVER_NAME without the Host header's port (an IPv6 literal keeps HAProxy's value)
    assert (
        "    set-param SERVER_NAME %[req.hdr(host),field(1,:)] unless { req.hdr(host) -m beg [ }"
        in lines
    )
    # REMOTE_USER/AUTH_TYPE from an unchecked Authorization header: not sent; the header is
    assert "    set-param REMOTE_USER %[str()]" in lines
    assert "    set-param AUTH_TYPE %[str()]" in lines
    assert "    pass-header Authorization" in lines


def test_haproxy_upstreams_are_checked_and_redispatched() -> None:
    text = render("haproxy", upstreams=UPSTREAMS)
    lines = _without_comments(text)
    assert "    default-server check inter 2s fall 2 rise 2" in lines
    assert [line for line in lines if "retr" in line or "redispatch" in line] == [
        "    retries 2",
        "    option redispatch 1",
        # a GET whose server died under it goes to another; a POST that reached one never
        "    retry-on conn-failure empty-response",
        "    http-request disable-l7-retry unless METH_GET",
    ]
    assert "    server app1 10.0.0.2:9000 proto fcgi" in lines
    assert "    server app2 10.0.0.3:9000 proto fcgi" in lines
    # a TCP connect, unless the app's ping path is named: what to add for it is said
    assert not [line for line in lines if "httpchk" in line]
    assert "add: option httpchk GET /ping" in text


@pytest.mark.parametrize("upstreams", [UPSTREAMS, []], ids=["several", "one"])
def test_haproxy_checks_fcgikits_ping_path(upstreams: list[str]) -> None:
    """``--ping-path``: HAProxy asks every server for it over FastCGI (option httpchk), so
    a draining fcgikit (503) leaves the rotation before it stops accepting."""
    options: dict[str, Any] = {"upstreams": upstreams} if upstreams else {"socket": SOCKET}
    text = render("haproxy", mount="/yourapplication", ping_path="/ping", **options)
    lines = _without_comments(text)
    assert "    option httpchk GET /ping" in lines
    assert "    default-server check inter 2s fall 2 rise 2" in lines
    # the app is to be run with the same ping path
    assert "--ping-path /ping" in text


def test_nginx_passes_a_ping_path_outside_the_mount_to_fcgikit() -> None:
    text = render("nginx", mount="/yourapplication", socket=SOCKET, ping_path="/ping")
    lines = _without_comments(text)
    start = lines.index("location = /ping {")
    ping_location = lines[start : lines.index("}", start) + 1]
    assert f"    fastcgi_pass unix:{SOCKET};" in ping_location
    assert "    fastcgi_param REQUEST_URI $request_uri;" in ping_location
    assert "--ping-path /ping" in text
    # at the root, or under the mount, the app's location passes it already
    for mount, ping in (("", "/ping"), ("/yourapplication", "/yourapplication/ping")):
        covered = render("nginx", mount=mount, socket=SOCKET, ping_path=ping)
        assert "location = " not in covered
        assert f"--ping-path {ping}" in covered


@pytest.mark.parametrize(
    ("server", "ping_path", "message"),
    [
        ("caddy", "/ping", "--ping-path is for haproxy and nginx"),
        ("systemd", "/ping", "--ping-path is for haproxy and nginx"),
        ("nginx", "ping", "--ping-path must start with '/'"),
        ("haproxy", "/ping?x", "--ping-path must be a plain URL path"),
    ],
)
def test_bad_ping_paths(server: str, ping_path: str, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        render(server, ping_path=ping_path)


@pytest.mark.parametrize(
    ("server", "options", "message"),
    [
        pytest.param("iis", {}, "unknown server", id="unknown-server"),
        pytest.param("nginx", {"mount": "app"}, "must start with '/'", id="relative-mount"),
        pytest.param("nginx", {"mount": "/a b"}, "plain URL path", id="mount-with-space"),
        pytest.param("nginx", {"mount": "/a;b"}, "plain URL path", id="mount-with-semicolon"),
        pytest.param("nginx", {"socket": "/s", "port": 1}, "either a socket or a port", id="both"),
        pytest.param("nginx", {"socket": "run/s"}, "must be absolute", id="relative-socket"),
        pytest.param("nginx", {"port": 0}, "between 1 and 65535", id="port-zero"),
        pytest.param("nginx", {"spawn": "/x.fcgi"}, "cannot start the app", id="nginx-spawn"),
        pytest.param(
            "apache-proxy-fcgi", {"spawn": "/x.fcgi"}, "use apache-fcgid", id="proxy-spawn"
        ),
        pytest.param("apache-fcgid", {"socket": "/s"}, "starts the app itself", id="fcgid-sock"),
        pytest.param("systemd", {"spawn": "/x.fcgi"}, "drop --spawn", id="systemd-spawn"),
    ],
)
def test_bad_options(server: str, options: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        render(server, **options)  # type: ignore[arg-type]


def test_supervisor_is_an_ini_file_with_the_socket_on_fd_0() -> None:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(render("supervisor", socket=SOCKET))
    program = parser["fcgi-program:yourapplication"]
    assert program["socket"] == f"unix://{SOCKET}"
    assert program["command"].split()[:3] == ["fcgikit", "serve", "yourapplication:app"]
    assert "--bind" not in program["command"]  # supervisord passes the socket on fd 0


def test_systemd_units() -> None:
    text = render("systemd", socket=SOCKET, command="/usr/local/bin/fcgikit")
    socket_unit, _, service_unit = text.partition("# /etc/systemd/system/yourapplication.service")
    units = []
    for unit in (socket_unit, service_unit):
        parser = configparser.ConfigParser(interpolation=None, strict=True)
        parser.optionxform = str  # type: ignore[assignment,method-assign]
        parser.read_string(unit)
        units.append(parser)
    assert units[0]["Socket"]["ListenStream"] == SOCKET
    service = units[1]["Service"]
    assert service["ExecStart"].startswith("/usr/local/bin/fcgikit serve yourapplication:app")
    assert service["StandardInput"] == "socket"
    # fcgikit says READY=1 (and RELOADING=1, STOPPING=1); only the pool's master is heard
    assert (service["Type"], service["NotifyAccess"]) == ("notify", "main")
    assert service["ExecReload"] == "/bin/kill -HUP $MAINPID"
    # SIGTERM to the master alone, which drains and stops its workers itself
    assert (service["KillSignal"], service["KillMode"]) == ("SIGTERM", "mixed")
    # no SIGKILL before fcgikit's own stop is over: the drain, the grace, the pool's margin
    defaults = ServerSettings()
    stop = defaults.shutdown_delay + defaults.graceful_timeout + KILL_MARGIN
    assert stop < int(service["TimeoutStopSec"]) <= stop + 5
    assert "#WatchdogSec=" in service_unit  # left to the user, commented
    tcp = render("systemd", port=9000)
    assert "ListenStream=127.0.0.1:9000\n" in tcp


def test_systemd_accepts_the_units(tmp_path: Path) -> None:
    """``systemd-analyze verify``: systemd's own reading of the two units, offline."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        missing("systemd-analyze not found: install the Debian package systemd")
    fcgikit = shutil.which("true")  # ExecStart must name a file that can be run
    text = render("systemd", socket=SOCKET, command=str(fcgikit))
    socket_unit, _, service_unit = text.partition("# /etc/systemd/system/yourapplication.service")
    (tmp_path / "yourapplication.socket").write_text(socket_unit)
    (tmp_path / "yourapplication.service").write_text(service_unit)
    done = subprocess.run(
        [analyze, "verify", "--man=no", "./yourapplication.socket", "./yourapplication.service"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (done.returncode, done.stderr) == (0, "")


# --------------------------------------------------------------------------- the servers accept it


def _check(argv: list[str], *, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        argv, capture_output=True, text=True, timeout=60, env=env, stdin=subprocess.DEVNULL
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    return output


def _layout(tmp_path: Path) -> Layout:
    return Layout.create(tmp_path)


def _app_servers(backend: str) -> dict[str, object]:
    """render()'s options for one app server on a socket or a port, or several (every form)."""
    return {
        "unix": {"socket": SOCKET},
        "tcp": {"port": 9000},
        "upstreams": {"upstreams": [*UPSTREAMS, "[::1]:9000", "unix:/run/a.sock"]},
    }[backend]


@pytest.mark.parametrize("keep_conn", [False, True], ids=["default", "keep-conn"])
@pytest.mark.parametrize("mount", MOUNTS)
@pytest.mark.parametrize("backend", ["unix", "tcp", "upstreams"])
def test_nginx_accepts(tmp_path: Path, mount: str, backend: str, keep_conn: bool) -> None:
    require_binary("nginx")
    layout = _layout(tmp_path)
    options = _app_servers(backend)
    config = render(
        "nginx",
        mount=mount,
        keep_conn=keep_conn,
        ping_path="/ping",  # a location of its own under a mount
        **options,  # type: ignore[arg-type]
    )
    if keep_conn or backend == "upstreams":  # the upstream part in http { }, the rest in server
        upstream, location = nginx_keep_conn_parts(config)
        conf = write_nginx_config(layout, location, http_fragment=upstream)
    else:
        conf = write_nginx_config(layout, config)
    assert "test is successful" in _check(nginx_command(layout, conf, "-t"))


@pytest.mark.parametrize("mount", MOUNTS)
@pytest.mark.parametrize("backend", ["unix", "tcp", "spawn"])
def test_lighttpd_accepts(tmp_path: Path, mount: str, backend: str) -> None:
    binary = require_binary("lighttpd")
    layout = _layout(tmp_path)
    options: dict[str, object] = {"socket": SOCKET} if backend != "tcp" else {"port": 9000}
    if backend == "spawn":
        options["spawn"] = "/var/www/yourapplication/yourapplication.fcgi"
    conf = write_lighttpd_config(layout, render("lighttpd", mount=mount, **options))  # type: ignore[arg-type]
    _check([binary, "-tt", "-f", str(conf)])


def _apache_accepts(layout: Layout, fragment: str, modules: list[str]) -> None:
    binary = require_binary("apache2")
    for module in modules:
        require_apache_module(module, APACHE_MODULE_PACKAGES.get(module, "apache2"))
    conf = write_apache_config(layout, fragment, modules)
    assert "Syntax OK" in _check([binary, "-d", str(layout.dir), "-f", str(conf), "-t"])


@pytest.mark.parametrize("mount", MOUNTS)
def test_apache_fcgid_accepts(tmp_path: Path, mount: str) -> None:
    layout = _layout(tmp_path)
    _apache_accepts(layout, render("apache-fcgid", mount=mount, spawn=str(layout.fcgi)), ["fcgid"])


@pytest.mark.parametrize("mount", MOUNTS)
def test_htaccess_accepts(tmp_path: Path, mount: str) -> None:
    layout = _layout(tmp_path)
    # .htaccess directives are valid where AllowOverride All would let them be.
    htaccess = render("apache-htaccess", mount=mount)
    fragment = f'<Directory "{layout.docroot}">\n{htaccess}</Directory>\n'
    _apache_accepts(layout, fragment, ["fcgid", "rewrite"])


@pytest.mark.parametrize("mount", MOUNTS)
@pytest.mark.parametrize("backend", ["unix", "tcp"])
def test_apache_proxy_fcgi_accepts(tmp_path: Path, mount: str, backend: str) -> None:
    layout = _layout(tmp_path)
    options = {"socket": SOCKET} if backend == "unix" else {"port": 9000}
    fragment = render("apache-proxy-fcgi", mount=mount, **options)
    _apache_accepts(layout, fragment, ["proxy", "proxy_fcgi"])


@pytest.mark.parametrize("mount", MOUNTS)
@pytest.mark.parametrize("backend", ["unix", "tcp"])
def test_caddy_accepts(tmp_path: Path, mount: str, backend: str) -> None:
    binary = require_binary("caddy")
    layout = _layout(tmp_path)
    options = {"socket": SOCKET} if backend == "unix" else {"port": 9000}
    conf = write_caddy_config(layout, render("caddy", mount=mount, **options))
    argv = [binary, "validate", "--config", str(conf), "--adapter", "caddyfile"]
    _check(argv, env=caddy_environment(layout))


@pytest.mark.parametrize("mount", MOUNTS)
@pytest.mark.parametrize("backend", ["unix", "tcp", "spawn"])
def test_h2o_accepts(tmp_path: Path, mount: str, backend: str) -> None:
    binary = require_binary("h2o")
    layout = _layout(tmp_path)
    options: dict[str, object] = {"socket": SOCKET} if backend != "tcp" else {"port": 9000}
    if backend == "spawn":
        options = {"spawn": "/var/www/yourapplication/yourapplication.fcgi"}
    conf = write_h2o_config(layout, render("h2o", mount=mount, **options))  # type: ignore[arg-type]
    _check([binary, "-t", "-c", str(conf)], env={**os.environ, "HOME": str(tmp_path)})


def test_supervisor_can_run_the_guides_fcgi_file() -> None:
    text = render(
        "supervisor", socket="unix:/run/app.sock", spawn="/var/www/app/yourapplication.fcgi"
    )
    assert "\ncommand = /var/www/app/yourapplication.fcgi\n" in text
    assert "\ndirectory = /var/www/app\n" in text
    assert "\nsocket = unix:///run/app.sock\n" in text


@pytest.mark.parametrize("ping_path", [None, "/ping"], ids=["tcp-check", "ping-path"])
@pytest.mark.parametrize("mount", MOUNTS)
@pytest.mark.parametrize("backend", ["unix", "tcp", "upstreams"])
def test_haproxy_accepts(tmp_path: Path, mount: str, backend: str, ping_path: str | None) -> None:
    binary = require_binary("haproxy")
    layout = _layout(tmp_path)
    options = _app_servers(backend)
    rendered = render("haproxy", mount=mount, ping_path=ping_path, **options)  # type: ignore[arg-type]
    conf = write_haproxy_config(layout, rendered)
    assert "Configuration file is valid" in _check([binary, "-c", "-f", str(conf)])


# ------------------------------------------------------------------------ the config command


def test_config_nginx_keep_conn_prints_the_upstream_and_location() -> None:
    result = run_fcgikit(
        "config", "nginx", "--keep-conn", "--mount", "/yourapplication", "--port", "9000"
    )
    assert result.returncode == 0, result.stderr
    assert (
        result.stdout == render("nginx", mount="/yourapplication", port=9000, keep_conn=True) + "\n"
    )
    assert "upstream fcgikit_127_0_0_1_9000 {" in result.stdout
    assert "    fastcgi_keep_conn on;\n" in result.stdout


def test_config_keep_conn_for_another_server_is_refused() -> None:
    result = run_fcgikit("config", "lighttpd", "--keep-conn")
    assert result.returncode == 2
    assert result.stdout == ""
    assert "--keep-conn is for nginx only" in result.stderr
