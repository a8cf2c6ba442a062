"""The ``fcgikit`` command. The only module that reads ``sys.argv``.

fcgikit serve yourapplication:app --bind unix:/run/app.sock
fcgikit serve yourapplication:create_app() --http 127.0.0.1:8000     (development front)
fcgikit config nginx --mount /yourapplication --socket unix:/run/app.sock
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import shutil
import signal
import sys
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from fcgikit import __version__
from fcgikit.addresses import FdAddress, TcpAddress, UnixAddress, parse_address
from fcgikit.check import add_check_parser, add_request_parser, run_check, run_request
from fcgikit.errors import ConfigError
from fcgikit.middleware import wrap
from fcgikit.networks import TrustedNetworks
from fcgikit.protocol import ACCELERATED
from fcgikit.server.apploader import load_app
from fcgikit.server.arbiter import Arbiter, add_pool_arguments, settings_from_args, wants_pool
from fcgikit.server.autoreload import Reloader, add_reload_arguments
from fcgikit.server.listeners import (
    describe,
    exec_with_listeners,
    inherited_listener,
    passed_listeners,
)
from fcgikit.server.logs import configure_logging
from fcgikit.server.server import Server
from fcgikit.server.settings import (
    ServerSettings,
    add_server_arguments,
    server_settings_from_args,
)
from fcgikit.server.sources import make_watcher, watched_directories
from fcgikit.server.status import DIRECT_CLIENT_PARAM

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication
    from werkzeug.serving import BaseWSGIServer

log = logging.getLogger("fcgikit.cli")

#: what each signal does to ``fcgikit serve``, one process or a pool: the end of its --help,
#: and word for word in the README and docs/operations.rst (tests/server/test_signals.py)
SIGNALS_HELP = (
    "Signals: SIGTERM stops gracefully (running requests finish, for up to "
    "--graceful-timeout seconds); SIGINT and SIGQUIT stop at once (running requests are cut "
    "off); either way the unix socket fcgikit created is removed and the exit status is 0. "
    "SIGHUP reloads the app without failing a request: new workers replace the old ones "
    "with --workers, otherwise the process re-executes itself on the same listening socket. "
    "SIGUSR1 reopens the log files; SIGTTIN and SIGTTOU add or remove a worker (--workers)."
)

#: whose proxy headers are believed when neither --forwarded-allow-ips nor FORWARDED_ALLOW_IPS
#: says: gunicorn's default, a proxy on this host (docs/operations.rst says why)
DEFAULT_FORWARDED_ALLOW_IPS = "127.0.0.1,::1"


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fcgikit", description="Serve WSGI apps over FastCGI behind a real web server."
    )
    build = "compiled" if ACCELERATED else "pure Python"  # see setup.py, FCGIKIT_PURE_PYTHON
    parser.add_argument("--version", action="version", version=f"fcgikit {__version__} ({build})")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser(
        "serve",
        help="serve a WSGI app over FastCGI",
        description="Serve APP over FastCGI. With no --bind, serve the listening socket "
        "inherited on fd 0 (how mod_fcgid, lighttpd bin-path and spawn-fcgi start it).",
        epilog=SIGNALS_HELP,
    )
    serve.add_argument("app", metavar="APP", help="module:attr or module:factory()")
    add_server_arguments(serve)
    add_pool_arguments(serve)
    add_reload_arguments(serve)
    serve.add_argument(
        "--http",
        metavar="HOST:PORT",
        help="also serve HTTP on HOST:PORT through a development front "
        "(werkzeug; for development only)",
    )
    serve.add_argument(
        "--mount",
        metavar="PREFIX",
        help="the URL prefix the web server serves APP at ('' for the root): SCRIPT_NAME and "
        "PATH_INFO are rebuilt from REQUEST_URI (fcgikit.wrap / MountFix), whatever the "
        "web server sent",
    )
    serve.add_argument(
        "--proxy-hops",
        type=int,
        default=0,
        metavar="N",
        help="trust X-Forwarded-For/-Proto from N proxies in front of the web server "
        "(ProxyFix), when they come from --forwarded-allow-ips",
    )
    serve.add_argument(
        "--forwarded",
        type=int,
        default=0,
        metavar="N",
        help="trust the RFC 7239 Forwarded header (for=, proto=, host=) from N proxies in front "
        "of the web server (ProxyFix), when it comes from --forwarded-allow-ips; preferred to "
        "X-Forwarded-* when both are there",
    )
    serve.add_argument(
        "--forwarded-allow-ips",
        default=None,
        metavar="ADDR[,ADDR...]",
        help="whose proxy headers --proxy-hops and --forwarded believe, by REMOTE_ADDR: IP "
        "addresses and networks (10.0.0.0/8, fd00::/8), or * for anyone (default: "
        f"$FORWARDED_ALLOW_IPS, else {DEFAULT_FORWARDED_ALLOW_IPS}: a proxy on this host)",
    )

    add_check_parser(commands)
    add_request_parser(commands)

    status = commands.add_parser(
        "status",
        help="print a running pool's status page (fcgikit serve --status-path)",
        description="Ask a running pool for its status page over FastCGI, directly on its "
        "socket: the page answers such a client whatever --status-allow says.",
    )
    status.add_argument("address", metavar="ADDR", help="unix:PATH or HOST:PORT it listens on")
    status.add_argument("--path", default="/fcgikit-status", help="its --status-path")
    status.add_argument("--json", action="store_true", help="the JSON form")

    config = commands.add_parser("config", help="print a web server config for fcgikit")
    config.add_argument("server", metavar="SERVER")
    config.add_argument("--mount", default="", help="URL prefix, e.g. /yourapplication")
    where = config.add_mutually_exclusive_group()
    where.add_argument("--socket", metavar="unix:PATH")
    where.add_argument("--port", type=int)
    config.add_argument(
        "--spawn", metavar="PATH.fcgi", help="let the web server start this .fcgi file itself"
    )
    config.add_argument(
        "--keep-conn",
        action="store_true",
        help="nginx only: reuse FastCGI connections (an upstream block with keepalive, for "
        "http { }, plus fastcgi_keep_conn on); faster, but a reload can rarely cost a POST a 502",
    )
    config.add_argument(
        "--upstream",
        action="append",
        default=[],
        metavar="HOST:PORT",
        help="nginx and haproxy: one app server of several (repeat it; unix:PATH works too); "
        "the web server balances them and skips one it cannot reach",
    )
    return parser


def _fixers(args: argparse.Namespace) -> Callable[[WSGIApplication], WSGIApplication] | None:
    """The URL fixers --mount / --proxy-hops / --forwarded ask for, as a function of the
    loaded app."""
    hops, forwarded = args.proxy_hops, args.forwarded
    for flag, count in (("--proxy-hops", hops), ("--forwarded", forwarded)):
        if count < 0:
            raise ConfigError(f"{flag} {count}: the number of proxies cannot be negative")
    proxy = None
    if hops or forwarded:
        proxy = {
            "x_for": hops,
            "x_proto": hops,
            "forwarded": forwarded,
            "trusted": _forwarded_allow_ips(args.forwarded_allow_ips),
        }
    elif args.forwarded_allow_ips is not None:
        raise ConfigError(
            "--forwarded-allow-ips says whose proxy headers to believe; add --proxy-hops N "
            "(X-Forwarded-For and -Proto) or --forwarded N (Forwarded) to say which"
        )
    elif "FORWARDED_ALLOW_IPS" in os.environ:
        log.warning(
            "fcgikit: FORWARDED_ALLOW_IPS is set, but no proxy header is trusted without "
            "--proxy-hops N or --forwarded N"
        )
    if args.mount is None and proxy is None:
        return None
    return lambda app: wrap(app, mount=args.mount, proxy=proxy)


def _forwarded_allow_ips(flag: str | None) -> TrustedNetworks:
    """The flag, else the variable gunicorn users know, else gunicorn's default."""
    if flag is not None:
        return TrustedNetworks.parse(flag, "--forwarded-allow-ips")
    variable = os.environ.get("FORWARDED_ALLOW_IPS")
    if variable is not None:
        return TrustedNetworks.parse(variable, "FORWARDED_ALLOW_IPS")
    return TrustedNetworks.parse(DEFAULT_FORWARDED_ALLOW_IPS, "the default")


