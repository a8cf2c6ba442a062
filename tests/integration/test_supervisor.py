"""supervisord (Debian's ``supervisor``) runs the app as an ``[fcgi-program:x]``, behind nginx.

supervisord binds the unix socket itself and starts the program with it on fd 0, as a web
server's spawner would. Two programs, from :func:`fcgikit.deploy.render` (``fcgikit config
supervisor``), as a user would paste it:

* ``render``: the section verbatim, with the test's interpreter, app dir and user (root);
* ``guide-fcgi``: the same section running the guide's ``yourapplication.fcgi``
  (``from fcgikit import WSGIServer ... WSGIServer(app).run()``) instead of ``fcgikit serve``.

supervisord runs in the foreground (``-n``) with its pid file, log and control socket in the
test's directory, and is stopped by PID; readiness is observed on its log, never slept on.
supervisord closes the socket when the program's last process exits and binds it again when
it starts the next one, so requests sent while the program restarts get a 502 from nginx
(supervisor's behaviour, not fcgikit's); the tests wait for ``entered RUNNING state``.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from fcgikit.deploy import render

from .harness import (
    REPO_ROOT,
    Layout,
    Process,
    Scenario,
    Site,
    find_binary,
    launch_nginx,
    missing,
    server_version,
)

pytestmark = pytest.mark.integration

PROGRAM = "yourapplication"
RUNNING = f"success: {PROGRAM}_00 entered RUNNING state"

APP_SOURCE = """\
import hashlib, os


def app(environ, start_response):
    body = environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Type", "application/octet-stream"),
                              ("X-Pid", str(os.getpid())),
                              ("X-Sha256", hashlib.sha256(body).hexdigest()),
                              ("X-Path", environ.get("PATH_INFO", ""))])
    return [body if environ["REQUEST_METHOD"] == "POST" else b"hello from supervisor"]
"""

# The Flask guide's yourapplication.fcgi, with the test's interpreter in the shebang.
FCGI_SOURCE = f"""\
#!{sys.executable}
from fcgikit import WSGIServer
from yourapplication import app

if __name__ == '__main__':
    WSGIServer(app).run()
