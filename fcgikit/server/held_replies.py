"""The replies of one round of the loop, sent together.

A job (a request) returns its :class:`Reply`, framed and not sent yet, and the pool
(:class:`~fcgikit.server.pool.WorkerPool`) sends it. When several requests are ready at once,
the reply of one run on the loop's thread waits in :class:`HeldReplies` until the last of them
has run, :data:`HELD_MAX` are waiting, or the first has waited :data:`HELD_FOR`; then they go
out together. A web server that went idle while the app ran would otherwise be woken by every
reply, and the sender pays for each wake-up (scheduler work billed to our send): sending the
replies of a batch together halves what the kernel spends on them, ours and the web
server's (benchmarks/RESULTS.md, "The replies of one round go out together"). A rescue does
not strand them: the thread that takes the loop role sends them first. Once a reply is sent
the pool tells it its request is over (:meth:`Reply.done`), and whether the thread telling it
holds the loop role: only that thread may close a connection the loop's poller watches.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from time import monotonic
from typing import Final, Protocol

log = logging.getLogger("fcgikit.server")

#: held replies go out before the next request runs once the first has waited this long
#: (seconds): fewer wake-ups are worth a millisecond at most, not a slow request's time
HELD_FOR = 0.001
#: at most this many replies wait for the rest of their batch (see HeldReplies.hold): past
#: that, fewer wake-ups save little, and the first replies of a big batch would wait for all
#: of it (benchmarks/RESULTS.md, "The replies of one round go out together")
HELD_MAX: Final = 16
#: the clock of :data:`HELD_FOR` (compiled: a Final is read natively, where a global imported
#: from a module is looked up by name each time)
_clock: Final = monotonic


class Reply(Protocol):
    """What a job returns when its request has a reply to send (see the module docstring):
    the request itself (:class:`~fcgikit.server.wsgi.WSGIRequest`)."""

    def send(self) -> None:
        """Send it; a failure to is its own to log."""

    def done(self, *, on_loop: bool) -> None:
        """Its request is over. ``on_loop``: the calling thread holds the loop role and runs
        no request, so no rescue can take the role meanwhile: it may touch the loop's poller
        (close a connection at once)."""


class ServerReply:
    """A job and :class:`Reply` of the server's own (:class:`~fcgikit.server.wsgi.WSGIRequest`):
    a compiled class, so that the pool runs it (``run``, not a call of the job) and
    :func:`send_reply` and :func:`end_reply` call it directly rather than look its methods up
    by name each request, as a call through the protocol does. Any other job or Reply (a
    test's) is called through the protocol."""

    __slots__ = ()

    def run(self) -> Reply | None:
        raise NotImplementedError

    def send(self) -> None:
        raise NotImplementedError

    def done(self, *, on_loop: bool) -> None:
        raise NotImplementedError


#: a request to run (called, or a ServerReply's run): its reply, if it has one left to send
Job = Callable[[], Reply | None] | ServerReply


class HeldReplies:
    """The replies of requests run on the loop's thread, waiting for the ready requests
    behind them; only the thread that holds the loop role touches them."""

    def __init__(self) -> None:
        self.replies: list[Reply] = []
        #: :data:`HELD_FOR`, read once (compiled: an attribute read natively, not a global
        #: looked up by name each request)
        self.held_for: float = HELD_FOR
        #: when the first of them will have waited held_for (time.monotonic's clock)
        self.until = 0.0

    def hold(self, reply: Reply) -> None:
        """Keep ``reply`` until the requests ready behind it have run (the loop's thread)."""
        replies = self.replies
        if not replies:
            self.until = _clock() + self.held_for
        replies.append(reply)
        if len(replies) >= HELD_MAX:
            self.send()

    def waited_too_long(self) -> bool:
        """Replies wait only for quick requests: once one behind them took :data:`HELD_FOR`,
        they go before the next one runs (which may take as long again)."""
        return _clock() >= self.until

    def due(self, *, adding: bool) -> bool:
        """The held replies (and one more, ``adding``) go out before the next request runs:
        :data:`HELD_MAX` would wait, or the first has waited :data:`HELD_FOR`."""
        replies = self.replies
        if len(replies) + adding >= HELD_MAX:
            return True
        return bool(replies) and self.waited_too_long()

    def send(self) -> None:
        """Send the held replies and end their requests: by the thread that holds the loop
        role, while it runs no request."""
        replies, self.replies = self.replies, []
        for reply in replies:
            send_reply(reply)
            end_reply(reply, on_loop=True)


def send_reply(reply: Reply) -> None:
    try:
        if isinstance(reply, ServerReply):
            reply.send()  # (compiled: a direct call, see ServerReply)
        else:
            reply.send()
    except BaseException:  # a reply logs its own failures
        log.exception("request thread: unexpected error")


def end_reply(reply: Reply, *, on_loop: bool) -> None:
    try:
        if isinstance(reply, ServerReply):
            reply.done(on_loop=on_loop)  # (compiled: a direct call, see ServerReply)
        else:
            reply.done(on_loop=on_loop)
    except BaseException:  # a request logs its own failures
        log.exception("request thread: unexpected error")
