"""Run real web servers in front of fcgikit for the integration tests.

Each scenario gets its own directory (config, logs, pid file, sockets), one free TCP port for
the web server, and, when the web server does not spawn the app itself, one
``python -m fcgikit serve`` backend. Readiness is observed, never slept on: a backend is ready
when it has printed ``listening on`` for every address, a web server when its port accepts a
connection (polled until a deadline, giving up early if the process dies). Everything started
here is stopped by PID, and the process group is killed afterwards so the app processes a
server spawned (lighttpd ``bin-path``, mod_fcgid, h2o ``fastcgi.spawn``) go too.

Running as root, which is how the lab and CI run:

- nginx: ``user root root;`` (otherwise workers run as ``nobody`` and cannot reach the sockets
  under pytest's 0700 tmp dir);
- lighttpd and h2o run as root when told to (``server.username`` unset; ``user: root``);
- Apache refuses ``User root`` (a compile-time check) and as ``www-data`` cannot read the
  interpreter under ``/root`` or the 0700 tmp dirs. So Apache is started *as* ``www-data``
  through ``setpriv`` with the ambient capabilities ``CAP_DAC_READ_SEARCH`` and
  ``CAP_DAC_OVERRIDE``, which its children and the ``.fcgi`` processes mod_fcgid spawns
  inherit; the scenario directory is chowned to ``www-data`` so it can write its logs there.

``FCGIKIT_TEST_BACKEND`` (a command prefix, default ``<python> -m fcgikit``) and
``FCGIKIT_TEST_WSGISERVER`` (the module the ``.fcgi`` file imports ``WSGIServer`` from, default
``fcgikit``) let the same suite run against another FastCGI server for comparison.
"""

from __future__ import annotations

import contextlib
import functools
import http.client
import json
import os
import pwd
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest

from fcgikit.deploy.haproxy import DOCROOT, backend_name, route_line

APP_DIR = Path(__file__).resolve().parent
REPO_ROOT = APP_DIR.parents[1]
HOST = "127.0.0.1"
STARTUP_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
REQUEST_TIMEOUT = 60.0

# binary -> Debian package that ships it
PACKAGES = {
    "nginx": "nginx",
    "lighttpd": "lighttpd",
    "apache2": "apache2 (+ libapache2-mod-fcgid)",
    "caddy": "caddy",
    "h2o": "h2o",
    "cgi-fcgi": "libfcgi-bin",
    "setpriv": "util-linux",
    "wrk": "wrk",
    "supervisord": "supervisor",
    "haproxy": "haproxy",
    "prometheus": "prometheus",
}
APACHE_MODULES = Path("/usr/lib/apache2/modules")


# --------------------------------------------------------------------------- binaries


