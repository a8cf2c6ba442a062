"""What every fixer shares: how a change is recorded, how text becomes a PEP 3333 string,
how a request is refused, and how a trusted host or scheme is written into the environ.

Every change a fixer makes goes through :func:`set_value` or :func:`remove_value`, so the
value the web server sent is always kept in ``environ["fcgikit.orig"]`` (the first original
wins when several fixers touch the same key): a user who wonders why the app sees ``/blog``
can print that dict and compare.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

#: Where each fixer keeps the values it changed: ``{environ key: original or None if absent}``.
ORIG_KEY = "fcgikit.orig"
#: Set by fcgikit's server: the environ keys whose FastCGI param arrived more than once.
DUPLICATES_KEY = "fcgikit.duplicate_params"
#: Set by fcgikit's server: the CGI variables the web server did not send, which the server
#: filled in with PEP 3333's defaults (``PATH_INFO`` ``''``...). A fixer that sets one of
#: them takes it off the list.
MISSING_KEY = "fcgikit.missing_params"


def sent_value(environ: WSGIEnvironment, key: str) -> Any:
    """``environ[key]`` as the web server sent it: None when it sent nothing, also where the
    server filled in a default for it (see :data:`MISSING_KEY`)."""
    if key in (environ.get(MISSING_KEY) or ()):
        return None
    return environ.get(key)


def set_value(environ: WSGIEnvironment, key: str, value: Any) -> None:
    """Set ``environ[key]``, remembering what the server sent if the value changes."""
    if key in environ and environ[key] == value:
        return
    _remember(environ, key)
    environ[key] = value


def remove_value(environ: WSGIEnvironment, key: str) -> None:
    """Delete ``environ[key]`` if present, remembering what the server sent."""
    if key in environ:
        _remember(environ, key)
        del environ[key]


def _remember(environ: WSGIEnvironment, key: str) -> None:
    orig = environ.get(ORIG_KEY)
    if not isinstance(orig, dict):
        orig = environ[ORIG_KEY] = {}
    orig.setdefault(key, sent_value(environ, key))
    missing = environ.get(MISSING_KEY)
    if missing and key in missing:  # a value of the fixer's from now on, not a default
        environ[MISSING_KEY] = frozenset(missing) - {key}


def wsgi_to_bytes(value: str) -> bytes:
    """The bytes behind a PEP 3333 string (each character is one latin-1 byte).

    A string with characters above U+00FF did not come from a conforming server; its text
    is kept by encoding it as UTF-8 rather than failing the request.
    """
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        return value.encode("utf-8")


def text_to_wsgi(text: str) -> str:
    """A path as a user writes it (``'/café'``) in the form the environ holds (UTF-8 bytes as
    latin-1 characters), so it compares equal to what the server sends."""
    return text.encode("utf-8").decode("latin-1")


def readable(value: str) -> str:
    """A PEP 3333 string as the text it stands for (UTF-8, bad bytes escaped), for messages."""
    return wsgi_to_bytes(value).decode("utf-8", "backslashreplace")


def header_label(environ_key: str) -> str:
    """``'HTTP_X_FORWARDED_FOR'`` -> ``'X-Forwarded-For'``, for messages."""
    name = environ_key.removeprefix("HTTP_")
    return "-".join(part.capitalize() for part in name.split("_"))


def duplicated(environ: WSGIEnvironment, keys: Iterable[str]) -> list[str]:
    """The ones among ``keys`` whose FastCGI param arrived more than once."""
    seen = environ.get(DUPLICATES_KEY) or frozenset()
    return [key for key in keys if key in seen]


def refuse_duplicates(
    environ: WSGIEnvironment, start_response: StartResponse, keys: list[str], fixer: str
) -> Iterable[bytes]:
    """Answer 400 because a header we were told to trust arrived twice."""
    names = ", ".join(header_label(key) for key in keys)
    return plain_response(
        environ,
        start_response,
        "400 Bad Request",
        f"{fixer}: the trusted header {names} arrived more than once. A web server passes "
        "'X_Forwarded_For' and 'X-Forwarded-For' as the same FastCGI param, so this is how a "
        "spoofed header shows up; the request was refused rather than half-trusted.",
    )


def log_line(environ: WSGIEnvironment, message: str) -> None:
    """One line in the server's log for this request (``wsgi.errors``), fcgikit's prefix
    first."""
    errors = environ.get("wsgi.errors")
    if errors is not None:
        errors.write(f"fcgikit: {message}\n")


def plain_response(
    environ: WSGIEnvironment, start_response: StartResponse, status: str, message: str
) -> Iterable[bytes]:
    """A short text/plain answer, with the same line written to ``wsgi.errors``."""
    log_line(environ, f"{status[:3]} {message}")
    body = f"{status}\n\n{message}\n".encode()
    start_response(
        status,
        [
            ("Content-Type", "text/plain; charset=utf-8"),
            ("Content-Length", str(len(body))),
            ("X-Content-Type-Options", "nosniff"),
        ],
    )
    return [body]


def apply_host(environ: WSGIEnvironment, host: str) -> None:
    """Trust ``host`` (``name``, ``name:port``, ``[v6]`` or ``[v6]:port``) the way werkzeug's
    ProxyFix does: it becomes HTTP_HOST and SERVER_NAME, and its port SERVER_PORT."""
    set_value(environ, "HTTP_HOST", host)
    if ":" in host and not host.endswith("]"):
        name, port = host.rsplit(":", 1)
        set_value(environ, "SERVER_NAME", name)
        set_value(environ, "SERVER_PORT", port)
    else:
        set_value(environ, "SERVER_NAME", host)


def apply_scheme(environ: WSGIEnvironment, scheme: str) -> None:
    """Set ``wsgi.url_scheme`` and keep the CGI variables that say the same thing in step:
    REQUEST_SCHEME, and HTTPS (``'on'`` for https, absent otherwise, as Apache sends it)."""
    scheme = scheme.lower()
    set_value(environ, "wsgi.url_scheme", scheme)
    set_value(environ, "REQUEST_SCHEME", scheme)
    if scheme == "https":
        set_value(environ, "HTTPS", "on")
    else:
        remove_value(environ, "HTTPS")