"""

NGINX = """\
location / {
    include fastcgi_params;
    fastcgi_param PATH_INFO $fastcgi_script_name;
    fastcgi_param SCRIPT_NAME "";
    fastcgi_pass unix:{socket};
}
"""


def require_supervisor() -> tuple[str, str]:
    found = find_binary("supervisord"), find_binary("supervisorctl")
    if found[0] is None or found[1] is None:
        missing("supervisord not found: install the Debian package supervisor")
        raise AssertionError("unreachable")
    return found[0], found[1]


def program_section(layout: Layout, variant: str) -> str:
    """``fcgikit config supervisor``'s section for this test's paths."""
    section = render(
        "supervisor",
        socket=f"unix:{layout.socket}",
        app=f"{PROGRAM}:app",
        chdir=str(layout.docroot),
        user="root",
        command=f"{sys.executable} -m fcgikit",
        spawn=str(layout.fcgi) if variant == "guide-fcgi" else None,
    )
    # The checkout under test, whatever pip installed; startsecs=0: RUNNING once started.
    return section + (
        f'environment = PYTHONPATH="{REPO_ROOT}",PYTHONUNBUFFERED="1"\nstartsecs = 0\n'
    )


def write_supervisord_config(layout: Layout, section: str) -> Path:
    conf = layout.dir / "supervisord.conf"
    conf.write_text(
        "[supervisord]\n"
        f"pidfile = {layout.dir}/supervisord.pid\n"
        # the log on stderr too, where the harness reads it
        "logfile = /dev/stderr\n"
        "logfile_maxbytes = 0\n"
        "loglevel = info\n"
        f"childlogdir = {layout.dir}\n"
        "\n"
        "[unix_http_server]\n"
        f"file = {layout.dir}/supervisor.sock\n"
        "chmod = 0700\n"
        "\n"
        "[rpcinterface:supervisor]\n"
        "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface\n"
        "\n"
        "[supervisorctl]\n"
        f"serverurl = unix://{layout.dir}/supervisor.sock\n"
        "\n"
        f"{section}"
    )
    return conf


class SupervisedSite:
    """The site plus a way to talk to its supervisord."""

    def __init__(self, site: Site, supervisord: Process, ctl: str, conf: Path) -> None:
        self.site = site
        self.supervisord = supervisord
        self.ctl = ctl
        self.conf = conf

    def supervisorctl(self, *args: str) -> str:
        done = subprocess.run(
            [self.ctl, "-c", str(self.conf), *args],
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )
        return done.stdout + done.stderr

    def program_pid(self) -> int:
        text = self.supervisorctl("pid", f"{PROGRAM}:{PROGRAM}_00").strip()
        assert text.isdigit() and text != "0", text
        return int(text)


@pytest.fixture(scope="module", params=["render", "guide-fcgi"])
def supervised(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SupervisedSite]:
    supervisord, ctl = require_supervisor()
    variant = str(request.param)
    tmp_path = tmp_path_factory.mktemp(f"supervisor-{variant}")
    scenario = Scenario(
        f"supervisor-{variant}", "nginx", "", "[fcgi-program:x] socket=unix://", backend=None
    )
    layout = Layout.create(tmp_path)
    site = Site(scenario, layout, server_version("nginx"))
    try:
        (layout.docroot / f"{PROGRAM}.py").write_text(APP_SOURCE)
        layout.fcgi.write_text(FCGI_SOURCE)
        layout.fcgi.chmod(0o755)
        conf = write_supervisord_config(layout, program_section(layout, variant))
        site.config_files.append(conf)
        daemon = Process(
            "supervisord",
            [supervisord, "-n", "-c", str(conf)],
            log_dir=layout.dir,
            logs=[layout.dir / "supervisord.stdout"],
        )
        site.processes.append(daemon)
        daemon.wait_for_output(RUNNING)
        nginx = launch_nginx(site, NGINX.replace("{socket}", str(layout.socket)))
        site.processes.append(nginx)
        nginx.wait_for_port(layout.port)
        yield SupervisedSite(site, daemon, ctl, conf)
    finally:
        site.stop()


@pytest.fixture
def site(supervised: SupervisedSite) -> Site:
    """For the integration conftest: its failure report shows every config and log."""
    return supervised.site


def test_get_through_nginx(supervised: SupervisedSite, site: Site) -> None:
    response = site.get("/hello")
    assert response.status == 200, response.body
    assert response.body == b"hello from supervisor"
    assert response.headers["X-Path"] == "/hello"
    assert int(response.headers["X-Pid"]) == supervised.program_pid()


def test_post_body_is_byte_exact(site: Site) -> None:
    body = bytes(range(256)) * 4096 + b"\r\n\x00end"  # 1 MiB and a bit, every byte value
    response = site.request("POST", "/upload", body=body)
    assert response.status == 200, response.body[:500]
    assert response.body == body
    assert response.headers["X-Sha256"] == hashlib.sha256(body).hexdigest()


def test_supervisorctl_restart_serves_again(supervised: SupervisedSite, site: Site) -> None:
    before = supervised.program_pid()
    output = supervised.supervisorctl("restart", f"{PROGRAM}:*")
    assert "started" in output, output
    after = supervised.program_pid()
    assert after != before
    response = site.get("/after-restart")
    assert response.status == 200, response.body
    assert int(response.headers["X-Pid"]) == after


def test_killed_program_is_restarted_and_serves(supervised: SupervisedSite, site: Site) -> None:
    running = supervised.supervisord.stderr.count(RUNNING)
    before = supervised.program_pid()
    os.kill(before, signal.SIGKILL)
    supervised.supervisord.wait_for_output(f"exited: {PROGRAM}_00 (terminated by SIGKILL")
    # supervisord closes the socket when its last process exits and binds it again for the
    # next one: wait for that one, or the request meets no socket (nginx answers 502).
    supervised.supervisord.wait_for_output(RUNNING, count=running + 1)
    response = site.get("/after-kill")
    assert response.status == 200, response.body
    assert int(response.headers["X-Pid"]) == supervised.program_pid() != before