def missing(message: str) -> None:
    """Skip locally, fail on CI: a CI run must not go green by skipping the real servers."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def find_binary(name: str) -> str | None:
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/local/sbin:/sbin")


def require_binary(name: str) -> str:
    path = find_binary(name)
    if path is None:
        missing(f"{name} not found: install the Debian package {PACKAGES.get(name, name)}")
        raise AssertionError("unreachable")
    return path


def require_apache_module(name: str, package: str) -> None:
    if not (APACHE_MODULES / f"mod_{name}.so").exists():
        missing(f"Apache module mod_{name} not found: install the Debian package {package}")


_VERSION_COMMANDS = {
    "nginx": (["-v"], r"nginx/(\S+)"),
    "lighttpd": (["-v"], r"lighttpd/(\S+)"),
    "apache2": (["-v"], r"Apache/(\S+)"),
    "caddy": (["version"], r"v?(\d+\.\d+\.\d+\S*)"),
    "h2o": (["-v"], r"h2o version (\S+)"),
    "haproxy": (["-v"], r"HAProxy version (\d+\.\d+\.\d+)"),
    "cgi-fcgi": ([], r""),
}


@functools.cache
def server_version(name: str) -> str | None:
    path = find_binary(name)
    if path is None:
        return None
    args, pattern = _VERSION_COMMANDS.get(name, (["--version"], r"(\S+)"))
    if not pattern:
        return "installed"
    try:
        done = subprocess.run(
            [path, *args], capture_output=True, text=True, timeout=20, stdin=subprocess.DEVNULL
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    found = re.search(pattern, done.stdout + done.stderr)
    return found.group(1) if found else None


def free_ports(count: int) -> list[int]:
    """``count`` distinct ports nobody listens on now (all held at once, so no repeats)."""
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind((HOST, 0))
            ports.append(int(sock.getsockname()[1]))
        return ports


def free_port() -> int:
    return free_ports(1)[0]


# --------------------------------------------------------------------------- processes


class Process:
    """One child process in its own session, its output kept for the failure report."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        log_dir: Path,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        logs: Sequence[Path] = (),
        stdin: Any = subprocess.DEVNULL,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.logs = list(logs)
        self._lines: list[str] = []
        self._lock = threading.Condition()
        self._stdout_path = log_dir / f"{name}.stdout"
        stdout = self._stdout_path.open("wb")
        try:
            self.popen = subprocess.Popen(
                self.argv,
                stdin=stdin,
                stdout=stdout,
                stderr=subprocess.PIPE,
                env=env,
                cwd=cwd,
                start_new_session=True,
            )
        finally:
            stdout.close()
        self.pid = self.popen.pid
        self._reader = threading.Thread(target=self._read, name=f"{name}-stderr", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.popen.stderr is not None
        for raw in self.popen.stderr:
            with self._lock:
                self._lines.append(raw.decode("utf-8", "replace"))
                self._lock.notify_all()
        with self._lock:
            self._lines.append("")  # EOF marker
            self._lock.notify_all()

    @property
    def stderr(self) -> str:
        with self._lock:
            return "".join(self._lines)

    def wait_for_output(
        self, needle: str, count: int = 1, timeout: float = STARTUP_TIMEOUT
    ) -> None:
        """Block until ``needle`` appeared on ``count`` stderr lines; fail if the process dies."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                if sum(needle in line for line in self._lines) >= count:
                    return
                if self._lines and self._lines[-1] == "":
                    raise StartupError(f"{self.name} exited before printing {needle!r}", self)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise StartupError(f"{self.name} did not print {needle!r} in {timeout}s", self)
                self._lock.wait(remaining)

    def wait_for_port(self, port: int, timeout: float = STARTUP_TIMEOUT) -> None:
        """Poll until ``HOST:port`` accepts a connection, up to ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=1):
                return
            if self.popen.poll() is not None:
                raise StartupError(f"{self.name} exited with {self.popen.returncode}", self)
            if time.monotonic() > deadline:
                raise StartupError(f"{self.name} did not accept on port {port}", self)
            # The retry interval doubles as the exit check: returns early if the process dies.
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout=0.05)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)
            try:
                self.popen.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pid, signal.SIGKILL)
                self.popen.wait(timeout=STOP_TIMEOUT)
        # Whatever the process spawned (app processes) shares its process group.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        self._reader.join(timeout=STOP_TIMEOUT)
        if self.popen.stderr is not None:
            self.popen.stderr.close()

    def diagnostics(self) -> list[tuple[str, str]]:
        sections = [(f"{self.name} command", shlex.join(self.argv))]
        sections.append((f"{self.name} stderr", self.stderr or "(empty)"))
        for path in [self._stdout_path, *self.logs]:
            sections.append((f"{self.name} {path.name}", _tail(path)))
        return sections


class StartupError(Exception):
    def __init__(self, message: str, process: Process) -> None:
        super().__init__(message)
        self.process = process

    def __str__(self) -> str:
        details = "\n".join(f"--- {title}\n{text}" for title, text in self.process.diagnostics())
        return f"{self.args[0]}\n{details}"


def _tail(path: Path, limit: int = 20000) -> str:
    try:
        data = path.read_bytes()
    except OSError as exc:
        return f"({exc.strerror})"
    text = data[-limit:].decode("utf-8", "replace")
    return text if text else "(empty)"


# --------------------------------------------------------------------------- the app


def backend_command() -> list[str]:
    custom = os.environ.get("FCGIKIT_TEST_BACKEND")
    return shlex.split(custom) if custom else [sys.executable, "-m", "fcgikit"]


