"""fcgikit.testing (through_fastcgi, the pytest plugin) and the quirk catalogue behind it.

The quirk catalogue (fcgikit.quirks) must reproduce what the real web servers sent.

Every request captured in ``tests/data/captured-environs.json`` (28 configurations, 4 requests
each) is replayed through :func:`fastcgi_params`; SCRIPT_NAME, PATH_INFO and REQUEST_URI (and
SCRIPT_FILENAME where it carries the path) must come out as the server sent them, including
which params are absent and which are sent twice. A request the server answered itself must
raise NotForwarded with the status the server answered.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from flask import Flask, jsonify, request, url_for

from fcgikit import middleware
from fcgikit.middleware import MountFix, ScriptNameStripper
from fcgikit.middleware.catalogue import RECOMMENDED
from fcgikit.quirks import SERVERS, NotForwarded, fastcgi_params, normalize_mount
from fcgikit.testing import RunningServer, request_target, through_fastcgi

with warnings.catch_warnings():
    # webob (under webtest) imports the cgi module, deprecated since Python 3.11
    warnings.simplefilter("ignore", DeprecationWarning)
    from webtest import TestApp  # type: ignore[import-untyped]

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

CAPTURES = Path(__file__).parent / "data" / "captured-environs.json"

#: capture configuration -> (fcgikit.quirks name, mount)
CONFIGURATIONS = {
    "apache_fcgid_htaccess": ("apache-htaccess", ""),
    "apache_fcgid_scriptalias_prefix": ("apache-fcgid", "/yourapplication"),
    "apache_fcgid_scriptalias_root": ("apache-fcgid", ""),
    "apache_proxyfcgi_prefix": ("apache-proxy-fcgi", "/yourapplication"),
    "apache_proxyfcgi_prefix_generic": ("apache-proxy-fcgi-generic", "/yourapplication"),
    "apache_proxyfcgi_prefix_pathinfo": ("apache-proxy-fcgi-pathinfo", "/yourapplication"),
    "apache_proxyfcgi_root": ("apache-proxy-fcgi", ""),
    "apache_proxyfcgi_root_pathinfo": ("apache-proxy-fcgi-pathinfo", ""),
    "caddy_handle_path_prefix": ("caddy-handle-path", "/yourapplication"),
    "caddy_root": ("caddy", ""),
    "caddy_root_split": ("caddy-split", ""),
    "caddy_route_prefix": ("caddy", "/yourapplication"),
    "caddy_route_prefix_split": ("caddy-split", "/yourapplication"),
    "h2o_prefix": ("h2o", "/yourapplication"),
    "h2o_root": ("h2o", ""),
    "haproxy_prefix": ("haproxy", "/yourapplication"),
    "haproxy_prefix_pathinfo": ("haproxy-path-info", "/yourapplication"),
    "haproxy_root": ("haproxy", ""),
    "haproxy_root_pathinfo": ("haproxy-path-info", ""),
    "lighttpd_guide_rewrite": ("lighttpd-rewrite", ""),
    "lighttpd_guide_rewrite_fixroot": ("lighttpd-rewrite", ""),
    "lighttpd_prefix": ("lighttpd", "/yourapplication"),
    "lighttpd_root": ("lighttpd", ""),
    "lighttpd_root_fixroot": ("lighttpd-fix-root", ""),
    "nginx_naive_prefix": ("nginx-naive", "/yourapplication"),
    "nginx_naive_root": ("nginx-naive", ""),
    "nginx_prefix": ("nginx", "/yourapplication"),
    "nginx_root": ("nginx", ""),
}

PATH_KEYS = ("SCRIPT_NAME", "PATH_INFO", "REQUEST_URI")


def _captures() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(CAPTURES.read_text())
    return data


def _cases() -> list[Any]:
    cases = []
    for configuration, requests in _captures().items():
        for label, capture in requests.items():
            cases.append(pytest.param(configuration, capture, id=f"{configuration}-{label}"))
    return cases


def test_every_capture_is_mapped_and_every_server_used() -> None:
    assert set(CONFIGURATIONS) == set(_captures())
    assert {name for name, _ in CONFIGURATIONS.values()} == set(SERVERS)


def _sent(capture: dict[str, Any]) -> list[tuple[str, str]]:
    return [(name, value) for name, value in capture["params"]]


@pytest.mark.parametrize(("configuration", "capture"), _cases())
def test_rules_reproduce_capture(configuration: str, capture: dict[str, Any]) -> None:
    server, mount = CONFIGURATIONS[configuration]
    method, _, target = capture["request_line"].partition(" ")
    sent = _sent(capture) if capture.get("params") else None
    body = capture.get("body_received", "")
    kwargs: dict[str, Any] = {}
    if method == "POST":
        kwargs = {"content_length": len(body), "content_type": "text/plain"}
    if sent is not None and "DOCUMENT_ROOT" in dict(sent):
        kwargs["document_root"] = dict(sent)["DOCUMENT_ROOT"]
    if sent is None:
        with pytest.raises(NotForwarded) as raised:
            fastcgi_params(server, method, target, mount=mount, **kwargs)
        assert raised.value.status == capture["status"]
        return
    ours = [
        (name.decode("latin-1"), value.decode("latin-1"))
        for name, value in fastcgi_params(server, method, target, mount=mount, **kwargs)
    ]
    for key in PATH_KEYS:
        assert [v for k, v in ours if k == key] == [v for k, v in sent if k == key], key
    if dict(sent).get("SCRIPT_FILENAME", "").startswith(("proxy:", "/")):
        assert dict(ours)["SCRIPT_FILENAME"] == dict(sent)["SCRIPT_FILENAME"]
    for key in ("CONTENT_LENGTH", "SERVER_SOFTWARE", "GATEWAY_INTERFACE"):
        assert (key in dict(ours)) == (key in dict(sent)), key
    assert dict(ours).get("CONTENT_LENGTH") == dict(sent).get("CONTENT_LENGTH")
    assert dict(ours)["SERVER_SOFTWARE"].split()[0] == dict(sent)["SERVER_SOFTWARE"].split()[0]


@pytest.mark.parametrize(
    ("server", "target", "script_name", "path_info"),
    [
        pytest.param("nginx", "//a/../b//c", "", "/b/c", id="nginx-normalizes"),
        pytest.param("caddy", "//a/../b", "", "//a/../b", id="caddy-does-not"),
        pytest.param("h2o", "//a/../b", "", "//b", id="h2o-resolves-dots-keeps-slashes"),
        pytest.param("lighttpd", "/a/b/c", "/a", "/b/c", id="lighttpd-root-split"),
        pytest.param("apache-fcgid", "/caf%C3%A9", "", "/caf\xc3\xa9", id="latin-1-bytes"),
    ],
)
def test_normalization(server: str, target: str, script_name: str, path_info: str) -> None:
    params = dict(fastcgi_params(server, "GET", target))
    assert params[b"SCRIPT_NAME"] == script_name.encode("latin-1")
    assert params[b"PATH_INFO"] == path_info.encode("latin-1")


def test_apache_refuses_encoded_slash() -> None:
    with pytest.raises(NotForwarded) as raised:
        fastcgi_params("apache-htaccess", "GET", "/a%2Fb")
    assert raised.value.status == 404


def test_htaccess_in_a_subdirectory() -> None:
    params = dict(fastcgi_params("apache-htaccess", "GET", "/app/x", mount="/app"))
    assert params[b"SCRIPT_NAME"] == b"/app/yourapplication.fcgi"
    assert params[b"PATH_INFO"] == b"/x"


def test_headers_dropped_per_server() -> None:
    headers = [("Host", "example.org"), ("Proxy", "http://evil"), ("X_Spoof", "1")]
    nginx = dict(fastcgi_params("nginx", "GET", "/", headers=headers))
    apache = dict(fastcgi_params("apache-fcgid", "GET", "/", headers=headers))
    assert nginx[b"HTTP_PROXY"] == b"http://evil"  # nginx passes it (httpoxy)
    assert b"HTTP_PROXY" not in apache
    assert b"HTTP_X_SPOOF" not in nginx
    assert nginx[b"HTTP_HOST"] == apache[b"HTTP_HOST"] == b"example.org"


def test_haproxy_without_path_info_sends_flask_round_in_circles(flask_app: Flask) -> None:
    """SCRIPT_NAME is the whole path and PATH_INFO empty: every URL is the app's root, which
    Flask redirects to the same URL with a slash, and that one to itself."""
    with through_fastcgi(flask_app, server="haproxy", mount="/app") as wrapped:
        app = TestApp(wrapped)
        first = app.get("/app/foo/bar", status=308)
        again = app.get("/app/foo/bar/", status=308)
    assert first.headers["Location"].endswith("/app/foo/bar/")
    assert again.headers["Location"].endswith("/app/foo/bar/")


def test_haproxy_derives_an_unchecked_user_and_hides_authorization() -> None:
    basic = "Basic " + base64.b64encode(b"admin:wrong").decode()
    for server in ("haproxy", "haproxy-path-info"):
        headers = [("Host", "example.org:8080"), ("Authorization", basic)]
        params = dict(fastcgi_params(server, "GET", "/x", headers=headers))
        assert (params[b"REMOTE_USER"], params[b"AUTH_TYPE"]) == (b"admin", b"Basic")
        assert b"HTTP_AUTHORIZATION" not in params
        assert params[b"SERVER_NAME"] == b"example.org:8080"  # the Host header, port and all
        assert b"QUERY_STRING" not in params  # no empty value is ever sent
    bearer = dict(fastcgi_params("haproxy", "GET", "/", headers=[("Authorization", "Bearer t")]))
    assert bearer[b"AUTH_TYPE"] == b"Bearer" and b"REMOTE_USER" not in bearer
    broken = dict(fastcgi_params("haproxy", "GET", "/", headers=[("Authorization", "Basic !")]))
    assert b"AUTH_TYPE" not in broken


@pytest.mark.parametrize(
    ("server", "target", "status"),
    [
        pytest.param("haproxy", "/other/x", 503, id="outside-the-route"),
        pytest.param("haproxy-path-info", "/app/a%0Ab", 500, id="newline-with-path-info"),
    ],
)
def test_haproxy_answers_itself(server: str, target: str, status: int) -> None:
    with pytest.raises(NotForwarded) as raised:
        fastcgi_params(server, "GET", target, mount="/app")
    assert raised.value.status == status


def test_unknown_server_and_bad_mount() -> None:
    with pytest.raises(KeyError, match="known: nginx"):
        fastcgi_params("iis", "GET", "/")
    with pytest.raises(ValueError, match="must start with"):
        normalize_mount("app")
    with pytest.raises(ValueError, match="no mount"):
        fastcgi_params("lighttpd-rewrite", "GET", "/x/", mount="/x")
    assert normalize_mount("/") == normalize_mount("") == ""
    assert normalize_mount("/app/") == "/app"


# --- through_fastcgi ------------------------------------------------------------------------


def make_flask_app() -> Flask:
    app = Flask(__name__)

    @app.route("/", defaults={"sub": ""})
    @app.route("/<path:sub>", methods=["GET", "POST"])
    def show(sub: str) -> Any:
        environ = request.environ
        return jsonify(
            sub=sub,
            script_name=environ["SCRIPT_NAME"],
            path_info=environ["PATH_INFO"],
            request_uri=environ.get("REQUEST_URI"),
            software=environ.get("SERVER_SOFTWARE"),
            url=url_for("show", sub=sub or None),
            body=request.get_data().hex(),
            proxy=environ.get("HTTP_PROXY"),
        )

    return app


@pytest.fixture(scope="module")
def flask_app() -> Flask:
    return make_flask_app()


@pytest.mark.parametrize(
    ("server", "mount", "script_name", "path_info", "url"),
    [
        pytest.param("nginx", "/", "", "/foo/bar", "/foo/bar", id="nginx-last-wins"),
        pytest.param("lighttpd", "/", "/foo", "/bar", "/foo/bar", id="lighttpd-root-split"),
        pytest.param(
            "apache-htaccess",
            "/",
            "/yourapplication.fcgi",
            "/foo/bar",
            "/yourapplication.fcgi/foo/bar",
            id="htaccess-script-in-urls",
        ),
        pytest.param("h2o", "/app", "", "/app/foo/bar", "/app/foo/bar", id="h2o-keeps-prefix"),
        pytest.param("apache-fcgid", "/app", "/app", "/foo/bar", "/app/foo/bar", id="scriptalias"),
        # at the root HAProxy leaves the empty SCRIPT_NAME out; fcgikit's server reads ''
        pytest.param("haproxy-path-info", "/", "", "/foo/bar", "/foo/bar", id="haproxy-root"),
    ],
)
def test_app_sees_the_servers_quirks(
    flask_app: Flask, server: str, mount: str, script_name: str, path_info: str, url: str
) -> None:
    prefix = "" if mount == "/" else mount
    with through_fastcgi(flask_app, server=server, mount=mount) as wrapped:
        data = TestApp(wrapped).get(f"{prefix}/foo/bar?x=1").json
    assert (data["script_name"], data["path_info"]) == (script_name, path_info)
    assert data["request_uri"] == f"{prefix}/foo/bar?x=1"
    assert data["url"] == url


@pytest.mark.parametrize(
    ("server", "mount", "fix"),
    [
        pytest.param("apache-htaccess", "/", ScriptNameStripper, id="htaccess-stripper"),
        pytest.param("lighttpd", "/", lambda app: MountFix(app, ""), id="lighttpd-mountfix"),
        pytest.param("h2o", "/app", lambda app: MountFix(app, "/app"), id="h2o-mountfix"),
        pytest.param(
            "apache-proxy-fcgi", "/app", lambda app: MountFix(app, "/app"), id="proxy-mountfix"
        ),
    ],
)
def test_fixer_under_the_servers_quirks(
    flask_app: Flask, server: str, mount: str, fix: Any
) -> None:
    prefix = "" if mount == "/" else mount
    fixed = fix(flask_app.wsgi_app)
    with through_fastcgi(fixed, server=server, mount=mount) as wrapped:
        data = TestApp(wrapped).get(f"{prefix}/foo/bar").json
    assert (data["script_name"], data["path_info"]) == (prefix, "/foo/bar")
    assert data["url"] == f"{prefix}/foo/bar"


def _path_app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps([environ["SCRIPT_NAME"], environ["PATH_INFO"]]).encode()]


@pytest.mark.parametrize("configuration", sorted(CONFIGURATIONS))
def test_recommended_fixer_under_each_server(configuration: str) -> None:
    """fcgikit.middleware.catalogue's fixer for each capture, under these rules, end to end."""
    server, mount = CONFIGURATIONS[configuration]
    fixer = RECOMMENDED[configuration]
    app: Any = _path_app
    if fixer == "ScriptNameStripper":
        app = ScriptNameStripper(app)
    elif fixer is not None:
        app = getattr(middleware, fixer)(app, mount)
    with through_fastcgi(app, server=server, mount=mount or "/") as wrapped:
        seen = TestApp(wrapped).get(f"{mount}/foo/bar%20baz?x=1").json
    assert seen == [mount, "/foo/bar baz"]