def _serve(args: argparse.Namespace) -> int:
    configure_logging(getattr(logging, args.log_level.upper()), args.log_file)
    if args.chdir:
        try:
            os.chdir(args.chdir)
        except OSError as exc:
            raise ConfigError(f"cannot change to {args.chdir}: {exc.strerror}") from exc
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    fixers = _fixers(args)
    if args.reload:
        return _serve_reloading(args, fixers)
    if args.reload_dir or args.reload_engine != "auto":
        raise ConfigError("--reload-dir and --reload-engine go with --reload")
    if wants_pool(args):
        if args.http:
            raise ConfigError("--http is a development front; use it without --workers")
        settings, pool = settings_from_args(args)
        return Arbiter(args.app, None, settings, pool, wrap_app=fixers).run()

    settings = server_settings_from_args(args)
    listeners = None
    created: list[str] = []
    connections: list[int] = []
    dev_socket_dir = None
    passed = passed_listeners()  # ours, re-executed by SIGHUP (below), or systemd's
    if passed is not None and passed.sockets:
        listeners, created, connections = passed.sockets, passed.created_paths, passed.connections
    elif not settings.binds:
        listener = inherited_listener(0)
        if listener is not None:
            listeners = [listener]
        elif args.http:
            dev_socket_dir = tempfile.mkdtemp(prefix="fcgikit-dev-")
            settings = replace(
                settings, binds=(UnixAddress(os.path.join(dev_socket_dir, "app.sock")),)
            )
        else:
            raise ConfigError(
                "nothing to listen on: fd 0 is not a listening socket. Pass --bind "
                "unix:/run/app.sock (or 127.0.0.1:9000), or --http 127.0.0.1:8000 for "
                "a development front"
            )
    try:
        app = load_app(args.app)
    except BaseException:
        for path in created:  # the server that would have removed them will not run
            with contextlib.suppress(OSError):
                os.unlink(path)
        raise
    if fixers is not None:
        app = fixers(app)
    # The development front's socket lives in a temporary directory: it starts afresh.
    server = Server(
        app,
        settings,
        listeners,
        created_paths=created,
        keep_listeners_on_reload=not args.http,
        connections=connections,
    )
    front = None
    if args.http:
        front = _start_dev_front(_http_address(args.http), describe(server.listeners[0]))
    try:
        reload = server.serve()
    finally:
        if front is not None:
            front.shutdown()
        if dev_socket_dir is not None:
            os.rmdir(dev_socket_dir)
    if reload:
        argv = [sys.executable, "-m", "fcgikit", *sys.argv[1:]]
        if not server.keep_listeners_on_reload:
            log.info("fcgikit: SIGHUP; restarting")
            os.execv(argv[0], argv)
        log.info(
            "fcgikit: SIGHUP; restarting on the same listening socket(s), with %d idle "
            "connection(s)",
            len(server.parked),
        )
        # Until the new process handles SIGHUP itself, another one must not kill it: an
        # ignored signal stays ignored across exec.
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        connections = [channel.fileno for channel in server.parked]
        exec_with_listeners(argv, server.listeners, server.created_paths, connections)
    return 0


