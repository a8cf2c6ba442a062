"""What a request whose app failed logs and answers (500 Internal Server Error, or 408 for a
body that stopped arriving), and whether it answers at all: a body the web server gave up on
is not answered; a response whose head went out is cut instead. WSGIRequest's ``_respond``
calls :func:`answer_failure` with whatever its app raised.
"""

from __future__ import annotations

import logging
import traceback
from typing import TYPE_CHECKING, Any

from fcgikit.server.body import RequestBodyError, RequestBodyTimeout
from fcgikit.server.sink import WebServerGone
from fcgikit.server.wsgi_codec import InvalidResponse

if TYPE_CHECKING:
    from fcgikit.server.held_replies import Reply
    from fcgikit.server.wsgi import WSGIRequest

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


def answer_failure(request: WSGIRequest, exc_info: Any) -> Reply | None:
    """What ``request`` answers for the failure ``exc_info`` (its app raised, broke a WSGI
    rule, or its body failed to arrive): what is left to send (ResponseSink.finish)."""
    exc = exc_info[1]
    app_raised(request, exc)
    if isinstance(exc, RequestBodyError):  # a read of the body failed: not the app's fault
        if isinstance(exc, RequestBodyTimeout):
            return _body_stalled(request, exc)
        if request.aborted:  # a body the web server gave up on
            raise WebServerGone(str(exc)) from exc
        # else its spool file failed, logged where it did (a full disk): a 500
    else:
        log_app_failure(request.label, exc_info)
    if request.headers_sent:
        # Too late for a 500. nginx ignores FCGI_END_REQUEST's appStatus and would end
        # the client's response normally (a final chunk, a complete-looking body); only
        # a connection closed before END_REQUEST makes it cut the client off, so the
        # truncation shows. request_done releases the id and closes.
        request.close_connection = True
        return None
    page = error_page(exc_info, debug=request.settings.debug)
    return request.answer_page("500 Internal Server Error", "text/html; charset=utf-8", page)


def app_raised(request: WSGIRequest, exc: BaseException) -> None:
    """A pool worker retires after a request whose app asked its process to exit."""
    if request.tracker is not None and isinstance(exc, PROCESS_EXITS):
        request.tracker.app_exited(exc)


def _body_stalled(request: WSGIRequest, exc: RequestBodyTimeout) -> Reply | None:
    """One log line, a 408 if nothing was sent yet, and the connection closed after."""
    log.warning("request %s: %s; answering 408, closing the connection", request.label, exc)
    request.close_connection = True
    if request.headers_sent:
        return request.channel.finish(request, b"", b"", 1)
    page = b"Request Timeout: the request body stopped arriving.\n"
    return request.answer_page("408 Request Timeout", "text/plain; charset=utf-8", page)