def test_post_body_headers_and_dropped_proxy(flask_app: Flask) -> None:
    body = bytes(range(256)) * 100
    with through_fastcgi(flask_app, server="apache-fcgid") as wrapped:
        app = TestApp(wrapped)
        data = app.post("/echo", body, headers={"Proxy": "http://evil"}).json
        assert bytes.fromhex(data["body"]) == body
        assert data["proxy"] is None  # Apache drops the Proxy header (httpoxy)
        assert data["software"].startswith("Apache/")
    with through_fastcgi(flask_app, server="nginx") as wrapped:
        # nginx passes it on; fcgikit's server drops it
        assert TestApp(wrapped).get("/", headers={"Proxy": "http://evil"}).json["proxy"] is None


def test_request_the_server_answers_itself(flask_app: Flask) -> None:
    with through_fastcgi(flask_app, server="apache-htaccess") as wrapped:
        # webtest decodes the path into PATH_INFO; only REQUEST_URI keeps the %2F
        response = TestApp(wrapped).get(
            "/a%2Fb", extra_environ={"REQUEST_URI": "/a%2Fb"}, status=404
        )
    assert "AllowEncodedSlashes" in response.text


def test_app_error_is_a_500_with_the_traceback() -> None:
    def broken(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        raise RuntimeError("boom")

    with through_fastcgi(broken, server="nginx") as wrapped:
        response = TestApp(wrapped).get("/", status=500, expect_errors=True)
    assert "boom" in response.text


def test_unknown_server() -> None:
    with pytest.raises(ValueError, match="known: nginx"):
        through_fastcgi(make_flask_app(), server="iis")


def test_request_target() -> None:
    assert request_target({"PATH_INFO": "/a b/\xc3\xa9", "QUERY_STRING": "x=1"}) == (
        "/a%20b/%C3%A9?x=1"
    )
    assert request_target({"REQUEST_URI": "/raw%2F?q", "PATH_INFO": "/raw/"}) == "/raw%2F?q"
    assert request_target({}) == "/"


def test_running_server_close_removes_its_directory() -> None:
    running = RunningServer(make_flask_app())
    response = running.client().request("GET", "/x")
    assert response.status == 200
    directory = os.path.dirname(running.path)
    running.close()
    running.close()
    assert not os.path.exists(directory)
    assert not running.thread.is_alive()


PLUGIN_TESTS = """
from webtest import TestApp


def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [environ["SCRIPT_NAME"].encode(), b"|", environ["PATH_INFO"].encode()]


def test_server(fastcgi_server):
    running = fastcgi_server(app, threads=2)
    assert running.client().request("GET", "/a/b").body == b"|/a/b"


def test_app(fastcgi_app):
    assert TestApp(fastcgi_app(app, server="lighttpd")).get("/a/b").text == "/a|/b"
    assert TestApp(fastcgi_app(app)).get("/a/b").text == "/a|/b"
"""


def test_pytest_plugin(tmp_path: Path) -> None:
    (tmp_path / "test_plugin.py").write_text(PLUGIN_TESTS)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "fcgikit.testing", "-q", "-p", "no:cacheprovider"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 passed" in done.stdout
