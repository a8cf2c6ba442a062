"""What ``fcgikit serve`` runs once its settings are resolved: one process, or a pool.

One process serves the listening sockets it is given (``--bind``, fd 0, or the ones a
SIGHUP'd fcgikit passed on when it re-executed itself); ``--workers`` makes a pool under the
:class:`~fcgikit.server.arbiter.Arbiter`; ``--reload`` runs that pool under the reloader. Each
can put werkzeug's development server in front (``--http``), forwarding to the FastCGI socket
through :class:`~fcgikit.client.FastCGIGateway`. fcgikit/cli.py decides which, and re-executes
the process when a lone server is asked to reload. Under systemd (``NOTIFY_SOCKET``), the one
process or the pool's master tells it how it is (:mod:`fcgikit.server.notify`); the reloader
of ``--reload``, for development, does not.

The pool's, the reloader's and the status page's modules are imported by the function that
runs them: a lone server, what most starts (and every SIGHUP's re-exec) are, needs none of
them, and each costs start-up time (tests/test_cli_startup.py).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import TYPE_CHECKING, Final

from fcgikit.addresses import FdAddress, TcpAddress, UnixAddress
from fcgikit.errors import ConfigError
from fcgikit.gc_pause import pause_collections, resume_collections
from fcgikit.server.listeners import (
    describe,
    inherited_listener,
    open_bound_listeners,
    passed_listeners,
)
from fcgikit.server.settings import CommandSettings, PoolSettings, ServerSettings

if TYPE_CHECKING:
    import socket

    from _typeshed.wsgi import WSGIApplication
    from werkzeug.serving import BaseWSGIServer

    from fcgikit.server.server import Server
    from fcgikit.server.settings.sources import ResolvedSettings

#: Wraps the loaded app in the URL fixers --mount, --proxy-hops and --forwarded ask for.
Fixers = Callable[["WSGIApplication"], "WSGIApplication"]


def pool_settings(
    command: CommandSettings, settings: ResolvedSettings, server: ServerSettings
) -> tuple[ServerSettings, PoolSettings]:
    """The settings of the pool's workers (from ``server``'s) and of its master, for
    --workers and --reload."""
    minimum, maximum = command.workers or (1, 1)
    pool = settings.build(PoolSettings, workers_min=minimum, workers_max=maximum)
    return replace(server, multiprocess=True), pool


def serve_pool(
    command: CommandSettings,
    settings: ResolvedSettings,
    server: ServerSettings,
    fixers: Fixers | None,
) -> int:
    """--workers: the pool's master, until it stops; its exit status."""
    from fcgikit.server.arbiter import Arbiter
    from fcgikit.server.notify import SystemdNotifier

    assert command.app is not None
    server_settings, pool = pool_settings(command, settings, server)
    notifier = SystemdNotifier.from_environ(os.environ)
    arbiter = Arbiter(command.app, None, server_settings, pool, wrap_app=fixers, notifier=notifier)
    return arbiter.run()


def serve_reloading(
    command: CommandSettings,
    settings: ResolvedSettings,
    server: ServerSettings,
    fixers: Fixers | None,
) -> int:
    """--reload: the pool (one worker unless --workers) under the reloader, which makes it
    reload when the app's files change (fcgikit/server/autoreload.py)."""
    from fcgikit.server.arbiter import Arbiter
    from fcgikit.server.autoreload import Reloader
    from fcgikit.server.sources import make_watcher, watched_directories

    assert command.app is not None
    server_settings, pool = pool_settings(command, settings, server)
    if pool.preload:
        raise ConfigError(
            "--reload imports the app afresh in new workers, --preload once in the master, "
            "where no reload can replace it: use one or the other"
        )
    http = command.http
    dev_socket_dir = target = None
    if http is not None:
        server_settings, dev_socket_dir, target = _reload_front_target(server_settings)
    watcher = make_watcher(
        watched_directories(command.app, list(command.reload_dir)), command.reload_engine
    )
    serve = Arbiter(command.app, None, server_settings, pool, wrap_app=fixers).run
    fronts: list[BaseWSGIServer] = []
    try:
        if http is None or target is None:
            return Reloader(serve, watcher).run()
        return Reloader(serve, watcher).run(lambda: fronts.append(_start_dev_front(http, target)))
    finally:
        for front in fronts:
            front.shutdown()
        if dev_socket_dir is not None:
            import shutil  # here, as tempfile: --http's; they load bz2, lzma, random

            shutil.rmtree(dev_socket_dir, ignore_errors=True)