def _http_address(http: str) -> TcpAddress:
    address = parse_address(http)
    if not isinstance(address, TcpAddress):
        raise ConfigError(f"--http takes HOST:PORT, not {http!r}")
    return address


def _start_dev_front(address: TcpAddress, target: str) -> BaseWSGIServer:
    """werkzeug's server on ``address``, forwarding to the FastCGI socket ``target``."""
    from werkzeug.serving import make_server

    from fcgikit.client import FastCGIGateway

    front = make_server(address.host, address.port, FastCGIGateway(target), threaded=True)
    thread = threading.Thread(target=front.serve_forever, name="fcgikit-dev-front", daemon=True)
    thread.start()
    log.warning(
        "fcgikit: development front on http://%s:%d -> %s (for development only; "
        "put nginx, Apache or lighttpd in front in production)",
        address.host,
        front.server_port,
        target,
    )
    return front


def _serve_reloading(
    args: argparse.Namespace, fixers: Callable[[WSGIApplication], WSGIApplication] | None
) -> int:
    """--reload: the pool (one worker unless --workers) under the reloader, which makes it
    reload when the app's files change (fcgikit/server/autoreload.py)."""
    if args.preload:
        raise ConfigError(
            "--reload imports the app afresh in new workers, --preload once in the master, "
            "where no reload can replace it: use one or the other"
        )
    settings, pool = settings_from_args(args)
    http = _http_address(args.http) if args.http else None
    dev_socket_dir = target = None
    if http is not None:
        settings, dev_socket_dir, target = _reload_front_target(settings)
    watcher = make_watcher(watched_directories(args.app, args.reload_dir), args.reload_engine)
    serve = Arbiter(args.app, None, settings, pool, wrap_app=fixers).run
    fronts: list[BaseWSGIServer] = []
    try:
        if http is None or target is None:
            return Reloader(serve, watcher).run()
        return Reloader(serve, watcher).run(lambda: fronts.append(_start_dev_front(http, target)))
    finally:
        for front in fronts:
            front.shutdown()
        if dev_socket_dir is not None:
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
    directory = tempfile.mkdtemp(prefix="fcgikit-dev-")
    address = UnixAddress(os.path.join(directory, "app.sock"))
    return replace(settings, binds=(address,)), directory, str(address)


