"""What is recorded of each request once it is over: the status page's counters and the
access log line.

:meth:`WSGIRequest.done <fcgikit.server.wsgi.WSGIRequest.done>` calls :func:`observe_request`
once the reply went out, only when something looks (ServerSettings.observe_requests: an
access log, or the status page's counters), on the request's thread and before its
connection lets go of it. So the lines come in the order the requests ended, not always the
order of their replies (another thread may answer and log the next request meanwhile), and
a graceful stop waits for them. The line formats are in :mod:`fcgikit.server.logs`.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING

from fcgikit.server.logs import (
    ACCESS_FORMAT,
    access_log,
    combined_line,
    iso_time,
    json_line,
    request_uri,
)

if TYPE_CHECKING:
    from fcgikit.server.wsgi import WSGIRequest


def observe_request(request: WSGIRequest, duration: float) -> None:
    """``request`` is over, ``duration`` seconds after it arrived: count it for the status
    page, write its access log line."""
    settings = request.settings
    metrics = settings.metrics
    if metrics is not None:
        metrics.request_done(request.status_code, duration)
    access_format = settings.access_format
    if access_format == "default":
        params = request.event.params
        now = time.time()
        access_log.info(
            ACCESS_FORMAT,
            iso_time(now),
            params.get(b"REMOTE_ADDR", b"-").decode("latin-1"),
            params.get(b"REQUEST_METHOD", b"-").decode("latin-1"),
            request_uri(params).decode("latin-1"),
            request.status_code,
            max(0, request.bytes_sent - request.head_length),
            duration * 1000,
            os.getpid(),
        )
    elif access_format is not None:
        _log_access_as(request, access_format, duration)


def _log_access_as(request: WSGIRequest, access_format: str, duration: float) -> None:
    """The access log line in a format other than the default (--access-log-format)."""
    params = request.event.params
    status_code = request.status_code
    body_bytes = max(0, request.bytes_sent - request.head_length)
    if access_format == "combined":
        line = combined_line(params, status_code, body_bytes, time.time())
    else:
        line = json_line(params, request.request_id, status_code, body_bytes, duration, time.time())
    access_log.info("%s", line)
