"""What a request whose app failed logs, and the page it answers (500 Internal Server Error).

:meth:`fcgikit.server.wsgi.WSGIRequest._fail` decides whether a failure is answered at all
(a body the web server gave up on is not; a response whose head went out is cut instead);
this module says what the log line and the page say.
"""

from __future__ import annotations

import logging
import traceback
from typing import Any

from fcgikit.server.wsgi_codec import InvalidResponse

log = logging.getLogger("fcgikit.server")

#: What an app raises to have its process exit. A request cannot stop the server: it gets a
#: 500 like any other error, and the server goes on (a pool worker retires after it, see
#: fcgikit.server.worker.RequestTracker).
PROCESS_EXITS = (SystemExit, KeyboardInterrupt)

ERROR_PAGE = (
    b"<!doctype html>\n<title>500 Internal Server Error</title>\n"
    b"<h1>Internal Server Error</h1>\n<p>The application failed to answer this request.</p>\n"
)


def log_app_failure(label: str, exc_info: Any) -> None:
    """The line for the request ``label`` whose app raised, or broke a WSGI rule."""
    exc = exc_info[1]
    if isinstance(exc, InvalidResponse):
        log.error("request %s: invalid response from the app: %s", label, exc)
        return
    log.error(
        "request %s: the app raised %s: %s%s",
        label,
        type(exc).__name__,
        exc,
        " (a request does not stop the server)" if isinstance(exc, PROCESS_EXITS) else "",
        exc_info=exc_info,
    )


def error_page(exc_info: Any, *, debug: bool) -> bytes:
    """The 500 page; ``debug`` (--debug): with the failure's traceback."""
    page = ERROR_PAGE
    if debug:
        import html  # here: with html.entities, a start would load it for this page

        text = "".join(traceback.format_exception(*exc_info))
        page += b"<pre>" + html.escape(text).encode("utf-8", "replace") + b"</pre>\n"
    return page
