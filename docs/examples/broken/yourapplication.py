"""yourapplication with a mistake that only shows under a web server."""

from flask import Flask

app = Flask(__name__)

with open("settings.cfg") as f:  # relative: found only when the cwd is this directory
    app.config["GREETING"] = f.read().strip()


@app.route("/")
def index():
    return app.config["GREETING"]