def app_environment(fixer: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(REPO_ROOT), str(APP_DIR), *filter(None, [env.get("PYTHONPATH")])]
    )
    env["FCGIKIT_TEST_FIXER"] = fixer
    env["PYTHONUNBUFFERED"] = "1"
    return env


def fcgi_script(fixer: str) -> str:
    """The ``.fcgi`` file a web server spawns, as the Flask guide has users write it."""
    module = os.environ.get("FCGIKIT_TEST_WSGISERVER", "fcgikit")
    return (
        f"#!{sys.executable}\n"
        "import os, sys\n"
        f"sys.path.insert(0, {str(APP_DIR)!r})\n"
        f"sys.path.insert(0, {str(REPO_ROOT)!r})\n"
        f"os.environ['FCGIKIT_TEST_FIXER'] = {fixer!r}\n"
        f"from {module} import WSGIServer\n"
        "from flaskapp import app\n"
        "\n"
        "if __name__ == '__main__':\n"
        "    WSGIServer(app).run()\n"
    )


def write_fcgi_script(path: Path, fixer: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(fcgi_script(fixer))
    path.chmod(0o755)
    return path


def start_backend(
    workdir: Path,
    binds: Sequence[str],
    fixer: str,
    *,
    threads: int = 4,
    extra: Sequence[str] = (),
    name: str = "backend",
    environ: dict[str, str] | None = None,
) -> Process:
    """``fcgikit serve`` for the test app; ``environ``: more environment variables."""
    argv = [*backend_command(), "serve", "flaskapp:app", "--chdir", str(APP_DIR)]
    for bind in binds:
        argv += ["--bind", bind]
    argv += ["--threads", str(threads), *extra]
    env = {**app_environment(fixer), **(environ or {})}
    return Process(name, argv, log_dir=workdir, env=env, cwd=workdir)


# --------------------------------------------------------------------------- sites


@dataclass(frozen=True)
class Scenario:
    """One deployment: a web server config, where the app is mounted, and the fixer used.

    ``merges_slashes``: whether the server turns ``//`` into ``/`` before the app sees it.
    ``limitations``: request ids the web server cannot route to the app (it answers itself),
    mapped to ``(status, why)``; the tests assert that answer instead of skipping.
    ``host``: what HTTP_HOST is expected to be, ``{port}`` filled in; ``None`` = host:port.
    """

    id: str
    server: str
    mount: str
    setting: str
    fixer: str = "none"
    merges_slashes: bool = True
    limitations: dict[str, tuple[int, str]] = field(default_factory=dict)
    host: str | None = None
    # (bytes, status, why) when the web server refuses request bodies over a limit that the
    # deployment cannot raise; None: a 10 MiB body must reach the app.
    body_limit: tuple[int, int, str] | None = None
    backend: str | None = "unix"  # "unix", "tcp", or None when the web server spawns the app
    serve_args: tuple[str, ...] = ()  # more options for ``fcgikit serve`` (e.g. --mount)
    notes: str = ""


@dataclass
class Layout:
    """Paths and ports of one scenario, all inside its tmp dir."""

    dir: Path
    port: int
    socket: Path
    backend_port: int
    docroot: Path
    fcgi: Path

    @classmethod
    def create(cls, workdir: Path) -> Layout:
        docroot = workdir / "www"
        docroot.mkdir(parents=True, exist_ok=True)
        port, backend_port = free_ports(2)
        return cls(
            dir=workdir,
            port=port,
            socket=workdir / "app.sock",
            backend_port=backend_port,
            docroot=docroot,
            fcgi=docroot / "yourapplication.fcgi",
        )

    @property
    def backend_bind(self) -> str:
        return f"unix:{self.socket}"


@dataclass
class Response:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            raise AssertionError(f"not JSON (status {self.status}): {self.body[:500]!r}") from None


def http_request(
    port: int,
    method: str,
    target: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """One request to ``HOST:port`` on a connection of its own, ``target`` sent as given."""
    connection = http.client.HTTPConnection(HOST, port, timeout=REQUEST_TIMEOUT)
    try:
        connection.request(method, target, body=body, headers=headers or {})
        response = connection.getresponse()
        return Response(response.status, response.headers, response.read())
    finally:
        connection.close()


@dataclass
class Site:
    """A running web server (and backend) serving the test app for one scenario."""

    scenario: Scenario
    layout: Layout
    version: str | None
    processes: list[Process] = field(default_factory=list)
    config_files: list[Path] = field(default_factory=list)

    @property
    def mount(self) -> str:
        return self.scenario.mount

    @property
    def host(self) -> str:
        template = self.scenario.host or "{host}:{port}"
        return template.format(host=HOST, port=self.layout.port)

    def request(
        self,
        method: str,
        target: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Response:
        """Send ``target`` exactly as given (no re-quoting) and read the whole response."""
        return http_request(self.layout.port, method, target, body, headers)

    def get(self, target: str) -> Response:
        return self.request("GET", target)

    def expected_path_info(self, path: str) -> str:
        decoded = unquote(path, errors="strict")
        # MountFix normalizes the path the way the merging servers do.
        mount_fix = (
            self.scenario.fixer.startswith("MountFix") or "--mount" in self.scenario.serve_args
        )
        if self.scenario.merges_slashes or mount_fix:
            decoded = re.sub("/{2,}", "/", decoded)
        return decoded

    def diagnostics(self) -> list[tuple[str, str]]:
        sections: list[tuple[str, str]] = []
        for path in self.config_files:
            sections.append((f"config {path.name}", _tail(path)))
        for process in self.processes:
            sections += process.diagnostics()
        return sections

    def stop(self) -> None:
        # The web server first, so it does not log the backend vanishing as an error.
        for process in reversed(self.processes):
            process.stop()


@contextlib.contextmanager
def running_site(
    scenario: Scenario,
    workdir: Path,
    launch: Callable[[Site], Process],
) -> Iterator[Site]:
    """Start the backend (if any) and the web server for ``scenario``; stop both afterwards."""
    layout = Layout.create(workdir)
    site = Site(scenario, layout, server_version(binary_of(scenario.server)))
    try:
        binds = {"unix": [layout.backend_bind], "tcp": [f"{HOST}:{layout.backend_port}"]}
        if scenario.backend is None:
            write_fcgi_script(layout.fcgi, scenario.fixer)
        else:
            backend = start_backend(
                workdir, binds[scenario.backend], scenario.fixer, extra=scenario.serve_args
            )
            site.processes.append(backend)
            backend.wait_for_output("listening on", count=1)
        server = launch(site)
        site.processes.append(server)
        server.wait_for_port(layout.port)
        yield site
    finally:
        site.stop()


def more_tcp_backends(site: Site, count: int) -> list[str]:
    """Start ``count`` more backends on TCP ports of their own, beside the scenario's one
    (for configs that balance several app servers); return every backend's ``HOST:PORT``,
    the scenario's first. They stop with the site."""
    scenario, layout = site.scenario, site.layout
    assert scenario.backend == "tcp", "several app servers are reached over TCP"
    addresses = [f"{HOST}:{layout.backend_port}"]
    for index, port in enumerate(free_ports(count), start=2):
        backend = start_backend(
            layout.dir,
            [f"{HOST}:{port}"],
            scenario.fixer,
            extra=scenario.serve_args,
            name=f"backend{index}",
        )
        site.processes.append(backend)
        backend.wait_for_output("listening on", count=1)
        addresses.append(f"{HOST}:{port}")
    return addresses


def binary_of(server: str) -> str:
    """The binary behind a scenario's server name: ``apache-fcgid`` -> ``apache2``."""
    family = server.split("-")[0]
    return "apache2" if family == "apache" else family


# --------------------------------------------------------------------------- launchers


def write_nginx_config(layout: Layout, fragment: str, http_fragment: str = "") -> Path:
    """A whole nginx.conf around ``fragment`` (what goes inside ``server { }``).

    ``http_fragment`` goes in ``http { }`` before the server: an ``upstream`` block.
    """
    user = "user root root;\n" if os.geteuid() == 0 else ""
    temp = layout.dir / "nginx-temp"
    temp.mkdir(exist_ok=True)
    # The guide's "include fastcgi_params;" is relative to the config's directory.
    stock_params = Path("/etc/nginx/fastcgi_params")
    if stock_params.exists():
        shutil.copyfile(stock_params, layout.dir / "fastcgi_params")
    conf = layout.dir / "nginx.conf"
    conf.write_text(
        f"{user}"
        "worker_processes 1;\n"
        f"pid {layout.dir}/nginx.pid;\n"
        f"error_log {layout.dir}/error.log info;\n"
        "events { worker_connections 128; }\n"
        "http {\n"
        f"    access_log {layout.dir}/access.log;\n"
        f"    client_body_temp_path {temp}/body;\n"
        f"    fastcgi_temp_path {temp}/fastcgi;\n"
        f"    proxy_temp_path {temp}/proxy;\n"
        f"    uwsgi_temp_path {temp}/uwsgi;\n"
        f"    scgi_temp_path {temp}/scgi;\n"
        "    client_max_body_size 64m;\n"
        f"{_indent(http_fragment, 4)}"
        "    server {\n"
        f"        listen {HOST}:{layout.port};\n"
        "        server_name localhost;\n"
        f"        root {layout.docroot};\n"
        f"{_indent(fragment, 8)}"
        "    }\n"
        "}\n"
    )
    return conf


def nginx_command(layout: Layout, conf: Path, *extra: str) -> list[str]:
    binary = require_binary("nginx")
    return [binary, "-p", f"{layout.dir}/", "-c", str(conf), *extra]


def launch_nginx(site: Site, fragment: str, http_fragment: str = "") -> Process:
    layout = site.layout
    conf = write_nginx_config(layout, fragment, http_fragment)
    site.config_files.append(conf)
    argv = nginx_command(layout, conf, "-g", "daemon off;")
    return Process("nginx", argv, log_dir=layout.dir, logs=[layout.dir / "error.log"])


def nginx_keep_conn_parts(config: str) -> tuple[str, str]:
    """``fcgikit config nginx --keep-conn``'s two parts: (for ``http { }``, for ``server { }``).

    A blank line separates them, as a user sees when copying each to its place.
    """
    http_part, server_part = config.split("\n\n")
    return f"{http_part}\n", server_part


def write_lighttpd_config(layout: Layout, fragment: str) -> Path:
    conf = layout.dir / "lighttpd.conf"
    conf.write_text(
        f'server.document-root = "{layout.docroot}"\n'
        f'server.bind = "{HOST}"\n'
        f"server.port = {layout.port}\n"
        f'server.errorlog = "{layout.dir}/error.log"\n'
        f'server.pid-file = "{layout.dir}/lighttpd.pid"\n'
        f'server.upload-dirs = ( "{layout.dir}" )\n'
        "server.max-request-size = 65536\n"  # KiB
        'server.modules = ( "mod_access" )\n'
        f"{fragment}\n"
    )
    return conf


def launch_lighttpd(site: Site, fragment: str) -> Process:
    binary = require_binary("lighttpd")
    layout = site.layout
    conf = write_lighttpd_config(layout, fragment)
    site.config_files.append(conf)
    argv = [binary, "-D", "-f", str(conf)]
    return Process("lighttpd", argv, log_dir=layout.dir, logs=[layout.dir / "error.log"])


APACHE_BASE_MODULES = ("mpm_event", "authz_core", "alias", "mime", "dir", "setenvif", "env")
APACHE_USER = "www-data"


def write_apache_config(
    layout: Layout, fragment: str, modules: Sequence[str] = (), server_config: str = ""
) -> Path:
    """A whole apache2.conf around ``fragment`` (what goes inside ``<VirtualHost>``)."""
    loads = "".join(
        f"LoadModule {name}_module {APACHE_MODULES}/mod_{name}.so\n"
        for name in dict.fromkeys([*APACHE_BASE_MODULES, *modules])
    )
    conf = layout.dir / "apache2.conf"
    conf.write_text(
        f'ServerRoot "{layout.dir}"\n'
        f"{loads}"
        f'DefaultRuntimeDir "{layout.dir}"\n'
        f'PidFile "{layout.dir}/apache2.pid"\n'
        f"Mutex file:{layout.dir} default\n"
        f"Listen {HOST}:{layout.port}\n"
        f"ServerName {HOST}\n"
        f'ErrorLog "{layout.dir}/error.log"\n'
        "LogLevel warn\n"
        "StartServers 1\nServerLimit 1\nThreadsPerChild 16\nMaxRequestWorkers 16\n"
        "TypesConfig /etc/mime.types\n"
        f'DocumentRoot "{layout.docroot}"\n'
        "<Directory />\n    AllowOverride None\n    Require all denied\n</Directory>\n"
        f'<Directory "{layout.docroot}">\n    AllowOverride All\n'
        "    Require all granted\n</Directory>\n"
        f"{server_config}"
        f"<VirtualHost {HOST}:{layout.port}>\n"
        f"{_indent(fragment, 4)}"
        "</VirtualHost>\n"
    )
    return conf


def launch_apache(
    site: Site, fragment: str, *, modules: Sequence[str] = (), server_config: str = ""
) -> Process:
    """Apache as www-data with the DAC capabilities (see the module docstring)."""
    binary = require_binary("apache2")
    setpriv = require_binary("setpriv")
    layout = site.layout
    try:
        account = pwd.getpwnam(APACHE_USER)
    except KeyError:
        missing(f"user {APACHE_USER} not found (created by the Debian package apache2)")
        raise
    conf = write_apache_config(layout, fragment, modules, server_config)
    site.config_files.append(conf)
    # Apache writes its logs and mod_fcgid its sockets as www-data.
    for path in [layout.dir, *layout.dir.rglob("*")]:
        if not path.is_socket():
            os.chown(path, account.pw_uid, account.pw_gid)
    caps = "+dac_read_search,+dac_override"
    argv = [
        setpriv,
        f"--reuid={account.pw_uid}",
        f"--regid={account.pw_gid}",
        "--clear-groups",
        f"--inh-caps={caps}",
        f"--ambient-caps={caps}",
        binary,
        "-d",
        str(layout.dir),
        "-f",
        str(conf),
        "-DFOREGROUND",
    ]
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C"}
    return Process("apache2", argv, log_dir=layout.dir, env=env, logs=[layout.dir / "error.log"])


def write_caddy_config(layout: Layout, fragment: str) -> Path:
    """A whole Caddyfile around ``fragment`` (what goes inside the site block)."""
    conf = layout.dir / "Caddyfile"
    conf.write_text(
        "{\n"
        "    admin off\n"
        "    auto_https off\n"
        "    log {\n"
        f"        output file {layout.dir}/error.log\n"
        "        level INFO\n"
        "    }\n"
        "}\n"
        f"http://{HOST}:{layout.port} {{\n"
        f"    root * {layout.docroot}\n"
        f"{_indent(fragment, 4)}"
        "}\n"
    )
    return conf


def caddy_environment(layout: Layout) -> dict[str, str]:
    env = dict(os.environ)
    env["HOME"] = str(layout.dir)
    env["XDG_DATA_HOME"] = str(layout.dir / "data")
    env["XDG_CONFIG_HOME"] = str(layout.dir / "config")
    return env


def launch_caddy(site: Site, fragment: str) -> Process:
    binary = require_binary("caddy")
    layout = site.layout
    conf = write_caddy_config(layout, fragment)
    site.config_files.append(conf)
    argv = [binary, "run", "--config", str(conf), "--adapter", "caddyfile"]
    env = caddy_environment(layout)
    return Process("caddy", argv, log_dir=layout.dir, env=env, logs=[layout.dir / "error.log"])


def write_h2o_config(layout: Layout, fragment: str) -> Path:
    """A whole h2o.conf around ``fragment`` (the ``paths:`` mapping of one host)."""
    conf = layout.dir / "h2o.conf"
    user = "user: root\n" if os.geteuid() == 0 else ""
    conf.write_text(
        f"{user}"
        f"pid-file: {layout.dir}/h2o.pid\n"
        f"error-log: {layout.dir}/error.log\n"
        f"access-log: {layout.dir}/access.log\n"
        "num-threads: 2\n"
        "limit-request-body: 67108864\n"
        "listen:\n"
        f"  host: {HOST}\n"
        f"  port: {layout.port}\n"
        "hosts:\n"
        "  default:\n"
        f"{_indent(fragment, 4)}"
    )
    return conf


def launch_h2o(site: Site, fragment: str) -> Process:
    binary = require_binary("h2o")
    layout = site.layout
    conf = write_h2o_config(layout, fragment)
    site.config_files.append(conf)
    argv = [binary, "-c", str(conf)]
    return Process("h2o", argv, log_dir=layout.dir, logs=[layout.dir / "error.log"])


def haproxy_route(fragment: str) -> str:
    """The frontend line ``fcgikit config haproxy`` tells the user to add (in a comment)."""
    found = re.search(r"^#\s+((?:use|default)_backend .*)$", fragment, re.M)
    if found is None:
        raise AssertionError(f"no use_backend/default_backend line in:\n{fragment}")
    return found.group(1)


def haproxy_fcgi_app(mount: str, socket: Path, path_info: str | None = None) -> str:
    """An ``fcgi-app`` with only what HAProxy requires (``docroot``), as people first write
    it, maybe with a ``path-info``; the ``use_backend`` line in a comment, as fcgikit prints."""
    name = backend_name(mount)
    split = f"    path-info {path_info}\n" if path_info else ""
    return (
        f"# {route_line(mount)}\n"
        f"backend {name}\n"
        "    mode http\n"
        f"    use-fcgi-app {name}\n"
        f"    server app1 {socket} proto fcgi\n"
        f"fcgi-app {name}\n"
        f"    docroot {DOCROOT}\n"
        f"{split}"
    )


def write_haproxy_config(
    layout: Layout, fragment: str, route: str | None = None, global_lines: str = ""
) -> Path:
    """A whole haproxy.cfg: a frontend on the scenario's port that routes with ``route``
    (default: the line the fragment's comment names), then the fragment's sections;
    ``global_lines`` go in the ``global`` section (a stats socket)."""
    conf = layout.dir / "haproxy.cfg"
    conf.write_text(
        "global\n"
        "    log stderr format raw local0 notice\n"
        f"    pidfile {layout.dir}/haproxy.pid\n"
        f"{_indent(global_lines, 4)}"
        "defaults\n"
        "    mode http\n"
        "    log global\n"
        "    timeout connect 5s\n"
        "    timeout client 60s\n"
        "    timeout server 60s\n"
        "frontend web\n"
        f"    bind {HOST}:{layout.port}\n"
        f"    {route or haproxy_route(fragment)}\n"
        f"{fragment}"
    )
    return conf


def launch_haproxy(
    site: Site, fragment: str, route: str | None = None, global_lines: str = ""
) -> Process:
    binary = require_binary("haproxy")
    layout = site.layout
    conf = write_haproxy_config(layout, fragment, route, global_lines)
    site.config_files.append(conf)
    # -db: stay in the foreground, log to stderr (kept by Process for the failure report)
    return Process("haproxy", [binary, "-db", "-f", str(conf)], log_dir=layout.dir)


def debian_nginx_host_param() -> bool:
    """Whether Debian's fastcgi_params sets HTTP_HOST to $host (1.22.1-9+deb12u6 and later).

    Configs that include it send HTTP_HOST without the port, so absolute URLs lose it.
    """
    try:
        text = Path("/etc/nginx/fastcgi_params").read_text()
    except OSError:
        return False
    return re.search(r"^\s*fastcgi_param\s+HTTP_HOST\s+\$host\s*;", text, re.M) is not None


def _indent(text: str, spaces: int) -> str:
    if not text:
        return ""
    pad = " " * spaces
    lines = text.rstrip("\n").split("\n")
    return "".join(f"{pad}{line}\n" if line else "\n" for line in lines)


def site_fixture(scenarios: Sequence[Scenario], launch: Callable[[Site], Process]) -> Any:
    """A module-scoped ``site`` fixture running each scenario once, for all its tests."""

    @pytest.fixture(scope="module", params=scenarios, ids=[s.id for s in scenarios], name="site")
    def site(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
        scenario: Scenario = request.param
        workdir = tmp_path_factory.mktemp(scenario.id, numbered=True)
        with running_site(scenario, workdir, launch) as running:
            yield running

    return site
