"""An app behind a front end that sets X-FHOST and X-Forwarded-Ssl (Flask's CustomProxyFix)."""

from flask import Flask, url_for

from fcgikit.middleware import HeaderFix

app = Flask(__name__)


@app.route("/")
def index():
    return url_for("index", _external=True)


app.wsgi_app = HeaderFix(app.wsgi_app, host="X-FHOST", scheme="X-Forwarded-Ssl")

if __name__ == "__main__":
    from werkzeug.test import Client

    headers = {"X-FHOST": "www.example.com", "X-Forwarded-Ssl": "on"}
    text = Client(app).get("/", headers=headers).text
    assert text == "https://www.example.com/", text
    print(text)
