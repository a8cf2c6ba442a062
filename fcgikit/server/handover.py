"""A body read by its app's own thread, straight from the connection (as uWSGI does).

A request alone on its connection (this server does not multiplex) whose app reads
``wsgi.input`` before the body has all arrived asks for the connection (:func:`pull`): at the
next bytes the loop reads from it, the loop instead takes it out of its poller and leaves it
to the app's thread (:func:`grant`), which reads it with blocking waits bounded by the body's
timeout and feeds what it reads through the connection's protocol object as the loop would.
So the body crosses one thread, not two: no hand-off between the loop and the app for each
read, and no spool file when the app falls behind, for what the app has not read yet stays
in the kernel's socket buffer (the web server, and its client, wait).

The connection goes back to the loop (:func:`give_back`, re-registered from the loop's next
round: :func:`resume`) once the body's end arrived, when the read brought anything but this
request's body (an abort, records for another request), at EOF, a read error or a protocol
error (which the loop then handles as it would have), when the body's timeout passes, and
when the request ends. A server stopping at once shuts the socket down under the app's
thread (Stopping.cut_connections), whose wait ends at that EOF.
"""

from __future__ import annotations

import select
import time
from typing import TYPE_CHECKING

from fcgikit.errors import RemoteProtocolError
from fcgikit.protocol import RequestReceived, StdinData, StdinEnded
from fcgikit.protocol.input_events import StdinViews

# (here, not in _take: none of them imports this module, and an import inside the function
# ran at each of the app thread's reads)
from fcgikit.server.channel_input import deliver_input
from fcgikit.server.request_input import log_spool_failure
from fcgikit.server.wsgi import WSGIRequest

if TYPE_CHECKING:
    from fcgikit.server.body import RequestBody
    from fcgikit.server.channel import Channel

#: what the app's thread reads into at a time: the most of a handed-over body memory holds
#: unread (in one of two such buffers: see pull)
READ_SIZE = 256 * 1024


def _eligible(channel: Channel, request: WSGIRequest) -> bool:
    """``request`` is alone on ``channel``, which serves on (state lock held)."""
    requests = channel.requests
    return (
        len(requests) == 1
        and requests.get(request.request_id) is request
        and not channel.server.settings.multiplexed
        and not channel.draining
        and not channel.closed
        and channel.registered
        and channel.linger_deadline is None
        and not request.body.complete
    )


class Reading:
    """What the app's thread keeps between its reads of a connection handed over to it."""

    def __init__(self, size: int, fileno: int) -> None:
        #: two halves of ``size`` bytes, read into in turn (see pull)
        self.buffers = memoryview(bytearray(2 * size))
        self.poller = select.poll()
        self.poller.register(fileno, select.POLLIN)
        #: the last read took less than the buffer holds, so (nearly always) all the socket
        #: had: the next one waits for bytes first, not after a read that finds none (which
        #: raises BlockingIOError, a system call and an exception for nothing)
        self.drained = False


