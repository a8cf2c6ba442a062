"""How much memory a request waiting for a thread may hold: what it counts for in the pool's
budget for waiting requests (``--max-queued-memory``; see :class:`~fcgikit.server.pool.WorkerPool`).

:func:`~fcgikit.server.loop.admit` asks :func:`bound_waiting_memory` of each request it
hands to the pool. The figure is an upper bound, not a measurement, and it is made true: a
body still arriving is first held to WAITING_BODY_MEMORY in memory, the rest spooled to its
file. tests/server/test_queued_memory.py holds the constants to what tracemalloc measures.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from fcgikit.server.request_input import log_spool_failure

if TYPE_CHECKING:
    from fcgikit.server.body import RequestBody
    from fcgikit.server.wsgi import WSGIRequest

#: What a request waiting for a thread holds besides its params and its body's bytes (its
#: WSGIRequest, RequestBody, event, the pool's entry; not its connection's, which an idle
#: connection holds too), and what each param decoded into a dict holds besides its own
#: bytes (an object for its name and for its value, the dict's entry), in bytes: a little
#: above what tracemalloc measures (tests/server/test_queued_memory.py holds them to it).
REQUEST_MEMORY: Final = 1024
DECODED_PAIR_MEMORY: Final = 128
#: A body still arriving when its request is admitted keeps at most this
#: much unread in memory from then on (the rest goes to its spool file): it counts for that.
WAITING_BODY_MEMORY: Final = 16 * 1024


def bound_waiting_memory(request: WSGIRequest, complete: bool) -> int:
    """About the most bytes ``request`` holds until it runs: its params, and what of its
    body (and FILTER data) may be in memory by then, bounded first for a body still
    arriving (WAITING_BODY_MEMORY). ``complete``: its body's ``complete``, which the caller
    asked already (admit: whether it may run on the loop's thread); a property of the
    interpreted body is a call each time, for every request."""
    params = request.params
    body = request.body
    if not complete:
        _limit_arriving(request, body)
    memory = REQUEST_MEMORY + request.event.params_size + body.memory_bound()
    text = request.text
    if text is not None:  # TextParams' text, which the request took (see WSGIRequest.text)
        memory += len(text) * DECODED_PAIR_MEMORY
    elif type(params) is dict:
        memory += len(params) * DECODED_PAIR_MEMORY
    filter_data = request.filter_data
    if filter_data is not None:
        if not filter_data.complete:
            _limit_arriving(request, filter_data)
        memory += filter_data.memory_bound()
    return memory


def _limit_arriving(request: WSGIRequest, body: RequestBody) -> None:
    try:
        body.limit_memory(WAITING_BODY_MEMORY)
    except OSError as exc:
        log_spool_failure(request, exc)
