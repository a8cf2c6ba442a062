"""Each fixer under werkzeug's LintMiddleware, and a Flask app behind each one via webtest."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask, jsonify, redirect, request, url_for
from werkzeug.middleware.lint import LintMiddleware
from werkzeug.test import Client

from fcgikit.middleware import (
    HeaderFix,
    LighttpdRootFix,
    MountFix,
    Normalize,
    ProxyFix,
    ScriptNameStripper,
    StdoutGuard,
    wrap,
)

from .helpers import Recorder

with warnings.catch_warnings():
    # webob (under webtest) imports the cgi module, deprecated since Python 3.11; the
    # project's filter names webtest, but the warning is attributed to webob.
    warnings.simplefilter("ignore", DeprecationWarning)
    from webtest import TestApp  # type: ignore[import-untyped]

Fixer = Callable[[Any], Any]


def htaccess(path: str) -> dict[str, Any]:
    """Apache mod_fcgid, .htaccess in /blog rewriting onto yourapplication.fcgi."""
    return {
        "SCRIPT_NAME": "/blog/yourapplication.fcgi",
        "PATH_INFO": path,
        "SCRIPT_FILENAME": "/srv/www/blog/yourapplication.fcgi",
        "REQUEST_URI": "/blog" + path,
    }


def lighttpd_root(path: str) -> dict[str, Any]:
    """lighttpd, fastcgi.server "/" without fix-root-scriptname."""
    first, slash, rest = path[1:].partition("/")
    return {"SCRIPT_NAME": "/" + first, "PATH_INFO": slash + rest, "REQUEST_URI": path}


def nginx_stock(path: str) -> dict[str, Any]:
    """nginx with only the stock fastcgi_params, app at /yourapplication."""
    uri = "/yourapplication" + path
    return {"SCRIPT_NAME": uri, "PATH_INFO": "", "REQUEST_URI": uri}


def nginx_recipe(path: str) -> dict[str, Any]:
    """nginx with Flask's prefix recipe: SCRIPT_NAME sent twice."""
    return {
        "SCRIPT_NAME": "/yourapplication",
        "PATH_INFO": path,
        "REQUEST_URI": "/yourapplication" + path,
        "fcgikit.duplicate_params": frozenset({"SCRIPT_NAME"}),
    }


def proxied(path: str) -> dict[str, Any]:
    """A TLS-terminating proxy that sends Forwarded, in front of a correct server."""
    return {
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "REQUEST_URI": path,
        "HTTP_FORWARDED": 'for="[2001:db8::9]:1234";proto=https;host=public.example',
    }


def fhost(path: str) -> dict[str, Any]:
    """A front end that sets X-FHOST and X-Forwarded-Proto."""
    return {
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "REQUEST_URI": path,
        "HTTP_X_FHOST": "public.example",
        "HTTP_X_FORWARDED_PROTO": "https",
    }


def correct(path: str) -> dict[str, Any]:
    return {"SCRIPT_NAME": "", "PATH_INFO": path, "REQUEST_URI": path}


Sent = Callable[[str], dict[str, Any]]

#: (id, fixer, what the server sends for a path, script root, external URL base)
DEPLOYMENTS: list[tuple[str, Fixer, Sent, str, str]] = [
    ("ScriptNameStripper", ScriptNameStripper, htaccess, "/blog", "http://localhost/blog"),
    ("LighttpdRootFix", LighttpdRootFix, lighttpd_root, "", "http://localhost"),
    (
        "MountFix",
        lambda app: MountFix(app, "/yourapplication"),
        nginx_stock,
        "/yourapplication",
        "http://localhost/yourapplication",
    ),
    ("Normalize", Normalize, nginx_recipe, "/yourapplication", "http://localhost/yourapplication"),
    (
        "ProxyFix",
        lambda app: ProxyFix(app, x_for=0, x_proto=0, forwarded=1),
        proxied,
        "",
        "https://public.example",
    ),
    (
        "HeaderFix",
        lambda app: HeaderFix(app, host="X-FHOST", scheme="X-Forwarded-Proto"),
        fhost,
        "",
        "https://public.example",
    ),
    ("StdoutGuard", StdoutGuard, correct, "", "http://localhost"),
    (
        "wrap",
        lambda app: wrap(app, mount="/yourapplication"),
        nginx_stock,
        "/yourapplication",
        "http://localhost/yourapplication",
    ),
]


