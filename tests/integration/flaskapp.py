"""The Flask app every integration scenario serves.

It answers with JSON describing what it saw, so a test can check the URL handling of a web
server + FastCGI server + fixer chain from the outside:

- ``/`` and ``/env/<anything>``: the CGI variables that decide URLs, ``PATH_INFO`` decoded the
  way Flask does (latin-1 on the wire, UTF-8 in the URL), and ``url_for`` for the same view,
  relative and absolute, so a test can follow them back;
- ``/redirect``: ``redirect(url_for(...))``, relative or (``?external=1``) absolute;
- ``/echo`` (POST): length and SHA-256 of the request body;
- ``/exit``: ``sys.exit(3)`` in the view, which Flask does not catch (it is no Exception);
- ``/hang?pid=N`` (GET or POST): in process N, says so on stderr and never answers (a request
  in flight when the test kills that process); in any other process, answers at once.

Each answer also names the process that served it (``pid``), for configs that balance
several backends.

``FCGIKIT_TEST_FIXER`` picks the URL fixer from ``fcgikit.middleware``: ``Name`` or
``Name:/mount`` (``none`` or unset: no fixer), so one module serves every scenario.
"""

from __future__ import annotations

import hashlib
import os
import sys
import threading
from typing import Any

from flask import Flask, jsonify, redirect, request, url_for
from werkzeug.routing import BaseConverter


class AnyPathConverter(BaseConverter):
    """Like ``path`` but also matches an empty rest and leading/doubled slashes."""

    regex = ".*"
    part_isolating = False


app = Flask(__name__)
app.url_map.converters["anypath"] = AnyPathConverter
# Werkzeug would redirect //a to /a itself; the tests want to see what the server sent.
app.url_map.merge_slashes = False

_CGI_KEYS = (
    "SCRIPT_NAME",
    "PATH_INFO",
    "QUERY_STRING",
    "REQUEST_URI",
    "HTTP_HOST",
    "SERVER_NAME",
    "SERVER_PORT",
    "SERVER_SOFTWARE",
    "REQUEST_METHOD",
    "CONTENT_LENGTH",
    "REMOTE_USER",
    "AUTH_TYPE",
    "HTTP_AUTHORIZATION",
    "wsgi.url_scheme",
)


def _text(value: Any) -> Any:
    # WSGI carries URL bytes as latin-1 str; show them as the UTF-8 text the client sent.
    if isinstance(value, str):
        try:
            return value.encode("latin-1").decode("utf-8")
        except UnicodeError:
            return value
    return value


def _describe(view: str, **values: Any) -> dict[str, Any]:
    environ = request.environ
    return {
        "view": view,
        "args": values,
        "environ": {key: _text(environ.get(key)) for key in _CGI_KEYS},
        "url_for": url_for(view, **values),
        "url_for_external": url_for(view, _external=True, **values),
        "fixer": environ.get("fcgikit.test.fixer", "none"),
        # which backend answered, when a web server balances several
        "pid": os.getpid(),
    }


@app.route("/")
def index() -> Any:
    return jsonify(_describe("index"))


@app.route("/env/<anypath:sub>")
def env(sub: str) -> Any:
    return jsonify(_describe("env", sub=sub))


@app.route("/redirect")
def go() -> Any:
    external = request.args.get("external") == "1"
    return redirect(url_for("env", sub="target", _external=external))


@app.route("/echo", methods=["POST"])
def echo() -> Any:
    digest = hashlib.sha256()
    length = 0
    stream = request.stream
    while chunk := stream.read(65536):
        digest.update(chunk)
        length += len(chunk)
    return jsonify({"length": length, "sha256": digest.hexdigest()})


@app.route("/exit")
def leave() -> Any:
    sys.exit(3)


# never set: a request held by /hang lasts until its process is killed
_NEVER = threading.Event()


@app.route("/hang", methods=["GET", "POST"])
def hang() -> Any:
    body = request.get_data()
    if request.args.get("pid") == str(os.getpid()):
        # one write(2) per line: two requests held at once must not share a line
        os.write(2, f"flaskapp: holding a {request.method}\n".encode())
        _NEVER.wait()
    return jsonify({"held": False, "pid": os.getpid(), "length": len(body)})


def _apply_fixer(wsgi_app: Any) -> Any:
    spec = os.environ.get("FCGIKIT_TEST_FIXER", "none")
    if spec in ("", "none"):
        return wsgi_app
    from fcgikit import middleware

    name, has_mount, mount = spec.partition(":")
    fixer_class = getattr(middleware, name)
    fixed = fixer_class(wsgi_app, mount) if has_mount else fixer_class(wsgi_app)

    def tagged(environ: dict[str, Any], start_response: Any) -> Any:
        environ["fcgikit.test.fixer"] = spec
        return fixed(environ, start_response)

    return tagged


app.wsgi_app = _apply_fixer(app.wsgi_app)  # type: ignore[method-assign]
