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
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from fcgikit.addresses import from_bind_address
from fcgikit.errors import ConfigError
from fcgikit.protocol.constants import Role
from fcgikit.server.apploader import not_a_wsgi_signature
from fcgikit.server.listeners import inherited_listener
from fcgikit.server.logs import configure_logging, enable_fcgikit_loggers
from fcgikit.server.server import Server
from fcgikit.server.settings import PoolSettings, ServerSettings
from fcgikit.server.settings.sources import environment_value

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

log = logging.getLogger("fcgikit.server")

#: flup's thread pool keywords; ``maxThreads`` is the one with a meaning here
_FLUP_THREAD_KEYWORDS = frozenset({"minSpare", "maxSpare", "maxThreads"})
#: flup's ``fcgi_fork`` (PreforkServer) keywords; any of them means a pool of processes
_FLUP_PREFORK_KEYWORDS = frozenset({"maxChildren", "maxRequests"})


def flup_prefork_pool(
    minSpare: int = 1,
    maxSpare: int = 5,
    maxChildren: int = 50,
    maxRequests: int = 0,
) -> PoolSettings:
    """flup's ``fcgi_fork.WSGIServer`` (PreforkServer) keywords as a pool.

    flup keeps ``minSpare``..``maxSpare`` idle single-threaded children, at most
    ``maxChildren``. Here: at least ``max(1, minSpare)`` workers, growing to ``maxChildren``
    while all are busy, shrinking back after ``idle_timeout``; ``maxSpare`` has no
    counterpart (idle workers above the minimum are stopped after the idle timeout) and
    ``maxRequests`` is ``max_requests``. Use it with ``threads=1``, as flup's children are.
    """
    del maxSpare
    minimum = max(1, minSpare)
    return PoolSettings(
        workers_min=minimum,
        workers_max=max(minimum, maxChildren),
        max_requests=maxRequests,
    )


def force_cgi_requested(force_cgi: bool) -> bool:
    return force_cgi or os.environ.get("FCGI_FORCE_CGI", "").upper().startswith("Y")


class WSGIServer:
    """Drop-in for ``flup.server.fcgi.WSGIServer`` (same keywords, same meaning).

    Args:
        application: the WSGI app.
        environ: extra keys for every request's environ.
        multithreaded: False runs one request at a time (one worker thread).
        multiprocess: serve from a pool of worker processes (the pool of
            ``fcgikit serve --workers``), as flup's ``fcgi_fork`` did; ``wsgi.multiprocess``
            is then True.
        bindAddress: None (fd 0, else CGI), a unix socket path, or a ``(host, port)`` tuple.
        umask: umask applied to a unix socket we create (mode 0660 minus it).
        multiplexed: accept several requests per connection.
        debug: show tracebacks in 500 pages (never in production).
        roles: the FastCGI roles to accept (``FCGI_RESPONDER``, ``FCGI_AUTHORIZER``,
            ``FCGI_FILTER``).
        forceCGI: run as CGI even when fd 0 is a socket.
        maxThreads: flup's thread pool size keyword (``minSpare`` / ``maxSpare`` are accepted
            and ignored for threads: our pool grows on demand).
        maxChildren, maxRequests, minSpare: flup's ``fcgi_fork`` keywords; any of the first
            two (or ``multiprocess=True``) selects the process pool: at least ``minSpare``
            workers, growing to ``maxChildren`` while all are busy, each replaced after
            ``maxRequests`` requests. Children serve one request at a time unless
            ``maxThreads`` is given.

    Raises:
        ConfigError: ``application`` cannot be called with ``(environ, start_response)``:
            typically a factory passed uncalled (``WSGIServer(create_app)``), which would
            make every request a 500.

    ``run()`` sets up fcgikit's own logging (the ``fcgikit`` logger, to stderr, at INFO) and
    leaves the app's alone, as flup did.
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
        unknown = set(kw) - _FLUP_THREAD_KEYWORDS - _FLUP_PREFORK_KEYWORDS
        if unknown:
            raise TypeError(f"WSGIServer() got unexpected keyword(s): {', '.join(sorted(unknown))}")
        wrong = not_a_wsgi_signature(application)
        if wrong is not None:
            name = getattr(application, "__name__", "factory")
            raise ConfigError(
                f"WSGIServer({name}): {wrong} cannot be called with (environ, start_response); "
                f"if it makes the app, pass what it returns: WSGIServer({name}())"
            )
        self.application = application
        self.bind_address = bindAddress
        self.force_cgi = forceCGI
        #: flup's fcgi_fork users: the same pool as ``fcgikit serve --workers``
        self.pool: PoolSettings | None = None
        if multiprocess or _FLUP_PREFORK_KEYWORDS.intersection(kw):
            self.pool = flup_prefork_pool(**{k: int(v) for k, v in kw.items() if k != "maxThreads"})
            if "maxThreads" not in kw:
                multithreaded = False  # flup's forked children serve one request at a time
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
            # flup read FCGI_WEB_SERVER_ADDRS; of fcgikit serve's other settings, the
            # keywords are the .fcgi file's
            web_server_addrs=environment_value(ServerSettings, "web_server_addrs", os.environ),
        )

    def run(self) -> bool:
        """Serve until stopped; True after SIGHUP (re-exec me), else False."""
        configure_logging(logging.INFO, None)
        enable_fcgikit_loggers()  # the app was imported before: its logging set-up ran
        if force_cgi_requested(self.force_cgi):
            return self._run_cgi()
        listeners = None
        if self.bind_address is None:
            listener = inherited_listener(0)
            if listener is None:
                return self._run_cgi()
            listeners = [listener]
        if self.pool is not None:
            from fcgikit.server.arbiter import Arbiter

            arbiter = Arbiter(
                None, self.application, self.settings, self.pool, listeners, stop_on_hup=True
            )
            arbiter.run()
            return arbiter.restart_requested
        return Server(self.application, self.settings, listeners).serve()

    def _run_cgi(self) -> bool:
        from fcgikit.cgi import run_cgi

        run_cgi(
            self.application, debug=self.settings.debug, base_environ=self.settings.base_environ
        )
        return False