@pytest.mark.parametrize(
    ("fixer", "sent"), [pytest.param(f, s, id=name) for name, f, s, _, _ in DEPLOYMENTS]
)
def test_under_lint(fixer: Fixer, sent: Sent) -> None:
    inner = Recorder()
    app = LintMiddleware(fixer(LintMiddleware(inner)))
    response = Client(app).get("/", environ_overrides=sent("/hello/bob"))
    assert response.status_code == 200
    assert inner.environ is not None


@pytest.mark.parametrize(
    "fixer",
    [
        pytest.param(lambda app: MountFix(app, "/app"), id="MountFix 404"),
        pytest.param(lambda app: Normalize(app, "/app"), id="Normalize 404"),
        pytest.param(lambda app: ProxyFix(app, forwarded=1), id="ProxyFix 400"),
        pytest.param(lambda app: HeaderFix(app, host="X-FHOST"), id="HeaderFix 400"),
    ],
)
def test_refusals_under_lint(fixer: Fixer) -> None:
    app = LintMiddleware(fixer(Recorder()))
    dups = frozenset({"HTTP_FORWARDED", "HTTP_X_FHOST"})
    response = Client(app).get(
        "/", environ_overrides={"REQUEST_URI": "/elsewhere", "fcgikit.duplicate_params": dups}
    )
    assert response.status_code in (400, 404)
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"


def make_flask_app(fixer: Fixer, chatty: bool = False) -> Flask:
    app = Flask(__name__)

    @app.route("/hello/<name>")
    def hello(name: str) -> Any:
        if chatty:
            print("greeting", name)
        return jsonify(
            url=url_for("hello", name=name),
            external=url_for("hello", name=name, _external=True),
            script_root=request.script_root,
            path=request.path,
            remote_addr=request.remote_addr,
        )

    @app.route("/go")
    def go() -> Any:
        return redirect(url_for("hello", name="x"))

    app.wsgi_app = fixer(app.wsgi_app)  # type: ignore[method-assign]
    return app


@pytest.mark.parametrize(
    ("fixer", "sent", "script_root", "external"),
    [pytest.param(f, s, r, e, id=name) for name, f, s, r, e in DEPLOYMENTS],
)
def test_flask_urls(fixer: Fixer, sent: Sent, script_root: str, external: str) -> None:
    client = TestApp(make_flask_app(fixer))
    hello = sent("/hello/bob")
    data = client.get(hello["REQUEST_URI"], extra_environ=hello).json
    assert data["script_root"] == script_root
    assert data["path"] == "/hello/bob"
    assert data["url"] == f"{script_root}/hello/bob"
    assert data["external"] == f"{external}/hello/bob"

    go = sent("/go")
    response = client.get(go["REQUEST_URI"], extra_environ=go)
    assert response.status_int == 302
    assert response.headers["Location"] == f"{script_root}/hello/x"


def test_flask_print_goes_to_wsgi_errors() -> None:
    client = TestApp(make_flask_app(StdoutGuard, chatty=True))
    response = client.get("/hello/bob", expect_errors=True)
    assert response.json["url"] == "/hello/bob"
    assert response.errors == "greeting bob\n"  # webtest shows wsgi.errors here


def test_flask_remote_addr_from_forwarded() -> None:
    fixer = DEPLOYMENTS[4][1]
    client = TestApp(make_flask_app(fixer))
    env = proxied("/hello/bob")
    assert client.get("/hello/bob", extra_environ=env).json["remote_addr"] == "2001:db8::9"


def test_application_factory() -> None:
    def create_app() -> Flask:
        app = Flask(__name__)

        @app.route("/")
        def index() -> str:
            return url_for("index")

        app.wsgi_app = MountFix(app.wsgi_app, "/x")  # type: ignore[method-assign]
        return app

    client = TestApp(create_app())
    assert client.get("/x/", extra_environ={"REQUEST_URI": "/x/"}).text == "/x/"
