"""ScriptNameStripper: drop ``yourapplication.fcgi`` from SCRIPT_NAME after a rewrite.

For the two setups in Flask's FastCGI guide that rewrite every URL onto the script file:

* Apache (mod_fcgid) on a shared host, with an ``.htaccess`` of
  ``RewriteRule ^(.*)$ yourapplication.fcgi/$1 [QSA,L]``;
* lighttpd with ``fastcgi.server = ("/yourapplication.fcgi" => ...)`` and
  ``url.rewrite-once = ("^(/.*)$" => "/yourapplication.fcgi$1")``.

Both send SCRIPT_NAME ``/yourapplication.fcgi`` and the right PATH_INFO, so every URL the app
builds would contain the script's name. The guide's own ``ScriptNameStripper`` set
SCRIPT_NAME to ``''``, which breaks as soon as the ``.htaccess`` lives in a subdirectory:
there Apache sends ``/blog/yourapplication.fcgi`` and the app belongs at ``/blog``. This one
removes only the script file component: ``/<basename of SCRIPT_FILENAME>`` if SCRIPT_NAME
ends with it, or else a last segment ending in ``.fcgi``. PATH_INFO is left as the server
sent it.

Use it only behind such a rewrite: lighttpd sends SCRIPT_FILENAME = document root +
SCRIPT_NAME for every request, so elsewhere it would strip a real path segment. Behind
Apache, mod_rewrite builds PATH_INFO from the decoded path and cuts it at an encoded ``?``
(``%3F``); :class:`~fcgikit.middleware.MountFix` with the directory as the mount reads
REQUEST_URI instead and is the better choice there if URLs can contain ``%3F``.

.. code-block:: python

    from fcgikit.middleware import ScriptNameStripper

    app.wsgi_app = ScriptNameStripper(app.wsgi_app)

>>> from werkzeug.test import Client
>>> def show(environ, start_response):
...     start_response("200 OK", [("Content-Type", "text/plain")])
...     return [f"{environ['SCRIPT_NAME']}|{environ['PATH_INFO']}".encode("latin-1")]
>>> blog = {"SCRIPT_NAME": "/blog/yourapplication.fcgi", "PATH_INFO": "/post/1",
...         "SCRIPT_FILENAME": "/home/me/www/blog/yourapplication.fcgi"}
>>> Client(ScriptNameStripper(show)).get("/", environ_overrides=blog).text
'/blog|/post/1'
>>> Client(ScriptNameStripper(show, mount="/weblog")).get("/", environ_overrides=blog).text
'/weblog|/post/1'
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable
from typing import TYPE_CHECKING

from fcgikit.middleware._environ import set_value
from fcgikit.middleware._paths import clean_mount

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

__all__ = ["ScriptNameStripper", "script_file_component"]


class ScriptNameStripper:
    """Remove the script file component from SCRIPT_NAME.

    :param app: The WSGI application to call.
    :param mount: If given, SCRIPT_NAME is set to this instead (``''`` for the root), for a
        site whose public prefix differs from the directory the script lives in.

    The values it changes are kept in ``environ['fcgikit.orig']``.
    """

    def __init__(self, app: WSGIApplication, mount: str | None = None) -> None:
        self.app = app
        self.mount = None if mount is None else clean_mount(mount)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        script_name = environ.get("SCRIPT_NAME", "")
        if self.mount is not None:
            set_value(environ, "SCRIPT_NAME", self.mount)
        elif script_file_component(script_name, environ.get("SCRIPT_FILENAME")):
            set_value(environ, "SCRIPT_NAME", script_name.rpartition("/")[0])
        return self.app(environ, start_response)


def script_file_component(script_name: str, script_filename: str | None) -> bool:
    """Does SCRIPT_NAME end in a segment naming the script file itself?"""
    last = script_name.rpartition("/")[2]
    if not last:
        return False
    if last.endswith(".fcgi"):
        return True
    return (
        script_filename is not None
        and not script_filename.startswith("proxy:")
        and posixpath.basename(script_filename) == last
    )
