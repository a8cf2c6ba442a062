"""yourapplication: the Flask app the guide deploys, with links that must find their way back."""

import os
from pathlib import Path

from flask import Flask, redirect, request, url_for

# Never rely on the working directory: the web server decides what it is.
HERE = Path(__file__).resolve().parent

app = Flask(__name__)
# A setting from the environment needs a default: the web server passes almost none of yours.
app.config["DATA_DIR"] = os.environ.get("YOURAPPLICATION_DATA", str(HERE / "data"))


@app.route("/")
def index():
    return (
        f"mounted at {request.script_root or '/'}, asked for {request.path}\n"
        f"a link: {url_for('hello', name='World', _external=True)}\n"
    )


@app.route("/hello/<name>")
def hello(name):
    return f"Hello, {name}!\n"


@app.route("/home")
def home():
    return redirect(url_for("index"))


if __name__ == "__main__":
    # Only when you run this file yourself; importing it (the .fcgi does) starts nothing.
    app.run(debug=True)
