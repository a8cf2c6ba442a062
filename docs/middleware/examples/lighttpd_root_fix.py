"""An app at the root of a lighttpd site, without fix-root-scriptname.

lighttpd.conf:

    fastcgi.server = ("/" => ((
        "socket" => "/run/yourapplication.sock",
        "check-local" => "disable",
    )))
"""

from flask import Flask, request, url_for

from fcgikit.middleware import LighttpdRootFix

app = Flask(__name__)


@app.route("/foo/bar")
def foo_bar():
    return f"{request.path} -> {url_for('foo_bar')}"


app.wsgi_app = LighttpdRootFix(app.wsgi_app)

if __name__ == "__main__":
    from werkzeug.test import Client

    # What lighttpd sends for GET /foo/bar: the first segment ends up in SCRIPT_NAME.
    sent = {"SCRIPT_NAME": "/foo", "PATH_INFO": "/bar", "REQUEST_URI": "/foo/bar"}
    text = Client(app).get("/", environ_overrides=sent).text
    assert text == "/foo/bar -> /foo/bar", text
    print(text)
