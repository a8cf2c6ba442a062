"""The example app: the guide's ``yourapplication``, a small Flask app with links that must
point back to itself wherever it is mounted."""

from flask import Flask, redirect, request, url_for

app = Flask(__name__)


@app.route("/")
def index() -> str:
    return (
        "Hello from Flask over FastCGI!\n"
        f"script_name={request.script_root!r} path={request.path!r}\n"
        f"this page: {url_for('index', _external=True)}\n"
        f"hello page: {url_for('hello', name='World', _external=True)}\n"
    )


@app.route("/hello/<name>")
def hello(name: str) -> str:
    return f"Hello, {name}!\n"


@app.route("/go-home")
def go_home():  # type: ignore[no-untyped-def]
    return redirect(url_for("index"))


@app.post("/echo")
def echo() -> bytes:
    return request.get_data()
