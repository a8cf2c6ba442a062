"""flup's ``WSGIServer``, on fcgikit's server: change the import, keep the ``.fcgi`` file.

>>> from fcgikit import WSGIServer                              # was: from flup.server.fcgi
>>> server = WSGIServer(lambda environ, start_response: [], bindAddress=("127.0.0.1", 0))

``run()`` picks the transport the way flup does: ``bindAddress`` if given; otherwise the
listening socket a spawner left on fd 0 (mod_fcgid, lighttpd ``bin-path``, h2o
``fastcgi.spawn``, spawn-fcgi, supervisor ``[fcgi-program]``); otherwise plain CGI, once.
It returns True after SIGHUP, so the classic ``while WSGIServer(app).run(): ...`` re-exec
loop keeps working.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from fcgikit.addresses import from_bind_address
from fcgikit.protocol.constants import Role
from fcgikit.server.listeners import inherited_listener, parse_web_server_addrs
from fcgikit.server.server import Server
from fcgikit.server.settings import ServerSettings

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

log = logging.getLogger("fcgikit.server")

#: flup's thread pool keywords; ``maxThreads`` is the one with a meaning here
_FLUP_POOL_KEYWORDS = frozenset({"minSpare", "maxSpare", "maxThreads"})


def configure_logging(level: int = logging.INFO) -> None:
    """Log to stderr unless the app configured logging itself.

    Under mod_fcgid stderr is Apache's error log and under lighttpd / h2o it is theirs, so
    "why did my app fail" ends up where the operator already looks.
    """
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(f"fcgikit[{os.getpid()}] %(levelname)s %(message)s"))
        root.addHandler(handler)
        root.setLevel(level)


def force_cgi_requested(force_cgi: bool) -> bool:
    return force_cgi or os.environ.get("FCGI_FORCE_CGI", "").upper().startswith("Y")


class WSGIServer:
    """Drop-in for ``flup.server.fcgi.WSGIServer`` (same keywords, same meaning).

    Args:
        application: the WSGI app.
        environ: extra keys for every request's environ.
        multithreaded: False runs one request at a time (one worker thread).
        multiprocess: the value of ``wsgi.multiprocess``.
        bindAddress: None (fd 0, else CGI), a unix socket path, or a ``(host, port)`` tuple.
        umask: umask applied to a unix socket we create (mode 0660 minus it).
        multiplexed: accept several requests per connection.
        debug: show tracebacks in 500 pages (never in production).
        roles: the FastCGI roles to accept (``FCGI_RESPONDER``, ``FCGI_AUTHORIZER``,
            ``FCGI_FILTER``).
        forceCGI: run as CGI even when fd 0 is a socket.
        maxThreads: flup's thread pool size keyword (``minSpare`` / ``maxSpare`` are accepted
            and ignored: our pool grows on demand).
    """

    def __init__(
        self,
        application: WSGIApplication,
        environ: Mapping[str, Any] | None = None,
        multithreaded: bool = True,
        multiprocess: bool = False,
        bindAddress: str | tuple[str, int] | None = None,
        umask: int | None = None,
        multiplexed: bool = False,
        debug: bool = False,
        roles: Iterable[int] = (Role.RESPONDER,),
        forceCGI: bool = False,
        **kw: Any,
    ) -> None:
        unknown = set(kw) - _FLUP_POOL_KEYWORDS
        if unknown:
            raise TypeError(f"WSGIServer() got unexpected keyword(s): {', '.join(sorted(unknown))}")
        self.application = application
        self.bind_address = bindAddress
        self.force_cgi = forceCGI
        threads = 1 if not multithreaded else int(kw.get("maxThreads", 16))
        self.settings = ServerSettings(
            binds=() if bindAddress is None else (from_bind_address(bindAddress),),
            threads=max(1, min(threads, 512)),
            multiplexed=multiplexed,
            roles=frozenset(Role(role) for role in roles),
            debug=debug,
            umask=umask,
            multiprocess=multiprocess,
            base_environ=MappingProxyType(dict(environ or {})),
            web_server_addrs=parse_web_server_addrs(os.environ.get("FCGI_WEB_SERVER_ADDRS")),
        )

    def run(self) -> bool:
        """Serve until stopped; True after SIGHUP (re-exec me), else False."""
        configure_logging()
        if force_cgi_requested(self.force_cgi):
            return self._run_cgi()
        if self.bind_address is None:
            listener = inherited_listener(0)
            if listener is None:
                return self._run_cgi()
            return Server(self.application, self.settings, [listener]).serve()
        return Server(self.application, self.settings).serve()

    def _run_cgi(self) -> bool:
        from fcgikit.cgi import run_cgi

        run_cgi(
            self.application, debug=self.settings.debug, base_environ=self.settings.base_environ
        )
        return False
