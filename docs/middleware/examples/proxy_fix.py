"""An app behind one reverse proxy that sends the standard Forwarded header.

The proxy (here HAProxy 2.x, "option forwarded proto host for") adds
    Forwarded: proto=https;host=www.example.com;for="[2001:db8::1]:51234"
and the web server passes it on to fcgikit as HTTP_FORWARDED.
"""

from flask import Flask, request, url_for

from fcgikit.middleware import ProxyFix

app = Flask(__name__)


@app.route("/whoami")
def whoami():
    return f"{request.remote_addr} {url_for('whoami', _external=True)}"


# Trust one Forwarded element; X-Forwarded-For/-Proto are not set by this proxy.
app.wsgi_app = ProxyFix(app.wsgi_app, x_for=0, x_proto=0, forwarded=1)

if __name__ == "__main__":
    from werkzeug.test import Client

    header = 'for=198.51.100.7, proto=https;host=www.example.com;for="[2001:db8::1]:51234"'
    text = Client(app).get("/whoami", headers={"Forwarded": header}).text
    # The client put its own element first; only the proxy's (the last one) is trusted.
    assert text == "2001:db8::1 https://www.example.com/whoami", text
    print(text)