def pull(channel: Channel, body: RequestBody, timeout: float | None) -> bool | None:
    """The app's thread, wanting bytes of ``body`` (none unread, its end not in, no lock
    held): True once it read and fed some (or the body ended or failed: look again); False
    when none came for ``timeout`` seconds; None when the connection is not the thread's
    (asked for, or not to be had): wait for the loop to feed the body, as without."""
    request = channel.handed_to
    if request is None or request.body is not body:
        request = _owner(channel, body)
        if request is not None and channel.handed_to is None:
            channel.handover_wanted = request  # granted at the loop's next read of it
        return None
    reading = channel.handover_reading
    if reading is None:
        # Under what memory may hold unread (the app reads it all before the next read),
        # with a record's content the previous read began.
        size = min(READ_SIZE, max(body.threshold // 2, 4096))
        reading = channel.handover_reading = Reading(size, channel.fileno)
    # Two halves, in turn: the body keeps views of what a read fed until the app's read
    # copies them, which may take in the next read too (RequestBody.feed_views); the half
    # a read goes to moves on when the body was fed views of it.
    buffers = reading.buffers
    half = len(buffers) // 2
    buffer = buffers[half:] if body.view_feeds & 1 else buffers[:half]
    if reading.drained and not reading.poller.poll(None if timeout is None else timeout * 1000.0):
        give_back(channel)
        return False
    try:
        size = channel.sock.recv_into(buffer)
    except BlockingIOError:  # (the socket is non-blocking)
        reading.drained = True  # the next pull waits first; look again meanwhile
        return True
    except OSError as exc:
        channel.handover_failure = f"read failed: {exc.strerror or exc}"
        give_back(channel)
        return None
    if not size:
        give_back(channel)  # the loop reads the EOF again, and ends what runs as it does
        return None
    reading.drained = size < len(buffer)
    return _take(channel, request, buffer, size)


def _owner(channel: Channel, body: RequestBody) -> WSGIRequest | None:
    """The request ``body`` is the body of, if it may have the connection."""
    channel.state_lock.acquire()
    try:
        for request in channel.requests.values():
            if request.body is body and _eligible(channel, request):
                return request
        return None
    finally:
        channel.state_lock.release()


def _take(channel: Channel, request: WSGIRequest, buffer: memoryview, size: int) -> bool | None:
    """Feed what the app's thread read, as Channel.on_received would; the connection goes
    back to the loop unless all of it was this request's body, not its end."""
    server = channel.server
    channel.last_active = time.monotonic()
    channel.state_lock.acquire()
    try:
        events = channel.conn.receive_data_keeping_views(buffer[:size])
        replies = channel.conn.data_to_send()
        for event in events:
            if type(event) is RequestReceived:  # after an abort: for the loop to admit
                received = WSGIRequest(channel, event, server.app, server.settings)
                channel.requests[event.request_id] = received
                channel.requests_received += 1
                channel.handed_arrivals.append(received)
    except RemoteProtocolError as exc:
        channel.handover_failure = exc
        give_back(channel)
        return None
    finally:
        channel.state_lock.release()
    if replies:
        channel.queue_reply(replies)
    rid = request.request_id
    alone = True
    for event in events:
        if type(event) is StdinViews:
            if event.request_id == rid:
                try:
                    request.body.feed_views(event.views)
                except OSError as exc:  # as feed_body
                    log_spool_failure(request, exc)
                continue
            # (another request's, which no other thread may hold views of this buffer for)
            event = StdinData(event.request_id, b"".join(event.views))
        if type(event) is not RequestReceived:
            deliver_input(channel.requests, event)
        if not (type(event) in (StdinData, StdinEnded) and event.request_id == rid):
            alone = False
    if not alone or request.body.complete:
        give_back(channel)
    return True


def grant(channel: Channel) -> bool:
    """The loop's thread, about to read ``channel``, which a request's thread asked for:
    True if it is that thread's now (out of the poller; its reader woken), False to read it
    as ever."""
    request = channel.handover_wanted
    channel.handover_wanted = None
    if request is None:
        return False
    channel.state_lock.acquire()
    try:
        granted = _eligible(channel, request)
        if granted:
            channel.handed_to = request
    finally:
        channel.state_lock.release()
    if granted:
        channel.server.set_aside(channel)
        request.body.wake_reader()
    return granted


def give_back(channel: Channel) -> None:
    """The app's thread is done reading ``channel``: the loop watches it again."""
    channel.state_lock.acquire()
    try:
        handed = channel.handed_to is not None
        channel.handed_to = None
    finally:
        channel.state_lock.release()
    if handed:
        channel.handover_reading = None
        channel.server.take_back(channel)


def resume(channel: Channel) -> bool:
    """The loop's thread, ``channel`` given back: what the app's thread left for the loop
    done (requests to admit, a failure to act on); True to watch it again."""
    arrivals = channel.handed_arrivals
    if arrivals:
        channel.handed_arrivals = []
        channel.server.arrived.extend((channel, request) for request in arrivals)
    failure = channel.handover_failure
    if failure is None:
        return True
    channel.handover_failure = None
    if isinstance(failure, RemoteProtocolError):
        channel.on_protocol_error(failure)
    else:
        channel.on_peer_closed(failure)
    return False
