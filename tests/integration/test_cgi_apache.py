"""The same ``.fcgi`` file run as plain CGI by Apache mod_cgid: the guide's last resort.

When stdin is not a listening socket, ``WSGIServer(app).run()`` serves the one request in
``os.environ`` and stdin and writes the response to stdout (``fcgikit.cgi``). Checked here
under a real Apache with mod_cgid (the CGI module of the event MPM), two ways:

- ``ScriptAlias /yourapplication .../yourapplication.fcgi``: SCRIPT_NAME is the alias, no fixer;
- the guide's ``.htaccess`` rewrite with ``AddHandler cgi-script .fcgi``: SCRIPT_NAME arrives
  as ``/yourapplication.fcgi``, fixed by the fixer ``fcgikit config apache-htaccess`` recommends.

Each scenario runs the URL checks every web server gets (``SiteChecks``, with the Flask app,
which here is started once per request), and ``TestCGIOutput`` checks what is special about
CGI with a plain WSGI ``.fcgi``: an app that prints to stdout (Python-level and fd-level)
before and during the response still sends a clean response, binary bodies arrive
byte-exact, and HTTP_PROXY never reaches ``os.environ`` (httpoxy). A last test runs the
``.fcgi`` as CGI without Apache, with HTTP_PROXY in its environment, as a server that does
not filter it would.

Apache refuses ``User root``; the harness starts it as www-data with the capabilities to
read the interpreter and the test directories, which the CGI processes inherit.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from fcgikit.deploy import recommended_fixer

from .checks import SiteChecks
from .harness import (
    REPO_ROOT,
    Process,
    Scenario,
    Site,
    launch_apache,
    require_apache_module,
    running_site,
    site_fixture,
)

pytestmark = pytest.mark.integration

MOUNT = "/yourapplication"


def _htaccess_fixer() -> str:
    fixer = recommended_fixer("apache-htaccess", mount="")
    return "none" if fixer is None else fixer.spec


UNSAFE_3F = (
    403,
    "mod_rewrite (Apache 2.4.60+, CVE-2024-38474) refuses to put the decoded %3F of $1 "
    "into the rewritten URL without the UnsafeAllow3F flag",
)

HTACCESS_SCENARIO = Scenario(
    "cgi-htaccess-docroot",
    "apache-cgid",
    "",
    "mod_cgid: the guide's .htaccess rewrite with AddHandler cgi-script .fcgi",
    fixer=_htaccess_fixer(),
    backend=None,
    limitations={"pct3F": UNSAFE_3F},
    notes="plain CGI, one process per request; SCRIPT_NAME arrives as /yourapplication.fcgi",
)
SCRIPTALIAS_SCENARIO = Scenario(
    "cgi-scriptalias-prefix",
    "apache-cgid",
    MOUNT,
    "mod_cgid: ScriptAlias /yourapplication .../yourapplication.fcgi",
    backend=None,
    notes="plain CGI, one process per request",
)

HTACCESS = """\
Options +ExecCGI +FollowSymLinks
AddHandler cgi-script .fcgi
RewriteEngine On
RewriteBase /
RewriteCond %{REQUEST_FILENAME} !-f
RewriteRule ^(.*)$ yourapplication.fcgi/$1 [QSA,L]
"""

#: A plain WSGI app (no Flask: it starts faster) that misbehaves the way CGI punishes.
PLAIN_FCGI = """\
#!{python}
import hashlib, json, os, sys
sys.path.insert(0, {repo!r})
from fcgikit import WSGIServer

print("import-time print")  # before any header: would be a 500 without the guard


def app(environ, start_response):
    print("debug: looks like a header")  # would become a response header
    os.write(1, b"fd-level write\\n")  # C-level code and subprocesses write to fd 1
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length)
    answer = json.dumps({{
        "type": type(body).__name__,
        "length": len(body),
        "sha256": hashlib.sha256(body).hexdigest(),
        "os_environ_proxy": os.environ.get("HTTP_PROXY"),
        "environ_proxy": environ.get("HTTP_PROXY"),
        "script_name": environ.get("SCRIPT_NAME"),
        "path_info": environ.get("PATH_INFO"),
    }}).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(answer)))])
    print("after start_response")  # would land in the body
    return [answer]


if __name__ == "__main__":
    WSGIServer(app).run()
