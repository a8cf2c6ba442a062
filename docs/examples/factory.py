"""An application factory: fcgikit serve 'factory:create_app("/yourapplication")'."""

from flask import Flask, request, url_for

from fcgikit.middleware import MountFix


def create_app(mount=""):
    app = Flask(__name__)

    @app.route("/")
    def index():
        return f"mounted at {request.script_root or '/'}, this page is {url_for('index')}\n"

    if mount:
        # For servers that cannot send the mount themselves (h2o, Caddy's handle_path).
        # Wrap app.wsgi_app, not app, so app stays a Flask object for app.test_client().
        app.wsgi_app = MountFix(app.wsgi_app, mount)
    return app
