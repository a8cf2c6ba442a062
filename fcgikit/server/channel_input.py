"""What the events a connection reads do to the requests they are for.

A :class:`~fcgikit.server.channel.Channel` turns each read into protocol events (its
``ServerConnection``) on the loop's thread. A RequestReceived makes a request, which the
channel registers itself; every other event belongs to a request already made, and is
delivered here: its body's chunks and end, a Filter's data file, the web server's abort.
An event for a request that is gone (answered and forgotten) is dropped. The body's chunks
go through :func:`~fcgikit.server.request_input.feed_body`, as on the direct lane
(:mod:`fcgikit.server.direct`), which reads no events.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from fcgikit.protocol import FilterData, FilterDataEnded, RequestAborted, StdinData, StdinEnded
from fcgikit.server.request_input import fail_input, feed_body

if TYPE_CHECKING:
    from fcgikit.server.logs import RateLimitedLog
    from fcgikit.server.settings import ServerSettings
    from fcgikit.server.wsgi import WSGIRequest

log = logging.getLogger("fcgikit.server")


def deliver_input(requests: dict[int, WSGIRequest], event: object) -> None:
    """Give ``event`` (any input event but RequestReceived) to its request in ``requests``."""
    # A request's usual event first: interpreted, each isinstance is a call.
    if isinstance(event, StdinEnded):
        request = requests.get(event.request_id)
        if request is not None:
            request.body.finish()
    elif isinstance(event, StdinData):
        request = requests.get(event.request_id)
        if request is not None:
            feed_body(request, event.data)
    elif isinstance(event, FilterData | FilterDataEnded):
        request = requests.get(event.request_id)
        if request is not None and request.filter_data is not None:
            if isinstance(event, FilterData):
                request.filter_data.feed(event.data)
            else:
                request.filter_data.finish()
    elif isinstance(event, RequestAborted):
        request = requests.get(event.request_id)
        if request is not None:
            log.info("request %s aborted by the web server", request.label)
            request.aborted = True
            fail_input(request, "the web server aborted the request")


def note_params_overloads(
    settings: ServerSettings, overloads: RateLimitedLog, peer: str, refused: int
) -> None:
    """Count and log (rate-limited) ``refused`` requests the connection from ``peer`` refused
    because the requests multiplexed on it were sending too many params at once."""
    metrics = settings.metrics
    if metrics is not None:
        metrics.request_refused("params", refused)
    overloads.note(
        f"the requests multiplexed on a connection from {peer} were sending "
        f"more than {settings.max_params_size} bytes of params at once",
        time.monotonic(),
    )