def _status(args: argparse.Namespace) -> int:
    from fcgikit.client import FastCGIClient

    try:
        with FastCGIClient(args.address, timeout=10) as client:
            response = client.request(
                "GET",
                args.path,
                query="json" if args.json else "",
                params={DIRECT_CLIENT_PARAM: "fcgikit status"},
            )
    except OSError as exc:
        print(f"fcgikit status: cannot reach {args.address}: {exc}", file=sys.stderr)
        return 1
    # the page's own mark: any app can answer 200 text/plain at that path
    if response.status != 200 or response.header("X-Fcgikit-Worker") is None:
        print(
            f"fcgikit status: {args.address} answered {response.status} for {args.path}, "
            "not a status page: is it running with --status-path and --workers?",
            file=sys.stderr,
        )
        return 1
    sys.stdout.write(response.body.decode("utf-8", "replace"))
    return 0


def config_text(args: argparse.Namespace) -> str:
    """What ``fcgikit config`` prints for its parsed ``args`` (the docs' directive too)."""
    from fcgikit.deploy import render

    return render(
        args.server,
        mount=args.mount,
        socket=args.socket,
        port=args.port,
        spawn=args.spawn,
        keep_conn=args.keep_conn,
        upstreams=args.upstream,
    )


def _config(args: argparse.Namespace) -> int:
    print(config_text(args))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _build_parser().parse_args(argv)
    try:
        return _run(args)
    except BrokenPipeError:
        # `fcgikit config nginx | head`: the reader left; that is not an error worth a traceback
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


def _run(args: argparse.Namespace) -> int:
    try:
        if args.command == "serve":
            return _serve(args)
        if args.command == "check":
            return run_check(args)
        if args.command == "request":
            return run_request(args)
        if args.command == "status":
            return _status(args)
        return _config(args)
    except ConfigError as exc:
        print(f"fcgikit: {exc}", file=sys.stderr)
        return 2
