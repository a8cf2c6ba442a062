"""Normalize: recognise the deployment from what the web server sent, and fix the split.

For when you do not know (or do not want to write down) how the server is configured.
Given ``mount=``, Normalize is exactly :class:`~fcgikit.middleware.MountFix` with that mount,
which is right behind every server fcgikit was measured with: prefer it. Without a mount it
works out the mount per request from structural signals, in this order, and then applies
MountFix's rule with it (so the path is decoded and normalized the same way, and a path
outside the mount is a 404):

1. **duplicate SCRIPT_NAME**: SCRIPT_NAME arrived twice (it is in
   ``environ['fcgikit.duplicate_params']``), so the admin set it by hand, as Flask's nginx
   recipes do; the last value is the mount.
2. **script file rewrite**: SCRIPT_NAME ends in the script file (the basename of
   SCRIPT_FILENAME, or ``*.fcgi``) but the client did not ask for that file: Apache's
   ``.htaccess`` or lighttpd's ``url.rewrite`` onto the script. The mount is its directory.
3. **mod_proxy_fcgi**: SCRIPT_FILENAME is ``proxy:fcgi://host/<tail>`` (or, with no
   PATH_INFO, a bare ``/<tail>`` from ``ProxyFCGIBackendType GENERIC``) and the decoded tail
   ends the request path: Apache's ``ProxyPass``. The mount is what comes before the tail.
4. **no PATH_INFO at all**: PATH_INFO absent while DOCUMENT_URI is present: nginx's stock
   ``fastcgi_params``, where SCRIPT_NAME is the whole path. The mount is taken as ``''``.
   (fcgikit's server fills in PATH_INFO ``''`` when none was sent, as PEP 3333 wants, and
   says so in ``environ['fcgikit.missing_params']``: that counts as absent.)
5. **prefix stripped**: SCRIPT_NAME is ``''`` and PATH_INFO is a proper tail of the request
   path: the server removed the mount (Caddy's ``handle_path``). The mount is the rest.
6. **server split**: SCRIPT_NAME is a prefix of the request path and SCRIPT_NAME +
   PATH_INFO is that path, or PATH_INFO is empty (nginx's ``try_files`` bug): the server's
   split stands, normalized.

SERVER_SOFTWARE is not consulted: it can be changed (``server.tag``, ``ServerTokens``) or
missing. A request no rule explains is passed on untouched. The rule that fired is put in
``environ['fcgikit.normalize']``.

Some setups cannot be told apart without the mount, and Normalize leaves them as the server
sent them: lighttpd's ``"/"`` without ``fix-root-scriptname`` (``/foo`` + ``/bar`` looks
exactly like an app mounted at ``/foo``), h2o and Caddy ``handle`` at a prefix (the prefix
is in PATH_INFO and looks like a route), Caddy with ``split`` at the root, nginx's stock
params under a prefix (taken as the root), and HAProxy's ``fcgi-app`` without ``path-info``
(the whole path as SCRIPT_NAME and no PATH_INFO is also what a request for the bare mount
looks like). Pass ``mount=`` for those; the catalogue in
:mod:`fcgikit.middleware.catalogue` names the right fixer for each.

.. code-block:: python

    from fcgikit.middleware import Normalize

    app.wsgi_app = Normalize(app.wsgi_app)                      # detect
    app.wsgi_app = Normalize(app.wsgi_app, mount="/yourapplication")  # exact

>>> from werkzeug.test import Client
>>> def show(environ, start_response):
...     start_response("200 OK", [("Content-Type", "text/plain")])
...     text = f"{environ['SCRIPT_NAME']}|{environ['PATH_INFO']}|{environ['fcgikit.normalize']}"
...     return [text.encode("latin-1")]
>>> htaccess = {"SCRIPT_NAME": "/blog/yourapplication.fcgi", "PATH_INFO": "/post/1",
...             "SCRIPT_FILENAME": "/home/me/www/blog/yourapplication.fcgi",
...             "REQUEST_URI": "/blog/post/1"}
>>> Client(Normalize(show)).get("/", environ_overrides=htaccess).text
'/blog|/post/1|script file rewrite'
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from fcgikit.middleware._environ import DUPLICATES_KEY, plain_response, sent_value
from fcgikit.middleware._paths import (
    EncodedSlash,
    PathError,
    check_encoded_slash,
    clean_mount,
    is_under,
    normalize_decoded,
    request_path,
)
from fcgikit.middleware.mount_fix import fix_mount
from fcgikit.middleware.script_name_stripper import script_file_component

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

__all__ = ["RULES", "Evidence", "Normalize"]

#: Where Normalize records which rule it applied (``'explicit mount'`` with ``mount=``).
DETECTED_KEY = "fcgikit.normalize"

_PROXY_TARGET = re.compile(r"proxy:(?:unix:[^|]*\|)?[A-Za-z][A-Za-z0-9+.-]*://[^/]*")


@dataclass(frozen=True, slots=True)
class Evidence:
    """What the rules look at, taken from one environ."""

    script_name: str
    path_info: str | None
    #: The request path from REQUEST_URI, decoded and normalized; None without REQUEST_URI.
    path: str | None
    script_filename: str | None
    document_uri: bool
    duplicate_script_name: bool

    @classmethod
    def from_environ(cls, environ: WSGIEnvironment, path: str | None) -> Evidence:
        return cls(
            script_name=environ.get("SCRIPT_NAME", ""),
            # fcgikit's server fills in PATH_INFO '' when none was sent: not the same thing
            path_info=sent_value(environ, "PATH_INFO"),
            path=path,
            script_filename=environ.get("SCRIPT_FILENAME"),
            document_uri="DOCUMENT_URI" in environ,
            duplicate_script_name="SCRIPT_NAME" in (environ.get(DUPLICATES_KEY) or ()),
        )


def _as_mount(value: str) -> str | None:
    """``value`` without its trailing slash, if that is a usable (already WSGI) mount."""
    mount = value.rstrip("/")
    if mount == "" or (mount.startswith("/") and normalize_decoded(mount) == mount):
        return mount
    return None


def _duplicate_script_name(ev: Evidence) -> str | None:
    return _as_mount(ev.script_name) if ev.duplicate_script_name else None


def _script_file_rewrite(ev: Evidence) -> str | None:
    if ev.path is None or not script_file_component(ev.script_name, ev.script_filename):
        return None
    if is_under(ev.path, ev.script_name):  # the client asked for the script itself
        return None
    return _as_mount(ev.script_name.rpartition("/")[0])


def _mod_proxy_fcgi(ev: Evidence) -> str | None:
    if ev.path is None or ev.script_filename is None:
        return None
    target = _PROXY_TARGET.match(ev.script_filename)
    if target:
        tail = ev.script_filename[target.end() :]
    elif ev.path_info is None and ev.script_filename.startswith("/"):
        tail = ev.script_filename  # ProxyFCGIBackendType GENERIC drops the proxy: prefix
    else:
        return None
    try:
        tail = request_path(tail, "decode")
    except PathError:
        return None
    if not ev.path.endswith(tail):
        return None
    return _as_mount(ev.path[: len(ev.path) - len(tail)])


def _no_path_info(ev: Evidence) -> str | None:
    if ev.path_info is None and ev.document_uri and ev.script_name:
        return ""
    return None


def _prefix_stripped(ev: Evidence) -> str | None:
    if ev.path is None or ev.script_name or not ev.path_info:
        return None
    tail = normalize_decoded(ev.path_info)
    if tail == ev.path or not ev.path.endswith(tail):
        return None
    return _as_mount(ev.path[: len(ev.path) - len(tail)])


def _server_split(ev: Evidence) -> str | None:
    if ev.path is None:
        return None
    mount = _as_mount(ev.script_name)
    if mount is None or not is_under(ev.path, mount):
        return None
    sent = normalize_decoded(ev.script_name + (ev.path_info or "")) or "/"
    if sent == ev.path or (mount and not ev.path_info):
        return mount
    return None


#: The detection rules, tried in order; each returns the mount it infers, or None.
RULES: Final[tuple[tuple[str, Callable[[Evidence], str | None]], ...]] = (
    ("duplicate SCRIPT_NAME", _duplicate_script_name),
    ("script file rewrite", _script_file_rewrite),
    ("mod_proxy_fcgi", _mod_proxy_fcgi),
    ("no PATH_INFO at all", _no_path_info),
    ("prefix stripped", _prefix_stripped),
    ("server split", _server_split),
)


def detect_mount(ev: Evidence) -> tuple[str, str] | None:
    """``(rule name, mount)`` for the first rule that applies, or None."""
    for name, rule in RULES:
        mount = rule(ev)
        if mount is not None:
            return name, mount
    return None


class Normalize:
    """Fix SCRIPT_NAME and PATH_INFO for whatever server sent the request.

    :param app: The WSGI application to call.
    :param mount: The prefix the app is mounted at (``''`` for the root). If given, every
        request is handled as by ``MountFix(app, mount)``; if None, the mount is detected
        per request (see the module documentation).
    :param encoded_slash: What ``%2F`` in a path means: ``'reject'`` (404, the default),
        ``'decode'`` or ``'keep'``; see :class:`~fcgikit.middleware.MountFix`.

    The values it changes are kept in ``environ['fcgikit.orig']``.
    """

    def __init__(
        self,
        app: WSGIApplication,
        mount: str | None = None,
        *,
        encoded_slash: EncodedSlash = "reject",
    ) -> None:
        self.app = app
        self.mount = None if mount is None else clean_mount(mount)
        self.encoded_slash = check_encoded_slash(encoded_slash)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if self.mount is not None:
            detected: tuple[str, str] | None = ("explicit mount", self.mount)
        else:
            request_uri = environ.get("REQUEST_URI")
            path = None
            if request_uri is not None:
                try:
                    path = request_path(request_uri, self.encoded_slash)
                except PathError as problem:
                    return plain_response(environ, start_response, problem.status, problem.message)
            detected = detect_mount(Evidence.from_environ(environ, path))
        if detected is None:
            environ[DETECTED_KEY] = "none"
            return self.app(environ, start_response)
        environ[DETECTED_KEY] = detected[0]
        refusal = fix_mount(environ, detected[1], self.encoded_slash)
        if refusal is not None:
            return plain_response(environ, start_response, refusal.status, refusal.message)
        return self.app(environ, start_response)
