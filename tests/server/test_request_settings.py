"""A request reads its server's settings through fcgikit.server.request_settings, which keeps
those of the last settings asked for: requests of servers with different settings, made in
turn in one process, each see their own server's."""

from __future__ import annotations

from dataclasses import replace
from types import MappingProxyType
from typing import Any

from fcgikit.server.settings import ServerSettings
from fcgikit.server.wsgi import WSGIRequest
from tests.server.test_request_input import received
from tests.server.test_speedups_wsgi_codec import RecordingSink


def environ_under(settings: ServerSettings) -> dict[str, Any]:
    """The environ an app gets from a request of a server with ``settings``."""
    seen: list[dict[str, Any]] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        seen.append(environ)
        start_response("200 OK", [])
        return [b""]

    event = received({b"PATH_INFO": b"/"})
    WSGIRequest(RecordingSink(), event, app, settings).run()
    return seen[0]


def test_requests_of_two_servers_made_in_turn_each_see_their_own_servers_settings() -> None:
    one = ServerSettings(threads=1, base_environ=MappingProxyType({"SITE": "one"}))
    two = replace(one, threads=8, multiprocess=True, base_environ=MappingProxyType({"SITE": "two"}))
    seen = [
        (environ["SITE"], environ["wsgi.multithread"], environ["wsgi.multiprocess"])
        for environ in map(environ_under, [one, two, one, two])
    ]
    assert seen == [("one", False, False), ("two", True, True)] * 2


def test_a_requests_body_is_kept_as_its_own_servers_settings_say() -> None:
    # the body's spool threshold comes from the request's copy of the settings too
    small = ServerSettings(spool_threshold=4)
    large = replace(small, spool_threshold=1024)
    spooled = []
    for settings in [small, large, small, large]:
        event = received({b"CONTENT_LENGTH": b"10"})
        request = WSGIRequest(RecordingSink(), event, lambda e, s: [], settings, streamed=False)
        request.body.feed(b"0123456789")
        request.body.finish()
        spooled.append(request.body.spooled)
        request.body.close()
    assert spooled == [True, False, True, False]
