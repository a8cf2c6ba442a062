"""One app file for whichever server the site ends up on: Normalize works the split out."""

from flask import Flask, request

from fcgikit.middleware import Normalize

app = Flask(__name__)


@app.route("/<path:page>")
def page(page):
    return f"{request.script_root}|{request.path}|{request.environ['fcgikit.normalize']}"


app.wsgi_app = Normalize(app.wsgi_app)

if __name__ == "__main__":
    from werkzeug.test import Client

    client = Client(app)
    seen = {
        # Apache mod_proxy_fcgi, ProxyPass /yourapplication fcgi://127.0.0.1:9000
        "mod_proxy_fcgi": {
            "SCRIPT_NAME": "/yourapplication/a",
            "PATH_INFO": "",
            "SCRIPT_FILENAME": "proxy:fcgi://127.0.0.1:9000/a",
            "REQUEST_URI": "/yourapplication/a",
        },
        # Caddy, handle_path /yourapplication/*
        "prefix stripped": {
            "SCRIPT_NAME": "",
            "PATH_INFO": "/a",
            "REQUEST_URI": "/yourapplication/a",
        },
    }
    for rule, sent in seen.items():
        text = client.get("/", environ_overrides=sent).text
        assert text == f"/yourapplication|/a|{rule}", text
        print(text)