"""


def write_plain_fcgi(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(PLAIN_FCGI.format(python=sys.executable, repo=str(REPO_ROOT)))
    path.chmod(0o755)
    return path


def launch(site: Site) -> Process:
    require_apache_module("cgid", "apache2")
    require_apache_module("rewrite", "apache2")
    layout = site.layout
    plain = write_plain_fcgi(layout.dir / "cgi-bin" / "plain.fcgi")
    fragment = (
        # httpoxy: Apache drops a Proxy: header itself; SetEnv puts HTTP_PROXY into the CGI
        # environment anyway, as a careless config or another server would.
        "SetEnv HTTP_PROXY http://proxy.invalid:3128\n"
        f'ScriptAlias /plain "{plain}"\n'
        f'<Directory "{plain.parent}">\n    Require all granted\n</Directory>\n'
    )
    if site.scenario is HTACCESS_SCENARIO:
        (layout.docroot / ".htaccess").write_text(HTACCESS)
    else:
        fragment += f'ScriptAlias {site.scenario.mount} "{plain}"\n'
    return launch_apache(
        site,
        fragment,
        modules=["cgid", "rewrite"],
        server_config=f'ScriptSock "{layout.dir}/cgid.sock"\n',
    )


# The Flask app starts once per request under CGI (about half a second), so the whole URL
# matrix runs on the .htaccess recipe, the one that needs a fixer; ScriptAlias gets the plain
# app, for the URL split and the CGI output checks.
site = site_fixture([HTACCESS_SCENARIO], launch)


@pytest.fixture(scope="module")
def alias_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    workdir = tmp_path_factory.mktemp(SCRIPTALIAS_SCENARIO.id, numbered=True)
    with running_site(SCRIPTALIAS_SCENARIO, workdir, launch) as running:
        yield running


class TestApacheCGIHtaccess(SiteChecks):
    pass


class TestCGIScriptAlias:
    @pytest.mark.parametrize(
        ("target", "path_info"),
        [
            pytest.param(f"{MOUNT}/env/with%20space/x?a=1", "/env/with space/x", id="space"),
            pytest.param(f"{MOUNT}/caf%C3%A9", "/caf\xc3\xa9", id="non-ascii"),
            pytest.param(f"{MOUNT}/", "/", id="slash"),
            pytest.param(MOUNT, "", id="bare-mount"),
        ],
    )
    def test_split(self, alias_site: Site, target: str, path_info: str) -> None:
        response = alias_site.get(target)
        assert response.status == 200, response.body[:2000]
        data = json.loads(response.body)
        assert (data["script_name"], data["path_info"]) == (MOUNT, path_info)

    def test_prints_do_not_corrupt_the_response(self, alias_site: Site) -> None:
        site = alias_site
        response = site.get("/plain/x")
        assert response.status == 200, response.body[:2000]
        assert "debug" not in {name.lower() for name in response.headers}
        data = json.loads(response.body)  # exactly the JSON, no stray output around it
        assert data["script_name"] == "/plain"
        assert data["path_info"] == "/x"

    def test_binary_body_and_no_http_proxy(self, alias_site: Site) -> None:
        site = alias_site
        body = bytes(range(256)) * 512
        response = site.request(
            "POST",
            "/plain/upload",
            body,
            {"Content-Type": "application/octet-stream", "Proxy": "http://evil.invalid"},
        )
        assert response.status == 200, response.body[:2000]
        data = json.loads(response.body)
        assert data["type"] == "bytes"
        assert (data["length"], data["sha256"]) == (len(body), hashlib.sha256(body).hexdigest())
        assert data["os_environ_proxy"] is None
        assert data["environ_proxy"] is None

    def test_app_output_went_to_the_error_log(self, alias_site: Site) -> None:
        site = alias_site
        assert site.get("/plain/log").status == 200
        # mod_cgid logs a CGI's stderr to the error log; the guard sent the prints there.
        log = (site.layout.dir / "error.log").read_text(errors="replace")
        assert "after start_response" in log


def test_fcgi_as_cgi_without_a_web_server(tmp_path: Path) -> None:
    """stdin a pipe, the request in the environment: what any CGI server does."""
    script = write_plain_fcgi(tmp_path / "plain.fcgi")
    body = b"\x00\xffbinary\r\n"
    env = {
        "PATH": "/usr/bin:/bin",
        "GATEWAY_INTERFACE": "CGI/1.1",
        "REQUEST_METHOD": "POST",
        "SCRIPT_NAME": "/plain",
        "PATH_INFO": "/p",
        "QUERY_STRING": "",
        "CONTENT_LENGTH": str(len(body)),
        "CONTENT_TYPE": "application/octet-stream",
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_PROXY": "http://evil.invalid",
    }
    done = subprocess.run(
        [str(script)], input=body, capture_output=True, env=env, cwd="/", timeout=60
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    head, _, payload = done.stdout.partition(b"\r\n\r\n")
    assert head.startswith(b"Status: 200 OK"), done.stdout[:500]
    assert b"debug" not in head
    data = json.loads(payload)
    assert (data["length"], data["sha256"]) == (len(body), hashlib.sha256(body).hexdigest())
    assert data["os_environ_proxy"] is None and data["environ_proxy"] is None
    assert b"import-time print" in done.stderr
