"""What each request reads of its server's settings, read from them once.

A :class:`~fcgikit.server.wsgi.WSGIRequest` reads a few of its server's settings (whether
requests are observed, the base environ, its worker's tracker, how its body is kept). The
settings are a frozen dataclass, interpreted, where each read is a look-up in the instance's
``__dict__``; compiled, a :class:`RequestSettings`' are native attribute reads.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fcgikit.server.settings import ServerSettings


class RequestSettings:
    """What each request reads of its server's settings, read from them once: compiled, a
    request reads these as native attributes, where each of the settings' costs a look-up
    in the dataclass's ``__dict__``."""

    def __init__(self, settings: ServerSettings) -> None:
        self.settings = settings
        self.tracker = settings.tracker
        self.observe_requests = settings.observe_requests
        self.base_environ = settings.base_environ
        self.multithread = settings.threads > 1
        self.multiprocess = settings.multiprocess
        #: (for the request's body: fcgikit.server.request_input)
        self.spool_threshold = settings.spool_threshold
        self.body_timeout = settings.body_timeout


#: the last settings a request was made with (a server's requests all share theirs)
_last_settings: RequestSettings | None = None


def request_settings(settings: ServerSettings) -> RequestSettings:
    """``settings``' RequestSettings. (Not kept on the frozen settings, which a replace() or
    a test copies. Two threads that race here both make a correct one.)"""
    global _last_settings
    known = _last_settings
    if known is None or known.settings is not settings:
        known = _last_settings = RequestSettings(settings)
    return known