def _reload_front_target(settings: ServerSettings) -> tuple[ServerSettings, str | None, str]:
    """Where --http forwards under --reload, known before the pool binds it: the first
    --bind, the socket on fd 0, or a new socket in a temporary directory (also returned)."""
    if settings.binds:
        first = settings.binds[0]
        if isinstance(first, FdAddress) or (isinstance(first, TcpAddress) and not first.port):
            raise ConfigError(
                f"--http with --reload forwards to the first --bind, so it must be "
                f"unix:PATH or HOST:PORT with a port, not {first}"
            )
        return settings, None, str(first)
    listener = inherited_listener(0)
    if listener is not None:
        with listener:
            return settings, None, describe(listener)
    import tempfile

    directory = tempfile.mkdtemp(prefix="fcgikit-dev-")
    address = UnixAddress(os.path.join(directory, "app.sock"))
    return replace(settings, binds=(address,)), directory, str(address)


class Listening:
    """What one process serves: the sockets it was given, or those of its settings' binds.
    A plain class: one is made a start, and read once (a frozen dataclass's class costs the
    start more than that)."""

    __slots__ = ("connections", "created", "dev_socket_dir", "listeners", "settings")

    def __init__(
        self,
        settings: ServerSettings,
        listeners: list[socket.socket],
        created: list[str] | None = None,
        connections: list[int] | None = None,
        dev_socket_dir: str | None = None,
    ) -> None:
        self.settings: Final = settings
        self.listeners: Final = listeners
        #: unix socket files to remove when this one stops, or fails to load the app: those
        #: it created, or a previous fcgikit did
        self.created: Final = [] if created is None else created
        #: idle keep-conn connections a SIGHUP'd fcgikit passed on
        self.connections: Final = [] if connections is None else connections
        #: the temporary directory of the development front's socket, removed afterwards
        self.dev_socket_dir: Final = dev_socket_dir

    def abandon(self) -> None:
        """No server will serve these: the socket files in ``created`` are removed (and the
        development front's directory), so that the web server's connections are refused
        rather than left waiting; the sockets close when the process exits."""
        for path in self.created:
            with contextlib.suppress(OSError):
                os.unlink(path)
        if self.dev_socket_dir is not None:
            with contextlib.suppress(OSError):
                os.rmdir(self.dev_socket_dir)


def listen(command: CommandSettings, settings: ServerSettings) -> Listening:
    """The sockets one process serves, listening from now on: as soon as the settings are
    read, before logging is set up, the server's modules load and the app is imported, which
    can take seconds, so that meanwhile the web server's connections wait in the backlog to be
    served instead of being refused (a 502), as they do across a SIGHUP's re-exec, and in a
    pool, whose master binds before its workers import the app. Whatever fails after this
    and before the server runs calls :meth:`Listening.abandon`."""
    passed = passed_listeners()  # ours, re-executed by SIGHUP, or systemd's
    if passed is not None and passed.sockets:
        return Listening(settings, passed.sockets, passed.created_paths, passed.connections)
    if settings.binds:
        return _bound(settings)
    listener = inherited_listener(0)
    if listener is not None:
        return Listening(settings, [listener])
    if command.http is not None:
        import tempfile

        directory = tempfile.mkdtemp(prefix="fcgikit-dev-")
        binds = (UnixAddress(os.path.join(directory, "app.sock")),)
        return _bound(replace(settings, binds=binds), dev_socket_dir=directory)
    raise ConfigError(
        "nothing to listen on: fd 0 is not a listening socket. Pass --bind "
        "unix:/run/app.sock (or 127.0.0.1:9000), or --http 127.0.0.1:8000 for "
        "a development front"
    )


