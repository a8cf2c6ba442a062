"""What a :class:`~fcgikit.server.channel.Channel` needs from its server and gives the
loop: the server's side (:class:`ChannelHost`), a connection a request can be refused on
(:class:`Refuses`), and the table its requests' params are decoded by."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from fcgikit.server.wsgi_codec import DROPPED_PARAMS, environ_names

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

    from fcgikit.protocol.lanes import NameTable
    from fcgikit.server.channel import Channel
    from fcgikit.server.logs import RateLimitedLog
    from fcgikit.server.pool import Refusal
    from fcgikit.server.settings import ServerSettings
    from fcgikit.server.wsgi import WSGIRequest


def text_names(settings: ServerSettings) -> NameTable | None:
    """The table a whole request's params are decoded by, as the environ's text, in the pass
    that reads its records (WholeRequest.parse, a Channel's ServerConnection): the environ
    builder's own. None with a base_environ, which the builder puts under them."""
    return None if settings.base_environ else environ_names(DROPPED_PARAMS)


class Refuses(Protocol):
    """A connection a request arrived on (a Channel, or a DirectChannel)."""

    def refuse(self, request: WSGIRequest, refusal: Refusal) -> None: ...


class ChannelHost(Protocol):
    """What a channel needs from its server (:class:`~fcgikit.server.server.Server`; the
    fuzz harness and the hot-path benchmark pass smaller stand-ins)."""

    settings: ServerSettings
    app: WSGIApplication
    #: what every connection reads into, on the loop's thread
    recv_buffer: memoryview
    #: requests whose params arrived in this round of the loop, admitted after it
    arrived: list[tuple[Refuses, WSGIRequest]]
    #: where refusals that come in floods are logged
    overloads: RateLimitedLog

    def unregister(self, channel: Channel) -> None:
        """Stop reading ``channel``: out of the loop's poller (the loop's thread only)."""

    def want_write(self, channel: Channel) -> None: ...
    def request_finished(self) -> None: ...
    def channel_closed(self, channel: Channel) -> None:
        """``channel`` closed (Channel.close): out of the server's connections, and of the
        loop's poller if in it (then on the loop's thread only)."""

    def set_aside(self, channel: Channel) -> None:
        """Out of the loop's poller while an app's thread reads it (the loop's thread)."""

    def take_back(self, channel: Channel) -> None:
        """Into the loop's poller again from its next round, and handover.resume (any
        thread)."""
