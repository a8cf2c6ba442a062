"""yourapplication.fcgi for Apache's shared-host .htaccess recipe, in the directory /blog/.

.htaccess next to it:

    RewriteEngine On
    RewriteCond %{REQUEST_FILENAME} !-f
    RewriteRule ^(.*)$ yourapplication.fcgi/$1 [QSA,L]
"""

from flask import Flask, redirect, url_for

from fcgikit.middleware import ScriptNameStripper

app = Flask(__name__)


@app.route("/")
def index():
    return redirect(url_for("post", number=1))


@app.route("/post/<int:number>")
def post(number):
    return f"post {number} lives at {url_for('post', number=number)}"


app.wsgi_app = ScriptNameStripper(app.wsgi_app)

if __name__ == "__main__":
    from werkzeug.test import Client

    # What Apache (mod_fcgid) sends for GET /blog/post/1:
    sent = {
        "SCRIPT_NAME": "/blog/yourapplication.fcgi",
        "PATH_INFO": "/post/1",
        "SCRIPT_FILENAME": "/home/me/public_html/blog/yourapplication.fcgi",
        "REQUEST_URI": "/blog/post/1",
    }
    text = Client(app).get("/", environ_overrides=sent).text
    assert text == "post 1 lives at /blog/post/1", text
    print(text)