def _bound(settings: ServerSettings, dev_socket_dir: str | None = None) -> Listening:
    listeners, created = open_bound_listeners(settings)
    return Listening(settings, listeners, created, dev_socket_dir=dev_socket_dir)


def serve_one_process(
    command: CommandSettings,
    listening: Listening,
    fixers: Fixers | None,
    *,
    access_log_from_logging: bool = False,
) -> Server | None:
    """Serve ``listening`` (:func:`listen`) in this process until stopped; the server, if
    SIGHUP asked for a new process on its sockets (the caller re-executes fcgikit), else
    None. ``access_log_from_logging``: the --log-config file configures the access log."""
    assert command.app is not None
    # here, once the sockets listen: a request sent while the server's modules load waits
    from fcgikit.server.notify import SystemdNotifier
    from fcgikit.server.server import Server

    with _no_collections():
        app = _load(command.app, fixers, listening)
    settings = listening.settings
    if access_log_from_logging:
        settings = replace(settings, access_log_from_logging=True)
    page = None
    if settings.status_path is not None:
        from fcgikit.server.status import one_process_page

        page = one_process_page(settings)
        app = page.in_front_of(app)
        settings = replace(settings, metrics=page.counters)
    # The development front's socket lives in a temporary directory: it starts afresh.
    server = Server(
        app,
        settings,
        listening.listeners,
        created_paths=listening.created,
        keep_listeners_on_reload=command.http is None,
        connections=listening.connections,
        notifier=SystemdNotifier.from_environ(os.environ),
    )
    if page is not None and page.counters is not None:
        page.counters.pool = server.pool
    front = None
    if command.http is not None:
        front = _start_dev_front(command.http, describe(server.listeners[0]))
    try:
        reload = server.serve()
    finally:
        if front is not None:
            front.shutdown()
        if listening.dev_socket_dir is not None:
            os.rmdir(listening.dev_socket_dir)
    return server if reload else None


@contextlib.contextmanager
def _no_collections() -> Iterator[None]:
    """No automatic cyclic collection while the app loads (if the command has not paused them
    since its start already), and what the start made frozen once it has (fcgikit/gc_pause.py):
    its import makes most of what the process keeps for as long as it runs."""
    pause_collections()
    try:
        yield
    finally:
        resume_collections()


def _load(spec: str, fixers: Fixers | None, listening: Listening) -> WSGIApplication:
    """The app, wrapped in ``fixers``; if it cannot be loaded, ``listening`` is abandoned:
    the server that would have served it will not run."""
    from fcgikit.server.apploader import load_app  # here: after the bind, as the app's import

    try:
        app = load_app(spec)
    except BaseException:
        listening.abandon()
        raise
    return app if fixers is None else fixers(app)


def _start_dev_front(address: TcpAddress, target: str) -> BaseWSGIServer:
    """werkzeug's server on ``address``, forwarding to the FastCGI socket ``target``."""
    import logging
    import threading

    from werkzeug.serving import make_server

    from fcgikit.client import FastCGIGateway

    front = make_server(address.host, address.port, FastCGIGateway(target), threaded=True)
    thread = threading.Thread(target=front.serve_forever, name="fcgikit-dev-front", daemon=True)
    thread.start()
    logging.getLogger("fcgikit.cli").warning(
        "fcgikit: development front on http://%s:%d -> %s (for development only; "
        "put nginx, Apache or lighttpd in front in production)",
        address.host,
        front.server_port,
        target,
    )
    return front
