"""A request's input streams, each a :class:`~fcgikit.server.body.RequestBody`: its body
(``wsgi.input``) and, for a Filter, its data file (``fcgikit.filter_data``).

A :class:`~fcgikit.server.wsgi.WSGIRequest` makes them when it is made; the connection's
loop feeds them (:mod:`fcgikit.server.channel_input`), or the thread that made the request
fills its body before the app runs (a request that arrived whole: the direct lane, CGI);
a web server that goes fails them, waking an app blocked in a read; the request closes them
when it is over. A spool file that cannot be written is logged here, once, and the app gets
a 500 when it reads.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from fcgikit.server.body import RequestBody

if TYPE_CHECKING:
    from collections.abc import Mapping

    from fcgikit.protocol.events import RequestReceived
    from fcgikit.server.request_settings import RequestSettings
    from fcgikit.server.wsgi import WSGIRequest

log = logging.getLogger("fcgikit.server")


def request_body(
    params: Mapping[bytes, bytes],
    settings: RequestSettings,
    streamed: bool,
    text: dict[str, str] | None = None,
) -> RequestBody:
    """``wsgi.input`` of a request with ``params``, CONTENT_LENGTH bytes long if the web
    server said (a number); ``streamed``: see RequestBody. (``settings``: the request's copy
    of its server's, read as native attributes where compiled; ``text``: the params' text,
    when the request took it from its :class:`~fcgikit.protocol.events.TextParams`.)"""
    if text is not None:  # its text, not the pairs decoded again (TextParams' Mapping would)
        value = text.get("CONTENT_LENGTH")
        raw = value.encode("latin-1") if value else None  # (a GET's is empty: no call)
    elif isinstance(params, dict):  # all but a request with many params: dict.get, compiled
        raw = params.get(b"CONTENT_LENGTH")
    else:
        raw = params.get(b"CONTENT_LENGTH")
    length = None
    if raw:  # (none, or empty: a GET's from nginx)
        raw = raw.strip()
        if raw.isdigit():
            length = int(raw)
    # (positional: interpreted, a class called with keywords makes a dict for its __init__)
    return RequestBody(length, settings.spool_threshold, settings.body_timeout, streamed)


def filter_data(event: RequestReceived, settings: RequestSettings) -> RequestBody:
    """A Filter's data file (``fcgikit.filter_data``), FCGI_DATA_LENGTH bytes long if the web
    server said; it never arrives whole."""
    data_length = event.params.get(b"FCGI_DATA_LENGTH", b"")
    return RequestBody(
        content_length=int(data_length) if data_length.isdigit() else None,
        spool_threshold=settings.spool_threshold,
        timeout=settings.body_timeout,
    )


def feed_body(request: WSGIRequest, data: bytes) -> None:
    """Give ``request`` a chunk of its body. A spool that fails (a full disk) is logged here,
    and the request fails with 500 when the app reads its body."""
    try:
        request.body.feed(data)
    except OSError as exc:
        log_spool_failure(request, exc)


def log_spool_failure(request: WSGIRequest, exc: OSError) -> None:
    """A body that could not go to its spool file (a full disk): the app gets a 500 when it
    reads it."""
    log.error(
        "request %s: cannot spool the request body: %s; it fails with 500",
        request.label,
        exc.strerror or exc,
    )


def fail_input(request: WSGIRequest, reason: str) -> None:
    """The web server has gone or aborted: wake the app out of every input stream."""
    request.body.fail(reason)
    if request.filter_data is not None:
        request.filter_data.fail(reason)
