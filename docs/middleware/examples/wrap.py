"""yourapplication.fcgi with the whole stack: path fix, proxy headers, stdout guard."""

from flask import Flask, request, url_for

import fcgikit.middleware

app = Flask(__name__)


@app.route("/hello")
def hello():
    print("hello from", request.remote_addr)  # goes to the error log, never the response
    return url_for("hello", _external=True)


app.wsgi_app = fcgikit.middleware.wrap(
    app.wsgi_app, mount="/yourapplication", proxy={"x_for": 1, "x_proto": 1}
)

if __name__ == "__main__":
    import io

    from werkzeug.test import Client

    errors = io.StringIO()
    sent = {  # nginx, stock fastcgi_params, behind a TLS-terminating proxy
        "SCRIPT_NAME": "/yourapplication/hello",
        "PATH_INFO": "",
        "REQUEST_URI": "/yourapplication/hello",
        "HTTP_X_FORWARDED_FOR": "203.0.113.4",
        "HTTP_X_FORWARDED_PROTO": "https",
    }
    response = Client(app).get("/", environ_overrides=sent, errors_stream=errors)
    fcgikit.middleware.unguard_stdout()  # only so that the print() below is shown
    assert response.text == "https://localhost/yourapplication/hello", response.text
    assert errors.getvalue() == "hello from 203.0.113.4\n", errors.getvalue()
    print(response.text)
