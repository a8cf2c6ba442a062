"""An app at /yourapplication behind nginx with only the stock fastcgi_params.

nginx:

    location /yourapplication {
        include fastcgi_params;
        fastcgi_pass unix:/run/yourapplication.sock;
    }
"""

from flask import Flask, request, url_for

from fcgikit.middleware import MountFix

app = Flask(__name__)


@app.route("/admin")
def admin():
    return "admin"


@app.route("/<path:page>")
def page(page):
    return f"{request.script_root} {request.path} {url_for('page', page=page)}"


app.wsgi_app = MountFix(app.wsgi_app, "/yourapplication")

if __name__ == "__main__":
    import io

    from werkzeug.test import Client

    client = Client(app)
    # nginx sends no PATH_INFO, and SCRIPT_NAME is the whole decoded path:
    sent = {
        "SCRIPT_NAME": "/yourapplication/docs/a b",
        "PATH_INFO": "",
        "REQUEST_URI": "/yourapplication/docs/a%20b?x=1",
    }
    text = client.get("/", environ_overrides=sent).text
    assert text == "/yourapplication /docs/a b /yourapplication/docs/a%20b", text
    print(text)

    # A path outside the mount is a 404 (and one line in the error log), never a wrong split:
    errors = io.StringIO()
    response = client.get(
        "/", environ_overrides={"REQUEST_URI": "/elsewhere"}, errors_stream=errors
    )
    assert response.status_code == 404
    print(response.status, errors.getvalue(), end="")
