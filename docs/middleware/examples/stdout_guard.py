"""A Flask app (or a library it uses) that calls print(), run as CGI or FastCGI."""

import io

from flask import Flask

from fcgikit.middleware import StdoutGuard, unguard_stdout

app = Flask(__name__)


@app.route("/")
def index():
    print("cache miss for /")  # without the guard: a corrupt CGI response
    return "hello"


app.wsgi_app = StdoutGuard(app.wsgi_app)

if __name__ == "__main__":
    from werkzeug.test import Client

    errors = io.StringIO()  # the server's wsgi.errors: its error log
    response = Client(app).get("/", errors_stream=errors)
    unguard_stdout()  # only so that this demo's own print() below reaches the terminal
    assert response.text == "hello", response.text
    assert errors.getvalue() == "cache miss for /\n", errors.getvalue()
    print(f"response {response.text!r}; error log {errors.getvalue()!r}")
